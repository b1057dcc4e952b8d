//! Stream-to-stream windowed join (spec §1.3, decision A17).
//!
//! `FROM a JOIN b OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t ON a.k = t.k`: a side
//! with a window keeps its recent rows (the window, relative to the other side's row); a
//! side without one contributes only its current row. A row of an unwindowed side drives:
//! it is paired with the other side's window when it arrives, and the pair takes the
//! driving row's ROWTIME. With windows on both sides a row of either side drives.
//!
//! The two sides reach the operator interleaved in one stream: each side's pump ends
//! with a [`JoinFeedOp`], which maps its rows into the feed schema (left columns, right
//! columns, a side tag, ROWTIME), and the feed stream's hub merges both pumps in ROWTIME
//! order. Rows that share a ROWTIME are held until time moves past it, so a driving row
//! always sees every windowed row of its own instant whatever order the hub merged them
//! in (a self-join then pairs each row with itself deterministically).
//!
//! Outer joins: an unmatched row of an unwindowed preserved side is emitted at once,
//! padded with NULLs, at its ROWTIME. A row of a windowed preserved side that leaves its
//! window without ever having matched is emitted padded with NULLs when it leaves: a
//! `RANGE r` row at ROWTIME s leaves at s + r + 1 ms (the first instant it is outside the
//! window), a `ROWS n` row when n + 1 newer rows of its side are in. Both keep the
//! output non-decreasing in ROWTIME.
//!
//! A join on `a.ROWTIME = b.ROWTIME` without a window ([`JoinWindow::SameInstant`] on
//! both sides) pairs the rows of one instant: both sides are indexed, the left rows of
//! the instant look up the right ones, and every row leaves when its instant is done
//! (unmatched rows of a preserved side padded at their own ROWTIME).
//!
//! Keys are compared in Arrow's row format through a hash index per windowed side; the
//! condition beyond the equalities runs as one `PhysicalExpr` over the candidate pairs.
//! Rows leave the index and the buffer as time advances (rows and rowtime bounds), so
//! state stays bounded by the windows.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray, UInt32Array,
    new_null_array,
};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, interleave, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::eval::{error_row, eval_isolating};
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
use crate::time::Millis;
use crate::types::{ROWTIME, TIMESTAMP_TYPE};

/// Name of the feed stream's side tag column: false for a left row, true for a right one.
pub const SIDE_COLUMN: &str = "JOIN_SIDE_IS_RIGHT";

/// The window a join side keeps, relative to the other side's current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinWindow {
    /// `RANGE INTERVAL ... PRECEDING`: rows with ROWTIME in `[t - ms, t]` (inclusive, A2).
    Range(Millis),
    /// `ROWS n PRECEDING`: the side's n + 1 most recent rows (A4).
    Rows(u64),
    /// `ON a.ROWTIME = b.ROWTIME` without a window: the rows of the driving row's own
    /// instant. Both sides carry it, so no side drives: the rows of one instant pair up
    /// once that instant is complete, and an unmatched row of a preserved side comes out
    /// then, at its own ROWTIME (not one millisecond later, as a `RANGE 0` row would).
    SameInstant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    fn at(self) -> usize {
        match self {
            Side::Left => 0,
            Side::Right => 1,
        }
    }
    fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// One side of the join as the planner describes it.
pub struct SideSpec {
    /// How many columns the side has (its logical columns, including its own ROWTIME).
    pub columns: usize,
    pub window: Option<JoinWindow>,
    /// Equi-join key expressions over the side's columns, in the same order on both sides.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// An outer side: its unmatched rows are emitted padded with NULLs.
    pub preserved: bool,
}

/// The schema of a join's feed stream: the left side's fields, the right side's, the
/// side tag and ROWTIME. Every side field is nullable (the other side's rows leave it NULL).
pub fn feed_schema(left: &[Field], right: &[Field]) -> SchemaRef {
    let mut fields: Vec<Field> = Vec::with_capacity(left.len() + right.len() + 2);
    for (prefix, side) in [("L", left), ("R", right)] {
        for f in side {
            fields.push(Field::new(
                format!("{prefix}.{}", f.name()),
                f.data_type().clone(),
                true,
            ));
        }
    }
    fields.push(Field::new(SIDE_COLUMN, DataType::Boolean, false));
    fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
    Arc::new(Schema::new(fields))
}

/// The last operator of a side's pump: maps the side's rows (its columns, then ROWTIME)
/// into the feed schema.
pub struct JoinFeedOp {
    side: Side,
    left_columns: usize,
    right_columns: usize,
    schema: SchemaRef,
}

impl JoinFeedOp {
    pub fn new(side: Side, left_columns: usize, right_columns: usize, schema: SchemaRef) -> Self {
        JoinFeedOp {
            side,
            left_columns,
            right_columns,
            schema,
        }
    }
}

impl Operator for JoinFeedOp {
    fn name(&self) -> &'static str {
        "JoinFeed"
    }

    fn on_batch(&mut self, batch: RecordBatch, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let n = batch.num_rows();
        let own = match self.side {
            Side::Left => 0..self.left_columns,
            Side::Right => self.left_columns..self.left_columns + self.right_columns,
        };
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (i, f) in self
            .schema
            .fields()
            .iter()
            .take(self.left_columns + self.right_columns)
            .enumerate()
        {
            if own.contains(&i) {
                let c = batch.column(i - own.start);
                columns.push(if c.data_type() == f.data_type() {
                    Arc::clone(c)
                } else {
                    cast(c, f.data_type())?
                });
            } else {
                columns.push(new_null_array(f.data_type(), n));
            }
        }
        columns.push(Arc::new(BooleanArray::from(vec![self.side == Side::Right; n])));
        columns.push(Arc::clone(batch.column(batch.num_columns() - 1)));
        Ok(vec![RecordBatch::try_new(Arc::clone(&self.schema), columns)?])
    }
}

