//! What a Kinesis input or output is configured with (the manifest maps onto these).

use std::path::PathBuf;

use crate::time::Millis;

/// Which stream, and how to reach it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KinesisConnection {
    /// The stream's name (taken from the ARN when only the ARN is given).
    pub stream_name: String,
    pub stream_arn: Option<String>,
    /// An endpoint override (a Kinesis-compatible server). `AWS_ENDPOINT_URL_KINESIS`
    /// and `AWS_ENDPOINT_URL` are honoured by the SDK when this is not set.
    pub endpoint: Option<String>,
    /// The region; else the standard chain (`AWS_REGION`, profile), else the ARN's.
    pub region: Option<String>,
    /// Static credentials, for local servers that accept any key. Everywhere else
    /// leave them out: the standard chain (environment, profile, SSO, role) applies.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl KinesisConnection {
    /// From a stream name or ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
    pub fn for_stream(name_or_arn: &str) -> Result<Self, String> {
        if name_or_arn.starts_with("arn:") {
            let parts: Vec<&str> = name_or_arn.splitn(6, ':').collect();
            let name = parts
                .get(5)
                .and_then(|r| r.strip_prefix("stream/"))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    format!("'{name_or_arn}' is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)")
                })?;
            let region = parts.get(3).filter(|r| !r.is_empty()).map(|r| r.to_string());
            Ok(KinesisConnection {
                stream_name: name.to_string(),
                stream_arn: Some(name_or_arn.to_string()),
                region,
                ..Default::default()
            })
        } else if name_or_arn.is_empty() {
            Err("the Kinesis stream name is empty".to_string())
        } else {
            Ok(KinesisConnection {
                stream_name: name_or_arn.to_string(),
                ..Default::default()
            })
        }
    }
}

/// Where a shard with no saved position starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartPosition {
    TrimHorizon,
    Latest,
    AtTimestamp(Millis),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSourceConfig {
    pub connection: KinesisConnection,
    pub start: StartPosition,
    /// The shortest time between two GetRecords calls on one shard (Kinesis allows 5
    /// per second per shard, shared by every consumer of the stream).
    pub poll_interval_ms: u64,
    /// How far polling of an idle shard slows down.
    pub idle_poll_max_ms: u64,
    /// Records asked for per GetRecords call (at most 10 000).
    pub max_records: i32,
    /// How often ListShards runs to find new shards (after a reshard).
    pub discovery_interval_ms: u64,
    /// Split KPL aggregated records into their user records.
    pub deaggregate: bool,
    /// Enhanced fan-out: read through this registered stream consumer (registered if
    /// missing) with SubscribeToShard, instead of polling GetRecords.
    pub efo_consumer: Option<String>,
}

impl KinesisSourceConfig {
    pub fn new(connection: KinesisConnection) -> Self {
        KinesisSourceConfig {
            connection,
            start: StartPosition::TrimHorizon,
            poll_interval_ms: 200,
            idle_poll_max_ms: 1000,
            max_records: 10_000,
            discovery_interval_ms: 10_000,
            deaggregate: true,
            efo_consumer: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSinkConfig {
    pub connection: KinesisConnection,
    /// The output column whose value is each record's partition key; random when None.
    pub partition_key: Option<String>,
    /// The output column whose value is each record's explicit hash key.
    pub explicit_hash_key: Option<String>,
    /// Attempts per record before it is parked.
    pub max_attempts: u32,
    /// Where records that could not be delivered are written (JSON lines with the
    /// reason), for an operator to replay.
    pub parked_path: PathBuf,
}

impl KinesisSinkConfig {
    pub fn new(connection: KinesisConnection, output_stream: &str) -> Self {
        KinesisSinkConfig {
            parked_path: PathBuf::from(format!("sluice-parked/{output_stream}.jsonl")),
            connection,
            partition_key: None,
            explicit_hash_key: None,
            max_attempts: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_from_arn_takes_name_and_region() {
        let c = KinesisConnection::for_stream("arn:aws:kinesis:eu-west-1:123456789012:stream/ride-events").unwrap();
        assert_eq!(c.stream_name, "ride-events");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert!(KinesisConnection::for_stream("arn:aws:s3:::bucket").is_err());
        assert_eq!(KinesisConnection::for_stream("rides").unwrap().stream_name, "rides");
    }
}
