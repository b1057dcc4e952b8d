//! The application manifest behind `sluice run APP`.
//!
//! A manifest describes one KDA SQL application the way its configuration does
//! (CreateApplication / describe-application), one to one: the application name and
//! code, the streaming inputs (NamePrefix, InputParallelism, InputSchema with
//! RecordFormat / RecordEncoding / RecordColumns), the reference data sources and the
//! outputs (in-application stream name, DestinationSchema, destination). Only the places
//! the records come from and go to are local: a file, stdin or the built-in generator
//! instead of a Kinesis stream, stdout or a file instead of Kinesis / Firehose / Lambda.
//!
//! Three ways in:
//! * a TOML manifest (see [`load_manifest`] for the format);
//! * the JSON that `aws kinesisanalytics describe-application` prints (also the
//!   `kinesisanalyticsv2` shape and a CreateApplication request), through
//!   [`from_describe_application`]; its Kinesis / Firehose / Lambda / S3 endpoints load as
//!   `Unsupported` entries that [`validate`] reports;
//! * a TOML manifest with `describe_application = "app.json"` whose `[[inputs]]`,
//!   `[[references]]` and `[[outputs]]` replace the exported sources and destinations
//!   by name prefix, table name and stream name, to run an exported app locally.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::app::{
    AppSpec, DestinationSpec, EventTimeSpec, InputSpec, OutputFormat, OutputSpec, RecordColumn, RecordFormat,
    RecordSchema, ReferenceSpec, SourceSpec,
};
use crate::connectors::kinesis::{KinesisConnection, KinesisSinkConfig, KinesisSourceConfig, StartPosition};
use crate::error::{Result, SluiceError};
use crate::types::{ColumnDef, SqlType};

/// KDA's default NamePrefix (the console's).
pub const DEFAULT_NAME_PREFIX: &str = "SOURCE_SQL_STREAM";
/// Default rate (records per second) of `kind = "generator"`.
pub const DEFAULT_GENERATOR_RATE: u64 = 10;
/// Default seed of `kind = "generator"`.
pub const DEFAULT_GENERATOR_SEED: u64 = 42;
/// KDA's limit on outputs per application (sluice allows more, with a note).
pub const KDA_MAX_OUTPUTS: usize = 3;
/// KDA's limit on InputParallelism.
pub const KDA_MAX_PARALLELISM: u32 = 64;

/// A reference `path` with this prefix (`s3://bucket/key`) names an S3 object.
pub const S3_PREFIX: &str = "s3://";

/// `--input NAME=PATH` on the command line: the file input (by name prefix or stream
/// name) or reference table NAME reads PATH instead of what the manifest says.
#[derive(Debug, Clone, PartialEq)]
pub struct InputOverride {
    pub name: String,
    pub path: PathBuf,
}

impl std::str::FromStr for InputOverride {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.split_once('=') {
            Some((name, path)) if !name.trim().is_empty() && !path.is_empty() => Ok(InputOverride {
                name: name.trim().to_string(),
                path: PathBuf::from(path),
            }),
            _ => Err(format!(
                "'{text}' is not NAME=PATH (NAME: an input's name prefix or stream, or a reference table)"
            )),
        }
    }
}

/// A configured file path with `${ENV}` resolved the way URLs and headers are
/// (`substitute_env`), before it is joined to the manifest's folder: a variable may hold
/// an absolute path. `key` names the setting in the message of an unset variable.
fn expand_path(key: &str, text: &str) -> std::result::Result<String, String> {
    crate::connectors::http::client::substitute_env(text).map_err(|e| format!("`{key}` \"{text}\": {e}"))
}

/// The item `wanted` names among items known by several names each: an exact match,
/// else the only one that matches ignoring ASCII case (a shell user types names freely).
fn find_named(names: &[Vec<String>], wanted: &str) -> Option<usize> {
    names.iter().position(|n| n.iter().any(|n| n == wanted)).or_else(|| {
        let mut hits = (0..names.len()).filter(|&i| names[i].iter().any(|n| n.eq_ignore_ascii_case(wanted)));
        match (hits.next(), hits.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        }
    })
}

/// The names an input answers to on the command line: its prefix and its streams.
fn input_names(input: &InputSpec) -> Vec<String> {
    let mut names = vec![input.name_prefix.clone()];
    names.extend(input.stream_names());
    names
}

/// Points the inputs and reference tables that `overrides` name at their new files. An
/// input of another kind (stdin, generator, Kinesis) becomes a file input: the point of
/// the option is to run an application on a file without editing its configuration.
pub fn apply_input_overrides(app: &mut AppSpec, overrides: &[InputOverride]) -> Result<()> {
    for o in overrides {
        let inputs: Vec<Vec<String>> = app.inputs.iter().map(input_names).collect();
        if let Some(i) = find_named(&inputs, &o.name) {
            let input = &mut app.inputs[i];
            match &mut input.source {
                SourceSpec::File { path, .. } | SourceSpec::Recorded { path, .. } => *path = o.path.clone(),
                other => {
                    tracing::info!(
                        input = %input.name_prefix,
                        "--input: reading the file {} instead of the configured {} source",
                        o.path.display(),
                        source_kind(other)
                    );
                    *other = SourceSpec::File {
                        path: o.path.clone(),
                        skip_header_lines: 0,
                    };
                }
            }
            continue;
        }
        let tables: Vec<Vec<String>> = app.references.iter().map(|r| vec![r.table.clone()]).collect();
        if let Some(i) = find_named(&tables, &o.name) {
            let text = o.path.to_string_lossy();
            app.references[i].location = match text.strip_prefix(S3_PREFIX).and_then(|rest| rest.split_once('/')) {
                Some((bucket, key)) => {
                    s3_location(bucket, key).map_err(|e| config(format!("--input {}: {e}", o.name)))?
                }
                None => crate::app::ReferenceLocation::File(o.path.clone()),
            };
            continue;
        }
        let list = |names: Vec<String>| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        return Err(config(format!(
            "--input {}={}: the application has no input or reference table named {}; its inputs: {}; \
             its reference tables: {}",
            o.name,
            o.path.display(),
            o.name,
            list(app.inputs.iter().map(|i| i.name_prefix.clone()).collect()),
            list(app.references.iter().map(|r| r.table.clone()).collect()),
        )));
    }
    Ok(())
}

fn source_kind(source: &SourceSpec) -> String {
    match source {
        SourceSpec::File { .. } => "file".into(),
        SourceSpec::Recorded { .. } => "recorded".into(),
        SourceSpec::Stdin => "stdin".into(),
        SourceSpec::Channel(_) => "channel".into(),
        SourceSpec::Generator { .. } => "generator".into(),
        SourceSpec::Kinesis(_) => "kinesis".into(),
        SourceSpec::Unsupported { kind, .. } => kind.clone(),
    }
}

/// Before a manifest's paths are resolved: an input or table that `--input` will point
/// elsewhere takes the new path now, so a `${VAR}` in the path it replaces need not be set.
/// (`apply_input_overrides` does the replacing, and the refusing of unknown names.)
fn preset_overridden_paths(m: &mut Manifest, overrides: &[InputOverride]) {
    let cwd = std::env::current_dir().unwrap_or_default();
    for o in overrides {
        // Written back as manifest text: absolute (the manifest's folder must not apply)
        // and with `${` escaped (it is not to be expanded).
        let Some(text) = cwd.join(&o.path).to_str().map(|t| t.replace("${", "$${")) else {
            continue;
        };
        let inputs: Vec<Vec<String>> = m
            .inputs
            .iter()
            .map(|i| {
                let prefix = i.name_prefix.clone().unwrap_or_else(|| DEFAULT_NAME_PREFIX.to_string());
                let mut names: Vec<String> = (1..=i.parallelism.unwrap_or(1).max(1))
                    .map(|n| format!("{prefix}_{n:03}"))
                    .collect();
                names.insert(0, prefix);
                names
            })
            .collect();
        if let Some(i) = find_named(&inputs, &o.name) {
            if let Some(s) = m.inputs[i].source.as_mut().filter(|s| s.path.is_some()) {
                s.path = Some(text);
            }
            continue;
        }
        let tables: Vec<Vec<String>> = m.references.iter().map(|r| vec![r.table_name.clone()]).collect();
        if let Some(i) = find_named(&tables, &o.name)
            && m.references[i].path.is_some()
        {
            m.references[i].path = Some(text);
        }
    }
}

fn config(msg: impl Into<String>) -> SluiceError {
    SluiceError::config(msg)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| SluiceError::Io {
        path: path.display().to_string(),
        source,
    })
}

