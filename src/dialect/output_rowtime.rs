//! An unqualified `ROWTIME` in a select list is the time of the row being generated
//! (spec §1.2, §3.1); a qualified `s.ROWTIME` is the input row's.
//!
//! For a plain projection the two are the same column, and DataFusion resolves the name
//! as it is. Two queries need the distinction made explicit:
//! * an aggregating query (`GROUP BY`, `WINDOWED BY STAGGER`): the output row's time is
//!   the window's close, not any input row's, and DataFusion would refuse `ROWTIME` as
//!   "not in GROUP BY";
//! * a join of two streams: both sides have a ROWTIME, and DataFusion would refuse the
//!   name as ambiguous; the output row's time is the driving row's.
//!
//! There, a `ROWTIME` of the select list becomes the marker call
//! `sluice_output_rowtime()`, which the lowering compiles to the trailing ROWTIME column of
//! the batches the projection reads (see `planner::lower`). `ROWTIME` keeps its input
//! meaning inside an aggregate or analytic call (`MAX(ROWTIME)`), inside a subquery, and
//! inside a select expression that is one of the GROUP BY keys
//! (`FLOOR(ROWTIME TO MINUTE)` grouped by the same expression): there it is the input
//! row's.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, Query, Select, SelectItem, SetExpr, TableFactor, VisitMut, VisitorMut,
};

use crate::types::ROWTIME;

/// The marker function an output-row `ROWTIME` becomes.
pub const OUTPUT_ROWTIME: &str = "sluice_output_rowtime";

/// Marks the output-row `ROWTIME`s of every SELECT in `query` (subqueries included).
/// `is_aggregate` tells an aggregate function's (lower-case) name.
pub fn mark(query: &mut Query, is_aggregate: &dyn Fn(&str) -> bool) {
    struct Queries<'a> {
        is_aggregate: &'a dyn Fn(&str) -> bool,
    }
    impl VisitorMut for Queries<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            in_set_expr(&mut query.body, self.is_aggregate);
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Queries { is_aggregate });
}

fn in_set_expr(body: &mut SetExpr, is_aggregate: &dyn Fn(&str) -> bool) {
    match body {
        SetExpr::Select(select) => in_select(select, is_aggregate),
        SetExpr::SetOperation { left, right, .. } => {
            in_set_expr(left, is_aggregate);
            in_set_expr(right, is_aggregate);
        }
        _ => {}
    }
}

fn in_select(select: &mut Select, is_aggregate: &dyn Fn(&str) -> bool) {
    let group_keys = match &select.group_by {
        GroupByExpr::Expressions(keys, _) => keys.clone(),
        GroupByExpr::All(_) => vec![],
    };
    let joins = select.from.len() > 1
        || select
            .from
            .iter()
            .any(|t| !t.joins.is_empty() || matches!(t.relation, TableFactor::NestedJoin { .. }));
    if group_keys.is_empty() && !joins {
        return;
    }
    // The column keeps its name, unless another one is named ROWTIME too (`b.ROWTIME`
    // in a join), which DataFusion would refuse as ambiguous.
    let named_rowtime = select
        .projection
        .iter()
        .filter(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value == ROWTIME,
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().is_some_and(|i| i.value == ROWTIME)
            }
            SelectItem::ExprWithAlias { alias, .. } => alias.value == ROWTIME,
            _ => false,
        })
        .count();
    for item in &mut select.projection {
        if matches!(item, SelectItem::UnnamedExpr(e) if is_rowtime(e)) {
            *item = if named_rowtime == 1 {
                SelectItem::ExprWithAlias {
                    expr: marker(),
                    alias: Ident::new(ROWTIME),
                }
            } else {
                SelectItem::UnnamedExpr(marker())
            };
            continue;
        }
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let mut rewriter = Rewriter {
                    group_keys: &group_keys,
                    is_aggregate,
                    shielded: 0,
                };
                let _ = e.visit(&mut rewriter);
            }
            _ => {}
        }
    }
}

