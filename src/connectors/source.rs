//! The source side: what every source connector gets to publish records.

use datafusion::arrow::array::RecordBatch;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use super::RawRecord;
use super::event_time::{EventTimeOrder, Released, restamp};
use super::formats::RecordDecoder;
use crate::engine::TimeMode;
use crate::error::{ErrorRow, Result};
use crate::operators::Message;
use crate::runtime::hub::StreamWriter;
use crate::time::{Millis, now_millis};

/// How many records a source decodes into one batch at most.
pub const BATCH_RECORDS: usize = 4096;

/// How many bytes of raw records a source decodes into one batch at most (a record larger
/// than this is a batch of its own). A batch is in memory several times over while it
/// is decoded and passed on (the raw records, the parsed document, the Arrow columns, a
/// pump's output), so a count alone let 100 records of 10 MB peak at gigabytes. 8 MiB
/// keeps that peak in tens of megabytes, while records of up to 2 KB, the usual size of
/// an event, still fill all 4,096 places of a batch.
pub const BATCH_BYTES: usize = 8 << 20;

/// Whether a batch of `records` records of `bytes` bytes is full.
fn batch_full(records: usize, bytes: usize) -> bool {
    records >= BATCH_RECORDS || bytes >= BATCH_BYTES
}

/// How many of the leading `records` make one batch: at least one, at most
/// [`BATCH_RECORDS`], and no more once [`BATCH_BYTES`] is reached.
fn batch_len(records: &[RawRecord]) -> usize {
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        bytes += r.data.len();
        if batch_full(i + 1, bytes) {
            return i + 1;
        }
    }
    records.len()
}

/// The records a source gathers for its next batch: full at [`BATCH_RECORDS`] records
/// or [`BATCH_BYTES`] bytes, whichever comes first.
#[derive(Debug, Default)]
pub struct PendingRecords {
    records: Vec<RawRecord>,
    bytes: usize,
}

impl PendingRecords {
    /// Adds a record; true when the batch is now full and should be published.
    pub fn push(&mut self, record: RawRecord) -> bool {
        self.bytes += record.data.len();
        self.records.push(record);
        batch_full(self.records.len(), self.bytes)
    }

    pub fn records(&self) -> &[RawRecord] {
        &self.records
    }

    /// Empties the batch after it was published.
    pub fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }
}

pub trait Source: Send {
    /// Reads until the input ends or `ctx.shutdown` fires, publishing through `ctx`.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>>;
}

/// The publishing side of one input: its in-application streams (one per unit of
/// parallelism), its decoder, and the error stream.
pub struct SourceContext {
    pub input: String,
    pub outputs: Vec<StreamWriter>,
    pub decoder: RecordDecoder,
    pub errors: mpsc::UnboundedSender<Vec<ErrorRow>>,
    pub time: TimeMode,
    pub shutdown: watch::Receiver<bool>,
    /// ROWTIMEs handed out so far never decrease, even if the clock steps back.
    last_rowtime: Millis,
    next_output: usize,
    pub metrics: std::sync::Arc<crate::runtime::metrics::Metrics>,
    /// Where checkpoints are reported, when the application keeps state.
    checkpoints: Option<crate::state::CheckpointHandle>,
    last_barrier: u64,
    /// The position saved by the checkpoint a restart resumes from: the source skips
    /// what comes before it.
    pub resume: Option<u64>,
    /// The same position as saved, for sources whose position is not one number (a
    /// Kinesis stream keeps a sequence number per shard).
    pub resume_bytes: Option<Vec<u8>>,
    /// With event time: one order per in-application stream (see `event_time`).
    orders: Vec<EventTimeOrder>,
    /// Where late rows go (the input's late stream), else `error_stream`.
    late: Option<StreamWriter>,
    /// The ROWTIME of the late stream so far: late rows are stamped with at least this.
    late_clock: Millis,
    /// The input's transform (KDA's Lambda preprocessor, as HTTP): raw records go
    /// through it before decoding.
    preprocessor: Option<std::sync::Arc<super::http::Preprocessor>>,
    /// Whether the JSON paths were checked against the first records (once per input).
    paths_checked: bool,
}

