//! Tumbling windows: a streaming `GROUP BY` whose keys include a monotonic expression
//! of ROWTIME (`STEP(ROWTIME BY ...)`, `FLOOR(ROWTIME TO ...)`, or any expression of
//! ROWTIME alone such as the `(ROWTIME - epoch) SECOND / 10` idiom), or a key the query
//! declares monotonic (`MONOTONIC(order_time)`).
//!
//! Because the time keys never decrease, exactly one bucket is open at a time: every
//! group of the open bucket lives in one DataFusion `GroupValues` and one
//! `GroupsAccumulator` per aggregate (vectorised, as DataFusion's own hash aggregate).
//! When the bucket closes, all groups are emitted at once and the state is cleared.
//!
//! ## When a bucket closes ([`TimeKeys`])
//!
//! * Keys of ROWTIME alone: a bucket is the rows that share *every* such key (a query
//!   may group by a minute and a 10-second bucket: the finer one decides). Its end is
//!   found from the key expressions themselves: the first instant after the bucket's
//!   first row at which one of them changes (an exponential then binary search, once
//!   per bucket), which works for every monotonic bucketing expression without knowing
//!   its shape. A row of a later bucket, or a rowtime bound at or past the end, closes
//!   it, and its rows get ROWTIME = the end (A1).
//! * A declared key (`MONOTONIC(x)`, or an expression of such calls only): no instant
//!   can be probed for its value, so the bucket stays open until a row with a greater
//!   key arrives, or the input ends (the final bound). Its rows get the ROWTIME of the
//!   row that closed it, or at the end the time the input reached: never before any of
//!   its input rows, and non-decreasing. A row whose key is smaller than the open
//!   bucket's breaks the promise; it goes to `error_stream`, as does a NULL key.
//!
//! ## Spilling
//!
//! With a memory budget (`SpillConfig`), the open bucket's size is measured after every
//! batch with DataFusion's own accounting (`GroupValues::size` plus each
//! `GroupsAccumulator::size`). Past the budget, the groups are drained as DataFusion's
//! partial state (the `state()` arrays a checkpoint saves), hash-partitioned on the group
//! key into [`SPILL_PARTITIONS`] partitions, written as one Arrow IPC run per partition
//! to a RocksDB spill store (`crate::state::spill`), and the in-memory groups start
//! empty again. When the bucket closes, each partition in turn merges its runs and its
//! share of the in-memory groups into fresh accumulators (`merge_batch`, as DataFusion's
//! final aggregation phase), is evaluated and emitted, and is freed before the next: the
//! memory a close needs is about the state of one partition. A spilled bucket is emitted
//! as one batch per partition, so its rows come in another order than an unspilled
//! bucket's (all of them share one ROWTIME; no order among them is promised).
//!
//! A checkpoint taken while runs are spilled copies them into the snapshot after the
//! in-memory groups; a restore merges them back through the same budget check, so it
//! spills again rather than loading the whole bucket into memory.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{partition, take};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::eval::eval_isolating;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::state::spill::{SpillConfig, SpillStore};
use crate::time::Millis;

/// Partitions of a spilled bucket: closing it needs about 1/SPILL_PARTITIONS of its
/// state in memory at a time.
pub const SPILL_PARTITIONS: usize = 32;

/// Seed of the partitioning hash (any fixed value: partitions only need to agree within
/// one operator's lifetime, and a restore re-partitions what it loads).
const SPILL_HASH_SEED: u64 = 0x51_1CE;

/// What the operator spilled and the most memory its state took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// How many times the open bucket's state was written out.
    pub spills: u64,
    /// Bytes written to the spill store (Arrow IPC).
    pub spilled_bytes: u64,
    /// The largest in-memory state any bucket reached (DataFusion's accounting), while
    /// accumulating or while merging one partition at close.
    pub peak_state_bytes: usize,
}

/// One aggregate of the select list, with its grouped accumulator.
pub struct AggregateSlot {
    pub expr: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    accumulator: Box<dyn GroupsAccumulator>,
}

impl AggregateSlot {
    pub fn new(expr: Arc<AggregateFunctionExpr>, filter: Option<Arc<dyn PhysicalExpr>>) -> Result<Self> {
        let accumulator: Box<dyn GroupsAccumulator> = if expr.groups_accumulator_supported() {
            expr.create_groups_accumulator()?
        } else if matches!(expr.fun().name(), "first_value" | "last_value") {
            // Without ORDER BY, DataFusion's FIRST_VALUE / LAST_VALUE take the first / last
            // row in input order, which here is arrival (ROWTIME) order: one accumulator per
            // group, fed each group's rows in batch order (DataFusion's own fallback).
            let per_group = Arc::clone(&expr);
            Box::new(GroupsAccumulatorAdapter::new(move || per_group.create_accumulator()))
        } else {
            return Err(SluiceError::Unsupported {
                line: 0,
                column: 0,
                feature: format!("aggregate {} in a streaming GROUP BY", expr.name()),
            });
        };
        Ok(AggregateSlot {
            expr,
            filter,
            accumulator,
        })
    }
}

