//! Lowering: DataFusion's logical plan of a pump's query → a chain of streaming
//! operators. Each logical node maps onto one operator; nodes that have no streaming
//! operator yet are reported as unsupported features, by name.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};
// Deprecated in favour of LoweredAggregateBuilder, which needs the same inputs spelled
// out; this helper does exactly the lowering DataFusion's own planner does.
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;

use super::catalog::{Catalog, RelationKind};
use super::markers::STAGGER_WINDOW;
use crate::error::{Result, SluiceError};
use crate::operators::Operator;
use crate::operators::filter::FilterOp;
use crate::operators::lookup_join::LookupJoinOp;
use crate::operators::project::ProjectOp;
use crate::operators::sliding::{Frame, SlidingWindowOp, WindowAggregate, WindowFunction as SlidingFunction};
use crate::operators::stagger::StaggerAggregateOp;
use crate::operators::tumbling::{AggregateSlot, TimeKeys, TumblingAggregateOp};
use crate::types::{ROWTIME, TIMESTAMP_TYPE};

/// A lowered query: operators first to last, the stream they read, and the schema of
/// the batches the last one emits (logical columns, then ROWTIME).
pub struct Lowered {
    pub ops: Vec<Box<dyn Operator>>,
    pub source: String,
    pub batch_schema: SchemaRef,
}

/// Where an error is reported when DataFusion gives no finer position.
#[derive(Clone, Copy)]
pub struct At {
    pub line: u64,
    pub column: u64,
}

impl At {
    pub fn unsupported(&self, feature: impl Into<String>) -> SluiceError {
        SluiceError::Unsupported {
            line: self.line,
            column: self.column,
            feature: feature.into(),
        }
    }
    pub fn error(&self, message: impl Into<String>) -> SluiceError {
        SluiceError::Sql {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// Batches carry the logical columns and then ROWTIME; a stream scan's schema already
/// ends with its ROWTIME column.
pub(super) fn with_rowtime(schema: &DFSchema) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
    Arc::new(Schema::new(fields))
}

pub(super) fn physical(e: &Expr, schema: &DFSchema, catalog: &Catalog) -> Result<Arc<dyn PhysicalExpr>> {
    let e = crate::functions::simplify::for_execution(e, schema, catalog.state())?;
    checked_arithmetic(create_physical_expr(
        &e,
        schema,
        catalog.state().execution_props(),
        &PhysicalPlanningContext::default(),
    )?)
}

/// DataFusion's `+`, `-` and `*` wrap around on integer overflow unless told otherwise;
/// SQL (and KDA) make overflow an error. A failing row then goes to `error_stream`
/// instead of a wrong value flowing on.
fn checked_arithmetic(e: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_expr::expressions::BinaryExpr;
    Ok(e.transform_up(|p| {
        let Some(b) = p.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(p));
        };
        let checked = BinaryExpr::new(Arc::clone(b.left()), *b.op(), Arc::clone(b.right())).with_fail_on_overflow(true);
        Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>))
    })?
    .data)
}

/// Is `e` a function of ROWTIME alone (so monotonic in time, usable as a window key)?
fn is_rowtime_bucket(e: &Expr) -> bool {
    let refs = e.column_refs();
    !refs.is_empty() && refs.iter().all(|c| c.name == ROWTIME)
}

/// Whether `e` is the output row's ROWTIME (an unqualified ROWTIME of a select list, see
/// `dialect::output_rowtime`).
pub(super) fn is_output_rowtime(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name() == crate::dialect::output_rowtime::OUTPUT_ROWTIME)
}

/// A select-list expression compiled for the projection's input batches, whose ROWTIME
/// column (index `rowtime`) is the time of the row being generated: the output row's
/// ROWTIME reads it.
fn projected(e: &Expr, input: &DFSchema, rowtime: usize, catalog: &Catalog) -> Result<Arc<dyn PhysicalExpr>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_expr::expressions::Column as PhysicalColumn;
    // A name no stream column can have, compiled as an extra input column and then
    // pointed at the batch's trailing ROWTIME.
    const OUTPUT_COLUMN: &str = "#output ROWTIME";
    if !e.exists(|x| Ok(is_output_rowtime(x)))? {
        return physical(e, input, catalog);
    }
    let replaced = e
        .clone()
        .transform(|x| {
            Ok(if is_output_rowtime(&x) {
                Transformed::yes(Expr::Column(datafusion::common::Column::from_name(OUTPUT_COLUMN)))
            } else {
                Transformed::no(x)
            })
        })?
        .data;
    let extra = DFSchema::try_from(Schema::new(vec![Field::new(OUTPUT_COLUMN, TIMESTAMP_TYPE, false)]))?;
    let compiled = physical(&replaced, &input.join(&extra)?, catalog)?;
    Ok(compiled
        .transform(|p| {
            if p.downcast_ref::<PhysicalColumn>()
                .is_some_and(|c| c.name() == OUTPUT_COLUMN)
            {
                let c: Arc<dyn PhysicalExpr> = Arc::new(PhysicalColumn::new(ROWTIME, rowtime));
                return Ok(Transformed::yes(c));
            }
            Ok(Transformed::no(p))
        })?
        .data)
}

/// Is `e` a key the query declares monotonic: built on `MONOTONIC(...)` calls, with no
/// column read outside them (`MONOTONIC(t)`, `FLOOR(MONOTONIC(t) TO MINUTE)`)?
fn is_declared_monotonic(e: &Expr) -> bool {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    if !e.exists(|x| Ok(is_monotonic_call(x))).unwrap_or(false) {
        return false;
    }
    let outside = e
        .clone()
        .transform_down(|x| {
            Ok(if is_monotonic_call(&x) {
                Transformed::new(
                    Expr::Literal(ScalarValue::Null, None),
                    true,
                    datafusion::common::tree_node::TreeNodeRecursion::Jump,
                )
            } else {
                Transformed::no(x)
            })
        })
        .map(|t| t.data);
    outside.is_ok_and(|o| o.column_refs().is_empty())
}

