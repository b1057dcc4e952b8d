//! Planning stream-to-stream windowed joins (`FROM a JOIN b OVER (RANGE ...) AS t ON ...`).
//!
//! The window travels from the text to the operator in three steps, so DataFusion plans
//! the join itself (names, types, the ON condition) like any other:
//! 1. `dialect::tokens` moves `OVER (...)` / `OVER w` after the table's alias, as a table
//!    hint `WITH (SLUICE_JOIN_WINDOW() OVER (...))`, which sqlparser parses (window spec
//!    included);
//! 2. [`windows_into_conditions`] takes the hint out of the AST (resolving a named window
//!    from the query's WINDOW clause) and adds `sluice_join_window('LEFT'|'RIGHT',
//!    'RANGE'|'ROWS', size)` to the join's ON condition, a marker that always holds;
//! 3. [`lower_stream_join`] takes the markers out of the planned join's condition again
//!    and builds a [`StreamJoinOp`].
//!
//! The operator reads one internal stream, `<pump>#JOIN1`, which two generated pumps fill
//! (one per side: the side's own operators, then a [`JoinFeedOp`]); its hub merges them in
//! ROWTIME order. [`plan_feeds`] plans those pumps. Joins of more streams are left-deep
//! chains: in `a JOIN b OVER (...) ON ... JOIN c OVER (...) ON ...` the join with `c`
//! reads `<pump>#JOIN1`, whose left pump runs the join of `a` and `b` over `<pump>#JOIN2`.
//!
//! Without a window, an equality of the sides' ROWTIMEs (`ON a.ROWTIME = b.ROWTIME`, or
//! `FROM a, b WHERE a.ROWTIME = b.ROWTIME`: [`where_into_joins`] makes an inner join's
//! WHERE part of its condition) joins the rows of one instant ([`JoinWindow::SameInstant`]).

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, Join, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, JoinConstraint, JoinOperator, NamedWindowDefinition, NamedWindowExpr, Query, Select, SetExpr,
    TableFactor, Value, VisitMut, VisitorMut, WindowFrameBound, WindowFrameUnits, WindowSpec, WindowType,
};

use super::catalog::{Catalog, RelationKind};
use super::lower::{self, At, Lowered};
use super::{PumpPlan, StreamDecl};
use crate::dialect::PumpStatement;
use crate::error::Result;
use crate::operators::pipeline::Pipeline;
use crate::operators::stream_join::{JoinFeedOp, JoinWindow, Side, SideSpec, StreamJoinOp, feed_schema};

/// The name of the hint function (dialect) and of the marker UDF (planner).
pub const WINDOW_MARKER: &str = "sluice_join_window";
/// The source a lowered stream join reads until [`plan_feeds`] names its feed stream.
pub const FEED_PLACEHOLDER: &str = "#JOIN";

/// `sluice_join_window(side, units, size)`: true; it only carries a join side's window
/// from the query text to the lowering.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JoinWindowMarker {
    signature: Signature,
}

impl ScalarUDFImpl for JoinWindowMarker {
    fn name(&self) -> &str {
        WINDOW_MARKER
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
    }
}

