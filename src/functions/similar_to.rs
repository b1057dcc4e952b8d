//! `similar_to(s, pattern [, escape])`: SQL `s SIMILAR TO pattern [ESCAPE escape]`
//! (the planner negates it for NOT SIMILAR TO).
//!
//! The pattern must match the whole string, case-sensitively. Pattern language (SQL:2008):
//! `%` any string, `_` any one character, `|` alternation, `*` `+` `?` `{m}` `{m,}`
//! `{m,n}` repetition, `( )` grouping, `[...]` / `[^...]` character sets with ranges and
//! `[:ALPHA:]`-style classes. Every other character is literal — including `.`, `^`, `$`
//! and `\`. There is no escape character unless one is given; the escape character makes
//! the next character literal. NULL in any argument → NULL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::common::{cached_regex, check_arity, coerce_string, eval_arrays, return_field, scalar_str, utf8};

const NAME: &str = "similar_to";

/// Translates a SIMILAR TO pattern into an anchored Rust regular expression.
pub fn similar_to_regex(pattern: &str, escape: Option<char>) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let bad = |why: &str| format!("invalid SIMILAR TO pattern '{pattern}': {why}");
    let mut out = String::with_capacity(pattern.len() * 2 + 16);
    out.push_str("(?s)\\A(?:");
    let mut i = 0;
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if Some(c) == escape {
            let Some(&next) = chars.get(i + 1) else {
                return Err(bad("the pattern ends with the escape character"));
            };
            push_literal(&mut out, next);
            i += 2;
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '|' | '*' | '+' | '?' => out.push(c),
            '(' => {
                depth += 1;
                out.push('(');
            }
            ')' => {
                if depth == 0 {
                    return Err(bad("unbalanced ')'"));
                }
                depth -= 1;
                out.push(')');
            }
            '{' => {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or_else(|| bad("unterminated '{'"))?;
                let body: String = chars[i + 1..i + close].iter().collect();
                let valid = match body.split_once(',') {
                    Some((m, n)) => {
                        !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()) && n.chars().all(|c| c.is_ascii_digit())
                    }
                    None => !body.is_empty() && body.chars().all(|c| c.is_ascii_digit()),
                };
                if !valid {
                    return Err(bad("a repetition must be {m}, {m,} or {m,n}"));
                }
                out.push('{');
                out.push_str(&body);
                out.push('}');
                i += close;
            }
            '[' => {
                i = translate_set(&chars, i, escape, &mut out).map_err(|e| bad(&e))?;
            }
            _ => push_literal(&mut out, c),
        }
        i += 1;
    }
    if depth != 0 {
        return Err(bad("unbalanced '('"));
    }
    out.push_str(")\\z");
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Translates the character set starting at `chars[start] == '['`; returns the index of
/// its closing `]`.
fn translate_set(chars: &[char], start: usize, escape: Option<char>, out: &mut String) -> Result<usize, String> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    // Whether the last thing pushed was a single character (a possible range start).
    let mut after_char = false;
    while i < chars.len() {
        let c = chars[i];
        if Some(c) == escape {
            let next = *chars.get(i + 1).ok_or("the pattern ends with the escape character")?;
            push_literal(out, next);
            after_char = true;
            first = false;
            i += 2;
            continue;
        }
        match c {
            ']' if !first => {
                out.push(']');
                return Ok(i);
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                let rest: String = chars[i + 2..].iter().collect();
                let end = rest.find(":]").ok_or("unterminated character class name")?;
                let class = match rest[..end].to_ascii_uppercase().as_str() {
                    "ALPHA" => "[:alpha:]",
                    "UPPER" => "[:upper:]",
                    "LOWER" => "[:lower:]",
                    "DIGIT" => "[:digit:]",
                    "ALNUM" => "[:alnum:]",
                    "SPACE" | "WHITESPACE" => "[:space:]",
                    "PUNCT" => "[:punct:]",
                    "XDIGIT" => "[:xdigit:]",
                    other => return Err(format!("unknown character class [:{other}:]")),
                };
                out.push_str(class);
                i += 2 + rest[..end].chars().count() + 2;
                after_char = false;
                first = false;
                continue;
            }
            '-' if after_char && i + 1 < chars.len() && chars[i + 1] != ']' && Some(chars[i + 1]) != escape => {
                out.push('-');
                after_char = false;
            }
            _ => {
                push_literal(out, c);
                after_char = true;
            }
        }
        first = false;
        i += 1;
    }
    Err("unterminated '['".to_string())
}

