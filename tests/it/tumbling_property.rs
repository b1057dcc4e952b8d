//! Property: for random input (many keys, NULL keys and values, rows exactly on bucket
//! edges), the streaming result of a tumbling GROUP BY equals DataFusion's batch SQL
//! over the same rows, and each result row's ROWTIME is its bucket's end.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimestampMillisecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;

const WIDTH_MS: i64 = 10_000;
const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC

type Row = super::KeyedRow;
/// (key, bucket start) → (ROWTIME, count(*), count(v), sum, min, max)
type Groups = BTreeMap<(Option<String>, i64), (i64, i64, i64, Option<i64>, Option<i64>, Option<i64>)>;

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    let key = prop_oneof![1 => Just(None), 8 => (0..12u8).prop_map(|k| Some(format!("k{k}")))];
    let value = prop_oneof![1 => Just(None), 6 => (-1000i64..1000).prop_map(Some)];
    // time steps: often 0 (equal ROWTIMEs), sometimes landing exactly on a bucket edge
    let step = prop_oneof![3 => Just(0i64), 5 => 1i64..4_000, 2 => Just(-1)];
    prop::collection::vec((key, value, step), 1..300).prop_map(|v| {
        let mut t = START;
        v.into_iter()
            .map(|(k, val, step)| {
                t = if step < 0 {
                    (t / WIDTH_MS + 1) * WIDTH_MS
                } else {
                    t + step
                };
                (k, val, t)
            })
            .collect()
    })
}

fn streaming(rows: &[Row], rt: &tokio::runtime::Runtime) -> Groups {
    let sql = r#"
        CREATE OR REPLACE STREAM "OUT" (k VARCHAR(8), bucket TIMESTAMP, n BIGINT, nv BIGINT, s BIGINT, mn BIGINT, mx BIGINT);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
          SELECT STREAM k, STEP(s.ROWTIME BY INTERVAL '10' SECOND), COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v)
          FROM "SOURCE_SQL_STREAM_001" AS s
          GROUP BY k, STEP(s.ROWTIME BY INTERVAL '10' SECOND);"#;
    let batches = super::run_keyed(sql, rows, rt);
    let mut groups = Groups::new();
    for b in &batches {
        let k = b.column(0).as_string::<i32>();
        let bucket = b.column(1).as_primitive::<TimestampMillisecondType>();
        let ints: Vec<&Int64Array> = (2..7).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        let rowtime = b.column(7).as_primitive::<TimestampMillisecondType>();
        let opt = |a: &Int64Array, i: usize| if a.is_null(i) { None } else { Some(a.value(i)) };
        for i in 0..b.num_rows() {
            let key = if k.is_null(i) {
                None
            } else {
                Some(k.value(i).to_string())
            };
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

fn batch_sql(rows: &[Row], rt: &tokio::runtime::Runtime) -> Groups {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new(
            "t",
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
            false,
        ),
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
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
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
            let opt = |a: &Int64Array, i: usize| if a.is_null(i) { None } else { Some(a.value(i)) };
            for i in 0..b.num_rows() {
                let key = if k.is_null(i) { None } else { Some(k.value(i).to_string()) };
                let start = ints[0].value(i);
                groups.insert(
                    (key, start),
                    (start + WIDTH_MS, ints[1].value(i), ints[2].value(i), opt(ints[3], i), opt(ints[4], i), opt(ints[5], i)),
                );
            }
        }
        groups
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn tumbling_group_by_equals_batch_sql(rows in rows_strategy()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let streamed = streaming(&rows, &rt);
        let expected = batch_sql(&rows, &rt);
        prop_assert_eq!(streamed, expected);
    }
}
