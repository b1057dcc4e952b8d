//! A fuzzer over the SQL front end and the record decoders, run in CI on a small budget
//! (`SLUICE_FUZZ_CASES` raises it; `SLUICE_FUZZ_SEED` explores other inputs).
//!
//! SQL: the example applications under `queries/`, mutated token by token (deleted,
//! repeated, swapped, or replaced by a word from a dictionary of the dialect's keywords,
//! extreme numbers, odd types), planned as `sluice explain` plans them. Every mutant must
//! plan or be refused with a message a user can act on: no panic, a position, and no
//! Rust debug dump or DataFusion internals. Records: random and mutated JSON and CSV
//! records through the decoder; each must give rows or exactly one `error_stream` row.
//!
//! The seeds include the crashes issue 13 reported (long expression chains, a stream
//! named `error_stream`, a pump cycle).

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

fn budget(default: u32) -> u32 {
    std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("SLUICE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(13);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    )
}

/// The example applications: their folder (manifest) and code.
fn examples() -> Vec<(PathBuf, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries");
    let mut apps: Vec<(PathBuf, String)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("sluice.toml").is_file() && p.join("app.sql").is_file())
        .map(|p| {
            let sql = std::fs::read_to_string(p.join("app.sql")).unwrap();
            (p, sql)
        })
        .collect();
    apps.sort();
    apps
}

/// Words, quoted names and strings, numbers and punctuation, with the text between them
/// kept, so that a mutant is the original with a few tokens changed.
fn tokens(sql: &str) -> Vec<String> {
    let re =
        regex::Regex::new(r#"(?s)--[^\n]*|'(?:[^']|'')*'|"[^"]*"|[A-Za-z_][A-Za-z0-9_$]*|[0-9]+(?:\.[0-9]+)?|\s+|."#)
            .unwrap();
    re.find_iter(sql).map(|m| m.as_str().to_string()).collect()
}

const DICTIONARY: &[&str] = &[
    "SELECT",
    "STREAM",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "WINDOW",
    "OVER",
    "PARTITION",
    "RANGE",
    "ROWS",
    "PRECEDING",
    "FOLLOWING",
    "JOIN",
    "LEFT",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "DISTINCT",
    "UNION",
    "ALL",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "CAST",
    "INTERVAL",
    "'1'",
    "'-1'",
    "SECOND",
    "MINUTE",
    "TO",
    "STEP",
    "FLOOR",
    "ROWTIME",
    "CURSOR",
    "TABLE",
    "(",
    ")",
    ",",
    ";",
    "*",
    "+",
    "/",
    "=",
    "<",
    "||",
    "0",
    "-1",
    "2147483647",
    "9223372036854775807",
    "1e308",
    "''",
    "'x'",
    "DECIMAL(100,200)",
    "CHAR(0)",
    "VARCHAR(0)",
    "avg",
    "COUNT",
    "SUM",
    "LPAD",
    "REPEAT",
    "TIMESTAMP",
    "\"error_stream\"",
    "\"SOURCE_SQL_STREAM_001\"",
    "MONOTONIC",
    "LAG",
    "TUMBLE",
    "DESCRIPTOR",
    "WITHIN",
    "EXTRACT",
    "SUBSTRING",
    "ROW",
    "CREATE",
    "PUMP",
    "INSERT",
    "INTO",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Repeat(usize),
    Swap(usize, usize),
    Replace(usize, usize),
}

fn mutate(tokens: &[String], mutations: &[Mutation]) -> String {
    // Mutate only the tokens that are not blanks, so a mutation always changes the code.
    let mut t: Vec<String> = tokens.to_vec();
    for m in mutations {
        let solid: Vec<usize> = (0..t.len()).filter(|&i| !t[i].trim().is_empty()).collect();
        if solid.is_empty() {
            break;
        }
        let at = |i: usize| solid[i % solid.len()];
        match *m {
            Mutation::Delete(i) => {
                t.remove(at(i));
            }
            Mutation::Repeat(i) => {
                let i = at(i);
                t.insert(i, format!("{} ", t[i]));
            }
            Mutation::Swap(i, j) => t.swap(at(i), at(j)),
            Mutation::Replace(i, w) => {
                let i = at(i);
                t[i] = DICTIONARY[w % DICTIONARY.len()].to_string();
            }
        }
    }
    t.concat()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Repeat),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, w)| Mutation::Replace(i, w)),
    ]
}

