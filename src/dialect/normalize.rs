//! AST rewrites between sqlparser and DataFusion's planner: KDA functions and operators
//! become calls of sluice UDFs (see `crate::functions`) so DataFusion plans and
//! evaluates them like any other function.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, CharacterLength, DataType as SqlDataType, DateTimeField, ExactNumberInfo,
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, Interval,
    NamedWindowExpr, ObjectName, OrderByExpr, OrderByOptions, Query, SetExpr, Value, ValueWithSpan, VisitMut,
    VisitorMut, WindowSpec, WindowType,
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
        "MOD" => "kda_mod",
        "CEIL" | "CEILING" => "kda_ceil",
        "FLOOR" => "kda_floor",
        "EXP" => "kda_exp",
        "LN" => "kda_ln",
        "LOG10" => "kda_log10",
        "POWER" => "kda_power",
        "INITCAP" => "kda_initcap",
        "LPAD" => "kda_lpad",
        "RPAD" => "kda_rpad",
        "CURRENT_TIMESTAMP" | "LOCALTIMESTAMP" => "kda_current_timestamp",
        "CURRENT_DATE" => "kda_current_date",
        "CURRENT_TIME" | "LOCALTIME" => "kda_current_time",
        // The boolean aggregates (`x = ANY (subquery)` is another expression, AnyOp).
        "EVERY" => "bool_and",
        "ANY" | "SOME" => "bool_or",
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
                // `CURRENT_TIMESTAMP` and its kin are written without parentheses.
                if matches!(f.args, FunctionArguments::None) {
                    f.args = FunctionArguments::List(FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![],
                        clauses: vec![],
                    });
                }
            }
            if let Some(WindowType::WindowSpec(spec)) = &mut f.over {
                order_by_rowtime(spec);
            }
            difference_into_interval_qualify(f);
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
        Expr::Floor {
            expr: inner,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => Some(call("kda_floor", vec![(**inner).clone()])),
        Expr::Ceil {
            expr: inner,
            field: CeilFloorKind::DateTimeField(DateTimeField::NoDateTime),
        } => Some(call("kda_ceil", vec![(**inner).clone()])),
        Expr::Extract { field, expr: inner, .. }
            if unit_name(field).is_some_and(|u| crate::functions::extract::UNITS.contains(&u)) =>
        {
            Some(call("kda_extract", vec![string(unit_name(field)?), (**inner).clone()]))
        }
        Expr::Overlay {
            expr: inner,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            let mut args = vec![(**inner).clone(), (**overlay_what).clone(), (**overlay_from).clone()];
            if let Some(len) = overlay_for {
                args.push((**len).clone());
            }
            Some(call("kda_overlay", args))
        }
        Expr::Cast {
            kind: CastKind::Cast,
            expr: inner,
            data_type,
            array: false,
            format: None,
        } => {
            kda_decimal_type(data_type);
            let (length, fixed) = character_type(data_type)?;
            let n = Expr::Value(Value::Number(length.to_string(), false).into());
            let fixed = Expr::Value(Value::Boolean(fixed).into());
            Some(call("kda_cast_char", vec![(**inner).clone(), n, fixed]))
        }
        Expr::Interval(interval) if interval.last_field.is_some() => interval_range(interval),
        Expr::Like {
            pattern, escape_char, ..
        } => {
            like_pattern_to_backslash_escapes(pattern, escape_char);
            None
        }
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
        Expr::Identifier(ident) if ident.quote_style.is_none() && ident.value == "LOCALTIMESTAMP" => {
            Some(call("kda_current_timestamp", vec![]))
        }
        Expr::Identifier(ident) if ident.quote_style.is_none() && ident.value == "LOCALTIME" => {
            Some(call("kda_current_time", vec![]))
        }
        _ => None,
    }
}

