//! `LPAD` and `RPAD` with a bound on the length asked for: DataFusion's own functions
//! allocate whatever length the argument names, so `LPAD(x, 2147483647, 'x')` would ask
//! for gigabytes and abort the process. Past [`MAX_STRING_CHARS`] the row fails, and
//! goes to `error_stream` with the reason, like any other row error.
//!
//! * `kda_lpad(s, n [, fill])`, `kda_rpad(s, n [, fill])` → DataFusion's `lpad`/`rpad`,
//!   once every length of the batch is within the bound.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

/// The longest string a function may make: KDA's largest row (512 KB) holds no longer
/// one, so nothing longer can be meant.
pub const MAX_STRING_CHARS: i64 = 512 * 1024;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BoundedPad {
    name: &'static str,
    /// The KDA name, for messages.
    sql_name: &'static str,
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl BoundedPad {
    pub fn lpad() -> Self {
        Self::new("kda_lpad", "LPAD", datafusion::functions::unicode::lpad())
    }

    pub fn rpad() -> Self {
        Self::new("kda_rpad", "RPAD", datafusion::functions::unicode::rpad())
    }

    fn new(name: &'static str, sql_name: &'static str, inner: Arc<ScalarUDF>) -> Self {
        // The same argument types as DataFusion's function: only the length is checked.
        let signature = inner.signature().clone();
        BoundedPad {
            name,
            sql_name,
            inner,
            signature,
        }
    }
}

impl ScalarUDFImpl for BoundedPad {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let longest = match args.args.get(1) {
            Some(ColumnarValue::Scalar(v)) => match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(n) => n,
                _ => None,
            },
            Some(ColumnarValue::Array(a)) => {
                let lengths = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
                datafusion::arrow::compute::max(lengths.as_primitive::<Int64Type>())
            }
            None => None,
        };
        if let Some(n) = longest.filter(|n| *n > MAX_STRING_CHARS) {
            return exec_err!(
                "{}: a length of {n} characters is longer than the longest string sluice makes ({MAX_STRING_CHARS})",
                self.sql_name
            );
        }
        self.inner.invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use crate::functions::common::test_util::ctx;
    use datafusion::arrow::array::StringArray;

    #[tokio::test]
    async fn pads_within_the_bound_and_refuses_a_length_past_it() {
        let ctx = ctx();
        let ok = ctx
            .sql("SELECT kda_lpad('ab', 5, 'x') AS l, kda_rpad('ab', 4) AS r")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let l = ok[0].column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let r = ok[0].column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((l.value(0), r.value(0)), ("xxxab", "ab  "));
        let huge = ctx
            .sql("SELECT kda_lpad('ab', 2147483647, 'x')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(huge.contains("LPAD: a length of 2147483647 characters"), "{huge}");
    }
}
