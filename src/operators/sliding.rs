//! Sliding windows: `agg(x) OVER (PARTITION BY k RANGE INTERVAL n PRECEDING | ROWS n
//! PRECEDING)`. One output row per input row, with the input row's ROWTIME, computed
//! over the window ending at that row: RANGE holds the partition's rows with ROWTIME in
//! [t − n, t] (A2, inclusive), ROWS the row and up to n before it (A4). Rows sharing a
//! ROWTIME are processed in arrival order: a row never sees the peers after it.
//!
//! Each partition keeps a DataFusion sliding accumulator (add with `update_batch`,
//! remove with `retract_batch`): SUM, COUNT and AVG retract in constant time, MIN and
//! MAX use DataFusion's moving min/max structure, so the cost per row does not grow with
//! the window. A row first retracts the rows that leave its window, then adds itself.
//!
//! ## Restoring to the bit
//!
//! A partition read back from a checkpoint or the spill store must go on with the very
//! accumulator it had: a running DOUBLE sum is the exact sequence of one-row additions
//! and retractions it saw, and summing its held rows again rounds differently, so a
//! restarted application would not give an uninterrupted run's output byte for byte. A
//! bounded frame of SUM, COUNT, AVG, or the variance family therefore saves its
//! accumulator's `state()` with its rows (one column per state value after the argument
//! columns, the partition's state on its first row, nulls on the others) and is restored
//! from it as [`Restore`] says, with every saved row held again: rows that have since
//! left the window are retracted one at a time by the next row, as in the uninterrupted
//! run. MIN and MAX (whose moving structure is not in their state; exact anyway), the
//! analytic functions, other aggregates, and checkpoints of an older sluice that saved
//! rows alone (told apart by the number and types of the columns) are rebuilt from the
//! rows. SUM's state hides its sum while its count is 0, so a DOUBLE SUM whose
//! window holds only NULLs would restore with a sum of 0 where the uninterrupted run
//! keeps the rounding residue of the values retracted; so an accumulator of these
//! aggregates whose held rows have no value left starts afresh in every run (its output
//! is NULL, or 0 for COUNT, either way).
//!
//! KDA's analytic functions (`LAG`, `FIRST_VALUE`, `LAST_VALUE`, `NTH_VALUE`, `EXP_AVG`;
//! see `super::analytic`) run in the same partitions in place of an accumulator: a
//! bounded frame's function reads the rows the partition holds anyway (the window, oldest
//! first, the current row last), an unbounded frame's keeps the few values it can still
//! need. Spilling, snapshots and restores treat them like aggregates: a bounded frame is
//! saved as its rows and rebuilt from them, an unbounded one as its state.
//!
//! ## Spilling
//!
//! The operator keeps an estimate of its state's memory, per window aggregate: for each
//! partition its map slot and key, its held rows ([`row_bytes`]: the row objects and
//! their own values, not the input buffers they slice, which a budgeted operator copies
//! out regularly) and its accumulator's `size()` (measured after each batch that touched
//! it), plus the index of spilled partitions. Each window aggregate has partitions of its
//! own (`SUM(v) OVER w, MIN(v) OVER w` hold the rows twice), and each spills on its own.
//! With a memory budget (`SpillConfig`), past it after a batch, the operator
//! evicts partitions, least recently used first (`keyed_spill`), until the state is
//! down to three quarters of the budget. An evicted partition becomes one spill-store
//! entry under (window, partition key), in the snapshot's encoding: for a bounded frame
//! its rows (ROWTIME, then the argument values, as Arrow arrays) and the state above, for
//! an unbounded frame its accumulator's `state()`. Only its key and newest ROWTIME stay
//! in memory. When a row of an evicted key arrives, the entry is read back and removed:
//! a bounded frame's accumulator is restored as above (or, rebuilt from rows, with
//! `update_batch` over the rows still inside the window), an unbounded frame's with
//! `merge_batch` of the state, and the row goes on as if the partition had never left.
//!
//! A RANGE partition whose newest row is older than the newest ROWTIME seen minus n is
//! out of every future window (ROWTIME never decreases): an eviction pass drops such
//! partitions, in memory or spilled, instead of writing them.
//!
//! A snapshot taken while partitions are spilled reads them back into the window's
//! section (the same layout as in-memory partitions); a restore loads through the same
//! budget, evicting as it goes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float64Array, Int64Array, RecordBatch, UInt64Array, new_null_array,
};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use super::analytic::{AnalyticFunction, AnalyticState};
use super::eval::eval_isolating;
use super::keyed_spill::KeyedSpill;
use super::tumbling::SpillStats;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::state::spill::SpillConfig;
use crate::time::Millis;

/// The extent of a window, ending at the current row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame {
    /// `RANGE INTERVAL n PRECEDING` in milliseconds; None = UNBOUNDED PRECEDING.
    Range(Option<Millis>),
    /// `ROWS n PRECEDING`; None = UNBOUNDED PRECEDING.
    Rows(Option<u64>),
}

impl Frame {
    fn bounded(&self) -> bool {
        matches!(self, Frame::Range(Some(_)) | Frame::Rows(Some(_)))
    }
}

/// What a window computes: a DataFusion aggregate on a sliding accumulator, or one of
/// KDA's analytic functions (`super::analytic`), which read the held rows directly.
pub enum WindowFunction {
    Aggregate(Arc<AggregateFunctionExpr>),
    Analytic(AnalyticFunction),
}

impl WindowFunction {
    fn name(&self) -> &str {
        match self {
            WindowFunction::Aggregate(a) => a.fun().name(),
            WindowFunction::Analytic(f) => &f.name,
        }
    }
}

pub struct WindowAggregate {
    pub function: WindowFunction,
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub frame: Frame,
}

/// A partition's running state: the aggregate's accumulator, or the analytic function's
/// state.
enum Evaluator {
    Aggregate(Box<dyn Accumulator>),
    Analytic(AnalyticState),
}

impl Evaluator {
    fn size(&self) -> usize {
        match self {
            Evaluator::Aggregate(a) => a.size(),
            Evaluator::Analytic(a) => a.size(),
        }
    }
}

/// An unbounded frame's partition state as scalars (its snapshot and spill encoding).
fn evaluator_state(spec: &WindowAggregate, eval: &mut Evaluator) -> Result<Vec<ScalarValue>> {
    match (eval, &spec.function) {
        (Evaluator::Aggregate(a), _) => Ok(a.state()?),
        (Evaluator::Analytic(a), WindowFunction::Analytic(f)) => f.state(a),
        _ => Err(corrupt()),
    }
}

/// Loads an unbounded frame's partition state (arrays of [`evaluator_state`], one row)
/// into a fresh evaluator.
fn merge_state(spec: &WindowAggregate, eval: &mut Evaluator, arrays: &[ArrayRef]) -> Result<()> {
    match (eval, &spec.function) {
        (Evaluator::Aggregate(a), _) => Ok(a.merge_batch(arrays)?),
        (Evaluator::Analytic(a), WindowFunction::Analytic(f)) => {
            *a = f.restore(arrays)?;
            Ok(())
        }
        _ => Err(corrupt()),
    }
}

/// How a bounded frame's partition gets back the very accumulator it had when it is read
/// back from a snapshot or the spill store. Its value at every later row must be the one
/// an uninterrupted run gives, to the bit: a running floating-point sum is the exact
/// sequence of one-row additions and retractions it saw, which adding the held rows
/// again (one sum, other roundings) does not reproduce.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Restore {
    /// Add the held rows again: MIN and MAX (their moving min/max structure is not in
    /// their `state()`; no rounding, so exact anyway), the analytic functions (their
    /// state is the rows), and every aggregate not known to restore exactly.
    Rows,
    /// `merge_batch` of the saved `state()` into a fresh sliding accumulator gives it
    /// exactly: SUM, COUNT and AVG, whose state is their whole accumulator (a sum and a
    /// count) and whose merge adds it to zero.
    Merge,
    /// The variance family's Welford state (count, mean, m2). Merging it scales the mean
    /// by count / count, which rounds; merging a count of 1 does not, and adding the mean
    /// itself leaves mean and m2 untouched (its deviation is 0), so count − 1 such
    /// additions bring the count back.
    Welford,
}