pub fn marker_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(JoinWindowMarker {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// Moves every join window hint of `query` (and its subqueries) into its join's ON
/// condition as a marker.
pub fn windows_into_conditions(query: &mut Query, at: At) -> Result<()> {
    struct Mover {
        at: At,
        error: Option<crate::SluiceError>,
    }
    impl VisitorMut for Mover {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            match in_set_expr(&mut query.body, self.at) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    self.error = Some(e);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut mover = Mover { at, error: None };
    let _ = query.visit(&mut mover);
    mover.error.map_or(Ok(()), Err)
}

fn in_set_expr(body: &mut SetExpr, at: At) -> Result<()> {
    match body {
        SetExpr::Select(select) => in_select(select, at),
        SetExpr::SetOperation { left, right, .. } => {
            in_set_expr(left, at)?;
            in_set_expr(right, at)
        }
        _ => Ok(()),
    }
}

fn in_select(select: &mut Select, at: At) -> Result<()> {
    let named = select.named_window.clone();
    for table in &mut select.from {
        let mut first = take_hint(&mut table.relation, &named, at)?;
        if first.is_some() && table.joins.is_empty() {
            return Err(at.error("a window (OVER) on a stream belongs to a join: FROM a JOIN b OVER (...) ON ..."));
        }
        for join in &mut table.joins {
            let right = take_hint(&mut join.relation, &named, at)?;
            let mut markers = Vec::new();
            if let Some((units, size)) = first.take() {
                markers.push(marker("LEFT", units, size));
            }
            if let Some((units, size)) = right {
                markers.push(marker("RIGHT", units, size));
            }
            let Some(markers) = markers.into_iter().reduce(and) else {
                continue;
            };
            add_to_condition(&mut join.join_operator, markers, at)?;
        }
    }
    Ok(())
}

fn and(a: ast::Expr, b: ast::Expr) -> ast::Expr {
    ast::Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    }
}

fn marker(side: &str, units: &str, size: ast::Expr) -> ast::Expr {
    let text = |s: &str| ast::Expr::Value(Value::SingleQuotedString(s.to_string()).into());
    crate::dialect::normalize::call(WINDOW_MARKER, vec![text(side), text(units), size])
}

fn add_to_condition(operator: &mut JoinOperator, markers: ast::Expr, at: At) -> Result<()> {
    if let JoinOperator::CrossJoin(c) = operator {
        // A windowed CROSS JOIN pairs every row with the whole window: an inner join
        // whose condition is only the window.
        *operator = JoinOperator::Inner(c.clone());
    }
    let constraint = match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => c,
        _ => {
            return Err(at.unsupported(
                "this kind of windowed join (use [INNER] JOIN, LEFT, RIGHT or FULL [OUTER] JOIN, or CROSS JOIN)",
            ));
        }
    };
    match constraint {
        JoinConstraint::On(e) => *e = and(ast::Expr::Nested(Box::new(e.clone())), markers),
        JoinConstraint::None => *constraint = JoinConstraint::On(markers),
        JoinConstraint::Using(_) | JoinConstraint::Natural => {
            return Err(at.unsupported("USING / NATURAL in a windowed stream join (write ON a.k = b.k)"));
        }
    }
    Ok(())
}

/// Takes a join window hint off a table, as (units, size).
fn take_hint(
    factor: &mut TableFactor,
    named: &[NamedWindowDefinition],
    at: At,
) -> Result<Option<(&'static str, ast::Expr)>> {
    let TableFactor::Table { with_hints, .. } = factor else {
        return Ok(None);
    };
    let is_hint =
        |e: &ast::Expr| matches!(e, ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(WINDOW_MARKER));
    let Some(position) = with_hints.iter().position(is_hint) else {
        return Ok(None);
    };
    let ast::Expr::Function(f) = with_hints.remove(position) else {
        unreachable!("matched above")
    };
    let spec = match f.over {
        Some(WindowType::WindowSpec(spec)) => spec,
        Some(WindowType::NamedWindow(name)) => resolve(&name.value, named, at)?,
        None => return Err(at.error("a join window needs OVER (...)")),
    };
    window_of(&spec, at).map(Some)
}

fn resolve(name: &str, named: &[NamedWindowDefinition], at: At) -> Result<WindowSpec> {
    let mut name = name.to_string();
    // A named window may be defined as another name (`WINDOW w2 AS w1`).
    for _ in 0..=named.len() {
        let Some(NamedWindowDefinition(_, def)) = named.iter().find(|d| d.0.value == name) else {
            return Err(at.error(format!(
                "the join window {name} is not defined in the query's WINDOW clause"
            )));
        };
        match def {
            NamedWindowExpr::WindowSpec(spec) => return Ok(spec.clone()),
            NamedWindowExpr::NamedWindow(other) => name = other.value.clone(),
        }
    }
    Err(at.error(format!("the join window {name} is defined in a cycle")))
}

/// The units and size of a join window: `RANGE <interval> PRECEDING` or `ROWS n PRECEDING`.
fn window_of(spec: &WindowSpec, at: At) -> Result<(&'static str, ast::Expr)> {
    // A stream is in ROWTIME order: `ORDER BY ROWTIME` (which normalisation adds to
    // every window) says nothing more.
    let by_rowtime = |o: &ast::OrderByExpr| {
        o.options.asc != Some(false)
            && match &o.expr {
                ast::Expr::Identifier(i) => i.value == crate::types::ROWTIME,
                ast::Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|i| i.value == crate::types::ROWTIME),
                _ => false,
            }
    };
    if !spec.partition_by.is_empty() || !spec.order_by.iter().all(by_rowtime) {
        return Err(at.unsupported("PARTITION BY or ORDER BY in a join window"));
    }
    let Some(frame) = &spec.window_frame else {
        return Err(at.error("a join window needs RANGE INTERVAL 'n' unit PRECEDING or ROWS n PRECEDING"));
    };
    if !matches!(frame.end_bound, None | Some(WindowFrameBound::CurrentRow)) {
        return Err(at.unsupported("a join window that does not end at the current row (FOLLOWING)"));
    }
    let units = match frame.units {
        WindowFrameUnits::Range => "RANGE",
        WindowFrameUnits::Rows => "ROWS",
        WindowFrameUnits::Groups => return Err(at.unsupported("GROUPS in a join window")),
    };
    let size = match &frame.start_bound {
        WindowFrameBound::Preceding(Some(size)) => size.as_ref().clone(),
        WindowFrameBound::CurrentRow => ast::Expr::Value(Value::Number("0".into(), false).into()),
        WindowFrameBound::Preceding(None) => return Err(at.unsupported("an unbounded join window")),
        WindowFrameBound::Following(_) => {
            return Err(at.unsupported("a join window that does not end at the current row (FOLLOWING)"));
        }
    };
    Ok((units, size))
}

