//! KDA string functions whose semantics differ from DataFusion's.
//!
//! * `kda_substring(s, start [, len])` → VARCHAR: KDA's `SUBSTRING` (decision A13).
//!   1-based character positions; `start < 1` counts as 1 with `len` reduced by
//!   `1 − start`; a start beyond the end or a length of 0 gives `''`; a negative length is
//!   a row error; a missing length means the rest of the string. NULL in → NULL.
//! * `kda_position(sub, s)` → INTEGER: 1-based character index of the first occurrence of
//!   `sub` in `s`, 0 if absent, 1 for an empty `sub`. NULL in → NULL.
//! * `kda_initcap(s)` → VARCHAR: `INITCAP`, the first letter of each word upper-case and
//!   the rest lower-case, where only spaces separate words (DataFusion's `initcap` also
//!   starts a word after `-`, `_` or any other non-alphanumeric character).
//! * `kda_overlay(s, r, start [, len])` → VARCHAR: `OVERLAY(s PLACING r FROM start [FOR
//!   len])`, i.e. `SUBSTRING(s, 1, start - 1) || r || SUBSTRING(s, start + len)` with
//!   `len` defaulting to `CHAR_LENGTH(r)`: a start past the end appends `r`, a start
//!   below 1 puts the first `1 - start` characters of `r` before the string and lays the
//!   rest over it, a negative `len` is a row error. NULL in → NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int32Builder, StringArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, coerce_int64, coerce_string, eval_arrays, int64, utf8};

/// KDA SUBSTRING on one value (character positions).
pub fn substring(s: &str, start: i64, len: Option<i64>) -> Result<&str> {
    if let Some(len) = len
        && len < 0
    {
        return exec_err!("SUBSTRING: negative length {len}");
    }
    // Half-open range of 0-based character indexes [begin, end).
    let begin = start.saturating_sub(1);
    let end = len.map_or(i64::MAX, |l| begin.saturating_add(l));
    let begin = begin.max(0) as u64;
    let end = end.max(0) as u64;
    if end <= begin {
        return Ok("");
    }
    if s.is_ascii() {
        let n = s.len() as u64;
        let (b, e) = (begin.min(n) as usize, end.min(n) as usize);
        return Ok(&s[b..e]);
    }
    let b = char_boundary(s, begin);
    let e = b + char_boundary(&s[b..], end - begin);
    Ok(&s[b..e])
}

/// Byte offset of the `k`-th character of `s` (0-based), or `s.len()` past the end.
fn char_boundary(s: &str, k: u64) -> usize {
    if k >= s.len() as u64 {
        return s.len();
    }
    s.char_indices().nth(k as usize).map_or(s.len(), |(b, _)| b)
}

/// KDA POSITION on one value.
pub fn position(sub: &str, s: &str) -> i32 {
    if sub.is_empty() {
        return 1;
    }
    match s.find(sub) {
        Some(byte) => s[..byte].chars().count() as i32 + 1,
        None => 0,
    }
}

/// KDA INITCAP on one value.
pub fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word_start = true;
    for c in s.chars() {
        if word_start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        word_start = c == ' ';
    }
    out
}

