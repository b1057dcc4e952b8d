//! Throughput of the hot paths on in-memory Arrow input (events per second = elements
//! per second in criterion's report):
//! - `filter_projection`: a WHERE with LIKE and a comparison, arithmetic in the select
//!   list, and the pump's INSERT casts;
//! - `tumbling_1000_keys`: GROUP BY key + STEP(ROWTIME BY 1 SECOND) with COUNT, SUM,
//!   AVG, MIN, MAX over 1,000 keys, windows closing as time advances;
//! - `json_decode`: ride-event JSON records → an Arrow batch through an input schema;
//! - `kinesis_read_path`: a GetRecords response (SDK records) → an Arrow batch: the
//!   envelope, the KPL check and JSON decoding;
//! - `recovery_1m_keys`: restart to first new output with a million keys in a tumbling
//!   window's state (RocksDB read, restore, the window closing);
//! - `checkpoint_snapshot_100k_keys`: one snapshot + RocksDB commit of 100,000 keys;
//! - `sliding_window/{1s,1min,1h}`: SUM, COUNT, AVG, MIN, MAX OVER a sliding window of
//!   each size over the same input.
//!
//! The state benchmarks use fewer keys in criterion's test mode (`cargo test`);
//! `SLUICE_BENCH_KEYS` sets the number.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{
    ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use sluice::app::{AppSpec, InputSpec, RecordColumn, RecordFormat, RecordSchema, SourceSpec};
use sluice::connectors::RawRecord;
use sluice::connectors::formats::RecordDecoder;
use sluice::operators::pipeline::Pipeline;
use sluice::types::{ColumnDef, SqlType, input_stream_columns, stream_schema};

const ROWS: usize = 8192;
const BATCHES: usize = 16;

fn columns() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("TICKER", "VARCHAR(8)", "$.ticker"),
        ("PRICE", "REAL", "$.price"),
        ("VOLUME", "INTEGER", "$.volume"),
    ]
}

fn schema() -> RecordSchema {
    RecordSchema {
        columns: columns()
            .into_iter()
            .map(|(n, t, m)| RecordColumn {
                column: ColumnDef::new(n, SqlType::parse(t).unwrap()),
                mapping: Some(m.into()),
            })
            .collect(),
        format: RecordFormat::Json { row_path: "$".into() },
    }
}

fn pipeline(sql: &str) -> Pipeline {
    let app = AppSpec {
        name: "bench".into(),
        sql: sql.into(),
        inputs: vec![InputSpec {
            name_prefix: "SOURCE_SQL_STREAM".into(),
            stream_name: None,
            parallelism: 1,
            event_time: None,
            preprocessor: None,
            schema: schema(),
            source: SourceSpec::Stdin,
        }],
        references: vec![],
        outputs: vec![],
    };
    let mut plan = sluice::planner::plan_application(&app).expect("plan");
    plan.pumps.remove(0).pipeline
}

/// Batches of the input stream: 1,000 tickers, 10 rows per millisecond.
/// The input stream's schema as the planner declares it: the declared columns, the
/// implicit Kinesis envelope columns, APPROXIMATE_ARRIVAL_TIME and ROWTIME.
fn input_stream_schema() -> datafusion::arrow::datatypes::SchemaRef {
    let defs: Vec<ColumnDef> = schema().column_defs();
    stream_schema(&input_stream_columns(&defs), true)
}

/// The envelope columns of `rows` records that did not come from Kinesis: NULL.
fn envelope(rows: usize) -> Vec<ArrayRef> {
    (0..3)
        .map(|_| Arc::new(StringArray::from(vec![None::<&str>; rows])) as ArrayRef)
        .collect()
}

fn input_batches() -> Vec<RecordBatch> {
    let schema = input_stream_schema();
    (0..BATCHES)
        .map(|b| {
            let base = b * ROWS;
            let t: Vec<i64> = (0..ROWS)
                .map(|i| 1_700_000_000_000 + ((base + i) / 10) as i64)
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(
                    (0..ROWS)
                        .map(|i| format!("T{:03}", (base + i) * 7919 % 1000))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(Float32Array::from(
                    (0..ROWS).map(|i| ((base + i) % 100) as f32 + 0.25).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    (0..ROWS).map(|i| ((base + i) % 5000) as i32).collect::<Vec<_>>(),
                )),
            ];
            let columns: Vec<ArrayRef> = columns
                .into_iter()
                .chain(envelope(ROWS))
                .chain([
                    Arc::new(TimestampMillisecondArray::from(t.clone())) as ArrayRef,
                    Arc::new(TimestampMillisecondArray::from(t)),
                ])
                .collect();
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        })
        .collect()
}

