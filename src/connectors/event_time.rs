//! Event time for an input: ROWTIME taken from the data, put in order by a watermark.
//!
//! Live records arrive out of event-time order (shards read at different paces, devices
//! send late). A stream must be non-decreasing in ROWTIME, so each in-application stream
//! of an input with event time gets an [`EventTimeOrder`]: it stamps ROWTIME from the
//! event-time column, holds rows back, and releases them sorted once the watermark has
//! passed them, followed by a bound at the watermark (which closes windows).
//!
//! The watermark is per partition (a Kinesis shard; one partition for other sources):
//! each partition's newest event time minus the allowed delay, and the stream's watermark
//! is the smallest of them. The Kinesis source opens a partition for every shard it
//! reads, before its first record, so a shard not read yet holds the watermark too. A
//! replay that reads each shard in sequence order therefore computes the same watermarks
//! however the shards interleave, so windows are the same after a restart as in an
//! uninterrupted run. A closed shard stops holding it back.
//!
//! Idleness (`idle_timeout_ms`, as Flink's `withIdleness`): a partition without records
//! for that long stops holding the watermark back (an empty shard would otherwise stop
//! every window), and when every partition is idle every held row is released and the
//! watermark follows the wall clock on from the newest event time, so windows still
//! close when the input goes quiet. Without it the watermark waits for data.
//!
//! A row older than the watermark already emitted is late: it goes to the input's late
//! stream (ROWTIME = the watermark that found it late, so that stream is ordered too),
//! or to `error_stream` when none is configured. Never dropped silently.
//!
//! The held rows and the per-partition maxima are part of the source's checkpoint: the
//! source's saved position covers records that are still held here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};

use crate::app::EventTimeSpec;
use crate::error::{Result, SluiceError};
use crate::state::snapshot;
use crate::time::Millis;
use crate::types::TIMESTAMP_TYPE;

/// What one step of ordering gives to publish, in this order: rows, then the bound.
#[derive(Default)]
pub struct Released {
    /// Rows the watermark has passed, sorted by ROWTIME (stable: arrival order among equals).
    pub rows: Option<RecordBatch>,
    /// Rows older than the watermark already emitted, as stamped (see [`restamp`]).
    pub late: Option<RecordBatch>,
    /// The new watermark, when it advanced.
    pub bound: Option<Millis>,
}

/// One partition of the input (a shard).
struct Partition {
    /// Newest event time seen (`Millis::MIN` before the first record).
    newest: Millis,
    last_data: Instant,
}

impl Partition {
    fn new(newest: Millis) -> Self {
        Partition {
            newest,
            last_data: Instant::now(),
        }
    }
}

/// Orders one in-application stream by event time.
pub struct EventTimeOrder {
    /// Index of the event-time column in the stream's batches.
    column: usize,
    delay: Millis,
    idle_timeout: Option<Duration>,
    schema: SchemaRef,
    partitions: BTreeMap<String, Partition>,
    /// The watermark emitted last: no row older than this is released any more.
    watermark: Millis,
    held: Vec<RecordBatch>,
    last_input: Instant,
}

impl EventTimeOrder {
    /// For a stream with `schema` (declared columns, APPROXIMATE_ARRIVAL_TIME, ROWTIME).
    pub fn new(spec: &EventTimeSpec, schema: SchemaRef) -> Result<Self> {
        let column = schema
            .fields()
            .iter()
            .position(|f| f.name() == &spec.column)
            .filter(|&i| i + 1 < schema.fields().len())
            .ok_or_else(|| {
                SluiceError::config(format!(
                    "event_time column \"{}\" is not a column of the input (names are exact)",
                    spec.column
                ))
            })?;
        match schema.field(column).data_type() {
            DataType::Timestamp(..) | DataType::Int64 | DataType::Int32 => {}
            other => {
                return Err(SluiceError::config(format!(
                    "event_time column \"{}\" is {other}: it must be a TIMESTAMP or a BIGINT of epoch milliseconds",
                    spec.column
                )));
            }
        }
        if spec.max_delay_ms < 0 {
            return Err(SluiceError::config("event_time max_delay_ms must not be negative"));
        }
        Ok(EventTimeOrder {
            column,
            delay: spec.max_delay_ms,
            idle_timeout: spec.idle_timeout_ms.map(Duration::from_millis),
            schema,
            partitions: BTreeMap::new(),
            watermark: Millis::MIN,
            held: Vec::new(),
            last_input: Instant::now(),
        })
    }

