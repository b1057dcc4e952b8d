//! Durable state: a run that is killed at random moments and restarted with the same
//! state folder produces exactly the output of an uninterrupted run (event time comes
//! from the recording, so windows are deterministic), for a tumbling and a sliding
//! window application writing files.
//!
//! Exactly-once mode (`--exactly-once`): a million records, twenty SIGKILLs, outputs to
//! files and stdout carrying `ROW_ID`s. With event time the outputs (repeats dropped by
//! `ROW_ID`) equal an uninterrupted run's; with clock ROWTIMEs every record is counted
//! exactly once.

use std::path::Path;

use rand::{Rng, SeedableRng};
use sluice::app::{DestinationSpec, OutputFormat, OutputSpec};
use sluice::engine::{CheckpointOptions, RunOptions, TimeMode};

const SQL: &str = r#"
CREATE OR REPLACE STREAM "PER_KEY" (k VARCHAR(8), bucket TIMESTAMP, n BIGINT, total BIGINT, hi BIGINT);
CREATE OR REPLACE PUMP "TUMBLING" AS INSERT INTO "PER_KEY"
  SELECT STREAM k, STEP(s.ROWTIME BY INTERVAL '10' SECOND), COUNT(*), SUM(v), MAX(v)
  FROM "SOURCE_SQL_STREAM_001" AS s GROUP BY k, STEP(s.ROWTIME BY INTERVAL '10' SECOND);
CREATE OR REPLACE STREAM "RUNNING" (k VARCHAR(8), v BIGINT, avg_30s DOUBLE, n_30s BIGINT);
CREATE OR REPLACE PUMP "SLIDING" AS INSERT INTO "RUNNING"
  SELECT STREAM k, v, AVG(v) OVER w, COUNT(*) OVER w FROM "SOURCE_SQL_STREAM_001"
  WINDOW w AS (PARTITION BY k RANGE INTERVAL '30' SECOND PRECEDING);
"#;

fn recording(rows: usize) -> tempfile::NamedTempFile {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let mut t = 1_709_280_000_000i64;
    let lines: Vec<String> = (0..rows)
        .map(|_| {
            t += rng.random_range(0..40);
            let k = format!("k{}", rng.random_range(0..40));
            let v: i64 = rng.random_range(-500..500);
            format!(
                r#"{{"rowtime": "{}", "data": {{"k": "{k}", "v": {v}}}}}"#,
                sluice::time::format_timestamp(t)
            )
        })
        .collect();
    super::write_recording(&lines)
}

fn app(input: &Path, out: &Path) -> sluice::app::AppSpec {
    let mut app = super::recorded_app(SQL, &[("K", "VARCHAR(8)", "$.k"), ("V", "BIGINT", "$.v")], input, &[]);
    for stream in ["PER_KEY", "RUNNING"] {
        app.outputs.push(OutputSpec {
            stream: stream.into(),
            format: OutputFormat::Json,
            destination: DestinationSpec::File {
                path: out.join(format!("{stream}.jsonl")),
            },
        });
    }
    app
}

