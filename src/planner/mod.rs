//! The planner: application code + configuration → an [`ApplicationPlan`]: the
//! in-application streams and, for each pump, the chain of operators it runs.
//!
//! Each pump's query is planned by DataFusion's SQL planner (`SqlToRel`) against the
//! [`catalog::Catalog`] of streams and tables, type-checked by DataFusion's analyzer,
//! then lowered ([`lower`]) onto streaming operators. No part of the SQL is evaluated
//! here; the plan is pure data plus compiled physical expressions.

pub mod catalog;
pub mod event_time;
pub mod lower;
pub mod markers;
pub mod reference;
pub mod stream_join;
pub mod table_function;
pub mod union;
mod unknown_field;
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
use crate::types::{
    APPROXIMATE_ARRIVAL_TIME, ColumnDef, ROWTIME, input_stream_columns, is_implicit_input_column, stream_schema,
};
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
    if app.sql.len() > MAX_CODE_BYTES {
        return Err(SluiceError::Sql {
            line: 1,
            column: 1,
            message: format!(
                "the application code is {} bytes; sluice reads at most {} KiB of it (KDA allowed 100 KB)",
                app.sql.len(),
                MAX_CODE_BYTES / 1024
            ),
        });
    }
    // Syntax trees are walked recursively (cloned, visited, dropped) by sqlparser and
    // by sluice; DataFusion grows its own stack as needed, the rest cannot. A long
    // generated chain (`x = 1 OR x = 2 OR ...`, thousands of terms) is a tree thousands
    // of levels deep, so planning runs on a thread whose stack fits the deepest tree
    // that code of the largest size can write. The stack is reserved, not used: memory
    // is taken only as deep as a tree goes.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sluice-planner".into())
            .stack_size(PLANNING_STACK_BYTES)
            .spawn_scoped(scope, || plan_application_on_this_thread(app))
            .map_err(|e| SluiceError::runtime(format!("starting the planner thread: {e}")))?
            .join()
            .map_err(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                SluiceError::runtime(format!("the planner failed unexpectedly (a bug in sluice): {why}"))
            })?
    })
}

/// The most application code sluice plans: five times KDA's limit.
pub const MAX_CODE_BYTES: usize = 512 * 1024;

/// The planner thread's stack: about 2 KB per level of the deepest expression that
/// [`MAX_CODE_BYTES`] of code can write (one operator per two bytes), with room to spare.
const PLANNING_STACK_BYTES: usize = 1 << 30;

