//! Writing one object: PutObject with the SDK's standard retries inside each attempt,
//! and a jittered exponential backoff between attempts (the SDK gives up at once on
//! errors it deems permanent, such as AccessDenied or NoSuchBucket; a bucket policy or a
//! bucket may be fixed in the meantime, as Firehose keeps retrying too).

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use rand::Rng;

use super::client::{S3Connection, client, error_code};
use super::object::Failure;

/// Attempts the SDK makes inside each of ours.
const SDK_ATTEMPTS: u32 = 3;

pub struct Uploader {
    connection: S3Connection,
    /// Made on first use (loading the AWS configuration is async).
    client: tokio::sync::OnceCell<Client>,
    max_attempts: u32,
    /// The `app` and `stream` labels of the metrics.
    labels: [(&'static str, String); 2],
}

impl Uploader {
    pub fn new(connection: S3Connection, max_attempts: u32, app: &str, stream: &str) -> Self {
        Uploader {
            connection,
            client: tokio::sync::OnceCell::new(),
            max_attempts: max_attempts.max(1),
            labels: [("app", app.to_string()), ("stream", stream.to_string())],
        }
    }

    pub fn bucket(&self) -> &str {
        &self.connection.bucket
    }

    async fn client(&self) -> Client {
        let make = || client(&self.connection, SDK_ATTEMPTS);
        self.client.get_or_init(make).await.clone()
    }

    /// Writes `body` at `key`, or says why it could not after every attempt. Several may
    /// run at once (the objects of one flush).
    pub async fn put(&self, key: &str, body: &[u8], content_type: &str) -> Result<(), Failure> {
        let client = self.client().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = client
                .put_object()
                .bucket(&self.connection.bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await;
            let e = match sent {
                Ok(_) => {
                    ::metrics::counter!("sluice_s3_objects_written_total", &self.labels).increment(1);
                    ::metrics::counter!("sluice_s3_bytes_written_total", &self.labels).increment(body.len() as u64);
                    return Ok(());
                }
                Err(e) => e,
            };
            ::metrics::counter!("sluice_s3_put_failures_total", &self.labels).increment(1);
            let code = error_code(&e);
            let message = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
            if attempt >= self.max_attempts {
                return Err(Failure {
                    output_type: "delivery-failed",
                    code,
                    message,
                    attempts: attempt,
                });
            }
            tracing::warn!(bucket = %self.connection.bucket, key, attempt, code = %code, "PutObject failed; retrying");
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// 200 ms doubling per attempt up to 10 s, jittered into its upper half.
fn backoff(attempt: u32) -> Duration {
    let ceiling = (200u64 << attempt.saturating_sub(1).min(6)).min(10_000);
    Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        assert!(backoff(1) <= Duration::from_millis(200) && backoff(1) >= Duration::from_millis(100));
        assert!(backoff(3) <= Duration::from_millis(800) && backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10) && backoff(30) >= Duration::from_secs(5));
    }
}
