//! State larger than the memory budget spills to disk and the results do not change, for
//! every operator that spills. Each application runs once without a budget (to measure
//! the unspilled state with the operator's own accounting, reported as
//! `sluice_window_state_peak_bytes`) and once with a budget of at most a quarter of it,
//! and both outputs must equal DataFusion's batch SQL over the same rows:
//! * a tumbling GROUP BY over 200,000 keys in two windows (budget a fifth);
//! * sliding windows (RANGE and ROWS, PARTITION BY over 20,000 keys), with the sliding
//!   property test's reference queries (`sliding_property.rs`);
//! * a stagger window over 20,000 keys, with the stagger property test's oracle and
//!   aggregation (`stagger_property.rs`).
//!
//! Recorded sources publish 4,096 rows a batch: the key counts make a batch touch a small
//! share of the keys, as a stream with many keys does, so most of the state can stay on
//! disk between the batches that need it.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WIDTH_MS: i64 = 10_000;
const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC, a bucket edge
const KEYS_PER_WINDOW: u32 = 100_000;

/// (key, bucket start) → (ROWTIME, count(*), count(v), sum, min, max)
type Groups = BTreeMap<(Option<String>, i64), (i64, i64, i64, Option<i64>, Option<i64>, Option<i64>)>;

const SQL: &str = r#"
    CREATE OR REPLACE STREAM "OUT" (k VARCHAR(8), bucket TIMESTAMP, n BIGINT, nv BIGINT, s BIGINT, mn BIGINT, mx BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
      SELECT STREAM k, STEP(s.ROWTIME BY INTERVAL '10' SECOND), COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v)
      FROM "SOURCE_SQL_STREAM_001" AS s
      GROUP BY k, STEP(s.ROWTIME BY INTERVAL '10' SECOND);"#;

/// Two windows; in each, 100,000 distinct keys (every one present, then as many rows
/// again on random keys of the window), a few NULL keys and values, ROWTIME rising.
fn rows() -> Vec<super::KeyedRow> {
    let mut rng = SmallRng::seed_from_u64(2024);
    let mut rows = Vec::new();
    for window in 0..2i64 {
        let base = START + window * WIDTH_MS;
        let n = 2 * KEYS_PER_WINDOW as usize;
        for i in 0..n {
            // Keys differ between windows, so the two windows hold 200,000 keys.
            let key = if i < KEYS_PER_WINDOW as usize {
                Some(format!("w{window}k{i}"))
            } else {
                let key = rng.random_range(0..KEYS_PER_WINDOW);
                (rng.random_range(0..1000) > 0).then(|| format!("w{window}k{key}"))
            };
            let value = (rng.random_range(0..20) > 0).then(|| rng.random_range(-1000i64..1000));
            let t = base + (i as i64 * (WIDTH_MS - 1)) / n as i64;
            rows.push((key, value, t));
        }
    }
    rows
}

/// Runs the application as `name` (the `app` label of its metrics) with a memory budget.
fn streaming(rows: &[super::KeyedRow], name: &str, budget: Option<usize>, rt: &tokio::runtime::Runtime) -> Groups {
    let lines: Vec<String> = rows
        .iter()
        .map(|(k, v, t)| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(*t),
                serde_json::json!({ "k": k, "v": v })
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let mut app = super::recorded_app(
        SQL,
        &[("K", "VARCHAR(8)", "$.k"), ("V", "BIGINT", "$.v")],
        file.path(),
        &["OUT"],
    );
    app.name = name.into();
    let mut options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    options.memory_budget_bytes = budget;
    let mut out = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    let mut groups = Groups::new();
    for b in out.streams.remove("OUT").unwrap_or_default() {
        let k = b.column(0).as_string::<i32>();
        let bucket = b.column(1).as_primitive::<TimestampMillisecondType>();
        let ints: Vec<&Int64Array> = (2..7).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        let rowtime = b.column(7).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            let key = (!k.is_null(i)).then(|| k.value(i).to_string());
            let prev = groups.insert(
                (key, bucket.value(i)),
                (
                    rowtime.value(i),
                    ints[0].value(i),
                    ints[1].value(i),
                    opt(ints[2], i),
                    opt(ints[3], i),
                    opt(ints[4], i),
                ),
            );
            assert!(prev.is_none(), "a group was emitted twice");
        }
    }
    groups
}

