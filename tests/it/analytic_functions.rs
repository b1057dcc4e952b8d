//! KDA's analytic functions end to end (spec §3.4, §4.1; A2, A4, A10): `LAG`,
//! `FIRST_VALUE`, `LAST_VALUE`, `NTH_VALUE` and `EXP_AVG` over sliding windows (ROWS,
//! RANGE, unbounded; partitioned or not), and `FIRST_VALUE` / `LAST_VALUE` as streaming
//! GROUP BY and stagger aggregates. The expected values are worked out by hand in the
//! comments from the input rows listed with each test.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};

use super::KeyedRow;

const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC, a multiple of 10 s

fn row(second: i64, k: &str, v: Option<i64>) -> KeyedRow {
    (Some(k.to_string()), v, START + second * 1000)
}

/// Rows r0..r8 (second, key, value), in arrival order:
/// r0 (0, a, 1), r1 (1, b, 10), r2 (2, a, NULL), r3 (3, a, 3), r4 (3, a, 4) — a peer of
/// r3 —, r5 (5, b, 20), r6 (9, a, 6), r7 (14, a, 7), r8 (15, b, NULL).
fn sliding_rows() -> Vec<KeyedRow> {
    vec![
        row(0, "a", Some(1)),
        row(1, "b", Some(10)),
        row(2, "a", None),
        row(3, "a", Some(3)),
        row(3, "a", Some(4)),
        row(5, "b", Some(20)),
        row(9, "a", Some(6)),
        row(14, "a", Some(7)),
        row(15, "b", None),
    ]
}

fn run(select: &str, columns: &str, window: &str, rows: &[KeyedRow]) -> Vec<RecordBatch> {
    let sql = format!(
        r#"CREATE OR REPLACE STREAM "OUT" ({columns});
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
          SELECT STREAM {select} FROM "SOURCE_SQL_STREAM_001" AS s {window};"#
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    super::run_keyed(&sql, rows, &rt)
}

/// Column `c` of every output row, as integers.
fn ints(batches: &[RecordBatch], c: usize) -> Vec<Option<i64>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(c).as_primitive::<Int64Type>();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect()
}

fn floats(batches: &[RecordBatch], c: usize) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(c).as_primitive::<Float64Type>();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect()
}

fn strings(batches: &[RecordBatch], c: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(c).as_string::<i32>();
            (0..a.len()).map(move |i| a.value(i).to_string())
        })
        .collect()
}

fn rowtimes(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(b.num_columns() - 1).as_primitive::<TimestampMillisecondType>();
            a.values().to_vec()
        })
        .collect()
}

const N: Option<i64> = None;

fn s(values: &[i64]) -> Vec<Option<i64>> {
    values.iter().map(|v| Some(*v)).collect()
}

