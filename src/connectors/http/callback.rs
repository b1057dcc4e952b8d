//! The callback sink: rows of an output stream POSTed to an HTTP endpoint in batches, with
//! the contract of a KDA Lambda output function (or plain JSON).
//!
//! `write` encodes the rows and hands them to a dispatcher task that owns the batching:
//! a batch goes when it holds `batch_size` records, or when its oldest record has waited
//! `max_batching_window_ms` (a timer: a quiet stream still gets its partial batch), or on
//! a checkpoint or the end of the stream. At most `max_concurrency` batches are in flight
//! (a semaphore); with 1, batches go one after the other and rows arrive in order. Each
//! batch is delivered by [`super::retry::deliver`] (per-record retries, bisection of
//! whole failures, backoff with full jitter); what still fails goes to the on-failure
//! destination ([`super::failure`]).
//!
//! Delivery is at least once: a checkpoint waits until every row before its barrier is
//! delivered (or given up on), so a restart never skips a row; a receiver may see a row
//! again after a crash or a retried timeout. `recordId`s are stable across the retries of
//! a record, so a receiver can discard repeats.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion::arrow::array::RecordBatch;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{CallError, HttpCaller};
use super::config::{HttpSinkConfig, Payload, local_application_arn};
use super::failure::{FailedRecord, FailureWriter};
use super::retry::{Item, Outcome, Policy, deliver};
use crate::app::OutputFormat;
use crate::connectors::formats::encode::{encode_csv, encode_json_lines};
use crate::connectors::sink::Sink;
use crate::error::{Result, SluiceError};

/// One encoded row on its way out.
#[derive(Debug, Clone)]
pub struct OutRow {
    pub id: u64,
    /// The row as the output format encodes it: a JSON object, or a CSV line with its
    /// newline.
    pub data: Vec<u8>,
}

/// Counters of one callback output (the registry gets the same, labelled).
#[derive(Debug, Default)]
pub struct CallbackStats {
    /// Requests made (a retry or a half of a split batch is another request).
    pub requests: AtomicU64,
    /// Batches taken from the buffer (before retries and splits).
    pub batches: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    /// Records sent to the on-failure destination.
    pub failed: AtomicU64,
}

enum Command {
    Rows(Vec<OutRow>),
    /// Answered once every row received before it is delivered or given up on.
    Flush(oneshot::Sender<()>),
}

/// What the dispatcher and its batches share.
struct Shared {
    config: HttpSinkConfig,
    caller: HttpCaller,
    format: OutputFormat,
    application_arn: String,
    streak: AtomicU32,
    failures: Mutex<FailureWriter>,
    stats: Arc<CallbackStats>,
    app: String,
    stream: String,
}

pub struct HttpSink {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<()>>>,
    started: bool,
    next_id: u64,
    buffer: Vec<u8>,
}

impl HttpSink {
    /// Resolves the endpoint (`${ENV}` in URL and headers): a missing variable is a
    /// configuration error here, before the application starts.
    pub fn new(config: HttpSinkConfig, format: OutputFormat, stream: &str, app: &str) -> Result<Self> {
        let caller = HttpCaller::new(&config.endpoint)?;
        let failures = FailureWriter::new(config.on_failure.clone(), stream, &config.endpoint.url, format);
        let application_arn = config
            .application_arn
            .clone()
            .unwrap_or_else(|| local_application_arn(app));
        Ok(HttpSink {
            shared: Arc::new(Shared {
                config,
                caller,
                format,
                application_arn,
                streak: AtomicU32::new(0),
                failures: Mutex::new(failures),
                stats: Arc::new(CallbackStats::default()),
                app: app.to_string(),
                stream: stream.to_string(),
            }),
            tx: None,
            task: None,
            started: false,
            next_id: 0,
            buffer: Vec::new(),
        })
    }

    pub fn stats(&self) -> Arc<CallbackStats> {
        Arc::clone(&self.shared.stats)
    }

