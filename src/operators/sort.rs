//! Streaming ORDER BY (spec §1.2, decision A7).
//!
//! KDA allows `ORDER BY lead, k2 [DESC], ...` on a stream only when the leading key is a
//! monotonic expression of time (ROWTIME, `FLOOR(s.ROWTIME TO SECOND)`, a STEP bucket).
//! Rows are held while the leading key keeps its value; when it changes (a row or a
//! rowtime bound past the group), the group is emitted sorted by the remaining keys.
//! Each emitted row is stamped with the leading key's value as its ROWTIME (A7), so the
//! output stays non-decreasing in ROWTIME. Until a group is emitted the operator may
//! still produce rows at that group's time, which is why it reports an
//! [`Operator::emit_floor`]: the pump must not announce a bound past it.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::physical_expr::PhysicalExpr;

use super::{OpContext, Operator};
use crate::error::{ErrorRow, Result};
use crate::time::Millis;

/// One sort key after the leading one.
pub struct SortKey {
    pub expr: Arc<dyn PhysicalExpr>,
    pub options: SortOptions,
}

pub struct StreamingSortOp {
    /// The monotonic leading key, evaluated as a millisecond timestamp.
    leading: Arc<dyn PhysicalExpr>,
    /// The expression a rowtime bound is probed with: the least leading key any later
    /// row can have, at an instant. The leading key itself when it reads ROWTIME alone.
    bound_key: Arc<dyn PhysicalExpr>,
    /// Input columns `bound_key` reads that carry ROWTIME; None when it reads anything
    /// else, in which case only rows (not bounds) can close a group.
    probe_columns: Option<Vec<usize>>,
    rest: Vec<SortKey>,
    schema: SchemaRef,
    /// The leading key of the rows held, and the rows.
    group: Option<Millis>,
    held: Vec<RecordBatch>,
}

impl StreamingSortOp {
    pub fn new(leading: Arc<dyn PhysicalExpr>, rest: Vec<SortKey>, schema: SchemaRef) -> Self {
        let probe_columns = super::time_probe::reads_only_rowtime(&leading, &schema)
            .then(|| super::time_probe::rowtime_columns(&leading, &schema));
        StreamingSortOp {
            bound_key: Arc::clone(&leading),
            leading,
            probe_columns,
            rest,
            schema,
            group: None,
            held: Vec::new(),
        }
    }

    /// Probes rowtime bounds with `key`, a function of ROWTIME alone whose value at a
    /// bound no later row's leading key is below (e.g. the leading key traced through a
    /// tumbling GROUP BY below: its rows carry a bucket's key, and the bucket holding
    /// the bound is the one still open).
    pub fn with_bound_key(mut self, key: Arc<dyn PhysicalExpr>) -> Self {
        self.probe_columns = super::time_probe::reads_only_rowtime(&key, &self.schema)
            .then(|| super::time_probe::rowtime_columns(&key, &self.schema));
        self.bound_key = key;
        self
    }

    fn leading_keys(&self, batch: &RecordBatch) -> Result<TimestampMillisecondArray> {
        let keys = self.leading.evaluate(batch)?.into_array(batch.num_rows())?;
        as_millis(&keys)
    }

    /// The held group, sorted by the remaining keys and stamped with its leading key.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        let Some(stamp) = self.group.take() else {
            return Ok(vec![]);
        };
        let rows = concat_batches(&self.schema, &self.held)?;
        self.held.clear();
        if rows.num_rows() == 0 {
            return Ok(vec![]);
        }
        let sorted = if self.rest.is_empty() {
            rows
        } else {
            let mut columns = self
                .rest
                .iter()
                .map(|k| {
                    Ok(SortColumn {
                        values: k.expr.evaluate(&rows)?.into_array(rows.num_rows())?,
                        options: Some(k.options),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // Arrival order breaks ties, so equal rows keep the order they came in.
            columns.push(SortColumn {
                values: Arc::new(UInt32Array::from_iter_values(0..rows.num_rows() as u32)),
                options: None,
            });
            let order = lexsort_to_indices(&columns, None)?;
            take_record_batch(&rows, &order)?
        };
        let mut columns = sorted.columns().to_vec();
        let last = columns.len() - 1;
        columns[last] = Arc::new(TimestampMillisecondArray::from(vec![stamp; sorted.num_rows()]));
        Ok(vec![RecordBatch::try_new(Arc::clone(&self.schema), columns)?])
    }
}

fn as_millis(keys: &ArrayRef) -> Result<TimestampMillisecondArray> {
    let keys = match keys.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, None) => Arc::clone(keys),
        _ => cast(keys, &DataType::Timestamp(TimeUnit::Millisecond, None))?,
    };
    Ok(keys.as_primitive::<TimestampMillisecondType>().clone())
}

