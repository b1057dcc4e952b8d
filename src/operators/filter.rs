//! WHERE and HAVING: keeps the rows whose predicate is TRUE (UNKNOWN drops the row).

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::physical_expr::PhysicalExpr;

use super::eval::eval_isolating;
use super::{OpContext, Operator};
use crate::error::Result;

pub struct FilterOp {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOp {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        FilterOp { predicate }
    }
}

impl Operator for FilterOp {
    fn name(&self) -> &'static str {
        "Filter"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let Some((kept, mask)) = eval_isolating(&batch, ctx, |b| {
            let v = self.predicate.evaluate(b)?.into_array(b.num_rows())?;
            Ok(v.as_boolean().clone())
        })?
        else {
            return Ok(vec![]);
        };
        let out = filter_record_batch(&kept, &mask)?;
        Ok(if out.num_rows() == 0 { vec![] } else { vec![out] })
    }
}
