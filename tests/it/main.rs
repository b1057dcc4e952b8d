//! sluice's integration tests: one test binary (linked once), one module per area.

mod analytic_functions;
mod anomaly;
mod callback;
mod cli;
mod conformance;
mod demo;
mod event_time;
mod file_input;
mod fuzz;
mod handle;
mod hostile_input;
mod kinesis;
mod metrics_http;
mod ordering;
mod recovery;
mod reference;
mod s3;
mod scalar_functions;
mod sliding_property;
mod spec_coverage;
mod spill;
mod sql_errors;
mod stagger_property;
mod stream_join;
mod structure;
mod tumbling_property;
mod window_tvf;

use std::io::Write;
use std::path::Path;

use sluice::app::{
    AppSpec, DestinationSpec, InputSpec, OutputFormat, OutputSpec, RecordColumn, RecordFormat, RecordSchema, SourceSpec,
};
use sluice::types::{ColumnDef, SqlType};

/// An application with one JSON input read from a recording at `path`.
pub fn recorded_app(sql: &str, columns: &[(&str, &str, &str)], path: &Path, outputs: &[&str]) -> AppSpec {
    AppSpec {
        name: "test".into(),
        sql: sql.into(),
        inputs: vec![InputSpec {
            name_prefix: "SOURCE_SQL_STREAM".into(),
            stream_name: None,
            parallelism: 1,
            event_time: None,
            preprocessor: None,
            schema: RecordSchema {
                columns: columns
                    .iter()
                    .map(|(n, t, m)| RecordColumn {
                        column: ColumnDef::new(*n, SqlType::parse(t).unwrap()),
                        mapping: Some(m.to_string()),
                    })
                    .collect(),
                format: RecordFormat::Json { row_path: "$".into() },
            },
            source: SourceSpec::Recorded {
                path: path.to_path_buf(),
                skip_header_lines: 0,
            },
        }],
        references: vec![],
        outputs: outputs
            .iter()
            .map(|s| OutputSpec {
                stream: s.to_string(),
                format: OutputFormat::Json,
                destination: DestinationSpec::Collect,
            })
            .collect(),
    }
}

/// Writes recording lines to a temporary file.
pub fn write_recording(lines: &[String]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    f
}

/// A generated input row of the property tests: key, value, ROWTIME in milliseconds.
pub type KeyedRow = (Option<String>, Option<i64>, i64);

/// Runs `sql` over keyed rows (input columns `K VARCHAR(8)` and `V BIGINT` of
/// `SOURCE_SQL_STREAM_001`, recorded at their ROWTIMEs) and returns the batches of the
/// stream `OUT`.
pub fn run_keyed(
    sql: &str,
    rows: &[KeyedRow],
    rt: &tokio::runtime::Runtime,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    let lines: Vec<String> = rows
        .iter()
        .map(|(k, v, t)| {
            let data = serde_json::json!({ "k": k, "v": v });
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(*t),
                data
            )
        })
        .collect();
    let file = write_recording(&lines);
    let app = recorded_app(
        sql,
        &[("K", "VARCHAR(8)", "$.k"), ("V", "BIGINT", "$.v")],
        file.path(),
        &["OUT"],
    );
    let options = sluice::engine::RunOptions::new(sluice::engine::TimeMode::Recorded { flush_at: None });
    let mut out = rt.block_on(sluice::engine::run(&app, options)).expect("streaming run");
    out.streams.remove("OUT").unwrap_or_default()
}

/// How one run of a crash test ended.
pub enum CrashRun {
    /// Killed after a checkpoint of its own had committed.
    KilledAfterCheckpoint,
    /// Finished before it could be killed.
    Finished,
}

/// Runs `app` and kills it (aborts its task, as a crash would stop it) a random
/// `0..jitter_ms` after the run's first own checkpoint commits, so every kill has
/// something to resume from however loaded the machine is: the test makes its
/// opportunity instead of hoping a fixed delay gives one.
pub async fn run_and_kill_after_checkpoint(
    app: &AppSpec,
    mut options: sluice::engine::RunOptions,
    rng: &mut impl rand::Rng,
    jitter_ms: u64,
) -> CrashRun {
    let metrics = std::sync::Arc::new(sluice::runtime::metrics::Metrics::new("crash-test"));
    options.metrics = Some(std::sync::Arc::clone(&metrics));
    let (spec, opts) = (app.clone(), options);
    let run = tokio::spawn(async move { sluice::engine::run(&spec, opts).await });
    while metrics.checkpoint_age().is_none() && !run.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(rng.random_range(0..jitter_ms.max(1)))).await;
    if run.is_finished() {
        run.await.unwrap().unwrap();
        return CrashRun::Finished;
    }
    run.abort();
    let _ = run.await;
    CrashRun::KilledAfterCheckpoint
}
