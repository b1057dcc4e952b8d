//! The demo application (queries/cancellation-spike) on the built-in generator, in
//! recorded time so it runs in a moment: alerts fire, and the first within two minutes
//! of event time.

use std::path::PathBuf;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int32Type, TimestampMillisecondType};
use sluice::app::{DestinationSpec, SourceSpec};
use sluice::engine::{RunOptions, TimeMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_spike_demo_alerts_within_two_minutes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/cancellation-spike");
    let mut app = sluice::manifest::load_manifest(&dir.join("sluice.toml")).unwrap();
    // 10 minutes of events at 20 per second, as fast as possible
    app.inputs[0].source = SourceSpec::Generator {
        rate: 20,
        seed: 42,
        limit: Some(12_000),
    };
    for o in &mut app.outputs {
        o.destination = DestinationSpec::Collect;
    }
    let out = sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap();
    let alerts = &out.streams["ALERT_STREAM"];
    let rows: Vec<(i64, i32)> = alerts
        .iter()
        .flat_map(|b| {
            let start = b.column(0).as_primitive::<TimestampMillisecondType>().clone();
            let count = b.column(1).as_primitive::<Int32Type>().clone();
            (0..b.num_rows()).map(move |i| (start.value(i), count.value(i)))
        })
        .collect();
    assert!(rows.len() >= 2, "several bursts in ten minutes: {rows:?}");
    assert!(rows.iter().all(|(_, c)| *c > 100), "{rows:?}");
    let first_minute_start = 1_709_251_200_000i64;
    assert!(
        rows[0].0 - first_minute_start <= 60_000,
        "first alert's window starts within 2 minutes: {rows:?}"
    );
    // with this mix a quiet minute has about 60 cancellations: never an alert
    assert!(rows.len() < 10, "{rows:?}");
}