impl SourceContext {
    pub fn new(
        input: String,
        outputs: Vec<StreamWriter>,
        decoder: RecordDecoder,
        errors: mpsc::UnboundedSender<Vec<ErrorRow>>,
        time: TimeMode,
        shutdown: watch::Receiver<bool>,
        metrics: std::sync::Arc<crate::runtime::metrics::Metrics>,
    ) -> Self {
        SourceContext {
            input,
            outputs,
            decoder,
            errors,
            time,
            shutdown,
            last_rowtime: Millis::MIN,
            next_output: 0,
            metrics,
            checkpoints: None,
            last_barrier: 0,
            resume: None,
            resume_bytes: None,
            orders: Vec::new(),
            late: None,
            late_clock: Millis::MIN,
            preprocessor: None,
            paths_checked: false,
        }
    }

    /// Sends the raw records through `preprocessor` before decoding them.
    pub fn with_preprocessor(mut self, preprocessor: Option<std::sync::Arc<super::http::Preprocessor>>) -> Self {
        self.preprocessor = preprocessor;
        self
    }

    /// Takes ROWTIME from the data: each stream (with `schema`) is put in order by a
    /// watermark; late rows go to `late` (the input's late stream) or `error_stream`.
    /// Call before [`Self::with_checkpoints`], which restores the orders.
    pub fn with_event_time(
        mut self,
        spec: &crate::app::EventTimeSpec,
        schema: datafusion::arrow::datatypes::SchemaRef,
        late: Option<StreamWriter>,
    ) -> Result<Self> {
        self.orders = (0..self.outputs.len())
            .map(|_| EventTimeOrder::new(spec, std::sync::Arc::clone(&schema)))
            .collect::<Result<_>>()?;
        self.late = late;
        Ok(self)
    }

    /// Takes part in checkpoints, resuming from `resume` (the saved position).
    pub fn with_checkpoints(mut self, handle: crate::state::CheckpointHandle, resume: Option<Vec<u8>>) -> Result<Self> {
        self.last_barrier = *handle.trigger.borrow();
        self.checkpoints = Some(handle);
        let resume = match resume {
            Some(bytes) if !self.orders.is_empty() => self.restore_orders(&bytes)?,
            other => other,
        };
        self.resume = resume
            .as_deref()
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        self.resume_bytes = resume;
        Ok(self)
    }

    /// With event time, a saved part frames the source's position, each stream's order
    /// and the late clock. Restores the orders and returns the position.
    fn restore_orders(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let corrupt = || crate::SluiceError::runtime(format!("corrupt event-time state of input {}", self.input));
        let mut parts = crate::state::snapshot::unframe(bytes)?.into_iter();
        let position = parts.next().ok_or_else(corrupt)?;
        let late_clock: [u8; 8] = parts
            .next()
            .flatten()
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?;
        self.late_clock = Millis::from_le_bytes(late_clock);
        for order in &mut self.orders {
            order.restore(&parts.next().flatten().ok_or_else(corrupt)?)?;
        }
        Ok(position)
    }

    /// What a checkpoint saves for this input: the position, and with event time the
    /// rows still held back (the position covers them).
    fn saved_part(&self, position: Vec<u8>) -> Vec<u8> {
        if self.orders.is_empty() {
            return position;
        }
        let mut parts = vec![Some(position), Some(self.late_clock.to_le_bytes().to_vec())];
        for order in &self.orders {
            match order.snapshot() {
                Ok(bytes) => parts.push(Some(bytes)),
                Err(e) => {
                    // Encoding Arrow arrays we built ourselves does not fail; if it ever
                    // does, a checkpoint without the held rows would lose them.
                    panic!("snapshotting the event-time order of {}: {e}", self.input)
                }
            }
        }
        crate::state::snapshot::frame(&parts)
    }

    /// Fires when a checkpoint is triggered, for sources that wait on other things
    /// (a Kinesis source idle between polls must still pass the barrier on).
    pub fn checkpoint_trigger(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.checkpoints.as_ref().map(|c| c.trigger.clone())
    }

    fn part(&self) -> String {
        format!("source/{}", self.input)
    }

    /// Called by a source between batches, with its position (what a restart should
    /// skip to): when a checkpoint was triggered, saves the position and emits the
    /// barrier on every stream of the input.
    pub async fn checkpoint_point(&mut self, position: u64) {
        self.checkpoint_point_with(|| position.to_le_bytes().to_vec()).await
    }

