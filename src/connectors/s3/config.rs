//! What an S3 output is configured with (the manifest maps onto this): Firehose's
//! ExtendedS3DestinationConfiguration, minus what sluice does not need (roles, KMS).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::S3Connection;
use super::key::KeyTemplate;
use crate::app::OutputFormat;

/// Firehose's prefix when none is given: the hour of the oldest row in the object.
pub const DEFAULT_PREFIX: &str = "!{timestamp:yyyy/MM/dd/HH}/";
/// Where rows that could not be delivered go, with the reason.
pub const DEFAULT_ERROR_PREFIX: &str = "error/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/";
/// Firehose's buffering hints: 5 MB (1..128) and 300 s (60..900).
pub const DEFAULT_BUFFER_SIZE_MB: u64 = 5;
pub const BUFFER_SIZE_MB_RANGE: std::ops::RangeInclusive<u64> = 1..=128;
pub const DEFAULT_BUFFER_INTERVAL_SECS: u64 = 300;
pub const BUFFER_INTERVAL_SECS_RANGE: std::ops::RangeInclusive<u64> = 60..=900;

/// How rows are laid out in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    /// One JSON object per line, as KDA delivered JSON records to Firehose.
    Json,
    /// One CSV line per row.
    Csv,
    /// Apache Parquet (Firehose's record format conversion), through arrow's writer.
    Parquet,
}

impl ObjectFormat {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "JSON" => Ok(ObjectFormat::Json),
            "CSV" => Ok(ObjectFormat::Csv),
            "PARQUET" => Ok(ObjectFormat::Parquet),
            other => Err(format!("S3 format '{other}' is not JSON, CSV or PARQUET")),
        }
    }

    pub fn from_output(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Json => ObjectFormat::Json,
            OutputFormat::Csv => ObjectFormat::Csv,
        }
    }
}

/// Firehose's CompressionFormat (GZIP for text objects) and the Parquet codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Snappy,
    Zstd,
}

impl Compression {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "UNCOMPRESSED" | "NONE" => Ok(Compression::Uncompressed),
            "GZIP" => Ok(Compression::Gzip),
            "SNAPPY" => Ok(Compression::Snappy),
            "ZSTD" => Ok(Compression::Zstd),
            other => Err(format!(
                "S3 compression '{other}' is not GZIP, SNAPPY, ZSTD or UNCOMPRESSED"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3SinkConfig {
    pub connection: S3Connection,
    /// Key prefix with Firehose expressions (`!{timestamp:yyyy}`, `!{firehose:random-string}`).
    pub prefix: String,
    /// Key prefix of rows that could not be delivered (`!{firehose:error-output-type}` too).
    pub error_prefix: String,
    /// None: the output's format (JSON or CSV).
    pub format: Option<ObjectFormat>,
    pub compression: Compression,
    /// An object is written once its rows reach this size (as JSON lines or CSV text,
    /// before compression: Firehose counts the incoming records).
    pub buffer_size_bytes: usize,
    /// ... or once its first row has waited this long.
    pub buffer_interval: Duration,
    /// Output columns whose values make Hive-style folders (`COL=value/`).
    pub partition_by: Vec<String>,
    /// Attempts per object (each one with the SDK's own retries) before its rows go
    /// under the error prefix.
    pub max_attempts: u32,
    /// Where rows go (JSON lines with the reason) when even the error prefix fails.
    pub parked_path: PathBuf,
}

impl S3SinkConfig {
    /// Firehose's defaults for `connection`, delivering `output_stream`.
    pub fn new(connection: S3Connection, output_stream: &str) -> Self {
        S3SinkConfig {
            connection,
            prefix: DEFAULT_PREFIX.to_string(),
            error_prefix: DEFAULT_ERROR_PREFIX.to_string(),
            format: None,
            compression: Compression::Uncompressed,
            buffer_size_bytes: (DEFAULT_BUFFER_SIZE_MB << 20) as usize,
            buffer_interval: Duration::from_secs(DEFAULT_BUFFER_INTERVAL_SECS),
            partition_by: Vec::new(),
            max_attempts: 4,
            parked_path: PathBuf::from(format!("sluice-parked/{output_stream}.jsonl")),
        }
    }

    /// Checks the prefixes and that the compression fits the format.
    pub fn validate(&self) -> Result<(), String> {
        let prefix = KeyTemplate::parse(&self.prefix).map_err(|e| format!("prefix: {e}"))?;
        if prefix.uses_error_output_type() {
            return Err("prefix: !{firehose:error-output-type} may only be used in error_prefix".into());
        }
        KeyTemplate::parse(&self.error_prefix).map_err(|e| format!("error_prefix: {e}"))?;
        match (self.format, self.compression) {
            (Some(ObjectFormat::Parquet), Compression::Gzip) => {
                Err("Parquet objects are compressed inside: use SNAPPY, ZSTD or UNCOMPRESSED, not GZIP".into())
            }
            (None | Some(ObjectFormat::Json | ObjectFormat::Csv), Compression::Snappy | Compression::Zstd) => {
                Err("JSON and CSV objects take GZIP or UNCOMPRESSED (SNAPPY and ZSTD are for PARQUET)".into())
            }
            _ if self.buffer_size_bytes == 0 => Err("the buffer size must be at least 1 byte".into()),
            _ if self.buffer_interval.is_zero() => Err("the buffer interval must be at least 1 ms".into()),
            _ => Ok(()),
        }
    }
}

/// The S3 settings of a manifest destination (`kind = "s3"`, or `kind = "firehose"`
/// with a bucket); the connection settings are shared with Kinesis.
#[derive(Debug, Default)]
pub struct S3DestinationFields<'a> {
    pub bucket: Option<&'a str>,
    pub bucket_arn: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub error_prefix: Option<&'a str>,
    pub format: Option<&'a str>,
    pub compression: Option<&'a str>,
    pub buffer_size_mb: Option<u64>,
    pub buffer_interval_secs: Option<u64>,
    pub buffer_interval_ms: Option<u64>,
    pub partition_by: Option<&'a [String]>,
    pub endpoint: Option<&'a str>,
    pub region: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub secret_access_key: Option<&'a str>,
    pub max_attempts: Option<u32>,
    pub parked_path: Option<&'a str>,
}

impl S3DestinationFields<'_> {
    /// The first S3-only setting given (other kinds reject them).
    pub fn any(&self) -> Option<&'static str> {
        [
            ("bucket", self.bucket.is_some()),
            ("bucket_arn", self.bucket_arn.is_some()),
            ("prefix", self.prefix.is_some()),
            ("error_prefix", self.error_prefix.is_some()),
            ("format", self.format.is_some()),
            ("compression", self.compression.is_some()),
            ("buffer_size_mb", self.buffer_size_mb.is_some()),
            ("buffer_interval_secs", self.buffer_interval_secs.is_some()),
            ("buffer_interval_ms", self.buffer_interval_ms.is_some()),
            ("partition_by", self.partition_by.is_some()),
        ]
        .into_iter()
        .find_map(|(name, given)| given.then_some(name))
    }