/// The rows of one side the operator holds, oldest first, numbered by a sequence that
/// never restarts while the operator runs. Rows before `live` are out of the join (left
/// their window, or drove at their instant); rows before `visible` have been joined at
/// their instant; rows from `visible` on wait for time to move past their instant.
/// Rows before `live` stay until the end of the call that retired them, which still
/// builds their output.
#[derive(Default)]
struct SideRows {
    /// (sequence number of the first row, the side's columns).
    chunks: VecDeque<(u64, RecordBatch)>,
    rowtimes: VecDeque<Millis>,
    /// The row's key in Arrow's row format; None for a NULL key (never matches).
    keys: VecDeque<Option<Box<[u8]>>>,
    matched: VecDeque<bool>,
    /// A windowed side's key index: key → sequence numbers of its live rows, oldest first.
    index: Option<HashMap<Box<[u8]>, VecDeque<u64>>>,
    first: u64,
    live: u64,
    visible: u64,
    next: u64,
}

impl SideRows {
    fn new(indexed: bool) -> Self {
        SideRows {
            index: indexed.then(HashMap::new),
            ..Default::default()
        }
    }

    fn at(&self, seq: u64) -> usize {
        (seq - self.first) as usize
    }

    fn rowtime(&self, seq: u64) -> Millis {
        self.rowtimes[self.at(seq)]
    }

    fn push(&mut self, rows: RecordBatch, rowtimes: &[Millis], keys: Vec<Option<Box<[u8]>>>) {
        if rows.num_rows() == 0 {
            return;
        }
        let base = self.next;
        for (i, key) in keys.into_iter().enumerate() {
            if let (Some(index), Some(k)) = (&mut self.index, &key) {
                index.entry(k.clone()).or_default().push_back(base + i as u64);
            }
            self.keys.push_back(key);
        }
        self.rowtimes.extend(rowtimes.iter().copied());
        self.matched.extend(std::iter::repeat_n(false, rowtimes.len()));
        self.next += rows.num_rows() as u64;
        self.chunks.push_back((base, rows));
    }

    /// The instant of the oldest waiting row.
    fn waiting(&self) -> Option<Millis> {
        (self.visible < self.next).then(|| self.rowtime(self.visible))
    }

    /// The end of the waiting rows at instant `t`.
    fn instant_end(&self, t: Millis) -> u64 {
        let mut end = self.visible;
        while end < self.next && self.rowtime(end) == t {
            end += 1;
        }
        end
    }

    /// Retires the rows before `upto` from the join (their index entries go now).
    fn retire(&mut self, upto: u64) {
        while self.live < upto {
            if let Some(index) = &mut self.index
                && let Some(k) = &self.keys[(self.live - self.first) as usize]
                && let Some(q) = index.get_mut(k)
            {
                q.pop_front();
                if q.is_empty() {
                    index.remove(k);
                }
            }
            self.live += 1;
        }
    }

    /// Frees the retired rows.
    fn drop_retired(&mut self) {
        let n = (self.live - self.first) as usize;
        self.rowtimes.drain(..n);
        self.keys.drain(..n);
        self.matched.drain(..n);
        self.first = self.live;
        while let Some((start, b)) = self.chunks.front() {
            if start + b.num_rows() as u64 <= self.first {
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    fn locate(&self, seq: u64) -> (usize, usize) {
        let c = self.chunks.partition_point(|(start, _)| *start <= seq) - 1;
        (c, (seq - self.chunks[c].0) as usize)
    }

    /// The side's columns of the rows `seqs`, in that order.
    fn gather(&self, seqs: &[u64], schema: &SchemaRef) -> Result<Vec<ArrayRef>> {
        if seqs.is_empty() || self.chunks.is_empty() {
            return Ok(schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), 0))
                .collect());
        }
        let at: Vec<(usize, usize)> = seqs.iter().map(|s| self.locate(*s)).collect();
        (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = self.chunks.iter().map(|(_, b)| b.column(c).as_ref()).collect();
                Ok(interleave(&arrays, &at)?)
            })
            .collect()
    }
}

/// What the instants joined in one call produce, materialised at the end of the call:
/// candidate pairs (before the ON condition beyond the keys) and rows to emit padded
/// if they never matched.
#[derive(Default)]
struct Emitted {
    /// (left row, right row, ROWTIME).
    pairs: Vec<(u64, u64, Millis)>,
    /// Per side: (row, ROWTIME) to pad if unmatched.
    pads: [Vec<(u64, Millis)>; 2],
}

pub struct StreamJoinOp {
    sides: [SideSpec; 2],
    /// The ON condition beyond the key equalities, over the output's columns.
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Each side's columns alone.
    side_schemas: [SchemaRef; 2],
    /// Left columns, right columns, ROWTIME.
    output_schema: SchemaRef,
    key_types: Vec<DataType>,
    converter: RowConverter,
    rows: [SideRows; 2],
    emitted: Emitted,
}