/// KDA OVERLAY on one value (character positions).
pub fn overlay(s: &str, r: &str, start: i64, len: Option<i64>) -> Result<String> {
    let len = len.unwrap_or(r.chars().count() as i64);
    if len < 0 {
        return exec_err!("OVERLAY: negative length {len}");
    }
    // Characters of `s` before `start`, then `r`, then `s` from `start + len` on.
    let head = substring(s, 1, Some(start.saturating_sub(1).max(0)))?;
    let tail = substring(s, start.saturating_add(len), None)?;
    Ok([head, r, tail].concat())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaSubstring {
    signature: Signature,
}

impl Default for KdaSubstring {
    fn default() -> Self {
        KdaSubstring {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaSubstring {
    fn name(&self) -> &str {
        "kda_substring"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("SUBSTRING", arg_types, 2, 3)?;
        let mut out = vec![coerce_string("SUBSTRING", &arg_types[0], "the string")?];
        out.push(coerce_int64("SUBSTRING", &arg_types[1], "the start position")?);
        if let Some(t) = arg_types.get(2) {
            out.push(coerce_int64("SUBSTRING", t, "the length")?);
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("SUBSTRING", arg_types, 2, 3)?;
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let s = utf8(&a[0])?;
            let start = int64(&a[1])?;
            let len = a.get(2).map(int64).transpose()?;
            let mut out = StringBuilder::with_capacity(s.len(), s.value_data().len());
            for i in 0..s.len() {
                if s.is_null(i) || start.is_null(i) || len.is_some_and(|l| l.is_null(i)) {
                    out.append_null();
                    continue;
                }
                let l = len.map(|l| l.value(i));
                out.append_value(substring(s.value(i), start.value(i), l)?);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaPosition {
    signature: Signature,
}

impl Default for KdaPosition {
    fn default() -> Self {
        KdaPosition {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaPosition {
    fn name(&self) -> &str {
        "kda_position"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("POSITION", arg_types, 2, 2)?;
        Ok(vec![
            coerce_string("POSITION", &arg_types[0], "the searched string")?,
            coerce_string("POSITION", &arg_types[1], "the string")?,
        ])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("POSITION", arg_types, 2, 2)?;
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let sub = utf8(&a[0])?;
            let s = utf8(&a[1])?;
            let mut out = Int32Builder::with_capacity(s.len());
            for i in 0..s.len() {
                if sub.is_null(i) || s.is_null(i) {
                    out.append_null();
                } else {
                    out.append_value(position(sub.value(i), s.value(i)));
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaInitcap {
    signature: Signature,
}

impl Default for KdaInitcap {
    fn default() -> Self {
        KdaInitcap {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaInitcap {
    fn name(&self) -> &str {
        "kda_initcap"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("INITCAP", arg_types, 1, 1)?;
        Ok(vec![coerce_string("INITCAP", &arg_types[0], "the string")?])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("INITCAP", arg_types, 1, 1)?;
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let s = utf8(&a[0])?;
            let out: StringArray = s.iter().map(|v| v.map(initcap)).collect();
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaOverlay {
    signature: Signature,
}

impl Default for KdaOverlay {
    fn default() -> Self {
        KdaOverlay {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaOverlay {
    fn name(&self) -> &str {
        "kda_overlay"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("OVERLAY", arg_types, 3, 4)?;
        let mut out = vec![
            coerce_string("OVERLAY", &arg_types[0], "the string")?,
            coerce_string("OVERLAY", &arg_types[1], "the replacement")?,
            coerce_int64("OVERLAY", &arg_types[2], "the start position")?,
        ];
        if let Some(t) = arg_types.get(3) {
            out.push(coerce_int64("OVERLAY", t, "the length")?);
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("OVERLAY", arg_types, 3, 4)?;
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let (s, r, start) = (utf8(&a[0])?, utf8(&a[1])?, int64(&a[2])?);
            let len = a.get(3).map(int64).transpose()?;
            let mut out = StringBuilder::with_capacity(s.len(), s.value_data().len());
            for i in 0..s.len() {
                if s.is_null(i) || r.is_null(i) || start.is_null(i) || len.is_some_and(|l| l.is_null(i)) {
                    out.append_null();
                    continue;
                }
                let l = len.map(|l| l.value(i));
                out.append_value(overlay(s.value(i), r.value(i), start.value(i), l)?);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{table, value};
    use super::{initcap, overlay, position, substring};

    #[test]
    fn initcap_splits_words_on_spaces_only() {
        assert_eq!(initcap("hello wORLD"), "Hello World");
        assert_eq!(initcap("hello-world foo_bar  x"), "Hello-world Foo_bar  X");
        assert_eq!(initcap(" élan o'neil"), " Élan O'neil");
        assert_eq!(initcap(""), "");
    }

    #[test]
    fn overlay_edge_cases() {
        let o = |s, r, start, len| overlay(s, r, start, len).unwrap();
        assert_eq!(o("12345", "foo", 1, None), "foo45");
        assert_eq!(o("12345", "foo", 2, None), "1foo5");
        assert_eq!(o("12345", "foo", 2, Some(1)), "1foo345");
        assert_eq!(o("12345", "foo", 2, Some(0)), "1foo2345");
        assert_eq!(o("12345", "foo", 4, None), "123foo");
        // start past the end: appended
        assert_eq!(o("12345", "foo", 6, None), "12345foo");
        assert_eq!(o("12345", "foo", 9, Some(2)), "12345foo");
        // start below 1: 1 - start characters of r come first, the rest overlays
        assert_eq!(o("12345", "foo", 0, None), "foo345");
        assert_eq!(o("12345", "foo", -1, None), "foo2345");
        assert_eq!(o("12345", "foo", -5, None), "foo12345");
        assert_eq!(o("12345", "foo", -5, Some(9)), "foo45");
        assert_eq!(o("héllo", "ö", 2, None), "höllo");
        assert_eq!(o("", "ab", 1, None), "ab");
        assert!(overlay("12345", "foo", 1, Some(-1)).is_err());
    }

    #[test]
    fn substring_edge_cases() {
        assert_eq!(substring("123456789", 3, Some(4)).unwrap(), "3456");
        assert_eq!(substring("123456789", 3, None).unwrap(), "3456789");
        assert_eq!(substring("123456789", 0, Some(3)).unwrap(), "12");
        assert_eq!(substring("123456789", -2, Some(4)).unwrap(), "1");
        assert_eq!(substring("123456789", -2, Some(3)).unwrap(), "");
        assert_eq!(substring("123456789", -2, None).unwrap(), "123456789");
        assert_eq!(substring("123456789", 9, Some(5)).unwrap(), "9");
        assert_eq!(substring("123456789", 10, Some(1)).unwrap(), "");
        assert_eq!(substring("123456789", 100, None).unwrap(), "");
        assert_eq!(substring("123456789", 2, Some(0)).unwrap(), "");
        assert_eq!(substring("123456789", 2, Some(i64::MAX)).unwrap(), "23456789");
        assert_eq!(substring("123456789", i64::MIN, Some(i64::MAX)).unwrap(), "");
        assert!(substring("123456789", 2, Some(-1)).is_err());
        assert_eq!(substring("héllo wörld", 2, Some(4)).unwrap(), "éllo");
        assert_eq!(substring("héllo wörld", 8, None).unwrap(), "örld");
        assert_eq!(substring("héllo wörld", 8, Some(2)).unwrap(), "ör");
        assert_eq!(substring("héllo", 6, Some(2)).unwrap(), "");
        assert_eq!(substring("", 1, Some(2)).unwrap(), "");
    }

    #[test]
    fn position_cases() {
        assert_eq!(position("lo", "hello"), 4);
        assert_eq!(position("x", "hello"), 0);
        assert_eq!(position("", "hello"), 1);
        assert_eq!(position("ö", "héllö"), 5);
    }

    #[tokio::test]
    async fn through_sql() {
        assert_eq!(value("SELECT kda_substring('123456789', 3, 4)").await, "3456");
        assert_eq!(value("SELECT kda_substring('123456789', 3)").await, "3456789");
        assert_eq!(
            value("SELECT kda_substring('123456789', CAST(0 AS INT), 3)").await,
            "12"
        );
        assert_eq!(value("SELECT kda_substring('abc', 10, 2)").await, "");
        assert_eq!(value("SELECT kda_substring(NULL, 1, 2)").await, "NULL");
        assert_eq!(value("SELECT kda_substring('abc', 1, NULL)").await, "NULL");
        let v = value("SELECT kda_substring('abc', 1, -1)").await;
        assert!(v.starts_with("ERR") && v.contains("negative"), "{v}");
        assert_eq!(value("SELECT kda_position('lo', 'hello')").await, "4");
        assert_eq!(value("SELECT kda_position('z', 'hello')").await, "0");
        assert_eq!(value("SELECT kda_position(NULL, 'hello')").await, "NULL");
        let t = table("SELECT kda_substring(s, p, 2) AS x FROM (VALUES ('abcdef', 2), ('xyz', 3)) AS t(s, p)").await;
        assert!(t.contains("| bc |") && t.contains("| z  |"), "{t}");
    }
}
