//! The Kinesis client: `aws-config`'s standard chain, TLS by rustls with ring, and the
//! endpoint, region and credential overrides of the connection.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kinesis::Client;

use super::config::KinesisConnection;

/// A client for `connection`. `max_attempts` is the SDK's own retry budget; the
/// source sets 1 and does its own backoff, so throttling is seen and counted.
pub async fn client(connection: &KinesisConnection, max_attempts: u32) -> Client {
    let sdk = crate::connectors::aws::sdk_config(
        connection.region.as_deref(),
        connection.access_key_id.as_deref(),
        connection.secret_access_key.as_deref(),
    )
    .await;
    let mut config = aws_sdk_kinesis::config::Builder::from(&sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(endpoint) = &connection.endpoint {
        config = config.endpoint_url(endpoint);
    }
    if sdk.region().is_none() {
        config = config.region(crate::connectors::aws::fallback_region());
    }
    Client::from_conf(config.build())
}

/// The error code of an SDK error (`ProvisionedThroughputExceededException`, ...), or
/// a description of a failure that never reached the service.
pub fn error_code<E>(e: &aws_sdk_kinesis::error::SdkError<E>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    match e.code() {
        Some(code) => code.to_string(),
        None => format!("{}", aws_sdk_kinesis::error::DisplayErrorContext(e)),
    }
}

/// Errors that mean "slow down": the stream's limits, not a fault.
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "ThrottlingException"
    )
}