    pub fn to_config(&self, base_dir: &Path, stream: &str) -> Result<S3SinkConfig, String> {
        let mut c = S3SinkConfig::new(self.connection()?, stream);
        c.parked_path = base_dir.join(&c.parked_path);
        if let Some(p) = self.prefix {
            c.prefix = p.to_string();
        }
        if let Some(p) = self.error_prefix {
            c.error_prefix = p.to_string();
        }
        c.format = self.format.map(ObjectFormat::parse).transpose()?;
        if let Some(text) = self.compression {
            c.compression = Compression::parse(text)?;
        }
        if let Some(mb) = self.buffer_size_mb {
            if !BUFFER_SIZE_MB_RANGE.contains(&mb) {
                return Err(format!("buffer_size_mb must be 1..128 (Firehose's range), not {mb}"));
            }
            c.buffer_size_bytes = (mb << 20) as usize;
        }
        c.buffer_interval = match (self.buffer_interval_secs, self.buffer_interval_ms) {
            (Some(_), Some(_)) => return Err("give buffer_interval_secs or buffer_interval_ms, not both".into()),
            (Some(s), None) if !BUFFER_INTERVAL_SECS_RANGE.contains(&s) => {
                return Err(format!(
                    "buffer_interval_secs must be 60..900 (Firehose's range), not {s}; buffer_interval_ms sets a shorter one"
                ));
            }
            (Some(s), None) => Duration::from_secs(s),
            (None, Some(0)) => return Err("buffer_interval_ms must be at least 1".into()),
            (None, Some(ms)) => Duration::from_millis(ms),
            (None, None) => c.buffer_interval,
        };
        if let Some(columns) = self.partition_by {
            c.partition_by = columns.to_vec();
        }
        if let Some(n) = self.max_attempts {
            c.max_attempts = n.max(1);
        }
        if let Some(p) = self.parked_path {
            c.parked_path = base_dir.join(p);
        }
        c.validate()?;
        Ok(c)
    }

    fn connection(&self) -> Result<S3Connection, String> {
        let mut c = match (self.bucket, self.bucket_arn) {
            (_, Some(arn)) => S3Connection::for_bucket(arn)?,
            (Some(name), None) => S3Connection::for_bucket(name)?,
            (None, None) => return Err("an S3 destination needs `bucket` or `bucket_arn`".into()),
        };
        if let (Some(name), Some(arn)) = (self.bucket, self.bucket_arn)
            && c.bucket != name
        {
            return Err(format!("`bucket` {name} and `bucket_arn` {arn} name different buckets"));
        }
        c.endpoint = self.endpoint.map(str::to_string);
        c.region = self.region.map(str::to_string);
        c.access_key_id = self.access_key_id.map(str::to_string);
        c.secret_access_key = self.secret_access_key.map(str::to_string);
        if c.access_key_id.is_some() != c.secret_access_key.is_some() {
            return Err("give both `access_key_id` and `secret_access_key`, or neither".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3SinkConfig {
        S3SinkConfig::new(S3Connection::for_bucket("b").unwrap(), "OUT")
    }

    #[test]
    fn defaults_are_firehose_s_and_validate() {
        let c = config();
        assert_eq!(c.buffer_size_bytes, 5 << 20);
        assert_eq!(c.buffer_interval, Duration::from_secs(300));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn compression_must_fit_the_format_and_error_output_type_stays_in_the_error_prefix() {
        let mut c = config();
        c.compression = Compression::Snappy;
        assert!(c.validate().unwrap_err().contains("PARQUET"));
        c.format = Some(ObjectFormat::Parquet);
        assert!(c.validate().is_ok());
        c.compression = Compression::Gzip;
        assert!(c.validate().unwrap_err().contains("GZIP"));
        let mut c = config();
        c.prefix = "x/!{firehose:error-output-type}/".into();
        assert!(c.validate().unwrap_err().contains("error_prefix"));
        c.prefix = "x/!{nope:1}/".into();
        assert!(c.validate().unwrap_err().starts_with("prefix: "));
        assert_eq!(ObjectFormat::parse("parquet"), Ok(ObjectFormat::Parquet));
        assert!(Compression::parse("lz4").unwrap_err().contains("GZIP"));
    }
}
