//! Event time: ROWTIME from a column of the data, put in order by a watermark; rows
//! later than the allowed delay go to the input's late stream (or to `error_stream`).

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use sluice::app::{EventTimeSpec, SourceSpec};

const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC, a bucket edge
const ROWS: i64 = 12_000;
const DELAY_MS: i64 = 5_000;

const SQL: &str = r#"
CREATE OR REPLACE STREAM "PER_WINDOW" (W TIMESTAMP, N BIGINT, LO BIGINT, HI BIGINT);
CREATE OR REPLACE PUMP "TUMBLING" AS INSERT INTO "PER_WINDOW"
  SELECT STREAM STEP(s.ROWTIME BY INTERVAL '10' SECOND), COUNT(*), MIN(V), MAX(V)
  FROM "SOURCE_SQL_STREAM_001" AS s
  GROUP BY STEP(s.ROWTIME BY INTERVAL '10' SECOND);
"#;

/// Rows 0..ROWS, each at START + 10 ms × its number, but swapped in pairs and shifted
/// in runs of seven (out of order by up to 60 ms, well within the delay); after row
/// 10,000 (in the third batch the file source publishes), every 100th row is from the
/// first second: far later than the delay. V numbers the rows.
fn input() -> (tempfile::NamedTempFile, Vec<(i64, i64)>, Vec<i64>) {
    let mut order: Vec<i64> = (0..ROWS).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    for run in order.chunks_mut(7) {
        if run.len() == 7 {
            run.rotate_left(3);
        }
    }
    let mut rows = Vec::new();
    let mut late = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        let mut t = START + i * 10;
        if n > 10_000 && n % 100 == 0 {
            t = START + (i % 100);
            late.push(i);
        }
        rows.push((i, t));
    }
    let lines: Vec<String> = rows.iter().map(|(v, t)| format!(r#"{{"v":{v},"t":{t}}}"#)).collect();
    (super::write_recording(&lines), rows, late)
}

fn app(file: &std::path::Path, late_stream: Option<&str>, extra_sql: &str, outputs: &[&str]) -> sluice::app::AppSpec {
    let mut app = super::recorded_app(
        &format!("{SQL}{extra_sql}"),
        &[("V", "BIGINT", "$.v"), ("T", "BIGINT", "$.t")],
        file,
        outputs,
    );
    app.inputs[0].source = SourceSpec::File {
        path: file.to_path_buf(),
        skip_header_lines: 0,
    };
    app.inputs[0].event_time = Some(EventTimeSpec {
        column: "T".into(),
        max_delay_ms: DELAY_MS,
        idle_timeout_ms: None,
        late_stream: late_stream.map(str::to_string),
    });
    app
}

fn run(app: &sluice::app::AppSpec) -> BTreeMap<String, Vec<RecordBatch>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    rt.block_on(sluice::engine::run(app, options))
        .expect("streaming run")
        .streams
        .into_iter()
        .collect()
}

/// (window start → (count, min V, max V)) of the on-time rows, as the stream gives it.
fn windows(batches: &[RecordBatch]) -> BTreeMap<i64, (i64, i64, i64)> {
    let mut out = BTreeMap::new();
    for b in batches {
        let w = b.column(0).as_primitive::<TimestampMillisecondType>();
        let (n, lo, hi) = (
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
            b.column(3).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            let before = out.insert(w.value(i), (n.value(i), lo.value(i), hi.value(i)));
            assert!(before.is_none(), "window {} emitted twice", w.value(i));
        }
    }
    out
}

fn expected_windows(rows: &[(i64, i64)], late: &[i64]) -> BTreeMap<i64, (i64, i64, i64)> {
    let mut out: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for &(v, t) in rows.iter().filter(|(v, _)| !late.contains(v)) {
        let w = t - (t - START).rem_euclid(10_000);
        let e = out.entry(w).or_insert((0, i64::MAX, i64::MIN));
        *e = (e.0 + 1, e.1.min(v), e.2.max(v));
    }
    out
}

