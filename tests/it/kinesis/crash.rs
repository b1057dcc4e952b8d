//! Durable state with a Kinesis input: `sluice run --exactly-once` reading a million
//! records from a 4-shard stream, killed with SIGKILL twenty times at random moments and
//! restarted each time with the same state folder. The application reads the stream
//! twice, as two inputs:
//! - with ROWTIME from the clock, no two runs agree on the windows; but across the
//!   output rows (one per `ROW_ID`) every record is counted exactly once by a tumbling
//!   window, a sliding window emits exactly one row per record, and no two rows with one
//!   identity differ;
//! - with ROWTIME from the records' event time (a watermark per shard), the tumbling and
//!   sliding outputs, repeats dropped by `ROW_ID`, equal an uninterrupted run's exactly.
//!
//! (The same for a file input is in tests/it/recovery.rs.)

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::support::*;
use crate::recovery::{app_folder, complete_lines, drop_repeats, kill_delays, sluice_command};

const RECORDS: usize = 1_000_000;
const KEYS: usize = 2_000;
const KILLS: usize = 20;
const CHECKPOINT_MS: u64 = 200;

/// A tumbling count per key and second, and a per-record sliding count per key over the
/// last second; V is each record's number, so the sliding output names every record.
const SQL: &str = r#"
CREATE OR REPLACE STREAM "PER_KEY" (K VARCHAR(8), C BIGINT);
CREATE OR REPLACE PUMP "TUMBLING" AS INSERT INTO "PER_KEY"
  SELECT STREAM K, COUNT(*) AS C FROM "SOURCE_SQL_STREAM_001"
  GROUP BY K, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' SECOND);
CREATE OR REPLACE STREAM "PER_ROW" (K VARCHAR(8), V BIGINT, C BIGINT);
CREATE OR REPLACE PUMP "SLIDING" AS INSERT INTO "PER_ROW"
  SELECT STREAM K, V, COUNT(*) OVER (PARTITION BY K RANGE INTERVAL '1' SECOND PRECEDING) AS C
  FROM "SOURCE_SQL_STREAM_001";
CREATE OR REPLACE STREAM "ET_PER_KEY" (K VARCHAR(8), W TIMESTAMP, C BIGINT);
CREATE OR REPLACE PUMP "ET_TUMBLING" AS INSERT INTO "ET_PER_KEY"
  SELECT STREAM K, STEP(e.ROWTIME BY INTERVAL '10' SECOND), COUNT(*) AS C FROM "EVENT_SQL_STREAM_001" AS e
  GROUP BY K, STEP(e.ROWTIME BY INTERVAL '10' SECOND);
CREATE OR REPLACE STREAM "ET_PER_ROW" (K VARCHAR(8), V BIGINT, C BIGINT);
CREATE OR REPLACE PUMP "ET_SLIDING" AS INSERT INTO "ET_PER_ROW"
  SELECT STREAM K, V, COUNT(*) OVER (PARTITION BY K RANGE INTERVAL '1' SECOND PRECEDING) AS C
  FROM "EVENT_SQL_STREAM_001";
CREATE OR REPLACE STREAM "LATE_OUT" (K VARCHAR(8), V BIGINT);
CREATE OR REPLACE PUMP "LATE_P" AS INSERT INTO "LATE_OUT" SELECT STREAM K, V FROM "LATE_ROWS";
"#;

/// Event time of record i: one millisecond apart, so every record has its own ROWTIME
/// (the sliding output then does not depend on the order of equal ROWTIMEs).
const EVENT_TIME_START: u64 = 1_709_280_000_000;

