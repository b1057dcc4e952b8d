//! The HTTP endpoint of a running application (`sluice run --http ADDR`):
//! `GET /metrics` serves the metrics registry as Prometheus text, `GET /health` a JSON
//! summary of the application's rates, lag and last checkpoint, `GET /references` the
//! reference tables and `POST /references/{TABLE}/refresh` reloads one now.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::error::{Result, SluiceError};
use crate::runtime::handle::{AppHandle, RefreshError};
use crate::runtime::metrics::registry;

/// Binds `addr` (port 0 picks a free port) and serves the running application `app`
/// until the returned task is aborted. Returns the bound address.
pub async fn serve(addr: SocketAddr, app: AppHandle) -> Result<(SocketAddr, JoinHandle<()>)> {
    let io_error = |source| SluiceError::Io {
        path: format!("http://{addr}"),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io_error)?;
    let bound = listener.local_addr().map_err(io_error)?;
    let router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(health))
        .route("/references", get(references))
        .route("/references/{table}/refresh", post(refresh_reference))
        .with_state(app);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "the metrics and health endpoint stopped");
        }
    });
    Ok((bound, task))
}

async fn render_metrics(State(app): State<AppHandle>) -> impl IntoResponse {
    // Counters, lag and checkpoint age are mirrored into the registry on scrape, so a
    // scrape never sees values older than the atomics.
    app.metrics().publish();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        registry().render(),
    )
}

#[derive(Serialize)]
struct Health {
    app: String,
    status: &'static str,
    uptime_ms: u64,
    records_in: u64,
    rows_out: u64,
    error_rows: u64,
    /// Per second over the reporter's last interval; null before the first one ends.
    in_per_s: Option<f64>,
    out_per_s: Option<f64>,
    lag_ms: i64,
    /// Null without a state folder, and before the first checkpoint commits.
    checkpoint_id: Option<u64>,
    checkpoint_age_ms: Option<u64>,
}

async fn health(State(app): State<AppHandle>) -> Json<Health> {
    let metrics = app.metrics();
    let rates = metrics.status().rates;
    let checkpoint = metrics.checkpoint_age();
    Json(Health {
        app: metrics.app.clone(),
        status: "running",
        uptime_ms: metrics.started.elapsed().as_millis() as u64,
        records_in: metrics.records_in.load(Ordering::Relaxed),
        rows_out: metrics.rows_out.load(Ordering::Relaxed),
        error_rows: metrics.error_rows.load(Ordering::Relaxed),
        in_per_s: rates.map(|r| r.0),
        out_per_s: rates.map(|r| r.1),
        lag_ms: metrics.lag_ms(),
        checkpoint_id: checkpoint.map(|c| c.0),
        checkpoint_age_ms: checkpoint.map(|c| c.1.as_millis() as u64),
    })
}

/// One reference table: its current version and rows.
#[derive(Serialize)]
struct ReferenceStatus {
    table: String,
    location: String,
    version: u64,
    rows: usize,
    /// The reference's refresh interval in milliseconds; null: on demand only.
    refresh_interval_ms: Option<u64>,
}

fn reference_status(t: &crate::planner::reference::ReferenceData) -> ReferenceStatus {
    let current = t.current();
    ReferenceStatus {
        table: t.table().to_string(),
        location: t.spec().location.to_string(),
        version: current.version,
        rows: current.batch.num_rows(),
        refresh_interval_ms: t.spec().refresh_interval.map(|d| d.as_millis() as u64),
    }
}

async fn references(State(app): State<AppHandle>) -> Json<Vec<ReferenceStatus>> {
    Json(app.references().map(|t| reference_status(t)).collect())
}