/// Out-of-order rows within the delay land in their event-time windows (the tumbling
/// operator keeps one open bucket, so any disorder reaching it would show); rows later
/// than the delay go to the late stream, which a pump selects from, with their columns.
#[test]
fn event_time_orders_rows_and_routes_late_ones_to_the_late_stream() {
    let (file, rows, late) = input();
    assert_eq!(late.len(), 19);
    let late_sql = r#"
CREATE OR REPLACE STREAM "LATE_OUT" (V BIGINT, T BIGINT);
CREATE OR REPLACE PUMP "LATE_P" AS INSERT INTO "LATE_OUT" SELECT STREAM V, T FROM "LATE_ROWS";
"#;
    let app = app(
        file.path(),
        Some("LATE_ROWS"),
        late_sql,
        &["PER_WINDOW", "LATE_OUT", "error_stream"],
    );
    let mut out = run(&app);
    let got = windows(&out.remove("PER_WINDOW").unwrap_or_default());
    assert_eq!(got, expected_windows(&rows, &late));
    assert_eq!(got.len(), 12, "120 s of rows, 10 s windows");

    let late_rows = out.remove("LATE_OUT").unwrap_or_default();
    let mut late_values: Vec<i64> = late_rows
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    late_values.sort();
    let mut expected = late.clone();
    expected.sort();
    assert_eq!(late_values, expected, "every late row, once, in the late stream");
    // The late stream is ordered: its ROWTIME is the watermark that found the row late.
    let rowtimes: Vec<i64> = late_rows
        .iter()
        .flat_map(|b| {
            b.column(b.num_columns() - 1)
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .to_vec()
        })
        .collect();
    assert!(rowtimes.windows(2).all(|w| w[0] <= w[1]), "late stream out of order");
    assert!(
        rowtimes.iter().all(|&t| t >= START + 10_000 * 10 - DELAY_MS),
        "{rowtimes:?}"
    );
    let errors: usize = out
        .get("error_stream")
        .map_or(0, |b| b.iter().map(|b| b.num_rows()).sum());
    assert_eq!(errors, 0);
}

