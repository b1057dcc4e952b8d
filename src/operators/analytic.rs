//! KDA's analytic window functions (spec §4.1): `LAG`, `FIRST_VALUE`, `LAST_VALUE`,
//! `NTH_VALUE` and `EXP_AVG` over a sliding window. They run inside the sliding-window
//! operator (`super::sliding`), one [`AnalyticState`] per partition, next to the rows the
//! partition already holds.
//!
//! A row's value is read from the window ending at it, which for a bounded frame is exactly
//! the partition's held rows (oldest first, the current row last; peers with the same
//! ROWTIME in arrival order). With `RESPECT NULLS` (the default) every held row is a
//! candidate; with `IGNORE NULLS` only those whose value is not NULL.
//!
//! * `FIRST_VALUE` / `LAST_VALUE`: the first / last candidate; NULL when there is none.
//! * `NTH_VALUE(x, n) [FROM FIRST | FROM LAST]`: the n-th candidate from the oldest (or
//!   the newest); NULL when there are fewer than n.
//! * `LAG(x, n, default)`: the n-th candidate before the current row; `default` (else
//!   NULL) when the window holds fewer. A found row whose value is NULL gives NULL, not the
//!   default (`RESPECT NULLS`). `LAG(x, 0)` is the current row's value.
//! * `EXP_AVG(x, half_life)`: Σ wᵢxᵢ / Σ wᵢ over the rows with a non-NULL x, with
//!   wᵢ = 2^(−(t − tᵢ)/half_life) (A10: continuous decay; t the current ROWTIME).
//!
//! ## Cost per row
//!
//! For a bounded frame, `LAG`, `FIRST_VALUE`, `LAST_VALUE` and `NTH_VALUE` index into the
//! held rows: O(1) per row. `IGNORE NULLS` keeps the sequence numbers of the held rows with
//! a value, so the k-th candidate is found in O(1) too. A bounded `EXP_AVG` makes one pass
//! over the window's values (kept as `f64` next to the rows), newest first, stopping where
//! the weight underflows to 0 (past ~1075 half-lives): the result is then a function of the
//! window's contents alone, so restoring a checkpoint or reading back a spilled partition
//! (which rebuild the state from the rows) gives bit-identical values. An incremental form
//! (add the new row, subtract the expired ones) would be O(1) but its rounding would depend
//! on the history of additions and subtractions, which a rebuild cannot reproduce.
//!
//! An unbounded frame (`ROWS/RANGE UNBOUNDED PRECEDING`) holds no rows. Each function keeps
//! only what it can still need: the first candidates (`FIRST_VALUE`, `NTH_VALUE FROM
//! FIRST`), the latest ones (`LAST_VALUE`, `NTH_VALUE FROM LAST`, `LAG`), or, for `EXP_AVG`,
//! the decayed sums Σ wᵢxᵢ and Σ wᵢ as of the newest row with a value (updated in O(1):
//! decay both by 2^(−Δt/half_life), then add the new row with weight 1). That state is what
//! a snapshot or a spill entry saves.

pub mod markers;

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, SluiceError};
use crate::time::Millis;

/// Which analytic function, with its constant arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnalyticKind {
    /// `LAG(x, offset [, default])`.
    Lag {
        offset: usize,
    },
    FirstValue,
    LastValue,
    /// `NTH_VALUE(x, n) [FROM LAST]`, n ≥ 1.
    NthValue {
        n: usize,
        from_last: bool,
    },
    /// `EXP_AVG(x, half_life)`, half-life in milliseconds (> 0).
    ExpAvg {
        half_life: Millis,
    },
}