#[test]
fn lag_first_last_nth_value_over_a_partitioned_rows_window() {
    // ROWS 2 PRECEDING: the row and 2 before it (A4). Windows (values, oldest first):
    // a: r0 [1], r2 [1,N], r3 [1,N,3], r4 [N,3,4], r6 [3,4,6], r7 [4,6,7]
    // b: r1 [10], r5 [10,20], r8 [10,20,N]
    let out = run(
        "k, v, LAG(v) OVER w, LAG(v, 2, -1) OVER w, LAG(v, 1, -1) IGNORE NULLS OVER w, FIRST_VALUE(v) OVER w, \
         FIRST_VALUE(v) IGNORE NULLS OVER w, LAST_VALUE(v) IGNORE NULLS OVER w, NTH_VALUE(v, 2) OVER w, \
         NTH_VALUE(v, 2) FROM LAST OVER w, NTH_VALUE(v, 2) FROM FIRST IGNORE NULLS OVER w",
        "k VARCHAR(8), v BIGINT, lag1 BIGINT, lag2 BIGINT, lag_ign BIGINT, fv BIGINT, fv_ign BIGINT, lv_ign BIGINT, \
         nth BIGINT, nth_last BIGINT, nth_ign BIGINT",
        "WINDOW w AS (PARTITION BY k ROWS 2 PRECEDING)",
        &sliding_rows(),
    );
    assert_eq!(strings(&out, 0), ["a", "b", "a", "a", "a", "b", "a", "a", "b"]);
    let rows = sliding_rows();
    assert_eq!(rowtimes(&out), rows.iter().map(|r| r.2).collect::<Vec<_>>());
    // in arrival order r0..r8
    assert_eq!(ints(&out, 1), rows.iter().map(|r| r.1).collect::<Vec<_>>());
    // LAG(v): the row before, NULL without one; r3's predecessor r2 is a genuine NULL
    assert_eq!(
        ints(&out, 2),
        [N, N, Some(1), N, Some(3), Some(10), Some(4), Some(6), Some(20)]
    );
    // LAG(v, 2, -1): the default only when the window holds no row 2 back; r4's row 2
    // back (r2) is NULL and stays NULL
    assert_eq!(
        ints(&out, 3),
        [
            Some(-1),
            Some(-1),
            Some(-1),
            Some(1),
            N,
            Some(-1),
            Some(3),
            Some(4),
            Some(10)
        ]
    );
    // IGNORE NULLS: the nearest earlier non-NULL value in the window
    assert_eq!(ints(&out, 4), s(&[-1, -1, 1, 1, 3, 10, 4, 6, 20]));
    assert_eq!(
        ints(&out, 5),
        [
            Some(1),
            Some(10),
            Some(1),
            Some(1),
            N,
            Some(10),
            Some(3),
            Some(4),
            Some(10)
        ]
    );
    assert_eq!(ints(&out, 6), s(&[1, 10, 1, 1, 3, 10, 3, 4, 10]));
    assert_eq!(ints(&out, 7), s(&[1, 10, 1, 3, 4, 20, 6, 7, 20]));
    // NTH_VALUE(v, 2): second oldest; r2's and r3's second row is r2 (NULL)
    assert_eq!(
        ints(&out, 8),
        [N, N, N, N, Some(3), Some(20), Some(4), Some(6), Some(20)]
    );
    // FROM LAST: second newest
    assert_eq!(
        ints(&out, 9),
        [N, N, Some(1), N, Some(3), Some(10), Some(4), Some(6), Some(20)]
    );
    // second non-NULL value from the oldest
    assert_eq!(
        ints(&out, 10),
        [N, N, N, Some(3), Some(4), Some(20), Some(4), Some(6), Some(20)]
    );
}

#[test]
fn analytic_functions_over_a_range_window_see_earlier_peers_only() {
    // RANGE INTERVAL '5' SECOND PRECEDING: rows of the partition at [t − 5 s, t] (A2,
    // inclusive), a peer seeing only the peers that arrived before it.
    // a: r0 [1@0], r2 [1@0,N@2], r3 [1@0,N@2,3@3], r4 [1@0,N@2,3@3,4@3], r6 [6@9]
    //    (r3, r4 at 3 < 9 − 5), r7 [6@9,7@14] (9 = 14 − 5 is inside)
    // b: r1 [10@1], r5 [10@1,20@5], r8 [N@15]
    let out = run(
        "k, LAG(v, 1, -1) OVER w, FIRST_VALUE(v) OVER w, LAST_VALUE(v) OVER w, NTH_VALUE(v, 3) OVER w, \
         NTH_VALUE(v, 1) FROM LAST IGNORE NULLS OVER w, COUNT(*) OVER w, EXP_AVG(v, INTERVAL '2' SECOND) OVER w",
        "k VARCHAR(8), lag1 BIGINT, fv BIGINT, lv BIGINT, nth3 BIGINT, last_nn BIGINT, n BIGINT, ea DOUBLE",
        "WINDOW w AS (PARTITION BY k RANGE INTERVAL '5' SECOND PRECEDING)",
        &sliding_rows(),
    );
    // order of output: r0 r1 r2 r3 r4 r5 r6 r7 r8
    assert_eq!(
        ints(&out, 1),
        [
            Some(-1),
            Some(-1),
            Some(1),
            N,
            Some(3),
            Some(10),
            Some(-1),
            Some(6),
            Some(-1)
        ]
    );
    assert_eq!(
        ints(&out, 2),
        [
            Some(1),
            Some(10),
            Some(1),
            Some(1),
            Some(1),
            Some(10),
            Some(6),
            Some(6),
            N
        ]
    );
    assert_eq!(
        ints(&out, 3),
        [Some(1), Some(10), N, Some(3), Some(4), Some(20), Some(6), Some(7), N]
    );
    assert_eq!(ints(&out, 4), [N, N, N, Some(3), Some(3), N, N, N, N]);
    assert_eq!(
        ints(&out, 5),
        [
            Some(1),
            Some(10),
            Some(1),
            Some(3),
            Some(4),
            Some(20),
            Some(6),
            Some(7),
            N
        ]
    );
    assert_eq!(ints(&out, 6), s(&[1, 1, 2, 3, 4, 2, 1, 2, 1]));
    // EXP_AVG with half-life 2 s: weight 2^(−age/2) per row with a value
    let w = |age: f64| 2f64.powf(-age / 2.0);
    let expected = [
        Some(1.0),
        Some(10.0),
        Some(1.0),                                     // [1@0, N@2]
        Some((3.0 + w(3.0)) / (1.0 + w(3.0))),         // [1@0, 3@3]
        Some((4.0 + 3.0 + w(3.0)) / (2.0 + w(3.0))),   // [1@0, 3@3, 4@3]
        Some((20.0 + 10.0 * w(4.0)) / (1.0 + w(4.0))), // 18
        Some(6.0),                                     // [6@9]
        Some((7.0 + 6.0 * w(5.0)) / (1.0 + w(5.0))),   // [6@9, 7@14]
        None,                                          // [N@15]
    ];
    let got = floats(&out, 7);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        match (g, e) {
            (Some(g), Some(e)) => assert!((g - e).abs() < 1e-12 * e.abs(), "row {i}: {g} vs {e}"),
            _ => assert_eq!(g, e, "row {i}"),
        }
    }
    assert_eq!(got[5], Some(18.0), "(20 + 10/4) / (1 + 1/4)");
}