/// The windows the markers of a join's condition carry (left, right), and the
/// condition without them.
fn take_windows(condition: Option<Expr>, at: At) -> Result<([Option<JoinWindow>; 2], Option<Expr>)> {
    let mut windows = [None, None];
    let mut rest = Vec::new();
    let Some(condition) = condition else {
        return Ok((windows, None));
    };
    for part in split_conjunction(&condition) {
        let Expr::ScalarFunction(f) = part else {
            rest.push(part.clone());
            continue;
        };
        if f.name() != WINDOW_MARKER {
            rest.push(part.clone());
            continue;
        }
        let literal = |i: usize| match f.args.get(i) {
            Some(Expr::Literal(v, _)) => Some(v.clone()),
            _ => None,
        };
        let text = |i: usize| match literal(i) {
            Some(ScalarValue::Utf8(Some(s))) => s,
            _ => String::new(),
        };
        let size = literal(2).ok_or_else(|| at.error("a join window's size must be a literal"))?;
        let window = match text(1).as_str() {
            "RANGE" => match &size {
                ScalarValue::Int64(Some(0)) => JoinWindow::Range(0),
                v => match crate::functions::common::scalar_interval_millis(v) {
                    Ok(Some(ms)) if ms >= 0 => JoinWindow::Range(ms),
                    _ => return Err(at.error("a RANGE join window needs INTERVAL 'n' unit PRECEDING (n ≥ 0)")),
                },
            },
            _ => match size.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(n))) if n >= 0 => JoinWindow::Rows(n as u64),
                _ => return Err(at.error("a ROWS join window needs ROWS n PRECEDING with an integer n ≥ 0")),
            },
        };
        let side = if text(0) == "LEFT" { 0 } else { 1 };
        windows[side] = Some(window);
    }
    Ok((windows, conjunction(rest)))
}

