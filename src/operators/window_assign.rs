//! Window assignment for the window table functions `TUMBLE`, `HOP`, `CUMULATE` and
//! `SESSION` (Flink's windowing TVFs): each row is replicated once per window it falls
//! in, with the window's `WINDOW_START` and `WINDOW_END` appended (and `IS_PARTIAL`,
//! false, when the query asked for early results). Windows are half-open,
//! `[start, end)`. For `SESSION` each row gets its own window `[t, t + gap)`; the
//! session operator merges overlapping ones per key.
//!
//! Lateness is decided here, where every row passes in ROWTIME order: the stream's time
//! is the largest ROWTIME or bound seen so far, and a window closes when that time
//! reaches `end + lateness`. A (row, window) pair whose window has closed is late. The
//! aggregate downstream sees the same times, so a pair this operator lets through always
//! finds its window open. The same operator runs twice when the query names a late
//! stream: once keeping the on-time pairs (for the aggregate), once keeping only the
//! late ones (for the late stream), both from the same input, so they agree on every
//! pair. Without a late stream, late pairs go to `error_stream`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit, TimestampMillisecondType};

use super::{OpContext, Operator, rowtime_column};
use crate::error::{ErrorRow, Result, SluiceError};
use crate::time::Millis;

/// The shape of a window table function, all lengths in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed windows of `size`, aligned to the epoch plus `offset`.
    Tumble { size: i64, offset: i64 },
    /// Windows of `size` starting every `slide` (epoch plus `offset`); a row is in
    /// about `size / slide` of them.
    Hop { slide: i64, size: i64, offset: i64 },
    /// Windows that all start at a multiple of `max_size` and end every `step` up to
    /// `max_size` later: [s, s+step), [s, s+2·step), ... [s, s+max_size).
    Cumulate { step: i64, max_size: i64 },
    /// A row's own window is `[t, t + gap)`; overlapping windows of one key merge.
    Session { gap: i64 },
}

impl WindowKind {
    /// The windows `(start, end)` holding instant `t`, in increasing order of end.
    pub fn windows_of(&self, t: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            WindowKind::Tumble { size, offset } => {
                let start = (t - offset).div_euclid(size) * size + offset;
                out.push((start, start + size));
            }
            WindowKind::Hop { slide, size, offset } => {
                let last = (t - offset).div_euclid(slide) * slide + offset;
                // the earliest start whose window still holds t: start > t - size
                let mut start = last;
                while start - slide > t - size {
                    start -= slide;
                }
                while start <= last {
                    out.push((start, start + size));
                    start += slide;
                }
            }
            WindowKind::Cumulate { step, max_size } => {
                let start = t.div_euclid(max_size) * max_size;
                let first = (t - start) / step + 1;
                for k in first..=(max_size / step) {
                    out.push((start, start + k * step));
                }
            }
            WindowKind::Session { gap } => out.push((t, t + gap)),
        }
    }
}

/// Which pairs the operator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignMode {
    /// Pairs whose window is open; late pairs go to `error_stream` when
    /// `late_to_errors`, else they are left to a twin operator in [`AssignMode::Late`].
    OnTime { late_to_errors: bool },
    /// Only the late pairs (the late stream's pump).
    Late,
}

pub struct WindowAssignOp {
    kind: WindowKind,
    /// The input column holding event time (the trailing ROWTIME for `DESCRIPTOR(ROWTIME)`).
    time_column: usize,
    /// Input columns that go out (not the trailing ROWTIME, which is appended last).
    keep: Vec<usize>,
    lateness: i64,
    partial_column: bool,
    mode: AssignMode,
    /// The stream's time: the largest ROWTIME or bound seen.
    now: Millis,
    output_schema: SchemaRef,
}

impl WindowAssignOp {
    pub fn new(
        kind: WindowKind,
        time_column: usize,
        keep: Vec<usize>,
        lateness: i64,
        partial_column: bool,
        mode: AssignMode,
        output_schema: SchemaRef,
    ) -> Self {
        WindowAssignOp {
            kind,
            time_column,
            keep,
            lateness,
            partial_column,
            mode,
            now: Millis::MIN,
            output_schema,
        }
    }

