//! The two tasks that drive a sink, side by side: at least once (`run_at_least_once`:
//! rows go out as they arrive, KDA's semantics) and exactly once
//! (`exactly_once::run_exactly_once`: rows go out when the checkpoint covering them has
//! committed). `runtime::spawn_outputs` chooses one per output; a sink connector
//! implements `connectors::sink::Sink` and works under both.

mod exactly_once;

pub use exactly_once::{Holdback, run_exactly_once};

use tokio::sync::mpsc;

use crate::connectors::sink::Sink;
use crate::error::Result;
use crate::operators::Message;
use crate::runtime::metrics::Metrics;
use crate::state::CheckpointHandle;

/// Drives a sink at least once: rows are written as they arrive, and a checkpoint takes
/// the sink's own state (a file's length), so a restart cuts back what came after it.
pub async fn run_at_least_once(
    mut sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<Message>,
    metrics: std::sync::Arc<Metrics>,
    checkpoints: Option<(CheckpointHandle, String)>,
) -> Result<()> {
    loop {
        let due = sink.next_tick();
        let message = tokio::select! {
            biased;
            message = rx.recv() => message,
            // Evaluated even when disabled: a far-off instant stands in for "never".
            _ = tokio::time::sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                sink.tick().await?;
                continue;
            }
        };
        let Some(message) = message else { break };
        match message {
            Message::Data(batch) => {
                sink.write(&batch).await?;
                metrics
                    .rows_out
                    .fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Message::Bound(_) => {}
            Message::Barrier(id) => {
                if let Some((c, part)) = &checkpoints {
                    c.ack(id, part, sink.checkpoint().await?);
                }
            }
            Message::End => break,
        }
    }
    sink.finish().await?;
    if let Some((c, part)) = &checkpoints {
        c.finish(part, sink.checkpoint().await?);
    }
    Ok(())
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}