/// A stream join's condition taken apart: the equalities between the sides (the keys),
/// each side's window, and the rest of the condition.
struct JoinShape {
    on: Vec<(Expr, Expr)>,
    windows: [Option<JoinWindow>; 2],
    rest: Option<Expr>,
}

/// Takes a stream join's condition apart. Without a window, an equality of the two
/// sides' ROWTIMEs (`a.ROWTIME = b.ROWTIME`) makes it a join of the rows of one instant
/// (a window of zero width on both sides); the equality is then no key.
fn shape_of(join: &Join, catalog: &Catalog, at: At) -> Result<JoinShape> {
    let (on, rest) = lower::split_equijoin(join);
    let (windows, rest) = take_windows(rest, at)?;
    if windows != [None, None] {
        return Ok(JoinShape { on, windows, rest });
    }
    let (same_instant, on): (Vec<_>, Vec<_>) = on
        .into_iter()
        .partition(|(l, r)| carries_row_time(l, &join.left, catalog) && carries_row_time(r, &join.right, catalog));
    let windows = if same_instant.is_empty() {
        [None, None]
    } else {
        [Some(JoinWindow::SameInstant); 2]
    };
    Ok(JoinShape { on, windows, rest })
}

/// Whether `e` is a column that holds the ROWTIME of every row of `plan`, so that
/// equating two of them joins rows of one instant: a stream's own ROWTIME, also through
/// aliases, filters and projections, and through a join the ROWTIME of the side whose
/// rows set the joined row's ROWTIME (the driving side, or either side of a same-instant
/// join, or the stream of a join with a reference table), unless the other side's
/// NULL-padded rows leave it empty.
fn carries_row_time(e: &Expr, plan: &LogicalPlan, catalog: &Catalog) -> bool {
    let Expr::Column(c) = e else { return false };
    let Some(i) = plan.schema().maybe_index_of_column(c) else {
        return false;
    };
    // The column as the input of a node that keeps its input's columns calls it.
    let passed = |input: &LogicalPlan| {
        let (qualifier, field) = input.schema().qualified_field(i);
        Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name()))
    };
    match plan {
        // An input's event-time column holds its ROWTIME too (or its epoch milliseconds).
        LogicalPlan::TableScan(scan) => {
            (c.name == crate::types::ROWTIME && !is_reference_table(plan, catalog))
                || super::event_time::as_rowtime(scan, c, catalog).is_some()
        }
        LogicalPlan::SubqueryAlias(a) => carries_row_time(&passed(&a.input), &a.input, catalog),
        LogicalPlan::Filter(f) => carries_row_time(&passed(&f.input), &f.input, catalog),
        LogicalPlan::Projection(p) => {
            let computed = p.expr[i].clone().unalias_nested().data;
            carries_row_time(&computed, &p.input, catalog)
        }
        LogicalPlan::Join(join) => {
            let from_left = i < join.left.schema().fields().len();
            let (own, other) = if from_left {
                (&join.left, &join.right)
            } else {
                (&join.right, &join.left)
            };
            let other_preserved = match join.join_type {
                JoinType::Inner => false,
                JoinType::Left => !from_left,
                JoinType::Right => from_left,
                _ => true,
            };
            if other_preserved || !carries_row_time(e, own, catalog) {
                return false;
            }
            if is_reference_table(other, catalog) {
                return true;
            }
            let at = At { line: 0, column: 0 };
            shape_of(join, catalog, at).is_ok_and(|s| {
                let own_window = s.windows[usize::from(!from_left)];
                own_window.is_none() || own_window == Some(JoinWindow::SameInstant)
            })
        }
        _ => false,
    }
}