impl Restore {
    fn of(function: &WindowFunction, frame: Frame) -> Restore {
        match function {
            WindowFunction::Aggregate(a) if frame.bounded() => match a.fun().name() {
                "sum" | "count" | "avg" => Restore::Merge,
                "var" | "var_pop" | "stddev" | "stddev_pop" => Restore::Welford,
                _ => Restore::Rows,
            },
            _ => Restore::Rows,
        }
    }
}

/// Brings a fresh sliding accumulator to the saved `state` (one row per array), as
/// [`Restore`] says. Returns false, with the accumulator fresh again, when its `state()`
/// then differs in any bit from the saved one: the caller adds the rows instead.
fn restore_accumulator(
    how: Restore,
    a: &mut Box<dyn Accumulator>,
    fresh: impl Fn() -> Result<Box<dyn Accumulator>>,
    state: &[ArrayRef],
) -> Result<bool> {
    match how {
        Restore::Rows => return Ok(false),
        Restore::Merge => a.merge_batch(state)?,
        Restore::Welford => {
            let [count, mean, m2] = state else {
                return Err(corrupt());
            };
            let count = count.as_primitive_opt::<UInt64Type>().ok_or_else(corrupt)?;
            let mean = mean.as_primitive_opt::<Float64Type>().ok_or_else(corrupt)?;
            if count.is_valid(0) && count.value(0) > 0 {
                let one: ArrayRef = Arc::new(UInt64Array::from(vec![1u64]));
                a.merge_batch(&[one, Arc::clone(&state[1]), Arc::clone(m2)])?;
                let copies = (count.value(0) - 1) as usize;
                if copies > 0 {
                    a.update_batch(&[Arc::new(Float64Array::from_value(mean.value(0), copies))])?;
                }
            }
        }
    }
    let now = a.state()?;
    let same = now.len() == state.len()
        && now
            .iter()
            .zip(state)
            .map(|(s, saved)| Ok(s.to_array()?.to_data() == saved.to_data()))
            .collect::<Result<Vec<bool>>>()?
            .into_iter()
            .all(|same| same);
    if !same {
        *a = fresh()?;
    }
    Ok(same)
}

/// A bounded frame's saved state as columns as long as its rows: the partition's
/// `state()` on the first row, nulls below.
fn state_columns(state: Vec<ScalarValue>, rows: usize) -> Result<Vec<ArrayRef>> {
    state
        .into_iter()
        .map(|s| {
            let first = s.to_array()?;
            if rows <= 1 {
                return Ok(first.slice(0, rows));
            }
            let nulls = new_null_array(first.data_type(), rows - 1);
            Ok(concat(&[first.as_ref(), nulls.as_ref()])?)
        })
        .collect()
}

struct Partition {
    eval: Evaluator,
    /// The rows in the window: ROWTIME and the aggregate's argument values (1-row slices).
    rows: VecDeque<(Millis, Vec<ArrayRef>)>,
    /// [`row_bytes`] of the rows in `rows`.
    row_bytes: usize,
    /// How many of `rows` have a non-null first argument.
    non_null: usize,
    /// The evaluator's `size()` when last measured.
    acc_bytes: usize,
    /// The batch (`KeyedSpill::tick`) that last touched the partition.
    last_used: u64,
    /// Whether some of `rows` are slices of an input batch (see [`row_bytes`]).
    loose: bool,
}

/// With a budget, rows sliced from input batches are copied into their partitions' own
/// arrays at every eviction pass and at least once in this many batches.
const COMPACT_EVERY: u64 = 16;

/// A partition's map slot beyond its key and contents: the (key, partition) pair and the
/// hash table's control byte, with an eighth more for the table's spare capacity.
const PARTITION_SLOT: usize = (size_of::<(Box<[u8]>, Partition)>() + 1) * 8 / 7;
/// A spilled partition's slot in the index (key, newest ROWTIME), likewise.
const SPILLED_SLOT: usize = (size_of::<(Box<[u8]>, Millis)>() + 1) * 8 / 7;

impl Partition {
    /// What the partition costs in memory (see the module comment).
    fn bytes(&self, key: &[u8]) -> usize {
        PARTITION_SLOT + key.len() + self.row_bytes + self.acc_bytes
    }

    /// Holds a row; returns its [`row_bytes`].
    fn push(&mut self, t: Millis, args: Vec<ArrayRef>) -> usize {
        let bytes = row_bytes(&args);
        self.non_null += usize::from(has_value(&args));
        self.row_bytes += bytes;
        self.rows.push_back((t, args));
        bytes
    }
}

/// The memory of one held row: its deque slot, its `Vec` of argument arrays, and per
/// argument the `Arc`ed array object plus the bytes of the array's own values (its length's
/// worth, not the whole buffer it points into). Held rows are 1-row slices. A row just
/// ingested slices its input batch's argument arrays, which stay alive as long as any of
/// their rows is held, so the true footprint can exceed this estimate by the rest of those
/// buffers. With a budget, such rows are copied into arrays of their partition's own at
/// every eviction pass and every [`COMPACT_EVERY`] batches (`compact_loose`), which bounds
/// the excess to the argument buffers of the batches since; without one they stay as they
/// are. Rows read back from the spill store or a checkpoint already slice arrays of their
/// own partition.
fn row_bytes(args: &[ArrayRef]) -> usize {
    size_of::<(Millis, Vec<ArrayRef>)>()
        + args
            .iter()
            .map(|a| size_of::<ArrayRef>() + 2 * size_of::<usize>() + size_of_val(a.as_ref()) + value_bytes(a.as_ref()))
            .sum::<usize>()
}

/// The bytes of an array's own values, validity included.
fn value_bytes(a: &dyn Array) -> usize {
    match a.data_type().primitive_width() {
        Some(width) => width * a.len() + a.nulls().map_or(0, |_| a.len().div_ceil(8)),
        None => a.to_data().get_slice_memory_size().unwrap_or(0),
    }
}

/// Whether a held row's first argument (the value SUM, COUNT, AVG and the variance
/// family take) is not null.
fn has_value(args: &[ArrayRef]) -> bool {
    args.first().is_some_and(|a| a.is_valid(0))
}

/// Copies arrays into buffers of their own (a slice keeps its parent's buffers alive).
fn compact(arrays: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    Ok(arrays.iter().map(|a| concat(&[a.as_ref()])).collect::<Result<_, _>>()?)
}

/// The spill-store key prefix of window aggregate `window`.
fn window_prefix(window: usize) -> [u8; 4] {
    (window as u32).to_be_bytes()
}

/// The spill-store key of a partition: the window's prefix, then the partition key.
fn store_key(window: usize, key: &[u8]) -> Vec<u8> {
    [&window_prefix(window)[..], key].concat()
}

fn corrupt() -> SluiceError {
    SluiceError::runtime("corrupt sliding-window state")
}

/// [`WindowState::encode`], for a partition borrowed from the window's map.
fn encode_partition(spec: &WindowAggregate, restore: Restore, p: &mut Partition) -> Result<Vec<ArrayRef>> {
    if !spec.frame.bounded() {
        return evaluator_state(spec, &mut p.eval)?
            .iter()
            .map(|s| Ok(s.to_array()?))
            .collect();
    }
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(p.rows.iter().map(|r| r.0)))];
    for a in 0..p.rows.front().map_or(0, |r| r.1.len()) {
        let parts: Vec<&dyn Array> = p.rows.iter().map(|r| r.1[a].as_ref()).collect();
        arrays.push(concat(&parts)?);
    }
    if restore != Restore::Rows
        && !p.rows.is_empty()
        && let Evaluator::Aggregate(a) = &mut p.eval
    {
        arrays.extend(state_columns(a.state()?, p.rows.len())?);
    }
    Ok(arrays)
}

