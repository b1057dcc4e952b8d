//! Tumbling windows: a streaming `GROUP BY` whose keys include a monotonic expression
//! of ROWTIME (`STEP(ROWTIME BY ...)`, `FLOOR(ROWTIME TO ...)`, or any expression of
//! ROWTIME alone such as the `(ROWTIME - epoch) SECOND / 10` idiom).
//!
//! Because ROWTIME never decreases, exactly one bucket is open at a time: every group
//! of the open bucket lives in one DataFusion `GroupValues` and one `GroupsAccumulator`
//! per aggregate (vectorised, as DataFusion's own hash aggregate). When a row of a
//! later bucket or a rowtime bound at or past the bucket's end arrives, all groups are
//! emitted at once with ROWTIME = the bucket's end (A1) and the state is cleared.
//!
//! The bucket's end is found from the key expression itself: the first instant after
//! the bucket's first row at which the key changes (an exponential then binary search,
//! once per bucket). This works for every monotonic bucketing expression without
//! knowing its shape.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, new_null_array,
};
use datafusion::arrow::compute::partition;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::eval::eval_isolating;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::time::Millis;

/// One aggregate of the select list, with its grouped accumulator.
pub struct AggregateSlot {
    pub expr: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    accumulator: Box<dyn GroupsAccumulator>,
}

impl AggregateSlot {
    pub fn new(expr: Arc<AggregateFunctionExpr>, filter: Option<Arc<dyn PhysicalExpr>>) -> Result<Self> {
        if !expr.groups_accumulator_supported() {
            return Err(SluiceError::Unsupported {
                line: 0,
                column: 0,
                feature: format!("aggregate {} in a streaming GROUP BY", expr.name()),
            });
        }
        let accumulator = expr.create_groups_accumulator()?;
        Ok(AggregateSlot {
            expr,
            filter,
            accumulator,
        })
    }
}

struct OpenBucket {
    key: ScalarValue,
    end: Millis,
}

pub struct TumblingAggregateOp {
    /// All grouping expressions, in the order of the logical plan's output.
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Which of them is the monotonic ROWTIME bucket.
    time_key: usize,
    /// Input columns the time key reads (all ROWTIME-valued): set to probe times when
    /// searching for a bucket's end.
    time_columns: Vec<usize>,
    aggregates: Vec<AggregateSlot>,
    group_values: Box<dyn GroupValues>,
    group_schema: SchemaRef,
    group_indices: Vec<usize>,
    input_schema: SchemaRef,
    /// Group columns, aggregate columns, ROWTIME.
    output_schema: SchemaRef,
    open: Option<OpenBucket>,
}

impl TumblingAggregateOp {
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        time_key: usize,
        aggregates: Vec<AggregateSlot>,
        input_schema: SchemaRef,
        group_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let time_columns = datafusion::physical_expr::utils::collect_columns(&group_exprs[time_key])
            .iter()
            .map(|c| c.index())
            .collect();
        let group_values = new_group_values(Arc::clone(&group_schema), &GroupOrdering::None)?;
        Ok(TumblingAggregateOp {
            group_exprs,
            time_key,
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

    /// Evaluates the time key for probe instants.
    fn keys_at(&self, times: &[Millis]) -> Result<ArrayRef> {
        let n = times.len();
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(times.to_vec()));
        let last = self.input_schema.fields().len() - 1;
        let columns: Vec<ArrayRef> = self
            .input_schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i == last || self.time_columns.contains(&i) {
                    datafusion::arrow::compute::cast(&times, f.data_type()).map_err(SluiceError::from)
                } else {
                    Ok(new_null_array(f.data_type(), n))
                }
            })
            .collect::<Result<_>>()?;
        let probe = RecordBatch::try_new(Arc::clone(&self.input_schema), columns)?;
        Ok(self.group_exprs[self.time_key].evaluate(&probe)?.into_array(n)?)
    }

    /// The first instant after `t0` whose bucket key differs from `key`.
    fn bucket_end(&self, key: &ScalarValue, t0: Millis) -> Result<Millis> {
        let differs = |arr: &ArrayRef, i: usize| -> Result<bool> { Ok(&ScalarValue::try_from_array(arr, i)? != key) };
        let steps: Vec<Millis> = (0..46).map(|p| t0.saturating_add(1i64 << p)).collect();
        let keys = self.keys_at(&steps)?;
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
        let (kept, (keys, values, filters)) = eval_isolating(rows, ctx, |b| {
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
        })?;
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

    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        let Some(open) = self.open.take() else { return Ok(None) };
        if self.group_values.is_empty() {
            return Ok(None);
        }
        let mut columns = self.drain_groups()?;
        let n = columns.first().map(|c| c.len()).unwrap_or(0);
        for slot in &mut self.aggregates {
            columns.push(slot.accumulator.evaluate(EmitTo::All)?);
        }
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![open.end; n])));
        Ok(Some(super::eval::conform(&self.output_schema, columns)?))
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

    /// The open bucket (key, end), its group keys, and each aggregate's partial state
    /// (DataFusion's own state layout, the one its merge phase reads).
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(open) = &self.open else { return Ok(None) };
        let bucket = vec![
            open.key.to_array()?,
            Arc::new(Int64Array::from(vec![open.end])) as ArrayRef,
        ];
        // DataFusion's grouped accumulators can only hand their state over by draining
        // it: drain, keep a copy, and merge it straight back.
        let groups = self.drain_groups()?;
        let states = self
            .aggregates
            .iter_mut()
            .map(|s| s.accumulator.state(EmitTo::All))
            .collect::<Result<Vec<_>, _>>()?;
        self.reload(&groups, &states)?;
        let mut sections = vec![bucket, groups];
        sections.extend(states);
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let [bucket, groups, states @ ..] = sections.as_slice() else {
            return Err(SluiceError::runtime("corrupt tumbling-window state"));
        };
        let key = ScalarValue::try_from_array(&bucket[0], 0)?;
        let end = bucket[1].as_primitive::<Int64Type>().value(0);
        self.open = Some(OpenBucket { key, end });
        self.reload(groups, states)
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let n = batch.num_rows();
        if n == 0 {
            return Ok(out);
        }
        let keys = self.group_exprs[self.time_key].evaluate(&batch)?.into_array(n)?;
        let rowtimes = rowtime_column(&batch).clone();
        for range in partition(&[Arc::clone(&keys)])?.ranges() {
            let key = ScalarValue::try_from_array(&keys, range.start)?;
            if self.open.as_ref().is_some_and(|o| o.key != key) {
                out.extend(self.emit()?);
            }
            if self.open.is_none() {
                let end = self.bucket_end(&key, rowtimes.value(range.start))?;
                self.open = Some(OpenBucket { key, end });
            }
            self.accumulate(&batch.slice(range.start, range.end - range.start), ctx)?;
        }
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self
            .open
            .as_ref()
            .is_some_and(|o| bound >= o.end || bound == Millis::MAX)
        {
            return Ok(self.emit()?.into_iter().collect());
        }
        Ok(vec![])
    }
}