/// The keys of a streaming GROUP BY that tell its buckets apart: every key of ROWTIME
/// alone (the finest decides when a bucket ends), else a key declared MONOTONIC.
fn time_keys(agg: &datafusion::logical_expr::Aggregate, catalog: &Catalog, at: At) -> Result<TimeKeys> {
    let rowtime: Vec<usize> = (0..agg.group_expr.len())
        .filter(|&i| {
            is_rowtime_bucket(&agg.group_expr[i])
                || rowtime_through_subquery(&agg.group_expr[i], &agg.input, catalog).is_some()
        })
        .collect();
    if !rowtime.is_empty() {
        return Ok(TimeKeys::Rowtime(rowtime));
    }
    // A declared key may be an alias of a subquery's column.
    if let Some(k) = agg
        .group_expr
        .iter()
        .position(|e| is_declared_monotonic(&as_written(e, &agg.input, catalog).expr))
    {
        return Ok(TimeKeys::Declared(k));
    }
    let mut message = "a streaming GROUP BY needs a monotonic expression of ROWTIME among its keys, \
         such as STEP(s.ROWTIME BY INTERVAL '1' MINUTE) or FLOOR(s.ROWTIME TO MINUTE), \
         or a key declared monotonic such as MONOTONIC(order_time)"
        .to_string();
    if let Some(why) = agg
        .group_expr
        .iter()
        .find_map(|e| super::event_time::why_not_rowtime(&as_written(e, &agg.input, catalog).expr, catalog))
    {
        message = format!("{message}. {why}");
    }
    Err(at.error(message))
}

/// A key that reads a subquery's column which is that level's ROWTIME (`STEP(d.window_time
/// BY ...)` over `SELECT STREAM DISTINCT ROWTIME AS window_time, ...`, or a plain
/// projection of ROWTIME), or an input's event-time column (which is its ROWTIME): the
/// key as a function of ROWTIME, which the batch's trailing ROWTIME column carries with
/// the same value. None for a key of ROWTIME itself, or of anything an aggregate or join
/// in between computed.
fn rowtime_through_subquery(e: &Expr, input: &LogicalPlan, catalog: &Catalog) -> Option<Expr> {
    if is_rowtime_bucket(e) {
        return None;
    }
    let written = as_written(e, input, catalog);
    (written.aggregates == 0 && is_rowtime_bucket(&written.expr)).then_some(written.expr)
}

fn is_stagger_marker(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name() == STAGGER_WINDOW)
}

pub fn lower(plan: &LogicalPlan, catalog: &Catalog, at: At) -> Result<Lowered> {
    lower_node(plan, catalog, at).map_err(|e| positioned(e, at))
}

/// An error of DataFusion's or Arrow's that lowering met (compiling an expression, a
/// type it cannot handle) reaches the user in the dialect's words, at the statement.
fn positioned(e: SluiceError, at: At) -> SluiceError {
    let location = datafusion::sql::sqlparser::tokenizer::Location {
        line: at.line,
        column: at.column,
    };
    match e {
        SluiceError::DataFusion(e) => super::df_error(e, location),
        SluiceError::Arrow(e) => at.error(super::tidy_message(&e.to_string()).0),
        other => other,
    }
}