struct WindowState {
    spec: WindowAggregate,
    /// How a bounded frame's accumulator is brought back from a snapshot or the spill
    /// store (see [`Restore`]).
    restore: Restore,
    /// The number of argument columns a held row has.
    arg_count: usize,
    /// The types of a bounded frame's sliding accumulator's `state()` (empty for an
    /// analytic function and an unbounded frame).
    state_types: Vec<DataType>,
    converter: RowConverter,
    partitions: HashMap<Box<[u8]>, Partition>,
    /// Partitions in the spill store: key → ROWTIME of their newest row (MAX for an
    /// unbounded frame).
    spilled: HashMap<Box<[u8]>, Millis>,
    /// The estimated memory of `partitions` and `spilled`: every partition's `bytes` as
    /// last recorded, and a slot and key per spilled partition.
    bytes: usize,
    /// Keys of the partitions the current batch touched: their accumulators are measured
    /// after it.
    touched: Vec<Box<[u8]>>,
    /// Keys of the partitions that hold rows sliced from input batches.
    loose: Vec<Box<[u8]>>,
}

impl WindowState {
    fn new_evaluator(&self) -> Result<Evaluator> {
        Ok(match &self.spec.function {
            WindowFunction::Aggregate(a) if self.spec.frame.bounded() => {
                Evaluator::Aggregate(a.create_sliding_accumulator()?)
            }
            WindowFunction::Aggregate(a) => Evaluator::Aggregate(a.create_accumulator()?),
            WindowFunction::Analytic(_) => Evaluator::Analytic(AnalyticState::default()),
        })
    }

    /// Whether a RANGE partition whose newest row is at `newest` is out of the window of
    /// every row at or after `t`.
    fn expired(&self, newest: Millis, t: Millis) -> bool {
        matches!(self.spec.frame, Frame::Range(Some(n)) if newest < t.saturating_sub(n))
    }

    /// The partition of `key` for a row at `t`: in memory, read back from the spill store,
    /// or new; stamped as used by the current batch.
    fn partition(&mut self, window: usize, key: &[u8], t: Millis, spill: &mut KeyedSpill) -> Result<&mut Partition> {
        if !self.partitions.contains_key(key) {
            let p = self.load(window, key, t, spill)?;
            self.bytes += p.bytes(key);
            self.partitions.insert(key.into(), p);
        }
        let p = self.partitions.get_mut(key).expect("inserted above");
        if p.last_used != spill.tick {
            p.last_used = spill.tick;
            self.touched.push(key.into());
        }
        Ok(p)
    }

    /// A partition for `key`, not in memory: read back (and removed) from the spill store
    /// if it was evicted, else new.
    fn load(&mut self, window: usize, key: &[u8], t: Millis, spill: &mut KeyedSpill) -> Result<Partition> {
        let mut p = Partition {
            eval: self.new_evaluator()?,
            rows: VecDeque::new(),
            row_bytes: 0,
            non_null: 0,
            acc_bytes: 0,
            last_used: u64::MAX,
            loose: false,
        };
        if let Some(newest) = self.spilled.remove(key) {
            self.bytes -= SPILLED_SLOT + key.len();
            let store = spill.holding()?;
            let entry = store_key(window, key);
            if self.expired(newest, t) {
                store.delete_entry(&entry)?;
            } else {
                let arrays = store.take_entry(&entry)?.ok_or_else(corrupt)?;
                self.rebuild(&mut p, &arrays, Some(t))?;
            }
        }
        p.acc_bytes = p.eval.size();
        Ok(p)
    }

    /// A fresh accumulator for a bounded frame's partition.
    fn fresh_accumulator(&self) -> Result<Box<dyn Accumulator>> {
        match &self.spec.function {
            WindowFunction::Aggregate(a) => Ok(a.create_sliding_accumulator()?),
            WindowFunction::Analytic(_) => Err(corrupt()),
        }
    }

    /// Adds a partition's encoded state (see [`WindowState::encode`]) to `p`. For an
    /// unbounded frame, the accumulator's state. For a bounded frame, the rows (ROWTIME,
    /// then argument values), then, where [`Restore`] saves it, the accumulator's
    /// `state()` on the first row. With that state restored, every row is held again,
    /// expired or not: the next row retracts the expired ones one at a time, as the
    /// uninterrupted run does. Otherwise (MIN, MAX, analytic functions, and state saved by
    /// a sluice that kept only the rows) the accumulator adds the rows still in the window
    /// of a row at `t` (all if None).
    fn rebuild(&self, p: &mut Partition, arrays: &[ArrayRef], t: Option<Millis>) -> Result<()> {
        if !self.spec.frame.bounded() {
            return merge_state(&self.spec, &mut p.eval, arrays);
        }
        let times = arrays
            .first()
            .and_then(|a| a.as_primitive_opt::<Int64Type>())
            .ok_or_else(corrupt)?;
        let args_end = 1 + self.arg_count;
        if arrays.len() < args_end {
            return Err(corrupt());
        }
        if times.is_empty() {
            return Ok(());
        }
        let saved = &arrays[args_end..];
        let restored = match &mut p.eval {
            _ if saved.is_empty() => false,
            Evaluator::Aggregate(a) if self.is_saved_state(saved) => {
                let state: Vec<ArrayRef> = saved.iter().map(|c| c.slice(0, 1)).collect();
                restore_accumulator(self.restore, a, || self.fresh_accumulator(), &state)?
            }
            _ => return Err(corrupt()),
        };
        let from = match (self.spec.frame, t) {
            (Frame::Range(Some(n)), Some(t)) if !restored => {
                times.values().partition_point(|&t0| t0 < t.saturating_sub(n))
            }
            _ => 0,
        };
        let len = times.len() - from;
        if len == 0 {
            return Ok(());
        }
        let args = if from == 0 {
            arrays[1..args_end].to_vec()
        } else {
            compact(
                &arrays[1..args_end]
                    .iter()
                    .map(|a| a.slice(from, len))
                    .collect::<Vec<_>>(),
            )?
        };
        match (&mut p.eval, &self.spec.function) {
            _ if restored => {}
            (Evaluator::Aggregate(a), _) => a.update_batch(&args)?,
            (Evaluator::Analytic(a), WindowFunction::Analytic(f)) => {
                let values = args.first().ok_or_else(corrupt)?;
                for i in 0..len {
                    a.push(f, values.slice(i, 1).as_ref());
                }
            }
            _ => return Err(corrupt()),
        }
        for i in 0..len {
            p.push(times.value(from + i), args.iter().map(|a| a.slice(i, 1)).collect());
        }
        Ok(())
    }

    /// Whether the columns after a bounded frame's rows are this aggregate's `state()`:
    /// as many, of the same types. (A snapshot written before states were saved has no
    /// such columns.)
    fn is_saved_state(&self, columns: &[ArrayRef]) -> bool {
        columns.len() == self.state_types.len()
            && columns.iter().zip(&self.state_types).all(|(c, t)| c.data_type() == t)
    }

    /// A partition as arrays: for a bounded frame its rows (ROWTIME, then each argument)
    /// and, where [`Restore`] uses it, its accumulator's `state()` (see
    /// [`state_columns`]); for an unbounded one its accumulator's `state()`.
    fn encode(&self, p: &mut Partition) -> Result<Vec<ArrayRef>> {
        encode_partition(&self.spec, self.restore, p)
    }

    /// Takes `key`'s partition out of memory: into the spill store, or nowhere when it is
    /// out of every future window (`now`: the newest ROWTIME seen). Returns the bytes
    /// written (None when dropped).
    fn evict(&mut self, window: usize, key: &[u8], now: Millis, spill: &mut KeyedSpill) -> Result<Option<usize>> {
        let Some(mut p) = self.partitions.remove(key) else {
            return Ok(None);
        };
        self.bytes -= p.bytes(key);
        let newest = p.rows.back().map(|r| r.0);
        if self.spec.frame.bounded() && newest.is_none_or(|t| self.expired(t, now)) {
            return Ok(None);
        }
        let arrays = self.encode(&mut p)?;
        drop(p);
        let written = spill.store()?.put_entry(&store_key(window, key), &arrays)?;
        self.spilled.insert(key.into(), newest.unwrap_or(Millis::MAX));
        self.bytes += SPILLED_SLOT + key.len();
        Ok(Some(written))
    }