// =======================================================================================
// TOML manifest, as written
// =======================================================================================

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// ApplicationName (default: the manifest's file name without extension).
    #[serde(default)]
    name: Option<String>,
    /// ApplicationDescription (informative).
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Path of the SQL file, relative to the manifest.
    #[serde(default)]
    code: Option<String>,
    /// The SQL inline.
    #[serde(default)]
    code_text: Option<String>,
    /// A describe-application JSON file this manifest overrides.
    #[serde(default)]
    describe_application: Option<String>,
    #[serde(default)]
    inputs: Vec<ManifestInput>,
    #[serde(default)]
    references: Vec<ManifestReference>,
    #[serde(default)]
    outputs: Vec<ManifestOutput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestInput {
    #[serde(default)]
    name_prefix: Option<String>,
    #[serde(default)]
    parallelism: Option<u32>,
    #[serde(default)]
    schema: Option<ManifestSchema>,
    #[serde(default)]
    source: Option<ManifestSource>,
    /// ROWTIME from the data, ordered by a watermark.
    #[serde(default)]
    event_time: Option<ManifestEventTime>,
    /// KDA's Lambda preprocessor as an HTTP endpoint: `{ url, headers, timeout_ms, batch_size }`.
    #[serde(default)]
    preprocessor: Option<crate::connectors::http::config::ManifestPreprocessor>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEventTime {
    /// An input column (TIMESTAMP, or BIGINT epoch milliseconds), or APPROXIMATE_ARRIVAL_TIME.
    column: String,
    #[serde(default)]
    max_delay_ms: Option<i64>,
    #[serde(default)]
    idle_timeout_ms: Option<u64>,
    #[serde(default)]
    late_stream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestSchema {
    record_format: String,
    #[serde(default)]
    record_row_path: Option<String>,
    #[serde(default)]
    record_row_delimiter: Option<String>,
    #[serde(default)]
    record_column_delimiter: Option<String>,
    #[serde(default)]
    record_encoding: Option<String>,
    columns: Vec<ManifestColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestColumn {
    name: String,
    sql_type: String,
    #[serde(default)]
    mapping: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestSource {
    kind: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    rate: Option<u64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default, alias = "stream_name", alias = "delivery_stream_name")]
    name: Option<String>,
    #[serde(default)]
    arn: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    /// TRIM_HORIZON (default), LATEST or AT_TIMESTAMP.
    #[serde(default)]
    starting_position: Option<String>,
    /// For AT_TIMESTAMP: `yyyy-MM-dd HH:mm:ss[.SSS]` (UTC) or epoch milliseconds.
    #[serde(default)]
    starting_timestamp: Option<String>,
    #[serde(default)]
    poll_interval_ms: Option<u64>,
    #[serde(default)]
    idle_poll_max_ms: Option<u64>,
    #[serde(default)]
    max_records: Option<i32>,
    #[serde(default)]
    discovery_interval_ms: Option<u64>,
    #[serde(default)]
    deaggregate: Option<bool>,
    /// Enhanced fan-out through this stream consumer (registered if missing).
    #[serde(default)]
    efo_consumer: Option<String>,
    /// file, recorded: lines at the start that are no records (a CSV header).
    #[serde(default)]
    skip_header_lines: Option<u64>,
}

/// How to reach a Kinesis stream (inputs and outputs). Not flattened into both with
/// serde: `flatten` would switch off `deny_unknown_fields`.
#[derive(Debug, Default)]
struct ManifestKinesis {
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

macro_rules! kinesis_settings {
    ($x:expr) => {
        ManifestKinesis {
            endpoint: $x.endpoint.clone(),
            region: $x.region.clone(),
            access_key_id: $x.access_key_id.clone(),
            secret_access_key: $x.secret_access_key.clone(),
        }
    };
}

impl ManifestKinesis {
    fn any(&self) -> bool {
        self.endpoint.is_some()
            || self.region.is_some()
            || self.access_key_id.is_some()
            || self.secret_access_key.is_some()
    }

    fn connection(&self, name: Option<&str>, arn: Option<&str>) -> std::result::Result<KinesisConnection, String> {
        let mut c = match (arn, name) {
            (Some(arn), _) => KinesisConnection::for_stream(arn)?,
            (None, Some(name)) => KinesisConnection::for_stream(name)?,
            (None, None) => return Err("kind = \"kinesis\" needs `name` or `arn`".to_string()),
        };
        if let (Some(arn), Some(name)) = (arn, name)
            && c.stream_name != name
        {
            return Err(format!("`name` {name} and `arn` {arn} name different streams"));
        }
        c.endpoint = self.endpoint.clone();
        if self.region.is_some() {
            c.region = self.region.clone();
        }
        c.access_key_id = self.access_key_id.clone();
        c.secret_access_key = self.secret_access_key.clone();
        if c.access_key_id.is_some() != c.secret_access_key.is_some() {
            return Err("give both `access_key_id` and `secret_access_key`, or neither".to_string());
        }
        Ok(c)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestReference {
    table_name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    s3: Option<ManifestS3>,
    #[serde(default)]
    skip_header_lines: Option<usize>,
    #[serde(default)]
    schema: Option<ManifestSchema>,
    /// Reload the table this often while running (give one of the two).
    #[serde(default)]
    refresh_interval_secs: Option<u64>,
    #[serde(default)]
    refresh_interval_ms: Option<u64>,
}

/// KDA's S3ReferenceDataSource, plus how to reach the bucket (as for Kinesis).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestS3 {
    /// `arn:aws:s3:::BUCKET` or the bucket's name.
    bucket_arn: String,
    file_key: String,
    #[serde(default)]
    #[allow(dead_code)]
    role_arn: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestOutput {
    stream: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    destination: Option<ManifestDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestDestination {
    kind: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(
        default,
        alias = "stream_name",
        alias = "delivery_stream_name",
        alias = "function_name"
    )]
    name: Option<String>,
    #[serde(default)]
    arn: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    /// Kinesis: the output column whose value is the partition key (random if unset).
    #[serde(default)]
    partition_key: Option<String>,
    /// Kinesis: the output column whose value is the explicit hash key.
    #[serde(default)]
    explicit_hash_key: Option<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
    /// Where records that cannot be delivered are parked (JSON lines with the reason).
    #[serde(default)]
    parked_path: Option<String>,
    /// http (and lambda with a url): the endpoint. `${ENV}` is substituted in it and in
    /// the header values when the application starts.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// http: "kda" (the Lambda output event, default) or "plain" (`{"rows": [...]}`).
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default)]
    max_batching_window_ms: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_concurrency: Option<usize>,
    #[serde(default)]
    backoff_base_ms: Option<u64>,
    #[serde(default)]
    backoff_cap_ms: Option<u64>,
    #[serde(default)]
    bisect_on_error: Option<bool>,
    /// http: where records go after the retry budget (`{ kind = "file", path = ... }`).
    #[serde(default)]
    on_failure: Option<crate::connectors::http::config::ManifestOnFailure>,
    #[serde(default)]
    application_arn: Option<String>,
    /// s3 (and firehose with a bucket): Firehose's S3 destination settings, see
    /// `connectors::s3::config::S3DestinationFields`.
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    bucket_arn: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    error_prefix: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    buffer_size_mb: Option<u64>,
    #[serde(default)]
    buffer_interval_secs: Option<u64>,
    #[serde(default)]
    buffer_interval_ms: Option<u64>,
    #[serde(default)]
    partition_by: Option<Vec<String>>,
}

impl ManifestDestination {
    fn s3_fields(&self) -> crate::connectors::s3::config::S3DestinationFields<'_> {
        crate::connectors::s3::config::S3DestinationFields {
            bucket: self.bucket.as_deref(),
            bucket_arn: self.bucket_arn.as_deref(),
            prefix: self.prefix.as_deref(),
            error_prefix: self.error_prefix.as_deref(),
            format: self.format.as_deref(),
            compression: self.compression.as_deref(),
            buffer_size_mb: self.buffer_size_mb,
            buffer_interval_secs: self.buffer_interval_secs,
            buffer_interval_ms: self.buffer_interval_ms,
            partition_by: self.partition_by.as_deref(),
            endpoint: self.endpoint.as_deref(),
            region: self.region.as_deref(),
            access_key_id: self.access_key_id.as_deref(),
            secret_access_key: self.secret_access_key.as_deref(),
            max_attempts: self.max_attempts,
            parked_path: self.parked_path.as_deref(),
        }
    }

    fn http_fields(&self) -> crate::connectors::http::config::HttpDestinationFields<'_> {
        crate::connectors::http::config::HttpDestinationFields {
            url: self.url.as_deref(),
            headers: self.headers.as_ref(),
            payload: self.payload.as_deref(),
            batch_size: self.batch_size,
            max_batching_window_ms: self.max_batching_window_ms,
            max_attempts: self.max_attempts,
            timeout_ms: self.timeout_ms,
            max_concurrency: self.max_concurrency,
            backoff_base_ms: self.backoff_base_ms,
            backoff_cap_ms: self.backoff_cap_ms,
            bisect_on_error: self.bisect_on_error,
            on_failure: self.on_failure.as_ref(),
            application_arn: self.application_arn.as_deref(),
        }
    }
}

// =======================================================================================
// Loading
// =======================================================================================

/// Loads an application manifest: TOML, or JSON (by extension `.json` or content
/// starting with `{`). JSON is a describe-application document (or a CreateApplication
/// request); a JSON object with the TOML manifest's keys is read as a manifest.
/// Relative paths are resolved against the manifest's folder.
///
/// The TOML format:
///
/// ```toml
/// name = "ride-analytics"              # ApplicationName (default: file stem)
/// description = "..."                  # optional, informative
/// code = "app.sql"                     # SQL file, relative to the manifest
/// # code_text = "CREATE STREAM ..."    # or the SQL inline
/// # describe_application = "app.json" # base: an exported app; the tables below override it
///
/// [[inputs]]
/// name_prefix = "SOURCE_SQL_STREAM"    # default; streams <prefix>_001 .. _00N
/// parallelism = 1                      # InputParallelism.Count, default 1
/// [inputs.schema]
/// record_format = "JSON"               # or "CSV"
/// record_row_path = "$"                # JSON only, default "$"
/// # record_row_delimiter = "\n"        # CSV only, default "\n"
/// # record_column_delimiter = ","      # CSV only, default ","
/// record_encoding = "UTF-8"            # only UTF-8
/// columns = [ { name = "TICKER", sql_type = "VARCHAR(4)", mapping = "$.ticker" } ]
/// [inputs.source]
/// kind = "file"                        # file | recorded | stdin | generator | kinesis | firehose
/// path = "input.jsonl"                 # file, recorded
/// # skip_header_lines = 1              # file, recorded: leading lines that are no records
/// # rate = 10, seed = 42, limit = 1000 # generator
/// # name = "rides", arn = "arn:..."    # kinesis, firehose: not supported in this build
/// # [inputs.event_time]                # ROWTIME from the data instead of the ingest clock
/// # column = "EVENT_TIME"              # TIMESTAMP or BIGINT epoch ms, or APPROXIMATE_ARRIVAL_TIME
/// # max_delay_ms = 5000                # watermark = newest event time (per shard) - this
/// # idle_timeout_ms = 30000            # then the watermark follows the clock (default: waits)
/// # late_stream = "LATE_ROWS"          # later rows go here (default: error_stream)
///
/// [[references]]
/// table_name = "COMPANIES"
/// path = "companies.csv"               # or s3 = { bucket_arn = "...", file_key = "..." }
/// # s3 = { bucket_arn = "arn:aws:s3:::b", file_key = "k.csv", endpoint = "http://...",
/// #        region = "...", access_key_id = "...", secret_access_key = "..." }
/// skip_header_lines = 1                # default 0
/// # refresh_interval_secs = 300        # or refresh_interval_ms: reload while running
/// [references.schema]                  # as for inputs
///
/// [[outputs]]
/// stream = "DESTINATION_SQL_STREAM"    # in-application stream, exact name
/// format = "JSON"                      # or "CSV", default JSON
/// [outputs.destination]
/// kind = "stdout"                      # stdout (default) | file | kinesis | s3 | http | firehose | lambda
/// # path = "out.jsonl"                 # file
/// # bucket = "b" or bucket_arn = "arn:aws:s3:::b"   # s3 (firehose too: then its S3 destination)
/// # prefix = "!{timestamp:yyyy/MM/dd/HH}/"          # s3: Firehose expressions (this is the default)
/// # error_prefix = "error/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
/// # format = "PARQUET", compression = "SNAPPY"      # s3: JSON|CSV (GZIP) or PARQUET (SNAPPY|ZSTD); UNCOMPRESSED
/// # buffer_size_mb = 5, buffer_interval_secs = 300  # s3: 1..128 MB, 60..900 s (or buffer_interval_ms)
/// # partition_by = ["CITY"]            # s3: Hive folders CITY=value/ after the prefix
/// # endpoint, region, access_key_id, secret_access_key, max_attempts = 4, parked_path   # s3
/// # name = "...", arn = "arn:..."      # kinesis, firehose, lambda: not supported in this build
/// # url = "https://..."                # http (or lambda with a url): a callback with the Lambda contract
/// # headers = { Authorization = "Bearer ${TOKEN}" }   # ${ENV} substituted at start
/// # payload = "kda"                    # kda (Lambda output event) | plain ({"rows": [...]})
/// # batch_size = 500, max_batching_window_ms = 0, timeout_ms = 10000, max_attempts = 5
/// # max_concurrency = 1                # > 1: batches in parallel, no order between them
/// # backoff_base_ms = 100, backoff_cap_ms = 10000, bisect_on_error = true
/// # on_failure = { kind = "file", path = "failed.jsonl" }   # | kinesis (name, ...) | s3 (bucket, prefix, ...)
/// ```
///
/// An input may have `preprocessor = { url = "...", headers = { ... }, timeout_ms = 10000,
/// batch_size = 500, max_attempts = 5 }`: KDA's Lambda preprocessor as an HTTP endpoint.
pub fn load_manifest(path: &Path) -> Result<AppSpec> {
    load_manifest_with(path, &[])
}

/// [`load_manifest`], with the inputs and reference tables that `overrides` name
/// (`sluice run APP --input NAME=PATH`) reading other files. An unknown name is refused,
/// naming the inputs and tables there are.
pub fn load_manifest_with(path: &Path, overrides: &[InputOverride]) -> Result<AppSpec> {
    let mut app = load_manifest_file(path, overrides)?;
    apply_input_overrides(&mut app, overrides)?;
    Ok(app)
}

fn load_manifest_file(path: &Path, overrides: &[InputOverride]) -> Result<AppSpec> {
    let text = read(path)?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let is_json =
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || text.trim_start().starts_with('{');
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let loaded = if is_json {
        let json: Json =
            serde_json::from_str(&text).map_err(|e| config(format!("{}: invalid JSON: {e}", path.display())))?;
        if looks_like_manifest(&json) {
            let mut manifest: Manifest =
                serde_json::from_value(json).map_err(|e| config(format!("{}: {e}", path.display())))?;
            preset_overridden_paths(&mut manifest, overrides);
            from_manifest(manifest, &base_dir, &default_name)
        } else {
            from_describe_application(&json, &base_dir)
        }
    } else {
        parse_manifest_with_name(&text, &base_dir, &default_name, overrides)
    };
    loaded.map_err(|e| match e {
        SluiceError::Config(msg) if !msg.starts_with(&path.display().to_string()) => {
            config(format!("{}: {msg}", path.display()))
        }
        other => other,
    })
}

/// Parses a TOML manifest from text; relative paths resolve against `base_dir`.
pub fn parse_manifest(text: &str, base_dir: &Path) -> Result<AppSpec> {
    parse_manifest_with_name(text, base_dir, "application", &[])
}

fn parse_manifest_with_name(
    text: &str,
    base_dir: &Path,
    default_name: &str,
    overrides: &[InputOverride],
) -> Result<AppSpec> {
    let mut manifest: Manifest = toml::from_str(text).map_err(|e| config(e.to_string().trim_end().to_string()))?;
    preset_overridden_paths(&mut manifest, overrides);
    from_manifest(manifest, base_dir, default_name)
}

fn looks_like_manifest(json: &Json) -> bool {
    const KEYS: [&str; 5] = ["code", "code_text", "inputs", "outputs", "describe_application"];
    json.as_object()
        .is_some_and(|o| o.keys().any(|k| KEYS.contains(&k.as_str())))
}

fn from_manifest(m: Manifest, base_dir: &Path, default_name: &str) -> Result<AppSpec> {
    if m.code.is_some() && m.code_text.is_some() {
        return Err(config(
            "give either `code` (a file) or `code_text` (inline SQL), not both",
        ));
    }
    let code = match (&m.code, &m.code_text) {
        (Some(file), _) => Some(read(&base_dir.join(file))?),
        (None, Some(text)) => Some(text.clone()),
        (None, None) => None,
    };

    if let Some(json_file) = &m.describe_application {
        let json_path = base_dir.join(json_file);
        let text = read(&json_path)?;
        let json: Json =
            serde_json::from_str(&text).map_err(|e| config(format!("{}: invalid JSON: {e}", json_path.display())))?;
        let json_dir = json_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut app =
            from_describe_application(&json, &json_dir).map_err(|e| config(format!("{}: {e}", json_path.display())))?;
        if let Some(name) = m.name {
            app.name = name;
        }
        if let Some(sql) = code {
            app.sql = sql;
        }
        apply_overrides(&mut app, m.inputs, m.references, m.outputs, base_dir)?;
        return Ok(app);
    }

    let sql = code.ok_or_else(|| config("the manifest needs `code` (path of the SQL file) or `code_text`"))?;
    let mut inputs = Vec::new();
    for (i, input) in m.inputs.into_iter().enumerate() {
        let prefix = input.name_prefix.unwrap_or_else(|| DEFAULT_NAME_PREFIX.to_string());
        let what = format!("inputs[{i}] ({prefix})");
        let schema = input
            .schema
            .ok_or_else(|| config(format!("{what}: [inputs.schema] is missing")))?;
        let source = input
            .source
            .ok_or_else(|| config(format!("{what}: [inputs.source] is missing")))?;
        inputs.push(InputSpec {
            name_prefix: prefix,
            stream_name: None,
            parallelism: input.parallelism.unwrap_or(1),
            event_time: input.event_time.map(|e| EventTimeSpec {
                column: e.column,
                max_delay_ms: e.max_delay_ms.unwrap_or(0),
                idle_timeout_ms: e.idle_timeout_ms,
                late_stream: e.late_stream,
            }),
            schema: manifest_schema(&schema).map_err(|e| config(format!("{what}.schema: {e}")))?,
            source: manifest_source(&source, base_dir).map_err(|e| config(format!("{what}.source: {e}")))?,
            preprocessor: input
                .preprocessor
                .as_ref()
                .map(|p| p.to_spec())
                .transpose()
                .map_err(|e| config(format!("{what}.preprocessor: {e}")))?,
        });
    }
    let mut references = Vec::new();
    for (i, r) in m.references.into_iter().enumerate() {
        let what = format!("references[{i}] ({})", r.table_name);
        let schema = r
            .schema
            .as_ref()
            .ok_or_else(|| config(format!("{what}: [references.schema] is missing")))?;
        references.push(ReferenceSpec {
            table: r.table_name.clone(),
            schema: manifest_schema(schema).map_err(|e| config(format!("{what}.schema: {e}")))?,
            location: reference_location(&r, base_dir)
                .map_err(|e| config(format!("{what}: {e}")))?
                .ok_or_else(|| config(format!("{what}: give `path` (a local file) or `s3`")))?,
            skip_header_lines: r.skip_header_lines.unwrap_or(0),
            refresh_interval: refresh_interval(&r).map_err(|e| config(format!("{what}: {e}")))?,
        });
    }
    let mut outputs = Vec::new();
    for (i, o) in m.outputs.into_iter().enumerate() {
        let what = format!("outputs[{i}] ({})", o.stream);
        outputs.push(OutputSpec {
            format: output_format(o.format.as_deref()).map_err(|e| config(format!("{what}: {e}")))?,
            destination: manifest_destination(o.destination.as_ref(), base_dir, &o.stream)
                .map_err(|e| config(format!("{what}.destination: {e}")))?,
            stream: o.stream,
        });
    }
    Ok(AppSpec {
        name: m.name.unwrap_or_else(|| default_name.to_string()),
        sql,
        inputs,
        references,
        outputs,
    })
}

/// Replaces the sources, reference files and destinations of an exported application.
fn apply_overrides(
    app: &mut AppSpec,
    inputs: Vec<ManifestInput>,
    references: Vec<ManifestReference>,
    outputs: Vec<ManifestOutput>,
    base_dir: &Path,
) -> Result<()> {
    for (i, o) in inputs.into_iter().enumerate() {
        let index = match &o.name_prefix {
            Some(prefix) => app.inputs.iter().position(|x| &x.name_prefix == prefix),
            None => app
                .inputs
                .iter()
                .position(|x| x.name_prefix == DEFAULT_NAME_PREFIX)
                .or_else(|| (app.inputs.len() == 1).then_some(0)),
        };
        let prefix = o.name_prefix.clone().unwrap_or_else(|| DEFAULT_NAME_PREFIX.to_string());
        let what = format!("inputs[{i}] ({prefix})");
        let Some(index) = index else {
            let known: Vec<&str> = app.inputs.iter().map(|x| x.name_prefix.as_str()).collect();
            return Err(config(format!(
                "{what}: the application has no input with name prefix '{prefix}' (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        let target = &mut app.inputs[index];
        if let Some(p) = o.parallelism {
            target.parallelism = p;
        }
        if let Some(schema) = &o.schema {
            target.schema = manifest_schema(schema).map_err(|e| config(format!("{what}.schema: {e}")))?;
        }
        if let Some(source) = &o.source {
            target.source = manifest_source(source, base_dir).map_err(|e| config(format!("{what}.source: {e}")))?;
        }
        if let Some(p) = &o.preprocessor {
            target.preprocessor = Some(p.to_spec().map_err(|e| config(format!("{what}.preprocessor: {e}")))?);
        }
    }
    for (i, r) in references.into_iter().enumerate() {
        let what = format!("references[{i}] ({})", r.table_name);
        let location = reference_location(&r, base_dir).map_err(|e| config(format!("{what}: {e}")))?;
        let interval = refresh_interval(&r).map_err(|e| config(format!("{what}: {e}")))?;
        let schema = match &r.schema {
            Some(s) => Some(manifest_schema(s).map_err(|e| config(format!("{what}.schema: {e}")))?),
            None => None,
        };
        match app.references.iter_mut().find(|x| x.table == r.table_name) {
            Some(target) => {
                if let Some(location) = location {
                    target.location = location;
                }
                if interval.is_some() {
                    target.refresh_interval = interval;
                }
                if let Some(schema) = schema {
                    target.schema = schema;
                }
                if let Some(n) = r.skip_header_lines {
                    target.skip_header_lines = n;
                }
            }
            None => app.references.push(ReferenceSpec {
                table: r.table_name.clone(),
                schema: schema.ok_or_else(|| {
                    config(format!(
                        "{what}: not in the exported application, so it needs [references.schema]"
                    ))
                })?,
                location: location.ok_or_else(|| {
                    config(format!(
                        "{what}: not in the exported application, so it needs `path` or `s3`"
                    ))
                })?,
                skip_header_lines: r.skip_header_lines.unwrap_or(0),
                refresh_interval: interval,
            }),
        }
    }
    let mut replaced = vec![false; app.outputs.len()];
    for (i, o) in outputs.into_iter().enumerate() {
        let what = format!("outputs[{i}] ({})", o.stream);
        let format = match &o.format {
            Some(f) => Some(output_format(Some(f)).map_err(|e| config(format!("{what}: {e}")))?),
            None => None,
        };
        let destination = manifest_destination(o.destination.as_ref(), base_dir, &o.stream)
            .map_err(|e| config(format!("{what}.destination: {e}")))?;
        match (0..app.outputs.len()).find(|&k| !replaced[k] && app.outputs[k].stream == o.stream) {
            Some(k) => {
                replaced[k] = true;
                app.outputs[k].destination = destination;
                if let Some(format) = format {
                    app.outputs[k].format = format;
                }
            }
            None => {
                app.outputs.push(OutputSpec {
                    stream: o.stream,
                    format: format.unwrap_or(OutputFormat::Json),
                    destination,
                });
                replaced.push(true);
            }
        }
    }
    Ok(())
}

fn manifest_schema(s: &ManifestSchema) -> std::result::Result<RecordSchema, String> {
    let format = record_format(
        &s.record_format,
        s.record_row_path.as_deref(),
        s.record_row_delimiter.as_deref(),
        s.record_column_delimiter.as_deref(),
    )?;
    check_encoding(s.record_encoding.as_deref())?;
    let columns = s
        .columns
        .iter()
        .map(|c| record_column(&c.name, &c.sql_type, c.mapping.as_deref(), &format))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordSchema { columns, format })
}

fn record_format(
    format_type: &str,
    row_path: Option<&str>,
    row_delimiter: Option<&str>,
    column_delimiter: Option<&str>,
) -> std::result::Result<RecordFormat, String> {
    match format_type.trim().to_ascii_uppercase().as_str() {
        "JSON" => {
            if row_delimiter.is_some() || column_delimiter.is_some() {
                return Err("record_row_delimiter / record_column_delimiter apply to CSV only".into());
            }
            Ok(RecordFormat::Json {
                row_path: row_path.unwrap_or("$").to_string(),
            })
        }
        "CSV" => {
            if row_path.is_some() {
                return Err("record_row_path applies to JSON only".into());
            }
            Ok(RecordFormat::Csv {
                row_delimiter: row_delimiter.unwrap_or("\n").to_string(),
                column_delimiter: column_delimiter.unwrap_or(",").to_string(),
            })
        }
        other => Err(format!("record format '{other}' is not JSON or CSV")),
    }
}

fn check_encoding(encoding: Option<&str>) -> std::result::Result<(), String> {
    match encoding {
        None => Ok(()),
        Some(e) if matches!(e.trim().to_ascii_uppercase().as_str(), "UTF-8" | "UTF8") => Ok(()),
        Some(e) => Err(format!("record encoding '{e}' is not supported (only UTF-8)")),
    }
}

fn record_column(
    name: &str,
    sql_type: &str,
    mapping: Option<&str>,
    format: &RecordFormat,
) -> std::result::Result<RecordColumn, String> {
    let sql_type = SqlType::parse(sql_type).map_err(|e| format!("column {name}: {e}"))?;
    let mapping = match format {
        // KDA requires a mapping for JSON columns; `$.NAME` is what schema discovery writes.
        RecordFormat::Json { .. } => Some(mapping.map(str::to_string).unwrap_or_else(|| format!("$.{name}"))),
        RecordFormat::Csv { .. } => None,
    };
    Ok(RecordColumn {
        column: ColumnDef::new(name, sql_type),
        mapping,
    })
}

fn not_for_kind(kind: &str, fields: &[(&str, bool)]) -> std::result::Result<(), String> {
    match fields.iter().find(|(_, present)| *present) {
        Some((field, _)) => Err(format!("`{field}` is not a setting of kind = \"{kind}\"")),
        None => Ok(()),
    }
}

fn manifest_source(s: &ManifestSource, base_dir: &Path) -> std::result::Result<SourceSpec, String> {
    let kind = s.kind.trim().to_ascii_lowercase();
    let path = s.path.is_some();
    if kind != "kinesis" {
        let kinesis_only = [
            ("endpoint/region/credentials", kinesis_settings!(s).any()),
            ("starting_position", s.starting_position.is_some()),
            ("starting_timestamp", s.starting_timestamp.is_some()),
            ("poll_interval_ms", s.poll_interval_ms.is_some()),
            ("idle_poll_max_ms", s.idle_poll_max_ms.is_some()),
            ("max_records", s.max_records.is_some()),
            ("discovery_interval_ms", s.discovery_interval_ms.is_some()),
            ("deaggregate", s.deaggregate.is_some()),
            ("efo_consumer", s.efo_consumer.is_some()),
        ];
        not_for_kind(&kind, &kinesis_only)?;
    }
    let generator = [
        ("rate", s.rate.is_some()),
        ("seed", s.seed.is_some()),
        ("limit", s.limit.is_some()),
    ];
    let remote = [("name", s.name.is_some()), ("arn", s.arn.is_some())];
    if !matches!(kind.as_str(), "file" | "recorded") {
        not_for_kind(&kind, &[("skip_header_lines", s.skip_header_lines.is_some())])?;
    }
    match kind.as_str() {
        "file" | "recorded" => {
            not_for_kind(&kind, &generator)?;
            not_for_kind(&kind, &remote)?;
            let p = base_dir.join(expand_path(
                "path",
                s.path
                    .as_deref()
                    .ok_or_else(|| format!("kind = \"{kind}\" needs `path`"))?,
            )?);
            let skip_header_lines = s.skip_header_lines.unwrap_or(0);
            Ok(if kind == "file" {
                SourceSpec::File {
                    path: p,
                    skip_header_lines,
                }
            } else {
                SourceSpec::Recorded {
                    path: p,
                    skip_header_lines,
                }
            })
        }
        "stdin" => {
            not_for_kind(&kind, &[("path", path)])?;
            not_for_kind(&kind, &generator)?;
            not_for_kind(&kind, &remote)?;
            Ok(SourceSpec::Stdin)
        }
        "generator" => {
            not_for_kind(&kind, &[("path", path)])?;
            not_for_kind(&kind, &remote)?;
            let rate = s.rate.unwrap_or(DEFAULT_GENERATOR_RATE);
            if rate == 0 {
                return Err("generator rate must be at least 1 record per second".into());
            }
            Ok(SourceSpec::Generator {
                rate,
                seed: s.seed.unwrap_or(DEFAULT_GENERATOR_SEED),
                limit: s.limit,
            })
        }
        "kinesis" => {
            not_for_kind(&kind, &[("path", path)])?;
            not_for_kind(&kind, &generator)?;
            let mut config =
                KinesisSourceConfig::new(kinesis_settings!(s).connection(s.name.as_deref(), s.arn.as_deref())?);
            config.start = match s
                .starting_position
                .as_deref()
                .map(|p| p.trim().to_ascii_uppercase())
                .as_deref()
            {
                None | Some("TRIM_HORIZON") => StartPosition::TrimHorizon,
                Some("LATEST") => StartPosition::Latest,
                Some("AT_TIMESTAMP") => {
                    let t = s
                        .starting_timestamp
                        .as_deref()
                        .ok_or("starting_position = \"AT_TIMESTAMP\" needs `starting_timestamp`")?;
                    let millis = t
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .or_else(|| crate::time::parse_timestamp(t.trim()))
                        .ok_or_else(|| format!("starting_timestamp '{t}' is not a timestamp or epoch milliseconds"))?;
                    StartPosition::AtTimestamp(millis)
                }
                Some(other) => {
                    return Err(format!(
                        "starting_position '{other}' is not TRIM_HORIZON, LATEST or AT_TIMESTAMP"
                    ));
                }
            };
            if s.starting_timestamp.is_some() && !matches!(config.start, StartPosition::AtTimestamp(_)) {
                return Err("`starting_timestamp` needs starting_position = \"AT_TIMESTAMP\"".into());
            }
            if let Some(ms) = s.poll_interval_ms {
                if ms < 200 {
                    return Err("poll_interval_ms must be at least 200 (Kinesis allows 5 GetRecords calls per second per shard)".into());
                }
                config.poll_interval_ms = ms;
            }
            if let Some(ms) = s.idle_poll_max_ms {
                config.idle_poll_max_ms = ms;
            }
            if let Some(n) = s.max_records {
                if !(1..=10_000).contains(&n) {
                    return Err("max_records must be between 1 and 10000".into());
                }
                config.max_records = n;
            }
            if let Some(ms) = s.discovery_interval_ms {
                config.discovery_interval_ms = ms;
            }
            if let Some(d) = s.deaggregate {
                config.deaggregate = d;
            }
            config.efo_consumer = s.efo_consumer.clone();
            Ok(SourceSpec::Kinesis(config))
        }
        "firehose" => {
            not_for_kind(&kind, &[("path", path)])?;
            not_for_kind(&kind, &generator)?;
            let target = match (&s.name, &s.arn) {
                (_, Some(arn)) => arn.clone(),
                (Some(name), None) => format!("'{name}'"),
                (None, None) => return Err(format!("kind = \"{kind}\" needs `name` or `arn`")),
            };
            Ok(unsupported_source(&kind, &target))
        }
        other => Err(format!(
            "unknown source kind '{other}' (expected file, recorded, stdin, generator, kinesis or firehose)"
        )),
    }
}

fn unsupported_source(kind: &str, target: &str) -> SourceSpec {
    let what = if kind == "kinesis" {
        "Kinesis data stream"
    } else {
        "Kinesis Data Firehose delivery stream"
    };
    let detail = format!(
        "reads from the {what} {target}, which this build cannot do yet ({what} input comes in a later release); \
         replace the source with kind = \"file\", \"stdin\" or \"generator\" to run locally"
    );
    SourceSpec::Unsupported {
        kind: kind.to_string(),
        detail,
    }
}

fn reference_location(
    r: &ManifestReference,
    base_dir: &Path,
) -> std::result::Result<Option<crate::app::ReferenceLocation>, String> {
    use crate::app::ReferenceLocation;
    match (&r.path, &r.s3) {
        (Some(_), Some(_)) => Err("give either `path` or `s3`, not both".into()),
        (Some(written), None) => {
            let p = expand_path("path", written)?;
            match p.strip_prefix(S3_PREFIX) {
                Some(rest) => {
                    let (bucket, key) = rest
                        .split_once('/')
                        .ok_or_else(|| format!("`path` {p} names no object (s3://BUCKET/KEY)"))?;
                    s3_location(bucket, key).map(Some)
                }
                None => Ok(Some(ReferenceLocation::File(base_dir.join(p)))),
            }
        }
        (None, Some(s3)) => {
            let mut location = s3_location(&s3.bucket_arn, &s3.file_key)?;
            if let ReferenceLocation::S3 { connection, .. } = &mut location {
                connection.endpoint = s3.endpoint.clone();
                connection.region = s3.region.clone();
                connection.access_key_id = s3.access_key_id.clone();
                connection.secret_access_key = s3.secret_access_key.clone();
                if connection.access_key_id.is_some() != connection.secret_access_key.is_some() {
                    return Err("s3: give both `access_key_id` and `secret_access_key`, or neither".to_string());
                }
            }
            Ok(Some(location))
        }
        (None, None) => Ok(None),
    }
}

/// A bucket (name or `arn:aws:s3:::bucket`) and key → an S3 location with the standard
/// chain for region and credentials.
fn s3_location(bucket_arn: &str, file_key: &str) -> std::result::Result<crate::app::ReferenceLocation, String> {
    let bucket = bucket_arn
        .strip_prefix(S3_PREFIX)
        .unwrap_or(bucket_arn)
        .trim_end_matches('/');
    let connection = crate::connectors::s3::S3Connection::for_bucket(bucket)?;
    let key = file_key.trim_start_matches('/');
    if key.is_empty() {
        return Err(format!("the S3 file key of bucket {} is empty", connection.bucket));
    }
    Ok(crate::app::ReferenceLocation::S3 {
        connection,
        key: key.to_string(),
    })
}

fn refresh_interval(r: &ManifestReference) -> std::result::Result<Option<std::time::Duration>, String> {
    let interval = match (r.refresh_interval_secs, r.refresh_interval_ms) {
        (Some(_), Some(_)) => return Err("give `refresh_interval_secs` or `refresh_interval_ms`, not both".into()),
        (Some(s), None) => std::time::Duration::from_secs(s),
        (None, Some(ms)) => std::time::Duration::from_millis(ms),
        (None, None) => return Ok(None),
    };
    if interval.is_zero() {
        return Err("the refresh interval must be positive".into());
    }
    Ok(Some(interval))
}

fn output_format(format: Option<&str>) -> std::result::Result<OutputFormat, String> {
    match format.map(|f| f.trim().to_ascii_uppercase()).as_deref() {
        None | Some("JSON") => Ok(OutputFormat::Json),
        Some("CSV") => Ok(OutputFormat::Csv),
        Some(other) => Err(format!("output format '{other}' is not JSON or CSV")),
    }
}

fn manifest_destination(
    d: Option<&ManifestDestination>,
    base_dir: &Path,
    stream: &str,
) -> std::result::Result<DestinationSpec, String> {
    let Some(d) = d else { return Ok(DestinationSpec::Stdout) };
    let kind = d.kind.trim().to_ascii_lowercase();
    let path = d.path.is_some();
    let remote = [("name", d.name.is_some()), ("arn", d.arn.is_some())];
    // An HTTP callback: kind = "http", or a Lambda output given the URL that stands in for it.
    let http = kind == "http" || (kind == "lambda" && d.url.is_some());
    // Objects in S3: kind = "s3", or a Firehose delivery stream given the bucket it filled.
    let s3 = kind == "s3" || (kind == "firehose" && (d.bucket.is_some() || d.bucket_arn.is_some()));
    if kind != "kinesis" {
        let kinesis_only = [
            ("endpoint/region/credentials", kinesis_settings!(d).any() && !s3),
            ("partition_key", d.partition_key.is_some()),
            ("explicit_hash_key", d.explicit_hash_key.is_some()),
            ("max_attempts", d.max_attempts.is_some() && !http && !s3),
            ("parked_path", d.parked_path.is_some() && !s3),
        ];
        not_for_kind(&kind, &kinesis_only)?;
    }
    if !s3 && let Some(field) = d.s3_fields().any() {
        return Err(format!(
            "`{field}` is not a setting of kind = \"{kind}\" (it is one of kind = \"s3\")"
        ));
    }
    if s3 {
        not_for_kind(&kind, &[("path", path)])?;
        if kind == "s3" {
            not_for_kind(&kind, &remote)?;
        }
        return d.s3_fields().to_config(base_dir, stream).map(DestinationSpec::S3);
    }
    if !http && let Some(field) = d.http_fields().any() {
        return Err(if kind == "lambda" {
            format!("kind = \"lambda\" takes `{field}` only with a `url` (the HTTP endpoint to call)")
        } else {
            format!("`{field}` is not a setting of kind = \"{kind}\" (it is one of kind = \"http\")")
        });
    }
    if http {
        not_for_kind(&kind, &[("path", path)])?;
        if kind == "http" {
            not_for_kind(&kind, &remote)?;
        }
        return d.http_fields().to_config(base_dir, stream).map(DestinationSpec::Http);
    }
    match kind.as_str() {
        "stdout" => {
            not_for_kind(&kind, &[("path", path)])?;
            not_for_kind(&kind, &remote)?;
            Ok(DestinationSpec::Stdout)
        }
        "file" => {
            not_for_kind(&kind, &remote)?;
            let p = expand_path("path", d.path.as_deref().ok_or("kind = \"file\" needs `path`")?)?;
            Ok(DestinationSpec::File { path: base_dir.join(p) })
        }
        "kinesis" => {
            not_for_kind(&kind, &[("path", path)])?;
            let mut config = KinesisSinkConfig::new(
                kinesis_settings!(d).connection(d.name.as_deref(), d.arn.as_deref())?,
                stream,
            );
            config.partition_key = d.partition_key.clone();
            config.explicit_hash_key = d.explicit_hash_key.clone();
            if let Some(n) = d.max_attempts {
                config.max_attempts = n.max(1);
            }
            if let Some(p) = &d.parked_path {
                config.parked_path = base_dir.join(p);
            }
            Ok(DestinationSpec::Kinesis(config))
        }
        "firehose" | "lambda" => {
            not_for_kind(&kind, &[("path", path)])?;
            let target = match (&d.name, &d.arn) {
                (_, Some(arn)) => arn.clone(),
                (Some(name), None) => format!("'{name}'"),
                (None, None) => return Err(format!("kind = \"{kind}\" needs `name` or `arn`")),
            };
            Ok(unsupported_destination(&kind, &target))
        }
        other => Err(format!(
            "unknown destination kind '{other}' (expected stdout, file, kinesis, s3, http, firehose or lambda)"
        )),
    }
}

fn unsupported_destination(kind: &str, target: &str) -> DestinationSpec {
    let what = match kind {
        "kinesis" => "Kinesis data stream",
        "firehose" => "Kinesis Data Firehose delivery stream",
        _ => "AWS Lambda function",
    };
    let detail = if kind == "lambda" {
        format!(
            "delivers to the {what} {target}, which sluice does not invoke; give the destination a `url`: an HTTP \
             endpoint that answers as a KDA Lambda output function did (see kind = \"http\"), or replace it with \
             kind = \"stdout\" or \"file\" to run locally"
        )
    } else if kind == "firehose" {
        format!(
            "delivers to the {what} {target}, which sluice writes no records to; give the destination the `bucket` \
             (or `bucket_arn`) the delivery stream filled, and sluice writes its S3 objects itself (see kind = \"s3\"), \
             or replace it with kind = \"stdout\" or \"file\" to run locally"
        )
    } else {
        format!(
            "delivers to the {what} {target}, which this build cannot do yet ({what} output comes in a later release); \
             replace the destination with kind = \"stdout\" or \"file\" to run locally"
        )
    };
    DestinationSpec::Unsupported {
        kind: kind.to_string(),
        detail,
    }
}

// =======================================================================================
// describe-application JSON
// =======================================================================================

/// The first of `names` present in the object `v`.
fn field<'a>(v: &'a Json, names: &[&str]) -> Option<&'a Json> {
    names.iter().find_map(|n| v.get(*n)).filter(|x| !x.is_null())
}

fn str_field<'a>(v: &'a Json, names: &[&str]) -> Option<&'a str> {
    field(v, names).and_then(Json::as_str)
}

