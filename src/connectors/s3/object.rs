//! Object bodies: rows as JSON lines or CSV (the encoders every text sink uses) or
//! Parquet (arrow's `ArrowWriter`), compressed; and the error records of rows that could
//! not be delivered.
//!
//! Rows travel as [`Rows`]: the Arrow rows plus each row's text line. The text is what
//! Firehose would have buffered (KDA delivered JSON or CSV records), so the buffer size
//! counts it, for Parquet objects too (JSON lines there, as Firehose counts the incoming
//! JSON records before converting them), and error records quote it.

use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, min, take_record_batch};
use datafusion::arrow::datatypes::{Schema, TimestampMillisecondType};

use super::config::{Compression, ObjectFormat};
use crate::connectors::formats::encode::{encode_csv, encode_json_lines};
use crate::error::{Result, SluiceError};
use crate::time::Millis;
use crate::types::ROWTIME;

/// Rows on their way into objects.
#[derive(Debug, Clone)]
pub struct Rows {
    /// As the sink received them: declared columns (and `ROW_ID` in exactly-once mode),
    /// then ROWTIME.
    pub batch: RecordBatch,
    /// Each row's line (JSON, or CSV for CSV objects), newline-terminated.
    pub text: Vec<u8>,
    /// Where each row's line ends in `text`.
    pub ends: Vec<usize>,
}

impl Rows {
    pub fn encode(format: ObjectFormat, batch: RecordBatch) -> Result<Rows> {
        let mut text = Vec::new();
        match format {
            ObjectFormat::Csv => encode_csv(&batch, ",", false, &mut text)?,
            ObjectFormat::Json | ObjectFormat::Parquet => encode_json_lines(&batch, false, &mut text)?,
        }
        let ends = line_ends(&text, format == ObjectFormat::Csv);
        if ends.len() != batch.num_rows() {
            return Err(SluiceError::runtime(format!(
                "S3 output: {} rows encoded as {} lines",
                batch.num_rows(),
                ends.len()
            )));
        }
        Ok(Rows { batch, text, ends })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&self, row: usize) -> usize {
        if row == 0 { 0 } else { self.ends[row - 1] }
    }

    /// Bytes of row `row`'s line.
    pub fn size(&self, row: usize) -> usize {
        self.ends[row] - self.start(row)
    }

    pub fn line(&self, row: usize) -> &[u8] {
        &self.text[self.start(row)..self.ends[row]]
    }

    /// Rows `from..to`.
    pub fn slice(&self, from: usize, to: usize) -> Rows {
        let base = self.start(from);
        Rows {
            batch: self.batch.slice(from, to - from),
            text: self.text[base..self.start(to)].to_vec(),
            ends: self.ends[from..to].iter().map(|e| e - base).collect(),
        }
    }

    /// The rows of `parts`, in order (all of one schema).
    pub fn concat(parts: Vec<Rows>) -> Result<Rows> {
        let schema = parts
            .first()
            .map(|p| p.batch.schema())
            .ok_or_else(|| SluiceError::runtime("S3 output: no rows to concatenate"))?;
        let batch = concat_batches(&schema, parts.iter().map(|p| &p.batch))?;
        let mut text = Vec::with_capacity(parts.iter().map(|p| p.text.len()).sum());
        let mut ends = Vec::with_capacity(batch.num_rows());
        for part in parts {
            let base = text.len();
            ends.extend(part.ends.iter().map(|e| e + base));
            text.extend_from_slice(&part.text);
        }
        Ok(Rows { batch, text, ends })
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Result<Rows> {
        let positions = UInt32Array::from_iter_values(indices.iter().map(|&i| i as u32));
        let batch = take_record_batch(&self.batch, &positions)?;
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(indices.len());
        for &i in indices {
            text.extend_from_slice(self.line(i));
            ends.push(text.len());
        }
        Ok(Rows { batch, text, ends })
    }

    /// The ROWTIME of the oldest row (the time of an object's prefix and name).
    pub fn oldest(&self) -> Millis {
        let last = self.batch.num_columns().saturating_sub(1);
        self.batch
            .column(last)
            .as_primitive_opt::<TimestampMillisecondType>()
            .and_then(min)
            .unwrap_or_else(crate::time::now_millis)
    }
}

/// Where each line ends. CSV quotes values that hold a line break, so a newline ends a
/// row only outside quotes (an escaped quote `""` toggles twice).
fn line_ends(text: &[u8], csv: bool) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut quoted = false;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'"' if csv => quoted = !quoted,
            b'\n' if !quoted => ends.push(i + 1),
            _ => {}
        }
    }
    ends
}

