//! `sluice_div(a, b)`: KDA's `/` operator.
//!
//! * Numbers: the argument and result types are exactly those DataFusion's `/` would use
//!   (so `REAL / REAL` stays REAL and `INTEGER / INTEGER` stays an integer); integer
//!   division truncates toward zero (`SUM(TEMP)/COUNT(TEMP)` of 29,32,50,43 is 38).
//! * Any division by a zero divisor, integer, floating point or decimal, is a row error
//!   "division by zero" (decision A18: never ±Infinity or NaN). Overflow (`i32::MIN / -1`,
//!   decimal overflow) is a row error too.
//! * Intervals: `Duration / integer` and `Duration / float` give a Duration(ms) rounded
//!   down (toward −∞) to whole milliseconds. Decision: an interval is a quantity of
//!   time, not an integer, and rounding down keeps `FLOOR(x / n TO unit)` equal to the
//!   floor of the exact quotient, so the `FLOOR((ts - epoch) SECOND / 10 TO SECOND)`
//!   buckets stay aligned to 10 s before 1970 too (toward zero, -10.001 s / 10 would
//!   land in the bucket of -1 s). For positive values the two roundings agree. An
//!   Interval dividend is accepted too (without a month part).
//! * NULL operands give NULL.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Datum, Int64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::kernels::numeric::div;
use datafusion::arrow::datatypes::{ArrowNativeTypeOp, DataType, Float64Type, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{
    INTERVAL_TYPE, check_arity, coerce_interval, interval_millis, is_interval_like, millis_to_duration, row_error,
};

const NAME: &str = "sluice_div";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SluiceDiv {
    signature: Signature,
}

impl Default for SluiceDiv {
    fn default() -> Self {
        SluiceDiv {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SluiceDiv {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 2, 2)?;
        let (l, r) = (&arg_types[0], &arg_types[1]);
        if is_interval_like(l) {
            let r = match r {
                DataType::Null => DataType::Int64,
                t if t.is_integer() => DataType::Int64,
                t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DataType::Float64,
                other => return plan_err!("cannot divide an interval by {other}"),
            };
            return Ok(vec![coerce_interval(l), r]);
        }
        let (l, r) = BinaryTypeCoercer::new(l, &Operator::Divide, r).get_input_types()?;
        Ok(vec![l, r])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(NAME, arg_types, 2, 2)?;
        if is_interval_like(&arg_types[0]) {
            return Ok(INTERVAL_TYPE);
        }
        BinaryTypeCoercer::new(&arg_types[0], &Operator::Divide, &arg_types[1]).get_result_type()
    }

    fn output_ordering(
        &self,
        inputs: &[datafusion::logical_expr::sort_properties::ExprProperties],
    ) -> Result<datafusion::logical_expr::sort_properties::SortProperties> {
        // Dividing by a positive constant preserves order; we cannot see the sign here,
        // so only claim constant results.
        use datafusion::logical_expr::sort_properties::SortProperties;
        if inputs.iter().all(|p| p.sort_properties == SortProperties::Singleton) {
            Ok(SortProperties::Singleton)
        } else {
            Ok(SortProperties::Unordered)
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = <[ColumnarValue; 2]>::try_from(args.args)
            .map_err(|_| datafusion::common::DataFusionError::Internal(format!("{NAME}: 2 arguments")))?;
        if is_interval_like(&l.data_type()) {
            return super::common::eval_arrays(&[l, r], args.number_rows, |a| divide_interval(&a[0], &a[1]));
        }
        numeric_kernel(NAME, &l, &r, args.number_rows, div)
    }
}

/// Applies `kernel` (`/` or `%`) to two numeric arguments after refusing a zero divisor
/// on the rows that divide at all: a NULL dividend gives NULL, and a batch without rows
/// divides nothing.
pub(crate) fn numeric_kernel(
    name: &str,
    l: &ColumnarValue,
    r: &ColumnarValue,
    number_rows: usize,
    kernel: impl Fn(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>,
) -> Result<ColumnarValue> {
    let all_scalar = matches!((l, r), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
    let divisor: ArrayRef = match r {
        ColumnarValue::Scalar(s) => s.to_array()?,
        ColumnarValue::Array(a) => a.clone(),
    };
    let live = match l {
        ColumnarValue::Scalar(s) => (!s.is_null() && number_rows > 0).then_some(None),
        ColumnarValue::Array(a) => (a.null_count() < a.len()).then(|| a.logical_nulls()),
    };
    if let Some(dividend_nulls) = live
        && has_zero(name, &divisor, dividend_nulls.as_ref())?
    {
        return exec_err!("division by zero");
    }
    let lhs: Box<dyn Datum> = match l {
        ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
        ColumnarValue::Array(a) => Box::new(a.clone()),
    };
    let rhs: Box<dyn Datum> = match r {
        ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
        ColumnarValue::Array(a) => Box::new(a.clone()),
    };
    let out = kernel(lhs.as_ref(), rhs.as_ref()).map_err(|e| row_error(name, e))?;
    if all_scalar {
        Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(
            &out, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// True when some non-NULL value of the divisor is zero (`-0.0` included) in a row
/// whose dividend is not NULL (`dividend_nulls` of a dividend array, if it has NULLs; a
/// one-value divisor stands for every row).
fn has_zero(name: &str, divisor: &ArrayRef, dividend_nulls: Option<&NullBuffer>) -> Result<bool> {
    use datafusion::arrow::array::downcast_primitive_array;
    let d = divisor.as_ref();
    let dividend_valid = |i: usize| dividend_nulls.is_none_or(|n| d.len() == 1 || n.is_valid(i));
    downcast_primitive_array!(
        d => {
            let values = d.values();
            if d.len() == 1 && d.is_valid(0) {
                return Ok(values[0].is_zero());
            }
            Ok(values
                .iter()
                .enumerate()
                .any(|(i, v)| v.is_zero() && d.is_valid(i) && dividend_valid(i)))
        }
        DataType::Null => Ok(false),
        t => exec_err!("{name}: cannot divide by {t}"),
    )
}

/// Duration ÷ number → Duration(ms), rounded down.
fn divide_interval(l: &ArrayRef, r: &ArrayRef) -> Result<ArrayRef> {
    let ms = interval_millis(NAME, l)?;
    let out: Int64Array = match r.data_type() {
        DataType::Int64 => {
            let r = r.as_primitive::<Int64Type>();
            datafusion::arrow::compute::kernels::arity::try_binary(&ms, r, |a, b| {
                if b == 0 {
                    return Err(ArrowError::DivideByZero);
                }
                let q = a
                    .checked_div(b)
                    .ok_or_else(|| ArrowError::ComputeError("interval out of range".into()))?;
                // Rounded down: one less when inexact and negative.
                Ok(if a % b != 0 && (a < 0) != (b < 0) { q - 1 } else { q })
            })
            .map_err(|e| row_error(NAME, e))?
        }
        DataType::Float64 => {
            let r = r.as_primitive::<Float64Type>();
            datafusion::arrow::compute::kernels::arity::try_binary(&ms, r, |a, b| {
                if b == 0.0 {
                    return Err(ArrowError::DivideByZero);
                }
                super::common::millis_rounded_down(a as f64 / b)
                    .ok_or_else(|| ArrowError::ComputeError("interval out of range".into()))
            })
            .map_err(|e| row_error(NAME, e))?
        }
        DataType::Null => Int64Array::new_null(ms.len()),
        other => return exec_err!("{NAME}: cannot divide an interval by {other}"),
    };
    Ok(millis_to_duration(out))
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{value, value_type};

    #[tokio::test]
    async fn integer_division_truncates_toward_zero() {
        assert_eq!(value("SELECT sluice_div(154, 4)").await, "38");
        assert_eq!(value("SELECT sluice_div(-7, 2)").await, "-3");
        assert_eq!(value("SELECT sluice_div(7, -2)").await, "-3");
        assert_eq!(
            value_type("SELECT sluice_div(CAST(7 AS INT), CAST(2 AS INT))").await,
            "Int32"
        );
        assert_eq!(
            value_type("SELECT sluice_div(CAST(7 AS INT), CAST(2 AS BIGINT))").await,
            "Int64"
        );
    }

    #[tokio::test]
    async fn float_and_decimal_division() {
        assert_eq!(value("SELECT sluice_div(7.0, 2)").await, "3.5");
        assert_eq!(
            value_type("SELECT sluice_div(CAST(7 AS REAL), CAST(2 AS REAL))").await,
            "Float32"
        );
        assert_eq!(value_type("SELECT sluice_div(CAST(7 AS DOUBLE), 2)").await, "Float64");
        let t = value_type("SELECT sluice_div(CAST(7 AS DECIMAL(5,2)), 2)").await;
        assert!(t.starts_with("Decimal128"), "{t}");
        let v = value("SELECT sluice_div(CAST(7 AS DECIMAL(5,2)), CAST(2 AS DECIMAL(5,2)))").await;
        assert!(v.starts_with("3.5"), "{v}");
    }

    #[tokio::test]
    async fn division_by_zero_is_an_execution_error() {
        for sql in [
            "SELECT sluice_div(1, 0)",
            "SELECT sluice_div(CAST(1 AS INT), CAST(0 AS TINYINT))",
            "SELECT sluice_div(CAST(1.5 AS REAL), 0)",
            "SELECT sluice_div(1.5, 0.0)",
            "SELECT sluice_div(1.5, -0.0)",
            "SELECT sluice_div(CAST(1 AS DECIMAL(5,2)), CAST(0 AS DECIMAL(5,2)))",
            "SELECT sluice_div(x, y) FROM (VALUES (1, 1), (2, 0)) AS t(x, y)",
            "SELECT sluice_div(x, 0) FROM (VALUES (1.0), (2.0)) AS t(x)",
            "SELECT sluice_div(INTERVAL '10' SECOND, 0)",
        ] {
            let v = value(sql).await;
            assert!(v.starts_with("ERR") && v.contains("division by zero"), "{sql}: {v}");
        }
    }

    #[tokio::test]
    async fn the_error_is_an_execution_error() {
        let ctx = super::super::common::test_util::ctx();
        let df = ctx
            .sql("SELECT sluice_div(x, y) FROM (VALUES (1, 1), (2, 0)) AS t(x, y)")
            .await
            .unwrap();
        let err = df.collect().await.unwrap_err();
        assert!(
            matches!(err.find_root(), datafusion::error::DataFusionError::Execution(_)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn nulls_and_columns() {
        assert_eq!(value("SELECT sluice_div(NULL, 2)").await, "NULL");
        assert_eq!(value("SELECT sluice_div(2, NULL)").await, "NULL");
        assert_eq!(value("SELECT sluice_div(NULL, NULL)").await, "NULL");
        // A NULL divisor next to a zero-free column is not a division by zero.
        let t = super::super::common::test_util::table(
            "SELECT sluice_div(x, y) AS q FROM (VALUES (10, 3), (-9, 2), (5, NULL)) AS t(x, y)",
        )
        .await;
        assert!(
            t.contains("| 3  |") && t.contains("| -4 |") && t.contains("|    |"),
            "{t}"
        );
    }

    #[tokio::test]
    async fn overflow_is_an_error() {
        let v = value("SELECT sluice_div(CAST(-2147483648 AS INT), CAST(-1 AS INT))").await;
        assert!(v.starts_with("ERR"), "{v}");
    }

    #[tokio::test]
    async fn interval_divided_by_number() {
        assert_eq!(value("SELECT sluice_div(INTERVAL '10' SECOND, 4)").await, "PT2.5S");
        assert_eq!(value("SELECT sluice_div(INTERVAL '10' SECOND, 3)").await, "PT3.333S");
        assert_eq!(value("SELECT sluice_div(INTERVAL '1' MINUTE, 2.5)").await, "PT24S");
        assert_eq!(
            value_type("SELECT sluice_div(INTERVAL '1' MINUTE, 2)").await,
            "Duration(ms)"
        );
        assert_eq!(
            value("SELECT sluice_div(TIMESTAMP '2024-01-01 00:01:00' - TIMESTAMP '2024-01-01 00:00:00', 6)").await,
            "PT10S"
        );
        // rounded down to the millisecond, also below zero
        assert_eq!(value("SELECT sluice_div(INTERVAL '-10' SECOND, 3)").await, "-PT3.334S");
        assert_eq!(value("SELECT sluice_div(INTERVAL '10' SECOND, -3)").await, "-PT3.334S");
        assert_eq!(value("SELECT sluice_div(INTERVAL '-10' SECOND, -3)").await, "PT3.333S");
        assert_eq!(value("SELECT sluice_div(INTERVAL '-1' SECOND, 3.0)").await, "-PT0.334S");
        let v = value("SELECT sluice_div(INTERVAL '1' MONTH, 2)").await;
        assert!(v.starts_with("ERR"), "{v}");
    }
}
