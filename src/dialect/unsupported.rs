//! Naming what sluice does not run yet. A KDA application that uses such a feature gets
//! `unsupported feature at line L, column C: <feature>` instead of a generic parse or
//! planning error, so a user knows it is sluice's gap and not their code.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan};

/// KDA functions that are documented but not implemented by sluice yet.
pub const KDA_FUNCTIONS_NOT_YET: [&str; 6] = [
    "TOP_K_ITEMS_TUMBLING",
    "COUNT_DISTINCT_ITEMS_TUMBLING",
    "RANDOM_CUT_FOREST",
    "RANDOM_CUT_FOREST_WITH_EXPLANATION",
    "HOTSPOTS",
    "GROUP_RANK",
];

/// Is `name` (any case) a documented KDA function sluice does not run yet?
pub fn is_kda_function_not_yet(name: &str) -> bool {
    let upper = name.to_uppercase();
    KDA_FUNCTIONS_NOT_YET.contains(&upper.as_str())
}

/// Finds table functions (`FROM TABLE(f(CURSOR(...)))`) and not-yet functions in a query.
pub fn find_in_query(query: &Query) -> Option<(Location, String)> {
    struct Finder(Option<(Location, String)>);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let name = match factor {
                TableFactor::TableFunction {
                    expr: Expr::Function(f),
                    ..
                } => Some(f.name.to_string()),
                TableFactor::Function { name, .. } => Some(name.to_string()),
                _ => None,
            };
            if let Some(name) = name {
                self.0 = Some((
                    Location { line: 0, column: 0 },
                    format!("table function {} over a stream", name.to_uppercase()),
                ));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = expr {
                let name = f.name.to_string();
                if is_kda_function_not_yet(&name) {
                    let at = f
                        .name
                        .0
                        .first()
                        .and_then(|p| p.as_ident())
                        .map(|i| i.span.start)
                        .unwrap_or(Location { line: 0, column: 0 });
                    self.0 = Some((at, format!("function {}", name.to_uppercase())));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder(None);
    let _ = query.visit(&mut finder);
    finder.0
}

/// After sqlparser rejected a statement: is it a KDA construct sluice cannot parse yet?
pub fn explain_parse_failure(tokens: &[TokenWithSpan]) -> Option<(Location, String)> {
    let word = |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    for (i, t) in tokens.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| &tokens[p]);
        // `ORDER BY ts WITHIN INTERVAL ...`: T-sort
        if word(t, Keyword::WITHIN) && tokens[..i].iter().any(|p| word(p, Keyword::ORDER)) {
            return Some((t.span.start, "T-sorting a stream (ORDER BY ... WITHIN)".into()));
        }
        if matches!(&t.token, Token::Word(w) if w.value == "EXPEDITED")
            && prev.is_some_and(|p| word(p, Keyword::INSERT))
        {
            return Some((t.span.start, "INSERT EXPEDITED".into()));
        }
    }
    None
}
