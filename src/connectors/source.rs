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
            let out = &self.outputs[self.next_output % self.outputs.len()];
            self.next_output += 1;
            out.send(Message::Data(decoded.batch)).await;
        }
    }

    /// Advances time on every stream of this input.
    pub async fn bound(&mut self, t: Millis) {
        for out in &self.outputs {
            out.send(Message::Bound(t)).await;
        }
    }

    /// Ends the input: advances time to where the end of input takes it (everything, or
    /// `flush_at` for a recording), then ends every stream.
    pub async fn finish(&mut self) {
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