    fn late_row(&self, batch: &RecordBatch, i: usize, window: (i64, i64), now: Millis, pump: &str) -> ErrorRow {
        let ts = crate::time::format_timestamp;
        let message = format!(
            "late row: its window [{}, {}) closed at {} (window end plus an allowed lateness of {} ms); \
             the stream's time was already {}. A stream's time is its ROWTIME: the ingest clock, unless \
             the input sets [inputs.event_time] (column, and max_delay_ms for rows out of order); \
             LATENESS => INTERVAL ... keeps windows open longer",
            ts(window.0),
            ts(window.1),
            ts(window.1.saturating_add(self.lateness)),
            self.lateness,
            ts(now)
        );
        super::eval::row_error("LateRow", message, batch, i, pump)
    }
}

impl Operator for WindowAssignOp {
    fn name(&self) -> &'static str {
        match self.mode {
            AssignMode::OnTime { .. } => "WindowAssign",
            AssignMode::Late => "WindowAssignLate",
        }
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(vec![]);
        }
        let times = batch.column(self.time_column);
        let times = match times.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => Arc::clone(times),
            _ => cast(times, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
        };
        let times = times.as_primitive::<TimestampMillisecondType>();
        let rowtimes = rowtime_column(&batch).clone();
        let (mut rows, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let mut windows = Vec::new();
        for i in 0..n {
            self.now = self.now.max(rowtimes.value(i));
            if times.is_null(i) {
                ctx.errors.push(super::eval::error_row(
                    &batch,
                    i,
                    &datafusion::error::DataFusionError::Execution(
                        "the window table function's time column is NULL".into(),
                    ),
                    ctx.pump,
                ));
                continue;
            }
            self.kind.windows_of(times.value(i), &mut windows);
            for &(start, end) in &windows {
                let late = end.saturating_add(self.lateness) <= self.now;
                let keep = match self.mode {
                    AssignMode::OnTime { late_to_errors } => {
                        if late && late_to_errors {
                            ctx.errors
                                .push(self.late_row(&batch, i, (start, end), self.now, ctx.pump));
                        }
                        !late
                    }
                    AssignMode::Late => late,
                };
                if keep {
                    rows.push(i as u32);
                    starts.push(start);
                    ends.push(end);
                }
            }
        }
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let indices = UInt32Array::from(rows);
        let mut columns: Vec<ArrayRef> = self
            .keep
            .iter()
            .map(|&c| take(batch.column(c).as_ref(), &indices, None))
            .collect::<std::result::Result<_, _>>()?;
        let count = indices.len();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        if self.partial_column {
            columns.push(Arc::new(BooleanArray::from(vec![false; count])));
        }
        columns.push(take(&rowtimes, &indices, None)?);
        Ok(vec![super::eval::conform(&self.output_schema, columns)?])
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.now = self.now.max(bound);
        Ok(vec![])
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let now: ArrayRef = Arc::new(Int64Array::from(vec![self.now]));
        Ok(Some(crate::state::snapshot::encode(&[vec![now]])?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let now = sections
            .first()
            .and_then(|s| s.first())
            .filter(|a| a.len() == 1 && a.data_type() == &DataType::Int64)
            .ok_or_else(|| SluiceError::runtime("corrupt window-assign state"))?;
        self.now = now.as_primitive::<Int64Type>().value(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::operators::test_input::input_schema;

    fn windows(kind: WindowKind, t: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        kind.windows_of(t, &mut out);
        out
    }

    #[test]
    fn tumble_windows_are_half_open_and_offset() {
        let k = WindowKind::Tumble { size: 10, offset: 0 };
        assert_eq!(windows(k, 0), vec![(0, 10)]);
        assert_eq!(windows(k, 9), vec![(0, 10)]);
        assert_eq!(windows(k, 10), vec![(10, 20)]);
        assert_eq!(windows(k, -1), vec![(-10, 0)]);
        let k = WindowKind::Tumble { size: 10, offset: 3 };
        assert_eq!(windows(k, 2), vec![(-7, 3)]);
        assert_eq!(windows(k, 3), vec![(3, 13)]);
    }

    #[test]
    fn hop_windows_cover_every_start_within_size() {
        let k = WindowKind::Hop {
            slide: 5,
            size: 15,
            offset: 0,
        };
        assert_eq!(windows(k, 10), vec![(0, 15), (5, 20), (10, 25)]);
        assert_eq!(windows(k, 14), vec![(0, 15), (5, 20), (10, 25)]);
        assert_eq!(windows(k, 15), vec![(5, 20), (10, 25), (15, 30)]);
        // size not a multiple of slide
        let k = WindowKind::Hop {
            slide: 4,
            size: 10,
            offset: 1,
        };
        for t in -20..40 {
            let w = windows(k, t);
            let expected: Vec<_> = (-40..40)
                .map(|i| i * 4 + 1)
                .filter(|s| *s <= t && t < s + 10)
                .map(|s| (s, s + 10))
                .collect();
            assert_eq!(w, expected, "t = {t}");
        }
    }

    #[test]
    fn cumulate_windows_grow_by_step_up_to_max_size() {
        let k = WindowKind::Cumulate { step: 10, max_size: 30 };
        assert_eq!(windows(k, 0), vec![(0, 10), (0, 20), (0, 30)]);
        assert_eq!(windows(k, 10), vec![(0, 20), (0, 30)]);
        assert_eq!(windows(k, 29), vec![(0, 30)]);
        assert_eq!(windows(k, 30), vec![(30, 40), (30, 50), (30, 60)]);
    }

    fn op(mode: AssignMode, lateness: i64) -> WindowAssignOp {
        let output = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new("WINDOW_START", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("WINDOW_END", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        // event time in V (as milliseconds), windows of 10
        WindowAssignOp::new(
            WindowKind::Tumble { size: 10, offset: 0 },
            1,
            vec![0, 1],
            lateness,
            false,
            mode,
            output,
        )
    }

    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(datafusion::arrow::array::StringArray::from(vec!["a"; rows.len()])),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    /// (event time, ROWTIME) pairs: a row whose window ended (plus lateness) at or
    /// before the stream's time is late, and the late twin keeps exactly those.
    #[test]
    fn late_rows_are_split_off_by_stream_time_and_lateness() {
        let input = batch(&[(5, 5), (3, 12), (9, 14), (12, 15), (1, 16)]);
        for lateness in [0, 5] {
            let mut errors = Vec::new();
            let mut ctx = OpContext {
                pump: "P",
                errors: &mut errors,
            };
            let on_time = op(AssignMode::OnTime { late_to_errors: true }, lateness)
                .on_batch(input.clone(), &mut ctx)
                .unwrap();
            let late = op(AssignMode::Late, lateness)
                .on_batch(input.clone(), &mut ctx)
                .unwrap();
            let values = |b: &[RecordBatch]| -> Vec<i64> {
                b.iter()
                    .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
                    .collect()
            };
            // window [0, 10) closes at 10 + lateness
            let (expected_on, expected_late) = if lateness == 0 {
                (vec![5, 12], vec![3, 9, 1])
            } else {
                (vec![5, 3, 9, 12], vec![1])
            };
            assert_eq!(values(&on_time), expected_on);
            assert_eq!(values(&late), expected_late);
            assert_eq!(errors.len(), expected_late.len());
            assert!(
                errors
                    .iter()
                    .all(|e| e.name == "LateRow" && e.message.contains("late row"))
            );
        }
    }

    #[test]
    fn a_bound_advances_time_and_survives_a_checkpoint() {
        let mut first = op(AssignMode::Late, 0);
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        first.on_bound(10, &mut ctx).unwrap();
        let mut restored = op(AssignMode::Late, 0);
        restored.restore(&first.snapshot().unwrap().unwrap()).unwrap();
        let late = restored.on_batch(batch(&[(9, 10), (10, 10)]), &mut ctx).unwrap();
        assert_eq!(late[0].num_rows(), 1);
        assert_eq!(late[0].column(1).as_primitive::<Int64Type>().value(0), 9);
    }
}