#[test]
fn analytic_functions_over_unbounded_and_whole_stream_windows() {
    // PARTITION BY k ROWS UNBOUNDED PRECEDING: every earlier row of the partition.
    // a values in order: 1, N, 3, 4, 6, 7; b: 10, 20, N.
    // ROWS 1 PRECEDING without PARTITION BY: the stream's previous row.
    let out = run(
        "LAG(v, 2) IGNORE NULLS OVER u, FIRST_VALUE(v) IGNORE NULLS OVER u, NTH_VALUE(v, 2) FROM LAST OVER u, \
         EXP_AVG(v, INTERVAL '1' SECOND) OVER u, LAG(v) OVER (ROWS 1 PRECEDING)",
        "lag2 BIGINT, fv BIGINT, nth_last BIGINT, ea DOUBLE, prev BIGINT",
        "WINDOW u AS (PARTITION BY k ROWS UNBOUNDED PRECEDING)",
        &sliding_rows(),
    );
    // LAG(v, 2) IGNORE NULLS: the second non-NULL value before the row
    assert_eq!(ints(&out, 0), [N, N, N, N, Some(1), N, Some(3), Some(4), Some(10)]);
    assert_eq!(ints(&out, 1), s(&[1, 10, 1, 1, 1, 10, 1, 1, 10]));
    assert_eq!(
        ints(&out, 2),
        [N, N, Some(1), N, Some(3), Some(10), Some(4), Some(6), Some(20)]
    );
    assert_eq!(
        ints(&out, 4),
        [N, Some(1), Some(10), N, Some(3), Some(4), Some(20), Some(6), Some(7)]
    );
    // EXP_AVG over the whole partition, half-life 1 s: at r7 (14 s) the a rows weigh
    // 2^-14, 2^-11, 2^-11, 2^-5, 1; at r8 (b, NULL) the average of r5 stands
    let w = |age: f64| 2f64.powf(-age);
    let r7 =
        (1.0 * w(14.0) + 3.0 * w(11.0) + 4.0 * w(11.0) + 6.0 * w(5.0) + 7.0) / (w(14.0) + 2.0 * w(11.0) + w(5.0) + 1.0);
    let r5 = (20.0 + 10.0 * w(4.0)) / (1.0 + w(4.0));
    let got = floats(&out, 3);
    assert!((got[7].unwrap() - r7).abs() < 1e-12 * r7, "{got:?}");
    assert!((got[5].unwrap() - r5).abs() < 1e-12 * r5, "{got:?}");
    assert_eq!(got[8], got[5]);
    assert_eq!(got[2], Some(1.0), "a NULL row keeps the average");
}

/// Rows for the group tests (second, key, value), in arrival order: (0,a,5) (0,a,1)
/// (3,b,N) (4,a,N) (5,b,2) (9,a,6) (9,a,N) (12,a,8) (12,a,9) (15,b,N). Peers at 0, 9
/// and 12 s decide first and last by arrival.
fn group_rows() -> Vec<KeyedRow> {
    vec![
        row(0, "a", Some(5)),
        row(0, "a", Some(1)),
        row(3, "b", None),
        row(4, "a", None),
        row(5, "b", Some(2)),
        row(9, "a", Some(6)),
        row(9, "a", None),
        row(12, "a", Some(8)),
        row(12, "a", Some(9)),
        row(15, "b", None),
    ]
}

