//! What an HTTP callback output and an HTTP input transform are configured with, and the
//! manifest tables that only these connectors read (`on_failure`, `preprocessor`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::connectors::kinesis::{KinesisConnection, KinesisSinkConfig};
use crate::connectors::s3::S3Connection;

/// Where and how to POST: the URL, extra headers and the timeout of one request.
/// `${NAME}` in the URL and in header values is replaced by the environment variable
/// `NAME` when the connector starts (`$${` writes a literal `${`), so secrets need not
/// be in the manifest; the configuration keeps the templates.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpEndpoint {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// Per request: a request that has not answered by then fails (and is retried).
    pub timeout_ms: u64,
}

impl HttpEndpoint {
    pub fn new(url: &str) -> Self {
        HttpEndpoint {
            url: url.to_string(),
            headers: BTreeMap::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }
}

pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_BATCH_SIZE: usize = 500;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 100;
pub const DEFAULT_BACKOFF_CAP_MS: u64 = 10_000;

/// Exponential backoff with full jitter: before retry n (n = 1, 2, ...) wait a uniform
/// random time in `[0, min(cap, base * 2^(n-1))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub cap_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: DEFAULT_BACKOFF_BASE_MS,
            cap_ms: DEFAULT_BACKOFF_CAP_MS,
        }
    }
}

/// The body of a callback request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// The KDA Lambda output event: `{"invocationId", "applicationArn", "records":
    /// [{"recordId", "lambdaDeliveryRecordMetadata": {"retryHint"}, "data": base64}]}`;
    /// the receiver answers `{"records": [{"recordId", "result": "Ok" | "DeliveryFailed"}]}`.
    #[default]
    Kda,
    /// `{"rows": [row, ...]}`: each row the JSON object of the output row (a string for
    /// CSV output); any 2xx answer delivers every row of the request.
    Plain,
}

/// Where records go that could not be delivered within the retry budget. Each carries
/// the error, the attempts and the row.
#[derive(Debug, Clone, PartialEq)]
pub enum OnFailure {
    /// Appended as JSON lines.
    File { path: PathBuf },
    /// Put to a Kinesis data stream, one JSON record per failed row (partition key: the
    /// record id); what the stream refuses is parked in the config's `parked_path`.
    Kinesis(KinesisSinkConfig),
    /// One JSON-lines object per failed group under `prefix`
    /// (`<prefix><stream>/<yyyy>/<MM>/<dd>/<HH>/<millis>-<n>.jsonl`); appended to
    /// `fallback_path` when the put fails.
    S3 {
        connection: S3Connection,
        prefix: String,
        fallback_path: PathBuf,
    },
}

/// An output delivered to an HTTP endpoint with the contract of a KDA Lambda output.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSinkConfig {
    pub endpoint: HttpEndpoint,
    pub payload: Payload,
    /// Most records in one request.
    pub batch_size: usize,
    /// How long a record may wait for its batch to fill before a partial batch is sent
    /// (0: send what is there as soon as a request may go).
    pub max_batching_window_ms: u64,
    /// Calls per record before it goes to `on_failure` (splitting a failed batch in
    /// halves does not count).
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Requests in flight at once. 1 keeps the rows in order; more sends batches in
    /// parallel and promises no order between them.
    pub max_concurrency: usize,
    /// When a whole request fails (a non-2xx status other than 429, or a timeout), split
    /// it in halves and retry each, down to single records, so one record that breaks the
    /// receiver is isolated.
    pub bisect_on_error: bool,
    pub on_failure: OnFailure,
    /// The `applicationArn` of the KDA payload (default: a local ARN naming the app).
    pub application_arn: Option<String>,
}

impl HttpSinkConfig {
    pub fn new(url: &str, output_stream: &str) -> Self {
        HttpSinkConfig {
            endpoint: HttpEndpoint::new(url),
            payload: Payload::Kda,
            batch_size: DEFAULT_BATCH_SIZE,
            max_batching_window_ms: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            max_concurrency: 1,
            bisect_on_error: true,
            on_failure: OnFailure::File {
                path: default_failure_path(output_stream),
            },
            application_arn: None,
        }
    }
}

