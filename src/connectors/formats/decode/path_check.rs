//! JSON columns whose path matches nothing in the data.
//!
//! A JSON column without a mapping reads `$.<NAME>`, and a manifest's names are upper
//! case while most data's keys are not: every value is then NULL (a missing member is
//! NULL), and an event time or a NOT NULL column sends every record to `error_stream`,
//! with nothing said at start. Looking once at an input's first records finds such
//! columns, and the members of the records suggest the path the user meant.

use std::collections::BTreeSet;

use super::{ColPath, Core, Format};
use crate::connectors::RawRecord;
use crate::connectors::formats::json::{Doc, Kind, Seg, unescape_into};

/// How many of the first records are looked at (the first batch holds up to 4,096).
const RECORDS_LOOKED_AT: usize = 1_000;
/// How deep into a row's objects members are gathered for suggestions.
const MEMBER_DEPTH: usize = 4;
/// At most this many distinct member paths are gathered.
const MAX_MEMBERS: usize = 10_000;

/// A JSON column whose path matched no member of the records looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPath {
    pub column: String,
    /// The column's path, as written (or the default `$.<NAME>`).
    pub mapping: String,
    /// A path that does match, differing only in the case of its names or in the way to
    /// its last name.
    pub suggestion: Option<String>,
    /// How many records were looked at.
    pub records: usize,
}

pub(super) fn unmatched(core: &Core, records: &[RawRecord]) -> Vec<UnmatchedPath> {
    let Format::Json { row_path, flatten } = &core.format else {
        return Vec::new();
    };
    let mut doc = Doc::default();
    let mut tmp = String::new();
    let mut matched = vec![false; core.cols.len()];
    let mut members = BTreeSet::new();
    let (mut looked_at, mut rows) = (0, 0);
    for record in records.iter().take(RECORDS_LOOKED_AT) {
        // A record that does not parse says nothing about the paths (it is an error row).
        let Ok(text) = std::str::from_utf8(&record.data) else {
            continue;
        };
        if doc.parse(text).is_err() {
            continue;
        }
        looked_at += 1;
        for &root in &doc.roots {
            let Some(selected) = doc.walk(root, row_path, text, &mut tmp) else {
                continue;
            };
            let row_nodes: Vec<u32> = match doc.node(selected).kind {
                Kind::Object => vec![selected],
                Kind::Array => doc
                    .children(selected)
                    .filter(|&r| doc.node(r).kind == Kind::Object)
                    .collect(),
                _ => Vec::new(),
            };
            for row in row_nodes {
                rows += 1;
                for (col, matched) in core.cols.iter().zip(matched.iter_mut()) {
                    *matched = *matched
                        || match &col.path {
                            ColPath::Position => true,
                            ColPath::Plain(path) => doc.walk(row, path, text, &mut tmp).is_some(),
                            ColPath::Flat(suffix) => flatten
                                .as_deref()
                                .and_then(|prefix| doc.walk(row, prefix, text, &mut tmp))
                                .filter(|&array| doc.node(array).kind == Kind::Array)
                                .is_some_and(|array| {
                                    doc.children(array)
                                        .any(|e| doc.walk(e, suffix, text, &mut tmp).is_some())
                                }),
                        };
                }
                gather_members(&doc, row, text, &mut Vec::new(), &mut members);
            }
        }
    }
    if rows == 0 {
        return Vec::new();
    }
    core.cols
        .iter()
        .zip(&matched)
        .filter(|(_, matched)| !**matched)
        .map(|(col, _)| UnmatchedPath {
            column: col.name.clone(),
            mapping: col.mapping.clone(),
            suggestion: match &col.path {
                ColPath::Plain(path) => suggest(path, &members),
                _ => None,
            },
            records: looked_at,
        })
        .collect()
}

/// The member paths of `object` (keys from the row, nested objects up to
/// [`MEMBER_DEPTH`] deep) into `out`.
fn gather_members(doc: &Doc, object: u32, text: &str, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    for member in doc.children(object) {
        if out.len() >= MAX_MEMBERS {
            return;
        }
        let node = doc.node(member);
        let raw = text.get(node.key_start as usize..node.key_end as usize).unwrap_or("");
        let key = if node.key_escaped {
            let mut unescaped = String::new();
            unescape_into(raw, &mut unescaped);
            unescaped
        } else {
            raw.to_string()
        };
        prefix.push(key);
        out.insert(prefix.clone());
        if node.kind == Kind::Object && prefix.len() < MEMBER_DEPTH {
            gather_members(doc, member, text, prefix, out);
        }
        prefix.pop();
    }
}