fn run(p: &mut Pipeline, batches: &[RecordBatch]) -> usize {
    let mut errors = Vec::new();
    let mut rows = 0;
    for b in batches {
        rows += p
            .on_batch(b.clone(), &mut errors)
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    rows += p
        .on_bound(i64::MAX, &mut errors)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum::<usize>();
    rows
}

fn filter_projection(c: &mut Criterion) {
    let sql = r#"CREATE OR REPLACE STREAM "OUT" (ticker VARCHAR(8), price_eur DOUBLE, lots INTEGER);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
        SELECT STREAM ticker, price * 0.92, volume / 100 FROM "SOURCE_SQL_STREAM_001"
        WHERE price > 20 AND ticker LIKE 'T1%'"#;
    let batches = input_batches();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements((ROWS * BATCHES) as u64));
    g.bench_function("filter_projection", |b| {
        b.iter_batched(|| pipeline(sql), |mut p| run(&mut p, &batches), BatchSize::LargeInput)
    });
    g.finish();
}

fn tumbling(c: &mut Criterion) {
    let sql = r#"CREATE OR REPLACE STREAM "OUT" (ticker VARCHAR(8), n BIGINT, s BIGINT, a DOUBLE, lo REAL, hi REAL);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
        SELECT STREAM ticker, COUNT(*), SUM(volume), AVG(volume), MIN(price), MAX(price)
        FROM "SOURCE_SQL_STREAM_001"
        GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' SECOND)"#;
    let batches = input_batches();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements((ROWS * BATCHES) as u64));
    g.bench_function("tumbling_1000_keys", |b| {
        b.iter_batched(|| pipeline(sql), |mut p| run(&mut p, &batches), BatchSize::LargeInput)
    });
    g.finish();
}

fn json_decode(c: &mut Criterion) {
    let decoder = RecordDecoder::new(&schema(), "SOURCE_SQL_STREAM_001").unwrap();
    let records: Vec<RawRecord> = (0..ROWS)
        .map(|i| RawRecord {
            data: format!(
                r#"{{"ticker":"T{:03}","price":{}.5,"volume":{},"sector":"TECH"}}"#,
                i % 1000,
                i % 100,
                i
            )
            .into_bytes(),
            ..Default::default()
        })
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("json_decode", |b| {
        b.iter(|| decoder.decode(&records, 1_700_000_000_000).batch.num_rows())
    });
    g.finish();
}

/// The Kinesis read path: one GetRecords response (SDK records, as the client returns
/// them) to an Arrow batch: envelope fields, KPL check, JSON decoding.
fn kinesis_read_path(c: &mut Criterion) {
    use aws_sdk_kinesis::primitives::{Blob, DateTime};
    use aws_sdk_kinesis::types::Record;
    let decoder = RecordDecoder::new(&schema(), "SOURCE_SQL_STREAM_001").unwrap();
    let response: Vec<Record> = (0..ROWS)
        .map(|i| {
            Record::builder()
                .sequence_number(format!("4959{:052}", i))
                .approximate_arrival_timestamp(DateTime::from_millis(1_700_000_000_000 + i as i64))
                .partition_key(format!("T{:03}", i % 1000))
                .data(Blob::new(format!(
                    r#"{{"ticker":"T{:03}","price":{}.5,"volume":{},"sector":"TECH"}}"#,
                    i % 1000,
                    i % 100,
                    i
                )))
                .build()
                .unwrap()
        })
        .collect();
    let shard: Arc<str> = Arc::from("shardId-000000000000");
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("kinesis_read_path", |b| {
        b.iter(|| {
            let (records, _, _) = sluice::connectors::kinesis::shard::convert_records(&response, &shard, true);
            decoder.decode(&records, 1_700_000_000_000).batch.num_rows()
        })
    });
    g.finish();
}