/// (ROWTIME second, key, first, last, first non-NULL, last non-NULL, count), sorted.
type Group = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn groups(out: &[RecordBatch]) -> Vec<Group> {
    let keys = strings(out, 0);
    let times = rowtimes(out);
    let columns: Vec<Vec<Option<i64>>> = (1..6).map(|c| ints(out, c)).collect();
    let mut groups: Vec<Group> = (0..keys.len())
        .map(|i| {
            (
                (times[i] - START) / 1000,
                keys[i].clone(),
                columns[0][i],
                columns[1][i],
                columns[2][i],
                columns[3][i],
                columns[4][i],
            )
        })
        .collect();
    groups.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    groups
}

const GROUP_SELECT: &str = "k, FIRST_VALUE(v), LAST_VALUE(v), FIRST_VALUE(v) IGNORE NULLS, \
                            LAST_VALUE(v) IGNORE NULLS, COUNT(*)";
const GROUP_COLUMNS: &str = "k VARCHAR(8), fv BIGINT, lv BIGINT, fv_nn BIGINT, lv_nn BIGINT, n BIGINT";

#[test]
fn first_and_last_value_in_a_streaming_group_by_follow_arrival_order() {
    let out = run(
        GROUP_SELECT,
        GROUP_COLUMNS,
        "GROUP BY k, STEP(s.ROWTIME BY INTERVAL '10' SECOND)",
        &group_rows(),
    );
    // [0, 10 s) closes at 10 s (A1): a: 5, 1, N, 6, N; b: N, 2. [10, 20 s): a: 8, 9; b: N.
    let a = |x: i64| Some(x);
    assert_eq!(
        groups(&out),
        vec![
            (10, "a".into(), a(5), N, a(5), a(6), a(5)),
            (10, "b".into(), N, a(2), a(2), a(2), a(2)),
            (20, "a".into(), a(8), a(9), a(8), a(9), a(2)),
            (20, "b".into(), N, N, N, N, a(1)),
        ]
    );
}

#[test]
fn first_and_last_value_in_a_stagger_window_follow_arrival_order() {
    let out = run(
        GROUP_SELECT,
        GROUP_COLUMNS,
        "WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '10' SECOND)",
        &group_rows(),
    );
    // a opens at 0 s: [0, 10 s) holds 5, 1, N, 6, N, emitted at 10 s; a reopens at 12 s:
    // 8, 9 at 22 s. b opens at 3 s: N, 2 at 13 s; reopens at 15 s: N at 25 s.
    let a = |x: i64| Some(x);
    assert_eq!(
        groups(&out),
        vec![
            (10, "a".into(), a(5), N, a(5), a(6), a(5)),
            (13, "b".into(), N, a(2), a(2), a(2), a(2)),
            (22, "a".into(), a(8), a(9), a(8), a(9), a(2)),
            (25, "b".into(), N, N, N, N, a(1)),
        ]
    );
}

fn plan_error(select: &str) -> String {
    let file = super::write_recording(&[]);
    let sql = format!(
        "CREATE OR REPLACE STREAM \"OUT\" (x BIGINT);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  \
         SELECT STREAM {select} FROM \"SOURCE_SQL_STREAM_001\" AS s WINDOW w AS (PARTITION BY k ROWS 3 PRECEDING);"
    );
    let app = super::recorded_app(
        &sql,
        &[("K", "VARCHAR(8)", "$.k"), ("V", "BIGINT", "$.v")],
        file.path(),
        &[],
    );
    match sluice::planner::plan_application(&app) {
        Ok(_) => panic!("{select} planned"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_analytic_calls_are_refused_with_a_reason() {
    let err = plan_error("NTH_VALUE(v, 0) OVER w");
    assert!(err.contains("NTH_VALUE") && err.contains("≥ 1"), "{err}");
    let err = plan_error("LAG(v, -1) OVER w");
    assert!(err.contains("LAG") && err.contains("≥ 0"), "{err}");
    let err = plan_error("LAG(v, v) OVER w");
    assert!(err.contains("integer literal"), "{err}");
    let err = plan_error("EXP_AVG(v, 5) OVER w");
    assert!(err.contains("half-life"), "{err}");
    let err = plan_error("EXP_AVG(k, INTERVAL '1' SECOND) OVER w");
    assert!(err.contains("numeric"), "{err}");
    let err = plan_error("LEAD(v) OVER w");
    assert!(err.contains("unsupported") && err.contains("LEAD"), "{err}");
}
