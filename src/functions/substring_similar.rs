//! `kda_substring_similar(s, pattern, escape)`: SQL's `SUBSTRING(s SIMILAR pattern ESCAPE
//! escape)` (spec §4.4; the dialect's tokens rewrite the syntax into this call).
//!
//! The pattern is three SIMILAR TO patterns separated by the escape character followed
//! by a double quote: `prefix e" middle e" suffix`. When the whole of `s` matches the
//! three in a row, the result is the part the middle one matched, with the prefix
//! matching as little as possible; otherwise NULL. A pattern without exactly two
//! separators, or an escape that is not one character, is a row error. NULL in → NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use regex::Regex;

use super::common::{cached_regex, check_arity, coerce_string, eval_arrays, utf8};
use super::similar_to::similar_to_regex;

/// The anchored regular expression of a three-part pattern; group 1 is the middle part.
pub fn substring_similar_regex(pattern: &str, escape: char) -> Result<String, String> {
    let separator = format!("{escape}\"");
    let parts: Vec<&str> = pattern.split(separator.as_str()).collect();
    let [prefix, middle, suffix] = parts.as_slice() else {
        return Err(format!(
            "SUBSTRING ... SIMILAR: the pattern '{pattern}' needs two {separator} separators, found {}",
            parts.len() - 1
        ));
    };
    // similar_to_regex anchors its translation as `(?s)\A(?:...)\z`: take the body.
    let body = |p: &str| -> Result<String, String> {
        let r = similar_to_regex(p, Some(escape))?;
        Ok(r["(?s)\\A(?:".len()..r.len() - ")\\z".len()].to_string())
    };
    // (?U: ...) swaps greediness: the prefix takes the shortest match.
    Ok(format!(
        "(?s)\\A(?U:{})({})(?:{})\\z",
        body(prefix)?,
        body(middle)?,
        body(suffix)?
    ))
}

fn compile(pattern: &str, escape: &str) -> Result<Arc<Regex>> {
    let mut chars = escape.chars();
    let (Some(e), None) = (chars.next(), chars.next()) else {
        return exec_err!("SUBSTRING ... SIMILAR: the escape must be one character, got '{escape}'");
    };
    let regex = match substring_similar_regex(pattern, e) {
        Ok(r) => r,
        Err(m) => return exec_err!("{m}"),
    };
    cached_regex(&regex).or_else(|m| exec_err!("SUBSTRING ... SIMILAR: invalid pattern '{pattern}': {m}"))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaSubstringSimilar {
    signature: Signature,
}

impl Default for KdaSubstringSimilar {
    fn default() -> Self {
        KdaSubstringSimilar {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaSubstringSimilar {
    fn name(&self) -> &str {
        "kda_substring_similar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("SUBSTRING ... SIMILAR", arg_types, 3, 3)?;
        arg_types
            .iter()
            .zip(["the string", "the pattern", "the escape"])
            .map(|(t, what)| coerce_string("SUBSTRING ... SIMILAR", t, what))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let (s, p, e) = (utf8(&a[0])?, utf8(&a[1])?, utf8(&a[2])?);
            let mut out = StringBuilder::with_capacity(s.len(), s.value_data().len());
            // Patterns are usually one literal: compile once per distinct pattern.
            let mut last: Option<((&str, &str), Arc<Regex>)> = None;
            for i in 0..s.len() {
                if s.is_null(i) || p.is_null(i) || e.is_null(i) {
                    out.append_null();
                    continue;
                }
                let key = (p.value(i), e.value(i));
                let re = match &last {
                    Some((k, re)) if *k == key => Arc::clone(re),
                    _ => {
                        let re = compile(key.0, key.1)?;
                        last = Some((key, Arc::clone(&re)));
                        re
                    }
                };
                match re.captures(s.value(i)).and_then(|c| c.get(1)) {
                    Some(m) => out.append_value(m.as_str()),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::value;

    async fn sub(s: &str, p: &str) -> String {
        value(&format!("SELECT kda_substring_similar('{s}', '{p}', '#')")).await
    }

    #[tokio::test]
    async fn the_middle_part_is_returned() {
        // SQL:2008's example form: what sits between two markers.
        assert_eq!(sub("abc-123-xyz", "%-#\"[0-9]+#\"-%").await, "123");
        assert_eq!(sub("Thomas", "%#\"o_a#\"_").await, "oma");
        // The prefix matches as little as possible, the middle as much as it can.
        assert_eq!(sub("aaa", "%#\"a%#\"").await, "aaa");
        assert_eq!(sub("key=v=w", "%=#\"%#\"").await, "v=w");
        assert_eq!(sub("", "#\"%#\"").await, "");
    }

    #[tokio::test]
    async fn no_match_is_null_and_bad_patterns_are_row_errors() {
        assert_eq!(sub("abc", "x#\"%#\"").await, "NULL");
        assert_eq!(
            value("SELECT kda_substring_similar(NULL, '#\"a#\"', '#')").await,
            "NULL"
        );
        let v = sub("abc", "%#\"b%").await;
        assert!(v.starts_with("ERR") && v.contains("separators"), "{v}");
        let v = value("SELECT kda_substring_similar('abc', '%', '##')").await;
        assert!(v.starts_with("ERR") && v.contains("one character"), "{v}");
    }
}
