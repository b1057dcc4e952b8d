//! Exactly-once delivery: a sink task that publishes a row only after the checkpoint
//! covering it has committed, around any [`Sink`].
//!
//! Epochs: the rows a sink receives after barrier n-1 and before barrier n belong to
//! epoch n. They are held back. At barrier n the sink's checkpoint part holds every row
//! not yet published (epoch n, and earlier epochs whose commit it has not heard of yet),
//! the wrapped sink's own state (a file's length, which is then the length before those
//! rows), and the row-identity counts. When the coordinator reports checkpoint c
//! committed, the epochs up to c are published. A restart publishes the restored part's
//! rows first: the checkpoint covers them, and they may or may not have been published
//! before the crash. A file is cut back to its length at the checkpoint first, so it
//! gets them exactly once; a stream may get them twice, as identical rows with identical
//! `ROW_ID`s (see `row_id`).
//!
//! The end of the stream: the sink reports its final part (every row not yet published)
//! and waits for the checkpoint that includes it (the coordinator commits the final
//! parts when every participant has finished, see `Coordinator::commit_final`), then
//! publishes. A crash during that last publish is like any other: the restart restores
//! the final checkpoint and publishes those rows again, identical.
//!
//! Epoch ids travel with the rows: after publishing an epoch the task calls
//! `Sink::end_epoch(id)`, and the part records which rows belong to which epoch, so a
//! restart replays each restored epoch with its own id and rows (an S3 sink names its
//! objects after the epoch, and the replay overwrites them instead of adding copies).
//! Rows after the last barrier (the end of the stream) are epoch `u64::MAX`.
//!
//! The part is `snapshot::frame` of [inner sink state, held rows (one Arrow IPC batch,
//! oldest epoch first), identity counts, epochs]; epochs is (id, row count) pairs as
//! little-endian u64s. A part saved before epochs were recorded has only the first three:
//! its rows are restored as one epoch, id 0.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use tokio::sync::mpsc;

use crate::connectors::sink::Sink;
use crate::error::{Result, SluiceError};
use crate::operators::Message;
use crate::runtime::metrics::Metrics;
use crate::runtime::row_id::{RowIdentity, schema_with_row_id};
use crate::state::CheckpointHandle;
use crate::state::snapshot;

/// What an exactly-once sink holds back, and the identities of the rows it tags.
pub struct Holdback {
    identity: RowIdentity,
    /// The stream's columns, `ROW_ID`, ROWTIME: the rows held back.
    schema: SchemaRef,
    /// Epochs a restored checkpoint held back: published before anything else.
    restored: Vec<(u64, Vec<RecordBatch>)>,
    /// Rows received since the last barrier.
    open: Vec<RecordBatch>,
    /// Rows of closed epochs, waiting for their checkpoint's commit, oldest first.
    closed: VecDeque<(u64, Vec<RecordBatch>)>,
}

impl Holdback {
    /// The hold-back of output `stream` (whose rows have `schema`), restored from its
    /// saved part when there is one. Also returns the wrapped sink's own saved state
    /// (a file sink's length), which the caller restores the sink from.
    pub fn restore(stream: &str, schema: &Schema, saved: Option<&[u8]>) -> Result<(Self, Option<Vec<u8>>)> {
        let mut holdback = Holdback {
            identity: RowIdentity::new(stream),
            schema: schema_with_row_id(schema),
            restored: Vec::new(),
            open: Vec::new(),
            closed: VecDeque::new(),
        };
        let Some(saved) = saved else {
            return Ok((holdback, None));
        };
        let corrupt = || SluiceError::runtime(format!("corrupt exactly-once state of output {stream}"));
        let mut sections = snapshot::unframe(saved)?.into_iter();
        let (inner, rows, identity) = (sections.next().flatten(), sections.next().flatten(), sections.next());
        let epochs = match sections.next() {
            Some(epochs) => decode_epochs(epochs.as_deref().unwrap_or_default()).ok_or_else(corrupt)?,
            None => vec![(0, usize::MAX)],
        };
        let mut held = Vec::new();
        if let Some(rows) = rows {
            for arrays in snapshot::decode(&rows)? {
                if !arrays.is_empty() {
                    held.push(RecordBatch::try_new(Arc::clone(&holdback.schema), arrays)?);
                }
            }
        }
        holdback.restored = split_epochs(&holdback.schema, &held, &epochs)?.ok_or_else(corrupt)?;
        holdback.identity.restore(&identity.flatten().ok_or_else(corrupt)?)?;
        Ok((holdback, inner))
    }

