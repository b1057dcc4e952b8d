//! `sluice bench kill-campaign`: SIGKILL a running application again and again, restart
//! it on the same state folder each time, and compare what it finally wrote with an
//! uninterrupted run's output, byte for byte.
//!
//! The application reads a file of ride events with event time from the data (so the
//! windows do not depend on when a run happens to be killed) through a one-minute
//! tumbling GROUP BY and a one-minute sliding window per city, into two files. A
//! campaign runs it once undisturbed for the reference output, then starts it with a
//! state folder and kills it (SIGKILL, no chance to flush) at a random moment, restarts,
//! kills again, until it has been killed `--kills` times or finishes on its own, and
//! then lets it finish. It does that once delivering at least once and once exactly once.
//! Each restart logs how long restoring took; the campaign reports those times too.
//!
//! The sluice that runs is this executable, so a campaign measures the build it is run
//! from (a release build for figures, as for every bench).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// What one campaign found.
pub struct CampaignFigures {
    pub delivery: &'static str,
    pub records: u64,
    pub kills: u32,
    /// Kills that came after a checkpoint had committed (the restart restored state);
    /// the others restarted from the beginning.
    pub kills_after_checkpoint: u32,
    pub restore_ms: Vec<u64>,
    pub output_rows: u64,
    /// The outputs equal the uninterrupted run's, byte for byte.
    pub identical: bool,
}

pub struct Options {
    pub records: u64,
    pub kills: u32,
    pub checkpoint_interval_ms: u64,
    /// Kills come at a random moment up to this long after a start.
    pub max_run_ms: u64,
    pub seed: u64,
}

const OUTPUTS: [&str; 2] = ["tumbling.jsonl", "sliding.jsonl"];

const SQL: &str = r#"
CREATE OR REPLACE STREAM "TUMBLING" (CITY VARCHAR(16), MINUTE_START TIMESTAMP, RIDES BIGINT, REVENUE DOUBLE);
CREATE OR REPLACE PUMP "TUMBLING_PUMP" AS INSERT INTO "TUMBLING"
  SELECT STREAM CITY, STEP(ROWTIME BY INTERVAL '1' MINUTE), COUNT(*), SUM(FARE)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY CITY, STEP(ROWTIME BY INTERVAL '1' MINUTE);
CREATE OR REPLACE STREAM "SLIDING" (CITY VARCHAR(16), RIDES BIGINT, REVENUE DOUBLE);
CREATE OR REPLACE PUMP "SLIDING_PUMP" AS INSERT INTO "SLIDING"
  SELECT STREAM CITY, COUNT(*) OVER W, SUM(FARE) OVER W
  FROM "SOURCE_SQL_STREAM_001"
  WINDOW W AS (PARTITION BY CITY RANGE INTERVAL '1' MINUTE PRECEDING);
"#;

/// Runs one campaign per delivery mode.
pub fn run(options: &Options) -> anyhow::Result<Vec<CampaignFigures>> {
    let exe = std::env::current_exe()?;
    let dir = tempfile_dir()?;
    let input = dir.join("rides.jsonl");
    write_input(&input, options.records)?;
    let mut figures = Vec::new();
    for exactly_once in [false, true] {
        figures.push(campaign(&exe, &dir, &input, exactly_once, options)?);
    }
    if figures.iter().all(|f| f.identical) {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("kill-campaign: outputs and logs kept in {}", dir.display());
    }
    Ok(figures)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sluice-kill-campaign-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Ride events, one every 10 ms of event time over five cities, a little out of order
/// (within the 2 s delay the application allows), fares from a fixed sequence.
fn write_input(path: &Path, records: u64) -> anyhow::Result<()> {
    const CITIES: [&str; 5] = ["berlin", "lisbon", "oslo", "porto", "riga"];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let start = chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
        .and_utc()
        .timestamp_millis();
    for i in 0..records {
        // Every fourth event is 1.5 s behind its neighbours.
        let jitter = if i % 4 == 3 { -1_500 } else { 0 };
        let at = chrono::DateTime::from_timestamp_millis(start + i as i64 * 10 + jitter).expect("in range");
        writeln!(
            out,
            r#"{{"city":"{}","fare":{}.{},"ts":"{}"}}"#,
            CITIES[(i * 7 % 5) as usize],
            5 + i % 37,
            i % 10,
            at.format("%Y-%m-%d %H:%M:%S%.3f")
        )?;
    }
    out.flush()?;
    Ok(())
}

fn write_app(folder: &Path, input: &Path, outputs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)?;
    let mut manifest = format!(
        r#"name = "kill-campaign"
code_text = """{SQL}"""
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [
  {{ name = "CITY", sql_type = "VARCHAR(16)", mapping = "$.city" }},
  {{ name = "FARE", sql_type = "DOUBLE", mapping = "$.fare" }},
  {{ name = "TS", sql_type = "TIMESTAMP", mapping = "$.ts" }},
]
[inputs.source]
kind = "file"
path = "{}"
[inputs.event_time]
column = "TS"
max_delay_ms = 2000
"#,
        input.display()
    );
    for (stream, file) in [("TUMBLING", OUTPUTS[0]), ("SLIDING", OUTPUTS[1])] {
        manifest.push_str(&format!(
            "[[outputs]]\nstream = \"{stream}\"\n[outputs.destination]\nkind = \"file\"\npath = \"{}\"\n",
            outputs.join(file).display()
        ));
    }
    std::fs::write(folder.join("sluice.toml"), manifest)?;
    Ok(())
}

