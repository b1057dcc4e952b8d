//! The Kinesis client: `aws-config`'s standard chain, TLS by rustls with ring, and the
//! endpoint, region and credential overrides of the connection.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{Credentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::config::KinesisConnection;

/// A client for `connection`. `max_attempts` is the SDK's own retry budget; the
/// source sets 1 and does its own backoff, so throttling is seen and counted.
pub async fn client(connection: &KinesisConnection, max_attempts: u32) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &connection.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let (Some(key), Some(secret)) = (&connection.access_key_id, &connection.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(key, secret, None, None, "sluice-manifest"));
    }
    let sdk = loader.load().await;
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
    // A local server needs no particular region, but the SDK needs one.
    if sdk.region().is_none() {
        config = config.region(Region::new("us-east-1"));
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
