//! HTTP callbacks (KDA's Lambda output contract) and the input transform (KDA's Lambda
//! preprocessor contract) against a real HTTP server on loopback, driving real
//! applications: batching and its window, per-record retries, bisection of a poison
//! record, timeouts, the concurrency limit, headers, the plain payload.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use serde_json::{Value, json};
use sluice::app::{DestinationSpec, SourceSpec};
use sluice::connectors::http::{Backoff, HttpSinkConfig, HttpTransformConfig, OnFailure, Payload, PreprocessorSpec};
use sluice::engine::{RunOptions, TimeMode};

use crate::{recorded_app, write_recording};

// =======================================================================================
// The receiver
// =======================================================================================

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Call {
    started: Instant,
    headers: HeaderMap,
    body: Value,
    /// The rows of the request, decoded (base64 → JSON for the KDA payload).
    rows: Vec<Value>,
    record_ids: Vec<String>,
    status: u16,
    /// Answered after the sink's timeout: the sink has given up on it.
    late: bool,
}

#[derive(Default)]
struct Receiver {
    calls: Mutex<Vec<Call>>,
    /// When each request to /hook came in (a request the sink gave up on may never
    /// finish: the server drops it when the client hangs up).
    starts: Mutex<Vec<Instant>>,
    started: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Rows (by N) answered DeliveryFailed the first time they arrive.
    fail_once: Mutex<HashSet<i64>>,
    /// Rows (by N) that make the whole request fail with 500.
    poison: Mutex<HashSet<i64>>,
    /// The first `slow_calls` requests take `slow_ms`.
    slow_calls: AtomicUsize,
    slow_ms: AtomicU64,
    /// Every request takes this long.
    latency_ms: AtomicU64,
    /// The first `transform_failures` transform requests answer 503.
    transform_failures: AtomicUsize,
}

