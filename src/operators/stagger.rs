//! Stagger windows (`WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL n)`): one window
//! per partition key, opened by the key's first row at that row's ROWTIME t0, holding
//! the key's rows with ROWTIME in [t0, t0 + n) (A3), emitted once at t0 + n with that
//! ROWTIME, and reopened by the key's next row after that.
//!
//! Windows of different keys close at different times, so each open window has its own
//! DataFusion `Accumulator` per aggregate (a grouped accumulator can only emit its first
//! groups). Rows are still fed in vectors: each run of equal ROWTIME is split by key and
//! every key's rows go to its accumulators in one call.
//!
//! ## Spilling
//!
//! The operator keeps an estimate of its state's memory: per open window its map slot,
//! key (twice: the map's and the close-time index's), key values and each accumulator's
//! `size()` (measured after each batch that touched it); per spilled window its index
//! slots. With a memory budget (`SpillConfig`), past it after a batch, whole windows are
//! evicted, least recently used first (`keyed_spill`), down to three quarters of the
//! budget: each becomes one spill-store entry under its key (key values, close time, and
//! each aggregate's `state()`, the snapshot's layout), and only its key stays in memory,
//! in `spilled` and in the close-time index `closing`, which holds every open window,
//! spilled or not. A row of a spilled key reads the window back (`merge_batch` of the
//! state into new accumulators) before it counts; a window that closes while spilled is
//! read back when `closing` reaches it, so it is emitted at its close time, in the same
//! order, with the same rows as if it had stayed in memory.
//!
//! A snapshot reads spilled windows back into its sections (in close order, as the
//! others); a restore loads window by window through the same budget.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{partition, take};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use super::eval::eval_isolating;
use super::keyed_spill::KeyedSpill;
use super::tumbling::SpillStats;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::state::spill::SpillConfig;
use crate::time::Millis;

struct Window {
    key_values: Vec<ScalarValue>,
    close: Millis,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// [`window_bytes`] when last measured.
    bytes: usize,
    /// The batch (`KeyedSpill::tick`) that last added rows to the window.
    last_used: u64,
}

/// A key's entry in `closing` (close time, key), with some room for the B-tree's nodes.
const CLOSING_SLOT: usize = size_of::<(Millis, OwnedRow)>() * 5 / 4;
/// An open window's slot in `open`, with an eighth more for the hash table's spare room.
const OPEN_SLOT: usize = (size_of::<(OwnedRow, Window)>() + 1) * 8 / 7;
/// A spilled window's slot in `spilled`, likewise.
const SPILLED_SLOT: usize = (size_of::<OwnedRow>() + 1) * 8 / 7;

/// What an open window costs in memory: its slots in `open` and `closing` with a copy of
/// the key's bytes each, its key values and its accumulators (`size()`, which counts the
/// accumulator object itself).
fn window_bytes(key: &OwnedRow, w: &Window) -> usize {
    OPEN_SLOT
        + CLOSING_SLOT
        + 2 * key.as_ref().len()
        + w.key_values.iter().map(|v| v.size()).sum::<usize>()
        + w.accumulators
            .iter()
            .map(|a| size_of::<Box<dyn Accumulator>>() + a.size())
            .sum::<usize>()
}

/// What a spilled window costs in memory: its slots in `spilled` and `closing`.
fn spilled_bytes(key: &OwnedRow) -> usize {
    SPILLED_SLOT + CLOSING_SLOT + 2 * key.as_ref().len()
}

fn corrupt() -> SluiceError {
    SluiceError::runtime("corrupt stagger-window state")
}

pub struct StaggerAggregateOp {
    /// Partition keys (the grouping expressions other than the stagger marker).
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Position of the marker column among the grouping columns of the output.
    marker_at: usize,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// How many columns each aggregate's partial state has.
    state_widths: Vec<usize>,
    range_ms: Millis,
    converter: RowConverter,
    /// Open windows in memory.
    open: HashMap<OwnedRow, Window>,
    /// Open windows in the spill store.
    spilled: HashSet<OwnedRow>,
    /// (close time, key) of every open window, in memory or spilled, soonest first.
    closing: BTreeSet<(Millis, OwnedRow)>,
    output_schema: SchemaRef,
    /// The estimated memory of the state: every open window's `bytes` as last recorded
    /// plus [`spilled_bytes`] per spilled window.
    bytes: usize,
    /// Keys of the windows the current batch added rows to (measured after it).
    touched: Vec<OwnedRow>,
    spill: KeyedSpill,
}

