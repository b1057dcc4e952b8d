//! Loading a conformance case (`case.toml` and its files) into an [`AppSpec`] plus the
//! expected outputs. The format is described in the conformance README.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::app::{
    AppSpec, DestinationSpec, EventTimeSpec, InputSpec, OutputFormat, OutputSpec, RecordColumn, RecordFormat,
    RecordSchema, ReferenceSpec, SourceSpec,
};
use crate::error::{Result, SluiceError};
use crate::testing::compare::{DEFAULT_TOLERANCE, Row, row_from_json};
use crate::time::{Millis, parse_timestamp};
use crate::types::{ColumnDef, SqlType};

/// The file that marks a folder as a conformance case.
pub const CASE_FILE: &str = "case.toml";

/// A loaded conformance case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case folder's name.
    pub name: String,
    pub dir: PathBuf,
    pub description: Option<String>,
    /// The application: every input is a recording, every checked stream is collected.
    pub app: AppSpec,
    pub expected: Vec<ExpectedOutput>,
    /// `[run] flush_at`: how far the end of input advances time (None: close every window).
    pub flush_at: Option<Millis>,
}

/// One `[[outputs]]` entry: the rows one stream must produce.
#[derive(Debug, Clone)]
pub struct ExpectedOutput {
    /// The in-application stream, exact name.
    pub stream: String,
    pub file: PathBuf,
    pub rows: Vec<Row>,
    /// `compare`: only these columns are compared (None: the columns the rows name).
    pub compare: Option<Vec<String>>,
    /// Relative tolerance for REAL / DOUBLE values.
    pub tolerance: f64,
}

