//! `kda_cast_char(x, n, fixed)`: KDA's `CAST(x AS VARCHAR(n))` (`fixed` false) and
//! `CAST(x AS CHAR(n))` (`fixed` true); `n` is -1 for a VARCHAR without a length.
//! DataFusion's cast forgets the length and renders timestamps in ISO form.
//!
//! * A TIMESTAMP renders as `yyyy-MM-dd HH:mm:ss.S`, the fraction of a second without
//!   trailing zeros but with at least one digit (`2016-07-19 17:05:00.0`, decision A12);
//!   a DATE as `yyyy-MM-dd`; other types as DataFusion casts them.
//! * A character string longer than `n` is cut to `n` characters; any other value whose
//!   text is longer is a row error (`CAST(DATE '2008-08-23' AS VARCHAR(9))` gives no
//!   row, spec §2.2).
//! * CHAR(n) pads with spaces to `n` characters.
//!
//! NULL in → NULL out.

use std::sync::Arc;

use chrono::DateTime;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, eval_arrays, is_string};
use crate::types::TIMESTAMP_TYPE;

/// A TIMESTAMP's text in CAST (A12): Java's `Timestamp.toString` at millisecond precision.
pub fn timestamp_text(ms: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(ms)?;
    let mut text = t.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    while text.ends_with('0') && !text.ends_with(".0") {
        text.pop();
    }
    Some(text)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaCastChar {
    signature: Signature,
}

impl Default for KdaCastChar {
    fn default() -> Self {
        KdaCastChar {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaCastChar {
    fn name(&self) -> &str {
        "kda_cast_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("CAST", arg_types, 3, 3)?;
        let x = match &arg_types[0] {
            DataType::Timestamp(_, _) | DataType::Date64 => TIMESTAMP_TYPE,
            t if is_string(t) || matches!(t, DataType::Dictionary(..)) => DataType::Utf8,
            t => t.clone(),
        };
        Ok(vec![x, DataType::Int64, DataType::Boolean])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (Some(n), Some(fixed)) = (literal_i64(&args.args[1]), literal_bool(&args.args[2])) else {
            return plan_err!("CAST: the length of the character type must be a constant");
        };
        eval_arrays(&args.args[..1], args.number_rows, |a| cast_char(&a[0], n, fixed))
    }
}

fn literal_i64(v: &ColumnarValue) -> Option<i64> {
    match v {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) => Some(*n),
        _ => None,
    }
}

fn literal_bool(v: &ColumnarValue) -> Option<bool> {
    match v {
        ColumnarValue::Scalar(ScalarValue::Boolean(Some(b))) => Some(*b),
        _ => None,
    }
}

fn cast_char(x: &ArrayRef, n: i64, fixed: bool) -> Result<ArrayRef> {
    let from_string = x.data_type() == &DataType::Utf8;
    let text: ArrayRef = match x.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let ms = cast(x, &DataType::Int64)?;
            let ms = ms.as_primitive::<Int64Type>();
            let out: StringArray = ms.iter().map(|v| v.and_then(timestamp_text)).collect();
            Arc::new(out)
        }
        DataType::Utf8 => Arc::clone(x),
        _ => cast(x, &DataType::Utf8).map_err(|e| super::common::row_error("CAST", e))?,
    };
    if n < 0 {
        return Ok(text);
    }
    let n = n as usize;
    let text = text.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
    for v in text.iter() {
        let Some(v) = v else {
            out.append_null();
            continue;
        };
        let chars = v.chars().count();
        if chars > n {
            if !from_string {
                return exec_err!("CAST: '{v}' does not fit in {} characters", n);
            }
            let end = v.char_indices().nth(n).map_or(v.len(), |(b, _)| b);
            out.append_value(&v[..end]);
        } else if fixed && chars < n {
            out.append_value(format!("{v}{}", " ".repeat(n - chars)));
        } else {
            out.append_value(v);
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::value;
    use super::timestamp_text;

    #[test]
    fn timestamp_text_keeps_one_fraction_digit_at_least() {
        let ms = |s| crate::time::parse_timestamp(s).unwrap();
        assert_eq!(
            timestamp_text(ms("2016-07-19 17:05:00.000")).unwrap(),
            "2016-07-19 17:05:00.0"
        );
        assert_eq!(
            timestamp_text(ms("2016-07-19 17:05:00.120")).unwrap(),
            "2016-07-19 17:05:00.12"
        );
        assert_eq!(
            timestamp_text(ms("2016-07-19 17:05:00.007")).unwrap(),
            "2016-07-19 17:05:00.007"
        );
        assert_eq!(
            timestamp_text(ms("1969-12-31 23:59:59.500")).unwrap(),
            "1969-12-31 23:59:59.5"
        );
    }

    #[tokio::test]
    async fn casts_to_character_types() {
        let ts = "TIMESTAMP '2004-09-30 13:48:23.250'";
        assert_eq!(
            value(&format!("SELECT kda_cast_char({ts}, -1, false)")).await,
            "2004-09-30 13:48:23.25"
        );
        // The idiom SUBSTRING(CAST(ts AS VARCHAR(25)), 12, 8): the time of day.
        assert_eq!(
            value(&format!("SELECT kda_substring(kda_cast_char({ts}, 25, false), 12, 8)")).await,
            "13:48:23"
        );
        assert_eq!(
            value("SELECT kda_cast_char(DATE '2008-08-23', 10, false)").await,
            "2008-08-23"
        );
        let v = value("SELECT kda_cast_char(DATE '2008-08-23', 9, false)").await;
        assert!(v.starts_with("ERR") && v.contains("does not fit"), "{v}");
        let v = value("SELECT kda_cast_char(12345, 4, false)").await;
        assert!(v.starts_with("ERR"), "{v}");
        assert_eq!(value("SELECT kda_cast_char(12345, 5, false)").await, "12345");
        // Character strings are cut, CHAR pads.
        assert_eq!(value("SELECT kda_cast_char('abcdef', 3, false)").await, "abc");
        assert_eq!(value("SELECT kda_cast_char('ab', 4, true) || '|'").await, "ab  |");
        assert_eq!(value("SELECT kda_cast_char('héllo', 2, true)").await, "hé");
        assert_eq!(
            value("SELECT kda_cast_char(CAST(2.5 AS DOUBLE), -1, false)").await,
            "2.5"
        );
        assert_eq!(value("SELECT kda_cast_char(true, -1, false)").await, "true");
        assert_eq!(value("SELECT kda_cast_char(NULL, 3, true)").await, "NULL");
    }
}
