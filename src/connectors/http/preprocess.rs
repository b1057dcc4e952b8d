//! The input transform: KDA's Lambda preprocessor as an HTTP endpoint. Raw records go out
//! in batches before schema mapping, base64-encoded:
//!
//! ```json
//! {"invocationId": "...", "applicationArn": "...",
//!  "records": [{"recordId": "...", "data": "<base64>",
//!               "kinesisStreamRecordMetadata": {"sequenceNumber", "partitionKey",
//!                                               "shardId", "approximateArrivalTimestamp"}}]}
//! ```
//!
//! and come back `{"records": [{"recordId", "result": "Ok" | "Dropped" |
//! "ProcessingFailed", "data": "<base64>"}]}`. `Ok` records continue with the returned
//! data (and their original envelope: ROWTIME, arrival, partition key); `Dropped` ones are
//! counted and left out; `ProcessingFailed` ones, and records the answer does not
//! mention, become `error_stream` rows (name `ProcessingFailed`, with the reason; an
//! answer may add an `"errorMessage"` per record). A call that fails (non-2xx, timeout,
//! an unreadable answer) is retried with backoff; after `max_attempts` its records become
//! `error_stream` rows named `PreprocessorUnavailable`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::callback::invocation_id;
use super::client::HttpCaller;
use super::config::{HttpTransformConfig, PreprocessorSpec, local_application_arn};
use crate::connectors::RawRecord;
use crate::error::{ErrorRow, Result};
use crate::time::Millis;

/// Counters of one input's transform.
#[derive(Debug, Default)]
pub struct TransformStats {
    pub requests: AtomicU64,
    pub ok: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Preprocessor {
    config: HttpTransformConfig,
    caller: HttpCaller,
    application_arn: String,
    input: String,
    app: String,
    streak: AtomicU32,
    next_id: AtomicU64,
    pub stats: Arc<TransformStats>,
}

/// What a transform made of a slice of records.
#[derive(Debug, Default)]
pub struct Transformed {
    /// The `Ok` records, in their original order, with the returned data.
    pub records: Vec<RawRecord>,
    pub errors: Vec<ErrorRow>,
    pub dropped: u64,
}

/// The transform's verdict on one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Ok(Vec<u8>),
    Dropped,
    Failed(String),
}

/// The transform of `input`, if it has one; a Lambda preprocessor without a URL is a
/// configuration error (sluice does not invoke Lambda).
pub fn for_input(input: &crate::app::InputSpec, app: &str) -> Result<Option<Arc<Preprocessor>>> {
    match &input.preprocessor {
        None => Ok(None),
        Some(PreprocessorSpec::Http(config)) => Ok(Some(Arc::new(Preprocessor::new(
            config.clone(),
            &input.stream_names()[0],
            app,
        )?))),
        Some(PreprocessorSpec::Lambda { arn }) => Err(crate::error::SluiceError::config(format!(
            "input {} has the Lambda preprocessor {arn}, which sluice does not invoke; give the input \
             `preprocessor = {{ url = \"...\" }}`: an HTTP endpoint that answers as a KDA preprocessor function did",
            input.name_prefix
        ))),
    }
}

impl Preprocessor {
    /// `input` is the input's first in-application stream (the PUMP_NAME of its error
    /// rows). Resolves `${ENV}` in the endpoint: a missing variable fails here.
    pub fn new(config: HttpTransformConfig, input: &str, app: &str) -> Result<Self> {
        let caller = HttpCaller::new(&config.endpoint)?;
        let application_arn = config
            .application_arn
            .clone()
            .unwrap_or_else(|| local_application_arn(app));
        Ok(Preprocessor {
            config,
            caller,
            application_arn,
            input: input.to_string(),
            app: app.to_string(),
            streak: AtomicU32::new(0),
            next_id: AtomicU64::new(0),
            stats: Arc::new(TransformStats::default()),
        })
    }

    /// Transforms `records` in batches of `batch_size`, up to `max_concurrency` batches
    /// at once; the result keeps the records' order. Never fails: what cannot be
    /// transformed becomes error rows.
    pub async fn transform(&self, records: &[RawRecord], default_rowtime: Millis) -> Transformed {
        let chunks: Vec<&[RawRecord]> = records.chunks(self.config.batch_size.max(1)).collect();
        let mut out = Transformed::default();
        // Up to max_concurrency calls at once; results in record order. (No stream
        // combinator holding a closure over borrowed records: the source's future must
        // stay Send.)
        for window in chunks.chunks(self.config.max_concurrency.max(1)) {
            let mut calls = Vec::with_capacity(window.len());
            for chunk in window {
                calls.push(self.transform_batch(chunk, default_rowtime));
            }
            for b in futures::future::join_all(calls).await {
                out.records.extend(b.records);
                out.errors.extend(b.errors);
                out.dropped += b.dropped;
            }
        }
        out
    }

