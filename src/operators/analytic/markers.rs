//! Window functions that exist for the planner's sake: DataFusion's SQL planner resolves
//! `EXP_AVG(x, half_life) OVER w` and `NTH_VALUE(x, n) FROM LAST OVER w` (which the token
//! layer turns into `NTH_VALUE_FROM_LAST(x, n)`) against these, and the lowering turns
//! them into [`super::AnalyticFunction`]s. They only run in the sliding-window operator:
//! DataFusion's own window execution never sees them.

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl};

pub const EXP_AVG: &str = "exp_avg";
pub const NTH_VALUE_FROM_LAST: &str = "nth_value_from_last";

#[derive(Debug, PartialEq, Eq, Hash)]
struct Marker {
    name: &'static str,
    signature: Signature,
}

impl WindowUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(&self, _args: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        exec_err!(
            "{} runs only over a sliding window of a stream",
            self.name.to_uppercase()
        )
    }

    /// EXP_AVG is DOUBLE; NTH_VALUE has its argument's type.
    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        let data_type = if self.name == EXP_AVG {
            DataType::Float64
        } else {
            args.input_fields()
                .first()
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Null)
        };
        Ok(Field::new(args.name(), data_type, true).into())
    }
}

/// The marker window functions, to register with the planner's session.
pub fn marker_udwfs() -> Vec<WindowUDF> {
    [EXP_AVG, NTH_VALUE_FROM_LAST]
        .into_iter()
        .map(|name| {
            WindowUDF::new_from_impl(Marker {
                name,
                signature: Signature::any(2, Volatility::Immutable),
            })
        })
        .collect()
}