/// Whether criterion runs for real (`cargo bench` passes `--bench`); without it,
/// `cargo test --all-targets` runs every function once and only checks that it works.
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// How many keys the state benchmarks hold: `default` under `cargo bench`, fewer in test
/// mode so that `cargo test --all-targets` stays quick; `SLUICE_BENCH_KEYS` overrides.
fn state_keys(default: usize) -> usize {
    std::env::var("SLUICE_BENCH_KEYS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(if bench_mode() { default } else { 20_000 })
}

/// A batch of the input stream: ticker, price (volume + 0.25), volume, arrival, ROWTIME.
fn input_batch(tickers: Vec<String>, volumes: Vec<i32>, times: Vec<i64>) -> RecordBatch {
    let schema = input_stream_schema();
    let prices: Vec<f32> = volumes.iter().map(|v| *v as f32 + 0.25).collect();
    let rows = times.len();
    let columns: Vec<ArrayRef> = [
        Arc::new(StringArray::from(tickers)) as ArrayRef,
        Arc::new(Float32Array::from(prices)),
        Arc::new(Int32Array::from(volumes)),
    ]
    .into_iter()
    .chain(envelope(rows))
    .chain([
        Arc::new(TimestampMillisecondArray::from(times.clone())) as ArrayRef,
        Arc::new(TimestampMillisecondArray::from(times)),
    ])
    .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

/// The start of a one-minute bucket (a multiple of 60,000 ms).
const MINUTE_START: i64 = 1_700_000_040_000;

const TUMBLING_1MIN: &str = r#"CREATE OR REPLACE STREAM "OUT" (ticker VARCHAR(8), n BIGINT, s BIGINT);
    CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
    SELECT STREAM ticker, COUNT(*), SUM(volume) FROM "SOURCE_SQL_STREAM_001"
    GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE)"#;

/// A one-minute tumbling pipeline whose open window holds `keys` distinct keys (one row
/// each, all within the first ten seconds of the minute).
fn tumbling_with_keys(keys: usize) -> Pipeline {
    let mut p = pipeline(TUMBLING_1MIN);
    let mut errors = Vec::new();
    for start in (0..keys).step_by(ROWS) {
        let n = ROWS.min(keys - start);
        let batch = input_batch(
            (start..start + n).map(|i| format!("{i:08}")).collect(),
            (start..start + n).map(|i| (i % 5000) as i32).collect(),
            (start..start + n)
                .map(|i| MINUTE_START + (i * 10_000 / keys.max(1)) as i64)
                .collect(),
        );
        let out = p.on_batch(batch, &mut errors).unwrap();
        assert!(out.is_empty(), "the window is still open");
    }
    p
}

/// What one restart took, phase by phase.
struct Recovery {
    /// Opening RocksDB and reading the latest checkpoint.
    read: std::time::Duration,
    /// Planning the application and restoring the pump from its part.
    restore: std::time::Duration,
    /// One row of the next minute in, the closed window out.
    first_output: std::time::Duration,
}

impl Recovery {
    fn total(&self) -> std::time::Duration {
        self.read + self.restore + self.first_output
    }
}

/// A restart: open the store, read the latest checkpoint, plan and restore the pump, then
/// deliver one row of the next window and the bound after it until the first output
/// batch (the whole restored window) comes out.
fn recover_once(dir: &std::path::Path, keys: usize) -> Recovery {
    use std::time::Instant;
    let started = Instant::now();
    let store = sluice::state::CheckpointStore::open(dir).unwrap();
    let checkpoint = store.latest().unwrap().expect("a committed checkpoint");
    let read = started.elapsed();

    let started = Instant::now();
    let mut p = pipeline(TUMBLING_1MIN);
    p.restore(&checkpoint.parts["pump/P"]).unwrap();
    let restore = started.elapsed();

    let started = Instant::now();
    let next = MINUTE_START + 60_000;
    let mut errors = Vec::new();
    let mut out = p
        .on_batch(input_batch(vec!["00000000".into()], vec![1], vec![next]), &mut errors)
        .unwrap();
    if out.is_empty() {
        out = p.on_bound(next, &mut errors).unwrap();
    }
    let first_output = started.elapsed();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), keys);
    drop(checkpoint);
    drop(store);
    Recovery {
        read,
        restore,
        first_output,
    }
}

/// Restart to first new output with a million keys in state (the durable-state issue
/// asks for under 2 s). Setup, not timed: a one-minute tumbling window holding the keys,
/// snapshotted and committed through the RocksDB `CheckpointStore`. Timed: `recover_once`.
/// One breakdown is printed before criterion's figures.
fn recovery_1m_keys(c: &mut Criterion) {
    let keys = state_keys(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let bytes = {
        let mut p = tumbling_with_keys(keys);
        let store = sluice::state::CheckpointStore::open(dir.path()).unwrap();
        let bytes = p.snapshot().unwrap();
        let mut parts = std::collections::BTreeMap::new();
        parts.insert("pump/P".to_string(), bytes.clone());
        store.commit(1, &parts).unwrap();
        bytes.len()
    };
    let r = recover_once(dir.path(), keys);
    eprintln!(
        "recovery_1m_keys: {keys} keys, {:.1} MB of state: restart to first output {:.3} s \
         (open + read {:.3} s, plan + restore {:.3} s, first output {:.3} s)",
        bytes as f64 / 1e6,
        r.total().as_secs_f64(),
        r.read.as_secs_f64(),
        r.restore.as_secs_f64(),
        r.first_output.as_secs_f64()
    );
    let mut g = c.benchmark_group("engine");
    // One iteration takes seconds: ten samples of one iteration each.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("recovery_1m_keys", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| recover_once(dir.path(), keys).total()).sum())
    });
    g.finish();
}

