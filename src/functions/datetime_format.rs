//! `char_to_timestamp(format, s)` and `timestamp_to_char(format, ts)`: KDA's
//! CHAR_TO_TIMESTAMP and TIMESTAMP_TO_CHAR with Java SimpleDateFormat patterns (see
//! [`super::simple_date_format`] for the pattern language and parsing rules).
//!
//! * `char_to_timestamp(VARCHAR format, VARCHAR s)` → TIMESTAMP(ms). A string that does
//!   not match the format or has out-of-range fields is a row error (decision A25). NULL
//!   in → NULL.
//! * `timestamp_to_char(VARCHAR format, TIMESTAMP ts)` → VARCHAR, rendered in UTC. A NULL
//!   `ts` gives the string `'null'` (documented KDA behaviour); a NULL format gives NULL.
//!
//! An invalid literal format (illegal letter, unterminated quote) is a plan error; a
//! format computed per row is checked per row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::TIMESTAMP_TYPE;

use super::common::{
    check_arity, coerce_string, coerce_timestamp, eval_arrays, millis_to_timestamp, return_field, scalar_str,
    timestamp_millis, utf8,
};
use super::simple_date_format::{FormatCache, format, parse, tokenize};

/// Plan-time check of a literal format argument.
fn check_literal_format(function: &str, args: &ReturnFieldArgs) -> Result<()> {
    if let Some(Some(f)) = args.scalar_arguments.first()
        && let Some(f) = scalar_str(f)
        && let Err(e) = tokenize(f)
    {
        return plan_err!("{function}: {e}");
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CharToTimestamp {
    signature: Signature,
}

impl Default for CharToTimestamp {
    fn default() -> Self {
        CharToTimestamp {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CharToTimestamp {
    fn name(&self) -> &str {
        "char_to_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("CHAR_TO_TIMESTAMP", arg_types, 2, 2)?;
        Ok(vec![
            coerce_string("CHAR_TO_TIMESTAMP", &arg_types[0], "the format")?,
            coerce_string("CHAR_TO_TIMESTAMP", &arg_types[1], "the text")?,
        ])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("CHAR_TO_TIMESTAMP", arg_types, 2, 2)?;
        Ok(TIMESTAMP_TYPE)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_literal_format("CHAR_TO_TIMESTAMP", &args)?;
        Ok(return_field(self.name(), TIMESTAMP_TYPE))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let fmt = utf8(&a[0])?;
            let text = utf8(&a[1])?;
            let mut formats = FormatCache::default();
            let mut out = Int64Builder::with_capacity(text.len());
            for i in 0..text.len() {
                if fmt.is_null(i) || text.is_null(i) {
                    out.append_null();
                    continue;
                }
                let tokens = formats.get("CHAR_TO_TIMESTAMP", fmt.value(i))?;
                let ms = parse(&tokens, text.value(i)).map_err(|e| {
                    DataFusionError::Execution(format!("CHAR_TO_TIMESTAMP('{}', ...): {e}", fmt.value(i)))
                })?;
                out.append_value(ms);
            }
            Ok(millis_to_timestamp(out.finish()))
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampToChar {
    signature: Signature,
}

impl Default for TimestampToChar {
    fn default() -> Self {
        TimestampToChar {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TimestampToChar {
    fn name(&self) -> &str {
        "timestamp_to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TIMESTAMP_TO_CHAR", arg_types, 2, 2)?;
        Ok(vec![
            coerce_string("TIMESTAMP_TO_CHAR", &arg_types[0], "the format")?,
            coerce_timestamp("TIMESTAMP_TO_CHAR", &arg_types[1], "the timestamp")?,
        ])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("TIMESTAMP_TO_CHAR", arg_types, 2, 2)?;
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_literal_format("TIMESTAMP_TO_CHAR", &args)?;
        Ok(return_field(self.name(), DataType::Utf8))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let ColumnarValue::Scalar(f) = &args.args[0]
            && f.is_null()
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        }
        eval_arrays(&args.args, args.number_rows, |a| {
            let fmt = utf8(&a[0])?;
            let ts = timestamp_millis(&a[1])?;
            let mut formats = FormatCache::default();
            let mut out = StringBuilder::with_capacity(ts.len(), ts.len() * 24);
            for i in 0..ts.len() {
                if fmt.is_null(i) {
                    out.append_null();
                } else if ts.is_null(i) {
                    out.append_value("null");
                } else {
                    let tokens = formats.get("TIMESTAMP_TO_CHAR", fmt.value(i))?;
                    out.append_value(format(&tokens, ts.value(i)));
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{table, value, value_type};

    #[tokio::test]
    async fn char_to_timestamp_documented_examples() {
        assert_eq!(
            value("SELECT char_to_timestamp('yyyy-MM-dd HH:mm:ss', '2011-02-08 07:23:19')").await,
            "2011-02-08T07:23:19"
        );
        assert_eq!(
            value("SELECT char_to_timestamp('yyyy-mm', '2011-02-08 07:23:19')").await,
            "2011-01-01T00:02:00"
        );
        assert_eq!(
            value("SELECT char_to_timestamp('MMM dd,y', 'March 7, 10')").await,
            "0010-03-07T00:00:00"
        );
        assert_eq!(
            value_type("SELECT char_to_timestamp('yyyy', '2011')").await,
            "Timestamp(ms)"
        );
    }

    #[tokio::test]
    async fn char_to_timestamp_errors_and_nulls() {
        let v = value("SELECT char_to_timestamp('yyyy-MM-dd', 'not a date')").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT char_to_timestamp('yyyy-MM-dd', '2011-02-30')").await;
        assert!(v.starts_with("ERR"), "{v}");
        let v = value("SELECT char_to_timestamp('yyyy-qq', '2011-02')").await;
        assert!(v.starts_with("ERR") && v.contains("illegal pattern character"), "{v}");
        assert_eq!(value("SELECT char_to_timestamp('yyyy', NULL)").await, "NULL");
        let t = table(
            "SELECT char_to_timestamp('dd/MM/yyyy', s) AS t FROM \
             (VALUES ('01/02/2003'), ('31/12/1999'), (NULL)) AS v(s)",
        )
        .await;
        assert!(
            t.contains("2003-02-01T00:00:00") && t.contains("1999-12-31T00:00:00"),
            "{t}"
        );
    }

    #[tokio::test]
    async fn timestamp_to_char_examples() {
        assert_eq!(
            value("SELECT timestamp_to_char('yyyy-MM-dd HH:mm:ss', TIMESTAMP '2011-02-08 07:23:19')").await,
            "2011-02-08 07:23:19"
        );
        assert_eq!(
            value("SELECT timestamp_to_char('MMM dd, yyyy hh:mm a', TIMESTAMP '2011-02-08 17:23:19')").await,
            "Feb 08, 2011 05:23 PM"
        );
        assert_eq!(
            value("SELECT timestamp_to_char('EEEE d MMMM yy SSS', TIMESTAMP '2011-02-08 17:23:19.5')").await,
            "Tuesday 8 February 11 500"
        );
        // Documented: a NULL timestamp gives the string 'null'.
        assert_eq!(
            value("SELECT timestamp_to_char('yyyy', CAST(NULL AS TIMESTAMP))").await,
            "null"
        );
        assert_eq!(value("SELECT timestamp_to_char('yyyy', NULL)").await, "null");
        assert_eq!(
            value("SELECT timestamp_to_char(NULL, TIMESTAMP '2011-02-08 17:23:19')").await,
            "NULL"
        );
        let v = value("SELECT timestamp_to_char('yyyy-bb', TIMESTAMP '2011-02-08 17:23:19')").await;
        assert!(v.starts_with("ERR"), "{v}");
    }

    #[tokio::test]
    async fn round_trip_through_both() {
        assert_eq!(
            value(
                "SELECT timestamp_to_char('yyyy-MM-dd''T''HH:mm:ss.SSS', \
                 char_to_timestamp('yyyy-MM-dd''T''HH:mm:ss.SSS', '1999-12-31T23:59:59.999'))"
            )
            .await,
            "1999-12-31T23:59:59.999"
        );
    }
}