/// The object's body: the rows in `format`, compressed.
pub fn body(format: ObjectFormat, compression: Compression, rows: &Rows) -> Result<Vec<u8>> {
    match (format, compression) {
        (ObjectFormat::Parquet, _) => parquet(&rows.batch, compression),
        (_, Compression::Gzip) => gzip(&rows.text),
        _ => Ok(rows.text.clone()),
    }
}

/// The name's extension: the format's, then `.gz` for GZIP.
pub fn extension(format: ObjectFormat, compression: Compression) -> &'static str {
    match (format, compression) {
        (ObjectFormat::Parquet, _) => ".parquet",
        (ObjectFormat::Json, Compression::Gzip) => ".json.gz",
        (ObjectFormat::Csv, Compression::Gzip) => ".csv.gz",
        (ObjectFormat::Json, _) => ".json",
        (ObjectFormat::Csv, _) => ".csv",
    }
}

pub fn content_type(format: ObjectFormat) -> &'static str {
    match format {
        ObjectFormat::Json => "application/x-ndjson",
        ObjectFormat::Csv => "text/csv",
        ObjectFormat::Parquet => "application/vnd.apache.parquet",
    }
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let failed = |e: std::io::Error| SluiceError::runtime(format!("compressing an S3 object: {e}"));
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::default());
    encoder.write_all(bytes).map_err(failed)?;
    encoder.finish().map_err(failed)
}

/// One Parquet file of the rows' declared columns (ROWTIME is not an output column, as
/// in JSON and CSV objects), one row group.
fn parquet(batch: &RecordBatch, compression: Compression) -> Result<Vec<u8>> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression as Codec, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    let batch = without_rowtime(batch)?;
    let codec = match compression {
        Compression::Snappy => Codec::SNAPPY,
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
        Compression::Uncompressed | Compression::Gzip => Codec::UNCOMPRESSED,
    };
    let properties = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(batch.num_rows().max(1)))
        .build();
    let failed = |e: parquet::errors::ParquetError| SluiceError::runtime(format!("writing Parquet: {e}"));
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).map_err(failed)?;
    writer.write(&batch).map_err(failed)?;
    writer.into_inner().map_err(failed)
}

fn without_rowtime(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let n = batch.num_columns();
    if n == 0 || !schema.field(n - 1).name().eq_ignore_ascii_case(ROWTIME) {
        return Ok(batch.clone());
    }
    let fields: Vec<_> = schema.fields().iter().take(n - 1).cloned().collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        batch.columns()[..n - 1].to_vec(),
    )?)
}

/// Why rows are under the error prefix, as Firehose's error records say it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `!{firehose:error-output-type}`: `delivery-failed` (S3 refused the object after
    /// every attempt) or `format-conversion-failed` (the rows could not be encoded).
    pub output_type: &'static str,
    pub code: String,
    pub message: String,
    pub attempts: u32,
}