    /// The watermark emitted so far (`Millis::MIN` before the first).
    pub fn watermark(&self) -> Millis {
        self.watermark
    }

    /// Rows held back, waiting for the watermark.
    pub fn held_rows(&self) -> usize {
        self.held.iter().map(|b| b.num_rows()).sum()
    }

    /// Sets ROWTIME from the event-time column. Rows whose event time is NULL are
    /// returned apart (they have no place in time).
    pub fn stamp(&self, batch: &RecordBatch) -> Result<(RecordBatch, Option<RecordBatch>)> {
        let event = event_millis(batch.column(self.column))?;
        let (batch, event, nulls) = if event.null_count() > 0 {
            let valid = datafusion::arrow::compute::is_not_null(&event)?;
            let invalid = datafusion::arrow::compute::not(&valid)?;
            let nulls = filter_record_batch(batch, &invalid)?;
            let kept = filter_record_batch(batch, &valid)?;
            let event = datafusion::arrow::compute::filter(&event, &valid)?;
            (kept, event, Some(nulls))
        } else {
            (batch.clone(), event, None)
        };
        let mut columns = batch.columns().to_vec();
        let rowtime = columns.len() - 1;
        columns[rowtime] = event;
        Ok((RecordBatch::try_new(Arc::clone(&self.schema), columns)?, nulls))
    }

    /// Takes stamped rows read from `partition` and releases what the watermark allows.
    pub fn accept(&mut self, partition: &str, batch: RecordBatch) -> Result<Released> {
        self.last_input = Instant::now();
        if batch.num_rows() == 0 {
            return Ok(Released::default());
        }
        let late_mask = self.late_rows(partition, &batch);
        let newest = *rowtimes(&batch).values().iter().max().expect("non-empty");
        let seen = self
            .partitions
            .entry(partition.to_string())
            .or_insert_with(|| Partition::new(Millis::MIN));
        seen.newest = seen.newest.max(newest);
        seen.last_data = self.last_input;
        let late = {
            if late_mask.true_count() > 0 {
                let on_time = datafusion::arrow::compute::not(&late_mask)?;
                let late = filter_record_batch(&batch, &late_mask)?;
                self.held.push(filter_record_batch(&batch, &on_time)?);
                Some(late)
            } else {
                self.held.push(batch);
                None
            }
        };
        let mut released = self.advance(self.partition_watermark())?;
        released.late = late;
        Ok(released)
    }

    /// Which rows of a batch read from `partition` are late, judged record by record in
    /// read order: a row is late when it is older than the watermark as it stood just
    /// before it, which the rows before it in the batch may have moved. Judging a whole
    /// batch against the watermark before it would let batch boundaries decide lateness,
    /// and a replay after a restart cuts batches elsewhere.
    fn late_rows(&self, partition: &str, batch: &RecordBatch) -> datafusion::arrow::array::BooleanArray {
        let active = |p: &Partition| self.idle_timeout.is_none_or(|t| p.last_data.elapsed() < t);
        // What the other partitions hold the watermark at, during this batch.
        let others = self
            .partitions
            .iter()
            .filter(|(name, p)| name.as_str() != partition && active(p))
            .map(|(_, p)| p.newest)
            .min();
        let mut newest = self.partitions.get(partition).map_or(Millis::MIN, |p| p.newest);
        rowtimes(batch)
            .values()
            .iter()
            .map(|&t| {
                let slowest = others.map_or(newest, |o| o.min(newest));
                let watermark = self.watermark.max(slowest.saturating_sub(self.delay));
                newest = newest.max(t);
                Some(watermark > Millis::MIN && t < watermark)
            })
            .collect()
    }

    /// A partition will be read (a shard reader started): until its first records it
    /// holds the watermark (or until it is idle).
    pub fn open_partition(&mut self, partition: &str) {
        if !self.partitions.contains_key(partition) {
            self.partitions
                .insert(partition.to_string(), Partition::new(Millis::MIN));
        }
    }