    /// The rows of `batch`, encoded, with their record ids.
    pub fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<OutRow>> {
        self.buffer.clear();
        match self.shared.format {
            OutputFormat::Json => encode_json_lines(batch, false, &mut self.buffer)?,
            OutputFormat::Csv => encode_csv(batch, ",", false, &mut self.buffer)?,
        }
        let keep_newline = self.shared.format == OutputFormat::Csv;
        let mut out = Vec::with_capacity(batch.num_rows());
        for line in self.buffer.split_inclusive(|b| *b == b'\n') {
            let data = if keep_newline {
                line
            } else {
                line.strip_suffix(b"\n").unwrap_or(line)
            };
            out.push(OutRow {
                id: self.next_id,
                data: data.to_vec(),
            });
            self.next_id += 1;
        }
        Ok(out)
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let (tx, rx) = mpsc::channel(2);
        self.tx = Some(tx);
        self.task = Some(tokio::spawn(dispatch(rx, Arc::clone(&self.shared))));
    }

    /// Sends to the dispatcher; if it has stopped, returns its error.
    async fn send(&mut self, command: Command) -> Result<()> {
        self.start();
        let Some(tx) = &self.tx else { return Ok(()) };
        if tx.send(command).await.is_err() {
            self.tx = None;
            return self.join().await.and(Err(SluiceError::runtime(
                "the HTTP callback dispatcher stopped unexpectedly",
            )));
        }
        Ok(())
    }

    async fn join(&mut self) -> Result<()> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| SluiceError::runtime(format!("the HTTP callback dispatcher failed: {e}")))?,
            None => Ok(()),
        }
    }

    /// Waits until every row written so far is delivered or given up on.
    pub async fn flush(&mut self) -> Result<()> {
        if self.tx.is_none() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.send(Command::Flush(done)).await?;
        if wait.await.is_err() {
            // The dispatcher stopped: its error says why.
            self.tx = None;
            self.join().await?;
        }
        Ok(())
    }
}

impl Sink for HttpSink {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let rows = self.rows(batch)?;
            if rows.is_empty() {
                return Ok(());
            }
            self.send(Command::Rows(rows)).await
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            // Closing the channel makes the dispatcher send what it holds and stop.
            self.tx = None;
            self.join().await
        })
    }

    /// Rows before a barrier are delivered before the checkpoint completes (at least
    /// once); nothing to save.
    fn checkpoint(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.flush().await?;
            Ok(None)
        })
    }
}