/// One JSON line per row, in the shape of Firehose's error records: attempts, the row's
/// ROWTIME as `arrivalTimestamp`, the error, and the row's line base64-encoded as
/// `rawData`; `key` is where the row was meant to go.
pub fn error_records(rows: &Rows, failure: &Failure, key: &str) -> Vec<u8> {
    let now = crate::time::now_millis();
    let rowtimes = rows
        .batch
        .column(rows.batch.num_columns().saturating_sub(1))
        .as_primitive_opt::<TimestampMillisecondType>()
        .cloned();
    let mut out = Vec::new();
    for row in 0..rows.len() {
        let record = serde_json::json!({
            "attemptsMade": failure.attempts,
            "arrivalTimestamp": rowtimes.as_ref().filter(|t| t.is_valid(row)).map(|t| t.value(row)),
            "errorCode": failure.code,
            "errorMessage": failure.message,
            "attemptEndingTimestamp": now,
            "rawData": base64::engine::general_purpose::STANDARD.encode(rows.line(row)),
            "key": key,
        });
        out.extend_from_slice(record.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::io::Read;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("K", DataType::Utf8, true),
            Field::new("V", DataType::Int64, true),
            Field::new("X", DataType::Float64, true),
            Field::new("ROWTIME", crate::types::TIMESTAMP_TYPE, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), Some("two\nlines, \"quoted\""), None])),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(Float64Array::from(vec![0.5, 1.25, -2.0])),
                Arc::new(TimestampMillisecondArray::from(vec![3000, 1000, 2000])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_and_csv_lines_split_per_row_even_with_line_breaks_in_values() {
        let json = Rows::encode(ObjectFormat::Json, batch()).unwrap();
        assert_eq!(json.len(), 3);
        assert_eq!(json.line(0), b"{\"K\":\"a\",\"V\":1,\"X\":0.5}\n");
        let csv = Rows::encode(ObjectFormat::Csv, batch()).unwrap();
        assert_eq!(csv.len(), 3);
        assert_eq!(csv.line(1), b"\"two\nlines, \"\"quoted\"\"\",,1.25\n");
        assert_eq!(csv.line(2), b",3,-2\n");
        let taken = csv.take(&[2, 0]).unwrap();
        assert_eq!(taken.text, b",3,-2\na,1,0.5\n");
        assert_eq!(taken.batch.num_rows(), 2);
        let sliced = csv.slice(1, 3);
        assert_eq!(sliced.ends, vec![csv.size(1), csv.size(1) + csv.size(2)]);
        let joined = Rows::concat(vec![csv.slice(0, 1), sliced]).unwrap();
        assert_eq!(joined.text, csv.text);
        assert_eq!(joined.ends, csv.ends);
        assert_eq!(csv.oldest(), 1000, "the oldest ROWTIME, not the first row's");
    }

    #[test]
    fn gzip_bodies_decompress_to_the_lines() {
        let rows = Rows::encode(ObjectFormat::Json, batch()).unwrap();
        let body = body(ObjectFormat::Json, Compression::Gzip, &rows).unwrap();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut text).unwrap();
        assert_eq!(text, rows.text);
        assert_eq!(extension(ObjectFormat::Json, Compression::Gzip), ".json.gz");
        assert_eq!(extension(ObjectFormat::Csv, Compression::Uncompressed), ".csv");
    }

    #[test]
    fn parquet_bodies_hold_the_declared_columns_with_each_codec() {
        let rows = Rows::encode(ObjectFormat::Parquet, batch()).unwrap();
        for codec in [Compression::Snappy, Compression::Zstd, Compression::Uncompressed] {
            let body = body(ObjectFormat::Parquet, codec, &rows).unwrap();
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&body).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
            let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
            let read = concat_batches(&read[0].schema(), &read).unwrap();
            assert_eq!(read.num_columns(), 3, "no ROWTIME");
            assert_eq!(read.schema().field(0).name(), "K");
            assert_eq!(
                read.column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(2),
                3
            );
            assert!(read.column(1).is_null(1));
            assert_eq!(read.column(0).as_string::<i32>().value(1), "two\nlines, \"quoted\"");
        }
    }

    #[test]
    fn error_records_carry_the_reason_and_the_row() {
        let rows = Rows::encode(ObjectFormat::Json, batch()).unwrap();
        let failure = Failure {
            output_type: "delivery-failed",
            code: "AccessDenied".into(),
            message: "denied".into(),
            attempts: 3,
        };
        let text = String::from_utf8(error_records(&rows, &failure, "k")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["errorCode"], "AccessDenied");
        assert_eq!(first["attemptsMade"], 3);
        assert_eq!(first["arrivalTimestamp"], 3000);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(first["rawData"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw, rows.line(0));
        assert_eq!(text.lines().count(), 3);
    }
}
