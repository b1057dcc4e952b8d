//! Window table functions (TUMBLE, HOP, CUMULATE, SESSION) run end to end: against
//! DataFusion's batch SQL on random input, and with an event-time input, allowed
//! lateness and late rows routed to a late stream or to `error_stream`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimestampMillisecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use sluice::app::{EventTimeSpec, SourceSpec};

const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC, a window edge

type Row = super::KeyedRow;
/// (key, window start, window end) → (ROWTIME, count(*), count(v), sum, min, max)
type Groups = BTreeMap<(Option<String>, i64, i64), (i64, i64, i64, Option<i64>, Option<i64>, Option<i64>)>;

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    let key = prop_oneof![1 => Just(None), 8 => (0..6u8).prop_map(|k| Some(format!("k{k}")))];
    let value = prop_oneof![1 => Just(None), 6 => (-1000i64..1000).prop_map(Some)];
    // steps: often 0 (equal ROWTIMEs), sometimes landing exactly on a 5-second edge
    let step = prop_oneof![3 => Just(0i64), 5 => 1i64..3_000, 2 => Just(-1)];
    prop::collection::vec((key, value, step), 1..250).prop_map(|v| {
        let mut t = START;
        v.into_iter()
            .map(|(k, val, step)| {
                t = if step < 0 { (t / 5_000 + 1) * 5_000 } else { t + step };
                (k, val, t)
            })
            .collect()
    })
}

fn opt(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Runs `SELECT window_start, window_end, k, aggregates FROM TABLE(<call>) GROUP BY ...`.
fn streaming(call: &str, rows: &[Row], rt: &tokio::runtime::Runtime) -> Groups {
    let sql = format!(
        r#"
        CREATE OR REPLACE STREAM "OUT" (ws TIMESTAMP, we TIMESTAMP, k VARCHAR(8), n BIGINT, nv BIGINT, s BIGINT, mn BIGINT, mx BIGINT);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
          SELECT STREAM window_start, window_end, k, COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v)
          FROM TABLE({call})
          GROUP BY window_start, window_end, k;"#
    );
    let mut groups = Groups::new();
    for b in super::run_keyed(&sql, rows, rt) {
        let ts = |c: usize| b.column(c).as_primitive::<TimestampMillisecondType>().clone();
        let (ws, we, rowtime) = (ts(0), ts(1), ts(8));
        let k = b.column(2).as_string::<i32>();
        let ints: Vec<&Int64Array> = (3..8).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        for i in 0..b.num_rows() {
            let key = (!k.is_null(i)).then(|| k.value(i).to_string());
            let before = groups.insert(
                (key, ws.value(i), we.value(i)),
                (
                    rowtime.value(i),
                    ints[0].value(i),
                    ints[1].value(i),
                    opt(ints[2], i),
                    opt(ints[3], i),
                    opt(ints[4], i),
                ),
            );
            assert!(before.is_none(), "a window's group emitted twice");
        }
    }
    groups
}

/// The same windows by DataFusion's batch SQL: each row joined with the hop numbers
/// 0..size/slide, kept where the hop's window holds it (a tumbling window is one hop).
fn batch(rows: &[Row], slide: i64, size: i64, rt: &tokio::runtime::Runtime) -> Groups {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
    ]));
    let data = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("rows", Arc::new(MemTable::try_new(schema, vec![vec![data]]).unwrap()))
        .unwrap();
    let hops = (0..size / slide)
        .map(|h| format!("({h})"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT k, ws, COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v) FROM (
           SELECT k, v, t, (t / {slide}) * {slide} - h * {slide} AS ws
           FROM rows CROSS JOIN (VALUES {hops}) AS hops(h)) AS pairs
         WHERE ws <= t AND t < ws + {size}
         GROUP BY k, ws"
    );
    let batches = rt.block_on(async { ctx.sql(&sql).await.unwrap().collect().await.unwrap() });
    let mut groups = Groups::new();
    for b in &batches {
        let k = b.column(0).as_string::<i32>();
        let ints: Vec<&Int64Array> = (1..7).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        for i in 0..b.num_rows() {
            let key = (!k.is_null(i)).then(|| k.value(i).to_string());
            let ws = ints[0].value(i);
            groups.insert(
                (key, ws, ws + size),
                (
                    ws + size,
                    ints[1].value(i),
                    ints[2].value(i),
                    opt(ints[3], i),
                    opt(ints[4], i),
                    opt(ints[5], i),
                ),
            );
        }
    }
    groups
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// TUMBLE and HOP over ROWTIME equal batch SQL, every window once, ROWTIME = its end.
    #[test]
    fn tumble_and_hop_match_batch_sql(rows in rows_strategy()) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tumble = streaming(
            r#"TUMBLE(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(ROWTIME), INTERVAL '10' SECOND)"#,
            &rows,
            &rt,
        );
        prop_assert_eq!(tumble, batch(&rows, 10_000, 10_000, &rt));
        let hop = streaming(
            r#"HOP(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(ROWTIME), INTERVAL '5' SECOND, INTERVAL '15' SECOND)"#,
            &rows,
            &rt,
        );
        prop_assert_eq!(hop, batch(&rows, 5_000, 15_000, &rt));
    }
}