    /// A partition ended (a closed shard read to its end): it no longer holds the
    /// watermark back.
    pub fn close_partition(&mut self, partition: &str) -> Result<Released> {
        if self.partitions.remove(partition).is_none() {
            return Ok(Released::default());
        }
        self.advance(self.partition_watermark())
    }

    /// Called on the wall-clock tick: idle partitions stop holding the watermark back.
    pub fn idle_tick(&mut self) -> Result<Released> {
        if self.idle_timeout.is_none() {
            return Ok(Released::default());
        }
        self.advance(self.partition_watermark())
    }

    /// The end of the input: releases everything held and moves the watermark to `to`.
    pub fn finish(&mut self, to: Millis) -> Result<Released> {
        self.advance(to)
    }

    /// The smallest watermark of the partitions that are not idle; when all are idle,
    /// the newest event time plus the time they have been idle.
    fn partition_watermark(&self) -> Millis {
        let active = |p: &&Partition| self.idle_timeout.is_none_or(|t| p.last_data.elapsed() < t);
        if let Some(slowest) = self.partitions.values().filter(active).map(|p| p.newest).min() {
            return slowest.saturating_sub(self.delay);
        }
        match (self.partitions.values().map(|p| p.newest).max(), self.idle_timeout) {
            (Some(newest), Some(timeout)) if newest > Millis::MIN => {
                let idle = self.last_input.elapsed().saturating_sub(timeout);
                newest.saturating_add(Millis::try_from(idle.as_millis()).unwrap_or(Millis::MAX))
            }
            _ => Millis::MIN,
        }
    }

    /// Moves the watermark to `to` (never back) and releases the rows at or before it.
    fn advance(&mut self, to: Millis) -> Result<Released> {
        if to <= self.watermark {
            return Ok(Released::default());
        }
        self.watermark = to;
        let mut released = Released {
            bound: Some(to),
            ..Default::default()
        };
        if self.held.is_empty() {
            return Ok(released);
        }
        let all = concat_batches(&self.schema, &self.held)?;
        self.held.clear();
        let times = rowtimes(&all);
        // Stable sort of the released rows' indices by event time.
        let mut ready: Vec<u32> = (0..all.num_rows() as u32)
            .filter(|&i| times.value(i as usize) <= to)
            .collect();
        ready.sort_by_key(|&i| times.value(i as usize));
        if ready.len() < all.num_rows() {
            let waiting =
                datafusion::arrow::compute::kernels::cmp::gt(&rowtime_as_i64(&all)?, &Int64Array::new_scalar(to))?;
            self.held.push(filter_record_batch(&all, &waiting)?);
        }
        if !ready.is_empty() {
            released.rows = Some(take_record_batch(&all, &UInt32Array::from(ready))?);
        }
        Ok(released)
    }

    /// The state a checkpoint keeps: watermark, per-partition maxima, held rows.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let held = if self.held.is_empty() {
            None
        } else {
            let all = concat_batches(&self.schema, &self.held)?;
            Some(snapshot::encode(&[all.columns().to_vec()])?)
        };
        let names: Vec<&str> = self.partitions.keys().map(String::as_str).collect();
        let maxima: Vec<Millis> = self.partitions.values().map(|p| p.newest).collect();
        let partitions = snapshot::encode(&[vec![
            Arc::new(datafusion::arrow::array::StringArray::from(names)) as ArrayRef,
            Arc::new(Int64Array::from(maxima)),
        ]])?;
        Ok(snapshot::frame(&[
            Some(self.watermark.to_le_bytes().to_vec()),
            Some(partitions),
            held,
        ]))
    }

    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let corrupt = || SluiceError::runtime("corrupt event-time state in a checkpoint");
        let [watermark, partitions, held] =
            <[Option<Vec<u8>>; 3]>::try_from(snapshot::unframe(bytes)?).map_err(|_| corrupt())?;
        let watermark: [u8; 8] = watermark.ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?;
        self.watermark = Millis::from_le_bytes(watermark);
        self.partitions.clear();
        for arrays in snapshot::decode(&partitions.ok_or_else(corrupt)?)? {
            let [names, maxima] = <[ArrayRef; 2]>::try_from(arrays).map_err(|_| corrupt())?;
            let names = names
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .ok_or_else(corrupt)?;
            let maxima = maxima.as_any().downcast_ref::<Int64Array>().ok_or_else(corrupt)?;
            for i in 0..names.len() {
                self.partitions
                    .insert(names.value(i).to_string(), Partition::new(maxima.value(i)));
            }
        }
        self.held.clear();
        if let Some(held) = held {
            for arrays in snapshot::decode(&held)? {
                self.held.push(RecordBatch::try_new(Arc::clone(&self.schema), arrays)?);
            }
        }
        Ok(())
    }
}

