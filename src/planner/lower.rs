//! Lowering: DataFusion's logical plan of a pump's query → a chain of streaming
//! operators. Each logical node maps onto one operator; nodes that have no streaming
//! operator yet are reported as unsupported features, by name.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
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
use crate::operators::project::ProjectOp;
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
            if agg.group_expr.iter().any(is_stagger_marker) {
                return Err(at.unsupported("stagger windows (WINDOWED BY STAGGER)"));
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
        LogicalPlan::Window(_) => Err(at.unsupported("sliding windows (aggregates OVER a window)")),
        LogicalPlan::Join(_) => Err(at.unsupported("joins (stream-to-table and stream-to-stream)")),
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