    /// As [`Self::checkpoint_point`], for a position encoded by the source; `position`
    /// is only called when a checkpoint is due.
    pub async fn checkpoint_point_with(&mut self, position: impl FnOnce() -> Vec<u8>) {
        let Some(c) = &self.checkpoints else { return };
        let id = *c.trigger.borrow();
        if id > self.last_barrier {
            self.last_barrier = id;
            c.ack(id, &self.part(), Some(self.saved_part(position())));
            for out in self.outputs.iter().chain(&self.late) {
                out.send(Message::Barrier(id)).await;
            }
        }
    }

    /// The ingest clock: wall-clock milliseconds, never going backwards.
    pub fn clock(&mut self) -> Millis {
        self.last_rowtime = self.last_rowtime.max(now_millis());
        self.last_rowtime
    }

    /// Decodes and publishes records to the next in-application stream (round robin
    /// when the input has parallelism > 1). Bad records go to `error_stream`.
    pub async fn publish(&mut self, records: &[RawRecord]) {
        let index = self.next_output % self.outputs.len();
        self.next_output += 1;
        self.publish_to(index, records).await
    }

    /// Decodes and publishes records to the input's `index`-th in-application stream
    /// (a source that assigns shards to streams picks the stream itself). Records come
    /// in any number (a Kinesis response holds up to 10,000): they are decoded in
    /// batches of at most [`BATCH_RECORDS`] records and [`BATCH_BYTES`] bytes.
    pub async fn publish_to(&mut self, index: usize, records: &[RawRecord]) {
        let mut rest = records;
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(batch_len(rest));
            self.publish_batch(index, batch).await;
            rest = after;
        }
    }

    async fn publish_batch(&mut self, index: usize, records: &[RawRecord]) {
        let default_rowtime = match self.time {
            TimeMode::WallClock { .. } => self.clock(),
            TimeMode::Recorded { .. } => records
                .iter()
                .find_map(|r| r.rowtime)
                .unwrap_or(self.last_rowtime.max(0)),
        };
        self.metrics.add_in(records.len() as u64, default_rowtime);
        // The input's transform sees the raw records first: Ok ones go on with its data,
        // Dropped ones are left out, failed ones become error_stream rows.
        let transformed;
        let records = match self.preprocessor.clone() {
            Some(preprocessor) => {
                let out = preprocessor.transform(records, default_rowtime).await;
                if !out.errors.is_empty() {
                    let _ = self.errors.send(out.errors);
                }
                transformed = out.records;
                if transformed.is_empty() {
                    return;
                }
                &transformed[..]
            }
            None => records,
        };
        if !self.paths_checked {
            self.paths_checked = true;
            self.warn_unmatched_paths(records);
        }
        let decoded = self.decoder.decode(records, default_rowtime);
        if !decoded.errors.is_empty() {
            let _ = self.errors.send(decoded.errors);
        }
        if decoded.batch.num_rows() == 0 {
            return;
        }
        let index = index % self.outputs.len();
        if self.orders.is_empty() {
            self.outputs[index].send(Message::Data(decoded.batch)).await;
            return;
        }
        let partition = records[0].shard_id.as_deref().unwrap_or("");
        let released = self.order_rows(index, partition, &decoded.batch);
        self.emit(index, released).await;
    }

    /// Says at start which JSON columns read nothing from the input's first records, and
    /// which mapping would (a column's default path `$.<NAME>` is upper case, keys often
    /// are not): otherwise every value is NULL, or every record an error row, unsaid.
    fn warn_unmatched_paths(&self, records: &[RawRecord]) {
        for u in self.decoder.unmatched_paths(records) {
            let first = format!(
                "input {}: column {} reads the JSON path {}, which matches no member of the first {} records, \
                 so its value is NULL",
                self.input, u.column, u.mapping, u.records
            );
            match &u.suggestion {
                Some(path) => tracing::warn!(
                    "{first}; the records have {path}: give the column mapping = \"{path}\" in the input's schema"
                ),
                None => tracing::warn!("{first}; give the column a `mapping` that names a member of the records"),
            }
        }
    }

    /// Stamps event times and hands the rows to the stream's order.
    fn order_rows(&mut self, index: usize, partition: &str, batch: &RecordBatch) -> Released {
        let result = self.orders[index].stamp(batch).and_then(|(stamped, nulls)| {
            if let Some(nulls) = nulls {
                self.reject(&nulls, "its event time is NULL");
            }
            self.orders[index].accept(partition, stamped)
        });
        result.unwrap_or_else(|e| {
            self.reject(batch, &format!("event time: {e}"));
            Released::default()
        })
    }

    /// Publishes what an order released: rows, late rows, then the new watermark.
    async fn emit(&mut self, index: usize, released: Released) {
        if let Some(rows) = released.rows {
            self.outputs[index].send(Message::Data(rows)).await;
        }
        if let Some(late) = released.late {
            self.late_clock = self.late_clock.max(self.orders[index].watermark());
            match (&self.late, restamp(&late, self.late_clock)) {
                (Some(stream), Ok(late)) => stream.send(Message::Data(late)).await,
                _ => self.reject(&late, "it is later than the event-time watermark (max_delay_ms)"),
            }
        }
        if let Some(bound) = released.bound {
            self.outputs[index].send(Message::Bound(bound)).await;
            // The late stream's time: no order will stamp a late row below the smallest watermark.
            let floor = self.orders.iter().map(|o| o.watermark()).min().unwrap_or(Millis::MIN);
            if let Some(late) = &self.late
                && floor > Millis::MIN
            {
                late.send(Message::Bound(floor)).await;
            }
        }
    }

    /// Rows that cannot take part go to `error_stream`, one error row each.
    fn reject(&self, batch: &RecordBatch, why: &str) {
        let message = format!("row of input {} left out of its stream: {why}", self.input);
        let rows: Vec<ErrorRow> = (0..batch.num_rows())
            .map(|i| crate::operators::eval::row_error("Late_Or_Untimed_Row", message.clone(), batch, i, &self.input))
            .collect();
        if !rows.is_empty() {
            let _ = self.errors.send(rows);
        }
    }

    /// A partition of the input (a Kinesis shard) is being read: with event time, it
    /// holds its stream's watermark until its first records (or until it is idle).
    pub fn open_partition(&mut self, index: usize, partition: &str) {
        if !self.orders.is_empty() {
            let index = index % self.outputs.len();
            self.orders[index].open_partition(partition);
        }
    }

    /// A partition of the input (a Kinesis shard) ended: with event time, it no longer
    /// holds its stream's watermark back.
    pub async fn close_partition(&mut self, index: usize, partition: &str) {
        if self.orders.is_empty() {
            return;
        }
        let index = index % self.outputs.len();
        let released = self.orders[index].close_partition(partition).unwrap_or_else(|e| {
            tracing::error!(input = %self.input, "event-time order: {e}");
            Released::default()
        });
        self.emit(index, released).await;
    }

    /// Advances time on every stream of this input. With event time, `t` (the clock)
    /// only matters to inputs gone idle: see `EventTimeOrder::idle_tick`.
    pub async fn bound(&mut self, t: Millis) {
        if !self.orders.is_empty() {
            for index in 0..self.orders.len() {
                let released = self.orders[index].idle_tick().unwrap_or_default();
                self.emit(index, released).await;
            }
            return;
        }
        for out in &self.outputs {
            out.send(Message::Bound(t)).await;
        }
    }

    /// How many in-application streams this input feeds (its parallelism).
    pub fn stream_count(&self) -> usize {
        self.outputs.len()
    }

    /// Stops an unbounded input (shutdown): saves its final position and ends every
    /// stream without advancing time, so open windows stay open in the saved state and
    /// a restart continues them instead of emitting them early.
    pub async fn stop(&mut self, position: Vec<u8>) {
        if let Some(c) = &self.checkpoints {
            c.finish(&self.part(), Some(self.saved_part(position)));
        }
        for out in self.outputs.iter().chain(&self.late) {
            out.send(Message::End).await;
        }
    }

    /// Ends the input: advances time to where the end of input takes it (everything, or
    /// `flush_at` for a recording), then ends every stream.
    pub async fn finish(&mut self, position: u64) {
        let t = match self.time {
            TimeMode::Recorded { flush_at: Some(t) } => t,
            _ => Millis::MAX,
        };
        // Everything held is released: the saved part then holds no rows.
        for index in 0..self.orders.len() {
            let released = self.orders[index].finish(t).unwrap_or_default();
            self.emit(index, released).await;
        }
        if let Some(c) = &self.checkpoints {
            c.finish(&self.part(), Some(self.saved_part(position.to_le_bytes().to_vec())));
        }
        if self.orders.is_empty() {
            self.bound(t).await;
        } else if let Some(late) = &self.late {
            late.send(Message::Bound(t)).await;
        }
        for out in self.outputs.iter().chain(&self.late) {
            out.send(Message::End).await;
        }
    }

    /// The period of wall-clock bounds, when time comes from the clock.
    pub fn bound_interval(&self) -> Option<std::time::Duration> {
        match self.time {
            TimeMode::WallClock { bound_interval_ms } => {
                Some(std::time::Duration::from_millis(bound_interval_ms.max(10)))
            }
            TimeMode::Recorded { .. } => None,
        }
    }

    /// A timer for a source that waits on its input (stdin, a channel) to send wall-clock
    /// bounds while the input is quiet; it fires rarely when time is not the clock's.
    pub fn bound_ticker(&self) -> tokio::time::Interval {
        tokio::time::interval(self.bound_interval().unwrap_or(std::time::Duration::from_secs(3600)))
    }
}