fn lower_node(plan: &LogicalPlan, catalog: &Catalog, at: At) -> Result<Lowered> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = scan.table_name.table().to_string();
            match catalog.get(&name).map(|r| r.kind) {
                Some(RelationKind::ReferenceTable) => Err(at.unsupported(format!(
                    "selecting from reference table \"{name}\" without joining it to a stream"
                ))),
                Some(_) => Ok(Lowered {
                    ops: vec![],
                    source: name,
                    batch_schema: Arc::new(scan.projected_schema.as_arrow().clone()),
                }),
                None => Err(at.error(format!("unknown stream \"{name}\""))),
            }
        }
        LogicalPlan::SubqueryAlias(alias) => lower(&alias.input, catalog, at),
        LogicalPlan::Filter(filter) => {
            let mut lowered = lower(&filter.input, catalog, at)?;
            let predicate = physical(&filter.predicate, filter.input.schema(), catalog)?;
            lowered.ops.push(Box::new(FilterOp::new(predicate)));
            Ok(lowered)
        }
        LogicalPlan::Projection(projection) => {
            let mut lowered = lower(&projection.input, catalog, at)?;
            let rowtime = lowered.batch_schema.fields().len() - 1;
            let exprs = projection
                .expr
                .iter()
                .map(|e| projected(e, projection.input.schema(), rowtime, catalog))
                .collect::<Result<Vec<_>>>()?;
            let schema = with_rowtime(&projection.schema);
            lowered.ops.push(Box::new(ProjectOp::new(exprs, Arc::clone(&schema))));
            lowered.batch_schema = schema;
            Ok(lowered)
        }
        LogicalPlan::Aggregate(agg) => {
            let mut lowered = lower(&agg.input, catalog, at)?;
            if let Some(marker_at) = agg.group_expr.iter().position(is_stagger_marker) {
                return lower_stagger(agg, marker_at, lowered, catalog, at);
            }
            if agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
                return Err(at.unsupported("GROUPING SETS / CUBE / ROLLUP in a streaming query"));
            }
            if let Some(window) = super::window_tvf::window_source(&agg.input, catalog) {
                return super::window_tvf::lower_aggregate(agg, window, lowered, catalog, at);
            }
            let time_keys = time_keys(agg, catalog, at)?;
            let input_df = agg.input.schema();
            let input_schema = Arc::clone(&lowered.batch_schema);
            let trailing_rowtime = input_schema.fields().len() - 1;
            let group_exprs = agg
                .group_expr
                .iter()
                .map(|e| match rowtime_through_subquery(e, &agg.input, catalog) {
                    // Read from the trailing ROWTIME, so a rowtime bound can be probed.
                    Some(of_rowtime) => on_trailing_rowtime(&of_rowtime, trailing_rowtime, catalog),
                    None => physical(e, input_df, catalog),
                })
                .collect::<Result<Vec<_>>>()?;
            let group_fields = group_exprs
                .iter()
                .zip(agg.group_expr.iter())
                .map(|(p, e)| {
                    Ok(Field::new(
                        e.schema_name().to_string(),
                        p.data_type(&input_schema)?,
                        true,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut aggregates = Vec::with_capacity(agg.aggr_expr.len());
            for e in &agg.aggr_expr {
                #[allow(deprecated)]
                let (expr, filter, order) = create_aggregate_expr_and_maybe_filter(
                    &crate::functions::simplify::aggregate_for_execution(e, input_df, catalog.state())?,
                    input_df,
                    &input_schema,
                    catalog.state().execution_props(),
                )?;
                if !order.is_empty() {
                    return Err(at.unsupported("ORDER BY inside an aggregate"));
                }
                aggregates.push(AggregateSlot::new(expr, filter).map_err(|e| match e {
                    SluiceError::Unsupported { feature, .. } => at.unsupported(feature),
                    other => other,
                })?);
            }
            let output_schema = with_rowtime(&agg.schema);
            lowered.ops.push(Box::new(TumblingAggregateOp::new(
                group_exprs,
                time_keys,
                aggregates,
                input_schema,
                Arc::new(Schema::new(group_fields)),
                Arc::clone(&output_schema),
            )?));
            lowered.batch_schema = output_schema;
            Ok(lowered)
        }
        LogicalPlan::Window(window) => lower_window(window, catalog, at),
        LogicalPlan::Join(join) => lower_join(join, catalog, at),
        LogicalPlan::Union(_) => Err(at.unsupported("UNION ALL of streams")),
        LogicalPlan::Sort(sort) => lower_sort(sort, catalog, at),
        LogicalPlan::Distinct(distinct) => lower_distinct(distinct, catalog, at),
        LogicalPlan::Limit(_) => Err(at.unsupported("LIMIT / FETCH on a stream")),
        LogicalPlan::Values(_) => Err(at.unsupported("VALUES as a stream source")),
        LogicalPlan::Unnest(_) => Err(at.unsupported("UNNEST")),
        other => Err(at.unsupported(format!(
            "{} in a streaming query",
            other
                .display()
                .to_string()
                .split(':')
                .next()
                .unwrap_or("this construct")
        ))),
    }
}

/// `SELECT STREAM DISTINCT`: a GROUP BY on the select items with no aggregate (lowered
/// onto the tumbling GROUP BY), so each distinct row of a group of the monotonic time item
/// comes out once, when that group closes, stamped as a GROUP BY stamps it (a ROWTIME
/// bucket's end, A1). The open group's rows are the only state.
///
/// As KDA documents, a select item that is ROWTIME itself does not take part in the
/// duplicate elimination: it reads the emitted row's time. Only when no other item is
/// monotonic does ROWTIME group the rows, so they are distinct per instant.
fn lower_distinct(distinct: &datafusion::logical_expr::Distinct, catalog: &Catalog, at: At) -> Result<Lowered> {
    use datafusion::logical_expr::{Aggregate, Distinct};
    use datafusion::physical_expr::expressions::Column as PhysicalColumn;
    let Distinct::All(input) = distinct else {
        return Err(at.unsupported("SELECT STREAM DISTINCT ON (...)"));
    };
    let LogicalPlan::Projection(select) = input.as_ref() else {
        return Err(at.unsupported("SELECT STREAM DISTINCT over this query shape"));
    };
    let is_rowtime = |e: &Expr| matches!(e, Expr::Column(c) if c.name == ROWTIME);
    // One grouping key per distinct expression; items that repeat one share its key.
    let mut keys: Vec<Expr> = Vec::new();
    let key_of_item: Vec<Option<usize>> = select
        .expr
        .iter()
        .map(|e| {
            let key = e.clone().unalias();
            if is_rowtime(&key) {
                return None;
            }
            Some(keys.iter().position(|k| k == &key).unwrap_or_else(|| {
                keys.push(key);
                keys.len() - 1
            }))
        })
        .collect();
    if !keys.iter().any(|k| {
        is_rowtime_bucket(k) || is_monotonic_call(k) || rowtime_through_subquery(k, &select.input, catalog).is_some()
    }) {
        let Some(rowtime) = select.expr.iter().map(|e| e.clone().unalias()).find(is_rowtime) else {
            let mut message = "SELECT STREAM DISTINCT needs a monotonic time expression among its select items, \
                 whose groups close as time passes: add one such as STEP(s.ROWTIME BY INTERVAL '1' MINUTE) or \
                 FLOOR(s.ROWTIME TO MINUTE) (rows are then distinct within each bucket)"
                .to_string();
            if let Some(why) = keys
                .iter()
                .find_map(|k| super::event_time::why_not_rowtime(&as_written(k, &select.input, catalog).expr, catalog))
            {
                message = format!("{message}. {why}");
            }
            return Err(at.error(message));
        };
        keys.push(rowtime);
    }
    let grouped = LogicalPlan::Aggregate(Aggregate::try_new(Arc::clone(&select.input), keys, vec![])?);
    let trailing_rowtime = grouped.schema().fields().len();
    let mut lowered = lower(&grouped, catalog, at)?;
    // The select list over the grouped rows (key columns, then ROWTIME).
    let items: Vec<Arc<dyn PhysicalExpr>> = key_of_item
        .iter()
        .map(|k| -> Arc<dyn PhysicalExpr> {
            match k {
                Some(k) => Arc::new(PhysicalColumn::new(grouped.schema().field(*k).name(), *k)),
                None => Arc::new(PhysicalColumn::new(ROWTIME, trailing_rowtime)),
            }
        })
        .collect();
    let schema = with_rowtime(&select.schema);
    lowered.ops.push(Box::new(ProjectOp::new(items, Arc::clone(&schema))));
    lowered.batch_schema = schema;
    Ok(lowered)
}

/// `MONOTONIC(x)`: the query declares `x` non-decreasing.
fn is_monotonic_call(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name() == "monotonic")
}

