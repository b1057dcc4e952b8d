//! The checkpoint coordinator: triggers checkpoint N on an interval, collects the part
//! of every participant (sources, hubs, pumps, sinks), and commits them together.
//!
//! A participant that finishes (a file source at its end) reports its final part once;
//! that part goes into every later checkpoint, so one finished input never stalls the
//! checkpoints of the others.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::store::CheckpointStore;
use crate::error::Result;
use crate::runtime::metrics::Metrics;

/// Parts of a checkpoint by name; None for a participant that keeps no state.
type Parts = BTreeMap<String, Option<Vec<u8>>>;

#[derive(Debug)]
pub enum Ack {
    /// The participant's state as of barrier `id`.
    Part {
        id: u64,
        part: String,
        state: Option<Vec<u8>>,
    },
    /// The participant ended; this is its state from now on.
    Final { part: String, state: Option<Vec<u8>> },
}

/// What a participant holds: the trigger to watch (sources) and where to report.
#[derive(Clone)]
pub struct CheckpointHandle {
    pub trigger: watch::Receiver<u64>,
    /// The id of the last committed checkpoint (exactly-once sinks publish up to it).
    pub committed: watch::Receiver<u64>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl CheckpointHandle {
    pub fn ack(&self, id: u64, part: &str, state: Option<Vec<u8>>) {
        let _ = self.acks.send(Ack::Part {
            id,
            part: part.to_string(),
            state,
        });
    }

    pub fn finish(&self, part: &str, state: Option<Vec<u8>>) {
        let _ = self.acks.send(Ack::Final {
            part: part.to_string(),
            state,
        });
    }
}

pub struct Coordinator {
    store: Arc<CheckpointStore>,
    expected: BTreeSet<String>,
    interval: Duration,
    next_id: u64,
    trigger: watch::Sender<u64>,
    acks: mpsc::UnboundedReceiver<Ack>,
    /// Where each commit's duration, sizes and id are recorded.
    metrics: Arc<Metrics>,
    committed: watch::Sender<u64>,
    /// Commit the final parts when every participant has finished.
    commit_final: bool,
}

impl Coordinator {
    /// A coordinator for the named participants; checkpoint ids continue after
    /// `last_id` (the checkpoint restored from, or 0).
    pub fn new(
        store: Arc<CheckpointStore>,
        expected: BTreeSet<String>,
        interval: Duration,
        last_id: u64,
        metrics: Arc<Metrics>,
    ) -> (Self, CheckpointHandle) {
        let (trigger, trigger_rx) = watch::channel(last_id);
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let (committed, committed_rx) = watch::channel(last_id);
        let handle = CheckpointHandle {
            trigger: trigger_rx,
            committed: committed_rx,
            acks: acks_tx,
        };
        (
            Coordinator {
                store,
                expected,
                interval,
                next_id: last_id + 1,
                trigger,
                acks,
                metrics,
                committed,
                commit_final: false,
            },
            handle,
        )
    }

    /// When every participant has finished, commit their final parts as one more
    /// checkpoint. Exactly-once sinks hold their last rows back until then; in both modes
    /// a restart after a clean finish resumes from the end. Without it a finished run
    /// keeps its last periodic checkpoint.
    pub fn commit_final(&mut self) {
        self.commit_final = true;
    }

    /// Runs until every participant has finished (or every handle is dropped).
    pub async fn run(mut self) -> Result<()> {
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        let mut finished: Parts = BTreeMap::new();
        // the checkpoint being taken: its id, start, and the parts received so far
        let mut in_flight: Option<(u64, Instant, Parts)> = None;
        loop {
            tokio::select! {
                _ = tick.tick(), if in_flight.is_none() => {
                    let id = self.next_id;
                    self.next_id += 1;
                    in_flight = Some((id, Instant::now(), BTreeMap::new()));
                    let _ = self.trigger.send(id);
                }
                ack = self.acks.recv() => match ack {
                    None => return Ok(()),
                    Some(Ack::Part { id, part, state }) => {
                        if let Some((current, _, parts)) = &mut in_flight
                            && *current == id
                        {
                            parts.insert(part, state);
                        }
                    }
                    Some(Ack::Final { part, state }) => {
                        finished.insert(part, state);
                    }
                },
            }
            if finished.len() >= self.expected.len() && self.expected.iter().all(|p| finished.contains_key(p)) {
                if self.commit_final {
                    let id = self.next_id;
                    let all: BTreeMap<String, Vec<u8>> = finished
                        .into_iter()
                        .filter_map(|(part, state)| Some((part, state?)))
                        .collect();
                    self.store.commit(id, &all)?;
                    let _ = self.committed.send(id);
                    tracing::info!(checkpoint = id, parts = all.len(), "final checkpoint completed");
                }
                return Ok(());
            }
            let complete = in_flight.as_ref().is_some_and(|(_, _, parts)| {
                self.expected
                    .iter()
                    .all(|p| parts.contains_key(p) || finished.contains_key(p))
            });
            if complete {
                let (id, started, parts) = in_flight.take().expect("checked above");
                let mut all = BTreeMap::new();
                for (part, state) in finished.iter().chain(parts.iter()) {
                    if let Some(bytes) = state {
                        all.insert(part.clone(), bytes.clone());
                    }
                }
                let size = self.store.commit(id, &all)?;
                let _ = self.committed.send(id);
                let duration = started.elapsed();
                let part_sizes: BTreeMap<String, usize> = all.iter().map(|(p, b)| (p.clone(), b.len())).collect();
                self.metrics.checkpoint_committed(id, duration, &part_sizes);
                // The state size of every operator, in one line: `pump/P=120 hub/S=0`.
                let sizes: Vec<String> = part_sizes.iter().map(|(p, n)| format!("{p}={n}")).collect();
                tracing::info!(
                    checkpoint = id,
                    duration_ms = duration.as_millis() as u64,
                    size_bytes = size,
                    parts = all.len(),
                    part_bytes = %sizes.join(" "),
                    "checkpoint completed"
                );
            }
        }
    }
}