    /// Tags a received batch with its row identities and holds it back.
    pub fn hold(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
            self.open.push(self.identity.tag(batch)?);
        }
        Ok(())
    }

    /// Barrier `id` (or the end, `u64::MAX`): the rows received so far form its epoch.
    pub fn close_epoch(&mut self, id: u64) {
        let rows = std::mem::take(&mut self.open);
        self.closed.push_back((id, rows));
    }

    /// Rows held back, in every epoch.
    pub fn pending_rows(&self) -> usize {
        self.held().map(|(_, b)| b.num_rows()).sum()
    }

    /// Every held-back batch with its epoch, oldest first (open rows as epoch `u64::MAX`).
    fn held(&self) -> impl Iterator<Item = (u64, &RecordBatch)> {
        let epochs = self.restored.iter().chain(&self.closed);
        let epochs = epochs.flat_map(|(id, batches)| batches.iter().map(move |b| (*id, b)));
        epochs.chain(self.open.iter().map(|b| (u64::MAX, b)))
    }

    /// Publishes the restored rows and the epochs up to `committed`, oldest first.
    pub async fn publish_through(&mut self, sink: &mut dyn Sink, committed: u64, metrics: &Metrics) -> Result<()> {
        for (id, batches) in std::mem::take(&mut self.restored) {
            publish(sink, id, &batches, metrics).await?;
        }
        while self.closed.front().is_some_and(|(id, _)| *id <= committed) {
            let (id, batches) = self.closed.pop_front().expect("checked above");
            publish(sink, id, &batches, metrics).await?;
        }
        Ok(())
    }

    /// The checkpoint part: the wrapped sink's state (taken now, so a file's length is
    /// its length before every row still held back), the held-back rows, the counts and
    /// which rows are which epoch's.
    pub async fn part(&mut self, sink: &mut dyn Sink) -> Result<Vec<u8>> {
        let inner = sink.checkpoint().await?;
        let mut epochs: Vec<(u64, usize)> = Vec::new();
        for (id, batch) in self.held() {
            match epochs.last_mut() {
                Some((last, rows)) if *last == id => *rows += batch.num_rows(),
                _ => epochs.push((id, batch.num_rows())),
            }
        }
        let held: Vec<&RecordBatch> = self.held().map(|(_, b)| b).collect();
        let rows = if held.is_empty() {
            None
        } else {
            let all = concat_batches(&self.schema, held)?;
            Some(snapshot::encode(&[all.columns().to_vec()])?)
        };
        Ok(snapshot::frame(&[
            inner,
            rows,
            Some(self.identity.snapshot()?),
            Some(encode_epochs(&epochs)),
        ]))
    }
}

