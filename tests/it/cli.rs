//! The `sluice` binary, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A recorded case of the repository's own (the published conformance cases live outside
/// the repository, so the tests of a plain clone must not need them).
fn recorded_case(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries").join(path)
}

const DASHBOARD_CASE: &str = "tumbling-dashboard/cases/minute-boundaries-flush";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn test_command_passes_a_case_and_ends_with_the_summary_line() {
    let out = sluice()
        .args(["test"])
        .arg(recorded_case(DASHBOARD_CASE))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim_end().lines().last(), Some("1 passed, 0 failed"), "{stdout}");
}

#[test]
fn test_command_fails_a_wrong_expectation_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("tampered");
    copy_dir(&recorded_case(DASHBOARD_CASE), &case);
    // The case runs its example's application two folders up.
    let toml = std::fs::read_to_string(case.join("case.toml")).unwrap();
    let app = recorded_case("tumbling-dashboard/app.sql");
    std::fs::write(
        case.join("case.toml"),
        toml.replace("\"../../app.sql\"", &format!("{:?}", app.display().to_string())),
    )
    .unwrap();
    let expected = std::fs::read_to_string(case.join("expected_city_stats.jsonl")).unwrap();
    assert!(expected.contains("\"EVENTS\": 3"), "{expected}");
    std::fs::write(
        case.join("expected_city_stats.jsonl"),
        expected.replacen("\"EVENTS\": 3", "\"EVENTS\": 4", 1),
    )
    .unwrap();
    let out = sluice().arg("test").arg(&case).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL tampered"), "{stdout}");
    assert!(stdout.contains("EVENTS"), "diff should show the row: {stdout}");
    assert_eq!(stdout.trim_end().lines().last(), Some("0 passed, 1 failed"), "{stdout}");
}

#[test]
fn run_command_filters_a_file_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"sensor": "s{}", "temp": {}}}"#, i % 3, i))
        .chain(["not json at all".to_string()])
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input.join("\n")).unwrap();
    std::fs::write(
        dir.path().join("app.sql"),
        r#"CREATE OR REPLACE STREAM "HOT" (sensor VARCHAR(4), temp_f DOUBLE);
           CREATE OR REPLACE PUMP "P" AS INSERT INTO "HOT"
             SELECT STREAM sensor, temp * 9 / 5 + 32 FROM "SOURCE_SQL_STREAM_001" WHERE temp >= 40;"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        r#"code = "app.sql"
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ { name = "SENSOR", sql_type = "VARCHAR(4)", mapping = "$.sensor" },
            { name = "TEMP", sql_type = "INTEGER", mapping = "$.temp" } ]
[inputs.source]
kind = "file"
path = "in.jsonl"
[[outputs]]
stream = "HOT"
[outputs.destination]
kind = "file"
path = "out/hot.jsonl"
[[outputs]]
stream = "error_stream"
[outputs.destination]
kind = "file"
path = "out/errors.jsonl"
"#,
    )
    .unwrap();
    let out = sluice().arg("run").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hot = std::fs::read_to_string(dir.path().join("out/hot.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = hot.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 10, "{hot}");
    assert_eq!(rows[0]["SENSOR"], "s1");
    assert_eq!(rows[0]["TEMP_F"].as_f64(), Some(104.0));
    let errors = std::fs::read_to_string(dir.path().join("out/errors.jsonl")).unwrap();
    assert_eq!(errors.lines().count(), 1, "the bad record is in error_stream: {errors}");
}

#[test]
fn run_command_reports_bad_sql_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "").unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        r#"code_text = """
CREATE OR REPLACE STREAM "OUT" (a INTEGER);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT" SELECT STREAM a FROM "SOURCE_SQL_STREAM_001" WHERE a >;
"""
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ { name = "A", sql_type = "INTEGER", mapping = "$.a" } ]
[inputs.source]
kind = "file"
path = "in.jsonl"
"#,
    )
    .unwrap();
    let out = sluice().arg("run").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("line 2, column 103"), "{stderr}");
    assert!(stderr.contains("column"), "{stderr}");
}

/// An application that delivers `error_stream` still checkpoints: error rows travel
/// outside the barrier flow, so that output must not be waited for (it once stalled
/// every checkpoint of the demo application).
#[test]
fn an_application_with_an_error_stream_output_completes_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/cancellation-spike"),
        &app,
    );
    let state = dir.path().join("state");
    let out = sluice()
        .args(["run"])
        .arg(&app)
        .args(["--rate", "4000", "--limit", "6000", "--checkpoint-interval-ms", "100"])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = sluice::state::CheckpointStore::open(&state).unwrap();
    let latest = store.latest().unwrap().expect("a checkpoint was committed");
    assert!(latest.id >= 2, "checkpoints kept completing: last id {}", latest.id);
}

/// A folder with an application that copies `SENSOR` from its JSON input into a file
/// output; `input_path` and `output_path` are written into the manifest as they are.
fn copy_app(dir: &Path, input_path: &str, output_path: &str) {
    std::fs::write(
        dir.join("sluice.toml"),
        format!(
            r#"code_text = """
