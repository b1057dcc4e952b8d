//! Helpers shared by the UDFs: argument shapes, type classes, interval conversion and
//! error mapping.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{
    DataType, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType, Field,
    FieldRef, Int64Type, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType, TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};

use crate::types::TIMESTAMP_TYPE;

pub(crate) const MILLIS_PER_SECOND: i64 = 1_000;
pub(crate) const MILLIS_PER_MINUTE: i64 = 60 * MILLIS_PER_SECOND;
pub(crate) const MILLIS_PER_HOUR: i64 = 60 * MILLIS_PER_MINUTE;
pub(crate) const MILLIS_PER_DAY: i64 = 24 * MILLIS_PER_HOUR;

/// The Arrow type of an interval value in sluice.
pub(crate) const INTERVAL_TYPE: DataType = DataType::Duration(TimeUnit::Millisecond);

/// Evaluates `f` on the arguments as arrays. When every argument is a scalar, `f` sees
/// one-row arrays and the result is returned as a scalar (this is what constant folding
/// sees); otherwise scalars are expanded to `number_rows` rows.
pub(crate) fn eval_arrays(
    args: &[ColumnarValue],
    number_rows: usize,
    f: impl FnOnce(&[ArrayRef]) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    // Constant arguments over a batch without rows are evaluated on no rows: a row
    // error (SUBSTRING('abc', 1, -1)) belongs to rows, and the runtime's isolation of
    // failing rows evaluates the batch that remains, possibly empty, once more.
    let one_value = all_scalar && number_rows > 0;
    let len = if one_value { 1 } else { number_rows };
    let arrays = args.iter().map(|a| a.to_array(len)).collect::<Result<Vec<_>>>()?;
    let out = f(&arrays)?;
    if one_value {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// Turns an Arrow error raised while computing a row into the row-level Execution error
/// the runtime routes to `error_stream`.
pub(crate) fn row_error(function: &str, e: ArrowError) -> DataFusionError {
    match e {
        ArrowError::DivideByZero => DataFusionError::Execution("division by zero".to_string()),
        ArrowError::ComputeError(m) | ArrowError::InvalidArgumentError(m) => {
            DataFusionError::Execution(format!("{function}: {m}"))
        }
        other => DataFusionError::Execution(format!("{function}: {other}")),
    }
}

/// Checks the argument count.
pub(crate) fn check_arity(name: &str, args: &[DataType], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        if min == max {
            return plan_err!("{name} takes {min} arguments, got {}", args.len());
        }
        return plan_err!("{name} takes {min} to {max} arguments, got {}", args.len());
    }
    Ok(())
}

pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

pub(crate) fn is_timestamp_like(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
}

/// Duration of any unit or Interval of any unit: what sluice treats as an interval.
pub(crate) fn is_interval_like(t: &DataType) -> bool {
    matches!(t, DataType::Duration(_) | DataType::Interval(_))
}

/// The coerced type of an interval argument: Durations become Duration(ms); Interval
/// values keep their type (converted, with month checks, by [`interval_millis`]).
pub(crate) fn coerce_interval(t: &DataType) -> DataType {
    match t {
        DataType::Duration(_) => INTERVAL_TYPE,
        other => other.clone(),
    }
}

/// String arguments are coerced to Utf8 (NULL literals too).
pub(crate) fn coerce_string(name: &str, t: &DataType, what: &str) -> Result<DataType> {
    match t {
        t if is_string(t) => Ok(DataType::Utf8),
        DataType::Null => Ok(DataType::Utf8),
        DataType::Dictionary(_, v) if is_string(v) => Ok(DataType::Utf8),
        other => plan_err!("{name}: {what} must be a character string, got {other}"),
    }
}

/// Integer-valued arguments (lengths, positions, milliseconds) are coerced to Int64.
pub(crate) fn coerce_int64(name: &str, t: &DataType, what: &str) -> Result<DataType> {
    match t {
        DataType::Null => Ok(DataType::Int64),
        t if t.is_integer() => Ok(DataType::Int64),
        t if t.is_numeric() => Ok(DataType::Int64),
        other => plan_err!("{name}: {what} must be numeric, got {other}"),
    }
}

/// TIMESTAMP-like arguments are coerced to Timestamp(ms) (the sluice TIMESTAMP type).
pub(crate) fn coerce_timestamp(name: &str, t: &DataType, what: &str) -> Result<DataType> {
    match t {
        t if is_timestamp_like(t) => Ok(TIMESTAMP_TYPE),
        DataType::Null => Ok(TIMESTAMP_TYPE),
        other => plan_err!("{name}: {what} must be a TIMESTAMP, got {other}"),
    }
}

/// The milliseconds of a Timestamp(ms) array as an Int64 array (zero copy).
pub(crate) fn timestamp_millis(array: &ArrayRef) -> Result<Int64Array> {
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(array
            .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
            .reinterpret_cast::<Int64Type>()),
        DataType::Null => Ok(Int64Array::new_null(array.len())),
        other => exec_err!("expected a TIMESTAMP array, got {other}"),
    }
}

