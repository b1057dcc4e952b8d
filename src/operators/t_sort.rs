//! T-sort: `ORDER BY key WITHIN INTERVAL 'n' unit` (spec §3.1 "Overriding ROWTIME").
//!
//! Rows may arrive out of order in `key` (an event time) by up to the interval. The
//! operator holds them and releases, in key order, every row whose key is at least the
//! interval older than the stream's time (its newest ROWTIME, or a rowtime bound). A
//! row whose key is older than a row already released arrived too late to be put back
//! in order: it goes to `error_stream`. Released rows are stamped with the time that
//! released them, so ROWTIME stays non-decreasing; `SELECT STREAM key AS ROWTIME`
//! then makes the sorted key the rows' time (the documented way to promote an event
//! time to ROWTIME).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, cast, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::physical_expr::PhysicalExpr;

use super::{OpContext, Operator, rowtime_column};
use crate::error::Result;
use crate::time::Millis;

pub struct TSortOp {
    key: Arc<dyn PhysicalExpr>,
    within_ms: i64,
    schema: SchemaRef,
    /// Rows held, not yet released.
    held: Vec<RecordBatch>,
    /// The stream's time: the newest ROWTIME or bound seen.
    clock: Millis,
    /// The largest key released; a smaller one is too late.
    released: Millis,
    /// The smallest key held (MAX when none): nothing is due before the clock passes it.
    oldest_held: Millis,
}

impl TSortOp {
    pub fn new(key: Arc<dyn PhysicalExpr>, within_ms: i64, schema: SchemaRef) -> Self {
        TSortOp {
            key,
            within_ms,
            schema,
            held: Vec::new(),
            clock: Millis::MIN,
            released: Millis::MIN,
            oldest_held: Millis::MAX,
        }
    }

    fn keys(&self, batch: &RecordBatch) -> Result<TimestampMillisecondArray> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        let keys: ArrayRef = match keys.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, None) => keys,
            _ => cast(&keys, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
        };
        Ok(keys.as_primitive::<TimestampMillisecondType>().clone())
    }

    /// Releases the held rows whose key is at least `within` before the clock, sorted
    /// by key (ties in arrival order), stamped with the clock.
    fn release(&mut self, everything: bool) -> Result<Vec<RecordBatch>> {
        let cut = self.clock.saturating_sub(self.within_ms);
        if self.held.is_empty() || (!everything && self.oldest_held > cut) {
            return Ok(vec![]);
        }
        let rows = concat_batches(&self.schema, &self.held)?;
        self.held.clear();
        let keys = self.keys(&rows)?;
        let due: datafusion::arrow::array::BooleanArray = keys
            .iter()
            .map(|k| Some(everything || k.is_some_and(|k| k <= cut)))
            .collect();
        let waiting = datafusion::arrow::compute::not(&due)?;
        let rest = filter_record_batch(&rows, &waiting)?;
        self.oldest_held = Millis::MAX;
        if rest.num_rows() > 0 {
            self.oldest_held = datafusion::arrow::compute::min(&self.keys(&rest)?).unwrap_or(Millis::MAX);
            self.held.push(rest);
        }
        let ready = filter_record_batch(&rows, &due)?;
        if ready.num_rows() == 0 {
            return Ok(vec![]);
        }
        let ready_keys = self.keys(&ready)?;
        let order = lexsort_to_indices(
            &[
                SortColumn {
                    values: Arc::new(ready_keys.clone()),
                    options: None,
                },
                SortColumn {
                    values: Arc::new(UInt32Array::from_iter_values(0..ready.num_rows() as u32)),
                    options: None,
                },
            ],
            None,
        )?;
        let sorted = take_record_batch(&ready, &order)?;
        if let Some(newest) = datafusion::arrow::compute::max(&ready_keys) {
            self.released = self.released.max(newest);
        }
        let stamp = if self.clock == Millis::MIN {
            rowtime_column(&sorted).values().iter().copied().max().unwrap_or(0)
        } else {
            self.clock
        };
        let mut columns = sorted.columns().to_vec();
        let last = columns.len() - 1;
        columns[last] = Arc::new(TimestampMillisecondArray::from(vec![stamp; sorted.num_rows()]));
        Ok(vec![RecordBatch::try_new(Arc::clone(&self.schema), columns)?])
    }
}

