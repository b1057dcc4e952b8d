//! `kda_extract('UNIT', x)`: KDA's `EXTRACT(unit FROM x)` for the units YEAR, MONTH,
//! DAY, HOUR, MINUTE and SECOND (spec §4.5).
//!
//! * The result is BIGINT, except SECOND, which is DECIMAL(5,3) and keeps the
//!   milliseconds (`EXTRACT(SECOND FROM TIMESTAMP '... 12:00:05.678')` = 5.678).
//!   DataFusion's `date_part` gives INTEGER seconds without the fraction.
//! * `x` is a TIMESTAMP, DATE, TIME or a day-time interval. An interval's fields are
//!   those of its normalised form, with its sign: `INTERVAL '185' SECOND` has MINUTE 3
//!   and SECOND 5.000; DAY is the whole number of days; YEAR and MONTH of a day-time
//!   interval are 0.
//!
//! NULL in → NULL out.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{
    MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, check_arity, constant_str, eval_arrays, interval_millis,
    is_interval_like, timestamp_millis,
};
use crate::types::TIMESTAMP_TYPE;

/// The units `kda_extract` handles; other fields stay DataFusion's `date_part`.
pub const UNITS: [&str; 6] = ["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"];

/// DECIMAL(5,3): seconds with milliseconds.
const SECOND_TYPE: DataType = DataType::Decimal128(5, 3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        Some(match s.to_uppercase().as_str() {
            "YEAR" => Unit::Year,
            "MONTH" => Unit::Month,
            "DAY" => Unit::Day,
            "HOUR" => Unit::Hour,
            "MINUTE" => Unit::Minute,
            "SECOND" => Unit::Second,
            _ => return None,
        })
    }
}

/// What the value is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Milliseconds since 1970-01-01 00:00:00 (TIMESTAMP, DATE, TIME of day).
    PointInTime,
    /// A signed length of time in milliseconds.
    Interval,
}

