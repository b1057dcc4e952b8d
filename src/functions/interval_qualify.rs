//! `interval_qualify(x, 'QUALIFIER')`: KDA's `(dt1 - dt2) <interval qualifier>`, e.g.
//! `(t1 - t2) SECOND` or `(t1 - t2) MINUTE TO SECOND`.
//!
//! `x` is the difference of two timestamps as DataFusion computes it (a Duration of any
//! unit, or an Interval without a month part) or any other interval value. The result is
//! a sluice interval, Duration(ms).
//!
//! `interval_qualify(a, b, 'QUALIFIER')` is the same for `(a - b) QUALIFIER` with the
//! difference taken here, in milliseconds (normalisation writes the idiom this way): two
//! TIMESTAMPs (of any precision, or DATEs), or two intervals. DataFusion would subtract a
//! TIMESTAMP literal (nanoseconds) from ROWTIME (milliseconds) in nanoseconds, which
//! ends in 2262 and fails for later instants; milliseconds reach any date.
//!
//! Decision: the qualifier's *trailing* (finest) field sets the precision and the value
//! is truncated toward zero to it:
//! * `DAY`, `HOUR`, `MINUTE` (alone or as the end of `X TO ...`) → whole days / hours /
//!   minutes;
//! * `SECOND` keeps milliseconds: SQL's default fractional-second precision is 6, and
//!   sluice values have millisecond precision, so the idiom
//!   `FLOOR((ts - epoch) SECOND / 10 TO SECOND)` works on the exact difference. An
//!   explicit fractional precision below 3 (`SECOND(2, 1)`, `MINUTE TO SECOND(0)`)
//!   truncates further.
//!
//! The leading field's precision (`DAY(3)`) is accepted and not enforced. Year-month
//! qualifiers (`YEAR`, `MONTH`, `YEAR TO MONTH`) are a plan error: sluice intervals are
//! day-time intervals only.

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::{
    INTERVAL_TYPE, MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, check_arity, coerce_interval, coerce_string,
    constant_str, eval_arrays, interval_millis, is_interval_like, is_timestamp_like, millis_to_duration,
    monotonic_in_first, return_field, row_error, scalar_str, timestamp_millis,
};
use crate::types::TIMESTAMP_TYPE;

const NAME: &str = "interval_qualify";