// ---------------------------------------------------------------------------------------
// case.toml, as written
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    description: Option<String>,
    /// Application code file, relative to the case folder (default `app.sql`).
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    inputs: Vec<CaseInput>,
    #[serde(default)]
    references: Vec<CaseReference>,
    #[serde(default)]
    outputs: Vec<CaseOutput>,
    #[serde(default)]
    run: Option<CaseRun>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseInput {
    stream: String,
    #[serde(default)]
    format: Option<String>,
    file: String,
    #[serde(default)]
    row_delimiter: Option<String>,
    #[serde(default)]
    column_delimiter: Option<String>,
    /// JSON RecordRowPath (default `$`).
    #[serde(default)]
    row_path: Option<String>,
    /// Recorded records at the start that are no data (a CSV header), default 0.
    #[serde(default)]
    skip_header_lines: u64,
    columns: Vec<CaseColumn>,
    /// A sluice extension: ROWTIME from a column of the records (as a manifest's
    /// `[inputs.event_time]`) instead of the recording's `rowtime`.
    #[serde(default)]
    event_time: Option<CaseEventTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEventTime {
    column: String,
    #[serde(default)]
    max_delay_ms: i64,
    #[serde(default)]
    late_stream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseReference {
    table: String,
    #[serde(default)]
    format: Option<String>,
    file: String,
    #[serde(default)]
    skip_header_lines: usize,
    #[serde(default)]
    row_delimiter: Option<String>,
    #[serde(default)]
    column_delimiter: Option<String>,
    #[serde(default)]
    row_path: Option<String>,
    columns: Vec<CaseColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseColumn {
    name: String,
    sql_type: String,
    #[serde(default)]
    mapping: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseOutput {
    stream: String,
    file: String,
    #[serde(default)]
    compare: Option<Vec<String>>,
    #[serde(default)]
    tolerance: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRun {
    #[serde(default)]
    flush_at: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// Does `dir` hold a conformance case?
pub fn is_case_dir(dir: &Path) -> bool {
    dir.join(CASE_FILE).is_file()
}

fn config(case_toml: &Path, msg: impl std::fmt::Display) -> SluiceError {
    SluiceError::config(format!("{}: {msg}", case_toml.display()))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| SluiceError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Loads the case in `dir`: parses `case.toml`, reads the application code and the
/// expected rows, and builds the [`AppSpec`] the engine runs.
pub fn load_case(dir: &Path) -> Result<Case> {
    let toml_path = dir.join(CASE_FILE);
    let text = read(&toml_path)?;
    let file: CaseFile = toml::from_str(&text).map_err(|e| config(&toml_path, e.to_string().trim_end()))?;

    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let code_path = dir.join(file.code.as_deref().unwrap_or("app.sql"));
    let sql = read(&code_path)?;

    let mut inputs = Vec::new();
    for (i, input) in file.inputs.iter().enumerate() {
        let what = format!("inputs[{i}] ({})", input.stream);
        let format = record_format(
            input.format.as_deref(),
            &input.file,
            input.row_path.as_deref(),
            input.row_delimiter.as_deref(),
            input.column_delimiter.as_deref(),
        )
        .map_err(|e| config(&toml_path, format!("{what}: {e}")))?;
        let columns =
            record_columns(&input.columns, &format).map_err(|e| config(&toml_path, format!("{what}: {e}")))?;
        inputs.push(InputSpec {
            name_prefix: name_prefix_of(&input.stream),
            stream_name: Some(input.stream.clone()),
            parallelism: 1,
            event_time: input.event_time.as_ref().map(|e| EventTimeSpec {
                column: e.column.clone(),
                max_delay_ms: e.max_delay_ms,
                idle_timeout_ms: None,
                late_stream: e.late_stream.clone(),
            }),
            preprocessor: None,
            schema: RecordSchema { columns, format },
            source: SourceSpec::Recorded {
                path: dir.join(&input.file),
                skip_header_lines: input.skip_header_lines,
            },
        });
    }

    let mut references = Vec::new();
    for (i, r) in file.references.iter().enumerate() {
        let what = format!("references[{i}] ({})", r.table);
        let format = record_format(
            r.format.as_deref(),
            &r.file,
            r.row_path.as_deref(),
            r.row_delimiter.as_deref(),
            r.column_delimiter.as_deref(),
        )
        .map_err(|e| config(&toml_path, format!("{what}: {e}")))?;
        let columns = record_columns(&r.columns, &format).map_err(|e| config(&toml_path, format!("{what}: {e}")))?;
        references.push(ReferenceSpec {
            table: r.table.clone(),
            schema: RecordSchema { columns, format },
            location: crate::app::ReferenceLocation::File(dir.join(&r.file)),
            skip_header_lines: r.skip_header_lines,
            refresh_interval: None,
        });
    }

    let mut outputs: Vec<OutputSpec> = Vec::new();
    let mut expected = Vec::new();
    for (i, o) in file.outputs.iter().enumerate() {
        let tolerance = o.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(config(
                &toml_path,
                format!("outputs[{i}] ({}): tolerance must be >= 0", o.stream),
            ));
        }
        if let Some(cols) = &o.compare
            && cols.is_empty()
        {
            return Err(config(
                &toml_path,
                format!("outputs[{i}] ({}): compare must name at least one column", o.stream),
            ));
        }
        let path = dir.join(&o.file);
        let rows = load_expected_rows(&path)?;
        if !outputs.iter().any(|s| s.stream == o.stream) {
            outputs.push(OutputSpec {
                stream: o.stream.clone(),
                format: OutputFormat::Json,
                destination: DestinationSpec::Collect,
            });
        }
        expected.push(ExpectedOutput {
            stream: o.stream.clone(),
            file: path,
            rows,
            compare: o.compare.clone(),
            tolerance,
        });
    }

    let flush_at = match file.run.as_ref().and_then(|r| r.flush_at.as_deref()) {
        Some(text) => Some(
            parse_timestamp(text)
                .ok_or_else(|| config(&toml_path, format!("[run] flush_at: '{text}' is not a timestamp")))?,
        ),
        None => None,
    };

    Ok(Case {
        name: name.clone(),
        dir: dir.to_path_buf(),
        description: file.description,
        app: AppSpec {
            name,
            sql,
            inputs,
            references,
            outputs,
        },
        expected,
        flush_at,
    })
}

/// Reads an expected-output file: one JSON object per line; blank lines are ignored, so
/// an empty file means no rows.
pub fn load_expected_rows(path: &Path) -> Result<Vec<Row>> {
    let text = read(path)?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row = row_from_json(line).map_err(|e| SluiceError::config(format!("{}:{}: {e}", path.display(), n + 1)))?;
        rows.push(row);
    }
    Ok(rows)
}

/// `SOURCE_SQL_STREAM_001` → `SOURCE_SQL_STREAM`; other names are their own prefix.
fn name_prefix_of(stream: &str) -> String {
    match stream.rsplit_once('_') {
        Some((prefix, n)) if !prefix.is_empty() && n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
            prefix.to_string()
        }
        _ => stream.to_string(),
    }
}

fn record_format(
    format: Option<&str>,
    file: &str,
    row_path: Option<&str>,
    row_delimiter: Option<&str>,
    column_delimiter: Option<&str>,
) -> std::result::Result<RecordFormat, String> {
    let format = match format {
        Some(f) => f.trim().to_ascii_uppercase(),
        None => {
            let lower = file.to_ascii_lowercase();
            if lower.ends_with(".csv") || lower.ends_with(".tsv") {
                "CSV".to_string()
            } else if lower.ends_with(".json") || lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
                "JSON".to_string()
            } else {
                return Err("format is missing (JSON or CSV)".to_string());
            }
        }
    };
    match format.as_str() {
        "JSON" => {
            if row_delimiter.is_some() || column_delimiter.is_some() {
                return Err("row_delimiter / column_delimiter apply to CSV only".to_string());
            }
            Ok(RecordFormat::Json {
                row_path: row_path.unwrap_or("$").to_string(),
            })
        }
        "CSV" => {
            if row_path.is_some() {
                return Err("row_path applies to JSON only".to_string());
            }
            let row_delimiter = row_delimiter.unwrap_or("\n").to_string();
            let column_delimiter = column_delimiter.unwrap_or(",").to_string();
            if row_delimiter.is_empty() || column_delimiter.is_empty() {
                return Err("delimiters must not be empty".to_string());
            }
            Ok(RecordFormat::Csv {
                row_delimiter,
                column_delimiter,
            })
        }
        other => Err(format!("unknown format '{other}' (expected JSON or CSV)")),
    }
}

fn record_columns(columns: &[CaseColumn], format: &RecordFormat) -> std::result::Result<Vec<RecordColumn>, String> {
    if columns.is_empty() {
        return Err("columns must list at least one column".to_string());
    }
    columns
        .iter()
        .map(|c| {
            let sql_type = SqlType::parse(&c.sql_type).map_err(|e| format!("column {}: {e}", c.name))?;
            let mapping = match format {
                // KDA requires a mapping for JSON; `$.NAME` is what schema discovery writes.
                RecordFormat::Json { .. } => Some(c.mapping.clone().unwrap_or_else(|| format!("$.{}", c.name))),
                RecordFormat::Csv { .. } => None,
            };
            Ok(RecordColumn {
                column: ColumnDef::new(c.name.clone(), sql_type),
                mapping,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conformance_dir() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
        dir.is_dir().then_some(dir)
    }

    #[test]
    fn every_published_case_loads() {
        let Some(root) = conformance_dir() else {
            eprintln!("conformance directory not found; skipping");
            return;
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| is_case_dir(p))
            .collect();
        dirs.sort();
        assert!(!dirs.is_empty());
        for dir in dirs {
            let case = load_case(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            assert!(!case.app.sql.trim().is_empty(), "{}", case.name);
            assert!(!case.app.inputs.is_empty(), "{}", case.name);
            assert!(!case.expected.is_empty(), "{}", case.name);
            for input in &case.app.inputs {
                assert_eq!(input.stream_names().len(), 1);
                assert!(
                    matches!(&input.source, SourceSpec::Recorded { path, .. } if path.is_file()),
                    "{}",
                    case.name
                );
            }
            for out in &case.expected {
                assert!(
                    case.app
                        .outputs
                        .iter()
                        .any(|o| o.stream == out.stream && o.destination == DestinationSpec::Collect)
                );
            }
        }
    }

    #[test]
    fn loads_a_case_with_names_kept_exactly() {
        let Some(root) = conformance_dir() else { return };
        let dir = root.join("reference-left-join");
        if !dir.is_dir() {
            return;
        }
        let case = load_case(&dir).unwrap();
        assert_eq!(case.name, "reference-left-join");
        let input = &case.app.inputs[0];
        assert_eq!(input.stream_name.as_deref(), Some("SOURCE_SQL_STREAM_001"));
        assert_eq!(input.name_prefix, "SOURCE_SQL_STREAM");
        assert_eq!(input.parallelism, 1);
        assert_eq!(input.schema.format, RecordFormat::Json { row_path: "$".into() });
        assert_eq!(input.schema.columns[0].mapping.as_deref(), Some("$.flight"));
        let r = &case.app.references[0];
        assert_eq!(r.table, "Airports");
        assert_eq!(r.skip_header_lines, 1);
        assert_eq!(r.schema.columns[3].column.name, "HubTier");
        assert_eq!(r.schema.columns[3].column.sql_type, SqlType::Integer);
        assert!(r.schema.columns.iter().all(|c| c.mapping.is_none()));
        assert_eq!(
            r.schema.format,
            RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into()
            }
        );
        assert_eq!(case.flush_at, None);
        assert!((case.expected[0].tolerance - DEFAULT_TOLERANCE).abs() < f64::EPSILON);
    }

    fn write_case(toml_text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("case.toml"), toml_text).unwrap();
        std::fs::write(dir.path().join("app.sql"), "SELECT 1;").unwrap();
        std::fs::write(dir.path().join("input.csv"), "").unwrap();
        std::fs::write(dir.path().join("expected.jsonl"), "\n").unwrap();
        std::fs::write(
            dir.path().join("errors.jsonl"),
            "{\"DATA_ROWTIME\": \"2024-01-01T00:00:01\"}\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn optional_keys_are_accepted() {
        let dir = write_case(
            r#"
description = "all optional keys"
code = "app.sql"
[[inputs]]
stream = "in"
format = "csv"
file = "input.csv"
row_delimiter = "|"
column_delimiter = "\t"
columns = [ { name = "a", sql_type = "varchar(4)" } ]
[[outputs]]
stream = "DESTINATION_SQL_STREAM"
file = "expected.jsonl"
tolerance = 1e-3
[[outputs]]
stream = "error_stream"
file = "errors.jsonl"
compare = ["DATA_ROWTIME"]
[run]
flush_at = "2024-01-01T00:10:00Z"
"#,
        );
        let case = load_case(dir.path()).unwrap();
        assert_eq!(case.app.inputs[0].stream_names(), vec!["in".to_string()]);
        assert_eq!(
            case.app.inputs[0].schema.format,
            RecordFormat::Csv {
                row_delimiter: "|".into(),
                column_delimiter: "\t".into()
            }
        );
        assert_eq!(case.flush_at, parse_timestamp("2024-01-01 00:10:00.000"));
        assert!(case.expected[0].rows.is_empty());
        assert_eq!(case.expected[0].tolerance, 1e-3);
        assert_eq!(case.expected[1].rows.len(), 1);
        assert_eq!(
            case.expected[1].compare.as_deref(),
            Some(&["DATA_ROWTIME".to_string()][..])
        );
        assert_eq!(case.app.outputs.len(), 2);
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let dir = write_case(
            r#"
code = "app.sql"
[[inputs]]
stream = "in"
format = "CSV"
file = "input.csv"
colums = []
columns = [ { name = "a", sql_type = "INTEGER" } ]
"#,
        );
        let err = load_case(dir.path()).unwrap_err().to_string();
        assert!(err.contains("colums"), "{err}");
        let dir = write_case("[run]\nflush = \"2024-01-01\"\n");
        let err = load_case(dir.path()).unwrap_err().to_string();
        assert!(err.contains("flush"), "{err}");
        let dir = write_case("[run]\nflush_at = \"soon\"\n");
        let err = load_case(dir.path()).unwrap_err().to_string();
        assert!(err.contains("flush_at"), "{err}");
    }

    #[test]
    fn stream_prefixes() {
        assert_eq!(name_prefix_of("SOURCE_SQL_STREAM_001"), "SOURCE_SQL_STREAM");
        assert_eq!(name_prefix_of("clicks"), "clicks");
        assert_eq!(name_prefix_of("IN_1"), "IN_1");
    }
}
