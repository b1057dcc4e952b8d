//! Evaluating a time-based expression at instants that no row carries.
//!
//! A rowtime bound says "time reached T" without a row. Operators keyed by a monotonic
//! expression of ROWTIME (a tumbling bucket, a streaming ORDER BY's leading key) need
//! that expression's value at T to know whether the bound closes what they hold. They
//! build a probe batch: the ROWTIME columns the expression reads set to the instants,
//! every other column NULL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray, new_null_array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Result, SluiceError};
use crate::time::Millis;
use crate::types::ROWTIME;

/// The input columns `expr` reads that carry ROWTIME: the trailing ROWTIME column and
/// any column of the input named ROWTIME (a projection below may have selected it).
pub fn rowtime_columns(expr: &Arc<dyn PhysicalExpr>, input: &SchemaRef) -> Vec<usize> {
    let last = input.fields().len() - 1;
    datafusion::physical_expr::utils::collect_columns(expr)
        .iter()
        .map(|c| c.index())
        .filter(|&i| i == last || input.field(i).name() == ROWTIME)
        .collect()
}

/// Whether `expr` is a function of ROWTIME alone, so a probe gives its true value.
pub fn reads_only_rowtime(expr: &Arc<dyn PhysicalExpr>, input: &SchemaRef) -> bool {
    let all = datafusion::physical_expr::utils::collect_columns(expr);
    !all.is_empty() && rowtime_columns(expr, input).len() == all.len()
}

/// `expr` evaluated at each of `times`, with `time_columns` of `input` set to the
/// instant and the other columns NULL.
pub fn evaluate_at(
    expr: &Arc<dyn PhysicalExpr>,
    input: &SchemaRef,
    time_columns: &[usize],
    times: &[Millis],
) -> Result<ArrayRef> {
    let n = times.len();
    let instants: ArrayRef = Arc::new(TimestampMillisecondArray::from(times.to_vec()));
    let last = input.fields().len() - 1;
    let columns: Vec<ArrayRef> = input
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if i == last || time_columns.contains(&i) {
                datafusion::arrow::compute::cast(&instants, f.data_type()).map_err(SluiceError::from)
            } else {
                Ok(new_null_array(f.data_type(), n))
            }
        })
        .collect::<Result<_>>()?;
    let probe = RecordBatch::try_new(Arc::clone(input), columns)?;
    Ok(expr.evaluate(&probe)?.into_array(n)?)
}