CREATE OR REPLACE STREAM "OUT" (sensor VARCHAR(8));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT" SELECT STREAM sensor FROM "SOURCE_SQL_STREAM_001";
"""
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ {{ name = "SENSOR", sql_type = "VARCHAR(8)", mapping = "$.sensor" }} ]
[inputs.source]
kind = "file"
path = "{input_path}"
[[outputs]]
stream = "OUT"
[outputs.destination]
kind = "file"
path = "{output_path}"
"#
        ),
    )
    .unwrap();
}

fn sensors(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["SENSOR"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn run_input_option_reads_another_file_without_editing_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    copy_app(dir.path(), "in.jsonl", "out.jsonl");
    std::fs::write(dir.path().join("in.jsonl"), "{\"sensor\": \"manifest\"}\n").unwrap();
    let other = dir.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("today.jsonl"), "{\"sensor\": \"a\"}\n{\"sensor\": \"b\"}\n").unwrap();

    // PATH is relative to where the command runs, as any command-line path.
    let out = sluice()
        .current_dir(&other)
        .arg("run")
        .arg(dir.path())
        .args(["--input", "SOURCE_SQL_STREAM=today.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sensors(&dir.path().join("out.jsonl")), ["a", "b"]);

    // An unknown name is refused, naming the inputs there are; so does `explain`.
    for command in ["run", "explain"] {
        let out = sluice()
            .arg(command)
            .arg(dir.path())
            .args(["--input", "RIDES=today.jsonl"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("no input or reference table named RIDES")
                && stderr.contains("its inputs: SOURCE_SQL_STREAM"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn run_expands_environment_variables_in_file_paths() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("2026-03-01.jsonl"), "{\"sensor\": \"march\"}\n").unwrap();
    copy_app(
        dir.path(),
        "${SLUICE_DATA}/${SLUICE_DAY}.jsonl",
        "${SLUICE_OUT}/copied.jsonl",
    );
    let out_dir = dir.path().join("results");
    let out = sluice()
        .arg("run")
        .arg(dir.path())
        .env("SLUICE_DATA", &data)
        .env("SLUICE_DAY", "2026-03-01")
        .env("SLUICE_OUT", &out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sensors(&out_dir.join("copied.jsonl")), ["march"]);

    // A variable that is not set is named, with the setting that uses it.
    let out = sluice()
        .arg("run")
        .arg(dir.path())
        .env("SLUICE_DATA", &data)
        .env("SLUICE_OUT", &out_dir)
        .env_remove("SLUICE_DAY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("inputs[0] (SOURCE_SQL_STREAM).source: `path`")
            && stderr.contains("the environment variable SLUICE_DAY is not set"),
        "{stderr}"
    );
}

/// Lower-case keys in the data and columns without a mapping (whose path is then
/// `$.<NAME>`): the run says so at start, once, with the mapping that would match.
#[test]
fn run_warns_when_a_json_path_matches_nothing_and_suggests_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"ts": "2026-03-01 10:00:{i:02}", "event_type": "ride", "city": "Oslo"}}"#))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        r#"code_text = """
CREATE OR REPLACE STREAM "OUT" (ts TIMESTAMP, city VARCHAR(8));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT" SELECT STREAM ts, city FROM "SOURCE_SQL_STREAM_001";
"""
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ { name = "TS", sql_type = "TIMESTAMP" },
            { name = "EVENT_TYPE", sql_type = "VARCHAR(8)" },
            { name = "CITY", sql_type = "VARCHAR(8)", mapping = "$.city" } ]
[inputs.source]
kind = "file"
path = "in.jsonl"
[[outputs]]
stream = "OUT"
[outputs.destination]
kind = "file"
path = "out.jsonl"
"#,
    )
    .unwrap();
    let out = sluice()
        .arg("run")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "input SOURCE_SQL_STREAM_001: column TS reads the JSON path $.TS, which matches no member of the first \
             10 records, so its value is NULL; the records have $.ts: give the column mapping = \"$.ts\""
        ),
        "{stderr}"
    );
    assert!(stderr.contains("mapping = \"$.event_type\""), "{stderr}");
    assert!(!stderr.contains("column CITY"), "CITY's mapping matches: {stderr}");
    assert_eq!(stderr.matches("column TS reads").count(), 1, "said once: {stderr}");
}

/// Planning needs a reference table's columns, not its rows: `sluice explain` works when
/// the table's bucket is unreachable or its file is missing, and `sluice run` refuses to
/// start, naming the table.
#[test]
fn explain_reads_no_reference_data_and_run_refuses_to_start_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |reference: &str| {
        format!(
            r#"code_text = """
CREATE OR REPLACE STREAM "OUT" (CITY VARCHAR(16), TAG VARCHAR(16));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
  SELECT STREAM s.CITY, t.TAG FROM "SOURCE_SQL_STREAM_001" AS s JOIN "TAGS" AS t ON s.CITY = t.CITY;
"""
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ {{ name = "CITY", sql_type = "VARCHAR(16)", mapping = "$.city" }} ]
[inputs.source]
kind = "generator"
limit = 10
[[references]]
table_name = "TAGS"
{reference}
[references.schema]
record_format = "CSV"
columns = [ {{ name = "CITY", sql_type = "VARCHAR(16)" }}, {{ name = "TAG", sql_type = "VARCHAR(16)" }} ]
[[outputs]]
stream = "OUT"
[outputs.destination]
kind = "stdout"
"#
        )
    };
    let cases = [
        (
            "unreachable bucket",
            r#"s3 = { bucket_arn = "arn:aws:s3:::nowhere", file_key = "tags.csv", endpoint = "http://127.0.0.1:9", region = "us-east-1", access_key_id = "x", secret_access_key = "x" }"#,
        ),
        ("missing file", r#"path = "no-such-tags.csv""#),
    ];
    for (what, reference) in cases {
        std::fs::write(dir.path().join("sluice.toml"), manifest(reference)).unwrap();
        let explained = sluice().arg("explain").arg(dir.path()).output().unwrap();
        let stdout = String::from_utf8_lossy(&explained.stdout);
        assert!(
            explained.status.success() && stdout.contains("TAGS"),
            "{what}: {stdout}{}",
            String::from_utf8_lossy(&explained.stderr)
        );
    }
    // The run reads the data first, and does not start without it.
    let ran = sluice().arg("run").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("reference table TAGS") && stderr.contains("no-such-tags.csv"),
        "{stderr}"
    );
}