fn compile(pattern: &str, escape: Option<&str>) -> Result<Arc<Regex>> {
    let escape = match escape {
        None | Some("") => None,
        Some(e) => {
            let mut it = e.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => Some(c),
                _ => return exec_err!("the SIMILAR TO escape must be one character, got '{e}'"),
            }
        }
    };
    let regex = match similar_to_regex(pattern, escape) {
        Ok(r) => r,
        Err(e) => return exec_err!("{e}"),
    };
    match cached_regex(&regex) {
        Ok(re) => Ok(re),
        Err(e) => exec_err!("invalid SIMILAR TO pattern '{pattern}': {e}"),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SimilarTo {
    signature: Signature,
}

impl Default for SimilarTo {
    fn default() -> Self {
        SimilarTo {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SimilarTo {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 2, 3)?;
        let what = ["the string", "the pattern", "the escape"];
        arg_types
            .iter()
            .zip(what)
            .map(|(t, w)| coerce_string("SIMILAR TO", t, w))
            .collect()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(NAME, arg_types, 2, 3)?;
        Ok(DataType::Boolean)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // A literal pattern is checked at plan time.
        if let Some(Some(p)) = args.scalar_arguments.get(1)
            && let Some(p) = scalar_str(p)
        {
            let escape = match args.scalar_arguments.get(2) {
                None => Some(None),
                Some(Some(e)) if !e.is_null() => scalar_str(e).map(Some),
                _ => None,
            };
            if let Some(escape) = escape
                && let Err(e) = compile(p, escape)
            {
                return plan_err!("{}", e.strip_backtrace());
            }
        }
        Ok(return_field(NAME, DataType::Boolean))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Fast path: constant pattern (and escape): compile once for the batch.
        let pattern = match &args.args[1] {
            ColumnarValue::Scalar(s) if s.is_null() => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
            }
            ColumnarValue::Scalar(s) => scalar_str(s),
            ColumnarValue::Array(_) => None,
        };
        let escape = match args.args.get(2) {
            None => Some(None),
            Some(ColumnarValue::Scalar(s)) if s.is_null() => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
            }
            Some(ColumnarValue::Scalar(s)) => scalar_str(s).map(Some),
            Some(ColumnarValue::Array(_)) => None,
        };
        if let (Some(pattern), Some(escape)) = (pattern, escape) {
            let re = compile(pattern, escape)?;
            return eval_arrays(&args.args[..1], args.number_rows, |a| {
                let s = utf8(&a[0])?;
                let out: BooleanArray = s.iter().map(|v| v.map(|v| re.is_match(v))).collect();
                Ok(Arc::new(out) as ArrayRef)
            });
        }
        eval_arrays(&args.args, args.number_rows, |a| {
            let s = utf8(&a[0])?;
            let p = utf8(&a[1])?;
            let e = a.get(2).map(utf8).transpose()?;
            let mut local: HashMap<(&str, Option<&str>), Arc<Regex>> = HashMap::new();
            let mut out = BooleanArray::builder(s.len());
            for i in 0..s.len() {
                if s.is_null(i) || p.is_null(i) || e.is_some_and(|e| e.is_null(i)) {
                    out.append_null();
                    continue;
                }
                let key = (p.value(i), e.map(|e| e.value(i)));
                let re = match local.get(&key) {
                    Some(re) => re.clone(),
                    None => {
                        let re = compile(key.0, key.1)?;
                        local.insert(key, re.clone());
                        re
                    }
                };
                out.append_value(re.is_match(s.value(i)));
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{table, value};
    use super::similar_to_regex;

    async fn sim(s: &str, p: &str) -> String {
        value(&format!("SELECT similar_to('{s}', '{p}')")).await
    }

    #[tokio::test]
    async fn alternation_and_sets() {
        let p = "(NORTH|SOUTH)-[0-9]+";
        assert_eq!(sim("NORTH-12", p).await, "true");
        assert_eq!(sim("SOUTH-7", p).await, "true");
        assert_eq!(sim("NORTH-B", p).await, "false");
        assert_eq!(sim("south-2", p).await, "false");
        assert_eq!(sim("NORTH-12x", p).await, "false");
        assert_eq!(sim("xNORTH-12", p).await, "false");
    }

    #[tokio::test]
    async fn wildcards() {
        assert_eq!(sim("HIGH TECH", "%TECH%").await, "true");
        assert_eq!(sim("TECHNOLOGY", "%TECH%").await, "true");
        assert_eq!(sim("ENERGY", "%TECH%").await, "false");
        assert_eq!(sim("tech", "%TECH%").await, "false");
        assert_eq!(sim("abc", "a_c").await, "true");
        assert_eq!(sim("abbc", "a_c").await, "false");
        assert_eq!(sim("line1\nline2", "%line2").await, "true");
    }

    #[tokio::test]
    async fn regex_metacharacters_are_literal() {
        assert_eq!(sim("a.c", "a.c").await, "true");
        assert_eq!(sim("abc", "a.c").await, "false");
        assert_eq!(sim("$5^", "$5^").await, "true");
        assert_eq!(sim("a\\b", "a\\b").await, "true");
    }

    #[tokio::test]
    async fn repetition_and_classes() {
        assert_eq!(sim("aaa", "a{2,3}").await, "true");
        assert_eq!(sim("aaaa", "a{2,3}").await, "false");
        assert_eq!(sim("ab", "a?b+").await, "true");
        assert_eq!(sim("x9", "[[:ALPHA:]][[:DIGIT:]]").await, "true");
        assert_eq!(sim("q", "[^a-c]").await, "true");
        assert_eq!(sim("b", "[^a-c]").await, "false");
        assert_eq!(sim("-", "[a-]").await, "true");
        assert_eq!(sim("a.c", "[a.]%").await, "true");
    }

    #[tokio::test]
    async fn escape_character() {
        assert_eq!(value("SELECT similar_to('100%', '100!%', '!')").await, "true");
        assert_eq!(value("SELECT similar_to('1000', '100!%', '!')").await, "false");
        assert_eq!(value("SELECT similar_to('a_b', 'a#_b', '#')").await, "true");
        assert_eq!(value("SELECT similar_to('axb', 'a#_b', '#')").await, "false");
    }

    #[tokio::test]
    async fn nulls_columns_and_errors() {
        assert_eq!(value("SELECT similar_to(NULL, '%')").await, "NULL");
        assert_eq!(value("SELECT similar_to('a', NULL)").await, "NULL");
        let t = table(
            "SELECT similar_to(s, p) AS m FROM (VALUES ('NORTH-1', '(NORTH|SOUTH)-%'), \
             ('WEST-1', '(NORTH|SOUTH)-%'), (NULL, '%'), ('x', 'x')) AS t(s, p)",
        )
        .await;
        assert_eq!(t.matches("true").count(), 2, "{t}");
        assert_eq!(t.matches("false").count(), 1, "{t}");
        let v = value("SELECT similar_to('a', '(a')").await;
        assert!(v.starts_with("ERR"), "{v}");
    }

    #[test]
    fn translation() {
        assert_eq!(similar_to_regex("a%b_", None).unwrap(), "(?s)\\A(?:a.*b.)\\z");
        assert_eq!(similar_to_regex("a.b", None).unwrap(), "(?s)\\A(?:a\\.b)\\z");
        assert!(similar_to_regex("a{x}", None).is_err());
        assert!(similar_to_regex("[abc", None).is_err());
        assert!(similar_to_regex("ab!", Some('!')).is_err());
    }
}