/// One analytic function of a select list, as the sliding-window operator runs it.
pub struct AnalyticFunction {
    pub kind: AnalyticKind,
    /// `IGNORE NULLS` (else `RESPECT NULLS`).
    pub ignore_nulls: bool,
    /// The value argument `x`.
    pub value: Arc<dyn PhysicalExpr>,
    /// `LAG`'s default, evaluated on the current row.
    pub default: Option<Arc<dyn PhysicalExpr>>,
    /// The type of the result: `x`'s type, DOUBLE for `EXP_AVG`. The held values are cast
    /// to it when they are evaluated, so every value the function returns has it.
    pub return_type: DataType,
    /// Its name, for messages.
    pub name: String,
}

impl AnalyticFunction {
    /// The candidates an unbounded frame must keep: the first `head` and the last `tail`.
    fn kept(&self) -> (usize, usize) {
        match self.kind {
            AnalyticKind::Lag { offset } => (0, offset),
            AnalyticKind::FirstValue => (1, 0),
            AnalyticKind::LastValue => (0, 1),
            AnalyticKind::NthValue { n, from_last: false } => (n, 0),
            AnalyticKind::NthValue { n, from_last: true } => (0, n),
            AnalyticKind::ExpAvg { .. } => (0, 0),
        }
    }

    fn null(&self) -> Result<ScalarValue> {
        Ok(ScalarValue::try_from(&self.return_type)?)
    }

    /// The value argument of a batch, in the result type.
    pub fn values(&self, batch: &datafusion::arrow::array::RecordBatch) -> DFResult<ArrayRef> {
        let v = self.value.evaluate(batch)?.into_array(batch.num_rows())?;
        cast_to(&v, &self.return_type)
    }

    /// `LAG`'s default per row of a batch, in the result type (None without a default).
    pub fn defaults(&self, batch: &datafusion::arrow::array::RecordBatch) -> DFResult<Option<ArrayRef>> {
        let Some(d) = &self.default else {
            return Ok(None);
        };
        let d = d.evaluate(batch)?.into_array(batch.num_rows())?;
        Ok(Some(cast_to(&d, &self.return_type)?))
    }

    /// The value for the current row of a bounded frame: `rows` are the window's rows
    /// (ROWTIME and a 1-row slice of the value), the current row last, as pushed to
    /// `state`; `default` is `LAG`'s default for the current row.
    pub fn evaluate_window(
        &self,
        state: &AnalyticState,
        rows: &VecDeque<(Millis, Vec<ArrayRef>)>,
        default: Option<ScalarValue>,
    ) -> Result<ScalarValue> {
        let value = |index: usize| -> Result<ScalarValue> { Ok(ScalarValue::try_from_array(&rows[index].1[0], 0)?) };
        // The k-th candidate (0 = oldest) and how many there are.
        let count = if self.ignore_nulls {
            state.non_null.len()
        } else {
            rows.len()
        };
        let candidate = |k: usize| -> Result<ScalarValue> {
            if self.ignore_nulls {
                value((state.non_null[k] - state.front) as usize)
            } else {
                value(k)
            }
        };
        match self.kind {
            AnalyticKind::FirstValue if count > 0 => candidate(0),
            AnalyticKind::LastValue if count > 0 => candidate(count - 1),
            AnalyticKind::NthValue { n, from_last } if n <= count => {
                candidate(if from_last { count - n } else { n - 1 })
            }
            AnalyticKind::Lag { offset: 0 } => value(rows.len() - 1),
            AnalyticKind::Lag { offset } => {
                // candidates before the current row
                let current_counts = !self.ignore_nulls || rows.back().is_some_and(|r| !r.1[0].is_null(0));
                let before = count - usize::from(current_counts && count > 0);
                if offset <= before {
                    candidate(before - offset)
                } else {
                    default.map_or_else(|| self.null(), Ok)
                }
            }
            AnalyticKind::ExpAvg { half_life } => {
                let times = rows.iter().map(|r| r.0);
                Ok(ScalarValue::Float64(exp_avg_pass(times, &state.numbers, half_life)))
            }
            _ => self.null(),
        }
    }

