//! Window table functions (Flink's windowing TVFs):
//!
//! ```sql
//! FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(t), INTERVAL '1' MINUTE [, offset]))
//! FROM TABLE(HOP(TABLE s, DESCRIPTOR(t), slide, size [, offset]))
//! FROM TABLE(CUMULATE(TABLE s, DESCRIPTOR(t), step, max_size))
//! FROM TABLE(SESSION(TABLE s [PARTITION BY k, ...], DESCRIPTOR(t), gap))
//! ```
//!
//! `DESCRIPTOR` names ROWTIME or a TIMESTAMP column of `s` (`TABLE s` may also be a
//! `CURSOR(SELECT STREAM ...)`). The arguments may be named as in Flink (`DATA`,
//! `TIMECOL`, `SIZE`, `SLIDE`, `STEP`, `MAX_SIZE`, `GAP`, `OFFSET`), and three named
//! options set the query's emission:
//!
//! - `LATENESS => INTERVAL ...`: a window closes when the stream's time (ROWTIME of rows
//!   and bounds) reaches `window_end + LATENESS` (default 0). Its final result has that
//!   instant as ROWTIME. A row whose window has closed is late.
//! - `LATE_STREAM => 'NAME'`: late rows go to the stream `NAME` (made by CREATE STREAM;
//!   its columns take, by position, the input's declared columns, then `WINDOW_START`,
//!   `WINDOW_END`; ROWTIME is the row's), once per window it came late for. Without it, they go to
//!   `error_stream` (`LateRow`).
//! - `EARLY_FIRE => INTERVAL ...`: the function gets a BOOLEAN column `IS_PARTIAL`
//!   (false on its rows), which the query must group by. At every multiple of the
//!   interval of stream time, each open window that received rows since its last result
//!   emits its aggregate so far with `IS_PARTIAL` true; the final result (false) comes
//!   once, at the close.
//!
//! The function's rows carry the input's columns (without ROWTIME, which stays the
//! trailing column), `WINDOW_START` and `WINDOW_END` (and `IS_PARTIAL`). As with
//! streaming table functions ([`super::table_function`]), the call becomes a read of an
//! internal stream `<pump>#TUMBLE1`, filled by a generated pump that runs the input and
//! the window assignment ([`crate::operators::window_assign`]); for a late stream, a
//! twin pump keeps the late pairs instead. A `GROUP BY window_start, window_end, ...`
//! over that stream is lowered ([`lower_aggregate`]) to a window aggregate (several open
//! windows) or, for SESSION, to the session operator.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr as LExpr, LogicalPlan};
use datafusion::sql::planner::{PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, TableFactor, Value, VisitMut, VisitorMut,
};
// Deprecated in favour of LoweredAggregateBuilder; the same helper lower.rs uses.
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;

use super::catalog::{Catalog, RelationKind};
use super::lower::{At, Lowered, physical, with_rowtime};
use super::{PumpPlan, StreamDecl};
use crate::dialect::PumpStatement;
use crate::error::{Result, SluiceError};
use crate::operators::Operator;
use crate::operators::insert::InsertOp;
use crate::operators::pipeline::Pipeline;
use crate::operators::session_window::SessionWindowOp;
use crate::operators::window_aggregate::{KeyRole, WindowAggSpec, WindowAggregateOp, is_timestamp};
use crate::operators::window_assign::{AssignMode, WindowAssignOp, WindowKind};
use crate::types::{APPROXIMATE_ARRIVAL_TIME, ROWTIME, TIMESTAMP_TYPE};

pub const WINDOW_START: &str = "WINDOW_START";
pub const WINDOW_END: &str = "WINDOW_END";
pub const IS_PARTIAL: &str = "IS_PARTIAL";
/// The argument the token rewrite makes of `PARTITION BY keys` (see `dialect::tokens`).
pub const PARTITION_BY: &str = "PARTITION_BY";

const FUNCTIONS: [&str; 4] = ["TUMBLE", "HOP", "CUMULATE", "SESSION"];