fn array_field<'a>(v: &'a Json, names: &[&str]) -> &'a [Json] {
    field(v, names)
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Builds an [`AppSpec`] from the JSON `aws kinesisanalytics describe-application`
/// prints (`{"ApplicationDetail": {...}}`, or the detail object itself). Also accepted:
/// the `kinesisanalyticsv2` shape (`ApplicationConfigurationDescription.
/// SqlApplicationConfigurationDescription`) and a CreateApplication request (`Inputs`,
/// `Outputs`, `ReferenceDataSources`). Kinesis / Firehose inputs, Kinesis / Firehose /
/// Lambda outputs load as `Unsupported` sources and destinations whose detail names the
/// ARN, which [`validate`] reports; S3 reference data is read from its object. `base_dir` resolves an `ApplicationCode` of the form
/// `file://app.sql`.
pub fn from_describe_application(json: &Json, base_dir: &Path) -> Result<AppSpec> {
    let detail = json.get("ApplicationDetail").unwrap_or(json);
    if !detail.is_object() {
        return Err(config(
            "describe-application JSON must be an object with \"ApplicationDetail\"",
        ));
    }
    let v2_config = field(
        detail,
        &["ApplicationConfigurationDescription", "ApplicationConfiguration"],
    );
    if let Some(runtime) = str_field(detail, &["RuntimeEnvironment"])
        && !runtime.to_ascii_uppercase().starts_with("SQL")
    {
        return Err(config(format!(
            "the application's runtime is {runtime}: sluice runs SQL applications only"
        )));
    }
    let sql_config = v2_config
        .and_then(|c| {
            field(
                c,
                &["SqlApplicationConfigurationDescription", "SqlApplicationConfiguration"],
            )
        })
        .unwrap_or(detail);

    let name = str_field(detail, &["ApplicationName"])
        .unwrap_or("application")
        .to_string();
    let code = str_field(detail, &["ApplicationCode"])
        .or_else(|| {
            let code_config = field(
                v2_config?,
                &[
                    "ApplicationCodeConfigurationDescription",
                    "ApplicationCodeConfiguration",
                ],
            )?;
            let content = field(code_config, &["CodeContentDescription", "CodeContent"])?;
            str_field(content, &["TextContent"])
        })
        .unwrap_or("");
    let sql = match code.trim().strip_prefix("file://") {
        Some(file) if !file.contains('\n') => read(&base_dir.join(file))?,
        _ => code.to_string(),
    };

    let mut inputs = Vec::new();
    for (i, input) in array_field(sql_config, &["InputDescriptions", "Inputs"])
        .iter()
        .enumerate()
    {
        let prefix = str_field(input, &["NamePrefix"])
            .ok_or_else(|| config(format!("InputDescriptions[{i}]: NamePrefix is missing")))?
            .to_string();
        let what = format!("input {prefix}");
        let schema_json =
            field(input, &["InputSchema"]).ok_or_else(|| config(format!("{what}: InputSchema is missing")))?;
        let schema = json_schema(schema_json).map_err(|e| config(format!("{what}: {e}")))?;
        let parallelism = field(input, &["InputParallelism"])
            .and_then(|p| field(p, &["Count"]))
            .and_then(Json::as_u64)
            .map(|c| c as u32)
            .or_else(|| {
                let names = array_field(input, &["InAppStreamNames"]);
                (!names.is_empty()).then_some(names.len() as u32)
            })
            .unwrap_or(1);
        let preprocessor = field(
            input,
            &[
                "InputProcessingConfigurationDescription",
                "InputProcessingConfiguration",
            ],
        )
        .and_then(|p| field(p, &["InputLambdaProcessorDescription", "InputLambdaProcessor"]))
        .and_then(|l| str_field(l, &["ResourceARN"]));
        let source = if let Some(k) = field(input, &["KinesisStreamsInputDescription", "KinesisStreamsInput"]) {
            let arn = str_field(k, &["ResourceARN"]).unwrap_or("(no ARN)");
            match KinesisConnection::for_stream(arn) {
                Ok(connection) => SourceSpec::Kinesis(KinesisSourceConfig::new(connection)),
                Err(_) => unsupported_source("kinesis", arn),
            }
        } else if let Some(f) = field(input, &["KinesisFirehoseInputDescription", "KinesisFirehoseInput"]) {
            unsupported_source("firehose", str_field(f, &["ResourceARN"]).unwrap_or("(no ARN)"))
        } else {
            SourceSpec::Unsupported {
                kind: "none".to_string(),
                detail: "has no streaming source in the exported configuration; give it one in a manifest \
                         (kind = \"file\", \"stdin\" or \"generator\")"
                    .to_string(),
            }
        };
        inputs.push(InputSpec {
            name_prefix: prefix,
            stream_name: None,
            parallelism,
            event_time: None,
            schema,
            source,
            // A Lambda ARN is nothing sluice can call: reported until a manifest gives
            // the input `preprocessor = { url = ... }`.
            preprocessor: preprocessor
                .map(|arn| crate::connectors::http::PreprocessorSpec::Lambda { arn: arn.to_string() }),
        });
    }

    let mut references = Vec::new();
    for (i, r) in array_field(sql_config, &["ReferenceDataSourceDescriptions", "ReferenceDataSources"])
        .iter()
        .enumerate()
    {
        let table = str_field(r, &["TableName"])
            .ok_or_else(|| config(format!("ReferenceDataSourceDescriptions[{i}]: TableName is missing")))?
            .to_string();
        let what = format!("reference table {table}");
        let schema_json =
            field(r, &["ReferenceSchema"]).ok_or_else(|| config(format!("{what}: ReferenceSchema is missing")))?;
        let schema = json_schema(schema_json).map_err(|e| config(format!("{what}: {e}")))?;
        let s3 = field(r, &["S3ReferenceDataSourceDescription", "S3ReferenceDataSource"])
            .ok_or_else(|| config(format!("{what}: S3ReferenceDataSourceDescription is missing")))?;
        let bucket = str_field(s3, &["BucketARN"]).ok_or_else(|| config(format!("{what}: BucketARN is missing")))?;
        let key = str_field(s3, &["FileKey"]).ok_or_else(|| config(format!("{what}: FileKey is missing")))?;
        references.push(ReferenceSpec {
            location: s3_location(bucket, key).map_err(|e| config(format!("{what}: {e}")))?,
            table,
            schema,
            skip_header_lines: 0,
            refresh_interval: None,
        });
    }

    let mut outputs = Vec::new();
    for (i, o) in array_field(sql_config, &["OutputDescriptions", "Outputs"])
        .iter()
        .enumerate()
    {
        let stream = str_field(o, &["Name"])
            .ok_or_else(|| config(format!("OutputDescriptions[{i}]: Name is missing")))?
            .to_string();
        let format_type = field(o, &["DestinationSchema"]).and_then(|d| str_field(d, &["RecordFormatType"]));
        let format = output_format(format_type).map_err(|e| config(format!("output {stream}: {e}")))?;
        let arn = |names: &[&str]| field(o, names).map(|d| str_field(d, &["ResourceARN"]).unwrap_or("(no ARN)"));
        let destination = if let Some(a) = arn(&["KinesisStreamsOutputDescription", "KinesisStreamsOutput"]) {
            match KinesisConnection::for_stream(a) {
                Ok(connection) => DestinationSpec::Kinesis(KinesisSinkConfig::new(connection, &stream)),
                Err(_) => unsupported_destination("kinesis", a),
            }
        } else if let Some(a) = arn(&["KinesisFirehoseOutputDescription", "KinesisFirehoseOutput"]) {
            unsupported_destination("firehose", a)
        } else if let Some(a) = arn(&["LambdaOutputDescription", "LambdaOutput"]) {
            unsupported_destination("lambda", a)
        } else {
            DestinationSpec::Unsupported {
                kind: "none".to_string(),
                detail: "has no destination in the exported configuration; give it one in a manifest \
                         (kind = \"stdout\" or \"file\")"
                    .to_string(),
            }
        };
        outputs.push(OutputSpec {
            stream,
            format,
            destination,
        });
    }

    Ok(AppSpec {
        name,
        sql,
        inputs,
        references,
        outputs,
    })
}

