//! Streaming ORDER BY (A7), `expr AS ROWTIME`, and UNION ALL inside a subquery, run
//! end to end on random input and checked against a direct computation.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use proptest::prelude::*;

use super::{KeyedRow, run_keyed};

const S: &str = "\"SOURCE_SQL_STREAM_001\"";

/// (K, V, ROWTIME) of every output row, in the order the stream carried them.
fn rows(batches: &[RecordBatch]) -> Vec<KeyedRow> {
    let mut out = Vec::new();
    for b in batches {
        let k = b.column(0).as_string::<i32>();
        let v = b.column(1).as_primitive::<Int64Type>();
        let t = b.column(b.num_columns() - 1).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            out.push((
                (!k.is_null(i)).then(|| k.value(i).to_string()),
                (!v.is_null(i)).then(|| v.value(i)),
                t.value(i),
            ));
        }
    }
    out
}

fn input() -> impl Strategy<Value = Vec<KeyedRow>> {
    let row = (
        prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from)),
        prop::option::weighted(0.9, -20i64..20),
        0i64..1500,
    );
    prop::collection::vec(row, 1..60).prop_map(|mut rows| {
        // ROWTIME is non-decreasing: the third field is the gap to the previous row.
        let mut t = 1_700_000_000_000i64;
        for r in &mut rows {
            t += r.2;
            r.2 = t;
        }
        rows
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `ORDER BY FLOOR(ROWTIME TO SECOND), V DESC`: the rows of each second come out
    /// together, highest V first (NULLs last, ties in arrival order), stamped with the
    /// second (A7); the output is therefore non-decreasing in ROWTIME.
    #[test]
    fn order_by_sorts_each_second_and_stamps_it(input in input()) {
        let sql = format!(
            "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
             SELECT STREAM K, V FROM {S} ORDER BY FLOOR({S}.ROWTIME TO SECOND), V DESC NULLS LAST;"
        );
        let got = rows(&run_keyed(&sql, &input, &runtime()));
        let mut expected: Vec<(i64, usize, KeyedRow)> = input
            .iter()
            .enumerate()
            .map(|(i, (k, v, t))| (t.div_euclid(1000) * 1000, i, (k.clone(), *v, t.div_euclid(1000) * 1000)))
            .collect();
        expected.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| match (a.2.1, b.2.1) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
                .then(a.1.cmp(&b.1))
        });
        let expected: Vec<KeyedRow> = expected.into_iter().map(|e| e.2).collect();
        prop_assert_eq!(got, expected);
    }

    /// `SELECT STREAM ROWTIME + INTERVAL '2' SECOND AS ROWTIME, ...` moves every row's
    /// ROWTIME and selects no column for it.
    #[test]
    fn as_rowtime_sets_the_rows_time(input in input()) {
        let sql = format!(
            "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
             SELECT STREAM {S}.ROWTIME + INTERVAL '2' SECOND AS ROWTIME, K, V FROM {S};"
        );
        let got = rows(&run_keyed(&sql, &input, &runtime()));
        let expected: Vec<KeyedRow> = input.iter().map(|(k, v, t)| (k.clone(), *v, t + 2000)).collect();
        prop_assert_eq!(got, expected);
    }

    /// A UNION ALL subquery merges its branches in ROWTIME order; the outer query
    /// filters and projects the merged rows.
    #[test]
    fn a_union_all_subquery_merges_its_branches(input in input()) {
        let sql = format!(
            "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
             SELECT STREAM u.K, u.V + 1 FROM (\n\
               SELECT STREAM K, V FROM {S} WHERE V > 0\n\
               UNION ALL\n\
               SELECT STREAM 'neg', V * 100 FROM {S} WHERE V < 0\n\
             ) AS u WHERE u.V <> 5;"
        );
        let got = rows(&run_keyed(&sql, &input, &runtime()));
        let mut times: Vec<i64> = got.iter().map(|r| r.2).collect();
        let sorted = { let mut s = times.clone(); s.sort(); s };
        prop_assert_eq!(&times, &sorted, "the merged stream is in ROWTIME order");
        times.clear();
        // Rows sharing a ROWTIME may interleave either way (A20): compare per ROWTIME.
        type Values = Vec<(Option<String>, Option<i64>)>;
        let per_time = |rows: Vec<KeyedRow>| {
            let mut m: BTreeMap<i64, Values> = BTreeMap::new();
            for (k, v, t) in rows {
                m.entry(t).or_default().push((k, v));
            }
            m.values_mut().for_each(|v| v.sort());
            m
        };
        let mut expected = Vec::new();
        for (k, v, t) in &input {
            match v {
                Some(v) if *v > 0 && *v != 5 => expected.push((k.clone(), Some(v + 1), *t)),
                Some(v) if *v < 0 => expected.push((Some("neg".into()), Some(v * 100 + 1), *t)),
                _ => {}
            }
        }
        prop_assert_eq!(per_time(got), per_time(expected));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// T-sort (`ORDER BY e WITHIN INTERVAL '2' SECOND`) with `e AS ROWTIME`: rows up to 2 s
    /// out of order come out in event-time order with their event time as ROWTIME; rows
    /// later than that are refused. Checked against a row-by-row simulation.
    #[test]
    fn t_sort_promotes_an_event_time_to_rowtime(input in input(), delays in prop::collection::vec(0i64..3500, 60)) {
        // V is the event time: ROWTIME minus a random delay.
        let input: Vec<KeyedRow> = input
            .into_iter()
            .zip(delays)
            .map(|((k, _, t), d)| (k, Some(t - d), t))
            .collect();
        let sql = format!(
            "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
             SELECT STREAM TO_TIMESTAMP(V) AS ROWTIME, K, V FROM {S}\n\
             ORDER BY TO_TIMESTAMP(V) WITHIN INTERVAL '2' SECOND;"
        );
        let got = rows(&run_keyed(&sql, &input, &runtime()));
        // The simulation: time moves with each distinct ROWTIME.
        let mut expected: Vec<KeyedRow> = Vec::new();
        let mut held: Vec<(i64, usize, Option<String>)> = Vec::new();
        let mut released = i64::MIN;
        let mut i = 0;
        while i < input.len() {
            let t = input[i].2;
            while i < input.len() && input[i].2 == t {
                let e = input[i].1.unwrap();
                if e >= released {
                    held.push((e, i, input[i].0.clone()));
                }
                i += 1;
            }
            held.sort();
            let due = held.iter().take_while(|h| h.0 <= t - 2000).count();
            for (e, _, k) in held.drain(..due) {
                released = released.max(e);
                expected.push((k, Some(e), e));
            }
        }
        held.sort();
        expected.extend(held.into_iter().map(|(e, _, k)| (k, Some(e), e)));
        prop_assert_eq!(got, expected);
    }
}