    /// Drops the RANGE partitions, in memory or spilled, that are out of every future
    /// window (`now`: the newest ROWTIME seen).
    fn drop_expired(&mut self, window: usize, now: Millis, spill: &mut KeyedSpill) -> Result<()> {
        let Frame::Range(Some(n)) = self.spec.frame else {
            return Ok(());
        };
        let horizon = now.saturating_sub(n);
        let mut freed = 0;
        self.partitions.retain(|key, p| {
            let keep = p.rows.back().is_some_and(|r| r.0 >= horizon);
            if !keep {
                freed += p.bytes(key);
            }
            keep
        });
        self.bytes -= freed;
        let dead: Vec<Box<[u8]>> = self
            .spilled
            .iter()
            .filter(|(_, newest)| **newest < horizon)
            .map(|(k, _)| k.clone())
            .collect();
        for key in dead {
            self.spilled.remove(&key);
            self.bytes -= SPILLED_SLOT + key.len();
            spill.holding()?.delete_entry(&store_key(window, &key))?;
        }
        Ok(())
    }

    /// Copies the rows of partitions that hold slices of input batches into arrays of the
    /// partition's own, so that they no longer keep those batches' buffers alive.
    fn compact_loose(&mut self) -> Result<()> {
        for key in std::mem::take(&mut self.loose) {
            let Some(p) = self.partitions.get_mut(&key) else {
                continue;
            };
            if !std::mem::replace(&mut p.loose, false) {
                continue;
            }
            for a in 0..p.rows.front().map_or(0, |r| r.1.len()) {
                let parts: Vec<&dyn Array> = p.rows.iter().map(|r| r.1[a].as_ref()).collect();
                let whole = concat(&parts)?;
                for (i, row) in p.rows.iter_mut().enumerate() {
                    row.1[a] = whole.slice(i, 1);
                }
            }
        }
        Ok(())
    }

    /// Measures the accumulators of the partitions the current batch touched.
    fn settle(&mut self) {
        for key in std::mem::take(&mut self.touched) {
            if let Some(p) = self.partitions.get_mut(&key) {
                let size = p.eval.size();
                self.bytes = self.bytes + size - p.acc_bytes;
                p.acc_bytes = size;
            }
        }
    }
}

pub struct SlidingWindowOp {
    windows: Vec<WindowState>,
    /// How many leading columns of an input batch are the input's logical columns.
    input_columns: usize,
    /// Input columns, one column per window aggregate, ROWTIME.
    output_schema: SchemaRef,
    spill: KeyedSpill,
    /// The newest ROWTIME seen.
    now: Millis,
}

impl SlidingWindowOp {
    pub fn new(
        windows: Vec<(WindowAggregate, Vec<DataType>)>,
        input_columns: usize,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let mut states = Vec::with_capacity(windows.len());
        for (spec, key_types) in windows {
            let arg_count = match &spec.function {
                WindowFunction::Aggregate(a) => a.expressions().len(),
                WindowFunction::Analytic(_) => 1,
            };
            let mut state = WindowState {
                restore: Restore::of(&spec.function, spec.frame),
                arg_count,
                state_types: Vec::new(),
                converter: RowConverter::new(key_types.into_iter().map(SortField::new).collect())?,
                spec,
                partitions: HashMap::new(),
                spilled: HashMap::new(),
                bytes: 0,
                touched: Vec::new(),
                loose: Vec::new(),
            };
            if let Evaluator::Aggregate(mut probe) = state.new_evaluator()?
                && state.spec.frame.bounded()
            {
                if !probe.supports_retract_batch() {
                    return Err(SluiceError::Unsupported {
                        line: 0,
                        column: 0,
                        feature: format!("{} over a bounded sliding window", state.spec.function.name()),
                    });
                }
                // Taken from a sliding accumulator itself: its state can differ from
                // the aggregate's `state_fields()` (SUM's adds a count).
                state.state_types = probe.state()?.iter().map(ScalarValue::data_type).collect();
            }
            states.push(state);
        }
        Ok(SlidingWindowOp {
            windows: states,
            input_columns,
            output_schema,
            spill: KeyedSpill::default(),
            now: Millis::MIN,
        })
    }

    /// The statistics of spilling so far.
    pub fn spill_stats(&self) -> SpillStats {
        self.spill.stats()
    }

    /// The estimated memory of the state now.
    pub fn state_bytes(&self) -> usize {
        self.windows.iter().map(|w| w.bytes).sum()
    }

    /// Partitions in the spill store now, over all window aggregates.
    pub fn spilled_partitions(&self) -> usize {
        self.windows.iter().map(|w| w.spilled.len()).sum()
    }

    /// Measures what the last batch changed and, past the budget, drops expired RANGE
    /// partitions and evicts the least recently used ones down to the low-water mark.
    fn enforce_budget(&mut self) -> Result<()> {
        for w in &mut self.windows {
            w.settle();
        }
        let before = self.state_bytes();
        let Some(target) = self.spill.over_budget(before) else {
            if self.spill.budgeted() && self.spill.tick.is_multiple_of(COMPACT_EVERY) {
                for w in &mut self.windows {
                    w.compact_loose()?;
                }
            }
            return Ok(());
        };
        for (i, w) in self.windows.iter_mut().enumerate() {
            w.drop_expired(i, self.now, &mut self.spill)?;
        }
        let mut size = self.state_bytes();
        let (mut entries, mut written) = (0usize, 0u64);
        if size > target {
            // Least recently used first; take just enough to get down to the target.
            let mut order: Vec<(u64, usize, &[u8], usize)> = self
                .windows
                .iter()
                .enumerate()
                .flat_map(|(i, w)| {
                    w.partitions
                        .iter()
                        .map(move |(k, p)| (p.last_used, i, k.as_ref(), p.bytes(k) - SPILLED_SLOT - k.len()))
                })
                .collect();
            order.sort_unstable_by_key(|v| (v.0, v.1));
            let mut freed = 0;
            let victims: Vec<(usize, Box<[u8]>)> = order
                .into_iter()
                .take_while(|v| {
                    let more = size.saturating_sub(freed) > target;
                    freed += v.3;
                    more
                })
                .map(|v| (v.1, v.2.into()))
                .collect();
            for (i, key) in victims {
                if let Some(bytes) = self.windows[i].evict(i, &key, self.now, &mut self.spill)? {
                    entries += 1;
                    written += bytes as u64;
                }
            }
            size = self.state_bytes();
        }
        if entries > 0 {
            self.spill.record("sliding-window", before, size, entries, written);
        }
        for w in &mut self.windows {
            w.compact_loose()?;
        }
        Ok(())
    }
}