impl StreamJoinOp {
    pub fn new(
        left: SideSpec,
        right: SideSpec,
        filter: Option<Arc<dyn PhysicalExpr>>,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        if left.window.is_none() && right.window.is_none() {
            return Err(SluiceError::runtime(
                "a stream-to-stream join needs a window on at least one side",
            ));
        }
        let same_instant = [left.window, right.window].map(|w| w == Some(JoinWindow::SameInstant));
        if same_instant[0] != same_instant[1] {
            return Err(SluiceError::runtime(
                "a same-instant join has the same-instant window on both sides",
            ));
        }
        if left.keys.len() != right.keys.len() {
            return Err(SluiceError::runtime("join keys differ in number between the sides"));
        }
        let fields = input_schema.fields();
        let side_schema = |range: std::ops::Range<usize>| {
            Arc::new(Schema::new(
                fields[range].iter().map(|f| f.as_ref().clone()).collect::<Vec<_>>(),
            ))
        };
        let left_schema = side_schema(0..left.columns);
        let right_schema = side_schema(left.columns..left.columns + right.columns);
        let key_types = left
            .keys
            .iter()
            .map(|k| Ok(k.data_type(&left_schema)?))
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())?;
        let rows = [
            SideRows::new(left.window.is_some()),
            SideRows::new(right.window.is_some()),
        ];
        Ok(StreamJoinOp {
            sides: [left, right],
            filter,
            side_schemas: [left_schema, right_schema],
            output_schema,
            key_types,
            converter,
            rows,
            emitted: Emitted::default(),
        })
    }

    fn offset(&self, side: Side) -> usize {
        match side {
            Side::Left => 0,
            Side::Right => self.sides[0].columns,
        }
    }

    /// A side's columns of feed rows.
    fn side_columns(&self, side: Side, feed: &RecordBatch) -> Result<RecordBatch> {
        let start = self.offset(side);
        let columns = feed.columns()[start..start + self.sides[side.at()].columns].to_vec();
        Ok(RecordBatch::try_new(
            Arc::clone(&self.side_schemas[side.at()]),
            columns,
        )?)
    }

    /// Key rows of `side`'s columns; None where a key is NULL.
    fn key_rows(
        &self,
        side: Side,
        rows: &RecordBatch,
    ) -> Result<Vec<Option<Box<[u8]>>>, datafusion::error::DataFusionError> {
        let n = rows.num_rows();
        if self.key_types.is_empty() {
            // CROSS JOIN or ON without equalities: every row has the one empty key.
            return Ok(vec![Some(Box::from(&[][..])); n]);
        }
        let arrays = self.sides[side.at()]
            .keys
            .iter()
            .zip(&self.key_types)
            .map(|(k, t)| {
                let a = k.evaluate(rows)?.into_array(n)?;
                if a.data_type() == t { Ok(a) } else { Ok(cast(&a, t)?) }
            })
            .collect::<Result<Vec<ArrayRef>, datafusion::error::DataFusionError>>()?;
        let converted = self.converter.convert_columns(&arrays)?;
        Ok((0..n)
            .map(|i| (!arrays.iter().any(|a| a.is_null(i))).then(|| Box::from(converted.row(i).as_ref())))
            .collect())
    }

    /// Takes in a side's rows of a feed batch, keyed; rows whose key fails to evaluate
    /// go to `error_stream`.
    fn arrive(&mut self, side: Side, feed: &RecordBatch, ctx: &mut OpContext) -> Result<()> {
        let tags = feed.column(feed.num_columns() - 2).as_boolean();
        let wanted = match side {
            Side::Left => datafusion::arrow::compute::not(tags)?,
            Side::Right => tags.clone(),
        };
        let rows = filter_record_batch(feed, &wanted)?;
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let Some((kept, keys)) = eval_isolating(&rows, ctx, |b| {
            let cols = self
                .side_columns(side, b)
                .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
            self.key_rows(side, &cols)
        })?
        else {
            return Ok(());
        };
        let columns = self.side_columns(side, &kept)?;
        let times = rowtime_column(&kept).values().to_vec();
        self.rows[side.at()].push(columns, &times, keys);
        Ok(())
    }

    /// RANGE windows: rows that no driving row at or after `time` can reach leave; a
    /// preserved side's row leaves at s + r + 1.
    fn expire_range(&mut self, time: Millis) {
        for side in [Side::Left, Side::Right] {
            let Some(JoinWindow::Range(r)) = self.sides[side.at()].window else {
                continue;
            };
            let cutoff = time.saturating_sub(r);
            let rows = &mut self.rows[side.at()];
            let mut upto = rows.live;
            while upto < rows.visible && rows.rowtime(upto) < cutoff {
                if self.sides[side.at()].preserved {
                    let leaves = rows.rowtime(upto).saturating_add(r).saturating_add(1);
                    self.emitted.pads[side.at()].push((upto, leaves));
                }
                upto += 1;
            }
            rows.retire(upto);
        }
    }

    /// ROWS windows: rows beyond the newest n + 1 leave at `time`.
    fn expire_rows(&mut self, time: Millis) {
        for side in [Side::Left, Side::Right] {
            let Some(JoinWindow::Rows(n)) = self.sides[side.at()].window else {
                continue;
            };
            let rows = &mut self.rows[side.at()];
            let upto = rows.live.max(rows.visible.saturating_sub(n.saturating_add(1)));
            if self.sides[side.at()].preserved {
                self.emitted.pads[side.at()].extend((rows.live..upto).map(|seq| (seq, time)));
            }
            rows.retire(upto);
        }
    }

    /// The oldest row inside `side`'s window.
    fn window_start(&self, side: Side) -> u64 {
        let rows = &self.rows[side.at()];
        match self.sides[side.at()].window {
            Some(JoinWindow::Rows(n)) => rows.live.max(rows.visible.saturating_sub(n.saturating_add(1))),
            _ => rows.live,
        }
    }

    /// Pairs `driver`'s rows `drivers` (at `time`) with the other side's window rows
    /// before `stop`.
    fn drive(&mut self, driver: Side, drivers: std::ops::Range<u64>, stop: u64, time: Millis) {
        let other = driver.other();
        let start = self.window_start(other);
        let (d, o) = (&self.rows[driver.at()], &self.rows[other.at()]);
        let Some(index) = &o.index else { return };
        for seq in drivers {
            let Some(key) = &d.keys[d.at(seq)] else { continue };
            let Some(candidates) = index.get(key) else { continue };
            let from = candidates.partition_point(|&s| s < start);
            for &w in candidates.range(from..) {
                if w >= stop {
                    break;
                }
                self.emitted.pairs.push(match driver {
                    Side::Left => (seq, w, time),
                    Side::Right => (w, seq, time),
                });
            }
        }
    }

    /// Joins the rows waiting at instant `time`: every row of that instant has arrived.
    fn step(&mut self, time: Millis) {
        self.expire_range(time);
        let starts = [self.rows[0].visible, self.rows[1].visible];
        let ends = [self.rows[0].instant_end(time), self.rows[1].instant_end(time)];
        self.rows[0].visible = ends[0];
        self.rows[1].visible = ends[1];
        let windowed = [self.sides[0].window.is_some(), self.sides[1].window.is_some()];
        let same_instant = self.sides[0].window == Some(JoinWindow::SameInstant);
        if windowed[1] {
            self.drive(Side::Left, starts[0]..ends[0], ends[1], time);
        }
        if windowed[0] && !same_instant {
            // With both sides windowed, the left rows of this instant already met these.
            let stop = if windowed[1] { starts[0] } else { ends[0] };
            self.drive(Side::Right, starts[1]..ends[1], stop, time);
        }
        // An unwindowed side's rows take part only at their own instant, as do the rows
        // of a same-instant join; a preserved side's unmatched rows come out now.
        for side in [Side::Left, Side::Right] {
            let window = self.sides[side.at()].window;
            if window.is_none() || window == Some(JoinWindow::SameInstant) {
                if self.sides[side.at()].preserved {
                    self.emitted.pads[side.at()].extend((starts[side.at()]..ends[side.at()]).map(|seq| (seq, time)));
                }
                self.rows[side.at()].retire(ends[side.at()]);
            }
        }
        self.expire_rows(time);
    }

    /// Joins every waiting instant before `limit`.
    fn advance(&mut self, limit: Millis) {
        while let Some(t) = [self.rows[0].waiting(), self.rows[1].waiting()]
            .into_iter()
            .flatten()
            .min()
        {
            if t >= limit {
                break;
            }
            self.step(t);
        }
    }

    /// Which candidate pairs satisfy the ON condition beyond the equalities. A pair on
    /// which the condition fails to evaluate goes to `error_stream` and does not match.
    fn condition(&self, joined: &RecordBatch, ctx: &mut OpContext) -> Result<Vec<bool>> {
        let n = joined.num_rows();
        let Some(filter) = &self.filter else {
            return Ok(vec![true; n]);
        };
        let eval = |b: &RecordBatch| -> Result<Vec<bool>, datafusion::error::DataFusionError> {
            let v = filter.evaluate(b)?.into_array(b.num_rows())?;
            let v = v.as_boolean();
            Ok((0..b.num_rows()).map(|i| v.is_valid(i) && v.value(i)).collect())
        };
        match eval(joined) {
            Ok(keep) => Ok(keep),
            Err(_) => Ok((0..n)
                .map(|i| match eval(&joined.slice(i, 1)) {
                    Ok(k) => k[0],
                    Err(e) => {
                        ctx.errors.push(error_row(joined, i, &e, ctx.pump));
                        false
                    }
                })
                .collect()),
        }
    }

    /// Output rows with `side`'s columns given and the other side's NULL.
    fn padded(&self, side: Side, columns: Vec<ArrayRef>, rowtimes: ArrayRef) -> Result<RecordBatch> {
        let n = rowtimes.len();
        let mut out = Vec::with_capacity(self.output_schema.fields().len());
        let mut own = Some(columns);
        for s in [Side::Left, Side::Right] {
            if s == side {
                out.extend(own.take().unwrap_or_default());
            } else {
                out.extend(
                    self.side_schemas[s.at()]
                        .fields()
                        .iter()
                        .map(|f| new_null_array(f.data_type(), n)),
                );
            }
        }
        out.push(rowtimes);
        Ok(RecordBatch::try_new(Arc::clone(&self.output_schema), out)?)
    }

    /// Builds what the call's instants produced: the pairs that satisfy the condition,
    /// then the padded rows that never matched, as one batch in ROWTIME order; then
    /// frees the retired rows.
    fn finish(&mut self, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let emitted = std::mem::take(&mut self.emitted);
        let mut parts = Vec::new();
        if !emitted.pairs.is_empty() {
            let left: Vec<u64> = emitted.pairs.iter().map(|p| p.0).collect();
            let right: Vec<u64> = emitted.pairs.iter().map(|p| p.1).collect();
            let mut columns = self.rows[0].gather(&left, &self.side_schemas[0])?;
            columns.extend(self.rows[1].gather(&right, &self.side_schemas[1])?);
            columns.push(Arc::new(TimestampMillisecondArray::from(
                emitted.pairs.iter().map(|p| p.2).collect::<Vec<_>>(),
            )));
            let joined = RecordBatch::try_new(Arc::clone(&self.output_schema), columns)?;
            let keep = self.condition(&joined, ctx)?;
            for (p, ok) in emitted.pairs.iter().zip(&keep) {
                if *ok {
                    let (l, r) = (self.rows[0].at(p.0), self.rows[1].at(p.1));
                    self.rows[0].matched[l] = true;
                    self.rows[1].matched[r] = true;
                }
            }
            if keep.iter().any(|k| *k) {
                parts.push(filter_record_batch(&joined, &BooleanArray::from(keep))?);
            }
        }
        for side in [Side::Left, Side::Right] {
            let rows = &self.rows[side.at()];
            let lonely: Vec<&(u64, Millis)> = emitted.pads[side.at()]
                .iter()
                .filter(|(seq, _)| !rows.matched[rows.at(*seq)])
                .collect();
            if lonely.is_empty() {
                continue;
            }
            let seqs: Vec<u64> = lonely.iter().map(|p| p.0).collect();
            let columns = rows.gather(&seqs, &self.side_schemas[side.at()])?;
            let times = Arc::new(TimestampMillisecondArray::from(
                lonely.iter().map(|p| p.1).collect::<Vec<_>>(),
            ));
            parts.push(self.padded(side, columns, times)?);
        }
        for rows in &mut self.rows {
            rows.drop_retired();
        }
        match parts.len() {
            0 => Ok(vec![]),
            1 if is_sorted(&parts[0]) => Ok(parts),
            _ => {
                // Pairs and padded rows of several instants: one batch in ROWTIME order
                // (stable, so rows of one instant keep the order they were made in).
                let all = concat_batches(&self.output_schema, &parts)?;
                let times = rowtime_column(&all);
                let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
                order.sort_by_key(|&i| times.value(i as usize));
                Ok(vec![take_record_batch(&all, &UInt32Array::from(order))?])
            }
        }
    }

    fn side_section(&self, side: Side) -> Result<Vec<ArrayRef>> {
        let rows = &self.rows[side.at()];
        let seqs: Vec<u64> = (rows.first..rows.next).collect();
        let mut arrays = rows.gather(&seqs, &self.side_schemas[side.at()])?;
        arrays.push(Arc::new(Int64Array::from(
            rows.rowtimes.iter().copied().collect::<Vec<_>>(),
        )));
        arrays.push(Arc::new(BooleanArray::from(
            rows.matched.iter().copied().collect::<Vec<_>>(),
        )));
        Ok(arrays)
    }
}

