//! `kda_regex_replace(original, regex, replacement, startPosition, occurrence)`: KDA's
//! `REGEX_REPLACE` (the planner maps the KDA name to this one; DataFusion owns
//! `regexp_replace`).
//!
//! * `regex` is a Java regular expression, compiled with Rust's `regex` crate: the common
//!   syntax is the same; back-references, look-around and possessive quantifiers are not
//!   supported and make the row fail.
//! * `replacement` uses Java's `Matcher.appendReplacement` syntax: `$n` / `${name}` insert
//!   a group (a group that did not participate inserts nothing), `\x` inserts `x`
//!   literally; a reference to a missing group or a dangling `$` / `\` is a row error.
//! * `startPosition` is the 1-based character position where matching starts (text
//!   before it is kept unchanged); `< 1` is a row error; beyond the end of the string
//!   returns `original` unchanged.
//! * `occurrence` 0 replaces every match, `n > 0` only the n-th match (from
//!   `startPosition`; `original` unchanged when there are fewer); `< 0` is a row error.
//! * The last two arguments may be omitted (1 and 0). NULL in any argument → NULL.
//! * Result VARCHAR (Utf8).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use regex::{Captures, Regex};

use super::common::{cached_regex, check_arity, coerce_int64, coerce_string, eval_arrays, int64, utf8};

const NAME: &str = "kda_regex_replace";

/// A compiled regex and its parsed replacement.
type Compiled = (Arc<Regex>, Vec<Part>);

/// One piece of a parsed Java replacement string.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Group(usize),
    Named(String),
}

/// Parses a Java replacement string against a regex (group references are resolved the
/// way `Matcher.appendReplacement` does: `$12` is group 12 only if it exists, else group 1
/// followed by `2`).
fn parse_replacement(replacement: &str, re: &Regex) -> Result<Vec<Part>, String> {
    let groups = re.captures_len() - 1;
    let chars: Vec<char> = replacement.chars().collect();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = chars.get(i + 1).ok_or("character to be escaped is missing")?;
                lit.push(*c);
                i += 2;
            }
            '$' => {
                i += 1;
                let Some(&c) = chars.get(i) else {
                    return Err("illegal group reference: group index is missing".to_string());
                };
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                if c == '{' {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .ok_or("named capturing group is missing trailing '}'")?;
                    let name: String = chars[i + 1..i + close].iter().collect();
                    if name.is_empty() || re.capture_names().flatten().all(|n| n != name) {
                        return Err(format!("no group with name {{{name}}}"));
                    }
                    parts.push(Part::Named(name));
                    i += close + 1;
                } else if let Some(d) = c.to_digit(10) {
                    let mut n = d as usize;
                    i += 1;
                    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                        let next = n * 10 + d as usize;
                        if next > groups {
                            break;
                        }
                        n = next;
                        i += 1;
                    }
                    if n > groups {
                        return Err(format!("no group {n}"));
                    }
                    parts.push(Part::Group(n));
                } else {
                    return Err("illegal group reference".to_string());
                }
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    Ok(parts)
}

fn expand(parts: &[Part], caps: &Captures, out: &mut String) {
    for p in parts {
        match p {
            Part::Literal(s) => out.push_str(s),
            Part::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
            Part::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
        }
    }
}

/// REGEX_REPLACE on one row.
fn replace_one(original: &str, re: &Regex, parts: &[Part], start: i64, occurrence: i64) -> Result<String> {
    if start < 1 {
        return exec_err!("REGEX_REPLACE: startPosition must be at least 1, got {start}");
    }
    if occurrence < 0 {
        return exec_err!("REGEX_REPLACE: occurrence must not be negative, got {occurrence}");
    }
    let Some((offset, _)) = original.char_indices().nth((start - 1) as usize) else {
        return Ok(original.to_string());
    };
    let (prefix, rest) = original.split_at(offset);
    let mut out = String::with_capacity(original.len());
    out.push_str(prefix);
    let mut last = 0;
    for (n, caps) in re.captures_iter(rest).enumerate() {
        let m = caps.get(0).expect("group 0 always participates");
        if occurrence == 0 || n as i64 + 1 == occurrence {
            out.push_str(&rest[last..m.start()]);
            expand(parts, &caps, &mut out);
            last = m.end();
            if occurrence != 0 {
                break;
            }
        }
    }
    out.push_str(&rest[last..]);
    Ok(out)
}

