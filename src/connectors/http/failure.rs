//! The on-failure destination of a callback output: where records go that could not be
//! delivered within the retry budget, one JSON object each with the error, the attempts
//! and the row (`{"stream", "url", "record_id", "attempts", "error", "failed_at",
//! "record"}`). A file gets JSON lines; a Kinesis stream one record per object (what it
//! cannot take is parked by the Kinesis sink); S3 one JSON-lines object per group. When
//! the stream or the bucket fails, the records fall back to a local file (by default
//! `sluice-failed/<stream>.jsonl` beside the manifest): never dropped silently.

use std::path::Path;

use tokio::io::AsyncWriteExt;

use super::config::OnFailure;
use crate::app::OutputFormat;
use crate::connectors::kinesis::KinesisSink;
use crate::connectors::kinesis::sink::out_record;
use crate::error::{Result, SluiceError};

/// One record given up on.
#[derive(Debug, Clone)]
pub struct FailedRecord<'a> {
    pub record_id: &'a str,
    pub data: &'a [u8],
    pub attempts: u32,
    pub error: &'a str,
}

pub struct FailureWriter {
    target: OnFailure,
    stream: String,
    url: String,
    format: OutputFormat,
    kinesis: Option<KinesisSink>,
    s3: Option<aws_sdk_s3::Client>,
    objects: u64,
    /// Records written so far.
    pub written: u64,
}

impl FailureWriter {
    pub fn new(target: OnFailure, stream: &str, url: &str, format: OutputFormat) -> Self {
        FailureWriter {
            target,
            stream: stream.to_string(),
            url: url.to_string(),
            format,
            kinesis: None,
            s3: None,
            objects: 0,
            written: 0,
        }
    }

    /// One JSON line (newline-terminated) per record.
    pub fn lines(&self, records: &[FailedRecord<'_>]) -> Vec<Vec<u8>> {
        let failed_at = crate::time::format_timestamp(crate::time::now_millis());
        records
            .iter()
            .map(|r| {
                let text = String::from_utf8_lossy(r.data);
                let row = text.trim_end_matches(['\r', '\n']);
                // A JSON row stays an object; a CSV line is a string.
                let record = match self.format {
                    OutputFormat::Json => serde_json::from_str(row).ok(),
                    OutputFormat::Csv => None,
                }
                .unwrap_or_else(|| serde_json::Value::String(row.to_string()));
                let mut line = serde_json::to_vec(&serde_json::json!({
                    "stream": self.stream,
                    "url": self.url,
                    "record_id": r.record_id,
                    "attempts": r.attempts,
                    "error": r.error,
                    "failed_at": failed_at,
                    "record": record,
                }))
                .unwrap_or_default();
                line.push(b'\n');
                line
            })
            .collect()
    }

    pub async fn write(&mut self, records: &[FailedRecord<'_>]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let lines = self.lines(records);
        tracing::error!(
            stream = %self.stream,
            url = %self.url,
            records = records.len(),
            error = %records[0].error,
            "records could not be delivered to the HTTP endpoint after retries; sent to the on-failure destination"
        );
        match self.target.clone() {
            OnFailure::File { path } => append(&path, &lines).await?,
            OnFailure::Kinesis(config) => {
                let parked = config.parked_path.clone();
                let sink = self
                    .kinesis
                    .get_or_insert_with(|| KinesisSink::new(config, OutputFormat::Json));
                let out = lines
                    .iter()
                    .zip(records)
                    .map(|(l, r)| out_record(l.strip_suffix(b"\n").unwrap_or(l).to_vec(), r.record_id))
                    .collect();
                if let Err(e) = sink.deliver(out).await {
                    tracing::error!(error = %e, "the on-failure Kinesis stream failed; writing to the fallback file");
                    append(&parked, &lines).await?;
                }
            }
            OnFailure::S3 {
                connection,
                prefix,
                fallback_path,
            } => {
                if self.s3.is_none() {
                    self.s3 = Some(crate::connectors::s3::client::client(&connection, 3).await);
                }
                let client = self.s3.clone().expect("set above");
                self.objects += 1;
                let now = crate::time::now_millis();
                let hour = chrono::DateTime::from_timestamp_millis(now)
                    .unwrap_or_default()
                    .format("%Y/%m/%d/%H");
                let key = format!("{prefix}{}/{hour}/{now}-{}.jsonl", self.stream, self.objects);
                let body = lines.concat();
                let put = client
                    .put_object()
                    .bucket(&connection.bucket)
                    .key(&key)
                    .content_type("application/x-ndjson")
                    .body(aws_sdk_s3::primitives::ByteStream::from(body))
                    .send()
                    .await;
                if let Err(e) = put {
                    let e = crate::connectors::s3::client::error_code(&e);
                    tracing::error!(bucket = %connection.bucket, key = %key, error = %e,
                        "the on-failure S3 bucket failed; writing to the fallback file");
                    append(&fallback_path, &lines).await?;
                }
            }
        }
        self.written += records.len() as u64;
        Ok(())
    }
}

async fn append(path: &Path, lines: &[Vec<u8>]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| SluiceError::runtime(format!("creating {}: {e}", dir.display())))?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| SluiceError::runtime(format!("opening {}: {e}", path.display())))?;
    file.write_all(&lines.concat())
        .await
        .map_err(|e| SluiceError::runtime(format!("writing {}: {e}", path.display())))?;
    file.flush()
        .await
        .map_err(|e| SluiceError::runtime(format!("writing {}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_gets_one_json_line_per_record_with_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/failed.jsonl");
        let mut w = FailureWriter::new(
            OnFailure::File { path: path.clone() },
            "ALERTS",
            "http://x/hook",
            OutputFormat::Json,
        );
        let records = [FailedRecord {
            record_id: "7",
            data: br#"{"A":1}"#,
            attempts: 3,
            error: "HTTP status 500",
        }];
        w.write(&records).await.unwrap();
        w.write(&records).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["record"], serde_json::json!({"A": 1}));
        assert_eq!(lines[0]["error"], "HTTP status 500");
        assert_eq!(lines[0]["attempts"], 3);
        assert_eq!(lines[0]["record_id"], "7");
        assert_eq!(lines[0]["stream"], "ALERTS");
    }
}
