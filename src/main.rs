use std::io::IsTerminal;

use clap::Parser;

/// The stack of the runtime's threads: pumps evaluate expression trees recursively, and
/// a generated expression may be thousands of levels deep (see `planner::plan_application`).
/// Reserved, not used, until a tree goes that deep.
const TASK_STACK_BYTES: usize = 256 << 20;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(TASK_STACK_BYTES)
        .build()
        .expect("starting the tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    // Colour only for a person at a terminal: a log written to a file or a pipe stays plain
    // text, and NO_COLOR (https://no-color.org) turns colour off everywhere.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = sluice::cli::Cli::parse();
    match sluice::cli::main_with(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
