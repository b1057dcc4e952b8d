//! The handle of a running application: what a caller (the CLI, the HTTP server, an
//! embedding program) can do while it runs. Read its counters, list its streams and
//! attach a reader to any of them from now on, refresh a reference table, stop it, and
//! wait for its end.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::tap::{StreamReader, Taps};
use crate::engine::RunOutput;
use crate::error::{Result, SluiceError};
use crate::planner::reference::{ReferenceData, RefreshOutcome};

/// One in-application stream as the handle shows it.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub name: String,
    /// Its columns, ROWTIME last.
    pub schema: SchemaRef,
    pub(crate) taps: Arc<Taps>,
}

impl StreamInfo {
    /// How many readers are attached from outside the application now.
    pub fn attached_readers(&self) -> usize {
        self.taps.readers()
    }
}

/// A cheap, clonable view of a running application.
#[derive(Clone)]
pub struct AppHandle {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    metrics: Arc<Metrics>,
    streams: BTreeMap<String, StreamInfo>,
    references: BTreeMap<String, Arc<ReferenceData>>,
    stop: watch::Sender<bool>,
}

impl AppHandle {
    pub(crate) fn new(
        name: &str,
        metrics: Arc<Metrics>,
        streams: impl IntoIterator<Item = StreamInfo>,
        references: impl IntoIterator<Item = Arc<ReferenceData>>,
        stop: watch::Sender<bool>,
    ) -> Self {
        AppHandle {
            shared: Arc::new(Shared {
                name: name.to_string(),
                metrics,
                streams: streams.into_iter().map(|s| (s.name.clone(), s)).collect(),
                references: references.into_iter().map(|r| (r.table().to_string(), r)).collect(),
                stop,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Records in, rows out, error rows, lag and checkpoint figures, updated as it runs.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Every in-application stream (inputs, pumps' targets, `error_stream`), by name.
    pub fn streams(&self) -> impl Iterator<Item = &StreamInfo> {
        self.shared.streams.values()
    }

    pub fn stream(&self, name: &str) -> Option<&StreamInfo> {
        self.shared.streams.get(name)
    }

    /// Attaches a reader to `stream`: it receives the stream's rows from now on, with
    /// room for `capacity` batches; past that it loses batches (counted in
    /// [`StreamReader::dropped_rows`]) and the application never waits for it. It ends
    /// when the application ends.
    pub fn attach(&self, stream: &str, capacity: usize) -> Result<StreamReader> {
        let info = self.shared.streams.get(stream).ok_or_else(|| {
            let names: Vec<&str> = self.shared.streams.keys().map(String::as_str).collect();
            SluiceError::config(format!(
                "no stream \"{stream}\" in application {} (streams: {})",
                self.shared.name,
                names.join(", ")
            ))
        })?;
        Ok(info.taps.attach(&info.name, Arc::clone(&info.schema), capacity))
    }

    /// The reference tables, by name.
    pub fn references(&self) -> impl Iterator<Item = &Arc<ReferenceData>> {
        self.shared.references.values()
    }

    pub fn reference(&self, table: &str) -> Option<&Arc<ReferenceData>> {
        self.shared.references.get(table)
    }

    /// Reloads a reference table now; `trigger` names who asked, in the log and metrics.
    pub async fn refresh_reference(
        &self,
        table: &str,
        trigger: &str,
    ) -> std::result::Result<RefreshOutcome, RefreshError> {
        let data = self.reference(table).ok_or_else(|| {
            let known: Vec<&str> = self.shared.references.keys().map(String::as_str).collect();
            RefreshError::UnknownTable(format!("no reference table \"{table}\" (tables: {})", known.join(", ")))
        })?;
        crate::planner::reference::refresh_and_record(data, &self.shared.metrics, trigger)
            .await
            .map_err(RefreshError::Failed)
    }

    /// Asks the application to stop: inputs stop reading, open windows close, outputs
    /// flush, and the run ends (see [`RunningApp::wait`]).
    pub fn stop(&self) {
        let _ = self.shared.stop.send(true);
    }
}

/// Why a refresh did not happen.
#[derive(Debug)]
pub enum RefreshError {
    UnknownTable(String),
    /// The file or object could not be read, or none of its rows fits; the table keeps
    /// its rows.
    Failed(String),
}

/// A running application: its handle, and its tasks to wait for. Dropping it without
/// waiting aborts the run (as a crash would: nothing is flushed).
pub struct RunningApp {
    handle: AppHandle,
    run: super::Run,
    metrics: Arc<Metrics>,
}

impl RunningApp {
    pub(crate) fn new(handle: AppHandle, run: super::Run, metrics: Arc<Metrics>) -> Self {
        RunningApp { handle, run, metrics }
    }

    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// Whether the run has ended (by the end of its inputs, a stop, or an error).
    pub fn is_finished(&self) -> bool {
        self.run.finished()
    }

    /// Waits for the end of the run: the collected outputs, or the error that ended it.
    pub async fn wait(self) -> Result<RunOutput> {
        super::join(self.run, self.metrics).await
    }
}

impl std::ops::Deref for RunningApp {
    type Target = AppHandle;

    fn deref(&self) -> &AppHandle {
        &self.handle
    }
}
