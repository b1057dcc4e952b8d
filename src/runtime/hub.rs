//! A stream hub: the one task per in-application stream. It receives the messages of
//! every writer (a source or the pumps that INSERT INTO the stream), merges them so the
//! stream stays non-decreasing in ROWTIME, and hands each message to every reader (the
//! pumps that read the stream and the sinks that deliver it).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::operators::{Message, rowtime_column};
use crate::time::Millis;

/// A writer's handle on a hub: its index among the hub's writers and the channel.
#[derive(Clone)]
pub struct StreamWriter {
    pub index: usize,
    pub tx: mpsc::Sender<(usize, Message)>,
}

impl StreamWriter {
    /// Sends a message; a hub that is gone (application shutting down) is not an error.
    pub async fn send(&self, message: Message) {
        let _ = self.tx.send((self.index, message)).await;
    }
}

struct WriterState {
    /// No later row from this writer has a smaller ROWTIME.
    frontier: Millis,
    ended: bool,
    /// It delivered the barrier being aligned.
    at_barrier: bool,
}

pub struct Hub {
    pub name: String,
    schema: SchemaRef,
    writers: Vec<WriterState>,
    readers: Vec<mpsc::Sender<Message>>,
    /// Readers attached from outside the application (`super::tap`), never waited for.
    taps: std::sync::Arc<super::tap::Taps>,
    /// Rows received but not yet safe to release (only with several writers).
    pending: Vec<RecordBatch>,
    last_bound: Millis,
}

impl Hub {
    pub fn new(
        name: String,
        schema: SchemaRef,
        writers: usize,
        readers: Vec<mpsc::Sender<Message>>,
        taps: std::sync::Arc<super::tap::Taps>,
    ) -> Self {
        let writers = (0..writers)
            .map(|_| WriterState {
                frontier: Millis::MIN,
                ended: false,
                at_barrier: false,
            })
            .collect();
        Hub {
            name,
            schema,
            writers,
            readers,
            taps,
            pending: Vec::new(),
            last_bound: Millis::MIN,
        }
    }

    async fn broadcast(&self, message: Message) {
        match &message {
            Message::Data(batch) => self.taps.offer(batch),
            Message::End => self.taps.close(),
            Message::Bound(_) | Message::Barrier(_) => {}
        }
        for r in &self.readers {
            let _ = r.send(message.clone()).await;
        }
    }

    /// Restores the rows a checkpoint held back (before any message arrives).
    pub fn restore(&mut self, state: &[u8]) -> Result<()> {
        for arrays in crate::state::snapshot::decode(state)? {
            if !arrays.is_empty() {
                self.pending.push(RecordBatch::try_new(self.schema.clone(), arrays)?);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let all = concat_batches(&self.schema, &self.pending)?;
        Ok(Some(crate::state::snapshot::encode(&[all.columns().to_vec()])?))
    }

    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<(usize, Message)>,
        checkpoints: Option<crate::state::CheckpointHandle>,
    ) -> Result<()> {
        let part = format!("hub/{}", self.name);
        let finish = |state: Option<Vec<u8>>| {
            if let Some(c) = &checkpoints {
                c.finish(&part, state);
            }
        };
        if self.writers.is_empty() {
            self.broadcast(Message::End).await;
            finish(None);
            return Ok(());
        }
        let single = self.writers.len() == 1;
        // Barrier alignment: a writer that delivered the barrier being aligned has its
        // next messages held until every writer has delivered it.
        let mut aligning: Option<u64> = None;
        let mut held: Vec<std::collections::VecDeque<Message>> = vec![Default::default(); self.writers.len()];
        let mut replay: std::collections::VecDeque<(usize, Message)> = Default::default();
        loop {
            let (w, message) = match replay.pop_front() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => m,
                    None => break,
                },
            };
            if single {
                // One writer: its order is the stream's order.
                match message {
                    Message::Barrier(id) => {
                        if let Some(c) = &checkpoints {
                            c.ack(id, &part, None);
                        }
                        self.broadcast(Message::Barrier(id)).await;
                    }
                    Message::End => {
                        self.broadcast(Message::End).await;
                        finish(None);
                        return Ok(());
                    }
                    other => self.broadcast(other).await,
                }
                continue;
            }
            if self.writers[w].at_barrier {
                held[w].push_back(message);
                continue;
            }
            match message {
                Message::Data(batch) => {
                    if batch.num_rows() > 0 {
                        let rt = rowtime_column(&batch);
                        let w = &mut self.writers[w];
                        w.frontier = w.frontier.max(rt.value(rt.len() - 1));
                        self.pending.push(batch);
                    }
                }
                Message::Bound(t) => self.writers[w].frontier = self.writers[w].frontier.max(t),
                Message::End => self.writers[w].ended = true,
                Message::Barrier(id) => {
                    self.writers[w].at_barrier = true;
                    aligning = Some(id);
                }
            }
            if let Some(id) = aligning
                && self.writers.iter().all(|w| w.at_barrier || w.ended)
            {
                if let Some(c) = &checkpoints {
                    c.ack(id, &part, self.snapshot()?);
                }
                self.broadcast(Message::Barrier(id)).await;
                for (i, w) in self.writers.iter_mut().enumerate() {
                    w.at_barrier = false;
                    replay.extend(held[i].drain(..).map(|m| (i, m)));
                }
                aligning = None;
            }
            if self.release().await? {
                finish(None);
                return Ok(());
            }
        }
        // every writer dropped its channel: flush what is left
        for w in &mut self.writers {
            w.ended = true;
        }
        self.release().await?;
        finish(None);
        Ok(())
    }

    /// Releases pending rows up to the smallest frontier of the writers still running.
    /// Returns true once every writer has ended (and End was sent).
    async fn release(&mut self) -> Result<bool> {
        let active: Vec<Millis> = self.writers.iter().filter(|w| !w.ended).map(|w| w.frontier).collect();
        let safe = active.iter().copied().min().unwrap_or(Millis::MAX);
        if !self.pending.is_empty() {
            let all = concat_batches(&self.schema, &self.pending)?;
            self.pending.clear();
            // Stable: rows of one writer with the same ROWTIME keep their order (arrow's
            // sort_to_indices does not promise that, and per-key order depends on it).
            let rowtimes = rowtime_column(&all);
            let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
            order.sort_by_key(|&i| rowtimes.value(i as usize));
            let sorted = take_record_batch(&all, &UInt32Array::from(order))?;
            let rt = rowtime_column(&sorted);
            let cut = rt.values().partition_point(|&t| t <= safe);
            if cut > 0 {
                self.broadcast(Message::Data(sorted.slice(0, cut))).await;
            }
            if cut < sorted.num_rows() {
                self.pending.push(sorted.slice(cut, sorted.num_rows() - cut));
            }
        }
        if active.is_empty() {
            self.broadcast(Message::End).await;
            return Ok(true);
        }
        if safe > self.last_bound && safe != Millis::MIN {
            self.last_bound = safe;
            self.broadcast(Message::Bound(safe)).await;
        }
        Ok(false)
    }
}

