//! The INSERT of a pump: maps the query's columns by position onto the target stream's
//! columns (or the listed ones; the rest are NULL) and converts them to the declared
//! types. Strings longer than a VARCHAR(n) target are truncated silently (A9).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use datafusion::arrow::compute::kernels::substring::substring_by_char;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;

use super::eval::eval_isolating;
use super::{OpContext, Operator};
use crate::error::Result;

pub struct InsertOp {
    /// Target stream schema: declared columns, then ROWTIME.
    target: SchemaRef,
    /// For each declared target column, the query column that fills it.
    sources: Vec<Option<usize>>,
    /// For each declared target column, the VARCHAR/CHAR length to truncate to.
    max_chars: Vec<Option<usize>>,
}

impl InsertOp {
    pub fn new(target: SchemaRef, sources: Vec<Option<usize>>, max_chars: Vec<Option<usize>>) -> Self {
        InsertOp {
            target,
            sources,
            max_chars,
        }
    }
}

/// Timestamps as text in the form `CAST(ts AS VARCHAR)` gives (A12).
fn timestamp_texts(array: &ArrayRef) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::datatypes::TimestampMillisecondType;
    let ms = datafusion::arrow::compute::cast(array, &crate::types::TIMESTAMP_TYPE)?;
    let texts: datafusion::arrow::array::StringArray = ms
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .map(|v| v.and_then(crate::functions::cast_char::timestamp_text))
        .collect();
    Ok(Arc::new(texts))
}

fn truncate(array: ArrayRef, max: usize) -> Result<ArrayRef> {
    let strings = array.as_string::<i32>();
    let longest = strings
        .offsets()
        .windows(2)
        .map(|w| (w[1] - w[0]) as usize)
        .max()
        .unwrap_or(0);
    if longest <= max {
        return Ok(array); // a string of at most `max` bytes has at most `max` chars
    }
    Ok(Arc::new(substring_by_char(strings, 0, Some(max as u64))?))
}

impl Operator for InsertOp {
    fn name(&self) -> &'static str {
        "Insert"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let options = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let fields = self.target.fields().clone();
        let sources = &self.sources;
        let Some((kept, columns)) = eval_isolating(&batch, ctx, |b| {
            let n = b.num_rows();
            let mut columns = Vec::with_capacity(fields.len());
            for (field, source) in fields.iter().zip(sources) {
                columns.push(match source {
                    Some(i) if b.column(*i).data_type() == field.data_type() => Arc::clone(b.column(*i)),
                    // A TIMESTAMP into a character column reads as CAST writes it (A12).
                    Some(i)
                        if matches!(b.column(*i).data_type(), DataType::Timestamp(_, _))
                            && *field.data_type() == DataType::Utf8 =>
                    {
                        timestamp_texts(b.column(*i))?
                    }
                    Some(i) => cast_with_options(b.column(*i), field.data_type(), &options)?,
                    None => new_null_array(field.data_type(), n),
                });
            }
            Ok(columns)
        })?
        else {
            return Ok(vec![]);
        };
        if kept.num_rows() == 0 {
            return Ok(vec![]);
        }
        let mut columns = columns;
        for (i, max) in self.max_chars.iter().enumerate() {
            if let (Some(max), DataType::Utf8) = (max, columns[i].data_type()) {
                columns[i] = truncate(Arc::clone(&columns[i]), *max)?;
            }
        }
        columns.push(Arc::clone(kept.column(kept.num_columns() - 1)));
        Ok(vec![RecordBatch::try_new(Arc::clone(&self.target), columns)?])
    }
}