    async fn transform_batch(&self, records: &[RawRecord], default_rowtime: Millis) -> Transformed {
        let first = self.next_id.fetch_add(records.len() as u64, Ordering::Relaxed);
        let ids: Vec<String> = (first..first + records.len() as u64).map(|i| i.to_string()).collect();
        let labels = [("app", self.app.clone()), ("input", self.input.clone())];
        let mut attempts = 0;
        let verdicts = loop {
            attempts += 1;
            let body = request_body(&self.application_arn, records, &ids);
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let answer = self.caller.post(body).await;
            ::metrics::histogram!("sluice_preprocessor_request_seconds", &labels)
                .record(started.elapsed().as_secs_f64());
            let result = answer
                .map_err(|e| e.to_string())
                .and_then(|a| parse_transform_response(&a.body, &ids));
            match result {
                Ok(verdicts) => {
                    self.streak.store(0, Ordering::Relaxed);
                    break Ok(verdicts);
                }
                Err(reason) if attempts >= self.config.max_attempts.max(1) => break Err(reason),
                Err(reason) => {
                    let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(input = %self.input, url = %self.config.endpoint.url, attempts, error = %reason,
                        "the input preprocessor failed; retrying");
                    tokio::time::sleep(self.config.backoff.delay(streak)).await;
                }
            }
        };
        let error_row = |r: &RawRecord, name: &str, reason: &str| {
            ErrorRow::for_record(
                name,
                format!("{}: preprocessor {}: {reason}", self.input, self.config.endpoint.url),
                &r.data,
                r.rowtime.unwrap_or(default_rowtime),
                &self.input,
            )
        };
        let mut out = Transformed::default();
        match verdicts {
            Ok(verdicts) => {
                for (r, verdict) in records.iter().zip(verdicts) {
                    match verdict {
                        Verdict::Ok(data) => out.records.push(RawRecord { data, ..r.clone() }),
                        Verdict::Dropped => out.dropped += 1,
                        Verdict::Failed(reason) => out.errors.push(error_row(r, "ProcessingFailed", &reason)),
                    }
                }
            }
            Err(reason) => {
                tracing::error!(input = %self.input, url = %self.config.endpoint.url, attempts, error = %reason,
                    records = records.len(), "the input preprocessor failed after retries; records go to error_stream");
                let reason = format!("failed after {attempts} attempts: {reason}");
                out.errors = records
                    .iter()
                    .map(|r| error_row(r, "PreprocessorUnavailable", &reason))
                    .collect();
            }
        }
        let stats = &self.stats;
        stats.ok.fetch_add(out.records.len() as u64, Ordering::Relaxed);
        stats.dropped.fetch_add(out.dropped, Ordering::Relaxed);
        stats.failed.fetch_add(out.errors.len() as u64, Ordering::Relaxed);
        for (result, n) in [
            ("ok", out.records.len() as u64),
            ("dropped", out.dropped),
            ("failed", out.errors.len() as u64),
        ] {
            ::metrics::counter!(
                "sluice_preprocessor_records_total",
                &[
                    ("app", self.app.clone()),
                    ("input", self.input.clone()),
                    ("result", result.to_string()),
                ]
            )
            .increment(n);
        }
        out
    }
}

#[derive(Serialize)]
struct TransformEvent<'a> {
    #[serde(rename = "invocationId")]
    invocation_id: String,
    #[serde(rename = "applicationArn")]
    application_arn: &'a str,
    records: Vec<TransformRecord<'a>>,
}

#[derive(Serialize)]
struct TransformRecord<'a> {
    #[serde(rename = "recordId")]
    record_id: &'a str,
    #[serde(rename = "kinesisStreamRecordMetadata", skip_serializing_if = "Option::is_none")]
    metadata: Option<KinesisMetadata<'a>>,
    data: String,
}

#[derive(Serialize)]
struct KinesisMetadata<'a> {
    #[serde(rename = "sequenceNumber", skip_serializing_if = "Option::is_none")]
    sequence_number: Option<&'a str>,
    #[serde(rename = "partitionKey", skip_serializing_if = "Option::is_none")]
    partition_key: Option<&'a str>,
    #[serde(rename = "shardId", skip_serializing_if = "Option::is_none")]
    shard_id: Option<&'a str>,
    /// Epoch milliseconds.
    #[serde(rename = "approximateArrivalTimestamp", skip_serializing_if = "Option::is_none")]
    approximate_arrival_timestamp: Option<Millis>,
}