/// An InputSchema / ReferenceSchema object → [`RecordSchema`].
fn json_schema(schema: &Json) -> std::result::Result<RecordSchema, String> {
    let rf = field(schema, &["RecordFormat"]).ok_or("RecordFormat is missing")?;
    let format_type = str_field(rf, &["RecordFormatType"]).ok_or("RecordFormat.RecordFormatType is missing")?;
    let mapping = field(rf, &["MappingParameters"]);
    let json_params = mapping.and_then(|m| field(m, &["JSONMappingParameters"]));
    let csv_params = mapping.and_then(|m| field(m, &["CSVMappingParameters"]));
    let format = match format_type.trim().to_ascii_uppercase().as_str() {
        "JSON" => record_format(
            "JSON",
            json_params.and_then(|p| str_field(p, &["RecordRowPath"])),
            None,
            None,
        )?,
        "CSV" => record_format(
            "CSV",
            None,
            csv_params.and_then(|p| str_field(p, &["RecordRowDelimiter"])),
            csv_params.and_then(|p| str_field(p, &["RecordColumnDelimiter"])),
        )?,
        other => return Err(format!("RecordFormatType '{other}' is not JSON or CSV")),
    };
    check_encoding(str_field(schema, &["RecordEncoding"]))?;
    let columns = array_field(schema, &["RecordColumns"])
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = str_field(c, &["Name"]).ok_or_else(|| format!("RecordColumns[{i}]: Name is missing"))?;
            let sql_type =
                str_field(c, &["SqlType"]).ok_or_else(|| format!("RecordColumns[{i}] ({name}): SqlType is missing"))?;
            record_column(name, sql_type, str_field(c, &["Mapping"]), &format)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordSchema { columns, format })
}