fn plan_application_on_this_thread(app: &AppSpec) -> Result<ApplicationPlan> {
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
        if let Some(event_time) = &input.event_time {
            for name in input.stream_names() {
                catalog.set_event_time_column(&name, &event_time.column);
            }
            if let Some(late) = &event_time.late_stream {
                catalog.set_late_stream(late);
            }
        }
        for name in input.stream_names().into_iter().chain(late) {
            let schema = stream_schema(&input_stream_columns(&columns), true);
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
        // Planning needs the columns only: the runtime reads the rows before the
        // application starts (KDA does not start one whose reference data does not load).
        let data = Arc::new(reference::ReferenceData::declared(reference)?);
        catalog.set_table_data(&reference.table, Arc::clone(&data));
        references.push(data);
    }
    let mut pumps = Vec::new();
    let mut pump_locations = std::collections::HashMap::new();
    for statement in statements {
        match statement {
            Statement::CreateStream(s) => {
                let at = At {
                    line: s.location.line,
                    column: s.location.column,
                };
                if s.name == ERROR_STREAM {
                    return Err(at.error(format!(
                        "\"{ERROR_STREAM}\" is the system's error stream, which every application has; \
                         give the stream another name (route \"{ERROR_STREAM}\" to an output to keep its rows)"
                    )));
                }
                if let Some(existing) = catalog.get(&s.name) {
                    if existing.kind != RelationKind::Stream {
                        return Err(at.error(format!("\"{}\" is already an input stream or reference table", s.name)));
                    }
                    if !s.or_replace {
                        return Err(at.error(format!(
                            "stream \"{}\" is already defined; write CREATE OR REPLACE STREAM to replace it",
                            s.name
                        )));
                    }
                    tracing::warn!(
                        "stream \"{}\" is defined twice; the definition at line {} replaces the earlier one",
                        s.name,
                        s.location.line
                    );
                }
                let schema = stream_schema(&s.columns, false);
                declare(&mut streams, &mut catalog, StreamDecl { name: s.name, schema, kind: RelationKind::Stream, columns: s.columns });
            }
            Statement::CreatePump(p) => {
              if pumps.iter().any(|q: &PumpPlan| q.name == p.name) {
                  if !p.or_replace {
                      return Err(SluiceError::Sql {
                          line: p.location.line,
                          column: p.location.column,
                          message: format!(
                              "pump \"{}\" is already defined; write CREATE OR REPLACE PUMP to replace it",
                              p.name
                          ),
                      });
                  }
                  tracing::warn!(
                      "pump \"{}\" is defined twice; the definition at line {} replaces the earlier one",
                      p.name,
                      p.location.line
                  );
              }
              pump_locations.insert(p.name.clone(), p.location);
              for mut p in split_union_all(p) {
                pumps.retain(|q: &PumpPlan| q.name != p.name && !q.name.starts_with(&format!("{}#", p.name)));
                // UNION ALL subqueries and table functions become internal streams
                // filled by generated pumps.
                for (decl, branch_pumps) in plan_union_subqueries(&mut p, &catalog)? {
                    declare(&mut streams, &mut catalog, decl);
                    pumps.extend(branch_pumps);
                }
                for (decl, pump) in plan_table_functions(&mut p, &catalog, &streams)? {
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
    refuse_cycles(&pumps, &pump_locations)?;
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

/// Pumps that feed each other in a circle (a stream into itself, or A → B → A) would wait
/// on their own output for ever: each stream's time can only advance once its writers'
/// time has, so nothing ever flows. KDA gives such a loop no meaning; refuse it, naming
/// the circle.
fn refuse_cycles(pumps: &[PumpPlan], locations: &std::collections::HashMap<String, Location>) -> Result<()> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut writers: BTreeMap<&str, Vec<&PumpPlan>> = BTreeMap::new();
    for p in pumps {
        writers.entry(p.target.as_str()).or_default().push(p);
    }
    // Depth-first from every stream over "is written by a pump that reads"; a stream met
    // again on the current path closes a circle.
    fn visit<'a>(
        stream: &'a str,
        writers: &BTreeMap<&'a str, Vec<&'a PumpPlan>>,
        path: &mut Vec<(&'a str, &'a str)>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<(String, String)> {
        if let Some(start) = path.iter().position(|(s, _)| *s == stream) {
            // The path runs target → source; the circle reads better source → target.
            // Each entry is a stream and the pump writing it, which reads the entry
            // before it in data order: reversed, the path is the data's way round.
            let mut circle = format!("\"{stream}\"");
            let mut last = "";
            for (s, p) in path[start..].iter().rev() {
                circle.push_str(&format!(" → pump \"{p}\" → \"{s}\""));
                last = p;
            }
            return Some((circle, last.to_string()));
        }
        if !done.insert(stream) {
            return None;
        }
        for p in writers.get(stream).into_iter().flatten() {
            path.push((stream, p.name.as_str()));
            let found = visit(p.source.as_str(), writers, path, done);
            path.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let mut done = BTreeSet::new();
    for p in pumps {
        let mut path = Vec::new();
        if let Some((circle, pump)) = visit(p.target.as_str(), &writers, &mut path, &mut done) {
            // Generated pumps (`P#...`) belong to the statement of pump P.
            let base = pump.split('#').next().unwrap_or(&pump);
            let at = locations.get(base).copied().unwrap_or(Location { line: 1, column: 1 });
            return Err(SluiceError::Sql {
                line: at.line,
                column: at.column,
                message: format!(
                    "pumps form a cycle, so no row could ever flow through it: {circle}; \
                     a pump must not read, directly or through other pumps, the stream it writes"
                ),
            });
        }
    }
    Ok(())
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
    let aggregates = catalog.state().aggregate_functions();
    crate::dialect::output_rowtime::mark(&mut query, &|name| aggregates.contains_key(name));
    let shared_names = dialect::select_names::make_unique(&mut query);
    let options = ParserOptions::new()
        .with_enable_ident_normalization(false)
        .with_map_string_types_to_utf8view(false)
        .with_collect_spans(true);
    let planner = SqlToRel::new_with_options(catalog, options);
    let plan = planner
        .sql_statement_to_plan(ast::Statement::Query(query))
        .map_err(|e| planning_error(e, &shared_names, at))?;
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
fn plan_table_functions(
    p: &mut PumpStatement,
    catalog: &Catalog,
    streams: &[StreamDecl],
) -> Result<Vec<(StreamDecl, PumpPlan)>> {
    use crate::operators::table_functions;
    let at = At {
        line: p.location.line,
        column: p.location.column,
    };
    let calls = table_function::extract(&mut p.query, &p.name, table_functions::is_table_function);
    let mut planned = Vec::with_capacity(calls.len());
    for call in calls {
        let plan = plan_query(&call.cursor, catalog, p.location)?;
        let plan = table_function::cursor_columns(plan, &call.cursor, streams).map_err(|e| df_error(e, p.location))?;
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
        query_columns.retain(|&i| !is_implicit_query_column(&plan, i, streams));
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
        let given = query_fields[column].data_type();
        if !matches!(given, datafusion::arrow::datatypes::DataType::Timestamp(_, _)) {
            return Err(at.error(format!(
                "`... AS ROWTIME` sets each row's time, so it needs a TIMESTAMP expression; this one is {}: \
                 convert it first, e.g. CHAR_TO_TIMESTAMP('yyyy-MM-dd HH:mm:ss', x) AS ROWTIME",
                crate::types::sql_name_of(given)
            )));
        }
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
/// filling a column. Selecting the input's or the output row's ROWTIME itself changes
/// nothing.
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
        Expr::Alias(a) if a.name == ROWTIME => {
            !matches!(a.expr.as_ref(), Expr::Column(c) if c.name == ROWTIME) && !lower::is_output_rowtime(&a.expr)
        }
        _ => false,
    })
}

/// DataFusion's message in the dialect's words: without the error kind's prefix, the
/// request for a bug report (the user's typo is not DataFusion's bug), and Rust debug
/// dumps of syntax nodes, which become the text the user wrote. Returns the position of
/// the token a dump named, if any.
pub(crate) fn tidy_message(raw: &str) -> (String, Option<(u64, u64)>) {
    use std::sync::LazyLock;
    static IDENT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"Identifier\(Ident \{ value: "((?:[^"\\]|\\.)*)", quote_style: (None|Some\('(.)'\)), span: Span\(Location\((\d+),\s*(\d+)\)\.\.Location\(\d+,\s*\d+\)\) \}\)"#,
        )
        .expect("a valid pattern")
    });
    static BUG_REPORT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?s)\.?\s*This issue was likely caused by a bug in DataFusion's code.*")
            .expect("a valid pattern")
    });
    let mut message = raw.to_string();
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "Schema error: ",
        "Internal error: ",
        "Optimizer rule ",
    ] {
        message = message.replace(prefix, "");
    }
    message = BUG_REPORT.replace(&message, "").into_owned();
    message = unknown_field::in_dialect_words(&message);
    let mut token_at = None;
    if let Some(c) = IDENT.captures(&message) {
        let (l, col) = (c[4].parse().unwrap_or(0), c[5].parse().unwrap_or(0));
        if l > 0 {
            token_at = Some((l, col));
        }
    }
    message = IDENT
        .replace_all(&message, |c: &regex::Captures| match c.get(3) {
            Some(q) => format!("{0}{1}{0}", q.as_str(), &c[1]),
            None => c[1].to_string(),
        })
        .into_owned();
    message = sql_rendering(&message);
    message = without_debug_dump(&message);
    if message.contains("does not support logical expression AggregateFunction") {
        message = "an aggregate function (COUNT, SUM, MIN, ...) is used where a value of each row is \
                   needed (in WHERE, in GROUP BY, or in a query without GROUP BY): aggregates belong in the \
                   select list or HAVING of a GROUP BY query, or OVER a window"
            .to_string();
    }
    if message.contains("Unsupported interval argument") || message.contains("INTERVAL expression cannot be") {
        let found = message.rsplit(": ").next().unwrap_or_default().trim().to_string();
        let found = found
            .strip_prefix("INTERVAL expression cannot be ")
            .unwrap_or(&found)
            .to_string();
        message = format!("INTERVAL needs a quoted number and a unit, such as INTERVAL '10' SECOND; found {found}");
    }
    (message, token_at)
}

/// Whether query column `i` is an implicit column that `SELECT STREAM *` expanded:
/// ROWTIME, APPROXIMATE_ARRIVAL_TIME, or an envelope column (PARTITION_KEY, ...) of an
/// input stream that does not declare that name itself, or of an internal stream that
/// carried it over from one. A declared column of an envelope name is an ordinary column.
pub(crate) fn is_implicit_query_column(plan: &LogicalPlan, i: usize, streams: &[StreamDecl]) -> bool {
    let (qualifier, field) = plan.schema().qualified_field(i);
    let name = field.name().as_str();
    if matches!(name, ROWTIME | APPROXIMATE_ARRIVAL_TIME) {
        return true;
    }
    let Some(qualifier) = qualifier.filter(|_| is_implicit_input_column(name)) else {
        return false;
    };
    let relation = relation_behind_alias(plan, qualifier.table());
    match streams.iter().find(|s| s.name == relation) {
        Some(s) if s.kind == RelationKind::InputStream => !s.columns.iter().any(|c| c.name == name),
        // Generated streams (`<pump>#...`) pass on the columns of what they read.
        Some(s) => s.name.contains('#'),
        None => false,
    }
}

/// The stream or table a FROM alias (`FROM "SOURCE_SQL_STREAM_001" AS s`) names; the
/// name itself when it is no alias.
fn relation_behind_alias(plan: &LogicalPlan, alias: &str) -> String {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut relation = alias.to_string();
    let _ = plan.apply(|node| {
        if let LogicalPlan::SubqueryAlias(a) = node
            && a.alias.table() == alias
            && let LogicalPlan::TableScan(scan) = a.input.as_ref()
        {
            relation = scan.table_name.table().to_string();
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    relation
}

/// An error of DataFusion's SQL planner: a reference to a name that several select items
/// share is ambiguous (and located at the reference); any other is positioned as usual.
fn planning_error(e: DataFusionError, shared: &[dialect::select_names::SharedName], at: Location) -> SluiceError {
    let Some(shared) = dialect::select_names::ambiguous_reference(&e, shared) else {
        return df_error(e, at);
    };
    let at = shared.reference.unwrap_or(at);
    SluiceError::Sql {
        line: at.line,
        column: at.column,
        message: format!(
            "\"{0}\" is ambiguous: a select list names two columns {0}; give them different aliases",
            shared.name
        ),
    }
}

/// A message that still carries a Rust debug dump of a syntax or plan node (`Unsupported
/// ast node TableFunction { expr: ... }`) keeps the node's name and loses the dump.
fn without_debug_dump(message: &str) -> String {
    use std::sync::LazyLock;
    static DUMP: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\b([A-Z][A-Za-z0-9]+)(?:\(+[A-Z][A-Za-z0-9]+)? \{ [a-z_]+: ").expect("a valid pattern")
    });
    let Some(found) = DUMP.captures(message) else {
        return message.to_string();
    };
    let name = match &found[1] {
        "Wildcard" => "* (a wildcard)",
        "TableFunction" => "TABLE(...)",
        other => other,
    };
    let start = found.get(0).map_or(0, |m| m.start());
    format!("{}{name}", &message[..start])
}

/// DataFusion names expressions by their Rust rendering (`Int64(1)`,
/// `IntervalMonthDayNano("IntervalMonthDayNano { months: 0, days: 0, nanoseconds: ... }")`,
/// `Utf8("x")`); a message shows them as SQL writes them.
fn sql_rendering(message: &str) -> String {
    use std::sync::LazyLock;
    static INTERVAL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"IntervalMonthDayNano\("+IntervalMonthDayNano \{ months: (-?\d+), days: (-?\d+), nanoseconds: (-?\d+) \}"+\)"#,
        )
        .expect("a valid pattern")
    });
    static COUNT_STAR: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"count\(Int64\(1\)\)").expect("a valid pattern"));
    static NUMBER: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"\b(?:U?Int(?:8|16|32|64)|Float(?:16|32|64)|Decimal128)\((-?[0-9.eE+-]+)(?:, *\d+, *-?\d+)?\)",
        )
        .expect("a valid pattern")
    });
    static STRING: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"\b(?:Utf8|LargeUtf8|Utf8View)\("+([^"]*)"+\)"#).expect("a valid pattern")
    });
    let message = INTERVAL.replace_all(message, |c: &regex::Captures| {
        let (months, days, nanos): (i64, i64, i64) = (
            c[1].parse().unwrap_or(0),
            c[2].parse().unwrap_or(0),
            c[3].parse().unwrap_or(0),
        );
        if months != 0 {
            format!("INTERVAL '{months}' MONTH")
        } else {
            let ms = days * 86_400_000 + nanos / 1_000_000;
            if ms % 1_000 == 0 {
                format!("INTERVAL '{}' SECOND", ms / 1_000)
            } else {
                format!("INTERVAL '{}' SECOND", ms as f64 / 1_000.0)
            }
        }
    });
    let message = COUNT_STAR.replace_all(&message, "count(*)");
    let message = NUMBER.replace_all(&message, "$1");
    STRING.replace_all(&message, "'$1'").into_owned()
}