/// What the planner knows of a window function's internal stream, for the GROUP BY
/// over it.
#[derive(Debug, Clone)]
pub struct WindowStream {
    pub function: String,
    pub kind: WindowKind,
    pub lateness_ms: i64,
    pub early_fire_ms: Option<i64>,
    /// SESSION's PARTITION BY columns.
    pub partition_by: Vec<String>,
}

struct WindowCall {
    stream: String,
    function: String,
    args: Vec<FunctionArg>,
}

/// Replaces every window-function call of `query` by a read of an internal stream
/// named after `pump`, and returns the calls.
fn extract(query: &mut Query, pump: &str) -> Vec<WindowCall> {
    struct Extractor<'a> {
        pump: &'a str,
        calls: Vec<WindowCall>,
    }
    impl VisitorMut for Extractor<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::TableFunction {
                expr: Expr::Function(f),
                alias,
            } = factor
            else {
                return ControlFlow::Continue(());
            };
            let function = f.name.to_string().to_uppercase();
            let FunctionArguments::List(list) = &f.args else {
                return ControlFlow::Continue(());
            };
            if !FUNCTIONS.contains(&function.as_str()) {
                return ControlFlow::Continue(());
            }
            let stream = format!("{}#{}{}", self.pump, function, self.calls.len() + 1);
            self.calls.push(WindowCall {
                stream: stream.clone(),
                function,
                args: list.args.clone(),
            });
            *factor = super::table_function::read_stream(stream, alias.clone());
            ControlFlow::Continue(())
        }
    }
    let mut extractor = Extractor {
        pump,
        calls: Vec::new(),
    };
    let _ = query.visit(&mut extractor);
    extractor.calls
}

/// A call's arguments sorted out: the input query, the time column, the lengths by
/// name, and the options.
struct Args {
    cursor: Box<Query>,
    partition_by: Vec<String>,
    time_column: String,
    lengths: HashMap<&'static str, i64>,
    late_stream: Option<String>,
}

fn function_name(e: &Expr) -> Option<(String, Vec<Expr>)> {
    let Expr::Function(f) = e else { return None };
    let FunctionArguments::List(list) = &f.args else {
        return Some((f.name.to_string().to_uppercase(), vec![]));
    };
    let args = list
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    Some((f.name.to_string().to_uppercase(), args))
}

fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        _ => None,
    }
}

/// The positional length arguments of each function, in order (after the table and
/// the descriptor); the trailing ones may be left out.
fn positional_lengths(function: &str) -> (&'static [&'static str], usize) {
    match function {
        "TUMBLE" => (&["SIZE", "OFFSET"], 1),
        "HOP" => (&["SLIDE", "SIZE", "OFFSET"], 2),
        "CUMULATE" => (&["STEP", "MAX_SIZE"], 2),
        _ => (&["GAP"], 1),
    }
}

fn interval_ms(e: &Expr, catalog: &Catalog, what: &str, at: At) -> Result<i64> {
    let planner = SqlToRel::new(catalog);
    let expr = planner
        .sql_to_expr(e.clone(), &DFSchema::empty(), &mut PlannerContext::new())
        .map_err(|err| at.error(format!("{what}: {}", super::tidy_message(&err.strip_backtrace()).0)))?;
    let LExpr::Literal(v, _) = &expr else {
        return Err(at.error(format!(
            "{what} must be an interval literal such as INTERVAL '1' MINUTE, found {e}"
        )));
    };
    crate::functions::common::scalar_interval_millis(v)
        .map_err(|err| at.error(format!("{what}: {err}")))?
        .ok_or_else(|| at.error(format!("{what} must not be NULL")))
}

