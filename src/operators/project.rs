//! The select list of a non-aggregating query: one output row per input row, with the
//! input row's ROWTIME.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::eval::{eval_isolating, with_rowtime};
use super::{OpContext, Operator};
use crate::error::Result;

pub struct ProjectOp {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// Output schema: one field per expression, then ROWTIME.
    schema: SchemaRef,
}

impl ProjectOp {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        ProjectOp { exprs, schema }
    }
}

impl Operator for ProjectOp {
    fn name(&self) -> &'static str {
        "Project"
    }

    fn on_batch(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let Some((kept, columns)) = eval_isolating(&batch, ctx, |b| {
            self.exprs
                .iter()
                .map(|e| e.evaluate(b)?.into_array(b.num_rows()))
                .collect::<Result<Vec<ArrayRef>, _>>()
        })?
        else {
            return Ok(vec![]);
        };
        if kept.num_rows() == 0 {
            return Ok(vec![]);
        }
        Ok(vec![with_rowtime(&self.schema, columns, &kept)?])
    }
}
