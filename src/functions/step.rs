//! `step(x, width)`: KDA's `STEP(x BY width)`, rounding down to a multiple of `width`.
//!
//! * `step(TIMESTAMP, INTERVAL)` → TIMESTAMP: `epoch + floor((x − epoch) / width) * width`
//!   (buckets aligned to the Unix epoch; floor also before the epoch). The width may be
//!   any DataFusion interval type or a Duration; a width with a month part is a plan
//!   error when it is a literal (row error otherwise), as is a width ≤ 0.
//! * `step(INTERVAL, INTERVAL)` → Duration(ms), same rule.
//! * `step(integer, integer)` → the common integer type: `floor(x / width) * width`
//!   (`STEP(23 BY 5) = 20`, `STEP(-3 BY 5) = -5`).
//! * `step(number, number)` with a float or decimal → DOUBLE, same rule.
//! * NULL in → NULL out.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, FieldRef, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::type_coercion::binary::binary_numeric_coercion;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::TIMESTAMP_TYPE;

use super::common::{
    INTERVAL_TYPE, check_arity, coerce_interval, eval_arrays, interval_millis, is_interval_like, is_timestamp_like,
    millis_to_duration, millis_to_timestamp, monotonic_in_first, return_field, row_error, scalar_interval_millis,
    timestamp_millis,
};

