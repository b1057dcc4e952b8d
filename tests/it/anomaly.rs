//! RANDOM_CUT_FOREST through SQL, as the KDA anomaly-detection application uses it:
//! points injected far from a noisy cluster score clearly above the normal points.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;
use rand::{Rng, SeedableRng};
use sluice::engine::{RunOptions, TimeMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_anomalies_score_above_normal_points() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    let mut anomalies = Vec::new();
    let lines: Vec<String> = (0..3000)
        .map(|i| {
            let (mut x, y) = (50.0 + rng.random_range(-2.0..2.0), 20.0 + rng.random_range(-1.0..1.0));
            if i >= 1000 && i % 250 == 0 {
                x += 300.0;
                anomalies.push(i);
            }
            let t = sluice::time::format_timestamp(1_709_280_000_000 + i as i64 * 100);
            format!(r#"{{"rowtime": "{t}", "data": {{"x": {x}, "y": {y}}}}}"#)
        })
        .collect();
    let file = super::write_recording(&lines);
    let sql = r#"
        CREATE OR REPLACE STREAM "SCORED" (x DOUBLE, y DOUBLE, score DOUBLE);
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "SCORED"
          SELECT STREAM x, y, ANOMALY_SCORE
          FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM x, y FROM "SOURCE_SQL_STREAM_001")));"#;
    let app = super::recorded_app(
        sql,
        &[("X", "DOUBLE", "$.x"), ("Y", "DOUBLE", "$.y")],
        file.path(),
        &["SCORED"],
    );
    let out = sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap();
    let scores: Vec<f64> = out.streams["SCORED"]
        .iter()
        .flat_map(|b| b.column(2).as_primitive::<Float64Type>().values().to_vec())
        .collect();
    assert_eq!(scores.len(), 3000, "one scored row per input row");
    let mut normal: Vec<f64> = (1000..3000)
        .filter(|i| !anomalies.contains(i) && !anomalies.contains(&(i - 1)))
        .map(|i| scores[i])
        .collect();
    normal.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = normal[normal.len() * 99 / 100];
    let mean_normal = normal.iter().sum::<f64>() / normal.len() as f64;
    for &i in &anomalies {
        assert!(
            scores[i] > p99,
            "anomaly {i} scored {} ≤ p99 of normal points {p99}",
            scores[i]
        );
        assert!(
            scores[i] > 3.0 * mean_normal,
            "anomaly {i} scored {} vs mean {mean_normal}",
            scores[i]
        );
    }
}

/// The console's anomaly template: `CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")`
/// over the demo stream's columns, then a second pump that sorts each second by score.
const CONSOLE_TEMPLATE: &str = r#"
    CREATE OR REPLACE STREAM "TEMP_STREAM" ("TICKER_SYMBOL" VARCHAR(4), "SECTOR" VARCHAR(16), "CHANGE" REAL, "PRICE" REAL, "ANOMALY_SCORE" DOUBLE);
    CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" ("TICKER_SYMBOL" VARCHAR(4), "SECTOR" VARCHAR(16), "CHANGE" REAL, "PRICE" REAL, "ANOMALY_SCORE" DOUBLE);
    CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "TEMP_STREAM"
    SELECT STREAM "TICKER_SYMBOL", "SECTOR", "CHANGE", "PRICE", "ANOMALY_SCORE" FROM
      TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001")));
    CREATE OR REPLACE PUMP "OUTPUT_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM * FROM "TEMP_STREAM" ORDER BY FLOOR("TEMP_STREAM".ROWTIME TO SECOND), ANOMALY_SCORE DESC;"#;

const DEMO_COLUMNS: [(&str, &str, &str); 4] = [
    ("TICKER_SYMBOL", "VARCHAR(4)", "$.ticker"),
    ("SECTOR", "VARCHAR(16)", "$.sector"),
    ("CHANGE", "REAL", "$.change"),
    ("PRICE", "REAL", "$.price"),
];