fn parse_args(call: &WindowCall, catalog: &Catalog, at: At) -> Result<Args> {
    let f = &call.function;
    let (names, required) = positional_lengths(f);
    let mut cursor = None;
    let mut partition_by = Vec::new();
    let mut time_column = None;
    let mut lengths = HashMap::new();
    let mut late_stream = None;
    let mut positional = 0usize;
    for arg in &call.args {
        let (name, e) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (None, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (Some(name.value.to_uppercase()), e),
            other => return Err(at.error(format!("{f}: unsupported argument {other}"))),
        };
        match (name.as_deref(), e) {
            (None | Some("DATA"), Expr::Subquery(q)) if cursor.is_none() => cursor = Some(q.clone()),
            (None, e) if function_name(e).is_some_and(|(n, _)| n == PARTITION_BY) => {
                if f != "SESSION" {
                    return Err(at.error(format!("{f}: PARTITION BY is only for SESSION")));
                }
                let (_, keys) = function_name(e).expect("checked");
                partition_by = keys
                    .iter()
                    .map(|k| {
                        column_name(k)
                            .ok_or_else(|| at.error(format!("SESSION: PARTITION BY takes columns, found {k}")))
                    })
                    .collect::<Result<_>>()?;
            }
            (None | Some("TIMECOL"), e) if function_name(e).is_some_and(|(n, _)| n == "DESCRIPTOR") => {
                let (_, cols) = function_name(e).expect("checked");
                let [col] = cols.as_slice() else {
                    return Err(at.error(format!("{f}: DESCRIPTOR names exactly one time column")));
                };
                time_column =
                    Some(column_name(col).ok_or_else(|| at.error(format!("{f}: DESCRIPTOR takes a column name")))?);
            }
            (None, e) => {
                let Some(name) = names.get(positional) else {
                    return Err(at.error(format!(
                        "{f} takes TABLE s, DESCRIPTOR(column), then {}; unexpected argument {e}",
                        names.join(", ")
                    )));
                };
                positional += 1;
                lengths.insert(*name, interval_ms(e, catalog, &format!("{f} {name}"), at)?);
            }
            (Some("LATE_STREAM"), Expr::Value(v)) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => late_stream = Some(s.clone()),
                other => return Err(at.error(format!("LATE_STREAM names a stream as a string, found {other}"))),
            },
            (Some("LATE_STREAM"), Expr::Identifier(i)) => late_stream = Some(i.value.clone()),
            (Some(n @ ("LATENESS" | "EARLY_FIRE")), e) => {
                let key = if n == "LATENESS" { "LATENESS" } else { "EARLY_FIRE" };
                lengths.insert(key, interval_ms(e, catalog, &format!("{f} {n}"), at)?);
            }
            (Some(n), e) => match names.iter().find(|x| **x == n) {
                Some(name) => {
                    lengths.insert(*name, interval_ms(e, catalog, &format!("{f} {n}"), at)?);
                }
                None => {
                    return Err(at.error(format!(
                        "{f} has no argument {n}; it takes {}, LATENESS, EARLY_FIRE and LATE_STREAM",
                        names.join(", ")
                    )));
                }
            },
        }
    }
    let cursor = cursor.ok_or_else(|| {
        at.error(format!(
            "{f} needs a table first: {f}(TABLE s, DESCRIPTOR(column), ...)"
        ))
    })?;
    let time_column =
        time_column.ok_or_else(|| at.error(format!("{f} needs DESCRIPTOR(column) naming its time column")))?;
    if let Some(missing) = names[..required].iter().find(|n| !lengths.contains_key(*n)) {
        return Err(at.error(format!("{f} needs its {missing}")));
    }
    Ok(Args {
        cursor,
        partition_by,
        time_column,
        lengths,
        late_stream,
    })
}

fn kind_of(function: &str, lengths: &HashMap<&'static str, i64>, at: At) -> Result<WindowKind> {
    let get = |n: &str| lengths.get(n).copied().unwrap_or(0);
    let positive = |n: &str| {
        let v = get(n);
        if v > 0 {
            Ok(v)
        } else {
            Err(at.error(format!("{function} {n} must be a positive interval")))
        }
    };
    Ok(match function {
        "TUMBLE" => WindowKind::Tumble {
            size: positive("SIZE")?,
            offset: get("OFFSET"),
        },
        "HOP" => {
            let (slide, size) = (positive("SLIDE")?, positive("SIZE")?);
            // Rows between two windows would belong to none and look late; a window that
            // leaves gaps samples the stream, which is not what HOP is for.
            if slide > size {
                return Err(at.error(format!(
                    "HOP SLIDE ({slide} ms) must not be longer than SIZE ({size} ms): the rows between \
                     two windows would belong to no window"
                )));
            }
            WindowKind::Hop {
                slide,
                size,
                offset: get("OFFSET"),
            }
        }
        "CUMULATE" => {
            let (step, max_size) = (positive("STEP")?, positive("MAX_SIZE")?);
            if max_size % step != 0 {
                return Err(at.error("CUMULATE MAX_SIZE must be a whole number of STEPs"));
            }
            WindowKind::Cumulate { step, max_size }
        }
        _ => WindowKind::Session { gap: positive("GAP")? },
    })
}

