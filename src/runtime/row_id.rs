//! Deterministic row identities (`ROW_ID`) for exactly-once delivery.
//!
//! A row's identity is `<stream>:<rowtime>:<hash>:<n>`: the output stream's name, the
//! row's ROWTIME in epoch milliseconds, 16 hex digits of the MD5 of the row's declared
//! values (in Arrow's row format), and the occurrence number of identical rows at that
//! ROWTIME (0 for the first, 1 for the second identical row, ...). For example
//! `PER_KEY:1709280010000:3f9a0c1d2e4b5a69:0`.
//!
//! Why this shape:
//! - Two rows with the same identity are identical by construction (same stream, same
//!   ROWTIME, same values up to a 64-bit hash collision among rows of one ROWTIME).
//! - It does not depend on the order of distinct rows: a restored run may emit the
//!   groups of one window in another order (hash-table order is not kept across a
//!   restore), yet every row keeps its identity. Only identical rows are numbered, and
//!   they are interchangeable.
//! - It needs little state: the counts of the current ROWTIME only, because ROWTIME
//!   never decreases within a stream. The counts are checkpointed with the sink, so a
//!   replay after a restart continues the numbering where the checkpoint left it.
//! - MD5 of Arrow's row format, not a seeded in-memory hash: the value must be the same
//!   in every process that replays the stream.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringBuilder, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use md5::{Digest, Md5};

use crate::error::{Result, SluiceError};
use crate::operators::rowtime_column;
use crate::time::Millis;

/// The name of the identity column: the last field of a JSON object, the last CSV column.
pub const ROW_ID: &str = "ROW_ID";

/// Inserts `ROW_ID` before ROWTIME (which stays last, see ARCHITECTURE.md), so encoders
/// write it after the declared columns.
pub fn schema_with_row_id(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    let at = fields.len().saturating_sub(1);
    fields.insert(at, Arc::new(Field::new(ROW_ID, DataType::Utf8, false)));
    Arc::new(Schema::new(fields))
}

/// Numbers the rows of one output stream.
pub struct RowIdentity {
    stream: String,
    /// Built from the first batch's declared column types.
    converter: Option<RowConverter>,
    /// The ROWTIME `counts` are for.
    rowtime: Option<Millis>,
    /// Identical rows seen at `rowtime`, by value hash.
    counts: HashMap<u64, u64>,
}

impl RowIdentity {
    pub fn new(stream: &str) -> Self {
        RowIdentity {
            stream: stream.to_string(),
            converter: None,
            rowtime: None,
            counts: HashMap::new(),
        }
    }