impl StaggerAggregateOp {
    pub fn new(
        keys: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<datafusion::arrow::datatypes::DataType>,
        marker_at: usize,
        aggregates: Vec<Arc<AggregateFunctionExpr>>,
        range_ms: Millis,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        for a in &aggregates {
            a.create_accumulator()?; // fail at plan time, not on the first row
        }
        let state_widths = aggregates
            .iter()
            .map(|a| Ok(a.state_fields()?.len()))
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        Ok(StaggerAggregateOp {
            keys,
            marker_at,
            aggregates,
            state_widths,
            range_ms,
            converter,
            open: HashMap::new(),
            spilled: HashSet::new(),
            closing: BTreeSet::new(),
            output_schema,
            bytes: 0,
            touched: Vec::new(),
            spill: KeyedSpill::default(),
        })
    }

    /// The statistics of spilling so far.
    pub fn spill_stats(&self) -> SpillStats {
        self.spill.stats()
    }

    /// Open windows in the spill store now.
    pub fn spilled_windows(&self) -> usize {
        self.spilled.len()
    }

    /// Takes the spilled window of `key` out of the spill store.
    fn read_back(&mut self, key: &OwnedRow) -> Result<Window> {
        self.spilled.remove(key);
        self.bytes -= spilled_bytes(key);
        let arrays = self.spill.holding()?.take_entry(key.as_ref())?.ok_or_else(corrupt)?;
        self.decode(&arrays, 0)
    }

    /// A window from row `row` of its encoded form (see [`StaggerAggregateOp::encode`]);
    /// measured, not yet counted in `bytes`.
    fn decode(&self, arrays: &[ArrayRef], row: usize) -> Result<Window> {
        let n_keys = self.keys.len();
        if arrays.len() != n_keys + 1 + self.state_widths.iter().sum::<usize>() {
            return Err(corrupt());
        }
        let key_values = arrays[..n_keys]
            .iter()
            .map(|k| ScalarValue::try_from_array(k, row))
            .collect::<Result<Vec<_>, _>>()?;
        let close = arrays[n_keys].as_primitive::<Int64Type>().value(row);
        let mut rest = &arrays[n_keys + 1..];
        let mut accumulators = Vec::with_capacity(self.aggregates.len());
        for (agg, &width) in self.aggregates.iter().zip(&self.state_widths) {
            let (state, tail) = rest.split_at(width);
            rest = tail;
            let mut acc = agg.create_accumulator()?;
            let slices: Vec<ArrayRef> = state.iter().map(|a| a.slice(row, 1)).collect();
            acc.merge_batch(&slices)?;
            accumulators.push(acc);
        }
        Ok(Window {
            key_values,
            close,
            accumulators,
            bytes: 0,
            last_used: u64::MAX,
        })
    }

    /// A window as scalars: key values, close time, each aggregate's state.
    fn encode(w: &mut Window) -> Result<Vec<ScalarValue>> {
        let mut values = w.key_values.clone();
        values.push(ScalarValue::Int64(Some(w.close)));
        for acc in &mut w.accumulators {
            values.extend(acc.state()?);
        }
        Ok(values)
    }

