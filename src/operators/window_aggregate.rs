//! The GROUP BY of a window table function (`TUMBLE`, `HOP`, `CUMULATE`):
//! `GROUP BY window_start, window_end, k...` over the pairs [`super::window_assign`]
//! produced.
//!
//! Unlike the tumbling GROUP BY on ROWTIME, several windows are open at once (hopping
//! and cumulating windows overlap, and allowed lateness keeps a window open after its
//! end). Each open window has its own DataFusion `GroupValues` and one
//! `GroupsAccumulator` per aggregate, kept in a `BTreeMap` ordered by window end, so the
//! windows close in order.
//!
//! ## Time and emission
//!
//! A window closes when the stream's time (ROWTIME of rows, rowtime bounds) reaches
//! `window_end + lateness`; its final result is emitted once, with that instant as
//! ROWTIME (the window's end when no lateness is allowed). With `EARLY_FIRE => i`, at
//! every multiple of `i` of stream time each open window that received rows since its
//! last result emits a partial result: the aggregate so far, with `IS_PARTIAL` true and
//! ROWTIME = the fire instant. Events are processed in time order before any row at or
//! after their instant, so results do not depend on how rows are batched, and ROWTIMEs
//! out of the operator never decrease.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
    new_null_array,
};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use super::eval::eval_isolating;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::time::Millis;

/// What each GROUP BY key of a window aggregate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    WindowStart,
    WindowEnd,
    /// `IS_PARTIAL`: true on early results.
    Partial,
    /// The n-th ordinary key.
    Key(usize),
}

/// The aggregation a window operator runs per window: its ordinary keys, its aggregates
/// and how output rows are laid out (the logical plan's group keys, aggregates, ROWTIME).
/// An aggregate and its optional FILTER (WHERE ...) predicate.
pub type FilteredAggregate = (Arc<AggregateFunctionExpr>, Option<Arc<dyn PhysicalExpr>>);

pub struct WindowAggSpec {
    /// Ordinary keys; a constant when the query has none (DataFusion's `GroupValues`
    /// needs at least one column).
    pub key_exprs: Vec<Arc<dyn PhysicalExpr>>,
    key_schema: SchemaRef,
    dummy_key: bool,
    pub aggregates: Vec<FilteredAggregate>,
    pub roles: Vec<KeyRole>,
    pub output_schema: SchemaRef,
}

/// The evaluated inputs of an aggregation for the rows of one batch.
pub struct AggInputs {
    pub keys: Vec<ArrayRef>,
    pub args: Vec<Vec<ArrayRef>>,
    pub filters: Vec<Option<BooleanArray>>,
}

