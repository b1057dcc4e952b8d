//! `sluice bench s3-delivery`: how fast the S3 sink encodes and writes objects against an
//! S3 endpoint (moto, MinIO, or AWS through the standard chain). Ride events (six
//! columns and ROWTIME) are generated up front as Arrow batches of 4,096 rows, then
//! written through [`S3Sink`] as an output would write them: buffered to the size,
//! encoded, compressed and PUT one object at a time. The clock runs from the first row
//! to the last object written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, Float32Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};

use super::client::{S3Connection, client};
use super::config::{Compression, ObjectFormat, S3SinkConfig};
use super::sink::S3Sink;
use crate::app::OutputFormat;
use crate::error::{Result, SluiceError};

/// Where to write and how much.
#[derive(Debug, Clone)]
pub struct Options {
    pub connection: S3Connection,
    pub rows: u64,
    pub buffer_size_mb: u64,
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Figures {
    pub case: String,
    pub rows: u64,
    pub objects: u64,
    /// Bytes of the objects written.
    pub bytes: u64,
    pub seconds: f64,
}

impl Figures {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds
    }
}

/// A case is `FORMAT` or `FORMAT+COMPRESSION` (`JSON+GZIP`, `PARQUET+ZSTD`).
pub fn parse_case(text: &str) -> std::result::Result<(ObjectFormat, Compression), String> {
    let (format, compression) = text.split_once('+').unwrap_or((text, "UNCOMPRESSED"));
    Ok((ObjectFormat::parse(format)?, Compression::parse(compression)?))
}

/// Creates the bucket unless it is there already.
pub async fn ensure_bucket(connection: &S3Connection) -> Result<()> {
    let client = client(connection, 3).await;
    if client.head_bucket().bucket(&connection.bucket).send().await.is_ok() {
        return Ok(());
    }
    client
        .create_bucket()
        .bucket(&connection.bucket)
        .send()
        .await
        .map_err(|e| {
            SluiceError::runtime(format!(
                "creating bucket {}: {}",
                connection.bucket,
                super::client::error_code(&e)
            ))
        })?;
    Ok(())
}

/// Writes `options.rows` rows as `case` objects and times it.
pub async fn measure(options: &Options, case: &str) -> Result<Figures> {
    let (format, compression) = parse_case(case).map_err(SluiceError::config)?;
    let mut config = S3SinkConfig::new(options.connection.clone(), "RIDES");
    config.format = Some(format);
    config.compression = compression;
    config.buffer_size_bytes = (options.buffer_size_mb << 20) as usize;
    config.buffer_interval = Duration::from_secs(3600);
    config.prefix = format!(
        "bench/{}/!{{timestamp:yyyy/MM/dd/HH}}/",
        case.to_ascii_lowercase().replace('+', "-")
    );
    let mut sink = S3Sink::new(config, "s3-delivery", "RIDES", OutputFormat::Json, false, None)?;
    let batches = ride_batches(16);
    let started = Instant::now();
    let mut written = 0;
    for batch in batches.iter().cycle() {
        if written >= options.rows {
            break;
        }
        let batch = batch.slice(0, (options.rows - written).min(batch.num_rows() as u64) as usize);
        sink.add(&batch).await?;
        written += batch.num_rows() as u64;
    }
    sink.flush("shutdown").await?;
    let stats = sink.stats;
    if stats.rows != written {
        return Err(SluiceError::runtime(format!(
            "{} of {written} rows were written ({} under the error prefix, {} parked): see the log",
            stats.rows, stats.error_rows, stats.parked_rows
        )));
    }
    Ok(Figures {
        case: case.to_string(),
        rows: stats.rows,
        objects: stats.objects,
        bytes: stats.bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `count` batches of 4,096 ride events, ROWTIMEs 10 ms apart.
fn ride_batches(count: usize) -> Vec<RecordBatch> {
    const TYPES: [&str; 5] = ["REQUESTED", "ACCEPTED", "STARTED", "COMPLETED", "CANCELLATION"];
    const CITIES: [&str; 6] = ["Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Aveiro"];
    let schema = Arc::new(Schema::new(vec![
        Field::new("RIDE_ID", DataType::Utf8, true),
        Field::new("EVENT_TYPE", DataType::Utf8, true),
        Field::new("CITY", DataType::Utf8, true),
        Field::new("FARE", DataType::Float32, true),
        Field::new("DRIVER_ID", DataType::Int32, true),
        Field::new("EVENT_TIME", crate::types::TIMESTAMP_TYPE, true),
        Field::new("ROWTIME", crate::types::TIMESTAMP_TYPE, false),
    ]));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let start = 1_709_251_200_000i64;
    (0..count)
        .map(|b| {
            let n = 4096;
            let ids = (0..n).map(|i| format!("R{}", 100_000 + b * n + i));
            let times: Vec<i64> = (0..n).map(|i| start + ((b * n + i) * 10) as i64).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(ids)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|_| TYPES[rng.random_range(0..5)]),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|_| CITIES[rng.random_range(0..6)]),
                )),
                Arc::new(Float32Array::from_iter_values(
                    (0..n).map(|_| rng.random_range(4.0..60.0f32)),
                )),
                Arc::new(Int32Array::from_iter_values((0..n).map(|_| rng.random_range(1..500)))),
                Arc::new(TimestampMillisecondArray::from(times.clone())),
                Arc::new(TimestampMillisecondArray::from(times)),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).expect("columns match the schema")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse_and_the_rides_encode_in_every_format() {
        assert_eq!(parse_case("JSON"), Ok((ObjectFormat::Json, Compression::Uncompressed)));
        assert_eq!(
            parse_case("parquet+zstd"),
            Ok((ObjectFormat::Parquet, Compression::Zstd))
        );
        assert!(parse_case("XML").is_err());
        let batch = ride_batches(1).remove(0);
        for format in [ObjectFormat::Json, ObjectFormat::Csv, ObjectFormat::Parquet] {
            let rows = super::super::object::Rows::encode(format, batch.clone()).unwrap();
            assert_eq!(rows.len(), 4096);
            assert!(
                !super::super::object::body(format, Compression::Uncompressed, &rows)
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