/// `(a - b) SECOND` arrives as `interval_qualify((a - b), 'SECOND')` (`dialect::tokens`);
/// it becomes `interval_qualify(a, b, 'SECOND')`, which subtracts in milliseconds (see
/// `functions::interval_qualify`). A side that is itself a sum, a difference or an
/// INTERVAL literal (`(t - INTERVAL '1' HOUR - u) SECOND`) keeps DataFusion's arithmetic.
fn difference_into_interval_qualify(f: &mut Function) {
    let is_qualify = f.name.0.len() == 1
        && f.name.0[0]
            .as_ident()
            .is_some_and(|i| i.value == crate::dialect::tokens::INTERVAL_QUALIFY.to_lowercase());
    let FunctionArguments::List(list) = &mut f.args else {
        return;
    };
    if !is_qualify || list.args.len() != 2 {
        return;
    }
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(mut x)) = list.args[0].clone() else {
        return;
    };
    while let Expr::Nested(inner) = x {
        x = *inner;
    }
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Minus,
        right,
    } = x
    else {
        return;
    };
    let plain = |e: &Expr| {
        !matches!(
            e,
            Expr::BinaryOp {
                op: BinaryOperator::Minus | BinaryOperator::Plus,
                ..
            } | Expr::Interval(_)
        )
    };
    if !plain(&left) || !plain(&right) {
        return;
    }
    list.args.splice(
        0..1,
        [*left, *right].map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e))),
    );
}

/// `INTERVAL '3 4' DAY TO HOUR`, `INTERVAL '-59:59.999' MINUTE TO SECOND(3)`: DataFusion
/// plans only one-unit qualifiers, so the value is spelled out unit by unit
/// (`'3 days 4 hours'`). A value that does not have one number per unit is left to
/// DataFusion's error.
fn interval_range(interval: &Interval) -> Option<Expr> {
    const UNITS: [&str; 6] = ["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"];
    let first = unit_name(interval.leading_field.as_ref()?)?;
    let last = unit_name(interval.last_field.as_ref()?)?;
    let (a, b) = (
        UNITS.iter().position(|u| *u == first)?,
        UNITS.iter().position(|u| *u == last)?,
    );
    let Expr::Value(v) = interval.value.as_ref() else {
        return None;
    };
    let Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    let text = text.trim();
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    };
    let parts: Vec<&str> = body.split([' ', ':', '-']).filter(|p| !p.is_empty()).collect();
    let numeric = |p: &&str| p.parse::<f64>().is_ok_and(f64::is_finite);
    if a >= b || parts.len() != b - a + 1 || !parts.iter().all(numeric) {
        return None;
    }
    let spelled: Vec<String> = parts
        .iter()
        .zip(&UNITS[a..=b])
        .map(|(p, u)| format!("{sign}{p} {}s", u.to_lowercase()))
        .collect();
    Some(Expr::Interval(Interval {
        value: Box::new(string(&spelled.join(" "))),
        leading_field: None,
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    }))
}

/// `DECIMAL`, `NUMERIC` and `DEC` with KDA's defaults spelled out: precision 18, scale 0
/// (SQL reference, "Numeric Types and Precision"); DataFusion would make a bare DECIMAL
/// DECIMAL(38,10) and does not know DEC.
fn kda_decimal_type(t: &mut SqlDataType) {
    if let SqlDataType::Decimal(info) | SqlDataType::Numeric(info) | SqlDataType::Dec(info) = t {
        let info = match info {
            ExactNumberInfo::None => ExactNumberInfo::PrecisionAndScale(18, 0),
            ExactNumberInfo::Precision(p) => ExactNumberInfo::PrecisionAndScale(*p, 0),
            ExactNumberInfo::PrecisionAndScale(p, s) => ExactNumberInfo::PrecisionAndScale(*p, *s),
        };
        *t = SqlDataType::Decimal(info);
    }
}