/// Reloads a reference table now. 200 with `status` "refreshed" (a new version) or
/// "unchanged", `version`, `rows` and `rejected_rows`; 404 for an unknown table; 502 with
/// `error` when the file or object cannot be read or none of its rows fits (the table
/// keeps its rows, whose `version` and `rows` the answer gives).
async fn refresh_reference(State(app): State<AppHandle>, Path(table): Path<String>) -> impl IntoResponse {
    use crate::planner::reference::RefreshOutcome;
    match app.refresh_reference(&table, "http").await {
        Ok(outcome) => {
            let (status, rejected) = match &outcome {
                RefreshOutcome::Replaced { rejected, .. } => ("refreshed", *rejected),
                RefreshOutcome::Unchanged { .. } => ("unchanged", 0),
            };
            (
                StatusCode::OK,
                Json(serde_json::json!({
                    "table": table,
                    "status": status,
                    "version": outcome.version(),
                    "rows": outcome.rows(),
                    "rejected_rows": rejected,
                })),
            )
        }
        Err(RefreshError::UnknownTable(error)) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "table": table, "error": error })),
        ),
        Err(RefreshError::Failed(error)) => {
            let Some(data) = app.reference(&table) else {
                return (StatusCode::NOT_FOUND, Json(serde_json::json!({ "table": table })));
            };
            let kept = reference_status(data);
            (
                StatusCode::BAD_GATEWAY,
                Json(serde_json::json!({
                    "table": table,
                    "status": "failed",
                    "error": error,
                    "version": kept.version,
                    "rows": kept.rows,
                })),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::runtime::metrics::Metrics;
    use std::sync::Arc;

    /// One plain HTTP/1.1 request; returns the status code, the head and the body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_lowercase(), body.to_string())
    }

    /// The value of the series whose line starts with `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn serves_counters_checkpoints_and_state_sizes_as_prometheus_text() {
        // The registry is shared by every test in the process: a name of its own keeps
        // this application's series apart.
        let metrics = Arc::new(Metrics::new("server-render"));
        metrics.add_in(7, 1);
        metrics.rows_out.fetch_add(3, Ordering::Relaxed);
        metrics.error_rows.fetch_add(1, Ordering::Relaxed);
        let parts = BTreeMap::from([("pump/P".to_string(), 120), ("source/IN".to_string(), 8)]);
        metrics.checkpoint_committed(4, Duration::from_millis(25), &parts);
        let app = AppHandle::new(
            "server-render",
            Arc::clone(&metrics),
            [],
            [],
            tokio::sync::watch::channel(false).0,
        );
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), app).await.unwrap();
        assert_ne!(addr.port(), 0);

        let (status, head, text) = get(addr, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        assert!(head.contains("content-type: text/plain"), "{head}");
        let app = r#"app="server-render""#;
        assert_eq!(
            value(&text, &format!("sluice_records_in_total{{{app}}}")),
            Some(7.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("sluice_rows_out_total{{{app}}}")),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("sluice_error_rows_total{{{app}}}")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("sluice_checkpoint_last_id{{{app}}}")),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("sluice_checkpoint_size_bytes{{{app}}}")),
            Some(128.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!(r#"sluice_state_size_bytes{{{app},part="pump/P"}}"#)),
            Some(120.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("sluice_checkpoint_duration_seconds_sum{{{app}}}")),
            Some(0.025),
            "{text}"
        );
        let age = value(&text, &format!("sluice_checkpoint_age_seconds{{{app}}}")).expect(&text);
        assert!((0.0..60.0).contains(&age), "{text}");
        // A lag from a ROWTIME of 1 ms after the epoch: the clock, so decades.
        assert!(
            value(&text, &format!("sluice_lag_ms{{{app}}}")).unwrap() > 1e12,
            "{text}"
        );
        assert!(text.contains("# TYPE sluice_records_in_total counter"), "{text}");

        let (status, _, _) = get(addr, "/nothing").await;
        assert_eq!(status, 404);
        task.abort();
    }

    #[tokio::test]
    async fn health_reports_counts_and_the_checkpoint_only_once_there_is_one() {
        let metrics = Arc::new(Metrics::new("server-health"));
        let app = AppHandle::new(
            "server-render",
            Arc::clone(&metrics),
            [],
            [],
            tokio::sync::watch::channel(false).0,
        );
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), app).await.unwrap();

        let (status, head, body) = get(addr, "/health").await;
        assert_eq!(status, 200, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["app"], "server-health");
        assert_eq!(health["status"], "running");
        assert_eq!(health["records_in"], 0);
        assert!(health["checkpoint_id"].is_null(), "{body}");
        assert!(health["checkpoint_age_ms"].is_null(), "{body}");
        assert!(health["in_per_s"].is_null(), "{body}");

        metrics.add_in(5, crate::time::now_millis());
        metrics.checkpoint_committed(9, Duration::from_millis(2), &BTreeMap::new());
        let (_, _, body) = get(addr, "/health").await;
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["records_in"], 5);
        assert_eq!(health["checkpoint_id"], 9);
        assert!(
            health["checkpoint_age_ms"].as_u64().is_some_and(|ms| ms < 60_000),
            "{body}"
        );
        assert!(
            health["lag_ms"].as_i64().is_some_and(|ms| (0..60_000).contains(&ms)),
            "{body}"
        );
        task.abort();
    }
}
