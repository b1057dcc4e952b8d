//! S3: delivery with Firehose semantics and reference data, against moto_server.

pub mod delivery;
pub mod support;