fn compile(regex: &str) -> Result<Arc<Regex>> {
    cached_regex(regex).map_err(|e| DataFusionError::Execution(format!("REGEX_REPLACE: invalid regex: {e}")))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaRegexReplace {
    signature: Signature,
}

impl Default for KdaRegexReplace {
    fn default() -> Self {
        KdaRegexReplace {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaRegexReplace {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("REGEX_REPLACE", arg_types, 3, 5)?;
        let what = ["original", "regex", "replacement", "startPosition", "occurrence"];
        arg_types
            .iter()
            .zip(what)
            .enumerate()
            .map(|(i, (t, w))| {
                if i < 3 {
                    coerce_string("REGEX_REPLACE", t, w)
                } else {
                    coerce_int64("REGEX_REPLACE", t, w)
                }
            })
            .collect()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("REGEX_REPLACE", arg_types, 3, 5)?;
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let original = utf8(&a[0])?;
            let regex = utf8(&a[1])?;
            let replacement = utf8(&a[2])?;
            let start = a.get(3).map(int64).transpose()?;
            let occurrence = a.get(4).map(int64).transpose()?;
            // (regex, replacement) → compiled regex and parsed replacement, per batch.
            let mut compiled: HashMap<(&str, &str), Compiled> = HashMap::new();
            let mut out = StringBuilder::with_capacity(original.len(), original.value_data().len());
            for i in 0..original.len() {
                let null = original.is_null(i)
                    || regex.is_null(i)
                    || replacement.is_null(i)
                    || start.is_some_and(|s| s.is_null(i))
                    || occurrence.is_some_and(|o| o.is_null(i));
                if null {
                    out.append_null();
                    continue;
                }
                let key = (regex.value(i), replacement.value(i));
                let (re, parts) = match compiled.entry(key) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let re = compile(key.0)?;
                        let parts = parse_replacement(key.1, &re)
                            .map_err(|e| DataFusionError::Execution(format!("REGEX_REPLACE: replacement: {e}")))?;
                        e.insert((re, parts))
                    }
                };
                let s = replace_one(
                    original.value(i),
                    re,
                    parts,
                    start.map_or(1, |s| s.value(i)),
                    occurrence.map_or(0, |o| o.value(i)),
                )?;
                out.append_value(s);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::value;

    async fn rr(args: &str) -> String {
        value(&format!("SELECT kda_regex_replace({args})")).await
    }

    #[tokio::test]
    async fn occurrence_rules() {
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 1, 0").await, "a#b#c#");
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 1, 1").await, "a#b22c333");
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 1, 2").await, "a1b#c333");
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 1, 3").await, "a1b22c#");
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 1, 4").await, "a1b22c333");
        let v = rr("'a1b22c333', '[0-9]+', '#', 1, -1").await;
        assert!(v.starts_with("ERR") && v.contains("occurrence"), "{v}");
    }

    #[tokio::test]
    async fn start_position_rules() {
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 3, 0").await, "a1b#c#");
        assert_eq!(rr("'a1b22c333', '[0-9]+', '#', 5, 1").await, "a1b2#c333");
        assert_eq!(rr("'abc', 'b', 'X', 4, 0").await, "abc");
        assert_eq!(rr("'abc', 'b', 'X', 100, 0").await, "abc");
        assert_eq!(rr("'äbcb', 'b', 'X', 3, 0").await, "äbcX");
        let v = rr("'abc', 'b', 'X', 0, 0").await;
        assert!(v.starts_with("ERR") && v.contains("startPosition"), "{v}");
    }

    #[tokio::test]
    async fn java_replacement_syntax() {
        assert_eq!(rr("'John Smith', '(\\w+) (\\w+)', '$2, $1', 1, 0").await, "Smith, John");
        assert_eq!(rr("'ab', '(a)(b)', '$2$1$0', 1, 0").await, "baab");
        assert_eq!(rr("'ab', '(a)', '$10', 1, 0").await, "a0b");
        assert_eq!(rr("'ab', '(?<x>a)', '${x}!', 1, 0").await, "a!b");
        assert_eq!(rr("'ab', 'a', '\\$1', 1, 0").await, "$1b");
        assert!(rr("'ab', 'a', '$2', 1, 0").await.starts_with("ERR"));
        assert!(rr("'ab', 'a', 'x$', 1, 0").await.starts_with("ERR"));
    }

    #[tokio::test]
    async fn documented_example_and_nulls() {
        // The KDA example replaces the referrer domain.
        assert_eq!(
            rr("'http://www.example.com/x', 'http://www.example.com', 'https://example.org', 1, 0").await,
            "https://example.org/x"
        );
        assert_eq!(rr("NULL, 'a', 'b', 1, 0").await, "NULL");
        assert_eq!(rr("'a', 'a', 'b', NULL, 0").await, "NULL");
        assert_eq!(rr("'aaa', 'a', 'b'").await, "bbb");
        assert!(rr("'a', '(', 'b', 1, 0").await.starts_with("ERR"));
    }
}