    /// Emits every window that closes at or before `t`, soonest first.
    fn close_until(&mut self, t: Millis) -> Result<Option<RecordBatch>> {
        let mut rows: Vec<(Vec<ScalarValue>, Vec<ScalarValue>, Millis)> = Vec::new();
        while let Some((close, key)) = self.closing.first().cloned() {
            if close > t {
                break;
            }
            self.closing.pop_first();
            let window = match self.open.remove(&key) {
                Some(w) => {
                    self.bytes -= w.bytes;
                    Some(w)
                }
                None if self.spilled.contains(&key) => Some(self.read_back(&key)?),
                None => None,
            };
            if let Some(mut w) = window {
                let values = w
                    .accumulators
                    .iter_mut()
                    .map(|a| a.evaluate())
                    .collect::<Result<Vec<_>, _>>()?;
                rows.push((w.key_values, values, w.close));
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let n_keys = rows[0].0.len();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for i in 0..=n_keys {
            if i == self.marker_at {
                columns.push(ScalarValue::Boolean(Some(true)).to_array_of_size(rows.len())?);
            }
            if i < n_keys {
                columns.push(ScalarValue::iter_to_array(rows.iter().map(|r| r.0[i].clone()))?);
            }
        }
        for j in 0..self.aggregates.len() {
            columns.push(ScalarValue::iter_to_array(rows.iter().map(|r| r.1[j].clone()))?);
        }
        columns.push(Arc::new(TimestampMillisecondArray::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )));
        Ok(Some(super::eval::conform(&self.output_schema, columns)?))
    }

    /// Adds rows that all share one ROWTIME `t`.
    fn add_run(&mut self, rows: &RecordBatch, t: Millis, ctx: &mut OpContext) -> Result<()> {
        let keys_exprs = &self.keys;
        let aggregates = &self.aggregates;
        let Some((kept, (keys, args))) = eval_isolating(rows, ctx, |b| {
            let n = b.num_rows();
            let keys = keys_exprs
                .iter()
                .map(|e| e.evaluate(b)?.into_array(n))
                .collect::<Result<Vec<_>, _>>()?;
            let args = aggregates
                .iter()
                .map(|a| {
                    a.expressions()
                        .iter()
                        .map(|e| e.evaluate(b)?.into_array(n))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((keys, args))
        })?
        else {
            return Ok(());
        };
        if kept.num_rows() == 0 {
            return Ok(());
        }
        let converted = self.converter.convert_columns(&keys)?;
        // row indices per key, in arrival order
        let mut by_key: HashMap<OwnedRow, Vec<u32>> = HashMap::new();
        let mut order: Vec<OwnedRow> = Vec::new();
        for (i, row) in converted.iter().enumerate() {
            let owned = row.owned();
            by_key
                .entry(owned.clone())
                .or_insert_with(|| {
                    order.push(owned);
                    Vec::new()
                })
                .push(i as u32);
        }
        for key in order {
            let indices = UInt32Array::from(by_key.remove(&key).unwrap_or_default());
            if !self.open.contains_key(&key) {
                let mut window = if self.spilled.contains(&key) {
                    // Its close is after `t`: `close_until(t)` ran first.
                    self.read_back(&key)?
                } else {
                    let first = indices.value(0) as usize;
                    let key_values = keys
                        .iter()
                        .map(|k| ScalarValue::try_from_array(k, first))
                        .collect::<Result<Vec<_>, _>>()?;
                    let accumulators = self
                        .aggregates
                        .iter()
                        .map(|a| a.create_accumulator())
                        .collect::<Result<Vec<_>, _>>()?;
                    let close = t.saturating_add(self.range_ms);
                    self.closing.insert((close, key.clone()));
                    Window {
                        key_values,
                        close,
                        accumulators,
                        bytes: 0,
                        last_used: u64::MAX,
                    }
                };
                window.bytes = window_bytes(&key, &window);
                self.bytes += window.bytes;
                self.open.insert(key.clone(), window);
            }
            let window = self.open.get_mut(&key).expect("opened above");
            for (acc, agg_args) in window.accumulators.iter_mut().zip(&args) {
                let values = agg_args
                    .iter()
                    .map(|a| take(a, &indices, None))
                    .collect::<Result<Vec<_>, _>>()?;
                acc.update_batch(&values)?;
            }
            if window.last_used != self.spill.tick {
                window.last_used = self.spill.tick;
                self.touched.push(key);
            }
        }
        Ok(())
    }

    /// Measures the windows the last batch changed and, past the budget, evicts the least
    /// recently used ones down to the low-water mark.
    fn enforce_budget(&mut self) -> Result<()> {
        for key in std::mem::take(&mut self.touched) {
            if let Some(w) = self.open.get_mut(&key) {
                let size = window_bytes(&key, w);
                self.bytes = self.bytes + size - w.bytes;
                w.bytes = size;
            }
        }
        let before = self.bytes;
        let Some(target) = self.spill.over_budget(before) else {
            return Ok(());
        };
        let mut order: Vec<(u64, Millis, &OwnedRow, usize)> = self
            .open
            .iter()
            .map(|(k, w)| (w.last_used, w.close, k, w.bytes - spilled_bytes(k)))
            .collect();
        // Least recently used first; among those, the windows closing last.
        order.sort_unstable_by_key(|v| (v.0, std::cmp::Reverse(v.1)));
        let mut freed = 0;
        let victims: Vec<OwnedRow> = order
            .into_iter()
            .take_while(|v| {
                let more = before.saturating_sub(freed) > target;
                freed += v.3;
                more
            })
            .map(|v| v.2.clone())
            .collect();
        let mut written = 0u64;
        for key in &victims {
            let mut w = self.open.remove(key).expect("chosen among open windows");
            self.bytes -= w.bytes;
            let arrays = Self::encode(&mut w)?
                .iter()
                .map(|v| v.to_array())
                .collect::<Result<Vec<_>, _>>()?;
            drop(w);
            written += self.spill.store()?.put_entry(key.as_ref(), &arrays)? as u64;
            self.bytes += spilled_bytes(key);
            self.spilled.insert(key.clone());
        }
        if !victims.is_empty() {
            self.spill
                .record("stagger-window", before, self.bytes, victims.len(), written);
        }
        Ok(())
    }
}

impl Operator for StaggerAggregateOp {
    fn name(&self) -> &'static str {
        "StaggerAggregate"
    }

    /// Every open window, soonest to close first: its key values, close time, and
    /// each aggregate's partial state. Spilled windows are read back in their place.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        if self.closing.is_empty() {
            return Ok(None);
        }
        let mut windows: Vec<Vec<ScalarValue>> = Vec::with_capacity(self.closing.len());
        for (_, key) in &self.closing {
            match self.open.get_mut(key) {
                Some(w) => windows.push(Self::encode(w)?),
                None => {
                    let store = self.spill.existing().ok_or_else(corrupt)?;
                    let arrays = store.get_entry(key.as_ref())?.ok_or_else(corrupt)?;
                    windows.push(
                        arrays
                            .iter()
                            .map(|a| ScalarValue::try_from_array(a, 0))
                            .collect::<Result<_, _>>()?,
                    );
                }
            }
        }
        // Sections: key columns, close times, then each aggregate's state columns.
        let mut columns = (0..windows[0].len())
            .map(|i| ScalarValue::iter_to_array(windows.iter().map(|w| w[i].clone())))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let n_keys = self.keys.len();
        let mut sections = vec![
            columns.by_ref().take(n_keys).collect(),
            columns.by_ref().take(1).collect(),
        ];
        for &width in &self.state_widths {
            sections.push(columns.by_ref().take(width).collect());
        }
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let [keys, closes, states @ ..] = sections.as_slice() else {
            return Err(corrupt());
        };
        let flat: Vec<ArrayRef> = keys
            .iter()
            .chain(closes)
            .chain(states.iter().flatten())
            .cloned()
            .collect();
        let rows = self.converter.convert_columns(keys)?;
        for w in 0..closes.first().map_or(0, |c| c.len()) {
            let key = rows.row(w).owned();
            let mut window = self.decode(&flat, w)?;
            window.bytes = window_bytes(&key, &window);
            self.bytes += window.bytes;
            self.closing.insert((window.close, key.clone()));
            self.open.insert(key, window);
            // Through the budget as it loads: evicts past it.
            self.enforce_budget()?;
        }
        self.spill.publish_peak();
        Ok(())
    }