// =======================================================================================
// Validation
// =======================================================================================

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Structural errors: the application cannot run.
    pub errors: Vec<String>,
    /// Sources, reference data and destinations this build cannot use yet.
    pub unsupported: Vec<String>,
    /// Warning-level notes (e.g. beyond KDA's limits, which sluice does not enforce).
    pub notes: Vec<String>,
}

impl Validation {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.unsupported.is_empty()
    }
}

/// Checks an application before it runs: Unsupported sources, reference data and
/// destinations, and structural errors (no inputs, duplicate names, bad parallelism,
/// empty schemas ...). Returns every finding at once.
pub fn check(app: &AppSpec) -> Validation {
    let mut v = Validation::default();
    if app.name.trim().is_empty() {
        v.errors.push("the application has no name".into());
    }
    if app.sql.trim().is_empty() {
        v.errors.push("the application code is empty".into());
    }
    if app.inputs.is_empty() {
        v.errors
            .push("the application has no inputs (at least one [[inputs]] is needed)".into());
    }

    let mut prefixes: Vec<&str> = Vec::new();
    let mut streams: Vec<String> = Vec::new();
    for input in &app.inputs {
        let who = format!("input {}", input.name_prefix);
        if input.name_prefix.trim().is_empty() {
            v.errors.push("an input has an empty name prefix".into());
        } else if prefixes.contains(&input.name_prefix.as_str()) {
            v.errors.push(format!("{who}: the name prefix is used by two inputs"));
        }
        prefixes.push(&input.name_prefix);
        if input.name_prefix.chars().count() > 32 {
            v.notes.push(format!("{who}: KDA limits NamePrefix to 32 characters"));
        }
        if input.parallelism == 0 || input.parallelism > KDA_MAX_PARALLELISM {
            v.errors.push(format!(
                "{who}: parallelism {} is outside 1..={KDA_MAX_PARALLELISM}",
                input.parallelism
            ));
        }
        for s in input.stream_names() {
            if streams.contains(&s) {
                v.errors
                    .push(format!("{who}: in-application stream {s} is created by two inputs"));
            }
            streams.push(s);
        }
        check_schema(&who, &input.schema, &mut v);
        if let SourceSpec::Unsupported { detail, .. } = &input.source {
            v.unsupported.push(format!("{who} {detail}"));
        }
        if let Some(crate::connectors::http::PreprocessorSpec::Lambda { arn }) = &input.preprocessor {
            v.unsupported.push(format!(
                "{who} has the Lambda preprocessor {arn}, which sluice does not invoke; give the input \
                 `preprocessor = {{ url = \"...\" }}`: an HTTP endpoint that answers as a KDA preprocessor function did"
            ));
        }
    }
    if app.inputs.len() > 1 {
        v.notes.push(format!(
            "{} inputs: KDA allows one streaming source per application; sluice runs them all",
            app.inputs.len()
        ));
    }

    let mut tables: Vec<&str> = Vec::new();
    for r in &app.references {
        let who = format!("reference table {}", r.table);
        if r.table.trim().is_empty() {
            v.errors.push("a reference table has an empty name".into());
        } else if tables.contains(&r.table.as_str()) {
            v.errors.push(format!("{who}: the table name is used twice"));
        } else if streams.contains(&r.table) {
            v.errors.push(format!("{who}: an input stream has the same name"));
        }
        tables.push(&r.table);
        check_schema(&who, &r.schema, &mut v);
    }
    if app.references.len() > 1 {
        v.notes.push(format!(
            "{} reference tables: KDA allows one reference data source per application; sluice loads them all",
            app.references.len()
        ));
    }

    let mut seen: Vec<(&str, &DestinationSpec)> = Vec::new();
    let mut files: Vec<&PathBuf> = Vec::new();
    for o in &app.outputs {
        let who = format!("output {}", o.stream);
        if o.stream.trim().is_empty() {
            v.errors.push("an output has an empty stream name".into());
        }
        if seen.iter().any(|(s, d)| *s == o.stream && **d == o.destination) {
            v.errors.push(format!(
                "{who}: the same stream is delivered twice to the same destination"
            ));
        }
        seen.push((&o.stream, &o.destination));
        match &o.destination {
            DestinationSpec::Unsupported { detail, .. } => v.unsupported.push(format!("{who} {detail}")),
            DestinationSpec::File { path } => {
                if files.contains(&path) {
                    v.errors
                        .push(format!("{who}: the file {} receives two outputs", path.display()));
                }
                files.push(path);
            }
            _ => {}
        }
    }
    if app.outputs.len() > KDA_MAX_OUTPUTS {
        v.notes.push(format!(
            "{} outputs: KDA allows at most {KDA_MAX_OUTPUTS} per application; sluice delivers them all",
            app.outputs.len()
        ));
    }
    v
}

