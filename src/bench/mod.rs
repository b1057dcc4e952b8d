//! `sluice bench`: measurements that run too long for criterion (`benches/engine.rs`
//! holds the short ones).
//!
//! `s3-delivery` (in `connectors::s3::bench`) writes ride events to S3 objects in each
//! format and compression and reports rows/s and MB/s.
//!
//! `kill-campaign` (in `kill_campaign`) kills a running application again and again and
//! compares its final output with an uninterrupted run's.
//!
//! `checkpoint-overhead` runs one application for N seconds without checkpoints, then
//! for N seconds with a checkpoint every interval, and compares the two throughputs (the
//! durable-state issue asks for "within 10%"). The application is the built-in ride
//! generator in recorded time (unthrottled: it produces as fast as the pipeline takes
//! records) through a one-minute tumbling GROUP BY and a one-minute sliding window, both
//! keyed by (CITY, DRIVER_ID): about 3,000 keys. Both outputs are written to files in a
//! temporary folder, which is removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Subcommand;

mod kill_campaign;

use crate::app::{AppSpec, DestinationSpec, OutputFormat, OutputSpec};
use crate::engine::{CheckpointOptions, RunOptions, TimeMode};
use crate::runtime::metrics::Metrics;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Throughput without checkpoints and with a checkpoint every --interval-ms, and
    /// their ratio: the ride generator, unthrottled, through a tumbling and a sliding
    /// window over about 3,000 keys, outputs to files in a temporary folder.
    CheckpointOverhead {
        /// How long each side runs, in seconds (the first sixth, at most 5 s, is
        /// warm-up and not counted).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// How often a checkpoint is taken on the checkpointed side, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        interval_ms: u64,
        /// Measure each side this many times, alternating, and report the spread (on a
        /// shared machine one run of each side is not enough to trust a 10% difference).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
    },
    /// Delivery throughput of an HTTP callback output (batches/s, rows/s) against an
    /// in-process receiver that answers every record Ok after --latency-ms, for each
    /// latency and each --concurrency.
    Callback {
        /// Rows delivered per case.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Receiver latencies to measure, in milliseconds.
        #[arg(long, value_delimiter = ',', default_value = "0,20")]
        latency_ms: Vec<u64>,
        /// Requests in flight (max_concurrency) to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        concurrency: Vec<usize>,
    },
    /// Delivery throughput of an S3 output (rows/s, MB/s of objects): ride events
    /// buffered, encoded, compressed and PUT as objects of --buffer-size-mb, for each
    /// case, against --endpoint (an S3-compatible server) or AWS (the standard chain).
    S3Delivery {
        /// An S3-compatible server (path-style); AWS when not given.
        #[arg(long)]
        endpoint: Option<String>,
        /// Created if missing; objects go under bench/CASE/.
        #[arg(long, default_value = "sluice-bench")]
        bucket: String,
        #[arg(long)]
        region: Option<String>,
        /// Rows written per case.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 5)]
        buffer_size_mb: u64,
        /// FORMAT or FORMAT+COMPRESSION.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "JSON,JSON+GZIP,CSV,PARQUET+SNAPPY,PARQUET+ZSTD"
        )]
        cases: Vec<String>,
    },
    /// SIGKILL a running application --kills times at random moments, restarting it on
    /// its state folder each time, at least once and exactly once, and compare its final
    /// output with an uninterrupted run's, byte for byte (see `bench::kill_campaign`).
    KillCampaign {
        /// Ride events in the input file.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Kills per delivery mode.
        #[arg(long, default_value_t = 20)]
        kills: u32,
        #[arg(long, default_value_t = 200)]
        checkpoint_interval_ms: u64,
        /// A kill comes at a random moment up to this long after each start.
        #[arg(long, default_value_t = 1500)]
        max_run_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub async fn main_with(command: BenchCommand) -> anyhow::Result<i32> {
    match command {
        BenchCommand::CheckpointOverhead {
            seconds,
            interval_ms,
            repeat,
        } => checkpoint_overhead(seconds.max(2), interval_ms, repeat.max(1)).await,
        BenchCommand::Callback {
            rows,
            batch_size,
            latency_ms,
            concurrency,
        } => {
            eprintln!("callback: {rows} rows per case, batches of {batch_size}");
            let figures = crate::connectors::http::bench::run(rows, batch_size, &latency_ms, &concurrency).await?;
            println!("latency_ms concurrency batches/s rows/s");
            for f in figures {
                println!(
                    "{} {} {:.0} {:.0}",
                    f.latency_ms,
                    f.concurrency,
                    f.batches_per_second(),
                    f.rows_per_second()
                );
            }
            Ok(0)
        }
        BenchCommand::S3Delivery {
            endpoint,
            bucket,
            region,
            rows,
            buffer_size_mb,
            cases,
        } => s3_delivery(endpoint, bucket, region, rows, buffer_size_mb, &cases).await,
        BenchCommand::KillCampaign {
            records,
            kills,
            checkpoint_interval_ms,
            max_run_ms,
            seed,
        } => {
            let options = kill_campaign::Options {
                records,
                kills,
                checkpoint_interval_ms,
                max_run_ms,
                seed,
            };
            let figures = tokio::task::spawn_blocking(move || kill_campaign::run(&options)).await??;
            println!(
                "delivery records kills kills_after_checkpoint restore_ms_median restore_ms_max output_rows identical"
            );
            let mut failed = false;
            for f in figures {
                let mut ms = f.restore_ms.clone();
                ms.sort_unstable();
                println!(
                    "{} {} {} {} {} {} {} {}",
                    f.delivery,
                    f.records,
                    f.kills,
                    f.kills_after_checkpoint,
                    ms.get(ms.len() / 2).map_or("-".into(), |m| m.to_string()),
                    ms.last().map_or("-".into(), |m| m.to_string()),
                    f.output_rows,
                    if f.identical { "yes" } else { "NO" }
                );
                failed |= !f.identical;
            }
            Ok(if failed { 1 } else { 0 })
        }
    }
}

async fn s3_delivery(
    endpoint: Option<String>,
    bucket: String,
    region: Option<String>,
    rows: u64,
    buffer_size_mb: u64,
    cases: &[String],
) -> anyhow::Result<i32> {
    use crate::connectors::s3::bench;
    let mut connection = crate::connectors::s3::S3Connection::for_bucket(&bucket).map_err(anyhow::Error::msg)?;
    // A local server accepts any key; the environment's are used when set.
    if endpoint.is_some() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        connection.access_key_id = Some("bench".into());
        connection.secret_access_key = Some("bench".into());
    }
    // A local server has no region to find (the chain would ask the instance metadata).
    connection.region = region.or_else(|| endpoint.as_ref().map(|_| "us-east-1".to_string()));
    connection.endpoint = endpoint;
    bench::ensure_bucket(&connection).await?;
    let options = bench::Options {
        connection,
        rows,
        buffer_size_mb: buffer_size_mb.clamp(1, 128),
    };
    eprintln!("s3-delivery: {rows} rows per case, objects of up to {buffer_size_mb} MB, bucket {bucket}");
    println!("case rows objects MB seconds rows/s MB/s");
    for case in cases {
        let f = bench::measure(&options, case).await?;
        println!(
            "{} {} {} {:.1} {:.2} {:.0} {:.1}",
            f.case,
            f.rows,
            f.objects,
            f.bytes as f64 / (1 << 20) as f64,
            f.seconds,
            f.rows_per_second(),
            f.megabytes_per_second()
        );
    }
    Ok(0)
}