impl Receiver {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// N of every row of the calls answered 2xx in time, with the record's result.
    fn delivered(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for c in self.calls().iter().filter(|c| c.status == 200 && !c.late) {
            let failed: Vec<String> = match c.body.get("answer") {
                Some(a) => a["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["result"] != "Ok")
                    .map(|r| r["recordId"].as_str().unwrap().to_string())
                    .collect(),
                None => vec![],
            };
            for (i, row) in c.rows.iter().enumerate() {
                if c.record_ids.get(i).is_none_or(|id| !failed.contains(id)) {
                    out.push(row["N"].as_i64().unwrap());
                }
            }
        }
        out
    }
}

struct Server {
    addr: SocketAddr,
    receiver: Arc<Receiver>,
}

impl Server {
    async fn start() -> Server {
        let receiver = Arc::new(Receiver::default());
        let router = Router::new()
            .route("/hook", post(hook))
            .route("/transform", post(transform))
            .with_state(Arc::clone(&receiver));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server { addr, receiver }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

struct InFlight<'a>(&'a Receiver);

impl<'a> InFlight<'a> {
    fn enter(r: &'a Receiver) -> Self {
        let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        r.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(r)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let started = Instant::now();
    let _guard = InFlight::enter(&r);
    let index = r.started.fetch_add(1, Ordering::SeqCst);
    r.starts.lock().unwrap().push(started);
    let slow = index < r.slow_calls.load(Ordering::SeqCst);
    let delay = if slow {
        r.slow_ms.load(Ordering::SeqCst)
    } else {
        r.latency_ms.load(Ordering::SeqCst)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    let (rows, record_ids): (Vec<Value>, Vec<String>) = match body.get("records") {
        Some(records) => records
            .as_array()
            .unwrap()
            .iter()
            .map(|rec| {
                let data = BASE64.decode(rec["data"].as_str().unwrap()).unwrap();
                (
                    serde_json::from_slice(&data).unwrap(),
                    rec["recordId"].as_str().unwrap().to_string(),
                )
            })
            .unzip(),
        None => (body["rows"].as_array().unwrap().clone(), vec![]),
    };
    let ns: Vec<i64> = rows.iter().map(|row| row["N"].as_i64().unwrap_or(-1)).collect();
    let poisoned = ns.iter().any(|n| r.poison.lock().unwrap().contains(n));
    let (status, response) = if poisoned {
        (500, "poison".into_response())
    } else if record_ids.is_empty() {
        (200, StatusCode::OK.into_response())
    } else {
        let mut fail_once = r.fail_once.lock().unwrap();
        let results: Vec<Value> = record_ids
            .iter()
            .zip(&ns)
            .map(|(id, n)| {
                let result = if fail_once.remove(n) { "DeliveryFailed" } else { "Ok" };
                json!({"recordId": id, "result": result})
            })
            .collect();
        let answer = json!({ "records": results });
        body["answer"] = answer.clone();
        (200, axum::Json(answer).into_response())
    };
    r.calls.lock().unwrap().push(Call {
        started,
        headers,
        body,
        rows,
        record_ids,
        status,
        late: slow,
    });
    if status == 500 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "poison").into_response();
    }
    response
}

/// The transform: `action` decides. upper: NAME upper-cased; drop: Dropped; fail:
/// ProcessingFailed; ignore: not answered; anything else: Ok unchanged.
async fn transform(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let records = body["records"].as_array().unwrap().clone();
    let rows = records
        .iter()
        .map(|rec| serde_json::from_slice(&BASE64.decode(rec["data"].as_str().unwrap()).unwrap()).unwrap())
        .collect();
    r.calls.lock().unwrap().push(Call {
        started: Instant::now(),
        headers: HeaderMap::new(),
        body: body.clone(),
        rows,
        record_ids: vec![],
        status: 200,
        late: false,
    });
    if r.transform_failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
    }
    let mut results = Vec::new();
    for rec in &records {
        let id = rec["recordId"].clone();
        let mut row: Value = serde_json::from_slice(&BASE64.decode(rec["data"].as_str().unwrap()).unwrap()).unwrap();
        match row["action"].as_str().unwrap_or("") {
            "upper" => {
                let upper = row["name"].as_str().unwrap().to_uppercase();
                row["name"] = json!(upper);
                results.push(json!({"recordId": id, "result": "Ok", "data": BASE64.encode(row.to_string())}));
            }
            "drop" => results.push(json!({"recordId": id, "result": "Dropped"})),
            "fail" => {
                results.push(json!({"recordId": id, "result": "ProcessingFailed", "errorMessage": "no such customer"}))
            }
            "ignore" => {}
            _ => results.push(json!({"recordId": id, "result": "Ok", "data": rec["data"]})),
        }
    }
    axum::Json(json!({ "records": results })).into_response()
}

// =======================================================================================
// Applications
// =======================================================================================

const PASS_THROUGH: &str = r#"
CREATE OR REPLACE STREAM "OUT" (N INTEGER, NAME VARCHAR(32));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT" SELECT STREAM N, NAME FROM "SOURCE_SQL_STREAM_001";
"#;

const COLUMNS: [(&str, &str, &str); 2] = [("N", "INTEGER", "$.n"), ("NAME", "VARCHAR(32)", "$.name")];

/// A recording of rows N = 0..count, one millisecond apart.
fn recording(count: i64) -> tempfile::NamedTempFile {
    let lines: Vec<String> = (0..count)
        .map(|n| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(1_709_251_200_000 + n),
                json!({"n": n, "name": format!("row-{n}")})
            )
        })
        .collect();
    write_recording(&lines)
}

fn sink_config(server: &Server, dir: &Path) -> HttpSinkConfig {
    let mut c = HttpSinkConfig::new(&server.url("/hook"), "OUT");
    c.backoff = Backoff { base_ms: 5, cap_ms: 50 };
    c.on_failure = OnFailure::File {
        path: dir.join("failed.jsonl"),
    };
    c
}

/// Runs PASS_THROUGH over `count` recorded rows, delivering OUT to `config`.
async fn run_pass_through(count: i64, config: HttpSinkConfig) {
    let file = recording(count);
    let mut app = recorded_app(PASS_THROUGH, &COLUMNS, file.path(), &["OUT"]);
    app.outputs[0].destination = DestinationSpec::Http(config);
    tokio::time::timeout(
        Duration::from_secs(60),
        sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None })),
    )
    .await
    .expect("the run ends in time")
    .expect("the run succeeds");
}

fn failed_lines(dir: &Path) -> Vec<Value> {
    match std::fs::read_to_string(dir.join("failed.jsonl")) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => vec![],
    }
}