impl AggInputs {
    fn take(&self, indices: &UInt32Array) -> Result<AggInputs> {
        let t = |a: &ArrayRef| take(a.as_ref(), indices, None).map_err(SluiceError::from);
        Ok(AggInputs {
            keys: self.keys.iter().map(t).collect::<Result<_>>()?,
            args: self
                .args
                .iter()
                .map(|a| a.iter().map(t).collect::<Result<_>>())
                .collect::<Result<_>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| {
                    f.as_ref()
                        .map(|f| Ok(take(f, indices, None)?.as_boolean().clone()))
                        .transpose()
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl WindowAggSpec {
    pub fn new(
        key_exprs: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<DataType>,
        aggregates: Vec<FilteredAggregate>,
        roles: Vec<KeyRole>,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        use datafusion::arrow::datatypes::{Field, Schema};
        for (expr, _) in &aggregates {
            if !expr.groups_accumulator_supported() {
                return Err(SluiceError::Unsupported {
                    line: 0,
                    column: 0,
                    feature: format!("aggregate {} in a window GROUP BY", expr.name()),
                });
            }
        }
        let dummy_key = key_exprs.is_empty();
        let (key_exprs, key_types) = if dummy_key {
            let one: Arc<dyn PhysicalExpr> = Arc::new(datafusion::physical_expr::expressions::Literal::new(
                datafusion::common::ScalarValue::Boolean(Some(true)),
            ));
            (vec![one], vec![DataType::Boolean])
        } else {
            (key_exprs, key_types)
        };
        let key_schema = Arc::new(Schema::new(
            key_types
                .into_iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("k{i}"), t, true))
                .collect::<Vec<_>>(),
        ));
        Ok(WindowAggSpec {
            key_exprs,
            key_schema,
            dummy_key,
            aggregates,
            roles,
            output_schema,
        })
    }

    /// Evaluates keys, aggregate arguments and filters; rows that fail go to
    /// `error_stream` and are left out of the returned batch.
    pub fn inputs(&self, batch: &RecordBatch, ctx: &mut OpContext) -> Result<Option<(RecordBatch, AggInputs)>> {
        let Some((kept, (keys, args, filters))) = eval_isolating(batch, ctx, |b| {
            let n = b.num_rows();
            let keys = self
                .key_exprs
                .iter()
                .map(|e| e.evaluate(b)?.into_array(n))
                .collect::<Result<Vec<_>, _>>()?;
            let mut args = Vec::with_capacity(self.aggregates.len());
            let mut filters = Vec::with_capacity(self.aggregates.len());
            for (expr, filter) in &self.aggregates {
                args.push(
                    expr.expressions()
                        .iter()
                        .map(|e| e.evaluate(b)?.into_array(n))
                        .collect::<Result<Vec<_>, _>>()?,
                );
                filters.push(match filter {
                    Some(f) => Some(
                        f.evaluate(b)?
                            .into_array(n)?
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .cloned()
                            .unwrap_or_else(|| BooleanArray::from(vec![false; n])),
                    ),
                    None => None,
                });
            }
            Ok((keys, args, filters))
        })?
        else {
            return Ok(None);
        };
        Ok(Some((kept, AggInputs { keys, args, filters })))
    }

    /// Output rows of one window from its evaluated keys and aggregates.
    pub fn output(
        &self,
        keys: Vec<ArrayRef>,
        aggregates: Vec<ArrayRef>,
        window: (i64, i64),
        partial: bool,
        rowtime: Millis,
    ) -> Result<RecordBatch> {
        let n = keys.first().map(|k| k.len()).unwrap_or(0);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        for role in &self.roles {
            columns.push(match role {
                KeyRole::WindowStart => Arc::new(TimestampMillisecondArray::from(vec![window.0; n])),
                KeyRole::WindowEnd => Arc::new(TimestampMillisecondArray::from(vec![window.1; n])),
                KeyRole::Partial => Arc::new(BooleanArray::from(vec![partial; n])),
                KeyRole::Key(i) if !self.dummy_key => Arc::clone(&keys[*i]),
                KeyRole::Key(_) => new_null_array(&DataType::Null, n),
            });
        }
        columns.extend(aggregates);
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![rowtime; n])));
        super::eval::conform(&self.output_schema, columns)
    }
}

/// The groups of one window: keys and one grouped accumulator per aggregate.
pub struct GroupedState {
    groups: Box<dyn GroupValues>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    indices: Vec<usize>,
}

impl GroupedState {
    pub fn new(spec: &WindowAggSpec) -> Result<Self> {
        Ok(GroupedState {
            groups: new_group_values(Arc::clone(&spec.key_schema), &GroupOrdering::None)?,
            accumulators: spec
                .aggregates
                .iter()
                .map(|(e, _)| Ok(e.create_groups_accumulator()?))
                .collect::<Result<_>>()?,
            indices: Vec::new(),
        })
    }

    pub fn update(&mut self, inputs: &AggInputs) -> Result<()> {
        if inputs.keys.first().is_none_or(|k| k.is_empty()) {
            return Ok(());
        }
        self.groups.intern(&inputs.keys, &mut self.indices)?;
        let total = self.groups.len();
        for ((acc, args), filter) in self.accumulators.iter_mut().zip(&inputs.args).zip(&inputs.filters) {
            acc.update_batch(args, &self.indices, filter.as_ref(), total)?;
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[ArrayRef], states: &[Vec<ArrayRef>]) -> Result<()> {
        if groups.first().is_none_or(|g| g.is_empty()) {
            return Ok(());
        }
        self.groups.intern(groups, &mut self.indices)?;
        let total = self.groups.len();
        for (acc, state) in self.accumulators.iter_mut().zip(states) {
            acc.merge_batch(state, &self.indices, total)?;
        }
        Ok(())
    }

    /// Takes the group keys and DataFusion's partial state of every aggregate out,
    /// leaving the state empty. (A drained multi-column `GroupValues` keeps a stale hash
    /// table in DataFusion 55, so the drained instances are replaced.)
    fn drain(&mut self, spec: &WindowAggSpec) -> Result<(Vec<ArrayRef>, Vec<Vec<ArrayRef>>)> {
        if self.groups.is_empty() {
            return Ok((vec![], vec![vec![]; self.accumulators.len()]));
        }
        let groups = self.groups.emit(EmitTo::All)?;
        let states = self
            .accumulators
            .iter_mut()
            .map(|a| Ok(a.state(EmitTo::All)?))
            .collect::<Result<Vec<_>>>()?;
        *self = GroupedState::new(spec)?;
        Ok((groups, states))
    }

    /// The keys and aggregates of every group, leaving the state as it was.
    pub fn peek(&mut self, spec: &WindowAggSpec) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let (groups, states) = self.drain(spec)?;
        self.merge(&groups, &states)?;
        let mut copy = GroupedState::new(spec)?;
        copy.merge(&groups, &states)?;
        copy.finish()
    }

