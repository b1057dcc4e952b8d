//! The sink side: what every sink connector implements. The tasks that drive a sink
//! (at least once, exactly once) are the runtime's: `crate::runtime::delivery`.

use datafusion::arrow::array::RecordBatch;
use futures::future::BoxFuture;

use crate::error::Result;

pub trait Sink: Send {
    /// Delivers the rows of one batch (declared columns, then ROWTIME).
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>>;
    /// The stream ended: flush and close.
    fn finish(&mut self) -> BoxFuture<'_, Result<()>>;

    /// Flushes and returns what a restart needs to continue exactly here (for a file:
    /// its length, so rows written after the checkpoint are cut off and written again
    /// once, not twice). None when the sink cannot take back what it delivered.
    fn checkpoint(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async { Ok(None) })
    }

    /// Exactly-once mode: every row of epoch `checkpoint` has been written (the delivery
    /// task calls this after publishing each epoch, again with the same id and the same
    /// rows when a restart replays it). A sink that names its output after the epoch
    /// (S3 objects) writes it now, so a replay overwrites instead of adding a copy.
    fn end_epoch(&mut self, _checkpoint: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// When [`Sink::tick`] is due even if no row arrives (a buffering sink's interval);
    /// None: never. Asked again after every message and tick.
    fn next_tick(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// The time [`Sink::next_tick`] named has come: flush what is due.
    fn tick(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// Encodes rows as JSON lines or CSV onto any async writer (stdout, a file).
pub struct LineSink<W> {
    writer: W,
    format: crate::app::OutputFormat,
    buffer: Vec<u8>,
    pub rows: u64,
    /// Bytes written so far (including what was there when a restart resumed).
    pub written: u64,
    /// A file can be cut back to a checkpoint; a terminal cannot.
    pub rewindable: bool,
    /// Where the lines go, as an error names it ("standard output", "file out/a.jsonl").
    target: String,
}

impl<W: tokio::io::AsyncWrite + Unpin + Send> LineSink<W> {
    pub fn new(writer: W, format: crate::app::OutputFormat, target: impl Into<String>) -> Self {
        LineSink {
            writer,
            format,
            buffer: Vec::new(),
            rows: 0,
            written: 0,
            rewindable: false,
            target: target.into(),
        }
    }

    /// An outside failure (a full disk, a closed pipe), naming where the lines were going.
    fn failed(&self, doing: &str, e: std::io::Error) -> crate::SluiceError {
        crate::SluiceError::runtime(format!("{doing} {}: {e}", self.target))
    }
}

impl<W: tokio::io::AsyncWrite + Unpin + Send> Sink for LineSink<W> {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            self.buffer.clear();
            match self.format {
                crate::app::OutputFormat::Json => {
                    super::formats::encode::encode_json_lines(batch, false, &mut self.buffer)?
                }
                crate::app::OutputFormat::Csv => {
                    super::formats::encode::encode_csv(batch, ",", false, &mut self.buffer)?
                }
            }
            self.rows += batch.num_rows() as u64;
            self.written += self.buffer.len() as u64;
            if let Err(e) = self.writer.write_all(&self.buffer).await {
                return Err(self.failed("writing to", e));
            }
            // Alerts are read as they fire: do not sit on them in a buffer.
            if let Err(e) = self.writer.flush().await {
                return Err(self.failed("writing to", e));
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            match self.writer.flush().await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.failed("flushing", e)),
            }
        })
    }

    fn checkpoint(&mut self) -> BoxFuture<'_, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            if !self.rewindable {
                return Ok(None);
            }
            if let Err(e) = self.writer.flush().await {
                return Err(self.failed("flushing", e));
            }
            Ok(Some(self.written.to_le_bytes().to_vec()))
        })
    }
}
