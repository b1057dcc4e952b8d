//! Files: newline-delimited records in (plain, or a recording with fixed ROWTIMEs), and
//! JSON lines / CSV out.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::RawRecord;
use super::sink::LineSink;
use super::source::{PendingRecords, Source, SourceContext};
use crate::app::OutputFormat;
use crate::error::{Result, SluiceError};
use crate::time::parse_timestamp;

fn io_error(path: &Path, source: std::io::Error) -> SluiceError {
    SluiceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One line of a recording (the conformance input format).
#[derive(Deserialize)]
struct RecordedLine<'a> {
    rowtime: &'a str,
    #[serde(default)]
    arrival: Option<&'a str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    partition_key: Option<String>,
    #[serde(default)]
    sequence_number: Option<String>,
    /// The shard a recorded Kinesis record came from (the SHARD_ID column).
    #[serde(default)]
    shard_id: Option<String>,
}

/// Parses one recording line into a record. A JSON string payload (a CSV record) is
/// unescaped; any other payload is kept as its JSON text.
pub fn parse_recorded_line(line: &str) -> std::result::Result<RawRecord, String> {
    let rec: RecordedLine = serde_json::from_str(line).map_err(|e| format!("bad recording line: {e}"))?;
    let rowtime = parse_timestamp(rec.rowtime).ok_or_else(|| format!("bad rowtime '{}'", rec.rowtime))?;
    let arrival = match rec.arrival {
        Some(a) => Some(parse_timestamp(a).ok_or_else(|| format!("bad arrival '{a}'"))?),
        None => None,
    };
    let raw = rec.data.get();
    let data = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw)
            .map_err(|e| format!("bad data string: {e}"))?
            .into_bytes()
    } else {
        raw.as_bytes().to_vec()
    };
    Ok(RawRecord {
        data,
        rowtime: Some(rowtime),
        arrival,
        partition_key: rec.partition_key,
        sequence_number: rec.sequence_number,
        shard_id: rec.shard_id.map(std::sync::Arc::from),
    })
}

/// The record a line of input holds: the line without its `\n` or `\r\n`, and, on the
/// first line of a file, without a UTF-8 byte order mark (editors on Windows write one).
/// Bytes, not text: a line that is not UTF-8 is still a record, which the decoder
/// sends to `error_stream`, instead of an error that stops the input.
pub(crate) fn line_record(line: &[u8], first: bool) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if first {
        line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
    } else {
        line
    }
}

/// Whether a line holds no record (empty or blanks only).
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

pub struct FileSource {
    pub path: PathBuf,
    /// A recording: each line carries its ROWTIME (see `parse_recorded_line`).
    pub recorded: bool,
    /// Lines at the start that are no records (a CSV header); they count as read.
    pub skip_header_lines: u64,
}

impl Source for FileSource {
    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let file = tokio::fs::File::open(&self.path)
                .await
                .map_err(|e| io_error(&self.path, e))?;
            let mut lines = BufReader::with_capacity(1 << 20, file).split(b'\n');
            let mut batch = PendingRecords::default();
            let mut line_no = 0u64;
            // Position = lines consumed; a restart skips the lines a checkpoint covered.
            let skip = ctx.resume.unwrap_or(0).max(self.skip_header_lines);
            while let Some(line) = lines.next_segment().await.map_err(|e| io_error(&self.path, e))? {
                line_no += 1;
                let data = line_record(&line, line_no == 1);
                if line_no <= skip || is_blank(data) {
                    continue;
                }
                let at = || format!("{}:{line_no}", self.path.display());
                let record = if self.recorded {
                    // A recording is a test's own file: a broken line stops it, named.
                    let text = std::str::from_utf8(data)
                        .map_err(|e| SluiceError::config(format!("{}: the recording line is not UTF-8: {e}", at())))?;
                    parse_recorded_line(text).map_err(|e| SluiceError::config(format!("{}: {e}", at())))?
                } else {
                    RawRecord {
                        data: data.to_vec(),
                        ..Default::default()
                    }
                };
                // A recording fixes ROWTIMEs: publish a batch whenever it is full.
                if batch.push(record) {
                    ctx.publish(batch.records()).await;
                    batch.clear();
                    ctx.checkpoint_point(line_no).await;
                }
                if *ctx.shutdown.borrow() {
                    break;
                }
            }
            ctx.publish(batch.records()).await;
            ctx.finish(line_no.max(skip)).await;
            Ok(())
        })
    }
}

/// A file output. With `resume` (the state a checkpoint saved), the file is cut back
/// to the length it had at that checkpoint and appended to; otherwise it starts empty.
pub async fn file_sink(
    path: &Path,
    format: OutputFormat,
    resume: Option<&[u8]>,
) -> Result<LineSink<tokio::io::BufWriter<tokio::fs::File>>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(|e| io_error(dir, e))?;
    }
    let length = match resume {
        Some(state) => Some(u64::from_le_bytes(
            state
                .try_into()
                .map_err(|_| SluiceError::runtime("corrupt file-sink checkpoint"))?,
        )),
        None => None,
    };
    let file = match length {
        Some(len) => {
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .await
                .map_err(|e| io_error(path, e))?;
            // Cutting back a file that is shorter than the checkpoint says would pad it
            // with NUL bytes and lose the rows that were there: it was truncated or
            // replaced while the application was down, so the state no longer describes it.
            let found = file.metadata().await.map_err(|e| io_error(path, e))?.len();
            if found < len {
                return Err(SluiceError::config(format!(
                    "output file {} has {found} bytes, but the checkpoint to resume from says it had {len}: \
                     it was truncated, replaced or deleted while the application was down. Put the file \
                     back, or run with --fresh to discard the state and write the output from the beginning",
                    path.display()
                )));
            }
            file.set_len(len).await.map_err(|e| io_error(path, e))?;
            let mut file = file;
            tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::End(0))
                .await
                .map_err(|e| io_error(path, e))?;
            file
        }
        None => tokio::fs::File::create(path).await.map_err(|e| io_error(path, e))?,
    };
    let mut sink = LineSink::new(
        tokio::io::BufWriter::new(file),
        format,
        format!("output file {}", path.display()),
    );
    sink.written = length.unwrap_or(0);
    sink.rewindable = true;
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resumed_output_is_cut_back_but_a_shorter_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, vec![b'x'; 200]).unwrap();
        let checkpointed = 100u64.to_le_bytes();
        drop(file_sink(&path, OutputFormat::Json, Some(&checkpointed)).await.unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), vec![b'x'; 100]);

        // Truncated while the application was down: refused, and the file is untouched.
        std::fs::write(&path, b"short").unwrap();
        let err = file_sink(&path, OutputFormat::Json, Some(&checkpointed))
            .await
            .err()
            .expect("a file shorter than its checkpoint is refused")
            .to_string();
        assert!(err.contains("has 5 bytes") && err.contains("--fresh"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"short");

        // Deleted: the same.
        std::fs::remove_file(&path).unwrap();
        assert!(file_sink(&path, OutputFormat::Json, Some(&checkpointed)).await.is_err());
    }
}
