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
