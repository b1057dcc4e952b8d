//! Stagger windows (`WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL n)`): one window
//! per partition key, opened by the key's first row at that row's ROWTIME t0, holding
//! the key's rows with ROWTIME in [t0, t0 + n) (A3), emitted once at t0 + n with that
//! ROWTIME, and reopened by the key's next row after that.
//!
//! Windows of different keys close at different times, so each open window has its own
//! DataFusion `Accumulator` per aggregate (a grouped accumulator can only emit its first
//! groups). Rows are still fed in vectors: each run of equal ROWTIME is split by key and
//! every key's rows go to its accumulators in one call.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{partition, take};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use super::eval::eval_isolating;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::time::Millis;

struct Window {
    key_values: Vec<ScalarValue>,
    close: Millis,
    accumulators: Vec<Box<dyn Accumulator>>,
}

pub struct StaggerAggregateOp {
    /// Partition keys (the grouping expressions other than the stagger marker).
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Position of the marker column among the grouping columns of the output.
    marker_at: usize,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    range_ms: Millis,
    converter: RowConverter,
    open: HashMap<OwnedRow, Window>,
    /// (close time, key) of every open window, soonest first.
    closing: BTreeSet<(Millis, OwnedRow)>,
    output_schema: SchemaRef,
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
        let converter = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        Ok(StaggerAggregateOp {
            keys,
            marker_at,
            aggregates,
            range_ms,
            converter,
            open: HashMap::new(),
            closing: BTreeSet::new(),
            output_schema,
        })
    }

    /// Emits every window that closes at or before `t`, soonest first.
    fn close_until(&mut self, t: Millis) -> Result<Option<RecordBatch>> {
        let mut rows: Vec<(Vec<ScalarValue>, Vec<ScalarValue>, Millis)> = Vec::new();
        while let Some((close, key)) = self.closing.first().cloned() {
            if close > t {
                break;
            }
            self.closing.pop_first();
            if let Some(mut w) = self.open.remove(&key) {
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
        let (kept, (keys, args)) = eval_isolating(rows, ctx, |b| {
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
        })?;
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
                self.open.insert(
                    key.clone(),
                    Window {
                        key_values,
                        close,
                        accumulators,
                    },
                );
            }
            let window = self.open.get_mut(&key).expect("opened above");
            for (acc, agg_args) in window.accumulators.iter_mut().zip(&args) {
                let values = agg_args
                    .iter()
                    .map(|a| take(a, &indices, None))
                    .collect::<Result<Vec<_>, _>>()?;
                acc.update_batch(&values)?;
            }
        }
        Ok(())
    }
}

impl Operator for StaggerAggregateOp {
    fn name(&self) -> &'static str {
        "StaggerAggregate"
    }

    /// Every open window, soonest to close first: its key values, close time, and
    /// each aggregate's partial state.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        if self.open.is_empty() {
            return Ok(None);
        }
        let order: Vec<OwnedRow> = self.closing.iter().map(|(_, k)| k.clone()).collect();
        let mut windows = Vec::with_capacity(order.len());
        for key in &order {
            let w = self.open.get_mut(key).expect("every closing entry has a window");
            let states = w
                .accumulators
                .iter_mut()
                .map(|a| a.state())
                .collect::<Result<Vec<_>, _>>()?;
            windows.push((w.key_values.clone(), w.close, states));
        }
        let n_keys = self.keys.len();
        let keys = (0..n_keys)
            .map(|i| ScalarValue::iter_to_array(windows.iter().map(|w| w.0[i].clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let closes: ArrayRef = Arc::new(Int64Array::from(windows.iter().map(|w| w.1).collect::<Vec<_>>()));
        let mut sections = vec![keys, vec![closes]];
        for j in 0..self.aggregates.len() {
            let fields = windows[0].2[j].len();
            sections.push(
                (0..fields)
                    .map(|k| ScalarValue::iter_to_array(windows.iter().map(|w| w.2[j][k].clone())))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let [keys, closes, states @ ..] = sections.as_slice() else {
            return Err(SluiceError::runtime("corrupt stagger-window state"));
        };
        let closes = closes[0].as_primitive::<Int64Type>();
        let rows = self.converter.convert_columns(keys)?;
        for w in 0..closes.len() {
            let key = rows.row(w).owned();
            let key_values = keys
                .iter()
                .map(|k| ScalarValue::try_from_array(k, w))
                .collect::<Result<Vec<_>, _>>()?;
            let mut accumulators = Vec::with_capacity(self.aggregates.len());
            for (agg, state) in self.aggregates.iter().zip(states) {
                let mut acc = agg.create_accumulator()?;
                let slices: Vec<ArrayRef> = state.iter().map(|a| a.slice(w, 1)).collect();
                acc.merge_batch(&slices)?;
                accumulators.push(acc);
            }
            let close = closes.value(w);
            self.closing.insert((close, key.clone()));
            self.open.insert(
                key,
                Window {
                    key_values,
                    close,
                    accumulators,
                },
            );
        }
        Ok(())
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        if batch.num_rows() == 0 {
            return Ok(out);
        }
        let rowtimes: ArrayRef = Arc::new(rowtime_column(&batch).clone());
        for range in partition(&[Arc::clone(&rowtimes)])?.ranges() {
            let t = rowtime_column(&batch).value(range.start);
            // [t0, t0 + n): a row at exactly t0 + n closes the window before it counts
            out.extend(self.close_until(t)?);
            self.add_run(&batch.slice(range.start, range.end - range.start), t, ctx)?;
        }
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        Ok(self.close_until(bound)?.into_iter().collect())
    }
}
