//! Sliding windows: `agg(x) OVER (PARTITION BY k RANGE INTERVAL n PRECEDING | ROWS n
//! PRECEDING)`. One output row per input row, with the input row's ROWTIME, computed
//! over the window ending at that row: RANGE holds the partition's rows with ROWTIME in
//! [t − n, t] (A2, inclusive), ROWS the row and up to n before it (A4). Rows sharing a
//! ROWTIME are processed in arrival order: a row never sees the peers after it.
//!
//! Each partition keeps a DataFusion sliding accumulator (add with `update_batch`,
//! remove with `retract_batch`): SUM, COUNT and AVG retract in constant time, MIN and
//! MAX use DataFusion's moving min/max structure, so the cost per row does not grow with
//! the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use super::eval::eval_isolating;
use super::{OpContext, Operator, rowtime_column};
use crate::error::{Result, SluiceError};
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

pub struct WindowAggregate {
    pub aggregate: Arc<AggregateFunctionExpr>,
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub frame: Frame,
}

struct Partition {
    accumulator: Box<dyn Accumulator>,
    /// The rows in the window: ROWTIME and the aggregate's argument values (1-row slices).
    rows: VecDeque<(Millis, Vec<ArrayRef>)>,
}

struct WindowState {
    spec: WindowAggregate,
    converter: RowConverter,
    partitions: HashMap<Box<[u8]>, Partition>,
}

impl WindowState {
    fn new_accumulator(&self) -> Result<Box<dyn Accumulator>> {
        Ok(if self.spec.frame.bounded() {
            self.spec.aggregate.create_sliding_accumulator()?
        } else {
            self.spec.aggregate.create_accumulator()?
        })
    }
}

pub struct SlidingWindowOp {
    windows: Vec<WindowState>,
    /// How many leading columns of an input batch are the input's logical columns.
    input_columns: usize,
    /// Input columns, one column per window aggregate, ROWTIME.
    output_schema: SchemaRef,
}

impl SlidingWindowOp {
    pub fn new(
        windows: Vec<(WindowAggregate, Vec<DataType>)>,
        input_columns: usize,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let mut states = Vec::with_capacity(windows.len());
        for (spec, key_types) in windows {
            let state = WindowState {
                converter: RowConverter::new(key_types.into_iter().map(SortField::new).collect())?,
                spec,
                partitions: HashMap::new(),
            };
            let probe = state.new_accumulator()?;
            if state.spec.frame.bounded() && !probe.supports_retract_batch() {
                return Err(SluiceError::Unsupported {
                    line: 0,
                    column: 0,
                    feature: format!("{} over a bounded sliding window", state.spec.aggregate.fun().name()),
                });
            }
            states.push(state);
        }
        Ok(SlidingWindowOp {
            windows: states,
            input_columns,
            output_schema,
        })
    }
}

fn window_values(
    state: &mut WindowState,
    batch: &RecordBatch,
    keys: &[ArrayRef],
    args: &[ArrayRef],
) -> Result<ArrayRef> {
    let rowtimes = rowtime_column(batch);
    // Without PARTITION BY the whole stream is one partition (the empty key).
    let rows = if keys.is_empty() {
        None
    } else {
        Some(state.converter.convert_columns(keys)?)
    };
    let mut values = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let t = rowtimes.value(i);
        let key: &[u8] = match &rows {
            Some(rows) => rows.row(i).data(),
            None => &[],
        };
        if !state.partitions.contains_key(key) {
            let accumulator = state.new_accumulator()?;
            state.partitions.insert(
                key.into(),
                Partition {
                    accumulator,
                    rows: VecDeque::new(),
                },
            );
        }
        let partition = state.partitions.get_mut(key).expect("inserted above");
        let row_args: Vec<ArrayRef> = args.iter().map(|a| a.slice(i, 1)).collect();
        partition.accumulator.update_batch(&row_args)?;
        if state.spec.frame.bounded() {
            partition.rows.push_back((t, row_args));
            loop {
                let expired = match (state.spec.frame, partition.rows.front()) {
                    (Frame::Range(Some(n)), Some((t0, _))) => *t0 < t.saturating_sub(n),
                    (Frame::Rows(Some(n)), Some(_)) => partition.rows.len() as u64 > n + 1,
                    _ => false,
                };
                if !expired {
                    break;
                }
                let (_, old) = partition.rows.pop_front().expect("front checked");
                partition.accumulator.retract_batch(&old)?;
            }
        }
        values.push(partition.accumulator.evaluate()?);
    }
    Ok(ScalarValue::iter_to_array(values)?)
}

