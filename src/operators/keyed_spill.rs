//! Spilling by key, shared by the sliding and stagger operators: their state is many small
//! independent pieces (a sliding window's partition, a stagger window), each reached
//! through its key, so past the memory budget they evict whole pieces, least recently used
//! first, one spill-store entry per piece (`SpillStore::put_entry`, keyed by the piece's
//! key), and read a piece back (`take_entry`) when a row of its key arrives.
//!
//! Each operator keeps its own estimate of its state's memory (each says what it counts)
//! and calls [`KeyedSpill::over_budget`] after every batch; past the budget it evicts down
//! to [`LOW_WATER`] of it, so that one spill makes room for more than the next batch.
//! Statistics and metrics are the tumbling operator's: `sluice_spills_total`,
//! `sluice_spilled_bytes_total` and `sluice_window_state_peak_bytes`, labelled by app and
//! pump.

use super::tumbling::SpillStats;
use crate::error::{Result, SluiceError};
use crate::state::spill::{SpillConfig, SpillStore};

/// Past its budget, an operator evicts until its state is at most this share of it
/// (numerator, denominator).
pub const LOW_WATER: (usize, usize) = (3, 4);

#[derive(Default)]
pub struct KeyedSpill {
    config: Option<SpillConfig>,
    /// Created at the first eviction; its folder goes when the operator goes.
    store: Option<SpillStore>,
    stats: SpillStats,
    published_peak: usize,
    /// The clock of "least recently used": the operator bumps it once per batch and
    /// stamps every piece a batch touches.
    pub tick: u64,
}

impl KeyedSpill {
    pub fn configure(&mut self, config: SpillConfig) {
        self.config = Some(config);
    }

    /// Records the state's current size (for the peak); past the budget, the size to
    /// evict down to.
    pub fn over_budget(&mut self, size: usize) -> Option<usize> {
        self.stats.peak_state_bytes = self.stats.peak_state_bytes.max(size);
        let budget = self.config.as_ref()?.budget_bytes?;
        (size > budget).then(|| budget / LOW_WATER.1 * LOW_WATER.0)
    }

    /// Whether the operator has a memory budget.
    pub fn budgeted(&self) -> bool {
        self.config.as_ref().is_some_and(|c| c.budget_bytes.is_some())
    }

    /// The spill store, created on first use.
    pub fn store(&mut self) -> Result<&mut SpillStore> {
        if self.store.is_none() {
            let config = self
                .config
                .as_ref()
                .ok_or_else(|| SluiceError::runtime("spilling without a spill folder"))?;
            self.store = Some(SpillStore::create(&config.dir)?);
        }
        Ok(self.store.as_mut().expect("created above"))
    }

    /// The spill store, if anything was spilled.
    pub fn existing(&self) -> Option<&SpillStore> {
        self.store.as_ref()
    }

    /// The spill store that holds a piece the operator's index says is spilled.
    pub fn holding(&mut self) -> Result<&mut SpillStore> {
        self.store
            .as_mut()
            .ok_or_else(|| SluiceError::runtime("spilled window state lost its spill store"))
    }

    /// Counts one eviction pass that wrote `written` bytes in `entries` entries, taking
    /// the state from `before` bytes to `after`.
    pub fn record(&mut self, what: &str, before: usize, after: usize, entries: usize, written: u64) {
        let Some(config) = &self.config else { return };
        self.stats.spills += 1;
        self.stats.spilled_bytes += written;
        tracing::debug!(
            pump = %config.pump,
            state_bytes = before,
            after_bytes = after,
            budget_bytes = config.budget_bytes,
            entries,
            spilled_bytes = written,
            "{what} state over its memory budget: spilled to disk"
        );
        ::metrics::counter!("sluice_spilled_bytes_total", "app" => config.app.clone(), "pump" => config.pump.clone())
            .increment(written);
        ::metrics::counter!("sluice_spills_total", "app" => config.app.clone(), "pump" => config.pump.clone())
            .increment(1);
    }

    /// Publishes the peak state size if it grew since last published.
    pub fn publish_peak(&mut self) {
        if self.stats.peak_state_bytes == self.published_peak {
            return;
        }
        if let Some(c) = &self.config {
            ::metrics::gauge!("sluice_window_state_peak_bytes", "app" => c.app.clone(), "pump" => c.pump.clone())
                .set(self.stats.peak_state_bytes as f64);
            self.published_peak = self.stats.peak_state_bytes;
        }
    }

    pub fn stats(&self) -> SpillStats {
        self.stats
    }
}