/// Without a late stream, late rows are not dropped silently: each is an
/// `error_stream` row that says why, with the row.
#[test]
fn late_rows_without_a_late_stream_go_to_error_stream() {
    let (file, rows, late) = input();
    let app = app(file.path(), None, "", &["PER_WINDOW", "error_stream"]);
    let mut out = run(&app);
    let got = windows(&out.remove("PER_WINDOW").unwrap_or_default());
    assert_eq!(got, expected_windows(&rows, &late));
    let errors = out.remove("error_stream").unwrap_or_default();
    let messages: Vec<String> = errors
        .iter()
        .flat_map(|b| {
            let schema = b.schema();
            let (i, _) = schema.column_with_name("MESSAGE").expect("MESSAGE column");
            let m = b.column(i).as_string::<i32>();
            (0..m.len()).map(|r| m.value(r).to_string()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(messages.len(), late.len(), "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m.contains("later than the event-time watermark")),
        "{messages:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The event-time column in a query: where it reaches a key unchanged, it is ROWTIME.
// ---------------------------------------------------------------------------------------

/// The rows of `input()` with their event time also as a TIMESTAMP column `TS`, on
/// event time from `column` (`T`, epoch ms, or `TS`); late rows go to `error_stream`.
fn app_on(column: &str, sql: &str, outputs: &[&str]) -> (tempfile::NamedTempFile, sluice::app::AppSpec) {
    let (_, rows, _) = input();
    let lines: Vec<String> = rows
        .iter()
        .map(|(v, t)| format!(r#"{{"v":{v},"t":{t},"ts":"{}"}}"#, sluice::time::format_timestamp(*t)))
        .collect();
    let file = super::write_recording(&lines);
    let mut app = super::recorded_app(
        sql,
        &[
            ("V", "BIGINT", "$.v"),
            ("T", "BIGINT", "$.t"),
            ("TS", "TIMESTAMP", "$.ts"),
        ],
        file.path(),
        outputs,
    );
    app.inputs[0].source = SourceSpec::File {
        path: file.path().to_path_buf(),
        skip_header_lines: 0,
    };
    app.inputs[0].event_time = Some(EventTimeSpec {
        column: column.into(),
        max_delay_ms: DELAY_MS,
        idle_timeout_ms: None,
        late_stream: None,
    });
    (file, app)
}

/// Every row of a `(W, N, LO, HI)` stream with its ROWTIME, W in epoch milliseconds
/// whether it is a TIMESTAMP or a BIGINT.
fn rows_with_rowtime(batches: &[RecordBatch]) -> Vec<(i64, i64, i64, i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let w = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Int64).unwrap();
        let w = w.as_primitive::<Int64Type>();
        let (n, lo, hi) = (
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
            b.column(3).as_primitive::<Int64Type>(),
        );
        let rowtime = b.column(4).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            out.push((rowtime.value(i), w.value(i), n.value(i), lo.value(i), hi.value(i)));
        }
    }
    out
}

const BY_ROWTIME: &str = r#"
CREATE OR REPLACE STREAM "BY_ROWTIME" (W TIMESTAMP, N BIGINT, LO BIGINT, HI BIGINT);
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "BY_ROWTIME"
  SELECT STREAM STEP(s.ROWTIME BY INTERVAL '10' SECOND), COUNT(*), MIN(V), MAX(V)
  FROM "SOURCE_SQL_STREAM_001" AS s
  GROUP BY STEP(s.ROWTIME BY INTERVAL '10' SECOND);
"#;

/// `STEP(e.TS BY ...)` on the event-time column (here through a subquery) gives the rows
/// of `STEP(s.ROWTIME BY ...)`: the same windows, counts and ROWTIMEs (the window's
/// end), with the input's disorder and late rows (which go to `error_stream` and count
/// nowhere) as they are.
#[test]
fn grouping_by_the_event_time_column_gives_the_rows_of_grouping_by_rowtime() {
    let sql = format!(
        r#"{BY_ROWTIME}
CREATE OR REPLACE STREAM "BY_COLUMN" (W TIMESTAMP, N BIGINT, LO BIGINT, HI BIGINT);
CREATE OR REPLACE PUMP "P2" AS INSERT INTO "BY_COLUMN"
  SELECT STREAM STEP(e.ts BY INTERVAL '10' SECOND), COUNT(*), MIN(e.v), MAX(e.v)
  FROM (SELECT STREAM ts, v FROM "SOURCE_SQL_STREAM_001" WHERE v >= 0) AS e
  GROUP BY STEP(e.ts BY INTERVAL '10' SECOND);
"#
    );
    let (_file, app) = app_on("TS", &sql, &["BY_ROWTIME", "BY_COLUMN", "error_stream"]);
    let mut out = run(&app);
    let by_rowtime = out.remove("BY_ROWTIME").unwrap_or_default();
    let by_column = rows_with_rowtime(&out.remove("BY_COLUMN").unwrap_or_default());
    let (_, rows, late) = input();
    assert_eq!(windows(&by_rowtime), expected_windows(&rows, &late));
    assert_eq!(by_column, rows_with_rowtime(&by_rowtime));
    assert!(by_column.iter().all(|(rowtime, w, ..)| *rowtime == w + 10_000));
    let errors: usize = out
        .get("error_stream")
        .map_or(0, |b| b.iter().map(|b| b.num_rows()).sum());
    assert_eq!(errors, late.len(), "each late row once in error_stream");
}

/// A BIGINT event-time column (epoch milliseconds) holds ROWTIME's milliseconds:
/// `STEP(e.T BY 10000)` buckets and closes as the ROWTIME form does.
#[test]
fn an_epoch_millisecond_event_time_column_buckets_as_rowtime_does() {
    let sql = format!(
        r#"{BY_ROWTIME}
CREATE OR REPLACE STREAM "BY_COLUMN" (W BIGINT, N BIGINT, LO BIGINT, HI BIGINT);
CREATE OR REPLACE PUMP "P2" AS INSERT INTO "BY_COLUMN"
  SELECT STREAM STEP(e.t BY 10000), COUNT(*), MIN(e.v), MAX(e.v)
  FROM "SOURCE_SQL_STREAM_001" AS e
  GROUP BY STEP(e.t BY 10000);
"#
    );
    let (_file, app) = app_on("T", &sql, &["BY_ROWTIME", "BY_COLUMN"]);
    let mut out = run(&app);
    let by_rowtime = rows_with_rowtime(&out.remove("BY_ROWTIME").unwrap_or_default());
    assert_eq!(by_rowtime.len(), 12);
    assert_eq!(
        rows_with_rowtime(&out.remove("BY_COLUMN").unwrap_or_default()),
        by_rowtime
    );
}

/// A time column that is not the input's event-time column is no ROWTIME: the refusal
/// says so at the pump and names the setting that would make it one.
#[test]
fn a_column_that_is_not_the_event_time_column_is_refused_naming_the_setting() {
    let sql = "CREATE OR REPLACE STREAM \"OUT\" (W TIMESTAMP, N BIGINT);\n\
               CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  \
               SELECT STREAM STEP(e.ts BY INTERVAL '1' MINUTE), COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" AS e\n  \
               GROUP BY STEP(e.ts BY INTERVAL '1' MINUTE);";
    let refusal = |event_time: Option<&str>| {
        let (_file, mut app) = app_on("T", sql, &[]);
        app.inputs[0].event_time = event_time.map(|column| EventTimeSpec {
            column: column.into(),
            max_delay_ms: DELAY_MS,
            idle_timeout_ms: None,
            late_stream: None,
        });
        match sluice::planner::plan_application(&app) {
            Err(sluice::SluiceError::Sql { line, column, message }) => (line, column, message),
            Err(other) => panic!("expected a SQL error, got {other}"),
            Ok(_) => panic!("planned a GROUP BY on a column that is not ROWTIME"),
        }
    };
    let (line, column, message) = refusal(None);
    assert_eq!((line, column), (2, 1), "{message}");
    assert!(
        message.contains("\"TS\" is not the event-time column of input stream \"SOURCE_SQL_STREAM_001\"")
            && message.contains("no [inputs.event_time] setting")
            && message.contains("[inputs.event_time] column = \"TS\""),
        "{message}"
    );
    let (_, _, message) = refusal(Some("T"));
    assert!(
        message.contains("\"TS\" is not the event-time column")
            && message.contains("[inputs.event_time] column is \"T\""),
        "{message}"
    );
    // The declared column itself plans.
    let (_file, app) = app_on("TS", sql, &[]);
    sluice::planner::plan_application(&app).expect("TS is the event-time column");
}
