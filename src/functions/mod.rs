//! KDA's scalar functions that DataFusion lacks or defines differently, as DataFusion
//! UDFs, so that every expression is still evaluated by DataFusion on Arrow batches.
//!
//! The planner rewrites KDA syntax into calls of these lower-case names:
//!
//! | KDA | UDF |
//! |---|---|
//! | `a / b` | `sluice_div(a, b)` ([`division`]) |
//! | `STEP(x BY w)` | `step(x, w)` ([`step`]) |
//! | `FLOOR(x TO unit)`, `CEIL(x TO unit)` | `floor_to(x, 'UNIT')`, `ceil_to(x, 'UNIT')` ([`floor_ceil`]) |
//! | `(t1 - t2) MINUTE TO SECOND` | `interval_qualify(t1 - t2, 'MINUTE TO SECOND')` ([`interval_qualify`]) |
//! | `s SIMILAR TO p [ESCAPE e]` | `similar_to(s, p [, e])` ([`similar_to`]) |
//! | `UNIX_TIMESTAMP(ts)`, `TO_TIMESTAMP(ms)`, `TSDIFF(a, b)` | `unix_timestamp`, `to_timestamp_ms`, `tsdiff` ([`epoch`]) |
//! | `CHAR_TO_TIMESTAMP(f, s)`, `TIMESTAMP_TO_CHAR(f, ts)` | `char_to_timestamp`, `timestamp_to_char` ([`datetime_format`]) |
//! | `REGEX_REPLACE(s, re, rep, start, occ)` | `kda_regex_replace(...)` ([`regex_replace`]) |
//! | `SUBSTRING(s FROM a FOR b)`, `POSITION(a IN s)` | `kda_substring(s, a, b)`, `kda_position(a, s)` ([`string`]) |
//!
//! Every function returns `DataFusionError::Execution` for a row-level failure (division
//! by zero, an unparsable date, an invalid argument) so that the runtime can re-evaluate
//! the batch row by row and send the failing rows to `error_stream`; argument problems
//! visible at plan time (an unknown unit, a month-based STEP width, a bad literal pattern)
//! are plan errors.

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

mod calendar;
mod common;
pub mod datetime_format;
pub mod division;
pub mod epoch;
pub mod floor_ceil;
pub mod interval_qualify;
pub mod regex_replace;
pub mod similar_to;
pub mod simple_date_format;
pub mod step;
pub mod string;

/// Every sluice UDF, registered under its lower-case name.
pub fn all_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(division::SluiceDiv::default())),
        Arc::new(ScalarUDF::from(step::Step::default())),
        Arc::new(ScalarUDF::from(floor_ceil::FloorTo::floor())),
        Arc::new(ScalarUDF::from(floor_ceil::FloorTo::ceil())),
        Arc::new(ScalarUDF::from(interval_qualify::IntervalQualify::default())),
        Arc::new(ScalarUDF::from(similar_to::SimilarTo::default())),
        Arc::new(ScalarUDF::from(epoch::UnixTimestamp::default())),
        Arc::new(ScalarUDF::from(epoch::ToTimestampMs::default())),
        Arc::new(ScalarUDF::from(epoch::TsDiff::default())),
        Arc::new(ScalarUDF::from(datetime_format::CharToTimestamp::default())),
        Arc::new(ScalarUDF::from(datetime_format::TimestampToChar::default())),
        Arc::new(ScalarUDF::from(regex_replace::KdaRegexReplace::default())),
        Arc::new(ScalarUDF::from(string::KdaSubstring::default())),
        Arc::new(ScalarUDF::from(string::KdaPosition::default())),
    ]
}

#[cfg(test)]
mod tests {
    use super::all_udfs;

    #[test]
    fn names_are_unique_and_lower_case() {
        let names: Vec<String> = all_udfs().iter().map(|u| u.name().to_string()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names.iter().all(|n| *n == n.to_lowercase()));
        assert!(names.contains(&"kda_regex_replace".to_string()));
    }
}
