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
    let row = batch.slice(i, 1);
    let mut rendered = Vec::new();
    let _ = crate::connectors::formats::encode::encode_json_lines(&row, true, &mut rendered);
    while rendered.last() == Some(&b'\n') {
        rendered.pop();
    }
    ErrorRow {
        error_time: crate::time::now_millis(),
        level: "ERROR",
        name: name.to_string(),
        message,
        data_rowtime: rowtime_column(batch).value(i),
        data_row: ErrorRow::hex(&rendered),
        pump_name: Some(pump.to_string()),
    }
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