/// Resolves once the run is asked to stop (Ctrl-C, `AppHandle::stop`), at once if it
/// already was; never, once no one can ask any more. A source that waits on its input
/// selects on it beside the read, so a stop ends the input even while no record comes.
pub async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> RawRecord {
        RawRecord {
            data: vec![b'x'; bytes],
            ..Default::default()
        }
    }

    #[test]
    fn large_records_are_cut_by_bytes() {
        // 3 MiB records: the third passes the 8 MiB budget.
        let mut pending = PendingRecords::default();
        assert!(!pending.push(record(3 << 20)));
        assert!(!pending.push(record(3 << 20)));
        assert!(pending.push(record(3 << 20)));
        assert_eq!(pending.records().len(), 3);
        pending.clear();
        assert!(pending.records().is_empty());
        // A record past the budget on its own is a batch of one.
        assert!(pending.push(record(10 << 20)));

        let records: Vec<RawRecord> = [3, 3, 3, 10, 1, 1].iter().map(|mb| record(mb << 20)).collect();
        assert_eq!(batch_len(&records), 3);
        assert_eq!(batch_len(&records[3..]), 1);
        assert_eq!(batch_len(&records[4..]), 2, "what is left is one batch");
    }

    #[test]
    fn small_records_are_still_cut_at_the_record_count() {
        let mut pending = PendingRecords::default();
        for i in 1..BATCH_RECORDS {
            assert!(!pending.push(record(200)), "full after {i} records");
        }
        assert!(pending.push(record(200)));
        assert_eq!(pending.records().len(), BATCH_RECORDS);

        let records: Vec<RawRecord> = (0..10_000).map(|_| record(200)).collect();
        assert_eq!(batch_len(&records), BATCH_RECORDS);
        assert_eq!(batch_len(&records[..10]), 10);
    }

    /// A Kinesis response is published in one call: it is decoded in batches all the same.
    #[tokio::test]
    async fn one_publish_of_large_records_is_decoded_in_batches() {
        use crate::app::{RecordColumn, RecordFormat, RecordSchema};
        use crate::types::{ColumnDef, SqlType};
        let schema = RecordSchema {
            columns: vec![RecordColumn {
                column: ColumnDef::new("ID", SqlType::parse("INTEGER").unwrap()),
                mapping: Some("$.id".into()),
            }],
            format: RecordFormat::Json { row_path: "$".into() },
        };
        let (tx, mut rx) = mpsc::channel(16);
        let (errors, _errors_rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop) = watch::channel(false);
        let mut ctx = SourceContext::new(
            "IN_001".into(),
            vec![StreamWriter { index: 0, tx }],
            RecordDecoder::new(&schema, "IN_001").unwrap(),
            errors,
            TimeMode::Recorded { flush_at: None },
            stop,
            std::sync::Arc::new(crate::runtime::metrics::Metrics::new("test")),
        );
        let pad = "x".repeat(5 << 20);
        let records: Vec<RawRecord> = (0..3)
            .map(|id| RawRecord {
                data: format!("{{\"id\": {id}, \"pad\": \"{pad}\"}}").into_bytes(),
                ..Default::default()
            })
            .collect();
        ctx.publish_to(0, &records).await;
        drop(ctx);
        let mut rows = Vec::new();
        while let Some((_, message)) = rx.recv().await {
            if let Message::Data(batch) = message {
                rows.push(batch.num_rows());
            }
        }
        assert_eq!(rows, [2, 1]);
    }
}
