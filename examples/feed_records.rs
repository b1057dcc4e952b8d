//! Embeds sluice: feeds an application records from Rust code through a channel input
//! and reads its results through the handle, with no file, terminal or server.
//!
//! ```sh
//! cargo run --example feed_records
//! ```

use sluice::app::{
    AppSpec, DestinationSpec, InputSpec, OutputFormat, OutputSpec, RecordColumn, RecordFormat, RecordSchema,
};
use sluice::engine::{RunOptions, TimeMode};
use sluice::types::{ColumnDef, SqlType};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Temperatures in, the readings above 30 degrees out.
    let (sender, source) = sluice::connectors::channel::channel(1024);
    let app = AppSpec {
        name: "feed-records-example".into(),
        sql: r#"
CREATE OR REPLACE STREAM "HOT" (SENSOR VARCHAR(8), CELSIUS DOUBLE);
CREATE OR REPLACE PUMP "HOT_PUMP" AS INSERT INTO "HOT"
  SELECT STREAM SENSOR, CELSIUS FROM "SOURCE_SQL_STREAM_001" WHERE CELSIUS > 30;
"#
        .into(),
        inputs: vec![InputSpec {
            name_prefix: "SOURCE_SQL_STREAM".into(),
            stream_name: None,
            parallelism: 1,
            schema: RecordSchema {
                columns: vec![
                    RecordColumn {
                        column: ColumnDef::new("SENSOR", SqlType::Varchar(8)),
                        mapping: Some("$.sensor".into()),
                    },
                    RecordColumn {
                        column: ColumnDef::new("CELSIUS", SqlType::Double),
                        mapping: Some("$.celsius".into()),
                    },
                ],
                format: RecordFormat::Json { row_path: "$".into() },
            },
            source,
            event_time: None,
            preprocessor: None,
        }],
        references: vec![],
        outputs: vec![OutputSpec {
            stream: "HOT".into(),
            format: OutputFormat::Json,
            destination: DestinationSpec::Collect,
        }],
    };
    let running = sluice::engine::start(&app, RunOptions::new(TimeMode::WallClock { bound_interval_ms: 200 })).await?;
    let mut hot = running.attach("HOT", 64)?;
    for i in 0..20 {
        let celsius = 20.0 + (i as f64) * 0.75;
        sender
            .send(format!(r#"{{"sensor": "s{}", "celsius": {celsius}}}"#, i % 3))
            .await?;
    }
    drop(sender); // the end of the input: the run finishes
    while let Some(batch) = hot.next().await {
        let mut lines = Vec::new();
        sluice::connectors::formats::encode::encode_json_lines(&batch, true, &mut lines)?;
        print!("{}", String::from_utf8_lossy(&lines));
    }
    let output = running.wait().await?;
    let rows: usize = output
        .streams
        .get("HOT")
        .map_or(0, |b| b.iter().map(|b| b.num_rows()).sum());
    println!("{rows} readings above 30 degrees");
    Ok(())
}
