//! Stream-to-stream windowed joins run as whole applications (recorded input → pumps →
//! the join's feed pumps and hub → the join → `OUT`), checked against a brute-force join
//! written from the definition (spec §1.3, A17):
//! * a side without a window contributes only its current row and drives: it pairs with
//!   the other side's rows within the window relative to its ROWTIME (RANGE: `[t − w, t]`,
//!   lower bound inclusive, A2; ROWS n: the other side's n + 1 newest rows at or before
//!   t, A4), and the pair has the driving row's ROWTIME;
//! * with windows on both sides, the later row of a pair drives (the left one when both
//!   share a ROWTIME);
//! * outer joins: an unmatched row of an unwindowed preserved side comes out at once,
//!   NULL-padded; a windowed preserved side's row that never matched comes out when it
//!   leaves its window (RANGE w: ROWTIME t + w + 1 ms; ROWS n: the ROWTIME of the row that
//!   pushed it out).
//!
//! The input repeats ROWTIMEs, also across the sides, so rows of one instant reach the
//! join in whatever order the hub merged its two feeds: the result must not depend on it.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const START: i64 = 1_709_280_000_000; // 2024-03-01 08:00:00 UTC

#[derive(Debug, Clone)]
struct Row {
    k: Option<String>,
    v: i64,
    t: i64,
    side: char,
}

/// An output row: left V, right V, ROWTIME.
type Out = (Option<i64>, Option<i64>, i64);

#[derive(Clone, Copy)]
enum Window {
    Range(i64),
    Rows(usize),
}

struct Join<'a> {
    left: Option<Window>,
    right: Option<Window>,
    keyed: bool,
    preserve: (bool, bool),
    extra: &'a dyn Fn(&Row, &Row) -> bool,
}

fn rows(seed: u64, n: usize) -> Vec<Row> {
    // Many repeated ROWTIMEs, steps across the window edges.
    rows_with(
        seed,
        n,
        &[0, 0, 1, 7, 120, 250, 999, 1_000],
        &["a", "b", "c", "d", "e", "f", "g"],
    )
}

/// Rows whose ROWTIMEs advance by `steps` (picked at random) and whose keys are `keys`
/// ("g" stands for NULL).
fn rows_with(seed: u64, n: usize, steps: &[i64], keys: &[&str]) -> Vec<Row> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = START;
    (0..n as i64)
        .map(|v| {
            t += steps[rng.random_range(0..steps.len())];
            let k = keys[rng.random_range(0..keys.len())];
            Row {
                k: (k != "g").then(|| k.to_string()),
                v,
                t,
                side: if rng.random_bool(0.5) { 'A' } else { 'B' },
            }
        })
        .collect()
}

/// Is `rows[i]` in the window `w` as seen from a driving row at `t`?
fn in_window(rows: &[Row], i: usize, w: Window, t: i64) -> bool {
    match w {
        Window::Range(ms) => rows[i].t <= t && rows[i].t >= t - ms,
        Window::Rows(n) => {
            let upto = rows.partition_point(|r| r.t <= t);
            rows[i].t <= t && i + n + 1 >= upto
        }
    }
}

/// When a windowed side's row `i` leaves its window (None: it never does).
fn leaves(rows: &[Row], i: usize, w: Window) -> Option<i64> {
    match w {
        Window::Range(ms) => Some(rows[i].t + ms + 1),
        Window::Rows(n) => rows.get(i + n + 1).map(|r| r.t),
    }
}