/// Streaming ORDER BY: the leading key must be a monotonic expression of time (spec
/// §1.2); the rest sort each group of rows that share it (A7).
fn lower_sort(sort: &datafusion::logical_expr::Sort, catalog: &Catalog, at: At) -> Result<Lowered> {
    use crate::operators::sort::{SortKey, StreamingSortOp};
    use datafusion::arrow::compute::SortOptions;
    use datafusion::logical_expr::ExprSchemable;
    if sort.fetch.is_some() {
        return Err(at.unsupported("LIMIT / FETCH on a stream"));
    }
    let mut lowered = lower(&sort.input, catalog, at)?;
    let input_df = sort.input.schema();
    let (first, rest) = sort.expr.split_first().expect("ORDER BY has a key");
    if let Expr::ScalarFunction(f) = &first.expr
        && f.name() == super::markers::T_SORT
    {
        let within = match f.args.get(1) {
            Some(Expr::Literal(v, _)) => interval_ms(v, at)?,
            _ => None,
        };
        let Some(within) = within.filter(|w| *w >= 0) else {
            return Err(at.error("ORDER BY ... WITHIN needs an interval literal such as INTERVAL '1' MINUTE"));
        };
        if !rest.is_empty() || !first.asc {
            return Err(at.error("ORDER BY ... WITHIN sorts by one ascending key"));
        }
        let key = physical(&f.args[0], input_df, catalog)?;
        let schema = Arc::clone(&lowered.batch_schema);
        lowered
            .ops
            .push(Box::new(crate::operators::t_sort::TSortOp::new(key, within, schema)));
        return Ok(lowered);
    }
    // The key as the query wrote it: DataFusion may have turned it into a column of the
    // projection below (when it is also selected, or named by alias or position), or of
    // a GROUP BY below (when it is a grouping key).
    let written = as_written(&first.expr, &sort.input, catalog);
    let declared_monotonic = is_declared_monotonic(&written.expr);
    let is_time = matches!(first.expr.get_type(input_df)?, DataType::Timestamp(_, _));
    if !first.asc || !is_time || !(declared_monotonic || is_rowtime_bucket(&written.expr)) {
        let mut message = "a streaming ORDER BY must lead with an ascending, monotonic expression of time such as \
             ROWTIME, FLOOR(s.ROWTIME TO SECOND) or STEP(s.ROWTIME BY INTERVAL '10' SECOND)"
            .to_string();
        if let Some(why) = super::event_time::why_not_rowtime(&written.expr, catalog).filter(|_| first.asc) {
            message = format!("{message}. {why}");
        }
        return Err(at.error(message));
    }
    let rowtime = lowered.batch_schema.fields().len() - 1;
    let mut bound_key = None;
    let leading = if !is_rowtime_bucket(&written.expr) {
        physical(&first.expr, input_df, catalog)?
    } else if written.aggregates == 0 {
        // A key of ROWTIME alone is evaluated on the batch's trailing ROWTIME column, so
        // a rowtime bound can be probed for the key's value and close a group while idle.
        on_trailing_rowtime(&written.expr, rowtime, catalog)?
    } else {
        // A grouping key of a tumbling GROUP BY below: rows carry its value, and the key
        // as written (a function of the aggregate's input ROWTIME) gives the least key
        // still to come at a bound: the bucket holding the bound is the one still open.
        if written.aggregates == 1 && written.tumbling {
            bound_key = Some(on_trailing_rowtime(&written.expr, rowtime, catalog)?);
        }
        physical(&first.expr, input_df, catalog)?
    };
    let rest = rest
        .iter()
        .map(|k| {
            Ok(SortKey {
                expr: physical(&k.expr, input_df, catalog)?,
                options: SortOptions {
                    descending: !k.asc,
                    nulls_first: k.nulls_first,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = Arc::clone(&lowered.batch_schema);
    let mut op = StreamingSortOp::new(leading, rest, schema);
    if let Some(key) = bound_key {
        op = op.with_bound_key(key);
    }
    lowered.ops.push(Box::new(op));
    Ok(lowered)
}

/// An expression as the query wrote it (see [`as_written`]).
struct Written {
    expr: Expr,
    /// How many GROUP BYs it was traced through: a ROWTIME in `expr` is then the time
    /// of the aggregate's input rows, not of the rows the expression is evaluated on.
    aggregates: usize,
    /// Whether all of them are tumbling (not stagger windows or window functions).
    tumbling: bool,
}

/// `e` with each column that a node below computed replaced by the node's expression
/// (recursively, through projections, subquery aliases, filters and GROUP BY keys), so
/// `FLOOR(s.ROWTIME TO SECOND)` is seen as written. The output row's ROWTIME of a
/// projection is the ROWTIME of the batches that projection reads, and an input stream's
/// event-time column is written as the ROWTIME it is (`event_time::as_rowtime`).
fn as_written(e: &Expr, input: &LogicalPlan, catalog: &Catalog) -> Written {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let mut aggregates = 0;
    let mut tumbling = true;
    let expr = e
        .clone()
        .transform(|x| {
            let Expr::Column(c) = &x else {
                return Ok(Transformed::no(x));
            };
            let inner = match input {
                LogicalPlan::Projection(p) => p.schema.maybe_index_of_column(c).map(|i| {
                    let inner = p.expr[i].clone().unalias();
                    if is_output_rowtime(&inner) {
                        Written {
                            expr: Expr::Column(datafusion::common::Column::from_name(ROWTIME)),
                            aggregates: 0,
                            tumbling: true,
                        }
                    } else {
                        as_written(&inner, &p.input, catalog)
                    }
                }),
                LogicalPlan::SubqueryAlias(a) => a.schema.maybe_index_of_column(c).map(|i| {
                    let inner = Expr::Column(datafusion::common::Column::from(a.input.schema().qualified_field(i)));
                    as_written(&inner, &a.input, catalog)
                }),
                LogicalPlan::Filter(f) => Some(as_written(&x, &f.input, catalog)),
                LogicalPlan::TableScan(scan) => super::event_time::as_rowtime(scan, c, catalog).map(|expr| Written {
                    expr,
                    aggregates: 0,
                    tumbling: true,
                }),
                // SELECT STREAM DISTINCT (`lower_distinct`): a selected ROWTIME is no key and
                // reads the emitted row's time, so it is this level's ROWTIME; the other
                // items are the grouping keys the rows went through.
                LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(d)) => match d.as_ref() {
                    LogicalPlan::Projection(p) => p.schema.maybe_index_of_column(c).map(|i| {
                        let inner = p.expr[i].clone().unalias();
                        if matches!(&inner, Expr::Column(r) if r.name == ROWTIME) || is_output_rowtime(&inner) {
                            Written {
                                expr: Expr::Column(datafusion::common::Column::from_name(ROWTIME)),
                                aggregates: 0,
                                tumbling: true,
                            }
                        } else {
                            let mut w = as_written(&inner, &p.input, catalog);
                            w.aggregates += 1;
                            w
                        }
                    }),
                    _ => None,
                },
                LogicalPlan::Aggregate(g) => g
                    .schema
                    .maybe_index_of_column(c)
                    .filter(|&i| i < g.group_expr.len())
                    .map(|i| {
                        let mut w = as_written(&g.group_expr[i], &g.input, catalog);
                        w.aggregates += 1;
                        w.tumbling &= !g.group_expr.iter().any(is_stagger_marker)
                            && !matches!(g.input.as_ref(), LogicalPlan::Window(_));
                        w
                    }),
                _ => None,
            };
            Ok(match inner {
                Some(w) => {
                    aggregates = aggregates.max(w.aggregates);
                    tumbling &= w.tumbling;
                    Transformed::yes(w.expr)
                }
                None => Transformed::no(x),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone());
    Written {
        expr,
        aggregates,
        tumbling,
    }
}

/// A function of ROWTIME alone compiled to read the batch's trailing ROWTIME column
/// (index `rowtime`), whatever the columns of the batch are.
fn on_trailing_rowtime(e: &Expr, rowtime: usize, catalog: &Catalog) -> Result<Arc<dyn PhysicalExpr>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_expr::expressions::Column as PhysicalColumn;
    let unqualified = e
        .clone()
        .transform(|x| match &x {
            Expr::Column(c) if c.name == ROWTIME => Ok(Transformed::yes(Expr::Column(
                datafusion::common::Column::from_name(ROWTIME),
            ))),
            _ => Ok(Transformed::no(x)),
        })?
        .data;
    let only_rowtime = DFSchema::try_from(Schema::new(vec![Field::new(ROWTIME, TIMESTAMP_TYPE, false)]))?;
    let compiled = physical(&unqualified, &only_rowtime, catalog)?;
    Ok(compiled
        .transform(|p| {
            if p.downcast_ref::<PhysicalColumn>().is_some() {
                let c: Arc<dyn PhysicalExpr> = Arc::new(PhysicalColumn::new(ROWTIME, rowtime));
                return Ok(Transformed::yes(c));
            }
            Ok(Transformed::no(p))
        })?
        .data)
}

fn physical_all(exprs: &[Expr], schema: &DFSchema, catalog: &Catalog) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    exprs.iter().map(|e| physical(e, schema, catalog)).collect()
}

fn types_of(exprs: &[Arc<dyn PhysicalExpr>], schema: &Schema) -> Result<Vec<DataType>> {
    exprs.iter().map(|e| Ok(e.data_type(schema)?)).collect()
}

fn interval_ms(v: &ScalarValue, at: At) -> Result<Option<i64>> {
    crate::functions::common::scalar_interval_millis(v).map_err(|e| at.error(format!("window range: {e}")))
}

fn lower_stagger(
    agg: &datafusion::logical_expr::Aggregate,
    marker_at: usize,
    mut lowered: Lowered,
    catalog: &Catalog,
    at: At,
) -> Result<Lowered> {
    let range = match &agg.group_expr[marker_at] {
        Expr::ScalarFunction(f) => match f.args.first() {
            Some(Expr::Literal(v, _)) => interval_ms(v, at)?,
            _ => None,
        },
        _ => None,
    };
    let Some(range) = range.filter(|r| *r > 0) else {
        return Err(at.error("WINDOWED BY STAGGER needs RANGE INTERVAL 'n' unit with a positive length"));
    };
    let input_df = agg.input.schema();
    let input_schema = Arc::clone(&lowered.batch_schema);
    if agg.group_expr.len() < 2 {
        return Err(at.error("WINDOWED BY STAGGER needs PARTITION BY with at least one key"));
    }
    let key_exprs: Vec<Expr> = agg
        .group_expr
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != marker_at)
        .map(|(_, e)| e.clone())
        .collect();
    let keys = physical_all(&key_exprs, input_df, catalog)?;
    let key_types = types_of(&keys, &input_schema)?;
    let mut aggregates = Vec::new();
    for e in &agg.aggr_expr {
        let e = crate::functions::simplify::aggregate_for_execution(e, input_df, catalog.state())?;
        #[allow(deprecated)]
        let (expr, filter, _) =
            create_aggregate_expr_and_maybe_filter(&e, input_df, &input_schema, catalog.state().execution_props())?;
        if filter.is_some() {
            return Err(at.unsupported("FILTER on an aggregate in a stagger window"));
        }
        aggregates.push(expr);
    }
    let output_schema = with_rowtime(&agg.schema);
    lowered.ops.push(Box::new(StaggerAggregateOp::new(
        keys,
        key_types,
        marker_at,
        aggregates,
        range,
        Arc::clone(&output_schema),
    )?));
    lowered.batch_schema = output_schema;
    Ok(lowered)
}

fn lower_window(window: &datafusion::logical_expr::Window, catalog: &Catalog, at: At) -> Result<Lowered> {
    use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionDefinition};
    use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;

    let mut lowered = lower(&window.input, catalog, at)?;
    let input_df = window.input.schema();
    let input_schema = Arc::clone(&lowered.batch_schema);
    let mut specs = Vec::with_capacity(window.window_expr.len());
    for e in &window.window_expr {
        let name = e.schema_name().to_string();
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::WindowFunction(wf) = inner else {
            return Err(at.unsupported(format!("window expression {name}")));
        };
        let WindowFunction { fun, params } = wf.as_ref();
        if params.distinct {
            return Err(at.error(format!(
                "{}(DISTINCT ...) is not allowed over a sliding window",
                fun.name()
            )));
        }
        if params.filter.is_some() {
            return Err(at.unsupported("FILTER on a windowed aggregate"));
        }
        let frame = &params.window_frame;
        window_order_is_rowtime(params, &window.input, catalog, at)?;
        if !matches!(frame.end_bound, WindowFrameBound::CurrentRow) {
            return Err(at.error("a sliding window must end at the current row (no FOLLOWING)"));
        }
        let frame = match (&frame.units, &frame.start_bound) {
            (_, WindowFrameBound::CurrentRow) => Frame::Rows(Some(0)),
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) if v.is_null() => Frame::Rows(None),
            (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => match v {
                ScalarValue::UInt64(Some(n)) => Frame::Rows(Some(*n)),
                other => Frame::Rows(Some(
                    other
                        .to_string()
                        .parse()
                        .map_err(|_| at.error(format!("ROWS {other} PRECEDING")))?,
                )),
            },
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) if v.is_null() => Frame::Range(None),
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => match interval_ms(v, at)? {
                // A window reaching into the future would hold no rows at all, and KDA
                // forbids negative sizes: refuse it rather than count nothing.
                Some(ms) if ms < 0 => {
                    return Err(at.error(format!(
                        "a sliding window's RANGE must not be negative (INTERVAL of {ms} ms PRECEDING); \
                         write a positive interval, or CURRENT ROW for the current row alone"
                    )));
                }
                range => Frame::Range(range),
            },
            _ => return Err(at.unsupported("this window frame (use RANGE INTERVAL ... PRECEDING or ROWS n PRECEDING)")),
        };
        let partition_by = physical_all(&params.partition_by, input_df, catalog)?;
        let key_types = types_of(&partition_by, &input_schema)?;
        let function = match fun {
            WindowFunctionDefinition::AggregateUDF(udaf) => {
                let args = physical_all(&params.args, input_df, catalog)?;
                let aggregate = AggregateExprBuilder::new(Arc::clone(udaf), args)
                    .schema(Arc::clone(&input_schema))
                    .alias(name)
                    .build()?;
                SlidingFunction::Aggregate(Arc::new(aggregate))
            }
            WindowFunctionDefinition::WindowUDF(udwf) => {
                let return_type = window.schema.field(input_df.fields().len() + specs.len()).data_type();
                SlidingFunction::Analytic(lower_analytic(udwf.name(), params, return_type, input_df, catalog, at)?)
            }
        };
        specs.push((
            WindowAggregate {
                function,
                partition_by,
                frame,
            },
            key_types,
        ));
    }
    let output_schema = with_rowtime(&window.schema);
    let op = SlidingWindowOp::new(specs, input_df.fields().len(), Arc::clone(&output_schema)).map_err(|e| match e {
        SluiceError::Unsupported { feature, .. } => at.unsupported(feature),
        other => other,
    })?;
    lowered.ops.push(Box::new(op));
    lowered.batch_schema = output_schema;
    Ok(lowered)
}

/// A sliding window holds the stream's rows in ROWTIME order and measures a RANGE in
/// ROWTIME: its ORDER BY must say so (or be left out, which means ROWTIME). ROWTIME may be
/// written through aliases and subqueries or as the input's event-time column; a ROWS
/// window may also be ordered by a function of ROWTIME alone (the same order). Any other
/// key would be ignored, so it is refused rather than run in another order.
fn window_order_is_rowtime(
    params: &datafusion::logical_expr::expr::WindowFunctionParams,
    input: &LogicalPlan,
    catalog: &Catalog,
    at: At,
) -> Result<()> {
    use datafusion::logical_expr::WindowFrameUnits;
    let [key] = params.order_by.as_slice() else {
        if params.order_by.is_empty() {
            return Ok(());
        }
        return Err(at.error(
            "a sliding window is ordered by ROWTIME alone: write ORDER BY ROWTIME (or leave ORDER BY out), \
             not several keys",
        ));
    };
    let written = as_written(&key.expr, input, catalog).expr;
    let is_rowtime = matches!(&written, Expr::Column(c) if c.name == ROWTIME);
    let rows_in_rowtime_order = params.window_frame.units == WindowFrameUnits::Rows && is_rowtime_bucket(&written);
    if key.asc && (is_rowtime || rows_in_rowtime_order) {
        return Ok(());
    }
    let mut message = format!(
        "a sliding window runs over the stream in ROWTIME order and measures RANGE in ROWTIME: \
         write ORDER BY ROWTIME (or leave ORDER BY out) instead of ORDER BY {}{}",
        super::sql_rendering(&key.expr.to_string()),
        if key.asc { "" } else { " DESC" }
    );
    if let Some(why) = super::event_time::why_not_rowtime(&written, catalog).filter(|_| key.asc) {
        message = format!("{message}. {why}");
    }
    Err(at.error(message))
}

/// KDA's analytic functions over a sliding window (`operators::analytic`): `LAG`,
/// `FIRST_VALUE`, `LAST_VALUE`, `NTH_VALUE [FROM LAST]`, `EXP_AVG`. Their counts and
/// EXP_AVG's half-life must be literals.
fn lower_analytic(
    name: &str,
    params: &datafusion::logical_expr::expr::WindowFunctionParams,
    return_type: &DataType,
    input_df: &DFSchema,
    catalog: &Catalog,
    at: At,
) -> Result<crate::operators::analytic::AnalyticFunction> {
    use crate::operators::analytic::{AnalyticFunction, AnalyticKind, markers};
    use datafusion::logical_expr::ExprSchemable;
    use datafusion::logical_expr::expr::NullTreatment;
    let upper = name.to_uppercase().replace("_FROM_LAST", "");
    // A literal argument (the analyzer may have wrapped it in a cast).
    fn literal(e: &Expr) -> Option<ScalarValue> {
        match e {
            Expr::Literal(v, _) => Some(v.clone()),
            Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
            Expr::TryCast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
            Expr::Alias(a) => literal(&a.expr),
            Expr::Negative(e) => literal(e)?.arithmetic_negate().ok(),
            _ => None,
        }
    }
    let count = |i: usize, least: i64, default: Option<i64>| -> Result<usize> {
        let v = match params.args.get(i) {
            None => default,
            Some(e) => literal(e)
                .and_then(|v| v.cast_to(&DataType::Int64).ok())
                .and_then(|v| match v {
                    ScalarValue::Int64(n) => n,
                    _ => None,
                }),
        };
        match v {
            Some(n) if n >= least => Ok(n as usize),
            _ => Err(at.error(format!(
                "{upper}: argument {} must be an integer literal ≥ {least}",
                i + 1
            ))),
        }
    };
    let arity = |most: usize| -> Result<()> {
        if params.args.is_empty() || params.args.len() > most {
            return Err(at.error(format!("{upper} takes 1 to {most} arguments")));
        }
        Ok(())
    };
    let kind = match name {
        "lag" => {
            arity(3)?;
            AnalyticKind::Lag {
                offset: count(1, 0, Some(1))?,
            }
        }
        "first_value" => {
            arity(1)?;
            AnalyticKind::FirstValue
        }
        "last_value" => {
            arity(1)?;
            AnalyticKind::LastValue
        }
        "nth_value" | markers::NTH_VALUE_FROM_LAST => {
            arity(2)?;
            AnalyticKind::NthValue {
                n: count(1, 1, None)?,
                from_last: name == markers::NTH_VALUE_FROM_LAST,
            }
        }
        markers::EXP_AVG => {
            arity(2)?;
            let half_life = params
                .args
                .get(1)
                .and_then(literal)
                .and_then(|v| interval_ms(&v, at).ok().flatten());
            let Some(half_life) = half_life.filter(|h| *h > 0) else {
                return Err(
                    at.error("EXP_AVG(x, INTERVAL 'n' unit): the half-life must be a positive interval literal")
                );
            };
            let x = params.args[0].get_type(input_df)?;
            if !x.is_numeric() {
                return Err(at.error(format!("EXP_AVG needs a numeric argument, not {x}")));
            }
            AnalyticKind::ExpAvg { half_life }
        }
        other => {
            return Err(at.unsupported(format!(
                "window function {} (only aggregates, LAG, FIRST_VALUE, LAST_VALUE, NTH_VALUE and EXP_AVG run OVER a window)",
                other.to_uppercase()
            )));
        }
    };
    Ok(AnalyticFunction {
        kind,
        ignore_nulls: params.null_treatment == Some(NullTreatment::IgnoreNulls),
        value: physical(&params.args[0], input_df, catalog)?,
        default: match (kind, params.args.get(2)) {
            (AnalyticKind::Lag { .. }, Some(d)) => Some(physical(d, input_df, catalog)?),
            _ => None,
        },
        return_type: return_type.clone(),
        name: upper,
    })
}

/// The reference table a plan reads, when it is one (possibly under an alias).
fn reference_table(plan: &LogicalPlan, catalog: &Catalog) -> Option<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let name = scan.table_name.table();
            (catalog.get(name).map(|r| r.kind) == Some(RelationKind::ReferenceTable)).then(|| name.to_string())
        }
        LogicalPlan::SubqueryAlias(a) => reference_table(&a.input, catalog),
        _ => None,
    }
}

