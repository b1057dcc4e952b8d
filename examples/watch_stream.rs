//! Embeds sluice: starts an application from Rust code, attaches a reader to one of its
//! in-application streams while it runs, prints the first rows that reach it, and stops
//! it.
//!
//! ```sh
//! cargo run --example watch_stream
//! ```
//!
//! The application counts the rides of the built-in ride-events generator per city and
//! second. Its code and configuration are the manifest below, as `sluice run` would read
//! it from a file.

use std::time::Duration;

use sluice::engine::{RunOptions, TimeMode};

const MANIFEST: &str = r#"
name = "watch-stream-example"
code_text = """
CREATE OR REPLACE STREAM "CITY_COUNTS" (CITY VARCHAR(16), RIDES BIGINT);
CREATE OR REPLACE PUMP "COUNT_PUMP" AS INSERT INTO "CITY_COUNTS"
  SELECT STREAM CITY, COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY CITY, STEP(ROWTIME BY INTERVAL '1' SECOND);
"""

[[inputs]]
name_prefix = "SOURCE_SQL_STREAM"
[inputs.schema]
record_format = "JSON"
columns = [ { name = "CITY", sql_type = "VARCHAR(16)", mapping = "$.city" } ]
[inputs.source]
kind = "generator"
rate = 200
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sluice-watch-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("sluice.toml");
    std::fs::write(&manifest, MANIFEST)?;
    let app = sluice::manifest::load_manifest(&manifest)?;

    // The application runs on the clock; its handle comes back once every task runs.
    let running = sluice::engine::start(&app, RunOptions::new(TimeMode::WallClock { bound_interval_ms: 200 })).await?;
    for stream in running.streams() {
        println!("stream {} ({} columns)", stream.name, stream.schema.fields().len());
    }

    // A reader with room for 64 batches: if this program fell behind, it would lose rows
    // (counted) rather than slow the application down.
    let mut reader = running.attach("CITY_COUNTS", 64)?;
    let mut printed = 0;
    while printed < 12 {
        let Some(batch) = tokio::time::timeout(Duration::from_secs(30), reader.next()).await? else {
            break;
        };
        let mut lines = Vec::new();
        sluice::connectors::formats::encode::encode_json_lines(&batch, true, &mut lines)?;
        print!("{}", String::from_utf8_lossy(&lines));
        printed += batch.num_rows();
    }
    println!(
        "records in: {}, rows lost by this reader: {}",
        running.metrics().records_in.load(std::sync::atomic::Ordering::Relaxed),
        reader.dropped_rows()
    );

    running.stop();
    running.wait().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
