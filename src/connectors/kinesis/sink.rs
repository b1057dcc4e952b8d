//! The Kinesis sink: PutRecords in requests of at most 500 records and 5 MB, retrying
//! only the records that failed, keeping order per partition key, and parking what
//! still fails after the retry budget in a file an operator can replay.
//!
//! Order per key: a request never holds two records with the same partition key, and a
//! record that failed goes back ahead of every later record, so a later record of its
//! key can never overtake it. With few distinct keys this means small requests; with a
//! random key (no key column) every request is full.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use futures::future::BoxFuture;
use rand::Rng;
use tokio::io::AsyncWriteExt;

use super::client::{client, error_code};
use super::config::KinesisSinkConfig;
use crate::app::OutputFormat;
use crate::connectors::formats::encode::{encode_csv, encode_json_lines};
use crate::connectors::sink::Sink;
use crate::error::{Result, SluiceError};

/// PutRecords limits.
pub const MAX_RECORDS_PER_REQUEST: usize = 500;
pub const MAX_BYTES_PER_REQUEST: usize = 5 * 1024 * 1024;

/// One record on its way out.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    attempts: u32,
    last_error: String,
}

impl OutRecord {
    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

pub struct KinesisSink {
    config: KinesisSinkConfig,
    format: OutputFormat,
    client: Option<Client>,
    buffer: Vec<u8>,
    pub delivered: u64,
    pub parked: u64,
}

impl KinesisSink {
    pub fn new(config: KinesisSinkConfig, format: OutputFormat) -> Self {
        KinesisSink {
            config,
            format,
            client: None,
            buffer: Vec::new(),
            delivered: 0,
            parked: 0,
        }
    }

    /// The rows of `batch` as Kinesis records: JSON (one object per record, as KDA
    /// wrote them) or CSV (one newline-terminated line per record).
    pub fn records(&mut self, batch: &RecordBatch) -> Result<Vec<OutRecord>> {
        self.buffer.clear();
        match self.format {
            OutputFormat::Json => encode_json_lines(batch, false, &mut self.buffer)?,
            OutputFormat::Csv => encode_csv(batch, ",", false, &mut self.buffer)?,
        }
        let keep_newline = self.format == OutputFormat::Csv;
        let keys = column_strings(batch, self.config.partition_key.as_deref())?;
        let hashes = column_strings(batch, self.config.explicit_hash_key.as_deref())?;
        let mut rng = rand::rng();
        let mut out = Vec::with_capacity(batch.num_rows());
        for (row, line) in self.buffer.split_inclusive(|b| *b == b'\n').enumerate() {
            let data = if keep_newline {
                line
            } else {
                line.strip_suffix(b"\n").unwrap_or(line)
            };
            let partition_key = keys
                .as_ref()
                .and_then(|k| k[row].clone())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| format!("{:032x}", rng.random::<u128>()));
            out.push(OutRecord {
                data: data.to_vec(),
                partition_key: truncate_key(partition_key),
                explicit_hash_key: hashes.as_ref().and_then(|h| h[row].clone()),
                attempts: 0,
                last_error: String::new(),
            });
        }
        Ok(out)
    }

    async fn client(&mut self) -> Client {
        if self.client.is_none() {
            // Retries are ours (per record), not the SDK's (per request).
            self.client = Some(client(&self.config.connection, 1).await);
        }
        self.client.clone().expect("set above")
    }

    /// Delivers `records` in order per partition key; what fails `max_attempts` times
    /// is parked.
    pub async fn deliver(&mut self, records: Vec<OutRecord>) -> Result<()> {
        let client = self.client().await;
        let mut queue: Vec<(usize, OutRecord)> = records.into_iter().enumerate().collect();
        let mut backoff_attempt = 0u32;
        while !queue.is_empty() {
            let (request, rest) = next_request(queue);
            queue = rest;
            let entries: Vec<PutRecordsRequestEntry> = request
                .iter()
                .map(|(_, r)| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(r.data.clone()))
                        .partition_key(&r.partition_key)
                        .set_explicit_hash_key(r.explicit_hash_key.clone())
                        .build()
                        .map_err(|e| SluiceError::runtime(format!("building a Kinesis record: {e}")))
                })
                .collect::<Result<_>>()?;
            let result = client
                .put_records()
                .stream_name(&self.config.connection.stream_name)
                .set_records(Some(entries))
                .send()
                .await;
            let mut failed = Vec::new();
            match result {
                Ok(response) => {
                    let results = response.records();
                    for (i, (position, mut record)) in request.into_iter().enumerate() {
                        match results.get(i).and_then(|r| r.error_code()) {
                            None if i < results.len() => self.delivered += 1,
                            code => {
                                record.attempts += 1;
                                record.last_error = code.unwrap_or("no result for the record").to_string();
                                failed.push((position, record));
                            }
                        }
                    }
                    metrics::counter!("sluice_kinesis_records_put_total", "stream" => self.config.connection.stream_name.clone())
                        .increment((results.len() - failed.len().min(results.len())) as u64);
                }
                Err(e) => {
                    let code = error_code(&e);
                    for (position, mut record) in request {
                        record.attempts += 1;
                        record.last_error = code.clone();
                        failed.push((position, record));
                    }
                }
            }
            if failed.is_empty() {
                backoff_attempt = 0;
                continue;
            }
            metrics::counter!("sluice_kinesis_records_retried_total", "stream" => self.config.connection.stream_name.clone())
                .increment(failed.len() as u64);
            let (give_up, retry): (Vec<_>, Vec<_>) = failed
                .into_iter()
                .partition(|(_, r)| r.attempts >= self.config.max_attempts);
            if !give_up.is_empty() {
                self.park(give_up.into_iter().map(|(_, r)| r).collect()).await?;
            }
            // Failed records go back to their places, ahead of everything after them.
            queue.extend(retry);
            queue.sort_by_key(|(position, _)| *position);
            let ceiling = (100u64 << backoff_attempt.min(7)).min(10_000);
            backoff_attempt += 1;
            let wait = rand::rng().random_range(ceiling / 2..=ceiling);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        Ok(())
    }

    /// Writes records that could not be delivered, with the reason, to the parked file.
    async fn park(&mut self, records: Vec<OutRecord>) -> Result<()> {
        let path = &self.config.parked_path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| SluiceError::runtime(format!("creating {}: {e}", dir.display())))?;
        }
        let mut text = Vec::new();
        for r in &records {
            let line = serde_json::json!({
                "stream": self.config.connection.stream_name,
                "partition_key": r.partition_key,
                "explicit_hash_key": r.explicit_hash_key,
                "data": String::from_utf8_lossy(&r.data),
                "attempts": r.attempts,
                "reason": r.last_error,
                "parked_at": crate::time::now_millis(),
            });
            text.extend_from_slice(line.to_string().as_bytes());
            text.push(b'\n');
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| SluiceError::runtime(format!("opening {}: {e}", path.display())))?;
        file.write_all(&text)
            .await
            .map_err(|e| SluiceError::runtime(format!("writing {}: {e}", path.display())))?;
        self.parked += records.len() as u64;
        metrics::counter!("sluice_kinesis_records_parked_total", "stream" => self.config.connection.stream_name.clone())
            .increment(records.len() as u64);
        tracing::error!(
            stream = %self.config.connection.stream_name,
            records = records.len(),
            reason = %records[0].last_error,
            parked = %path.display(),
            "records could not be delivered to Kinesis after retries; parked for replay"
        );
        Ok(())
    }
}

