//! Errors of the engine and the rows of `error_stream`.
//!
//! Two kinds of failure exist and must never be confused: an application error
//! ([`SluiceError`]: bad SQL, bad configuration, an I/O failure) stops the application
//! with a clear message; a record error (a value that cannot be coerced, a division by
//! zero) becomes one row of `error_stream` while every other record keeps flowing.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::time::Millis;
use crate::types::{ROWTIME, TIMESTAMP_TYPE};

/// The name of the system stream that receives record errors.
pub const ERROR_STREAM: &str = "error_stream";

#[derive(Debug, thiserror::Error)]
pub enum SluiceError {
    /// A statement of the application code that does not parse or plan. Line and column
    /// are 1-based positions in the application code.
    #[error("SQL error at line {line}, column {column}: {message}")]
    Sql { line: u64, column: u64, message: String },
    /// A construct of the dialect that sluice parses but does not run yet.
    #[error("unsupported feature at line {line}, column {column}: {feature}")]
    Unsupported { line: u64, column: u64, feature: String },
    #[error("configuration error: {0}")]
    Config(String),
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = SluiceError> = std::result::Result<T, E>;

impl SluiceError {
    pub fn config(msg: impl Into<String>) -> Self {
        SluiceError::Config(msg.into())
    }
    pub fn runtime(msg: impl Into<String>) -> Self {
        SluiceError::Runtime(msg.into())
    }
}

/// One row of `error_stream`, with the documented columns (spec §5.6).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRow {
    pub error_time: Millis,
    /// `ERROR` for records lost to the application, `WARNING` for tolerated problems.
    pub level: &'static str,
    /// A short machine-readable name such as `CoercionError` or `DivideByZero`.
    pub name: String,
    pub message: String,
    /// The ROWTIME of the record or row that failed.
    pub data_rowtime: Millis,
    /// The failed record (input bytes) or row (its JSON rendering), hex-encoded.
    pub data_row: String,
    /// The pump that failed, or the input stream for ingest errors.
    pub pump_name: Option<String>,
}

impl ErrorRow {
    /// The hex encoding of `bytes` for `DATA_ROW`, cut to the column's documented size
    /// (VARCHAR(49152): the first [`DATA_ROW_MAX_BYTES`] bytes), so a huge bad record
    /// costs at most that much; [`ErrorRow::data_row_note`] says so in the message.
    pub fn hex(bytes: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = &bytes[..bytes.len().min(DATA_ROW_MAX_BYTES)];
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }
}

/// The most bytes of a failed record or row `DATA_ROW` holds: its VARCHAR(49152) in hex.
pub const DATA_ROW_MAX_BYTES: usize = 49152 / 2;

impl ErrorRow {
    /// The row for a raw record that failed where it came in (decoding, an input
    /// transform, a corrupt KPL aggregate): `DATA_ROW` is the record's bytes, hex-encoded
    /// and cut to the column's size, which the message then says. `source` is the input
    /// stream (`PUMP_NAME`). A row that failed inside the application is rendered first
    /// (`operators::eval::row_error`), then made a row here like a record.
    pub fn for_record(name: &str, message: String, data: &[u8], data_rowtime: Millis, source: &str) -> ErrorRow {
        ErrorRow {
            error_time: crate::time::now_millis(),
            level: "ERROR",
            name: name.to_string(),
            message: format!("{message}{}", ErrorRow::data_row_note(data.len())),
            data_rowtime,
            data_row: ErrorRow::hex(data),
            pump_name: Some(source.to_string()),
        }
    }

    /// What a message adds when `DATA_ROW` holds only the start of a record of `len` bytes.
    pub fn data_row_note(len: usize) -> String {
        if len > DATA_ROW_MAX_BYTES {
            format!(" (DATA_ROW holds the first {DATA_ROW_MAX_BYTES} of its {len} bytes)")
        } else {
            String::new()
        }
    }
}