/// Parses an interval qualifier and returns the granularity, in milliseconds, that the
/// value is truncated to.
pub fn qualifier_granularity(qualifier: &str) -> Result<i64, String> {
    let q = qualifier.trim().to_ascii_uppercase();
    let bad = || format!("invalid interval qualifier '{qualifier}'");
    // Split into "LEADING[(p[,s])]" and optional "TO TRAILING[(s)]".
    let words: Vec<&str> = q.split_whitespace().collect();
    let joined = words.join(" ");
    let (leading, trailing) = match joined.split_once(" TO ") {
        Some((l, t)) => (l.trim(), Some(t.trim())),
        None => (joined.as_str(), None),
    };
    let field = |s: &str| -> Result<(String, Vec<u32>), String> {
        let s = s.replace(' ', "");
        let (name, args) = match s.find('(') {
            Some(open) => {
                let inner = s[open + 1..].strip_suffix(')').ok_or_else(bad)?;
                let args = inner
                    .split(',')
                    .map(|a| a.trim().parse::<u32>().map_err(|_| bad()))
                    .collect::<Result<Vec<_>, _>>()?;
                (s[..open].to_string(), args)
            }
            None => (s.clone(), vec![]),
        };
        Ok((name, args))
    };
    let rank = |name: &str| -> Result<u8, String> {
        match name {
            "YEAR" | "MONTH" => Err(format!(
                "year-month interval qualifier '{qualifier}' is not supported (day-time intervals only)"
            )),
            "DAY" => Ok(0),
            "HOUR" => Ok(1),
            "MINUTE" => Ok(2),
            "SECOND" => Ok(3),
            _ => Err(bad()),
        }
    };
    let (lead_name, lead_args) = field(leading)?;
    let lead_rank = rank(&lead_name)?;
    let (fine_rank, fraction) = match trailing {
        Some(t) => {
            let (name, args) = field(t)?;
            let r = rank(&name)?;
            if r <= lead_rank || (r != 3 && !args.is_empty()) || args.len() > 1 {
                return Err(bad());
            }
            if lead_args.len() > 1 {
                return Err(bad());
            }
            (r, args.first().copied())
        }
        None => {
            if lead_args.len() > 2 || (lead_rank != 3 && lead_args.len() > 1) {
                return Err(bad());
            }
            (
                lead_rank,
                if lead_rank == 3 {
                    lead_args.get(1).copied()
                } else {
                    None
                },
            )
        }
    };
    Ok(match fine_rank {
        0 => MILLIS_PER_DAY,
        1 => MILLIS_PER_HOUR,
        2 => MILLIS_PER_MINUTE,
        _ => match fraction.unwrap_or(6) {
            0 => 1_000,
            1 => 100,
            2 => 10,
            _ => 1,
        },
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalQualify {
    signature: Signature,
}

impl Default for IntervalQualify {
    fn default() -> Self {
        IntervalQualify {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IntervalQualify {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 2, 3)?;
        if let [a, b, q] = arg_types {
            let datetime = |t: &DataType| is_timestamp_like(t) || t == &DataType::Null;
            let interval = |t: &DataType| is_interval_like(t) || t == &DataType::Null;
            let (a, b) = if datetime(a) && datetime(b) {
                (TIMESTAMP_TYPE, TIMESTAMP_TYPE)
            } else if interval(a) && interval(b) {
                let as_interval = |t: &DataType| {
                    if t == &DataType::Null {
                        INTERVAL_TYPE
                    } else {
                        coerce_interval(t)
                    }
                };
                (as_interval(a), as_interval(b))
            } else {
                return plan_err!("(a - b) <interval qualifier> needs two datetimes or two intervals, got {a} and {b}");
            };
            return Ok(vec![a, b, coerce_string(NAME, q, "the qualifier")?]);
        }
        let x = match &arg_types[0] {
            t if is_interval_like(t) => coerce_interval(t),
            DataType::Null => INTERVAL_TYPE,
            t => {
                return plan_err!("an interval qualifier applies to a difference of datetimes, got {t}");
            }
        };
        Ok(vec![x, coerce_string(NAME, &arg_types[1], "the qualifier")?])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(NAME, arg_types, 2, 3)?;
        Ok(INTERVAL_TYPE)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let qualifier = args.scalar_arguments.len().saturating_sub(1);
        if let Some(Some(q)) = args.scalar_arguments.get(qualifier)
            && let Some(q) = scalar_str(q)
            && let Err(e) = qualifier_granularity(q)
        {
            return plan_err!("{e}");
        }
        Ok(return_field(NAME, INTERVAL_TYPE))
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        // `(a - b) Q` grows with `a` when `b` is constant.
        Ok(monotonic_in_first(inputs))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((qualifier, operands)) = args.args.split_last() else {
            return exec_err!("{NAME} takes 2 or 3 arguments");
        };
        let Some(q) = constant_str(NAME, qualifier, "the qualifier")? else {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::DurationMillisecond(None),
            ));
        };
        let g = match qualifier_granularity(&q) {
            Ok(g) => g,
            Err(e) => return exec_err!("{e}"),
        };
        eval_arrays(operands, args.number_rows, |a| {
            let ms: Int64Array = match a {
                [x] => interval_millis(NAME, x)?,
                [l, r] => difference_millis(l, r)?,
                _ => return exec_err!("{NAME} takes 2 or 3 arguments"),
            };
            // Truncation toward zero cannot overflow.
            Ok(millis_to_duration(if g == 1 { ms } else { ms.unary(|v| v / g * g) }))
        })
    }
}

/// `l - r` in milliseconds, for two TIMESTAMP(ms) or two interval arrays.
fn difference_millis(l: &ArrayRef, r: &ArrayRef) -> Result<Int64Array> {
    let millis = |a: &ArrayRef| {
        if is_interval_like(a.data_type()) {
            interval_millis(NAME, a)
        } else {
            timestamp_millis(a)
        }
    };
    datafusion::arrow::compute::kernels::arity::try_binary(&millis(l)?, &millis(r)?, |a: i64, b: i64| {
        a.checked_sub(b)
            .ok_or_else(|| ArrowError::ComputeError("interval out of range".into()))
    })
    .map_err(|e| row_error(NAME, e))
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{value, value_type};
    use super::qualifier_granularity;

    #[test]
    fn qualifiers() {
        assert_eq!(qualifier_granularity("SECOND"), Ok(1));
        assert_eq!(qualifier_granularity("second(2, 0)"), Ok(1000));
        assert_eq!(qualifier_granularity("MINUTE TO SECOND"), Ok(1));
        assert_eq!(qualifier_granularity("MINUTE  TO  SECOND(1)"), Ok(100));
        assert_eq!(qualifier_granularity("DAY(3) TO HOUR"), Ok(3_600_000));
        assert_eq!(qualifier_granularity("MINUTE"), Ok(60_000));
        assert_eq!(qualifier_granularity("DAY"), Ok(86_400_000));
        assert!(qualifier_granularity("SECOND TO MINUTE").is_err());
        assert!(qualifier_granularity("YEAR TO MONTH").is_err());
        assert!(qualifier_granularity("FORTNIGHT").is_err());
    }

    #[tokio::test]
    async fn difference_of_timestamps() {
        let diff = "TIMESTAMP '2024-01-01 10:02:03.456' - TIMESTAMP '2024-01-01 10:00:00'";
        assert_eq!(
            value(&format!("SELECT interval_qualify({diff}, 'SECOND')")).await,
            "PT123.456S"
        );
        assert_eq!(
            value(&format!("SELECT interval_qualify({diff}, 'MINUTE')")).await,
            "PT120S"
        );
        assert_eq!(
            value(&format!("SELECT interval_qualify({diff}, 'MINUTE TO SECOND')")).await,
            "PT123.456S"
        );
        assert_eq!(
            value_type(&format!("SELECT interval_qualify({diff}, 'SECOND')")).await,
            "Duration(ms)"
        );
        let neg = "TIMESTAMP '2024-01-01 10:00:00' - TIMESTAMP '2024-01-01 10:02:03.456'";
        assert_eq!(
            value(&format!("SELECT interval_qualify({neg}, 'MINUTE')")).await,
            "-PT120S"
        );
    }

    #[tokio::test]
    async fn the_ten_second_bucket_idiom() {
        let sql = "SELECT floor_to(sluice_div(interval_qualify(\
                   TIMESTAMP '2024-01-01 10:00:37.5' - TIMESTAMP '1970-01-01 00:00:00', 'SECOND'), 10), \
                   'SECOND')";
        // 1704103237.5 s / 10 = 170410323.75 s → floor to the second.
        assert_eq!(value(sql).await, "PT170410323S");
    }

    #[tokio::test]
    async fn bad_qualifier_is_a_plan_error() {
        let v = value("SELECT interval_qualify(INTERVAL '1' SECOND, 'YEAR')").await;
        assert!(v.starts_with("ERR"), "{v}");
        assert_eq!(value("SELECT interval_qualify(NULL, 'SECOND')").await, "NULL");
    }
}
