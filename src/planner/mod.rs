//! The planner: application code + configuration → an [`ApplicationPlan`]: the
//! in-application streams and, for each pump, the chain of operators it runs.
//!
//! Each pump's query is planned by DataFusion's SQL planner (`SqlToRel`) against the
//! [`catalog::Catalog`] of streams and tables, type-checked by DataFusion's analyzer,
//! then lowered ([`lower`]) onto streaming operators. No part of the SQL is evaluated
//! here; the plan is pure data plus compiled physical expressions.

pub mod catalog;
pub mod lower;
pub mod markers;
pub mod reference;
pub mod stream_join;
pub mod table_function;
pub mod union;
pub mod window_tvf;

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::Analyzer;
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::tokenizer::Location;

use crate::app::AppSpec;
use crate::dialect::{self, PumpStatement, Statement, normalize};
use crate::error::{ERROR_STREAM, Result, SluiceError, error_stream_schema};
use crate::operators::insert::InsertOp;
use crate::operators::pipeline::Pipeline;
use crate::types::{APPROXIMATE_ARRIVAL_TIME, ColumnDef, ROWTIME, stream_schema};
use catalog::{Catalog, Relation, RelationKind};
use lower::At;

/// An in-application stream or table as the runtime needs it.
#[derive(Debug, Clone)]
pub struct StreamDecl {
    pub name: String,
    pub schema: SchemaRef,
    pub kind: RelationKind,
    pub columns: Vec<ColumnDef>,
}

/// A pump: reads `source`, runs `pipeline`, appends to `target`.
pub struct PumpPlan {
    pub name: String,
    pub source: String,
    pub target: String,
    pub pipeline: Pipeline,
}

pub struct ApplicationPlan {
    pub streams: Vec<StreamDecl>,
    pub pumps: Vec<PumpPlan>,
    /// The reference tables, loaded; the joins read their current version per batch and
    /// the runtime refreshes them.
    pub references: Vec<Arc<reference::ReferenceData>>,
}

