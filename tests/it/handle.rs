//! The handle of a running application (`sluice::engine::start`): attaching readers to
//! its streams while it runs, and stopping it.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use sluice::app::{AppSpec, SourceSpec};
use sluice::engine::{RunOptions, TimeMode};

/// Ride events from the generator, unthrottled when `rate` is 0 (recorded time), into
/// OUT: the ride id and the city of every ride, collected for the caller.
fn rides(rate: u64, limit: Option<u64>) -> AppSpec {
    let sql = r#"
CREATE OR REPLACE STREAM "OUT" (RIDE VARCHAR(16), CITY VARCHAR(16));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
  SELECT STREAM RIDE_ID, CITY FROM "SOURCE_SQL_STREAM_001";
"#;
    let columns = [
        ("RIDE_ID", "VARCHAR(16)", "$.ride_id"),
        ("CITY", "VARCHAR(16)", "$.city"),
    ];
    let mut app = crate::recorded_app(sql, &columns, Path::new("unused"), &["OUT"]);
    app.inputs[0].source = SourceSpec::Generator { rate, seed: 11, limit };
    app
}

fn ride_ids(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_string::<i32>();
            (0..ids.len()).map(|i| ids.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

/// A reader attached while the application runs receives the stream's rows from then on:
/// a run of consecutive rows of what the output delivered, with the stream's columns,
/// and it ends when the application stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_attached_to_a_running_stream_receives_its_rows_from_then_on() {
    let running = sluice::engine::start(
        &rides(500, None),
        RunOptions::new(TimeMode::WallClock { bound_interval_ms: 50 }),
    )
    .await
    .unwrap();
    let metrics = std::sync::Arc::clone(running.metrics());
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.rows_out.load(std::sync::atomic::Ordering::Relaxed) < 50 {
        assert!(Instant::now() < deadline, "no rows within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = metrics.rows_out.load(std::sync::atomic::Ordering::Relaxed);
    let mut reader = running.attach("OUT", 1024).unwrap();
    let mut input = running.attach("SOURCE_SQL_STREAM_001", 1024).unwrap();
    let names: Vec<String> = reader.schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["RIDE", "CITY", "ROWTIME"]);
    let mut read = Vec::new();
    while read.iter().map(RecordBatch::num_rows).sum::<usize>() < 100 {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .expect("rows keep coming")
            .expect("the stream is still running");
        read.push(batch);
    }
    assert!(input.next().await.is_some_and(|b| b.num_rows() > 0));
    // An unknown stream is refused, naming the streams there are.
    let err = running.attach("NOPE", 1).unwrap_err().to_string();
    assert!(err.contains("OUT") && err.contains("SOURCE_SQL_STREAM_001"), "{err}");

    running.stop();
    // The reader drains what it holds, then sees the end.
    while let Some(batch) = tokio::time::timeout(Duration::from_secs(30), reader.next())
        .await
        .expect("the reader ends when the application stops")
    {
        read.push(batch);
    }
    let mut output = running.wait().await.unwrap();
    let delivered = ride_ids(&output.streams.remove("OUT").unwrap());
    let seen = ride_ids(&read);
    assert_eq!(reader.dropped_rows(), 0);
    // What the reader saw is the tail of what was delivered, from some row after the
    // ones delivered before it attached.
    let at = delivered.len() - seen.len();
    assert!(at as u64 >= before, "the reader saw rows from before it attached");
    assert_eq!(delivered[at..], seen[..]);
}

/// A reader that never reads does not slow or stop the application: the run goes to
/// the end of its input with every row delivered, and the reader's lost rows are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_loses_its_rows_counted_and_the_run_finishes() {
    const RIDES: u64 = 60_000;
    let running = sluice::engine::start(
        &rides(0, Some(RIDES)),
        RunOptions::new(TimeMode::Recorded { flush_at: None }),
    )
    .await
    .unwrap();
    let mut stalled = running.attach("OUT", 2).unwrap();
    let handle = running.handle().clone();
    let mut output = tokio::time::timeout(Duration::from_secs(120), running.wait())
        .await
        .expect("the run finishes with a stalled reader attached")
        .unwrap();
    let delivered = output.streams.remove("OUT").unwrap();
    assert_eq!(ride_ids(&delivered).len() as u64, RIDES);
    // The reader holds the two batches its buffer had room for; the rest were lost to it.
    let mut kept = 0;
    while let Some(batch) = stalled.next().await {
        kept += batch.num_rows() as u64;
    }
    assert!(stalled.dropped_rows() > 0);
    assert!(kept + stalled.dropped_rows() <= RIDES);
    assert_eq!(handle.stream("OUT").unwrap().attached_readers(), 0);
}

/// A program feeds records from code (a channel input) and reads the results through
/// the handle: a reader attached before the first record sees every row, and dropping
/// the sender ends the input and the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_feeds_records_and_reads_the_results_through_the_handle() {
    let mut app = rides(1, None);
    let (sender, source) = sluice::connectors::channel::channel(64);
    app.inputs[0].source = source;
    let running = sluice::engine::start(&app, RunOptions::new(TimeMode::WallClock { bound_interval_ms: 50 }))
        .await
        .unwrap();
    let mut reader = running.attach("OUT", 1024).unwrap();
    for i in 0..500 {
        let city = ["Lisbon", "Porto"][i % 2];
        sender
            .send(format!(r#"{{"ride_id": "r{i}", "city": "{city}"}}"#))
            .await
            .unwrap();
    }
    drop(sender);
    let mut output = tokio::time::timeout(Duration::from_secs(60), running.wait())
        .await
        .expect("the run ends when the sender is dropped")
        .unwrap();
    let expected: Vec<String> = (0..500).map(|i| format!("r{i}")).collect();
    assert_eq!(ride_ids(&output.streams.remove("OUT").unwrap()), expected);
    let mut read = Vec::new();
    while let Some(batch) = reader.next().await {
        read.push(batch);
    }
    assert_eq!(ride_ids(&read), expected);
    assert_eq!(reader.dropped_rows(), 0);
}