/// `sluice-failed/<stream>.jsonl`, beside the Kinesis sink's parked records.
pub fn default_failure_path(output_stream: &str) -> PathBuf {
    PathBuf::from(format!("sluice-failed/{output_stream}.jsonl"))
}

/// KDA's input preprocessor, as an HTTP endpoint with the Lambda contract: records go
/// out base64 in batches, come back `Ok` (with new data), `Dropped` or
/// `ProcessingFailed`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTransformConfig {
    pub endpoint: HttpEndpoint,
    pub batch_size: usize,
    /// Calls per batch when the call itself fails (non-2xx, timeout, unreadable answer);
    /// then the batch's records go to `error_stream`.
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Batches of one publish in flight at once (their results keep the record order).
    pub max_concurrency: usize,
    pub application_arn: Option<String>,
}

impl HttpTransformConfig {
    pub fn new(url: &str) -> Self {
        HttpTransformConfig {
            endpoint: HttpEndpoint::new(url),
            batch_size: DEFAULT_BATCH_SIZE,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            max_concurrency: 1,
            application_arn: None,
        }
    }
}

/// An input's preprocessor.
#[derive(Debug, Clone, PartialEq)]
pub enum PreprocessorSpec {
    Http(HttpTransformConfig),
    /// A Lambda function named by its ARN (a describe-application export) with no URL to
    /// reach it at: reported, never run.
    Lambda {
        arn: String,
    },
}

/// The local `applicationArn` of an application that has none configured.
pub fn local_application_arn(app: &str) -> String {
    format!("arn:aws:kinesisanalytics:local:000000000000:application/{app}")
}

// =======================================================================================
// Manifest tables
// =======================================================================================

/// `preprocessor = { url = "...", headers = { ... }, timeout_ms, batch_size, ... }` of an
/// `[[inputs]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPreprocessor {
    #[serde(default)]
    pub url: Option<String>,
    /// The Lambda function this URL stands in for (informative).
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub backoff_base_ms: Option<u64>,
    #[serde(default)]
    pub backoff_cap_ms: Option<u64>,
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    #[serde(default)]
    pub application_arn: Option<String>,
}

impl ManifestPreprocessor {
    pub fn to_spec(&self) -> Result<PreprocessorSpec, String> {
        let Some(url) = &self.url else {
            return match &self.arn {
                Some(arn) => Ok(PreprocessorSpec::Lambda { arn: arn.clone() }),
                None => {
                    Err("the preprocessor needs `url` (an HTTP endpoint with the Lambda preprocessor contract)".into())
                }
            };
        };
        check_url(url)?;
        let mut c = HttpTransformConfig::new(url);
        c.endpoint.headers = self.headers.clone();
        if let Some(ms) = self.timeout_ms {
            c.endpoint.timeout_ms = positive("timeout_ms", ms)?;
        }
        if let Some(n) = self.batch_size {
            c.batch_size = positive("batch_size", n as u64)? as usize;
        }
        if let Some(n) = self.max_attempts {
            c.max_attempts = positive("max_attempts", n as u64)? as u32;
        }
        c.backoff = backoff(self.backoff_base_ms, self.backoff_cap_ms)?;
        if let Some(n) = self.max_concurrency {
            c.max_concurrency = positive("max_concurrency", n as u64)? as usize;
        }
        c.application_arn = self.application_arn.clone();
        Ok(PreprocessorSpec::Http(c))
    }
}

/// `on_failure = { kind = "file" | "kinesis" | "s3", ... }` of an HTTP destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestOnFailure {
    pub kind: String,
    /// file
    #[serde(default)]
    pub path: Option<String>,
    /// kinesis: the stream
    #[serde(default, alias = "stream_name")]
    pub name: Option<String>,
    /// kinesis: the stream ARN; s3: the bucket ARN
    #[serde(default, alias = "bucket_arn")]
    pub arn: Option<String>,
    /// s3
    #[serde(default)]
    pub bucket: Option<String>,
    /// s3: the key prefix (default `sluice-failed/`)
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

