//! Standard input (one record per line) and standard output.

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::RawRecord;
use super::sink::LineSink;
use super::source::{BATCH_RECORDS, Source, SourceContext};
use crate::app::OutputFormat;
use crate::error::{Result, SluiceError};

pub struct StdinSource;

impl Source for StdinSource {
    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            let mut tick = tokio::time::interval(ctx.bound_interval().unwrap_or(std::time::Duration::from_secs(3600)));
            let mut batch = Vec::with_capacity(BATCH_RECORDS);
            // A stop (Ctrl-C) ends the input as its end would, even while a read waits for
            // a line that may never come.
            let mut stop = ctx.shutdown.clone();
            let mut watching = true;
            loop {
                if *stop.borrow() {
                    break;
                }
                tokio::select! {
                    changed = stop.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                        }
                    }
                    line = lines.next_line() => {
                        match line.map_err(|e| SluiceError::runtime(format!("reading stdin: {e}")))? {
                            Some(l) if l.trim().is_empty() => {}
                            Some(l) => {
                                batch.push(RawRecord { data: l.into_bytes(), ..Default::default() });
                                if batch.len() >= BATCH_RECORDS { ctx.publish(&batch).await; batch.clear(); }
                            }
                            None => break,
                        }
                    }
                    _ = tick.tick() => {
                        // interactive input arrives line by line: publish what is there
                        ctx.publish(&batch).await;
                        batch.clear();
                        if ctx.bound_interval().is_some() {
                            let now = ctx.clock();
                            ctx.bound(now).await;
                        }
                    }
                }
            }
            ctx.publish(&batch).await;
            ctx.finish(0).await;
            Ok(())
        })
    }
}

pub fn stdout_sink(format: OutputFormat) -> LineSink<tokio::io::Stdout> {
    LineSink::new(tokio::io::stdout(), format)
}