fn opt(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn batch_sql(rows: &[super::KeyedRow], rt: &tokio::runtime::Runtime) -> Groups {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    rt.block_on(async {
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
            .unwrap();
        let df = ctx
            .sql(
                "SELECT k, CAST(to_unixtime(date_bin(INTERVAL '10 seconds', t, TIMESTAMP '1970-01-01 00:00:00')) AS BIGINT) * 1000 AS b, \
                 count(*), count(v), sum(v), min(v), max(v) FROM t GROUP BY k, b",
            )
            .await
            .unwrap();
        let mut groups = Groups::new();
        for b in df.collect().await.unwrap() {
            let k = b.column(0).as_string::<i32>();
            let ints: Vec<&Int64Array> = (1..7).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
            for i in 0..b.num_rows() {
                let key = (!k.is_null(i)).then(|| k.value(i).to_string());
                let start = ints[0].value(i);
                groups.insert(
                    (key, start),
                    (
                        start + WIDTH_MS,
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
    })
}

/// The value of a series of the process's metrics registry, by name and `app` label.
fn metric(name: &str, app: &str) -> Option<f64> {
    let text = sluice::runtime::metrics::registry().render();
    let label = format!("app=\"{app}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[test]
fn state_four_times_over_the_budget_spills_and_matches_batch_sql() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = rows();
    let expected = batch_sql(&rows, &rt);
    assert_eq!(
        expected.len(),
        2 * KEYS_PER_WINDOW as usize + 2,
        "200,000 keys and a NULL key per window"
    );

    let unlimited = streaming(&rows, "spill-test-unlimited", None, &rt);
    let state = metric("sluice_window_state_peak_bytes", "spill-test-unlimited").expect("state size reported") as usize;
    assert_eq!(
        metric("sluice_spills_total", "spill-test-unlimited"),
        None,
        "no budget, no spill"
    );
    assert_eq!(unlimited, expected);

    let budget = state / 5;
    assert!(state >= 4 * budget, "state {state} bytes, budget {budget} bytes");
    let spilled = streaming(&rows, "spill-test-budget", Some(budget), &rt);
    let spills = metric("sluice_spills_total", "spill-test-budget").unwrap_or(0.0);
    let spilled_bytes = metric("sluice_spilled_bytes_total", "spill-test-budget").unwrap_or(0.0);
    let peak = metric("sluice_window_state_peak_bytes", "spill-test-budget").expect("state size reported") as usize;
    eprintln!(
        "unspilled state {state} bytes = {:.1} x budget {budget}; {spills} spills, {spilled_bytes} bytes spilled; \
         peak in memory with the budget {peak} bytes",
        state as f64 / budget as f64
    );
    assert!(spills >= 1.0 && spilled_bytes > 0.0);
    // The budget held: in memory the state stayed well below the unspilled size (it may
    // pass the budget by one batch's growth before a spill, and a close merges one
    // partition at a time).
    assert!(peak < state / 2, "peak {peak} bytes with a budget of {budget}");
    assert_eq!(spilled.len(), expected.len());
    assert!(spilled == expected, "the spilled run differs from batch SQL");
}

// ---- sliding and stagger windows ----

const RANGE_MS: i64 = 10_000;
const MANY_KEYS: u32 = 20_000;

/// 100,000 rows over 30 s on 20,000 uniformly drawn keys (one in a thousand NULL), one
/// value in twenty NULL; ROWTIME rises 0.3 ms a row, so rows share ROWTIMEs and many are
/// exactly 10 s apart.
fn many_key_rows(seed: u64) -> Vec<super::KeyedRow> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = 100_000i64;
    (0..n)
        .map(|i| {
            let key = (rng.random_range(0..1000) > 0).then(|| format!("k{}", rng.random_range(0..MANY_KEYS)));
            let value = (rng.random_range(0..20) > 0).then(|| rng.random_range(-1000i64..1000));
            (key, value, START + i * 30_000 / n)
        })
        .collect()
}

/// Runs `sql` over keyed rows as application `name` with a memory budget; the batches of
/// stream `OUT`.
fn run_keyed_with_budget(
    sql: &str,
    rows: &[super::KeyedRow],
    name: &str,
    budget: Option<usize>,
    rt: &tokio::runtime::Runtime,
) -> Vec<RecordBatch> {
    let lines: Vec<String> = rows
        .iter()
        .map(|(k, v, t)| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(*t),
                serde_json::json!({ "k": k, "v": v })
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let mut app = super::recorded_app(
        sql,
        &[("K", "VARCHAR(8)", "$.k"), ("V", "BIGINT", "$.v")],
        file.path(),
        &["OUT"],
    );
    app.name = name.into();
    let mut options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    options.memory_budget_bytes = budget;
    let mut out = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    out.streams.remove("OUT").unwrap_or_default()
}

/// Runs `sql` without a budget (app `<name>-unlimited`), measures the state it held, and
/// runs it again (app `<name>-budget`) with a quarter of that: returns both outputs.
/// Asserts that the budget run spilled and kept its state well below the unspilled size.
fn unlimited_then_a_quarter(
    sql: &str,
    rows: &[super::KeyedRow],
    name: &str,
    rt: &tokio::runtime::Runtime,
) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let free = format!("{name}-unlimited");
    let clock = std::time::Instant::now();
    let unlimited = run_keyed_with_budget(sql, rows, &free, None, rt);
    let unlimited_time = clock.elapsed();
    let state = metric("sluice_window_state_peak_bytes", &free).expect("state size reported") as usize;
    assert_eq!(metric("sluice_spills_total", &free), None, "no budget, no spill");

    let budget = state / 4;
    assert!(state >= 4 * budget, "state {state} bytes, budget {budget} bytes");
    let bounded = format!("{name}-budget");
    let clock = std::time::Instant::now();
    let spilled = run_keyed_with_budget(sql, rows, &bounded, Some(budget), rt);
    let budget_time = clock.elapsed();
    let spills = metric("sluice_spills_total", &bounded).unwrap_or(0.0);
    let spilled_bytes = metric("sluice_spilled_bytes_total", &bounded).unwrap_or(0.0);
    let peak = metric("sluice_window_state_peak_bytes", &bounded).expect("state size reported") as usize;
    eprintln!(
        "{name}: unspilled state {state} bytes = {:.1} x budget {budget}; {spills} spills, {spilled_bytes} bytes \
         spilled; peak in memory with the budget {peak} bytes; run time {unlimited_time:.1?} unlimited, \
         {budget_time:.1?} with the budget",
        state as f64 / budget as f64
    );
    assert!(spills >= 1.0 && spilled_bytes > 0.0, "{name} did not spill");
    // State is measured after each batch, before evicting: the budget plus what one batch
    // of 4,096 rows brought in (new rows, partitions or windows read back).
    assert!(peak < state / 2, "peak {peak} bytes with a budget of {budget}");
    (unlimited, spilled)
}

/// A table `t(seq, k, v, t)` of keyed rows (seq = arrival order, t = ROWTIME ms).
fn keyed_table(rows: &[super::KeyedRow], extra: Option<(&str, Vec<i64>)>) -> (Arc<Schema>, RecordBatch) {
    let mut fields = vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
    ];
    let mut columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from((0..rows.len() as i64).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
    ];
    if let Some((name, values)) = extra {
        fields.push(Field::new(name, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from(values)));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    (schema, batch)
}

fn batch_sql_query(
    schema: Arc<Schema>,
    batch: RecordBatch,
    sql: &str,
    rt: &tokio::runtime::Runtime,
) -> Vec<RecordBatch> {
    rt.block_on(async {
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
            .unwrap();
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    })
}

/// SUM, COUNT(*), MIN, MAX over a RANGE window and SUM over a ROWS window, both
/// partitioned by key.
const SLIDING_SQL: &str = r#"
    CREATE OR REPLACE STREAM "OUT" (k VARCHAR(8), v BIGINT, s BIGINT, n BIGINT, mn BIGINT, mx BIGINT, rs BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
      SELECT STREAM k, v, SUM(v) OVER w, COUNT(*) OVER w, MIN(v) OVER w, MAX(v) OVER w, SUM(v) OVER r
      FROM "SOURCE_SQL_STREAM_001" AS s
      WINDOW w AS (PARTITION BY k RANGE INTERVAL '10' SECOND PRECEDING),
             r AS (PARTITION BY k ROWS 3 PRECEDING);"#;

/// One sliding output row: the input row (key, value, ROWTIME), then the RANGE window's
/// SUM, COUNT(*), MIN, MAX and the ROWS window's SUM.
type SlidingRow = (Option<String>, Option<i64>, i64, [Option<i64>; 5]);

fn sliding_rows(batches: &[RecordBatch]) -> Vec<SlidingRow> {
    let mut out = Vec::new();
    for b in batches {
        let k = b.column(0).as_string::<i32>();
        let ints: Vec<&Int64Array> = (1..7).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        let rowtime = b.column(7).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            out.push((
                (!k.is_null(i)).then(|| k.value(i).to_string()),
                opt(ints[0], i),
                rowtime.value(i),
                [1, 2, 3, 4, 5].map(|c| opt(ints[c], i)),
            ));
        }
    }
    out
}

/// The sliding property test's references: RANGE as a self-join over the rows of the
/// partition with r.t − 10 s ≤ x.t ≤ r.t that arrived no later (x.seq ≤ r.seq: peers
/// after a row are not in its window), ROWS as a frame of 3 PRECEDING ordered by arrival.
fn sliding_batch_sql(rows: &[super::KeyedRow], rt: &tokio::runtime::Runtime) -> Vec<SlidingRow> {
    let (schema, batch) = keyed_table(rows, None);
    let sql = format!(
        "WITH rng AS ( \
           SELECT r.seq, sum(x.v) AS s, count(*) AS n, min(x.v) AS mn, max(x.v) AS mx \
           FROM t r JOIN t x ON r.k IS NOT DISTINCT FROM x.k \
           WHERE x.t >= r.t - {RANGE_MS} AND x.t <= r.t AND x.seq <= r.seq \
           GROUP BY r.seq), \
         rws AS ( \
           SELECT seq, sum(v) OVER (PARTITION BY k ORDER BY seq ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS rs \
           FROM t) \
         SELECT rng.seq, s, n, mn, mx, rs FROM rng JOIN rws ON rng.seq = rws.seq ORDER BY rng.seq"
    );
    let mut out = Vec::with_capacity(rows.len());
    for b in batch_sql_query(schema, batch, &sql, rt) {
        let ints: Vec<&Int64Array> = (0..6).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        for i in 0..b.num_rows() {
            let seq = ints[0].value(i) as usize;
            assert_eq!(seq, out.len(), "one reference row per input row, by seq");
            let (k, v, t) = rows[seq].clone();
            out.push((k, v, t, [1, 2, 3, 4, 5].map(|c| opt(ints[c], i))));
        }
    }
    assert_eq!(out.len(), rows.len());
    out
}

#[test]
fn sliding_state_four_times_over_the_budget_spills_and_matches_batch_sql() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = many_key_rows(2025);
    let expected = sliding_batch_sql(&rows, &rt);
    let (unlimited, spilled) = unlimited_then_a_quarter(SLIDING_SQL, &rows, "spill-sliding", &rt);
    let unlimited = sliding_rows(&unlimited);
    assert_eq!(unlimited.len(), expected.len());
    assert!(unlimited == expected, "the unspilled run differs from batch SQL");
    let spilled = sliding_rows(&spilled);
    assert_eq!(spilled.len(), expected.len());
    if let Some(i) = (0..expected.len()).find(|&i| spilled[i] != expected[i]) {
        panic!(
            "row {i} with the budget: streamed {:?}, batch SQL {:?}",
            spilled[i], expected[i]
        );
    }
}

const STAGGER_SQL: &str = r#"
    CREATE OR REPLACE STREAM "OUT" (k VARCHAR(8), n BIGINT, s BIGINT, mn BIGINT, mx BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
      SELECT STREAM k, COUNT(*), SUM(v), MIN(v), MAX(v)
      FROM "SOURCE_SQL_STREAM_001" AS s
      WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '10' SECOND);"#;

/// (key, output ROWTIME) → (count(*), sum, min, max)
type StaggerWindows = BTreeMap<(Option<String>, i64), (i64, Option<i64>, Option<i64>, Option<i64>)>;

/// The streamed windows, checking that each is emitted once and ROWTIME never decreases.
fn stagger_windows(batches: &[RecordBatch]) -> StaggerWindows {
    let mut windows = StaggerWindows::new();
    let mut last = i64::MIN;
    for b in batches {
        let k = b.column(0).as_string::<i32>();
        let ints: Vec<&Int64Array> = (1..5).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        let rowtime = b.column(5).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            let t = rowtime.value(i);
            assert!(t >= last, "output ROWTIME decreases");
            last = t;
            let key = (!k.is_null(i)).then(|| k.value(i).to_string());
            let prev = windows.insert(
                (key, t),
                (ints[0].value(i), opt(ints[1], i), opt(ints[2], i), opt(ints[3], i)),
            );
            assert!(prev.is_none(), "a window was emitted twice");
        }
    }
    windows
}

/// The stagger property test's reference: a sequential oracle gives each row its window's
/// open time (a key's window opens at its first row and holds its rows of the next 10 s),
/// and DataFusion groups by key and open time.
fn stagger_batch_sql(rows: &[super::KeyedRow], rt: &tokio::runtime::Runtime) -> StaggerWindows {
    let mut open: std::collections::HashMap<Option<String>, i64> = std::collections::HashMap::new();
    let opens: Vec<i64> = rows
        .iter()
        .map(|(k, _, t)| {
            let t0 = open.entry(k.clone()).or_insert(*t);
            if *t >= *t0 + RANGE_MS {
                *t0 = *t;
            }
            *t0
        })
        .collect();
    let (schema, batch) = keyed_table(rows, Some(("w", opens)));
    let sql = format!("SELECT k, w + {RANGE_MS}, count(*), sum(v), min(v), max(v) FROM t GROUP BY k, w");
    let mut windows = StaggerWindows::new();
    for b in batch_sql_query(schema, batch, &sql, rt) {
        let k = b.column(0).as_string::<i32>();
        let ints: Vec<&Int64Array> = (1..6).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        for i in 0..b.num_rows() {
            let key = (!k.is_null(i)).then(|| k.value(i).to_string());
            windows.insert(
                (key, ints[0].value(i)),
                (ints[1].value(i), opt(ints[2], i), opt(ints[3], i), opt(ints[4], i)),
            );
        }
    }
    windows
}

#[test]
fn stagger_state_four_times_over_the_budget_spills_and_matches_batch_sql() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = many_key_rows(2026);
    let expected = stagger_batch_sql(&rows, &rt);
    let (unlimited, spilled) = unlimited_then_a_quarter(STAGGER_SQL, &rows, "spill-stagger", &rt);
    let unlimited = stagger_windows(&unlimited);
    assert_eq!(unlimited.len(), expected.len());
    assert!(unlimited == expected, "the unspilled run differs from batch SQL");
    let spilled = stagger_windows(&spilled);
    assert_eq!(spilled.len(), expected.len());
    assert!(spilled == expected, "the spilled run differs from batch SQL");
}