/// Lowers a join of two streams onto a [`StreamJoinOp`] reading [`FEED_PLACEHOLDER`].
pub fn lower_stream_join(join: &Join, catalog: &Catalog, at: At) -> Result<Lowered> {
    let (preserve_left, preserve_right) = match join.join_type {
        JoinType::Inner => (false, false),
        JoinType::Left => (true, false),
        JoinType::Right => (false, true),
        JoinType::Full => (true, true),
        other => return Err(at.unsupported(format!("{other} JOIN of two streams"))),
    };
    let JoinShape {
        on,
        windows: [left_window, right_window],
        rest,
    } = shape_of(join, catalog, at)?;
    if left_window.is_none() && right_window.is_none() {
        return Err(at.error(
            "a join of two streams needs a window on at least one side: \
             JOIN s OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t, or ROWS n PRECEDING; \
             or, to join the rows of one instant, ON a.ROWTIME = b.ROWTIME",
        ));
    }
    let left_keys = on
        .iter()
        .map(|(l, _)| lower::physical(l, join.left.schema(), catalog))
        .collect::<Result<Vec<_>>>()?;
    let right_keys = on
        .iter()
        .map(|(_, r)| lower::physical(r, join.right.schema(), catalog))
        .collect::<Result<Vec<_>>>()?;
    let filter = rest.map(|e| lower::physical(&e, &join.schema, catalog)).transpose()?;
    let output_schema = lower::with_rowtime(&join.schema);
    let op = StreamJoinOp::new(
        SideSpec {
            columns: join.left.schema().fields().len(),
            window: left_window,
            keys: left_keys,
            preserved: preserve_left,
        },
        SideSpec {
            columns: join.right.schema().fields().len(),
            window: right_window,
            keys: right_keys,
            preserved: preserve_right,
        },
        filter,
        feed_schema_of(join),
        Arc::clone(&output_schema),
    )?;
    Ok(Lowered {
        ops: vec![Box::new(op)],
        source: FEED_PLACEHOLDER.to_string(),
        batch_schema: output_schema,
    })
}

fn feed_schema_of(join: &Join) -> datafusion::arrow::datatypes::SchemaRef {
    // Qualified names: a side that is itself a join has several columns of one name.
    let fields = |plan: &LogicalPlan| -> Vec<Field> {
        plan.schema()
            .iter()
            .map(|(qualifier, f)| match qualifier {
                Some(q) => f.as_ref().clone().with_name(format!("{q}.{}", f.name())),
                None => f.as_ref().clone(),
            })
            .collect()
    };
    feed_schema(&fields(&join.left), &fields(&join.right))
}

fn is_reference_table(plan: &LogicalPlan, catalog: &Catalog) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => {
            catalog.get(scan.table_name.table()).map(|r| r.kind) == Some(RelationKind::ReferenceTable)
        }
        LogicalPlan::SubqueryAlias(a) => is_reference_table(&a.input, catalog),
        _ => false,
    }
}

/// The outermost join of two streams in `plan`.
fn find_stream_join<'a>(plan: &'a LogicalPlan, catalog: &Catalog) -> Option<&'a Join> {
    if let LogicalPlan::Join(join) = plan
        && !is_reference_table(&join.left, catalog)
        && !is_reference_table(&join.right, catalog)
    {
        return Some(join);
    }
    plan.inputs()
        .into_iter()
        .find_map(|input| find_stream_join(input, catalog))
}

/// When `pump` reads a stream join's feed: names the feed stream after the pump and
/// plans it, with the two pumps that fill it (each side's own operators, then a
/// [`JoinFeedOp`]). A side that is itself a join of streams (`a JOIN b ... JOIN c ...`)
/// reads a feed of its own, planned the same way: a chain `<pump>#JOIN1`, `#JOIN2`, ...
pub fn plan_feeds(
    p: &PumpStatement,
    catalog: &Catalog,
    pump: &mut PumpPlan,
) -> Result<Option<(Vec<StreamDecl>, Vec<PumpPlan>)>> {
    if pump.source != FEED_PLACEHOLDER {
        return Ok(None);
    }
    let at = At {
        line: p.location.line,
        column: p.location.column,
    };
    let plan = super::plan_query(&p.query, catalog, p.location)?;
    let join = find_stream_join(&plan, catalog).ok_or_else(|| at.error("no join of two streams found"))?;
    let mut feeds = Feeds {
        pump: &p.name,
        catalog,
        at,
        streams: Vec::new(),
        pumps: Vec::new(),
    };
    pump.source = feeds.plan(join)?;
    Ok(Some((feeds.streams, feeds.pumps)))
}

