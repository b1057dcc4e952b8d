//! Reference tables while the application runs.
//!
//! Each in-application reference table is one [`ReferenceData`]: the current rows as an
//! immutable, versioned [`TableVersion`] behind a lock that is only held to clone or swap
//! an `Arc`. The planner loads the first version (the application does not start when
//! that fails, as in KDA); a refresh (on the reference's interval, or `POST
//! /references/{TABLE}/refresh`) reads the file or S3 object again, decodes it whole and
//! swaps the new version in. Readers ([`crate::operators::lookup_join::LookupJoinOp`])
//! take the current version once per batch, so a batch joins with one whole version,
//! never a mix, and the switch happens between batches.
//!
//! A refresh that cannot read the data, or whose data has rows of which none fits the
//! schema, fails and keeps the current version. Rows that do not fit are left out with
//! a warning, as at the first load. An S3 refresh sends the last ETag as
//! `If-None-Match` and skips the download when the object is unchanged; a file (or an
//! object with a new ETag but the same bytes) whose content did not change keeps the
//! current version too.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::app::{ReferenceLocation, ReferenceSpec};
use crate::connectors::s3::reference::{self as s3ref, Fetched};
use crate::error::{Result, SluiceError};
use crate::runtime::metrics::Metrics;

/// One version of a table's rows. Never changes once published.
#[derive(Debug)]
pub struct TableVersion {
    /// 1 for the rows loaded at start; +1 for each refresh that changed them.
    pub version: u64,
    pub batch: RecordBatch,
}

/// What a successful refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new version is in place.
    Replaced { version: u64, rows: usize, rejected: usize },
    /// The data had not changed (same ETag, or same bytes): the version stays.
    Unchanged { version: u64, rows: usize },
}

impl RefreshOutcome {
    pub fn version(&self) -> u64 {
        match self {
            RefreshOutcome::Replaced { version, .. } | RefreshOutcome::Unchanged { version, .. } => *version,
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            RefreshOutcome::Replaced { rows, .. } | RefreshOutcome::Unchanged { rows, .. } => *rows,
        }
    }
}

/// What the last successful read saw, to tell whether the next one changed anything.
#[derive(Default)]
struct LastRead {
    etag: Option<String>,
    digest: Option<u64>,
    client: Option<aws_sdk_s3::Client>,
}

/// The shared holder of one reference table.
pub struct ReferenceData {
    spec: ReferenceSpec,
    schema: SchemaRef,
    current: RwLock<Arc<TableVersion>>,
    /// The version in `current`, readable without the lock (a fast "anything new?").
    version: AtomicU64,
    /// Serialises refreshes (interval and on demand) and keeps what the last one read.
    refresh: tokio::sync::Mutex<LastRead>,
}

impl std::fmt::Debug for ReferenceData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceData")
            .field("table", &self.spec.table)
            .field("location", &self.spec.location.to_string())
            .field("version", &self.version())
            .finish()
    }
}

impl ReferenceData {
    /// The holder of `spec`'s table before its data is read: no rows, version 0, the
    /// declared columns. Planning needs no more; the runtime reads the data ([`Self::load`])
    /// before the application starts, so `sluice explain` reads no file or object.
    pub fn declared(spec: &ReferenceSpec) -> Result<Self> {
        let (empty, _) =
            decode(spec, b"").map_err(|e| SluiceError::config(format!("reference table {}: {e}", spec.table)))?;
        Ok(ReferenceData::with_version(spec.clone(), empty, 0))
    }

    /// Reads the table's first version (version 1). Fails, naming the table and its file
    /// or object, when the data cannot be read or none of its rows fits the schema: KDA
    /// does not start an application whose reference data does not load.
    pub async fn load(&self) -> Result<()> {
        match self.refresh().await {
            Ok(outcome) => {
                tracing::info!(table = %self.spec.table, location = %self.spec.location, rows = outcome.rows(), "reference table loaded");
                Ok(())
            }
            Err(e) => Err(SluiceError::config(format!(
                "reference table {} ({}): {e}",
                self.spec.table, self.spec.location
            ))),
        }
    }

