//! The `sluice` command line: `run`, `test`, `explain`, `bench`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::SourceSpec;
use crate::engine::{RunOptions, TimeMode};
use crate::runtime::AbortOnDrop;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Runs Kinesis Data Analytics SQL applications unchanged"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an application: a manifest (TOML), or the JSON printed by
    /// `aws kinesisanalytics describe-application`.
    Run {
        /// Path to the manifest (or a folder holding `sluice.toml`).
        app: PathBuf,
        /// Read the file input (or reference table) NAME from PATH instead of the file
        /// the manifest names; NAME is an input's name prefix or stream, or a table.
        /// Repeatable. An input of another kind (stdin, generator, ...) then reads PATH.
        #[arg(long = "input", value_name = "NAME=PATH")]
        inputs: Vec<crate::manifest::InputOverride>,
        /// Events per second of the built-in generator (overrides the manifest).
        #[arg(long)]
        rate: Option<u64>,
        /// Seed of the built-in generator: the same seed gives the same events.
        #[arg(long)]
        seed: Option<u64>,
        /// Stop the generator after this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// How often time advances while input is quiet, in milliseconds (A19).
        #[arg(long, default_value_t = 1000)]
        bound_interval_ms: u64,
        /// Keep state in this folder: checkpoints are taken there, and a restart with
        /// the same folder resumes from the last one without losing or repeating input.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// How often a checkpoint is taken, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        checkpoint_interval_ms: u64,
        /// Discard the state in --state-dir (for example after changing the
        /// application) and start from the beginning.
        #[arg(long)]
        fresh: bool,
        /// Publish each result only once the checkpoint covering it has completed, with a
        /// ROW_ID column to drop repeats by: files become exactly-once, streams
        /// effectively-once. Results wait up to a checkpoint interval. Needs --state-dir.
        #[arg(long, requires = "state_dir")]
        exactly_once: bool,
        /// Serve GET /metrics (Prometheus text) and GET /health (JSON) on this address
        /// while the application runs, for example 127.0.0.1:9898 (port 0: any free port).
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
        /// Memory for window state (bytes, or with a unit: 512MB, 2GB), split across
        /// the window operators (tumbling, sliding, stagger); state past it spills to
        /// disk and the run goes on.
        #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = crate::state::spill::parse_size)]
        memory_budget: usize,
    },
    /// Run conformance cases (folders with case.toml, or folders of them) and compare
    /// each output stream with its recording. Ends with `N passed, M failed`.
    Test {
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
    /// Parse and plan an application and print its streams and operator chains.
    Explain {
        app: PathBuf,
        /// As for `run`: NAME reads PATH (checked, though explaining reads no input).
        #[arg(long = "input", value_name = "NAME=PATH")]
        inputs: Vec<crate::manifest::InputOverride>,
    },
    /// Measurements too long for criterion (`benches/engine.rs` holds the short ones).
    Bench {
        #[command(subcommand)]
        which: crate::bench::BenchCommand,
    },
}

fn manifest_path(app: PathBuf) -> PathBuf {
    if app.is_dir() { app.join("sluice.toml") } else { app }
}

pub async fn main_with(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run {
            app,
            inputs,
            rate,
            seed,
            limit,
            bound_interval_ms,
            state_dir,
            checkpoint_interval_ms,
            fresh,
            exactly_once,
            http,
            memory_budget,
        } => {
            let mut spec = crate::manifest::load_manifest_with(&manifest_path(app), &inputs)?;
            crate::manifest::validate(&spec)?;
            for input in &mut spec.inputs {
                if let SourceSpec::Generator {
                    rate: r,
                    seed: s,
                    limit: l,
                } = &mut input.source
                {
                    *r = rate.unwrap_or(*r);
                    *s = seed.unwrap_or(*s);
                    *l = limit.or(*l);
                }
            }
            tracing::info!(app = %spec.name, inputs = spec.inputs.len(), outputs = spec.outputs.len(), "starting");
            let mut options = RunOptions::new(TimeMode::WallClock { bound_interval_ms });
            options.checkpoints = state_dir.map(|state_dir| crate::engine::CheckpointOptions {
                state_dir,
                interval_ms: checkpoint_interval_ms,
                fresh,
            });
            if exactly_once {
                options.delivery = crate::engine::Delivery::ExactlyOnce;
            }
            options.memory_budget_bytes = Some(memory_budget);
            let running = crate::engine::start(&spec, options).await?;
            let app = running.handle().clone();
            let _interrupt = AbortOnDrop(tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!(
                        "stopping: finishing open windows and flushing outputs (Ctrl-C again to quit at once)"
                    );
                    app.stop();
                }
                // A second Ctrl-C is an impatient user: quit without flushing, as the
                // conventional exit status of an interrupted process.
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::warn!("quitting at once: open windows and unflushed outputs are lost");
                    std::process::exit(130);
                }
            }));
            // The server lives as long as the run: aborted when this scope ends.
            let _server = match http {
                Some(addr) => {
                    let (bound, task) = crate::server::serve(addr, running.handle().clone()).await?;
                    tracing::info!("serving metrics and health on http://{bound}");
                    Some(AbortOnDrop(task))
                }
                None => None,
            };
            running.wait().await?;
            Ok(0)
        }
        Command::Test { cases } => {
            let mut stdout = std::io::stdout();
            let summary = crate::testing::runner::run_cases(&cases, &mut stdout).await?;
            Ok(if summary.failed == 0 && summary.passed > 0 {
                0
            } else {
                1
            })
        }
        Command::Explain { app, inputs } => {
            let spec = crate::manifest::load_manifest_with(&manifest_path(app), &inputs)?;
            let plan = crate::planner::plan_application(&spec)?;
            print!("{}", plan.describe());
            Ok(0)
        }
        Command::Bench { which } => crate::bench::main_with(which).await,
    }
}
