//! State larger than the memory budget spills to disk and the results do not change: a
//! tumbling GROUP BY over 200,000 keys in two windows, run once without a budget (to
//! measure the unspilled state with DataFusion's accounting) and once with a budget of
//! a fifth of it, must equal DataFusion's batch SQL over the same rows.

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