    /// The value for a row of an unbounded frame, adding the row to `state` (the frame
    /// holds every earlier row of the partition).
    pub fn step_unbounded(
        &self,
        state: &mut AnalyticState,
        t: Millis,
        value: ScalarValue,
        default: Option<ScalarValue>,
    ) -> Result<ScalarValue> {
        let (head, tail) = self.kept();
        if let AnalyticKind::ExpAvg { half_life } = self.kind {
            if let Some(x) = as_f64(&value) {
                // decay the sums to this row's time, then add it with weight 1
                let decay = if state.weight > 0.0 {
                    decay(t - state.at, half_life)
                } else {
                    0.0
                };
                state.sum = state.sum * decay + x;
                state.weight = state.weight * decay + 1.0;
                state.at = t;
            }
            // a row without a value decays both sums alike: the ratio stands
            return Ok(ScalarValue::Float64(
                (state.weight > 0.0).then(|| state.sum / state.weight),
            ));
        }
        let is_candidate = !(self.ignore_nulls && value.is_null());
        let result = match self.kind {
            AnalyticKind::Lag { offset: 0 } => value.clone(),
            AnalyticKind::Lag { offset } => {
                // the tail holds the candidates before this row
                if state.tail.len() >= offset {
                    state.tail[state.tail.len() - offset].clone()
                } else {
                    default.map_or_else(|| self.null(), Ok)?
                }
            }
            _ => self.null()?,
        };
        if is_candidate {
            if state.head.len() < head {
                state.head.push(value.clone());
            }
            if tail > 0 {
                if state.tail.len() == tail {
                    state.tail.pop_front();
                }
                state.tail.push_back(value);
            }
        }
        Ok(match self.kind {
            AnalyticKind::Lag { .. } => result,
            AnalyticKind::FirstValue => state.head.first().cloned().map_or_else(|| self.null(), Ok)?,
            AnalyticKind::LastValue => state.tail.back().cloned().map_or_else(|| self.null(), Ok)?,
            AnalyticKind::NthValue { n, from_last: false } => {
                state.head.get(n - 1).cloned().map_or_else(|| self.null(), Ok)?
            }
            AnalyticKind::NthValue { n, from_last: true } if state.tail.len() == n => state.tail[0].clone(),
            _ => self.null()?,
        })
    }

    /// The unbounded-frame state as scalars (a snapshot's or spill entry's row): the kept
    /// head and tail candidates as lists, then `EXP_AVG`'s sums and their time.
    pub fn state(&self, state: &AnalyticState) -> Result<Vec<ScalarValue>> {
        let list = |values: Vec<ScalarValue>| -> Result<ScalarValue> {
            Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                &values,
                &self.return_type,
            )))
        };
        Ok(vec![
            list(state.head.clone())?,
            list(state.tail.iter().cloned().collect())?,
            ScalarValue::Float64(Some(state.sum)),
            ScalarValue::Float64(Some(state.weight)),
            ScalarValue::Int64(Some(state.at)),
        ])
    }

    /// An unbounded-frame state from the arrays of [`AnalyticFunction::state`] (row 0).
    pub fn restore(&self, arrays: &[ArrayRef]) -> Result<AnalyticState> {
        let corrupt = || SluiceError::runtime("corrupt analytic window state");
        let [head, tail, sum, weight, at] = arrays else {
            return Err(corrupt());
        };
        let list = |a: &ArrayRef| -> Result<Vec<ScalarValue>> {
            let list: &ListArray = a.as_list_opt::<i32>().ok_or_else(corrupt)?;
            let values = list.value(0);
            (0..values.len())
                .map(|i| Ok(ScalarValue::try_from_array(&values, i)?))
                .collect()
        };
        let f64_of = |a: &ArrayRef| -> Result<f64> {
            a.as_primitive_opt::<Float64Type>()
                .map(|a| a.value(0))
                .ok_or_else(corrupt)
        };
        Ok(AnalyticState {
            head: list(head)?,
            tail: list(tail)?.into(),
            sum: f64_of(sum)?,
            weight: f64_of(weight)?,
            at: at
                .as_primitive_opt::<Int64Type>()
                .map(|a| a.value(0))
                .ok_or_else(corrupt)?,
            ..AnalyticState::default()
        })
    }
}