impl ApplicationPlan {
    pub fn stream(&self, name: &str) -> Option<&StreamDecl> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// A readable outline of the plan (`sluice explain`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for st in &self.streams {
            s.push_str(&format!(
                "stream {:?} ({:?}): {}\n",
                st.name,
                st.kind,
                st.schema
                    .fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for p in &self.pumps {
            s.push_str(&format!(
                "pump {:?}: {:?} -> [{}] -> {:?}\n",
                p.name,
                p.source,
                p.pipeline.describe().join(" -> "),
                p.target
            ));
        }
        s
    }
}

/// Plans an application: parses its code, registers its streams and tables, and
/// compiles every pump.
pub fn plan_application(app: &AppSpec) -> Result<ApplicationPlan> {
    let statements = dialect::parse_script(&app.sql)?;
    let mut catalog = Catalog::new()?;
    let mut streams: Vec<StreamDecl> = Vec::new();
    let mut references = Vec::new();
    let declare = |streams: &mut Vec<StreamDecl>, catalog: &mut Catalog, decl: StreamDecl| {
        catalog.add(
            &decl.name,
            Relation {
                schema: Arc::clone(&decl.schema),
                kind: decl.kind,
            },
        );
        streams.retain(|s| s.name != decl.name);
        streams.push(decl);
    };
    for input in &app.inputs {
        let columns = input.schema.column_defs();
        // An input's late stream has the input's columns (ROWTIME: the watermark that
        // found the row late); the application selects from it like from the input.
        let late = input.event_time.as_ref().and_then(|e| e.late_stream.clone());
        for name in input.stream_names().into_iter().chain(late) {
            let schema = stream_schema(&columns, true);
            declare(
                &mut streams,
                &mut catalog,
                StreamDecl {
                    name,
                    schema,
                    kind: RelationKind::InputStream,
                    columns: columns.clone(),
                },
            );
        }
    }
    for reference in &app.references {
        let columns = reference.schema.column_defs();
        let fields: Vec<_> = columns
            .iter()
            .map(|c| datafusion::arrow::datatypes::Field::new(&c.name, c.sql_type.arrow_type(), true))
            .collect();
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        declare(
            &mut streams,
            &mut catalog,
            StreamDecl {
                name: reference.table.clone(),
                schema,
                kind: RelationKind::ReferenceTable,
                columns,
            },
        );
        // KDA loads reference data when the application starts; failing that, it does not start.
        let data = Arc::new(reference::ReferenceData::load(reference)?);
        catalog.set_table_data(&reference.table, Arc::clone(&data));
        references.push(data);
    }
    let mut pumps = Vec::new();
    for statement in statements {
        match statement {
            Statement::CreateStream(s) => {
                if let Some(existing) = catalog.get(&s.name)
                    && existing.kind != RelationKind::Stream
                {
                    return Err(SluiceError::Sql {
                        line: s.location.line,
                        column: s.location.column,
                        message: format!("\"{}\" is already an input stream or reference table", s.name),
                    });
                }
                let schema = stream_schema(&s.columns, false);
                declare(&mut streams, &mut catalog, StreamDecl { name: s.name, schema, kind: RelationKind::Stream, columns: s.columns });
            }
            Statement::CreatePump(p) => {
              for mut p in split_union_all(p) {
                pumps.retain(|q: &PumpPlan| q.name != p.name && !q.name.starts_with(&format!("{}#", p.name)));
                // UNION ALL subqueries and table functions become internal streams
                // filled by generated pumps.
                for (decl, branch_pumps) in plan_union_subqueries(&mut p, &catalog)? {
                    declare(&mut streams, &mut catalog, decl);
                    pumps.extend(branch_pumps);
                }
                for (decl, pump) in plan_table_functions(&mut p, &catalog)? {
                    declare(&mut streams, &mut catalog, decl);
                    pumps.push(pump);
                }
                for (decl, window_pumps) in window_tvf::plan_windows(&mut p, &mut catalog, &streams)? {
                    declare(&mut streams, &mut catalog, decl);
                    pumps.extend(window_pumps);
                }
                let mut pump = plan_pump(&p, &catalog, &streams)?;
                // A join of two streams reads an internal stream its side pumps fill.
                if let Some((decls, feeds)) = stream_join::plan_feeds(&p, &catalog, &mut pump)? {
                    for decl in decls {
                        declare(&mut streams, &mut catalog, decl);
                    }
                    pumps.extend(feeds);
                }
                pumps.push(pump);
              }
            }
            Statement::Query { location, .. } => {
                return Err(SluiceError::Sql {
                    line: location.line,
                    column: location.column,
                    message: "a query in application code must run in a pump: CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"STREAM\" SELECT STREAM ...".into(),
                })
            }
        }
    }
    streams.push(StreamDecl {
        name: ERROR_STREAM.to_string(),
        schema: error_stream_schema(),
        kind: RelationKind::Stream,
        columns: vec![],
    });
    Ok(ApplicationPlan {
        streams,
        pumps,
        references,
    })
}

/// Plans one query into a DataFusion logical plan, analysed (types coerced).
pub fn plan_query(query: &ast::Query, catalog: &Catalog, at: Location) -> Result<LogicalPlan> {
    if let Some((loc, feature)) = crate::dialect::unsupported::find_in_query(query) {
        let loc = if loc.line == 0 { at } else { loc };
        return Err(SluiceError::Unsupported {
            line: loc.line,
            column: loc.column,
            feature,
        });
    }
    let mut query = Box::new(query.clone());
    stream_join::windows_into_conditions(
        &mut query,
        At {
            line: at.line,
            column: at.column,
        },
    )?;
    normalize::normalize_query(&mut query);
    let options = ParserOptions::new()
        .with_enable_ident_normalization(false)
        .with_map_string_types_to_utf8view(false)
        .with_collect_spans(true);
    let planner = SqlToRel::new_with_options(catalog, options);
    let plan = planner
        .sql_statement_to_plan(ast::Statement::Query(query))
        .map_err(|e| df_error(e, at))?;
    let plan = Analyzer::new()
        .execute_and_check(plan, catalog.state().config_options(), |_, _| {})
        .map_err(|e| df_error(e, at))?;
    stream_join::where_into_joins(plan)
}

/// A pump whose query is `A UNION ALL B ...` becomes one pump per branch writing the
/// same stream: its hub merges the writers in ROWTIME order, which is what KDA's
/// streaming UNION ALL means. The first branch keeps the pump's name.
fn split_union_all(mut p: PumpStatement) -> Vec<PumpStatement> {
    // An ordered UNION ALL sorts the merged stream: it stays one pump over a subquery.
    union::wrap_ordered_union(&mut p.query);
    if p.query.order_by.is_some() || p.query.limit_clause.is_some() {
        return vec![p];
    }
    let Some(parts) = union::union_all_branches(&p.query.body) else {
        return vec![p];
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut query = p.query.clone();
            query.body = Box::new(body);
            PumpStatement {
                name: if i == 0 {
                    p.name.clone()
                } else {
                    format!("{}#UNION{}", p.name, i + 1)
                },
                query,
                ..p.clone()
            }
        })
        .collect()
}

