//! The S3 client: `aws-config`'s standard chain, TLS by rustls with ring, path-style
//! addressing when an endpoint override names an S3-compatible store.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;

/// Which bucket, and how to reach it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct S3Connection {
    pub bucket: String,
    /// An endpoint override (an S3-compatible server); addressing is then path-style.
    /// `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL` are honoured by the SDK otherwise.
    pub endpoint: Option<String>,
    /// The region; else the standard chain (`AWS_REGION`, profile), else us-east-1.
    pub region: Option<String>,
    /// Static credentials, for local servers that accept any key. Everywhere else
    /// leave them out: the standard chain (environment, profile, SSO, role) applies.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl S3Connection {
    /// From a bucket name or ARN (`arn:aws:s3:::BUCKET`).
    pub fn for_bucket(name_or_arn: &str) -> Result<Self, String> {
        let bucket = match name_or_arn.strip_prefix("arn:") {
            Some(_) => name_or_arn
                .strip_prefix("arn:aws:s3:::")
                .or_else(|| name_or_arn.splitn(6, ':').nth(5))
                .filter(|b| !b.is_empty() && !b.contains('/'))
                .ok_or_else(|| format!("'{name_or_arn}' is not an S3 bucket ARN (arn:aws:s3:::BUCKET)"))?,
            None if name_or_arn.is_empty() => return Err("the S3 bucket name is empty".to_string()),
            None => name_or_arn,
        };
        Ok(S3Connection {
            bucket: bucket.to_string(),
            ..Default::default()
        })
    }
}

/// A client for `connection`, with the SDK's standard retries (`max_attempts`).
pub async fn client(connection: &S3Connection, max_attempts: u32) -> Client {
    let sdk = crate::connectors::aws::sdk_config(
        connection.region.as_deref(),
        connection.access_key_id.as_deref(),
        connection.secret_access_key.as_deref(),
    )
    .await;
    let mut config = aws_sdk_s3::config::Builder::from(&sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(endpoint) = &connection.endpoint {
        // S3-compatible stores (moto, s3s, MinIO) answer on one host: path-style.
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    if sdk.region().is_none() {
        config = config.region(crate::connectors::aws::fallback_region());
    }
    Client::from_conf(config.build())
}

/// The error code of an SDK error (`NoSuchKey`, `SlowDown`, ...), or a description of
/// a failure that never reached the service.
pub fn error_code<E>(e: &aws_sdk_s3::error::SdkError<E>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match e.code() {
        Some(code) => code.to_string(),
        None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_named_by_name_or_arn() {
        assert_eq!(S3Connection::for_bucket("logs").unwrap().bucket, "logs");
        assert_eq!(S3Connection::for_bucket("arn:aws:s3:::logs").unwrap().bucket, "logs");
        assert!(S3Connection::for_bucket("arn:aws:s3:::logs/key").is_err());
        assert!(S3Connection::for_bucket("").is_err());
    }
}