fn check_schema(who: &str, schema: &RecordSchema, v: &mut Validation) {
    if schema.columns.is_empty() {
        v.errors.push(format!("{who}: the schema has no columns"));
    }
    if schema.columns.len() > 1000 {
        v.notes
            .push(format!("{who}: KDA allows at most 1000 columns per schema"));
    }
    let mut names: Vec<&str> = Vec::new();
    for c in &schema.columns {
        let name = c.column.name.as_str();
        if name.is_empty() {
            v.errors.push(format!("{who}: a column has an empty name"));
        } else if names.contains(&name) {
            v.errors.push(format!("{who}: column {name} appears twice"));
        }
        names.push(name);
        if matches!(schema.format, RecordFormat::Json { .. }) && c.mapping.as_deref().is_none_or(str::is_empty) {
            v.errors.push(format!("{who}: JSON column {name} has no mapping"));
        }
    }
    if let RecordFormat::Csv {
        row_delimiter,
        column_delimiter,
    } = &schema.format
        && (row_delimiter.is_empty() || column_delimiter.is_empty())
    {
        v.errors.push(format!("{who}: CSV delimiters must not be empty"));
    }
}

/// Validates an application before it runs. Errors with one message listing every
/// structural error and every source, reference or destination this build cannot use
/// (each naming its stream / table and ARN); warning-level notes (such as more than
/// three outputs, which KDA forbids and sluice allows) are logged, not errors. Use
/// [`check`] to get the notes too.
pub fn validate(app: &AppSpec) -> Result<()> {
    let v = check(app);
    for note in &v.notes {
        tracing::warn!("{note}");
    }
    if v.is_ok() {
        return Ok(());
    }
    let mut msg = String::new();
    if !v.errors.is_empty() {
        msg.push_str(&format!("application {} is not valid:", app.name));
        for e in &v.errors {
            msg.push_str(&format!("\n  - {e}"));
        }
    }
    if !v.unsupported.is_empty() {
        if !msg.is_empty() {
            msg.push('\n');
        }
        msg.push_str(&format!(
            "this build cannot run application {} as configured:",
            app.name
        ));
        for u in &v.unsupported {
            msg.push_str(&format!("\n  - {u}"));
        }
    }
    Err(SluiceError::Config(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML_MANIFEST: &str = r#"
name = "ride-analytics"
description = "per-minute ride counts"
code_text = "CREATE OR REPLACE STREAM \"DESTINATION_SQL_STREAM\" (CITY VARCHAR(16), RIDES INTEGER);"

[[inputs]]
parallelism = 2
[inputs.schema]
record_format = "JSON"
record_encoding = "UTF-8"
columns = [
  { name = "RIDE_ID", sql_type = "VARCHAR(16)", mapping = "$.ride_id" },
  { name = "city",    sql_type = "varchar(16)", mapping = "$.city" },
  { name = "FARE",    sql_type = "REAL" },
]
[inputs.source]
kind = "file"
path = "rides.jsonl"

[[inputs]]
name_prefix = "CLICKS"
[inputs.schema]
record_format = "CSV"
record_column_delimiter = "|"
columns = [ { name = "URL", sql_type = "VARCHAR(256)" }, { name = "N", sql_type = "INTEGER" } ]
[inputs.source]
kind = "generator"
rate = 100
limit = 1000

[[references]]
table_name = "Cities"
path = "cities.csv"
skip_header_lines = 1
[references.schema]
record_format = "CSV"
columns = [ { name = "CITY", sql_type = "VARCHAR(16)" }, { name = "COUNTRY", sql_type = "CHAR(2)" } ]

[[outputs]]
stream = "DESTINATION_SQL_STREAM"
format = "CSV"
[outputs.destination]
kind = "file"
path = "out/rides.csv"

[[outputs]]
stream = "error_stream"
"#;

    #[test]
    fn toml_manifest_maps_onto_the_app_spec() {
        let base = Path::new("/apps/rides");
        let app = parse_manifest(TOML_MANIFEST, base).unwrap();
        assert_eq!(app.name, "ride-analytics");
        assert!(app.sql.starts_with("CREATE OR REPLACE STREAM"));
        assert_eq!(app.inputs.len(), 2);

        let rides = &app.inputs[0];
        assert_eq!(rides.name_prefix, DEFAULT_NAME_PREFIX);
        assert_eq!(rides.parallelism, 2);
        assert_eq!(
            rides.stream_names(),
            vec!["SOURCE_SQL_STREAM_001", "SOURCE_SQL_STREAM_002"]
        );
        assert_eq!(rides.schema.format, RecordFormat::Json { row_path: "$".into() });
        assert_eq!(rides.schema.columns[1].column.name, "city");
        assert_eq!(rides.schema.columns[1].column.sql_type, SqlType::Varchar(16));
        assert_eq!(rides.schema.columns[0].mapping.as_deref(), Some("$.ride_id"));
        assert_eq!(rides.schema.columns[2].mapping.as_deref(), Some("$.FARE"));
        assert_eq!(
            rides.source,
            SourceSpec::File {
                path: base.join("rides.jsonl"),
                skip_header_lines: 0,
            }
        );

        let clicks = &app.inputs[1];
        assert_eq!(clicks.stream_names(), vec!["CLICKS_001"]);
        assert_eq!(
            clicks.schema.format,
            RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: "|".into()
            }
        );
        assert!(clicks.schema.columns.iter().all(|c| c.mapping.is_none()));
        assert_eq!(
            clicks.source,
            SourceSpec::Generator {
                rate: 100,
                seed: DEFAULT_GENERATOR_SEED,
                limit: Some(1000)
            }
        );

        assert_eq!(app.references.len(), 1);
        assert_eq!(app.references[0].table, "Cities");
        assert_eq!(
            app.references[0].location,
            crate::app::ReferenceLocation::File(base.join("cities.csv"))
        );
        assert_eq!(app.references[0].skip_header_lines, 1);
        assert_eq!(app.references[0].refresh_interval, None);
        assert_eq!(app.references[0].schema.columns[1].column.sql_type, SqlType::Char(2));

        assert_eq!(app.outputs.len(), 2);
        assert_eq!(app.outputs[0].stream, "DESTINATION_SQL_STREAM");
        assert_eq!(app.outputs[0].format, OutputFormat::Csv);
        assert_eq!(
            app.outputs[0].destination,
            DestinationSpec::File {
                path: base.join("out/rides.csv")
            }
        );
        assert_eq!(app.outputs[1].stream, "error_stream");
        assert_eq!(app.outputs[1].format, OutputFormat::Json);
        assert_eq!(app.outputs[1].destination, DestinationSpec::Stdout);

        let v = check(&app);
        assert!(v.errors.is_empty() && v.unsupported.is_empty(), "{v:?}");
        assert!(v.notes.iter().any(|n| n.contains("one streaming source")), "{v:?}");
        validate(&app).unwrap();
    }

    #[test]
    fn load_manifest_reads_code_files_and_json_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.sql"),
            "SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\";",
        )
        .unwrap();
        let toml_text = TOML_MANIFEST.replace(
            "code_text = \"CREATE OR REPLACE STREAM \\\"DESTINATION_SQL_STREAM\\\" (CITY VARCHAR(16), RIDES INTEGER);\"",
            "code = \"app.sql\"",
        );
        assert!(toml_text.contains("code = \"app.sql\""));
        let path = dir.path().join("rides.toml");
        std::fs::write(&path, toml_text).unwrap();
        let app = load_manifest(&path).unwrap();
        assert!(app.sql.starts_with("SELECT STREAM"));
        assert_eq!(
            app.inputs[0].source,
            SourceSpec::File {
                path: dir.path().join("rides.jsonl"),
                skip_header_lines: 0,
            }
        );

        // The same manifest as JSON.
        let json_path = dir.path().join("small.json");
        std::fs::write(
            &json_path,
            r#"{"code": "app.sql", "inputs": [{"schema": {"record_format": "JSON",
                "columns": [{"name": "A", "sql_type": "INTEGER", "mapping": "$.a"}]},
                "source": {"kind": "stdin"}}]}"#,
        )
        .unwrap();
        let app = load_manifest(&json_path).unwrap();
        assert_eq!(app.name, "small");
        assert_eq!(app.inputs[0].source, SourceSpec::Stdin);
    }

    #[test]
    fn manifest_errors_name_the_problem() {
        let err = parse_manifest("code_text = \"x\"\ncodes = 1\n", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("codes"), "{err}");
        let err = parse_manifest(
            "code_text = \"x\"\n[[inputs]]\n[inputs.schema]\nrecord_format = \"JSON\"\ncolumns = []\n[inputs.source]\nkind = \"file\"\nrate = 3\npath = \"a\"\n",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`rate` is not a setting of kind = \"file\""), "{err}");
        let app = parse_manifest(
            "code_text = \"x\"\n[[inputs]]\n[inputs.schema]\nrecord_format = \"CSV\"\ncolumns = []\n[inputs.source]\nkind = \"file\"\npath = \"a.csv\"\nskip_header_lines = 1\n",
            Path::new("."),
        )
        .unwrap();
        assert!(matches!(
            app.inputs[0].source,
            SourceSpec::File {
                skip_header_lines: 1,
                ..
            }
        ));
        let err = parse_manifest(
            "code_text = \"x\"\n[[inputs]]\n[inputs.schema]\nrecord_format = \"CSV\"\ncolumns = []\n[inputs.source]\nkind = \"stdin\"\nskip_header_lines = 1\n",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`skip_header_lines` is not a setting of kind = \"stdin\""),
            "{err}"
        );
        let err = parse_manifest(
            "code_text = \"x\"\n[[inputs]]\n[inputs.schema]\nrecord_format = \"XML\"\ncolumns = []\n[inputs.source]\nkind = \"stdin\"\n",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("XML"), "{err}");
        let err = parse_manifest(
            "code_text = \"x\"\n[[inputs]]\n[inputs.schema]\nrecord_format = \"JSON\"\nrecord_encoding = \"ISO-8859-1\"\ncolumns = []\n[inputs.source]\nkind = \"stdin\"\n",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ISO-8859-1"), "{err}");
        let err = parse_manifest("[[inputs]]\n", Path::new(".")).unwrap_err().to_string();
        assert!(err.contains("code"), "{err}");
    }

    fn describe_json() -> Json {
        serde_json::json!({
          "ApplicationDetail": {
            "ApplicationName": "ride-alerts",
            "ApplicationDescription": "cancellation spikes",
            "ApplicationARN": "arn:aws:kinesisanalytics:eu-west-1:123456789012:application/ride-alerts",
            "ApplicationStatus": "RUNNING",
            "CreateTimestamp": 1.709280000E9,
            "LastUpdateTimestamp": 1.709290000E9,
            "InputDescriptions": [{
              "InputId": "1.1",
              "NamePrefix": "SOURCE_SQL_STREAM",
              "InAppStreamNames": ["SOURCE_SQL_STREAM_001"],
              "InputProcessingConfigurationDescription": {},
              "KinesisStreamsInputDescription": {
                "ResourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/ride-events",
                "RoleARN": "arn:aws:iam::123456789012:role/kda-ride-alerts"
              },
              "InputSchema": {
                "RecordFormat": {
                  "RecordFormatType": "JSON",
                  "MappingParameters": { "JSONMappingParameters": { "RecordRowPath": "$" } }
                },
                "RecordEncoding": "UTF-8",
                "RecordColumns": [
                  { "Name": "RIDE_ID", "Mapping": "$.ride_id", "SqlType": "VARCHAR(16)" },
                  { "Name": "EVENT_TYPE", "Mapping": "$.event_type", "SqlType": "VARCHAR(16)" },
                  { "Name": "fare", "Mapping": "$.fare", "SqlType": "REAL" }
                ]
              },
              "InputParallelism": { "Count": 1 },
              "InputStartingPositionConfiguration": { "InputStartingPosition": "NOW" }
            }],
            "OutputDescriptions": [
              {
                "OutputId": "1.1",
                "Name": "ALERT_STREAM",
                "LambdaOutputDescription": {
                  "ResourceARN": "arn:aws:lambda:eu-west-1:123456789012:function:page-oncall",
                  "RoleARN": "arn:aws:iam::123456789012:role/kda-ride-alerts"
                },
                "DestinationSchema": { "RecordFormatType": "JSON" }
              },
              {
                "OutputId": "1.2",
                "Name": "error_stream",
                "KinesisFirehoseOutputDescription": {
                  "ResourceARN": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/kda-errors",
                  "RoleARN": "arn:aws:iam::123456789012:role/kda-ride-alerts"
                },
                "DestinationSchema": { "RecordFormatType": "CSV" }
              }
            ],
            "ReferenceDataSourceDescriptions": [{
              "ReferenceId": "1.1",
              "TableName": "CITIES",
              "S3ReferenceDataSourceDescription": {
                "BucketARN": "arn:aws:s3:::ride-reference",
                "FileKey": "cities.csv",
                "ReferenceRoleARN": "arn:aws:iam::123456789012:role/kda-ride-alerts"
              },
              "ReferenceSchema": {
                "RecordFormat": {
                  "RecordFormatType": "CSV",
                  "MappingParameters": {
                    "CSVMappingParameters": { "RecordRowDelimiter": "\n", "RecordColumnDelimiter": "," }
                  }
                },
                "RecordEncoding": "UTF-8",
                "RecordColumns": [
                  { "Name": "CITY", "SqlType": "VARCHAR(16)" },
                  { "Name": "REGION", "SqlType": "VARCHAR(8)" }
                ]
              }
            }],
            "ApplicationCode": "CREATE OR REPLACE STREAM \"ALERT_STREAM\" (N INTEGER);\nCREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"ALERT_STREAM\" SELECT STREAM COUNT(*) FROM \"SOURCE_SQL_STREAM_001\" GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE);\n",
            "ApplicationVersionId": 7
          }
        })
    }

    #[test]
    fn describe_application_loads_kinesis_and_reports_other_endpoints() {
        let app = from_describe_application(&describe_json(), Path::new(".")).unwrap();
        assert_eq!(app.name, "ride-alerts");
        assert!(app.sql.contains("CREATE OR REPLACE PUMP"));
        let input = &app.inputs[0];
        assert_eq!(input.name_prefix, "SOURCE_SQL_STREAM");
        assert_eq!(input.stream_names(), vec!["SOURCE_SQL_STREAM_001"]);
        assert_eq!(input.schema.columns[2].column.name, "fare");
        assert_eq!(input.schema.columns[2].mapping.as_deref(), Some("$.fare"));
        match &input.source {
            SourceSpec::Kinesis(k) => {
                assert_eq!(k.connection.stream_name, "ride-events");
                assert_eq!(k.connection.region.as_deref(), Some("eu-west-1"));
                assert_eq!(k.start, StartPosition::TrimHorizon);
            }
            other => panic!("expected a Kinesis source, got {other:?}"),
        }
        assert_eq!(app.outputs[0].stream, "ALERT_STREAM");
        assert!(matches!(&app.outputs[0].destination, DestinationSpec::Unsupported { kind, .. } if kind == "lambda"));
        assert_eq!(app.outputs[1].format, OutputFormat::Csv);
        assert!(matches!(&app.outputs[1].destination, DestinationSpec::Unsupported { kind, .. } if kind == "firehose"));
        assert_eq!(app.references[0].location.to_string(), "s3://ride-reference/cities.csv");
        assert_eq!(
            app.references[0].schema.format,
            RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into()
            }
        );

        let err = validate(&app).unwrap_err().to_string();
        assert!(err.contains("this build cannot run application ride-alerts"), "{err}");
        assert!(err.contains("output ALERT_STREAM delivers to the AWS Lambda function arn:aws:lambda:eu-west-1:123456789012:function:page-oncall"), "{err}");
        assert!(err.contains("give the destination the `bucket`"), "{err}");
        assert!(err.contains("deliverystream/kda-errors"), "{err}");
        // The S3 reference table is read from its object.
        assert!(!err.contains("CITIES"), "{err}");
        // Lambda and Firehose outputs; the Kinesis input and the S3 table run.
        assert_eq!(check(&app).unsupported.len(), 2);
        assert!(!err.contains("ride-events"), "{err}");
        assert!(check(&app).errors.is_empty());
    }

    #[test]
    fn describe_application_inputs_have_the_implicit_envelope_columns() {
        let mut json = describe_json();
        let detail = json.get_mut("ApplicationDetail").unwrap();
        // Planning loads reference data: leave the S3 table out.
        detail
            .as_object_mut()
            .unwrap()
            .remove("ReferenceDataSourceDescriptions");
        detail["ApplicationCode"] = Json::String(
            "CREATE OR REPLACE STREAM \"ALERT_STREAM\" (RIDE_ID VARCHAR(16), PK VARCHAR(256), SEQ VARCHAR(128), SHARD VARCHAR(128));\n\
             CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"ALERT_STREAM\" SELECT STREAM RIDE_ID, PARTITION_KEY, SEQUENCE_NUMBER, SHARD_ID FROM \"SOURCE_SQL_STREAM_001\";\n\
             CREATE OR REPLACE STREAM \"COPY\" (RIDE_ID VARCHAR(16), EVENT_TYPE VARCHAR(16), \"fare\" REAL);\n\
             CREATE OR REPLACE PUMP \"C\" AS INSERT INTO \"COPY\" SELECT STREAM * FROM \"SOURCE_SQL_STREAM_001\";\n"
                .into(),
        );
        let app = from_describe_application(&json, Path::new(".")).unwrap();
        let plan = crate::planner::plan_application(&app).unwrap();
        let input = plan.stream("SOURCE_SQL_STREAM_001").unwrap();
        let names: Vec<&str> = input.schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "RIDE_ID",
                "EVENT_TYPE",
                "fare",
                "PARTITION_KEY",
                "SEQUENCE_NUMBER",
                "SHARD_ID",
                "APPROXIMATE_ARRIVAL_TIME",
                "ROWTIME"
            ]
        );
    }

    #[test]
    fn describe_application_v2_shape_is_accepted() {
        let json = serde_json::json!({"ApplicationDetail": {
            "ApplicationName": "v2app",
            "RuntimeEnvironment": "SQL-1_0",
            "ApplicationConfigurationDescription": {
                "ApplicationCodeConfigurationDescription": {
                    "CodeContentType": "PLAINTEXT",
                    "CodeContentDescription": { "TextContent": "SELECT 1;" }
                },
                "SqlApplicationConfigurationDescription": {
                    "InputDescriptions": [{
                        "NamePrefix": "IN",
                        "InAppStreamNames": ["IN_001", "IN_002"],
                        "KinesisFirehoseInputDescription": { "ResourceARN": "arn:aws:firehose:us-east-1:1:deliverystream/x" },
                        "InputSchema": { "RecordFormat": { "RecordFormatType": "CSV" },
                                         "RecordColumns": [{ "Name": "A", "SqlType": "INTEGER" }] }
                    }]
                }
            }
        }});
        let app = from_describe_application(&json, Path::new(".")).unwrap();
        assert_eq!(app.sql, "SELECT 1;");
        assert_eq!(app.inputs[0].stream_names(), vec!["IN_001", "IN_002"]);
        assert!(matches!(&app.inputs[0].source, SourceSpec::Unsupported { kind, .. } if kind == "firehose"));
        let flink =
            serde_json::json!({"ApplicationDetail": {"ApplicationName": "f", "RuntimeEnvironment": "FLINK-1_18"}});
        assert!(
            from_describe_application(&flink, Path::new("."))
                .unwrap_err()
                .to_string()
                .contains("FLINK")
        );
    }

    #[test]
    fn overrides_replace_exported_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.json"),
            serde_json::to_string_pretty(&describe_json()).unwrap(),
        )
        .unwrap();
        let manifest = r#"