/// The feed streams of one query's stream joins and the pumps that fill them.
struct Feeds<'a> {
    pump: &'a str,
    catalog: &'a Catalog,
    at: At,
    streams: Vec<StreamDecl>,
    pumps: Vec<PumpPlan>,
}

impl Feeds<'_> {
    /// Plans `join`'s feed stream and its two side pumps; returns the stream's name.
    fn plan(&mut self, join: &Join) -> Result<String> {
        let stream = format!("{}#JOIN{}", self.pump, self.streams.len() + 1);
        let schema = feed_schema_of(join);
        self.streams.push(StreamDecl {
            name: stream.clone(),
            schema: Arc::clone(&schema),
            kind: RelationKind::Stream,
            columns: vec![],
        });
        let (left_columns, right_columns) = (join.left.schema().fields().len(), join.right.schema().fields().len());
        for (side, input, name) in [(Side::Left, &join.left, "LEFT"), (Side::Right, &join.right, "RIGHT")] {
            let mut lowered = lower::lower(input, self.catalog, self.at)?;
            if lowered.source == FEED_PLACEHOLDER {
                // Joined streams joined again: the inner join's result is this side.
                let inner = find_stream_join(input, self.catalog)
                    .ok_or_else(|| self.at.error("no join of two streams found"))?;
                lowered.source = self.plan(inner)?;
            }
            let mut ops = lowered.ops;
            ops.push(Box::new(JoinFeedOp::new(
                side,
                left_columns,
                right_columns,
                Arc::clone(&schema),
            )));
            let pump_name = format!("{stream}#{name}");
            self.pumps.push(PumpPlan {
                name: pump_name.clone(),
                source: lowered.source,
                target: stream.clone(),
                pipeline: Pipeline::new(&pump_name, ops),
            });
        }
        Ok(stream)
    }
}

/// `FROM a, b WHERE ...` (and `FROM a JOIN b ON ... WHERE ...`): the WHERE condition of
/// an inner join is part of its join condition, which is where a stream join finds its
/// keys and a ROWTIME equality, and a join with a reference table its lookup keys. Each
/// conjunct goes to the innermost inner join whose inputs it reads, so `FROM a, b, c
/// WHERE a.ROWTIME = b.ROWTIME AND b.ROWTIME = c.ROWTIME` joins a with b, then c.
pub fn where_into_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    Ok(plan
        .transform_up(|node| {
            if let LogicalPlan::Filter(filter) = &node
                && let LogicalPlan::Join(join) = filter.input.as_ref()
                && join.join_type == JoinType::Inner
            {
                let conditions = split_conjunction(&filter.predicate).into_iter().cloned().collect();
                return Ok(Transformed::yes(LogicalPlan::Join(with_conditions(
                    join.clone(),
                    conditions,
                ))));
            }
            Ok(Transformed::no(node))
        })?
        .data)
}