/// The join by the definition, over whole inputs.
fn oracle(left: &[Row], right: &[Row], j: &Join) -> Vec<Out> {
    let mut out = Vec::new();
    let mut left_matched = vec![false; left.len()];
    let mut right_matched = vec![false; right.len()];
    for (i, l) in left.iter().enumerate() {
        for (r_i, r) in right.iter().enumerate() {
            let keys = !j.keyed || (l.k.is_some() && l.k == r.k);
            if !keys || !(j.extra)(l, r) {
                continue;
            }
            let driven_at = match (j.left, j.right) {
                (None, Some(w)) => in_window(right, r_i, w, l.t).then_some(l.t),
                (Some(w), None) => in_window(left, i, w, r.t).then_some(r.t),
                (Some(lw), Some(rw)) => {
                    if r.t <= l.t {
                        in_window(right, r_i, rw, l.t).then_some(l.t)
                    } else {
                        in_window(left, i, lw, r.t).then_some(r.t)
                    }
                }
                (None, None) => unreachable!("a join needs a window"),
            };
            if let Some(t) = driven_at {
                out.push((Some(l.v), Some(r.v), t));
                left_matched[i] = true;
                right_matched[r_i] = true;
            }
        }
    }
    for (preserved, rows, matched, window, is_left) in [
        (j.preserve.0, left, &left_matched, j.left, true),
        (j.preserve.1, right, &right_matched, j.right, false),
    ] {
        if !preserved {
            continue;
        }
        for (i, row) in rows.iter().enumerate() {
            if matched[i] {
                continue;
            }
            let at = match window {
                None => Some(row.t),
                Some(w) => leaves(rows, i, w),
            };
            if let Some(t) = at {
                out.push(if is_left {
                    (Some(row.v), None, t)
                } else {
                    (None, Some(row.v), t)
                });
            }
        }
    }
    out.sort();
    out
}

const STREAMS: &str = r#"
CREATE OR REPLACE STREAM "A" (K VARCHAR(8), V BIGINT);
CREATE OR REPLACE PUMP "PA" AS INSERT INTO "A" SELECT STREAM K, V FROM "SOURCE_SQL_STREAM_001" WHERE S = 'A';
CREATE OR REPLACE STREAM "B" (K VARCHAR(8), V BIGINT);
CREATE OR REPLACE PUMP "PB" AS INSERT INTO "B" SELECT STREAM K, V FROM "SOURCE_SQL_STREAM_001" WHERE S = 'B';
CREATE OR REPLACE STREAM "OUT" (LV BIGINT, RV BIGINT);
"#;