    /// The keys and aggregates of every group, consuming the state.
    pub fn finish(mut self) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        if self.groups.is_empty() {
            return Ok((vec![], vec![]));
        }
        let keys = self.groups.emit(EmitTo::All)?;
        let aggregates = self
            .accumulators
            .iter_mut()
            .map(|a| Ok(a.evaluate(EmitTo::All)?))
            .collect::<Result<_>>()?;
        Ok((keys, aggregates))
    }
}

struct OpenWindow {
    state: GroupedState,
    /// Received rows since its last (partial) result.
    dirty: bool,
}

pub struct WindowAggregateOp {
    spec: WindowAggSpec,
    /// Input columns holding the pair's window.
    start_column: usize,
    end_column: usize,
    lateness: i64,
    early_fire: Option<i64>,
    /// Open windows by (end, start): the first closes first.
    windows: BTreeMap<(i64, i64), OpenWindow>,
    /// Every event at or before this instant has been processed.
    now: Millis,
}

impl WindowAggregateOp {
    pub fn new(
        spec: WindowAggSpec,
        start_column: usize,
        end_column: usize,
        lateness: i64,
        early_fire: Option<i64>,
    ) -> Self {
        WindowAggregateOp {
            spec,
            start_column,
            end_column,
            lateness,
            early_fire,
            windows: BTreeMap::new(),
            now: Millis::MIN,
        }
    }

    fn close_time(&self, end: i64) -> Millis {
        end.saturating_add(self.lateness)
    }

    fn next_event(&self) -> Option<Millis> {
        let close = self.windows.keys().next().map(|&(end, _)| self.close_time(end));
        let fire = next_fire(self.early_fire, self.now);
        [close, fire].into_iter().flatten().min()
    }

    /// Emits every event up to and including `t`, in time order.
    fn advance(&mut self, t: Millis) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        loop {
            let close = self.windows.keys().next().map(|&(end, _)| self.close_time(end));
            let dirty = self.windows.values().any(|w| w.dirty);
            let fire = next_fire(self.early_fire, self.now).filter(|_| dirty);
            let Some(at) = [close, fire].into_iter().flatten().min().filter(|at| *at <= t) else {
                break;
            };
            if fire == Some(at) {
                for (&(end, start), w) in self.windows.iter_mut() {
                    if w.dirty && end.saturating_add(self.lateness) > at {
                        let (keys, aggs) = w.state.peek(&self.spec)?;
                        if !keys.is_empty() {
                            out.push(self.spec.output(keys, aggs, (start, end), true, at)?);
                        }
                    }
                    w.dirty = false;
                }
            }
            while let Some(entry) = self.windows.first_entry() {
                let (end, start) = *entry.key();
                if end.saturating_add(self.lateness) > at {
                    break;
                }
                let w = entry.remove();
                let (keys, aggs) = w.state.finish()?;
                if !keys.is_empty() {
                    out.push(self.spec.output(keys, aggs, (start, end), false, at)?);
                }
            }
            self.now = at;
        }
        self.now = self.now.max(t);
        Ok(out)
    }

    fn accumulate(&mut self, rows: &RecordBatch, ctx: &mut OpContext) -> Result<()> {
        let Some((kept, inputs)) = self.spec.inputs(rows, ctx)? else {
            return Ok(());
        };
        if kept.num_rows() == 0 {
            return Ok(());
        }
        let starts = kept
            .column(self.start_column)
            .as_primitive::<TimestampMillisecondType>();
        let ends = kept.column(self.end_column).as_primitive::<TimestampMillisecondType>();
        let mut by_window: BTreeMap<(i64, i64), Vec<u32>> = BTreeMap::new();
        for i in 0..kept.num_rows() {
            by_window
                .entry((ends.value(i), starts.value(i)))
                .or_default()
                .push(i as u32);
        }
        let single = by_window.len() == 1;
        for (window, rows) in by_window {
            let w = match self.windows.entry(window) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(OpenWindow {
                    state: GroupedState::new(&self.spec)?,
                    dirty: false,
                }),
            };
            if single {
                w.state.update(&inputs)?;
            } else {
                w.state.update(&inputs.take(&UInt32Array::from(rows))?)?;
            }
            w.dirty = true;
        }
        Ok(())
    }
}