    /// A holder whose first version is `batch`.
    pub fn new(spec: ReferenceSpec, batch: RecordBatch) -> Self {
        ReferenceData::with_version(spec, batch, 1)
    }

    fn with_version(spec: ReferenceSpec, batch: RecordBatch, version: u64) -> Self {
        ReferenceData {
            schema: batch.schema(),
            spec,
            current: RwLock::new(Arc::new(TableVersion { version, batch })),
            version: AtomicU64::new(version),
            refresh: tokio::sync::Mutex::new(LastRead::default()),
        }
    }

    pub fn table(&self) -> &str {
        &self.spec.table
    }

    pub fn spec(&self) -> &ReferenceSpec {
        &self.spec
    }

    /// The table's columns (every version has them).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The current version: cheap (an `Arc` clone under a read lock).
    pub fn current(&self) -> Arc<TableVersion> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The current version number, without taking the lock.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Publishes `batch` as the next version and returns its number. Readers see the
    /// old version or this one, whole.
    pub fn replace(&self, batch: RecordBatch) -> Result<u64> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(SluiceError::runtime(format!(
                "reference table {}: new rows have columns {:?}, not the table's",
                self.spec.table,
                batch.schema().fields()
            )));
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let version = current.version + 1;
        *current = Arc::new(TableVersion { version, batch });
        self.version.store(version, Ordering::Release);
        Ok(version)
    }

    /// Reads the table's file or object again and swaps the new rows in (see the module
    /// documentation). On failure the current version stays and the error is returned.
    pub async fn refresh(&self) -> std::result::Result<RefreshOutcome, String> {
        let mut last = self.refresh.lock().await;
        let unchanged = || {
            let current = self.current();
            RefreshOutcome::Unchanged {
                version: current.version,
                rows: current.batch.num_rows(),
            }
        };
        let (bytes, etag) = match &self.spec.location {
            ReferenceLocation::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                (bytes, None)
            }
            ReferenceLocation::S3 { connection, key } => {
                if last.client.is_none() {
                    last.client = Some(crate::connectors::s3::client::client(connection, s3ref::MAX_ATTEMPTS).await);
                }
                let client = last.client.as_ref().expect("set above");
                match s3ref::get(client, connection, key, last.etag.as_deref()).await? {
                    Fetched::Unchanged => return Ok(unchanged()),
                    Fetched::Object(object) => (object.bytes, object.etag),
                }
            }
        };
        let new_digest = digest(&bytes);
        if last.digest == Some(new_digest) {
            last.etag = etag;
            return Ok(unchanged());
        }
        let spec = self.spec.clone();
        let (batch, rejected) = tokio::task::spawn_blocking(move || decode(&spec, &bytes))
            .await
            .map_err(|e| format!("decoding failed: {e}"))??;
        let rows = batch.num_rows();
        let version = self.replace(batch).map_err(|e| e.to_string())?;
        last.etag = etag;
        last.digest = Some(new_digest);
        Ok(RefreshOutcome::Replaced {
            version,
            rows,
            rejected,
        })
    }
}