/// Splits the queue (sorted by position) into the next request and the rest: records
/// in order, at most one per partition key, within the request limits.
#[allow(clippy::type_complexity)]
fn next_request(queue: Vec<(usize, OutRecord)>) -> (Vec<(usize, OutRecord)>, Vec<(usize, OutRecord)>) {
    let mut request = Vec::new();
    let mut rest = Vec::new();
    let mut keys: HashSet<String> = HashSet::new();
    let mut bytes = 0;
    let mut full = false;
    for (position, record) in queue {
        if full || keys.contains(&record.partition_key) {
            rest.push((position, record));
            continue;
        }
        if request.len() == MAX_RECORDS_PER_REQUEST
            || (!request.is_empty() && bytes + record.size() > MAX_BYTES_PER_REQUEST)
        {
            full = true;
            rest.push((position, record));
            continue;
        }
        bytes += record.size();
        keys.insert(record.partition_key.clone());
        request.push((position, record));
    }
    (request, rest)
}

/// Kinesis partition keys are at most 256 characters.
fn truncate_key(mut key: String) -> String {
    if key.chars().count() > 256 {
        key = key.chars().take(256).collect();
    }
    key
}

/// The values of the named column as strings (NULL as None), or None when no column
/// is configured.
fn column_strings(batch: &RecordBatch, column: Option<&str>) -> Result<Option<Vec<Option<String>>>> {
    let Some(name) = column else { return Ok(None) };
    let schema = batch.schema();
    let index = schema
        .index_of(name)
        .ok()
        .or_else(|| schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)))
        .ok_or_else(|| {
            SluiceError::config(format!(
                "the Kinesis output's key column {name} is not a column of the output stream"
            ))
        })?;
    let text = cast(batch.column(index), &DataType::Utf8).map_err(|e| SluiceError::runtime(e.to_string()))?;
    let text = text.as_string::<i32>();
    Ok(Some(
        (0..text.len())
            .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
            .collect(),
    ))
}

impl Sink for KinesisSink {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let records = self.records(batch)?;
            self.deliver(records).await
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Wraps records for [`KinesisSink::deliver`] (benchmarks and tests build them by hand).
pub fn out_record(data: Vec<u8>, partition_key: &str) -> OutRecord {
    OutRecord {
        data,
        partition_key: partition_key.to_string(),
        explicit_hash_key: None,
        attempts: 0,
        last_error: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(keys: &[&str]) -> Vec<(usize, OutRecord)> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (i, out_record(vec![b'x'; 10], k)))
            .collect()
    }

    #[test]
    fn a_request_holds_each_key_once_and_keeps_order() {
        let (request, rest) = next_request(queue(&["a", "b", "a", "c", "b", "a"]));
        let taken: Vec<usize> = request.iter().map(|(p, _)| *p).collect();
        let left: Vec<usize> = rest.iter().map(|(p, _)| *p).collect();
        assert_eq!(taken, [0, 1, 3]);
        assert_eq!(left, [2, 4, 5]);
        let (request, rest) = next_request(rest);
        assert_eq!(request.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(rest.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_request_stops_at_500_records_and_5_mb() {
        let keys: Vec<String> = (0..1200).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (request, rest) = next_request(queue(&refs));
        assert_eq!(request.len(), 500);
        assert_eq!(rest.len(), 700);
        let big: Vec<(usize, OutRecord)> = (0..4)
            .map(|i| (i, out_record(vec![0; 2 * 1024 * 1024], &format!("k{i}"))))
            .collect();
        let (request, rest) = next_request(big);
        assert_eq!(request.len(), 2, "two 2 MB records fit in 5 MB, three do not");
        assert_eq!(rest.len(), 2);
    }
}
