//! The application model: what `sluice run` and `sluice test` execute.
//!
//! Both the manifest (TOML, or a `describe-application` JSON document) and a conformance
//! case load into an [`AppSpec`]; the runtime never sees either file format.

use std::path::PathBuf;

use crate::types::ColumnDef;

#[derive(Debug, Clone)]
pub struct AppSpec {
    pub name: String,
    /// The application code, verbatim.
    pub sql: String,
    pub inputs: Vec<InputSpec>,
    pub references: Vec<ReferenceSpec>,
    pub outputs: Vec<OutputSpec>,
}

/// One column of an input or reference schema: KDA's RecordColumn.
#[derive(Debug, Clone)]
pub struct RecordColumn {
    pub column: ColumnDef,
    /// JSONPath for JSON records (`$.a.b`, `$.arr[0:].x`); None for CSV (positional).
    pub mapping: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordFormat {
    /// `row_path` is KDA's RecordRowPath (usually `$`).
    Json { row_path: String },
    Csv {
        row_delimiter: String,
        column_delimiter: String,
    },
}

#[derive(Debug, Clone)]
pub struct RecordSchema {
    pub columns: Vec<RecordColumn>,
    pub format: RecordFormat,
}

impl RecordSchema {
    pub fn column_defs(&self) -> Vec<ColumnDef> {
        self.columns.iter().map(|c| c.column.clone()).collect()
    }
}

#[derive(Debug, Clone)]
pub struct InputSpec {
    /// KDA's NamePrefix: the input creates `<prefix>_001` .. `<prefix>_00N`.
    pub name_prefix: String,
    /// When set, the exact in-application stream name (conformance cases name it).
    pub stream_name: Option<String>,
    pub parallelism: u32,
    pub schema: RecordSchema,
    pub source: SourceSpec,
    /// When set, ROWTIME comes from the data (a column, or the arrival time) and a
    /// watermark orders the rows instead of the ingest clock.
    pub event_time: Option<EventTimeSpec>,
    /// KDA's input preprocessor: an HTTP transform called on batches of raw records
    /// before schema mapping (`crate::connectors::http::preprocess`).
    pub preprocessor: Option<crate::connectors::http::PreprocessorSpec>,
}

/// Event time of an input: which column is ROWTIME, how late a row may be, and where
/// rows later than that go.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTimeSpec {
    /// An input column (TIMESTAMP, or BIGINT epoch milliseconds), or
    /// `APPROXIMATE_ARRIVAL_TIME`.
    pub column: String,
    /// The bounded out-of-orderness: the watermark trails the newest event time seen
    /// (per shard, for Kinesis) by this much.
    pub max_delay_ms: i64,
    /// After this long without records, the watermark follows the wall clock, so
    /// windows still close when the input goes quiet. None: it waits for data.
    pub idle_timeout_ms: Option<u64>,
    /// The in-application stream late rows go to (same columns as the input; ROWTIME
    /// is the watermark that found them late). None: late rows go to `error_stream`.
    pub late_stream: Option<String>,
}

impl InputSpec {
    /// The in-application streams this input creates, in order.
    pub fn stream_names(&self) -> Vec<String> {
        if let Some(name) = &self.stream_name {
            return vec![name.clone()];
        }
        (1..=self.parallelism.max(1))
            .map(|i| format!("{}_{:03}", self.name_prefix, i))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// Newline-delimited records read from a file.
    File {
        path: PathBuf,
        /// Lines at the start that are no records (a CSV header line).
        skip_header_lines: u64,
    },
    /// A recording in the conformance format: one JSON object per line with `rowtime`,
    /// optional `arrival`, and `data`. ROWTIMEs come from the recording.
    Recorded {
        path: PathBuf,
        /// Recorded records at the start to skip (a CSV header recorded as a record).
        skip_header_lines: u64,
    },
    Stdin,
    /// The built-in ride-events generator.
    Generator {
        rate: u64,
        seed: u64,
        limit: Option<u64>,
    },
    /// Records sent from Rust code (`connectors::channel::channel`); no manifest form.
    Channel(crate::connectors::channel::ChannelInput),
    /// A Kinesis data stream, read shard by shard.
    Kinesis(crate::connectors::kinesis::KinesisSourceConfig),
    /// A source this build cannot read yet, kept to report it clearly.
    Unsupported {
        kind: String,
        detail: String,
    },
}

#[derive(Debug, Clone)]
pub struct ReferenceSpec {
    pub table: String,
    pub schema: RecordSchema,
    pub location: ReferenceLocation,
    pub skip_header_lines: usize,
    /// Reload the table this often while the application runs (None: only on demand,
    /// `POST /references/{TABLE}/refresh`).
    pub refresh_interval: Option<std::time::Duration>,
}

/// Where a reference table's rows are read from (at start and on every refresh).
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceLocation {
    /// A local file.
    File(PathBuf),
    /// An S3 object (KDA's S3ReferenceDataSource): `key` in `connection.bucket`.
    S3 {
        connection: crate::connectors::s3::S3Connection,
        key: String,
    },
}

impl std::fmt::Display for ReferenceLocation {
    /// The file's path, or `s3://bucket/key`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReferenceLocation::File(path) => write!(f, "{}", path.display()),
            ReferenceLocation::S3 { connection, key } => write!(f, "s3://{}/{key}", connection.bucket),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Csv,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DestinationSpec {
    Stdout,
    File {
        path: PathBuf,
    },
    /// Rows kept in memory and handed back to the caller (conformance runner, embedding).
    Collect,
    /// A Kinesis data stream, by PutRecords.
    Kinesis(crate::connectors::kinesis::KinesisSinkConfig),
    /// Objects in an S3 bucket, as Firehose delivered them (buffering, prefixes, formats).
    S3(crate::connectors::s3::S3SinkConfig),
    /// An HTTP endpoint with the contract of a KDA Lambda output (a callback).
    Http(crate::connectors::http::HttpSinkConfig),
    Unsupported {
        kind: String,
        detail: String,
    },
}

#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// The in-application stream delivered, exact (case-sensitive) name.
    pub stream: String,
    pub format: OutputFormat,
    pub destination: DestinationSpec,
}