/// Runs `query` as the pump into OUT over `input`; OUT's rows, sorted, after checking
/// that the stream is non-decreasing in ROWTIME.
fn run(query: &str, input: &[Row]) -> Vec<Out> {
    let lines: Vec<String> = input
        .iter()
        .map(|r| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(r.t),
                serde_json::json!({ "k": r.k, "v": r.v, "s": r.side.to_string() })
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let sql = format!("{STREAMS}CREATE OR REPLACE PUMP \"J\" AS INSERT INTO \"OUT\" {query};");
    let app = super::recorded_app(
        &sql,
        &[
            ("K", "VARCHAR(8)", "$.k"),
            ("V", "BIGINT", "$.v"),
            ("S", "VARCHAR(1)", "$.s"),
        ],
        file.path(),
        &["OUT"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    let mut result = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    let batches: Vec<RecordBatch> = result.streams.remove("OUT").unwrap_or_default();
    let mut out = Vec::new();
    for b in &batches {
        let l = b.column(0).as_primitive::<Int64Type>();
        let r = b.column(1).as_primitive::<Int64Type>();
        let t = b.column(b.num_columns() - 1).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            out.push((
                l.is_valid(i).then(|| l.value(i)),
                r.is_valid(i).then(|| r.value(i)),
                t.value(i),
            ));
        }
    }
    assert!(
        out.windows(2).all(|w| w[0].2 <= w[1].2),
        "OUT must be non-decreasing in ROWTIME"
    );
    out.sort();
    out
}

/// A recording that ends with `flush_at` at its last row's ROWTIME: the end of input
/// completes that instant, so the driving row there joins (as KDA emits a join row when
/// the driving row arrives), while the RIGHT-outer padding of window rows, which would
/// come after that time, does not happen.
#[test]
fn the_end_of_input_completes_the_last_instant_without_passing_it() {
    let input = [
        ("x", 1, 'B', 1_000),
        ("y", 2, 'B', 1_500),
        ("x", 10, 'A', 2_000),
        ("x", 20, 'A', 2_600),
    ];
    let lines: Vec<String> = input
        .iter()
        .map(|(k, v, s, t)| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(START + t),
                serde_json::json!({ "k": k, "v": v, "s": s.to_string() })
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let sql = format!(
        "{STREAMS}CREATE OR REPLACE PUMP \"J\" AS INSERT INTO \"OUT\" \
         SELECT STREAM a.V, b.V FROM \"A\" AS a RIGHT JOIN \"B\" OVER (RANGE INTERVAL '2' SECOND PRECEDING) AS b ON a.K = b.K;"
    );
    let app = super::recorded_app(
        &sql,
        &[
            ("K", "VARCHAR(8)", "$.k"),
            ("V", "BIGINT", "$.v"),
            ("S", "VARCHAR(1)", "$.s"),
        ],
        file.path(),
        &["OUT"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded {
        flush_at: Some(START + 2_600),
    });
    let mut result = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    let mut got = Vec::new();
    for b in result.streams.remove("OUT").unwrap_or_default() {
        let l = b.column(0).as_primitive::<Int64Type>();
        let r = b.column(1).as_primitive::<Int64Type>();
        let t = b.column(b.num_columns() - 1).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            got.push((
                l.is_valid(i).then(|| l.value(i)),
                r.is_valid(i).then(|| r.value(i)),
                t.value(i) - START,
            ));
        }
    }
    // y (1.5 s) would be padded at 3.501 s, after the end; x meets both A rows.
    assert_eq!(got, vec![(Some(10), Some(1), 2_000), (Some(20), Some(1), 2_600)]);
}

fn sides(input: &[Row]) -> (Vec<Row>, Vec<Row>) {
    (
        input.iter().filter(|r| r.side == 'A').cloned().collect(),
        input.iter().filter(|r| r.side == 'B').cloned().collect(),
    )
}

fn check(query: &str, join: Join, seed: u64) {
    let input = rows(seed, 600);
    let (a, b) = sides(&input);
    let expected = oracle(&a, &b, &join);
    let got = run(query, &input);
    assert!(
        expected.len() > 50,
        "the input exercises the join: {} rows",
        expected.len()
    );
    assert_eq!(got.len(), expected.len(), "{query}");
    assert_eq!(got, expected, "{query}");
}

const ANY: &dyn Fn(&Row, &Row) -> bool = &|_, _| true;

#[test]
fn inner_join_with_a_range_window_on_the_right() {
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS b ON a.K = b.K",
        Join {
            left: None,
            right: Some(Window::Range(1_000)),
            keyed: true,
            preserve: (false, false),
            extra: ANY,
        },
        1,
    );
}

#[test]
fn left_outer_join_pads_orders_without_a_trade() {
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a LEFT OUTER JOIN \"B\" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS b ON a.K = b.K",
        Join {
            left: None,
            right: Some(Window::Range(1_000)),
            keyed: true,
            preserve: (true, false),
            extra: ANY,
        },
        2,
    );
}

#[test]
fn right_join_with_the_window_on_the_from_stream() {
    // The left side is windowed, so the right side drives and is preserved at once.
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" OVER (RANGE INTERVAL '2' SECOND PRECEDING) AS a RIGHT JOIN \"B\" AS b ON a.K = b.K",
        Join {
            left: Some(Window::Range(2_000)),
            right: None,
            keyed: true,
            preserve: (false, true),
            extra: ANY,
        },
        3,
    );
}

#[test]
fn full_join_with_named_windows_on_both_sides() {
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" OVER wa AS a FULL OUTER JOIN \"B\" OVER wb AS b ON a.K = b.K \
         WINDOW wa AS (RANGE INTERVAL '1' SECOND PRECEDING), wb AS (RANGE INTERVAL '2' SECOND PRECEDING)",
        Join {
            left: Some(Window::Range(1_000)),
            right: Some(Window::Range(2_000)),
            keyed: true,
            preserve: (true, true),
            extra: ANY,
        },
        4,
    );
}

#[test]
fn left_join_with_a_rows_window_and_a_condition_beyond_the_keys() {
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a LEFT JOIN \"B\" OVER (ROWS 5 PRECEDING) AS b \
         ON a.K = b.K AND b.V > a.V - 8",
        Join {
            left: None,
            right: Some(Window::Rows(5)),
            keyed: true,
            preserve: (true, false),
            extra: &|l, r| r.v > l.v - 8,
        },
        5,
    );
}