/// The length of a character type (-1: none) and whether it is fixed (CHAR, padded).
fn character_type(t: &SqlDataType) -> Option<(i64, bool)> {
    let length = |l: &Option<CharacterLength>, default: i64| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => i64::try_from(*length).unwrap_or(i64::MAX),
        Some(CharacterLength::Max) => -1,
        None => default,
    };
    Some(match t {
        SqlDataType::Char(l) | SqlDataType::Character(l) => (length(l, 1), true),
        SqlDataType::Varchar(l) | SqlDataType::CharVarying(l) | SqlDataType::CharacterVarying(l) => {
            (length(l, -1), false)
        }
        _ => return None,
    })
}

/// KDA's LIKE has no escape character unless `ESCAPE c` names one; DataFusion's always
/// treats `\` as one and accepts no other. A literal pattern is rewritten into
/// DataFusion's form: `\` and `c%`, `c_`, `cc` become `\\`, `\%`, `\_`, `c`.
/// (A computed pattern with an escape character other than `\` stays as it is, and
/// DataFusion reports it.)
fn like_pattern_to_backslash_escapes(pattern: &mut Expr, escape_char: &mut Option<ValueWithSpan>) {
    let escape = match escape_char.as_ref().map(|v| &v.value) {
        None => None,
        Some(Value::SingleQuotedString(e)) if e.chars().count() == 1 => e.chars().next(),
        Some(_) => return,
    };
    if escape == Some('\\') {
        return;
    }
    let Expr::Value(v) = pattern else { return };
    let Value::SingleQuotedString(text) = &v.value else {
        return;
    };
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(n @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(n);
                }
                Some('\\') => out.push_str("\\\\"),
                Some(n) => out.push(n),
                None => out.push(c),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    *pattern = string(&out);
    *escape_char = None;
}

#[cfg(test)]
mod tests {
    use crate::dialect::script::parse_query;

    #[test]
    fn maps_kda_scalar_functions_to_udfs() {
        let q = parse_query(
            "SELECT STREAM MOD(a, 3), CEILING(x), CEIL(x), FLOOR(x), LN(x), INITCAP(s), EXTRACT(SECOND FROM ROWTIME), \
             OVERLAY(s PLACING 'ab' FROM 2 FOR 1), CURRENT_TIMESTAMP, LOCALTIMESTAMP, CURRENT_DATE, LOCALTIME, \
             CAST(ROWTIME AS VARCHAR(25)), CAST(s AS CHAR), CAST(a AS INTEGER), EVERY(b), ANY(b), \
             s LIKE 'a!_%\\' ESCAPE '!', s LIKE 'C:\\%', TRIM(LEADING FROM s), \
             SUBSTRING(s SIMILAR '%#\"x#\"%' ESCAPE '#'), INTERVAL '3 4' DAY TO HOUR, \
             INTERVAL '-59:59.999' MINUTE TO SECOND(3) FROM t",
        )
        .unwrap();
        let text = q.to_string();
        for expected in [
            "kda_mod(A, 3)",
            "kda_ceil(X), kda_ceil(X), kda_floor(X), kda_ln(X)",
            "kda_initcap(S)",
            "kda_extract('SECOND', ROWTIME)",
            "kda_overlay(S, 'ab', 2, 1)",
            "kda_current_timestamp(), kda_current_timestamp(), kda_current_date(), kda_current_time()",
            "kda_cast_char(ROWTIME, 25, false), kda_cast_char(S, 1, true), CAST(A AS INTEGER)",
            "bool_and(B), bool_or(B)",
            // DataFusion's LIKE always escapes with a backslash.
            "S LIKE 'a\\_%\\\\'",
            "S LIKE 'C:\\\\%'",
            "TRIM(LEADING ' ' FROM S)",
            "kda_substring_similar(S, '%#\"x#\"%', '#')",
            "INTERVAL '3 days 4 hours'",
            "INTERVAL '-59 minutes -59.999 seconds'",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
    }

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