impl Operator for TSortOp {
    fn name(&self) -> &'static str {
        "TSort"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let keys = self.keys(&batch)?;
        let rowtimes = rowtime_column(&batch).clone();
        let mut out = Vec::new();
        // Time moves with each distinct ROWTIME of the batch: what a row releases must be
        // out before the next row is judged late or not.
        let runs = datafusion::arrow::compute::partition(&[Arc::new(rowtimes.clone()) as ArrayRef])?;
        for run in runs.ranges() {
            let mut keep = Vec::with_capacity(run.len());
            for i in run.clone() {
                let why = if keys.is_null(i) {
                    "the T-sort key (ORDER BY ... WITHIN) is NULL".to_string()
                } else if keys.value(i) < self.released {
                    format!(
                        "arrived too late for ORDER BY ... WITHIN {} ms: key {} is older than {} already sorted",
                        self.within_ms,
                        crate::time::format_timestamp(keys.value(i)),
                        crate::time::format_timestamp(self.released)
                    )
                } else {
                    keep.push(i as u32);
                    if keys.value(i) < self.oldest_held {
                        self.oldest_held = keys.value(i);
                    }
                    continue;
                };
                let e = datafusion::error::DataFusionError::Execution(why);
                let mut row = super::eval::error_row(&batch, i, &e, ctx.pump);
                row.name = "LateRow".into();
                ctx.errors.push(row);
            }
            if !keep.is_empty() {
                self.held.push(take_record_batch(&batch, &UInt32Array::from(keep))?);
            }
            self.clock = self.clock.max(rowtimes.value(run.start));
            out.extend(self.release(false)?);
        }
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if bound == Millis::MAX {
            return self.release(true);
        }
        self.clock = self.clock.max(bound);
        self.release(false)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let rows = concat_batches(&self.schema, &self.held)?;
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![self.clock, self.released]));
        Ok(Some(crate::state::snapshot::encode(&[
            vec![times],
            rows.columns().to_vec(),
        ])?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let [times, rows] = sections.as_slice() else {
            return Err(crate::SluiceError::runtime("a T-sort snapshot has two sections"));
        };
        let times = times[0].as_primitive::<TimestampMillisecondType>();
        self.clock = times.value(0);
        self.released = times.value(1);
        let held = RecordBatch::try_new(Arc::clone(&self.schema), rows.clone())?;
        self.oldest_held = datafusion::arrow::compute::min(&self.keys(&held)?).unwrap_or(Millis::MAX);
        self.held = vec![held];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::error::ErrorRow;
    use crate::types::{ROWTIME, TIMESTAMP_TYPE};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("E", TIMESTAMP_TYPE, true),
            Field::new(ROWTIME, TIMESTAMP_TYPE, false),
        ]))
    }

    /// Rows of (event time, ROWTIME).
    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    fn pairs(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let e = b.column(0).as_primitive::<TimestampMillisecondType>();
            let t = rowtime_column(b);
            out.extend((0..b.num_rows()).map(|i| (e.value(i), t.value(i))));
        }
        out
    }

    #[test]
    fn time_moves_row_by_row_within_a_batch() {
        let mut op = TSortOp::new(Arc::new(Column::new("E", 0)), 5000, schema());
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let input = batch(&[
            (5000, 10000),
            (2000, 11000),
            (9000, 12000),
            (15000, 20000),
            (1000, 21000),
        ]);
        let out = op.on_batch(input, &mut ctx).unwrap();
        // 5000 is due at 10000 and goes out first, so 2000 (at 11000) is already too late.
        assert_eq!(pairs(&out), vec![(5000, 10000), (9000, 20000), (15000, 20000)]);
        assert_eq!(ctx.errors.len(), 2);
    }

    #[test]
    fn rows_up_to_the_interval_late_are_put_back_in_order_and_later_ones_refused() {
        let mut op = TSortOp::new(Arc::new(Column::new("E", 0)), 1000, schema());
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        // Event times 500, 300, 900 arrive at 1000..1200: none is 1 s old yet.
        assert!(
            op.on_batch(batch(&[(500, 1000), (300, 1100), (900, 1200)]), &mut ctx)
                .unwrap()
                .is_empty()
        );
        // At 1600 the rows up to 600 are due, in event-time order.
        let out = op.on_batch(batch(&[(1500, 1600)]), &mut ctx).unwrap();
        assert_eq!(pairs(&out), vec![(300, 1600), (500, 1600)]);
        // 450 is older than 500, which was already released: refused.
        assert!(op.on_batch(batch(&[(450, 1700)]), &mut ctx).unwrap().is_empty());
        assert_eq!(ctx.errors.len(), 1);
        assert_eq!(ctx.errors[0].name, "LateRow");
        // A bound moves the clock; the end releases everything.
        let out = op.on_bound(2000, &mut ctx).unwrap();
        assert_eq!(pairs(&out), vec![(900, 2000)]);
        let state = op.snapshot().unwrap().unwrap();
        let mut restored = TSortOp::new(Arc::new(Column::new("E", 0)), 1000, schema());
        restored.restore(&state).unwrap();
        let out = restored.on_bound(Millis::MAX, &mut ctx).unwrap();
        assert_eq!(pairs(&out), vec![(1500, 2000)]);
    }
}
