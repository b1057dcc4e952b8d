//! Counters of a running application, and the periodic report of its rates and lag.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::time::{Millis, now_millis};

#[derive(Debug, Default)]
pub struct Metrics {
    pub records_in: AtomicU64,
    pub rows_out: AtomicU64,
    pub error_rows: AtomicU64,
    /// The newest ROWTIME published by any source (ms); with clock ROWTIMEs, now minus
    /// this is how far ingestion lags behind.
    pub last_rowtime: AtomicI64,
}

impl Metrics {
    pub fn add_in(&self, n: u64, rowtime: Millis) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
        self.last_rowtime.fetch_max(rowtime, Ordering::Relaxed);
    }
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
        let last = metrics.last_rowtime.load(Ordering::Relaxed);
        let lag_ms = if last > 0 { (now_millis() - last).max(0) } else { 0 };
        tracing::info!(
            records_in = i,
            in_per_s = format!("{:.0}", (i - last_in) as f64 / secs),
            rows_out = o,
            out_per_s = format!("{:.0}", (o - last_out) as f64 / secs),
            error_rows = e,
            errors_per_s = format!("{:.0}", (e - last_err) as f64 / secs),
            lag_ms,
            "running"
        );
        (last_in, last_out, last_err) = (i, o, e);
    }
}