/// Event time advances by one second per this many generated events: a one-minute
/// window holds 120,000 rows (about 40 per key), and a tumbling window closes every
/// 120,000 records.
const EVENTS_PER_SECOND: u64 = 2_000;

const SQL: &str = r#"
CREATE OR REPLACE STREAM "PER_DRIVER" (city VARCHAR(16), driver_id INTEGER, rides BIGINT, fares DOUBLE, top_fare REAL);
CREATE OR REPLACE PUMP "TUMBLING" AS INSERT INTO "PER_DRIVER"
  SELECT STREAM city, driver_id, COUNT(*), SUM(fare), MAX(fare)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY city, driver_id, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);
CREATE OR REPLACE STREAM "RUNNING" (city VARCHAR(16), driver_id INTEGER, rides_1min BIGINT, avg_fare_1min DOUBLE);
CREATE OR REPLACE PUMP "SLIDING" AS INSERT INTO "RUNNING"
  SELECT STREAM city, driver_id, COUNT(*) OVER w, AVG(fare) OVER w
  FROM "SOURCE_SQL_STREAM_001"
  WINDOW w AS (PARTITION BY city, driver_id RANGE INTERVAL '1' MINUTE PRECEDING);
"#;

fn application(out: &Path) -> AppSpec {
    AppSpec {
        name: "checkpoint-overhead".into(),
        sql: SQL.into(),
        inputs: vec![crate::connectors::generator::ride_input(EVENTS_PER_SECOND, None)],
        references: vec![],
        outputs: ["PER_DRIVER", "RUNNING"]
            .iter()
            .map(|stream| OutputSpec {
                stream: stream.to_string(),
                format: OutputFormat::Json,
                destination: DestinationSpec::File {
                    path: out.join(format!("{stream}.jsonl")),
                },
            })
            .collect(),
    }
}

/// One measured run: records per second after the warm-up, and how many checkpoints
/// were committed.
struct Measured {
    rate: f64,
    checkpoints: u64,
}