/// One checkpoint of a one-minute tumbling window holding 100,000 keys: the pump's
/// snapshot (drain DataFusion's accumulators, encode as Arrow IPC, merge back) and the
/// RocksDB commit.
fn checkpoint_snapshot_100k_keys(c: &mut Criterion) {
    let keys = state_keys(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut p = tumbling_with_keys(keys);
    let store = sluice::state::CheckpointStore::open(dir.path()).unwrap();
    let mut id = 0u64;
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.bench_function("checkpoint_snapshot_100k_keys", |b| {
        b.iter(|| {
            id += 1;
            let mut parts = std::collections::BTreeMap::new();
            parts.insert("pump/P".to_string(), p.snapshot().unwrap());
            store.commit(id, &parts).unwrap()
        })
    });
    g.finish();
}

const SLIDING_ROWS: usize = 100_000;

/// 100,000 rows of 100 keys, 10 ms apart (each key every second): the input spans
/// 1,000 s, so a one-hour window holds every row of its key, a one-minute window 60, a
/// one-second window 2.
fn sliding_input() -> Vec<RecordBatch> {
    (0..SLIDING_ROWS)
        .step_by(ROWS)
        .map(|start| {
            let rows = start..(start + ROWS).min(SLIDING_ROWS);
            input_batch(
                rows.clone().map(|i| format!("T{:03}", i % 100)).collect(),
                rows.clone().map(|i| (i * 7919 % 1000) as i32).collect(),
                rows.map(|i| MINUTE_START + i as i64 * 10).collect(),
            )
        })
        .collect()
}

/// Sliding windows of 1 second, 1 minute and 1 hour over the same input: SUM, COUNT and
/// AVG add and retract; MIN and MAX keep a moving structure, so the cost per row should
/// not grow with the window.
fn sliding_window(c: &mut Criterion) {
    let batches = sliding_input();
    let windows = [("1s", "'1' SECOND"), ("1min", "'1' MINUTE"), ("1h", "'1' HOUR")];
    let sql = |interval: &str| {
        format!(
            r#"CREATE OR REPLACE STREAM "OUT" (ticker VARCHAR(8), s BIGINT, n BIGINT, a DOUBLE, lo INTEGER, hi INTEGER);
            CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
            SELECT STREAM ticker, SUM(volume) OVER w, COUNT(*) OVER w, AVG(volume) OVER w,
                MIN(volume) OVER w, MAX(volume) OVER w
            FROM "SOURCE_SQL_STREAM_001"
            WINDOW w AS (PARTITION BY ticker RANGE INTERVAL {interval} PRECEDING)"#
        )
    };
    if bench_mode() {
        // On a shared machine criterion's figures for the three sizes drift with the
        // load; the best of five rounds, the sizes interleaved, compares them fairly.
        // Dropping the pipeline (freeing the rows its windows hold) is timed apart.
        let mut best = [(f64::INFINITY, f64::INFINITY); 3];
        for _ in 0..5 {
            for (i, (_, interval)) in windows.iter().enumerate() {
                let mut p = pipeline(&sql(interval));
                let started = std::time::Instant::now();
                run(&mut p, &batches);
                let ran = started.elapsed().as_secs_f64();
                drop(p);
                let dropped = started.elapsed().as_secs_f64() - ran;
                best[i] = (best[i].0.min(ran), best[i].1.min(dropped));
            }
        }
        let figures: Vec<String> = windows
            .iter()
            .zip(best)
            .map(|((name, _), (ran, dropped))| {
                format!(
                    "{name} {:.0} K rows/s (+ {:.0} ms to drop the state)",
                    SLIDING_ROWS as f64 / ran / 1e3,
                    dropped * 1e3
                )
            })
            .collect();
        eprintln!("sliding_window, best of 5 interleaved rounds: {}", figures.join(", "));
    }
    let mut g = c.benchmark_group("sliding_window");
    g.throughput(Throughput::Elements(SLIDING_ROWS as u64));
    g.sample_size(10);
    for (name, interval) in windows {
        let sql = sql(interval);
        g.bench_function(name, |b| {
            b.iter_batched(
                || pipeline(&sql),
                |mut p| {
                    let rows = run(&mut p, &batches);
                    assert_eq!(rows, SLIDING_ROWS);
                    rows
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    filter_projection,
    tumbling,
    json_decode,
    kinesis_read_path,
    recovery_1m_keys,
    checkpoint_snapshot_100k_keys,
    sliding_window
);
criterion_main!(benches);