/// Which group keys tell the buckets apart, and how a bucket closes (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeKeys {
    /// Positions of the keys that are functions of ROWTIME alone.
    Rowtime(Vec<usize>),
    /// Position of the key the query declares monotonic.
    Declared(usize),
}

impl TimeKeys {
    fn positions(&self) -> Vec<usize> {
        match self {
            TimeKeys::Rowtime(keys) => keys.clone(),
            TimeKeys::Declared(key) => vec![*key],
        }
    }
}

struct OpenBucket {
    /// The time keys' values.
    key: Vec<ScalarValue>,
    /// The ROWTIME its rows get if it closes now: the bucket's end for ROWTIME keys; for
    /// a declared key, the time its input reached.
    stamp: Millis,
}

pub struct TumblingAggregateOp {
    /// All grouping expressions, in the order of the logical plan's output.
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Which of them tell the buckets apart.
    time_keys: TimeKeys,
    /// Input columns the ROWTIME keys read (all ROWTIME-valued): set to probe times
    /// when searching for a bucket's end.
    time_columns: Vec<usize>,
    aggregates: Vec<AggregateSlot>,
    group_values: Box<dyn GroupValues>,
    group_schema: SchemaRef,
    group_indices: Vec<usize>,
    input_schema: SchemaRef,
    /// Group columns, aggregate columns, ROWTIME.
    output_schema: SchemaRef,
    open: Option<OpenBucket>,
    /// Columns of the group key, then of each aggregate's partial state: the layout of a
    /// spilled run.
    group_width: usize,
    state_widths: Vec<usize>,
    spill_config: Option<SpillConfig>,
    /// The open bucket's spilled runs (None until its first spill).
    spill: Option<SpillStore>,
    stats: SpillStats,
}