/// What a refused application must not show a user: Rust debug dumps, DataFusion's
/// request for a bug report about the user's own typo, and internal error kinds.
fn unhelpful(message: &str) -> Option<&'static str> {
    let dump = regex::Regex::new(r"[A-Z][A-Za-z]+ \{ [a-z_]+: |\bSome\(|\bArc\(|\bOk\(|\bErr\(").unwrap();
    let lower = message.to_lowercase();
    if lower.contains("bug report") || lower.contains("please report") {
        Some("asks for a bug report")
    } else if lower.contains("internal error") {
        Some("calls itself internal")
    } else if dump.is_match(message) {
        Some("contains a Rust debug dump")
    } else if lower.contains("enable_ident_normalization") {
        Some("names a DataFusion setting that sluice users cannot reach")
    } else {
        None
    }
}

/// Plans `sql` in the example's configuration: Ok(true) when refused with a helpful
/// message, Ok(false) when it planned, Err(why) when the refusal does not help.
fn check_refusal(folder: &std::path::Path, sql: &str) -> Result<bool, String> {
    let mut spec =
        sluice::manifest::load_manifest(&folder.join("sluice.toml")).map_err(|e| format!("manifest: {e}"))?;
    spec.sql = sql.to_string();
    let outcome = std::panic::catch_unwind(|| sluice::planner::plan_application(&spec).map(|_| ()));
    let Ok(result) = outcome else {
        return Err(format!("planning panicked on:\n{sql}"));
    };
    let Err(e) = result else { return Ok(false) };
    let message = e.to_string();
    if let Some(why) = unhelpful(&message) {
        return Err(format!("the message {why}: {message}"));
    }
    match e {
        sluice::SluiceError::Sql { line, .. } | sluice::SluiceError::Unsupported { line, .. } if line >= 1 => Ok(true),
        other => Err(format!(
            "a refused statement has no line and column: {other}\n--- code:\n{sql}"
        )),
    }
}

#[test]
fn mutated_applications_plan_or_get_a_helpful_message() {
    use proptest::strategy::ValueTree;
    let apps = examples();
    assert!(apps.len() >= 5, "the examples under queries/ are the fuzzer's seeds");
    let tokenised: Vec<(PathBuf, Vec<String>)> = apps.iter().map(|(p, s)| (p.clone(), tokens(s))).collect();
    let mut runner = runner(0);
    let strategy = (0..tokenised.len(), prop::collection::vec(mutation(), 1..4));
    // Every mutant is tried and every kind of bad message reported at once (by its first
    // 60 characters), so one run shows all there is to fix.
    let (cases, mut refused) = (budget(300), 0);
    let mut bad: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    for _ in 0..cases {
        let (app, mutations) = strategy.new_tree(&mut runner).unwrap().current();
        let (folder, toks) = &tokenised[app];
        let sql = mutate(toks, &mutations);
        match check_refusal(folder, &sql) {
            Ok(true) => refused += 1,
            Ok(false) => {}
            Err(why) => {
                let key: String = why.chars().take(60).collect();
                bad.entry(key).or_insert((0, why)).0 += 1;
            }
        }
    }
    let report: Vec<String> = bad.values().map(|(n, why)| format!("{n} x {why}")).collect();
    assert!(
        bad.is_empty(),
        "{} kinds of unhelpful refusal:\n{}",
        bad.len(),
        report.join("\n\n")
    );
    eprintln!("{cases} mutants: {refused} refused with a helpful message, the rest planned");
}

