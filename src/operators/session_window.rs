//! The GROUP BY of a `SESSION` window table function: sessions per key, each the
//! maximal run of rows whose event times are less than the gap apart.
//!
//! [`super::window_assign`] gives every row its own window `[t, t + gap)`; this operator
//! merges overlapping windows of one session key (the `PARTITION BY` columns of the call,
//! or else the query's ordinary GROUP BY keys) into sessions `[first, last + gap)`, which
//! may join when a row falls between two. A session's rows are buffered; when the
//! stream's time reaches `end + lateness` the session closes and its rows are aggregated
//! with DataFusion's grouped accumulators, grouped by the query's keys, emitted once
//! with ROWTIME = that instant. With `EARLY_FIRE`, a session that received rows since
//! its last result emits a partial one (`IS_PARTIAL` true) at each fire instant, as the
//! window aggregate does (see [`super::window_aggregate`]).
//!
//! A row whose own window had closed is late and never reaches this operator. A row on
//! time whose window overlaps a session that already closed starts a new session: a
//! closed session is never reopened.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::eval::eval_isolating;
use super::window_aggregate::{GroupedState, WindowAggSpec, drive, next_fire};
use super::{OpContext, Operator};
use crate::error::{Result, SluiceError};
use crate::time::Millis;

struct Session {
    key: OwnedRow,
    start: i64,
    end: i64,
    rows: Vec<RecordBatch>,
    dirty: bool,
}

pub struct SessionWindowOp {
    spec: WindowAggSpec,
    /// What makes rows one session's (a constant when nothing does: one global session).
    session_keys: Vec<Arc<dyn PhysicalExpr>>,
    converter: RowConverter,
    input_schema: SchemaRef,
    start_column: usize,
    end_column: usize,
    lateness: i64,
    early_fire: Option<i64>,
    sessions: HashMap<u64, Session>,
    /// Open sessions by (end, id): the first closes first.
    by_end: BTreeSet<(i64, u64)>,
    by_key: HashMap<OwnedRow, Vec<u64>>,
    next_id: u64,
    now: Millis,
}