/// Takes the UNION ALL subqueries out of a pump's query and plans, for each, the
/// internal stream (the first branch's columns) and one pump per branch writing it.
fn plan_union_subqueries(p: &mut PumpStatement, catalog: &Catalog) -> Result<Vec<(StreamDecl, Vec<PumpPlan>)>> {
    let at = At {
        line: p.location.line,
        column: p.location.column,
    };
    let mut planned = Vec::new();
    for call in union::extract(&mut p.query, &p.name) {
        let mut schema = None;
        let mut branch_pumps = Vec::new();
        for (i, branch) in call.branches.iter().enumerate() {
            let plan = plan_query(branch, catalog, p.location)?;
            let lowered = lower::lower(&plan, catalog, at)?;
            if lowered.source == stream_join::FEED_PLACEHOLDER {
                return Err(at.unsupported(
                    "a stream-to-stream join inside a UNION ALL branch (join in a pump of its own, then union its stream)",
                ));
            }
            let fields = plan.schema().fields();
            let sources: Vec<usize> = (0..fields.len()).filter(|&c| fields[c].name() != ROWTIME).collect();
            let target: &SchemaRef = schema.get_or_insert_with(|| {
                let mut columns: Vec<_> = sources
                    .iter()
                    .map(|&c| fields[c].as_ref().clone().with_nullable(true))
                    .collect();
                columns.push(datafusion::arrow::datatypes::Field::new(
                    ROWTIME,
                    crate::types::TIMESTAMP_TYPE,
                    false,
                ));
                Arc::new(datafusion::arrow::datatypes::Schema::new(columns))
            });
            if sources.len() != target.fields().len() - 1 {
                return Err(at.error(format!(
                    "the branches of a UNION ALL must select as many columns: branch {} selects {}, the first {}",
                    i + 1,
                    sources.len(),
                    target.fields().len() - 1
                )));
            }
            let mut ops = lowered.ops;
            let max_chars = vec![None; sources.len()];
            ops.push(Box::new(InsertOp::new(
                Arc::clone(target),
                sources.into_iter().map(Some).collect(),
                max_chars,
            )));
            let name = format!("{}#{}", call.stream, i + 1);
            branch_pumps.push(PumpPlan {
                name: name.clone(),
                source: lowered.source,
                target: call.stream.clone(),
                pipeline: Pipeline::new(&name, ops),
            });
        }
        let decl = StreamDecl {
            name: call.stream.clone(),
            schema: schema.expect("a UNION ALL has branches"),
            kind: RelationKind::Stream,
            columns: vec![],
        };
        planned.push((decl, branch_pumps));
    }
    Ok(planned)
}

/// Takes the table-function calls out of a pump's query and plans, for each, the
/// internal stream and the generated pump that runs the cursor and the function.
fn plan_table_functions(p: &mut PumpStatement, catalog: &Catalog) -> Result<Vec<(StreamDecl, PumpPlan)>> {
    use crate::operators::table_functions;
    let at = At {
        line: p.location.line,
        column: p.location.column,
    };
    let calls = table_function::extract(&mut p.query, &p.name, table_functions::is_table_function);
    let mut planned = Vec::with_capacity(calls.len());
    for call in calls {
        let plan = plan_query(&call.cursor, catalog, p.location)?;
        let mut lowered = lower::lower(&plan, catalog, at)?;
        if lowered.source == stream_join::FEED_PLACEHOLDER {
            return Err(at.unsupported(
                "a stream-to-stream join inside CURSOR(...) (join in a pump of its own, then read its stream)",
            ));
        }
        let args = call
            .args
            .iter()
            .map(table_function::literal)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| at.error(format!("{}: {e}", call.function)))?;
        let schema =
            table_functions::output_schema(&call.function, &args, &lowered.batch_schema).map_err(|e| at.error(e))?;
        let op = table_functions::build(&call.function, &args, &lowered.batch_schema).map_err(|e| at.error(e))?;
        lowered.ops.push(op);
        let name = call.stream.clone();
        let decl = StreamDecl {
            name: name.clone(),
            schema,
            kind: RelationKind::Stream,
            columns: vec![],
        };
        let pump = PumpPlan {
            name: name.clone(),
            source: lowered.source,
            target: name.clone(),
            pipeline: Pipeline::new(&name, lowered.ops),
        };
        planned.push((decl, pump));
    }
    Ok(planned)
}

