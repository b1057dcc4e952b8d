//! `SELECT STREAM <timestamp expr> AS ROWTIME, ...` (spec §3.1 "Overriding ROWTIME").
//!
//! The selected value becomes the output row's ROWTIME instead of a column. A stream
//! must stay non-decreasing in ROWTIME, so a row whose new ROWTIME is earlier than one
//! already emitted (or NULL) is refused to `error_stream`, as KDA refuses rows out of
//! time order. Since the rows' time is now the expression's, the pump announces bounds
//! no later than the last ROWTIME emitted ([`Operator::emit_floor`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};

use super::{OpContext, Operator};
use crate::error::Result;
use crate::time::Millis;

pub struct RowtimeOverrideOp {
    /// The column holding the new ROWTIME.
    column: usize,
    /// The latest ROWTIME emitted.
    last: Millis,
}

impl RowtimeOverrideOp {
    pub fn new(column: usize) -> Self {
        RowtimeOverrideOp {
            column,
            last: Millis::MIN,
        }
    }
}

impl Operator for RowtimeOverrideOp {
    fn name(&self) -> &'static str {
        "RowtimeOverride"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        let times = cast(batch.column(self.column), &ms)?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut stamps = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let why = if times.is_null(i) {
                "the expression selected AS ROWTIME is NULL".to_string()
            } else if times.value(i) < self.last {
                format!(
                    "rows out of time order: the new ROWTIME {} is earlier than {} already in the stream",
                    crate::time::format_timestamp(times.value(i)),
                    crate::time::format_timestamp(self.last)
                )
            } else {
                self.last = times.value(i);
                keep.push(i as u32);
                stamps.push(self.last);
                continue;
            };
            let e = datafusion::error::DataFusionError::Execution(why);
            let mut row = super::eval::error_row(&batch, i, &e, ctx.pump);
            row.name = "RowtimeOutOfOrder".into();
            ctx.errors.push(row);
        }
        if keep.is_empty() {
            return Ok(vec![]);
        }
        let kept = if keep.len() == batch.num_rows() {
            batch
        } else {
            take_record_batch(&batch, &UInt32Array::from(keep))?
        };
        let mut columns: Vec<ArrayRef> = kept.columns().to_vec();
        let last = columns.len() - 1;
        columns[last] = Arc::new(TimestampMillisecondArray::from(stamps));
        Ok(vec![RecordBatch::try_new(kept.schema(), columns)?])
    }

    fn emit_floor(&self) -> Option<Millis> {
        Some(self.last)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.last.to_le_bytes().to_vec()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let bytes: [u8; 8] = state
            .try_into()
            .map_err(|_| crate::SluiceError::runtime("an AS ROWTIME snapshot is 8 bytes"))?;
        self.last = Millis::from_le_bytes(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::types::{ROWTIME, TIMESTAMP_TYPE};

    fn batch(event: &[Option<i64>], rowtime: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("EVENT_TIME", TIMESTAMP_TYPE, true),
            Field::new(ROWTIME, TIMESTAMP_TYPE, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(event.to_vec())),
                Arc::new(TimestampMillisecondArray::from(vec![rowtime; event.len()])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_take_the_selected_time_and_rows_going_back_are_refused() {
        let mut op = RowtimeOverrideOp::new(0);
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let out = op
            .on_batch(batch(&[Some(10), Some(30), Some(20), None, Some(30)], 99), &mut ctx)
            .unwrap();
        let rt = super::super::rowtime_column(&out[0]);
        assert_eq!(rt.values().to_vec(), vec![10, 30, 30]);
        assert_eq!(op.emit_floor(), Some(30));
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| e.name == "RowtimeOutOfOrder"));
        let state = op.snapshot().unwrap().unwrap();
        let mut restored = RowtimeOverrideOp::new(0);
        restored.restore(&state).unwrap();
        assert_eq!(restored.emit_floor(), Some(30));
    }
}