/// An ordered UNION ALL (`A UNION ALL B ORDER BY ...`): ORDER BY may name the first
/// branch's stream, as in KDA.
#[test]
fn an_ordered_union_all_sorts_the_merged_stream() {
    let input: Vec<KeyedRow> = vec![
        (Some("a".into()), Some(3), 1_000),
        (Some("b".into()), Some(-7), 1_400),
        (Some("c".into()), Some(9), 1_900),
        (Some("d".into()), Some(-1), 2_100),
        (Some("e".into()), Some(4), 2_200),
    ];
    let sql = format!(
        "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
         CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
         SELECT STREAM K, V FROM {S} WHERE V > 0\n\
         UNION ALL\n\
         SELECT STREAM K, -V FROM {S} WHERE V < 0\n\
         ORDER BY FLOOR({S}.ROWTIME TO SECOND), V DESC;"
    );
    let got = rows(&run_keyed(&sql, &input, &runtime()));
    // Second 1 holds a (3), b (7), c (9); second 2 holds d (1), e (4).
    let expected: Vec<KeyedRow> = vec![
        (Some("c".into()), Some(9), 1_000),
        (Some("b".into()), Some(7), 1_000),
        (Some("a".into()), Some(3), 1_000),
        (Some("e".into()), Some(4), 2_000),
        (Some("d".into()), Some(1), 2_000),
    ];
    assert_eq!(got, expected);
}