fn manifest(stream: &str, endpoint: &str) -> String {
    format!(
        r#"name = "kinesis-crash"
code = "app.sql"

[[inputs]]
name_prefix = "SOURCE_SQL_STREAM"
[inputs.schema]
record_format = "JSON"
columns = [
  {{ name = "K", sql_type = "VARCHAR(8)", mapping = "$.k" }},
  {{ name = "V", sql_type = "BIGINT",     mapping = "$.v" }},
]
[inputs.source]
kind = "kinesis"
name = "{stream}"
starting_position = "TRIM_HORIZON"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
idle_poll_max_ms = 300
# kinesalite answers a killed run's GetRecords calls all the same, one at a time; at
# 10,000 records (about 0.5 s each) twenty kills queue up tens of seconds of them.
max_records = 1000

[[inputs]]
name_prefix = "EVENT_SQL_STREAM"
[inputs.schema]
record_format = "JSON"
columns = [
  {{ name = "K", sql_type = "VARCHAR(8)", mapping = "$.k" }},
  {{ name = "V", sql_type = "BIGINT",     mapping = "$.v" }},
  {{ name = "T", sql_type = "BIGINT",     mapping = "$.t" }},
]
[inputs.event_time]
column = "T"
# Six writers load the stream 500 records at a time: within a shard, event times are
# out of order by a few thousand milliseconds at most.
max_delay_ms = 30000
# The loaded stream ends: then the watermark follows the clock and the last windows close.
idle_timeout_ms = 5000
late_stream = "LATE_ROWS"
[inputs.source]
kind = "kinesis"
name = "{stream}"
starting_position = "TRIM_HORIZON"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
idle_poll_max_ms = 300
max_records = 1000

[[outputs]]
stream = "PER_KEY"
format = "JSON"
[outputs.destination]
kind = "file"
path = "out/PER_KEY.jsonl"

[[outputs]]
stream = "PER_ROW"
format = "JSON"
[outputs.destination]
kind = "file"
path = "out/PER_ROW.jsonl"

[[outputs]]
stream = "ET_PER_KEY"
format = "JSON"
[outputs.destination]
kind = "file"
path = "out/ET_PER_KEY.jsonl"

[[outputs]]
stream = "ET_PER_ROW"
format = "JSON"
[outputs.destination]
kind = "file"
path = "out/ET_PER_ROW.jsonl"

[[outputs]]
stream = "LATE_OUT"
format = "JSON"
[outputs.destination]
kind = "file"
path = "out/LATE_OUT.jsonl"
"#
    )
}

