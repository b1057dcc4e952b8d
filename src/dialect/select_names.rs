//! Select lists whose items share a name.
//!
//! KDA accepts `MAX(speed) AS min_speed, MIN(speed) AS min_speed` (an INSERT maps columns
//! by position, so the names never matter there) and two identical unaliased items.
//! DataFusion refuses any projection with two columns of one name. So before planning,
//! every item of such a group gets a name of its own: `MIN_SPEED#1`, `MIN_SPEED#2` for a
//! shared name, `EXPR$<position>` (KDA's system name) for an unnamed expression.
//!
//! All the items of a group are renamed, the first included: a reference to the shared
//! name (an ORDER BY, or an outer query reading a subquery's column) then finds no
//! column, and [`ambiguous_reference`] turns that planning error into the real one, a
//! reference that is ambiguous. Names are never ambiguous where nothing refers to them.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Spanned, Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::tokenizer::{Location, Span};

use crate::types::ROWTIME;

/// A name that several items of one select list share.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedName {
    pub name: String,
    /// The first place outside those items that names it, if any: where an error about
    /// the reference points.
    pub reference: Option<Location>,
}

/// What renaming found: the shared names and the source spans of the renamed items.
#[derive(Default)]
struct Renamed {
    names: Vec<String>,
    items: Vec<Span>,
}

/// Renames the items of every select list of `query` (subqueries included) that share a
/// name, and returns the shared names.
pub fn make_unique(query: &mut Query) -> Vec<SharedName> {
    struct Renamer(Renamed);
    impl VisitorMut for Renamer {
        type Break = ();
        fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            rename_in(query.body.as_mut(), &mut self.0);
            ControlFlow::Continue(())
        }
    }
    let mut renamer = Renamer(Renamed::default());
    let _ = VisitMut::visit(query, &mut renamer);
    let renamed = renamer.0;
    renamed
        .names
        .iter()
        .map(|name| SharedName {
            name: name.clone(),
            reference: first_reference(query, name, &renamed.items),
        })
        .collect()
}

/// Where `query` first names `name` as a column, outside the items that were renamed.
fn first_reference(query: &Query, name: &str, renamed: &[Span]) -> Option<Location> {
    struct Finder<'a> {
        name: &'a str,
        renamed: &'a [Span],
        found: Vec<Location>,
    }
    impl Visitor for Finder<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let ident = match e {
                Expr::Identifier(i) => Some(i),
                Expr::CompoundIdentifier(parts) => parts.last(),
                _ => None,
            };
            if let Some(i) = ident
                && i.value == self.name
                && i.span.start.line > 0
                && !self
                    .renamed
                    .iter()
                    .any(|s| s.start <= i.span.start && i.span.end <= s.end)
            {
                self.found.push(i.span.start);
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        name,
        renamed,
        found: Vec::new(),
    };
    let _ = Visit::visit(query, &mut finder);
    finder.found.into_iter().min()
}

/// The branches of a set operation are select lists of their own; a nested query is
/// visited as a query.
fn rename_in(body: &mut SetExpr, renamed: &mut Renamed) {
    match body {
        SetExpr::Select(select) => rename_items(&mut select.projection, renamed),
        SetExpr::SetOperation { left, right, .. } => {
            rename_in(left, renamed);
            rename_in(right, renamed);
        }
        _ => {}
    }
}

/// What an item is called in the select list's output: its alias, a column's name, or
/// the expression's text without qualifiers (DataFusion names `MAX(speed)` and
/// `MAX(s.speed)` alike). A wildcard has no name of its own.
enum ItemName {
    Named(String),
    Unnamed(String),
}

fn item_name(item: &SelectItem) -> Option<ItemName> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(ItemName::Named(alias.value.clone())),
        SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(ItemName::Named(i.value.clone())),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
            parts.last().map(|i| ItemName::Named(i.value.clone()))
        }
        SelectItem::UnnamedExpr(e) => Some(ItemName::Unnamed(unqualified(e).to_string())),
        _ => None,
    }
}

