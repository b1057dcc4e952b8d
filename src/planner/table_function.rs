//! Streaming table functions: `FROM TABLE(f(CURSOR(SELECT STREAM ...), args...))`.
//!
//! Each call is taken out of the query before DataFusion plans it: the query reads an
//! internal stream instead, and a generated pump fills that stream by running the
//! cursor's query and then the function's operator. So a table function is an ordinary
//! stream in the graph, checkpointed and merged like any other.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr as LogicalExpr, LogicalPlan, Projection};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, Query, SelectItem, SetExpr, TableFactor,
    UnaryOperator, Value, VisitMut, VisitorMut,
};

use crate::types::ROWTIME;

/// One table-function call found in a query.
pub struct TableCall {
    /// The internal stream the query now reads.
    pub stream: String,
    /// The function's name, upper-cased.
    pub function: String,
    pub cursor: Box<Query>,
    /// The arguments after the cursor.
    pub args: Vec<Expr>,
}

/// Replaces every table-function call of `query` by a read of an internal stream named
/// after `pump`, and returns the calls.
pub fn extract(query: &mut Query, pump: &str, is_table_function: impl Fn(&str) -> bool) -> Vec<TableCall> {
    struct Extractor<'a, F> {
        pump: &'a str,
        calls: Vec<TableCall>,
        known: F,
    }
    impl<F: Fn(&str) -> bool> VisitorMut for Extractor<'_, F> {
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
            if !(self.known)(&function) {
                return ControlFlow::Continue(());
            }
            let FunctionArguments::List(list) = &f.args else {
                return ControlFlow::Continue(());
            };
            let mut args = list.args.iter().filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            });
            let Some(Expr::Subquery(cursor)) = args.next() else {
                return ControlFlow::Continue(());
            };
            let stream = format!("{}#{}{}", self.pump, function, self.calls.len() + 1);
            self.calls.push(TableCall {
                stream: stream.clone(),
                function,
                cursor,
                args: args.collect(),
            });
            *factor = read_stream(stream, alias.clone());
            ControlFlow::Continue(())
        }
    }
    let mut extractor = Extractor {
        pump,
        calls: Vec::new(),
        known: is_table_function,
    };
    let _ = query.visit(&mut extractor);
    extractor.calls
}

/// The table factor that reads internal stream `stream` (quoted: its name keeps its
/// case and its `#`) under `alias`: what an extracted call or subquery is replaced by.
pub fn read_stream(stream: String, alias: Option<datafusion::sql::sqlparser::ast::TableAlias>) -> TableFactor {
    TableFactor::Table {
        name: ObjectName::from(vec![Ident::with_quote('"', stream)]),
        alias,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

/// The value of a literal argument (`10`, `-1.5`, `'col'`, `true`).
pub fn literal(e: &Expr) -> Result<ScalarValue, String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(|i| ScalarValue::Int64(Some(i)))
                .or_else(|_| n.parse::<f64>().map(|f| ScalarValue::Float64(Some(f))))
                .map_err(|_| format!("bad number {n}")),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(ScalarValue::Utf8(Some(s.clone()))),
            Value::Boolean(b) => Ok(ScalarValue::Boolean(Some(*b))),
            Value::Null => Ok(ScalarValue::Null),
            other => Err(format!("unsupported literal {other}")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            ScalarValue::Int64(Some(i)) => Ok(ScalarValue::Int64(Some(-i))),
            ScalarValue::Float64(Some(f)) => Ok(ScalarValue::Float64(Some(-f))),
            other => Err(format!("cannot negate {other}")),
        },
        Expr::Nested(inner) => literal(inner),
        // identifiers as arguments are upper-cased words such as TRUE spelled unquoted
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("true") => Ok(ScalarValue::Boolean(Some(true))),
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("false") => Ok(ScalarValue::Boolean(Some(false))),
        other => Err(format!(
            "table-function arguments after the cursor must be literals, found {other}"
        )),
    }
}

/// The cursor's plan with KDA's meaning of its columns: the rows' ROWTIME travels as
/// their time, never as a column (a column of that name would clash with it in the
/// function's output stream), and `*` stands for the stream's declared columns, so the
/// APPROXIMATE_ARRIVAL_TIME it expands to is left out unless the select list names it.
pub fn cursor_columns(
    plan: LogicalPlan,
    cursor: &Query,
    streams: &[super::StreamDecl],
) -> datafusion::error::Result<LogicalPlan> {
    let LogicalPlan::Projection(projection) = &plan else {
        return Ok(plan);
    };
    // ROWTIME is the rows' time, never a column; the other implicit columns
    // (APPROXIMATE_ARRIVAL_TIME, the Kinesis envelope) pass only when the cursor names them.
    let keep: Vec<LogicalExpr> = projection
        .expr
        .iter()
        .zip(projection.schema.fields())
        .enumerate()
        .filter(|(i, (e, field))| {
            let name = field.name().as_str();
            let implicit =
                name == ROWTIME || (super::is_implicit_query_column(&plan, *i, streams) && !select_names(cursor, name));
            !(implicit && matches!(e, LogicalExpr::Column(_)))
        })
        .map(|(_, (e, _))| e.clone())
        .collect();
    if keep.len() == projection.expr.len() {
        return Ok(plan);
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        keep,
        Arc::clone(&projection.input),
    )?))
}

/// Does the query's select list name `column` itself (as a column or an alias)?
fn select_names(query: &Query, column: &str) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.eq_ignore_ascii_case(column),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
            parts.last().is_some_and(|i| i.value.eq_ignore_ascii_case(column))
        }
        SelectItem::ExprWithAlias { alias, .. } => alias.value.eq_ignore_ascii_case(column),
        _ => false,
    })
}
