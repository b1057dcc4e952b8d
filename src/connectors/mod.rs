//! Sources and sinks. A source turns the outside world into batches of an in-application
//! input stream; a sink turns the batches of an output stream into bytes somewhere.
//! One folder per connector; the planner never sees them. A new connector implements
//! [`source::Source`] or [`sink::Sink`] in its folder and gets one arm in [`registry`],
//! which is all the runtime knows of connectors; its settings are a variant of
//! `crate::app::SourceSpec` or `DestinationSpec`, read by the manifest.

pub mod aws;
pub mod channel;
pub mod event_time;
pub mod file;
pub mod formats;
pub mod generator;
pub mod http;
pub mod kinesis;
pub mod memory;
pub mod registry;
pub mod s3;
pub mod sink;
pub mod source;
pub mod stdio;

use crate::time::Millis;

/// One record as a source read it, before schema mapping.
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    pub data: Vec<u8>,
    /// ROWTIME fixed by a recording; live sources leave it None and the ingest clock
    /// decides.
    pub rowtime: Option<Millis>,
    /// APPROXIMATE_ARRIVAL_TIME; defaults to the ROWTIME.
    pub arrival: Option<Millis>,
    pub partition_key: Option<String>,
    pub sequence_number: Option<String>,
    /// The Kinesis shard the record was read from.
    pub shard_id: Option<std::sync::Arc<str>>,
}
