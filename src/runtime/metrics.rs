//! Counters of a running application, the periodic report of its rates and lag, and the
//! process-wide metrics registry that `GET /metrics` serves (see `crate::server`).
//!
//! The hot path only bumps the atomics below; the registry's counters and gauges are
//! brought up to date from them when the reporter ticks and when the registry is scraped
//! ([`Metrics::publish`]). Checkpoint and recovery figures go to the registry as they
//! happen. Every series carries an `app` label, since one process (the tests, an
//! embedding) may run several applications.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::time::{Millis, now_millis};

#[derive(Debug)]
pub struct Metrics {
    pub records_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub error_rows: AtomicU64,
    /// The newest ROWTIME published by any source (ms); with clock ROWTIMEs, now minus
    /// this is how far ingestion lags behind.
    pub last_rowtime: AtomicI64,
    /// The application's name: the `app` label of its series in the registry.
    pub app: String,
    pub started: Instant,
    status: Mutex<Status>,
}

/// What the reporter and the checkpoint coordinator last saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Status {
    /// Records in and rows out per second over the last report interval.
    pub rates: Option<(f64, f64)>,
    /// The last committed checkpoint: its id and when it was committed.
    pub checkpoint: Option<(u64, Instant)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new("")
    }
}

impl Metrics {
    pub fn new(app: &str) -> Self {
        // Installed here, before anything is recorded: the `metrics` macros drop what
        // they record while no recorder is installed.
        registry();
        Metrics {
            records_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            error_rows: AtomicU64::new(0),
            last_rowtime: AtomicI64::new(0),
            app: app.to_string(),
            started: Instant::now(),
            status: Mutex::new(Status::default()),
        }
    }

    pub fn add_in(&self, n: u64, rowtime: Millis) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
        self.last_rowtime.fetch_max(rowtime, Ordering::Relaxed);
    }

    /// How far the newest ingested ROWTIME is behind the clock (0 before any record).
    pub fn lag_ms(&self) -> i64 {
        let last = self.last_rowtime.load(Ordering::Relaxed);
        if last > 0 { (now_millis() - last).max(0) } else { 0 }
    }

    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The last committed checkpoint's id and age.
    pub fn checkpoint_age(&self) -> Option<(u64, Duration)> {
        self.status().checkpoint.map(|(id, at)| (id, at.elapsed()))
    }

    /// Records checkpoint `id`, committed `duration` after its trigger, with the size in
    /// bytes of each part.
    pub fn checkpoint_committed(&self, id: u64, duration: Duration, part_sizes: &BTreeMap<String, usize>) {
        self.update(|s| s.checkpoint = Some((id, Instant::now())));
        let app = self.app.clone();
        ::metrics::histogram!("sluice_checkpoint_duration_seconds", "app" => app.clone())
            .record(duration.as_secs_f64());
        ::metrics::gauge!("sluice_checkpoint_size_bytes", "app" => app.clone())
            .set(part_sizes.values().sum::<usize>() as f64);
        ::metrics::gauge!("sluice_checkpoint_last_id", "app" => app.clone()).set(id as f64);
        ::metrics::gauge!("sluice_checkpoint_age_seconds", "app" => app.clone()).set(0.0);
        for (part, size) in part_sizes {
            ::metrics::gauge!("sluice_state_size_bytes", "app" => app.clone(), "part" => part.clone())
                .set(*size as f64);
        }
    }

    /// Records how long it took from the start of the run to the state being restored.
    pub fn state_restored(&self, elapsed: Duration) {
        ::metrics::gauge!("sluice_recovery_seconds", "app" => self.app.clone()).set(elapsed.as_secs_f64());
    }

    /// Reference table `table` now holds `rows` rows, as version `version`.
    pub fn reference_loaded(&self, table: &str, rows: usize, version: u64) {
        let (app, table) = (self.app.clone(), table.to_string());
        ::metrics::gauge!("sluice_reference_rows", "app" => app.clone(), "table" => table.clone()).set(rows as f64);
        ::metrics::gauge!("sluice_reference_version", "app" => app.clone(), "table" => table.clone())
            .set(version as f64);
        // Registered at zero, so a scrape shows them before the first refresh.
        ::metrics::counter!("sluice_reference_refreshes_total", "app" => app.clone(), "table" => table.clone())
            .increment(0);
        ::metrics::counter!("sluice_reference_refresh_failures_total", "app" => app, "table" => table).increment(0);
    }

    /// A refresh of reference table `table` ended, successfully (a new version, or the
    /// data had not changed) or not (the table kept its rows).
    pub fn reference_refresh(&self, table: &str, ok: bool) {
        let (app, table) = (self.app.clone(), table.to_string());
        if ok {
            ::metrics::counter!("sluice_reference_refreshes_total", "app" => app, "table" => table).increment(1);
        } else {
            ::metrics::counter!("sluice_reference_refresh_failures_total", "app" => app, "table" => table).increment(1);
        }
    }

    /// Brings the registry up to date with the counters, the lag and the checkpoint age.
    pub fn publish(&self) {
        let app = self.app.clone();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ::metrics::counter!("sluice_records_in_total", "app" => app.clone()).absolute(load(&self.records_in));
        ::metrics::counter!("sluice_rows_out_total", "app" => app.clone()).absolute(load(&self.rows_out));
        ::metrics::counter!("sluice_error_rows_total", "app" => app.clone()).absolute(load(&self.error_rows));
        ::metrics::gauge!("sluice_lag_ms", "app" => app.clone()).set(self.lag_ms() as f64);
        if let Some((_, age)) = self.checkpoint_age() {
            ::metrics::gauge!("sluice_checkpoint_age_seconds", "app" => app).set(age.as_secs_f64());
        }
    }
}