/// Wraps milliseconds as a Timestamp(ms) array.
pub(crate) fn millis_to_timestamp(a: Int64Array) -> ArrayRef {
    Arc::new(a.reinterpret_cast::<datafusion::arrow::datatypes::TimestampMillisecondType>())
}

/// Wraps milliseconds as a Duration(ms) array (a sluice interval).
pub(crate) fn millis_to_duration(a: Int64Array) -> ArrayRef {
    Arc::new(a.reinterpret_cast::<DurationMillisecondType>())
}

/// A computed number of milliseconds (an interval times or divided by a fraction) as
/// whole milliseconds, rounded down; None out of range. A value within a millionth of
/// a millisecond of a whole one is that one: `-10 s * 0.1` is -1000 ms, though the
/// binary 0.1 makes the product a hair below it.
pub(crate) fn millis_rounded_down(q: f64) -> Option<i64> {
    let nearest = q.round();
    let q = if (q - nearest).abs() < 1e-6 { nearest } else { q.floor() };
    (q.is_finite() && q < i64::MAX as f64 && q > i64::MIN as f64).then_some(q as i64)
}

/// Converts one interval value to milliseconds. Month-based intervals cannot be turned
/// into a fixed number of milliseconds and are rejected.
pub(crate) fn month_day_nano_millis(months: i32, days: i32, nanos: i64) -> Result<i64, String> {
    if months != 0 {
        return Err("intervals with a YEAR or MONTH part are not supported here".to_string());
    }
    Ok(days as i64 * MILLIS_PER_DAY + nanos / 1_000_000)
}

/// The milliseconds of an interval-like array (Duration of any unit, Interval of any
/// unit, or Null). Sub-millisecond parts are truncated toward zero. An interval with a
/// month part is an Execution error.
pub(crate) fn interval_millis(function: &str, array: &ArrayRef) -> Result<Int64Array> {
    let overflow = || DataFusionError::Execution(format!("{function}: interval out of range"));
    let a: Int64Array = match array.data_type() {
        DataType::Null => Int64Array::new_null(array.len()),
        DataType::Duration(TimeUnit::Second) => array
            .as_primitive::<DurationSecondType>()
            .try_unary(|v| {
                v.checked_mul(MILLIS_PER_SECOND)
                    .ok_or_else(|| ArrowError::ComputeError(String::new()))
            })
            .map_err(|_| overflow())?,
        DataType::Duration(TimeUnit::Millisecond) => array
            .as_primitive::<DurationMillisecondType>()
            .reinterpret_cast::<Int64Type>(),
        DataType::Duration(TimeUnit::Microsecond) => {
            array.as_primitive::<DurationMicrosecondType>().unary(|v| v / 1_000)
        }
        DataType::Duration(TimeUnit::Nanosecond) => {
            array.as_primitive::<DurationNanosecondType>().unary(|v| v / 1_000_000)
        }
        DataType::Interval(IntervalUnit::DayTime) => array
            .as_primitive::<IntervalDayTimeType>()
            .unary(|v| v.days as i64 * MILLIS_PER_DAY + v.milliseconds as i64),
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let a = array.as_primitive::<IntervalMonthDayNanoType>();
            if a.iter().any(|v| v.is_some_and(|v| v.months != 0)) {
                return exec_err!("{function}: intervals with a YEAR or MONTH part are not supported here");
            }
            a.unary(|v| v.days as i64 * MILLIS_PER_DAY + v.nanoseconds / 1_000_000)
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let a = array.as_primitive::<IntervalYearMonthType>();
            if a.iter().any(|v| v.is_some_and(|m| m != 0)) {
                return exec_err!("{function}: intervals with a YEAR or MONTH part are not supported here");
            }
            a.unary(|_| 0i64)
        }
        other => return exec_err!("{function}: expected an interval, got {other}"),
    };
    Ok(a)
}

