//! The S3 sink against moto_server with the real SDK: applications run by
//! `sluice::engine::run` deliver to a bucket, and the objects are read back and parsed.
//! Buffering (size, interval while the input is idle, shutdown), prefix expressions and
//! Hive partitions, every format and compression, the error prefix and the parked file,
//! and exactly-once restarts that leave no duplicate rows.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::{Rng, SeedableRng};
use sluice::app::{AppSpec, DestinationSpec, OutputFormat, OutputSpec};
use sluice::connectors::s3::{Compression, ObjectFormat, S3SinkConfig};
use sluice::engine::{CheckpointOptions, Delivery, RunOptions, TimeMode};

use super::support::{client, connection, create_bucket, get, list_keys};

const SQL: &str = r#"
CREATE OR REPLACE STREAM "OUT" (K VARCHAR(16), V BIGINT, CITY VARCHAR(16));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT" SELECT STREAM K, V, CITY FROM "SOURCE_SQL_STREAM_001";
"#;

/// 2024-03-01 08:00:00 UTC.
const T0: i64 = 1_709_280_000_000;

/// One recorded input row: ROWTIME (ms), K, V, CITY.
type Row = (i64, String, i64, Option<&'static str>);

fn rows(n: usize, step_ms: i64) -> Vec<Row> {
    const CITIES: [&str; 3] = ["Lisbon", "Porto", "Faro"];
    (0..n)
        .map(|i| {
            (
                T0 + i as i64 * step_ms,
                format!("k{}", i % 7),
                i as i64,
                Some(CITIES[i % 3]),
            )
        })
        .collect()
}

fn line(row: &Row) -> String {
    let (t, k, v, city) = row;
    let data = serde_json::json!({ "k": k, "v": v, "city": city });
    format!(
        r#"{{"rowtime": "{}", "data": {data}}}"#,
        sluice::time::format_timestamp(*t)
    )
}

fn recording(rows: &[Row]) -> tempfile::NamedTempFile {
    crate::write_recording(&rows.iter().map(line).collect::<Vec<_>>())
}

/// The row as the JSON output writes it.
fn json(row: &Row) -> serde_json::Value {
    serde_json::json!({ "K": row.1, "V": row.2, "CITY": row.3 })
}

/// The application over `input` writing OUT to S3 with `config`, in `format`.
fn app(input: &Path, config: S3SinkConfig, format: OutputFormat) -> AppSpec {
    let mut app = crate::recorded_app(
        SQL,
        &[
            ("K", "VARCHAR(16)", "$.k"),
            ("V", "BIGINT", "$.v"),
            ("CITY", "VARCHAR(16)", "$.city"),
        ],
        input,
        &[],
    );
    app.outputs.push(OutputSpec {
        stream: "OUT".into(),
        format,
        destination: DestinationSpec::S3(config),
    });
    app
}

/// Firehose's defaults for `bucket` on the test server, parking in `dir`.
fn config(bucket: &str, dir: &Path) -> S3SinkConfig {
    let mut c = S3SinkConfig::new(connection(bucket), "OUT");
    c.parked_path = dir.join("parked.jsonl");
    c.max_attempts = 2;
    c
}

fn recorded() -> RunOptions {
    RunOptions::new(TimeMode::Recorded { flush_at: None })
}

async fn run(app: &AppSpec) {
    sluice::engine::run(app, recorded())
        .await
        .expect("the run ends cleanly");
}

/// Every object of `bucket`: key and body.
async fn objects(bucket: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for key in list_keys(bucket).await {
        let body = get(bucket, &key).await;
        out.push((key, body));
    }
    out
}

fn json_lines(body: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a GZIP body");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
    out
}

/// The sequence number in an at-least-once object name (`...-HH-mm-ss-SEQ-RANDOM.ext`).
fn sequence(key: &str) -> u64 {
    let name = key.rsplit('/').next().unwrap();
    let parts: Vec<&str> = name.split('-').collect();
    parts[parts.len() - 2]
        .parse()
        .unwrap_or_else(|_| panic!("no sequence in {key}"))
}

/// An object name's random part: 11 characters of [a-z0-9].
fn assert_random(s: &str) {
    assert_eq!(s.len(), 11, "{s}");
    assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_one_object_under_firehose_s_default_prefix_and_name() {
    let bucket = create_bucket("shutdown").await;
    let dir = tempfile::tempdir().unwrap();
    let input = rows(50, 1000);
    let file = recording(&input);
    run(&app(file.path(), config(&bucket, dir.path()), OutputFormat::Json)).await;

    let objects = objects(&bucket).await;
    assert_eq!(
        objects.len(),
        1,
        "5 MB and 300 s are not reached: one object at the end"
    );
    let (key, body) = &objects[0];
    let name = key
        .strip_prefix("2024/03/01/08/test-OUT-2024-03-01-08-00-00-1-")
        .expect(key);
    let random = name.strip_suffix(".json").expect(key);
    assert_random(random);
    let expected: Vec<serde_json::Value> = input.iter().map(json).collect();
    assert_eq!(json_lines(body), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buffer_size_splits_objects_at_row_boundaries() {
    let bucket = create_bucket("size").await;
    let dir = tempfile::tempdir().unwrap();
    let input = rows(300, 10);
    let file = recording(&input);
    let mut c = config(&bucket, dir.path());
    c.buffer_size_bytes = 1000;
    run(&app(file.path(), c, OutputFormat::Json)).await;

    let mut objects = objects(&bucket).await;
    objects.sort_by_key(|(key, _)| sequence(key));
    assert!(objects.len() > 10, "{} objects", objects.len());
    for (i, (key, body)) in objects.iter().enumerate() {
        assert!(body.len() <= 1000, "{key}: {} bytes", body.len());
        if let Some((_, next)) = objects.get(i + 1) {
            let next_row = next.iter().position(|b| *b == b'\n').unwrap() + 1;
            assert!(body.len() + next_row > 1000, "{key} was cut while the next row fitted");
        }
    }
    let all: Vec<serde_json::Value> = objects.iter().flat_map(|(_, b)| json_lines(b)).collect();
    assert_eq!(
        all,
        input.iter().map(json).collect::<Vec<_>>(),
        "every row once, in order"
    );
}

/// The input is a FIFO: after one batch of rows the application is running and idle (no
/// message reaches the sink), and only the interval's timer can write the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_writes_objects_while_the_input_is_idle() {
    let bucket = create_bucket("interval").await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut c = config(&bucket, dir.path());
    c.buffer_interval = Duration::from_millis(300);
    let spec = app(&fifo, c, OutputFormat::Json);
    let running = tokio::spawn(async move { sluice::engine::run(&spec, recorded()).await });

    // The file source publishes a full batch at once; the rest waits for more lines.
    let batch = sluice::connectors::source::BATCH_RECORDS;
    let input = rows(batch + 10, 5);
    let first: Vec<String> = input[..batch].iter().map(line).collect();
    let writer = tokio::task::spawn_blocking({
        let fifo = fifo.clone();
        move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            for l in &first {
                writeln!(f, "{l}").unwrap();
            }
            f.flush().unwrap();
            f
        }
    })
    .await
    .unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let keys = loop {
        let keys = list_keys(&bucket).await;
        if !keys.is_empty() {
            break keys;
        }
        assert!(std::time::Instant::now() < deadline, "no object within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!running.is_finished(), "the application is still running");
    let early: Vec<serde_json::Value> = objects(&bucket).await.iter().flat_map(|(_, b)| json_lines(b)).collect();
    assert_eq!(early.len(), batch, "the idle buffer was written whole: {keys:?}");

    let rest: Vec<String> = input[batch..].iter().map(line).collect();
    tokio::task::spawn_blocking(move || {
        let mut f = writer;
        for l in &rest {
            writeln!(f, "{l}").unwrap();
        }
    })
    .await
    .unwrap();
    running.await.unwrap().expect("the run ends at the end of the FIFO");
    let mut objects = objects(&bucket).await;
    objects.sort_by_key(|(key, _)| sequence(key));
    assert_eq!(objects.len(), 2, "the idle flush, then the shutdown flush");
    let all: Vec<serde_json::Value> = objects.iter().flat_map(|(_, b)| json_lines(b)).collect();
    assert_eq!(all, input.iter().map(json).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_expressions_use_the_oldest_row_and_partitions_make_hive_folders() {
    let bucket = create_bucket("prefix").await;
    let dir = tempfile::tempdir().unwrap();
    // Lisbon's rows start before midnight, São Paulo's after it, NULL's in between.
    let day_end = T0 + 16 * 3_600_000 - 500; // 2024-03-01 23:59:59.500
    let input: Vec<Row> = vec![
        (day_end, "a".into(), 1, Some("Lisbon")),
        (day_end + 100, "b".into(), 2, None),
        (day_end + 600, "c".into(), 3, Some("São Paulo")),
        (day_end + 700, "d".into(), 4, Some("Lisbon")),
        (day_end + 800, "e".into(), 5, Some("São Paulo")),
    ];
    let file = recording(&input);
    let mut c = config(&bucket, dir.path());
    c.prefix = "y=!{timestamp:yyyy}/m=!{timestamp:MM}/d=!{timestamp:dd}/h=!{timestamp:HH}/!{timestamp:mm-ss.SSS}/\
                r=!{firehose:random-string}/"
        .into();
    c.partition_by = vec!["city".into()];
    run(&app(file.path(), c, OutputFormat::Json)).await;

    let objects = objects(&bucket).await;
    assert_eq!(objects.len(), 3, "one object per partition");
    let mut by_folder = BTreeMap::new();
    for (key, body) in &objects {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 8, "{key}");
        assert_random(parts[5].strip_prefix("r=").expect(key));
        let folder = format!("{}/{}", parts[..5].join("/"), parts[6]);
        by_folder.insert(folder, (parts[7].to_string(), json_lines(body)));
    }
    let expect = |folder: &str, name_time: &str, keys: &[&str]| {
        let (name, rows) = by_folder
            .get(folder)
            .unwrap_or_else(|| panic!("no {folder} in {by_folder:?}"));
        assert!(name.starts_with(&format!("test-OUT-{name_time}-")), "{name}");
        let got: Vec<&str> = rows.iter().map(|r| r["K"].as_str().unwrap()).collect();
        assert_eq!(got, keys, "{folder}");
    };
    expect(
        "y=2024/m=03/d=01/h=23/59-59.500/CITY=Lisbon",
        "2024-03-01-23-59-59",
        &["a", "d"],
    );
    expect(
        "y=2024/m=03/d=01/h=23/59-59.600/CITY=__HIVE_DEFAULT_PARTITION__",
        "2024-03-01-23-59-59",
        &["b"],
    );
    expect(
        "y=2024/m=03/d=02/h=00/00-00.100/CITY=S%C3%A3o%20Paulo",
        "2024-03-02-00-00-00",
        &["c", "e"],
    );
}

/// Decodes an object's rows as (K, V) pairs, whatever its format.
async fn read_back(bucket: &str, key: &str, format: ObjectFormat, compression: Compression) -> Vec<(String, i64)> {
    let body = get(bucket, key).await;
    let text = || match compression {
        Compression::Gzip => gunzip(&body),
        _ => body.clone(),
    };
    match format {
        ObjectFormat::Json => json_lines(&text())
            .iter()
            .map(|r| (r["K"].as_str().unwrap().to_string(), r["V"].as_i64().unwrap()))
            .collect(),
        ObjectFormat::Csv => String::from_utf8(text())
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f.len(), 3, "{l}");
                (f[0].to_string(), f[1].parse().unwrap())
            })
            .collect(),
        ObjectFormat::Parquet => {
            let bytes = client()
                .await
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            assert_eq!(&bytes[..4], b"PAR1");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
            let codecs: Vec<String> = reader.metadata().row_groups()[0]
                .columns()
                .iter()
                .map(|c| format!("{:?}", c.compression()))
                .collect();
            let want = match compression {
                Compression::Snappy => "SNAPPY",
                Compression::Zstd => "ZSTD",
                _ => "UNCOMPRESSED",
            };
            assert!(
                codecs.iter().all(|c| c.starts_with(want)),
                "{codecs:?} for {compression:?}"
            );
            let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
            let mut out = Vec::new();
            for b in batches {
                let names: Vec<&str> = b.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
                assert_eq!(names, ["K", "V", "CITY"], "the declared columns, no ROWTIME");
                let (k, v) = (b.column(0).as_string::<i32>(), b.column(1).as_primitive::<Int64Type>());
                out.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), v.value(i))));
                assert!(!b.column(2).is_null(0));
            }
            out
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_compression_reads_back_as_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = rows(500, 20);
    let file = recording(&input);
    let expected: Vec<(String, i64)> = input.iter().map(|r| (r.1.clone(), r.2)).collect();
    let cases = [
        (OutputFormat::Json, None, Compression::Uncompressed, ".json"),
        (OutputFormat::Json, None, Compression::Gzip, ".json.gz"),
        (OutputFormat::Csv, None, Compression::Uncompressed, ".csv"),
        (OutputFormat::Csv, None, Compression::Gzip, ".csv.gz"),
        (
            OutputFormat::Json,
            Some(ObjectFormat::Parquet),
            Compression::Snappy,
            ".parquet",
        ),
        (
            OutputFormat::Json,
            Some(ObjectFormat::Parquet),
            Compression::Zstd,
            ".parquet",
        ),
        (
            OutputFormat::Csv,
            Some(ObjectFormat::Parquet),
            Compression::Uncompressed,
            ".parquet",
        ),
    ];
    for (output_format, format, compression, extension) in cases {
        let bucket = create_bucket("formats").await;
        let mut c = config(&bucket, dir.path());
        c.format = format;
        c.compression = compression;
        run(&app(file.path(), c, output_format)).await;
        let keys = list_keys(&bucket).await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(
            keys[0].ends_with(extension),
            "{} for {format:?} {compression:?}",
            keys[0]
        );
        let object_format = format.unwrap_or(ObjectFormat::from_output(output_format));
        let got = read_back(&bucket, &keys[0], object_format, compression).await;
        assert_eq!(got, expected, "{format:?} {compression:?}");
    }
}

