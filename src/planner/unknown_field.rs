//! DataFusion's "No field named ..." in the dialect's words.
//!
//! DataFusion spells names its way (a lower-case name bare, any other in double quotes)
//! and, when a column differs from the name only in case, points at a DataFusion setting
//! (`enable_ident_normalization`) that sluice users cannot reach. In KDA an unquoted name
//! is upper-cased, so a column declared in lower case (`ts` in a manifest) is reached only
//! as `"ts"`: the message says that, and spells every name as the dialect writes it.

use std::sync::LazyLock;

use regex::Regex;

/// One name as DataFusion prints it: segments that are bare lower-case words or quoted.
const NAME: &str = r#"(?:"(?:[^"]|"")*"|[a-z_][a-z0-9_]*)(?:\.(?:"(?:[^"]|"")*"|[a-z_][a-z0-9_]*))*"#;

static FIELD_NOT_FOUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"No field named (?P<wanted>{NAME})(?:\. Did you mean '(?P<closest>{NAME})'\?|\.)(?:\nColumn names are case sensitive\. You can use double quotes to refer to the (?P<case>{NAME}) column or disable the datafusion\.sql_parser\.enable_ident_normalization configuration\.)?(?:\nValid fields are (?P<valid>{NAME}(?:, {NAME})*)\.)?"
    ))
    .expect("a valid pattern")
});

static SEGMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""((?:[^"]|"")*)"|([a-z_][a-z0-9_]*)"#).expect("a valid pattern"));

/// Any other sentence that names the setting (a DataFusion version may word it anew).
static SETTING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)(?:Column names are case sensitive\.)?[^.\n]*enable_ident_normalization[^.\n]*\.?")
        .expect("a valid pattern")
});

/// The segments of a name as DataFusion prints it, unquoted.
fn segments(name: &str) -> Vec<String> {
    SEGMENT
        .captures_iter(name)
        .map(|c| match c.get(1) {
            Some(quoted) => quoted.as_str().replace("\"\"", "\""),
            None => c[2].to_string(),
        })
        .collect()
}

/// A name segment as the dialect writes it: bare when upper-casing leaves it as it is.
fn dialect_segment(segment: &str) -> String {
    let bare = segment.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && segment
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if bare {
        segment.to_string()
    } else {
        format!("\"{}\"", segment.replace('"', "\"\""))
    }
}

/// A name DataFusion printed, as the dialect writes it.
fn dialect_name(name: &str) -> String {
    segments(name)
        .iter()
        .map(|s| dialect_segment(s))
        .collect::<Vec<_>>()
        .join(".")
}

/// What to write instead, for a column that differs from the written name only in case.
fn case_hint(column: &str) -> String {
    let upper = column.to_uppercase();
    if upper == column {
        format!(
            "the column is {column}: write it without quotes or as \"{column}\" (a name in double quotes keeps \
             its case)"
        )
    } else {
        format!(
            "the column is declared as \"{column}\" and unquoted names are upper-cased (KDA's rule): write \
             \"{column}\" in double quotes, or declare the column in upper case ({upper})"
        )
    }
}

/// The message with DataFusion's unknown-field text, if any, in the dialect's words.
pub(crate) fn in_dialect_words(message: &str) -> String {
    let message = FIELD_NOT_FOUND.replace_all(message, |c: &regex::Captures| {
        let mut out = format!("No field named {}", dialect_name(&c["wanted"]));
        match (c.name("case"), c.name("closest")) {
            (Some(case), _) => {
                let column = segments(case.as_str()).pop().unwrap_or_default();
                out.push_str(&format!(": {}.", case_hint(&column)));
            }
            (None, Some(closest)) => out.push_str(&format!(". Did you mean {}?", dialect_name(closest.as_str()))),
            (None, None) => out.push('.'),
        }
        if let Some(valid) = c.name("valid") {
            let names: Vec<String> = valid.as_str().split(", ").map(dialect_name).collect();
            out.push_str(&format!("\nValid fields are {}.", names.join(", ")));
        }
        out
    });
    SETTING
        .replace_all(
            &message,
            "Unquoted names are upper-cased (KDA's rule); a name in double quotes keeps its case.",
        )
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::in_dialect_words;

    #[test]
    fn a_lower_case_column_is_written_in_double_quotes() {
        let df = "No field named \"TS\". Did you mean '\"SOURCE_SQL_STREAM_001\".ts'?\nColumn names are case \
                  sensitive. You can use double quotes to refer to the \"SOURCE_SQL_STREAM_001\".ts column or \
                  disable the datafusion.sql_parser.enable_ident_normalization configuration.\nValid fields are \
                  \"SOURCE_SQL_STREAM_001\".ts, \"SOURCE_SQL_STREAM_001\".event_type, \
                  \"SOURCE_SQL_STREAM_001\".\"ROWTIME\".";
        assert_eq!(
            in_dialect_words(df),
            "No field named TS: the column is declared as \"ts\" and unquoted names are upper-cased (KDA's rule): \
             write \"ts\" in double quotes, or declare the column in upper case (TS).\nValid fields are \
             SOURCE_SQL_STREAM_001.\"ts\", SOURCE_SQL_STREAM_001.\"event_type\", SOURCE_SQL_STREAM_001.ROWTIME."
        );
    }

    #[test]
    fn a_quoted_lower_case_name_of_an_upper_case_column_is_told_to_drop_the_quotes() {
        let df = "No field named ts. Did you mean 's.\"TS\"'?\nColumn names are case sensitive. You can use double \
                  quotes to refer to the s.\"TS\" column or disable the \
                  datafusion.sql_parser.enable_ident_normalization configuration.";
        let m = in_dialect_words(df);
        assert_eq!(
            m,
            "No field named \"ts\": the column is TS: write it without quotes or as \"TS\" (a name in double quotes \
             keeps its case)."
        );
    }

    #[test]
    fn other_unknown_fields_keep_their_suggestion_in_the_dialect_spelling() {
        assert_eq!(
            in_dialect_words("No field named \"NOPE\". Did you mean '\"S\".\"NOTE\"'?"),
            "No field named NOPE. Did you mean S.NOTE?"
        );
        assert_eq!(
            in_dialect_words("No field named \"NOPE\".\nValid fields are \"S\".\"A b\", \"S\".\"q\"\"x\"."),
            "No field named NOPE.\nValid fields are S.\"A b\", S.\"q\"\"x\"."
        );
        // Any wording that names the setting loses it.
        let m = in_dialect_words(
            "Something. You could disable the datafusion.sql_parser.enable_ident_normalization configuration.",
        );
        assert!(!m.contains("enable_ident_normalization"), "{m}");
        assert!(m.contains("upper-cased"), "{m}");
    }
}