async fn measure(label: &str, seconds: u64, interval_ms: Option<u64>, dir: &Path) -> anyhow::Result<Measured> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let app = application(&dir.join("out"));
    let metrics = Arc::new(Metrics::new(&app.name));
    let mut options = RunOptions::new(TimeMode::Recorded { flush_at: None });
    options.metrics = Some(Arc::clone(&metrics));
    options.checkpoints = interval_ms.map(|interval_ms| CheckpointOptions {
        state_dir: dir.join("state"),
        interval_ms,
        fresh: true,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move { crate::runtime::run_app_until(&app, options, stop_rx).await });

    // Until the channels between the tasks are full, the source runs ahead of the
    // pipeline; after the warm-up the source goes at the pipeline's pace (back-pressure),
    // so records in per second is the application's throughput.
    let warm_up = Duration::from_secs((seconds / 6).clamp(1, 5));
    let total = Duration::from_secs(seconds);
    let started = Instant::now();
    let records = || metrics.records_in.load(Ordering::Relaxed);
    let mut from: Option<(Instant, u64)> = None;
    let mut last_report = started;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if run.is_finished() {
            break;
        }
        let now = Instant::now();
        if from.is_none() && now - started >= warm_up {
            from = Some((now, records()));
        }
        if now - last_report >= Duration::from_secs(5) {
            last_report = now;
            let rate = match from {
                Some((t0, n0)) if now - t0 >= Duration::from_secs(1) => {
                    format!(
                        "{} records/s since warm-up",
                        human((records() - n0) as f64 / (now - t0).as_secs_f64())
                    )
                }
                _ => "warming up".to_string(),
            };
            let checkpoints = metrics.status().checkpoint.map(|(id, _)| id).unwrap_or(0);
            eprintln!(
                "  {label}: {:>3} s of {seconds}, {} records, {rate}, {checkpoints} checkpoints",
                (now - started).as_secs(),
                records(),
            );
        }
        if now - started >= total {
            break;
        }
    }
    let end = (Instant::now(), records());
    let _ = stop_tx.send(true);
    run.await??;
    let (t0, n0) = from.ok_or_else(|| anyhow::anyhow!("the run ended during the warm-up"))?;
    let checkpoints = metrics.status().checkpoint.map(|(id, _)| id).unwrap_or(0);
    let _ = std::fs::remove_dir_all(dir);
    Ok(Measured {
        rate: (end.1 - n0) as f64 / (end.0 - t0).as_secs_f64(),
        checkpoints,
    })
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} K", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}

fn spread(rates: &[f64]) -> String {
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    let all: Vec<String> = rates.iter().map(|r| human(*r)).collect();
    format!(
        "{} records/s (runs: {}; spread {:.1}%)",
        human(rates.iter().sum::<f64>() / rates.len() as f64),
        all.join(", "),
        (hi - lo) / hi.max(1e-9) * 100.0
    )
}

async fn checkpoint_overhead(seconds: u64, interval_ms: u64, repeat: u32) -> anyhow::Result<i32> {
    let root: PathBuf = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    eprintln!(
        "checkpoint-overhead: {seconds} s per run, checkpoints every {interval_ms} ms, {repeat} run(s) per side, in {}",
        root.display()
    );
    let mut without = Vec::new();
    let mut with = Vec::new();
    let result: anyhow::Result<()> = async {
        // Alternating the sides spreads the load of a shared machine over both.
        for i in 0..repeat {
            let m = measure("without checkpoints", seconds, None, &root.join(format!("off-{i}"))).await?;
            eprintln!("  without checkpoints: {} records/s", human(m.rate));
            without.push(m.rate);
            let m = measure(
                "with checkpoints",
                seconds,
                Some(interval_ms),
                &root.join(format!("on-{i}")),
            )
            .await?;
            eprintln!(
                "  with checkpoints: {} records/s, {} checkpoints committed",
                human(m.rate),
                m.checkpoints
            );
            with.push(m.rate);
        }
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&root);
    result?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&with) / mean(&without);
    println!("without checkpoints: {}", spread(&without));
    println!("with checkpoints every {interval_ms} ms: {}", spread(&with));
    println!(
        "ratio: {:.3} (throughput with checkpoints is {:.1}% {} than without)",
        ratio,
        (1.0 - ratio).abs() * 100.0,
        if ratio <= 1.0 { "lower" } else { "higher" }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's application must keep planning as the planner changes; only
    /// `sluice bench` would notice otherwise.
    #[test]
    fn the_checkpoint_overhead_application_plans() {
        let plan = crate::planner::plan_application(&application(Path::new("out"))).unwrap();
        assert_eq!(plan.pumps.len(), 2);
    }
}
