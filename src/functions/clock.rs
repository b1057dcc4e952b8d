//! `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`, `CURRENT_DATE`, `CURRENT_TIME` and `LOCALTIME`:
//! the wall clock at the query's start, in UTC (spec §4.5), as KDA types: TIMESTAMP
//! and TIME in milliseconds, DATE in days.
//!
//! * `kda_current_timestamp()` → TIMESTAMP
//! * `kda_current_date()` → DATE
//! * `kda_current_time()` → TIME
//!
//! Like DataFusion's `now()`, each is a constant of the query: `simplify` replaces the
//! call by a literal of the start time the planner supplies (see [`super::simplify`]),
//! so every row of the application's life sees one value. `CURRENT_ROW_TIMESTAMP`, the
//! per-row clock, is a volatile function elsewhere (`planner::markers`).

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::MILLIS_PER_DAY;
use crate::types::TIMESTAMP_TYPE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    Timestamp,
    Date,
    Time,
}

impl Clock {
    pub const ALL: [Clock; 3] = [Clock::Timestamp, Clock::Date, Clock::Time];

    /// The value at `start`.
    pub fn value_at(self, start: DateTime<Utc>) -> ScalarValue {
        let millis = start.timestamp_millis();
        match self {
            Clock::Timestamp => ScalarValue::TimestampMillisecond(Some(millis), None),
            Clock::Date => ScalarValue::Date32(Some(millis.div_euclid(MILLIS_PER_DAY) as i32)),
            Clock::Time => ScalarValue::Time32Millisecond(Some(millis.rem_euclid(MILLIS_PER_DAY) as i32)),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct QueryClock {
    clock: Clock,
    signature: Signature,
}

impl QueryClock {
    pub fn new(clock: Clock) -> Self {
        QueryClock {
            clock,
            // Stable: constant within a query, so it may be folded into a literal.
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for QueryClock {
    fn name(&self) -> &str {
        match self.clock {
            Clock::Timestamp => "kda_current_timestamp",
            Clock::Date => "kda_current_date",
            Clock::Time => "kda_current_time",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.clock {
            Clock::Timestamp => TIMESTAMP_TYPE,
            Clock::Date => DataType::Date32,
            Clock::Time => DataType::Time32(TimeUnit::Millisecond),
        })
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Reached only when a plan was not simplified with a start time; reading the
        // wall clock here would give each batch its own value.
        exec_err!("{} needs the query's start time", self.name())
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(match info.query_execution_start_time() {
            Some(start) => ExprSimplifyResult::Simplified(Expr::Literal(self.clock.value_at(start), None)),
            None => ExprSimplifyResult::Original(args),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;
    use chrono::TimeZone;
    use datafusion::common::ScalarValue;

    #[test]
    fn values_at_a_start_time() {
        let start = chrono::Utc.with_ymd_and_hms(2024, 3, 1, 18, 30, 5).unwrap() + chrono::Duration::milliseconds(250);
        assert_eq!(
            Clock::Timestamp.value_at(start),
            ScalarValue::TimestampMillisecond(Some(1_709_317_805_250), None)
        );
        // 2024-03-01 is day 19783 since 1970-01-01.
        assert_eq!(Clock::Date.value_at(start), ScalarValue::Date32(Some(19_783)));
        assert_eq!(
            Clock::Time.value_at(start),
            ScalarValue::Time32Millisecond(Some(((18 * 60 + 30) * 60 + 5) * 1000 + 250))
        );
        // Before 1970 the date rounds down and the time of day stays positive.
        let before = chrono::Utc.with_ymd_and_hms(1969, 12, 31, 23, 0, 0).unwrap();
        assert_eq!(Clock::Date.value_at(before), ScalarValue::Date32(Some(-1)));
        assert_eq!(
            Clock::Time.value_at(before),
            ScalarValue::Time32Millisecond(Some(23 * 3_600_000))
        );
    }

    #[tokio::test]
    async fn one_value_per_query() {
        let t = super::super::common::test_util::table(
            "SELECT kda_current_timestamp() = kda_current_timestamp() AS same, \
             CAST(kda_current_timestamp() AS DATE) = kda_current_date() AS date_agrees \
             FROM (VALUES (1), (2), (3)) AS t(x)",
        )
        .await;
        assert_eq!(t.matches("| true | true        |").count(), 3, "{t}");
    }
}