const NAME: &str = "step";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Step {
    signature: Signature,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Step {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 2, 2)?;
        let (x, w) = (&arg_types[0], &arg_types[1]);
        let interval_width = is_interval_like(w);
        match x {
            x if is_timestamp_like(x) && (interval_width || w == &DataType::Null) => {
                Ok(vec![TIMESTAMP_TYPE, coerce_interval_width(w)])
            }
            x if is_interval_like(x) && (interval_width || w == &DataType::Null) => {
                Ok(vec![INTERVAL_TYPE, coerce_interval_width(w)])
            }
            DataType::Null if interval_width => Ok(vec![TIMESTAMP_TYPE, coerce_interval(w)]),
            x if (x.is_numeric() || x == &DataType::Null) && (w.is_numeric() || w == &DataType::Null) => {
                let t = numeric_type(x, w)?;
                Ok(vec![t.clone(), t])
            }
            _ => plan_err!("STEP expects (TIMESTAMP BY INTERVAL) or (integer BY integer), got ({x} BY {w})"),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(NAME, arg_types, 2, 2)?;
        match &arg_types[0] {
            DataType::Timestamp(_, _) => Ok(TIMESTAMP_TYPE),
            t if is_interval_like(t) => Ok(INTERVAL_TYPE),
            t if t.is_numeric() => Ok(t.clone()),
            t => plan_err!("STEP cannot be applied to {t}"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let t = self.return_type(&types)?;
        if let Some(Some(width)) = args.scalar_arguments.get(1)
            && let Err(e) = validate_width(width)
        {
            return plan_err!("STEP: {e}");
        }
        if matches!(
            types.get(1),
            Some(DataType::Interval(
                datafusion::arrow::datatypes::IntervalUnit::YearMonth
            ))
        ) {
            return plan_err!("STEP: year-month interval widths are not supported");
        }
        Ok(return_field(NAME, t))
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(monotonic_in_first(inputs))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        eval_arrays(&args.args, args.number_rows, |a| {
            let (x, w) = (&a[0], &a[1]);
            match x.data_type() {
                DataType::Timestamp(_, _) => {
                    let out = floor_millis(&timestamp_millis(x)?, &interval_millis(NAME, w)?)?;
                    Ok(millis_to_timestamp(out))
                }
                t if is_interval_like(t) => {
                    let out = floor_millis(&interval_millis(NAME, x)?, &interval_millis(NAME, w)?)?;
                    Ok(millis_to_duration(out))
                }
                DataType::Int8 => step_int::<Int8Type>(x, w),
                DataType::Int16 => step_int::<Int16Type>(x, w),
                DataType::Int32 => step_int::<Int32Type>(x, w),
                DataType::Int64 => step_int::<Int64Type>(x, w),
                DataType::UInt8 => step_int::<UInt8Type>(x, w),
                DataType::UInt16 => step_int::<UInt16Type>(x, w),
                DataType::UInt32 => step_int::<UInt32Type>(x, w),
                DataType::UInt64 => step_int::<UInt64Type>(x, w),
                DataType::Float64 => step_float(x, w),
                t => exec_err!("{NAME}: unsupported argument type {t}"),
            }
        })
    }
}

/// Interval widths keep Interval types (so month parts can be detected); Durations become
/// Duration(ms); a NULL width is typed as a Duration.
fn coerce_interval_width(w: &DataType) -> DataType {
    match w {
        DataType::Null => INTERVAL_TYPE,
        w => coerce_interval(w),
    }
}

/// Common type of numeric STEP arguments: integers stay integers (the wider of the two),
/// anything with a float or decimal becomes DOUBLE.
fn numeric_type(x: &DataType, w: &DataType) -> Result<DataType> {
    let int = |t: &DataType| t.is_integer() || t == &DataType::Null;
    if int(x) && int(w) {
        return Ok(match (x, w) {
            (DataType::Null, DataType::Null) => DataType::Int64,
            (DataType::Null, t) | (t, DataType::Null) => t.clone(),
            (a, b) => binary_numeric_coercion(a, b).unwrap_or(DataType::Int64),
        });
    }
    Ok(DataType::Float64)
}

/// Checks a literal width: positive, no month part.
fn validate_width(width: &ScalarValue) -> Result<(), String> {
    if width.is_null() {
        return Ok(());
    }
    if is_interval_like(&width.data_type()) {
        return match scalar_interval_millis(width)? {
            Some(ms) if ms <= 0 => Err("the interval width must be positive".to_string()),
            _ => Ok(()),
        };
    }
    if width.data_type().is_numeric() {
        let zero = ScalarValue::new_zero(&width.data_type()).map_err(|e| e.to_string())?;
        if width.partial_cmp(&zero) != Some(std::cmp::Ordering::Greater) {
            return Err("the width must be positive".to_string());
        }
    }
    Ok(())
}

/// `floor(x / w) * w` on milliseconds, row by row.
fn floor_millis(x: &Int64Array, w: &Int64Array) -> Result<Int64Array> {
    let f = |x: i64, w: i64| -> Result<i64, ArrowError> {
        if w <= 0 {
            return Err(ArrowError::ComputeError("the interval width must be positive".into()));
        }
        x.div_euclid(w)
            .checked_mul(w)
            .ok_or_else(|| ArrowError::ComputeError("timestamp out of range".into()))
    };
    // The width is usually a literal: avoid the binary kernel when it is constant.
    if w.null_count() == 0 && !w.is_empty() && w.values().iter().all(|v| *v == w.value(0)) {
        let width = w.value(0);
        return x.try_unary(|v| f(v, width)).map_err(|e| row_error(NAME, e));
    }
    datafusion::arrow::compute::kernels::arity::try_binary(x, w, f).map_err(|e| row_error(NAME, e))
}

trait EuclidInt: Copy {
    fn floor_step(self, w: Self) -> Option<Self>;
    fn positive(self) -> bool;
}

macro_rules! euclid_int {
    ($($t:ty),*) => {$(
        impl EuclidInt for $t {
            fn floor_step(self, w: Self) -> Option<Self> {
                self.checked_div_euclid(w)?.checked_mul(w)
            }
            fn positive(self) -> bool {
                self > 0
            }
        }
    )*};
}
euclid_int!(i8, i16, i32, i64, u8, u16, u32, u64);

fn step_int<T>(x: &ArrayRef, w: &ArrayRef) -> Result<ArrayRef>
where
    T: ArrowPrimitiveType,
    T::Native: EuclidInt,
{
    if x.data_type() != w.data_type() {
        return exec_err!(
            "{NAME}: argument types differ ({} and {})",
            x.data_type(),
            w.data_type()
        );
    }
    let x = x.as_primitive::<T>();
    let w = w.as_primitive::<T>();
    let out: PrimitiveArray<T> = datafusion::arrow::compute::kernels::arity::try_binary(x, w, |x, w| {
        if !w.positive() {
            return Err(ArrowError::ComputeError("the width must be positive".into()));
        }
        x.floor_step(w)
            .ok_or_else(|| ArrowError::ComputeError("overflow".into()))
    })
    .map_err(|e| row_error(NAME, e))?;
    Ok(Arc::new(out))
}

fn step_float(x: &ArrayRef, w: &ArrayRef) -> Result<ArrayRef> {
    let x = x.as_primitive::<Float64Type>();
    let w = w.as_primitive::<Float64Type>();
    let out: PrimitiveArray<Float64Type> = datafusion::arrow::compute::kernels::arity::try_binary(x, w, |x, w| {
        if w.is_nan() || w <= 0.0 {
            return Err(ArrowError::ComputeError("the width must be positive".into()));
        }
        Ok((x / w).floor() * w)
    })
    .map_err(|e| row_error(NAME, e))?;
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{table, value, value_type};

    #[tokio::test]
    async fn timestamps_after_the_epoch() {
        assert_eq!(
            value("SELECT step(TIMESTAMP '2024-03-01 12:00:29.999', INTERVAL '30' SECOND)").await,
            "2024-03-01T12:00:00"
        );
        assert_eq!(
            value("SELECT step(TIMESTAMP '2024-03-01 12:00:30', INTERVAL '30' SECOND)").await,
            "2024-03-01T12:00:30"
        );
        assert_eq!(
            value("SELECT step(TIMESTAMP '2024-03-01 12:07:30', INTERVAL '1' HOUR)").await,
            "2024-03-01T12:00:00"
        );
        assert_eq!(
            value("SELECT step(TIMESTAMP '2024-03-01 12:07:30', INTERVAL '1' DAY)").await,
            "2024-03-01T00:00:00"
        );
        assert_eq!(
            value("SELECT step(TIMESTAMP '2024-03-01 12:07:30', INTERVAL '3 days 4 hours')").await,
            "2024-02-29T04:00:00"
        );
        assert_eq!(
            value_type("SELECT step(TIMESTAMP '2024-03-01 12:07:30', INTERVAL '1' MINUTE)").await,
            "Timestamp(ms)"
        );
    }

    #[tokio::test]
    async fn timestamps_before_the_epoch_floor() {
        assert_eq!(
            value("SELECT step(TIMESTAMP '1969-12-31 23:59:59.999', INTERVAL '1' MINUTE)").await,
            "1969-12-31T23:59:00"
        );
        assert_eq!(
            value("SELECT step(TIMESTAMP '1969-12-31 23:59:00', INTERVAL '1' MINUTE)").await,
            "1969-12-31T23:59:00"
        );
        assert_eq!(
            value("SELECT step(TIMESTAMP '1960-06-15 10:00:00', INTERVAL '1' DAY)").await,
            "1960-06-15T00:00:00"
        );
    }

    #[tokio::test]
    async fn integers() {
        assert_eq!(value("SELECT step(23, 5)").await, "20");
        assert_eq!(value("SELECT step(25, 5)").await, "25");
        assert_eq!(value("SELECT step(-3, 5)").await, "-5");
        assert_eq!(value_type("SELECT step(CAST(23 AS INT), 5)").await, "Int64");
        assert_eq!(
            value_type("SELECT step(CAST(23 AS INT), CAST(5 AS INT))").await,
            "Int32"
        );
        assert_eq!(value("SELECT step(2.75, 0.5)").await, "2.5");
        assert_eq!(value("SELECT step(NULL, 5)").await, "NULL");
        let t = table("SELECT step(x, 10) AS s FROM (VALUES (1), (19), (-1), (NULL)) AS t(x)").await;
        assert!(
            t.contains("| 0   |") && t.contains("| 10  |") && t.contains("| -10 |"),
            "{t}"
        );
    }

    #[tokio::test]
    async fn durations() {
        assert_eq!(
            value("SELECT step(INTERVAL '95' SECOND, INTERVAL '1' MINUTE)").await,
            "PT60S"
        );
    }

    #[tokio::test]
    async fn bad_widths_fail_at_plan_time() {
        for sql in [
            "SELECT step(TIMESTAMP '2024-03-01 12:07:30', INTERVAL '1' MONTH)",
            "SELECT step(TIMESTAMP '2024-03-01 12:07:30', INTERVAL '0' SECOND)",
            "SELECT step(23, 0)",
            "SELECT step(23, -5)",
            "SELECT step('a', 5)",
        ] {
            let v = value(sql).await;
            assert!(v.starts_with("ERR"), "{sql}: {v}");
        }
    }

    #[tokio::test]
    async fn null_timestamp() {
        assert_eq!(
            value("SELECT step(CAST(NULL AS TIMESTAMP), INTERVAL '1' SECOND)").await,
            "NULL"
        );
    }
}