/// The first multiple of `interval` after `now` (None before any time or without early
/// results).
pub fn next_fire(interval: Option<i64>, now: Millis) -> Option<Millis> {
    let i = interval?;
    (now != Millis::MIN).then(|| (now.div_euclid(i) + 1).saturating_mul(i))
}

/// Runs `accumulate` on the slices of `batch` between events, and the events at each
/// row's time before it: events at an instant come before rows at that instant. A
/// slice also stops at the first row at or after the close of a window an earlier row
/// of the slice opens (`end_column` + `lateness`), so a window never takes rows after
/// its close, whatever the batching.
#[allow(clippy::too_many_arguments)]
pub fn drive<O>(
    op: &mut O,
    batch: &RecordBatch,
    ctx: &mut OpContext,
    end_column: usize,
    lateness: i64,
    advance: impl Fn(&mut O, Millis) -> Result<Vec<RecordBatch>>,
    next_event: impl Fn(&O) -> Option<Millis>,
    mut accumulate: impl FnMut(&mut O, &RecordBatch, &mut OpContext) -> Result<()>,
) -> Result<Vec<RecordBatch>> {
    let rowtimes = rowtime_column(batch).values();
    let ends = batch
        .column(end_column)
        .as_primitive::<TimestampMillisecondType>()
        .values();
    let n = rowtimes.len();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < n {
        out.extend(advance(op, rowtimes[pos])?);
        // every event up to rowtimes[pos] is done, so the next one is later
        let mut limit = next_event(op).unwrap_or(Millis::MAX);
        let mut end = pos;
        while end < n && (end == pos || rowtimes[end] < limit) {
            limit = limit.min(ends[end].saturating_add(lateness));
            end += 1;
        }
        accumulate(op, &batch.slice(pos, end - pos), ctx)?;
        pos = end;
    }
    Ok(out)
}

impl Operator for WindowAggregateOp {
    fn name(&self) -> &'static str {
        "WindowAggregate"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let (end_column, lateness) = (self.end_column, self.lateness);
        drive(
            self,
            &batch,
            ctx,
            end_column,
            lateness,
            |op, t| op.advance(t),
            |op| op.next_event(),
            |op, rows, ctx| op.accumulate(rows, ctx),
        )
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.advance(bound)
    }

    /// `[now]`, then per open window `[start, end, dirty]`, its group keys and each
    /// aggregate's partial state (drained and merged straight back).
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let mut sections: Vec<Vec<ArrayRef>> = vec![vec![Arc::new(Int64Array::from(vec![self.now]))]];
        for (&(end, start), w) in self.windows.iter_mut() {
            let (groups, states) = w.state.drain(&self.spec)?;
            w.state.merge(&groups, &states)?;
            sections.push(vec![Arc::new(Int64Array::from(vec![start, end, w.dirty as i64]))]);
            sections.push(groups);
            sections.extend(states);
        }
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let corrupt = || SluiceError::runtime("corrupt window-aggregate state");
        let sections = crate::state::snapshot::decode(state)?;
        let (head, rest) = sections.split_first().ok_or_else(corrupt)?;
        self.now = head.first().ok_or_else(corrupt)?.as_primitive::<Int64Type>().value(0);
        let width = 2 + self.spec.aggregates.len();
        if rest.len() % width != 0 {
            return Err(corrupt());
        }
        for chunk in rest.chunks(width) {
            let meta = chunk[0].first().ok_or_else(corrupt)?.as_primitive::<Int64Type>();
            let (start, end, dirty) = (meta.value(0), meta.value(1), meta.value(2) != 0);
            let mut state = GroupedState::new(&self.spec)?;
            state.merge(&chunk[1], &chunk[2..])?;
            self.windows.insert((end, start), OpenWindow { state, dirty });
        }
        Ok(())
    }
}

/// The input schema's timestamp type, for the planner's checks.
pub fn is_timestamp(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(TimeUnit::Millisecond, _))
}

