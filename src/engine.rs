//! The embedding API: run an application and get its output streams back.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;

use crate::app::AppSpec;
use crate::error::Result;
use crate::time::Millis;

/// Where time comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeMode {
    /// ROWTIMEs come from the recording; the end of input advances time to `flush_at`
    /// (or closes every window when None).
    Recorded { flush_at: Option<Millis> },
    /// ROWTIME is the clock at ingest; rowtime bounds are emitted from the wall clock
    /// every `bound_interval_ms` so windows close when input goes quiet (A19).
    WallClock { bound_interval_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub time: TimeMode,
    /// Durable state: checkpoints in a folder, and resuming from the last one.
    pub checkpoints: Option<CheckpointOptions>,
}

impl RunOptions {
    pub fn new(time: TimeMode) -> Self {
        RunOptions {
            time,
            checkpoints: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    pub state_dir: std::path::PathBuf,
    /// How often a checkpoint is taken (default 10 s).
    pub interval_ms: u64,
    /// Discard the state of a different application instead of refusing to start.
    pub fresh: bool,
}

/// The rows of every output whose destination is [`crate::app::DestinationSpec::Collect`],
/// keyed by stream name. Each batch has the stream's declared columns followed by
/// ROWTIME as the last column.
#[derive(Debug, Default)]
pub struct RunOutput {
    pub streams: HashMap<String, Vec<RecordBatch>>,
}

/// Runs an application to the end of its inputs and returns the collected outputs.
pub async fn run(app: &AppSpec, options: RunOptions) -> Result<RunOutput> {
    crate::runtime::run_app(app, options).await
}