#[test]
fn right_outer_join_pads_window_rows_when_they_leave() {
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a RIGHT OUTER JOIN \"B\" OVER (ROWS 2 PRECEDING) AS b ON a.K = b.K",
        Join {
            left: None,
            right: Some(Window::Rows(2)),
            keyed: true,
            preserve: (false, true),
            extra: ANY,
        },
        6,
    );
}

#[test]
fn cross_join_pairs_with_the_whole_window() {
    check(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a CROSS JOIN \"B\" OVER (ROWS 1 PRECEDING) AS b",
        Join {
            left: None,
            right: Some(Window::Rows(1)),
            keyed: false,
            preserve: (false, false),
            extra: ANY,
        },
        7,
    );
}

#[test]
fn a_self_join_pairs_each_row_with_its_own_window_including_itself() {
    let input = rows(8, 500);
    let query = "SELECT STREAM s.V, b.V FROM \"SOURCE_SQL_STREAM_001\" AS s \
                 JOIN \"SOURCE_SQL_STREAM_001\" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS b ON s.K = b.K";
    let expected = oracle(
        &input,
        &input,
        &Join {
            left: None,
            right: Some(Window::Range(1_000)),
            keyed: true,
            preserve: (false, false),
            extra: ANY,
        },
    );
    let got = run(query, &input);
    let keyed = input.iter().filter(|r| r.k.is_some()).count();
    assert!(
        got.iter().filter(|(l, r, _)| l == r).count() == keyed,
        "every row with a key meets itself"
    );
    assert_eq!(got, expected);
}

/// Plans `query` as the pump into OUT, with the streams A and B and a reference table
/// T (K VARCHAR(8), W BIGINT).
fn plan(query: &str) -> Result<sluice::planner::ApplicationPlan, sluice::SluiceError> {
    use sluice::app::{RecordColumn, RecordFormat, RecordSchema, ReferenceLocation, ReferenceSpec};
    use sluice::types::{ColumnDef, SqlType};
    let file = super::write_recording(&[]);
    let table = super::write_recording(&["a,1".to_string()]);
    let sql = format!("{STREAMS}CREATE OR REPLACE PUMP \"J\" AS INSERT INTO \"OUT\"\n  {query};");
    let mut app = super::recorded_app(
        &sql,
        &[
            ("K", "VARCHAR(8)", "$.k"),
            ("V", "BIGINT", "$.v"),
            ("S", "VARCHAR(1)", "$.s"),
        ],
        file.path(),
        &[],
    );
    app.references.push(ReferenceSpec {
        table: "T".into(),
        schema: RecordSchema {
            columns: [("K", "VARCHAR(8)"), ("W", "BIGINT")]
                .iter()
                .map(|(n, t)| RecordColumn {
                    column: ColumnDef::new(*n, SqlType::parse(t).unwrap()),
                    mapping: None,
                })
                .collect(),
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into(),
            },
        },
        location: ReferenceLocation::File(table.path().to_path_buf()),
        skip_header_lines: 0,
        refresh_interval: None,
    });
    sluice::planner::plan_application(&app)
}

#[test]
fn a_reference_table_first_is_looked_up_and_a_join_keeping_its_rows_refused() {
    use sluice::SluiceError::Unsupported;
    let planned = plan("SELECT STREAM t.W, a.V FROM \"T\" AS t RIGHT JOIN \"A\" AS a ON t.K = a.K").unwrap();
    let pump = planned.pumps.iter().find(|p| p.name == "J").unwrap();
    assert_eq!(pump.source, "A");
    assert_eq!(pump.pipeline.describe()[..2], ["LookupJoin", "Project"]);
    for query in [
        "SELECT STREAM t.W, a.V FROM \"T\" AS t LEFT JOIN \"A\" AS a ON t.K = a.K",
        "SELECT STREAM t.W, a.V FROM \"T\" AS t FULL JOIN \"A\" AS a ON t.K = a.K",
        "SELECT STREAM t.W, a.V FROM \"A\" AS a RIGHT JOIN \"T\" AS t ON t.K = a.K",
    ] {
        match plan(query) {
            Err(Unsupported { line, feature, .. }) => {
                assert_eq!(line, 7, "{feature}");
                assert!(feature.contains("keeps the rows of reference table \"T\""), "{feature}");
                assert!(feature.contains("FROM stream LEFT JOIN \"T\""), "{feature}");
            }
            Err(other) => panic!("{query}: expected an unsupported feature, got {other}"),
            Ok(_) => panic!("{query}: planned"),
        }
    }
}

