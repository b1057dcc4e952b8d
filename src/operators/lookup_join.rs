//! Stream-to-table join: each stream row looks up the current contents of an
//! in-application reference table. INNER drops unmatched rows, LEFT pads them with
//! NULLs; the output row keeps the stream row's ROWTIME.
//!
//! The table is indexed once by its key columns (Arrow row format); a batch is probed
//! in one pass that builds `take` indices for both sides.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::eval::eval_isolating;
use super::{OpContext, Operator};
use crate::error::Result;

/// The reference table, indexed by its join key.
pub struct IndexedTable {
    pub batch: RecordBatch,
    /// Key in Arrow's row format → table rows; probed by byte slice, no allocation.
    index: HashMap<Box<[u8]>, Vec<u32>>,
    key_types: Vec<DataType>,
}

impl IndexedTable {
    /// Indexes `batch` by the values of `keys` (expressions over the table's columns).
    /// Rows with a NULL key never match (SQL equality).
    pub fn new(batch: RecordBatch, keys: &[Arc<dyn PhysicalExpr>]) -> Result<Self> {
        let n = batch.num_rows();
        let key_arrays = keys
            .iter()
            .map(|k| k.evaluate(&batch)?.into_array(n))
            .collect::<Result<Vec<_>, _>>()?;
        let key_types: Vec<DataType> = key_arrays.iter().map(|a| a.data_type().clone()).collect();
        let converter = RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())?;
        let rows = converter.convert_columns(&key_arrays)?;
        let mut index: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for i in 0..n {
            if key_arrays.iter().any(|a| a.is_null(i)) {
                continue;
            }
            index.entry(rows.row(i).as_ref().into()).or_default().push(i as u32);
        }
        Ok(IndexedTable {
            batch,
            index,
            key_types,
        })
    }
}

pub struct LookupJoinOp {
    table: Arc<IndexedTable>,
    /// Key expressions over the stream side, in the order of the table's keys.
    probe_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// How many leading columns of a stream batch are the stream side's logical columns.
    stream_columns: usize,
    left_outer: bool,
    converter: RowConverter,
    /// Stream columns, table columns, ROWTIME.
    output_schema: SchemaRef,
}

impl LookupJoinOp {
    pub fn new(
        table: Arc<IndexedTable>,
        probe_keys: Vec<Arc<dyn PhysicalExpr>>,
        stream_columns: usize,
        left_outer: bool,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let converter = RowConverter::new(table.key_types.iter().cloned().map(SortField::new).collect())?;
        Ok(LookupJoinOp {
            table,
            probe_keys,
            stream_columns,
            left_outer,
            converter,
            output_schema,
        })
    }
}

impl Operator for LookupJoinOp {
    fn name(&self) -> &'static str {
        "LookupJoin"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let probe_keys = &self.probe_keys;
        let key_types = &self.table.key_types;
        let (kept, keys) = eval_isolating(&batch, ctx, |b| {
            let n = b.num_rows();
            probe_keys
                .iter()
                .zip(key_types)
                .map(|(k, t)| {
                    let a = k.evaluate(b)?.into_array(n)?;
                    if a.data_type() == t { Ok(a) } else { Ok(cast(&a, t)?) }
                })
                .collect::<Result<Vec<ArrayRef>, _>>()
        })?;
        let rows = self.converter.convert_columns(&keys)?;
        let mut stream_idx: Vec<u32> = Vec::with_capacity(kept.num_rows());
        let mut table_idx: Vec<Option<u32>> = Vec::with_capacity(kept.num_rows());
        for i in 0..kept.num_rows() {
            let matches = if keys.iter().any(|k| k.is_null(i)) {
                None
            } else {
                self.table.index.get(rows.row(i).as_ref())
            };
            match matches {
                Some(m) => {
                    for &j in m {
                        stream_idx.push(i as u32);
                        table_idx.push(Some(j));
                    }
                }
                None if self.left_outer => {
                    stream_idx.push(i as u32);
                    table_idx.push(None);
                }
                None => {}
            }
        }
        if stream_idx.is_empty() {
            return Ok(vec![]);
        }
        let stream_idx = UInt32Array::from(stream_idx);
        let table_idx = UInt32Array::from(table_idx);
        let mut columns = Vec::with_capacity(self.output_schema.fields().len());
        for c in kept.columns().iter().take(self.stream_columns) {
            columns.push(take(c, &stream_idx, None)?);
        }
        for c in self.table.batch.columns() {
            columns.push(take(c, &table_idx, None)?);
        }
        columns.push(take(kept.column(kept.num_columns() - 1), &stream_idx, None)?);
        Ok(vec![RecordBatch::try_new(Arc::clone(&self.output_schema), columns)?])
    }
}