fn plan_pump(p: &PumpStatement, catalog: &Catalog, streams: &[StreamDecl]) -> Result<PumpPlan> {
    let at = At {
        line: p.location.line,
        column: p.location.column,
    };
    let target = streams
        .iter()
        .find(|s| s.name == p.target && s.kind == RelationKind::Stream)
        .ok_or_else(|| {
            at.error(format!(
                "pump \"{}\" inserts into \"{}\", which is not a stream created by CREATE STREAM",
                p.name, p.target
            ))
        })?;
    let plan = plan_query(&p.query, catalog, p.location)?;
    let lowered = lower::lower(&plan, catalog, at)?;

    // Positional mapping of query columns onto the target columns.
    let query_fields = plan.schema().fields();
    let rowtime_override = rowtime_override(&plan);
    let mut query_columns: Vec<usize> = (0..query_fields.len())
        .filter(|&i| Some(i) != rowtime_override)
        .collect();
    let target_columns: Vec<usize> = match &p.columns {
        None => (0..target.columns.len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                target
                    .columns
                    .iter()
                    .position(|c| &c.name == n)
                    .ok_or_else(|| at.error(format!("stream \"{}\" has no column \"{n}\"", target.name)))
            })
            .collect::<Result<_>>()?,
    };
    if query_columns.len() > target_columns.len() {
        // `SELECT STREAM *` also expands the implicit columns; KDA's `*` does not.
        query_columns.retain(|&i| !matches!(query_fields[i].name().as_str(), ROWTIME | APPROXIMATE_ARRIVAL_TIME));
    }
    if query_columns.len() != target_columns.len() {
        return Err(at.error(format!(
            "pump \"{}\" selects {} columns but inserts into {} columns of \"{}\"",
            p.name,
            query_columns.len(),
            target_columns.len(),
            target.name
        )));
    }
    let mut sources = vec![None; target.columns.len()];
    for (q, t) in query_columns.iter().zip(&target_columns) {
        sources[*t] = Some(*q);
    }
    let max_chars = target.columns.iter().map(|c| c.sql_type.max_chars()).collect();
    let mut ops = lowered.ops;
    if let Some(column) = rowtime_override {
        ops.push(Box::new(crate::operators::rowtime_override::RowtimeOverrideOp::new(
            column,
        )));
    }
    ops.push(Box::new(InsertOp::new(Arc::clone(&target.schema), sources, max_chars)));
    Ok(PumpPlan {
        name: p.name.clone(),
        source: lowered.source,
        target: p.target.clone(),
        pipeline: Pipeline::new(&p.name, ops),
    })
}

/// The output column a pump's select list names `ROWTIME` with an expression of its own
/// (`SELECT STREAM event_time AS ROWTIME, ...`): it sets the rows' ROWTIME instead of
/// filling a column. Selecting the input's ROWTIME itself changes nothing.
fn rowtime_override(plan: &LogicalPlan) -> Option<usize> {
    use datafusion::logical_expr::Expr;
    let projection = match plan {
        LogicalPlan::Projection(p) => p,
        LogicalPlan::Sort(s) => match s.input.as_ref() {
            LogicalPlan::Projection(p) if p.schema.fields().len() == plan.schema().fields().len() => p,
            _ => return None,
        },
        _ => return None,
    };
    projection.expr.iter().position(|e| match e {
        Expr::Alias(a) if a.name == ROWTIME => !matches!(a.expr.as_ref(), Expr::Column(c) if c.name == ROWTIME),
        _ => false,
    })
}

/// A DataFusion planning error as a positioned SQL error: DataFusion's diagnostic span
/// when it has one, else the statement's start.
fn df_error(e: DataFusionError, at: Location) -> SluiceError {
    let (line, column) = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line, s.start.column))
        .filter(|(l, _)| *l > 0)
        .unwrap_or((at.line, at.column));
    let message = e.strip_backtrace().replace("Error during planning: ", "");
    if let Some(name) = message
        .split("Invalid function '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
    {
        return SluiceError::Sql {
            line,
            column,
            message: format!("unknown function {}", name.to_uppercase()),
        };
    }
    if message.contains("This feature is not implemented") || message.starts_with("Not implemented") {
        return SluiceError::Unsupported {
            line,
            column,
            feature: message,
        };
    }
    SluiceError::Sql { line, column, message }
}