/// A field of `ms` (milliseconds; SECOND in milliseconds too, to be scaled by 3).
fn field(unit: Unit, kind: Kind, ms: i64) -> Result<i64> {
    Ok(match kind {
        Kind::PointInTime => {
            let Some(t) = DateTime::from_timestamp_millis(ms) else {
                return exec_err!("EXTRACT: timestamp out of range");
            };
            match unit {
                Unit::Year => t.year() as i64,
                Unit::Month => t.month() as i64,
                Unit::Day => t.day() as i64,
                Unit::Hour => t.hour() as i64,
                Unit::Minute => t.minute() as i64,
                Unit::Second => ms.rem_euclid(MILLIS_PER_MINUTE),
            }
        }
        Kind::Interval => match unit {
            Unit::Year | Unit::Month => 0,
            Unit::Day => ms / MILLIS_PER_DAY,
            Unit::Hour => ms / MILLIS_PER_HOUR % 24,
            Unit::Minute => ms / MILLIS_PER_MINUTE % 60,
            Unit::Second => ms % MILLIS_PER_MINUTE,
        },
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaExtract {
    signature: Signature,
}

impl Default for KdaExtract {
    fn default() -> Self {
        KdaExtract {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaExtract {
    fn name(&self) -> &str {
        "kda_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("EXTRACT", arg_types, 2, 2)?;
        let x = match &arg_types[1] {
            DataType::Timestamp(_, _) | DataType::Date64 | DataType::Null => TIMESTAMP_TYPE,
            DataType::Date32 => DataType::Date32,
            DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
            t if is_interval_like(t) => super::common::coerce_interval(t),
            t => return plan_err!("EXTRACT needs a datetime or an interval, not {t}"),
        };
        Ok(vec![DataType::Utf8, x])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        // The unit is a literal the planner writes; SECOND differs in type.
        datafusion::common::internal_err!("return_field_from_args is used")
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let unit = args
            .scalar_arguments
            .first()
            .copied()
            .flatten()
            .and_then(super::common::scalar_str)
            .and_then(Unit::parse);
        let t = match unit {
            Some(Unit::Second) => SECOND_TYPE,
            Some(_) => DataType::Int64,
            None => return plan_err!("EXTRACT: the unit must be one of {}", UNITS.join(", ")),
        };
        Ok(super::common::return_field(self.name(), t))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(unit) = constant_str("EXTRACT", &args.args[0], "the unit")?
            .as_deref()
            .and_then(Unit::parse)
        else {
            return exec_err!("EXTRACT: the unit must be one of {}", UNITS.join(", "));
        };
        eval_arrays(&args.args[1..], args.number_rows, |a| extract(unit, &a[0]))
    }
}

fn extract(unit: Unit, x: &ArrayRef) -> Result<ArrayRef> {
    let (kind, ms): (Kind, Int64Array) = match x.data_type() {
        DataType::Timestamp(_, _) | DataType::Null => (Kind::PointInTime, timestamp_millis(x)?),
        DataType::Date32 => (
            Kind::PointInTime,
            cast(x, &DataType::Int32)?
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .unary(|d| d as i64 * MILLIS_PER_DAY),
        ),
        DataType::Time64(TimeUnit::Microsecond) => (
            Kind::PointInTime,
            cast(x, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .unary(|us| us / 1_000),
        ),
        t if is_interval_like(t) => (Kind::Interval, interval_millis("EXTRACT", x)?),
        t => return exec_err!("EXTRACT: unexpected argument type {t}"),
    };
    let values: Vec<Option<i64>> = ms
        .iter()
        .map(|v| v.map(|v| field(unit, kind, v)).transpose())
        .collect::<Result<_>>()?;
    Ok(if unit == Unit::Second {
        let out: Decimal128Array = values.into_iter().map(|v| v.map(i128::from)).collect();
        Arc::new(out.with_precision_and_scale(5, 3)?)
    } else {
        Arc::new(Int64Array::from(values))
    })
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{value, value_type};

    #[tokio::test]
    async fn fields_of_a_timestamp() {
        let ts = "TIMESTAMP '2004-09-30 13:48:05.678'";
        for (unit, expected) in [
            ("YEAR", "2004"),
            ("MONTH", "9"),
            ("DAY", "30"),
            ("HOUR", "13"),
            ("MINUTE", "48"),
            ("SECOND", "5.678"),
        ] {
            assert_eq!(
                value(&format!("SELECT kda_extract('{unit}', {ts})")).await,
                expected,
                "{unit}"
            );
        }
        assert_eq!(value_type(&format!("SELECT kda_extract('HOUR', {ts})")).await, "Int64");
        assert_eq!(
            value_type(&format!("SELECT kda_extract('SECOND', {ts})")).await,
            "Decimal128(5, 3)"
        );
        // Before 1970 the fields are still calendar fields.
        assert_eq!(
            value("SELECT kda_extract('SECOND', TIMESTAMP '1969-12-31 23:59:58.250')").await,
            "58.250"
        );
        assert_eq!(
            value("SELECT kda_extract('YEAR', TIMESTAMP '1969-12-31 23:59:58.250')").await,
            "1969"
        );
        assert_eq!(
            value("SELECT kda_extract('YEAR', CAST(NULL AS TIMESTAMP))").await,
            "NULL"
        );
    }

    #[tokio::test]
    async fn fields_of_a_date_and_a_time() {
        assert_eq!(value("SELECT kda_extract('MONTH', DATE '2008-08-23')").await, "8");
        assert_eq!(value("SELECT kda_extract('HOUR', DATE '2008-08-23')").await, "0");
        assert_eq!(value("SELECT kda_extract('MINUTE', TIME '12:03:34')").await, "3");
        assert_eq!(value("SELECT kda_extract('SECOND', TIME '12:03:34.5')").await, "34.500");
    }

    #[tokio::test]
    async fn fields_of_an_interval() {
        assert_eq!(value("SELECT kda_extract('MINUTE', INTERVAL '185' SECOND)").await, "3");
        assert_eq!(
            value("SELECT kda_extract('SECOND', INTERVAL '185' SECOND)").await,
            "5.000"
        );
        assert_eq!(
            value("SELECT kda_extract('HOUR', INTERVAL '1' DAY + INTERVAL '5' HOUR)").await,
            "5"
        );
        assert_eq!(value("SELECT kda_extract('DAY', INTERVAL '50' HOUR)").await, "2");
        assert_eq!(
            value(
                "SELECT kda_extract('SECOND', TIMESTAMP '2024-01-01 00:00:05.678' - TIMESTAMP '2024-01-01 00:00:00')"
            )
            .await,
            "5.678"
        );
        // A negative interval has negative fields.
        assert_eq!(
            value("SELECT kda_extract('MINUTE', TIMESTAMP '2024-01-01 00:00:00' - TIMESTAMP '2024-01-01 00:02:30')")
                .await,
            "-2"
        );
        assert_eq!(
            value("SELECT kda_extract('SECOND', TIMESTAMP '2024-01-01 00:00:00' - TIMESTAMP '2024-01-01 00:02:30')")
                .await,
            "-30.000"
        );
        assert_eq!(value("SELECT kda_extract('YEAR', INTERVAL '50' HOUR)").await, "0");
    }
}