    fn spills(&self) -> bool {
        true
    }

    fn set_memory_budget(&mut self, config: SpillConfig) {
        self.spill.configure(config);
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        if batch.num_rows() == 0 {
            return Ok(out);
        }
        self.spill.tick += 1;
        let rowtimes: ArrayRef = Arc::new(rowtime_column(&batch).clone());
        for range in partition(&[Arc::clone(&rowtimes)])?.ranges() {
            let t = rowtime_column(&batch).value(range.start);
            // [t0, t0 + n): a row at exactly t0 + n closes the window before it counts
            out.extend(self.close_until(t)?);
            self.add_run(&batch.slice(range.start, range.end - range.start), t, ctx)?;
        }
        self.enforce_budget()?;
        self.spill.publish_peak();
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        Ok(self.close_until(bound)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::{average::avg_udaf, count::count_udaf, min_max::max_udaf, sum::sum_udaf};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{CastExpr, Column};

    use super::*;
    use crate::error::ErrorRow;
    use crate::operators::test_input::{input_schema, keyed_batches, spill_config as config};

    /// `SELECT K, COUNT(V), SUM(V), AVG(V), MAX(K) ... WINDOWED BY STAGGER (PARTITION BY K
    /// RANGE INTERVAL '10' SECOND)`: AVG has a two-column state and MAX a string one.
    fn operator() -> StaggerAggregateOp {
        let input = input_schema();
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("K", 0));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        let v_double: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(Arc::clone(&v), DataType::Float64, None));
        let aggregates = [
            (count_udaf(), &v, "n"),
            (sum_udaf(), &v, "s"),
            (avg_udaf(), &v_double, "a"),
            (max_udaf(), &key, "m"),
        ]
        .into_iter()
        .map(|(f, arg, name)| {
            Arc::new(
                AggregateExprBuilder::new(f, vec![Arc::clone(arg)])
                    .schema(Arc::clone(&input))
                    .alias(name)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
        let output = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("STAGGER", DataType::Boolean, true),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Int64, true),
            Field::new("a", DataType::Float64, true),
            Field::new("m", DataType::Utf8, true),
            Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        StaggerAggregateOp::new(vec![key], vec![DataType::Utf8], 1, aggregates, 10_000, output).unwrap()
    }

    /// 30 batches of 400 rows over 3000 keys (some NULL keys and values), ROWTIME rising
    /// by 0 to 8 ms a row over 54 s: most windows hold a row or two, some more.
    fn input(seed: u64) -> Vec<RecordBatch> {
        keyed_batches(seed, 30, 8)
    }

    /// Output batches, each call's rows as one batch (empty calls left out).
    fn feed(op: &mut StaggerAggregateOp, batches: &[RecordBatch], end: bool) -> Vec<RecordBatch> {
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut out = Vec::new();
        for b in batches {
            out.extend(op.on_batch(b.clone(), &mut ctx).unwrap());
            // a bound between batches closes windows as time passes without rows
            let last = rowtime_column(b).value(b.num_rows() - 1);
            out.extend(op.on_bound(last + 1, &mut ctx).unwrap());
        }
        if end {
            out.extend(op.on_bound(Millis::MAX, &mut ctx).unwrap());
        }
        assert!(errors.is_empty());
        out
    }

    fn all(batches: &[RecordBatch]) -> RecordBatch {
        concat_batches(&batches[0].schema(), batches).unwrap()
    }

    #[test]
    fn a_budget_a_quarter_of_the_state_spills_and_emits_the_same_windows_at_the_same_time() {
        let dir = tempfile::tempdir().unwrap();
        let batches = input(5);
        let mut unlimited = operator();
        unlimited.set_memory_budget(config(None, dir.path()));
        let expected = feed(&mut unlimited, &batches, true);
        let peak = unlimited.spill_stats().peak_state_bytes;
        assert_eq!(unlimited.spill_stats().spills, 0);

        let budget = peak / 4;
        let mut spilling = operator();
        spilling.set_memory_budget(config(Some(budget), dir.path()));
        let mut actual = feed(&mut spilling, &batches, false);
        let stats = spilling.spill_stats();
        eprintln!("unspilled peak {peak} bytes, budget {budget}: {stats:?}");
        assert!(stats.spills >= 3, "{stats:?}");
        assert!(
            spilling.spilled_windows() > 0,
            "windows are spilled when the input ends"
        );
        assert!(stats.peak_state_bytes < peak / 2, "{stats:?}, unspilled peak {peak}");
        actual.extend(feed(&mut spilling, &[], true));
        assert_eq!(spilling.spilled_windows(), 0);
        // The same windows in the same calls: spilled windows close at their time.
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(&expected) {
            assert_eq!(a, e);
        }
    }

    #[test]
    fn a_checkpoint_of_spilled_windows_restores_and_does_not_change_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let batches = input(9);
        let mut unlimited = operator();
        let expected = all(&feed(&mut unlimited, &batches, true));
        let budget = unlimited.spill_stats().peak_state_bytes / 5;

        let cut = 17;
        let mut first = operator();
        first.set_memory_budget(config(Some(budget), dir.path()));
        let mut out = feed(&mut first, &batches[..cut], false);
        assert!(first.spilled_windows() > 0);
        let snapshot = first.snapshot().unwrap().unwrap();

        let mut same = out.clone();
        same.extend(feed(&mut first, &batches[cut..], true));
        assert_eq!(all(&same), expected);

        let mut restored = operator();
        restored.set_memory_budget(config(Some(budget), dir.path()));
        restored.restore(&snapshot).unwrap();
        assert!(restored.spill_stats().spills > 0, "a restore spills what does not fit");
        assert!(restored.spilled_windows() > 0);
        let mut rest = out.clone();
        rest.extend(feed(&mut restored, &batches[cut..], true));
        assert_eq!(all(&rest), expected);

        let mut whole = operator();
        whole.restore(&snapshot).unwrap();
        out.extend(feed(&mut whole, &batches[cut..], true));
        assert_eq!(all(&out), expected);
    }
}
