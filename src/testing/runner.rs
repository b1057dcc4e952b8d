//! `sluice test CASE_DIR...`: runs conformance cases and reports PASS / FAIL per case.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::engine::{RunOptions, RunOutput, TimeMode};
use crate::testing::case::{Case, is_case_dir, load_case};
use crate::testing::compare::{CompareOptions, DEFAULT_MAX_DIFF_LINES, batches_to_rows, compare_rows};

/// How long one case may run before it counts as failed.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// Options of [`run_cases_with`].
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub timeout: Duration,
    /// At most this many `-`/`+` row lines per failing stream.
    pub max_diff_lines: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            timeout: DEFAULT_CASE_TIMEOUT,
            max_diff_lines: DEFAULT_MAX_DIFF_LINES,
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The reason, possibly several lines.
    Fail(String),
}

/// Runs every case found under `dirs` (a case folder, or a folder whose subfolders are
/// cases, searched recursively in name order), writing `PASS name` / `FAIL name` plus
/// the reason for each case, then the line `N passed, M failed`.
///
/// A case that cannot be loaded, does not plan, fails in the engine, times out or
/// produces the wrong rows is a failed case; only a path that does not exist or holds
/// no case is an error of the run.
pub async fn run_cases(dirs: &[PathBuf], out: &mut impl Write) -> anyhow::Result<Summary> {
    run_cases_with(dirs, out, &RunnerOptions::default()).await
}

/// [`run_cases`] with explicit options.
pub async fn run_cases_with(
    dirs: &[PathBuf],
    out: &mut impl Write,
    options: &RunnerOptions,
) -> anyhow::Result<Summary> {
    let cases = discover_cases(dirs)?;
    let mut summary = Summary::default();
    for dir in &cases {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        match run_case(dir, options).await {
            Outcome::Pass => {
                summary.passed += 1;
                writeln!(out, "PASS {name}")?;
            }
            Outcome::Fail(reason) => {
                summary.failed += 1;
                writeln!(out, "FAIL {name}")?;
                for line in reason.lines() {
                    writeln!(out, "    {line}")?;
                }
            }
        }
        out.flush()?;
    }
    writeln!(out, "{} passed, {} failed", summary.passed, summary.failed)?;
    out.flush()?;
    Ok(summary)
}

