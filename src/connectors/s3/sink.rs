//! The S3 sink: Firehose's delivery to S3, straight from the output stream.
//!
//! Rows are buffered ([`Buffer`]) and written as objects when the buffer reaches its
//! size, when its first row has waited the interval (a timer: `Sink::next_tick`), and at
//! the end of the stream. One flush writes one object per partition (`partition_by`).
//! An object S3 refuses after every attempt goes under the error prefix as Firehose's
//! error records (the reason and each row); if that fails too, the rows are appended to
//! the parked file. Only a failure to write the parked file stops the application.
//!
//! Checkpoints (at-least-once): the buffered rows are the sink's saved state (an Arrow
//! IPC stream), put back into the buffer on restart; rows after the checkpoint come again
//! from the sources.
//!
//! Exactly-once: rows arrive only once their checkpoint has committed, epoch by epoch,
//! and each epoch is written at its end (`Sink::end_epoch`) under keys derived from the
//! epoch id, the part (the size splits an epoch into parts at the same rows every time),
//! the partition and the first row. A restart that replays an epoch therefore overwrites
//! its objects with the same rows. The interval plays no part: objects are cut at
//! checkpoints and at the size.

use std::collections::HashMap;
use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::buffer::Buffer;
use super::config::{ObjectFormat, S3SinkConfig};
use super::key::{self, KeyTemplate, KeyValues};
use super::object::{self, Failure, Rows};
use super::upload::Uploader;
use crate::app::OutputFormat;
use crate::connectors::sink::Sink;
use crate::error::{Result, SluiceError};

/// What an S3 sink has done so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct S3Stats {
    pub objects: u64,
    pub bytes: u64,
    pub rows: u64,
    /// Rows written under the error prefix.
    pub error_rows: u64,
    /// Rows appended to the parked file.
    pub parked_rows: u64,
}

pub struct S3Sink {
    config: S3SinkConfig,
    /// The configured format, else the output's.
    format: ObjectFormat,
    app: String,
    stream: String,
    prefix: KeyTemplate,
    error_prefix: KeyTemplate,
    exactly_once: bool,
    buffer: Buffer,
    /// Exactly-once: full buffers of the epoch being published, written at its end.
    epoch_parts: Vec<Rows>,
    /// Indexes of the `partition_by` columns, found on the first rows.
    partition_columns: Option<Vec<usize>>,
    uploader: Uploader,
    /// Numbers the objects of this run (at-least-once names).
    sequence: u64,
    pub stats: S3Stats,
}

/// How an object's name is made unique.
#[derive(Debug, Clone, Copy)]
enum Naming {
    /// A sequence number of this run and random strings.
    Fresh,
    /// Exactly-once: part `part` of epoch `epoch`, hashed strings.
    Epoch { epoch: u64, part: usize },
}

/// Objects of one flush (one per partition) being written at the same time.
const UPLOADS_AT_ONCE: usize = 4;

/// An object on its way: its rows, name, key and body (or why it has none).
struct Object {
    rows: Rows,
    name: Name,
    key: String,
    body: std::result::Result<Vec<u8>, Failure>,
}

/// One object's name, shared by its key and its error key.
struct Name {
    oldest: crate::time::Millis,
    sequence: String,
    random: String,
    prefix_random: String,
}

impl S3Sink {
    /// The sink of output `stream` of application `app` (whose format is `format` unless
    /// the configuration names one); `saved` is what its last checkpoint saved.
    pub fn new(
        config: S3SinkConfig,
        app: &str,
        stream: &str,
        format: OutputFormat,
        exactly_once: bool,
        saved: Option<&[u8]>,
    ) -> Result<Self> {
        let format = config.format.unwrap_or(ObjectFormat::from_output(format));
        config
            .validate()
            .map_err(|e| SluiceError::config(format!("S3 output {stream}: {e}")))?;
        let prefix = KeyTemplate::parse(&config.prefix).map_err(SluiceError::config)?;
        let error_prefix = KeyTemplate::parse(&config.error_prefix).map_err(SluiceError::config)?;
        let mut buffer = Buffer::new(config.buffer_size_bytes, config.buffer_interval);
        if let Some(saved) = saved {
            for batch in decode_state(saved)? {
                buffer.restore(Rows::encode(format, batch)?);
            }
        }
        Ok(S3Sink {
            uploader: Uploader::new(config.connection.clone(), config.max_attempts, app, stream),
            config,
            format,
            app: app.to_string(),
            stream: stream.to_string(),
            prefix,
            error_prefix,
            exactly_once,
            buffer,
            epoch_parts: Vec::new(),
            partition_columns: None,
            sequence: 0,
            stats: S3Stats::default(),
        })
    }

