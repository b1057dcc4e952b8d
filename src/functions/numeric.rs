//! KDA's numeric functions where DataFusion's differ (spec §4.3):
//!
//! * `kda_mod(a, b)`: `MOD`, the remainder with the sign of `a`, in the type `a % b`
//!   has in DataFusion; a zero `b` is the row error "division by zero" (as `/`, A18).
//! * `kda_floor(n)`, `kda_ceil(n)`: `FLOOR(n)` / `CEIL(n)` / `CEILING(n)` keep the
//!   argument's type (an INTEGER stays INTEGER, a DECIMAL keeps its scale with a zero
//!   fraction) where DataFusion turns every number into a DOUBLE.
//! * `kda_exp`, `kda_ln`, `kda_log10`, `kda_power`: DOUBLE results; a result that is
//!   not a finite number (`LN(0)`, `LN(-1)`, `POWER(-8, 0.5)`, `EXP(1000)`) is a row
//!   error for `error_stream`, never NaN or ±Infinity.
//!
//! NULL in → NULL out.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, PrimitiveArray};
use datafusion::arrow::compute::kernels::numeric::rem;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::common::{check_arity, eval_arrays};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KdaMod {
    signature: Signature,
}

impl Default for KdaMod {
    fn default() -> Self {
        KdaMod {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KdaMod {
    fn name(&self) -> &str {
        "kda_mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("MOD", arg_types, 2, 2)?;
        let (l, r) = BinaryTypeCoercer::new(&arg_types[0], &Operator::Modulo, &arg_types[1]).get_input_types()?;
        if !(l.is_numeric() || l == DataType::Null) || !(r.is_numeric() || r == DataType::Null) {
            return plan_err!("MOD needs numbers, not {} and {}", arg_types[0], arg_types[1]);
        }
        Ok(vec![l, r])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity("MOD", arg_types, 2, 2)?;
        BinaryTypeCoercer::new(&arg_types[0], &Operator::Modulo, &arg_types[1]).get_result_type()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = <[ColumnarValue; 2]>::try_from(args.args)
            .map_err(|_| datafusion::common::DataFusionError::Internal("MOD: 2 arguments".into()))?;
        // Arrow's `rem` is Rust's `%` (and fmod for floats): the sign of the dividend.
        super::division::numeric_kernel("MOD", &l, &r, args.number_rows, rem)
    }
}

/// `FLOOR(n)` or `CEIL(n)` on a number.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RoundToInteger {
    up: bool,
    signature: Signature,
}

impl RoundToInteger {
    pub fn floor() -> Self {
        RoundToInteger {
            up: false,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    pub fn ceil() -> Self {
        RoundToInteger {
            up: true,
            ..Self::floor()
        }
    }
    fn sql_name(&self) -> &'static str {
        if self.up { "CEIL" } else { "FLOOR" }
    }
}

impl ScalarUDFImpl for RoundToInteger {
    fn name(&self) -> &str {
        if self.up { "kda_ceil" } else { "kda_floor" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.sql_name(), arg_types, 1, 1)?;
        match &arg_types[0] {
            t if t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..)) => Ok(vec![t.clone()]),
            DataType::Null => Ok(vec![DataType::Float64]),
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => Ok(vec![DataType::Decimal128(*p, *s)]),
            t => plan_err!("{} needs a number, not {t}", self.sql_name()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(self.sql_name(), arg_types, 1, 1)?;
        Ok(arg_types[0].clone())
    }

    fn output_ordering(
        &self,
        inputs: &[datafusion::logical_expr::sort_properties::ExprProperties],
    ) -> Result<datafusion::logical_expr::sort_properties::SortProperties> {
        // Non-decreasing: FLOOR(x) of an ordered x is ordered the same way.
        Ok(inputs[0].sort_properties)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let up = self.up;
        eval_arrays(&args.args, args.number_rows, |a| round_to_integer(&a[0], up))
    }
}

fn round_to_integer(a: &ArrayRef, up: bool) -> Result<ArrayRef> {
    Ok(match a.data_type() {
        t if t.is_integer() => Arc::clone(a),
        DataType::Float64 => {
            let out: PrimitiveArray<Float64Type> = a
                .as_primitive::<Float64Type>()
                .unary(|v| if up { v.ceil() } else { v.floor() });
            Arc::new(out)
        }
        DataType::Float32 => {
            let out: PrimitiveArray<Float32Type> = a
                .as_primitive::<Float32Type>()
                .unary(|v| if up { v.ceil() } else { v.floor() });
            Arc::new(out)
        }
        DataType::Decimal128(p, s) => {
            let unit = 10i128.pow((*s).max(0) as u32);
            let d = a.as_primitive::<Decimal128Type>();
            let out: PrimitiveArray<Decimal128Type> = d.unary(|v| {
                let q = v.div_euclid(unit) * unit;
                if up && q != v { q + unit } else { q }
            });
            Arc::new(out.with_precision_and_scale(*p, *s)?)
        }
        t => return exec_err!("FLOOR/CEIL: unexpected argument type {t}"),
    })
}

/// Which DOUBLE function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MathFn {
    Exp,
    Ln,
    Log10,
    Power,
}

impl MathFn {
    pub const ALL: [MathFn; 4] = [MathFn::Exp, MathFn::Ln, MathFn::Log10, MathFn::Power];

    fn sql_name(self) -> &'static str {
        match self {
            MathFn::Exp => "EXP",
            MathFn::Ln => "LN",
            MathFn::Log10 => "LOG10",
            MathFn::Power => "POWER",
        }
    }

    fn arity(self) -> usize {
        if self == MathFn::Power { 2 } else { 1 }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DoubleFunction {
    f: MathFn,
    signature: Signature,
}

impl DoubleFunction {
    pub fn new(f: MathFn) -> Self {
        DoubleFunction {
            f,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DoubleFunction {
    fn name(&self) -> &str {
        match self.f {
            MathFn::Exp => "kda_exp",
            MathFn::Ln => "kda_ln",
            MathFn::Log10 => "kda_log10",
            MathFn::Power => "kda_power",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.f.sql_name();
        check_arity(name, arg_types, self.f.arity(), self.f.arity())?;
        arg_types
            .iter()
            .map(|t| {
                if t.is_numeric() || *t == DataType::Null {
                    Ok(DataType::Float64)
                } else {
                    plan_err!("{name} needs numbers, not {t}")
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let f = self.f;
        eval_arrays(&args.args, args.number_rows, |a| {
            let x = a[0].as_primitive::<Float64Type>();
            let out: Float64Array = match f {
                MathFn::Power => {
                    let y = a[1].as_primitive::<Float64Type>();
                    x.iter().zip(y.iter()).map(|(x, y)| Some(x?.powf(y?))).collect()
                }
                MathFn::Exp => x.iter().map(|v| v.map(f64::exp)).collect(),
                MathFn::Ln => x.iter().map(|v| v.map(f64::ln)).collect(),
                MathFn::Log10 => x.iter().map(|v| v.map(f64::log10)).collect(),
            };
            if let Some(bad) = (0..out.len()).find(|&i| out.is_valid(i) && !out.value(i).is_finite()) {
                let args: Vec<String> = a
                    .iter()
                    .map(|c| c.as_primitive::<Float64Type>().value(bad).to_string())
                    .collect();
                return exec_err!(
                    "{}({}) is not a finite number (argument outside the function's domain, or overflow)",
                    f.sql_name(),
                    args.join(", ")
                );
            }
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::{value, value_type};

    async fn err(sql: &str) -> String {
        let v = value(sql).await;
        assert!(v.starts_with("ERR"), "{sql}: expected an error, got {v}");
        v
    }

    #[tokio::test]
    async fn modulo_has_the_sign_of_the_dividend() {
        assert_eq!(value("SELECT kda_mod(7, 3)").await, "1");
        assert_eq!(value("SELECT kda_mod(-7, 3)").await, "-1");
        assert_eq!(value("SELECT kda_mod(7, -3)").await, "1");
        assert_eq!(value("SELECT kda_mod(-7, -3)").await, "-1");
        assert_eq!(value("SELECT kda_mod(7.5, 2)").await, "1.5");
        assert_eq!(value("SELECT kda_mod(CAST(-7.5 AS DOUBLE), 2)").await, "-1.5");
        assert_eq!(
            value_type("SELECT kda_mod(CAST(7 AS INT), CAST(3 AS INT))").await,
            "Int32"
        );
        assert_eq!(value("SELECT kda_mod(NULL, 3)").await, "NULL");
        assert_eq!(value("SELECT kda_mod(7, NULL)").await, "NULL");
        assert!(err("SELECT kda_mod(7, 0)").await.contains("division by zero"));
        assert!(
            err("SELECT kda_mod(CAST(7 AS DOUBLE), 0.0)")
                .await
                .contains("division by zero")
        );
        // MOD(NULL, 0) divides nothing.
        assert_eq!(value("SELECT kda_mod(CAST(NULL AS INT), 0)").await, "NULL");
    }

    #[tokio::test]
    async fn floor_and_ceil_keep_the_type() {
        assert_eq!(value("SELECT kda_floor(-3.3)").await, "-4.0");
        assert_eq!(value("SELECT kda_ceil(-3.3)").await, "-3.0");
        assert_eq!(value("SELECT kda_floor(CAST(3.7 AS DOUBLE))").await, "3.0");
        assert_eq!(value("SELECT kda_ceil(CAST(3.2 AS REAL))").await, "4.0");
        assert_eq!(value_type("SELECT kda_floor(CAST(3.2 AS REAL))").await, "Float32");
        assert_eq!(value("SELECT kda_floor(CAST(-7 AS INT))").await, "-7");
        assert_eq!(value_type("SELECT kda_ceil(CAST(-7 AS INT))").await, "Int32");
        assert_eq!(value("SELECT kda_floor(CAST(-3.25 AS DECIMAL(5,2)))").await, "-4.00");
        assert_eq!(value("SELECT kda_ceil(CAST(-3.25 AS DECIMAL(5,2)))").await, "-3.00");
        assert_eq!(value("SELECT kda_ceil(CAST(3.25 AS DECIMAL(5,2)))").await, "4.00");
        assert_eq!(value("SELECT kda_ceil(CAST(3 AS DECIMAL(5,2)))").await, "3.00");
        assert_eq!(
            value_type("SELECT kda_floor(CAST(1 AS DECIMAL(5,2)))").await,
            "Decimal128(5, 2)"
        );
        assert_eq!(value("SELECT kda_floor(NULL)").await, "NULL");
    }

    #[tokio::test]
    async fn exp_ln_log10_power() {
        assert_eq!(value("SELECT kda_exp(0)").await, "1.0");
        assert_eq!(value("SELECT kda_ln(kda_exp(2))").await, "2.0");
        assert_eq!(value("SELECT kda_log10(1000)").await, "3.0");
        assert_eq!(value("SELECT kda_power(2, 10)").await, "1024.0");
        assert_eq!(value("SELECT kda_power(CAST(9 AS INT), 0.5)").await, "3.0");
        assert_eq!(value("SELECT kda_power(-2, 3)").await, "-8.0");
        assert_eq!(
            value_type("SELECT kda_power(CAST(2 AS INT), CAST(2 AS INT))").await,
            "Float64"
        );
        assert_eq!(value("SELECT kda_ln(NULL)").await, "NULL");
        assert_eq!(value("SELECT kda_power(2, NULL)").await, "NULL");
        for bad in [
            "SELECT kda_ln(-1)",
            "SELECT kda_ln(0)",
            "SELECT kda_log10(-5)",
            "SELECT kda_power(-8, 0.5)",
            "SELECT kda_power(0, -1)",
            "SELECT kda_exp(1000)",
        ] {
            assert!(err(bad).await.contains("not a finite number"), "{bad}");
        }
    }
}
