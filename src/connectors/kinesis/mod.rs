//! Kinesis Data Streams: a shard-aware polling source and a batching PutRecords sink,
//! on `aws-sdk-kinesis` with `aws-config`'s standard chain.
//!
//! * [`source`]: shard discovery, parent-before-child ordering, positions per shard
//!   in checkpoints; [`shard`]: one reader per shard within the GetRecords limits;
//! * [`kpl`]: KPL aggregated records, split into their user records;
//! * [`sink`]: PutRecords batching with per-record retries;
//! * [`client`]: the SDK client (standard chain, endpoint override, rustls with ring).

pub mod client;
pub mod config;
pub mod kpl;
pub mod shard;
pub mod sink;
pub mod source;

pub use config::{KinesisConnection, KinesisSinkConfig, KinesisSourceConfig, StartPosition};
pub use sink::KinesisSink;
pub use source::KinesisSource;
