//! Throughput of the hot paths on in-memory Arrow input (events per second = elements
//! per second in criterion's report):
//! - `filter_projection`: a WHERE with LIKE and a comparison, arithmetic in the select
//!   list, and the pump's INSERT casts;
//! - `tumbling_1000_keys`: GROUP BY key + STEP(ROWTIME BY 1 SECOND) with COUNT, SUM,
//!   AVG, MIN, MAX over 1,000 keys, windows closing as time advances;
//! - `json_decode`: ride-event JSON records → an Arrow batch through an input schema;
//! - `kinesis_read_path`: a GetRecords response (SDK records) → an Arrow batch: the
//!   envelope, the KPL check and JSON decoding.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{
    ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use sluice::app::{AppSpec, InputSpec, RecordColumn, RecordFormat, RecordSchema, SourceSpec};
use sluice::connectors::RawRecord;
use sluice::connectors::formats::RecordDecoder;
use sluice::operators::pipeline::Pipeline;
use sluice::types::{ColumnDef, SqlType, stream_schema};

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
fn input_batches() -> Vec<RecordBatch> {
    let defs: Vec<ColumnDef> = schema().column_defs();
    let schema = stream_schema(&defs, true);
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
                Arc::new(TimestampMillisecondArray::from(t.clone())),
                Arc::new(TimestampMillisecondArray::from(t)),
            ];
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

criterion_group!(benches, filter_projection, tumbling, json_decode, kinesis_read_path);
criterion_main!(benches);