/// The milliseconds of an interval-like scalar, `None` for NULL, or an error for
/// month-based or non-interval values. Used to validate literal arguments at plan time.
pub(crate) fn scalar_interval_millis(v: &ScalarValue) -> Result<Option<i64>, String> {
    Ok(match v {
        ScalarValue::Null => None,
        ScalarValue::DurationSecond(v) => v.map(|v| v.saturating_mul(MILLIS_PER_SECOND)),
        ScalarValue::DurationMillisecond(v) => *v,
        ScalarValue::DurationMicrosecond(v) => v.map(|v| v / 1_000),
        ScalarValue::DurationNanosecond(v) => v.map(|v| v / 1_000_000),
        ScalarValue::IntervalDayTime(v) => v.map(|v| v.days as i64 * MILLIS_PER_DAY + v.milliseconds as i64),
        ScalarValue::IntervalMonthDayNano(v) => match v {
            Some(v) => Some(month_day_nano_millis(v.months, v.days, v.nanoseconds)?),
            None => None,
        },
        ScalarValue::IntervalYearMonth(v) => match v {
            Some(0) => Some(0),
            Some(_) => {
                return Err("intervals with a YEAR or MONTH part are not supported here".to_string());
            }
            None => None,
        },
        other => return Err(format!("expected an interval, got {}", other.data_type())),
    })
}

/// The value of a string literal argument, if the argument is a non-NULL string literal.
pub(crate) fn scalar_str(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Some(s.as_str())
        }
        _ => None,
    }
}

/// A nullable return field named after the function.
pub(crate) fn return_field(name: &str, t: DataType) -> FieldRef {
    Arc::new(Field::new(name, t, true))
}

/// Ordering of `f(x, c1, c2, ...)` for a function non-decreasing in `x` when every other
/// argument is constant.
pub(crate) fn monotonic_in_first(inputs: &[ExprProperties]) -> SortProperties {
    match inputs.split_first() {
        Some((first, rest)) if rest.iter().all(|p| p.sort_properties == SortProperties::Singleton) => {
            first.sort_properties
        }
        _ => SortProperties::Unordered,
    }
}

/// Reads a string argument that must be a (non-array) constant, such as a unit name.
/// Returns `None` for NULL.
pub(crate) fn constant_str(function: &str, arg: &ColumnarValue, what: &str) -> Result<Option<String>> {
    match arg {
        ColumnarValue::Scalar(s) if s.is_null() => Ok(None),
        ColumnarValue::Scalar(s) => match scalar_str(s) {
            Some(s) => Ok(Some(s.to_string())),
            None => exec_err!("{function}: {what} must be a character string, got {}", s.data_type()),
        },
        ColumnarValue::Array(a) => {
            // A column of units: accept it only if it holds one distinct value.
            let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
            let a = a.as_string::<i32>();
            let mut value: Option<&str> = None;
            for v in a.iter().flatten() {
                match value {
                    None => value = Some(v),
                    Some(prev) if prev == v => {}
                    Some(_) => return exec_err!("{function}: {what} must be a constant"),
                }
            }
            Ok(value.map(str::to_string))
        }
    }
}

/// A Utf8 argument array (the type `coerce_types` asked for), or an Execution error
/// instead of a panic if the function was invoked without coercion.
pub(crate) fn utf8(a: &ArrayRef) -> Result<&StringArray> {
    match a.as_string_opt::<i32>() {
        Some(s) => Ok(s),
        None => exec_err!("expected a Utf8 argument, got {}", a.data_type()),
    }
}

/// An Int64 argument array, or an Execution error instead of a panic.
pub(crate) fn int64(a: &ArrayRef) -> Result<&Int64Array> {
    match a.as_primitive_opt::<Int64Type>() {
        Some(s) => Ok(s),
        None => exec_err!("expected an Int64 argument, got {}", a.data_type()),
    }
}

/// A compiled regular expression from a process-wide cache keyed by the regex text, so
/// that a literal pattern is compiled once and not once per (often tiny) batch.
pub(crate) fn cached_regex(regex: &str) -> Result<Arc<regex::Regex>, String> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
    const MAX_ENTRIES: usize = 512;
    if let Some(re) = CACHE.lock().ok().and_then(|c| c.get(regex).cloned()) {
        return Ok(re);
    }
    let re = Arc::new(regex::Regex::new(regex).map_err(|e| e.to_string())?);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(regex.to_string(), re.clone());
    }
    Ok(re)
}