/// An `error_stream` row for a row the ORDER BY cannot place.
fn refused(batch: &RecordBatch, i: usize, why: String, ctx: &mut OpContext) {
    let e = datafusion::error::DataFusionError::Execution(why);
    let mut row: ErrorRow = super::eval::error_row(batch, i, &e, ctx.pump);
    row.name = "OrderByError".into();
    ctx.errors.push(row);
}

impl Operator for StreamingSortOp {
    fn name(&self) -> &'static str {
        "StreamingSort"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let keys = self.leading_keys(&batch)?;
        let mut out = Vec::new();
        // The key is monotonic, so a batch is a few runs of one key each: decide per run.
        let runs = datafusion::arrow::compute::partition(&[Arc::new(keys.clone()) as ArrayRef])?;
        for run in runs.ranges() {
            let why = if keys.is_null(run.start) {
                Some("the leading ORDER BY key is NULL".to_string())
            } else {
                let key = keys.value(run.start);
                match self.group {
                    Some(g) if key < g => Some(format!(
                        "the leading ORDER BY key went back in time ({} after {}); it must be monotonic",
                        crate::time::format_timestamp(key),
                        crate::time::format_timestamp(g)
                    )),
                    Some(g) if key > g => {
                        out.extend(self.emit()?);
                        self.group = Some(key);
                        None
                    }
                    Some(_) => None,
                    None => {
                        self.group = Some(key);
                        None
                    }
                }
            };
            match why {
                Some(why) => run.clone().for_each(|i| refused(&batch, i, why.clone(), ctx)),
                None => self.held.push(batch.slice(run.start, run.len())),
            }
        }
        Ok(out)
    }

    fn on_bound(&mut self, bound: Millis, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let Some(group) = self.group else {
            return Ok(vec![]);
        };
        if bound == Millis::MAX {
            return self.emit();
        }
        let Some(columns) = &self.probe_columns else {
            return Ok(vec![]);
        };
        // Every later row has ROWTIME ≥ bound, so its leading key is at least the key at
        // the bound (the key is monotonic): a larger key there closes the group.
        let at_bound = super::time_probe::evaluate_at(&self.bound_key, &self.schema, columns, &[bound])?;
        let at_bound = as_millis(&at_bound)?;
        if !at_bound.is_null(0) && at_bound.value(0) > group {
            return self.emit();
        }
        Ok(vec![])
    }

    fn emit_floor(&self) -> Option<Millis> {
        self.group
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let rows = concat_batches(&self.schema, &self.held)?;
        let group: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![self.group]));
        Ok(Some(crate::state::snapshot::encode(&[
            vec![group],
            rows.columns().to_vec(),
        ])?))
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        let [group, rows] = sections.as_slice() else {
            return Err(crate::SluiceError::runtime(
                "a streaming ORDER BY snapshot has two sections",
            ));
        };
        let group = as_millis(&group[0])?;
        self.group = (!group.is_null(0)).then(|| group.value(0));
        self.held = vec![RecordBatch::try_new(Arc::clone(&self.schema), rows.clone())?];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::Operator as BinaryOp;
    use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
    use datafusion::scalar::ScalarValue;

    use super::*;
    use crate::types::{ROWTIME, TIMESTAMP_TYPE};

    use crate::operators::test_input::{input_schema as schema, keyed_rows as batch};

    /// `ORDER BY <ROWTIME floored to the second>, V DESC`.
    fn operator() -> StreamingSortOp {
        let ms: Arc<dyn PhysicalExpr> =
            Arc::new(CastExpr::new(Arc::new(Column::new(ROWTIME, 2)), DataType::Int64, None));
        let second = Arc::new(Literal::new(ScalarValue::Int64(Some(1000))));
        let floored: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(ms, BinaryOp::Divide, second.clone())),
            BinaryOp::Multiply,
            second,
        ));
        let leading: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(floored, TIMESTAMP_TYPE, None));
        let rest = vec![SortKey {
            expr: Arc::new(Column::new("V", 1)),
            options: SortOptions {
                descending: true,
                nulls_first: false,
            },
        }];
        StreamingSortOp::new(leading, rest, schema())
    }

    fn rows(batches: &[RecordBatch]) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let k = b.column(0).as_string::<i32>();
            let v = b.column(1).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let t = super::super::rowtime_column(b);
            for i in 0..b.num_rows() {
                out.push((k.value(i).to_string(), v.value(i), t.value(i)));
            }
        }
        out
    }

    fn ctx(errors: &mut Vec<ErrorRow>) -> OpContext<'_> {
        OpContext { pump: "P", errors }
    }

    #[test]
    fn a_group_is_emitted_sorted_and_stamped_when_the_leading_key_changes() {
        let mut op = operator();
        let mut errors = Vec::new();
        let out = op
            .on_batch(
                batch(&[("a", 1, 1000), ("b", 3, 1200), ("c", 2, 1999)]),
                &mut ctx(&mut errors),
            )
            .unwrap();
        assert!(out.is_empty(), "the second is not over yet");
        assert_eq!(op.emit_floor(), Some(1000));
        let out = op
            .on_batch(batch(&[("d", 5, 2000), ("e", 9, 2500)]), &mut ctx(&mut errors))
            .unwrap();
        assert_eq!(
            rows(&out),
            vec![("b".into(), 3, 1000), ("c".into(), 2, 1000), ("a".into(), 1, 1000)]
        );
        assert_eq!(op.emit_floor(), Some(2000));
        // A bound inside the open second closes nothing; one at its end does.
        assert!(op.on_bound(2999, &mut ctx(&mut errors)).unwrap().is_empty());
        let out = op.on_bound(3000, &mut ctx(&mut errors)).unwrap();
        assert_eq!(rows(&out), vec![("e".into(), 9, 2000), ("d".into(), 5, 2000)]);
        assert_eq!(op.emit_floor(), None);
        assert!(errors.is_empty());
    }

    #[test]
    fn ties_keep_arrival_order_and_a_key_going_back_is_an_error_row() {
        let mut op = operator();
        let mut errors = Vec::new();
        op.on_batch(
            batch(&[("x", 1, 5000), ("y", 1, 5100), ("z", 1, 5200)]),
            &mut ctx(&mut errors),
        )
        .unwrap();
        // Not possible on a ROWTIME-ordered stream, but an upstream `AS ROWTIME` or a
        // user-declared MONOTONIC key can do it: the row is refused, not reordered.
        op.on_batch(batch(&[("late", 7, 4000)]), &mut ctx(&mut errors)).unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "OrderByError");
        let out = op.on_bound(Millis::MAX, &mut ctx(&mut errors)).unwrap();
        assert_eq!(
            rows(&out),
            vec![("x".into(), 1, 5000), ("y".into(), 1, 5000), ("z".into(), 1, 5000)]
        );
    }

    #[test]
    fn the_pump_announces_no_bound_past_a_held_group() {
        let mut pipeline = crate::operators::pipeline::Pipeline::new("P", vec![Box::new(operator())]);
        let mut errors = Vec::new();
        assert_eq!(pipeline.forward_bound(900), 900);
        pipeline
            .on_batch(batch(&[("a", 1, 1000), ("b", 2, 1500)]), &mut errors)
            .unwrap();
        // Time reached 1.8 s but the rows of second 1 will still come out at 1.0 s.
        assert!(pipeline.on_bound(1800, &mut errors).unwrap().is_empty());
        assert_eq!(pipeline.forward_bound(1800), 1000);
        assert_eq!(pipeline.on_bound(2000, &mut errors).unwrap().len(), 1);
        assert_eq!(pipeline.forward_bound(2000), 2000);
    }

    #[test]
    fn a_snapshot_restores_the_held_group() {
        let mut op = operator();
        let mut errors = Vec::new();
        op.on_batch(batch(&[("a", 1, 7000), ("b", 2, 7300)]), &mut ctx(&mut errors))
            .unwrap();
        let state = op.snapshot().unwrap().unwrap();
        let mut restored = operator();
        restored.restore(&state).unwrap();
        assert_eq!(restored.emit_floor(), Some(7000));
        let a = op.on_bound(Millis::MAX, &mut ctx(&mut errors)).unwrap();
        let b = restored.on_bound(Millis::MAX, &mut ctx(&mut errors)).unwrap();
        assert_eq!(rows(&a), rows(&b));
        assert_eq!(rows(&b), vec![("b".into(), 2, 7000), ("a".into(), 1, 7000)]);
    }
}