/// The process-wide registry, installed as the `metrics` global recorder on first use
/// (a process can install only one).
pub fn registry() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            // An embedding program installed its own recorder: our series go there, and
            // this registry (and so GET /metrics) stays empty.
            tracing::warn!("a metrics recorder is already installed; GET /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("sluice_records_in_total", "Records read by the sources");
    describe_counter!("sluice_rows_out_total", "Rows delivered to the outputs");
    describe_counter!("sluice_error_rows_total", "Rows sent to error_stream");
    describe_gauge!(
        "sluice_lag_ms",
        "Clock minus the newest ingested ROWTIME, in milliseconds"
    );
    describe_histogram!("sluice_checkpoint_duration_seconds", "Checkpoint trigger to commit");
    describe_gauge!(
        "sluice_checkpoint_size_bytes",
        "Bytes of every part of the last checkpoint"
    );
    describe_gauge!("sluice_checkpoint_last_id", "Id of the last committed checkpoint");
    describe_gauge!("sluice_checkpoint_age_seconds", "Time since the last checkpoint commit");
    describe_gauge!("sluice_state_size_bytes", "Bytes of one part of the last checkpoint");
    describe_gauge!(
        "sluice_recovery_seconds",
        "Start of the run to the state being restored"
    );
    describe_gauge!(
        "sluice_reference_rows",
        "Rows of the current version of a reference table"
    );
    describe_gauge!(
        "sluice_reference_version",
        "Version of a reference table (1 at start, +1 per change)"
    );
    describe_counter!(
        "sluice_reference_refreshes_total",
        "Successful refreshes of a reference table (changed or not)"
    );
    describe_counter!(
        "sluice_reference_refresh_failures_total",
        "Failed refreshes of a reference table (its rows were kept)"
    );
    crate::connectors::http::describe_metrics();
    crate::connectors::s3::describe_metrics();
}

/// Logs records in, rows out and error rows per second every `every`, until dropped.
pub async fn report(metrics: Arc<Metrics>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let (mut last_in, mut last_out, mut last_err) = (0u64, 0u64, 0u64);
    loop {
        tick.tick().await;
        let (i, o, e) = (
            metrics.records_in.load(Ordering::Relaxed),
            metrics.rows_out.load(Ordering::Relaxed),
            metrics.error_rows.load(Ordering::Relaxed),
        );
        let secs = every.as_secs_f64();
        let (in_per_s, out_per_s) = ((i - last_in) as f64 / secs, (o - last_out) as f64 / secs);
        metrics.update(|s| s.rates = Some((in_per_s, out_per_s)));
        metrics.publish();
        // Without a scraper, upkeep keeps the registry's histograms from growing.
        registry().run_upkeep();
        let checkpoint = metrics.checkpoint_age();
        tracing::info!(
            records_in = i,
            in_per_s = format!("{in_per_s:.0}"),
            rows_out = o,
            out_per_s = format!("{out_per_s:.0}"),
            error_rows = e,
            errors_per_s = format!("{:.0}", (e - last_err) as f64 / secs),
            lag_ms = metrics.lag_ms(),
            checkpoint = checkpoint.map(|(id, _)| id),
            checkpoint_age_ms = checkpoint.map(|(_, age)| age.as_millis() as u64),
            "running"
        );
        (last_in, last_out, last_err) = (i, o, e);
    }
}