#[cfg(test)]
pub(crate) mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::{count::count_udaf, sum::sum_udaf};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::operators::window_assign::{AssignMode, WindowAssignOp, WindowKind};

    pub fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    /// Pairs as the assign operator emits them: K, V, WINDOW_START, WINDOW_END,
    /// IS_PARTIAL, ROWTIME.
    pub fn pair_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new("WINDOW_START", ts(), true),
            Field::new("WINDOW_END", ts(), true),
            Field::new("IS_PARTIAL", DataType::Boolean, true),
            Field::new("ROWTIME", ts(), false),
        ]))
    }

    /// `SELECT window_start, window_end, is_partial, K, COUNT(*), SUM(V) ... GROUP BY
    /// window_start, window_end, is_partial, K`.
    pub fn spec() -> WindowAggSpec {
        let input = pair_schema();
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        let aggregates = [(count_udaf(), "n"), (sum_udaf(), "s")]
            .into_iter()
            .map(|(f, name)| {
                let e = AggregateExprBuilder::new(f, vec![Arc::clone(&v)])
                    .schema(Arc::clone(&input))
                    .alias(name)
                    .build()
                    .unwrap();
                (Arc::new(e), None)
            })
            .collect();
        let output = Arc::new(Schema::new(vec![
            Field::new("WINDOW_START", ts(), true),
            Field::new("WINDOW_END", ts(), true),
            Field::new("IS_PARTIAL", DataType::Boolean, true),
            Field::new("K", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Int64, true),
            Field::new("ROWTIME", ts(), false),
        ]));
        WindowAggSpec::new(
            vec![Arc::new(Column::new("K", 0))],
            vec![DataType::Utf8],
            aggregates,
            vec![
                KeyRole::WindowStart,
                KeyRole::WindowEnd,
                KeyRole::Partial,
                KeyRole::Key(0),
            ],
            output,
        )
        .unwrap()
    }

    pub use crate::operators::test_input::keyed_rows as rows;

    pub fn assign(kind: WindowKind, lateness: i64) -> WindowAssignOp {
        WindowAssignOp::new(
            kind,
            2,
            vec![0, 1],
            lateness,
            true,
            AssignMode::OnTime { late_to_errors: true },
            pair_schema(),
        )
    }

    /// (start, end, partial, K, n, s, ROWTIME) of every output row, in output order.
    pub type OutRow = (i64, i64, bool, String, i64, i64, i64);

    pub fn out_rows(batches: &[RecordBatch]) -> Vec<OutRow> {
        let mut out = Vec::new();
        for b in batches {
            let t = |c: usize| b.column(c).as_primitive::<TimestampMillisecondType>().clone();
            let (s, e, rt) = (t(0), t(1), t(6));
            let p = b.column(2).as_boolean();
            let k = b.column(3).as_string::<i32>();
            let n = b.column(4).as_primitive::<Int64Type>();
            let sum = b.column(5).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.push((
                    s.value(i),
                    e.value(i),
                    p.value(i),
                    k.value(i).to_string(),
                    n.value(i),
                    sum.value(i),
                    rt.value(i),
                ));
            }
        }
        out
    }

    /// Feeds batches of (K, V, ROWTIME) through assign + aggregate, then a final bound.
    fn run(
        kind: WindowKind,
        lateness: i64,
        early: Option<i64>,
        batches: &[Vec<(&str, i64, i64)>],
        end: Millis,
    ) -> Vec<OutRow> {
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut a = assign(kind, lateness);
        let mut g = WindowAggregateOp::new(spec(), 2, 3, lateness, early);
        let mut out = Vec::new();
        for b in batches {
            for pairs in a.on_batch(rows(b), &mut ctx).unwrap() {
                out.extend(g.on_batch(pairs, &mut ctx).unwrap());
            }
        }
        out.extend(g.on_bound(end, &mut ctx).unwrap());
        out_rows(&out)
    }

    fn row(s: i64, e: i64, p: bool, k: &str, n: i64, sum: i64, rt: i64) -> OutRow {
        (s, e, p, k.to_string(), n, sum, rt)
    }

    #[test]
    fn tumble_emits_each_window_once_at_its_end_with_half_open_bounds() {
        let kind = WindowKind::Tumble { size: 10, offset: 0 };
        let input = vec![
            vec![("a", 1, 0), ("a", 2, 9), ("b", 4, 9), ("a", 8, 10)],
            vec![("a", 16, 25)],
        ];
        let out = run(kind, 0, None, &input, Millis::MAX);
        assert_eq!(
            out,
            vec![
                row(0, 10, false, "a", 2, 3, 10),
                row(0, 10, false, "b", 1, 4, 10),
                row(10, 20, false, "a", 1, 8, 20),
                row(20, 30, false, "a", 1, 16, 30),
            ]
        );
        // batching does not matter
        let single: Vec<Vec<_>> = input.concat().into_iter().map(|r| vec![r]).collect();
        assert_eq!(run(kind, 0, None, &single, Millis::MAX), out);
    }

    #[test]
    fn hop_windows_overlap_and_close_in_end_order() {
        let kind = WindowKind::Hop {
            slide: 5,
            size: 10,
            offset: 0,
        };
        let out = run(kind, 0, None, &[vec![("a", 1, 3), ("a", 10, 7), ("a", 100, 12)]], 20);
        assert_eq!(
            out,
            vec![
                row(-5, 5, false, "a", 1, 1, 5),
                row(0, 10, false, "a", 2, 11, 10),
                row(5, 15, false, "a", 2, 110, 15),
                row(10, 20, false, "a", 1, 100, 20),
            ]
        );
    }

    #[test]
    fn cumulate_windows_share_a_start() {
        let kind = WindowKind::Cumulate { step: 10, max_size: 30 };
        let out = run(kind, 0, None, &[vec![("a", 1, 5), ("a", 2, 15), ("a", 4, 35)]], 40);
        assert_eq!(
            out,
            vec![
                row(0, 10, false, "a", 1, 1, 10),
                row(0, 20, false, "a", 2, 3, 20),
                row(0, 30, false, "a", 2, 3, 30),
                row(30, 40, false, "a", 1, 4, 40),
            ]
        );
    }

    #[test]
    fn lateness_delays_the_close_and_early_fire_emits_marked_partials() {
        let kind = WindowKind::Tumble { size: 10, offset: 0 };
        // window [0, 10) closes at 15; fires every 4: 4, 8, 12
        let input = vec![vec![("a", 1, 1), ("a", 2, 2), ("a", 3, 6), ("a", 5, 13)]];
        let out = run(kind, 5, Some(4), &input, 30);
        assert_eq!(
            out,
            vec![
                row(0, 10, true, "a", 2, 3, 4),
                row(0, 10, true, "a", 3, 6, 8),
                // at 12 nothing changed; the row at 13 is [10, 20)
                row(0, 10, false, "a", 3, 6, 15),
                row(10, 20, true, "a", 1, 5, 16),
                row(10, 20, false, "a", 1, 5, 25),
            ]
        );
    }

    #[test]
    fn a_restored_snapshot_finishes_the_same_way() {
        let kind = WindowKind::Hop {
            slide: 5,
            size: 15,
            offset: 0,
        };
        let first: Vec<(&str, i64, i64)> = (0..40).map(|i| (if i % 3 == 0 { "a" } else { "b" }, i, i)).collect();
        let second: Vec<(&str, i64, i64)> = (40..80).map(|i| (if i % 2 == 0 { "a" } else { "c" }, i, i)).collect();
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut a = assign(kind, 3);
        let mut g = WindowAggregateOp::new(spec(), 2, 3, 3, Some(7));
        let mut out = Vec::new();
        for p in a.on_batch(rows(&first), &mut ctx).unwrap() {
            out.extend(g.on_batch(p, &mut ctx).unwrap());
        }
        let snapshot = g.snapshot().unwrap().unwrap();
        let mut restored = WindowAggregateOp::new(spec(), 2, 3, 3, Some(7));
        restored.restore(&snapshot).unwrap();
        let mut a2 = assign(kind, 3);
        a2.restore(&a.snapshot().unwrap().unwrap()).unwrap();
        let (mut tail1, mut tail2) = (Vec::new(), Vec::new());
        for p in a.on_batch(rows(&second), &mut ctx).unwrap() {
            tail1.extend(g.on_batch(p, &mut ctx).unwrap());
        }
        for p in a2.on_batch(rows(&second), &mut ctx).unwrap() {
            tail2.extend(restored.on_batch(p, &mut ctx).unwrap());
        }
        tail1.extend(g.on_bound(Millis::MAX, &mut ctx).unwrap());
        tail2.extend(restored.on_bound(Millis::MAX, &mut ctx).unwrap());
        assert!(!tail1.is_empty());
        assert_eq!(out_rows(&tail1), out_rows(&tail2));
    }
}