/// Late rows keep their columns (the event-time column included) and take `rowtime`
/// (the watermark that found them late), so the late stream is ordered too.
pub fn restamp(batch: &RecordBatch, rowtime: Millis) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let last = columns.len() - 1;
    columns[last] = Arc::new(TimestampMillisecondArray::from(vec![rowtime; batch.num_rows()]));
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The event-time column as epoch milliseconds (TIMESTAMP of any unit, or BIGINT).
fn event_millis(column: &ArrayRef) -> Result<ArrayRef> {
    Ok(match column.data_type() {
        DataType::Int64 | DataType::Int32 => {
            let millis = cast(column, &DataType::Int64)?;
            cast(&millis, &TIMESTAMP_TYPE)?
        }
        _ => cast(column, &TIMESTAMP_TYPE)?,
    })
}

fn rowtimes(batch: &RecordBatch) -> &TimestampMillisecondArray {
    batch
        .column(batch.num_columns() - 1)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .expect("ROWTIME is the last column, TIMESTAMP(ms)")
}

fn rowtime_as_i64(batch: &RecordBatch) -> Result<ArrayRef> {
    Ok(cast(batch.column(batch.num_columns() - 1), &DataType::Int64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ColumnDef, SqlType, stream_schema};

    fn order(delay: i64) -> EventTimeOrder {
        let schema = stream_schema(&[ColumnDef::new("T", SqlType::BigInt)], true);
        let spec = EventTimeSpec {
            column: "T".into(),
            max_delay_ms: delay,
            idle_timeout_ms: None,
            late_stream: None,
        };
        EventTimeOrder::new(&spec, schema).unwrap()
    }

    fn batch(o: &EventTimeOrder, times: &[Option<i64>]) -> RecordBatch {
        let n = times.len();
        let raw = RecordBatch::try_new(
            Arc::clone(&o.schema),
            vec![
                Arc::new(Int64Array::from(times.to_vec())),
                Arc::new(TimestampMillisecondArray::from(vec![0; n])),
                Arc::new(TimestampMillisecondArray::from(vec![0; n])),
            ],
        )
        .unwrap();
        let (stamped, _) = o.stamp(&raw).unwrap();
        stamped
    }

    fn times(b: &Option<RecordBatch>) -> Vec<i64> {
        b.as_ref().map(|b| rowtimes(b).values().to_vec()).unwrap_or_default()
    }

    #[test]
    fn rows_are_released_in_order_once_the_watermark_passes_them() {
        let mut o = order(10);
        let b = batch(&o, &[Some(5), Some(3), Some(20)]);
        let r = o.accept("s", b).unwrap();
        assert_eq!(times(&r.rows), vec![3, 5], "watermark 20 - 10 = 10 passes 3 and 5");
        assert_eq!(r.bound, Some(10));
        let b = batch(&o, &[Some(12), Some(31)]);
        let r = o.accept("s", b).unwrap();
        assert_eq!(times(&r.rows), vec![12, 20]);
        assert_eq!(r.bound, Some(21));
        let r = o.finish(Millis::MAX).unwrap();
        assert_eq!(times(&r.rows), vec![31]);
    }

    /// Lateness does not depend on where batches are cut: each row is judged against
    /// the watermark as the rows read before it left it.
    #[test]
    fn lateness_is_the_same_however_the_rows_are_batched() {
        let ts = [100, 50, 95, 200, 185, 191, 300, 289];
        let run = |cuts: &[usize]| {
            let mut o = order(10);
            let (mut late, mut released) = (Vec::new(), Vec::new());
            let mut start = 0;
            for &end in cuts.iter().chain(std::iter::once(&ts.len())) {
                let times: Vec<Option<i64>> = ts[start..end].iter().map(|&t| Some(t)).collect();
                let r = o.accept("p", batch(&o, &times)).unwrap();
                late.extend(times_of(&r.late));
                released.extend(times_of(&r.rows));
                start = end;
            }
            released.extend(times_of(&o.finish(Millis::MAX).unwrap().rows));
            (late, released)
        };
        let whole = run(&[]);
        assert_eq!(whole.0, vec![50, 185, 289]);
        assert_eq!(whole.1, vec![95, 100, 191, 200, 300]);
        for cuts in [&[1][..], &[2, 5], &[1, 2, 3, 4, 5, 6, 7], &[4]] {
            assert_eq!(run(cuts), whole, "cut at {cuts:?}");
        }
    }

    fn times_of(b: &Option<RecordBatch>) -> Vec<i64> {
        b.as_ref().map(|b| rowtimes(b).values().to_vec()).unwrap_or_default()
    }

    #[test]
    fn late_rows_are_set_apart_with_the_watermark_as_rowtime() {
        let mut o = order(0);
        let b = batch(&o, &[Some(100)]);
        o.accept("s", b).unwrap();
        let b = batch(&o, &[Some(50), Some(150)]);
        let r = o.accept("s", b).unwrap();
        assert_eq!(times(&r.late), vec![50], "as stamped; the source restamps");
        let late = restamp(&r.late.unwrap(), 100).unwrap();
        assert_eq!(rowtimes(&late).value(0), 100);
        assert_eq!(
            late.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0),
            50
        );
        assert_eq!(times(&r.rows), vec![150]);
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark_until_it_closes() {
        let mut o = order(0);
        let b = batch(&o, &[Some(100)]);
        assert_eq!(o.accept("a", b).unwrap().bound, Some(100));
        let b = batch(&o, &[Some(10)]);
        // A new shard behind the others: its row is late only if older than what was emitted.
        let r = o.accept("b", b).unwrap();
        assert_eq!(times(&r.late), vec![10]);
        let b = batch(&o, &[Some(200)]);
        let r = o.accept("a", b).unwrap();
        assert_eq!(r.bound, None, "shard b (at 10) holds the watermark at 100");
        let r = o.close_partition("b").unwrap();
        assert_eq!((times(&r.rows), r.bound), (vec![200], Some(200)));
    }

    #[test]
    fn an_opened_partition_holds_the_watermark_until_it_is_idle() {
        let mut o = order(0);
        o.idle_timeout = Some(Duration::from_millis(30));
        o.open_partition("empty");
        let b = batch(&o, &[Some(100)]);
        assert_eq!(o.accept("busy", b).unwrap().bound, None, "the empty shard holds it");
        std::thread::sleep(Duration::from_millis(40));
        // Both idle now: the watermark follows the clock from the newest event time.
        let r = o.idle_tick().unwrap();
        assert_eq!(times(&r.rows), vec![100]);
        assert!((100..=200).contains(&r.bound.unwrap()), "{:?}", r.bound);
    }

    #[test]
    fn null_event_times_are_set_apart() {
        let o = order(0);
        let schema = Arc::clone(&o.schema);
        let raw = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(TimestampMillisecondArray::from(vec![0, 0])),
                Arc::new(TimestampMillisecondArray::from(vec![0, 0])),
            ],
        )
        .unwrap();
        let (stamped, nulls) = o.stamp(&raw).unwrap();
        assert_eq!((stamped.num_rows(), nulls.unwrap().num_rows()), (1, 1));
    }

    #[test]
    fn a_restored_order_continues_where_the_snapshot_was_taken() {
        let mut o = order(10);
        let b = batch(&o, &[Some(5), Some(30), Some(25)]);
        o.accept("shard-1", b).unwrap();
        let saved = o.snapshot().unwrap();
        let mut restored = order(10);
        restored.restore(&saved).unwrap();
        assert_eq!(restored.watermark(), 20);
        assert_eq!(restored.held_rows(), 2);
        let b = batch(&restored, &[Some(50)]);
        let r = restored.accept("shard-1", b).unwrap();
        assert_eq!(times(&r.rows), vec![25, 30]);
    }
}
