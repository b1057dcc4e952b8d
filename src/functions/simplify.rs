//! Expressions are simplified before they become `PhysicalExpr`s, as DataFusion's own
//! planner does: some functions exist only as rewrites (`COALESCE` becomes a `CASE`,
//! `now()` / `CURRENT_TIMESTAMP` a literal of the query's start time) and fail when
//! invoked directly.
//!
//! Constant folding must not move a row error to plan time. DataFusion's simplifier
//! keeps a failing constant sub-expression as it is, except a `CAST` of a literal
//! (`CAST('x' AS INTEGER)`), whose error it returns. KDA sends such a row to
//! `error_stream` (A25), so when the whole simplification fails, only the function
//! rewrites are applied and the error happens, per row, at run time.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

/// `e` simplified for evaluation over rows of `schema`. Time functions are fixed at the
/// start time of `state`'s execution props (the application's start).
pub fn for_execution(e: &Expr, schema: &DFSchema, state: &SessionState) -> Result<Expr> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .with_query_execution_start_time(state.execution_props().query_execution_start_time)
        .build();
    match ExprSimplifier::new(context.clone()).simplify(e.clone()) {
        Ok(simplified) => Ok(simplified),
        Err(_) => functions_only(e.clone(), &context),
    }
}

/// An aggregate call (possibly aliased) with its arguments and FILTER simplified by
/// [`for_execution`] (`SUM(COALESCE(x, 0))`); the aggregate itself stays as planned.
pub fn aggregate_for_execution(e: &Expr, schema: &DFSchema, state: &SessionState) -> Result<Expr> {
    Ok(e.clone()
        .transform_down(|e| match e {
            Expr::AggregateFunction(mut f) => {
                f.params.args = f
                    .params
                    .args
                    .iter()
                    .map(|a| for_execution(a, schema, state))
                    .collect::<Result<_>>()?;
                if let Some(filter) = f.params.filter.take() {
                    f.params.filter = Some(Box::new(for_execution(&filter, schema, state)?));
                }
                Ok(Transformed::new(
                    Expr::AggregateFunction(f),
                    true,
                    TreeNodeRecursion::Jump,
                ))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

/// Applies each scalar function's own rewrite (`ScalarUDFImpl::simplify`), bottom-up,
/// and nothing else: no constant is evaluated.
fn functions_only(e: Expr, context: &SimplifyContext) -> Result<Expr> {
    Ok(e.transform_up(|e| match e {
        Expr::ScalarFunction(ScalarFunction { func, args }) => match func.simplify(args, context)? {
            ExprSimplifyResult::Simplified(rewritten) => Ok(Transformed::yes(rewritten)),
            ExprSimplifyResult::Original(args) => {
                Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })))
            }
        },
        other => Ok(Transformed::no(other)),
    })?
    .data)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::{DFSchema, ScalarValue};
    use datafusion::logical_expr::{Cast, Expr, col, lit};

    use super::for_execution;
    use crate::planner::catalog::Catalog;

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![Field::new("n", DataType::Int32, true)])).unwrap()
    }

    fn call(catalog: &Catalog, name: &str, args: Vec<Expr>) -> Expr {
        let f = catalog
            .state()
            .scalar_functions()
            .get(name)
            .unwrap_or_else(|| panic!("{name}"));
        f.call(args)
    }

    #[test]
    fn coalesce_becomes_an_expression_datafusion_can_run() {
        let catalog = Catalog::new().unwrap();
        let e = call(&catalog, "coalesce", vec![col("n"), lit(0i32)]);
        let simplified = for_execution(&e, &schema(), catalog.state()).unwrap();
        assert!(matches!(simplified, Expr::Case(_)), "{simplified}");
    }

    #[test]
    fn current_timestamp_is_the_start_time_and_current_row_timestamp_stays_per_row() {
        let catalog = Catalog::new().unwrap();
        let start = catalog
            .state()
            .execution_props()
            .query_execution_start_time
            .expect("the catalog fixes the start time")
            .timestamp_millis();
        let fixed = for_execution(
            &call(&catalog, "kda_current_timestamp", vec![]),
            &schema(),
            catalog.state(),
        )
        .unwrap();
        assert_eq!(
            fixed,
            Expr::Literal(ScalarValue::TimestampMillisecond(Some(start), None), None)
        );
        // Volatile: never folded into a constant, evaluated for each batch.
        let per_row = call(&catalog, "current_row_timestamp", vec![]);
        let simplified = for_execution(&per_row, &schema(), catalog.state()).unwrap();
        assert_eq!(simplified, per_row);
    }

    #[test]
    fn constant_row_errors_stay_row_errors() {
        let catalog = Catalog::new().unwrap();
        // 1 / 0 (A18): constant folding fails, the call stays for run time.
        let div = call(&catalog, "sluice_div", vec![lit(1i64), lit(0i64)]);
        assert_eq!(for_execution(&div, &schema(), catalog.state()).unwrap(), div);
        // CAST('abc' AS INTEGER) (A25): DataFusion's simplifier returns this error at
        // plan time; sluice keeps the cast for run time, and still rewrites COALESCE.
        let bad_cast = Expr::Cast(Cast::new(Box::new(lit("abc")), DataType::Int32));
        let e = call(&catalog, "coalesce", vec![col("n"), bad_cast.clone()]);
        let simplified = for_execution(&e, &schema(), catalog.state()).unwrap();
        let Expr::Case(case) = &simplified else {
            panic!("{simplified}")
        };
        assert_eq!(case.else_expr.as_deref(), Some(&bad_cast), "{simplified}");
    }

    #[test]
    fn constants_still_fold() {
        let catalog = Catalog::new().unwrap();
        let e = call(&catalog, "kda_mod", vec![lit(7i64), lit(3i64)]);
        assert_eq!(for_execution(&e, &schema(), catalog.state()).unwrap(), lit(1i64));
    }
}