fn window_values(
    state: &mut WindowState,
    window: usize,
    spill: &mut KeyedSpill,
    batch: &RecordBatch,
    keys: &[ArrayRef],
    args: &[ArrayRef],
    defaults: Option<&ArrayRef>,
) -> Result<ArrayRef> {
    let rowtimes = rowtime_column(batch);
    // Without PARTITION BY the whole stream is one partition (the empty key).
    let rows = if keys.is_empty() {
        None
    } else {
        Some(state.converter.convert_columns(keys)?)
    };
    let frame = state.spec.frame;
    let compacting = spill.budgeted();
    let mut values = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let t = rowtimes.value(i);
        let key: &[u8] = match &rows {
            Some(rows) => rows.row(i).data(),
            None => &[],
        };
        state.partition(window, key, t, spill)?;
        let partition = state.partitions.get_mut(key).expect("loaded above");
        let function = &state.spec.function;
        let restore = state.restore;
        let row_args: Vec<ArrayRef> = args.iter().map(|a| a.slice(i, 1)).collect();
        let (mut added, mut removed, mut newly_loose) = (0, 0, false);
        if frame.bounded() {
            // The rows leaving the window go before the row comes in.
            loop {
                let expired = match (frame, partition.rows.front()) {
                    (Frame::Range(Some(n)), Some((t0, _))) => *t0 < t.saturating_sub(n),
                    (Frame::Rows(Some(n)), Some(_)) => partition.rows.len() as u64 > n,
                    _ => false,
                };
                if !expired {
                    break;
                }
                let (_, old) = partition.rows.pop_front().expect("front checked");
                partition.non_null -= usize::from(has_value(&old));
                let bytes = row_bytes(&old);
                partition.row_bytes -= bytes;
                removed += bytes;
                match &mut partition.eval {
                    Evaluator::Aggregate(a) => a.retract_batch(&old)?,
                    Evaluator::Analytic(a) => a.pop(),
                }
            }
            // An accumulator left without a value starts afresh: a floating-point sum
            // retracted back to "zero" keeps a rounding residue, which the values that
            // follow must not depend on. A RANGE partition whose rows have all left is
            // dropped by an eviction pass or found expired on a read-back, and a SUM
            // whose rows are all NULL has no sum in its `state()`: either way the
            // partition comes back fresh, and so it must be when it stayed in memory.
            if removed > 0
                && partition.non_null == 0
                && restore != Restore::Rows
                && let (Evaluator::Aggregate(a), WindowFunction::Aggregate(f)) = (&mut partition.eval, function)
            {
                *a = f.create_sliding_accumulator()?;
            }
        }
        match (&mut partition.eval, function) {
            (Evaluator::Aggregate(a), _) => a.update_batch(&row_args)?,
            (Evaluator::Analytic(a), WindowFunction::Analytic(f)) if frame.bounded() => a.push(f, row_args[0].as_ref()),
            _ => {}
        }
        if frame.bounded() {
            added = partition.push(t, row_args);
            // Only with a budget: without one, rows are never compacted.
            newly_loose = compacting && !std::mem::replace(&mut partition.loose, true);
        }
        values.push(match (&mut partition.eval, function) {
            (Evaluator::Aggregate(a), _) => a.evaluate()?,
            (Evaluator::Analytic(a), WindowFunction::Analytic(f)) => {
                let default = defaults.map(|d| ScalarValue::try_from_array(d, i)).transpose()?;
                if frame.bounded() {
                    f.evaluate_window(a, &partition.rows, default)?
                } else {
                    f.step_unbounded(a, t, ScalarValue::try_from_array(&args[0], i)?, default)?
                }
            }
            _ => return Err(corrupt()),
        });
        state.bytes = state.bytes + added - removed;
        if newly_loose {
            state.loose.push(key.into());
        }
    }
    Ok(ScalarValue::iter_to_array(values)?)
}