/// The dispatcher: buffers rows, cuts batches (full, or when the oldest row has waited
/// the batching window), sends at most `max_concurrency` at once.
async fn dispatch(mut rx: mpsc::Receiver<Command>, shared: Arc<Shared>) -> Result<()> {
    let batch_size = shared.config.batch_size.max(1);
    let window = Duration::from_millis(shared.config.max_batching_window_ms);
    let concurrency = shared.config.max_concurrency.max(1);
    // Rows buffered beyond this wait in the channel (back-pressure to the pipeline).
    let buffer_limit = batch_size * (concurrency + 1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut pending: VecDeque<(Instant, OutRow)> = VecDeque::new();
    let mut inflight: JoinSet<Result<()>> = JoinSet::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut closed = false;
    loop {
        if pending.is_empty() && inflight.is_empty() {
            for f in flushes.drain(..) {
                let _ = f.send(());
            }
            if closed {
                return Ok(());
            }
        }
        let due = pending.front().map(|(t, _)| *t + window);
        let ready = !pending.is_empty()
            && (pending.len() >= batch_size
                || closed
                || !flushes.is_empty()
                || due.is_some_and(|d| d <= Instant::now()));
        let accept = !closed && pending.len() < buffer_limit;
        tokio::select! {
            biased;
            Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                joined.map_err(|e| SluiceError::runtime(format!("an HTTP callback batch failed: {e}")))??;
            }
            permit = Arc::clone(&permits).acquire_owned(), if ready => {
                let permit = permit.map_err(|_| SluiceError::runtime("the callback semaphore closed"))?;
                let n = pending.len().min(batch_size);
                let rows: Vec<OutRow> = pending.drain(..n).map(|(_, r)| r).collect();
                let shared = Arc::clone(&shared);
                inflight.spawn(async move {
                    let result = send_batch(&shared, rows).await;
                    drop(permit);
                    result
                });
            }
            command = rx.recv(), if accept => match command {
                Some(Command::Rows(rows)) => {
                    let now = Instant::now();
                    pending.extend(rows.into_iter().map(|r| (now, r)));
                }
                Some(Command::Flush(done)) => flushes.push(done),
                None => closed = true,
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if !ready && due.is_some() => {}
            else => return Ok(()),
        }
    }
}

/// Delivers one batch (retries, bisection, backoff); sends what fails to the on-failure
/// destination.
async fn send_batch(shared: &Shared, rows: Vec<OutRow>) -> Result<()> {
    let labels = [("app", shared.app.clone()), ("stream", shared.stream.clone())];
    shared.stats.batches.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!("sluice_http_batches_total", &labels).increment(1);
    let policy = Policy {
        max_attempts: shared.config.max_attempts,
        backoff: shared.config.backoff,
        bisect: shared.config.bisect_on_error,
    };
    let report = deliver(rows, &policy, &shared.streak, |group| {
        let body = request_body(shared, group);
        let ids: Vec<String> = group.iter().map(|i| i.value.id.to_string()).collect();
        let caller = shared.caller.clone();
        let payload = shared.config.payload;
        let labels = labels.clone();
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        async move {
            let started = Instant::now();
            let answer = caller.post(body).await;
            ::metrics::histogram!("sluice_http_request_seconds", &labels).record(started.elapsed().as_secs_f64());
            ::metrics::counter!("sluice_http_requests_total", &labels).increment(1);
            match answer {
                Ok(answer) => match payload {
                    Payload::Plain => Outcome::PerRecord(vec![Ok(()); ids.len()]),
                    Payload::Kda => parse_delivery_response(&answer.body, &ids),
                },
                Err(e) => whole_failure(&e),
            }
        }
    })
    .await;
    let stats = &shared.stats;
    stats.delivered.fetch_add(report.delivered as u64, Ordering::Relaxed);
    stats.retried.fetch_add(report.retried, Ordering::Relaxed);
    stats.failed.fetch_add(report.failed.len() as u64, Ordering::Relaxed);
    ::metrics::counter!("sluice_http_records_delivered_total", &labels).increment(report.delivered as u64);
    ::metrics::counter!("sluice_http_records_retried_total", &labels).increment(report.retried);
    ::metrics::counter!("sluice_http_records_failed_total", &labels).increment(report.failed.len() as u64);
    if report.failed.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = report.failed.iter().map(|i| i.value.id.to_string()).collect();
    let failed: Vec<FailedRecord<'_>> = report
        .failed
        .iter()
        .zip(&ids)
        .map(|(item, id)| FailedRecord {
            record_id: id,
            data: &item.value.data,
            attempts: item.attempts,
            error: &item.last_error,
        })
        .collect();
    shared.failures.lock().await.write(&failed).await
}

fn whole_failure(e: &CallError) -> Outcome {
    Outcome::Whole {
        reason: e.to_string(),
        bisectable: e.bisectable(),
    }
}

/// A random invocation id, formatted as a UUID (version 4).
pub fn invocation_id() -> String {
    let n: u128 = rand::random();
    let n = (n & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[derive(Serialize)]
struct DeliveryEvent<'a> {
    #[serde(rename = "invocationId")]
    invocation_id: String,
    #[serde(rename = "applicationArn")]
    application_arn: &'a str,
    records: Vec<DeliveryRecord>,
}

#[derive(Serialize)]
struct DeliveryRecord {
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(rename = "lambdaDeliveryRecordMetadata")]
    metadata: RetryHint,
    data: String,
}

#[derive(Serialize)]
struct RetryHint {
    #[serde(rename = "retryHint")]
    retry_hint: u32,
}

/// The body of one request for `group`.
fn request_body(shared: &Shared, group: &[Item<OutRow>]) -> Vec<u8> {
    match shared.config.payload {
        Payload::Kda => serde_json::to_vec(&DeliveryEvent {
            invocation_id: invocation_id(),
            application_arn: &shared.application_arn,
            records: group
                .iter()
                .map(|i| DeliveryRecord {
                    record_id: i.value.id.to_string(),
                    metadata: RetryHint { retry_hint: i.attempts },
                    data: BASE64.encode(&i.value.data),
                })
                .collect(),
        })
        .unwrap_or_default(),
        Payload::Plain => plain_body(group.iter().map(|i| i.value.data.as_slice()), shared.format),
    }
}

/// `{"rows": [...]}`: JSON rows as they are, CSV lines as strings (without newline).
pub fn plain_body<'a>(rows: impl Iterator<Item = &'a [u8]>, format: OutputFormat) -> Vec<u8> {
    let mut out = b"{\"rows\":[".to_vec();
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match format {
            OutputFormat::Json => out.extend_from_slice(row),
            OutputFormat::Csv => {
                let text = String::from_utf8_lossy(row);
                let text = text.trim_end_matches(['\r', '\n']);
                out.extend_from_slice(&serde_json::to_vec(text).unwrap_or_default());
            }
        }
    }
    out.extend_from_slice(b"]}");
    out
}

