//! Standard input (one record per line) and standard output.

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::RawRecord;
use super::file::{is_blank, line_record};
use super::sink::LineSink;
use super::source::{PendingRecords, Source, SourceContext, stop_requested};
use crate::app::OutputFormat;
use crate::error::{Result, SluiceError};

pub struct StdinSource;

impl Source for StdinSource {
    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            // Lines as bytes (`next_segment` is cancel safe in the select): a line that
            // is not UTF-8 is a bad record for error_stream, not the end of the input.
            let mut lines = BufReader::new(tokio::io::stdin()).split(b'\n');
            let mut first = true;
            let mut tick = ctx.bound_ticker();
            let mut batch = PendingRecords::default();
            // A stop (Ctrl-C) ends the input as its end would, even while a read waits for
            // a line that may never come.
            let mut stop = ctx.shutdown.clone();
            loop {
                tokio::select! {
                    _ = stop_requested(&mut stop) => break,
                    line = lines.next_segment() => {
                        match line.map_err(|e| SluiceError::runtime(format!("reading stdin: {e}")))? {
                            Some(l) => {
                                let data = line_record(&l, std::mem::take(&mut first));
                                if !is_blank(data) && batch.push(RawRecord { data: data.to_vec(), ..Default::default() }) {
                                    ctx.publish(batch.records()).await;
                                    batch.clear();
                                }
                            }
                            None => break,
                        }
                    }
                    _ = tick.tick() => {
                        // interactive input arrives line by line: publish what is there
                        ctx.publish(batch.records()).await;
                        batch.clear();
                        if ctx.bound_interval().is_some() {
                            let now = ctx.clock();
                            ctx.bound(now).await;
                        }
                    }
                }
            }
            ctx.publish(batch.records()).await;
            ctx.finish(0).await;
            Ok(())
        })
    }
}

pub fn stdout_sink(format: OutputFormat) -> LineSink<tokio::io::Stdout> {
    LineSink::new(tokio::io::stdout(), format, "standard output")
}