fn options(state: Option<&Path>) -> RunOptions {
    let mut o = RunOptions::new(TimeMode::Recorded { flush_at: None });
    o.checkpoints = state.map(|d| CheckpointOptions {
        state_dir: d.to_path_buf(),
        interval_ms: 15,
        fresh: false,
    });
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_runs_give_the_uninterrupted_output() {
    let input = recording(40_000);
    let dir = tempfile::tempdir().unwrap();
    let (clean, crashy, state) = (
        dir.path().join("clean"),
        dir.path().join("crashy"),
        dir.path().join("state"),
    );

    sluice::engine::run(&app(input.path(), &clean), options(None))
        .await
        .unwrap();

    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let mut kills = 0;
    let mut resumed_mid_way = 0;
    // Chains of runs sharing one state folder, as in the SIGKILL test below: a chain that
    // finishes before 3 kills is discarded and the next starts from nothing.
    for chain in 0..6u64 {
        let _ = std::fs::remove_dir_all(&state);
        let _ = std::fs::remove_dir_all(&crashy);
        kills = 0;
        resumed_mid_way = 0;
        // On a loaded machine the first checkpoint may take longer than the first kill:
        // widen the kill window after every kill that came before any checkpoint.
        let mut scale = 1u64;
        for attempt in 0..60 {
            let spec = app(input.path(), &crashy);
            let opts = options(Some(&state));
            let run = tokio::spawn(async move { sluice::engine::run(&spec, opts).await });
            // the first runs are killed at random moments; after enough kills, let it finish
            if kills < 6 && attempt < 50 {
                let delay = rng.random_range(20..250) * scale / (chain + 1);
                tokio::time::sleep(std::time::Duration::from_millis(delay.max(10))).await;
                if !run.is_finished() {
                    run.abort();
                    let _ = run.await;
                    kills += 1;
                    let store = sluice::state::CheckpointStore::open(&state).unwrap();
                    if store.latest().unwrap().is_some() {
                        resumed_mid_way += 1;
                    } else {
                        scale = (scale * 2).min(32);
                    }
                    continue;
                }
            }
            run.await.unwrap().unwrap();
            break;
        }
        if kills >= 3 && resumed_mid_way >= 1 {
            break;
        }
    }
    assert!(kills >= 3, "the run was killed {kills} times");
    assert!(resumed_mid_way >= 1, "no checkpoint completed before a kill");
    for stream in ["PER_KEY", "RUNNING"] {
        let a = std::fs::read_to_string(clean.join(format!("{stream}.jsonl"))).unwrap();
        let b = std::fs::read_to_string(crashy.join(format!("{stream}.jsonl"))).unwrap();
        assert!(!a.is_empty());
        assert_eq!(
            a.lines().count(),
            b.lines().count(),
            "{stream}: row count after {kills} kills"
        );
        assert!(a == b, "{stream}: output differs after {kills} kills");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_a_different_application_is_refused_unless_fresh() {
    let input = recording(200);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    sluice::engine::run(&app(input.path(), dir.path()), options(Some(&state)))
        .await
        .unwrap();
    let mut changed = app(input.path(), dir.path());
    changed.sql = changed.sql.replace("'10' SECOND", "'20' SECOND");
    let err = sluice::engine::run(&changed, options(Some(&state))).await.unwrap_err();
    assert!(err.to_string().contains("--fresh"), "{err}");
    let mut fresh = options(Some(&state));
    fresh.checkpoints.as_mut().unwrap().fresh = true;
    sluice::engine::run(&changed, fresh).await.unwrap();
}

/// Exactly-once mode needs a state folder (the CLI and the embedding API say so), and its
/// saved state is not mistaken for the default mode's (or the other way round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_needs_a_state_folder_and_keeps_its_own_state() {
    let input = recording(200);
    let dir = tempfile::tempdir().unwrap();
    let exactly_once = |state: Option<&Path>| {
        let mut o = options(state);
        o.delivery = sluice::engine::Delivery::ExactlyOnce;
        o
    };
    let err = sluice::engine::run(&app(input.path(), dir.path()), exactly_once(None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--state-dir"), "{err}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--exactly-once"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("--state-dir"));

    let state = dir.path().join("state");
    sluice::engine::run(&app(input.path(), dir.path()), options(Some(&state)))
        .await
        .unwrap();
    let err = sluice::engine::run(&app(input.path(), dir.path()), exactly_once(Some(&state)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--fresh"), "{err}");
    let mut fresh = exactly_once(Some(&state));
    fresh.checkpoints.as_mut().unwrap().fresh = true;
    sluice::engine::run(&app(input.path(), dir.path()), fresh)
        .await
        .unwrap();
    let rows = std::fs::read_to_string(dir.path().join("PER_KEY.jsonl")).unwrap();
    assert!(rows.lines().count() > 0);
    assert!(rows.lines().all(|l| l.contains(r#","ROW_ID":"PER_KEY:"#)), "{rows}");
    let err = sluice::engine::run(&app(input.path(), dir.path()), options(Some(&state)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--fresh"), "{err}");
}

/// A manifest with one JSON input with columns K and V: a recording (`kind = "recorded"`,
/// ROWTIME from each line, `$.k`) or a plain file of the same lines (`kind = "file"`,
/// ROWTIME from the clock, `$.data.k`). Outputs are files (a path under the manifest's
/// folder) or stdout (None).
fn manifest(input: &Path, kind: &str, outputs: &[(&str, Option<&str>)]) -> String {
    let prefix = if kind == "recorded" { "$" } else { "$.data" };
    let mut text = format!(
        r#"code = "app.sql"
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ {{ name = "K", sql_type = "VARCHAR(8)", mapping = "{prefix}.k" }}, {{ name = "V", sql_type = "BIGINT", mapping = "{prefix}.v" }} ]
[inputs.source]
kind = "{kind}"
path = "{}"
"#,
        input.display()
    );
    for (stream, path) in outputs {
        text.push_str(&format!("[[outputs]]\nstream = \"{stream}\"\n[outputs.destination]\n"));
        match path {
            Some(path) => text.push_str(&format!("kind = \"file\"\npath = \"{path}\"\n")),
            None => text.push_str("kind = \"stdout\"\n"),
        }
    }
    text
}

/// A folder holding `sluice.toml` and `app.sql`.
pub(crate) fn app_folder(root: &Path, name: &str, manifest: &str, sql: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sluice.toml"), manifest).unwrap();
    std::fs::write(dir.join("app.sql"), sql).unwrap();
    dir
}

pub(crate) fn sluice_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.stderr(std::process::Stdio::null()).env("SLUICE_LOG", "warn");
    c
}

/// How a chain of `sluice run` processes sharing one state folder is killed.
struct Chain<'a> {
    /// The application folder; its `out/` holds the file outputs.
    app: &'a Path,
    state: &'a Path,
    /// More `sluice run` arguments.
    args: &'a [&'a str],
    /// Kill this many runs, then let one finish.
    kills: usize,
    /// A chain that finished with fewer kills is discarded.
    required: usize,
    delay_ms: std::ops::Range<u64>,
    seed: u64,
}

/// Runs chains of `sluice run`: each run is killed with SIGKILL (`Child::kill`) at a random
/// moment and restarted with the same state folder, until `kills` kills; then one run
/// finishes. A restart resumes near the end once most input is checkpointed, so a chain
/// can finish before `required` kills; such a chain is discarded (state and outputs) and
/// the next one starts from nothing, with shorter kill delays. Returns the kills of the
/// last chain and the stdout of each of its runs, in order.
fn killed_chain(c: &Chain) -> (usize, Vec<std::path::PathBuf>) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(c.seed);
    let stdout_dir = c.app.join("stdout");
    let mut kills = 0;
    let mut stdouts = Vec::new();
    for chain in 0..6u64 {
        let _ = std::fs::remove_dir_all(c.state);
        let _ = std::fs::remove_dir_all(c.app.join("out"));
        let _ = std::fs::remove_dir_all(&stdout_dir);
        std::fs::create_dir_all(&stdout_dir).unwrap();
        kills = 0;
        stdouts.clear();
        // On a loaded machine the first checkpoint may take longer than the first kill:
        // widen the kill window after every kill that came before any checkpoint.
        let mut scale = 1u64;
        loop {
            let stdout = stdout_dir.join(format!("{}.out", stdouts.len()));
            let mut child = sluice_command()
                .arg("run")
                .args(c.args)
                .arg("--state-dir")
                .arg(c.state)
                .arg(c.app)
                .stdout(std::fs::File::create(&stdout).unwrap())
                .spawn()
                .unwrap();
            stdouts.push(stdout);
            if kills < c.kills {
                let delay = rng.random_range(c.delay_ms.clone()) * scale / (chain + 1);
                std::thread::sleep(std::time::Duration::from_millis(delay.max(30)));
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    let checkpointed = sluice::state::CheckpointStore::open(c.state)
                        .unwrap()
                        .latest()
                        .unwrap()
                        .is_some();
                    if !checkpointed {
                        scale = (scale * 2).min(16);
                    }
                    continue;
                }
            }
            assert!(child.wait().unwrap().success());
            break;
        }
        if kills >= c.required {
            break;
        }
    }
    (kills, stdouts)
}

/// The same guarantee for the `sluice` binary killed with SIGKILL and restarted with
/// `--state-dir`: the output files equal those of a clean run.
#[test]
fn sigkilled_binary_resumes_without_loss_or_duplicates() {
    let input = recording(60_000);
    let root = tempfile::tempdir().unwrap();
    let outputs = [
        ("PER_KEY", Some("out/PER_KEY.jsonl")),
        ("RUNNING", Some("out/RUNNING.jsonl")),
    ];
    let manifest = manifest(input.path(), "recorded", &outputs);
    let dirs: Vec<std::path::PathBuf> = ["clean", "crashy"]
        .iter()
        .map(|d| app_folder(root.path(), d, &manifest, SQL))
        .collect();
    let status = sluice_command().arg("run").arg(&dirs[0]).status().unwrap();
    assert!(status.success());

    let (kills, _) = killed_chain(&Chain {
        app: &dirs[1],
        state: &root.path().join("state"),
        args: &["--checkpoint-interval-ms", "20"],
        kills: 5,
        required: 3,
        delay_ms: 50..400,
        seed: 9,
    });
    assert!(kills >= 3, "killed {kills} times");
    for stream in ["PER_KEY", "RUNNING"] {
        let a = std::fs::read_to_string(dirs[0].join(format!("out/{stream}.jsonl"))).unwrap();
        let b = std::fs::read_to_string(dirs[1].join(format!("out/{stream}.jsonl"))).unwrap();
        assert_eq!(a.lines().count(), b.lines().count(), "{stream} after {kills} SIGKILLs");
        assert!(a == b, "{stream} differs after {kills} SIGKILLs");
    }
}

/// Input records of the exactly-once tests.
const EXACTLY_ONCE_RECORDS: usize = 1_000_000;

/// The input of the exactly-once tests: recording lines over about 1,000 s of event
/// time, with 10 keys and many records per millisecond. Read as a recording, ROWTIME is
/// each line's; read as a plain file, ROWTIME is the clock. Generated once and shared by
/// the tests that run at the same time.
fn million_records() -> std::sync::Arc<tempfile::NamedTempFile> {
    use std::io::Write;
    use std::sync::{Arc, Mutex, Weak};
    static SHARED: Mutex<Weak<tempfile::NamedTempFile>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap();
    if let Some(file) = shared.upgrade() {
        return file;
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file.as_file_mut());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(23);
        let mut t = 1_709_280_000_000i64;
        for _ in 0..EXACTLY_ONCE_RECORDS {
            t += rng.random_range(0..3);
            let (k, v) = (rng.random_range(0..10), rng.random_range(-50..50));
            writeln!(
                w,
                r#"{{"rowtime": "{}", "data": {{"k": "k{k}", "v": {v}}}}}"#,
                sluice::time::format_timestamp(t)
            )
            .unwrap();
        }
        w.flush().unwrap();
    }
    let file = Arc::new(file);
    *shared = Arc::downgrade(&file);
    file
}

/// The complete lines of a run's output (a killed run may have written half a line).
pub(crate) fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map(|i| &text[..=i]).unwrap_or("");
    complete.lines().map(str::to_string).collect()
}

/// The `ROW_ID` of a JSON output line (its last field).
fn row_id(line: &str) -> &str {
    let at = line
        .rfind(r#""ROW_ID":""#)
        .unwrap_or_else(|| panic!("no ROW_ID in {line}"));
    line[at + 10..].trim_end_matches("\"}")
}

/// What a consumer keeps: one row per `ROW_ID`. Panics if two rows with the same identity
/// differ. Returns the rows and how many repeats were dropped.
pub(crate) fn drop_repeats(
    lines: impl IntoIterator<Item = String>,
) -> (std::collections::BTreeMap<String, String>, usize) {
    let mut rows = std::collections::BTreeMap::new();
    let mut repeats = 0;
    for line in lines {
        let id = row_id(&line).to_string();
        match rows.get(&id) {
            Some(first) => {
                assert_eq!(first, &line, "two rows with the identity {id} differ");
                repeats += 1;
            }
            None => {
                rows.insert(id, line);
            }
        }
    }
    (rows, repeats)
}

/// Kill delays for a run that takes `clean` uninterrupted: about `kills` runs of random
/// length cover it, so the chain is killed that often before a run can finish.
pub(crate) fn kill_delays(clean: std::time::Duration, kills: u64) -> std::ops::Range<u64> {
    let mean = clean.as_millis() as u64 / kills;
    50..(2 * mean).max(100)
}

/// Event time (an application reading a recording), exactly-once, killed 20 times:
/// tumbling and sliding windows into files, and the tumbling rows also to stdout (a
/// stream, which may repeat a row after a crash). With repeats dropped by `ROW_ID`, each
/// output equals an uninterrupted run's, identities included; the files have no repeats.
#[test]
fn exactly_once_event_time_outputs_survive_twenty_sigkills() {
    const SQL: &str = r#"
CREATE OR REPLACE STREAM "PER_KEY" (k VARCHAR(8), bucket TIMESTAMP, n BIGINT, total BIGINT, hi BIGINT);
CREATE OR REPLACE PUMP "TUMBLING" AS INSERT INTO "PER_KEY"
  SELECT STREAM k, STEP(s.ROWTIME BY INTERVAL '10' SECOND), COUNT(*), SUM(v), MAX(v)
  FROM "SOURCE_SQL_STREAM_001" AS s GROUP BY k, STEP(s.ROWTIME BY INTERVAL '10' SECOND);
CREATE OR REPLACE STREAM "RANGE_2S" (k VARCHAR(8), hi BIGINT, lo BIGINT);
CREATE OR REPLACE PUMP "SLIDING" AS INSERT INTO "RANGE_2S"
  SELECT STREAM k, MAX(v) OVER w, MIN(v) OVER w FROM "SOURCE_SQL_STREAM_001"
  WINDOW w AS (PARTITION BY k RANGE INTERVAL '2' SECOND PRECEDING);
"#;
    let input = million_records();
    let root = tempfile::tempdir().unwrap();
    let outputs = [
        ("PER_KEY", Some("out/PER_KEY.jsonl")),
        ("RANGE_2S", Some("out/RANGE_2S.jsonl")),
        ("PER_KEY", None),
    ];
    let manifest = manifest(input.path(), "recorded", &outputs);
    let (clean, crashy) = (
        app_folder(root.path(), "clean", &manifest, SQL),
        app_folder(root.path(), "crashy", &manifest, SQL),
    );
    let args = ["--exactly-once", "--checkpoint-interval-ms", "100"];
    let started = std::time::Instant::now();
    let status = sluice_command()
        .arg("run")
        .args(args)
        .arg("--state-dir")
        .arg(root.path().join("clean-state"))
        .arg(&clean)
        .stdout(std::fs::File::create(root.path().join("clean.out")).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let clean_time = started.elapsed();

    let started = std::time::Instant::now();
    let (kills, stdouts) = killed_chain(&Chain {
        app: &crashy,
        state: &root.path().join("state"),
        args: &args,
        kills: 20,
        required: 20,
        delay_ms: kill_delays(clean_time, 20),
        seed: 31,
    });
    assert!(kills >= 20, "killed {kills} times");

    let (per_key, _) = drop_repeats(complete_lines(&clean.join("out/PER_KEY.jsonl")));
    for stream in ["PER_KEY", "RANGE_2S"] {
        let path = format!("out/{stream}.jsonl");
        let (a, repeats) = drop_repeats(complete_lines(&clean.join(&path)));
        assert_eq!(repeats, 0, "{stream}: a clean file has no repeats");
        let lines = complete_lines(&crashy.join(&path));
        let count = lines.len();
        let (b, repeats) = drop_repeats(lines);
        assert_eq!(repeats, 0, "{stream}: the file repeated rows after {kills} SIGKILLs");
        assert_eq!(a.len(), count, "{stream}: row count after {kills} SIGKILLs");
        assert!(a == b, "{stream}: output differs after {kills} SIGKILLs");
    }
    // Identical rows at one ROWTIME exist and are told apart by their occurrence number.
    let sliding = std::fs::read_to_string(crashy.join("out/RANGE_2S.jsonl")).unwrap();
    assert!(sliding.contains(r#":1"}"#), "no repeated row at one ROWTIME");

    // stdout: effectively once. The concatenated runs' rows, repeats dropped, are the
    // clean run's.
    let (clean_stdout, _) = drop_repeats(complete_lines(&root.path().join("clean.out")));
    assert!(clean_stdout == per_key, "stdout and file of a clean run differ");
    let (b, repeats) = drop_repeats(stdouts.iter().flat_map(|p| complete_lines(p)));
    assert!(b == per_key, "stdout (repeats dropped) differs after {kills} SIGKILLs");
    println!(
        "exactly-once, event time: {EXACTLY_ONCE_RECORDS} records, clean run {:.1}s, chain of {kills} SIGKILLs {:.1}s, \
         {repeats} repeated rows dropped from stdout",
        clean_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Clock ROWTIMEs (a plain file input), exactly-once, killed 20 times: a tumbling count
/// per key and second into a file and to stdout. Windows depend on when records were
/// read, so no two runs agree; but across the output rows (repeats dropped by `ROW_ID`)
/// every input record is counted exactly once, and no two rows with one identity differ.
#[test]
fn exactly_once_clock_time_counts_every_record_once_across_twenty_sigkills() {
    const SQL: &str = r#"
CREATE OR REPLACE STREAM "COUNTS" (k VARCHAR(8), n BIGINT);
CREATE OR REPLACE PUMP "TUMBLING" AS INSERT INTO "COUNTS"
  SELECT STREAM k, COUNT(*) FROM "SOURCE_SQL_STREAM_001" AS s
  GROUP BY k, STEP(s.ROWTIME BY INTERVAL '1' SECOND);
"#;
    let input = million_records();
    let root = tempfile::tempdir().unwrap();
    let manifest = manifest(
        input.path(),
        "file",
        &[("COUNTS", Some("out/COUNTS.jsonl")), ("COUNTS", None)],
    );
    let app = app_folder(root.path(), "app", &manifest, SQL);
    let args = ["--exactly-once", "--checkpoint-interval-ms", "100"];
    let total = |rows: &std::collections::BTreeMap<String, String>| -> u64 {
        rows.values()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["N"]
                    .as_u64()
                    .unwrap()
            })
            .sum()
    };

    // An uninterrupted run, to time the kills.
    let started = std::time::Instant::now();
    let status = sluice_command()
        .arg("run")
        .args(args)
        .arg("--state-dir")
        .arg(root.path().join("clean-state"))
        .arg(&app)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let clean_time = started.elapsed();
    let (rows, _) = drop_repeats(complete_lines(&app.join("out/COUNTS.jsonl")));
    assert_eq!(total(&rows), EXACTLY_ONCE_RECORDS as u64);

    let started = std::time::Instant::now();
    let (kills, stdouts) = killed_chain(&Chain {
        app: &app,
        state: &root.path().join("state"),
        args: &args,
        kills: 20,
        required: 20,
        delay_ms: kill_delays(clean_time, 20),
        seed: 37,
    });
    assert!(kills >= 20, "killed {kills} times");
    // The file: exactly once.
    let lines = complete_lines(&app.join("out/COUNTS.jsonl"));
    let count = lines.len();
    let (rows, repeats) = drop_repeats(lines);
    assert_eq!(repeats, 0, "the file repeated rows after {kills} SIGKILLs");
    assert_eq!(
        total(&rows),
        EXACTLY_ONCE_RECORDS as u64,
        "file, {count} rows, {kills} SIGKILLs"
    );
    // stdout: effectively once.
    let (streamed, repeats) = drop_repeats(stdouts.iter().flat_map(|p| complete_lines(p)));
    assert_eq!(
        total(&streamed),
        EXACTLY_ONCE_RECORDS as u64,
        "stdout, {kills} SIGKILLs"
    );
    assert!(streamed == rows, "stdout and file disagree");
    println!(
        "exactly-once, clock time: {EXACTLY_ONCE_RECORDS} records, clean run {:.1}s, chain of {kills} SIGKILLs {:.1}s, \
         {} rows, {repeats} repeated rows dropped from stdout",
        clean_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        rows.len()
    );
}