#[derive(Deserialize)]
struct DeliveryResponse {
    records: Vec<DeliveryResult>,
}

#[derive(Deserialize)]
struct DeliveryResult {
    #[serde(rename = "recordId")]
    record_id: String,
    result: String,
}

/// Reads a KDA Lambda output response (`{"records": [{"recordId", "result"}]}`) for the
/// records `ids` of the request: `Ok` delivers; `DeliveryFailed`, any other result and
/// no result at all fail the record (it is retried). A body that is not such a response
/// fails the call as a whole.
pub fn parse_delivery_response(body: &[u8], ids: &[String]) -> Outcome {
    let response: DeliveryResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            let start = String::from_utf8_lossy(&body[..body.len().min(100)]).into_owned();
            return Outcome::Whole {
                reason: format!("the answer is not a delivery response ({e}): {start}"),
                bisectable: false,
            };
        }
    };
    let results: HashMap<&str, &str> = response
        .records
        .iter()
        .map(|r| (r.record_id.as_str(), r.result.as_str()))
        .collect();
    Outcome::PerRecord(
        ids.iter()
            .map(|id| match results.get(id.as_str()) {
                Some(r) if r.eq_ignore_ascii_case("Ok") => Ok(()),
                Some(r) if *r == "DeliveryFailed" => Err("the receiver answered DeliveryFailed".to_string()),
                Some(other) => Err(format!("the receiver answered an unknown result '{other}'")),
                None => Err("the receiver gave no result for the record".to_string()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn the_delivery_response_is_read_per_record_id() {
        let body = br#"{"records": [
            {"recordId": "2", "result": "Ok"},
            {"recordId": "0", "result": "Ok"},
            {"recordId": "1", "result": "DeliveryFailed"},
            {"recordId": "9", "result": "Ok"},
            {"recordId": "3", "result": "Maybe"}
        ]}"#;
        let Outcome::PerRecord(results) = parse_delivery_response(body, &ids(5)) else {
            panic!("a valid response");
        };
        assert_eq!(results[0], Ok(()));
        assert!(results[1].as_ref().unwrap_err().contains("DeliveryFailed"));
        assert_eq!(results[2], Ok(()), "order of the answer does not matter");
        assert!(results[3].as_ref().unwrap_err().contains("unknown result 'Maybe'"));
        assert!(
            results[4].as_ref().unwrap_err().contains("no result"),
            "a missing record counts as failed"
        );
    }

    #[test]
    fn a_body_that_is_not_a_delivery_response_fails_the_call() {
        for body in [&b""[..], b"ok", br#"{"status": "ok"}"#] {
            match parse_delivery_response(body, &ids(2)) {
                Outcome::Whole { reason, bisectable } => {
                    assert!(reason.contains("not a delivery response"), "{reason}");
                    assert!(!bisectable);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn plain_bodies_keep_json_rows_and_quote_csv_lines() {
        let rows: [&[u8]; 2] = [br#"{"A":1}"#, br#"{"A":2}"#];
        let body: serde_json::Value =
            serde_json::from_slice(&plain_body(rows.iter().copied(), OutputFormat::Json)).unwrap();
        assert_eq!(body, serde_json::json!({"rows": [{"A": 1}, {"A": 2}]}));
        let rows: [&[u8]; 1] = [b"1,\"x\"\n"];
        let body: serde_json::Value =
            serde_json::from_slice(&plain_body(rows.iter().copied(), OutputFormat::Csv)).unwrap();
        assert_eq!(body, serde_json::json!({"rows": ["1,\"x\""]}));
    }

    #[test]
    fn invocation_ids_look_like_uuids() {
        let id = invocation_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, invocation_id());
    }
}