describe_application = "app.json"

[[inputs]]
name_prefix = "SOURCE_SQL_STREAM"
[inputs.source]
kind = "file"
path = "events.jsonl"

[[references]]
table_name = "CITIES"
path = "cities.csv"
skip_header_lines = 1

[[outputs]]
stream = "ALERT_STREAM"
[outputs.destination]
kind = "stdout"

[[outputs]]
stream = "error_stream"
format = "JSON"
[outputs.destination]
kind = "file"
path = "errors.jsonl"
"#;
        let path = dir.path().join("local.toml");
        std::fs::write(&path, manifest).unwrap();
        let app = load_manifest(&path).unwrap();
        assert_eq!(app.name, "ride-alerts");
        assert!(app.sql.contains("ALERT_STREAM"));
        assert_eq!(app.inputs.len(), 1);
        assert_eq!(
            app.inputs[0].source,
            SourceSpec::File {
                path: dir.path().join("events.jsonl"),
                skip_header_lines: 0,
            }
        );
        // The exported schema is kept.
        assert_eq!(app.inputs[0].schema.columns.len(), 3);
        assert_eq!(
            app.references[0].location,
            crate::app::ReferenceLocation::File(dir.path().join("cities.csv"))
        );
        assert_eq!(app.references[0].skip_header_lines, 1);
        assert_eq!(app.outputs.len(), 2);
        assert_eq!(app.outputs[0].destination, DestinationSpec::Stdout);
        assert_eq!(
            app.outputs[1].destination,
            DestinationSpec::File {
                path: dir.path().join("errors.jsonl")
            }
        );
        assert_eq!(app.outputs[1].format, OutputFormat::Json);
        validate(&app).unwrap();

        // An override for an input the export does not have is an error naming it.
        std::fs::write(
            &path,
            "describe_application = \"app.json\"\n[[inputs]]\nname_prefix = \"CLICKS\"\n",
        )
        .unwrap();
        let err = load_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("CLICKS") && err.contains("SOURCE_SQL_STREAM"), "{err}");
    }

    #[test]
    fn kinesis_inputs_and_outputs_load_with_their_settings() {
        let text = r#"
code_text = "x"
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [ { name = "K", sql_type = "VARCHAR(8)", mapping = "$.k" },
            { name = "PK", sql_type = "VARCHAR(64)", mapping = "METADATA:PARTITION_KEY" } ]
[inputs.source]
kind = "kinesis"
arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/rides"
starting_position = "at_timestamp"
starting_timestamp = "2026-11-22 10:00:00"
endpoint = "http://127.0.0.1:4567"
poll_interval_ms = 250
efo_consumer = "sluice"
[[outputs]]
stream = "OUT"
[outputs.destination]
kind = "kinesis"
name = "alerts"
region = "us-west-2"
partition_key = "K"
parked_path = "parked/out.jsonl"
"#;
        let app = parse_manifest(text, Path::new("/apps")).unwrap();
        let SourceSpec::Kinesis(source) = &app.inputs[0].source else {
            panic!("{:?}", app.inputs[0].source)
        };
        assert_eq!(source.connection.stream_name, "rides");
        assert_eq!(source.connection.region.as_deref(), Some("eu-west-1"));
        assert_eq!(source.connection.endpoint.as_deref(), Some("http://127.0.0.1:4567"));
        assert_eq!(
            source.start,
            StartPosition::AtTimestamp(crate::time::parse_timestamp("2026-11-22 10:00:00").unwrap())
        );
        assert_eq!(source.poll_interval_ms, 250);
        assert_eq!(source.efo_consumer.as_deref(), Some("sluice"));
        let DestinationSpec::Kinesis(sink) = &app.outputs[0].destination else {
            panic!("{:?}", app.outputs[0].destination)
        };
        assert_eq!(sink.connection.stream_name, "alerts");
        assert_eq!(sink.connection.region.as_deref(), Some("us-west-2"));
        assert_eq!(sink.partition_key.as_deref(), Some("K"));
        assert_eq!(sink.parked_path, Path::new("/apps/parked/out.jsonl"));
        validate(&app).unwrap();

        let bad = |source: &str| {
            let text = format!(
                "code_text = \"x\"\n[[inputs]]\n[inputs.schema]\nrecord_format = \"JSON\"\ncolumns = []\n[inputs.source]\n{source}\n"
            );
            parse_manifest(&text, Path::new(".")).unwrap_err().to_string()
        };
        let err = bad("kind = \"kinesis\"\nname = \"s\"\nstarting_position = \"OLDEST\"");
        assert!(err.contains("OLDEST"), "{err}");
        let err = bad("kind = \"kinesis\"\nname = \"s\"\npoll_interval_ms = 50");
        assert!(err.contains("at least 200"), "{err}");
        let err = bad("kind = \"kinesis\"\nname = \"s\"\naccess_key_id = \"a\"");
        assert!(err.contains("secret_access_key"), "{err}");
        let err = bad("kind = \"file\"\npath = \"a\"\nendpoint = \"http://x\"");
        assert!(err.contains("is not a setting of kind = \"file\""), "{err}");
        let err = bad("kind = \"kinesis\"\narn = \"arn:aws:s3:::bucket\"");
        assert!(err.contains("not a Kinesis stream ARN"), "{err}");
    }

    #[test]
    fn s3_and_firehose_with_a_bucket_load_as_s3_outputs() {
        let output = |destination: &str| {
            let text = format!(
                "code_text = \"x\"\n[[outputs]]\nstream = \"OUT\"\nformat = \"CSV\"\n[outputs.destination]\n{destination}\n"
            );
            parse_manifest(&text, Path::new("/apps")).map(|app| app.outputs[0].destination.clone())
        };
        let spec = output(
            r#"kind = "s3"
bucket_arn = "arn:aws:s3:::lake"
prefix = "rides/!{timestamp:yyyy}/"
format = "parquet"
compression = "ZSTD"
buffer_size_mb = 64
buffer_interval_ms = 500
partition_by = ["CITY"]
endpoint = "http://127.0.0.1:9000"
access_key_id = "a"
secret_access_key = "b"
max_attempts = 2
parked_path = "parked/out.jsonl""#,
        )
        .unwrap();
        let DestinationSpec::S3(c) = spec else {
            panic!("{spec:?}")
        };
        use crate::connectors::s3::{Compression, ObjectFormat};
        assert_eq!(c.connection.bucket, "lake");
        assert_eq!(c.connection.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (c.format, c.compression),
            (Some(ObjectFormat::Parquet), Compression::Zstd)
        );
        assert_eq!(c.buffer_size_bytes, 64 << 20);
        assert_eq!(c.buffer_interval, std::time::Duration::from_millis(500));
        assert_eq!(c.partition_by, ["CITY"]);
        assert_eq!(c.max_attempts, 2);
        assert_eq!(c.parked_path, Path::new("/apps/parked/out.jsonl"));
        assert_eq!(c.prefix, "rides/!{timestamp:yyyy}/");

        let firehose = output("kind = \"firehose\"\nname = \"to-lake\"\nbucket = \"lake\"").unwrap();
        let DestinationSpec::S3(c) = firehose else { panic!() };
        assert_eq!(c.connection.bucket, "lake");
        assert_eq!(c.format, None, "the output's CSV applies");
        assert_eq!(c.buffer_interval, std::time::Duration::from_secs(300));
        assert!(matches!(
            output("kind = \"firehose\"\nname = \"to-lake\"").unwrap(),
            DestinationSpec::Unsupported { .. }
        ));

        let err = |d: &str| output(d).unwrap_err().to_string();
        assert!(err("kind = \"s3\"").contains("`bucket` or `bucket_arn`"));
        assert!(err("kind = \"s3\"\nbucket = \"b\"\nbuffer_size_mb = 129").contains("1..128"));
        assert!(err("kind = \"s3\"\nbucket = \"b\"\nbuffer_interval_secs = 5").contains("buffer_interval_ms"));
        assert!(err("kind = \"s3\"\nbucket = \"b\"\ncompression = \"SNAPPY\"").contains("PARQUET"));
        assert!(err("kind = \"s3\"\nbucket = \"b\"\nprefix = \"!{bad:x}/\"").contains("unknown expression namespace"));
        assert!(err("kind = \"file\"\npath = \"a\"\nprefix = \"p/\"").contains("kind = \"s3\""));
        assert!(err("kind = \"s3\"\nbucket = \"b\"\npartition_key = \"K\"").contains("partition_key"));
    }

    #[test]
    fn shipped_query_manifests_load_and_validate() {
        let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
        let Ok(entries) = std::fs::read_dir(&queries) else {
            return;
        };
        for entry in entries {
            let manifest = entry.unwrap().path().join("sluice.toml");
            if manifest.is_file() {
                let app = load_manifest(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
                validate(&app).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
            }
        }
    }

    #[test]
    fn s3_references_load_with_their_settings_and_refresh_intervals() {
        let manifest = |reference: &str| {
            format!(
                "code_text = \"SELECT 1;\"\n[[references]]\ntable_name = \"T\"\n{reference}\n\
                 [references.schema]\nrecord_format = \"CSV\"\ncolumns = [ {{ name = \"A\", sql_type = \"INTEGER\" }} ]\n"
            )
        };
        let app = parse_manifest(
            &manifest(
                "s3 = { bucket_arn = \"arn:aws:s3:::ref-data\", file_key = \"/dir/t.csv\", endpoint = \"http://127.0.0.1:5000\", \
                 region = \"eu-west-1\", access_key_id = \"a\", secret_access_key = \"b\" }\nrefresh_interval_secs = 60",
            ),
            Path::new("/x"),
        )
        .unwrap();
        let r = &app.references[0];
        match &r.location {
            crate::app::ReferenceLocation::S3 { connection, key } => {
                assert_eq!(connection.bucket, "ref-data");
                assert_eq!(key, "dir/t.csv");
                assert_eq!(connection.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
                assert_eq!(connection.region.as_deref(), Some("eu-west-1"));
                assert_eq!(connection.access_key_id.as_deref(), Some("a"));
                assert_eq!(connection.secret_access_key.as_deref(), Some("b"));
            }
            other => panic!("expected an S3 location, got {other:?}"),
        }
        assert_eq!(r.location.to_string(), "s3://ref-data/dir/t.csv");
        assert_eq!(r.refresh_interval, Some(std::time::Duration::from_secs(60)));
        assert!(check(&app).unsupported.is_empty());

        // An s3:// path: the standard chain.
        let app = parse_manifest(
            &manifest("path = \"s3://ref-data/t.json\"\nrefresh_interval_ms = 250"),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(app.references[0].location.to_string(), "s3://ref-data/t.json");
        assert_eq!(
            app.references[0].refresh_interval,
            Some(std::time::Duration::from_millis(250))
        );

        let bad = |reference: &str| {
            parse_manifest(&manifest(reference), Path::new("/x"))
                .unwrap_err()
                .to_string()
        };
        let err = bad("path = \"t.csv\"\nrefresh_interval_secs = 1\nrefresh_interval_ms = 1");
        assert!(err.contains("not both"), "{err}");
        assert!(bad("path = \"t.csv\"\nrefresh_interval_ms = 0").contains("positive"));
        let err = bad("s3 = { bucket_arn = \"b\", file_key = \"k\", access_key_id = \"a\" }");
        assert!(err.contains("secret_access_key"), "{err}");
        assert!(bad("path = \"s3://bucket-only\"").contains("names no object"));
    }

    #[test]
    fn validate_reports_structural_errors_and_notes() {
        let mut app = parse_manifest(TOML_MANIFEST, Path::new("/x")).unwrap();
        let dup = app.inputs[1].clone();
        app.inputs.push(dup);
        app.inputs[0].parallelism = 0;
        app.references.push(app.references[0].clone());
        for s in ["A", "B", "C"] {
            app.outputs.push(OutputSpec {
                stream: s.into(),
                format: OutputFormat::Json,
                destination: DestinationSpec::Stdout,
            });
        }
        let v = check(&app);
        assert!(
            v.errors
                .iter()
                .any(|e| e.contains("CLICKS: the name prefix is used by two inputs")),
            "{v:?}"
        );
        assert!(
            v.errors
                .iter()
                .any(|e| e.contains("CLICKS_001 is created by two inputs")),
            "{v:?}"
        );
        assert!(v.errors.iter().any(|e| e.contains("parallelism 0")), "{v:?}");
        assert!(
            v.errors
                .iter()
                .any(|e| e.contains("Cities: the table name is used twice")),
            "{v:?}"
        );
        assert!(v.notes.iter().any(|n| n.contains("5 outputs")), "{v:?}");
        assert!(!v.errors.iter().any(|e| e.contains("outputs")), "{v:?}");
        let err = validate(&app).unwrap_err().to_string();
        assert!(err.contains("is not valid"), "{err}");

        let empty = AppSpec {
            name: "e".into(),
            sql: "SELECT 1;".into(),
            inputs: vec![],
            references: vec![],
            outputs: vec![],
        };
        assert!(validate(&empty).unwrap_err().to_string().contains("no inputs"));
    }

    #[test]
    fn input_overrides_repoint_inputs_and_tables_and_refuse_unknown_names() {
        let mut app = parse_manifest(TOML_MANIFEST, Path::new("/apps")).unwrap();
        let overrides: Vec<InputOverride> = [
            "SOURCE_SQL_STREAM=/data/rides-2.jsonl",
            // A stream name, in lower case: the only input it can mean.
            "clicks_001=clicks.csv",
            "CITIES=s3://ref/cities.csv",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        apply_input_overrides(&mut app, &overrides).unwrap();
        assert_eq!(
            app.inputs[0].source,
            SourceSpec::File {
                path: PathBuf::from("/data/rides-2.jsonl"),
                skip_header_lines: 0
            }
        );
        // The generator input now reads the file.
        assert_eq!(
            app.inputs[1].source,
            SourceSpec::File {
                path: PathBuf::from("clicks.csv"),
                skip_header_lines: 0
            }
        );
        assert_eq!(app.references[0].location.to_string(), "s3://ref/cities.csv");

        let unknown: InputOverride = "RIDES=x.jsonl".parse().unwrap();
        let err = apply_input_overrides(&mut app, &[unknown]).unwrap_err().to_string();
        assert!(
            err.contains("no input or reference table named RIDES")
                && err.contains("its inputs: SOURCE_SQL_STREAM, CLICKS")
                && err.contains("its reference tables: Cities"),
            "{err}"
        );
        for bad in ["no-equals-sign", "=x.jsonl", "NAME="] {
            assert!(bad.parse::<InputOverride>().unwrap_err().contains("NAME=PATH"), "{bad}");
        }
    }

    #[test]
    fn an_unset_variable_in_a_path_names_the_variable_and_the_key() {
        const UNSET: &str = "SLUICE_TEST_SURELY_UNSET_VARIABLE";
        let with = |from: &str, to: &str| parse_manifest(&TOML_MANIFEST.replacen(from, to, 1), Path::new("/apps"));
        let cases = [
            ("path = \"rides.jsonl\"", "inputs[0] (SOURCE_SQL_STREAM).source: `path`"),
            ("path = \"cities.csv\"", "references[0] (Cities): `path`"),
            (
                "path = \"out/rides.csv\"",
                "outputs[0] (DESTINATION_SQL_STREAM).destination: `path`",
            ),
        ];
        for (from, key) in cases {
            let err = with(from, &format!("path = \"${{{UNSET}}}/x\""))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key) && err.contains(&format!("the environment variable {UNSET} is not set")),
                "{err}"
            );
        }
        // `$${` is a literal `${`, and a lone `$` is kept.
        let app = with("path = \"rides.jsonl\"", "path = \"$${x}/a$b.jsonl\"").unwrap();
        assert_eq!(
            app.inputs[0].source,
            SourceSpec::File {
                path: PathBuf::from("/apps/${x}/a$b.jsonl"),
                skip_header_lines: 0
            }
        );
    }

    #[test]
    fn an_overridden_path_need_not_have_its_variables_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            TOML_MANIFEST.replacen(
                "path = \"rides.jsonl\"",
                "path = \"${SLUICE_TEST_SURELY_UNSET_VARIABLE}/rides.jsonl\"",
                1,
            ),
        )
        .unwrap();
        assert!(load_manifest(&path).is_err());
        let o: InputOverride = "SOURCE_SQL_STREAM=/data/${weird}.jsonl".parse().unwrap();
        let app = load_manifest_with(&path, &[o]).unwrap();
        assert_eq!(
            app.inputs[0].source,
            SourceSpec::File {
                path: PathBuf::from("/data/${weird}.jsonl"),
                skip_header_lines: 0
            }
        );
    }
}
