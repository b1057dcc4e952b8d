//! Property: for random input (many keys, NULL keys and values, repeated ROWTIMEs, gaps,
//! rows exactly at a window's t0 + 10 s), the streaming result of a stagger window
//! (`WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '10' SECOND)`) equals DataFusion's
//! batch SQL aggregation over the same rows grouped by (key, window open time), each
//! result row's ROWTIME is its window's open time + 10 s, and the output's ROWTIMEs are
//! non-decreasing.
//!
//! Semantics (spec §3.3, A3): a key's window opens at the ROWTIME t0 of its first row,
//! holds that key's rows with ROWTIME in [t0, t0 + 10 s) and emits one row at t0 + 10 s;
//! the key's next row at or after t0 + 10 s opens a new window; the end of the input
//! closes every window. The window assignment is not a GROUP BY expression, so a small
//! sequential oracle assigns each row its window's open time, and DataFusion does the
//! aggregation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimestampMillisecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use sluice::time::format_timestamp;

const RANGE_MS: i64 = 10_000;
const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC

/// (key, value, ROWTIME ms)
type Row = super::KeyedRow;
/// (key, output ROWTIME) → (count(*), sum, min, max)
type Windows = BTreeMap<(Option<String>, i64), (i64, Option<i64>, Option<i64>, Option<i64>)>;

fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
    let key = prop_oneof![1 => Just(None), 8 => (0..8u8).prop_map(|k| Some(format!("k{k}")))];
    let value = prop_oneof![1 => Just(None), 6 => (-1000i64..1000).prop_map(Some)];
    // ROWTIME = START + slot × 2.5 s + jitter. Slots are dense at first (many equal
    // ROWTIMEs) and sparse later (gaps longer than a window); a zero jitter puts rows on
    // the 2.5 s grid, so a row exactly at its key's window close t0 + 10 s is common;
    // ±1 ms lands just before / after it.
    let slot = prop_oneof![3 => 0i64..40, 1 => 40i64..400];
    let jitter = prop_oneof![6 => Just(0i64), 1 => Just(1i64), 1 => Just(-1i64), 2 => 0i64..2_500];
    // Rows are generated with absolute times and stably sorted (equal ROWTIMEs keep their
    // generated order as arrival order), so removing a row while shrinking does not move
    // the others.
    prop::collection::vec((key, value, slot, jitter), 1..300).prop_map(|v| {
        let mut rows: Vec<Row> = v
            .into_iter()
            .map(|(k, val, slot, jitter)| (k, val, START + slot * 2_500 + jitter))
            .collect();
        rows.sort_by_key(|r| r.2);
        rows
    })
}

/// The open time of each row's window (rows are in arrival order, ROWTIME non-decreasing).
fn window_opens(rows: &[Row]) -> Vec<i64> {
    let mut open: HashMap<Option<String>, i64> = HashMap::new();
    rows.iter()
        .map(|(k, _, t)| {
            let t0 = open.entry(k.clone()).or_insert(*t);
            if *t >= *t0 + RANGE_MS {
                *t0 = *t; // the previous window closed before this row: a new one opens
            }
            *t0
        })
        .collect()
}

/// (streamed windows, output ROWTIMEs in emission order)
fn streaming(rows: &[Row], rt: &tokio::runtime::Runtime) -> (Windows, Vec<i64>) {
    let sql = r#"
        CREATE OR REPLACE STREAM "OUT" (k VARCHAR(8), n BIGINT, s BIGINT, mn BIGINT, mx BIGINT);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
          SELECT STREAM k, COUNT(*), SUM(v), MIN(v), MAX(v)
          FROM "SOURCE_SQL_STREAM_001" AS s
          WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '10' SECOND);"#;
    let batches = super::run_keyed(sql, rows, rt);
    let opt = |a: &Int64Array, i: usize| if a.is_null(i) { None } else { Some(a.value(i)) };
    let mut windows = Windows::new();
    let mut rowtimes = Vec::new();
    for b in &batches {
        assert_eq!(b.num_columns(), 6, "5 declared columns and ROWTIME");
        let k = b.column(0).as_string::<i32>();
        let ints: Vec<&Int64Array> = (1..5).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
        let rowtime = b.column(5).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            let key = if k.is_null(i) {
                None
            } else {
                Some(k.value(i).to_string())
            };
            rowtimes.push(rowtime.value(i));
            let prev = windows.insert(
                (key.clone(), rowtime.value(i)),
                (ints[0].value(i), opt(ints[1], i), opt(ints[2], i), opt(ints[3], i)),
            );
            assert!(
                prev.is_none(),
                "window ({key:?}, {}) emitted twice",
                format_timestamp(rowtime.value(i))
            );
        }
    }
    (windows, rowtimes)
}

fn batch_sql(rows: &[Row], rt: &tokio::runtime::Runtime) -> Windows {
    let opens = window_opens(rows);
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("w", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(opens)),
        ],
    )
    .unwrap();
    rt.block_on(async {
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
            .unwrap();
        let df = ctx
            .sql(&format!(
                "SELECT k, w + {RANGE_MS}, count(*), sum(v), min(v), max(v) FROM t GROUP BY k, w"
            ))
            .await
            .unwrap();
        let opt = |a: &Int64Array, i: usize| if a.is_null(i) { None } else { Some(a.value(i)) };
        let mut windows = Windows::new();
        for b in df.collect().await.unwrap() {
            let k = b.column(0).as_string::<i32>();
            let ints: Vec<&Int64Array> = (1..6).map(|i| b.column(i).as_primitive::<Int64Type>()).collect();
            for i in 0..b.num_rows() {
                let key = if k.is_null(i) {
                    None
                } else {
                    Some(k.value(i).to_string())
                };
                windows.insert(
                    (key, ints[0].value(i)),
                    (ints[1].value(i), opt(ints[2], i), opt(ints[3], i), opt(ints[4], i)),
                );
            }
        }
        windows
    })
}

// The automatic shrink limit (4 × cases = 96 runs) cannot even delete the rows of a
// 300-row input one by one; 1024 lets a failure shrink to a handful of rows.
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 1024, ..ProptestConfig::default() })]
    #[test]
    fn stagger_window_equals_batch_sql(rows in rows_strategy()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (streamed, rowtimes) = streaming(&rows, &rt);
        prop_assert!(
            rowtimes.windows(2).all(|w| w[0] <= w[1]),
            "output ROWTIMEs decrease: {:?}",
            rowtimes
        );
        let expected = batch_sql(&rows, &rt);
        prop_assert_eq!(streamed, expected);
    }
}
