//! `floor_to(x, 'UNIT')` and `ceil_to(x, 'UNIT')`: KDA's `FLOOR(x TO unit)` and
//! `CEIL(x TO unit)`.
//!
//! * TIMESTAMP (any precision; DATE too) → TIMESTAMP(ms), rounded down / up to the unit
//!   in UTC: YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND, MILLISECOND.
//!   `FLOOR(TIMESTAMP '2004-09-30 13:48:23' TO HOUR)` = `2004-09-30 13:00:00`. WEEK starts
//!   on Sunday (Calcite's rule, which SQLstream/KDA inherit). Before the epoch, FLOOR still
//!   rounds toward the past.
//! * An interval (Duration/Interval) → Duration(ms) rounded down / up to a whole number of
//!   WEEK (7 days), DAY, HOUR, MINUTE, SECOND or MILLISECOND (floor toward −∞, ceil toward
//!   +∞). YEAR, QUARTER and MONTH are rejected for intervals.
//! * The unit is a case-insensitive string, validated at plan time when it is a literal.
//! * NULL in → NULL out.

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::TIMESTAMP_TYPE;

use super::calendar::{civil_from_days, days_from_civil, split_millis, weekday_sunday0};
use super::common::{
    INTERVAL_TYPE, MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, MILLIS_PER_SECOND, check_arity, coerce_interval,
    coerce_string, constant_str, interval_millis, is_interval_like, is_timestamp_like, millis_to_duration,
    millis_to_timestamp, monotonic_in_first, return_field, row_error, scalar_str, timestamp_millis,
};

/// A unit of `FLOOR(x TO unit)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnitName {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl TimeUnitName {
    pub fn parse(s: &str) -> Option<TimeUnitName> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "YEAR" | "YEARS" => TimeUnitName::Year,
            "QUARTER" | "QUARTERS" => TimeUnitName::Quarter,
            "MONTH" | "MONTHS" => TimeUnitName::Month,
            "WEEK" | "WEEKS" => TimeUnitName::Week,
            "DAY" | "DAYS" => TimeUnitName::Day,
            "HOUR" | "HOURS" => TimeUnitName::Hour,
            "MINUTE" | "MINUTES" => TimeUnitName::Minute,
            "SECOND" | "SECONDS" => TimeUnitName::Second,
            "MILLISECOND" | "MILLISECONDS" => TimeUnitName::Millisecond,
            _ => return None,
        })
    }

    /// Length in milliseconds of a fixed-length unit; `None` for calendar units.
    fn fixed_millis(self) -> Option<i64> {
        match self {
            TimeUnitName::Week => Some(7 * MILLIS_PER_DAY),
            TimeUnitName::Day => Some(MILLIS_PER_DAY),
            TimeUnitName::Hour => Some(MILLIS_PER_HOUR),
            TimeUnitName::Minute => Some(MILLIS_PER_MINUTE),
            TimeUnitName::Second => Some(MILLIS_PER_SECOND),
            TimeUnitName::Millisecond => Some(1),
            TimeUnitName::Year | TimeUnitName::Quarter | TimeUnitName::Month => None,
        }
    }
}

/// Rounds a timestamp (ms since the epoch) down to the start of its unit.
pub fn floor_timestamp(ms: i64, unit: TimeUnitName) -> Option<i64> {
    let (days, _) = split_millis(ms);
    let start_of = |days: i64| days.checked_mul(MILLIS_PER_DAY);
    match unit {
        TimeUnitName::Week => start_of(days - weekday_sunday0(days) as i64),
        TimeUnitName::Year | TimeUnitName::Quarter | TimeUnitName::Month => {
            let (y, m, _) = civil_from_days(days);
            let m = match unit {
                TimeUnitName::Year => 1,
                TimeUnitName::Quarter => (m - 1) / 3 * 3 + 1,
                _ => m,
            };
            start_of(days_from_civil(y, m, 1))
        }
        fixed => {
            let w = fixed.fixed_millis()?;
            ms.div_euclid(w).checked_mul(w)
        }
    }
}