/// Publishes one epoch's rows, then tells the sink the epoch is complete.
async fn publish(sink: &mut dyn Sink, epoch: u64, batches: &[RecordBatch], metrics: &Metrics) -> Result<()> {
    for batch in batches {
        sink.write(batch).await?;
        metrics
            .rows_out
            .fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    sink.end_epoch(epoch).await
}

fn encode_epochs(epochs: &[(u64, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(epochs.len() * 16);
    for (id, rows) in epochs {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(*rows as u64).to_le_bytes());
    }
    out
}

/// The rows of one epoch: its checkpoint id and its batches.
type Epoch = (u64, Vec<RecordBatch>);

fn decode_epochs(bytes: &[u8]) -> Option<Vec<(u64, usize)>> {
    if !bytes.len().is_multiple_of(16) {
        return None;
    }
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    Some(
        bytes
            .chunks_exact(16)
            .map(|c| (word(&c[..8]), word(&c[8..]) as usize))
            .collect(),
    )
}

/// Deals the restored rows out to their epochs (`usize::MAX` rows: all that are left);
/// None when the counts do not add up to the rows.
fn split_epochs(schema: &SchemaRef, held: &[RecordBatch], epochs: &[(u64, usize)]) -> Result<Option<Vec<Epoch>>> {
    let all = concat_batches(schema, held)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(epochs.len());
    for &(id, rows) in epochs {
        let rows = rows.min(all.num_rows() - at);
        if rows > 0 {
            out.push((id, vec![all.slice(at, rows)]));
        }
        at += rows;
    }
    Ok((at == all.num_rows()).then_some(out))
}

/// The exactly-once counterpart of `super::run_at_least_once`: holds rows back until the checkpoint that
/// covers them has committed (see the module comment).
pub async fn run_exactly_once(
    mut sink: Box<dyn Sink>,
    mut held: Holdback,
    mut rx: mpsc::Receiver<Message>,
    metrics: Arc<Metrics>,
    checkpoints: Option<(CheckpointHandle, String)>,
) -> Result<()> {
    let Some((handle, part)) = checkpoints else {
        return Err(SluiceError::config(
            "exactly-once output needs checkpoints: give a state folder (--state-dir)",
        ));
    };
    let mut committed = handle.committed.clone();
    // The checkpoint restored from is committed: its rows go out first.
    let mut last_barrier = *committed.borrow_and_update();
    held.publish_through(sink.as_mut(), last_barrier, &metrics).await?;
    let mut coordinator_running = true;
    loop {
        tokio::select! {
            biased;
            changed = committed.changed(), if coordinator_running => match changed {
                Ok(()) => {
                    let id = *committed.borrow_and_update();
                    held.publish_through(sink.as_mut(), id, &metrics).await?;
                }
                Err(_) => coordinator_running = false,
            },
            message = rx.recv() => match message {
                Some(Message::Data(batch)) => held.hold(&batch)?,
                Some(Message::Bound(_)) => {}
                Some(Message::Barrier(id)) => {
                    // Publish what is committed already, so the part stays small.
                    let done = *committed.borrow_and_update();
                    held.publish_through(sink.as_mut(), done, &metrics).await?;
                    held.close_epoch(id);
                    last_barrier = id;
                    handle.ack(id, &part, Some(held.part(sink.as_mut()).await?));
                }
                Some(Message::End) | None => break,
            },
        }
    }
    held.close_epoch(u64::MAX);
    handle.finish(&part, Some(held.part(sink.as_mut()).await?));
    // Every checkpoint after the last barrier this sink saw carries its final part.
    let final_commit = committed.wait_for(|id| *id > last_barrier).await.map(|id| *id);
    if final_commit.is_err() {
        return Err(SluiceError::runtime(format!(
            "{part}: the final checkpoint did not complete; {} rows stay held back until a restart",
            held.pending_rows()
        )));
    }
    held.publish_through(sink.as_mut(), u64::MAX, &metrics).await?;
    sink.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::CollectSink;
    use datafusion::arrow::array::{AsArray, Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("V", DataType::Int64, true),
            Field::new("ROWTIME", crate::types::TIMESTAMP_TYPE, false),
        ]))
    }

    fn batch(values: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(values.iter().copied())),
                Arc::new(TimestampMillisecondArray::from_iter_values(values.iter().copied())),
            ],
        )
        .unwrap()
    }

    fn published(sink: &CollectSink) -> Vec<i64> {
        let batches = sink.batches.lock().unwrap();
        batches
            .iter()
            .flat_map(|b| {
                assert_eq!(b.schema().field(1).name(), "ROW_ID");
                b.column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn epochs_are_published_when_their_checkpoint_commits_and_a_restore_republishes_the_rest() {
        let metrics = Metrics::new("t");
        let sink = CollectSink::default();
        let mut inner: Box<dyn Sink> = Box::new(sink.clone());
        let (mut held, inner_state) = Holdback::restore("OUT", &schema(), None).unwrap();
        assert!(inner_state.is_none());
        held.hold(&batch(&[1, 2])).unwrap();
        held.close_epoch(1);
        held.hold(&batch(&[3])).unwrap();
        held.close_epoch(2);
        held.hold(&batch(&[4])).unwrap();
        // nothing is published before a commit
        held.publish_through(inner.as_mut(), 0, &metrics).await.unwrap();
        assert!(published(&sink).is_empty());
        held.publish_through(inner.as_mut(), 1, &metrics).await.unwrap();
        assert_eq!(published(&sink), vec![1, 2]);
        // a part taken now holds epoch 2 and the open rows, not the published epoch 1
        let part = held.part(inner.as_mut()).await.unwrap();
        assert_eq!(held.pending_rows(), 2);
        held.publish_through(inner.as_mut(), 2, &metrics).await.unwrap();
        assert_eq!(published(&sink), vec![1, 2, 3]);
        assert_eq!(metrics.rows_out.load(std::sync::atomic::Ordering::Relaxed), 3);

        // a restart from that part publishes its rows first, with the same identities
        let again = CollectSink::default();
        let mut inner2: Box<dyn Sink> = Box::new(again.clone());
        let (mut restored, _) = Holdback::restore("OUT", &schema(), Some(&part)).unwrap();
        assert_eq!(restored.pending_rows(), 2);
        restored.publish_through(inner2.as_mut(), 0, &metrics).await.unwrap();
        assert_eq!(published(&again), vec![3, 4]);
        let id = |s: &CollectSink, i: usize| {
            let b = s.batches.lock().unwrap();
            b[i].column(1).as_string::<i32>().value(0).to_string()
        };
        assert_eq!(id(&again, 0), id(&sink, 1));
        assert!(id(&again, 0).starts_with("OUT:3:"));
    }

    /// Records each write's values and each `end_epoch`.
    #[derive(Default)]
    struct EpochLog(Vec<String>);

    impl Sink for EpochLog {
        fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> futures::future::BoxFuture<'a, Result<()>> {
            let values = batch
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            self.0.extend(values.values().iter().map(|v| v.to_string()));
            Box::pin(async { Ok(()) })
        }
        fn finish(&mut self) -> futures::future::BoxFuture<'_, Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn end_epoch(&mut self, checkpoint: u64) -> futures::future::BoxFuture<'_, Result<()>> {
            self.0.push(format!("end {checkpoint}"));
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn a_restore_replays_each_epoch_with_its_id_and_rows() {
        let metrics = Metrics::new("t");
        let (mut held, _) = Holdback::restore("OUT", &schema(), None).unwrap();
        held.hold(&batch(&[1, 2])).unwrap();
        held.hold(&batch(&[3])).unwrap();
        held.close_epoch(4);
        held.hold(&batch(&[5])).unwrap();
        held.close_epoch(5);
        held.hold(&batch(&[6])).unwrap();
        held.close_epoch(u64::MAX);
        let mut first = EpochLog::default();
        held.publish_through(&mut first, 4, &metrics).await.unwrap();
        assert_eq!(first.0, ["1", "2", "3", "end 4"]);
        let part = held.part(&mut first).await.unwrap();
        held.publish_through(&mut first, u64::MAX, &metrics).await.unwrap();

        let (mut restored, _) = Holdback::restore("OUT", &schema(), Some(&part)).unwrap();
        let mut replay = EpochLog::default();
        restored.publish_through(&mut replay, 0, &metrics).await.unwrap();
        assert_eq!(replay.0, ["5", "end 5", "6", "end 18446744073709551615"]);
        assert_eq!(first.0[4..], replay.0[..], "the replay is what the first run published");
    }

    #[tokio::test]
    async fn a_part_saved_before_epochs_were_recorded_restores_as_one_epoch() {
        let metrics = Metrics::new("t");
        let (mut held, _) = Holdback::restore("OUT", &schema(), None).unwrap();
        held.hold(&batch(&[7, 8])).unwrap();
        held.close_epoch(3);
        let part = held.part(&mut EpochLog::default()).await.unwrap();
        let mut sections = snapshot::unframe(&part).unwrap();
        sections.truncate(3);
        let legacy = snapshot::frame(&sections);
        let (mut restored, _) = Holdback::restore("OUT", &schema(), Some(&legacy)).unwrap();
        let mut replay = EpochLog::default();
        restored.publish_through(&mut replay, 0, &metrics).await.unwrap();
        assert_eq!(replay.0, ["7", "8", "end 0"]);
    }

    /// The task with a real coordinator: rows wait for their commit, and the rows after
    /// the last barrier wait for the final checkpoint.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sink_task_publishes_on_commit_and_after_the_final_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::state::CheckpointStore::open(dir.path()).unwrap());
        let metrics = Arc::new(Metrics::new("t"));
        let part = "sink/0/OUT".to_string();
        let (mut coordinator, handle) = crate::state::Coordinator::new(
            Arc::clone(&store),
            [part.clone()].into(),
            std::time::Duration::from_millis(20),
            0,
            Arc::clone(&metrics),
        );
        coordinator.commit_final();
        let coordinator = tokio::spawn(coordinator.run());
        let sink = CollectSink::default();
        let (held, _) = Holdback::restore("OUT", &schema(), None).unwrap();
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(run_exactly_once(
            Box::new(sink.clone()),
            held,
            rx,
            Arc::clone(&metrics),
            Some((handle.clone(), part)),
        ));
        let mut trigger = handle.trigger.clone();
        tx.send(Message::Data(batch(&[1, 2]))).await.unwrap();
        trigger.wait_for(|id| *id >= 1).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(published(&sink).is_empty(), "published before its checkpoint");
        tx.send(Message::Barrier(1)).await.unwrap();
        handle.committed.clone().wait_for(|id| *id >= 1).await.unwrap();
        tx.send(Message::Data(batch(&[3]))).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while published(&sink).len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "checkpoint 1 committed, rows not published"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(published(&sink), vec![1, 2], "row 3 has no checkpoint yet");
        drop(handle);
        tx.send(Message::End).await.unwrap();
        task.await.unwrap().unwrap();
        coordinator.await.unwrap().unwrap();
        assert_eq!(published(&sink), vec![1, 2, 3]);
        // the final checkpoint holds row 3, for a crash during its publish
        let last = store.latest().unwrap().unwrap();
        assert!(last.id >= 2);
        let (restored, _) =
            Holdback::restore("OUT", &schema(), last.parts.get("sink/0/OUT").map(|v| v.as_slice())).unwrap();
        assert_eq!(restored.pending_rows(), 1);
    }
}
