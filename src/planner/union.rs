//! `UNION ALL` inside a query: `FROM (SELECT STREAM ... UNION ALL SELECT STREAM ...) AS u`.
//!
//! A streaming UNION ALL is a merge in ROWTIME order, which is what a stream hub does
//! for several writers. So each such subquery is taken out of the query before
//! DataFusion plans it: the query reads an internal stream `<pump>#UNION_ALL<n>`
//! instead, and one generated pump per branch writes into that stream. (A pump whose
//! whole query is a UNION ALL is split the same way, into pumps of the target stream.)

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Ident, Query, SetExpr, SetOperator, SetQuantifier, TableFactor, VisitMut, VisitorMut,
};

/// One UNION ALL subquery taken out of a query.
pub struct UnionCall {
    /// The internal stream the query now reads.
    pub stream: String,
    /// The branches, first to last, each a query of its own.
    pub branches: Vec<Query>,
}

/// The branches of `body` when it is a UNION ALL (nested and parenthesised ones
/// flattened), else None.
pub fn union_all_branches(body: &SetExpr) -> Option<Vec<SetExpr>> {
    fn collect(e: &SetExpr, out: &mut Vec<SetExpr>) {
        match e {
            SetExpr::SetOperation {
                op: SetOperator::Union,
                set_quantifier: SetQuantifier::All,
                left,
                right,
            } => {
                collect(left, out);
                collect(right, out);
            }
            SetExpr::Query(q)
                if q.order_by.is_none()
                    && q.limit_clause.is_none()
                    && q.with.is_none()
                    && matches!(*q.body, SetExpr::SetOperation { .. }) =>
            {
                collect(&q.body, out)
            }
            other => out.push(other.clone()),
        }
    }
    let is_union_all = matches!(
        body,
        SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier: SetQuantifier::All,
            ..
        }
    );
    is_union_all.then(|| {
        let mut out = Vec::new();
        collect(body, &mut out);
        out
    })
}

/// Replaces every UNION ALL subquery in FROM of `query` by a read of an internal
/// stream named after `pump`, and returns them.
pub fn extract(query: &mut Query, pump: &str) -> Vec<UnionCall> {
    struct Extractor<'a> {
        pump: &'a str,
        calls: Vec<UnionCall>,
    }
    impl VisitorMut for Extractor<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Derived { subquery, alias, .. } = factor else {
                return ControlFlow::Continue(());
            };
            if subquery.order_by.is_some() || subquery.limit_clause.is_some() {
                return ControlFlow::Continue(());
            }
            let Some(bodies) = union_all_branches(&subquery.body) else {
                return ControlFlow::Continue(());
            };
            let stream = format!("{}#UNION_ALL{}", self.pump, self.calls.len() + 1);
            let branches = bodies
                .into_iter()
                .map(|body| Query {
                    body: Box::new(body),
                    ..(**subquery).clone()
                })
                .collect();
            self.calls.push(UnionCall {
                stream: stream.clone(),
                branches,
            });
            *factor = super::table_function::read_stream(stream, alias.clone());
            ControlFlow::Continue(())
        }
    }
    let mut extractor = Extractor {
        pump,
        calls: Vec::new(),
    };
    let _ = query.visit(&mut extractor);
    extractor.calls
}

/// `A UNION ALL B ORDER BY k` → `SELECT * FROM (A UNION ALL B) AS "S" ORDER BY k`, where
/// `S` is the first stream the first branch reads: the ORDER BY of such a query names
/// that stream's columns (`FLOOR("S".ROWTIME TO SECOND)`), and the merged stream has
/// them. The subquery is then taken out by [`extract`] like any other.
pub fn wrap_ordered_union(query: &mut Query) {
    if query.order_by.is_none() || union_all_branches(&query.body).is_none() {
        return;
    }
    let first_stream = union_all_branches(&query.body)
        .and_then(|b| match b.into_iter().next() {
            Some(SetExpr::Select(select)) => select.from.first().map(|t| t.relation.clone()),
            _ => None,
        })
        .and_then(|r| match r {
            TableFactor::Table { name, alias, .. } => Some(alias.map(|a| a.name).unwrap_or_else(|| {
                name.0
                    .last()
                    .and_then(|p| p.as_ident())
                    .cloned()
                    .unwrap_or_else(|| Ident::new("U"))
            })),
            _ => None,
        })
        .unwrap_or_else(|| Ident::new("U"));
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let template = format!("SELECT * FROM (SELECT 1) AS {first_stream}");
    let Ok(mut statements) = Parser::parse_sql(&GenericDialect {}, &template) else {
        return;
    };
    let datafusion::sql::sqlparser::ast::Statement::Query(mut outer) = statements.remove(0) else {
        return;
    };
    if let SetExpr::Select(select) = outer.body.as_mut()
        && let Some(TableFactor::Derived { subquery, .. }) = select.from.first_mut().map(|t| &mut t.relation)
    {
        subquery.body = query.body.clone();
    }
    outer.order_by = query.order_by.take();
    *query = *outer;
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn query(sql: &str) -> Query {
        match Parser::parse_sql(&GenericDialect {}, sql).unwrap().remove(0) {
            datafusion::sql::sqlparser::ast::Statement::Query(q) => *q,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_union_all_subquery_becomes_an_internal_stream_with_one_branch_per_query() {
        let mut q = query(
            "SELECT u.a FROM (SELECT a FROM s WHERE a > 1 UNION ALL (SELECT a FROM t UNION ALL SELECT b FROM r)) AS u WHERE u.a < 9",
        );
        let calls = extract(&mut q, "P");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].stream, "P#UNION_ALL1");
        let branches: Vec<String> = calls[0].branches.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            branches,
            vec!["SELECT a FROM s WHERE a > 1", "SELECT a FROM t", "SELECT b FROM r"]
        );
        assert_eq!(q.to_string(), "SELECT u.a FROM \"P#UNION_ALL1\" AS u WHERE u.a < 9");
    }

    #[test]
    fn an_ordered_union_reads_a_merged_stream_named_after_its_first_stream() {
        let mut q = query(
            "SELECT a FROM \"T\" WHERE a > 1 UNION ALL SELECT b FROM r ORDER BY FLOOR(\"T\".ROWTIME TO SECOND), a DESC",
        );
        wrap_ordered_union(&mut q);
        assert_eq!(
            q.to_string(),
            "SELECT * FROM (SELECT a FROM \"T\" WHERE a > 1 UNION ALL SELECT b FROM r) AS \"T\" \
             ORDER BY FLOOR(\"T\".ROWTIME TO SECOND), a DESC"
        );
        let calls = extract(&mut q, "P");
        assert_eq!(calls[0].branches.len(), 2);
    }

    #[test]
    fn other_subqueries_and_plain_unions_stay() {
        let mut q = query("SELECT x FROM (SELECT a AS x FROM s) AS d");
        assert!(extract(&mut q, "P").is_empty());
        let mut q = query("SELECT x FROM (SELECT a AS x FROM s UNION SELECT b FROM t) AS d");
        assert!(
            extract(&mut q, "P").is_empty(),
            "UNION without ALL is not a stream merge"
        );
    }
}