impl TumblingAggregateOp {
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        time_keys: TimeKeys,
        aggregates: Vec<AggregateSlot>,
        input_schema: SchemaRef,
        group_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let time_columns = match &time_keys {
            TimeKeys::Rowtime(keys) => keys
                .iter()
                .flat_map(|&k| datafusion::physical_expr::utils::collect_columns(&group_exprs[k]))
                .map(|c| c.index())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            TimeKeys::Declared(_) => vec![],
        };
        let group_values = new_group_values(Arc::clone(&group_schema), &GroupOrdering::None)?;
        let state_widths = aggregates
            .iter()
            .map(|s| Ok(s.expr.state_fields()?.len()))
            .collect::<Result<Vec<_>>>()?;
        Ok(TumblingAggregateOp {
            group_width: group_schema.fields().len(),
            state_widths,
            spill_config: None,
            spill: None,
            stats: SpillStats::default(),
            group_exprs,
            time_keys,
            time_columns,
            aggregates,
            group_values,
            group_schema,
            group_indices: Vec::new(),
            input_schema,
            output_schema,
            open: None,
        })
    }

    /// The time keys of every row of `batch`.
    fn time_keys_of(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, datafusion::error::DataFusionError> {
        let n = batch.num_rows();
        self.time_keys
            .positions()
            .into_iter()
            .map(|k| self.group_exprs[k].evaluate(batch)?.into_array(n))
            .collect()
    }

    /// Evaluates the ROWTIME keys for probe instants.
    fn keys_at(&self, times: &[Millis]) -> Result<Vec<ArrayRef>> {
        let TimeKeys::Rowtime(keys) = &self.time_keys else {
            return Err(SluiceError::runtime(
                "a declared MONOTONIC key cannot be probed at an instant",
            ));
        };
        keys.iter()
            .map(|&k| {
                super::time_probe::evaluate_at(&self.group_exprs[k], &self.input_schema, &self.time_columns, times)
            })
            .collect()
    }

    /// The first instant after `t0` at which a time key differs from `key`.
    fn bucket_end(&self, key: &[ScalarValue], t0: Millis) -> Result<Millis> {
        let differs = |arrays: &[ArrayRef], i: usize| -> Result<bool> { Ok(row_key(arrays, i)? != key) };
        // Probes far past t0 may leave the range a key's arithmetic can represent (a
        // nanosecond timestamp ends in 2262): such a probe fails, and the search keeps to
        // the probes before it, so the end is found as long as one probe differs.
        let all: Vec<Millis> = (0..46).map(|p| t0.saturating_add(1i64 << p)).collect();
        let (steps, keys) = match self.keys_at(&all) {
            Ok(keys) => (all, keys),
            Err(_) => {
                let steps: Vec<Millis> = all.into_iter().take_while(|&t| self.keys_at(&[t]).is_ok()).collect();
                if steps.is_empty() {
                    return Ok(Millis::MAX);
                }
                let keys = self.keys_at(&steps)?;
                (steps, keys)
            }
        };
        let Some(j) = (0..steps.len()).find(|&i| differs(&keys, i).unwrap_or(false)) else {
            return Ok(Millis::MAX);
        };
        let (mut lo, mut hi) = (if j == 0 { t0 } else { steps[j - 1] }, steps[j]);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if differs(&self.keys_at(&[mid])?, 0)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    fn accumulate(&mut self, rows: &RecordBatch, ctx: &mut OpContext) -> Result<()> {
        let group_exprs = &self.group_exprs;
        let aggregates = &self.aggregates;
        // Evaluate every input of the aggregation first, so a failing row is dropped
        // from all aggregates alike.
        let Some((kept, (keys, values, filters))) = eval_isolating(rows, ctx, |b| {
            let n = b.num_rows();
            let keys = group_exprs
                .iter()
                .map(|e| e.evaluate(b)?.into_array(n))
                .collect::<Result<Vec<_>, _>>()?;
            let mut values = Vec::with_capacity(aggregates.len());
            let mut filters = Vec::with_capacity(aggregates.len());
            for slot in aggregates {
                let args = slot
                    .expr
                    .expressions()
                    .iter()
                    .map(|e| e.evaluate(b)?.into_array(n))
                    .collect::<Result<Vec<_>, _>>()?;
                values.push(args);
                filters.push(match &slot.filter {
                    Some(f) => {
                        let mask = f.evaluate(b)?.into_array(n)?;
                        Some(
                            mask.as_any()
                                .downcast_ref::<BooleanArray>()
                                .cloned()
                                .unwrap_or_else(|| BooleanArray::from(vec![false; n])),
                        )
                    }
                    None => None,
                });
            }
            Ok((keys, values, filters))
        })?
        else {
            return Ok(());
        };
        if kept.num_rows() == 0 {
            return Ok(());
        }
        self.group_values.intern(&keys, &mut self.group_indices)?;
        let total = self.group_values.len();
        for ((slot, args), filter) in self.aggregates.iter_mut().zip(values).zip(filters) {
            slot.accumulator
                .update_batch(&args, &self.group_indices, filter.as_ref(), total)?;
        }
        Ok(())
    }

    /// Takes every group key out. DataFusion 55's multi-column `GroupValues` keeps its
    /// hash table after `emit(EmitTo::All)` (pointing at groups that are gone), so a
    /// drained instance is replaced by a fresh one rather than reused.
    fn drain_groups(&mut self) -> Result<Vec<ArrayRef>> {
        let groups = self.group_values.emit(EmitTo::All)?;
        self.group_values = new_group_values(Arc::clone(&self.group_schema), &GroupOrdering::None)?;
        Ok(groups)
    }

    /// Evaluates every in-memory group as output rows stamped `end`.
    fn evaluate(&mut self, end: Millis) -> Result<Option<RecordBatch>> {
        if self.group_values.is_empty() {
            return Ok(None);
        }
        let mut columns = self.drain_groups()?;
        let n = columns.first().map(|c| c.len()).unwrap_or(0);
        for slot in &mut self.aggregates {
            columns.push(slot.accumulator.evaluate(EmitTo::All)?);
        }
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![end; n])));
        Ok(Some(super::eval::conform(&self.output_schema, columns)?))
    }

    /// Closes the open bucket and returns its rows.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        let Some(open) = self.open.take() else {
            return Ok(vec![]);
        };
        self.note_size();
        let Some(store) = self.spill.take() else {
            let out = self.evaluate(open.stamp)?.into_iter().collect();
            self.publish_peak();
            return Ok(out);
        };
        // Merge one partition at a time: its spilled runs, then its share of what is
        // still in memory. The store's folder goes when `store` is dropped.
        let mut in_memory = match self.take_state()? {
            Some(flat) => self.partition_rows(&flat)?,
            None => vec![None; SPILL_PARTITIONS],
        };
        let mut out = Vec::new();
        for (p, part) in in_memory.iter_mut().enumerate() {
            store.for_each_run(p as u32, |run| self.reload_flat(&run))?;
            if let Some(flat) = part.take() {
                self.reload_flat(&flat)?;
            }
            self.note_size();
            out.extend(self.evaluate(open.stamp)?);
            self.reset_accumulators()?;
        }
        self.publish_peak();
        Ok(out)
    }

    /// DataFusion's measure of the in-memory state: group keys plus accumulators.
    fn state_size(&self) -> usize {
        self.group_values.size() + self.aggregates.iter().map(|s| s.accumulator.size()).sum::<usize>()
    }

    fn note_size(&mut self) -> usize {
        let size = self.state_size();
        self.stats.peak_state_bytes = self.stats.peak_state_bytes.max(size);
        size
    }

    /// Spills the in-memory state if it has outgrown the budget.
    fn enforce_budget(&mut self) -> Result<()> {
        let size = self.note_size();
        let Some(budget) = self.spill_config.as_ref().and_then(|c| c.budget_bytes) else {
            return Ok(());
        };
        if size > budget {
            self.spill_state(size, budget)?;
        }
        Ok(())
    }

    fn publish_peak(&self) {
        if let Some(c) = &self.spill_config {
            ::metrics::gauge!("sluice_window_state_peak_bytes", "app" => c.app.clone(), "pump" => c.pump.clone())
                .set(self.stats.peak_state_bytes as f64);
        }
    }

    /// The statistics of spilling so far.
    pub fn spill_stats(&self) -> SpillStats {
        self.stats
    }

    fn reset_accumulators(&mut self) -> Result<()> {
        for slot in &mut self.aggregates {
            slot.accumulator = slot.expr.create_groups_accumulator()?;
        }
        Ok(())
    }

    /// Drains every group as one set of columns: the group key, then each aggregate's
    /// partial state (DataFusion's `state()`, what `merge_batch` reads). Fresh
    /// accumulators replace the drained ones, so their memory is given back.
    fn take_state(&mut self) -> Result<Option<Vec<ArrayRef>>> {
        if self.group_values.is_empty() {
            return Ok(None);
        }
        let mut flat = self.drain_groups()?;
        for slot in &mut self.aggregates {
            flat.extend(slot.accumulator.state(EmitTo::All)?);
        }
        self.reset_accumulators()?;
        Ok(Some(flat))
    }

    /// Splits state columns by the hash of the group key into [`SPILL_PARTITIONS`] sets
    /// of columns (None for a partition without rows).
    fn partition_rows(&self, flat: &[ArrayRef]) -> Result<Vec<Option<Vec<ArrayRef>>>> {
        let n = flat.first().map(|a| a.len()).unwrap_or(0);
        let mut hashes = vec![0u64; n];
        create_hashes(
            &flat[..self.group_width],
            &RandomState::with_seed(SPILL_HASH_SEED),
            &mut hashes,
        )?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); SPILL_PARTITIONS];
        for (row, h) in hashes.iter().enumerate() {
            rows[(*h % SPILL_PARTITIONS as u64) as usize].push(row as u32);
        }
        rows.into_iter()
            .map(|rows| {
                if rows.is_empty() {
                    return Ok(None);
                }
                let indices = UInt32Array::from(rows);
                Ok(Some(
                    flat.iter()
                        .map(|a| take(a.as_ref(), &indices, None))
                        .collect::<Result<Vec<_>, _>>()?,
                ))
            })
            .collect()
    }

    /// Writes the in-memory state to the spill store, one run per partition.
    fn spill_state(&mut self, size: usize, budget: usize) -> Result<()> {
        let Some(flat) = self.take_state()? else { return Ok(()) };
        let parts = self.partition_rows(&flat)?;
        drop(flat);
        let Some(config) = &self.spill_config else {
            return Ok(());
        };
        let store = match &mut self.spill {
            Some(store) => store,
            None => self.spill.insert(SpillStore::create(&config.dir)?),
        };
        let mut bytes = 0u64;
        for (p, part) in parts.into_iter().enumerate() {
            if let Some(arrays) = part {
                bytes += store.put(p as u32, &arrays)? as u64;
            }
        }
        self.stats.spills += 1;
        self.stats.spilled_bytes += bytes;
        tracing::debug!(
            pump = %config.pump,
            state_bytes = size,
            budget_bytes = budget,
            spilled_bytes = bytes,
            runs = store.runs(),
            "window state over its memory budget: spilled to disk"
        );
        ::metrics::counter!("sluice_spilled_bytes_total", "app" => config.app.clone(), "pump" => config.pump.clone())
            .increment(bytes);
        ::metrics::counter!("sluice_spills_total", "app" => config.app.clone(), "pump" => config.pump.clone())
            .increment(1);
        Ok(())
    }

    /// Splits a spilled run into group columns and each aggregate's state columns.
    fn split_flat(&self, flat: &[ArrayRef]) -> Result<(Vec<ArrayRef>, Vec<Vec<ArrayRef>>)> {
        if flat.len() != self.group_width + self.state_widths.iter().sum::<usize>() {
            return Err(SluiceError::runtime("corrupt spilled tumbling-window state"));
        }
        let (groups, mut rest) = flat.split_at(self.group_width);
        let states = self
            .state_widths
            .iter()
            .map(|&w| {
                let (state, tail) = rest.split_at(w);
                rest = tail;
                state.to_vec()
            })
            .collect();
        Ok((groups.to_vec(), states))
    }

    fn reload_flat(&mut self, flat: &[ArrayRef]) -> Result<()> {
        let (groups, states) = self.split_flat(flat)?;
        self.reload(&groups, &states)
    }
}