#[test]
fn a_join_plans_into_two_feed_pumps_and_the_join() {
    let plan = plan(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS b ON a.K = b.K",
    )
    .unwrap();
    let pump = |name: &str| plan.pumps.iter().find(|p| p.name == name).expect(name);
    assert_eq!(pump("J#JOIN1#LEFT").source, "A");
    assert_eq!(pump("J#JOIN1#LEFT").target, "J#JOIN1");
    assert_eq!(pump("J#JOIN1#RIGHT").source, "B");
    assert_eq!(pump("J").source, "J#JOIN1");
    assert_eq!(pump("J").pipeline.describe().first(), Some(&"StreamJoin"));
    assert!(plan.stream("J#JOIN1").is_some());
}

#[test]
fn join_mistakes_are_reported_and_unsupported_forms_named() {
    use sluice::SluiceError::{Sql, Unsupported};
    let sql_error = |query: &str, needle: &str| match plan(query) {
        Err(Sql { line, message, .. }) => {
            assert_eq!(line, 7, "{message}");
            assert!(message.contains(needle), "{query}: {message}");
        }
        Err(other) => panic!("{query}: expected a SQL error, got {other}"),
        Ok(_) => panic!("{query}: planned"),
    };
    let unsupported = |query: &str, needle: &str| match plan(query) {
        Err(Unsupported { line, feature, .. }) => {
            assert_eq!(line, 7, "{feature}");
            assert!(feature.contains(needle), "{query}: {feature}");
        }
        Err(other) => panic!("{query}: expected an unsupported feature, got {other}"),
        Ok(_) => panic!("{query}: planned"),
    };
    sql_error(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" AS b ON a.K = b.K",
        "window on at least one side",
    );
    sql_error(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" OVER w AS b ON a.K = b.K",
        "not defined",
    );
    sql_error(
        "SELECT STREAM a.V, a.V FROM \"A\" OVER (ROWS 2 PRECEDING) AS a",
        "belongs to a join",
    );
    unsupported(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" OVER (RANGE INTERVAL '1' HOUR FOLLOWING) AS b ON a.K = b.K",
        "FOLLOWING",
    );
    unsupported(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" OVER (ROWS 2 PRECEDING) AS b USING (K)",
        "USING",
    );
    sql_error(
        "SELECT STREAM a.V, b.V FROM \"A\" AS a, \"B\" AS b WHERE a.K = b.K",
        "a.ROWTIME = b.ROWTIME",
    );
    // a windowed join's ROWTIME columns other than the driving side's are not its rows' time
    sql_error(
        "SELECT STREAM a.V, c.V FROM \"A\" AS a JOIN \"B\" OVER (ROWS 2 PRECEDING) AS b ON a.K = b.K \
         JOIN \"B\" AS c ON b.ROWTIME = c.ROWTIME",
        "window on at least one side",
    );
    // the third join of a chain needs its own window (or a ROWTIME equality)
    sql_error(
        "SELECT STREAM a.V, c.V FROM \"A\" AS a JOIN \"B\" OVER (ROWS 2 PRECEDING) AS b ON a.K = b.K \
         JOIN \"B\" AS c ON a.K = c.K",
        "window on at least one side",
    );
}