impl ManifestOnFailure {
    pub fn to_on_failure(&self, base_dir: &Path, stream: &str) -> Result<OnFailure, String> {
        let kind = self.kind.trim().to_ascii_lowercase();
        let remote = self.endpoint.is_some()
            || self.region.is_some()
            || self.access_key_id.is_some()
            || self.secret_access_key.is_some();
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err("on_failure: give both `access_key_id` and `secret_access_key`, or neither".into());
        }
        match kind.as_str() {
            "file" => {
                if remote || self.name.is_some() || self.arn.is_some() || self.bucket.is_some() || self.prefix.is_some()
                {
                    return Err("on_failure kind = \"file\" takes only `path`".into());
                }
                let path = self.path.as_deref().ok_or("on_failure kind = \"file\" needs `path`")?;
                Ok(OnFailure::File {
                    path: base_dir.join(path),
                })
            }
            "kinesis" => {
                if self.path.is_some() || self.bucket.is_some() || self.prefix.is_some() {
                    return Err(
                        "on_failure kind = \"kinesis\" takes name/arn, endpoint, region and credentials".into(),
                    );
                }
                let mut c = match (&self.arn, &self.name) {
                    (Some(arn), _) => KinesisConnection::for_stream(arn)?,
                    (None, Some(name)) => KinesisConnection::for_stream(name)?,
                    (None, None) => return Err("on_failure kind = \"kinesis\" needs `name` or `arn`".into()),
                };
                c.endpoint = self.endpoint.clone();
                if self.region.is_some() {
                    c.region = self.region.clone();
                }
                c.access_key_id = self.access_key_id.clone();
                c.secret_access_key = self.secret_access_key.clone();
                let mut config = KinesisSinkConfig::new(c, stream);
                // What cannot be put to the failure stream either is parked in a file.
                config.parked_path = base_dir.join(default_failure_path(stream));
                Ok(OnFailure::Kinesis(config))
            }
            "s3" => {
                if self.path.is_some() || self.name.is_some() {
                    return Err(
                        "on_failure kind = \"s3\" takes bucket/bucket_arn, prefix, endpoint, region and credentials"
                            .into(),
                    );
                }
                let mut c = match (&self.bucket, &self.arn) {
                    (Some(b), _) | (None, Some(b)) => S3Connection::for_bucket(b)?,
                    (None, None) => return Err("on_failure kind = \"s3\" needs `bucket` or `bucket_arn`".into()),
                };
                c.endpoint = self.endpoint.clone();
                c.region = self.region.clone();
                c.access_key_id = self.access_key_id.clone();
                c.secret_access_key = self.secret_access_key.clone();
                Ok(OnFailure::S3 {
                    connection: c,
                    prefix: self.prefix.clone().unwrap_or_else(|| "sluice-failed/".to_string()),
                    fallback_path: base_dir.join(default_failure_path(stream)),
                })
            }
            other => Err(format!("on_failure kind '{other}' is not file, kinesis or s3")),
        }
    }
}

/// The HTTP settings of an `[outputs.destination]` with kind = "http" (or "lambda" with
/// a `url`), as the manifest gives them.
#[derive(Debug, Default)]
pub struct HttpDestinationFields<'a> {
    pub url: Option<&'a str>,
    pub headers: Option<&'a BTreeMap<String, String>>,
    pub payload: Option<&'a str>,
    pub batch_size: Option<usize>,
    pub max_batching_window_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<usize>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_cap_ms: Option<u64>,
    pub bisect_on_error: Option<bool>,
    pub on_failure: Option<&'a ManifestOnFailure>,
    pub application_arn: Option<&'a str>,
}