#[test]
fn a_select_star_cursor_passes_the_declared_columns_only() {
    let file = super::write_recording(&[]);
    for (function, extra) in [
        ("RANDOM_CUT_FOREST", vec!["ANOMALY_SCORE"]),
        (
            "RANDOM_CUT_FOREST_WITH_EXPLANATION",
            vec!["ANOMALY_SCORE", "ANOMALY_EXPLANATION"],
        ),
        ("HOTSPOTS", vec!["HOTSPOTS_RESULT"]),
    ] {
        let args = if function == "HOTSPOTS" { ", 100, 1.0, 3" } else { "" };
        let sql = format!(
            r#"CREATE OR REPLACE STREAM "OUT" (a VARCHAR(4));
            CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
            SELECT STREAM "TICKER_SYMBOL" FROM TABLE({function}(CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"){args}));"#
        );
        let app = super::recorded_app(&sql, &DEMO_COLUMNS, file.path(), &[]);
        let plan = sluice::planner::plan_application(&app).unwrap_or_else(|e| panic!("{function}: {e}"));
        let internal = plan.stream(&format!("P#{function}1")).expect("the function's stream");
        let names: Vec<&str> = internal.schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut expected = vec!["TICKER_SYMBOL", "SECTOR", "CHANGE", "PRICE"];
        expected.extend(extra);
        expected.push("ROWTIME");
        assert_eq!(names, expected, "{function}");
    }
    // Named in the cursor, APPROXIMATE_ARRIVAL_TIME is passed through (and, not being
    // numeric, not scored).
    let sql = r#"CREATE OR REPLACE STREAM "OUT" (a VARCHAR(4));
        CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
        SELECT STREAM "TICKER_SYMBOL" FROM TABLE(RANDOM_CUT_FOREST(CURSOR(
            SELECT STREAM "TICKER_SYMBOL", "PRICE", APPROXIMATE_ARRIVAL_TIME, ROWTIME FROM "SOURCE_SQL_STREAM_001")));"#;
    let app = super::recorded_app(sql, &DEMO_COLUMNS, file.path(), &[]);
    let plan = sluice::planner::plan_application(&app).unwrap();
    let internal = plan.stream("P#RANDOM_CUT_FOREST1").unwrap();
    let names: Vec<&str> = internal.schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "TICKER_SYMBOL",
            "PRICE",
            "APPROXIMATE_ARRIVAL_TIME",
            "ANOMALY_SCORE",
            "ROWTIME"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_template_scores_price_spikes_highest_in_their_second() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(12);
    let tickers = [
        ("AMZN", "TECHNOLOGY", 230.0),
        ("JPM", "FINANCIAL", 265.0),
        ("XOM", "ENERGY", 110.0),
    ];
    let mut spikes = Vec::new();
    // 2,400 rows, 10 per second, from 2026-02-16 14:30:00 UTC.
    let start = 1_771_252_200_000i64;
    let lines: Vec<String> = (0..2400)
        .map(|i| {
            let (ticker, sector, base) = tickers[i % 3];
            let change: f64 = rng.random_range(-0.5..0.5);
            let mut price = base + change;
            if i >= 600 && i % 200 == 7 {
                price += 400.0;
                spikes.push(i);
            }
            let t = sluice::time::format_timestamp(start + i as i64 * 100);
            format!(
                r#"{{"rowtime": "{t}", "data": {{"ticker": "{ticker}", "sector": "{sector}", "change": {change}, "price": {price}}}}}"#
            )
        })
        .collect();
    let file = super::write_recording(&lines);
    let app = super::recorded_app(
        CONSOLE_TEMPLATE,
        &DEMO_COLUMNS,
        file.path(),
        &["DESTINATION_SQL_STREAM"],
    );
    let out = sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap();
    let batches = &out.streams["DESTINATION_SQL_STREAM"];
    let mut rows: Vec<(i64, f64, f64)> = Vec::new();
    for b in batches {
        let price = b.column(3).as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        let score = b.column(4).as_primitive::<Float64Type>();
        let rowtime = sluice::operators::rowtime_column(b);
        for r in 0..b.num_rows() {
            rows.push((rowtime.value(r), price.value(r) as f64, score.value(r)));
        }
    }
    assert_eq!(rows.len(), 2400, "one row per input row");
    // Each second's rows come out together, stamped with the second, by score descending.
    for w in rows.windows(2) {
        assert_eq!(w[0].0 % 1000, 0, "ROWTIME is the second");
        assert!(w[0].0 <= w[1].0, "ROWTIME goes forward");
        if w[0].0 == w[1].0 {
            assert!(w[0].2 >= w[1].2, "scores descend within a second");
        }
    }
    // Warm-up (A23): the first 256 rows score 0; each spike leads its second.
    for &i in &spikes {
        let second = start + (i as i64 / 10) * 1000;
        let first = rows.iter().find(|r| r.0 == second).unwrap();
        assert!(
            first.1 > 500.0,
            "second {second}: the spike leads, found price {}",
            first.1
        );
        let others: Vec<f64> = rows.iter().filter(|r| r.0 == second).skip(1).map(|r| r.2).collect();
        let most = others.iter().cloned().fold(0.0, f64::max);
        assert!(first.2 > 2.0 * most, "spike score {} vs {most}", first.2);
    }
    assert_eq!(
        rows.iter().filter(|r| r.2 == 0.0).count(),
        256,
        "the warm-up rows score 0"
    );
}