/// Starts `sluice run` on `app` with `state`; its log goes to `app/log/<n>.txt`.
fn start(app: &Path, state: &Path, n: usize) -> (Child, PathBuf) {
    let log = app.join(format!("log/{n}.txt"));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let child = sluice_command()
        .arg("run")
        .arg("--exactly-once")
        .args(["--checkpoint-interval-ms", &CHECKPOINT_MS.to_string()])
        .args(["--bound-interval-ms", "200"])
        .arg("--state-dir")
        .arg(state)
        .arg(app)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

fn kill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The smaller of the sums of C over the two tumbling outputs' complete lines, as they
/// are (cheap enough to poll; the final check drops repeats by `ROW_ID`).
fn counted_so_far(app: &Path) -> u64 {
    counted_in(app, "out/PER_KEY.jsonl").min(counted_in(app, "out/ET_PER_KEY.jsonl"))
}

fn counted_in(app: &Path, file: &str) -> u64 {
    complete_lines(&app.join(file)).iter().map(|l| field(l, "C")).sum()
}

/// Lets a run go until the tumbling output counts every record, then one checkpoint
/// interval and a second more (a repeat would arrive after), then kills it. Returns how
/// long it took to count every record.
async fn run_to_the_end(child: &mut Child, log: &Path, app: &Path, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let counted = counted_so_far(app);
        if counted >= RECORDS as u64 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "sluice run exited by itself ({status}) with {counted} of {RECORDS} records counted; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if started.elapsed() > timeout {
            kill(child);
            panic!(
                "after {:.0}s the tumbling outputs count only {} (clock) and {} (event time) of {RECORDS} records; \
                 log:\n{}",
                timeout.as_secs_f64(),
                counted_in(app, "out/PER_KEY.jsonl"),
                counted_in(app, "out/ET_PER_KEY.jsonl"),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(CHECKPOINT_MS + 1000)).await;
    assert!(child.try_wait().unwrap().is_none(), "sluice run exited by itself");
    kill(child);
    took
}

/// The value of a numeric field of an output line.
fn field(line: &str, name: &str) -> u64 {
    let key = format!(r#""{name}":"#);
    let at = line.find(&key).unwrap_or_else(|| panic!("no {name} in {line}")) + key.len();
    let digits = line[at..].bytes().take_while(u8::is_ascii_digit).count();
    line[at..at + digits].parse().unwrap()
}

/// Checks the tumbling output of `app`: no repeats in the file, no two rows with one
/// `ROW_ID` that differ, and the rows count every record exactly once. Returns the
/// number of rows.
fn check_tumbling(app: &Path, what: &str) -> usize {
    let (rows, repeats) = drop_repeats(complete_lines(&app.join("out/PER_KEY.jsonl")));
    assert_eq!(repeats, 0, "{what}: the tumbling file repeated rows");
    let total: u64 = rows.values().map(|l| field(l, "C")).sum();
    assert_eq!(
        total,
        RECORDS as u64,
        "{what}: the tumbling rows ({} distinct ROW_IDs) count every record once",
        rows.len()
    );
    rows.len()
}

/// Checks the sliding output of `app`: no repeats in the file, no two rows with one
/// `ROW_ID` that differ, exactly one row (one `ROW_ID`) per record.
fn check_sliding(app: &Path, what: &str) {
    let (rows, repeats) = drop_repeats(complete_lines(&app.join("out/PER_ROW.jsonl")));
    assert_eq!(repeats, 0, "{what}: the sliding file repeated rows");
    assert_eq!(rows.len(), RECORDS, "{what}: distinct ROW_IDs of the sliding output");
    // V numbers the records: each one has exactly one sliding row.
    let mut seen = vec![false; RECORDS];
    for line in rows.values() {
        let v = field(line, "V") as usize;
        assert!(!seen[v], "{what}: record {v} has two sliding rows");
        seen[v] = true;
    }
}

/// Checks the event-time outputs: no repeats in the files, and the rows (one per
/// `ROW_ID`) equal the uninterrupted run's; nothing was late in either run.
fn check_event_time(clean: &Path, crashy: &Path, what: &str) {
    for file in ["out/ET_PER_KEY.jsonl", "out/ET_PER_ROW.jsonl"] {
        let (a, repeats) = drop_repeats(complete_lines(&clean.join(file)));
        assert_eq!(repeats, 0, "{file}: the clean run repeated rows");
        let (b, repeats) = drop_repeats(complete_lines(&crashy.join(file)));
        assert_eq!(repeats, 0, "{what}: {file} repeated rows");
        assert_eq!(a.len(), b.len(), "{what}: {file}: row count");
        assert!(a == b, "{what}: {file} differs from the uninterrupted run's");
    }
    let (tumbling, _) = drop_repeats(complete_lines(&crashy.join("out/ET_PER_KEY.jsonl")));
    let total: u64 = tumbling.values().map(|l| field(l, "C")).sum();
    assert_eq!(
        total, RECORDS as u64,
        "{what}: event-time windows count every record once"
    );
    for app in [clean, crashy] {
        let late = complete_lines(&app.join("out/LATE_OUT.jsonl"));
        assert!(late.is_empty(), "{} rows were late in {}", late.len(), app.display());
    }
}

/// Exactly-once with clock ROWTIMEs from Kinesis: a million records in 4 shards,
/// `sluice run --exactly-once` killed with SIGKILL 20 times at random moments and
/// restarted with the same state folder; the last run goes until every record is
/// counted. The tumbling rows (one per `ROW_ID`) count every record exactly once, the
/// sliding output has one row per record, and no two rows with one identity differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_kinesis_counts_every_record_once_across_twenty_sigkills() {
    let test_started = Instant::now();
    // Its own server: loading a million records saturates one for about 100 s.
    let endpoint = private_endpoint();
    let client = client_for(&endpoint).await;
    let stream = unique("crash");
    create_stream(&client, &stream, 4).await;
    let started = Instant::now();
    put_concurrently(&client, &stream, RECORDS, 6, |i| {
        let key = format!("k{}", (i * 7_919) % KEYS);
        let t = EVENT_TIME_START + i as u64;
        let data = format!(r#"{{"k":"{key}","v":{i},"t":{t}}}"#).into_bytes();
        (key, data)
    })
    .await;
    let loading = started.elapsed();
    eprintln!("{RECORDS} records loaded in {:.1}s", loading.as_secs_f64());

    let root = tempfile::tempdir().unwrap();
    let manifest = manifest(&stream, &endpoint);
    let (clean, crashy) = (
        app_folder(root.path(), "clean", &manifest, SQL),
        app_folder(root.path(), "crashy", &manifest, SQL),
    );

    // An uninterrupted run, to time the kills (and as a baseline: it counts every record once).
    let (mut child, log) = start(&clean, &root.path().join("clean-state"), 0);
    let clean_time = run_to_the_end(&mut child, &log, &clean, Duration::from_secs(480)).await;
    check_tumbling(&clean, "clean run");
    check_sliding(&clean, "clean run");
    eprintln!("clean run counted every record in {:.1}s", clean_time.as_secs_f64());

    // Chains of runs sharing one state folder. Twenty kills with these delays cover about
    // two thirds of a clean run, so the input is still being read at the last kill; a
    // chain whose output counted every record by one of its kills is discarded and the
    // next starts from nothing, with shorter delays.
    let started = Instant::now();
    let state = root.path().join("state");
    let delays = kill_delays(clean_time, KILLS as u64 * 3 / 2);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(43);
    let mut kills = 0;
    let mut resumed = 0;
    for chain in 0..3u64 {
        let _ = std::fs::remove_dir_all(&state);
        let _ = std::fs::remove_dir_all(crashy.join("out"));
        let _ = std::fs::remove_dir_all(crashy.join("log"));
        kills = 0;
        resumed = 0;
        // On a loaded machine the first checkpoint may take longer than the first kill:
        // widen the kill window after every kill that came before any checkpoint.
        let mut scale = 1u64;
        let mut finished_early = false;
        while kills < KILLS {
            let (mut child, log) = start(&crashy, &state, kills);
            let delay = (rng.random_range(delays.clone()) * scale / (chain + 1)).max(30);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "sluice run exited by itself ({status}); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            kill(&mut child);
            kills += 1;
            let counted = counted_so_far(&crashy);
            eprintln!("chain {chain}: kill {kills} after {delay} ms, {counted} records counted");
            let checkpointed = sluice::state::CheckpointStore::open(&state)
                .unwrap()
                .latest()
                .unwrap()
                .is_some();
            if checkpointed {
                resumed += 1;
            } else {
                scale = (scale * 2).min(16);
            }
            if counted >= RECORDS as u64 {
                finished_early = true;
                break;
            }
        }
        if finished_early {
            eprintln!("chain {chain}: every record was counted after {kills} kills; discarded");
            continue;
        }
        eprintln!(
            "chain {chain}: {kills} SIGKILLs in {:.1}s, {} of {RECORDS} records counted",
            started.elapsed().as_secs_f64(),
            counted_so_far(&crashy)
        );
        let (mut child, log) = start(&crashy, &state, kills);
        run_to_the_end(&mut child, &log, &crashy, clean_time * 2 + Duration::from_secs(60)).await;
        break;
    }
    let chain_time = started.elapsed();
    assert!(kills >= KILLS, "killed {kills} times");
    assert!(resumed >= 1, "no checkpoint completed before a kill");
    let what = format!("after {kills} SIGKILLs");
    let rows = check_tumbling(&crashy, &what);
    check_sliding(&crashy, &what);
    check_event_time(&clean, &crashy, &what);
    println!(
        "exactly-once, Kinesis, clock time: {RECORDS} records loaded in {:.1}s, clean run {:.1}s, chain of {kills} \
         SIGKILLs ({resumed} after a checkpoint) {:.1}s, {rows} tumbling rows; whole test {:.1}s",
        loading.as_secs_f64(),
        clean_time.as_secs_f64(),
        chain_time.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
}