impl TumblingAggregateOp {
    /// Puts group keys and accumulator states back (after a snapshot drained them, or
    /// from a checkpoint).
    fn reload(&mut self, groups: &[ArrayRef], states: &[Vec<ArrayRef>]) -> Result<()> {
        if groups.is_empty() || groups[0].is_empty() {
            return Ok(());
        }
        self.group_values.intern(groups, &mut self.group_indices)?;
        let total = self.group_values.len();
        for (slot, state) in self.aggregates.iter_mut().zip(states) {
            slot.accumulator.merge_batch(state, &self.group_indices, total)?;
        }
        Ok(())
    }
}

impl Operator for TumblingAggregateOp {
    fn name(&self) -> &'static str {
        "TumblingAggregate"
    }

    /// The open bucket (time keys, stamp), its group keys, and each aggregate's partial
    /// state (DataFusion's own state layout, the one its merge phase reads).
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(open) = &self.open else { return Ok(None) };
        let mut bucket = open.key.iter().map(|k| k.to_array()).collect::<Result<Vec<_>, _>>()?;
        bucket.push(Arc::new(Int64Array::from(vec![open.stamp])) as ArrayRef);
        // DataFusion's grouped accumulators can only hand their state over by draining
        // it: drain, keep a copy, and merge it straight back.
        let (groups, states) = match self.take_state()? {
            Some(flat) => {
                self.reload_flat(&flat)?;
                self.split_flat(&flat)?
            }
            None => (vec![], vec![vec![]; self.aggregates.len()]),
        };
        let mut sections = vec![bucket, groups];
        sections.extend(states);
        // Spilled runs follow, one section each (group key and partial states).
        if let Some(store) = &self.spill {
            store.for_each(|_, run| {
                sections.push(run);
                Ok(())
            })?;
        }
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let [bucket, groups, rest @ ..] = sections.as_slice() else {
            return Err(SluiceError::runtime("corrupt tumbling-window state"));
        };
        if rest.len() < self.aggregates.len() {
            return Err(SluiceError::runtime("corrupt tumbling-window state"));
        }
        let (states, runs) = rest.split_at(self.aggregates.len());
        let Some((stamp, key)) = bucket.split_last() else {
            return Err(SluiceError::runtime("corrupt tumbling-window state"));
        };
        let key = row_key(key, 0)?;
        let stamp = stamp.as_primitive::<Int64Type>().value(0);
        self.open = Some(OpenBucket { key, stamp });
        self.reload(groups, states)?;
        self.enforce_budget()?;
        for run in runs {
            self.reload_flat(run)?;
            self.enforce_budget()?;
        }
        Ok(())
    }

    fn spills(&self) -> bool {
        true
    }

    fn set_memory_budget(&mut self, config: SpillConfig) {
        self.spill_config = Some(config);
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let n = batch.num_rows();
        if n == 0 {
            return Ok(out);
        }
        // A key that fails on a row (CHAR_TO_TIMESTAMP of a bad text under MONOTONIC)
        // sends that row to error_stream; the others go on.
        let Some((batch, keys)) = eval_isolating(&batch, ctx, |b| self.time_keys_of(b))? else {
            return Ok(out);
        };
        if batch.num_rows() == 0 {
            return Ok(out);
        }
        let rowtimes = rowtime_column(&batch).clone();
        let declared = matches!(self.time_keys, TimeKeys::Declared(_));
        for range in partition(&keys)?.ranges() {
            let key = row_key(&keys, range.start)?;
            let first_rowtime = rowtimes.value(range.start);
            let rows = batch.slice(range.start, range.end - range.start);
            if declared && let Some(why) = self.breaks_promise(&key) {
                refuse(&rows, &why, ctx);
                continue;
            }
            if self.open.as_ref().is_some_and(|o| o.key != key) {
                if declared && let Some(open) = &mut self.open {
                    // The row that closes a declared bucket gives it its time.
                    open.stamp = open.stamp.max(first_rowtime);
                }
                out.extend(self.emit()?);
            }
            if self.open.is_none() {
                let stamp = if declared {
                    first_rowtime
                } else {
                    self.bucket_end(&key, first_rowtime)?
                };
                self.open = Some(OpenBucket { key, stamp });
            }
            if declared && let Some(open) = &mut self.open {
                open.stamp = open.stamp.max(rowtimes.value(range.end - 1));
            }
            self.accumulate(&rows, ctx)?;
            self.enforce_budget()?;
        }
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let Some(open) = &mut self.open else {
            return Ok(vec![]);
        };
        match self.time_keys {
            TimeKeys::Rowtime(_) if bound >= open.stamp || bound == Millis::MAX => self.emit(),
            TimeKeys::Declared(_) if bound == Millis::MAX => self.emit(),
            TimeKeys::Declared(_) => {
                // Time passed without a greater key: the bucket stays open, and whenever it
                // closes its rows are stamped no earlier than the time reached now.
                open.stamp = open.stamp.max(bound);
                Ok(vec![])
            }
            TimeKeys::Rowtime(_) => Ok(vec![]),
        }
    }
}

