//! Bad application code gets its line, column and what was expected; features sluice
//! does not run are named.

use sluice::SluiceError;
use sluice::app::AppSpec;

fn plan(sql: &str) -> Result<(), SluiceError> {
    let file = super::write_recording(&[]);
    let app: AppSpec = super::recorded_app(
        sql,
        &[("A", "INTEGER", "$.a"), ("B", "VARCHAR(8)", "$.b")],
        file.path(),
        &[],
    );
    sluice::planner::plan_application(&app).map(|_| ())
}

const STREAM: &str = "CREATE OR REPLACE STREAM \"OUT\" (a INTEGER);\n";

#[test]
fn syntax_error_has_line_column_and_expectation() {
    let err = plan(&format!("{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM a FROM \"SOURCE_SQL_STREAM_001\" WHERE;")).unwrap_err();
    match err {
        SluiceError::Sql { line, column, message } => {
            assert_eq!(line, 3, "{message}");
            assert!(column > 40, "column {column}: {message}");
            assert!(message.to_lowercase().contains("expected"), "{message}");
        }
        other => panic!("expected a SQL error, got {other}"),
    }
}

#[test]
fn unknown_column_is_reported_at_its_position() {
    let err = plan(&format!("{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM nope FROM \"SOURCE_SQL_STREAM_001\";")).unwrap_err();
    match err {
        SluiceError::Sql { line, message, .. } => {
            assert_eq!(line, 3, "{message}");
            assert!(message.contains("NOPE"), "{message}");
        }
        other => panic!("expected a SQL error, got {other}"),
    }
}

#[test]
fn wrong_case_stream_name_gets_a_hint() {
    let err = plan(&format!(
        "{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM a FROM \"source_sql_stream_001\";"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("SOURCE_SQL_STREAM_001"), "{err}");
}

#[test]
fn streaming_group_by_without_a_rowtime_key_is_refused() {
    let err = plan(&format!("{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" GROUP BY b;")).unwrap_err();
    assert!(err.to_string().contains("monotonic"), "{err}");
}

#[test]
fn column_count_mismatch_is_refused() {
    let err = plan(&format!(
        "{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\" SELECT STREAM a, b FROM \"SOURCE_SQL_STREAM_001\";"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("2 columns"), "{err}");
}

#[test]
fn distinct_without_a_time_item_says_what_to_add() {
    let err = plan(&format!(
        "{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM DISTINCT a FROM \"SOURCE_SQL_STREAM_001\";"
    ))
    .unwrap_err();
    match err {
        SluiceError::Sql { line, message, .. } => {
            assert_eq!(line, 2, "{message}");
            assert!(
                message.contains("SELECT STREAM DISTINCT") && message.contains("STEP(s.ROWTIME"),
                "{message}"
            );
        }
        other => panic!("expected a SQL error, got {other}"),
    }
}

#[test]
fn a_reference_to_a_name_two_items_share_is_ambiguous() {
    // A subquery's two columns A: the outer query's A could be either.
    let err = plan(&format!(
        "{STREAM}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM a AS x FROM (SELECT STREAM a, a + 1 AS a FROM \"SOURCE_SQL_STREAM_001\") AS t;"
    ))
    .expect_err("the outer A is read: ambiguous");
    assert!(err.to_string().contains("\"A\" is ambiguous"), "{err}");
    plan(
        "CREATE OR REPLACE STREAM \"OUT\" (a INTEGER, b INTEGER);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM a AS x, a + 1 AS x FROM \"SOURCE_SQL_STREAM_001\";"
    )
    .expect("names of a positional INSERT are never read");
    // A reference to the shared name is refused, where it is.
    for (query, line) in [
        (
            "SELECT STREAM t.x FROM (SELECT STREAM a AS x, a + 1 AS x FROM \"SOURCE_SQL_STREAM_001\") AS t",
            3,
        ),
        (
            "SELECT STREAM a AS x, a + 1 AS x FROM \"SOURCE_SQL_STREAM_001\" ORDER BY FLOOR(ROWTIME TO SECOND), x",
            3,
        ),
    ] {
        let err = plan(&format!(
            "CREATE OR REPLACE STREAM \"OUT\" (a INTEGER, b INTEGER);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  {query};"
        ))
        .unwrap_err();
        match err {
            SluiceError::Sql { line: l, message, .. } => {
                assert_eq!(l, line, "{message}");
                assert!(message.contains("\"X\" is ambiguous"), "{message}");
            }
            other => panic!("expected a SQL error, got {other}"),
        }
    }
}

/// Columns declared in lower case (as a manifest may) are reached only in double quotes:
/// the message says so in the dialect's words, at the name, and never sends the user to
/// a DataFusion setting.
#[test]
fn a_lower_case_column_named_without_quotes_is_told_to_quote_it() {
    let file = super::write_recording(&[]);
    let plan = |sql: &str| {
        let app = super::recorded_app(
            sql,
            &[
                ("ts", "TIMESTAMP", "$.ts"),
                ("event_type", "VARCHAR(8)", "$.event_type"),
            ],
            file.path(),
            &[],
        );
        sluice::planner::plan_application(&app).map(|_| ())
    };
    let stream = "CREATE OR REPLACE STREAM \"OUT\" (t TIMESTAMP, e VARCHAR(8));\n";
    let err = plan(&format!(
        "{stream}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM ts, \"event_type\" FROM \"SOURCE_SQL_STREAM_001\";"
    ))
    .unwrap_err();
    match err {
        SluiceError::Sql { line, column, message } => {
            assert_eq!((line, column), (3, 17), "{message}");
            assert!(
                message.starts_with(
                    "No field named TS: the column is declared as \"ts\" and unquoted names are upper-cased (KDA's \
                     rule): write \"ts\" in double quotes, or declare the column in upper case (TS)."
                ),
                "{message}"
            );
            assert!(!message.contains("enable_ident_normalization"), "{message}");
        }
        other => panic!("expected a SQL error, got {other}"),
    }
    // Written as the message says, it plans.
    plan(&format!(
        "{stream}CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"\n  SELECT STREAM \"ts\", \"event_type\" FROM \"SOURCE_SQL_STREAM_001\";"
    ))
    .unwrap();
}