/// Decodes a table's data: the rows and how many were left out (each logged). Data with
/// rows of which none fits the schema is an error: it is not the table's data.
fn decode(spec: &ReferenceSpec, bytes: &[u8]) -> std::result::Result<(RecordBatch, usize), String> {
    let (batch, errors) =
        crate::connectors::formats::decode_table(&spec.schema, bytes, spec.skip_header_lines, &spec.table)
            .map_err(|e| e.to_string())?;
    if batch.num_rows() == 0 && !errors.is_empty() {
        return Err(format!(
            "none of its {} rows fits the table's schema (first: {})",
            errors.len(),
            errors[0].message
        ));
    }
    for e in &errors {
        tracing::warn!(table = %spec.table, "reference row left out: {}", e.message);
    }
    Ok((batch, errors.len()))
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Refreshes `table`, logs the outcome and records it in `metrics`.
pub async fn refresh_and_record(
    table: &ReferenceData,
    metrics: &Metrics,
    trigger: &str,
) -> std::result::Result<RefreshOutcome, String> {
    let outcome = table.refresh().await;
    match &outcome {
        Ok(RefreshOutcome::Replaced {
            version,
            rows,
            rejected,
        }) => {
            tracing::info!(table = %table.table(), location = %table.spec().location, version, rows, rejected, trigger, "reference table refreshed");
            metrics.reference_loaded(table.table(), *rows, *version);
        }
        Ok(RefreshOutcome::Unchanged { version, .. }) => {
            tracing::debug!(table = %table.table(), version, trigger, "reference table unchanged");
        }
        Err(e) => {
            tracing::warn!(table = %table.table(), location = %table.spec().location, trigger, "reference table refresh failed, the current rows stay: {e}");
        }
    }
    metrics.reference_refresh(table.table(), outcome.is_ok());
    outcome
}

/// Refreshes `table` every `every` until the task is dropped.
pub async fn refresh_every(table: Arc<ReferenceData>, every: Duration, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let _ = refresh_and_record(&table, &metrics, "interval").await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use datafusion::arrow::array::{Array, Int64Array, StringArray};

    use super::*;
    use crate::app::{RecordColumn, RecordFormat, RecordSchema};
    use crate::types::{ColumnDef, SqlType};

    fn spec(path: PathBuf) -> ReferenceSpec {
        ReferenceSpec {
            table: "T".into(),
            schema: RecordSchema {
                columns: vec![
                    RecordColumn {
                        column: ColumnDef::new("K", SqlType::Varchar(8)),
                        mapping: None,
                    },
                    RecordColumn {
                        column: ColumnDef::new("V", SqlType::BigInt),
                        mapping: None,
                    },
                ],
                format: RecordFormat::Csv {
                    row_delimiter: "\n".into(),
                    column_delimiter: ",".into(),
                },
            },
            location: ReferenceLocation::File(path),
            skip_header_lines: 1,
            refresh_interval: None,
        }
    }

    /// A holder with the file's rows as version 1, read on this thread.
    fn holding(path: PathBuf) -> ReferenceData {
        let spec = spec(path);
        let (batch, _) = decode(&spec, &std::fs::read(spec_path(&spec)).unwrap()).unwrap();
        ReferenceData::new(spec, batch)
    }

    fn spec_path(spec: &ReferenceSpec) -> PathBuf {
        match &spec.location {
            ReferenceLocation::File(path) => path.clone(),
            ReferenceLocation::S3 { .. } => unreachable!("file tables only"),
        }
    }

    fn values(v: &TableVersion) -> Vec<(String, i64)> {
        let k = v.batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let n = v.batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        (0..k.len()).map(|i| (k.value(i).to_string(), n.value(i))).collect()
    }

    #[test]
    fn replace_swaps_whole_versions_and_numbers_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "K,V\na,1\nb,2\n").unwrap();
        let data = holding(path.clone());
        assert_eq!(data.version(), 1);
        let first = data.current();
        assert_eq!(values(&first), vec![("a".into(), 1), ("b".into(), 2)]);

        let (second, _) = decode(data.spec(), b"K,V\nc,3\n").unwrap();
        assert_eq!(data.replace(second).unwrap(), 2);
        assert_eq!(data.version(), 2);
        // A reader holding the old version keeps it whole.
        assert_eq!(values(&first), vec![("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(first.version, 1);
        let now = data.current();
        assert_eq!((now.version, values(&now)), (2, vec![("c".into(), 3)]));
    }

    #[test]
    fn readers_never_see_a_mix_while_versions_are_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "K,V\na,1\nb,1\nc,1\n").unwrap();
        let data = Arc::new(holding(path));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Every reader is running before the first swap (a loaded machine may start a
        // thread late), and reads at least once after the last.
        let started = Arc::new(std::sync::Barrier::new(4));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let data = Arc::clone(&data);
                let stop = Arc::clone(&stop);
                let started = Arc::clone(&started);
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut seen = 0;
                    started.wait();
                    loop {
                        let done = stop.load(Ordering::Relaxed);
                        let v = data.current();
                        assert!(v.version >= last, "versions go forward");
                        last = v.version;
                        // Version n holds three rows whose value is n.
                        let rows = values(&v);
                        assert_eq!(rows.len(), 3);
                        assert!(
                            rows.iter().all(|(_, n)| *n as u64 == v.version),
                            "{rows:?} in {}",
                            v.version
                        );
                        seen += 1;
                        if done {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        started.wait();
        for n in 2..=200u64 {
            let text = format!("K,V\na,{n}\nb,{n}\nc,{n}\n");
            let (batch, _) = decode(data.spec(), text.as_bytes()).unwrap();
            assert_eq!(data.replace(batch).unwrap(), n);
            // Give the readers time to read between swaps.
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        stop.store(true, Ordering::Relaxed);
        let reads: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(
            reads > 3,
            "the readers read while versions were swapped ({reads} reads)"
        );
        assert_eq!(data.current().version, 200);
    }

    #[tokio::test]
    async fn a_file_refresh_replaces_keeps_unchanged_data_and_survives_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "K,V\na,1\n").unwrap();
        let data = ReferenceData::declared(&spec(path.clone())).unwrap();
        assert_eq!((data.version(), data.current().batch.num_rows()), (0, 0));
        data.load().await.unwrap();
        assert_eq!(data.version(), 1);

        // Same bytes: no new version.
        assert_eq!(
            data.refresh().await.unwrap(),
            RefreshOutcome::Unchanged { version: 1, rows: 1 }
        );
        // New rows, one of which does not fit: left out, the rest replace the table.
        std::fs::write(&path, "K,V\na,2\nb,x\nc,3\n").unwrap();
        assert_eq!(
            data.refresh().await.unwrap(),
            RefreshOutcome::Replaced {
                version: 2,
                rows: 2,
                rejected: 1
            }
        );
        assert_eq!(values(&data.current()), vec![("a".into(), 2), ("c".into(), 3)]);
        // Nothing fits: the refresh fails and version 2 stays.
        std::fs::write(&path, "K,V\nq,not-a-number\nr,nan\n").unwrap();
        let err = data.refresh().await.unwrap_err();
        assert!(err.contains("none of its 2 rows"), "{err}");
        // The file is gone: same.
        std::fs::remove_file(&path).unwrap();
        let err = data.refresh().await.unwrap_err();
        assert!(err.contains("t.csv"), "{err}");
        assert_eq!(data.version(), 2);
        assert_eq!(values(&data.current()), vec![("a".into(), 2), ("c".into(), 3)]);
        // An empty file is an empty table, not a failure.
        std::fs::write(&path, "K,V\n").unwrap();
        assert_eq!(data.refresh().await.unwrap().rows(), 0);
        assert_eq!(data.version(), 3);
    }

    #[tokio::test]
    async fn the_first_load_fails_naming_the_table_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ReferenceData::declared(&spec(dir.path().join("missing.csv"))).unwrap();
        let err = missing.load().await.unwrap_err().to_string();
        assert!(
            err.contains("missing.csv") && err.contains("reference table T"),
            "{err}"
        );
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, "K,V\na,x\n").unwrap();
        let bad = ReferenceData::declared(&spec(path)).unwrap();
        let err = bad.load().await.unwrap_err().to_string();
        assert!(
            err.contains("reference table T") && err.contains("none of its 1 rows"),
            "{err}"
        );
    }
}