fn is_sorted(batch: &RecordBatch) -> bool {
    rowtime_column(batch).values().windows(2).all(|w| w[0] <= w[1])
}

impl Operator for StreamJoinOp {
    fn name(&self) -> &'static str {
        "StreamJoin"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        self.arrive(Side::Left, &batch, ctx)?;
        self.arrive(Side::Right, &batch, ctx)?;
        // Rows of the batch's last instant may still have peers to come.
        let newest = rowtime_column(&batch).value(batch.num_rows() - 1);
        self.advance(newest);
        self.finish(ctx)
    }

    fn on_bound(&mut self, bound: Millis, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.advance(bound);
        self.expire_range(bound);
        self.finish(ctx)
    }

    fn on_end(&mut self, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        // Nothing follows: the rows of the last instant have all their peers. Windows
        // that would expire after the time reached stay (no padding beyond it).
        self.advance(Millis::MAX);
        self.finish(ctx)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        // Between calls: every retired row is freed, so each side holds exactly its
        // window (or its waiting rows) and where the waiting rows begin.
        let waiting: ArrayRef = Arc::new(Int64Array::from(
            self.rows
                .iter()
                .map(|r| (r.visible - r.first) as i64)
                .collect::<Vec<_>>(),
        ));
        let sections = vec![
            vec![waiting],
            self.side_section(Side::Left)?,
            self.side_section(Side::Right)?,
        ];
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let corrupt = || SluiceError::runtime("corrupt stream-join state");
        let sections = crate::state::snapshot::decode(state)?;
        let [waiting, left, right] = <[Vec<ArrayRef>; 3]>::try_from(sections).map_err(|_| corrupt())?;
        let waiting = waiting
            .first()
            .and_then(|a| a.as_primitive_opt::<Int64Type>())
            .filter(|a| a.len() == 2)
            .ok_or_else(corrupt)?
            .clone();
        for (side, mut arrays) in [(Side::Left, left), (Side::Right, right)] {
            if arrays.len() != self.sides[side.at()].columns + 2 {
                return Err(corrupt());
            }
            let matched = arrays.pop().ok_or_else(corrupt)?;
            let times = arrays.pop().ok_or_else(corrupt)?;
            let columns = RecordBatch::try_new(Arc::clone(&self.side_schemas[side.at()]), arrays)?;
            let keys = self.key_rows(side, &columns)?;
            let times = times
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(corrupt)?
                .values()
                .to_vec();
            let mut rows = SideRows::new(self.sides[side.at()].window.is_some());
            rows.push(columns, &times, keys);
            for (i, m) in matched.as_boolean().iter().enumerate() {
                rows.matched[i] = m == Some(true);
            }
            rows.visible = u64::try_from(waiting.value(side.at()))
                .map_err(|_| corrupt())?
                .min(rows.next);
            self.rows[side.at()] = rows;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringArray;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

    use super::*;
    use crate::error::ErrorRow;

    /// One side's rows: key, value, ROWTIME.
    type Row = (Option<&'static str>, i64, Millis);
    /// An output row: left value, right value, ROWTIME.
    type Out = (Option<i64>, Option<i64>, Millis);

    fn side_fields() -> Vec<Field> {
        vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new(ROWTIME, TIMESTAMP_TYPE, false),
        ]
    }

    fn side_batch(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(side_fields())),
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    struct Harness {
        op: StreamJoinOp,
        feeds: [JoinFeedOp; 2],
        errors: Vec<ErrorRow>,
        out: Vec<Out>,
    }

    fn output_schema() -> SchemaRef {
        let mut fields = side_fields();
        fields.extend(side_fields());
        let mut fields: Vec<Field> = fields.into_iter().map(|f| f.with_nullable(true)).collect();
        fields.push(Field::new(ROWTIME, TIMESTAMP_TYPE, false));
        Arc::new(Schema::new(fields))
    }

    fn key() -> Vec<Arc<dyn PhysicalExpr>> {
        vec![Arc::new(Column::new("K", 0))]
    }

    fn harness(
        left: (Option<JoinWindow>, bool),
        right: (Option<JoinWindow>, bool),
        keys: bool,
        filter: Option<Arc<dyn PhysicalExpr>>,
    ) -> Harness {
        let schema = feed_schema(&side_fields(), &side_fields());
        let spec = |(window, preserved): (Option<JoinWindow>, bool)| SideSpec {
            columns: 3,
            window,
            keys: if keys { key() } else { vec![] },
            preserved,
        };
        Harness {
            op: StreamJoinOp::new(spec(left), spec(right), filter, Arc::clone(&schema), output_schema()).unwrap(),
            feeds: [
                JoinFeedOp::new(Side::Left, 3, 3, Arc::clone(&schema)),
                JoinFeedOp::new(Side::Right, 3, 3, schema),
            ],
            errors: Vec::new(),
            out: Vec::new(),
        }
    }

    impl Harness {
        fn collect(&mut self, batches: Vec<RecordBatch>) {
            for b in batches {
                let l = b.column(1).as_primitive::<Int64Type>();
                let r = b.column(4).as_primitive::<Int64Type>();
                let t = rowtime_column(&b);
                for i in 0..b.num_rows() {
                    self.out.push((
                        l.is_valid(i).then(|| l.value(i)),
                        r.is_valid(i).then(|| r.value(i)),
                        t.value(i),
                    ));
                }
            }
        }

        /// Sends rows of one side (as the hub would: each batch non-decreasing in time).
        fn send(&mut self, side: Side, rows: &[Row]) {
            let mut ctx = OpContext {
                pump: "P",
                errors: &mut self.errors,
            };
            let feed = self.feeds[side.at()].on_batch(side_batch(rows), &mut ctx).unwrap();
            let mut emitted = Vec::new();
            for b in feed {
                emitted.extend(self.op.on_batch(b, &mut ctx).unwrap());
            }
            self.collect(emitted);
        }

        fn bound(&mut self, t: Millis) {
            let mut ctx = OpContext {
                pump: "P",
                errors: &mut self.errors,
            };
            let emitted = self.op.on_bound(t, &mut ctx).unwrap();
            self.collect(emitted);
        }

        /// Everything emitted so far, sorted within each ROWTIME (A20), after checking
        /// the ROWTIMEs never went down.
        fn take(&mut self) -> Vec<Out> {
            let out = std::mem::take(&mut self.out);
            assert!(out.windows(2).all(|w| w[0].2 <= w[1].2), "ROWTIME went down: {out:?}");
            let mut out = out;
            out.sort_by_key(|o| (o.2, o.0, o.1));
            out
        }
    }

    fn sorted(mut rows: Vec<Out>) -> Vec<Out> {
        rows.sort_by_key(|o| (o.2, o.0, o.1));
        rows
    }

    const MIN: Millis = 60_000;

    /// Orders (left, unwindowed) against trades of the minute before (right).
    fn orders_and_trades(h: &mut Harness) {
        h.send(Side::Right, &[(Some("a"), 10, 0), (Some("b"), 11, 1_000)]);
        h.send(Side::Left, &[(Some("a"), 1, 30_000), (Some("c"), 2, 30_000)]);
        h.send(Side::Right, &[(Some("a"), 12, 40_000)]);
        h.send(Side::Left, &[(Some("a"), 3, 50_000)]);
        h.bound(Millis::MAX);
    }

    #[test]
    fn inner_join_pairs_the_driving_row_with_the_window_at_its_rowtime() {
        let mut h = harness((None, false), (Some(JoinWindow::Range(MIN)), false), true, None);
        orders_and_trades(&mut h);
        assert_eq!(
            h.take(),
            vec![
                (Some(1), Some(10), 30_000),
                (Some(3), Some(10), 50_000),
                (Some(3), Some(12), 50_000)
            ]
        );
    }

    #[test]
    fn left_join_pads_an_unmatched_driving_row_at_once() {
        let mut h = harness((None, true), (Some(JoinWindow::Range(MIN)), false), true, None);
        orders_and_trades(&mut h);
        assert_eq!(
            h.take(),
            vec![
                (Some(1), Some(10), 30_000),
                (Some(2), None, 30_000),
                (Some(3), Some(10), 50_000),
                (Some(3), Some(12), 50_000)
            ]
        );
    }

    #[test]
    fn right_join_pads_a_window_row_that_never_matched_when_it_leaves() {
        let mut h = harness((None, false), (Some(JoinWindow::Range(MIN)), true), true, None);
        orders_and_trades(&mut h);
        // trade b (ROWTIME 1000) leaves at 1000 + 60000 + 1; the others matched.
        assert_eq!(
            h.take(),
            vec![
                (Some(1), Some(10), 30_000),
                (Some(3), Some(10), 50_000),
                (Some(3), Some(12), 50_000),
                (None, Some(11), 61_001)
            ]
        );
    }

    #[test]
    fn full_join_pads_both_sides() {
        let mut h = harness((None, true), (Some(JoinWindow::Range(MIN)), true), true, None);
        orders_and_trades(&mut h);
        assert_eq!(
            h.take(),
            vec![
                (Some(1), Some(10), 30_000),
                (Some(2), None, 30_000),
                (Some(3), Some(10), 50_000),
                (Some(3), Some(12), 50_000),
                (None, Some(11), 61_001)
            ]
        );
    }

    #[test]
    fn the_range_lower_bound_is_inclusive() {
        let mut h = harness((None, false), (Some(JoinWindow::Range(MIN)), false), true, None);
        h.send(Side::Right, &[(Some("a"), 10, 0), (Some("a"), 11, 1)]);
        // exactly one minute after the first trade: both are in [t - 1 min, t]
        h.send(Side::Left, &[(Some("a"), 1, MIN)]);
        // one millisecond later the first has left
        h.send(Side::Left, &[(Some("a"), 2, MIN + 1)]);
        h.bound(Millis::MAX);
        assert_eq!(
            h.take(),
            vec![
                (Some(1), Some(10), MIN),
                (Some(1), Some(11), MIN),
                (Some(2), Some(11), MIN + 1)
            ]
        );
    }

    #[test]
    fn a_rows_window_holds_the_newest_n_plus_one_rows() {
        let mut h = harness((None, false), (Some(JoinWindow::Rows(1)), true), true, None);
        h.send(
            Side::Right,
            &[(Some("a"), 10, 0), (Some("a"), 11, 5), (Some("a"), 12, 7)],
        );
        h.send(Side::Left, &[(Some("a"), 1, 10)]);
        h.send(Side::Right, &[(Some("b"), 13, 20)]);
        h.send(Side::Left, &[(Some("a"), 2, 30)]);
        h.bound(Millis::MAX);
        // Trade 10 leaves when 12 arrives (time 7), unmatched: padded at 7. At 10 the
        // window is {11, 12}; at 30 it is {12, 13}. 11 leaves at 20 having matched;
        // 12 and 13 stay in the window to the end (ROWS windows do not expire by time).
        assert_eq!(
            h.take(),
            vec![
                (None, Some(10), 7),
                (Some(1), Some(11), 10),
                (Some(1), Some(12), 10),
                (Some(2), Some(12), 30)
            ]
        );
    }

    #[test]
    fn rows_at_the_driving_rowtime_join_whatever_order_they_arrive_in() {
        let mut h = harness((None, false), (Some(JoinWindow::Range(0)), false), true, None);
        // the order row first, then a trade at the same instant
        h.send(Side::Left, &[(Some("a"), 1, 100)]);
        h.send(Side::Right, &[(Some("a"), 10, 100)]);
        assert_eq!(h.take(), vec![], "held until time moves past 100");
        h.bound(101);
        assert_eq!(h.take(), vec![(Some(1), Some(10), 100)]);
    }

    #[test]
    fn with_windows_on_both_sides_either_side_drives_and_each_pair_comes_once() {
        let w = Some(JoinWindow::Range(10));
        let mut h = harness((w, false), (w, false), true, None);
        h.send(Side::Left, &[(Some("a"), 1, 0)]);
        h.send(Side::Right, &[(Some("a"), 10, 5)]); // drives: left 1 is 5 ms old
        h.send(Side::Left, &[(Some("a"), 2, 5)]); // same instant as trade 10
        h.send(Side::Right, &[(Some("a"), 11, 20)]); // left 1 and 2 are too old
        h.send(Side::Left, &[(Some("a"), 3, 25)]); // drives: trade 11
        h.bound(Millis::MAX);
        assert_eq!(
            h.take(),
            vec![(Some(1), Some(10), 5), (Some(2), Some(10), 5), (Some(3), Some(11), 25)]
        );
    }

    #[test]
    fn both_windowed_full_join_pads_rows_that_never_matched_when_they_leave() {
        let w = Some(JoinWindow::Range(10));
        let mut h = harness((w, true), (w, true), true, None);
        h.send(Side::Left, &[(Some("a"), 1, 0), (Some("x"), 2, 0)]);
        h.send(Side::Right, &[(Some("a"), 10, 5), (Some("y"), 11, 5)]);
        h.bound(Millis::MAX);
        assert_eq!(
            h.take(),
            vec![(Some(1), Some(10), 5), (Some(2), None, 11), (None, Some(11), 16)]
        );
    }

    #[test]
    fn rows_leaving_windows_of_different_lengths_come_out_in_rowtime_order() {
        let mut h = harness(
            (Some(JoinWindow::Range(10)), true),
            (Some(JoinWindow::Range(100)), true),
            true,
            None,
        );
        h.send(Side::Right, &[(Some("y"), 10, 0)]); // leaves at 101
        h.send(Side::Left, &[(Some("x"), 1, 95)]); // leaves at 106
        h.bound(Millis::MAX);
        assert_eq!(h.take(), vec![(None, Some(10), 101), (Some(1), None, 106)]);
    }

    #[test]
    fn cross_join_and_a_condition_beyond_the_keys() {
        // CROSS JOIN (no keys) with ON l.V * 10 < r.V
        let filter: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(
                Arc::new(Column::new("V", 1)),
                datafusion::logical_expr::Operator::Multiply,
                Arc::new(Literal::new(datafusion::common::ScalarValue::Int64(Some(10)))),
            )),
            datafusion::logical_expr::Operator::Lt,
            Arc::new(Column::new("V", 4)),
        ));
        let mut h = harness((None, true), (Some(JoinWindow::Range(MIN)), false), false, Some(filter));
        h.send(Side::Right, &[(Some("a"), 10, 0), (None, 25, 1)]);
        h.send(Side::Left, &[(Some("z"), 1, 2), (Some("z"), 2, 2), (Some("z"), 3, 2)]);
        h.bound(Millis::MAX);
        assert_eq!(
            h.take(),
            vec![(Some(1), Some(25), 2), (Some(2), Some(25), 2), (Some(3), None, 2)]
        );
    }

    #[test]
    fn null_keys_never_match() {
        let mut h = harness((None, true), (Some(JoinWindow::Range(MIN)), false), true, None);
        h.send(Side::Right, &[(None, 10, 0)]);
        h.send(Side::Left, &[(None, 1, 1)]);
        h.bound(Millis::MAX);
        assert_eq!(h.take(), vec![(Some(1), None, 1)]);
    }

    #[test]
    fn a_same_instant_join_pairs_rows_of_equal_rowtime_and_pads_at_that_instant() {
        let w = Some(JoinWindow::SameInstant);
        for (preserve, expected) in [
            ((false, false), vec![(Some(1), Some(10), 5), (Some(1), Some(11), 5)]),
            (
                (true, true),
                vec![
                    (Some(0), None, 0),
                    (None, Some(9), 3),
                    (Some(1), Some(10), 5),
                    (Some(1), Some(11), 5),
                    (Some(2), None, 5),
                    (None, Some(12), 7),
                ],
            ),
        ] {
            let mut h = harness((w, preserve.0), (w, preserve.1), true, None);
            h.send(Side::Left, &[(Some("a"), 0, 0)]);
            h.send(Side::Right, &[(Some("a"), 9, 3)]);
            // the right rows of instant 5 come before and after the left ones
            h.send(Side::Right, &[(Some("a"), 10, 5)]);
            h.send(Side::Left, &[(Some("a"), 1, 5), (Some("b"), 2, 5)]);
            h.send(Side::Right, &[(Some("a"), 11, 5)]);
            h.send(Side::Right, &[(Some("a"), 12, 7)]);
            h.bound(8);
            // every row has left the join once its instant is done
            assert!(h.op.rows.iter().all(|r| r.rowtimes.is_empty()));
            assert_eq!(h.take(), expected, "preserved {preserve:?}");
        }
    }

    #[test]
    fn window_state_is_evicted_as_time_advances() {
        let mut h = harness((None, false), (Some(JoinWindow::Range(1_000)), false), true, None);
        for i in 0..10_000i64 {
            let key = if i % 2 == 0 { "a" } else { "b" };
            h.send(Side::Right, &[(Some(key), i, i * 10)]);
            // the window of the last joined instant (1 s: 101 rows) and the row waiting
            let held = h.op.rows[1].rowtimes.len();
            assert!(held <= 102, "the window holds 1 s of rows: {held}");
        }
        h.bound(100_000 + 1_001);
        assert_eq!(h.op.rows[1].rowtimes.len(), 0);
        assert!(h.op.rows[1].index.as_ref().unwrap().is_empty());
        assert!(h.op.rows[1].chunks.is_empty());
        // a ROWS window by count
        let mut h = harness((None, false), (Some(JoinWindow::Rows(4)), false), true, None);
        for i in 0..1_000i64 {
            h.send(Side::Right, &[(Some("a"), i, i)]);
        }
        h.bound(1_000);
        assert_eq!(h.op.rows[1].rowtimes.len(), 5);
        assert_eq!(h.op.rows[1].chunks.len(), 5);
    }

    /// A brute-force join of whole inputs by the definition (one side unwindowed, the
    /// other with a RANGE window): the oracle of the randomised test.
    fn oracle(left: &[Row], right: &[Row], range: Millis, kind: (bool, bool)) -> Vec<Out> {
        let mut out = Vec::new();
        let mut right_matched = vec![false; right.len()];
        for l in left {
            let mut matched = false;
            for (j, r) in right.iter().enumerate() {
                if l.0.is_some() && l.0 == r.0 && r.2 <= l.2 && r.2 >= l.2 - range {
                    out.push((Some(l.1), Some(r.1), l.2));
                    matched = true;
                    right_matched[j] = true;
                }
            }
            if !matched && kind.0 {
                out.push((Some(l.1), None, l.2));
            }
        }
        if kind.1 {
            for (j, r) in right.iter().enumerate() {
                if !right_matched[j] {
                    out.push((None, Some(r.1), r.2 + range + 1));
                }
            }
        }
        sorted(out)
    }

    #[test]
    fn random_inputs_agree_with_the_brute_force_join_and_survive_a_snapshot() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        const KEYS: [Option<&str>; 4] = [Some("a"), Some("b"), Some("c"), None];
        for seed in 0..20u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let range = rng.random_range(0..50);
            let kind = (rng.random_bool(0.5), rng.random_bool(0.5));
            let (mut left, mut right) = (Vec::new(), Vec::new());
            let mut t = 0;
            let mut h = harness((None, kind.0), (Some(JoinWindow::Range(range)), kind.1), true, None);
            for i in 0..400 {
                t += rng.random_range(0..8);
                let row = (KEYS[rng.random_range(0..4)], i, t);
                let side = if rng.random_bool(0.5) { Side::Left } else { Side::Right };
                match side {
                    Side::Left => left.push(row),
                    Side::Right => right.push(row),
                }
                h.send(side, &[row]);
                if i == 200 {
                    // Restore the state into a new operator and carry on with that one.
                    let state = h.op.snapshot().unwrap().unwrap();
                    let mut fresh = harness((None, kind.0), (Some(JoinWindow::Range(range)), kind.1), true, None);
                    fresh.op.restore(&state).unwrap();
                    fresh.out = std::mem::take(&mut h.out);
                    h = fresh;
                }
                if rng.random_bool(0.1) {
                    h.bound(t);
                }
            }
            h.bound(Millis::MAX);
            assert_eq!(h.take(), oracle(&left, &right, range, kind), "seed {seed}");
        }
    }
}