/// An analytic function's per-partition state (see the module comment).
#[derive(Debug, Default)]
pub struct AnalyticState {
    /// Bounded frames: the sequence number of the oldest held row and of the next row.
    front: u64,
    next: u64,
    /// Bounded frames with IGNORE NULLS: the sequence numbers of the held rows whose value
    /// is not NULL, oldest first.
    non_null: VecDeque<u64>,
    /// Bounded `EXP_AVG`: the held rows' values as `f64` (None for NULL), oldest first.
    numbers: VecDeque<Option<f64>>,
    /// Unbounded frames: the first candidates, and the latest ones (oldest first).
    head: Vec<ScalarValue>,
    tail: VecDeque<ScalarValue>,
    /// Unbounded `EXP_AVG`: Σ wᵢxᵢ and Σ wᵢ with weights relative to `at`, the ROWTIME of
    /// the newest row with a value.
    sum: f64,
    weight: f64,
    at: Millis,
}

impl AnalyticState {
    /// A bounded frame took in a row (its value a 1-row array).
    pub fn push(&mut self, f: &AnalyticFunction, value: &dyn Array) {
        if f.ignore_nulls && !value.is_null(0) {
            self.non_null.push_back(self.next);
        }
        if matches!(f.kind, AnalyticKind::ExpAvg { .. }) {
            self.numbers.push_back(
                (!value.is_null(0))
                    .then(|| value.as_primitive_opt::<Float64Type>().map(|a| a.value(0)))
                    .flatten(),
            );
        }
        self.next += 1;
    }

    /// A bounded frame let its oldest row go.
    pub fn pop(&mut self) {
        if self.non_null.front() == Some(&self.front) {
            self.non_null.pop_front();
        }
        self.numbers.pop_front();
        self.front += 1;
    }

    /// The memory it holds beyond its own struct.
    pub fn size(&self) -> usize {
        size_of::<Self>()
            + self.non_null.capacity() * size_of::<u64>()
            + self.numbers.capacity() * size_of::<Option<f64>>()
            + self.head.iter().map(ScalarValue::size).sum::<usize>()
            + self.tail.iter().map(ScalarValue::size).sum::<usize>()
    }
}

/// 2^(−age/half_life).
fn decay(age: Millis, half_life: Millis) -> f64 {
    (-(age as f64) / half_life as f64).exp2()
}

/// The weighted average of `numbers` (aligned with `times`, oldest first) with weights
/// 2^(−(t_ref − tᵢ)/half_life), t_ref the time of the newest row with a value. Relative to
/// the current row's time every weight carries the same extra factor, which cancels in
/// the ratio; relative to the newest value, that row weighs 1 and the sum cannot
/// underflow to 0. NULL when no row has a value.
fn exp_avg_pass(
    times: impl DoubleEndedIterator<Item = Millis>,
    numbers: &VecDeque<Option<f64>>,
    half_life: Millis,
) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0.0);
    let mut reference = None;
    for (t, x) in times.rev().zip(numbers.iter().rev()) {
        let Some(x) = x else { continue };
        let t_ref = *reference.get_or_insert(t);
        let w = decay(t_ref - t, half_life);
        if w == 0.0 {
            // older rows weigh 0 too (ROWTIME never decreases)
            break;
        }
        sum += w * x;
        weight += w;
    }
    reference.map(|_| sum / weight)
}

fn as_f64(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Float64(x) => *x,
        other if other.is_null() => None,
        other => other.cast_to(&DataType::Float64).ok().and_then(|v| match v {
            ScalarValue::Float64(x) => x,
            _ => None,
        }),
    }
}