fn request_body(application_arn: &str, records: &[RawRecord], ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&TransformEvent {
        invocation_id: invocation_id(),
        application_arn,
        records: records
            .iter()
            .zip(ids)
            .map(|(r, id)| TransformRecord {
                record_id: id,
                metadata: (r.partition_key.is_some() || r.sequence_number.is_some()).then_some(KinesisMetadata {
                    sequence_number: r.sequence_number.as_deref(),
                    partition_key: r.partition_key.as_deref(),
                    shard_id: r.shard_id.as_deref(),
                    approximate_arrival_timestamp: r.arrival,
                }),
                data: BASE64.encode(&r.data),
            })
            .collect(),
    })
    .unwrap_or_default()
}

#[derive(Deserialize)]
struct TransformResponse {
    records: Vec<TransformResult>,
}

#[derive(Deserialize)]
struct TransformResult {
    #[serde(rename = "recordId")]
    record_id: String,
    result: String,
    #[serde(default)]
    data: Option<String>,
    #[serde(default, rename = "errorMessage")]
    error_message: Option<String>,
}

/// Reads a preprocessor response for the records `ids`, in their order. `Err` when the
/// body is not such a response (the call is retried).
pub fn parse_transform_response(body: &[u8], ids: &[String]) -> std::result::Result<Vec<Verdict>, String> {
    let response: TransformResponse = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(100)]).into_owned();
        format!("the answer is not a preprocessor response ({e}): {start}")
    })?;
    let by_id: HashMap<&str, &TransformResult> = response.records.iter().map(|r| (r.record_id.as_str(), r)).collect();
    Ok(ids
        .iter()
        .map(|id| {
            let Some(r) = by_id.get(id.as_str()) else {
                return Verdict::Failed("the preprocessor gave no result for the record".into());
            };
            let detail = r.error_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            match r.result.as_str() {
                "Ok" => match r.data.as_deref().map(|d| BASE64.decode(d)) {
                    Some(Ok(data)) => Verdict::Ok(data),
                    Some(Err(e)) => Verdict::Failed(format!(
                        "the preprocessor answered Ok with data that is not base64: {e}"
                    )),
                    None => Verdict::Failed("the preprocessor answered Ok without data".into()),
                },
                "Dropped" => Verdict::Dropped,
                "ProcessingFailed" => Verdict::Failed(format!("the preprocessor answered ProcessingFailed{detail}")),
                other => Verdict::Failed(format!("the preprocessor answered an unknown result '{other}'{detail}")),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transform_response_is_read_per_record_id() {
        let ids: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        let body = serde_json::json!({"records": [
            {"recordId": "1", "result": "Dropped"},
            {"recordId": "0", "result": "Ok", "data": BASE64.encode(b"{\"a\":1}")},
            {"recordId": "2", "result": "ProcessingFailed", "errorMessage": "bad input"},
            {"recordId": "3", "result": "Ok", "data": "%%%"},
        ]});
        let verdicts = parse_transform_response(body.to_string().as_bytes(), &ids).unwrap();
        assert_eq!(verdicts[0], Verdict::Ok(b"{\"a\":1}".to_vec()));
        assert_eq!(verdicts[1], Verdict::Dropped);
        assert_eq!(
            verdicts[2],
            Verdict::Failed("the preprocessor answered ProcessingFailed: bad input".into())
        );
        assert!(matches!(&verdicts[3], Verdict::Failed(m) if m.contains("not base64")));
        assert!(matches!(&verdicts[4], Verdict::Failed(m) if m.contains("no result")));
        assert!(parse_transform_response(b"<html>", &ids).is_err());
    }

    #[test]
    fn the_request_carries_base64_data_and_the_kinesis_envelope() {
        let records = [
            RawRecord {
                data: b"hello".to_vec(),
                partition_key: Some("k1".into()),
                sequence_number: Some("49".into()),
                shard_id: Some(Arc::from("shardId-000000000000")),
                arrival: Some(1_000),
                ..Default::default()
            },
            RawRecord {
                data: b"x".to_vec(),
                ..Default::default()
            },
        ];
        let body: serde_json::Value =
            serde_json::from_slice(&request_body("arn:app", &records, &["7".into(), "8".into()])).unwrap();
        assert_eq!(body["applicationArn"], "arn:app");
        assert_eq!(body["records"][0]["recordId"], "7");
        assert_eq!(body["records"][0]["data"], BASE64.encode(b"hello"));
        assert_eq!(body["records"][0]["kinesisStreamRecordMetadata"]["partitionKey"], "k1");
        assert_eq!(
            body["records"][0]["kinesisStreamRecordMetadata"]["approximateArrivalTimestamp"],
            1_000
        );
        assert!(body["records"][1].get("kinesisStreamRecordMetadata").is_none());
    }
}
