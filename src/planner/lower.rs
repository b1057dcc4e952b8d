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
    Ok(create_physical_expr(
        &e,
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
            if let Some(window) = super::window_tvf::window_source(&agg.input, catalog) {
                return super::window_tvf::lower_aggregate(agg, window, lowered, catalog, at);
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
        LogicalPlan::Sort(sort) => lower_sort(sort, catalog, at),
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
    // projection below (when it is also selected).
    let written = through_projections(&first.expr, &sort.input);
    let declared_monotonic = matches!(&written, Expr::ScalarFunction(f) if f.name() == "monotonic");
    let is_time = matches!(first.expr.get_type(input_df)?, DataType::Timestamp(_, _));
    if !first.asc || !is_time || !(declared_monotonic || is_rowtime_bucket(&written)) {
        return Err(at.error(
            "a streaming ORDER BY must lead with an ascending, monotonic expression of time such as \
             ROWTIME, FLOOR(s.ROWTIME TO SECOND) or STEP(s.ROWTIME BY INTERVAL '10' SECOND)",
        ));
    }
    // A key of ROWTIME alone is evaluated on the batch's trailing ROWTIME column, so a
    // rowtime bound can be probed for the key's value and close a group while idle.
    let leading = if is_rowtime_bucket(&written) {
        on_trailing_rowtime(&written, lowered.batch_schema.fields().len() - 1, catalog)?
    } else {
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
    lowered.ops.push(Box::new(StreamingSortOp::new(leading, rest, schema)));
    Ok(lowered)
}

/// `e` with each column that a projection below computed replaced by the projection's
/// expression (recursively), so `FLOOR(s.ROWTIME TO SECOND)` is seen as written.
fn through_projections(e: &Expr, input: &LogicalPlan) -> Expr {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let LogicalPlan::Projection(p) = input else {
        return e.clone();
    };
    e.clone()
        .transform(|x| {
            if let Expr::Column(c) = &x
                && let Some(i) = p.schema.maybe_index_of_column(c)
            {
                let inner = p.expr[i].clone().unalias();
                return Ok(Transformed::yes(through_projections(&inner, &p.input)));
            }
            Ok(Transformed::no(x))
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
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