/// The case folders under `dirs`, in order: each argument that is a case folder itself,
/// otherwise the case folders below it (recursively, sorted by name; hidden folders
/// skipped). Duplicates are kept once.
pub fn discover_cases(dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut cases: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !dir.exists() {
            anyhow::bail!("{}: no such file or directory", dir.display());
        }
        let dir = if dir.is_file() && dir.file_name().is_some_and(|n| n == super::case::CASE_FILE) {
            dir.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        } else {
            dir.clone()
        };
        if !dir.is_dir() {
            anyhow::bail!("{}: not a directory", dir.display());
        }
        let before = cases.len();
        collect_cases(&dir, &mut cases).with_context(|| format!("reading {}", dir.display()))?;
        if cases.len() == before {
            anyhow::bail!(
                "{}: no conformance case found (no {} in it or below it)",
                dir.display(),
                super::case::CASE_FILE
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    cases.retain(|c| seen.insert(c.canonicalize().unwrap_or_else(|_| c.clone())));
    Ok(cases)
}

fn collect_cases(dir: &Path, cases: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if is_case_dir(dir) {
        cases.push(dir.to_path_buf());
        return Ok(());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    subdirs.sort();
    for sub in subdirs {
        collect_cases(&sub, cases)?;
    }
    Ok(())
}

/// Loads, runs and checks one case.
pub async fn run_case(dir: &Path, options: &RunnerOptions) -> Outcome {
    let case = match load_case(dir) {
        Ok(c) => c,
        Err(e) => return Outcome::Fail(format!("cannot load case: {e}")),
    };
    let output = match run_engine(&case, options.timeout).await {
        Ok(o) => o,
        Err(reason) => return Outcome::Fail(reason),
    };
    check_output(&case, &output, options.max_diff_lines)
}

/// Compares every expected output of `case` with what the engine produced.
pub fn check_output(case: &Case, output: &RunOutput, max_diff_lines: usize) -> Outcome {
    let mut report = String::new();
    for expected in &case.expected {
        let batches = output.streams.get(&expected.stream);
        let (columns, rows) = batches_to_rows(batches.map(Vec::as_slice).unwrap_or(&[]));
        let has_schema = batches.is_some_and(|b| !b.is_empty());
        let options = CompareOptions {
            columns: expected.compare.clone(),
            tolerance: expected.tolerance,
        };
        let diff = compare_rows(
            &expected.rows,
            has_schema.then_some(columns.as_slice()),
            &rows,
            &options,
        );
        if diff.is_match() {
            continue;
        }
        let file = expected
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        report.push_str(&format!("stream {} (expected {file}): ", expected.stream));
        if batches.is_none() {
            report.push_str("[the engine returned no output for this stream] ");
        }
        report.push_str(&diff.render(max_diff_lines));
    }
    if report.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(report.trim_end().to_string())
    }
}

/// Runs the engine on the case's application on a thread of its own (with its own
/// runtime), so a panic or a hang in the engine fails the case instead of the run.
async fn run_engine(case: &Case, timeout: Duration) -> Result<RunOutput, String> {
    let app = case.app.clone();
    let options = RunOptions::new(TimeMode::Recorded {
        flush_at: case.flush_at,
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("case-{}", case.name))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime: {e}"))?;
                let result = runtime
                    .block_on(crate::engine::run(&app, options))
                    .map_err(|e| format!("engine error: {e}"));
                // Do not wait for tasks the engine may have left running.
                runtime.shutdown_background();
                result
            }));
            let result = result.unwrap_or_else(|panic| Err(format!("engine panicked: {}", panic_message(&panic))));
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start the case thread: {e}"));
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("engine stopped without a result".to_string()),
        Err(_) => Err(format!("timed out after {} s", timeout.as_secs_f64())),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_nested_cases_in_name_order() {
        let root = tempfile::tempdir().unwrap();
        for name in ["b-case", "a-case", "group/c-case", ".hidden/d-case"] {
            let d = root.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("case.toml"), "").unwrap();
        }
        std::fs::create_dir_all(root.path().join("empty")).unwrap();
        let found = discover_cases(&[root.path().to_path_buf()]).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a-case", "b-case", "c-case"]);
        // A case folder given directly, and twice.
        let one = root.path().join("a-case");
        assert_eq!(discover_cases(&[one.clone(), one.clone()]).unwrap(), vec![one]);
        assert!(discover_cases(&[root.path().join("empty")]).is_err());
        assert!(discover_cases(&[root.path().join("nope")]).is_err());
    }

    #[test]
    fn check_output_passes_and_fails_with_a_diff() {
        use std::sync::Arc;

        use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("case.toml"),
            "code = \"app.sql\"\n[[inputs]]\nstream = \"IN\"\nformat = \"JSON\"\nfile = \"in.jsonl\"\n\
             columns = [{ name = \"K\", sql_type = \"VARCHAR(4)\", mapping = \"$.k\" }]\n\
             [[outputs]]\nstream = \"OUT\"\nfile = \"expected.jsonl\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("app.sql"), "-- app").unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "").unwrap();
        std::fs::write(
            dir.path().join("expected.jsonl"),
            "{\"ROWTIME\": \"2024-01-01 00:01:00.000\", \"K\": \"a\", \"N\": 2}\n\
             {\"ROWTIME\": \"2024-01-01 00:01:00.000\", \"K\": \"b\", \"N\": 1}\n",
        )
        .unwrap();
        let case = load_case(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("N", DataType::Int64, true),
            Field::new("ROWTIME", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        let batch = |n_for_a: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec!["b", "a"])),
                    Arc::new(Int64Array::from(vec![1, n_for_a])),
                    Arc::new(TimestampMillisecondArray::from(vec![1704067260000, 1704067260000])),
                ],
            )
            .unwrap()
        };
        let mut output = RunOutput::default();
        output.streams.insert("OUT".to_string(), vec![batch(2)]);
        assert_eq!(check_output(&case, &output, 10), Outcome::Pass);

        output.streams.insert("OUT".to_string(), vec![batch(3)]);
        let Outcome::Fail(reason) = check_output(&case, &output, 10) else {
            panic!("expected a failure")
        };
        assert!(
            reason.starts_with("stream OUT (expected expected.jsonl): 1 missing, 1 unexpected"),
            "{reason}"
        );
        assert!(
            reason.contains("- {\"ROWTIME\": \"2024-01-01 00:01:00.000\", \"K\": \"a\", \"N\": 2}"),
            "{reason}"
        );
        assert!(
            reason.contains("+ {\"ROWTIME\": \"2024-01-01 00:01:00.000\", \"K\": \"a\", \"N\": 3}"),
            "{reason}"
        );
        assert!(reason.contains("differs in: N (expected 2, got 3)"), "{reason}");

        let Outcome::Fail(reason) = check_output(&case, &RunOutput::default(), 10) else {
            panic!()
        };
        assert!(
            reason.contains("the engine returned no output for this stream"),
            "{reason}"
        );
        assert!(reason.contains("2 missing, 0 unexpected"), "{reason}");
    }

    #[tokio::test]
    async fn broken_cases_fail_without_failing_the_run() {
        let root = tempfile::tempdir().unwrap();
        let bad = root.path().join("bad-toml");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("case.toml"), "unknown_key = 1\n").unwrap();
        let mut out = Vec::new();
        let summary = run_cases(&[root.path().to_path_buf()], &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(summary, Summary { passed: 0, failed: 1 });
        assert!(text.starts_with("FAIL bad-toml\n"), "{text}");
        assert!(text.contains("unknown_key"), "{text}");
        assert!(text.ends_with("0 passed, 1 failed\n"), "{text}");
    }

    #[tokio::test]
    async fn runs_published_cases_to_a_summary() {
        // Whatever the engine's state, every case ends in PASS or FAIL and the run ends
        // with the summary line.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
        if !root.is_dir() {
            return;
        }
        let options = RunnerOptions {
            timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let mut out = Vec::new();
        let summary = run_cases_with(&[root], &mut out, &options).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        eprintln!("{text}");
        assert!(summary.passed + summary.failed >= 1);
        assert!(
            text.ends_with(&format!("{} passed, {} failed\n", summary.passed, summary.failed)),
            "{text}"
        );
    }
}