    /// Buffers a batch; at-least-once, writes the buffers it filled.
    pub async fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let full = self.buffer.push(Rows::encode(self.format, batch.clone())?)?;
        if self.exactly_once {
            self.epoch_parts.extend(full);
            return Ok(());
        }
        for rows in full {
            self.deliver(rows, Naming::Fresh, "size").await?;
        }
        Ok(())
    }

    /// Writes whatever is buffered.
    pub async fn flush(&mut self, reason: &str) -> Result<()> {
        if let Some(rows) = self.buffer.take()? {
            self.deliver(rows, Naming::Fresh, reason).await?;
        }
        Ok(())
    }

    /// Writes the parts of epoch `epoch` under keys derived from it.
    async fn write_epoch(&mut self, epoch: u64) -> Result<()> {
        let mut parts = std::mem::take(&mut self.epoch_parts);
        parts.extend(self.buffer.take()?);
        for (part, rows) in parts.into_iter().enumerate() {
            self.deliver(rows, Naming::Epoch { epoch, part }, "checkpoint").await?;
        }
        Ok(())
    }

    /// Writes `rows` as one object per partition, up to [`UPLOADS_AT_ONCE`] at a time.
    async fn deliver(&mut self, rows: Rows, naming: Naming, reason: &str) -> Result<()> {
        let mut objects = Vec::new();
        for (partition, rows) in self.partitions(rows)? {
            objects.push(self.object(partition, rows, naming));
        }
        let content_type = object::content_type(self.format);
        // Futures made up front: a closure in the stream would not be Send for every lifetime.
        let puts: Vec<_> = objects
            .iter()
            .map(|o| upload(&self.uploader, o, content_type))
            .collect();
        let results: Vec<_> = futures::stream::iter(puts).buffered(UPLOADS_AT_ONCE).collect().await;
        for (o, result) in objects.into_iter().zip(results) {
            match result {
                Ok(bytes) => {
                    self.stats.objects += 1;
                    self.stats.bytes += bytes as u64;
                    self.stats.rows += o.rows.len() as u64;
                    tracing::debug!(bucket = %self.uploader.bucket(), key = %o.key, rows = o.rows.len(), bytes, reason, "S3 object written");
                }
                Err(failure) => self.fail(&o.rows, &o.name, &o.key, failure).await?,
            }
        }
        Ok(())
    }

    /// Names and encodes one partition's object.
    fn object(&mut self, partition: String, rows: Rows, naming: Naming) -> Object {
        let name = self.name(&rows, &partition, naming);
        let key = format!(
            "{}{partition}{}",
            self.prefix.render(&self.values(&name, "")),
            self.file_name(&name, object::extension(self.format, self.config.compression))
        );
        let body = object::body(self.format, self.config.compression, &rows).map_err(|e| Failure {
            output_type: "format-conversion-failed",
            code: "FormatConversionFailed".into(),
            message: e.to_string(),
            attempts: 1,
        });
        Object { rows, name, key, body }
    }

    /// The rows of each partition, in the order partitions first appear.
    fn partitions(&mut self, rows: Rows) -> Result<Vec<(String, Rows)>> {
        if self.config.partition_by.is_empty() {
            return Ok(vec![(String::new(), rows)]);
        }
        let columns = match &self.partition_columns {
            Some(c) => c.clone(),
            None => key::partition_columns(&rows.batch, &self.config.partition_by)?,
        };
        self.partition_columns = Some(columns.clone());
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (row, path) in key::partition_paths(&rows.batch, &columns)?.into_iter().enumerate() {
            let at = *index.entry(path.clone()).or_insert_with(|| {
                groups.push((path, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(row);
        }
        if groups.len() == 1 {
            return Ok(vec![(groups.pop().expect("one").0, rows)]);
        }
        groups
            .into_iter()
            .map(|(path, rows_at)| Ok((path, rows.take(&rows_at)?)))
            .collect()
    }

    fn name(&mut self, rows: &Rows, partition: &str, naming: Naming) -> Name {
        let oldest = rows.oldest();
        match naming {
            Naming::Fresh => {
                self.sequence += 1;
                Name {
                    oldest,
                    sequence: self.sequence.to_string(),
                    random: key::random_string(),
                    prefix_random: key::random_string(),
                }
            }
            Naming::Epoch { epoch, part } => {
                // u64::MAX is the rows after the last barrier, at the end of the stream.
                let epoch = if epoch == u64::MAX {
                    "end".to_string()
                } else {
                    epoch.to_string()
                };
                // The first row (with its ROW_ID) tells apart two runs' "end" epochs.
                let seed = format!(
                    "{}|{}|{epoch}|{part}|{partition}|{}|{}",
                    self.app,
                    self.stream,
                    rows.len(),
                    String::from_utf8_lossy(rows.line(0))
                );
                Name {
                    oldest,
                    sequence: format!("{epoch}-{part}"),
                    random: key::derived_string(&seed),
                    prefix_random: key::derived_string(&format!("{seed}|prefix")),
                }
            }
        }
    }

    fn values<'a>(&self, name: &'a Name, error_output_type: &'a str) -> KeyValues<'a> {
        KeyValues {
            oldest: name.oldest,
            random: &name.prefix_random,
            error_output_type,
        }
    }

    fn file_name(&self, name: &Name, extension: &str) -> String {
        key::object_name(
            &self.app,
            &self.stream,
            name.oldest,
            &name.sequence,
            &name.random,
            extension,
        )
    }

    /// Rows S3 did not take: under the error prefix with the reason, else parked.
    async fn fail(&mut self, rows: &Rows, name: &Name, key: &str, failure: Failure) -> Result<()> {
        let error_key = format!(
            "{}{}",
            self.error_prefix.render(&self.values(name, failure.output_type)),
            self.file_name(name, ".json")
        );
        let records = object::error_records(rows, &failure, key);
        match self.uploader.put(&error_key, &records, "application/x-ndjson").await {
            Ok(()) => {
                self.stats.error_rows += rows.len() as u64;
                ::metrics::counter!("sluice_s3_error_rows_total", "app" => self.app.clone(), "stream" => self.stream.clone())
                    .increment(rows.len() as u64);
                tracing::error!(
                    bucket = %self.uploader.bucket(),
                    key,
                    error_key = %error_key,
                    rows = rows.len(),
                    code = %failure.code,
                    attempts = failure.attempts,
                    "rows could not be delivered to S3; written under the error prefix with the reason"
                );
                Ok(())
            }
            Err(second) => self.park(rows, key, &failure, &error_key, &second).await,
        }
    }

    /// Appends rows neither S3 object could hold to the parked file (JSON lines with
    /// both reasons), for an operator to replay.
    async fn park(
        &mut self,
        rows: &Rows,
        key: &str,
        failure: &Failure,
        error_key: &str,
        second: &Failure,
    ) -> Result<()> {
        let path = self.config.parked_path.clone();
        let mut text = Vec::new();
        for row in 0..rows.len() {
            let line = serde_json::json!({
                "bucket": self.uploader.bucket(),
                "key": key,
                "errorKey": error_key,
                "errorOutputType": failure.output_type,
                "errorCode": failure.code,
                "errorMessage": failure.message,
                "attemptsMade": failure.attempts,
                "errorKeyErrorCode": second.code,
                "parkedAt": crate::time::now_millis(),
                "data": String::from_utf8_lossy(rows.line(row)).trim_end_matches('\n'),
            });
            writeln!(text, "{line}").expect("writing to a Vec");
        }
        append(&path, &text).await?;
        self.stats.parked_rows += rows.len() as u64;
        ::metrics::counter!("sluice_s3_parked_rows_total", "app" => self.app.clone(), "stream" => self.stream.clone())
            .increment(rows.len() as u64);
        tracing::error!(
            bucket = %self.uploader.bucket(),
            key,
            error_key,
            rows = rows.len(),
            code = %failure.code,
            error_key_code = %second.code,
            parked = %path.display(),
            "rows could not be delivered to S3, nor under the error prefix; parked for replay"
        );
        Ok(())
    }
}

/// PUTs one object; its size when written.
async fn upload(uploader: &Uploader, o: &Object, content_type: &str) -> std::result::Result<usize, Failure> {
    match &o.body {
        Ok(body) => uploader.put(&o.key, body, content_type).await.map(|()| body.len()),
        Err(failure) => Err(failure.clone()),
    }
}

async fn append(path: &std::path::Path, text: &[u8]) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let failed =
        |e: std::io::Error| SluiceError::runtime(format!("parking undeliverable S3 rows in {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(failed)?;
    file.write_all(text).await.map_err(failed)?;
    file.flush().await.map_err(failed)
}

/// The buffered rows as one Arrow IPC stream (None when there are none).
fn encode_state(batches: &[RecordBatch]) -> Result<Option<Vec<u8>>> {
    let Some(first) = batches.first() else { return Ok(None) };
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &first.schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(Some(out))
}

fn decode_state(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

impl Sink for S3Sink {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.add(batch))
    }

    fn finish(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.flush("shutdown"))
    }

    fn checkpoint(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        let batches: Vec<RecordBatch> = (self.epoch_parts.iter().chain(self.buffer.parts()))
            .map(|rows| rows.batch.clone())
            .collect();
        Box::pin(async move { encode_state(&batches) })
    }

    fn end_epoch(&mut self, checkpoint: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write_epoch(checkpoint))
    }

    fn next_tick(&self) -> Option<tokio::time::Instant> {
        if self.exactly_once {
            None
        } else {
            self.buffer.deadline()
        }
    }

    fn tick(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.flush("interval"))
    }
}
