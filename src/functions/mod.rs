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
//! | `CHAR_TO_DATE`, `CHAR_TO_TIME`, `DATE_TO_CHAR`, `TIME_TO_CHAR` | `char_to_date`, `char_to_time`, `date_to_char`, `time_to_char` ([`date_time_format`]) |
//! | `SUBSTRING(s SIMILAR p ESCAPE e)` | `kda_substring_similar(s, p, e)` ([`substring_similar`]) |
//! | `INITCAP(s)`, `OVERLAY(s PLACING r FROM a FOR b)` | `kda_initcap(s)`, `kda_overlay(s, r, a, b)` ([`string`]) |
//! | `MOD(a, b)`, `FLOOR(n)`, `CEIL(n)`, `CEILING(n)`, `EXP`, `LN`, `LOG10`, `POWER` | `kda_mod`, `kda_floor`, `kda_ceil`, `kda_exp`, `kda_ln`, `kda_log10`, `kda_power` ([`numeric`]) |
//! | `EXTRACT(unit FROM x)` | `kda_extract('UNIT', x)` ([`extract`]) |
//! | `CAST(x AS VARCHAR(n))`, `CAST(x AS CHAR(n))` | `kda_cast_char(x, n, false)`, `kda_cast_char(x, n, true)` ([`cast_char`]) |
//! | `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`, `CURRENT_DATE`, `CURRENT_TIME`, `LOCALTIME` | `kda_current_timestamp()`, `kda_current_date()`, `kda_current_time()` ([`clock`]) |
//! | `LPAD(s, n [, f])`, `RPAD(s, n [, f])` | `kda_lpad`, `kda_rpad`: DataFusion's, with `n` bounded ([`bounded_pad`]) |
//! | `REGEX_LOG_PARSE`, `FAST_REGEX_LOG_PARSE(R)`, `VARIABLE_COLUMN_LOG_PARSE`, `FIXED_COLUMN_LOG_PARSE`, `W3C_LOG_PARSE`, `SYS_LOG_PARSE` | the lower-case names, returning a ROW (Struct) ([`log_parse`]) |
//!
//! Every function returns `DataFusionError::Execution` for a row-level failure (division
//! by zero, an unparsable date, an invalid argument) so that the runtime can re-evaluate
//! the batch row by row and send the failing rows to `error_stream`; argument problems
//! visible at plan time (an unknown unit, a month-based STEP width, a bad literal pattern)
//! are plan errors.

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

pub mod bounded_pad;
mod calendar;
pub mod cast_char;
pub mod clock;
pub(crate) mod common;
pub mod date_time_format;
pub mod datetime_format;
pub mod division;
pub mod epoch;
pub mod extract;
pub mod floor_ceil;
pub mod interval_multiply;
pub mod interval_qualify;
pub mod log_parse;
pub mod numeric;
pub mod regex_replace;
pub mod similar_to;
pub mod simple_date_format;
pub mod simplify;
pub mod step;
pub mod string;
pub mod substring_similar;