/// An S3 endpoint in front of the test server that refuses every PutObject outside
/// `error/` with AccessDenied (as a bucket policy would) and passes the rest through.
async fn refusing_proxy() -> String {
    use axum::response::IntoResponse;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target = super::support::endpoint();
    let http = reqwest::Client::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let proxy = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (http, target) = (http.clone(), target.clone());
        async move {
            let (parts, body) = request.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            // Path-style: /BUCKET/KEY.
            let key = path.splitn(3, '/').nth(2).unwrap_or("");
            if parts.method == axum::http::Method::PUT && !key.starts_with("error/") {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                           <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
                return (
                    axum::http::StatusCode::FORBIDDEN,
                    [("content-type", "application/xml")],
                    xml,
                )
                    .into_response();
            }
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut forward = http.request(parts.method.clone(), format!("{target}{path}")).body(body);
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            let status = answer.status();
            let headers = answer.headers().clone();
            let mut response = axum::response::Response::new(axum::body::Body::from(answer.bytes().await.unwrap()));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
    });
    tokio::spawn(async move { axum::serve(listener, proxy).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_objects_go_under_the_error_prefix_with_the_reason() {
    let bucket = create_bucket("refused").await;
    let dir = tempfile::tempdir().unwrap();
    let input = rows(120, 1000);
    let file = recording(&input);
    let mut c = config(&bucket, dir.path());
    c.connection.endpoint = Some(refusing_proxy().await);
    c.buffer_size_bytes = 2000;
    run(&app(file.path(), c, OutputFormat::Json)).await;

    let objects = objects(&bucket).await;
    assert!(objects.len() > 1);
    let mut delivered = Vec::new();
    for (key, body) in &objects {
        assert!(
            key.starts_with("error/delivery-failed/2024/03/01/08/test-OUT-2024-03-01-"),
            "{key}"
        );
        assert!(key.ends_with(".json"), "{key}");
        for record in json_lines(body) {
            assert_eq!(record["errorCode"], "AccessDenied", "{record}");
            assert_eq!(record["attemptsMade"], 2, "{record}");
            assert!(
                record["key"].as_str().unwrap().starts_with("2024/03/01/08/test-OUT-"),
                "{record}"
            );
            let raw = base64::engine::general_purpose::STANDARD
                .decode(record["rawData"].as_str().unwrap())
                .unwrap();
            let row: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            delivered.push((record["arrivalTimestamp"].as_i64().unwrap(), row));
        }
    }
    delivered.sort_by_key(|(t, _)| *t);
    let expected: Vec<(i64, serde_json::Value)> = input.iter().map(|r| (r.0, json(r))).collect();
    assert_eq!(delivered, expected, "every row, once, with its ROWTIME");
    assert!(!dir.path().join("parked.jsonl").exists(), "nothing parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_parked_when_even_the_error_prefix_fails() {
    let dir = tempfile::tempdir().unwrap();
    let input = rows(40, 1000);
    let file = recording(&input);
    let mut c = config("no-such-bucket-for-sluice", dir.path());
    c.partition_by = vec!["CITY".into()];
    run(&app(file.path(), c, OutputFormat::Json)).await;

    let parked = std::fs::read_to_string(dir.path().join("parked.jsonl")).expect("a parked file");
    let mut got: Vec<serde_json::Value> = Vec::new();
    for line in parked.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["errorCode"], "NoSuchBucket", "{record}");
        assert_eq!(record["errorKeyErrorCode"], "NoSuchBucket", "{record}");
        assert_eq!(record["bucket"], "no-such-bucket-for-sluice");
        assert!(record["key"].as_str().unwrap().contains("/CITY="), "{record}");
        assert!(
            record["errorKey"]
                .as_str()
                .unwrap()
                .starts_with("error/delivery-failed/"),
            "{record}"
        );
        got.push(serde_json::from_str(record["data"].as_str().unwrap()).unwrap());
    }
    let mut expected: Vec<serde_json::Value> = input.iter().map(json).collect();
    let order = |v: &serde_json::Value| v["V"].as_i64().unwrap();
    got.sort_by_key(order);
    expected.sort_by_key(order);
    assert_eq!(got, expected, "every row parked once");
}

fn exactly_once(state: &Path) -> RunOptions {
    let mut o = recorded();
    o.checkpoints = Some(CheckpointOptions {
        state_dir: state.to_path_buf(),
        interval_ms: 15,
        fresh: false,
    });
    o.delivery = Delivery::ExactlyOnce;
    o
}

/// Every row line of every object, sorted.
async fn all_lines(bucket: &str) -> Vec<String> {
    let mut lines: Vec<String> = objects(bucket)
        .await
        .iter()
        .flat_map(|(_, body)| {
            String::from_utf8(body.clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// Runs of the application made by `spec` (for a bucket), killed at random moments and
/// restarted with one state folder until five kills, then run to the end. A chain that
/// finished before three kills, one of them after a checkpoint, is discarded and the next
/// starts in a new bucket. Returns the bucket, the kills and the restarts from a checkpoint.
async fn killed_chain(
    spec: &dyn Fn(&str) -> AppSpec,
    options: fn(&Path) -> RunOptions,
    name: &str,
    dir: &Path,
    seed: u64,
) -> (String, usize, usize) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let (mut bucket, mut kills, mut resumed) = (String::new(), 0, 0);
    for chain in 0..6u64 {
        bucket = create_bucket(name).await;
        // Versions show the objects a replay wrote again.
        let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
            .build();
        let enable = client().await.put_bucket_versioning().bucket(&bucket);
        enable.versioning_configuration(versioning).send().await.unwrap();
        let state = dir.join(format!("{name}-state-{chain}"));
        (kills, resumed) = (0, 0);
        let mut scale = 1u64;
        loop {
            let (app, options) = (spec(&bucket), options(&state));
            let run = tokio::spawn(async move { sluice::engine::run(&app, options).await });
            if kills < 5 {
                let delay = rng.random_range(50..400) * scale / (chain + 1);
                tokio::time::sleep(Duration::from_millis(delay.max(20))).await;
                if !run.is_finished() {
                    run.abort();
                    let _ = run.await;
                    kills += 1;
                    match sluice::state::CheckpointStore::open(&state).unwrap().latest().unwrap() {
                        Some(_) => resumed += 1,
                        None => scale = (scale * 2).min(16),
                    }
                    continue;
                }
            }
            run.await.unwrap().unwrap();
            break;
        }
        if kills >= 3 && resumed >= 1 {
            break;
        }
    }
    assert!(
        kills >= 3 && resumed >= 1,
        "{kills} kills, {resumed} restarts from a checkpoint"
    );
    (bucket, kills, resumed)
}

/// Runs killed at random moments and restarted with the same state folder leave exactly
/// the rows of an uninterrupted run in the bucket: a replayed epoch overwrites its
/// objects (same keys, same rows) instead of adding copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_restarts_replace_objects_instead_of_adding_copies() {
    let dir = tempfile::tempdir().unwrap();
    let input = rows(20_000, 3);
    let file = recording(&input);
    let spec = |bucket: &str| {
        let mut c = config(bucket, dir.path());
        c.buffer_size_bytes = 4000;
        app(file.path(), c, OutputFormat::Json)
    };
    let clean = create_bucket("eo-clean").await;
    sluice::engine::run(&spec(&clean), exactly_once(&dir.path().join("clean-state")))
        .await
        .unwrap();
    let expected = all_lines(&clean).await;
    assert_eq!(expected.len(), input.len());

    let (crashy, kills, resumed) = killed_chain(&spec, exactly_once, "eo-crashy", dir.path(), 3).await;
    let got = all_lines(&crashy).await;
    let ids: std::collections::BTreeSet<&str> = got
        .iter()
        .map(|l| l.rsplit_once(r#","ROW_ID":""#).expect(l).1)
        .collect();
    assert_eq!(ids.len(), got.len(), "no row twice");
    assert_eq!(got.len(), expected.len(), "after {kills} kills");
    assert!(
        got == expected,
        "the rows differ from the uninterrupted run's after {kills} kills"
    );
    let replaced = rewritten_objects_are_identical(&crashy).await;
    eprintln!("exactly-once S3: {kills} kills, {resumed} restarts from a checkpoint, {replaced} objects written again");
}

/// Every object written more than once (a replayed epoch) holds the same bytes each
/// time; returns how many there are.
async fn rewritten_objects_are_identical(bucket: &str) -> usize {
    let client = client().await;
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut page = client.list_object_versions().bucket(bucket).send().await.unwrap();
    loop {
        for v in page.versions() {
            versions
                .entry(v.key().unwrap().to_string())
                .or_default()
                .push(v.version_id().unwrap().to_string());
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        page = client
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(page.next_key_marker().map(str::to_string))
            .set_version_id_marker(page.next_version_id_marker().map(str::to_string))
            .send()
            .await
            .unwrap();
    }
    let mut replaced = 0;
    for (key, ids) in versions.iter().filter(|(_, ids)| ids.len() > 1) {
        replaced += 1;
        let mut bodies = Vec::new();
        for id in ids {
            let object = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .version_id(id)
                .send()
                .await
                .unwrap();
            bodies.push(object.body.collect().await.unwrap().into_bytes());
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "{key}: a replay wrote other rows"
        );
    }
    replaced
}

fn at_least_once(state: &Path) -> RunOptions {
    let mut o = exactly_once(state);
    o.delivery = Delivery::AtLeastOnce;
    o
}

/// At-least-once, the rows still buffered at a checkpoint are part of it. A run reads two
/// batches from a FIFO (the rows wait in the buffer: no size or interval is reached), a
/// checkpoint commits, and the run is killed before any object is written. The restart
/// reads the same input as a file, after the checkpointed lines: every row arrives,
/// once, so the buffered rows came back from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_checkpoints_keep_the_buffered_rows() {
    let bucket = create_bucket("buffered").await;
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&input_path)
            .status()
            .unwrap()
            .success()
    );
    let spec = app(&input_path, config(&bucket, dir.path()), OutputFormat::Json);
    let batch = sluice::connectors::source::BATCH_RECORDS;
    let input = rows(2 * batch + 100, 5);
    let lines: Vec<String> = input.iter().map(line).collect();

    let metrics = std::sync::Arc::new(sluice::runtime::metrics::Metrics::new("test"));
    let mut options = at_least_once(&dir.path().join("state"));
    options.metrics = Some(std::sync::Arc::clone(&metrics));
    let running = {
        let spec = spec.clone();
        tokio::spawn(async move { sluice::engine::run(&spec, options).await })
    };
    let first = lines[..2 * batch].to_vec();
    let writer = tokio::task::spawn_blocking({
        let path = input_path.clone();
        move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            for (i, l) in first.iter().enumerate() {
                writeln!(f, "{l}").unwrap();
                // A pause between the batches: a checkpoint is due when the second ends.
                if i + 1 == batch {
                    f.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            f.flush().unwrap();
            f
        }
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metrics.status().checkpoint.is_none() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
    let _ = running.await;
    drop(writer);
    assert!(
        list_keys(&bucket).await.is_empty(),
        "nothing was written before the kill"
    );

    std::fs::remove_file(&input_path).unwrap();
    std::fs::write(&input_path, lines.join("\n") + "\n").unwrap();
    sluice::engine::run(&spec, at_least_once(&dir.path().join("state")))
        .await
        .unwrap();
    let got: Vec<serde_json::Value> = objects(&bucket).await.iter().flat_map(|(_, b)| json_lines(b)).collect();
    assert_eq!(got, input.iter().map(json).collect::<Vec<_>>());
}