/// A DataFusion planning error as a positioned SQL error: DataFusion's diagnostic span
/// when it has one, else the statement's start.
pub(crate) fn df_error(e: DataFusionError, at: Location) -> SluiceError {
    let (line, column) = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| (s.start.line, s.start.column))
        .filter(|(l, _)| *l > 0)
        .unwrap_or((at.line, at.column));
    let (message, token_at) = tidy_message(&e.strip_backtrace());
    // A token named in the message is the finest position there is.
    let (line, column) = match token_at {
        Some(t) if (line, column) == (at.line, at.column) => t,
        _ => (line, column),
    };
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

#[cfg(test)]
mod tests {
    use super::tidy_message;

    #[test]
    fn messages_lose_debug_dumps_and_bug_report_requests() {
        let (m, at) = tidy_message(
            "This feature is not implemented: Unsupported interval argument. Expected string literal or number, \
             got: Identifier(Ident { value: \"MINUTE\", quote_style: None, span: Span(Location(55,40)..Location(55,46)) })",
        );
        assert_eq!(
            m,
            "INTERVAL needs a quoted number and a unit, such as INTERVAL '10' SECOND; found MINUTE"
        );
        assert_eq!(at, Some((55, 40)));
        let (m, _) = tidy_message(
            "Internal error: Function 'avg' failed to match any signature.\nThis issue was likely caused by a bug \
             in DataFusion's code. Please help us to resolve this by filing a bug report in our issue tracker: \
             https://github.com/apache/datafusion/issues",
        );
        assert_eq!(m, "Function 'avg' failed to match any signature");
        let (m, _) = tidy_message(
            "No field named x: Identifier(Ident { value: \"x\", quote_style: Some('\"'), span: Span(Location(2,3)..Location(2,6)) })",
        );
        assert_eq!(m, "No field named x: \"x\"");
        let (m, _) = tidy_message(
            "This feature is not implemented: Unsupported ast node TableFunction { expr: Tuple([TypedString(\
             TypedString { data_type: Table(None) }) }",
        );
        assert_eq!(m, "This feature is not implemented: Unsupported ast node TABLE(...)");
        let (m, _) = tidy_message(
            "Physical plan does not support logical expression Wildcard { qualifier: None, options: \
             WildcardOptions { ilike: None } }",
        );
        assert_eq!(m, "Physical plan does not support logical expression * (a wildcard)");
        let (m, _) = tidy_message(
            "currently only \"R.CITY, step(R.ROWTIME,IntervalMonthDayNano(\"IntervalMonthDayNano { months: 0, days: 0, \
             nanoseconds: 60000000000 }\")), count(Int64(1)), sum(CASE WHEN R.T = Utf8(\"\"X\"\") THEN Int64(1) ELSE \
             Float64(0.5) END)\" appears",
        );
        assert_eq!(
            m,
            "currently only \"R.CITY, step(R.ROWTIME,INTERVAL '60' SECOND), count(*), sum(CASE WHEN R.T = 'X' THEN 1 \
             ELSE 0.5 END)\" appears"
        );
    }
}
