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
use crate::operators::sliding::{Frame, SlidingWindowOp, WindowAggregate};
use crate::operators::stagger::StaggerAggregateOp;
use crate::operators::tumbling::{AggregateSlot, TumblingAggregateOp};
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
fn with_rowtime(schema: &DFSchema) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
    Arc::new(Schema::new(fields))
}

fn physical(e: &Expr, schema: &DFSchema, catalog: &Catalog) -> Result<Arc<dyn PhysicalExpr>> {
    Ok(create_physical_expr(
        e,
        schema,
        catalog.state().execution_props(),
        &PhysicalPlanningContext::default(),
    )?)
}

/// Is `e` a function of ROWTIME alone (so monotonic in time, usable as a window key)?
fn is_rowtime_bucket(e: &Expr) -> bool {
    let refs = e.column_refs();
    !refs.is_empty() && refs.iter().all(|c| c.name == ROWTIME)
}

fn is_stagger_marker(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name() == STAGGER_WINDOW)
}

pub fn lower(plan: &LogicalPlan, catalog: &Catalog, at: At) -> Result<Lowered> {
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
            let exprs = projection
                .expr
                .iter()
                .map(|e| physical(e, projection.input.schema(), catalog))
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
            let Some(time_key) = agg.group_expr.iter().position(is_rowtime_bucket) else {
                return Err(at.error(
                    "a streaming GROUP BY needs a monotonic expression of ROWTIME among its keys, \
                     such as STEP(s.ROWTIME BY INTERVAL '1' MINUTE) or FLOOR(s.ROWTIME TO MINUTE)",
                ));
            };
            let input_df = agg.input.schema();
            let input_schema = Arc::clone(&lowered.batch_schema);
            let group_exprs = agg
                .group_expr
                .iter()
                .map(|e| physical(e, input_df, catalog))
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
                    e,
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
                time_key,
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
        LogicalPlan::Sort(_) => Err(at.unsupported("streaming ORDER BY")),
        LogicalPlan::Distinct(_) => Err(at.unsupported("SELECT STREAM DISTINCT")),
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
        #[allow(deprecated)]
        let (expr, filter, _) =
            create_aggregate_expr_and_maybe_filter(e, input_df, &input_schema, catalog.state().execution_props())?;
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
        let WindowFunctionDefinition::AggregateUDF(udaf) = fun else {
            return Err(at.unsupported(format!(
                "window function {} (only aggregates run OVER a window so far)",
                fun.name()
            )));
        };
        if params.distinct {
            return Err(at.error(format!(
                "{}(DISTINCT ...) is not allowed over a sliding window",
                udaf.name()
            )));
        }
        if params.filter.is_some() {
            return Err(at.unsupported("FILTER on a windowed aggregate"));
        }
        let frame = &params.window_frame;
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
            (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => Frame::Range(interval_ms(v, at)?),
            _ => return Err(at.unsupported("this window frame (use RANGE INTERVAL ... PRECEDING or ROWS n PRECEDING)")),
        };
        let args = physical_all(&params.args, input_df, catalog)?;
        let partition_by = physical_all(&params.partition_by, input_df, catalog)?;
        let key_types = types_of(&partition_by, &input_schema)?;
        let aggregate = AggregateExprBuilder::new(Arc::clone(udaf), args)
            .schema(Arc::clone(&input_schema))
            .alias(name)
            .build()?;
        specs.push((
            WindowAggregate {
                aggregate: Arc::new(aggregate),
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
    let table = match (
        reference_table(&join.left, catalog),
        reference_table(&join.right, catalog),
    ) {
        (None, Some(t)) => t,
        (Some(_), None) => {
            return Err(
                at.unsupported("a join with the reference table first; write the stream first: FROM stream JOIN table")
            );
        }
        (Some(_), Some(_)) => return Err(at.unsupported("joining two reference tables")),
        (None, None) => return Err(at.unsupported("stream-to-stream joins")),
    };
    let left_outer = match join.join_type {
        JoinType::Inner => false,
        JoinType::Left => true,
        other => return Err(at.unsupported(format!("{other} JOIN of a stream with a reference table"))),
    };
    // DataFusion's SQL planner keeps `ON a = b` in the join filter (its optimizer
    // extracts the equalities later); take the equalities between the two sides here.
    let (on, filter) = split_equijoin(join);
    if on.is_empty() {
        return Err(at.unsupported("a stream-to-table join without an equality condition (ON stream.a = table.b)"));
    }
    if filter.is_some() && left_outer {
        return Err(at.unsupported("a LEFT JOIN condition beyond column equalities"));
    }
    let mut lowered = lower(&join.left, catalog, at)?;
    let probe: Vec<Expr> = on.iter().map(|(l, _)| l.clone()).collect();
    let build: Vec<Expr> = on.iter().map(|(_, r)| r.clone()).collect();
    let probe_keys = physical_all(&probe, join.left.schema(), catalog)?;
    let build_keys = physical_all(&build, join.right.schema(), catalog)?;
    let data = catalog
        .table_data(&table)
        .ok_or_else(|| at.error(format!("reference table \"{table}\" has no data")))?;
    let output_schema = with_rowtime(&join.schema);
    lowered.ops.push(Box::new(LookupJoinOp::new(
        Arc::clone(data),
        build_keys,
        probe_keys,
        join.left.schema().fields().len(),
        left_outer,
        Arc::clone(&output_schema),
    )?));
    lowered.batch_schema = Arc::clone(&output_schema);
    if let Some(filter) = &filter {
        let predicate = physical(filter, &join.schema, catalog)?;
        lowered.ops.push(Box::new(FilterOp::new(predicate)));
    }
    Ok(lowered)
}

/// Splits a join's condition into equalities between a left and a right expression,
/// and what remains.
fn split_equijoin(join: &datafusion::logical_expr::Join) -> (Vec<(Expr, Expr)>, Option<Expr>) {
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