impl TumblingAggregateOp {
    /// Why rows with the declared key `key` cannot join any bucket, if they cannot: a
    /// NULL key, or one below the open bucket's.
    fn breaks_promise(&self, key: &[ScalarValue]) -> Option<String> {
        if key.iter().any(ScalarValue::is_null) {
            return Some("the MONOTONIC key of a streaming GROUP BY is NULL".into());
        }
        let open = self.open.as_ref()?;
        (key.partial_cmp(open.key.as_slice()) == Some(std::cmp::Ordering::Less)).then(|| {
            format!(
                "the MONOTONIC key of a streaming GROUP BY went back ({} after {}): \
                 MONOTONIC(x) promises that x never decreases",
                key_text(&key[0]),
                key_text(&open.key[0])
            )
        })
    }
}

/// A key value as a message shows it: a timestamp as text.
fn key_text(key: &ScalarValue) -> String {
    match key {
        ScalarValue::TimestampMillisecond(Some(ms), _) => crate::time::format_timestamp(*ms),
        other => other.to_string(),
    }
}

/// The values of `keys` at row `i`.
fn row_key(keys: &[ArrayRef], i: usize) -> Result<Vec<ScalarValue>> {
    Ok(keys
        .iter()
        .map(|k| ScalarValue::try_from_array(k, i))
        .collect::<Result<_, _>>()?)
}

