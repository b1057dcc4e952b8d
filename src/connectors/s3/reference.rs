//! Reference data from S3 (KDA's S3ReferenceDataSource): one GetObject per load, with
//! `If-None-Match` on a refresh so an unchanged object (same ETag) is not downloaded
//! again. Decoding is the caller's (`crate::planner::reference`).

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::client::S3Connection;

/// Attempts per GetObject (the SDK's standard retries with backoff).
pub const MAX_ATTEMPTS: u32 = 3;

/// An object's bytes and its ETag.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

#[derive(Debug)]
pub enum Fetched {
    /// The object still has the ETag given as `if_none_match` (HTTP 304).
    Unchanged,
    Object(Object),
}

/// Reads `key` of `connection.bucket`. With `if_none_match`, an object whose ETag is
/// still that one answers [`Fetched::Unchanged`] without its body. Errors name the
/// object (`s3://bucket/key`) and the service's error code.
pub async fn get(
    client: &Client,
    connection: &S3Connection,
    key: &str,
    if_none_match: Option<&str>,
) -> Result<Fetched, String> {
    let location = format!("s3://{}/{key}", connection.bucket);
    let request = client
        .get_object()
        .bucket(&connection.bucket)
        .key(key)
        .set_if_none_match(if_none_match.map(str::to_string));
    match request.send().await {
        Ok(out) => {
            let etag = out.e_tag().map(str::to_string);
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| format!("cannot read {location}: the body failed: {e}"))?;
            Ok(Fetched::Object(Object {
                bytes: body.into_bytes().to_vec(),
                etag,
            }))
        }
        Err(e) if status(&e) == Some(304) => Ok(Fetched::Unchanged),
        Err(e) => Err(format!("cannot read {location}: {}", describe(&e))),
    }
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// `NoSuchKey (The specified key does not exist.)`, or what went wrong before the
/// service answered.
fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code} ({message})"),
        (Some(code), None) => code.to_string(),
        _ => match status(e) {
            Some(status) => format!("HTTP {status}: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
            None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)),
        },
    }
}