fn sluice_run(exe: &Path, app: &Path, state: &Path, exactly_once: bool, interval_ms: u64, log: &Path) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg(app)
        .arg("--state-dir")
        .arg(state)
        .arg("--checkpoint-interval-ms")
        .arg(interval_ms.to_string())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Ok(file) = std::fs::File::create(log) {
        command.stderr(file);
    }
    if exactly_once {
        command.arg("--exactly-once");
    }
    command
}

fn campaign(
    exe: &Path,
    dir: &Path,
    input: &Path,
    exactly_once: bool,
    options: &Options,
) -> anyhow::Result<CampaignFigures> {
    let delivery = if exactly_once { "exactly-once" } else { "at-least-once" };
    let base = dir.join(delivery);
    let (reference, killed) = (base.join("reference"), base.join("killed"));
    write_app(&reference.join("app"), input, &reference)?;
    write_app(&killed.join("app"), input, &killed)?;

    // `sluice run` of the application in `side`, on its own state folder, logging to `log`.
    let run_in = |side: &Path, log: &Path| {
        sluice_run(
            exe,
            &side.join("app"),
            &side.join("state"),
            exactly_once,
            options.checkpoint_interval_ms,
            log,
        )
    };
    eprintln!("kill-campaign {delivery}: the uninterrupted run");
    let log = base.join("reference.log");
    let status = run_in(&reference, &log).status()?;
    anyhow::ensure!(
        status.success(),
        "the uninterrupted run failed ({status}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let mut rng = rand::rngs::SmallRng::seed_from_u64(options.seed ^ exactly_once as u64);
    let (mut kills, mut kills_after_checkpoint, mut restore_ms) = (0, 0, Vec::new());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let log = base.join(format!("attempt-{attempt}.log"));
        let mut child = run_in(&killed, &log).spawn()?;
        let kill_at = Instant::now() + Duration::from_millis(rng.random_range(50..options.max_run_ms.max(51)));
        let finished = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if kills < options.kills && Instant::now() >= kill_at {
                child.kill()?; // SIGKILL
                child.wait()?;
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(ms) = restored_ms(&text) {
            restore_ms.push(ms);
            if attempt > 1 {
                kills_after_checkpoint += 1;
            }
        }
        match finished {
            None => {
                kills += 1;
                eprintln!("kill-campaign {delivery}: kill {kills} of {}", options.kills);
            }
            Some(status) if status.success() => break,
            Some(status) => anyhow::bail!("attempt {attempt} failed ({status}): {text}"),
        }
    }

    let mut identical = true;
    let mut output_rows = 0;
    for file in OUTPUTS {
        let want = std::fs::read(reference.join(file))?;
        let got = std::fs::read(killed.join(file))?;
        output_rows += want.iter().filter(|b| **b == b'\n').count() as u64;
        if want != got {
            identical = false;
            eprintln!(
                "kill-campaign {delivery}: {file} differs: {} bytes uninterrupted, {} after the kills",
                want.len(),
                got.len()
            );
        }
    }
    Ok(CampaignFigures {
        delivery,
        records: options.records,
        kills,
        kills_after_checkpoint,
        restore_ms,
        output_rows,
        identical,
    })
}

/// The restore time a restart logs (`state restored recovery_ms=N`).
fn restored_ms(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("state restored"))?;
    let at = line.find("recovery_ms=")? + "recovery_ms=".len();
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_time_is_read_from_the_log_line() {
        let log = "2026-12-08T00:00:00Z  INFO sluice::runtime: state restored recovery_ms=412\n";
        assert_eq!(restored_ms(log), Some(412));
        assert_eq!(restored_ms("INFO sluice::cli: starting"), None);
    }

    #[test]
    fn the_campaign_application_plans() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("rides.jsonl");
        write_input(&input, 100).unwrap();
        write_app(&dir.path().join("app"), &input, dir.path()).unwrap();
        let app = crate::manifest::load_manifest(&dir.path().join("app/sluice.toml")).unwrap();
        let plan = crate::planner::plan_application(&app).unwrap();
        assert_eq!(plan.pumps.len(), 2);
    }
}
