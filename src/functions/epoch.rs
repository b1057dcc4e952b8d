//! Milliseconds-since-the-epoch conversions.
//!
//! * `unix_timestamp(ts)` → BIGINT: milliseconds since 1970-01-01 00:00:00 UTC (not
//!   seconds!). Accepts any TIMESTAMP precision or a DATE.
//! * `to_timestamp_ms(millis)` → TIMESTAMP: KDA's `TO_TIMESTAMP(BIGINT)`, the inverse of
//!   UNIX_TIMESTAMP (the planner maps KDA's TO_TIMESTAMP here; DataFusion owns
//!   `to_timestamp`). Any integer type (a float/decimal is truncated to an integer).
//! * `tsdiff(a, b)` → BIGINT: `a − b` in milliseconds; each argument may be a TIMESTAMP or
//!   a BIGINT of epoch milliseconds (decision A14). Overflow is a row error.
//!
//! NULL in → NULL out.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::types::TIMESTAMP_TYPE;

use super::common::{
    check_arity, coerce_int64, coerce_timestamp, eval_arrays, int64, is_timestamp_like, millis_to_timestamp,
    monotonic_in_first, row_error, timestamp_millis,
};

/// The instants a TIMESTAMP can hold, in ms since the epoch: years 1 to 9999, as SQL's
/// (and Java's) timestamps print them. A number outside is no timestamp, and the row
/// fails instead of carrying a value no output can render.
pub const TIMESTAMP_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800_000..=253_402_300_799_999;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UnixTimestamp {
    signature: Signature,
}

