//! Vectorised evaluation that still isolates bad rows.
//!
//! Expressions run on whole batches. Only when a batch fails (a division by zero, an
//! invalid argument) is it re-evaluated row by row to find the failing rows, which go
//! to `error_stream`; the other rows are evaluated again as one batch. The happy path
//! never pays for the isolation.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::error::DataFusionError;

use super::{OpContext, rowtime_column};
use crate::error::{ErrorRow, Result};

/// Runs `f` on `batch`; on failure, drops the rows on which `f` fails (recording one
/// error row each) and runs `f` on the rest. Returns the rows kept and f's result on
/// them, or None when no row is left and `f` fails even on none (an expression that
/// fails whatever the rows, such as `CAST('abc' AS INTEGER)`: every row is an error row,
/// and the application goes on).
pub fn eval_isolating<R>(
    batch: &RecordBatch,
    ctx: &mut OpContext,
    f: impl Fn(&RecordBatch) -> Result<R, DataFusionError>,
) -> Result<Option<(RecordBatch, R)>> {
    let kept = match f(batch) {
        Ok(r) => return Ok(Some((batch.clone(), r))),
        Err(first) if batch.num_rows() <= 1 => {
            if batch.num_rows() == 1 {
                ctx.errors.push(error_row(batch, 0, &first, ctx.pump));
            }
            batch.slice(0, 0)
        }
        Err(_) => {
            let mut good = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let row = batch.slice(i, 1);
                match f(&row) {
                    Ok(_) => good.push(i as u32),
                    Err(e) => ctx.errors.push(error_row(batch, i, &e, ctx.pump)),
                }
            }
            take_record_batch(batch, &UInt32Array::from(good))?
        }
    };
    match f(&kept) {
        Ok(r) => Ok(Some((kept, r))),
        Err(_) if kept.num_rows() == 0 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The `error_stream` row for row `i` of `batch` failing with `e`.
pub fn error_row(batch: &RecordBatch, i: usize, e: &DataFusionError, pump: &str) -> ErrorRow {
    let message = e.to_string();
    let lower = message.to_lowercase();
    let name = if lower.contains("by zero") {
        "DivideByZero"
    } else if lower.contains("cast") || lower.contains("overflow") {
        "ConversionError"
    } else {
        "ExpressionError"
    };
    row_error(name, message, batch, i, pump)
}

/// The `error_stream` row for row `i` of `batch` (ROWTIME last), which failed in the
/// application: `DATA_ROW` is the row rendered as a JSON object with its ROWTIME,
/// hex-encoded like a record (`ErrorRow::for_record`). `pump` is the pump, or the input
/// stream whose row it was.
pub fn row_error(name: &str, message: String, batch: &RecordBatch, i: usize, pump: &str) -> ErrorRow {
    let row = batch.slice(i, 1);
    let mut rendered = Vec::new();
    let _ = crate::connectors::formats::encode::encode_json_lines(&row, true, &mut rendered);
    while rendered.last() == Some(&b'\n') {
        rendered.pop();
    }
    ErrorRow::for_record(name, message, &rendered, rowtime_column(batch).value(i), pump)
}

/// Appends the ROWTIME column of `input` to `columns` under `schema`.
pub fn with_rowtime(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    mut columns: Vec<datafusion::arrow::array::ArrayRef>,
    input: &RecordBatch,
) -> Result<RecordBatch> {
    columns.push(Arc::clone(input.column(input.num_columns() - 1)));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// A batch of `schema` from columns whose types may differ from it only in ways a cast
/// settles (accumulators and scalar conversions may pick a wider or equivalent type).
pub fn conform(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    columns: Vec<datafusion::arrow::array::ArrayRef>,
) -> Result<RecordBatch> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                datafusion::arrow::compute::cast(&c, f.data_type()).map_err(crate::SluiceError::from)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// A failed row's DATA_ROW is the row as JSON with its ROWTIME, hex-encoded like a record.
    #[test]
    fn a_row_error_renders_the_row_with_its_rowtime_in_hex() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("A", DataType::Int64, true),
            Field::new("ROWTIME", crate::types::TIMESTAMP_TYPE, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000])),
            ],
        )
        .unwrap();
        let row = row_error("LateRow", "late".into(), &batch, 1, "P");
        let bytes: Vec<u8> = (0..row.data_row.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&row.data_row[i..i + 2], 16).unwrap())
            .collect();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["A"], 2);
        assert_eq!(json["ROWTIME"], "1970-01-01 00:00:02.000");
        assert_eq!((row.data_rowtime, row.pump_name.as_deref()), (2_000, Some("P")));
    }
}