/// Rounds a timestamp up to the next unit boundary (unchanged when on a boundary).
pub fn ceil_timestamp(ms: i64, unit: TimeUnitName) -> Option<i64> {
    let f = floor_timestamp(ms, unit)?;
    if f == ms {
        return Some(ms);
    }
    match unit {
        TimeUnitName::Year | TimeUnitName::Quarter | TimeUnitName::Month => {
            let (y, m, _) = civil_from_days(split_millis(f).0);
            let months = match unit {
                TimeUnitName::Year => 12,
                TimeUnitName::Quarter => 3,
                _ => 1,
            };
            let total = y * 12 + (m as i64 - 1) + months;
            let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
            days_from_civil(ny, nm, 1).checked_mul(MILLIS_PER_DAY)
        }
        fixed => f.checked_add(fixed.fixed_millis()?),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FloorTo {
    signature: Signature,
    ceil: bool,
}

impl FloorTo {
    pub fn floor() -> Self {
        FloorTo {
            signature: Signature::user_defined(Volatility::Immutable),
            ceil: false,
        }
    }
    pub fn ceil() -> Self {
        FloorTo {
            signature: Signature::user_defined(Volatility::Immutable),
            ceil: true,
        }
    }
    fn sql_name(&self) -> &'static str {
        if self.ceil { "CEIL" } else { "FLOOR" }
    }
}

fn check_unit(function: &str, x: &DataType, unit: &str) -> Result<TimeUnitName, String> {
    let Some(u) = TimeUnitName::parse(unit) else {
        return Err(format!("{function}: unknown time unit '{unit}'"));
    };
    if is_interval_like(x) && u.fixed_millis().is_none() {
        return Err(format!("{function}: an interval cannot be rounded to {u:?}"));
    }
    Ok(u)
}

impl ScalarUDFImpl for FloorTo {
    fn name(&self) -> &str {
        if self.ceil { "ceil_to" } else { "floor_to" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 2, 2)?;
        let x = match &arg_types[0] {
            t if is_timestamp_like(t) || t == &DataType::Null => TIMESTAMP_TYPE,
            t if is_interval_like(t) => coerce_interval(t),
            t => return plan_err!("{}(... TO unit) cannot be applied to {t}", self.sql_name()),
        };
        Ok(vec![x, coerce_string(self.name(), &arg_types[1], "the unit")?])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(self.name(), arg_types, 2, 2)?;
        match &arg_types[0] {
            t if is_interval_like(t) => Ok(INTERVAL_TYPE),
            t if is_timestamp_like(t) || t == &DataType::Null => Ok(TIMESTAMP_TYPE),
            t => plan_err!("{}(... TO unit) cannot be applied to {t}", self.sql_name()),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let t = self.return_type(&types)?;
        if let Some(Some(unit)) = args.scalar_arguments.get(1)
            && let Some(u) = scalar_str(unit)
            && let Err(e) = check_unit(self.sql_name(), &types[0], u)
        {
            return plan_err!("{e}");
        }
        Ok(return_field(self.name(), t))
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(monotonic_in_first(inputs))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let Some(unit) = constant_str(name, &args.args[1], "the unit")? else {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from(
                args.return_type(),
            )?));
        };
        let x_type = args.args[0].data_type();
        let unit = match check_unit(self.sql_name(), &x_type, &unit) {
            Ok(u) => u,
            Err(e) => return exec_err!("{e}"),
        };
        let ceil = self.ceil;
        super::common::eval_arrays(&args.args[..1], args.number_rows, |a| {
            let x = &a[0];
            let overflow = || ArrowError::ComputeError("value out of range".to_string());
            if is_interval_like(x.data_type()) {
                let w = unit.fixed_millis().unwrap_or(1);
                let out: Int64Array = interval_millis(name, x)?
                    .try_unary(|v| {
                        let f = v.div_euclid(w).checked_mul(w).ok_or_else(overflow)?;
                        if ceil && f != v {
                            f.checked_add(w).ok_or_else(overflow)
                        } else {
                            Ok(f)
                        }
                    })
                    .map_err(|e| row_error(name, e))?;
                return Ok(millis_to_duration(out));
            }
            let out: Int64Array = timestamp_millis(x)?
                .try_unary(|v| {
                    if ceil {
                        ceil_timestamp(v, unit)
                    } else {
                        floor_timestamp(v, unit)
                    }
                    .ok_or_else(overflow)
                })
                .map_err(|e| row_error(name, e))?;
            Ok(millis_to_timestamp(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{value, value_type};

    async fn floor(ts: &str, unit: &str) -> String {
        value(&format!("SELECT floor_to(TIMESTAMP '{ts}', '{unit}')")).await
    }
    async fn ceil(ts: &str, unit: &str) -> String {
        value(&format!("SELECT ceil_to(TIMESTAMP '{ts}', '{unit}')")).await
    }

    #[tokio::test]
    async fn floor_each_unit() {
        let ts = "2004-09-30 13:48:23.456";
        assert_eq!(floor(ts, "YEAR").await, "2004-01-01T00:00:00");
        assert_eq!(floor(ts, "QUARTER").await, "2004-07-01T00:00:00");
        assert_eq!(floor(ts, "MONTH").await, "2004-09-01T00:00:00");
        assert_eq!(floor(ts, "WEEK").await, "2004-09-26T00:00:00"); // a Sunday
        assert_eq!(floor(ts, "DAY").await, "2004-09-30T00:00:00");
        assert_eq!(floor(ts, "HOUR").await, "2004-09-30T13:00:00");
        assert_eq!(floor(ts, "minute").await, "2004-09-30T13:48:00");
        assert_eq!(floor(ts, "SECOND").await, "2004-09-30T13:48:23");
        assert_eq!(floor("2004-09-30 13:48:23", "HOUR").await, "2004-09-30T13:00:00");
        assert_eq!(
            value_type("SELECT floor_to(TIMESTAMP '2004-09-30 13:48:23', 'HOUR')").await,
            "Timestamp(ms)"
        );
    }

    #[tokio::test]
    async fn floor_before_the_epoch() {
        assert_eq!(floor("1969-12-31 23:59:59.5", "SECOND").await, "1969-12-31T23:59:59");
        assert_eq!(floor("1969-12-31 23:59:59.5", "DAY").await, "1969-12-31T00:00:00");
        assert_eq!(floor("1969-12-31 23:59:59.5", "MONTH").await, "1969-12-01T00:00:00");
        assert_eq!(floor("1969-12-31 23:59:59.5", "YEAR").await, "1969-01-01T00:00:00");
    }

    #[tokio::test]
    async fn ceil_each_unit() {
        let ts = "2004-09-30 13:48:23.456";
        assert_eq!(ceil(ts, "YEAR").await, "2005-01-01T00:00:00");
        assert_eq!(ceil(ts, "QUARTER").await, "2004-10-01T00:00:00");
        assert_eq!(ceil(ts, "MONTH").await, "2004-10-01T00:00:00");
        assert_eq!(ceil("2004-12-30 13:48:23", "MONTH").await, "2005-01-01T00:00:00");
        assert_eq!(ceil(ts, "DAY").await, "2004-10-01T00:00:00");
        assert_eq!(ceil(ts, "HOUR").await, "2004-09-30T14:00:00");
        assert_eq!(ceil(ts, "MINUTE").await, "2004-09-30T13:49:00");
        assert_eq!(ceil(ts, "SECOND").await, "2004-09-30T13:48:24");
        assert_eq!(ceil("2004-09-30 13:00:00", "HOUR").await, "2004-09-30T13:00:00");
        assert_eq!(ceil("2004-09-01 00:00:00", "MONTH").await, "2004-09-01T00:00:00");
    }

    #[tokio::test]
    async fn intervals() {
        assert_eq!(
            value("SELECT floor_to(INTERVAL '95.5' SECOND, 'SECOND')").await,
            "PT95S"
        );
        assert_eq!(value("SELECT floor_to(INTERVAL '95' SECOND, 'MINUTE')").await, "PT60S");
        assert_eq!(value("SELECT ceil_to(INTERVAL '95' SECOND, 'MINUTE')").await, "PT120S");
        assert_eq!(
            value_type("SELECT floor_to(INTERVAL '95' SECOND, 'MINUTE')").await,
            "Duration(ms)"
        );
        let v = value("SELECT floor_to(INTERVAL '95' SECOND, 'MONTH')").await;
        assert!(v.starts_with("ERR"), "{v}");
    }

    #[tokio::test]
    async fn bad_units_and_nulls() {
        let v = value("SELECT floor_to(TIMESTAMP '2004-09-30 13:48:23', 'FORTNIGHT')").await;
        assert!(v.starts_with("ERR") && v.contains("FORTNIGHT"), "{v}");
        assert_eq!(value("SELECT floor_to(CAST(NULL AS TIMESTAMP), 'HOUR')").await, "NULL");
        assert_eq!(value("SELECT floor_to(NULL, 'HOUR')").await, "NULL");
    }
}