impl HttpDestinationFields<'_> {
    /// Whether any HTTP-only setting is given (other kinds reject them).
    pub fn any(&self) -> Option<&'static str> {
        [
            ("url", self.url.is_some()),
            ("headers", self.headers.is_some()),
            ("payload", self.payload.is_some()),
            ("batch_size", self.batch_size.is_some()),
            ("max_batching_window_ms", self.max_batching_window_ms.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("max_concurrency", self.max_concurrency.is_some()),
            ("backoff_base_ms", self.backoff_base_ms.is_some()),
            ("backoff_cap_ms", self.backoff_cap_ms.is_some()),
            ("bisect_on_error", self.bisect_on_error.is_some()),
            ("on_failure", self.on_failure.is_some()),
            ("application_arn", self.application_arn.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    }

    pub fn to_config(&self, base_dir: &Path, stream: &str) -> Result<HttpSinkConfig, String> {
        let url = self.url.ok_or("needs `url`")?;
        check_url(url)?;
        let mut c = HttpSinkConfig::new(url, stream);
        c.on_failure = OnFailure::File {
            path: base_dir.join(default_failure_path(stream)),
        };
        if let Some(h) = self.headers {
            c.endpoint.headers = h.clone();
        }
        c.payload = match self.payload.map(|p| p.trim().to_ascii_lowercase()).as_deref() {
            None | Some("kda") | Some("lambda") => Payload::Kda,
            Some("plain") => Payload::Plain,
            Some(other) => return Err(format!("payload '{other}' is not \"kda\" or \"plain\"")),
        };
        if let Some(n) = self.batch_size {
            c.batch_size = positive("batch_size", n as u64)? as usize;
        }
        if let Some(ms) = self.max_batching_window_ms {
            c.max_batching_window_ms = ms;
        }
        if let Some(n) = self.max_attempts {
            c.max_attempts = positive("max_attempts", n as u64)? as u32;
        }
        if let Some(ms) = self.timeout_ms {
            c.endpoint.timeout_ms = positive("timeout_ms", ms)?;
        }
        if let Some(n) = self.max_concurrency {
            c.max_concurrency = positive("max_concurrency", n as u64)? as usize;
        }
        c.backoff = backoff(self.backoff_base_ms, self.backoff_cap_ms)?;
        if let Some(b) = self.bisect_on_error {
            c.bisect_on_error = b;
        }
        if let Some(f) = self.on_failure {
            c.on_failure = f.to_on_failure(base_dir, stream)?;
        }
        c.application_arn = self.application_arn.map(str::to_string);
        Ok(c)
    }
}

fn positive(what: &str, n: u64) -> Result<u64, String> {
    if n == 0 {
        Err(format!("{what} must be at least 1"))
    } else {
        Ok(n)
    }
}

fn backoff(base: Option<u64>, cap: Option<u64>) -> Result<Backoff, String> {
    let mut b = Backoff::default();
    if let Some(ms) = base {
        b.base_ms = ms;
    }
    if let Some(ms) = cap {
        b.cap_ms = ms;
    }
    if b.cap_ms < b.base_ms {
        return Err(format!(
            "backoff_cap_ms ({}) is below backoff_base_ms ({})",
            b.cap_ms, b.base_ms
        ));
    }
    Ok(b)
}

fn check_url(url: &str) -> Result<(), String> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("${") {
        Ok(())
    } else {
        Err(format!("url '{url}' is not an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_fields_map_onto_the_config() {
        let headers = BTreeMap::from([("Authorization".to_string(), "Bearer ${TOKEN}".to_string())]);
        let on_failure = ManifestOnFailure {
            kind: "file".into(),
            path: Some("failed.jsonl".into()),
            name: None,
            arn: None,
            bucket: None,
            prefix: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        };
        let fields = HttpDestinationFields {
            url: Some("https://hooks.example.com/x"),
            headers: Some(&headers),
            payload: Some("plain"),
            batch_size: Some(10),
            max_concurrency: Some(4),
            on_failure: Some(&on_failure),
            ..Default::default()
        };
        let c = fields.to_config(Path::new("/app"), "ALERTS").unwrap();
        assert_eq!(c.payload, Payload::Plain);
        assert_eq!(c.batch_size, 10);
        assert_eq!(c.max_concurrency, 4);
        assert_eq!(c.endpoint.headers["Authorization"], "Bearer ${TOKEN}");
        assert_eq!(
            c.on_failure,
            OnFailure::File {
                path: PathBuf::from("/app/failed.jsonl")
            }
        );
        let bad = HttpDestinationFields {
            url: Some("ftp://x"),
            ..Default::default()
        };
        assert!(bad.to_config(Path::new("."), "S").unwrap_err().contains("not an http"));
        let zero = HttpDestinationFields {
            url: Some("http://x"),
            batch_size: Some(0),
            ..Default::default()
        };
        assert!(zero.to_config(Path::new("."), "S").is_err());
    }
}
