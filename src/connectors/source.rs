//! The source side: what every source connector gets to publish records.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use super::RawRecord;
use super::formats::RecordDecoder;
use crate::engine::TimeMode;
use crate::error::{ErrorRow, Result};
use crate::operators::Message;
use crate::runtime::hub::StreamWriter;
use crate::time::{Millis, now_millis};

/// How many records a source decodes into one batch at most.
pub const BATCH_RECORDS: usize = 4096;

pub trait Source: Send {
    /// Reads until the input ends or `ctx.shutdown` fires, publishing through `ctx`.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>>;
}

/// The publishing side of one input: its in-application streams (one per unit of
/// parallelism), its decoder, and the error stream.
pub struct SourceContext {
    pub input: String,
    pub outputs: Vec<StreamWriter>,
    pub decoder: RecordDecoder,
    pub errors: mpsc::UnboundedSender<Vec<ErrorRow>>,
    pub time: TimeMode,
    pub shutdown: watch::Receiver<bool>,
    /// ROWTIMEs handed out so far never decrease, even if the clock steps back.
    last_rowtime: Millis,
    next_output: usize,
    pub metrics: std::sync::Arc<crate::runtime::metrics::Metrics>,
    /// Where checkpoints are reported, when the application keeps state.
    checkpoints: Option<crate::state::CheckpointHandle>,
    last_barrier: u64,
    /// The position saved by the checkpoint a restart resumes from: the source skips
    /// what comes before it.
    pub resume: Option<u64>,
    /// The same position as saved, for sources whose position is not one number (a
    /// Kinesis stream keeps a sequence number per shard).
    pub resume_bytes: Option<Vec<u8>>,
}

impl SourceContext {
    pub fn new(
        input: String,
        outputs: Vec<StreamWriter>,
        decoder: RecordDecoder,
        errors: mpsc::UnboundedSender<Vec<ErrorRow>>,
        time: TimeMode,
        shutdown: watch::Receiver<bool>,
        metrics: std::sync::Arc<crate::runtime::metrics::Metrics>,
    ) -> Self {
        SourceContext {
            input,
            outputs,
            decoder,
            errors,
            time,
            shutdown,
            last_rowtime: Millis::MIN,
            next_output: 0,
            metrics,
            checkpoints: None,
            last_barrier: 0,
            resume: None,
            resume_bytes: None,
        }
    }

    /// Takes part in checkpoints, resuming from `resume` (the saved position).
    pub fn with_checkpoints(mut self, handle: crate::state::CheckpointHandle, resume: Option<Vec<u8>>) -> Self {
        self.last_barrier = *handle.trigger.borrow();
        self.checkpoints = Some(handle);
        self.resume = resume
            .as_deref()
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        self.resume_bytes = resume;
        self
    }

    /// Fires when a checkpoint is triggered, for sources that wait on other things
    /// (a Kinesis source idle between polls must still pass the barrier on).
    pub fn checkpoint_trigger(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.checkpoints.as_ref().map(|c| c.trigger.clone())
    }

    fn part(&self) -> String {
        format!("source/{}", self.input)
    }

    /// Called by a source between batches, with its position (what a restart should
    /// skip to): when a checkpoint was triggered, saves the position and emits the
    /// barrier on every stream of the input.
    pub async fn checkpoint_point(&mut self, position: u64) {
        self.checkpoint_point_with(|| position.to_le_bytes().to_vec()).await
    }

    /// As [`Self::checkpoint_point`], for a position encoded by the source; `position`
    /// is only called when a checkpoint is due.
    pub async fn checkpoint_point_with(&mut self, position: impl FnOnce() -> Vec<u8>) {
        let Some(c) = &self.checkpoints else { return };
        let id = *c.trigger.borrow();
        if id > self.last_barrier {
            self.last_barrier = id;
            c.ack(id, &self.part(), Some(position()));
            for out in &self.outputs {
                out.send(Message::Barrier(id)).await;
            }
        }
    }

    /// The ingest clock: wall-clock milliseconds, never going backwards.
    pub fn clock(&mut self) -> Millis {
        self.last_rowtime = self.last_rowtime.max(now_millis());
        self.last_rowtime
    }

    /// Decodes and publishes records to the next in-application stream (round robin
    /// when the input has parallelism > 1). Bad records go to `error_stream`.
    pub async fn publish(&mut self, records: &[RawRecord]) {
        let index = self.next_output % self.outputs.len();
        self.next_output += 1;
        self.publish_to(index, records).await
    }

    /// Decodes and publishes records to the input's `index`-th in-application stream
    /// (a source that assigns shards to streams picks the stream itself).
    pub async fn publish_to(&mut self, index: usize, records: &[RawRecord]) {
        if records.is_empty() {
            return;
        }
        let default_rowtime = match self.time {
            TimeMode::WallClock { .. } => self.clock(),
            TimeMode::Recorded { .. } => records
                .iter()
                .find_map(|r| r.rowtime)
                .unwrap_or(self.last_rowtime.max(0)),
        };
        self.metrics.add_in(records.len() as u64, default_rowtime);
        let decoded = self.decoder.decode(records, default_rowtime);
        if !decoded.errors.is_empty() {
            let _ = self.errors.send(decoded.errors);
        }
        if decoded.batch.num_rows() > 0 {
            let out = &self.outputs[index % self.outputs.len()];
            out.send(Message::Data(decoded.batch)).await;
        }
    }

    /// Advances time on every stream of this input.
    pub async fn bound(&mut self, t: Millis) {
        for out in &self.outputs {
            out.send(Message::Bound(t)).await;
        }
    }

    /// How many in-application streams this input feeds (its parallelism).
    pub fn stream_count(&self) -> usize {
        self.outputs.len()
    }

    /// Stops an unbounded input (shutdown): saves its final position and ends every
    /// stream without advancing time, so open windows stay open in the saved state and
    /// a restart continues them instead of emitting them early.
    pub async fn stop(&mut self, position: Vec<u8>) {
        if let Some(c) = &self.checkpoints {
            c.finish(&self.part(), Some(position));
        }
        for out in &self.outputs {
            out.send(Message::End).await;
        }
    }

    /// Ends the input: advances time to where the end of input takes it (everything, or
    /// `flush_at` for a recording), then ends every stream.
    pub async fn finish(&mut self, position: u64) {
        if let Some(c) = &self.checkpoints {
            c.finish(&self.part(), Some(position.to_le_bytes().to_vec()));
        }
        let t = match self.time {
            TimeMode::Recorded { flush_at: Some(t) } => t,
            _ => Millis::MAX,
        };
        self.bound(t).await;
        for out in &self.outputs {
            out.send(Message::End).await;
        }
    }

    /// The period of wall-clock bounds, when time comes from the clock.
    pub fn bound_interval(&self) -> Option<std::time::Duration> {
        match self.time {
            TimeMode::WallClock { bound_interval_ms } => {
                Some(std::time::Duration::from_millis(bound_interval_ms.max(10)))
            }
            TimeMode::Recorded { .. } => None,
        }
    }
}
