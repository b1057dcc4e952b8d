//! The embedding API: run an application to its end and get its output streams back
//! ([`run`]), or start it and hold its handle while it runs ([`start`]): read its
//! counters, attach a reader to any of its streams, refresh a reference table, stop it.

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
    /// The counters the run updates, for a caller that watches them from the start; a
    /// new set, named after the application, when None (the handle has it either way).
    pub metrics: Option<std::sync::Arc<crate::runtime::metrics::Metrics>>,
    /// When outputs publish their rows (exactly-once needs `checkpoints`).
    pub delivery: Delivery,
    /// Memory for operator state, split evenly across the stateful operators that can
    /// spill (tumbling GROUP BY, sliding and stagger windows); past its share, an
    /// operator spills to disk and keeps going. None: unlimited.
    pub memory_budget_bytes: Option<usize>,
}

/// Output semantics (README, "State, checkpoints and restarts").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Rows are published as soon as they are computed, as KDA did; after a crash the
    /// rows since the last checkpoint are published again (a file is cut back instead).
    #[default]
    AtLeastOnce,
    /// A row is published once the checkpoint covering it has committed, and carries a
    /// deterministic `ROW_ID` (`crate::runtime::row_id`). Files are exact; streams may
    /// repeat a row after a crash, identical, with the same `ROW_ID`. Latency: up to a
    /// checkpoint interval.
    ExactlyOnce,
}

impl RunOptions {
    pub fn new(time: TimeMode) -> Self {
        RunOptions {
            time,
            checkpoints: None,
            metrics: None,
            delivery: Delivery::AtLeastOnce,
            memory_budget_bytes: None,
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

pub use crate::runtime::handle::{AppHandle, RefreshError, RunningApp, StreamInfo};
pub use crate::runtime::tap::{DEFAULT_READER_BATCHES, StreamReader};

/// Runs an application to the end of its inputs and returns the collected outputs.
pub async fn run(app: &AppSpec, options: RunOptions) -> Result<RunOutput> {
    crate::runtime::run_app(app, options).await
}

/// Starts an application and returns its handle once every task is running (after
/// planning, and restoring from the state folder when there is one). The run goes on
/// until its inputs end or [`AppHandle::stop`]; [`RunningApp::wait`] waits for its end.
pub async fn start(app: &AppSpec, options: RunOptions) -> Result<RunningApp> {
    crate::runtime::start(app, options).await
}
