//! AST rewrites between sqlparser and DataFusion's planner: KDA functions and operators
//! become calls of sluice UDFs (see `crate::functions`) so DataFusion plans and
//! evaluates them like any other function.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CeilFloorKind, DateTimeField, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, NamedWindowExpr, ObjectName, OrderByExpr, OrderByOptions, Query, SetExpr, Value,
    VisitMut, VisitorMut, WindowSpec, WindowType,
};

/// Rewrites a query (and its subqueries) in place.
pub fn normalize_query(query: &mut Query) {
    let _ = query.visit(&mut Normalizer);
}

struct Normalizer;

impl VisitorMut for Normalizer {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for def in &mut select.named_window {
                if let NamedWindowExpr::WindowSpec(spec) = &mut def.1 {
                    order_by_rowtime(spec);
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewrite_expr(expr) {
            *expr = new;
        }
        ControlFlow::Continue(())
    }
}

/// KDA's windows are implicitly ordered by ROWTIME (a stream is ROWTIME-ordered);
/// DataFusion needs the ORDER BY spelled out for RANGE frames.
fn order_by_rowtime(spec: &mut WindowSpec) {
    if spec.order_by.is_empty() && spec.window_name.is_none() {
        spec.order_by.push(OrderByExpr {
            expr: Expr::Identifier(Ident::new(crate::types::ROWTIME)),
            options: OrderByOptions {
                asc: Some(true),
                nulls_first: None,
            },
            with_fill: None,
        });
    }
}

/// A call of the named function with positional arguments.
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn string(s: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(s.to_string()).into())
}

fn unit_name(field: &DateTimeField) -> Option<&'static str> {
    Some(match field {
        DateTimeField::Year | DateTimeField::Years => "YEAR",
        DateTimeField::Month | DateTimeField::Months => "MONTH",
        DateTimeField::Week(_) | DateTimeField::Weeks => "WEEK",
        DateTimeField::Day | DateTimeField::Days => "DAY",
        DateTimeField::Hour | DateTimeField::Hours => "HOUR",
        DateTimeField::Minute | DateTimeField::Minutes => "MINUTE",
        DateTimeField::Second | DateTimeField::Seconds => "SECOND",
        _ => return None,
    })
}

/// KDA function names that sluice implements under another name (DataFusion owns the
/// KDA name with different semantics).
fn renamed_function(upper: &str) -> Option<&'static str> {
    Some(match upper {
        "TO_TIMESTAMP" => "to_timestamp_ms",
        "REGEX_REPLACE" => "kda_regex_replace",
        "CHARACTER_LENGTH" => "char_length",
        "STD_DEV" => "stddev_samp",
        _ => return None,
    })
}

fn rewrite_expr(expr: &mut Expr) -> Option<Expr> {
    match expr {
        Expr::Function(f) => {
            // Function names are case-insensitive: plan them by DataFusion's lower-case
            // names, mapping the few KDA names that differ.
            if f.name.0.len() == 1
                && let Some(ident) = f.name.0[0].as_ident()
                && ident.quote_style.is_none()
            {
                let upper = ident.value.to_uppercase();
                let name = renamed_function(&upper)
                    .map(str::to_string)
                    .unwrap_or_else(|| upper.to_lowercase());
                f.name = ObjectName::from(vec![Ident::new(name)]);
            }
            if let Some(WindowType::WindowSpec(spec)) = &mut f.over {
                order_by_rowtime(spec);
            }
            None
        }
        Expr::Floor {
            expr: inner,
            field: CeilFloorKind::DateTimeField(field),
        } if unit_name(field).is_some() => Some(call("floor_to", vec![(**inner).clone(), string(unit_name(field)?)])),
        Expr::Ceil {
            expr: inner,
            field: CeilFloorKind::DateTimeField(field),
        } if unit_name(field).is_some() => Some(call("ceil_to", vec![(**inner).clone(), string(unit_name(field)?)])),
        Expr::SimilarTo {
            negated,
            expr: inner,
            pattern,
            escape_char,
        } => {
            let mut args = vec![(**inner).clone(), (**pattern).clone()];
            if let Some(esc) = escape_char {
                args.push(Expr::Value(esc.clone()));
            }
            let call = call("similar_to", args);
            Some(if *negated {
                Expr::UnaryOp {
                    op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
                    expr: Box::new(Expr::Nested(Box::new(call))),
                }
            } else {
                call
            })
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Divide,
            right,
        } => Some(call("sluice_div", vec![(**left).clone(), (**right).clone()])),
        Expr::Substring {
            expr: inner,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![(**inner).clone()];
            args.push(
                substring_from
                    .as_deref()
                    .cloned()
                    .unwrap_or_else(|| Expr::Value(Value::Number("1".into(), false).into())),
            );
            if let Some(len) = substring_for {
                args.push((**len).clone());
            }
            Some(call("kda_substring", args))
        }
        Expr::Position { expr: needle, r#in } => Some(call("kda_position", vec![(**needle).clone(), (**r#in).clone()])),
        // U&'\0009': the escapes are decoded by the tokenizer; the rest is a plain string
        Expr::Value(v) if matches!(v.value, Value::UnicodeStringLiteral(_)) => {
            let Value::UnicodeStringLiteral(text) = &v.value else {
                unreachable!("matched above")
            };
            Some(string(text))
        }
        Expr::Identifier(ident) if ident.quote_style.is_none() && ident.value == "CURRENT_ROW_TIMESTAMP" => {
            Some(call("current_row_timestamp", vec![]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::dialect::script::parse_query;

    #[test]
    fn maps_kda_forms_to_udfs() {
        let q = parse_query(
            "SELECT STREAM FLOOR(ROWTIME TO MINUTE), a / b, zone SIMILAR TO '(N|S)-[0-9]+', REGEX_REPLACE(x, 'a', 'b', 1, 0), \
             SUBSTRING(s FROM 2 FOR 3), POSITION('a' IN s), AVG(x) OVER (PARTITION BY k RANGE INTERVAL '1' MINUTE PRECEDING) FROM t",
        )
        .unwrap();
        let text = q.to_string();
        for expected in [
            "floor_to(ROWTIME, 'MINUTE')",
            "sluice_div(A, B)",
            "similar_to(ZONE, '(N|S)-[0-9]+')",
            "kda_regex_replace(X, 'a', 'b', 1, 0)",
            "kda_substring(S, 2, 3)",
            "kda_position('a', S)",
            "ORDER BY ROWTIME ASC",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
    }
}