/// The hub of `error_stream`: every source and pump sends its record errors here.
pub async fn run_error_hub(
    mut rx: mpsc::UnboundedReceiver<Vec<crate::error::ErrorRow>>,
    readers: Vec<mpsc::Sender<Message>>,
    taps: std::sync::Arc<super::tap::Taps>,
    metrics: std::sync::Arc<super::metrics::Metrics>,
) {
    while let Some(rows) = rx.recv().await {
        if rows.is_empty() {
            continue;
        }
        metrics
            .error_rows
            .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(count = rows.len(), first = %rows[0].message, "records sent to error_stream");
        let batch = crate::error::error_rows_to_batch(&rows);
        taps.offer(&batch);
        for r in &readers {
            let _ = r.send(Message::Data(batch.clone())).await;
        }
    }
    taps.close();
    for r in &readers {
        let _ = r.send(Message::End).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
    use std::sync::Arc;

    #[tokio::test]
    async fn merging_writers_keeps_each_writers_order_among_equal_rowtimes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("V", DataType::Int64, true),
            Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let batch = |values: Vec<i64>, t: i64| {
            let n = values.len();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(values)),
                    Arc::new(TimestampMillisecondArray::from(vec![t; n])),
                ],
            )
            .unwrap()
        };
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let hub = Hub::new("S".into(), schema.clone(), 2, vec![out_tx], Default::default());
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(hub.run(rx, None));
        // Many rows of writer 0 at one ROWTIME, then writer 1 at the same ROWTIME.
        tx.send((0, Message::Data(batch((0..5000).collect(), 7))))
            .await
            .unwrap();
        tx.send((1, Message::Data(batch(vec![-1, -2], 7)))).await.unwrap();
        tx.send((0, Message::Data(batch((5000..6000).collect(), 9))))
            .await
            .unwrap();
        tx.send((0, Message::End)).await.unwrap();
        tx.send((1, Message::End)).await.unwrap();
        task.await.unwrap().unwrap();
        let mut seen = Vec::new();
        while let Ok(m) = out_rx.try_recv() {
            if let Message::Data(b) = m {
                seen.extend(b.column(0).as_primitive::<Int64Type>().values().iter().copied());
            }
        }
        let writer0: Vec<i64> = seen.iter().copied().filter(|v| *v >= 0).collect();
        assert_eq!(
            writer0,
            (0..6000).collect::<Vec<_>>(),
            "writer 0's rows in the order written"
        );
        let writer1: Vec<i64> = seen.iter().copied().filter(|v| *v < 0).collect();
        assert_eq!(writer1, [-1, -2]);
    }
}
