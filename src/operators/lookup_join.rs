//! Stream-to-table join: each stream row looks up the current contents of an
//! in-application reference table. INNER drops unmatched rows, LEFT pads them with
//! NULLs; the output row keeps the stream row's ROWTIME.
//!
//! The table is indexed by its key columns (Arrow row format); a batch is probed in one
//! pass that builds `take` indices for both sides. The rows come from the table's shared
//! holder ([`ReferenceData`]): before each batch the operator checks its version and,
//! when a refresh published a new one, indexes that one with its own key expressions.
//! A batch is therefore joined with one whole version of the table, and a refresh takes
//! effect between batches.

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
use crate::planner::reference::ReferenceData;

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
    /// The table's shared holder, refreshed while the application runs.
    source: Arc<ReferenceData>,
    /// Key expressions over the table's columns.
    build_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The version of `source` that `table` indexes.
    version: u64,
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
    /// Joins with the current version of `source`, indexed by `build_keys`; the version
    /// at hand when the operator is built must index (the planner fails otherwise).
    pub fn new(
        source: Arc<ReferenceData>,
        build_keys: Vec<Arc<dyn PhysicalExpr>>,
        probe_keys: Vec<Arc<dyn PhysicalExpr>>,
        stream_columns: usize,
        left_outer: bool,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let current = source.current();
        let table = Arc::new(IndexedTable::new(current.batch.clone(), &build_keys)?);
        let converter = RowConverter::new(table.key_types.iter().cloned().map(SortField::new).collect())?;
        Ok(LookupJoinOp {
            source,
            build_keys,
            version: current.version,
            table,
            probe_keys,
            stream_columns,
            left_outer,
            converter,
            output_schema,
        })
    }

    /// Indexes the table's newest version if a refresh published one. A version that
    /// cannot be indexed is skipped with a warning (the joins keep the one they have).
    fn catch_up(&mut self) -> Result<()> {
        if self.source.version() == self.version {
            return Ok(());
        }
        let current = self.source.current();
        if current.version == self.version {
            return Ok(());
        }
        match IndexedTable::new(current.batch.clone(), &self.build_keys) {
            Ok(table) => {
                if table.key_types != self.table.key_types {
                    self.converter = RowConverter::new(table.key_types.iter().cloned().map(SortField::new).collect())?;
                }
                self.table = Arc::new(table);
            }
            Err(e) => tracing::warn!(
                table = %self.source.table(),
                version = current.version,
                "the refreshed reference table cannot be indexed, joins keep version {}: {e}",
                self.version
            ),
        }
        self.version = current.version;
        Ok(())
    }
}

impl Operator for LookupJoinOp {
    fn name(&self) -> &'static str {
        "LookupJoin"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.catch_up()?;
        let probe_keys = &self.probe_keys;
        let key_types = &self.table.key_types;
        let Some((kept, keys)) = eval_isolating(&batch, ctx, |b| {
            let n = b.num_rows();
            probe_keys
                .iter()
                .zip(key_types)
                .map(|(k, t)| {
                    let a = k.evaluate(b)?.into_array(n)?;
                    if a.data_type() == t { Ok(a) } else { Ok(cast(&a, t)?) }
                })
                .collect::<Result<Vec<ArrayRef>, _>>()
        })?
        else {
            return Ok(vec![]);
        };
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::app::{RecordColumn, RecordFormat, RecordSchema, ReferenceLocation, ReferenceSpec};
    use crate::types::{ColumnDef, ROWTIME, SqlType, TIMESTAMP_TYPE};

    fn table(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn spec() -> ReferenceSpec {
        ReferenceSpec {
            table: "T".into(),
            schema: RecordSchema {
                columns: ["K", "V"]
                    .iter()
                    .map(|n| RecordColumn {
                        column: ColumnDef::new(*n, SqlType::BigInt),
                        mapping: None,
                    })
                    .collect(),
                format: RecordFormat::Csv {
                    row_delimiter: "\n".into(),
                    column_delimiter: ",".into(),
                },
            },
            location: ReferenceLocation::File("unused".into()),
            skip_header_lines: 0,
            refresh_interval: None,
        }
    }

    /// Stream rows (S, ROWTIME) joined: the (S, K, V) of each output row.
    fn probe(op: &mut LookupJoinOp, keys: &[&str]) -> Vec<(String, Option<String>, Option<i64>)> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("S", DataType::Utf8, true),
            Field::new(ROWTIME, TIMESTAMP_TYPE, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(TimestampMillisecondArray::from(vec![0; keys.len()])),
            ],
        )
        .unwrap();
        let mut errors = Vec::new();
        let mut ctx = OpContext {
            pump: "P",
            errors: &mut errors,
        };
        let out = op.on_batch(batch, &mut ctx).unwrap();
        let mut rows = Vec::new();
        for b in out {
            let s = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let k = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let v = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                rows.push((
                    s.value(i).to_string(),
                    k.is_valid(i).then(|| k.value(i).to_string()),
                    v.is_valid(i).then(|| v.value(i)),
                ));
            }
        }
        rows
    }

    #[test]
    fn a_refreshed_table_is_reindexed_before_the_next_batch() {
        let data = Arc::new(ReferenceData::new(spec(), table(&[("a", 1), ("b", 1)])));
        let output = Arc::new(Schema::new(vec![
            Field::new("S", DataType::Utf8, true),
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new(ROWTIME, TIMESTAMP_TYPE, false),
        ]));
        let mut op = LookupJoinOp::new(
            Arc::clone(&data),
            vec![Arc::new(Column::new("K", 0))],
            vec![Arc::new(Column::new("S", 0))],
            1,
            true,
            output,
        )
        .unwrap();
        let row = |s: &str, v: Option<i64>| (s.to_string(), v.map(|_| s.to_string()), v);
        assert_eq!(
            probe(&mut op, &["a", "b", "c"]),
            vec![row("a", Some(1)), row("b", Some(1)), row("c", None)]
        );
        // New values, `b` gone, `c` added.
        data.replace(table(&[("a", 2), ("c", 2)])).unwrap();
        assert_eq!(
            probe(&mut op, &["a", "b", "c"]),
            vec![row("a", Some(2)), row("b", None), row("c", Some(2))]
        );
        assert_eq!(op.version, 2);
    }
}
