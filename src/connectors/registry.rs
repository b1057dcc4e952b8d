//! The one place that turns a configured input or output into its connector: a source
//! for each `SourceSpec`, a sink for each `DestinationSpec`. Adding a connector is its
//! folder plus one arm here (and its settings in `crate::app` and the manifest).

use crate::app::{DestinationSpec, OutputSpec, SourceSpec};
use crate::error::{Result, SluiceError};

use super::file::{FileSource, file_sink};
use super::generator::GeneratorSource;
use super::memory::CollectSink;
use super::sink::Sink;
use super::source::Source;
use super::stdio::{StdinSource, stdout_sink};

/// The source that reads an input.
pub fn source_for(spec: &SourceSpec) -> Result<Box<dyn Source>> {
    Ok(match spec {
        SourceSpec::File {
            path,
            skip_header_lines,
        } => Box::new(FileSource {
            path: path.clone(),
            recorded: false,
            skip_header_lines: *skip_header_lines,
        }),
        SourceSpec::Recorded {
            path,
            skip_header_lines,
        } => Box::new(FileSource {
            path: path.clone(),
            recorded: true,
            skip_header_lines: *skip_header_lines,
        }),
        SourceSpec::Stdin => Box::new(StdinSource),
        SourceSpec::Channel(input) => Box::new(super::channel::ChannelSource { input: input.clone() }),
        SourceSpec::Generator { rate, seed, limit } => Box::new(GeneratorSource {
            rate: *rate,
            seed: *seed,
            limit: *limit,
        }),
        SourceSpec::Kinesis(config) => Box::new(super::kinesis::KinesisSource { config: config.clone() }),
        SourceSpec::Unsupported { kind, detail } => {
            return Err(SluiceError::config(format!(
                "input source {kind} is not supported by this build: {detail}"
            )));
        }
    })
}

/// Refuses, before anything starts, an output this build cannot deliver.
pub fn check_destination(output: &OutputSpec) -> Result<()> {
    match &output.destination {
        DestinationSpec::Unsupported { kind, detail } => Err(unsupported_destination(kind, detail)),
        _ => Ok(()),
    }
}

fn unsupported_destination(kind: &str, detail: &str) -> SluiceError {
    SluiceError::config(format!(
        "output destination {kind} is not supported by this build: {detail}"
    ))
}

/// What a sink is built with besides its output's settings.
pub struct SinkContext<'a> {
    pub app: &'a str,
    /// The sink's own saved state (a file's length, an S3 buffer's position), when
    /// resuming from a checkpoint.
    pub saved: Option<&'a [u8]>,
    /// Exactly-once delivery: the sink publishes what a committed checkpoint covers.
    pub exactly_once: bool,
}

/// The sink that delivers an output. A `collect` output also returns where its batches
/// accumulate, for the caller of the run.
pub async fn sink_for(output: &OutputSpec, ctx: SinkContext<'_>) -> Result<(Box<dyn Sink>, Option<CollectSink>)> {
    let sink: Box<dyn Sink> = match &output.destination {
        DestinationSpec::Stdout => Box::new(stdout_sink(output.format)),
        DestinationSpec::File { path } => Box::new(file_sink(path, output.format, ctx.saved).await?),
        DestinationSpec::Collect => {
            let sink = CollectSink::default();
            return Ok((Box::new(sink.clone()), Some(sink)));
        }
        DestinationSpec::Kinesis(config) => Box::new(super::kinesis::KinesisSink::new(config.clone(), output.format)),
        DestinationSpec::Http(config) => Box::new(super::http::HttpSink::new(
            config.clone(),
            output.format,
            &output.stream,
            ctx.app,
        )?),
        DestinationSpec::S3(config) => Box::new(super::s3::S3Sink::new(
            config.clone(),
            ctx.app,
            &output.stream,
            output.format,
            ctx.exactly_once,
            ctx.saved,
        )?),
        DestinationSpec::Unsupported { kind, detail } => return Err(unsupported_destination(kind, detail)),
    };
    Ok((sink, None))
}