#[cfg(test)]
pub(crate) mod test_util {
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    /// A session with every sluice UDF registered.
    pub fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        for udf in super::super::all_udfs() {
            ctx.register_udf(udf.as_ref().clone());
        }
        ctx
    }

    /// Runs `sql` and returns the batches, or the error text.
    pub async fn run(sql: &str) -> Result<Vec<RecordBatch>, String> {
        let ctx = ctx();
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        df.collect().await.map_err(|e| e.to_string())
    }

    /// Runs a single-row, single-column query and returns the value rendered as text
    /// (Arrow's display format: timestamps as `2004-09-30T13:00:00`), or `ERR: ...`.
    pub async fn value(sql: &str) -> String {
        match run(sql).await {
            Ok(batches) => {
                let rows: Vec<_> = batches.iter().filter(|b| b.num_rows() > 0).collect();
                assert_eq!(rows.len(), 1, "expected one batch for {sql}");
                let b = rows[0];
                assert_eq!(b.num_rows(), 1, "expected one row for {sql}");
                let options = datafusion::arrow::util::display::FormatOptions::default().with_null("NULL");
                let f =
                    datafusion::arrow::util::display::ArrayFormatter::try_new(b.column(0).as_ref(), &options).unwrap();
                f.value(0).to_string()
            }
            Err(e) => format!("ERR: {e}"),
        }
    }

    /// The data type of the single column of `sql`'s result.
    pub async fn value_type(sql: &str) -> String {
        let batches = run(sql).await.unwrap();
        batches[0].schema().field(0).data_type().to_string()
    }

    /// Pretty-printed result, for multi-row assertions.
    pub async fn table(sql: &str) -> String {
        let batches = run(sql).await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, ArrayRef, AsArray, DurationNanosecondArray, Int32Array, IntervalMonthDayNanoArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano};
    use datafusion::common::{DataFusionError, ScalarValue};
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};

    use super::{interval_millis, scalar_interval_millis};

    #[test]
    fn interval_conversions() {
        let a: ArrayRef = Arc::new(DurationNanosecondArray::from(vec![
            Some(1_500_000_000),
            None,
            Some(-2_500_000),
        ]));
        let ms = interval_millis("t", &a).unwrap();
        assert_eq!(ms.value(0), 1500);
        assert!(ms.is_null(1));
        assert_eq!(ms.value(2), -2);
        let a: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(
            0, 1, 1_000_000,
        )]));
        assert_eq!(interval_millis("t", &a).unwrap().value(0), 86_400_001);
        let a: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(
            1, 0, 0,
        )]));
        assert!(matches!(interval_millis("t", &a), Err(DataFusionError::Execution(_))));
        assert_eq!(
            scalar_interval_millis(&ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                0, 0, 7_000_000
            )))),
            Ok(Some(7))
        );
        assert!(scalar_interval_millis(&ScalarValue::Int32(Some(1))).is_err());
    }

    fn invoke(udf: &ScalarUDF, args: Vec<ColumnarValue>, rows: usize) -> datafusion::common::Result<ColumnarValue> {
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect::<Vec<_>>();
        let types: Vec<DataType> = arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let return_field = Arc::new(Field::new("r", udf.return_type(&types)?, true));
        udf.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    #[test]
    fn invoke_directly_with_arrays_and_scalars() {
        let div = ScalarUDF::from(super::super::division::SluiceDiv::default());
        let x: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), Some(-7), None]));
        let out = invoke(
            &div,
            vec![
                ColumnarValue::Array(x.clone()),
                ColumnarValue::Scalar(ScalarValue::Int32(Some(2))),
            ],
            3,
        )
        .unwrap()
        .into_array(3)
        .unwrap();
        let out = out.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![Some(3), Some(-3), None]);
        let err = invoke(
            &div,
            vec![
                ColumnarValue::Array(x),
                ColumnarValue::Scalar(ScalarValue::Int32(Some(0))),
            ],
            3,
        )
        .unwrap_err();
        assert!(
            matches!(err, DataFusionError::Execution(ref m) if m == "division by zero"),
            "{err:?}"
        );
        // A wrongly typed argument is an error, not a panic.
        let sub = ScalarUDF::from(super::super::string::KdaSubstring::default());
        let err = invoke(
            &sub,
            vec![
                ColumnarValue::Array(Arc::new(Int32Array::from(vec![1]))),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(1))),
            ],
            1,
        );
        assert!(err.is_err());
    }
}