/// Takes the window-function calls out of a pump's query, registers what the GROUP BY
/// over each needs in `catalog`, and returns each internal stream with the pumps that
/// fill it (and its late stream).
pub fn plan_windows(
    p: &mut PumpStatement,
    catalog: &mut Catalog,
    streams: &[StreamDecl],
) -> Result<Vec<(StreamDecl, Vec<PumpPlan>)>> {
    let at = At {
        line: p.location.line,
        column: p.location.column,
    };
    let mut planned = Vec::new();
    for call in extract(&mut p.query, &p.name) {
        let f = call.function.clone();
        let args = parse_args(&call, catalog, at)?;
        let kind = kind_of(&f, &args.lengths, at)?;
        let lateness = args.lengths.get("LATENESS").copied().unwrap_or(0);
        if lateness < 0 {
            return Err(at.error(format!("{f} LATENESS must not be negative")));
        }
        let early_fire = args.lengths.get("EARLY_FIRE").copied();
        if early_fire.is_some_and(|i| i <= 0) {
            return Err(at.error(format!("{f} EARLY_FIRE must be a positive interval")));
        }
        let plan = super::plan_query(&args.cursor, catalog, p.location)?;
        let input = super::lower::lower(&plan, catalog, at)?.batch_schema;
        let last = input.fields().len() - 1;
        // The input's own ROWTIME (from `SELECT *`) is the trailing column already.
        let keep: Vec<usize> = (0..last).filter(|&i| input.field(i).name() != ROWTIME).collect();
        let time_column = if args.time_column.eq_ignore_ascii_case(ROWTIME) {
            last
        } else {
            let i = keep
                .iter()
                .copied()
                .find(|&i| input.field(i).name() == &args.time_column)
                .ok_or_else(|| at.error(format!("{f}: DESCRIPTOR({}): no such column", args.time_column)))?;
            if !is_timestamp(input.field(i).data_type()) {
                return Err(at.error(format!(
                    "{f}: DESCRIPTOR({}) must name ROWTIME or a TIMESTAMP column",
                    args.time_column
                )));
            }
            i
        };
        for k in &args.partition_by {
            if !keep.iter().any(|&i| input.field(i).name() == k) {
                return Err(at.error(format!("SESSION: PARTITION BY {k}: no such column")));
            }
        }
        let mut fields: Vec<Field> = keep
            .iter()
            .map(|&i| input.field(i).clone().with_nullable(true))
            .collect();
        for name in [WINDOW_START, WINDOW_END, IS_PARTIAL] {
            if fields.iter().any(|x| x.name() == name) {
                return Err(at.error(format!("{f}: the input already has a column {name}")));
            }
        }
        fields.push(Field::new(WINDOW_START, TIMESTAMP_TYPE, true));
        fields.push(Field::new(WINDOW_END, TIMESTAMP_TYPE, true));
        // Late rows carry the input's declared columns (not the implicit
        // APPROXIMATE_ARRIVAL_TIME or envelope columns), then their window.
        let implicit = |i: usize| {
            i < plan.schema().fields().len()
                && plan.schema().field(i).name() == input.field(i).name()
                && super::is_implicit_query_column(&plan, i, streams)
        };
        let late_keep: Vec<usize> = keep
            .iter()
            .copied()
            .filter(|&i| input.field(i).name() != APPROXIMATE_ARRIVAL_TIME && !implicit(i))
            .collect();
        let late_schema = {
            let mut late: Vec<Field> = late_keep
                .iter()
                .map(|&i| input.field(i).clone().with_nullable(true))
                .collect();
            late.push(Field::new(WINDOW_START, TIMESTAMP_TYPE, true));
            late.push(Field::new(WINDOW_END, TIMESTAMP_TYPE, true));
            late.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
            Arc::new(Schema::new(late))
        };
        if early_fire.is_some() {
            fields.push(Field::new(IS_PARTIAL, DataType::Boolean, true));
        }
        fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
        let schema: SchemaRef = Arc::new(Schema::new(fields));

        let assign = |mode: AssignMode, keep: &[usize], schema: &SchemaRef, partial: bool| -> Result<Lowered> {
            // Each pump runs its own copy of the input's operators.
            let mut lowered = super::lower::lower(&plan, catalog, at)?;
            lowered.ops.push(Box::new(WindowAssignOp::new(
                kind,
                time_column,
                keep.to_vec(),
                lateness,
                partial,
                mode,
                Arc::clone(schema),
            )));
            Ok(lowered)
        };
        let name = call.stream.clone();
        let on_time = assign(
            AssignMode::OnTime {
                late_to_errors: args.late_stream.is_none(),
            },
            &keep,
            &schema,
            early_fire.is_some(),
        )?;
        let mut pumps = vec![PumpPlan {
            name: name.clone(),
            source: on_time.source,
            target: name.clone(),
            pipeline: Pipeline::new(&name, on_time.ops),
        }];
        if let Some(late) = &args.late_stream {
            let target = streams
                .iter()
                .find(|s| &s.name == late && s.kind == RelationKind::Stream)
                .ok_or_else(|| {
                    at.error(format!(
                        "{f}: LATE_STREAM '{late}' must be a stream created by CREATE STREAM \
                         (columns: the rows' columns, then optionally WINDOW_START, WINDOW_END)"
                    ))
                })?;
            let width = late_schema.fields().len() - 1;
            if target.columns.len() > width {
                return Err(at.error(format!(
                    "{f}: LATE_STREAM '{late}' has {} columns, but late rows have {width}",
                    target.columns.len()
                )));
            }
            let mut lowered = assign(AssignMode::Late, &late_keep, &late_schema, false)?;
            let sources = (0..target.columns.len()).map(Some).collect();
            let max_chars = target.columns.iter().map(|c| c.sql_type.max_chars()).collect();
            lowered
                .ops
                .push(Box::new(InsertOp::new(Arc::clone(&target.schema), sources, max_chars)));
            let late_pump = format!("{name}#LATE");
            pumps.push(PumpPlan {
                name: late_pump.clone(),
                source: lowered.source,
                target: late.clone(),
                pipeline: Pipeline::new(&late_pump, lowered.ops),
            });
        }
        catalog.set_window_stream(
            &name,
            WindowStream {
                function: f.clone(),
                kind,
                lateness_ms: lateness,
                early_fire_ms: early_fire,
                partition_by: args.partition_by.clone(),
            },
        );
        planned.push((
            StreamDecl {
                name,
                schema,
                kind: RelationKind::Stream,
                columns: vec![],
            },
            pumps,
        ));
    }
    Ok(planned)
}