impl Operator for SlidingWindowOp {
    fn name(&self) -> &'static str {
        "SlidingWindow"
    }

    /// Per window: for a bounded frame, the rows in it (partition key, ROWTIME,
    /// argument values) and, where [`Restore`] uses it, each partition's accumulator
    /// state on its first row (nulls on the others); for an unbounded frame, each
    /// partition's accumulator state. Spilled partitions are read back into
    /// the same layout, after the ones in memory.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let mut sections = Vec::with_capacity(self.windows.len());
        let store = self.spill.existing();
        for (index, w) in self.windows.iter_mut().enumerate() {
            let mut keys = BinaryBuilder::new();
            let mut times: Vec<Millis> = Vec::new();
            // Columns after ROWTIME in chunks, one per partition: its argument values, then
            // its accumulator's state where `Restore` saves it (see `encode_partition`).
            let mut columns: Vec<Vec<ArrayRef>> = Vec::new();
            let bounded = w.spec.frame.bounded();
            let mut states: Vec<Vec<ScalarValue>> = Vec::new();
            for (key, p) in w.partitions.iter_mut() {
                if bounded {
                    if p.rows.is_empty() {
                        continue;
                    }
                    let arrays = encode_partition(&w.spec, w.restore, p)?;
                    for (t, _) in &p.rows {
                        keys.append_value(key);
                        times.push(*t);
                    }
                    columns.push(arrays[1..].to_vec());
                } else {
                    keys.append_value(key);
                    states.push(evaluator_state(&w.spec, &mut p.eval)?);
                }
            }
            if let Some(store) = store
                && !w.spilled.is_empty()
            {
                store.for_each_entry(&window_prefix(index), |key, arrays| {
                    if bounded {
                        let t = arrays.first().ok_or_else(corrupt)?.as_primitive::<Int64Type>();
                        for _ in 0..t.len() {
                            keys.append_value(key);
                        }
                        times.extend(t.values().iter().copied());
                        if !t.is_empty() {
                            columns.push(arrays[1..].to_vec());
                        }
                    } else {
                        keys.append_value(key);
                        states.push(
                            arrays
                                .iter()
                                .map(|a| ScalarValue::try_from_array(a, 0))
                                .collect::<Result<_, _>>()?,
                        );
                    }
                    Ok(())
                })?;
            }
            let mut section: Vec<ArrayRef> = vec![Arc::new(keys.finish())];
            if bounded {
                section.push(Arc::new(Int64Array::from(times)));
                // with no rows there is nothing to rebuild from: keys and times suffice
                if !columns.is_empty() {
                    for a in 0..columns[0].len() {
                        let parts: Vec<&dyn Array> = columns.iter().map(|c| c[a].as_ref()).collect();
                        section.push(concat(&parts)?);
                    }
                }
            } else if let Some(first) = states.first() {
                for k in 0..first.len() {
                    section.push(ScalarValue::iter_to_array(states.iter().map(|s| s[k].clone()))?);
                }
            }
            sections.push(section);
        }
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    /// Loads partition by partition through the memory budget: past it, partitions are
    /// evicted as after a batch.
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        if sections.len() != self.windows.len() {
            return Err(corrupt());
        }
        // The newest ROWTIME the snapshot holds: no later row is older.
        for (w, section) in self.windows.iter().zip(&sections) {
            if w.spec.frame.bounded()
                && let Some(times) = section.get(1)
                && let Some(t) = times.as_primitive::<Int64Type>().values().iter().max()
            {
                self.now = self.now.max(*t);
            }
        }
        for (index, section) in sections.iter().enumerate() {
            let Some(keys) = section.first() else { continue };
            let keys = keys.as_binary::<i32>();
            let bounded = self.windows[index].spec.frame.bounded();
            let mut start = 0;
            while start < keys.len() {
                let key = keys.value(start);
                let w = &mut self.windows[index];
                if bounded {
                    // The run of rows of one partition (a snapshot writes them together).
                    let mut end = start + 1;
                    while end < keys.len() && keys.value(end) == key {
                        end += 1;
                    }
                    let rows = compact(
                        &section[1..]
                            .iter()
                            .map(|a| a.slice(start, end - start))
                            .collect::<Vec<_>>(),
                    )?;
                    let t = rows[0].as_primitive::<Int64Type>().value(0);
                    w.partition(index, key, t, &mut self.spill)?;
                    let mut p = w.partitions.remove(key).expect("loaded above");
                    w.bytes -= p.bytes(key);
                    w.rebuild(&mut p, &rows, None)?;
                    w.bytes += p.bytes(key);
                    w.partitions.insert(key.into(), p);
                    start = end;
                } else {
                    let state: Vec<ArrayRef> = section[1..].iter().map(|a| a.slice(start, 1)).collect();
                    w.partition(index, key, Millis::MIN, &mut self.spill)?;
                    let p = w.partitions.get_mut(key).expect("loaded above");
                    merge_state(&w.spec, &mut p.eval, &state)?;
                    start += 1;
                }
                self.enforce_budget()?;
            }
        }
        self.spill.publish_peak();
        Ok(())
    }

    fn spills(&self) -> bool {
        true
    }

    fn set_memory_budget(&mut self, config: SpillConfig) {
        self.spill.configure(config);
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let windows = &self.windows;
        // Evaluate every key and argument first (vectorised); rows that fail are dropped
        // before any window sees them.
        let Some((kept, evaluated)) = eval_isolating(&batch, ctx, |b| {
            let n = b.num_rows();
            windows
                .iter()
                .map(|w| {
                    let keys = w
                        .spec
                        .partition_by
                        .iter()
                        .map(|e| e.evaluate(b)?.into_array(n))
                        .collect::<Result<Vec<_>, _>>()?;
                    let (args, defaults) = match &w.spec.function {
                        WindowFunction::Aggregate(a) => (
                            a.expressions()
                                .iter()
                                .map(|e| e.evaluate(b)?.into_array(n))
                                .collect::<Result<Vec<_>, _>>()?,
                            None,
                        ),
                        WindowFunction::Analytic(f) => (vec![f.values(b)?], f.defaults(b)?),
                    };
                    Ok((keys, args, defaults))
                })
                .collect::<Result<Vec<_>, _>>()
        })?
        else {
            return Ok(vec![]);
        };
        if kept.num_rows() == 0 {
            return Ok(vec![]);
        }
        self.spill.tick += 1;
        let mut columns: Vec<ArrayRef> = kept.columns()[..self.input_columns].to_vec();
        for (index, (state, (keys, args, defaults))) in self.windows.iter_mut().zip(evaluated).enumerate() {
            columns.push(window_values(
                state,
                index,
                &mut self.spill,
                &kept,
                &keys,
                &args,
                defaults.as_ref(),
            )?);
        }
        let rowtimes = rowtime_column(&kept);
        self.now = self.now.max(rowtimes.value(rowtimes.len() - 1));
        columns.push(Arc::clone(kept.column(kept.num_columns() - 1)));
        self.enforce_budget()?;
        self.spill.publish_peak();
        Ok(vec![super::eval::conform(&self.output_schema, columns)?])
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::functions_aggregate::{count::count_udaf, min_max::max_udaf, min_max::min_udaf, sum::sum_udaf};
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::error::ErrorRow;
    use crate::operators::test_input::{input_schema, keyed_batches, spill_config as config};

    /// `SUM(V)` and `MIN(K)` over `PARTITION BY K RANGE INTERVAL '10' SECOND PRECEDING`,
    /// `COUNT(V)` over `PARTITION BY K ROWS 3 PRECEDING`, `MAX(V)` over `PARTITION BY K
    /// ROWS UNBOUNDED PRECEDING` and `SUM(V)` over the whole stream's last 2 seconds: every
    /// kind of frame, string and integer arguments.
    fn operator() -> SlidingWindowOp {
        let input = input_schema();
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("K", 0));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        let windows = [
            (sum_udaf(), &v, Frame::Range(Some(10_000)), true, DataType::Int64),
            (min_udaf(), &key, Frame::Range(Some(10_000)), true, DataType::Utf8),
            (count_udaf(), &v, Frame::Rows(Some(3)), true, DataType::Int64),
            (max_udaf(), &v, Frame::Rows(None), true, DataType::Int64),
            (sum_udaf(), &v, Frame::Range(Some(2_000)), false, DataType::Int64),
        ];
        let mut fields = vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
        ];
        let mut specs = Vec::new();
        for (i, (f, arg, frame, partitioned, ty)) in windows.into_iter().enumerate() {
            let aggregate = AggregateExprBuilder::new(f, vec![Arc::clone(arg)])
                .schema(Arc::clone(&input))
                .alias(format!("a{i}"))
                .build()
                .unwrap();
            fields.push(Field::new(format!("a{i}"), ty, true));
            let (partition_by, key_types) = if partitioned {
                (vec![Arc::clone(&key)], vec![DataType::Utf8])
            } else {
                (vec![], vec![])
            };
            specs.push((
                WindowAggregate {
                    function: WindowFunction::Aggregate(Arc::new(aggregate)),
                    partition_by,
                    frame,
                },
                key_types,
            ));
        }
        fields.push(Field::new(
            "ROWTIME",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ));
        SlidingWindowOp::new(specs, 2, Arc::new(Schema::new(fields))).unwrap()
    }

    /// The analytic functions over every kind of frame: `LAG(V, 2, -1) IGNORE NULLS` over
    /// `PARTITION BY K ROWS 3 PRECEDING`; `FIRST_VALUE(V)`, `NTH_VALUE(V, 2) FROM LAST
    /// IGNORE NULLS` and `EXP_AVG(V, 5 s)` over `PARTITION BY K RANGE INTERVAL '10' SECOND
    /// PRECEDING`; `LAST_VALUE(K) IGNORE NULLS`, `LAG(V)` and `EXP_AVG(V, 5 s)` over
    /// `PARTITION BY K ROWS UNBOUNDED PRECEDING`; `NTH_VALUE(V, 2)` over the whole stream's
    /// last 2 seconds.
    fn analytic_operator() -> SlidingWindowOp {
        use crate::operators::analytic::{AnalyticFunction, AnalyticKind};
        use datafusion::physical_expr::expressions::lit;
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("K", 0));
        let v: Arc<dyn PhysicalExpr> = Arc::new(Column::new("V", 1));
        let range = Frame::Range(Some(10_000));
        let unbounded = Frame::Rows(None);
        let windows = [
            (
                AnalyticKind::Lag { offset: 2 },
                true,
                &v,
                Frame::Rows(Some(3)),
                true,
                DataType::Int64,
            ),
            (AnalyticKind::FirstValue, false, &v, range, true, DataType::Int64),
            (
                AnalyticKind::NthValue { n: 2, from_last: true },
                true,
                &v,
                range,
                true,
                DataType::Int64,
            ),
            (
                AnalyticKind::ExpAvg { half_life: 5_000 },
                false,
                &v,
                range,
                true,
                DataType::Float64,
            ),
            (AnalyticKind::LastValue, true, &key, unbounded, true, DataType::Utf8),
            (
                AnalyticKind::Lag { offset: 1 },
                false,
                &v,
                unbounded,
                true,
                DataType::Int64,
            ),
            (
                AnalyticKind::ExpAvg { half_life: 5_000 },
                false,
                &v,
                unbounded,
                true,
                DataType::Float64,
            ),
            (
                AnalyticKind::NthValue { n: 2, from_last: false },
                false,
                &v,
                Frame::Range(Some(2_000)),
                false,
                DataType::Int64,
            ),
        ];
        let mut fields = vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
        ];
        let mut specs = Vec::new();
        for (i, (kind, ignore_nulls, arg, frame, partitioned, ty)) in windows.into_iter().enumerate() {
            fields.push(Field::new(format!("a{i}"), ty.clone(), true));
            let (partition_by, key_types) = if partitioned {
                (vec![Arc::clone(&key)], vec![DataType::Utf8])
            } else {
                (vec![], vec![])
            };
            let function = AnalyticFunction {
                kind,
                ignore_nulls,
                value: Arc::clone(arg),
                default: matches!(kind, AnalyticKind::Lag { offset: 2 }).then(|| lit(ScalarValue::Int64(Some(-1)))),
                return_type: ty,
                name: format!("a{i}"),
            };
            specs.push((
                WindowAggregate {
                    function: WindowFunction::Analytic(function),
                    partition_by,
                    frame,
                },
                key_types,
            ));
        }
        fields.push(Field::new(
            "ROWTIME",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ));
        SlidingWindowOp::new(specs, 2, Arc::new(Schema::new(fields))).unwrap()
    }

    /// 60 batches of 400 rows over 3000 keys (some NULL keys and values), ROWTIME rising
    /// by 0 to 2 ms a row: about 8 rows a key over 24 s, about 3 in a 10 s window. A batch
    /// touches a small share of the keys, as in a stream with many more keys than a batch.
    fn input(seed: u64) -> Vec<RecordBatch> {
        keyed_batches(seed, 60, 2)
    }

    fn feed(op: &mut SlidingWindowOp, batches: &[RecordBatch]) -> Vec<RecordBatch> {
        let mut errors: Vec<ErrorRow> = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let out = batches
            .iter()
            .flat_map(|b| op.on_batch(b.clone(), &mut ctx).unwrap())
            .collect();
        assert!(errors.is_empty());
        out
    }

    fn all(batches: &[RecordBatch]) -> RecordBatch {
        concat_batches(&batches[0].schema(), batches).unwrap()
    }

    #[test]
    fn a_budget_a_quarter_of_the_state_spills_and_emits_the_same_rows() {
        budget_a_quarter_of_the_state(operator);
    }

    #[test]
    fn analytic_functions_spill_and_emit_the_same_rows() {
        budget_a_quarter_of_the_state(analytic_operator);
    }

    #[test]
    fn analytic_functions_restore_from_a_checkpoint_of_spilled_partitions() {
        checkpoint_of_spilled_partitions(analytic_operator);
    }

    /// The analytic operator's output is not trivial: every function gives values, all
    /// but LAG IGNORE NULLS with a default give NULLs too, and that LAG gives its default
    /// (never NULL: a row it finds has a value).
    #[test]
    fn analytic_functions_give_values_nulls_and_defaults() {
        let out = all(&feed(&mut analytic_operator(), &input(3)));
        for c in 2..10 {
            let column = out.column(c);
            assert!(column.null_count() < column.len(), "a{}: all NULL", c - 2);
            if c > 2 {
                assert!(column.null_count() > 0, "a{}: no NULL", c - 2);
            }
        }
        let lag = out.column(2).as_primitive::<Int64Type>();
        assert_eq!(lag.null_count(), 0);
        assert!(lag.iter().any(|v| v == Some(-1)), "LAG's default");
    }

    fn budget_a_quarter_of_the_state(operator: fn() -> SlidingWindowOp) {
        let dir = tempfile::tempdir().unwrap();
        let batches = input(7);
        let mut unlimited = operator();
        unlimited.set_memory_budget(config(None, dir.path()));
        let expected = feed(&mut unlimited, &batches);
        let peak = unlimited.spill_stats().peak_state_bytes;
        assert_eq!(unlimited.spill_stats().spills, 0);

        let budget = peak / 4;
        let mut spilling = operator();
        spilling.set_memory_budget(config(Some(budget), dir.path()));
        let actual = feed(&mut spilling, &batches);
        let stats = spilling.spill_stats();
        eprintln!("unspilled peak {peak} bytes, budget {budget}: {stats:?}");
        assert!(stats.spills >= 3, "{stats:?}");
        assert!(stats.spilled_bytes > 0);
        assert!(spilling.spilled_partitions() > 0);
        // Over the budget by at most one batch's growth.
        assert!(stats.peak_state_bytes < peak / 2, "{stats:?}, unspilled peak {peak}");
        assert!(
            spilling.state_bytes() <= budget,
            "{} > {budget}",
            spilling.state_bytes()
        );
        assert_eq!(all(&actual), all(&expected));
        drop(spilling);
        assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 0);
    }

    #[test]
    fn a_checkpoint_of_spilled_partitions_restores_and_does_not_change_the_output() {
        checkpoint_of_spilled_partitions(operator);
    }

    fn checkpoint_of_spilled_partitions(operator: fn() -> SlidingWindowOp) {
        let dir = tempfile::tempdir().unwrap();
        let batches = input(11);
        let mut unlimited = operator();
        let expected = all(&feed(&mut unlimited, &batches));
        let budget = unlimited.spill_stats().peak_state_bytes / 5;

        let cut = 37;
        let mut first = operator();
        first.set_memory_budget(config(Some(budget), dir.path()));
        let mut out = feed(&mut first, &batches[..cut]);
        assert!(first.spilled_partitions() > 0);
        let snapshot = first.snapshot().unwrap().unwrap();

        // The operator that took the snapshot goes on unchanged...
        let mut same = out.clone();
        same.extend(feed(&mut first, &batches[cut..]));
        assert_eq!(all(&same), expected);

        // ...one restored from it with the budget spills while it loads and finishes the
        // same way...
        let mut restored = operator();
        restored.set_memory_budget(config(Some(budget), dir.path()));
        restored.restore(&snapshot).unwrap();
        assert!(restored.spill_stats().spills > 0, "a restore spills what does not fit");
        assert!(restored.state_bytes() <= budget);
        let mut rest = out.clone();
        rest.extend(feed(&mut restored, &batches[cut..]));
        assert_eq!(all(&rest), expected);

        // ...and so does one without a budget.
        let mut whole = operator();
        whole.restore(&snapshot).unwrap();
        out.extend(feed(&mut whole, &batches[cut..]));
        assert_eq!(all(&out), expected);
    }

    /// `K VARCHAR`, `D DOUBLE` (fares in cents, over a dollar), ROWTIME: `batches`
    /// batches of 150 rows over 12 keys, ROWTIME rising by 0 to 40 ms a row, so a 2 s
    /// window holds about 8 rows of a key; one value in 25 is NULL.
    fn fares(seed: u64, batches: usize) -> Vec<RecordBatch> {
        use datafusion::arrow::array::{StringArray, TimestampMillisecondArray};
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut t = 1_780_000_000_000i64;
        (0..batches)
            .map(|_| {
                let (mut k, mut d, mut ts) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..150 {
                    t += rng.random_range(0..=40);
                    k.push(format!("city{}", rng.random_range(0..12)));
                    d.push((rng.random_range(0..25) > 0).then(|| rng.random_range(100..9000) as f64 / 100.0));
                    ts.push(t);
                }
                RecordBatch::try_new(
                    fares_schema(),
                    vec![
                        Arc::new(StringArray::from(k)),
                        Arc::new(Float64Array::from(d)),
                        Arc::new(TimestampMillisecondArray::from(ts)),
                    ],
                )
                .unwrap()
            })
            .collect()
    }

    fn fares_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("D", DataType::Float64, true),
            Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]))
    }

    /// Over `PARTITION BY K`: `SUM(D)`, `AVG(D)`, `STDDEV_SAMP(D)`, `COUNT(D)` and
    /// `MIN(D)` over `RANGE INTERVAL '2' SECOND PRECEDING`; `VAR_POP(D)` and `SUM(D)` over
    /// `ROWS 5 PRECEDING`: every way a bounded frame's accumulator is restored.
    fn fares_operator() -> SlidingWindowOp {
        use datafusion::functions_aggregate::{average::avg_udaf, stddev::stddev_udaf, variance::var_pop_udaf};
        let input = fares_schema();
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("K", 0));
        let d: Arc<dyn PhysicalExpr> = Arc::new(Column::new("D", 1));
        let range = Frame::Range(Some(2_000));
        let rows = Frame::Rows(Some(5));
        let windows = [
            (sum_udaf(), range, DataType::Float64),
            (avg_udaf(), range, DataType::Float64),
            (stddev_udaf(), range, DataType::Float64),
            (count_udaf(), range, DataType::Int64),
            (min_udaf(), range, DataType::Float64),
            (var_pop_udaf(), rows, DataType::Float64),
            (sum_udaf(), rows, DataType::Float64),
        ];
        let mut fields = vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("D", DataType::Float64, true),
        ];
        let mut specs = Vec::new();
        for (i, (f, frame, ty)) in windows.into_iter().enumerate() {
            let aggregate = AggregateExprBuilder::new(f, vec![Arc::clone(&d)])
                .schema(Arc::clone(&input))
                .alias(format!("a{i}"))
                .build()
                .unwrap();
            fields.push(Field::new(format!("a{i}"), ty, true));
            specs.push((
                WindowAggregate {
                    function: WindowFunction::Aggregate(Arc::new(aggregate)),
                    partition_by: vec![Arc::clone(&key)],
                    frame,
                },
                vec![DataType::Utf8],
            ));
        }
        fields.push(Field::new(
            "ROWTIME",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ));
        SlidingWindowOp::new(specs, 2, Arc::new(Schema::new(fields))).unwrap()
    }

    /// Every value of every output column as text, DOUBLEs as their bits in hex.
    fn bits(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
        all(batches)
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Float64 => c
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|v| format!("{:016x}", v.to_bits())))
                    .collect(),
                _ => datafusion::arrow::compute::cast(c, &DataType::Utf8)
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect(),
            })
            .collect()
    }

    /// The output of `batches` fed in turn to operators each restored from the previous
    /// one's snapshot at the `cuts` (batch indices), `old_layout` dropping the saved
    /// accumulator states from each snapshot as a sluice that saved only rows wrote it.
    fn with_restores(
        batches: &[RecordBatch],
        cuts: &[usize],
        budget: Option<(usize, &std::path::Path)>,
        old_layout: bool,
    ) -> Vec<RecordBatch> {
        let new_op = || {
            let mut op = fares_operator();
            if let Some((budget, dir)) = budget {
                op.set_memory_budget(config(Some(budget), dir));
            }
            op
        };
        let mut op = new_op();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([&batches.len()]) {
            out.extend(feed(&mut op, &batches[from..cut]));
            from = cut;
            if cut == batches.len() {
                break;
            }
            let mut snapshot = op.snapshot().unwrap().unwrap();
            if old_layout {
                snapshot = rows_only(&snapshot, &op);
            }
            op = new_op();
            op.restore(&snapshot).unwrap();
        }
        out
    }

    /// A snapshot as a sluice that saved a bounded frame's rows alone wrote it.
    fn rows_only(snapshot: &[u8], op: &SlidingWindowOp) -> Vec<u8> {
        let mut sections = crate::state::snapshot::decode(snapshot).unwrap();
        for (section, w) in sections.iter_mut().zip(&op.windows) {
            if w.spec.frame.bounded() && section.len() > 2 {
                section.truncate(2 + w.arg_count);
            }
        }
        crate::state::snapshot::encode(&sections).unwrap()
    }

    #[test]
    fn a_restored_double_sum_avg_and_stddev_go_on_bit_for_bit() {
        let batches = fares(5, 40);
        let expected = bits(&feed(&mut fares_operator(), &batches));
        let cuts = [3, 11, 12, 23, 31];
        assert_eq!(bits(&with_restores(&batches, &cuts, None, false)), expected);
        // The data does exercise rounding: adding the held rows again, as the
        // accumulators used to be restored, gives other bits somewhere.
        assert_ne!(bits(&with_restores(&batches, &cuts, None, true)), expected);
    }

    #[test]
    fn spilled_double_aggregates_read_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let batches = fares(9, 40);
        let mut unlimited = fares_operator();
        unlimited.set_memory_budget(config(None, dir.path()));
        let expected = bits(&feed(&mut unlimited, &batches));
        let budget = unlimited.spill_stats().peak_state_bytes / 4;

        let mut spilling = fares_operator();
        spilling.set_memory_budget(config(Some(budget), dir.path()));
        let actual = feed(&mut spilling, &batches);
        let stats = spilling.spill_stats();
        assert!(stats.spills >= 3, "{stats:?}");
        assert_eq!(bits(&actual), expected);

        // Snapshots taken while partitions are spilled, restored through the budget.
        let restored = with_restores(&batches, &[7, 19, 30], Some((budget, dir.path())), false);
        assert_eq!(bits(&restored), expected);
    }

    /// A snapshot without accumulator states (written before they were saved) restores
    /// by adding the rows: the same rows and counts, DOUBLEs equal but for rounding.
    #[test]
    fn a_snapshot_of_rows_alone_still_restores() {
        let batches = fares(5, 40);
        let expected = all(&feed(&mut fares_operator(), &batches));
        let actual = all(&with_restores(&batches, &[3, 11, 23], None, true));
        assert_eq!(actual.num_rows(), expected.num_rows());
        for c in 0..expected.num_columns() {
            let (e, a) = (expected.column(c), actual.column(c));
            if let DataType::Float64 = e.data_type() {
                let (e, a) = (e.as_primitive::<Float64Type>(), a.as_primitive::<Float64Type>());
                for (x, y) in e.iter().zip(a.iter()) {
                    match (x, y) {
                        (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{x} vs {y}"),
                        (x, y) => assert_eq!(x, y),
                    }
                }
            } else {
                assert_eq!(e, a, "column {c}");
            }
        }
        // The state columns are told apart by their number and types.
        let mut op = fares_operator();
        feed(&mut op, &batches[..5]);
        let snapshot = op.snapshot().unwrap().unwrap();
        let sections = crate::state::snapshot::decode(&snapshot).unwrap();
        let widths: Vec<usize> = sections.iter().map(Vec::len).collect();
        // keys, ROWTIME, D, then SUM (sum, count), AVG (count, sum), STDDEV (count,
        // mean, m2), COUNT (count); MIN saves no state.
        assert_eq!(widths, [5, 5, 6, 4, 3, 6, 5]);
        let mut damaged = sections.clone();
        damaged[0].pop();
        let mut op = fares_operator();
        assert!(op.restore(&crate::state::snapshot::encode(&damaged).unwrap()).is_err());
    }

    /// Merging a variance state into a fresh accumulator rounds its mean (scaled by
    /// count / count); the Welford restore does not.
    #[test]
    fn a_variance_state_is_restored_exactly() {
        use datafusion::functions_aggregate::variance::var_samp_udaf;
        let input = fares_schema();
        let aggregate = AggregateExprBuilder::new(var_samp_udaf(), vec![Arc::new(Column::new("D", 1))])
            .schema(input)
            .alias("v")
            .build()
            .unwrap();
        let state_arrays = |a: &mut Box<dyn Accumulator>| -> Vec<ArrayRef> {
            a.state().unwrap().iter().map(|s| s.to_array().unwrap()).collect()
        };
        let mut merge_rounded = 0;
        for n in 1..40u32 {
            let values: Vec<f64> = (0..n).map(|i| (i * 37 % 101) as f64 / 10.0 + 0.1).collect();
            let mut original = aggregate.create_sliding_accumulator().unwrap();
            original
                .update_batch(&[Arc::new(Float64Array::from(values.clone()))])
                .unwrap();
            original
                .retract_batch(&[Arc::new(Float64Array::from(vec![values[0]]))])
                .unwrap();
            let state = state_arrays(&mut original);
            let fresh = || Ok(aggregate.create_sliding_accumulator()?);
            let mut restored = fresh().unwrap();
            assert!(
                restore_accumulator(Restore::Welford, &mut restored, fresh, &state).unwrap(),
                "n = {n}"
            );
            assert_eq!(original.evaluate().unwrap(), restored.evaluate().unwrap());
            let mut merged = fresh().unwrap();
            if !restore_accumulator(Restore::Merge, &mut merged, fresh, &state).unwrap() {
                merge_rounded += 1;
                assert_eq!(state_arrays(&mut merged), state_arrays(&mut fresh().unwrap()), "reset");
            }
        }
        assert!(merge_rounded > 0);
    }

    /// A DOUBLE SUM whose window keeps only NULLs once its values have left: its state
    /// no longer has the sum's rounding residue (0.1 + 0.2 + 0.3 − 0.1 − 0.2 − 0.3 is
    /// 1.1e-16), so every run starts such a sum afresh, restored or not.
    #[test]
    fn a_sum_left_with_nulls_alone_starts_afresh_in_every_run() {
        use datafusion::arrow::array::{StringArray, TimestampMillisecondArray};
        let t = 1_780_000_000_000i64;
        let batch = |rows: &[(Option<f64>, i64)]| {
            RecordBatch::try_new(
                fares_schema(),
                vec![
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "city1"))),
                    Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.0))),
                    Arc::new(TimestampMillisecondArray::from_iter_values(
                        rows.iter().map(|r| t + r.1),
                    )),
                ],
            )
            .unwrap()
        };
        let mut before = vec![(Some(0.1), 0), (Some(0.2), 1), (Some(0.3), 2)];
        before.extend((3_000..3_006).map(|ms| (None, ms)));
        let batches = [batch(&before), batch(&[(Some(0.3), 3_006), (Some(0.6), 3_007)])];
        let expected = feed(&mut fares_operator(), &batches);
        let last = expected[1].clone();
        for sum in [2, 8] {
            let sums = last.column(sum).as_primitive::<Float64Type>();
            assert_eq!(sums.value(0).to_bits(), 0.3f64.to_bits(), "a{}", sum - 2);
        }
        assert_eq!(bits(&with_restores(&batches, &[1], None, false)), bits(&expected));
    }
}