/// `join` (an inner join) with `conditions` added, each to the innermost inner join
/// below whose inputs it reads.
fn with_conditions(mut join: Join, conditions: Vec<Expr>) -> Join {
    let inner_join = |p: &LogicalPlan| matches!(p, LogicalPlan::Join(j) if j.join_type == JoinType::Inner);
    let reads_only = |e: &Expr, p: &LogicalPlan| {
        let refs = e.column_refs();
        !refs.is_empty() && refs.iter().all(|c| p.schema().has_column(c))
    };
    let (mut left, mut right, mut here) = (Vec::new(), Vec::new(), Vec::new());
    for c in conditions {
        if inner_join(&join.left) && reads_only(&c, &join.left) {
            left.push(c);
        } else if inner_join(&join.right) && reads_only(&c, &join.right) {
            right.push(c);
        } else {
            here.push(c);
        }
    }
    for (side, pushed) in [(&mut join.left, left), (&mut join.right, right)] {
        if let (false, LogicalPlan::Join(below)) = (pushed.is_empty(), side.as_ref()) {
            *side = Arc::new(LogicalPlan::Join(with_conditions(below.clone(), pushed)));
        }
    }
    join.filter = conjunction(join.filter.take().into_iter().chain(here));
    join
}

/// Whether a join's condition carries a window marker.
pub fn has_window(join: &Join) -> bool {
    join.filter.as_ref().is_some_and(|f| {
        split_conjunction(f)
            .iter()
            .any(|p| matches!(p, Expr::ScalarFunction(s) if s.name() == WINDOW_MARKER))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query's FROM clause after the windows moved into the join conditions.
    fn moved(sql: &str) -> Result<String> {
        let mut query = crate::dialect::script::parse_query(sql)?;
        windows_into_conditions(&mut query, At { line: 1, column: 1 })?;
        let ast::SetExpr::Select(select) = query.body.as_ref() else {
            panic!("a select")
        };
        Ok(select.from.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "))
    }

    #[test]
    fn windows_become_markers_in_the_on_condition() {
        assert_eq!(
            moved("SELECT STREAM o.a FROM o_s AS o JOIN \"Trades\" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) t ON o.k = t.k")
                .unwrap(),
            "O_S AS O JOIN \"Trades\" T ON (O.K = T.K) AND sluice_join_window('RIGHT', 'RANGE', INTERVAL '1' MINUTE)"
        );
        // on the FROM stream, by name through a chain of named windows, without alias
        assert_eq!(
            moved("SELECT STREAM a.x FROM a OVER w2 LEFT JOIN b OVER (ROWS 3 PRECEDING) ON a.k = b.k WINDOW w1 AS (ROWS 2 PRECEDING), w2 AS w1")
                .unwrap(),
            "A LEFT JOIN B ON (A.K = B.K) AND sluice_join_window('LEFT', 'ROWS', 2) AND sluice_join_window('RIGHT', 'ROWS', 3)"
        );
        // CROSS JOIN: an inner join on the window alone
        assert_eq!(
            moved("SELECT STREAM a.x FROM a CROSS JOIN b OVER (ROWS CURRENT ROW) AS c").unwrap(),
            "A INNER JOIN B AS C ON sluice_join_window('RIGHT', 'ROWS', 0)"
        );
        // an aggregate's OVER is not a join window
        assert_eq!(
            moved("SELECT STREAM SUM(x) OVER (ROWS 2 PRECEDING) FROM a").unwrap(),
            "A"
        );
    }

    #[test]
    fn join_windows_outside_the_supported_forms_are_refused() {
        let unsupported = |sql: &str| matches!(moved(sql), Err(crate::SluiceError::Unsupported { .. }));
        assert!(unsupported(
            "SELECT STREAM a.x FROM a JOIN b OVER (ROWS UNBOUNDED PRECEDING) ON a.k = b.k"
        ));
        assert!(unsupported(
            "SELECT STREAM a.x FROM a JOIN b OVER (PARTITION BY k ROWS 2 PRECEDING) ON a.k = b.k"
        ));
        assert!(unsupported(
            "SELECT STREAM a.x FROM a JOIN b OVER (RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND INTERVAL '1' MINUTE FOLLOWING) ON a.k = b.k"
        ));
        assert!(matches!(
            moved("SELECT STREAM a.x FROM a JOIN b OVER nope ON a.k = b.k"),
            Err(crate::SluiceError::Sql { .. })
        ));
    }
}