/// The window function an aggregate's input reads, if it reads one (through filters,
/// projections and aliases).
pub fn window_source<'a>(plan: &LogicalPlan, catalog: &'a Catalog) -> Option<&'a WindowStream> {
    match plan {
        LogicalPlan::TableScan(scan) => catalog.window_stream(scan.table_name.table()),
        LogicalPlan::SubqueryAlias(a) => window_source(&a.input, catalog),
        LogicalPlan::Filter(f) => window_source(&f.input, catalog),
        LogicalPlan::Projection(p) => window_source(&p.input, catalog),
        _ => None,
    }
}

fn column_named<'a>(e: &'a LExpr, name: &str) -> Option<&'a datafusion::common::Column> {
    match e {
        LExpr::Column(c) if c.name == name => Some(c),
        _ => None,
    }
}

/// Lowers `GROUP BY window_start, window_end, keys...` over a window function's stream.
pub fn lower_aggregate(
    agg: &datafusion::logical_expr::Aggregate,
    window: &WindowStream,
    mut lowered: Lowered,
    catalog: &Catalog,
    at: At,
) -> Result<Lowered> {
    let f = &window.function;
    let input_df = agg.input.schema();
    let input_schema = Arc::clone(&lowered.batch_schema);
    let (mut start_column, mut end_column, mut partial) = (None, None, false);
    let mut roles = Vec::with_capacity(agg.group_expr.len());
    let mut keys = Vec::new();
    for e in &agg.group_expr {
        if let Some(c) = column_named(e, WINDOW_START) {
            start_column = Some(input_df.index_of_column(c)?);
            roles.push(KeyRole::WindowStart);
        } else if let Some(c) = column_named(e, WINDOW_END) {
            end_column = Some(input_df.index_of_column(c)?);
            roles.push(KeyRole::WindowEnd);
        } else if column_named(e, IS_PARTIAL).is_some() {
            partial = true;
            roles.push(KeyRole::Partial);
        } else {
            roles.push(KeyRole::Key(keys.len()));
            keys.push(e.clone());
        }
    }
    let (Some(start_column), Some(end_column)) = (start_column, end_column) else {
        return Err(at.error(format!(
            "a GROUP BY over {f}(...) must include window_start and window_end among its keys"
        )));
    };
    if window.early_fire_ms.is_some() && !partial {
        return Err(at.error(format!(
            "{f} with EARLY_FIRE: GROUP BY is_partial too, so early results can be told from final ones"
        )));
    }
    let key_exprs = keys
        .iter()
        .map(|e| physical(e, input_df, catalog))
        .collect::<Result<Vec<_>>>()?;
    let key_types = key_exprs
        .iter()
        .map(|e| Ok(e.data_type(&input_schema)?))
        .collect::<Result<Vec<_>>>()?;
    let mut aggregates = Vec::with_capacity(agg.aggr_expr.len());
    for e in &agg.aggr_expr {
        // As every expression: simplified first (`SUM(COALESCE(x, 0))` needs it).
        let e = crate::functions::simplify::aggregate_for_execution(e, input_df, catalog.state())?;
        #[allow(deprecated)]
        let (expr, filter, order) =
            create_aggregate_expr_and_maybe_filter(&e, input_df, &input_schema, catalog.state().execution_props())?;
        if !order.is_empty() {
            return Err(at.unsupported("ORDER BY inside an aggregate"));
        }
        aggregates.push((expr, filter));
    }
    let output_schema = with_rowtime(&agg.schema);
    let spec = WindowAggSpec::new(key_exprs, key_types, aggregates, roles, Arc::clone(&output_schema)).map_err(
        |e| match e {
            SluiceError::Unsupported { feature, .. } => at.unsupported(feature),
            other => other,
        },
    )?;
    let op: Box<dyn Operator> = match window.kind {
        WindowKind::Session { .. } => {
            // Sessions are per PARTITION BY columns, or else per the ordinary keys.
            let session_keys = if window.partition_by.is_empty() {
                keys
            } else {
                window
                    .partition_by
                    .iter()
                    .map(|k| {
                        let (q, field) = input_df.qualified_field_with_unqualified_name(k).map_err(|_| {
                            at.error(format!("SESSION: the query must keep the PARTITION BY column {k}"))
                        })?;
                        Ok(LExpr::Column(datafusion::common::Column::new(q.cloned(), field.name())))
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            let session_exprs = session_keys
                .iter()
                .map(|e| physical(e, input_df, catalog))
                .collect::<Result<Vec<_>>>()?;
            let session_types = session_exprs
                .iter()
                .map(|e| Ok(e.data_type(&input_schema)?))
                .collect::<Result<Vec<_>>>()?;
            Box::new(SessionWindowOp::new(
                spec,
                session_exprs,
                session_types,
                Arc::clone(&input_schema),
                start_column,
                end_column,
                window.lateness_ms,
                window.early_fire_ms,
            )?)
        }
        _ => Box::new(WindowAggregateOp::new(
            spec,
            start_column,
            end_column,
            window.lateness_ms,
            window.early_fire_ms,
        )),
    };
    lowered.ops.push(op);
    lowered.batch_schema = output_schema;
    Ok(lowered)
}