impl Operator for SlidingWindowOp {
    fn name(&self) -> &'static str {
        "SlidingWindow"
    }

    /// Per window: for a bounded frame, the rows in it (partition key, ROWTIME,
    /// argument values), from which the accumulators are rebuilt; for an unbounded
    /// frame, each partition's accumulator state.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let mut sections = Vec::with_capacity(self.windows.len());
        for w in &mut self.windows {
            let mut keys: Vec<&[u8]> = Vec::new();
            let mut times = Vec::new();
            let mut columns: Vec<Vec<ArrayRef>> = Vec::new();
            let bounded = w.spec.frame.bounded();
            let mut states: Vec<Vec<ScalarValue>> = Vec::new();
            for (key, p) in w.partitions.iter_mut() {
                if bounded {
                    for (t, args) in &p.rows {
                        keys.push(key);
                        times.push(*t);
                        columns.push(args.clone());
                    }
                } else {
                    keys.push(key);
                    states.push(p.accumulator.state()?);
                }
            }
            let mut section: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from(keys))];
            if bounded {
                section.push(Arc::new(Int64Array::from(times)));
                // with no rows there is nothing to rebuild from: keys and times suffice
                if !columns.is_empty() {
                    for a in 0..columns[0].len() {
                        let parts: Vec<&dyn Array> = columns.iter().map(|c| c[a].as_ref()).collect();
                        section.push(datafusion::arrow::compute::concat(&parts)?);
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

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let sections = crate::state::snapshot::decode(state)?;
        if sections.len() != self.windows.len() {
            return Err(SluiceError::runtime("corrupt sliding-window state"));
        }
        for (w, section) in self.windows.iter_mut().zip(sections) {
            let Some(keys) = section.first() else { continue };
            let keys = keys.as_binary::<i32>();
            if w.spec.frame.bounded() {
                let times = section[1].as_primitive::<Int64Type>();
                for i in 0..keys.len() {
                    let key = keys.value(i);
                    if !w.partitions.contains_key(key) {
                        let accumulator = w.new_accumulator()?;
                        w.partitions.insert(
                            key.into(),
                            Partition {
                                accumulator,
                                rows: VecDeque::new(),
                            },
                        );
                    }
                    let p = w.partitions.get_mut(key).expect("inserted above");
                    let args: Vec<ArrayRef> = section[2..].iter().map(|a| a.slice(i, 1)).collect();
                    p.accumulator.update_batch(&args)?;
                    p.rows.push_back((times.value(i), args));
                }
            } else {
                for i in 0..keys.len() {
                    let mut accumulator = w.new_accumulator()?;
                    let state: Vec<ArrayRef> = section[1..].iter().map(|a| a.slice(i, 1)).collect();
                    accumulator.merge_batch(&state)?;
                    w.partitions.insert(
                        keys.value(i).into(),
                        Partition {
                            accumulator,
                            rows: VecDeque::new(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(vec![]);
        }
        let windows = &self.windows;
        // Evaluate every key and argument first (vectorised); rows that fail are dropped
        // before any window sees them.
        let (kept, evaluated) = eval_isolating(&batch, ctx, |b| {
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
                    let args = w
                        .spec
                        .aggregate
                        .expressions()
                        .iter()
                        .map(|e| e.evaluate(b)?.into_array(n))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((keys, args))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        if kept.num_rows() == 0 {
            return Ok(vec![]);
        }
        let mut columns: Vec<ArrayRef> = kept.columns()[..self.input_columns].to_vec();
        for (state, (keys, args)) in self.windows.iter_mut().zip(evaluated) {
            columns.push(window_values(state, &kept, &keys, &args)?);
        }
        columns.push(Arc::clone(kept.column(kept.num_columns() - 1)));
        Ok(vec![super::eval::conform(&self.output_schema, columns)?])
    }
}