fn cast_to(a: &ArrayRef, to: &DataType) -> DFResult<ArrayRef> {
    if a.data_type() == to {
        Ok(Arc::clone(a))
    } else {
        Ok(datafusion::arrow::compute::cast(a, to)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array};
    use datafusion::physical_expr::expressions::Column;

    use super::*;

    /// A 1-row Int64 array.
    fn one(v: Option<i64>) -> ArrayRef {
        Arc::new(Int64Array::from(vec![v]))
    }

    fn function(kind: AnalyticKind, ignore_nulls: bool, return_type: DataType) -> AnalyticFunction {
        AnalyticFunction {
            kind,
            ignore_nulls,
            value: Arc::new(Column::new("V", 0)),
            default: None,
            return_type,
            name: "f".into(),
        }
    }

    /// Runs a bounded window of at most `rows` rows over `values` (ROWTIME = index × 1 s)
    /// and returns the value per row.
    fn bounded(f: &AnalyticFunction, rows: usize, values: &[Option<i64>], default: Option<i64>) -> Vec<ScalarValue> {
        let mut state = AnalyticState::default();
        let mut held: VecDeque<(Millis, Vec<ArrayRef>)> = VecDeque::new();
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let a = one(*v);
            state.push(f, a.as_ref());
            held.push_back((i as Millis * 1000, vec![a]));
            if held.len() > rows {
                held.pop_front();
                state.pop();
            }
            out.push(
                f.evaluate_window(&state, &held, default.map(|d| ScalarValue::Int64(Some(d))))
                    .unwrap(),
            );
        }
        out
    }

    fn unbounded(f: &AnalyticFunction, values: &[Option<i64>], default: Option<i64>) -> Vec<ScalarValue> {
        let mut state = AnalyticState::default();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                // a snapshot round trip between every two rows must not change anything
                let arrays: Vec<ArrayRef> = f.state(&state).unwrap().iter().map(|s| s.to_array().unwrap()).collect();
                let mut restored = f.restore(&arrays).unwrap();
                assert_eq!(restored.head, state.head);
                assert_eq!(restored.tail, state.tail);
                let out = f
                    .step_unbounded(
                        &mut restored,
                        i as Millis * 1000,
                        ScalarValue::Int64(*v),
                        default.map(|d| ScalarValue::Int64(Some(d))),
                    )
                    .unwrap();
                state = restored;
                out
            })
            .collect()
    }

    fn ints(v: &[Option<i64>]) -> Vec<ScalarValue> {
        v.iter().map(|x| ScalarValue::Int64(*x)).collect()
    }

    const VALUES: [Option<i64>; 7] = [Some(1), None, Some(3), Some(4), None, None, Some(7)];

    #[test]
    fn lag_in_a_rows_window_gives_the_default_only_past_the_window() {
        let lag2 = function(AnalyticKind::Lag { offset: 2 }, false, DataType::Int64);
        // window of 3 rows: two before the current one; a NULL found stays NULL
        assert_eq!(
            bounded(&lag2, 3, &VALUES, Some(-1)),
            ints(&[Some(-1), Some(-1), Some(1), None, Some(3), Some(4), None])
        );
        // a window of 2 rows never holds the row 2 back
        assert_eq!(bounded(&lag2, 2, &VALUES, None), ints(&[None; 7]));
        // unbounded: the whole partition
        assert_eq!(
            unbounded(&lag2, &VALUES, Some(-1)),
            ints(&[Some(-1), Some(-1), Some(1), None, Some(3), Some(4), None])
        );
        let lag0 = function(AnalyticKind::Lag { offset: 0 }, true, DataType::Int64);
        assert_eq!(bounded(&lag0, 2, &VALUES, Some(-1)), ints(&VALUES));
        assert_eq!(unbounded(&lag0, &VALUES, Some(-1)), ints(&VALUES));
    }

    #[test]
    fn lag_ignore_nulls_skips_null_rows_before_the_current_one() {
        let lag1 = function(AnalyticKind::Lag { offset: 1 }, true, DataType::Int64);
        let want = ints(&[Some(-1), Some(1), Some(1), Some(3), Some(4), Some(4), Some(4)]);
        assert_eq!(unbounded(&lag1, &VALUES, Some(-1)), want);
        // 3 rows: at row 6 the window holds rows 4..6 (NULL, NULL, 7): no earlier value
        assert_eq!(
            bounded(&lag1, 3, &VALUES, Some(-1)),
            ints(&[Some(-1), Some(1), Some(1), Some(3), Some(4), Some(4), Some(-1)])
        );
    }

    #[test]
    fn first_and_last_value_respect_or_ignore_nulls() {
        let first = function(AnalyticKind::FirstValue, false, DataType::Int64);
        let first_ign = function(AnalyticKind::FirstValue, true, DataType::Int64);
        let last = function(AnalyticKind::LastValue, false, DataType::Int64);
        let last_ign = function(AnalyticKind::LastValue, true, DataType::Int64);
        // windows of 2 rows: (1) (1,N) (N,3) (3,4) (4,N) (N,N) (N,7)
        assert_eq!(
            bounded(&first, 2, &VALUES, None),
            ints(&[Some(1), Some(1), None, Some(3), Some(4), None, None])
        );
        assert_eq!(
            bounded(&first_ign, 2, &VALUES, None),
            ints(&[Some(1), Some(1), Some(3), Some(3), Some(4), None, Some(7)])
        );
        assert_eq!(bounded(&last, 2, &VALUES, None), ints(&VALUES));
        assert_eq!(
            bounded(&last_ign, 2, &VALUES, None),
            ints(&[Some(1), Some(1), Some(3), Some(4), Some(4), None, Some(7)])
        );
        assert_eq!(unbounded(&first, &VALUES, None), ints(&[Some(1); 7]));
        assert_eq!(unbounded(&last, &VALUES, None), ints(&VALUES));
        assert_eq!(
            unbounded(&last_ign, &VALUES, None),
            ints(&[Some(1), Some(1), Some(3), Some(4), Some(4), Some(4), Some(7)])
        );
        let nulls_first = [None, None, Some(5)];
        assert_eq!(unbounded(&first, &nulls_first, None), ints(&[None; 3]));
        assert_eq!(unbounded(&first_ign, &nulls_first, None), ints(&[None, None, Some(5)]));
    }

    #[test]
    fn nth_value_from_first_and_from_last() {
        let second = function(
            AnalyticKind::NthValue { n: 2, from_last: false },
            false,
            DataType::Int64,
        );
        let second_last = function(AnalyticKind::NthValue { n: 2, from_last: true }, false, DataType::Int64);
        let second_ign = function(AnalyticKind::NthValue { n: 2, from_last: false }, true, DataType::Int64);
        let second_last_ign = function(AnalyticKind::NthValue { n: 2, from_last: true }, true, DataType::Int64);
        // windows of 3 rows: (1) (1,N) (1,N,3) (N,3,4) (3,4,N) (4,N,N) (N,N,7)
        assert_eq!(
            bounded(&second, 3, &VALUES, None),
            ints(&[None, None, None, Some(3), Some(4), None, None])
        );
        assert_eq!(
            bounded(&second_last, 3, &VALUES, None),
            ints(&[None, Some(1), None, Some(3), Some(4), None, None])
        );
        assert_eq!(
            bounded(&second_ign, 3, &VALUES, None),
            ints(&[None, None, Some(3), Some(4), Some(4), None, None])
        );
        assert_eq!(
            bounded(&second_last_ign, 3, &VALUES, None),
            ints(&[None, None, Some(1), Some(3), Some(3), None, None])
        );
        assert_eq!(
            unbounded(&second, &VALUES, None),
            ints(&[None, None, None, None, None, None, None])
        );
        assert_eq!(
            unbounded(&second_ign, &VALUES, None),
            ints(&[None, None, Some(3), Some(3), Some(3), Some(3), Some(3)])
        );
        assert_eq!(
            unbounded(&second_last, &VALUES, None),
            ints(&[None, Some(1), None, Some(3), Some(4), None, None])
        );
        assert_eq!(
            unbounded(&second_last_ign, &VALUES, None),
            ints(&[None, None, Some(1), Some(3), Some(3), Some(3), Some(4)])
        );
    }

    fn float(v: &ScalarValue) -> Option<f64> {
        match v {
            ScalarValue::Float64(x) => *x,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exp_avg_weights_halve_every_half_life() {
        // half-life 2 s, rows 1 s apart: weights 1, 2^-0.5, 2^-1, ... back from the newest
        let f = function(AnalyticKind::ExpAvg { half_life: 2000 }, false, DataType::Float64);
        let values = [Some(10), Some(20), None, Some(40)];
        let as_f64: Vec<Option<i64>> = values.to_vec();
        let run = |window: usize| -> Vec<Option<f64>> {
            let mut state = AnalyticState::default();
            let mut held: VecDeque<(Millis, Vec<ArrayRef>)> = VecDeque::new();
            as_f64
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let a: ArrayRef = Arc::new(Float64Array::from(vec![v.map(|x| x as f64)]));
                    state.push(&f, a.as_ref());
                    held.push_back((i as Millis * 1000, vec![a]));
                    if held.len() > window {
                        held.pop_front();
                        state.pop();
                    }
                    float(&f.evaluate_window(&state, &held, None).unwrap())
                })
                .collect()
        };
        let h = |age: f64| 2f64.powf(-age / 2.0);
        // row 1: (20·1 + 10·h(1)) / (1 + h(1)); row 2 (NULL): the same rows, both weights
        // shifted by h(1), which cancels; row 3: 40·1 + 20·h(2) + 10·h(3)
        let r1 = (20.0 + 10.0 * h(1.0)) / (1.0 + h(1.0));
        let r3 = (40.0 + 20.0 * h(2.0) + 10.0 * h(3.0)) / (1.0 + h(2.0) + h(3.0));
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12 * b;
        let all = run(10);
        assert!(
            close(all[0], 10.0) && close(all[1], r1) && close(all[2], r1) && close(all[3], r3),
            "{all:?}"
        );
        // a 2-row window at row 3 holds (NULL, 40); at row 2 (20, NULL)
        let two = run(2);
        assert!(close(two[2], 20.0) && close(two[3], 40.0), "{two:?}");
        // unbounded (incremental) agrees with the pass
        let inc = unbounded(&f, &values, None);
        for (a, b) in inc.iter().zip(&all) {
            assert!(close(float(a), b.unwrap()), "{inc:?} vs {all:?}");
        }
        // no value at all: NULL
        assert_eq!(unbounded(&f, &[None, None], None), vec![ScalarValue::Float64(None); 2]);
    }

    #[test]
    fn exp_avg_of_rows_a_thousand_half_lives_apart_is_the_newest_value() {
        let f = function(AnalyticKind::ExpAvg { half_life: 1 }, false, DataType::Float64);
        let mut state = AnalyticState::default();
        let mut held: VecDeque<(Millis, Vec<ArrayRef>)> = VecDeque::new();
        let mut last = None;
        for (t, x) in [(0, 5.0), (5_000, 7.0), (5_000, 9.0)] {
            let a: ArrayRef = Arc::new(Float64Array::from(vec![x]));
            state.push(&f, a.as_ref());
            held.push_back((t, vec![a]));
            last = float(&f.evaluate_window(&state, &held, None).unwrap());
        }
        // the row at 0 weighs 2^-5000 = 0; the two peers weigh 1 each
        assert_eq!(last, Some(8.0));
    }
}