// =======================================================================================
// Tests
// =======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_arrives_once_in_order_in_batches_of_at_most_batch_size() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 64;
    config.application_arn = Some("arn:aws:kinesisanalytics:eu-west-1:123456789012:application/test".into());
    run_pass_through(1000, config).await;

    let calls = server.receiver.calls();
    let delivered = server.receiver.delivered();
    assert_eq!(delivered, (0..1000).collect::<Vec<_>>(), "every row once, in order");
    assert!(calls.len() > 1000 / 64, "{} calls", calls.len());
    assert!(calls.iter().all(|c| c.rows.len() <= 64 && !c.rows.is_empty()));
    assert_eq!(server.receiver.max_in_flight.load(Ordering::SeqCst), 1);
    // The KDA Lambda output event.
    let body = &calls[0].body;
    assert_eq!(
        body["applicationArn"],
        "arn:aws:kinesisanalytics:eu-west-1:123456789012:application/test"
    );
    assert_eq!(body["invocationId"].as_str().unwrap().len(), 36);
    assert_eq!(body["records"][0]["lambdaDeliveryRecordMetadata"]["retryHint"], 0);
    assert_eq!(calls[0].rows[0], json!({"N": 0, "NAME": "row-0"}));
    let ids: HashSet<&String> = calls.iter().flat_map(|c| &c.record_ids).collect();
    assert_eq!(ids.len(), 1000, "record ids are unique");
    assert_eq!(calls[0].headers.get("content-type").unwrap(), "application/json");
    assert!(failed_lines(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_goes_after_the_batching_window_while_the_application_runs() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = recorded_app(
        r#"CREATE OR REPLACE STREAM "OUT" (N INTEGER, NAME VARCHAR(32));
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
             SELECT STREAM DRIVER_ID AS N, RIDE_ID AS NAME FROM "SOURCE_SQL_STREAM_001";"#,
        &[
            ("RIDE_ID", "VARCHAR(16)", "$.ride_id"),
            ("DRIVER_ID", "INTEGER", "$.driver_id"),
        ],
        Path::new("unused"),
        &["OUT"],
    );
    // A live input: 20 rides a second, for as long as the application runs.
    app.inputs[0].source = SourceSpec::Generator {
        rate: 20,
        seed: 7,
        limit: None,
    };
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 1000;
    config.max_batching_window_ms = 300;
    app.outputs[0].destination = DestinationSpec::Http(config);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let run = tokio::spawn(async move {
        sluice::runtime::run_app_until(
            &app,
            RunOptions::new(TimeMode::WallClock { bound_interval_ms: 100 }),
            stop_rx,
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.receiver.calls().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!run.is_finished(), "the application is still running");
    let calls = server.receiver.calls();
    let _ = stop.send(true);
    run.await.unwrap().unwrap();
    assert!(
        calls.len() >= 3,
        "partial batches arrive while running: {} calls",
        calls.len()
    );
    for c in &calls {
        assert!(c.rows.len() < 1000, "a partial batch, not a full one");
    }
    // About one batch per window: 20 rows a second gives ~6 rows per 300 ms.
    let first = calls[0].started - started;
    assert!(first < Duration::from_secs(5), "first batch after {first:?}");
    let gap = calls[2].started - calls[1].started;
    assert!(
        gap >= Duration::from_millis(150) && gap < Duration::from_millis(2_000),
        "batches follow the window: {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_answered_delivery_failed_are_retried_and_arrive() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let failing: HashSet<i64> = (0..200).filter(|n| n % 10 == 3).collect();
    *server.receiver.fail_once.lock().unwrap() = failing.clone();
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 50;
    config.max_attempts = 3;
    run_pass_through(200, config).await;

    let mut delivered = server.receiver.delivered();
    delivered.sort();
    assert_eq!(
        delivered,
        (0..200).collect::<Vec<_>>(),
        "every row arrives once answered Ok"
    );
    // Each failing row was sent twice, the second time with retryHint 1.
    let calls = server.receiver.calls();
    for n in &failing {
        let sends: Vec<i64> = calls
            .iter()
            .flat_map(|c| {
                c.rows.iter().enumerate().filter(|(_, r)| r["N"] == *n).map(|(i, _)| {
                    c.body["records"][i]["lambdaDeliveryRecordMetadata"]["retryHint"]
                        .as_i64()
                        .unwrap()
                })
            })
            .collect();
        assert_eq!(sends, [0, 1], "row {n}");
    }
    assert!(failed_lines(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_isolated_by_bisecting_and_only_it_fails() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.receiver.poison.lock().unwrap().insert(37);
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 64;
    config.max_batching_window_ms = 2_000;
    config.max_attempts = 2;
    run_pass_through(64, config).await;

    let mut delivered = server.receiver.delivered();
    delivered.sort();
    let expected: Vec<i64> = (0..64).filter(|n| *n != 37).collect();
    assert_eq!(delivered, expected, "every other record is delivered");
    let failed = failed_lines(dir.path());
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["record"], json!({"N": 37, "NAME": "row-37"}));
    assert_eq!(failed[0]["attempts"], 2);
    assert!(
        failed[0]["error"].as_str().unwrap().contains("HTTP status 500"),
        "{}",
        failed[0]
    );
    // One batch of 64: split at 64, 32, 16, 8, 4, 2 (six failed calls, six clean halves),
    // then the poison alone twice.
    let calls = server.receiver.calls();
    assert_eq!(calls[0].rows.len(), 64, "one batch");
    let failures = calls.iter().filter(|c| c.status == 500).count();
    assert_eq!(failures, 6 + 2);
    assert_eq!(calls.len(), 6 + 6 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_times_out_and_the_records_are_retried_with_backoff() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.receiver.slow_calls.store(2, Ordering::SeqCst);
    server.receiver.slow_ms.store(1_500, Ordering::SeqCst);
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 20;
    config.max_batching_window_ms = 2_000;
    config.endpoint.timeout_ms = 300;
    config.bisect_on_error = false;
    config.max_attempts = 5;
    run_pass_through(20, config).await;

    let calls = server.receiver.calls();
    let mut delivered = server.receiver.delivered();
    delivered.sort();
    assert_eq!(
        delivered,
        (0..20).collect::<Vec<_>>(),
        "everything arrives in time at last"
    );
    // Two timed-out calls, then the retry that is answered in time; each retry starts
    // after the timeout of the call before it.
    let starts = server.receiver.starts.lock().unwrap().clone();
    assert!(starts.len() >= 3, "{} calls", starts.len());
    for w in starts.windows(2).take(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(300), "{:?}", w[1] - w[0]);
    }
    assert!(calls.iter().filter(|c| !c.late).all(|c| c.rows.len() == 20));
    // The retries count: the answered call has retryHint 2.
    let answered = calls.iter().find(|c| !c.late).unwrap();
    assert_eq!(
        answered.body["records"][0]["lambdaDeliveryRecordMetadata"]["retryHint"],
        2
    );
    assert!(failed_lines(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_past_the_retry_budget_go_to_the_on_failure_file() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.receiver.slow_calls.store(usize::MAX, Ordering::SeqCst);
    server.receiver.slow_ms.store(500, Ordering::SeqCst);
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 4;
    config.endpoint.timeout_ms = 100;
    config.bisect_on_error = false;
    config.max_attempts = 2;
    run_pass_through(4, config).await;
    let failed = failed_lines(dir.path());
    assert_eq!(failed.len(), 4);
    assert!(
        failed
            .iter()
            .all(|f| f["error"].as_str().unwrap().contains("no answer within 100 ms"))
    );
    assert_eq!(server.receiver.started.load(Ordering::SeqCst), 2, "two attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_and_is_used() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    server.receiver.latency_ms.store(40, Ordering::SeqCst);
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 10;
    config.max_concurrency = 3;
    run_pass_through(400, config).await;

    let mut delivered = server.receiver.delivered();
    delivered.sort();
    assert_eq!(
        delivered,
        (0..400).collect::<Vec<_>>(),
        "every row once (order not promised)"
    );
    let max = server.receiver.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 3, "at most 3 requests in flight, saw {max}");
    assert!(max >= 2, "batches went in parallel, saw {max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_arrive_and_the_plain_payload_is_a_rows_array() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A variable the test process has, so no environment needs changing.
    let (var, value) = ["CARGO_MANIFEST_DIR", "PATH", "HOME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().map(|x| (*v, x)))
        .expect("an environment variable");
    let mut config = sink_config(&server, dir.path());
    config.payload = Payload::Plain;
    config.endpoint.headers = BTreeMap::from([
        ("Authorization".to_string(), format!("Bearer ${{{var}}}")),
        ("X-Team".to_string(), "payments".to_string()),
    ]);
    run_pass_through(10, config).await;

    let calls = server.receiver.calls();
    let c = &calls[0];
    assert_eq!(
        c.headers.get("authorization").unwrap().to_str().unwrap(),
        format!("Bearer {value}")
    );
    assert_eq!(c.headers.get("x-team").unwrap(), "payments");
    assert!(c.body.get("records").is_none());
    assert_eq!(c.body["rows"][0], json!({"N": 0, "NAME": "row-0"}));
    let mut delivered = server.receiver.delivered();
    delivered.sort();
    assert_eq!(delivered, (0..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_header_variable_stops_the_application_before_it_starts() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = sink_config(&server, dir.path());
    config.endpoint.headers = BTreeMap::from([(
        "Authorization".to_string(),
        "Bearer ${SLUICE_TEST_SURELY_UNSET_VARIABLE}".to_string(),
    )]);
    let file = recording(1);
    let mut app = recorded_app(PASS_THROUGH, &COLUMNS, file.path(), &["OUT"]);
    app.outputs[0].destination = DestinationSpec::Http(config);
    let err = sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("SLUICE_TEST_SURELY_UNSET_VARIABLE is not set"), "{err}");
    assert!(server.receiver.calls().is_empty());
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let i = b.schema().index_of(column).unwrap();
            let a =
                datafusion::arrow::compute::cast(b.column(i), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
            let a = a.as_string::<i32>().clone();
            (0..a.len()).map(move |r| a.value(r).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_preprocessor_transforms_drops_and_fails_records() {
    let server = Server::start().await;
    // The first call fails as a whole: retried.
    server.receiver.transform_failures.store(1, Ordering::SeqCst);
    let actions = ["keep", "upper", "drop", "fail", "ignore"];
    let lines: Vec<String> = (0..20)
        .map(|n| {
            format!(
                r#"{{"rowtime": "{}", "data": {}}}"#,
                sluice::time::format_timestamp(1_709_251_200_000 + n),
                json!({"n": n, "name": format!("row-{n}"), "action": actions[n as usize % 5]})
            )
        })
        .collect();
    let file = write_recording(&lines);
    let mut app = recorded_app(PASS_THROUGH, &COLUMNS, file.path(), &["OUT", "error_stream"]);
    let mut transform = HttpTransformConfig::new(&server.url("/transform"));
    transform.batch_size = 6;
    transform.backoff = Backoff { base_ms: 5, cap_ms: 20 };
    app.inputs[0].preprocessor = Some(PreprocessorSpec::Http(transform));
    let mut out = sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap();

    let rows = out.streams.remove("OUT").unwrap_or_default();
    let names = strings(&rows, "NAME");
    let ns = strings(&rows, "N");
    let expected_ns: Vec<String> = (0..20).filter(|n| n % 5 < 2).map(|n| n.to_string()).collect();
    assert_eq!(
        ns, expected_ns,
        "kept and transformed rows, in order; dropped and failed ones absent"
    );
    for (n, name) in ns.iter().zip(&names) {
        let n: usize = n.parse().unwrap();
        let want = if n % 5 == 1 {
            format!("ROW-{n}")
        } else {
            format!("row-{n}")
        };
        assert_eq!(name, &want);
    }
    let errors = out.streams.remove("error_stream").unwrap_or_default();
    let error_names = strings(&errors, "ERROR_NAME");
    let messages = strings(&errors, "MESSAGE");
    assert_eq!(error_names.len(), 8, "4 failed and 4 unanswered: {messages:?}");
    assert!(error_names.iter().all(|n| n == "ProcessingFailed"));
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.contains("ProcessingFailed: no such customer"))
            .count(),
        4
    );
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.contains("no result for the record"))
            .count(),
        4
    );
    // Batches of at most 6 records, base64 data, recordIds, and one retried call.
    let calls = server.receiver.calls();
    assert!(calls.iter().all(|c| c.body["records"].as_array().unwrap().len() <= 6));
    let records: usize = calls.iter().map(|c| c.rows.len()).sum();
    assert_eq!(
        records,
        20 + calls[0].rows.len(),
        "the failed first call was sent again"
    );
    assert!(calls[0].body["invocationId"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_example_delivers_its_alerts_to_a_callback() {
    let server = Server::start().await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/cancellation-spike-webhook");
    let mut app = sluice::manifest::load_manifest(&dir.join("sluice.toml")).unwrap();
    assert!(
        sluice::manifest::check(&app).is_ok(),
        "{:?}",
        sluice::manifest::check(&app)
    );
    app.inputs[0].source = SourceSpec::Generator {
        rate: 20,
        seed: 42,
        limit: Some(12_000),
    };
    let failed = tempfile::tempdir().unwrap();
    for o in &mut app.outputs {
        match &mut o.destination {
            DestinationSpec::Http(config) => {
                assert_eq!(config.endpoint.headers["Authorization"], "Bearer ${WEBHOOK_TOKEN}");
                config.endpoint.url = server.url("/hook");
                config.endpoint.headers.clear();
                config.payload = Payload::Plain;
                config.on_failure = OnFailure::File {
                    path: failed.path().join("failed.jsonl"),
                };
            }
            other => *other = DestinationSpec::Collect,
        }
    }
    sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap();
    let alerts: Vec<Value> = server.receiver.calls().iter().flat_map(|c| c.rows.clone()).collect();
    assert!(alerts.len() >= 2, "{alerts:?}");
    assert!(
        alerts.iter().all(|a| a["CANCELLATIONS"].as_i64().unwrap() > 100),
        "{alerts:?}"
    );
}

// =======================================================================================
// Manifests
// =======================================================================================

const MANIFEST_HEAD: &str = r#"
code_text = "CREATE OR REPLACE STREAM \"OUT\" (N INTEGER); CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM N FROM \"SOURCE_SQL_STREAM_001\";"
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ { name = "N", sql_type = "INTEGER", mapping = "$.n" } ]
[inputs.source]
kind = "file"
path = "in.jsonl"
"#;

#[test]
fn manifests_configure_callbacks_lambda_urls_and_preprocessors() {
    let base = Path::new("/apps/x");
    let text = format!(
        r#"{MANIFEST_HEAD}
[inputs.preprocessor]
url = "http://127.0.0.1:9000/transform"
headers = {{ "X-Api-Key" = "${{KEY}}" }}
timeout_ms = 2000
batch_size = 50

[[outputs]]
stream = "OUT"
[outputs.destination]
kind = "http"
url = "https://hooks.example.com/kda"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}
payload = "plain"
batch_size = 25
max_batching_window_ms = 500
max_attempts = 7
timeout_ms = 1500
max_concurrency = 4
on_failure = {{ kind = "kinesis", name = "failures", endpoint = "http://127.0.0.1:4567" }}

[[outputs]]
stream = "OUT"
[outputs.destination]
kind = "lambda"
arn = "arn:aws:lambda:eu-west-1:123456789012:function:page-oncall"
url = "http://127.0.0.1:9001/invoke"
"#
    );
    let app = sluice::manifest::parse_manifest(&text, base).unwrap();
    let Some(PreprocessorSpec::Http(p)) = &app.inputs[0].preprocessor else {
        panic!("{:?}", app.inputs[0].preprocessor);
    };
    assert_eq!(p.endpoint.url, "http://127.0.0.1:9000/transform");
    assert_eq!(
        p.endpoint.headers["X-Api-Key"], "${KEY}",
        "templates are kept until the run starts"
    );
    assert_eq!((p.endpoint.timeout_ms, p.batch_size), (2000, 50));
    let DestinationSpec::Http(c) = &app.outputs[0].destination else {
        panic!("{:?}", app.outputs[0].destination);
    };
    assert_eq!(c.payload, Payload::Plain);
    assert_eq!(
        (
            c.batch_size,
            c.max_batching_window_ms,
            c.max_attempts,
            c.endpoint.timeout_ms,
            c.max_concurrency
        ),
        (25, 500, 7, 1500, 4)
    );
    let OnFailure::Kinesis(k) = &c.on_failure else {
        panic!("{:?}", c.on_failure);
    };
    assert_eq!(k.connection.stream_name, "failures");
    let DestinationSpec::Http(l) = &app.outputs[1].destination else {
        panic!(
            "a Lambda output with a url is a callback: {:?}",
            app.outputs[1].destination
        );
    };
    assert_eq!(l.payload, Payload::Kda);
    assert_eq!(
        l.on_failure,
        OnFailure::File {
            path: base.join("sluice-failed/OUT.jsonl")
        }
    );
    assert!(
        sluice::manifest::check(&app).is_ok(),
        "{:?}",
        sluice::manifest::check(&app)
    );

    // A Lambda output without a url says what to do.
    let text = format!(
        "{MANIFEST_HEAD}\n[[outputs]]\nstream = \"OUT\"\n[outputs.destination]\nkind = \"lambda\"\narn = \"arn:aws:lambda:eu-west-1:1:function:f\"\n"
    );
    let app = sluice::manifest::parse_manifest(&text, base).unwrap();
    let v = sluice::manifest::check(&app);
    assert!(v.unsupported[0].contains("give the destination a `url`"), "{v:?}");
    // HTTP settings belong to http destinations.
    let text = format!(
        "{MANIFEST_HEAD}\n[[outputs]]\nstream = \"OUT\"\n[outputs.destination]\nkind = \"file\"\npath = \"o\"\nheaders = {{ A = \"b\" }}\n"
    );
    let err = sluice::manifest::parse_manifest(&text, base).unwrap_err().to_string();
    assert!(err.contains("`headers` is not a setting of kind = \"file\""), "{err}");
    let text = format!(
        "{MANIFEST_HEAD}\n[[outputs]]\nstream = \"OUT\"\n[outputs.destination]\nkind = \"http\"\nurl = \"ftp://x\"\n"
    );
    let err = sluice::manifest::parse_manifest(&text, base).unwrap_err().to_string();
    assert!(err.contains("not an http:// or https:// URL"), "{err}");
}

#[test]
fn an_exported_lambda_preprocessor_is_reported_until_a_url_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let export = json!({"ApplicationDetail": {
        "ApplicationName": "rides",
        "ApplicationCode": "CREATE OR REPLACE STREAM \"OUT\" (N INTEGER); CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM N FROM \"SOURCE_SQL_STREAM_001\";",
        "InputDescriptions": [{
            "NamePrefix": "SOURCE_SQL_STREAM",
            "InputSchema": {
                "RecordFormat": {"RecordFormatType": "JSON", "MappingParameters": {"JSONMappingParameters": {"RecordRowPath": "$"}}},
                "RecordColumns": [{"Name": "N", "SqlType": "INTEGER", "Mapping": "$.n"}]
            },
            "InputProcessingConfigurationDescription": {
                "InputLambdaProcessorDescription": {"ResourceARN": "arn:aws:lambda:eu-west-1:123456789012:function:clean"}
            },
            "KinesisStreamsInputDescription": {"ResourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/rides"}
        }],
        "OutputDescriptions": []
    }});
    std::fs::write(dir.path().join("app.json"), export.to_string()).unwrap();
    let app = sluice::manifest::load_manifest(&dir.path().join("app.json")).unwrap();
    assert!(
        matches!(app.inputs[0].source, SourceSpec::Kinesis(_)),
        "the stream itself runs"
    );
    let v = sluice::manifest::check(&app);
    assert_eq!(v.unsupported.len(), 1, "{v:?}");
    assert!(
        v.unsupported[0].contains("Lambda preprocessor arn:aws:lambda:eu-west-1:123456789012:function:clean"),
        "{v:?}"
    );
    assert!(v.unsupported[0].contains("preprocessor = { url"), "{v:?}");

    std::fs::write(
        dir.path().join("sluice.toml"),
        "describe_application = \"app.json\"\n[[inputs]]\npreprocessor = { url = \"http://127.0.0.1:9000/clean\" }\n",
    )
    .unwrap();
    let app = sluice::manifest::load_manifest(&dir.path().join("sluice.toml")).unwrap();
    assert!(
        matches!(&app.inputs[0].preprocessor, Some(PreprocessorSpec::Http(c)) if c.endpoint.url == "http://127.0.0.1:9000/clean")
    );
    assert!(sluice::manifest::check(&app).unsupported.is_empty());
}

// =======================================================================================
// On-failure destinations other than a file
// =======================================================================================

/// Runs 16 rows with row 5 poisoned into `on_failure`, and returns the receiver.
async fn poison_one_into(on_failure: OnFailure) -> Arc<Receiver> {
    let server = Server::start().await;
    server.receiver.poison.lock().unwrap().insert(5);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 16;
    config.max_attempts = 1;
    config.on_failure = on_failure;
    run_pass_through(16, config).await;
    assert!(failed_lines(dir.path()).is_empty(), "nothing fell back to the file");
    Arc::clone(&server.receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_given_up_on_can_go_to_a_kinesis_stream() {
    use crate::kinesis::support;
    let client = support::client().await;
    let stream = support::unique("callback-failed");
    support::create_stream(&client, &stream, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        sluice::connectors::kinesis::KinesisSinkConfig::new(support::connection(&stream, &support::endpoint()), "OUT");
    config.parked_path = dir.path().join("parked.jsonl");
    let receiver = poison_one_into(OnFailure::Kinesis(config)).await;
    assert_eq!(receiver.delivered().len(), 15);
    let records = support::read_all(&client, &stream).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let failed: Value = serde_json::from_slice(&records[0].1).unwrap();
    assert_eq!(failed["record"], json!({"N": 5, "NAME": "row-5"}));
    assert!(failed["error"].as_str().unwrap().contains("HTTP status 500"));
    assert_eq!(
        records[0].0,
        failed["record_id"].as_str().unwrap(),
        "partition key: the record id"
    );
    assert!(!dir.path().join("parked.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_given_up_on_can_go_to_an_s3_prefix() {
    use crate::s3::support;
    let bucket = support::create_bucket("callback-failed").await;
    let dir = tempfile::tempdir().unwrap();
    let receiver = poison_one_into(OnFailure::S3 {
        connection: support::connection(&bucket),
        prefix: "failed/".into(),
        fallback_path: dir.path().join("fallback.jsonl"),
    })
    .await;
    assert_eq!(receiver.delivered().len(), 15);
    let keys = support::list_keys(&bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("failed/OUT/"), "{keys:?}");
    assert!(keys[0].ends_with(".jsonl"), "{keys:?}");
    let body = support::get(&bucket, &keys[0]).await;
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["record"], json!({"N": 5, "NAME": "row-5"}));
    assert!(!dir.path().join("fallback.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_waits_until_the_rows_before_it_are_delivered() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = recorded_app(
        r#"CREATE OR REPLACE STREAM "OUT" (N INTEGER, NAME VARCHAR(32));
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
             SELECT STREAM DRIVER_ID AS N, RIDE_ID AS NAME FROM "SOURCE_SQL_STREAM_001";"#,
        &[
            ("RIDE_ID", "VARCHAR(16)", "$.ride_id"),
            ("DRIVER_ID", "INTEGER", "$.driver_id"),
        ],
        Path::new("unused"),
        &["OUT"],
    );
    app.inputs[0].source = SourceSpec::Generator {
        rate: 50,
        seed: 7,
        limit: None,
    };
    // The window alone would hold rows for a minute: only checkpoints send them.
    let mut config = sink_config(&server, dir.path());
    config.batch_size = 100_000;
    config.max_batching_window_ms = 60_000;
    app.outputs[0].destination = DestinationSpec::Http(config);
    let metrics = Arc::new(sluice::runtime::metrics::Metrics::new("callback-checkpoints"));
    let mut options = RunOptions::new(TimeMode::WallClock { bound_interval_ms: 100 });
    options.metrics = Some(Arc::clone(&metrics));
    options.checkpoints = Some(sluice::engine::CheckpointOptions {
        state_dir: dir.path().join("state"),
        interval_ms: 300,
        fresh: true,
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move { sluice::runtime::run_app_until(&app, options, stop_rx).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    while (server.receiver.calls().len() < 2 || metrics.status().checkpoint.is_none_or(|(id, _)| id < 2))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!run.is_finished());
    let calls = server.receiver.calls().len();
    let checkpoint = metrics.status().checkpoint.map(|(id, _)| id).unwrap_or(0);
    let _ = stop.send(true);
    run.await.unwrap().unwrap();
    assert!(calls >= 2, "checkpoints sent the held rows: {calls} calls");
    assert!(checkpoint >= 2, "checkpoints commit: {checkpoint}");
}