/// The crashes issue 13 reported, kept as seeds: each now plans or is refused clearly.
#[test]
fn the_reported_crashes_are_refused_clearly_or_planned() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/cancellation-spike");
    let chain = |op: &str, n: usize| (0..n).map(|i| format!("{i}")).collect::<Vec<_>>().join(op);
    let seeds = [
        format!(
            "CREATE OR REPLACE STREAM \"O\" (X BIGINT);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"O\" \
             SELECT STREAM {} FROM \"SOURCE_SQL_STREAM_001\";",
            chain(" + ", 3_000)
        ),
        format!(
            "CREATE OR REPLACE STREAM \"O\" (X BOOLEAN);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"O\" \
             SELECT STREAM {} FROM \"SOURCE_SQL_STREAM_001\";",
            (0..4_000).map(|i| format!("{i} = 1")).collect::<Vec<_>>().join(" OR ")
        ),
        "CREATE OR REPLACE STREAM \"error_stream\" (X INTEGER);".to_string(),
        "CREATE OR REPLACE STREAM \"A\" (X INTEGER);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"A\" \
         SELECT STREAM X FROM \"A\";"
            .to_string(),
        // A name that differs from a column only in case: DataFusion's message names a
        // setting of its own.
        "CREATE OR REPLACE STREAM \"O\" (X VARCHAR(16));\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"O\" \
         SELECT STREAM \"city\" FROM \"SOURCE_SQL_STREAM_001\";"
            .to_string(),
    ];
    for sql in seeds {
        if let Err(why) = check_refusal(&folder, &sql) {
            panic!("{why}");
        }
    }
}

/// Random and mutated records: every record gives rows or exactly one error row, and
/// the decoder never panics.
#[test]
fn random_records_decode_to_rows_or_error_rows() {
    use sluice::app::{RecordColumn, RecordFormat, RecordSchema};
    use sluice::connectors::RawRecord;
    use sluice::connectors::formats::decode::RecordDecoder;
    use sluice::types::{ColumnDef, SqlType};
    let columns = [
        ("S", "VARCHAR(8)", "$.s"),
        ("I", "INTEGER", "$.i"),
        ("D", "DECIMAL(8,2)", "$.d"),
        ("R", "REAL", "$.r"),
        ("T", "TIMESTAMP", "$.t"),
        ("B", "BOOLEAN", "$.b"),
    ];
    let schema = |format: RecordFormat| RecordSchema {
        columns: columns
            .iter()
            .map(|(n, t, m)| RecordColumn {
                column: ColumnDef::new(*n, SqlType::parse(t).unwrap()),
                mapping: matches!(format, RecordFormat::Json { .. }).then(|| m.to_string()),
            })
            .collect(),
        format: format.clone(),
    };
    let json = RecordDecoder::new(&schema(RecordFormat::Json { row_path: "$".into() }), "S").unwrap();
    let csv = RecordDecoder::new(
        &schema(RecordFormat::Csv {
            row_delimiter: "\n".into(),
            column_delimiter: ",".into(),
        }),
        "S",
    )
    .unwrap();
    let good_json = br#"{"s": "abc", "i": 7, "d": 12.99, "r": 1.5, "t": "2026-12-07 10:00:00.000", "b": true}"#;
    let good_csv = b"abc,7,12.99,1.5,2026-12-07 10:00:00.000,true";
    let record = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            any::<bool>()
        )
            .prop_map(|(edits, as_json)| {
                let mut r = if as_json { good_json.to_vec() } else { good_csv.to_vec() };
                for (at, b) in edits {
                    let at = at % r.len();
                    r[at] = b;
                }
                r
            }),
    ];
    let mut runner = runner(budget(400));
    let result = runner.run(&prop::collection::vec(record, 1..20), |records| {
        let raw: Vec<RawRecord> = records
            .iter()
            .map(|d| RawRecord {
                data: d.clone(),
                ..Default::default()
            })
            .collect();
        for decoder in [&json, &csv] {
            let decoded = std::panic::catch_unwind(|| decoder.decode(&raw, 1_000))
                .map_err(|_| TestCaseError::fail(format!("the decoder panicked on {records:?}")))?;
            let rows = decoded.batch.num_rows();
            // A blank record holds no row and is no error (the decoder's documented
            // behaviour, as for a JSON row path into an empty array); every other record
            // gives rows or one error row.
            let holding = raw.iter().filter(|r| !r.data.trim_ascii().is_empty()).count();
            prop_assert!(
                rows + decoded.errors.len() >= holding && decoded.errors.len() <= raw.len(),
                "{} records gave {rows} rows and {} error rows: {:?}",
                raw.len(),
                decoded.errors.len(),
                records
                    .iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .collect::<Vec<_>>()
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