/// Schema of `error_stream` rows as they travel (ROWTIME last, like every stream).
pub fn error_stream_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ERROR_TIME", TIMESTAMP_TYPE, true),
        Field::new("ERROR_LEVEL", DataType::Utf8, true),
        Field::new("ERROR_NAME", DataType::Utf8, true),
        Field::new("MESSAGE", DataType::Utf8, true),
        Field::new("DATA_ROWTIME", TIMESTAMP_TYPE, true),
        Field::new("DATA_ROW", DataType::Utf8, true),
        Field::new("PUMP_NAME", DataType::Utf8, true),
        Field::new(ROWTIME, TIMESTAMP_TYPE, false),
    ]))
}

/// Builds an `error_stream` batch. The ROWTIME of an error row is the ROWTIME of the
/// data that failed, so errors interleave deterministically with the data in tests.
pub fn error_rows_to_batch(rows: &[ErrorRow]) -> RecordBatch {
    let mut error_time = TimestampMillisecondBuilder::new();
    let mut level = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut message = StringBuilder::new();
    let mut data_rowtime = TimestampMillisecondBuilder::new();
    let mut data_row = StringBuilder::new();
    let mut pump = StringBuilder::new();
    let mut rowtime = TimestampMillisecondBuilder::new();
    for r in rows {
        error_time.append_value(r.error_time);
        level.append_value(r.level);
        name.append_value(&r.name);
        message.append_value(&r.message);
        data_rowtime.append_value(r.data_rowtime);
        data_row.append_value(&r.data_row);
        pump.append_option(r.pump_name.as_deref());
        rowtime.append_value(r.data_rowtime);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(error_time.finish()),
        Arc::new(level.finish()),
        Arc::new(name.finish()),
        Arc::new(message.finish()),
        Arc::new(data_rowtime.finish()),
        Arc::new(data_row.finish()),
        Arc::new(pump.finish()),
        Arc::new(rowtime.finish()),
    ];
    RecordBatch::try_new(error_stream_schema(), columns).expect("error_stream columns match their schema")
}

#[cfg(test)]
mod tests {
    /// Every error row's DATA_ROW is the README's contract: the bytes, hex-encoded, cut to
    /// VARCHAR(49152), and the message says when it was cut.
    #[test]
    fn a_record_error_row_hex_encodes_and_cuts_its_data() {
        let row = super::ErrorRow::for_record("ParseError", "S: bad".into(), b"{\"a\"", 7, "S");
        assert_eq!(
            (row.data_row.as_str(), row.data_rowtime, row.pump_name.as_deref()),
            ("7b226122", 7, Some("S"))
        );
        assert_eq!(
            (row.level, row.name.as_str(), row.message.as_str()),
            ("ERROR", "ParseError", "S: bad")
        );
        let big = vec![b'x'; super::DATA_ROW_MAX_BYTES + 10];
        let row = super::ErrorRow::for_record("ParseError", "S: bad".into(), &big, 7, "S");
        assert_eq!(row.data_row.len(), 49152);
        assert!(
            row.message.ends_with(&format!(
                "the first {} of its {} bytes)",
                super::DATA_ROW_MAX_BYTES,
                big.len()
            )),
            "{}",
            row.message
        );
    }

    use super::*;

    #[test]
    fn data_row_holds_at_most_its_documented_size_and_the_message_says_so() {
        let record = vec![0xabu8; 10 * 1024 * 1024];
        let hex = ErrorRow::hex(&record);
        assert_eq!(hex.len(), 49152);
        assert!(hex.bytes().all(|b| b == b'a' || b == b'b'));
        assert_eq!(
            ErrorRow::data_row_note(record.len()),
            " (DATA_ROW holds the first 24576 of its 10485760 bytes)"
        );
        assert_eq!(ErrorRow::hex(b"hi"), "6869");
        assert_eq!(ErrorRow::data_row_note(2), "");
    }
}