    /// `batch` (declared columns, then ROWTIME) with `ROW_ID` inserted before ROWTIME.
    pub fn tag(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let declared = batch.num_columns() - 1;
        let columns: Vec<ArrayRef> = batch.columns()[..declared].to_vec();
        if self.converter.is_none() {
            let fields = columns.iter().map(|c| SortField::new(c.data_type().clone())).collect();
            self.converter = Some(RowConverter::new(fields)?);
        }
        let converter = self.converter.as_ref().expect("set above");
        // Row format over no columns is not allowed; every row of a stream without
        // declared columns has the same (empty) value.
        let rows = (declared > 0)
            .then(|| converter.convert_columns(&columns))
            .transpose()?;
        let rowtimes = rowtime_column(batch);
        let mut ids = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * (self.stream.len() + 40));
        for i in 0..batch.num_rows() {
            let rowtime = rowtimes.value(i);
            if self.rowtime != Some(rowtime) {
                self.rowtime = Some(rowtime);
                self.counts.clear();
            }
            let digest = match &rows {
                Some(rows) => Md5::digest(rows.row(i).as_ref()),
                None => Md5::digest(b""),
            };
            let hash = u64::from_be_bytes(digest[..8].try_into().expect("MD5 is 16 bytes"));
            let n = self.counts.entry(hash).or_insert(0);
            write!(ids, "{}:{rowtime}:{hash:016x}:{n}", self.stream).expect("writing to a string");
            ids.append_value("");
            *n += 1;
        }
        let mut arrays = columns;
        arrays.push(Arc::new(ids.finish()));
        arrays.push(Arc::clone(batch.column(declared)));
        Ok(RecordBatch::try_new(schema_with_row_id(batch.schema_ref()), arrays)?)
    }

    /// The counts of the current ROWTIME, for a checkpoint.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let rowtime: ArrayRef = Arc::new(Int64Array::from_iter_values(self.rowtime));
        let (hashes, counts): (Vec<u64>, Vec<u64>) = self.counts.iter().map(|(h, n)| (*h, *n)).unzip();
        crate::state::snapshot::encode(&[
            vec![rowtime],
            vec![Arc::new(UInt64Array::from(hashes)), Arc::new(UInt64Array::from(counts))],
        ])
    }

    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let corrupt = || SluiceError::runtime("corrupt row-identity state");
        let sections = crate::state::snapshot::decode(bytes)?;
        let [rowtime, counts] = sections.as_slice() else {
            return Err(corrupt());
        };
        let rowtime = rowtime
            .first()
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(corrupt)?;
        self.rowtime = (!rowtime.is_empty()).then(|| rowtime.value(0));
        let column = |i: usize| {
            counts
                .get(i)
                .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
                .ok_or_else(corrupt)
        };
        let (hashes, numbers) = (column(0)?, column(1)?);
        self.counts = hashes
            .values()
            .iter()
            .copied()
            .zip(numbers.values().iter().copied())
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, StringArray, TimestampMillisecondArray};

    fn batch(rows: &[(&str, i64, Millis)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new("ROWTIME", crate::types::TIMESTAMP_TYPE, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn ids(tagged: &RecordBatch) -> Vec<String> {
        assert_eq!(tagged.schema().field(2).name(), ROW_ID);
        assert_eq!(tagged.schema().field(3).name(), "ROWTIME");
        tagged
            .column(2)
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect()
    }

    /// The parts of an identity: stream, rowtime, hash, occurrence.
    fn parts(id: &str) -> (String, i64, String, u64) {
        let p: Vec<&str> = id.split(':').collect();
        assert_eq!(p.len(), 4, "{id}");
        assert_eq!(p[2].len(), 16, "{id}");
        (p[0].into(), p[1].parse().unwrap(), p[2].into(), p[3].parse().unwrap())
    }

    #[test]
    fn identical_rows_at_one_rowtime_are_numbered_and_a_new_rowtime_resets_the_count() {
        let mut id = RowIdentity::new("OUT");
        let tagged = id
            .tag(&batch(&[
                ("a", 1, 10),
                ("a", 1, 10),
                ("b", 1, 10),
                ("a", 1, 10),
                ("a", 1, 20),
            ]))
            .unwrap();
        let got: Vec<_> = ids(&tagged).iter().map(|s| parts(s)).collect();
        assert_eq!(got[0].0, "OUT");
        assert_eq!((got[0].1, got[0].3), (10, 0));
        assert_eq!((got[1].1, got[1].3), (10, 1));
        assert_eq!((got[2].1, got[2].3), (10, 0));
        assert_eq!((got[3].1, got[3].3), (10, 2));
        assert_eq!((got[4].1, got[4].3), (20, 0));
        // same values, same hash; other values, another hash
        assert_eq!(got[0].2, got[1].2);
        assert_eq!(got[0].2, got[4].2);
        assert_ne!(got[0].2, got[2].2);
        // the values and ROWTIME are passed through unchanged
        let input = batch(&[("a", 1, 10), ("a", 1, 10), ("b", 1, 10), ("a", 1, 10), ("a", 1, 20)]);
        assert_eq!(tagged.column(0), input.column(0));
        assert_eq!(tagged.column(1), input.column(1));
        assert_eq!(tagged.column(3), input.column(2));
    }

    #[test]
    fn identities_do_not_depend_on_batching_or_the_order_of_distinct_rows() {
        let rows = [("a", 1, 10), ("b", 2, 10), ("a", 1, 10), ("c", 3, 11), ("c", 3, 11)];
        let mut whole = RowIdentity::new("OUT");
        let mut expected = ids(&whole.tag(&batch(&rows)).unwrap());
        // another process, other batches, distinct rows of one ROWTIME swapped
        let mut split = RowIdentity::new("OUT");
        let mut got = ids(&split.tag(&batch(&[rows[1], rows[0]])).unwrap());
        got.extend(ids(&split.tag(&batch(&rows[2..3])).unwrap()));
        got.extend(ids(&split.tag(&batch(&rows[3..])).unwrap()));
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
        // the stream name is part of the identity
        let other = ids(&RowIdentity::new("OTHER").tag(&batch(&rows[..1])).unwrap());
        assert!(other[0].starts_with("OTHER:10:"));
        assert_ne!(other[0], expected[0]);
    }

    #[test]
    fn a_restored_identity_continues_the_numbering() {
        let mut first = RowIdentity::new("OUT");
        let before = ids(&first.tag(&batch(&[("a", 1, 10), ("a", 1, 10)])).unwrap());
        let state = first.snapshot().unwrap();
        let mut restored = RowIdentity::new("OUT");
        restored.restore(&state).unwrap();
        let after = ids(&restored.tag(&batch(&[("a", 1, 10), ("a", 1, 11)])).unwrap());
        let uninterrupted = ids(&RowIdentity::new("OUT")
            .tag(&batch(&[("a", 1, 10), ("a", 1, 10), ("a", 1, 10), ("a", 1, 11)]))
            .unwrap());
        assert_eq!([before, after].concat(), uninterrupted);
        assert!(uninterrupted[2].ends_with(":2"));
        // an empty identity (before any row) round-trips too
        let mut empty = RowIdentity::new("OUT");
        empty.restore(&RowIdentity::new("OUT").snapshot().unwrap()).unwrap();
        assert!(empty.rowtime.is_none() && empty.counts.is_empty());
        assert!(empty.restore(&state[..state.len() - 2]).is_err());
    }

    #[test]
    fn row_id_is_the_last_json_field_and_the_last_csv_column() {
        use crate::connectors::formats::encode::{encode_csv, encode_json_lines};
        let tagged = RowIdentity::new("OUT").tag(&batch(&[("a", 1, 10)])).unwrap();
        let (mut json, mut csv) = (Vec::new(), Vec::new());
        encode_json_lines(&tagged, false, &mut json).unwrap();
        encode_csv(&tagged, ",", false, &mut csv).unwrap();
        let id = ids(&tagged).remove(0);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!("{{\"K\":\"a\",\"V\":1,\"ROW_ID\":\"{id}\"}}\n")
        );
        assert_eq!(String::from_utf8(csv).unwrap(), format!("a,1,{id}\n"));
    }

    #[test]
    fn the_hash_is_fixed_across_processes_and_builds() {
        // Pinned: a consumer compares identities written by different sluice processes.
        let id = ids(&RowIdentity::new("OUT").tag(&batch(&[("a", 1, 10)])).unwrap());
        assert_eq!(id[0], "OUT:10:97ff9c80740e7de1:0");
        // NULL is not the empty string
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("ROWTIME", crate::types::TIMESTAMP_TYPE, false),
        ]));
        let with_null = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![None, Some("")])),
                Arc::new(TimestampMillisecondArray::from(vec![5, 5])),
            ],
        )
        .unwrap();
        let tagged = RowIdentity::new("OUT").tag(&with_null).unwrap();
        let got: Vec<String> = tagged
            .column(1)
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect();
        assert_ne!(parts(&got[0]).2, parts(&got[1]).2);
        assert_eq!(parts(&got[1]).3, 0);
    }
}