const ROWS: i64 = 12_000;
const STEP_MS: i64 = 40;
const DELAY_MS: i64 = 2_000;
const SIZE_MS: i64 = 10_000;
const LATENESS_MS: i64 = 5_000;

/// A reading: V numbers it, T is when the gateway received it (the input's event time,
/// put in order by a watermark 2 s behind), M when the device measured it, 0 to 30 s
/// earlier (devices buffer). Rows are swapped in pairs (within the delay); after row
/// 10,000 (in the third batch the file source publishes), every 500th row comes with a
/// T from the first 50 ms, far behind the watermark: the input sends those to its own
/// late stream, and they never reach the query.
fn readings() -> (tempfile::NamedTempFile, Vec<(i64, i64, i64)>, BTreeSet<i64>) {
    let mut order: Vec<i64> = (0..ROWS).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    let mut rows = Vec::new();
    let mut input_late = BTreeSet::new();
    for (n, &v) in order.iter().enumerate() {
        let mut t = START + v * STEP_MS;
        if n > 10_000 && n % 500 == 250 {
            t = START + v % 50;
            input_late.insert(v);
        }
        let m = t - ((v * 7919) % 31) * 1_000;
        rows.push((v, t, m));
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|(v, t, m)| format!(r#"{{"v":{v},"t":{t},"m":"{}"}}"#, sluice::time::format_timestamp(*m)))
        .collect();
    (super::write_recording(&lines), rows, input_late)
}

const SQL: &str = r#"
CREATE OR REPLACE STREAM "PER_WINDOW" (WS TIMESTAMP, WE TIMESTAMP, N BIGINT, S BIGINT);
CREATE OR REPLACE STREAM "LATE_READINGS" (V BIGINT, T BIGINT, M TIMESTAMP, WS TIMESTAMP, WE TIMESTAMP);
CREATE OR REPLACE PUMP "ROUTED" AS INSERT INTO "PER_WINDOW"
  SELECT STREAM window_start, window_end, COUNT(*), SUM(V)
  FROM TABLE(TUMBLE(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(M), INTERVAL '10' SECOND,
                    LATENESS => INTERVAL '5' SECOND, LATE_STREAM => 'LATE_READINGS'))
  GROUP BY window_start, window_end;
CREATE OR REPLACE STREAM "PER_WINDOW_2" (WS TIMESTAMP, WE TIMESTAMP, N BIGINT, S BIGINT);
CREATE OR REPLACE PUMP "TO_ERRORS" AS INSERT INTO "PER_WINDOW_2"
  SELECT STREAM window_start, window_end, COUNT(*), SUM(V)
  FROM TABLE(TUMBLE(TABLE "SOURCE_SQL_STREAM_001", DESCRIPTOR(M), INTERVAL '10' SECOND,
                    LATENESS => INTERVAL '5' SECOND))
  GROUP BY window_start, window_end;
CREATE OR REPLACE STREAM "LATE_AT_INPUT" (V BIGINT);
CREATE OR REPLACE PUMP "INPUT_LATE" AS INSERT INTO "LATE_AT_INPUT" SELECT STREAM V FROM "LATE_INPUT";
"#;

/// The stream's time at a row is its T (rows leave the input sorted by T, and a bound
/// never passes a later row), so a reading is late when its M-window's end plus the
/// lateness is at or before its T. Windows are 10 s of M; each closes (ROWTIME) at its
/// end plus the lateness. Rows the input found late never reach the query.
#[test]
fn lateness_keeps_windows_open_and_late_rows_go_to_the_late_stream_or_error_stream() {
    let (file, rows, input_late) = readings();
    let mut app = super::recorded_app(
        SQL,
        &[
            ("V", "BIGINT", "$.v"),
            ("T", "BIGINT", "$.t"),
            ("M", "TIMESTAMP", "$.m"),
        ],
        file.path(),
        &[
            "PER_WINDOW",
            "PER_WINDOW_2",
            "LATE_READINGS",
            "LATE_AT_INPUT",
            "error_stream",
        ],
    );
    app.inputs[0].source = SourceSpec::File {
        path: file.path().to_path_buf(),
        skip_header_lines: 0,
    };
    app.inputs[0].event_time = Some(EventTimeSpec {
        column: "T".into(),
        max_delay_ms: DELAY_MS,
        idle_timeout_ms: None,
        late_stream: Some("LATE_INPUT".into()),
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    let mut out = rt.block_on(sluice::engine::run(&app, options)).expect("run").streams;

    let mut late_at_input = BTreeSet::new();
    for b in out.remove("LATE_AT_INPUT").unwrap_or_default() {
        late_at_input.extend(b.column(0).as_primitive::<Int64Type>().values().iter().copied());
    }
    assert_eq!(late_at_input, input_late);

    // expected, from the rows
    let mut windows: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut late: BTreeSet<(i64, i64)> = BTreeSet::new();
    for &(v, t, m) in rows.iter().filter(|(v, _, _)| !late_at_input.contains(v)) {
        let ws = m.div_euclid(SIZE_MS) * SIZE_MS;
        if ws + SIZE_MS + LATENESS_MS <= t {
            late.insert((v, ws));
        } else {
            let w = windows.entry(ws).or_default();
            *w = (w.0 + 1, w.1 + v);
        }
    }
    assert!(
        late.len() > 100 && late.len() < ROWS as usize * 3 / 4,
        "{} late rows",
        late.len()
    );

    for stream in ["PER_WINDOW", "PER_WINDOW_2"] {
        let mut got: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut last_rowtime = i64::MIN;
        for b in out.remove(stream).unwrap_or_default() {
            let ts = |c: usize| b.column(c).as_primitive::<TimestampMillisecondType>().clone();
            let (ws, we, rowtime) = (ts(0), ts(1), ts(4));
            let (n, s) = (
                b.column(2).as_primitive::<Int64Type>(),
                b.column(3).as_primitive::<Int64Type>(),
            );
            for i in 0..b.num_rows() {
                assert_eq!(we.value(i) - ws.value(i), SIZE_MS);
                assert_eq!(
                    rowtime.value(i),
                    we.value(i) + LATENESS_MS,
                    "final results at end + lateness"
                );
                assert!(rowtime.value(i) >= last_rowtime);
                last_rowtime = rowtime.value(i);
                assert!(got.insert(ws.value(i), (n.value(i), s.value(i))).is_none());
            }
        }
        assert_eq!(got, windows, "{stream}");
    }

    let mut routed = BTreeSet::new();
    for b in out.remove("LATE_READINGS").unwrap_or_default() {
        let v = b.column(0).as_primitive::<Int64Type>();
        let t = b.column(1).as_primitive::<Int64Type>();
        let ws = b.column(3).as_primitive::<TimestampMillisecondType>();
        let rowtime = b.column(5).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            assert_eq!(rowtime.value(i), t.value(i), "a late row keeps its ROWTIME");
            routed.insert((v.value(i), ws.value(i)));
        }
    }
    assert_eq!(routed, late);

    let errors = out.remove("error_stream").unwrap_or_default();
    let mut late_errors = 0;
    for b in &errors {
        let name = b.column(2).as_string::<i32>();
        let pump = b.column(6).as_string::<i32>();
        for i in 0..b.num_rows() {
            assert_eq!(name.value(i), "LateRow", "only late rows fail");
            assert_eq!(pump.value(i), "TO_ERRORS#TUMBLE1");
            late_errors += 1;
        }
    }
    assert_eq!(late_errors, late.len());
}

/// Plans `SELECT ... FROM TABLE(<call>) <rest>` over an input (K VARCHAR, V BIGINT,
/// TS TIMESTAMP) and returns the error message, if any.
fn plan_error(select: &str, call: &str, rest: &str) -> Option<(u64, String)> {
    let file = super::write_recording(&[]);
    let sql = format!(
        "CREATE OR REPLACE STREAM \"OUT\" (a TIMESTAMP, b BIGINT);\n\
         CREATE OR REPLACE STREAM \"L\" (k VARCHAR(8), v BIGINT);\n\
         CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM {select} FROM TABLE({call}) {rest};"
    );
    let app = super::recorded_app(
        &sql,
        &[
            ("K", "VARCHAR(8)", "$.k"),
            ("V", "BIGINT", "$.v"),
            ("TS", "TIMESTAMP", "$.ts"),
        ],
        file.path(),
        &[],
    );
    match sluice::planner::plan_application(&app) {
        Ok(_) => None,
        Err(sluice::SluiceError::Sql { line, message, .. }) => Some((line, message)),
        Err(other) => Some((0, other.to_string())),
    }
}

#[test]
fn window_calls_are_checked_when_planned() {
    let s = r#"TABLE "SOURCE_SQL_STREAM_001""#;
    let ok = |select: &str, call: String, rest: &str| {
        assert_eq!(plan_error(select, &call, rest), None, "{call}");
    };
    let fails = |select: &str, call: String, rest: &str, needle: &str| {
        let (line, message) = plan_error(select, &call, rest).unwrap_or_else(|| panic!("{call} planned"));
        assert!(message.contains(needle), "{call}: {message}");
        assert_eq!(line, 3, "{message}");
    };
    let group = "GROUP BY window_start, window_end";
    ok(
        "window_end, COUNT(*)",
        format!("TUMBLE({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE, INTERVAL '10' SECOND)"),
        group,
    );
    ok(
        "window_end, COUNT(*)",
        format!("TUMBLE(DATA => {s}, TIMECOL => DESCRIPTOR(ROWTIME), SIZE => INTERVAL '1' MINUTE, LATE_STREAM => 'L')"),
        group,
    );
    ok(
        "window_end, COUNT(*)",
        format!("SESSION({s} PARTITION BY (K, V), DESCRIPTOR(TS), INTERVAL '1' MINUTE)"),
        &format!("{group}, K"),
    );
    ok(
        "window_end, V",
        format!("HOP({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE)"),
        "",
    );
    fails(
        "window_end, COUNT(*)",
        format!("TUMBLE({s}, DESCRIPTOR(K), INTERVAL '1' MINUTE)"),
        group,
        "TIMESTAMP column",
    );
    fails(
        "window_end, COUNT(*)",
        format!("TUMBLE({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE)"),
        "GROUP BY window_end",
        "window_start and window_end",
    );
    fails(
        "window_end, COUNT(*)",
        format!("TUMBLE({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE, EARLY_FIRE => INTERVAL '5' SECOND)"),
        group,
        "is_partial",
    );
    fails(
        "window_end, COUNT(*)",
        format!("CUMULATE({s}, DESCRIPTOR(TS), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)"),
        group,
        "whole number of STEPs",
    );
    fails(
        "window_end, COUNT(*)",
        format!("TUMBLE({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE, LATE_STREAM => 'NOPE')"),
        group,
        "CREATE STREAM",
    );
    fails(
        "window_end, COUNT(*)",
        format!("TUMBLE({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE, SLOWNESS => INTERVAL '1' SECOND)"),
        group,
        "no argument SLOWNESS",
    );
    fails(
        "window_end, COUNT(*)",
        format!("HOP({s}, DESCRIPTOR(TS), INTERVAL '1' MINUTE)"),
        group,
        "needs its SIZE",
    );
}
