//! An input fed from Rust code: an embedding program sends records through a
//! [`RecordSender`] and the application reads them as it would lines of a file. Dropping
//! every sender ends the input. It has no manifest form; a program puts the
//! [`SourceSpec`] that [`channel`] returns into its `AppSpec`.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::RawRecord;
use super::source::{PendingRecords, Source, SourceContext, stop_requested};
use crate::app::SourceSpec;
use crate::error::{Result, SluiceError};

/// The sending end of a channel input.
#[derive(Clone)]
pub struct RecordSender {
    tx: mpsc::Sender<RawRecord>,
}

impl RecordSender {
    /// Sends one record (a JSON object or a CSV line, as the input's schema reads it).
    /// Waits while the application is behind; fails once the application has stopped.
    pub async fn send(&self, record: impl Into<Vec<u8>>) -> Result<()> {
        let record = RawRecord {
            data: record.into(),
            ..Default::default()
        };
        self.tx
            .send(record)
            .await
            .map_err(|_| SluiceError::runtime("the application reading this channel input has stopped"))
    }
}

/// The receiving end, inside the input's settings: taken by the one run that reads it.
#[derive(Clone)]
pub struct ChannelInput {
    id: u64,
    rx: Arc<Mutex<Option<mpsc::Receiver<RawRecord>>>>,
}

impl PartialEq for ChannelInput {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl std::fmt::Debug for ChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChannelInput#{}", self.id)
    }
}

/// A channel input holding up to `capacity` records in flight: its sender, and the
/// input's source settings.
pub fn channel(capacity: usize) -> (RecordSender, SourceSpec) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let input = ChannelInput {
        id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        rx: Arc::new(Mutex::new(Some(rx))),
    };
    (RecordSender { tx }, SourceSpec::Channel(input))
}

pub struct ChannelSource {
    pub input: ChannelInput,
}

impl Source for ChannelSource {
    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let taken = self.input.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
            let mut rx = taken.ok_or_else(|| {
                SluiceError::config("a channel input is read by one run only; make a new channel for another run")
            })?;
            let mut tick = ctx.bound_ticker();
            let mut batch = PendingRecords::default();
            let mut stop = ctx.shutdown.clone();
            loop {
                tokio::select! {
                    _ = stop_requested(&mut stop) => break,
                    record = rx.recv() => {
                        let Some(record) = record else { break };
                        // Take what is already waiting, then publish: one batch per burst.
                        let mut next = Some(record);
                        while let Some(record) = next {
                            if batch.push(record) {
                                ctx.publish(batch.records()).await;
                                batch.clear();
                            }
                            next = rx.try_recv().ok();
                        }
                        ctx.publish(batch.records()).await;
                        batch.clear();
                    }
                    _ = tick.tick() => {
                        if ctx.bound_interval().is_some() {
                            let now = ctx.clock();
                            ctx.bound(now).await;
                        }
                    }
                }
            }
            ctx.publish(batch.records()).await;
            ctx.finish(0).await;
            Ok(())
        })
    }
}