/// The member path that `path` most likely meant: the same names in another case, else
/// the shortest path to a member whose name is the path's last one in any case.
fn suggest(path: &[Seg], members: &BTreeSet<Vec<String>>) -> Option<String> {
    let keys: Option<Vec<&str>> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    if let Some(keys) = keys {
        let same_names = members
            .iter()
            .find(|m| m.len() == keys.len() && m.iter().zip(&keys).all(|(m, k)| m.eq_ignore_ascii_case(k)));
        if let Some(m) = same_names {
            return Some(render(m));
        }
    }
    let Some(Seg::Key(last)) = path.last() else {
        return None;
    };
    members
        .iter()
        .filter(|m| m.last().is_some_and(|name| name.eq_ignore_ascii_case(last)))
        .min_by_key(|m| m.len())
        .map(|m| render(m))
}

/// A member path as a JSONPath: `$.a.b`, with `['...']` for names that are not plain.
fn render(names: &[String]) -> String {
    let mut out = String::from("$");
    for name in names {
        let plain = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            out.push('.');
            out.push_str(name);
        } else if name.contains('\'') {
            out.push_str(&format!("[\"{name}\"]"));
        } else {
            out.push_str(&format!("['{name}']"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{RecordColumn, RecordFormat, RecordSchema};
    use crate::connectors::formats::RecordDecoder;
    use crate::types::{ColumnDef, SqlType};

    fn decoder(columns: &[(&str, Option<&str>)], row_path: &str) -> RecordDecoder {
        let schema = RecordSchema {
            columns: columns
                .iter()
                .map(|(name, mapping)| RecordColumn {
                    column: ColumnDef::new(*name, SqlType::parse("VARCHAR(16)").unwrap()),
                    mapping: mapping.map(str::to_string),
                })
                .collect(),
            format: RecordFormat::Json {
                row_path: row_path.into(),
            },
        };
        RecordDecoder::new(&schema, "IN_001").unwrap()
    }

    fn records(lines: &[&str]) -> Vec<RawRecord> {
        lines
            .iter()
            .map(|l| RawRecord {
                data: l.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect()
    }

    fn found(d: &RecordDecoder, lines: &[&str]) -> Vec<(String, String, Option<String>)> {
        d.unmatched_paths(&records(lines))
            .into_iter()
            .map(|u| (u.column, u.mapping, u.suggestion))
            .collect()
    }

    fn entry(column: &str, mapping: &str, suggestion: Option<&str>) -> (String, String, Option<String>) {
        (column.into(), mapping.into(), suggestion.map(str::to_string))
    }

    #[test]
    fn a_path_that_matches_in_another_case_is_suggested() {
        let d = decoder(&[("TS", None), ("EVENT_TYPE", None), ("CITY", Some("$.city"))], "$");
        let lines = [
            r#"{"ts": "2026-03-01 10:00:00", "event_type": "ride", "city": "Oslo"}"#,
            "not json",
        ];
        assert_eq!(
            found(&d, &lines),
            [
                entry("TS", "$.TS", Some("$.ts")),
                entry("EVENT_TYPE", "$.EVENT_TYPE", Some("$.event_type"))
            ]
        );
    }

    #[test]
    fn a_member_of_the_last_name_elsewhere_is_suggested_and_a_member_in_any_record_matches() {
        let d = decoder(
            &[("TS", Some("$.ts")), ("USER", Some("$.user")), ("NOTE", Some("$.note"))],
            "$",
        );
        // `note` appears in the second record only: it matches. `ts` is nested.
        let lines = [
            r#"{"meta": {"Ts": "x", "deeper": {"ts": "y"}}, "user id": 1}"#,
            r#"{"meta": {}, "note": null}"#,
        ];
        assert_eq!(
            found(&d, &lines),
            [entry("TS", "$.ts", Some("$.meta.Ts")), entry("USER", "$.user", None)]
        );
    }

    #[test]
    fn rows_are_found_under_the_row_path_and_names_that_are_not_plain_are_bracketed() {
        let d = decoder(&[("USER_ID", Some("$.user_id"))], "$.rows");
        let lines = [r#"{"rows": [{"User_Id": 1}, {"x": 2}]}"#];
        assert_eq!(found(&d, &lines), [entry("USER_ID", "$.user_id", Some("$.User_Id"))]);
        let d = decoder(&[("SPACED", Some("$.spaced"))], "$");
        assert_eq!(
            found(&d, &[r#"{"a": {"Spaced": 1}, "b c": {"spaced": 2}}"#]),
            [entry("SPACED", "$.spaced", Some("$.a.Spaced"))]
        );
        assert_eq!(render(&["b c".into(), "it's".into()]), "$['b c'][\"it's\"]");
    }

    #[test]
    fn nothing_is_said_without_rows_or_when_every_path_matches() {
        let d = decoder(&[("A", Some("$.a"))], "$");
        assert!(found(&d, &["not json", "[1, 2]"]).is_empty());
        assert!(found(&d, &[r#"{"a": null}"#]).is_empty());
        assert!(found(&d, &[]).is_empty());
    }
}