/// Every sluice UDF, registered under its lower-case name.
pub fn all_udfs() -> Vec<Arc<ScalarUDF>> {
    let mut udfs = vec![
        Arc::new(ScalarUDF::from(division::SluiceDiv::default())),
        Arc::new(ScalarUDF::from(bounded_pad::BoundedPad::lpad())),
        Arc::new(ScalarUDF::from(bounded_pad::BoundedPad::rpad())),
        Arc::new(ScalarUDF::from(step::Step::default())),
        Arc::new(ScalarUDF::from(floor_ceil::FloorTo::floor())),
        Arc::new(ScalarUDF::from(floor_ceil::FloorTo::ceil())),
        Arc::new(ScalarUDF::from(interval_qualify::IntervalQualify::default())),
        Arc::new(ScalarUDF::from(interval_multiply::IntervalMultiply::default())),
        Arc::new(ScalarUDF::from(similar_to::SimilarTo::default())),
        Arc::new(ScalarUDF::from(epoch::UnixTimestamp::default())),
        Arc::new(ScalarUDF::from(epoch::ToTimestampMs::default())),
        Arc::new(ScalarUDF::from(epoch::TsDiff::default())),
        Arc::new(ScalarUDF::from(datetime_format::CharToTimestamp::default())),
        Arc::new(ScalarUDF::from(datetime_format::TimestampToChar::default())),
        Arc::new(ScalarUDF::from(regex_replace::KdaRegexReplace::default())),
        Arc::new(ScalarUDF::from(string::KdaSubstring::default())),
        Arc::new(ScalarUDF::from(string::KdaPosition::default())),
        Arc::new(ScalarUDF::from(string::KdaInitcap::default())),
        Arc::new(ScalarUDF::from(string::KdaOverlay::default())),
        Arc::new(ScalarUDF::from(numeric::KdaMod::default())),
        Arc::new(ScalarUDF::from(numeric::RoundToInteger::floor())),
        Arc::new(ScalarUDF::from(numeric::RoundToInteger::ceil())),
        Arc::new(ScalarUDF::from(extract::KdaExtract::default())),
        Arc::new(ScalarUDF::from(cast_char::KdaCastChar::default())),
        Arc::new(ScalarUDF::from(substring_similar::KdaSubstringSimilar::default())),
    ];
    udfs.extend(
        numeric::MathFn::ALL
            .into_iter()
            .map(|f| Arc::new(ScalarUDF::from(numeric::DoubleFunction::new(f)))),
    );
    udfs.extend(
        clock::Clock::ALL
            .into_iter()
            .map(|c| Arc::new(ScalarUDF::from(clock::QueryClock::new(c)))),
    );
    udfs.extend(
        date_time_format::DateTimeFn::ALL
            .into_iter()
            .map(|f| Arc::new(ScalarUDF::from(date_time_format::DateTimeFormat::new(f)))),
    );
    udfs.extend(
        log_parse::Kind::ALL
            .into_iter()
            .map(|k| Arc::new(ScalarUDF::from(log_parse::LogParse::new(k)))),
    );
    udfs
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

    /// A session with a table `t` of real Arrow columns (Timestamp(ms) like ROWTIME,
    /// INTEGER, VARCHAR), so the UDFs run on arrays and not only on constant-folded
    /// literals.
    async fn with_table(sql: &str) -> String {
        use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray, TimestampMillisecondArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::arrow::util::pretty::pretty_format_batches;
        use std::sync::Arc;

        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", crate::types::TIMESTAMP_TYPE, true),
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let ts = TimestampMillisecondArray::from(vec![
            Some(crate::time::parse_timestamp("2024-03-01 12:00:29.999").unwrap()),
            Some(crate::time::parse_timestamp("1969-12-31 23:59:59.500").unwrap()),
            None,
            Some(crate::time::parse_timestamp("2004-09-30 13:48:23").unwrap()),
        ]);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(ts),
                Arc::new(Int32Array::from(vec![Some(23), Some(-3), None, Some(0)])),
                Arc::new(StringArray::from(vec![
                    Some("NORTH-12"),
                    Some("south-2"),
                    None,
                    Some("a.c"),
                ])),
            ],
        )
        .unwrap();
        let ctx = super::common::test_util::ctx();
        ctx.register_batch("t", batch).unwrap();
        match ctx.sql(sql).await {
            Ok(df) => match df.collect().await {
                Ok(b) => pretty_format_batches(&b).unwrap().to_string(),
                Err(e) => format!("ERR: {e}"),
            },
            Err(e) => format!("ERR: {e}"),
        }
    }

    fn column(table: &str) -> Vec<String> {
        table
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(|l| l.trim_matches('|').trim().to_string())
            .collect()
    }

    #[tokio::test]
    async fn timestamp_functions_on_columns() {
        let c = |sql: &'static str| async move { column(&with_table(sql).await) };
        assert_eq!(
            c("SELECT step(ts, INTERVAL '30' SECOND) AS x FROM t").await,
            ["2024-03-01T12:00:00", "1969-12-31T23:59:30", "", "2004-09-30T13:48:00"]
        );
        assert_eq!(
            c("SELECT floor_to(ts, 'HOUR') AS x FROM t").await,
            ["2024-03-01T12:00:00", "1969-12-31T23:00:00", "", "2004-09-30T13:00:00"]
        );
        assert_eq!(
            c("SELECT ceil_to(ts, 'MINUTE') AS x FROM t").await,
            ["2024-03-01T12:01:00", "1970-01-01T00:00:00", "", "2004-09-30T13:49:00"]
        );
        assert_eq!(
            c("SELECT unix_timestamp(ts) AS x FROM t").await,
            ["1709294429999", "-500", "", "1096552103000"]
        );
        assert_eq!(
            c("SELECT tsdiff(ts, TIMESTAMP '2004-09-30 13:48:00') AS x FROM t").await,
            ["612742349999", "-1096552080500", "", "23000"]
        );
        assert_eq!(
            c("SELECT timestamp_to_char('yyyy-MM-dd HH:mm:ss.SSS', ts) AS x FROM t").await,
            [
                "2024-03-01 12:00:29.999",
                "1969-12-31 23:59:59.500",
                "null",
                "2004-09-30 13:48:23.000"
            ]
        );
        assert_eq!(
            c(
                "SELECT interval_qualify(ts - TIMESTAMP '2004-09-30 13:48:00', 'SECOND') AS x FROM t \
               WHERE n = 0"
            )
            .await,
            ["PT23S"]
        );
        // The ten-second-bucket idiom over a real ROWTIME-like column.
        assert_eq!(
            c(
                "SELECT floor_to(sluice_div(interval_qualify(ts - TIMESTAMP '1970-01-01 00:00:00', \
               'SECOND'), 10), 'SECOND') AS x FROM t"
            )
            .await,
            ["PT170929442S", "-PT1S", "", "PT109655210S"]
        );
    }

    /// The KDA functions of spec §4.3–4.6 that replace DataFusion's, on columns.
    #[tokio::test]
    async fn kda_scalar_functions_on_columns() {
        let c = |sql: &'static str| async move { column(&with_table(sql).await) };
        assert_eq!(c("SELECT kda_mod(n, 5) AS x FROM t").await, ["3", "-3", "", "0"]);
        assert!(
            with_table("SELECT kda_mod(10, n) AS x FROM t")
                .await
                .contains("division by zero")
        );
        assert_eq!(
            c("SELECT kda_floor(sluice_div(CAST(n AS DOUBLE), 2)) AS x FROM t").await,
            ["11.0", "-2.0", "", "0.0"]
        );
        assert_eq!(
            c("SELECT kda_ceil(sluice_div(CAST(n AS DOUBLE), 2)) AS x FROM t").await,
            ["12.0", "-1.0", "", "0.0"]
        );
        assert_eq!(c("SELECT kda_floor(n) AS x FROM t").await, ["23", "-3", "", "0"]);
        assert_eq!(
            c("SELECT kda_power(n, 2) AS x FROM t").await,
            ["529.0", "9.0", "", "0.0"]
        );
        assert!(
            with_table("SELECT kda_ln(n) AS x FROM t")
                .await
                .contains("not a finite number")
        );
        assert_eq!(
            c("SELECT kda_extract('SECOND', ts) AS x FROM t").await,
            ["29.999", "59.500", "", "23.000"]
        );
        assert_eq!(
            c("SELECT kda_extract('YEAR', ts) AS x FROM t").await,
            ["2024", "1969", "", "2004"]
        );
        assert_eq!(
            c("SELECT kda_cast_char(ts, -1, false) AS x FROM t").await,
            [
                "2024-03-01 12:00:29.999",
                "1969-12-31 23:59:59.5",
                "",
                "2004-09-30 13:48:23.0"
            ]
        );
        assert_eq!(
            c("SELECT kda_initcap(s) AS x FROM t").await,
            ["North-12", "South-2", "", "A.c"]
        );
        assert_eq!(
            c("SELECT kda_overlay(s, '*', 2, 2) AS x FROM t").await,
            ["N*TH-12", "s*th-2", "", "a*"]
        );
        assert_eq!(
            c("SELECT kda_substring_similar(s, '%-#\"[0-9]+#\"', '#') IS NULL AS x, \
               kda_substring_similar(s, '%-#\"[0-9]+#\"', '#') AS y FROM t")
            .await,
            ["false | 12", "false | 2", "true  |", "true  |"]
        );
        // DataFusion's own functions where they already have KDA's semantics.
        assert_eq!(c("SELECT char_length(s) AS x FROM t").await, ["8", "7", "", "3"]);
        assert_eq!(
            c("SELECT upper(s) AS x FROM t").await,
            ["NORTH-12", "SOUTH-2", "", "A.C"]
        );
        assert_eq!(c("SELECT coalesce(n, 100) AS x FROM t").await, ["23", "-3", "100", "0"]);
        assert_eq!(c("SELECT nullif(n, 0) AS x FROM t").await, ["23", "-3", "", ""]);
        assert_eq!(c("SELECT abs(n) AS x FROM t").await, ["23", "3", "", "0"]);
        assert_eq!(
            c("SELECT s || '/' AS x FROM t").await,
            ["NORTH-12/", "south-2/", "", "a.c/"]
        );
    }

    #[tokio::test]
    async fn numeric_and_string_functions_on_columns() {
        let c = |sql: &'static str| async move { column(&with_table(sql).await) };
        assert_eq!(c("SELECT step(n, 5) AS x FROM t").await, ["20", "-5", "", "0"]);
        assert_eq!(c("SELECT sluice_div(n, 2) AS x FROM t").await, ["11", "-1", "", "0"]);
        assert!(
            with_table("SELECT sluice_div(10, n) AS x FROM t")
                .await
                .contains("division by zero")
        );
        assert_eq!(
            c("SELECT similar_to(s, '(NORTH|SOUTH)-[0-9]+') AS x FROM t").await,
            ["true", "false", "", "false"]
        );
        assert_eq!(
            c("SELECT similar_to(s, 'a.c') AS x FROM t").await,
            ["false", "false", "", "true"]
        );
        assert_eq!(
            c("SELECT kda_substring(s, 2, 3) AS x FROM t").await,
            ["ORT", "out", "", ".c"]
        );
        assert_eq!(c("SELECT kda_position('-', s) AS x FROM t").await, ["6", "6", "", "0"]);
        assert_eq!(
            c("SELECT kda_regex_replace(s, '[0-9]', '#', 1, 0) AS x FROM t").await,
            ["NORTH-##", "south-#", "", "a.c"]
        );
    }
}
