//! `sluice bench callback`: delivery throughput of an HTTP callback output (batches and
//! rows per second) at a given receiver latency and concurrency. The receiver is an
//! in-process axum server on loopback that answers every record `Ok` after sleeping the
//! latency; the application is the ride generator in recorded time (unthrottled) passed
//! through to the callback output, so the output is the bottleneck.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;

use super::config::{Backoff, HttpSinkConfig, OnFailure};
use crate::app::{AppSpec, DestinationSpec, OutputFormat, OutputSpec};
use crate::engine::{RunOptions, TimeMode};

const SQL: &str = r#"
CREATE OR REPLACE STREAM "OUT" (ride_id VARCHAR(16), event_type VARCHAR(16), city VARCHAR(16), fare REAL);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
  SELECT STREAM ride_id, event_type, city, fare FROM "SOURCE_SQL_STREAM_001";
"#;

#[derive(Default)]
struct Receiver {
    latency_ms: AtomicU64,
    calls: AtomicU64,
    records: AtomicU64,
}

async fn hook(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> axum::Json<serde_json::Value> {
    let latency = r.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let results: Vec<serde_json::Value> = body["records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|rec| serde_json::json!({"recordId": rec["recordId"], "result": "Ok"}))
        .collect();
    r.calls.fetch_add(1, Ordering::Relaxed);
    r.records.fetch_add(results.len() as u64, Ordering::Relaxed);
    axum::Json(serde_json::json!({ "records": results }))
}

/// What one case measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub latency_ms: u64,
    pub concurrency: usize,
    pub rows: u64,
    pub batches: u64,
    pub seconds: f64,
}

impl Figures {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds
    }
    pub fn batches_per_second(&self) -> f64 {
        self.batches as f64 / self.seconds
    }
}

fn application(rows: u64, config: HttpSinkConfig) -> AppSpec {
    AppSpec {
        name: "callback-bench".into(),
        sql: SQL.into(),
        inputs: vec![crate::connectors::generator::ride_input(2_000, Some(rows))],
        references: vec![],
        outputs: vec![OutputSpec {
            stream: "OUT".into(),
            format: OutputFormat::Json,
            destination: DestinationSpec::Http(config),
        }],
    }
}

/// Runs every (latency, concurrency) case over `rows` rows in batches of `batch_size`.
pub async fn run(
    rows: u64,
    batch_size: usize,
    latencies_ms: &[u64],
    concurrencies: &[usize],
) -> anyhow::Result<Vec<Figures>> {
    let receiver = Arc::new(Receiver::default());
    let router = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = crate::runtime::AbortOnDrop(tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    }));
    let failed = std::env::temp_dir().join(format!("sluice-callback-bench-{}.jsonl", std::process::id()));
    let mut out = Vec::new();
    for &latency_ms in latencies_ms {
        for &concurrency in concurrencies {
            receiver.latency_ms.store(latency_ms, Ordering::Relaxed);
            let (calls0, records0) = (
                receiver.calls.load(Ordering::Relaxed),
                receiver.records.load(Ordering::Relaxed),
            );
            let mut config = HttpSinkConfig::new(&format!("http://{addr}/hook"), "OUT");
            config.batch_size = batch_size.max(1);
            config.max_concurrency = concurrency.max(1);
            config.backoff = Backoff {
                base_ms: 10,
                cap_ms: 1_000,
            };
            config.on_failure = OnFailure::File { path: failed.clone() };
            let app = application(rows, config);
            let started = Instant::now();
            crate::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None })).await?;
            let seconds = started.elapsed().as_secs_f64();
            let figures = Figures {
                latency_ms,
                concurrency,
                rows: receiver.records.load(Ordering::Relaxed) - records0,
                batches: receiver.calls.load(Ordering::Relaxed) - calls0,
                seconds,
            };
            if figures.rows != rows {
                anyhow::bail!("{} of {rows} rows reached the receiver", figures.rows);
            }
            eprintln!(
                "  latency {latency_ms} ms, concurrency {concurrency}: {:.0} batches/s, {:.0} rows/s ({} batches in {:.2} s)",
                figures.batches_per_second(),
                figures.rows_per_second(),
                figures.batches,
                seconds
            );
            out.push(figures);
        }
    }
    drop(server);
    let _ = std::fs::remove_file(&failed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's application must keep planning as the planner changes.
    #[test]
    fn the_callback_bench_application_plans() {
        let app = application(10, HttpSinkConfig::new("http://127.0.0.1:1/hook", "OUT"));
        let plan = crate::planner::plan_application(&app).unwrap();
        assert_eq!(plan.pumps.len(), 1);
    }
}
