//! `interval * n` and `n * interval` (spec §1.4 "Datetime arithmetic").
//!
//! DataFusion's type coercion has no rule for an interval times a number, so the SQL
//! planner hands such products to [`IntervalArithmeticPlanner`], which plans them as
//! `interval_mul(interval, n)`. The result is an interval of whole milliseconds (a
//! `Duration(ms)`, as `interval / n` gives through `sluice_div`), rounded down (toward
//! −∞) for fractional factors, as `sluice_div` rounds; a month part or an overflow is a
//! row error.

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DFSchema, Result, exec_err, plan_err};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::common::{
    INTERVAL_TYPE, check_arity, coerce_interval, interval_millis, is_interval_like, millis_to_duration, row_error,
};

const NAME: &str = "interval_mul";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalMultiply {
    signature: Signature,
}

impl Default for IntervalMultiply {
    fn default() -> Self {
        IntervalMultiply {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn factor_type(t: &DataType) -> Result<DataType> {
    Ok(match t {
        DataType::Null => DataType::Int64,
        t if t.is_integer() => DataType::Int64,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DataType::Float64,
        other => return plan_err!("cannot multiply an interval by {other}"),
    })
}

impl ScalarUDFImpl for IntervalMultiply {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 2, 2)?;
        if !is_interval_like(&arg_types[0]) {
            return plan_err!("{NAME}: the first argument must be an interval, got {}", arg_types[0]);
        }
        Ok(vec![coerce_interval(&arg_types[0]), factor_type(&arg_types[1])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(INTERVAL_TYPE)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::common::eval_arrays(&args.args, args.number_rows, |a| multiply(&a[0], &a[1]))
    }
}

fn multiply(interval: &ArrayRef, factor: &ArrayRef) -> Result<ArrayRef> {
    let ms = interval_millis(NAME, interval)?;
    let out_of_range = || ArrowError::ComputeError("interval out of range".into());
    let out: Int64Array = match factor.data_type() {
        DataType::Int64 => {
            let f = factor.as_primitive::<Int64Type>();
            datafusion::arrow::compute::kernels::arity::try_binary(&ms, f, |a, b| {
                a.checked_mul(b).ok_or_else(out_of_range)
            })
            .map_err(|e| row_error(NAME, e))?
        }
        DataType::Float64 => {
            let f = factor.as_primitive::<Float64Type>();
            datafusion::arrow::compute::kernels::arity::try_binary(&ms, f, |a, b| {
                super::common::millis_rounded_down(a as f64 * b).ok_or_else(out_of_range)
            })
            .map_err(|e| row_error(NAME, e))?
        }
        DataType::Null => Int64Array::new_null(ms.len()),
        other => return exec_err!("{NAME}: cannot multiply an interval by {other}"),
    };
    Ok(millis_to_duration(out))
}

/// Plans `interval * number` and `number * interval` as [`IntervalMultiply`]; every
/// other binary operation is left to DataFusion.
#[derive(Debug, Default)]
pub struct IntervalArithmeticPlanner;

impl ExprPlanner for IntervalArithmeticPlanner {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::Multiply {
            return Ok(PlannerResult::Original(expr));
        }
        let (Ok(l), Ok(r)) = (expr.left.get_type(schema), expr.right.get_type(schema)) else {
            return Ok(PlannerResult::Original(expr));
        };
        let number = |t: &DataType| t.is_numeric() || *t == DataType::Null;
        let (interval, factor) = if is_interval_like(&l) && number(&r) {
            (expr.left, expr.right)
        } else if number(&l) && is_interval_like(&r) {
            (expr.right, expr.left)
        } else {
            return Ok(PlannerResult::Original(expr));
        };
        let udf = datafusion::logical_expr::ScalarUDF::from(IntervalMultiply::default());
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(std::sync::Arc::new(udf), vec![interval, factor]),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::common::test_util::value;
    use super::IntervalArithmeticPlanner;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
    use datafusion::prelude::SessionContext;

    /// SQL with the planner installed, as the application catalog has it.
    async fn planned(sql: &str) -> String {
        let mut state = SessionStateBuilder::new().with_default_features().build();
        state
            .register_expr_planner(std::sync::Arc::new(IntervalArithmeticPlanner))
            .unwrap();
        let ctx = SessionContext::new_with_state(state);
        for udf in super::super::all_udfs() {
            ctx.register_udf(udf.as_ref().clone());
        }
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn products_of_columns_and_intervals_plan_either_way_round() {
        let out = planned(
            "SELECT TIMESTAMP '2024-01-01 00:00:00' + x * INTERVAL '1' MINUTE AS a, \
                    TIMESTAMP '2024-01-01 00:00:00' + INTERVAL '10' SECOND * y AS b \
             FROM (VALUES (2, 0.25), (-1, 3.0)) AS t(x, y)",
        )
        .await;
        assert!(out.contains("2024-01-01T00:02:00 | 2024-01-01T00:00:02.500"), "{out}");
        assert!(out.contains("2023-12-31T23:59:00 | 2024-01-01T00:00:30"), "{out}");
    }

    #[tokio::test]
    async fn an_interval_times_a_number_is_an_interval_of_milliseconds() {
        assert_eq!(
            value("SELECT interval_mul(INTERVAL '1' SECOND, 3)").await,
            value("SELECT arrow_cast(3000, 'Duration(Millisecond)')").await
        );
        assert_eq!(
            value("SELECT interval_mul(INTERVAL '1' MINUTE, 0.5)").await,
            value("SELECT arrow_cast(30000, 'Duration(Millisecond)')").await
        );
        assert_eq!(
            value("SELECT interval_mul(INTERVAL '1' SECOND, -2)").await,
            value("SELECT arrow_cast(-2000, 'Duration(Millisecond)')").await
        );
        // a fraction rounds down, and a product that is whole stays whole
        assert_eq!(
            value("SELECT interval_mul(INTERVAL '-10.001' SECOND, 0.1)").await,
            value("SELECT arrow_cast(-1001, 'Duration(Millisecond)')").await
        );
        assert_eq!(
            value("SELECT interval_mul(INTERVAL '-10' SECOND, 0.1)").await,
            value("SELECT arrow_cast(-1000, 'Duration(Millisecond)')").await
        );
    }
}