fn unqualified(e: &Expr) -> Expr {
    struct Strip;
    impl VisitorMut for Strip {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e
                && let Some(last) = parts.last()
            {
                *e = Expr::Identifier(last.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let _ = VisitMut::visit(&mut e, &mut Strip);
    e
}

fn rename_items(items: &mut [SelectItem], renamed: &mut Renamed) {
    let names: Vec<Option<ItemName>> = items.iter().map(item_name).collect();
    let key = |n: &ItemName| match n {
        ItemName::Named(s) => format!("n:{s}"),
        ItemName::Unnamed(s) => format!("e:{s}"),
    };
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(n) = name {
            groups.entry(key(n)).or_default().push(i);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        let group = &groups[&key(name)];
        if group.len() < 2 {
            continue;
        }
        let new_name = match name {
            // `x AS ROWTIME` sets the row's time: never renamed.
            ItemName::Named(n) if n == ROWTIME => continue,
            ItemName::Named(n) => {
                if group[0] == i {
                    renamed.names.push(n.clone());
                }
                let nth = group.iter().position(|&g| g == i).expect("the item is in its group") + 1;
                format!("{n}#{nth}")
            }
            ItemName::Unnamed(_) => format!("EXPR${i}"),
        };
        renamed.items.push(items[i].span());
        let alias = Ident::with_quote('"', new_name);
        items[i] = match std::mem::replace(&mut items[i], SelectItem::Wildcard(Default::default())) {
            SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => {
                SelectItem::ExprWithAlias { expr, alias }
            }
            other => other,
        };
    }
}

/// A planning error that is a reference to one of the `shared` names: that reference is
/// ambiguous. Returns the name.
pub fn ambiguous_reference<'a>(e: &DataFusionError, shared: &'a [SharedName]) -> Option<&'a SharedName> {
    let DataFusionError::SchemaError(err, _) = e.find_root() else {
        return None;
    };
    let datafusion::common::SchemaError::FieldNotFound { field, .. } = err.as_ref() else {
        return None;
    };
    shared.iter().find(|n| n.name == field.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::parser::Parser;

    fn renamed(sql: &str) -> (String, Vec<String>) {
        let (sql, shared) = renamed_at(sql);
        (sql, shared.into_iter().map(|s| s.name).collect())
    }

    fn renamed_at(sql: &str) -> (String, Vec<SharedName>) {
        let dialect = crate::dialect::KdaDialect::default();
        let mut statements = Parser::parse_sql(&dialect, sql).unwrap();
        let datafusion::sql::sqlparser::ast::Statement::Query(query) = &mut statements[0] else {
            panic!("not a query");
        };
        let shared = make_unique(query);
        (query.to_string(), shared)
    }

    #[test]
    fn items_sharing_an_alias_get_numbered_names() {
        let (sql, shared) = renamed("SELECT MAX(speed) AS MIN_SPEED, MIN(speed) AS MIN_SPEED, v FROM s");
        assert_eq!(
            sql,
            r#"SELECT MAX(speed) AS "MIN_SPEED#1", MIN(speed) AS "MIN_SPEED#2", v FROM s"#
        );
        assert_eq!(shared, ["MIN_SPEED"]);
    }

    #[test]
    fn identical_unnamed_items_get_system_names() {
        let (sql, shared) = renamed("SELECT s.v + 1, v + 1, v FROM s");
        assert_eq!(sql, r#"SELECT s.v + 1 AS "EXPR$0", v + 1 AS "EXPR$1", v FROM s"#);
        assert!(shared.is_empty());
        // A column selected twice, once qualified: both carry its name.
        let (sql, shared) = renamed("SELECT s.v, v FROM s");
        assert_eq!(sql, r#"SELECT s.v AS "v#1", v AS "v#2" FROM s"#);
        assert_eq!(shared, ["v"]);
    }

    #[test]
    fn subqueries_and_union_branches_are_renamed_apart() {
        let (sql, shared) =
            renamed("SELECT a FROM (SELECT x AS a, y AS a FROM s) AS t UNION ALL SELECT b AS c, b AS c FROM u");
        assert_eq!(
            sql,
            r#"SELECT a FROM (SELECT x AS "a#1", y AS "a#2" FROM s) AS t UNION ALL SELECT b AS "c#1", b AS "c#2" FROM u"#
        );
        assert_eq!(shared, ["a", "c"]);
    }

    #[test]
    fn distinct_names_and_rowtime_stay() {
        let (sql, shared) = renamed("SELECT a, b AS c, t AS ROWTIME, u AS ROWTIME, * FROM s");
        assert_eq!(sql, "SELECT a, b AS c, t AS ROWTIME, u AS ROWTIME, * FROM s");
        assert!(shared.is_empty());
    }

    #[test]
    fn a_reference_is_located_outside_the_renamed_items() {
        let (_, shared) = renamed_at("SELECT x, x FROM s ORDER BY\n  x");
        assert_eq!(shared[0].name, "x");
        assert_eq!(shared[0].reference, Some(Location::new(2, 3)));
        let (_, shared) = renamed_at("SELECT t.x\nFROM (SELECT a AS x, b AS x FROM s) AS t");
        assert_eq!(shared[0].reference, Some(Location::new(1, 10)));
        let (_, shared) = renamed_at("SELECT a AS x, b AS x FROM s");
        assert_eq!(shared[0].reference, None);
    }
}
