//! Readers attached to a stream of a running application from outside it: a shell, a
//! live feed, an embedding program. A reader sees the stream's rows from the moment it
//! attaches, in the stream's order, through a bounded buffer of its own. The stream's
//! hub never waits for a reader: when a reader's buffer is full, the batch is dropped
//! for that reader alone and its rows are counted, so a slow or stalled reader loses
//! rows and never slows the application or the other readers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::sync::mpsc;

/// Batches a reader's buffer holds by default before it starts losing rows.
pub const DEFAULT_READER_BATCHES: usize = 256;

/// The attached readers of one stream.
#[derive(Debug, Default)]
pub struct Taps {
    readers: Mutex<Vec<TapSender>>,
    /// How many readers are attached: the hub's one check per batch when there are none.
    attached: AtomicUsize,
    /// Set once the stream has ended: a reader attaching later ends at once.
    ended: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct TapSender {
    tx: mpsc::Sender<RecordBatch>,
    dropped: Arc<AtomicU64>,
}

impl Taps {
    /// Attaches a reader with room for `capacity` batches (at least one).
    pub fn attach(&self, stream: &str, schema: SchemaRef, capacity: usize) -> StreamReader {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if !self.ended.load(Ordering::Acquire) {
            readers.push(TapSender {
                tx,
                dropped: Arc::clone(&dropped),
            });
            self.attached.store(readers.len(), Ordering::Release);
        }
        StreamReader {
            stream: stream.to_string(),
            schema,
            rx,
            dropped,
        }
    }

    /// Hands a batch of the stream to every attached reader that has room; never waits.
    pub fn offer(&self, batch: &RecordBatch) {
        if self.attached.load(Ordering::Acquire) == 0 || batch.num_rows() == 0 {
            return;
        }
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.retain(|r| match r.tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                r.dropped.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                true
            }
            // The reader was dropped: detach it.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.attached.store(readers.len(), Ordering::Release);
    }

    /// The stream has ended: every reader receives what its buffer holds, then the end.
    pub fn close(&self) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        self.ended.store(true, Ordering::Release);
        readers.clear();
        self.attached.store(0, Ordering::Release);
    }

    /// How many readers are attached now.
    pub fn readers(&self) -> usize {
        self.attached.load(Ordering::Acquire)
    }
}

/// One attached reader: the rows of a stream from the moment it attached.
#[derive(Debug)]
pub struct StreamReader {
    pub stream: String,
    /// The stream's columns, ROWTIME last.
    pub schema: SchemaRef,
    rx: mpsc::Receiver<RecordBatch>,
    dropped: Arc<AtomicU64>,
}

impl StreamReader {
    /// The next batch of rows; None once the stream (or the application) has ended.
    pub async fn next(&mut self) -> Option<RecordBatch> {
        self.rx.recv().await
    }

    /// A batch if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<RecordBatch> {
        self.rx.try_recv().ok()
    }

    /// Rows this reader lost because its buffer was full when they came.
    pub fn dropped_rows(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("A", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap()
    }

    #[tokio::test]
    async fn a_reader_sees_the_batches_offered_after_it_attached() {
        let taps = Taps::default();
        taps.offer(&batch(1));
        let mut reader = taps.attach("S", batch(0).schema(), 4);
        taps.offer(&batch(2));
        taps.offer(&batch(3));
        taps.close();
        assert_eq!(reader.next().await.unwrap().num_rows(), 2);
        assert_eq!(reader.next().await.unwrap().num_rows(), 3);
        assert!(reader.next().await.is_none());
        assert_eq!(reader.dropped_rows(), 0);
    }

    #[tokio::test]
    async fn a_full_reader_loses_rows_counted_and_the_others_do_not() {
        let taps = Taps::default();
        let mut slow = taps.attach("S", batch(0).schema(), 1);
        let mut keeping_up = taps.attach("S", batch(0).schema(), 1);
        for rows in 1..=5 {
            taps.offer(&batch(rows));
            assert_eq!(keeping_up.next().await.unwrap().num_rows(), rows as usize);
        }
        // The slow reader kept only the first batch; 2 + 3 + 4 + 5 rows were lost to it.
        assert_eq!(slow.dropped_rows(), 14);
        assert_eq!(slow.try_next().unwrap().num_rows(), 1);
        assert_eq!(keeping_up.dropped_rows(), 0);
    }

    #[test]
    fn a_dropped_reader_is_detached_and_a_late_one_ends_at_once() {
        let taps = Taps::default();
        drop(taps.attach("S", batch(0).schema(), 1));
        assert_eq!(taps.readers(), 1);
        taps.offer(&batch(1));
        assert_eq!(taps.readers(), 0);
        taps.close();
        let mut late = taps.attach("S", batch(0).schema(), 1);
        assert!(late.try_next().is_none());
        assert_eq!(taps.readers(), 0);
    }
}