impl SessionWindowOp {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: WindowAggSpec,
        session_keys: Vec<Arc<dyn PhysicalExpr>>,
        session_key_types: Vec<DataType>,
        input_schema: SchemaRef,
        start_column: usize,
        end_column: usize,
        lateness: i64,
        early_fire: Option<i64>,
    ) -> Result<Self> {
        let (session_keys, types) = if session_keys.is_empty() {
            let one: Arc<dyn PhysicalExpr> = Arc::new(datafusion::physical_expr::expressions::Literal::new(
                datafusion::common::ScalarValue::Boolean(Some(true)),
            ));
            (vec![one], vec![DataType::Boolean])
        } else {
            (session_keys, session_key_types)
        };
        let converter = RowConverter::new(types.into_iter().map(SortField::new).collect())?;
        Ok(SessionWindowOp {
            spec,
            session_keys,
            converter,
            input_schema,
            start_column,
            end_column,
            lateness,
            early_fire,
            sessions: HashMap::new(),
            by_end: BTreeSet::new(),
            by_key: HashMap::new(),
            next_id: 0,
            now: Millis::MIN,
        })
    }

    fn keys_of(&self, batch: &RecordBatch) -> Result<datafusion::arrow::row::Rows> {
        let n = batch.num_rows();
        let keys = self
            .session_keys
            .iter()
            .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.converter.convert_columns(&keys)?)
    }

    fn close_time(&self, end: i64) -> Millis {
        end.saturating_add(self.lateness)
    }

    fn next_event(&self) -> Option<Millis> {
        let close = self.by_end.first().map(|&(end, _)| self.close_time(end));
        [close, next_fire(self.early_fire, self.now)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The session's result rows (its buffered rows aggregated by the query's keys).
    fn aggregate(&self, session: &Session, partial: bool, at: Millis) -> Result<Option<RecordBatch>> {
        let rows = concat_batches(&self.input_schema, &session.rows)?;
        // Rows whose aggregate inputs fail were sent to error_stream when they arrived.
        let mut ignored = Vec::new();
        let mut ctx = OpContext {
            pump: "",
            errors: &mut ignored,
        };
        let Some((_, inputs)) = self.spec.inputs(&rows, &mut ctx)? else {
            return Ok(None);
        };
        let mut state = GroupedState::new(&self.spec)?;
        state.update(&inputs)?;
        let (keys, aggs) = state.finish()?;
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.spec.output(
            keys,
            aggs,
            (session.start, session.end),
            partial,
            at,
        )?))
    }

    fn advance(&mut self, t: Millis) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        loop {
            let close = self.by_end.first().map(|&(end, _)| self.close_time(end));
            let dirty = self.sessions.values().any(|s| s.dirty);
            let fire = next_fire(self.early_fire, self.now).filter(|_| dirty);
            let Some(at) = [close, fire].into_iter().flatten().min().filter(|at| *at <= t) else {
                break;
            };
            if fire == Some(at) {
                let ids: Vec<u64> = self.by_end.iter().map(|&(_, id)| id).collect();
                for id in ids {
                    let s = &self.sessions[&id];
                    if s.dirty && self.close_time(s.end) > at {
                        out.extend(self.aggregate(s, true, at)?);
                    }
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.dirty = false;
                    }
                }
            }
            while let Some(&(end, id)) = self.by_end.first() {
                if self.close_time(end) > at {
                    break;
                }
                self.by_end.pop_first();
                let session = self.remove(id);
                out.extend(self.aggregate(&session, false, at)?);
            }
            self.now = at;
        }
        self.now = self.now.max(t);
        Ok(out)
    }

    /// Takes an open session out of every index.
    fn remove(&mut self, id: u64) -> Session {
        let session = self.sessions.remove(&id).expect("indexed session exists");
        self.by_end.remove(&(session.end, id));
        if let Some(ids) = self.by_key.get_mut(&session.key) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_key.remove(&session.key);
            }
        }
        session
    }

    fn insert(&mut self, session: Session) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_end.insert((session.end, id));
        self.by_key.entry(session.key.clone()).or_default().push(id);
        self.sessions.insert(id, session);
        id
    }

    fn accumulate(&mut self, rows: &RecordBatch, ctx: &mut OpContext) -> Result<()> {
        // Drop rows whose aggregate inputs or session keys fail, once, on arrival.
        let Some((kept, _)) = self.spec.inputs(rows, ctx)? else {
            return Ok(());
        };
        let Some((kept, keys)) = eval_isolating(&kept, ctx, |b| {
            self.keys_of(b)
                .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))
        })?
        else {
            return Ok(());
        };
        let starts = kept
            .column(self.start_column)
            .as_primitive::<TimestampMillisecondType>();
        let ends = kept.column(self.end_column).as_primitive::<TimestampMillisecondType>();
        // rows of this batch per session id; merged sessions carry their lists along
        let mut pending: HashMap<u64, Vec<u32>> = HashMap::new();
        for i in 0..kept.num_rows() {
            let key = keys.row(i);
            let (s, e) = (starts.value(i), ends.value(i));
            let overlapping: Vec<u64> = self
                .by_key
                .get(&key.owned())
                .map(|ids| {
                    ids.iter()
                        .copied()
                        .filter(|id| {
                            let o = &self.sessions[id];
                            s < o.end && o.start < e
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut merged = Session {
                key: key.owned(),
                start: s,
                end: e,
                rows: Vec::new(),
                dirty: true,
            };
            let mut rows_here = vec![i as u32];
            for id in overlapping {
                let old = self.remove(id);
                merged.start = merged.start.min(old.start);
                merged.end = merged.end.max(old.end);
                merged.rows.extend(old.rows);
                rows_here.extend(pending.remove(&id).unwrap_or_default());
            }
            let id = self.insert(merged);
            pending.insert(id, rows_here);
        }
        for (id, mut idx) in pending {
            idx.sort_unstable();
            let taken = take_record_batch(&kept, &UInt32Array::from(idx))?;
            if let Some(s) = self.sessions.get_mut(&id) {
                s.rows.push(taken);
            }
        }
        Ok(())
    }
}

impl Operator for SessionWindowOp {
    fn name(&self) -> &'static str {
        "SessionWindow"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let (end_column, lateness) = (self.end_column, self.lateness);
        drive(
            self,
            &batch,
            ctx,
            end_column,
            lateness,
            |op, t| op.advance(t),
            |op| op.next_event(),
            |op, rows, ctx| op.accumulate(rows, ctx),
        )
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.advance(bound)
    }

    /// `[now]`, then per open session `[start, end, dirty]` and its rows.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let mut sections: Vec<Vec<ArrayRef>> = vec![vec![Arc::new(Int64Array::from(vec![self.now]))]];
        for &(_, id) in &self.by_end {
            let s = &self.sessions[&id];
            sections.push(vec![Arc::new(Int64Array::from(vec![s.start, s.end, s.dirty as i64]))]);
            sections.push(concat_batches(&self.input_schema, &s.rows)?.columns().to_vec());
        }
        Ok(Some(crate::state::snapshot::encode(&sections)?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let corrupt = || SluiceError::runtime("corrupt session-window state");
        let sections = crate::state::snapshot::decode(state)?;
        let (head, rest) = sections.split_first().ok_or_else(corrupt)?;
        self.now = head.first().ok_or_else(corrupt)?.as_primitive::<Int64Type>().value(0);
        if rest.len() % 2 != 0 {
            return Err(corrupt());
        }
        for pair in rest.chunks(2) {
            let meta = pair[0].first().ok_or_else(corrupt)?.as_primitive::<Int64Type>();
            let rows = RecordBatch::try_new(Arc::clone(&self.input_schema), pair[1].clone())?;
            if rows.num_rows() == 0 {
                return Err(corrupt());
            }
            let key = self.keys_of(&rows.slice(0, 1))?.row(0).owned();
            self.insert(Session {
                key,
                start: meta.value(0),
                end: meta.value(1),
                rows: vec![rows],
                dirty: meta.value(2) != 0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::operators::window_aggregate::tests::{OutRow, assign, out_rows, pair_schema, rows, spec};
    use crate::operators::window_assign::WindowKind;

    fn run(gap: i64, lateness: i64, early: Option<i64>, batches: &[Vec<(&str, i64, i64)>], end: Millis) -> Vec<OutRow> {
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut a = assign(WindowKind::Session { gap }, lateness);
        let mut s = session_op(lateness, early);
        let mut out = Vec::new();
        for b in batches {
            for pairs in a.on_batch(rows(b), &mut ctx).unwrap() {
                out.extend(s.on_batch(pairs, &mut ctx).unwrap());
            }
        }
        out.extend(s.on_bound(end, &mut ctx).unwrap());
        out_rows(&out)
    }

    fn session_op(lateness: i64, early: Option<i64>) -> SessionWindowOp {
        SessionWindowOp::new(
            spec(),
            vec![Arc::new(Column::new("K", 0))],
            vec![DataType::Utf8],
            pair_schema(),
            2,
            3,
            lateness,
            early,
        )
        .unwrap()
    }

    fn row(s: i64, e: i64, p: bool, k: &str, n: i64, sum: i64, rt: i64) -> OutRow {
        (s, e, p, k.to_string(), n, sum, rt)
    }

    #[test]
    fn sessions_split_at_the_gap_per_key() {
        // gap 10: a at 0, 9 (one session [0, 19)); a at 19 is exactly a gap after 9: new
        let input = vec![vec![("a", 1, 0), ("b", 2, 5), ("a", 3, 9), ("a", 4, 19), ("b", 5, 30)]];
        let out = run(10, 0, None, &input, Millis::MAX);
        assert_eq!(
            out,
            vec![
                row(5, 15, false, "b", 1, 2, 15),
                row(0, 19, false, "a", 2, 4, 19),
                row(19, 29, false, "a", 1, 4, 29),
                row(30, 40, false, "b", 1, 5, 40),
            ]
        );
    }

    #[test]
    fn a_row_between_two_sessions_merges_them() {
        // event time in V is not ROWTIME here: use a session on V via the assign op
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut a = WindowAssignOpForV::new(10, 100);
        let mut s = session_op(100, None);
        let mut out = Vec::new();
        // event times 0 and 18 (two sessions), then 9 joins them: [0, 28)
        for p in
            a.0.on_batch(rows(&[("a", 0, 1), ("a", 18, 2), ("a", 9, 3)]), &mut ctx)
                .unwrap()
        {
            out.extend(s.on_batch(p, &mut ctx).unwrap());
        }
        out.extend(s.on_bound(Millis::MAX, &mut ctx).unwrap());
        assert_eq!(out_rows(&out), vec![row(0, 28, false, "a", 3, 27, 128)]);
    }

    /// An assign operator whose event time is V (milliseconds), not ROWTIME.
    struct WindowAssignOpForV(crate::operators::window_assign::WindowAssignOp);
    impl WindowAssignOpForV {
        fn new(gap: i64, lateness: i64) -> Self {
            WindowAssignOpForV(crate::operators::window_assign::WindowAssignOp::new(
                WindowKind::Session { gap },
                1,
                vec![0, 1],
                lateness,
                true,
                crate::operators::window_assign::AssignMode::OnTime { late_to_errors: true },
                pair_schema(),
            ))
        }
    }

    #[test]
    fn early_fire_marks_partials_and_snapshots_restore() {
        let input: Vec<(&str, i64, i64)> = vec![("a", 1, 0), ("a", 2, 4), ("a", 3, 8), ("a", 4, 30)];
        let out = run(5, 0, Some(6), std::slice::from_ref(&input), Millis::MAX);
        assert_eq!(
            out,
            vec![
                row(0, 9, true, "a", 2, 3, 6),
                // the row at 8 extended the session to [0, 13); it fires at 12
                row(0, 13, true, "a", 3, 6, 12),
                row(0, 13, false, "a", 3, 6, 13),
                // the session [30, 35) closes before the fire at 36
                row(30, 35, false, "a", 1, 4, 35),
            ]
        );
        // cut after the third row, restore, and finish: same rows after the cut
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let mut a = assign(WindowKind::Session { gap: 5 }, 0);
        let mut s = session_op(0, Some(6));
        let mut before = Vec::new();
        for p in a.on_batch(rows(&input[..3]), &mut ctx).unwrap() {
            before.extend(s.on_batch(p, &mut ctx).unwrap());
        }
        let mut restored = session_op(0, Some(6));
        restored.restore(&s.snapshot().unwrap().unwrap()).unwrap();
        let mut after = Vec::new();
        for p in a.on_batch(rows(&input[3..]), &mut ctx).unwrap() {
            after.extend(restored.on_batch(p, &mut ctx).unwrap());
        }
        after.extend(restored.on_bound(Millis::MAX, &mut ctx).unwrap());
        before.extend(after);
        assert_eq!(out_rows(&before), out);
    }
}
