//! Durable state: a run that is killed at random moments and restarted with the same
//! state folder produces exactly the output of an uninterrupted run (event time comes
//! from the recording, so windows are deterministic), for a tumbling and a sliding
//! window application writing files.

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

/// The same guarantee for the `sluice` binary killed with SIGKILL (`Child::kill`) and
/// restarted with `--state-dir`: the output files equal those of a clean run.
#[test]
fn sigkilled_binary_resumes_without_loss_or_duplicates() {
    use std::process::{Command, Stdio};
    let input = recording(60_000);
    let root = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"code = "app.sql"
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ {{ name = "K", sql_type = "VARCHAR(8)", mapping = "$.k" }}, {{ name = "V", sql_type = "BIGINT", mapping = "$.v" }} ]
[inputs.source]
kind = "recorded"
path = "{}"
[[outputs]]
stream = "PER_KEY"
[outputs.destination]
kind = "file"
path = "out/PER_KEY.jsonl"
[[outputs]]
stream = "RUNNING"
[outputs.destination]
kind = "file"
path = "out/RUNNING.jsonl"
"#,
        input.path().display()
    );
    let dirs: Vec<std::path::PathBuf> = ["clean", "crashy"].iter().map(|d| root.path().join(d)).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("sluice.toml"), &manifest).unwrap();
        std::fs::write(d.join("app.sql"), SQL).unwrap();
    }
    let sluice = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.stdout(Stdio::null()).stderr(Stdio::null()).env("SLUICE_LOG", "warn");
        c
    };
    let status = sluice().arg("run").arg(&dirs[0]).status().unwrap();
    assert!(status.success());

    let state = root.path().join("state");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
    let mut kills = 0;
    // A chain of runs sharing one state folder: killed at random moments, restarted,
    // until one finishes. A restart resumes near the end once most input is
    // checkpointed, so a chain can finish before 3 kills; such a chain is discarded and
    // the next one starts from nothing, with shorter kill delays.
    for chain in 0..6u64 {
        let _ = std::fs::remove_dir_all(&state);
        let _ = std::fs::remove_dir_all(dirs[1].join("out"));
        kills = 0;
        let mut scale = 1u64;
        loop {
            let mut child = sluice()
                .args(["run", "--checkpoint-interval-ms", "20", "--state-dir"])
                .arg(&state)
                .arg(&dirs[1])
                .spawn()
                .unwrap();
            if kills < 5 {
                let delay = rng.random_range(50..400) * scale / (chain + 1);
                std::thread::sleep(std::time::Duration::from_millis(delay.max(30)));
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    let checkpointed = sluice::state::CheckpointStore::open(&state)
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
        if kills >= 3 {
            break;
        }
    }
    assert!(kills >= 3, "killed {kills} times");
    for stream in ["PER_KEY", "RUNNING"] {
        let a = std::fs::read_to_string(dirs[0].join(format!("out/{stream}.jsonl"))).unwrap();
        let b = std::fs::read_to_string(dirs[1].join(format!("out/{stream}.jsonl"))).unwrap();
        assert_eq!(a.lines().count(), b.lines().count(), "{stream} after {kills} SIGKILLs");
        assert!(a == b, "{stream} differs after {kills} SIGKILLs");
    }
}