fn is_rowtime(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.value == ROWTIME)
}

fn marker() -> Expr {
    super::normalize::call(OUTPUT_ROWTIME, vec![])
}

/// Replaces `ROWTIME` outside the expressions where it means the input row's.
struct Rewriter<'a> {
    group_keys: &'a [Expr],
    is_aggregate: &'a dyn Fn(&str) -> bool,
    /// How many enclosing expressions keep the input meaning.
    shielded: usize,
}

impl Rewriter<'_> {
    fn keeps_input_meaning(&self, e: &Expr) -> bool {
        if !is_rowtime(e) && self.group_keys.contains(e) {
            return true;
        }
        match e {
            Expr::Function(f) => {
                f.over.is_some()
                    || f.name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .is_some_and(|i| (self.is_aggregate)(&i.value.to_lowercase()))
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => true,
            _ => false,
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.keeps_input_meaning(e) {
            self.shielded += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // A shielding expression is left unchanged below it, so it still shields here.
        if self.keeps_input_meaning(e) {
            self.shielded -= 1;
        } else if self.shielded == 0 && is_rowtime(e) {
            *e = marker();
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(sql: &str) -> String {
        let mut query = crate::dialect::script::parse_query(sql).unwrap();
        mark(&mut query, &|name| matches!(name, "count" | "max" | "sum"));
        query.to_string()
    }

    #[test]
    fn an_aggregating_select_reads_the_output_rows_time() {
        assert_eq!(
            marked("SELECT STREAM ROWTIME, k, COUNT(*) FROM s GROUP BY k, FLOOR(s.ROWTIME TO MINUTE)"),
            "SELECT sluice_output_rowtime() AS ROWTIME, K, count(*) FROM S GROUP BY K, floor_to(S.ROWTIME, 'MINUTE')"
        );
        // inside an aggregate and inside a grouped expression it is the input row's
        assert_eq!(
            marked(
                "SELECT STREAM FLOOR(ROWTIME TO MINUTE) AS m, MAX(ROWTIME), CAST(ROWTIME AS VARCHAR(30)) AS t \
                 FROM s GROUP BY FLOOR(ROWTIME TO MINUTE)"
            ),
            "SELECT floor_to(ROWTIME, 'MINUTE') AS M, max(ROWTIME), kda_cast_char(sluice_output_rowtime(), 30, false) AS T \
             FROM S GROUP BY floor_to(ROWTIME, 'MINUTE')"
        );
        // a grouped function call too
        assert_eq!(
            marked("SELECT STREAM STEP(ROWTIME, 60), ROWTIME FROM s GROUP BY STEP(ROWTIME, 60)"),
            "SELECT step(ROWTIME, 60), sluice_output_rowtime() AS ROWTIME FROM S GROUP BY step(ROWTIME, 60)"
        );
    }

    #[test]
    fn a_join_reads_the_output_rows_time_and_other_queries_are_unchanged() {
        assert_eq!(
            marked("SELECT STREAM ROWTIME, a.x FROM s AS a JOIN s AS b ON a.k = b.k"),
            "SELECT sluice_output_rowtime() AS ROWTIME, A.X FROM S AS A JOIN S AS B ON A.K = B.K"
        );
        let plain = "SELECT ROWTIME, X FROM (SELECT ROWTIME, X FROM S) AS T";
        assert_eq!(marked(plain), plain);
        // a qualified ROWTIME is always the input row's
        let qualified = "SELECT A.ROWTIME, A.X FROM S AS A JOIN S AS B ON A.K = B.K";
        assert_eq!(marked(qualified), qualified);
        // next to another column named ROWTIME, the output row's time keeps no name
        assert_eq!(
            marked("SELECT STREAM ROWTIME, b.ROWTIME FROM s AS a JOIN s AS b ON a.k = b.k"),
            "SELECT sluice_output_rowtime(), B.ROWTIME FROM S AS A JOIN S AS B ON A.K = B.K"
        );
    }
}
