//! What the AWS clients (Kinesis, S3) share: `aws-config`'s standard chain over an HTTP
//! client with TLS by rustls with ring (the SDK's default, aws-lc, is a long C build),
//! with the region and static credentials a manifest may give.

use aws_config::{BehaviorVersion, SdkConfig};
// The SDKs share these types (aws-credential-types, aws-types); any SDK's re-export will do.
use aws_sdk_kinesis::config::{Credentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The shared SDK configuration. Static credentials are for local servers that accept
/// any key; without them the standard chain applies (environment, profile, SSO, role).
pub async fn sdk_config(
    region: Option<&str>,
    access_key_id: Option<&str>,
    secret_access_key: Option<&str>,
) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let (Some(key), Some(secret)) = (access_key_id, secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(key, secret, None, None, "sluice-manifest"));
    }
    loader.load().await
}

/// A local server needs no particular region, but the SDK needs one.
pub fn fallback_region() -> Region {
    Region::new("us-east-1")
}
