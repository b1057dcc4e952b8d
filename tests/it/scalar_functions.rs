//! KDA's scalar functions and operators (spec §1.4, §2.2, §4.3–4.6) through a whole
//! application: parsed, planned, lowered and run over recorded rows, with row errors
//! in `error_stream`.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, TimestampMillisecondType};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Input rows: (ROWTIME, S VARCHAR(32), N INTEGER, D DOUBLE).
type Row = (&'static str, Option<&'static str>, Option<i32>, Option<f64>);

struct Run {
    out: Option<RecordBatch>,
    errors: Option<RecordBatch>,
}

fn run(sql: &str, rows: &[Row]) -> Run {
    let lines: Vec<String> = rows
        .iter()
        .map(|(t, s, n, d)| {
            let data = serde_json::json!({ "s": s, "n": n, "d": d });
            format!(r#"{{"rowtime": "{t}", "data": {data}}}"#)
        })
        .collect();
    let file = super::write_recording(&lines);
    let app = super::recorded_app(
        sql,
        &[
            ("S", "VARCHAR(32)", "$.s"),
            ("N", "INTEGER", "$.n"),
            ("D", "DOUBLE", "$.d"),
        ],
        file.path(),
        &["OUT", "error_stream"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    let mut output = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    let all = |batches: Vec<RecordBatch>| {
        (!batches.is_empty()).then(|| concat_batches(&batches[0].schema(), &batches).unwrap())
    };
    Run {
        out: output.streams.remove("OUT").and_then(all),
        errors: output.streams.remove("error_stream").and_then(all),
    }
}

/// The values of column `name` as text (NULL as `null`).
fn column(batch: &RecordBatch, name: &str) -> Vec<String> {
    let c = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    let options = FormatOptions::default().with_null("null");
    let f = ArrayFormatter::try_new(c.as_ref(), &options).unwrap();
    (0..c.len()).map(|i| f.value(i).to_string()).collect()
}

fn rows(run: &Run) -> usize {
    run.out.as_ref().map_or(0, |b| b.num_rows())
}

const ROWS: [Row; 3] = [
    ("2024-03-01 18:00:00.000", Some("hello world"), Some(7), Some(2.5)),
    ("2024-03-01 18:00:01.250", None, Some(-7), Some(-3.3)),
    ("2024-03-01 18:00:02.000", Some("a_b"), None, Some(0.0)),
];

fn pump(columns: &str, select: &str) -> String {
    format!(
        "CREATE OR REPLACE STREAM \"OUT\" ({columns});\n\
         CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM {select}\n  FROM \"SOURCE_SQL_STREAM_001\";"
    )
}

#[test]
fn null_numeric_and_conversion_functions() {
    let r = run(
        &pump(
            "c INTEGER, z INTEGER, m INTEGER, ce DOUBLE, fl DOUBLE, fi INTEGER, a DOUBLE, txt VARCHAR(30), hm VARCHAR(8)",
            "COALESCE(N, 100), NULLIF(N, 7), MOD(N, 3), CEILING(D), FLOOR(D), FLOOR(N), ABS(D), \
             CAST(ROWTIME AS VARCHAR(30)), SUBSTRING(CAST(ROWTIME AS VARCHAR(25)), 12, 8)",
        ),
        &ROWS,
    );
    assert!(r.errors.is_none(), "{:?}", r.errors);
    let out = r.out.unwrap();
    assert_eq!(column(&out, "C"), ["7", "-7", "100"]);
    assert_eq!(column(&out, "Z"), ["null", "-7", "null"]);
    // MOD has the sign of the dividend.
    assert_eq!(column(&out, "M"), ["1", "-1", "null"]);
    assert_eq!(column(&out, "CE"), ["3.0", "-3.0", "0.0"]);
    assert_eq!(column(&out, "FL"), ["2.0", "-4.0", "0.0"]);
    assert_eq!(column(&out, "FI"), ["7", "-7", "null"]);
    assert_eq!(column(&out, "A"), ["2.5", "3.3", "0.0"]);
    // A12: Java Timestamp.toString, at least one fraction digit.
    assert_eq!(
        column(&out, "TXT"),
        [
            "2024-03-01 18:00:00.0",
            "2024-03-01 18:00:01.25",
            "2024-03-01 18:00:02.0"
        ]
    );
    assert_eq!(column(&out, "HM"), ["18:00:00", "18:00:01", "18:00:02"]);
}

#[test]
fn string_functions_and_operators() {
    let r = run(
        &pump(
            "up VARCHAR(32), ic VARCHAR(32), len INTEGER, pos INTEGER, ov VARCHAR(40), tr VARCHAR(32), \
             cat VARCHAR(40), lk BOOLEAN, ds BOOLEAN",
            "UPPER(S), INITCAP(S || ' x-y'), CHAR_LENGTH(S), POSITION('o' IN S), OVERLAY(S PLACING '#' FROM 2 FOR 3), \
             TRIM(LEADING 'h' FROM S) || '|', S || '/' || N, S LIKE 'a!_%' ESCAPE '!', N IS DISTINCT FROM 7",
        ),
        &ROWS,
    );
    assert!(r.errors.is_none(), "{:?}", r.errors);
    let out = r.out.unwrap();
    assert_eq!(column(&out, "UP"), ["HELLO WORLD", "null", "A_B"]);
    assert_eq!(column(&out, "IC"), ["Hello World X-y", "null", "A_b X-y"]);
    assert_eq!(column(&out, "LEN"), ["11", "null", "3"]);
    assert_eq!(column(&out, "POS"), ["5", "null", "0"]);
    assert_eq!(column(&out, "OV"), ["h#o world", "null", "a#"]);
    assert_eq!(column(&out, "TR"), ["ello world|", "null", "a_b|"]);
    // NULL operands of || give NULL.
    assert_eq!(column(&out, "CAT"), ["hello world/7", "null", "null"]);
    assert_eq!(column(&out, "LK"), ["false", "null", "true"]);
    assert_eq!(column(&out, "DS"), ["false", "true", "true"]);
}

#[test]
fn datetime_functions() {
    let r = run(
        &pump(
            "sec DECIMAL(5,3), mi BIGINT, ts TIMESTAMP, txt VARCHAR(10), null_txt VARCHAR(10), parsed TIMESTAMP",
            "EXTRACT(SECOND FROM ROWTIME), EXTRACT(MINUTE FROM ROWTIME - TIMESTAMP '2024-03-01 17:58:30'), \
             TO_TIMESTAMP(UNIX_TIMESTAMP(ROWTIME) + 1000), TIMESTAMP_TO_CHAR('HH:mm:ss', ROWTIME), \
             TIMESTAMP_TO_CHAR('HH:mm', CAST(NULL AS TIMESTAMP)), CHAR_TO_TIMESTAMP('yyyy-mm', '2011-02-08 07:23:19')",
        ),
        &ROWS,
    );
    assert!(r.errors.is_none(), "{:?}", r.errors);
    let out = r.out.unwrap();
    assert_eq!(column(&out, "SEC"), ["0.000", "1.250", "2.000"]);
    // 18:00:00 − 17:58:30 = 1 min 30 s; 18:00:01.25 − 17:58:30 = 1 min 31.25 s.
    assert_eq!(column(&out, "MI"), ["1", "1", "1"]);
    assert_eq!(
        column(&out, "TS"),
        ["2024-03-01T18:00:01", "2024-03-01T18:00:02.250", "2024-03-01T18:00:03"]
    );
    assert_eq!(column(&out, "TXT"), ["18:00:00", "18:00:01", "18:00:02"]);
    assert_eq!(column(&out, "NULL_TXT"), ["null", "null", "null"]);
    // The documented oddity: `mm` is minutes, so 02 lands in the minutes.
    assert_eq!(column(&out, "PARSED"), ["2011-01-01T00:02:00"; 3]);
}

#[test]
fn current_timestamp_is_fixed_at_the_start_and_utc() {
    let before = sluice::time::now_millis();
    let r = run(
        &pump(
            "ts TIMESTAMP, lts TIMESTAMP, d DATE, t TIME, row_ts TIMESTAMP",
            "CURRENT_TIMESTAMP, LOCALTIMESTAMP AS lts, CURRENT_DATE, LOCALTIME, CURRENT_ROW_TIMESTAMP",
        ),
        &ROWS,
    );
    let after = sluice::time::now_millis();
    let out = r.out.unwrap();
    let millis = |name: &str| -> Vec<i64> {
        let c = out.column_by_name(name).unwrap();
        assert_eq!(
            c.data_type(),
            &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None)
        );
        c.as_primitive::<TimestampMillisecondType>().values().to_vec()
    };
    let ts = millis("TS");
    assert!(ts.iter().all(|t| *t == ts[0]), "{ts:?}");
    assert!(before <= ts[0] && ts[0] <= after, "{before} {ts:?} {after}");
    assert_eq!(millis("LTS"), ts);
    let day = sluice::time::format_timestamp(ts[0])[..10].to_string();
    assert_eq!(column(&out, "D"), [day.as_str(); 3]);
    // Every row's clock is read when the row is evaluated, after the start.
    assert!(millis("ROW_TS").iter().all(|t| ts[0] <= *t && *t <= after));
}

#[test]
fn row_errors_go_to_error_stream_and_the_other_rows_flow() {
    // Each failing row fails one function: 1 / 0 (A18), MOD by zero, LN of a negative,
    // a bad CAST (A25), a negative OVERLAY length, a value too long for VARCHAR(n).
    let rows: [Row; 7] = [
        ("2024-03-01 18:00:00.000", Some("5"), Some(1), Some(1.0)),
        ("2024-03-01 18:00:01.000", Some("5"), Some(0), Some(1.0)),
        ("2024-03-01 18:00:02.000", Some("5"), Some(2), Some(-1.0)),
        ("2024-03-01 18:00:03.000", Some("five"), Some(2), Some(1.0)),
        ("2024-03-01 18:00:04.000", Some("5"), Some(-1), Some(1.0)),
        ("2024-03-01 18:00:05.000", Some("123"), Some(3), Some(1.0)),
        ("2024-03-01 18:00:06.000", Some("7"), Some(4), Some(2.0)),
    ];
    let r = run(
        &pump(
            "q INTEGER, m INTEGER, l DOUBLE, c INTEGER, o VARCHAR(8), v VARCHAR(2)",
            "12 / N, MOD(12, N), LN(D), CAST(S AS INTEGER), OVERLAY('abc' PLACING 'x' FROM 1 FOR N), \
             CAST(CAST(S AS INTEGER) AS VARCHAR(2))",
        ),
        &rows,
    );
    let out = r.out.expect("rows that do not fail flow");
    assert_eq!(column(&out, "Q"), ["12", "3"]);
    assert_eq!(column(&out, "M"), ["0", "0"]);
    assert_eq!(column(&out, "L"), ["0.0", format!("{}", 2f64.ln()).as_str()]);
    assert_eq!(column(&out, "C"), ["5", "7"]);
    assert_eq!(column(&out, "O"), ["xbc", "x"]);
    assert_eq!(column(&out, "V"), ["5", "7"]);
    let errors = r.errors.expect("error_stream rows");
    let times: Vec<String> = errors
        .column_by_name("DATA_ROWTIME")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .iter()
        .map(|t| sluice::time::format_timestamp(*t))
        .collect();
    assert_eq!(
        times,
        [
            "2024-03-01 18:00:01.000",
            "2024-03-01 18:00:02.000",
            "2024-03-01 18:00:03.000",
            "2024-03-01 18:00:04.000",
            "2024-03-01 18:00:05.000"
        ]
    );
    assert!(column(&errors, "PUMP_NAME").iter().all(|p| p == "P"));
    assert_eq!(column(&errors, "ERROR_NAME")[0], "DivideByZero");
}

#[test]
fn constant_errors_are_not_planning_errors() {
    // Simplification folds constants, but a constant that fails is a row error: the
    // application plans, and each row that evaluates it goes to error_stream.
    let r = run(
        &pump(
            "a INTEGER, b INTEGER",
            "CASE WHEN N > 0 THEN 1 / 0 ELSE N END, CASE WHEN N > 0 THEN CAST('x' AS INTEGER) ELSE N END",
        ),
        &[
            ("2024-03-01 18:00:00.000", None, Some(1), None),
            ("2024-03-01 18:00:01.000", None, Some(-2), None),
        ],
    );
    assert_eq!(rows(&r), 1);
    assert_eq!(column(r.out.as_ref().unwrap(), "A"), ["-2"]);
    assert_eq!(r.errors.map(|e| e.num_rows()), Some(1));
}

#[test]
fn an_expression_that_fails_on_every_row_sends_every_row_to_error_stream() {
    // `CAST('x' AS INTEGER)` fails whatever the rows, even on none: each row is an error
    // row and the application runs to its end.
    let r = run(
        &pump("a INTEGER, b INTEGER", "N, CAST('x' AS INTEGER)"),
        &[
            ("2024-03-01 18:00:00.000", None, Some(1), None),
            ("2024-03-01 18:00:01.000", None, Some(2), None),
            ("2024-03-01 18:00:02.000", None, Some(3), None),
        ],
    );
    assert_eq!(rows(&r), 0);
    assert_eq!(r.errors.map(|e| e.num_rows()), Some(3));
}

#[test]
fn a_timestamp_inserted_into_a_varchar_column_reads_as_cast_writes_it() {
    // A12: the implicit conversion of a pump's INSERT agrees with CAST(ts AS VARCHAR).
    let r = run(
        &pump(
            "implicit VARCHAR(32), explicit VARCHAR(32)",
            "\"SOURCE_SQL_STREAM_001\".ROWTIME, CAST(\"SOURCE_SQL_STREAM_001\".ROWTIME AS VARCHAR(32))",
        ),
        &ROWS,
    );
    let out = r.out.as_ref().unwrap();
    assert_eq!(
        column(out, "IMPLICIT"),
        [
            "2024-03-01 18:00:00.0",
            "2024-03-01 18:00:01.25",
            "2024-03-01 18:00:02.0"
        ]
    );
    assert_eq!(column(out, "IMPLICIT"), column(out, "EXPLICIT"));
}

#[test]
fn every_and_any_aggregate_a_tumbling_window() {
    let sql = "CREATE OR REPLACE STREAM \"OUT\" (all_pos BOOLEAN, some_big BOOLEAN, total INTEGER);\n\
               CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
               SELECT STREAM EVERY(N > 0), ANY(N > 5), SUM(COALESCE(N, 100))\n\
               FROM \"SOURCE_SQL_STREAM_001\"\n\
               GROUP BY STEP(\"SOURCE_SQL_STREAM_001\".ROWTIME BY INTERVAL '1' MINUTE);";
    let r = run(
        sql,
        &[
            ("2024-03-01 18:00:00.000", None, Some(7), None),
            ("2024-03-01 18:00:10.000", None, Some(1), None),
            ("2024-03-01 18:01:00.000", None, Some(-1), None),
            ("2024-03-01 18:01:10.000", None, None, None),
            ("2024-03-01 18:01:20.000", None, Some(2), None),
        ],
    );
    assert!(r.errors.is_none(), "{:?}", r.errors);
    let out = r.out.unwrap();
    // NULLs are skipped by EVERY/ANY and replaced by 100 in the SUM.
    assert_eq!(column(&out, "ALL_POS"), ["true", "false"]);
    assert_eq!(column(&out, "SOME_BIG"), ["true", "false"]);
    assert_eq!(column(&out, "TOTAL"), ["8", "101"]);
}

#[test]
fn extract_from_interval_literals_with_ranges() {
    let r = run(
        &pump(
            "s DECIMAL(5,3), h BIGINT, d BIGINT, later TIMESTAMP",
            "EXTRACT(SECOND FROM INTERVAL '59:59.999' MINUTE TO SECOND(3)), \
             EXTRACT(HOUR FROM INTERVAL '3 4' DAY TO HOUR), \
             EXTRACT(DAY FROM INTERVAL '-3 04:05' DAY TO MINUTE), \
             ROWTIME + INTERVAL '1:30' MINUTE TO SECOND",
        ),
        &ROWS[..1],
    );
    assert!(r.errors.is_none(), "{:?}", r.errors);
    let out = r.out.unwrap();
    assert_eq!(column(&out, "S"), ["59.999"]);
    assert_eq!(column(&out, "H"), ["4"]);
    assert_eq!(column(&out, "D"), ["-3"]);
    assert_eq!(column(&out, "LATER"), ["2024-03-01T18:01:30"]);
}
