//! Functions that exist for the planner's sake: `stagger_window(range)` marks a
//! `WINDOWED BY STAGGER` grouping (see `dialect::tokens`), `current_row_timestamp()` is
//! KDA's per-row wall clock, `sluice_output_rowtime()` the output row's ROWTIME.

use std::sync::Arc;

use datafusion::arrow::array::TimestampMillisecondArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use crate::types::TIMESTAMP_TYPE;

pub const STAGGER_WINDOW: &str = "stagger_window";

#[derive(Debug, PartialEq, Eq, Hash)]
struct StaggerWindow {
    signature: Signature,
}

impl ScalarUDFImpl for StaggerWindow {
    fn name(&self) -> &str {
        STAGGER_WINDOW
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Constant per window: it only carries the range to the planner.
        let _ = args;
        Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentRowTimestamp {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentRowTimestamp {
    fn name(&self) -> &str {
        "current_row_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(TIMESTAMP_TYPE)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = crate::time::now_millis();
        Ok(ColumnarValue::Array(Arc::new(TimestampMillisecondArray::from(
            vec![now; args.number_rows],
        ))))
    }
}

/// `sluice_output_rowtime()`: an unqualified ROWTIME in a select list, meaning the time
/// of the row being generated (see `dialect::output_rowtime`). The lowering compiles it
/// to the trailing ROWTIME column of the projection's input batches; it is never invoked.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OutputRowtime {
    signature: Signature,
}

impl ScalarUDFImpl for OutputRowtime {
    fn name(&self) -> &str {
        crate::dialect::output_rowtime::OUTPUT_ROWTIME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(TIMESTAMP_TYPE)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::exec_err!("ROWTIME of the output row is only known in a select list")
    }
}

/// `MONOTONIC(x)`: the user declares `x` monotonic (KDA trusts it); the value is `x`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Monotonic {
    signature: Signature,
}

impl ScalarUDFImpl for Monotonic {
    fn name(&self) -> &str {
        "monotonic"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.into_iter().next().expect("one argument by signature"))
    }
}

/// `t_sort(key, within)`: the key of a T-sort (`ORDER BY key WITHIN interval`, see
/// `dialect::tokens`); the value is `key`.
pub const T_SORT: &str = "t_sort";

#[derive(Debug, PartialEq, Eq, Hash)]
struct TSort {
    signature: Signature,
}

impl ScalarUDFImpl for TSort {
    fn name(&self) -> &str {
        T_SORT
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.into_iter().next().expect("two arguments by signature"))
    }
}

pub fn marker_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(TSort {
            signature: Signature::any(2, Volatility::Immutable),
        })),
        Arc::new(ScalarUDF::new_from_impl(Monotonic {
            signature: Signature::any(1, Volatility::Immutable),
        })),
        Arc::new(ScalarUDF::new_from_impl(StaggerWindow {
            signature: Signature::any(1, Volatility::Immutable),
        })),
        Arc::new(super::stream_join::marker_udf()),
        // Volatile: it must never be folded to a constant.
        Arc::new(ScalarUDF::new_from_impl(OutputRowtime {
            signature: Signature::nullary(Volatility::Volatile),
        })),
        Arc::new(ScalarUDF::new_from_impl(CurrentRowTimestamp {
            signature: Signature::nullary(Volatility::Volatile),
        })),
    ]
}