/// `ON a.ROWTIME = b.ROWTIME` without a window: the rows of one instant pair up, by the
/// definition (no side drives; an unmatched row of a preserved side comes out at its
/// own ROWTIME).
fn same_instant_oracle(left: &[Row], right: &[Row], preserve: (bool, bool)) -> Vec<Out> {
    let mut out = Vec::new();
    let mut right_matched = vec![false; right.len()];
    for l in left {
        let mut matched = false;
        for (j, r) in right.iter().enumerate() {
            if l.t == r.t && l.k.is_some() && l.k == r.k {
                out.push((Some(l.v), Some(r.v), l.t));
                matched = true;
                right_matched[j] = true;
            }
        }
        if preserve.0 && !matched {
            out.push((Some(l.v), None, l.t));
        }
    }
    if preserve.1 {
        for (j, r) in right.iter().enumerate() {
            if !right_matched[j] {
                out.push((None, Some(r.v), r.t));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_rowtime_equality_joins_the_rows_of_one_instant() {
    // Runs of rows at one instant, then a step that no window would bridge.
    let input = rows_with(31, 600, &[0, 0, 0, 1, 1_000], &["a", "b", "c", "g"]);
    let (a, b) = sides(&input);
    for (query, preserve) in [
        (
            "SELECT STREAM a.V, b.V FROM \"A\" AS a, \"B\" AS b WHERE a.ROWTIME = b.ROWTIME AND a.K = b.K",
            (false, false),
        ),
        (
            "SELECT STREAM a.V, b.V FROM \"A\" AS a JOIN \"B\" AS b ON b.ROWTIME = a.ROWTIME AND a.K = b.K",
            (false, false),
        ),
        (
            "SELECT STREAM a.V, b.V FROM \"A\" AS a LEFT JOIN \"B\" AS b ON a.ROWTIME = b.ROWTIME AND a.K = b.K",
            (true, false),
        ),
        (
            "SELECT STREAM a.V, b.V FROM \"A\" AS a RIGHT JOIN \"B\" AS b ON a.ROWTIME = b.ROWTIME AND a.K = b.K",
            (false, true),
        ),
        (
            "SELECT STREAM a.V, b.V FROM \"A\" AS a FULL JOIN \"B\" AS b ON a.ROWTIME = b.ROWTIME AND a.K = b.K",
            (true, true),
        ),
    ] {
        let expected = same_instant_oracle(&a, &b, preserve);
        let pairs = expected.iter().filter(|o| o.0.is_some() && o.1.is_some()).count();
        assert!(pairs > 50, "the input pairs rows of one instant: {pairs}");
        assert_eq!(run(query, &input), expected, "{query}");
    }
}

/// An output row of a three-way join: A's V, B's V, C's V, ROWTIME.
type Out3 = (i64, i64, Option<i64>, i64);

/// Rows dealt at random to the sides A, B and C.
fn three_sides(seed: u64, steps: &[i64]) -> (Vec<Row>, [Vec<Row>; 3]) {
    let mut input = rows_with(seed, 1_500, steps, &["a", "b", "c", "d", "g"]);
    let mut rng = SmallRng::seed_from_u64(seed);
    for r in &mut input {
        r.side = ['A', 'B', 'C'][rng.random_range(0..3)];
    }
    let side = |s: char| -> Vec<Row> { input.iter().filter(|r| r.side == s).cloned().collect() };
    let sides = [side('A'), side('B'), side('C')];
    (input, sides)
}

/// Runs `query` over the streams A, B and C as the pump into OUT3 (AV, BV, CV); OUT3's
/// rows, sorted, after checking that the stream is non-decreasing in ROWTIME.
fn run3(query: &str, input: &[Row]) -> Vec<Out3> {
    let lines: Vec<String> = input
        .iter()
        .map(|r| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(r.t),
                serde_json::json!({ "k": r.k, "v": r.v, "s": r.side.to_string() })
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let sql = format!(
        r#"{STREAMS}
CREATE OR REPLACE STREAM "C" (K VARCHAR(8), V BIGINT);
CREATE OR REPLACE PUMP "PC" AS INSERT INTO "C" SELECT STREAM K, V FROM "SOURCE_SQL_STREAM_001" WHERE S = 'C';
CREATE OR REPLACE STREAM "OUT3" (AV BIGINT, BV BIGINT, CV BIGINT);
CREATE OR REPLACE PUMP "J" AS INSERT INTO "OUT3" {query};
"#
    );
    let app = super::recorded_app(
        &sql,
        &[
            ("K", "VARCHAR(8)", "$.k"),
            ("V", "BIGINT", "$.v"),
            ("S", "VARCHAR(1)", "$.s"),
        ],
        file.path(),
        &["OUT3"],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    let mut result = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    let mut got = Vec::new();
    for batch in result.streams.remove("OUT3").unwrap_or_default() {
        let col = |i: usize| batch.column(i).as_primitive::<Int64Type>().clone();
        let (av, bv, cv) = (col(0), col(1), col(2));
        let t = batch.column(3).as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            got.push((
                av.value(i),
                bv.value(i),
                cv.is_valid(i).then(|| cv.value(i)),
                t.value(i),
            ));
        }
    }
    assert!(
        got.windows(2).all(|w| w[0].3 <= w[1].3),
        "OUT3 is non-decreasing in ROWTIME"
    );
    got.sort();
    got
}

/// `a JOIN b OVER w1 ON ... LEFT JOIN c OVER w2 ON ...`: left-deep, the result of the
/// first join is a stream (ROWTIME: its driving row's) that drives the join with `c`.
#[test]
fn three_streams_join_left_deep_each_under_its_own_window() {
    let (input, [a, b, c]) = three_sides(41, &[0, 1, 7, 120, 250, 999]);
    // a ⋈ b: b's rows of the second before a's row, the pair at a's ROWTIME
    let ab: Vec<(i64, i64, Option<String>, i64)> = a
        .iter()
        .flat_map(|l| {
            b.iter()
                .filter(|r| l.k.is_some() && l.k == r.k && r.t <= l.t && r.t >= l.t - 1_000)
                .map(|r| (l.v, r.v, l.k.clone(), l.t))
                .collect::<Vec<_>>()
        })
        .collect();
    // ... LEFT JOIN c: c's rows of the 2 seconds before the pair, or the pair padded
    let mut expected: Vec<Out3> = Vec::new();
    for (av, bv, k, t) in &ab {
        let matches: Vec<i64> = c
            .iter()
            .filter(|r| r.k == *k && r.t <= *t && r.t >= t - 2_000)
            .map(|r| r.v)
            .collect();
        if matches.is_empty() {
            expected.push((*av, *bv, None, *t));
        }
        expected.extend(matches.into_iter().map(|cv| (*av, *bv, Some(cv), *t)));
    }
    expected.sort();
    let matched = expected.iter().filter(|e| e.2.is_some()).count();
    assert!(matched > 60, "pairs meet c rows: {matched}");
    assert!(
        expected.len() - matched > 30,
        "pairs padded: {}",
        expected.len() - matched
    );
    let got = run3(
        "SELECT STREAM a.V, b.V, c.V FROM \"A\" AS a \
         JOIN \"B\" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS b ON a.K = b.K \
         LEFT JOIN \"C\" OVER (RANGE INTERVAL '2' SECOND PRECEDING) AS c ON b.K = c.K",
        &input,
    );
    assert_eq!(got, expected);
}

/// `FROM a, b, c WHERE a.ROWTIME = b.ROWTIME AND b.ROWTIME = c.ROWTIME AND ...`: each
/// equality goes to the join whose sides it reads; the rows of one instant of all three
/// streams join.
#[test]
fn three_streams_join_on_rowtime_equalities() {
    let (input, [a, b, c]) = three_sides(43, &[0, 0, 0, 0, 0, 1, 1_000]);
    let mut expected: Vec<Out3> = Vec::new();
    for x in &a {
        for y in b.iter().filter(|y| y.t == x.t && x.k.is_some() && y.k == x.k) {
            for z in c.iter().filter(|z| z.t == y.t && z.v > y.v) {
                expected.push((x.v, y.v, Some(z.v), x.t));
            }
        }
    }
    expected.sort();
    assert!(expected.len() > 50, "rows of one instant meet: {}", expected.len());
    let got = run3(
        "SELECT STREAM a.V, b.V, c.V FROM \"A\" AS a, \"B\" AS b, \"C\" AS c \
         WHERE a.ROWTIME = b.ROWTIME AND b.ROWTIME = c.ROWTIME AND a.K = b.K AND c.V > b.V",
        &input,
    );
    assert_eq!(got, expected);
}

#[test]
fn a_join_of_three_streams_plans_a_chain_of_feeds() {
    let plan = plan(
        "SELECT STREAM a.V, c.V FROM \"A\" AS a JOIN \"B\" OVER (ROWS 2 PRECEDING) AS b ON a.K = b.K \
         JOIN \"B\" OVER (ROWS 2 PRECEDING) AS c ON a.K = c.K",
    )
    .unwrap();
    let pump = |name: &str| plan.pumps.iter().find(|p| p.name == name).expect(name);
    assert_eq!(pump("J").source, "J#JOIN1");
    // the left side of the outer join is the inner join, reading its own feed
    assert_eq!(pump("J#JOIN1#LEFT").source, "J#JOIN2");
    assert_eq!(pump("J#JOIN1#LEFT").pipeline.describe().first(), Some(&"StreamJoin"));
    assert_eq!(pump("J#JOIN1#RIGHT").source, "B");
    assert_eq!(pump("J#JOIN2#LEFT").source, "A");
    assert_eq!(pump("J#JOIN2#RIGHT").source, "B");
}

/// The join's window state and its feed hub's held rows are checkpointed: a run killed
/// at random moments and restarted from its state folder writes what an uninterrupted
/// run writes (rows of one ROWTIME in any order, A20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_join_gives_the_uninterrupted_output() {
    use sluice::app::{DestinationSpec, OutputFormat, OutputSpec};
    use sluice::engine::{CheckpointOptions, RunOptions, TimeMode};
    let input = rows(21, 40_000);
    let lines: Vec<String> = input
        .iter()
        .map(|r| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(r.t),
                serde_json::json!({ "k": r.k, "v": r.v, "s": r.side.to_string() })
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let dir = tempfile::tempdir().unwrap();
    let app = |out: &std::path::Path| {
        let sql = format!(
            "{STREAMS}CREATE OR REPLACE PUMP \"J\" AS INSERT INTO \"OUT\" SELECT STREAM a.V, b.V \
             FROM \"A\" OVER (RANGE INTERVAL '2' SECOND PRECEDING) AS a \
             FULL JOIN \"B\" OVER (ROWS 20 PRECEDING) AS b ON a.K = b.K;"
        );
        let mut app = super::recorded_app(
            &sql,
            &[
                ("K", "VARCHAR(8)", "$.k"),
                ("V", "BIGINT", "$.v"),
                ("S", "VARCHAR(1)", "$.s"),
            ],
            file.path(),
            &[],
        );
        app.outputs.push(OutputSpec {
            stream: "OUT".into(),
            format: OutputFormat::Json,
            destination: DestinationSpec::File {
                path: out.to_path_buf(),
            },
        });
        app
    };
    let options = |state: Option<&std::path::Path>| {
        let mut o = RunOptions::new(TimeMode::Recorded { flush_at: None });
        o.checkpoints = state.map(|d| CheckpointOptions {
            state_dir: d.to_path_buf(),
            interval_ms: 15,
            fresh: false,
        });
        o
    };
    let (clean, crashy, state) = (
        dir.path().join("clean.jsonl"),
        dir.path().join("crashy.jsonl"),
        dir.path().join("state"),
    );
    sluice::engine::run(&app(&clean), options(None)).await.unwrap();

    let mut rng = SmallRng::seed_from_u64(3);
    // Five kills, each a random moment after a checkpoint of that run committed, then a
    // run to the end; all on one state folder.
    let mut kills = 0;
    while kills < 5 {
        match super::run_and_kill_after_checkpoint(&app(&crashy), options(Some(&state)), &mut rng, 60).await {
            super::CrashRun::KilledAfterCheckpoint => kills += 1,
            super::CrashRun::Finished => break,
        }
    }
    if kills == 5 {
        sluice::engine::run(&app(&crashy), options(Some(&state))).await.unwrap();
    }
    let sorted = |p: &std::path::Path| {
        let mut lines: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let (a, b) = (sorted(&clean), sorted(&crashy));
    assert!(a.len() > 1_000, "{} rows", a.len());
    assert!(
        kills >= 1,
        "the run finished before its first checkpoint could be followed by a kill"
    );
    assert_eq!(a.len(), b.len(), "row count after {kills} kills");
    assert!(a == b, "output differs after {kills} kills");
}
