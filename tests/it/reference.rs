//! Reference tables from S3 (moto_server) and files, and refreshing them while the
//! application runs: on an interval, and on demand through `POST
//! /references/{TABLE}/refresh`. A refresh is atomic: every output row is consistent
//! with exactly one version of the table, and versions only go forward.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice::app::{
    AppSpec, DestinationSpec, RecordColumn, RecordFormat, RecordSchema, ReferenceLocation, ReferenceSpec, SourceSpec,
};
use sluice::engine::{RunOptions, TimeMode};
use sluice::runtime::metrics::Metrics;
use sluice::testing::{Row, Value, batches_to_rows};
use sluice::types::{ColumnDef, SqlType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::s3::support::{connection, create_bucket, put};

/// The generator's cities.
const CITIES: [&str; 6] = ["Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Aveiro"];

fn columns(cols: &[(&str, &str, Option<&str>)]) -> Vec<RecordColumn> {
    cols.iter()
        .map(|(n, t, m)| RecordColumn {
            column: ColumnDef::new(*n, SqlType::parse(t).unwrap()),
            mapping: m.map(str::to_string),
        })
        .collect()
}

fn csv() -> RecordFormat {
    RecordFormat::Csv {
        row_delimiter: "\n".into(),
        column_delimiter: ",".into(),
    }
}

/// Table `table` (CITY, TAG) as CSV at `location`, one header line.
fn tag_table(table: &str, location: ReferenceLocation, refresh_interval: Option<Duration>) -> ReferenceSpec {
    ReferenceSpec {
        table: table.into(),
        schema: RecordSchema {
            columns: columns(&[("CITY", "VARCHAR(16)", None), ("TAG", "VARCHAR(32)", None)]),
            format: csv(),
        },
        location,
        skip_header_lines: 1,
        refresh_interval,
    }
}

/// The CSV of version `v` of a tag table: `CITY,vV:CITY` for each of `cities`.
fn tag_csv(v: u32, cities: &[&str]) -> String {
    let mut text = "CITY,TAG\n".to_string();
    for c in cities {
        text.push_str(&format!("{c},v{v}:{c}\n"));
    }
    text
}

/// The built-in generator at `rate` records per second (ROWTIME is the clock), its
/// rows LEFT JOINed to the tag table `T`, into the collected stream `OUT`.
fn generator_app(name: &str, rate: u64, reference: ReferenceSpec) -> AppSpec {
    let sql = r#"
CREATE OR REPLACE STREAM "OUT" (RIDE VARCHAR(16), CITY VARCHAR(16), TAG VARCHAR(32));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
  SELECT STREAM s.RIDE_ID, s.CITY, t.TAG
  FROM "SOURCE_SQL_STREAM_001" AS s LEFT JOIN "T" AS t ON s.CITY = t.CITY;
"#;
    let columns = [
        ("RIDE_ID", "VARCHAR(16)", "$.ride_id"),
        ("CITY", "VARCHAR(16)", "$.city"),
    ];
    let mut app = crate::recorded_app(sql, &columns, Path::new("unused"), &["OUT"]);
    app.name = name.into();
    app.inputs[0].source = SourceSpec::Generator {
        rate,
        seed: 7,
        limit: None,
    };
    app.references = vec![reference];
    app
}

fn wall_clock() -> RunOptions {
    RunOptions::new(TimeMode::WallClock { bound_interval_ms: 100 })
}

/// A running application: its handle and its HTTP endpoint.
struct Running {
    app: sluice::engine::RunningApp,
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

async fn start(app: &AppSpec) -> Running {
    let app = sluice::engine::start(app, wall_clock()).await.unwrap();
    let (addr, server) = sluice::server::serve("127.0.0.1:0".parse().unwrap(), app.handle().clone())
        .await
        .unwrap();
    Running {
        metrics: Arc::clone(app.metrics()),
        app,
        addr,
        server,
    }
}

impl Running {
    /// Waits until `more` rows beyond the current count have been delivered.
    async fn wait_rows(&self, more: u64) {
        let target = self.metrics.rows_out.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.metrics.rows_out.load(Ordering::Relaxed) < target {
            assert!(!self.app.is_finished(), "the run ended early");
            assert!(Instant::now() < deadline, "{more} more rows did not arrive within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the run and returns the rows of `OUT`, in delivery order.
    async fn finish(self) -> Vec<Row> {
        self.app.stop();
        let mut out = self.app.wait().await.expect("the run ends cleanly");
        self.server.abort();
        batches_to_rows(&out.streams.remove("OUT").unwrap_or_default()).1
    }
}

/// One plain HTTP/1.1 request; the status and the JSON body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}")),
    )
}

fn text<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    match sluice::testing::compare::get(row, column) {
        Some(Value::Str(s)) => Some(s),
        Some(Value::Null) => None,
        other => panic!("{column}: {other:?} in {row:?}"),
    }
}

fn rowtime(row: &Row) -> i64 {
    match sluice::testing::compare::get(row, "ROWTIME") {
        Some(Value::Timestamp(ms)) => *ms,
        other => panic!("ROWTIME: {other:?}"),
    }
}

/// The versions (1-based indices into `versions`, the cities of each) an output row is
/// consistent with: its TAG is `vN:CITY` when version N has the city, NULL when not.
fn consistent_versions(row: &Row, versions: &[&[&str]]) -> Vec<usize> {
    let city = text(row, "CITY").expect("every generated ride has a city");
    let tag = text(row, "TAG");
    (1..=versions.len())
        .filter(|&v| match tag {
            Some(tag) => versions[v - 1].contains(&city) && tag == format!("v{v}:{city}"),
            None => !versions[v - 1].contains(&city),
        })
        .collect()
}

/// Checks that every row is consistent with one version and that versions only go
/// forward in delivery order; returns the version each row was joined with (the
/// earliest that fits the order) and how many rows each version saw.
fn check_versions(rows: &[Row], versions: &[&[&str]]) -> (Vec<usize>, Vec<usize>) {
    let mut at = 1;
    let mut per_row = Vec::with_capacity(rows.len());
    let mut counts = vec![0; versions.len() + 1];
    for (i, row) in rows.iter().enumerate() {
        let fits = consistent_versions(row, versions);
        assert!(!fits.is_empty(), "row {i} matches no version of the table: {row:?}");
        let v = *fits
            .iter()
            .find(|&&v| v >= at)
            .unwrap_or_else(|| panic!("row {i} joined with an older version {fits:?} after version {at}: {row:?}"));
        at = v;
        per_row.push(v);
        counts[v] += 1;
    }
    (per_row, counts)
}

/// The value of the series `name{app="APP",table="T"}` in the registry.
fn series(app: &str, name: &str) -> Option<f64> {
    let text = sluice::runtime::metrics::registry().render();
    let prefix = format!(r#"{name}{{app="{app}",table="T"}} "#);
    text.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_csv_and_json_tables_enrich_a_stream_with_join_and_left_join() {
    let bucket = create_bucket("ref-load").await;
    // CSV with a header line; the row for Faro has a bad population and is left out.
    put(
        &bucket,
        "tables/cities.csv",
        "CITY,REGION,POP\nLisbon,South,545\nPorto,North,232\nFaro,South,many\n",
    )
    .await;
    // JSON, one document per line, after two header lines to skip.
    put(
        &bucket,
        "tables/airports.json",
        "# airports\n# generated\n{\"city\":\"Lisbon\",\"iata\":\"LIS\"}\n{\"city\":\"Faro\",\"iata\":\"FAO\"}\n",
    )
    .await;
    let lines: Vec<String> = [("R1", "Lisbon"), ("R2", "Faro"), ("R3", "Porto"), ("R4", "Braga")]
        .iter()
        .enumerate()
        .map(|(i, (ride, city))| {
            format!(r#"{{"rowtime": "2026-01-01 00:00:0{i}.000", "data": {{"ride_id": "{ride}", "city": "{city}"}}}}"#)
        })
        .collect();
    let recording = crate::write_recording(&lines);
    let mut app = crate::recorded_app(
        r#"
CREATE OR REPLACE STREAM "REGIONS" (RIDE VARCHAR(16), REGION VARCHAR(8), POP INTEGER);
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "REGIONS"
  SELECT STREAM s.RIDE_ID, c.REGION, c.POP FROM "SOURCE_SQL_STREAM_001" AS s JOIN "CITIES" AS c ON s.CITY = c.CITY;
CREATE OR REPLACE STREAM "AIRPORTS" (RIDE VARCHAR(16), IATA VARCHAR(3));
CREATE OR REPLACE PUMP "P2" AS INSERT INTO "AIRPORTS"
  SELECT STREAM s.RIDE_ID, a."Iata" FROM "SOURCE_SQL_STREAM_001" AS s LEFT JOIN "Airports" AS a ON s.CITY = a."City";
"#,
        &[
            ("RIDE_ID", "VARCHAR(16)", "$.ride_id"),
            ("CITY", "VARCHAR(16)", "$.city"),
        ],
        recording.path(),
        &["REGIONS", "AIRPORTS"],
    );
    app.references = vec![
        ReferenceSpec {
            table: "CITIES".into(),
            schema: RecordSchema {
                columns: columns(&[
                    ("CITY", "VARCHAR(16)", None),
                    ("REGION", "VARCHAR(8)", None),
                    ("POP", "INTEGER", None),
                ]),
                format: csv(),
            },
            location: ReferenceLocation::S3 {
                connection: connection(&bucket),
                key: "tables/cities.csv".into(),
            },
            skip_header_lines: 1,
            refresh_interval: None,
        },
        ReferenceSpec {
            table: "Airports".into(),
            schema: RecordSchema {
                columns: columns(&[
                    ("City", "VARCHAR(16)", Some("$.city")),
                    ("Iata", "VARCHAR(3)", Some("$.iata")),
                ]),
                format: RecordFormat::Json { row_path: "$".into() },
            },
            location: ReferenceLocation::S3 {
                connection: connection(&bucket),
                key: "tables/airports.json".into(),
            },
            skip_header_lines: 2,
            refresh_interval: None,
        },
    ];
    let options = RunOptions::new(TimeMode::Recorded { flush_at: None });
    let mut out = sluice::engine::run(&app, options).await.expect("the run succeeds");
    let mut render = |stream: &str, cols: &[&str]| -> Vec<String> {
        let rows = batches_to_rows(&out.streams.remove(stream).unwrap_or_default()).1;
        rows.iter()
            .map(|r| {
                cols.iter()
                    .map(|c| sluice::testing::compare::get(r, c).unwrap().render())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(
        render("REGIONS", &["RIDE", "REGION", "POP"]),
        vec!["\"R1\" \"South\" 545", "\"R3\" \"North\" 232"],
        "INNER JOIN with the CSV table; Faro's row did not fit and was left out"
    );
    assert_eq!(
        render("AIRPORTS", &["RIDE", "IATA"]),
        vec!["\"R1\" \"LIS\"", "\"R2\" \"FAO\"", "\"R3\" null", "\"R4\" null"],
        "LEFT JOIN with the JSON table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refresh_of_an_s3_table_switches_whole_versions_and_keeps_the_table_on_failure() {
    let bucket = create_bucket("ref-http").await;
    let v1: &[&str] = &["Lisbon", "Porto", "Braga", "Faro", "Coimbra"];
    // Every value changes, Faro goes, Aveiro comes.
    let v2: &[&str] = &["Lisbon", "Porto", "Braga", "Coimbra", "Aveiro"];
    put(&bucket, "t.csv", tag_csv(1, v1)).await;
    // The object's ETag makes a conditional read answer "unchanged" without the body.
    {
        use sluice::connectors::s3::reference::{Fetched, get};
        let (client, c) = (crate::s3::support::client().await, connection(&bucket));
        let Fetched::Object(object) = get(&client, &c, "t.csv", None).await.unwrap() else {
            panic!("a first read has the body")
        };
        let etag = object.etag.expect("S3 gives an ETag");
        assert!(matches!(
            get(&client, &c, "t.csv", Some(&etag)).await,
            Ok(Fetched::Unchanged)
        ));
        let err = get(&client, &c, "missing.csv", None).await.unwrap_err();
        assert!(err.contains(&format!("s3://{bucket}/missing.csv: NoSuchKey")), "{err}");
    }
    let location = ReferenceLocation::S3 {
        connection: connection(&bucket),
        key: "t.csv".into(),
    };
    let app = generator_app("reference-http", 300, tag_table("T", location, None));
    let running = start(&app).await;
    let addr = running.addr;
    running.wait_rows(100).await;

    let (status, list) = http(addr, "GET", "/references").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["table"], "T");
    assert_eq!(list[0]["location"], format!("s3://{bucket}/t.csv"));
    assert_eq!(
        (list[0]["version"].as_u64(), list[0]["rows"].as_u64()),
        (Some(1), Some(5))
    );

    // The same object again: the ETag matches, nothing is downloaded, no new version.
    let (status, body) = http(addr, "POST", "/references/T/refresh").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "unchanged", "{body}");
    assert_eq!(body["version"], 1, "{body}");

    put(&bucket, "t.csv", tag_csv(2, v2)).await;
    let before = sluice::time::now_millis();
    let (status, body) = http(addr, "POST", "/references/T/refresh").await;
    let after = sluice::time::now_millis();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "refreshed", "{body}");
    assert_eq!(
        (body["version"].as_u64(), body["rows"].as_u64()),
        (Some(2), Some(5)),
        "{body}"
    );
    running.wait_rows(100).await;

    // A deleted object: the refresh fails, names the object, and version 2 stays.
    crate::s3::support::client()
        .await
        .delete_object()
        .bucket(&bucket)
        .key("t.csv")
        .send()
        .await
        .unwrap();
    let (status, body) = http(addr, "POST", "/references/T/refresh").await;
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("s3://{bucket}/t.csv")) && error.contains("NoSuchKey"),
        "{body}"
    );
    assert_eq!(
        (body["version"].as_u64(), body["rows"].as_u64()),
        (Some(2), Some(5)),
        "{body}"
    );
    // Garbage: no row fits; version 2 stays.
    put(&bucket, "t.csv", b"CITY,TAG\n\xff\xfe,bad\n\xc3\x28,x\n".to_vec()).await;
    let (status, body) = http(addr, "POST", "/references/T/refresh").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("none of its 2 rows fits"),
        "{body}"
    );
    let (status, body) = http(addr, "POST", "/references/NOPE/refresh").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("tables: T"), "{body}");
    running.wait_rows(100).await;

    assert_eq!(series("reference-http", "sluice_reference_rows"), Some(5.0));
    assert_eq!(series("reference-http", "sluice_reference_version"), Some(2.0));
    assert_eq!(series("reference-http", "sluice_reference_refreshes_total"), Some(2.0));
    assert_eq!(
        series("reference-http", "sluice_reference_refresh_failures_total"),
        Some(2.0)
    );

    let rows = running.finish().await;
    let (per_row, counts) = check_versions(&rows, &[v1, v2]);
    assert!(counts[1] >= 100 && counts[2] >= 200, "rows per version: {counts:?}");
    for (row, v) in rows.iter().zip(&per_row) {
        let t = rowtime(row);
        // Ingested after the refresh answered: the new version, strictly. Well before
        // it: the old one.
        if t > after {
            assert_eq!(*v, 2, "a row ingested after the refresh: {row:?}");
        }
        if t < before - 1000 {
            assert_eq!(*v, 1, "a row ingested before the refresh: {row:?}");
        }
    }
    // Each city appears, and both versions' differences show: Faro matched, then not.
    let faro: Vec<Option<&str>> = rows
        .iter()
        .filter(|r| text(r, "CITY") == Some("Faro"))
        .map(|r| text(r, "TAG"))
        .collect();
    assert!(faro.contains(&Some("v1:Faro")) && faro.contains(&None), "{faro:?}");
    assert!(CITIES.iter().all(|c| rows.iter().any(|r| text(r, "CITY") == Some(c))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_table_refreshes_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let v1: &[&str] = &["Lisbon", "Porto", "Faro"];
    let v2: &[&str] = &["Lisbon", "Braga", "Aveiro", "Coimbra"];
    let v3: &[&str] = &["Porto"];
    // A whole file at once (rename), as a refresh may read it at any moment.
    let write = |v: u32, cities: &[&str]| {
        let tmp = dir.path().join("t.csv.tmp");
        std::fs::write(&tmp, tag_csv(v, cities)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write(1, v1);
    let reference = tag_table(
        "T",
        ReferenceLocation::File(path.clone()),
        Some(Duration::from_millis(100)),
    );
    let app = generator_app("reference-interval", 300, reference);
    let running = start(&app).await;
    running.wait_rows(100).await;
    let table = Arc::clone(running.app.reference("T").expect("the run registers its tables"));
    let wait_version = |v: u64| {
        let table = Arc::clone(&table);
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while table.version() < v {
                assert!(Instant::now() < deadline, "version {v} did not arrive");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(table.version(), 1, "an unchanged file makes no new version");
    write(2, v2);
    wait_version(2).await;
    running.wait_rows(100).await;
    // A file that disappears: the interval refreshes fail and version 2 stays.
    std::fs::remove_file(&path).unwrap();
    let failures = || series("reference-interval", "sluice_reference_refresh_failures_total").unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while failures() < 2.0 {
        assert!(Instant::now() < deadline, "no failed refresh recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(table.version(), 2);
    running.wait_rows(60).await;
    write(3, v3);
    wait_version(3).await;
    running.wait_rows(100).await;
    let rows = running.finish().await;
    let (_, counts) = check_versions(&rows, &[v1, v2, v3]);
    assert!(
        counts[1] >= 100 && counts[2] >= 100 && counts[3] >= 100,
        "rows per version: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_initial_object_fails_startup_naming_the_bucket_and_key() {
    let bucket = create_bucket("ref-missing").await;
    let location = ReferenceLocation::S3 {
        connection: connection(&bucket),
        key: "nowhere/t.csv".into(),
    };
    let app = generator_app("reference-missing", 10, tag_table("T", location, None));
    let err = sluice::engine::run(&app, wall_clock())
        .await
        .expect_err("the run must not start")
        .to_string();
    assert!(err.contains(&format!("s3://{bucket}/nowhere/t.csv")), "{err}");
    assert!(err.contains("NoSuchKey") && err.contains("reference table T"), "{err}");

    // An object none of whose rows fits the schema fails startup too. (The table keeps
    // the column the code reads: the code is planned before the data is read.)
    put(&bucket, "bad.json", "not,csv\x00").await;
    let mut app = app;
    app.references[0].schema.columns = columns(&[("CITY", "VARCHAR(16)", None), ("TAG", "INTEGER", None)]);
    app.references[0].location = ReferenceLocation::S3 {
        connection: connection(&bucket),
        key: "bad.json".into(),
    };
    app.references[0].skip_header_lines = 0;
    let err = sluice::engine::run(&app, wall_clock()).await.unwrap_err().to_string();
    assert!(
        err.contains("none of its 1 rows fits") && err.contains("bad.json"),
        "{err}"
    );
}

/// The manifest form: `s3 = { bucket_arn, file_key, endpoint, ... }` with a refresh
/// interval, loaded by `sluice::manifest` and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_s3_reference_with_settings_runs() {
    let bucket = create_bucket("ref-manifest").await;
    put(&bucket, "cities.csv", tag_csv(1, &CITIES)).await;
    let c = connection(&bucket);
    let manifest = format!(
        r#"
name = "reference-manifest"
code_text = '''
CREATE OR REPLACE STREAM "OUT" (RIDE VARCHAR(16), CITY VARCHAR(16), TAG VARCHAR(32));
CREATE OR REPLACE PUMP "P" AS INSERT INTO "OUT"
  SELECT STREAM s.RIDE_ID, s.CITY, t.TAG FROM "SOURCE_SQL_STREAM_001" AS s JOIN "T" AS t ON s.CITY = t.CITY;
'''
[[inputs]]
[inputs.schema]
record_format = "JSON"
columns = [
  {{ name = "RIDE_ID", sql_type = "VARCHAR(16)", mapping = "$.ride_id" }},
  {{ name = "CITY", sql_type = "VARCHAR(16)", mapping = "$.city" }},
]
[inputs.source]
kind = "generator"
rate = 1000
limit = 50
[[references]]
table_name = "T"
s3 = {{ bucket_arn = "arn:aws:s3:::{bucket}", file_key = "cities.csv", endpoint = "{endpoint}", region = "us-east-1", access_key_id = "test", secret_access_key = "test" }}
skip_header_lines = 1
refresh_interval_secs = 60
[references.schema]
record_format = "CSV"
columns = [ {{ name = "CITY", sql_type = "VARCHAR(16)" }}, {{ name = "TAG", sql_type = "VARCHAR(32)" }} ]
[[outputs]]
stream = "OUT"
"#,
        endpoint = c.endpoint.as_deref().unwrap()
    );
    let mut app = sluice::manifest::parse_manifest(&manifest, &PathBuf::from(".")).unwrap();
    sluice::manifest::validate(&app).unwrap();
    app.outputs[0].destination = DestinationSpec::Collect;
    let mut out = sluice::engine::run(&app, RunOptions::new(TimeMode::Recorded { flush_at: None }))
        .await
        .unwrap();
    let rows = batches_to_rows(&out.streams.remove("OUT").unwrap_or_default()).1;
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| consistent_versions(r, &[&CITIES]) == vec![1]));
}
