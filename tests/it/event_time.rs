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