fn lower_join(join: &datafusion::logical_expr::Join, catalog: &Catalog, at: At) -> Result<Lowered> {
    use datafusion::common::JoinType;
    // `FROM table JOIN stream` is the same lookup as `FROM stream JOIN table`, with the
    // columns in the order written; `table RIGHT JOIN stream` keeps every stream row.
    let (table, table_first) = match (
        reference_table(&join.left, catalog),
        reference_table(&join.right, catalog),
    ) {
        (None, Some(t)) => (t, false),
        (Some(t), None) => (t, true),
        (Some(_), Some(_)) => return Err(at.unsupported("joining two reference tables")),
        (None, None) => return super::stream_join::lower_stream_join(join, catalog, at),
    };
    if super::stream_join::has_window(join) {
        return Err(at.error("a reference table takes no window (OVER); only a joined stream does"));
    }
    let (stream_plan, table_plan) = if table_first {
        (&join.right, &join.left)
    } else {
        (&join.left, &join.right)
    };
    let stream_outer = match (join.join_type, table_first) {
        (JoinType::Inner, _) => false,
        (JoinType::Left, false) | (JoinType::Right, true) => true,
        (JoinType::Left | JoinType::Right | JoinType::Full, _) => {
            let kind = match join.join_type {
                JoinType::Left => "LEFT",
                JoinType::Right => "RIGHT",
                _ => "FULL",
            };
            return Err(at.unsupported(format!(
                "a {kind} JOIN that keeps the rows of reference table \"{table}\" (a stream is not \
                 joined to every table row); to keep every stream row write \
                 FROM stream LEFT JOIN \"{table}\" ON ... (or \"{table}\" RIGHT JOIN stream)"
            )));
        }
        (other, _) => return Err(at.unsupported(format!("{other} JOIN of a stream with a reference table"))),
    };
    // DataFusion's SQL planner keeps `ON a = b` in the join filter (its optimizer
    // extracts the equalities later); take the equalities between the two sides here.
    let (on, filter) = split_equijoin(join);
    if on.is_empty() {
        return Err(at.unsupported("a stream-to-table join without an equality condition (ON stream.a = table.b)"));
    }
    if filter.is_some() && stream_outer {
        return Err(at.unsupported("a LEFT JOIN condition beyond column equalities"));
    }
    let mut lowered = lower(stream_plan, catalog, at)?;
    let (probe, build): (Vec<Expr>, Vec<Expr>) = if table_first {
        on.iter().map(|(l, r)| (r.clone(), l.clone())).unzip()
    } else {
        on.iter().cloned().unzip()
    };
    let probe_keys = physical_all(&probe, stream_plan.schema(), catalog)?;
    let build_keys = physical_all(&build, table_plan.schema(), catalog)?;
    let data = catalog
        .table_data(&table)
        .ok_or_else(|| at.error(format!("reference table \"{table}\" has no data")))?;
    let output_schema = with_rowtime(&join.schema);
    let (stream_columns, table_columns) = (stream_plan.schema().fields().len(), table_plan.schema().fields().len());
    // The lookup emits the stream's columns first; with the table first, a projection
    // puts them in the order of the query.
    let lookup_schema = if table_first {
        let fields = output_schema.fields();
        let stream_then_table = fields[table_columns..table_columns + stream_columns]
            .iter()
            .chain(&fields[..table_columns])
            .chain(std::iter::once(&fields[table_columns + stream_columns]));
        Arc::new(Schema::new(stream_then_table.cloned().collect::<Vec<_>>()))
    } else {
        Arc::clone(&output_schema)
    };
    lowered.ops.push(Box::new(LookupJoinOp::new(
        Arc::clone(data),
        build_keys,
        probe_keys,
        stream_columns,
        stream_outer,
        Arc::clone(&lookup_schema),
    )?));
    if table_first {
        use datafusion::physical_expr::expressions::Column as PhysicalColumn;
        let as_written = (stream_columns..stream_columns + table_columns)
            .chain(0..stream_columns)
            .map(|i| -> Arc<dyn PhysicalExpr> { Arc::new(PhysicalColumn::new(lookup_schema.field(i).name(), i)) })
            .collect();
        lowered
            .ops
            .push(Box::new(ProjectOp::new(as_written, Arc::clone(&output_schema))));
    }
    lowered.batch_schema = Arc::clone(&output_schema);
    if let Some(filter) = &filter {
        let predicate = physical(filter, &join.schema, catalog)?;
        lowered.ops.push(Box::new(FilterOp::new(predicate)));
    }
    Ok(lowered)
}

/// Splits a join's condition into equalities between a left and a right expression,
/// and what remains.
pub(super) fn split_equijoin(join: &datafusion::logical_expr::Join) -> (Vec<(Expr, Expr)>, Option<Expr>) {
    use datafusion::logical_expr::utils::{conjunction, split_conjunction};
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let mut on = join.on.clone();
    let mut rest = Vec::new();
    let side_of = |e: &Expr| -> Option<bool> {
        let refs = e.column_refs();
        if refs.is_empty() {
            None
        } else if refs.iter().all(|c| join.left.schema().has_column(c)) {
            Some(true)
        } else if refs.iter().all(|c| join.right.schema().has_column(c)) {
            Some(false)
        } else {
            None
        }
    };
    if let Some(filter) = &join.filter {
        for part in split_conjunction(filter) {
            match part {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) => match (side_of(left), side_of(right)) {
                    (Some(true), Some(false)) => on.push((left.as_ref().clone(), right.as_ref().clone())),
                    (Some(false), Some(true)) => on.push((right.as_ref().clone(), left.as_ref().clone())),
                    _ => rest.push(part.clone()),
                },
                _ => rest.push(part.clone()),
            }
        }
    }
    (on, conjunction(rest))
}
