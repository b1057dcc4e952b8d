//! Amazon S3: the Firehose-style delivery sink and reference-data objects, on
//! `aws-sdk-s3` with `aws-config`'s standard chain.
//!
//! * [`client`]: the SDK client (standard chain, endpoint override with path-style
//!   addressing, rustls with ring).
//! * [`config`]: what an S3 output is configured with (Firehose's settings and defaults).
//! * [`key`]: object keys: prefix expressions (`!{timestamp:..}`, `!{firehose:..}`),
//!   Hive partition folders, object names.
//! * [`object`]: object bodies (JSON lines, CSV, Parquet; GZIP, Snappy, ZSTD) and error
//!   records.
//! * [`buffer`]: the buffering hints (size, interval).
//! * [`upload`]: PutObject with retries and backoff.
//! * [`sink`]: the sink that ties them together: flushes, partitions, the error prefix,
//!   parking, checkpoints and exactly-once epochs.
//! * [`reference`]: reference tables read from S3 objects.
//! * [`bench`]: `sluice bench s3-delivery`.

pub mod bench;
pub mod buffer;
pub mod client;
pub mod config;
pub mod key;
pub mod object;
pub mod reference;
pub mod sink;
pub mod upload;

pub use client::S3Connection;
pub use config::{Compression, ObjectFormat, S3SinkConfig};
pub use sink::{S3Sink, S3Stats};

/// The S3 sink's series (labels `app` and `stream`), described once with the registry.
pub fn describe_metrics() {
    use ::metrics::describe_counter;
    describe_counter!(
        "sluice_s3_objects_written_total",
        "Objects written to S3 (data and error objects)"
    );
    describe_counter!("sluice_s3_bytes_written_total", "Bytes of the objects written to S3");
    describe_counter!(
        "sluice_s3_put_failures_total",
        "PutObject attempts that failed (each is retried or given up)"
    );
    describe_counter!(
        "sluice_s3_error_rows_total",
        "Rows written under the error prefix after delivery failed"
    );
    describe_counter!(
        "sluice_s3_parked_rows_total",
        "Rows parked in the local file after the error prefix failed too"
    );
}