/// `error_stream` rows for `rows`, which no bucket can take.
fn refuse(rows: &RecordBatch, why: &str, ctx: &mut OpContext) {
    let e = datafusion::error::DataFusionError::Execution(why.to_string());
    for i in 0..rows.num_rows() {
        let mut row = super::eval::error_row(rows, i, &e, ctx.pump);
        row.name = "MonotonicKeyError".into();
        ctx.errors.push(row);
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::{average::avg_udaf, count::count_udaf, min_max::min_udaf, sum::sum_udaf};
    use datafusion::logical_expr::Operator as BinaryOp;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::error::ErrorRow;
    use crate::operators::test_input::{input_schema, spill_config as config};

    const WIDTH_MS: i64 = 10_000;

    /// `SELECT K, ROWTIME-bucket, COUNT(V), SUM(V), AVG(V), MIN(K) ... GROUP BY K, bucket`:
    /// AVG has a two-column partial state and MIN a string one, so spilled runs carry
    /// every layout the merge must split back.
    fn operator() -> TumblingAggregateOp {
        let input = input_schema();
        let bucket: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(CastExpr::new(
                Arc::new(Column::new("ROWTIME", 2)),
                DataType::Int64,
                None,
            )),
            BinaryOp::Divide,
            Arc::new(Literal::new(ScalarValue::Int64(Some(WIDTH_MS)))),
        ));
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("K", 0));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        // As DataFusion's type coercion does for AVG of an integer.
        let v_double: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(Arc::clone(&v), DataType::Float64, None));
        let aggregates = [
            (count_udaf(), &v, "n"),
            (sum_udaf(), &v, "s"),
            (avg_udaf(), &v_double, "a"),
            (min_udaf(), &key, "m"),
        ]
        .into_iter()
        .map(|(f, arg, name)| {
            let expr = AggregateExprBuilder::new(f, vec![Arc::clone(arg)])
                .schema(Arc::clone(&input))
                .alias(name)
                .build()
                .unwrap();
            AggregateSlot::new(Arc::new(expr), None).unwrap()
        })
        .collect();
        let group_schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("B", DataType::Int64, true),
        ]));
        let output_schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("B", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Int64, true),
            Field::new("a", DataType::Float64, true),
            Field::new("m", DataType::Utf8, true),
            Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        TumblingAggregateOp::new(
            vec![key, bucket],
            TimeKeys::Rowtime(vec![1]),
            aggregates,
            input,
            group_schema,
            output_schema,
        )
        .unwrap()
    }

    /// Three buckets of `keys` random keys each (some NULL keys and values), in batches
    /// of 400 rows, non-decreasing in ROWTIME.
    fn input(keys: u32, seed: u64) -> Vec<RecordBatch> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut t = 1_709_280_000_000i64;
        let mut batches = Vec::new();
        for _ in 0..30 {
            let (mut k, mut v, mut ts) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..400 {
                t += rng.random_range(0..9);
                k.push((rng.random_range(0..50) > 0).then(|| format!("k{}", rng.random_range(0..keys))));
                v.push((rng.random_range(0..20) > 0).then(|| rng.random_range(-1000i64..1000)));
                ts.push(t);
            }
            batches.push(
                RecordBatch::try_new(
                    input_schema(),
                    vec![
                        Arc::new(StringArray::from(k)),
                        Arc::new(Int64Array::from(v)),
                        Arc::new(TimestampMillisecondArray::from(ts)),
                    ],
                )
                .unwrap(),
            );
        }
        batches
    }

    fn feed(op: &mut TumblingAggregateOp, batches: &[RecordBatch], end: bool) -> Vec<RecordBatch> {
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut out = Vec::new();
        for b in batches {
            out.extend(op.on_batch(b.clone(), &mut ctx).unwrap());
        }
        if end {
            out.extend(op.on_bound(Millis::MAX, &mut ctx).unwrap());
        }
        assert!(errors.is_empty());
        out
    }

    /// All output rows, sorted by ROWTIME, bucket and key (a spilled bucket comes out
    /// in another order).
    fn sorted(batches: &[RecordBatch]) -> RecordBatch {
        let all = concat_batches(&batches[0].schema(), batches).unwrap();
        let by = [6, 1, 0].map(|i| SortColumn {
            values: Arc::clone(all.column(i)),
            options: None,
        });
        take_record_batch(&all, &lexsort_to_indices(&by, None).unwrap()).unwrap()
    }

    #[test]
    fn a_tiny_budget_spills_several_times_and_emits_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let batches = input(3000, 7);
        let mut unlimited = operator();
        unlimited.set_memory_budget(config(None, dir.path()));
        let expected = feed(&mut unlimited, &batches, true);
        let peak = unlimited.spill_stats().peak_state_bytes;
        assert_eq!(unlimited.spill_stats().spills, 0);

        let budget = peak / 8;
        let mut spilling = operator();
        spilling.set_memory_budget(config(Some(budget), dir.path()));
        let actual = feed(&mut spilling, &batches, true);
        let stats = spilling.spill_stats();
        assert!(stats.spills >= 3, "{stats:?}");
        assert!(stats.spilled_bytes > 0);
        // The state stays near the budget: over it by at most one batch's growth, and
        // far below the unspilled peak.
        assert!(stats.peak_state_bytes < peak / 2, "{stats:?}, unspilled peak {peak}");
        assert_eq!(sorted(&actual), sorted(&expected));
        // Three buckets, each emitted once, with ROWTIME = the bucket's end.
        let rowtimes: std::collections::BTreeSet<i64> = actual
            .iter()
            .flat_map(|b| rowtime_column(b).values().to_vec())
            .collect();
        assert_eq!(rowtimes.len(), expected.len());
        // Every spill store is gone once its bucket closed.
        assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 0);
    }

    #[test]
    fn a_checkpoint_of_spilled_state_restores_and_does_not_change_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let batches = input(3000, 11);
        let mut unlimited = operator();
        let expected = feed(&mut unlimited, &batches, true);
        let budget = 16 << 10;

        // Stop in the middle of the second bucket, with runs spilled.
        let cut = 15;
        let mut first = operator();
        first.set_memory_budget(config(Some(budget), dir.path()));
        let mut out = feed(&mut first, &batches[..cut], false);
        assert!(first.spill.as_ref().is_some_and(|s| s.runs() > 0));
        let snapshot = first.snapshot().unwrap().unwrap();

        // The operator that took the snapshot goes on unchanged...
        let mut same = out.clone();
        same.extend(feed(&mut first, &batches[cut..], true));
        assert_eq!(sorted(&same), sorted(&expected));

        // ...and one restored from it finishes the same way.
        let mut restored = operator();
        restored.set_memory_budget(config(Some(budget), dir.path()));
        restored.restore(&snapshot).unwrap();
        assert!(restored.spill_stats().spills > 0, "a restore spills what does not fit");
        out.extend(feed(&mut restored, &batches[cut..], true));
        assert_eq!(sorted(&out), sorted(&expected));
    }

    /// `SELECT V, COUNT(*) ... GROUP BY <key>` over the keyed input, with `time_keys`
    /// telling which group keys are time keys.
    fn counting(group_exprs: Vec<Arc<dyn PhysicalExpr>>, time_keys: TimeKeys) -> TumblingAggregateOp {
        let input = input_schema();
        let count = AggregateExprBuilder::new(count_udaf(), vec![Arc::new(Column::new("V", 1))])
            .schema(Arc::clone(&input))
            .alias("n")
            .build()
            .unwrap();
        let mut group_fields = Vec::new();
        for (i, e) in group_exprs.iter().enumerate() {
            group_fields.push(Field::new(format!("g{i}"), e.data_type(&input).unwrap(), true));
        }
        let mut output_fields = group_fields.clone();
        output_fields.push(Field::new("n", DataType::Int64, true));
        output_fields.push(Field::new(
            "ROWTIME",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ));
        TumblingAggregateOp::new(
            group_exprs,
            time_keys,
            vec![AggregateSlot::new(Arc::new(count), None).unwrap()],
            input,
            Arc::new(Schema::new(group_fields)),
            Arc::new(Schema::new(output_fields)),
        )
        .unwrap()
    }

    /// (group key V, count, ROWTIME) of every output row.
    fn counts(batches: &[RecordBatch]) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let g = b.column(0).as_primitive::<Int64Type>();
            let n = b.column(b.num_columns() - 2).as_primitive::<Int64Type>();
            let t = rowtime_column(b);
            for i in 0..b.num_rows() {
                out.push((g.value(i), n.value(i), t.value(i)));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_declared_key_closes_on_a_greater_key_and_refuses_one_going_back() {
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        let mut op = counting(vec![v], TimeKeys::Declared(0));
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let batch = crate::operators::test_input::keyed_rows(&[("a", 5, 1_000), ("b", 5, 1_500), ("c", 7, 2_000)]);
        let out = op.on_batch(batch, &mut ctx).unwrap();
        // The row with key 7 closes key 5 and gives it its ROWTIME.
        assert_eq!(counts(&out), vec![(5, 2, 2_000)]);
        // Key 6 goes back: refused, named after MONOTONIC; key 7 goes on.
        let batch = crate::operators::test_input::keyed_rows(&[("d", 6, 2_500), ("e", 7, 3_000)]);
        assert!(op.on_batch(batch, &mut ctx).unwrap().is_empty());
        // A bound closes nothing (later rows may still have key 7), but moves the stamp.
        assert!(op.on_bound(9_000, &mut ctx).unwrap().is_empty());
        let out = op.on_bound(Millis::MAX, &mut ctx).unwrap();
        assert_eq!(counts(&out), vec![(7, 2, 9_000)]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "MonotonicKeyError");
        assert!(errors[0].message.contains("MONOTONIC"), "{}", errors[0].message);
        assert_eq!(errors[0].data_rowtime, 2_500);
    }

    #[test]
    fn a_declared_bucket_survives_a_checkpoint() {
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        let mut op = counting(vec![Arc::clone(&v)], TimeKeys::Declared(0));
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let batch = crate::operators::test_input::keyed_rows(&[("a", 5, 1_000), ("b", 5, 1_500)]);
        op.on_batch(batch, &mut ctx).unwrap();
        let state = op.snapshot().unwrap().unwrap();
        let mut restored = counting(vec![v], TimeKeys::Declared(0));
        restored.restore(&state).unwrap();
        let back = crate::operators::test_input::keyed_rows(&[("x", 4, 1_600)]);
        assert!(restored.on_batch(back, &mut ctx).unwrap().is_empty());
        let out = restored.on_bound(Millis::MAX, &mut ctx).unwrap();
        assert_eq!(counts(&out), vec![(5, 2, 1_500)]);
        assert_eq!(errors.len(), 1, "the restored bucket still knows its key");
    }

    #[test]
    fn the_finest_of_several_rowtime_keys_ends_a_bucket() {
        // ROWTIME floored to 60 s and to 10 s: buckets of 10 s, each stamped with its end.
        let bucket = |width: i64| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(
                Arc::new(CastExpr::new(
                    Arc::new(Column::new("ROWTIME", 2)),
                    DataType::Int64,
                    None,
                )),
                BinaryOp::Divide,
                Arc::new(Literal::new(ScalarValue::Int64(Some(width)))),
            ))
        };
        let mut op = counting(vec![bucket(60_000), bucket(10_000)], TimeKeys::Rowtime(vec![0, 1]));
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let batch = crate::operators::test_input::keyed_rows(&[("a", 1, 61_000), ("b", 1, 65_000), ("c", 1, 71_000)]);
        let out = op.on_batch(batch, &mut ctx).unwrap();
        assert_eq!(counts(&out), vec![(1, 2, 70_000)]);
        // A bound at the 10-second edge closes the bucket, long before the minute ends.
        let out = op.on_bound(80_000, &mut ctx).unwrap();
        assert_eq!(counts(&out), vec![(1, 1, 80_000)]);
        assert!(errors.is_empty());
    }
}