impl Default for UnixTimestamp {
    fn default() -> Self {
        UnixTimestamp {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UnixTimestamp {
    fn name(&self) -> &str {
        "unix_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("UNIX_TIMESTAMP", arg_types, 1, 1)?;
        Ok(vec![coerce_timestamp("UNIX_TIMESTAMP", &arg_types[0], "the argument")?])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("UNIX_TIMESTAMP", arg_types, 1, 1)?;
        Ok(DataType::Int64)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(monotonic_in_first(inputs))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            Ok(Arc::new(timestamp_millis(&a[0])?) as ArrayRef)
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestampMs {
    signature: Signature,
}

impl Default for ToTimestampMs {
    fn default() -> Self {
        ToTimestampMs {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToTimestampMs {
    fn name(&self) -> &str {
        "to_timestamp_ms"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TO_TIMESTAMP", arg_types, 1, 1)?;
        Ok(vec![coerce_int64("TO_TIMESTAMP", &arg_types[0], "the milliseconds")?])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("TO_TIMESTAMP", arg_types, 1, 1)?;
        Ok(TIMESTAMP_TYPE)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(monotonic_in_first(inputs))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| match a[0].data_type() {
            DataType::Int64 => {
                let millis = int64(&a[0])?;
                let lowest = datafusion::arrow::compute::min(millis);
                let highest = datafusion::arrow::compute::max(millis);
                if let Some(out) = [lowest, highest]
                    .into_iter()
                    .flatten()
                    .find(|ms| !TIMESTAMP_RANGE.contains(ms))
                {
                    return exec_err!(
                        "TO_TIMESTAMP: {out} ms is outside the TIMESTAMP range (0001-01-01 00:00:00.000 to 9999-12-31 23:59:59.999)"
                    );
                }
                Ok(millis_to_timestamp(millis.clone()))
            }
            DataType::Null => Ok(millis_to_timestamp(Int64Array::new_null(a[0].len()))),
            t => exec_err!("TO_TIMESTAMP: expected BIGINT, got {t}"),
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TsDiff {
    signature: Signature,
}

impl Default for TsDiff {
    fn default() -> Self {
        TsDiff {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The milliseconds of a TSDIFF argument (TIMESTAMP(ms) or Int64).
fn millis_of(a: &ArrayRef) -> Result<Int64Array> {
    match a.data_type() {
        DataType::Int64 => Ok(int64(a)?.clone()),
        _ => timestamp_millis(a),
    }
}

impl ScalarUDFImpl for TsDiff {
    fn name(&self) -> &str {
        "tsdiff"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("TSDIFF", arg_types, 2, 2)?;
        arg_types
            .iter()
            .map(|t| match t {
                t if is_timestamp_like(t) => Ok(TIMESTAMP_TYPE),
                t if t.is_integer() || t == &DataType::Null => Ok(DataType::Int64),
                t => plan_err!("TSDIFF expects TIMESTAMP or BIGINT arguments, got {t}"),
            })
            .collect()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("TSDIFF", arg_types, 2, 2)?;
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let (x, y) = (millis_of(&a[0])?, millis_of(&a[1])?);
            let out: Int64Array = datafusion::arrow::compute::kernels::arity::try_binary(&x, &y, |x, y| {
                x.checked_sub(y)
                    .ok_or_else(|| ArrowError::ComputeError("difference out of range".to_string()))
            })
            .map_err(|e| row_error("TSDIFF", e))?;
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{value, value_type};

    #[tokio::test]
    async fn unix_timestamp_is_milliseconds() {
        assert_eq!(
            value("SELECT unix_timestamp(TIMESTAMP '1970-01-01 00:00:01.5')").await,
            "1500"
        );
        assert_eq!(
            value("SELECT unix_timestamp(TIMESTAMP '1969-12-31 23:59:59')").await,
            "-1000"
        );
        assert_eq!(
            value("SELECT unix_timestamp(TIMESTAMP '2024-03-01 12:00:09.999')").await,
            "1709294409999"
        );
        assert_eq!(value("SELECT unix_timestamp(NULL)").await, "NULL");
        assert_eq!(
            value_type("SELECT unix_timestamp(TIMESTAMP '2024-03-01 12:00:09')").await,
            "Int64"
        );
    }

    #[tokio::test]
    async fn to_timestamp_ms_round_trips() {
        assert_eq!(
            value("SELECT to_timestamp_ms(1709294409999)").await,
            "2024-03-01T12:00:09.999"
        );
        assert_eq!(
            value("SELECT to_timestamp_ms(CAST(-1000 AS INT))").await,
            "1969-12-31T23:59:59"
        );
        assert_eq!(
            value("SELECT to_timestamp_ms(unix_timestamp(TIMESTAMP '2004-09-30 13:48:23.5'))").await,
            "2004-09-30T13:48:23.500"
        );
        assert_eq!(value("SELECT to_timestamp_ms(NULL)").await, "NULL");
        assert_eq!(value_type("SELECT to_timestamp_ms(5)").await, "Timestamp(ms)");
    }

    #[tokio::test]
    async fn to_timestamp_ms_of_a_number_outside_the_timestamp_range_fails_the_row() {
        assert_eq!(
            value("SELECT to_timestamp_ms(253402300799999)").await,
            "9999-12-31T23:59:59.999"
        );
        for ms in ["253402300800000", "9223372036854775807", "-62135596800001"] {
            let err = crate::functions::common::test_util::run(&format!("SELECT to_timestamp_ms({ms})"))
                .await
                .unwrap_err();
            assert!(err.contains("outside the TIMESTAMP range"), "{ms}: {err}");
        }
    }

    #[tokio::test]
    async fn tsdiff_is_a_minus_b() {
        assert_eq!(
            value("SELECT tsdiff(TIMESTAMP '2024-01-01 00:01:00', TIMESTAMP '2024-01-01 00:00:00')").await,
            "60000"
        );
        assert_eq!(value("SELECT tsdiff(1000, 3500)").await, "-2500");
        assert_eq!(
            value("SELECT tsdiff(TIMESTAMP '1970-01-01 00:00:02', 500)").await,
            "1500"
        );
        assert_eq!(value("SELECT tsdiff(NULL, 500)").await, "NULL");
        let v = value("SELECT tsdiff(-9223372036854775807, 10)").await;
        assert!(v.starts_with("ERR"), "{v}");
    }
}