/// The leading key may also be selected (DataFusion then sorts on the projected column).
#[test]
fn order_by_a_selected_time_key() {
    let input: Vec<KeyedRow> = vec![
        (Some("a".into()), Some(1), 60_000),
        (Some("b".into()), Some(5), 61_000),
        (Some("c".into()), Some(3), 119_999),
        (Some("d".into()), Some(2), 120_000),
    ];
    let sql = format!(
        "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT, M TIMESTAMP);\n\
         CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
         SELECT STREAM K, V, FLOOR({S}.ROWTIME TO MINUTE) AS M FROM {S} ORDER BY M, V DESC;"
    );
    let got = rows(&run_keyed(&sql, &input, &runtime()));
    let expected: Vec<KeyedRow> = vec![
        (Some("b".into()), Some(5), 60_000),
        (Some("c".into()), Some(3), 60_000),
        (Some("a".into()), Some(1), 60_000),
        (Some("d".into()), Some(2), 120_000),
    ];
    assert_eq!(got, expected);
}

/// A leading key that is not a monotonic expression of time is refused at planning,
/// with the statement's position.
#[test]
fn order_by_without_a_time_leading_key_is_a_positioned_error() {
    let sql = format!(
        "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
         CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
         SELECT STREAM K, V FROM {S} ORDER BY V, {S}.ROWTIME;"
    );
    let file = super::write_recording(&[]);
    let app = super::recorded_app(
        &sql,
        &[("K", "VARCHAR(8)", "$.k"), ("V", "BIGINT", "$.v")],
        file.path(),
        &[],
    );
    let err = sluice::planner::plan_application(&app)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("monotonic expression of time"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `ORDER BY STEP(ROWTIME BY 10 s), SUM(V) DESC` after `GROUP BY K, STEP(...)`: each
    /// bucket's groups come out together, largest sum first (NULL sums last), stamped
    /// with the bucket's start (A7), in bucket order. Groups with equal sums may come in
    /// either order: they are compared as a set.
    #[test]
    fn order_by_step_after_group_by_sorts_each_bucket(input in input()) {
        let sql = format!(
            "CREATE OR REPLACE STREAM \"OUT\" (K VARCHAR(8), V BIGINT);\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n\
             SELECT STREAM K, SUM(V) FROM {S}\n\
             GROUP BY K, STEP({S}.ROWTIME BY INTERVAL '10' SECOND)\n\
             ORDER BY STEP({S}.ROWTIME BY INTERVAL '10' SECOND), SUM(V) DESC NULLS LAST;"
        );
        let got = rows(&run_keyed(&sql, &input, &runtime()));
        // bucket start → key → sum (None: only NULL values)
        let mut buckets: BTreeMap<i64, BTreeMap<Option<String>, Option<i64>>> = BTreeMap::new();
        for (k, v, t) in &input {
            let sum = buckets.entry(t.div_euclid(10_000) * 10_000).or_default().entry(k.clone()).or_insert(None);
            if let Some(v) = v {
                *sum = Some(sum.unwrap_or(0) + v);
            }
        }
        let rank = |s: &Option<i64>| s.map_or((1, 0), |s| (0, -s));
        let mut expected: Vec<KeyedRow> = Vec::new();
        for (start, groups) in &buckets {
            let mut sorted: Vec<_> = groups.iter().collect();
            sorted.sort_by_key(|(k, s)| (rank(s), (*k).clone()));
            expected.extend(sorted.into_iter().map(|(k, s)| (k.clone(), *s, *start)));
        }
        // The order among equal sums is free: sort each run of equal (ROWTIME, sum) by key.
        let canonical = |mut rows: Vec<KeyedRow>| {
            let mut i = 0;
            while i < rows.len() {
                let j = (i..rows.len()).find(|&j| (rows[j].2, rows[j].1) != (rows[i].2, rows[i].1)).unwrap_or(rows.len());
                rows[i..j].sort();
                i = j;
            }
            rows
        };
        prop_assert_eq!(canonical(got), canonical(expected));
    }
}
