//! The Kinesis test server (kinesalite, started by scripts/test.sh, or by the first
//! test that needs it), streams, writers and readers with the real SDK client, and a
//! throttling proxy.

use std::io::BufRead;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use sluice::connectors::kinesis::KinesisConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Kinesis-compatible server's endpoint: `SLUICE_KINESIS_ENDPOINT` (set by
/// scripts/test.sh), else a kinesalite started here from the package the script
/// installed.
pub fn endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| std::env::var("SLUICE_KINESIS_ENDPOINT").unwrap_or_else(|_| start_kinesalite()))
        .clone()
}

/// A kinesalite of its own, for a test that saturates a server (kinesalite is one
/// single-threaded process) and must not slow the other tests down.
pub fn private_endpoint() -> String {
    start_kinesalite()
}

// The servers started here watch this process and exit when it does; nothing waits on them.
#[allow(clippy::zombie_processes)]
fn start_kinesalite() -> String {
    let servers = std::env::var("SLUICE_TEST_SERVERS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sluice-test-servers",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let modules = Path::new(&servers).join("node_modules");
    assert!(
        modules.join("kinesalite").exists(),
        "kinesalite is not installed in {}: run scripts/test.sh, which installs and starts the test servers",
        modules.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/kinesalite.js");
    let mut child = std::process::Command::new("node")
        .arg(script)
        .arg(&modules)
        .arg("0")
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting kinesalite with node");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("kinesalite printed its port");
    format!("http://127.0.0.1:{port}")
}

/// kinesis-local (kinesis-mock): slower than kinesalite, but it has enhanced fan-out
/// and ChildShards. `SLUICE_KINESIS_MOCK_ENDPOINT`, else started here.
#[allow(clippy::zombie_processes)]
pub fn mock_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("SLUICE_KINESIS_MOCK_ENDPOINT") {
                return e;
            }
            let servers = std::env::var("SLUICE_TEST_SERVERS").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/sluice-test-servers",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            let package = Path::new(&servers).join("node_modules/kinesis-local");
            assert!(
                package.join("main.js").exists(),
                "kinesis-local is not installed in {}: run scripts/test.sh, which installs and starts the test servers",
                package.display()
            );
            let free = || {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            };
            let (plain, tls) = (free(), free());
            // The shell stops the server when this test process is gone.
            let script = format!(
                "node '{}/main.js' & server=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $server",
                package.display(),
                std::process::id()
            );
            std::process::Command::new("sh")
                .args(["-c", &script])
                .env("KINESIS_MOCK_PLAIN_PORT", plain.to_string())
                .env("KINESIS_MOCK_TLS_PORT", tls.to_string())
                .env("KINESIS_MOCK_CERT_PATH", package.join("server.json"))
                .env("LOG_LEVEL", "WARN")
                .env("CREATE_STREAM_DURATION", "50ms")
                .env("SPLIT_SHARD_DURATION", "50ms")
                .env("MERGE_SHARDS_DURATION", "50ms")
                .env("REGISTER_STREAM_CONSUMER_DURATION", "50ms")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("starting kinesis-local");
            let endpoint = format!("http://127.0.0.1:{plain}");
            // Ready when /healthcheck answers 200 (it accepts connections before that).
            let healthy = || -> bool {
                use std::io::{Read, Write};
                let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", plain)) else {
                    return false;
                };
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut answer = [0u8; 12];
                c.write_all(b"GET /healthcheck HTTP/1.0\r\n\r\n").is_ok()
                    && c.read_exact(&mut answer).is_ok()
                    && answer.ends_with(b" 200")
            };
            for _ in 0..300 {
                if healthy() {
                    return endpoint;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("kinesis-local did not start on port {plain}");
        })
        .clone()
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn connection(stream: &str, endpoint: &str) -> KinesisConnection {
    let mut c = KinesisConnection::for_stream(stream).unwrap();
    c.endpoint = Some(endpoint.to_string());
    c.region = Some("us-east-1".into());
    c.access_key_id = Some("test".into());
    c.secret_access_key = Some("test".into());
    c
}

pub async fn client() -> Client {
    sluice::connectors::kinesis::client::client(&connection("any", &endpoint()), 3).await
}

pub async fn client_for(endpoint: &str) -> Client {
    sluice::connectors::kinesis::client::client(&connection("any", endpoint), 3).await
}

pub async fn wait_active(client: &Client, stream: &str) {
    for _ in 0..200 {
        let d = client.describe_stream_summary().stream_name(stream).send().await;
        if let Ok(d) = d
            && d.stream_description_summary().map(|s| s.stream_status()) == Some(&StreamStatus::Active)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("stream {stream} did not become ACTIVE");
}

pub async fn create_stream(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    wait_active(client, stream).await;
}

/// Puts records (partition key, data) in order, retrying any that fail.
pub async fn put(client: &Client, stream: &str, records: &[(String, Vec<u8>)]) {
    let records = std::sync::Arc::new(records.to_vec());
    let count = records.len();
    put_concurrently(client, stream, count, 1, move |i| records[i].clone()).await;
}

/// Writes `count` records, the i-th being `record(i)` (partition key, data), with
/// `writers` concurrent tasks sending PutRecords of 500 each (failed records retried;
/// a record still failing after 20 attempts fails the test). Progress goes to stderr
/// every 100,000 records.
pub async fn put_concurrently(
    client: &Client,
    stream: &str,
    count: usize,
    writers: usize,
    record: impl Fn(usize) -> (String, Vec<u8>) + Send + Sync + 'static,
) {
    let record = std::sync::Arc::new(record);
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let written = std::sync::Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (client, stream) = (client.clone(), stream.to_string());
        let (record, next, written) = (record.clone(), next.clone(), written.clone());
        tasks.spawn(async move {
            loop {
                let from = next.fetch_add(500, Ordering::Relaxed);
                if from >= count {
                    return;
                }
                let mut pending: Vec<(String, Vec<u8>)> = (from..(from + 500).min(count)).map(|i| record(i)).collect();
                let size = pending.len();
                for _ in 0..20 {
                    let entries = pending
                        .iter()
                        .map(|(k, d)| {
                            PutRecordsRequestEntry::builder()
                                .partition_key(k)
                                .data(Blob::new(d.clone()))
                                .build()
                                .unwrap()
                        })
                        .collect();
                    let r = client
                        .put_records()
                        .stream_name(&stream)
                        .set_records(Some(entries))
                        .send()
                        .await
                        .unwrap();
                    let failed: Vec<bool> = r.records().iter().map(|e| e.error_code().is_some()).collect();
                    let mut failed = failed.into_iter();
                    pending.retain(|_| failed.next().unwrap_or(true));
                    if pending.is_empty() {
                        break;
                    }
                }
                assert!(
                    pending.is_empty(),
                    "{} records still failed after 20 PutRecords attempts",
                    pending.len()
                );
                let before = written.fetch_add(size, Ordering::Relaxed);
                if (before + size) / 100_000 > before / 100_000 {
                    eprintln!(
                        "{stream}: {} of {count} records written in {:.1}s",
                        (before + size) / 100_000 * 100_000,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Every record of a stream, shard by shard from the trim horizon: (partition key,
/// data), in order within each shard.
pub async fn read_all(client: &Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    let shards = client.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut it = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let r = client.get_records().shard_iterator(&i).send().await.unwrap();
            for rec in r.records() {
                out.push((
                    rec.partition_key().unwrap_or_default().to_string(),
                    rec.data().as_ref().to_vec(),
                ));
            }
            if r.records().is_empty() {
                break;
            }
            it = r.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// Lines of a file (none if it does not exist yet).
pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad output line {l}: {e}")))
        .collect()
}

/// Waits until the file has at least `n` lines.
pub async fn wait_lines(path: &Path, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = lines(path);
        if got.len() >= n || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP proxy in front of the Kinesis server that throttles on command: GetRecords
/// calls answered with ProvisionedThroughputExceededException, and PutRecords requests
/// in which every other record is failed (removed before forwarding, reported failed in
/// the answer), as Kinesis does when a shard is over its limit.
pub struct ThrottlingProxy {
    pub endpoint: String,
    pub throttle_get_records: std::sync::Arc<AtomicU32>,
    pub fail_put_records: std::sync::Arc<AtomicU32>,
    /// GetRecords calls answered ExpiredIteratorException (iterators live 5 minutes).
    pub expire_get_records: std::sync::Arc<AtomicU32>,
    pub throttled: std::sync::Arc<AtomicU64>,
    pub failed_records: std::sync::Arc<AtomicU64>,
}

impl ThrottlingProxy {
    pub async fn start(upstream: String) -> ThrottlingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let proxy = ThrottlingProxy {
            endpoint,
            throttle_get_records: Default::default(),
            fail_put_records: Default::default(),
            expire_get_records: Default::default(),
            throttled: Default::default(),
            failed_records: Default::default(),
        };
        let upstream = upstream.trim_start_matches("http://").to_string();
        let (tg, fp, th, fr) = (
            proxy.throttle_get_records.clone(),
            proxy.fail_put_records.clone(),
            proxy.throttled.clone(),
            proxy.failed_records.clone(),
        );
        let ex = proxy.expire_get_records.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                let (upstream, tg, fp, th, fr) = (upstream.clone(), tg.clone(), fp.clone(), th.clone(), fr.clone());
                let ex = ex.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &upstream, &tg, &fp, &th, &fr, &ex).await;
                });
            }
        });
        proxy
    }
}

/// Takes one from a command counter, if any is left.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

struct Request {
    head: String,
    body: Vec<u8>,
}

async fn read_message(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 65536];
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Ok(Some(Request { head, body }));
        }
        let mut chunk = [0u8; 65536];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn with_length(head: &str, length: usize) -> String {
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(&format!("Content-Length: {length}\r\n"));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out
}

async fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Request> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(with_length(head, body.len()).as_bytes()).await?;
    up.write_all(body).await?;
    let mut buf = Vec::new();
    read_message(&mut up, &mut buf)
        .await?
        .ok_or_else(|| std::io::Error::other("upstream closed"))
}

async fn respond(conn: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await
}

async fn serve(
    mut conn: TcpStream,
    upstream: &str,
    throttle_get: &AtomicU32,
    fail_put: &AtomicU32,
    throttled: &AtomicU64,
    failed_records: &AtomicU64,
    expire_get: &AtomicU32,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = read_message(&mut conn, &mut buf).await? {
        let target = req
            .head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-amz-target").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        if target.ends_with(".GetRecords") && take(throttle_get) {
            throttled.fetch_add(1, Ordering::Relaxed);
            let body = br#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}"#;
            respond(&mut conn, "400 Bad Request", body).await?;
            continue;
        }
        if target.ends_with(".GetRecords") && take(expire_get) {
            let body = br#"{"__type":"ExpiredIteratorException","message":"Iterator expired"}"#;
            respond(&mut conn, "400 Bad Request", body).await?;
            continue;
        }
        if target.ends_with(".PutRecords") && take(fail_put) {
            let mut json: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let records = json["Records"].as_array().cloned().unwrap_or_default();
            let keep: Vec<bool> = (0..records.len()).map(|i| i % 2 == 1).collect();
            json["Records"] = serde_json::Value::Array(
                records
                    .iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|(r, _)| r.clone())
                    .collect(),
            );
            let body = serde_json::to_vec(&json).unwrap();
            let answer = forward(upstream, &req.head, &body).await?;
            let answer_json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            let mut results = answer_json["Records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter();
            let mut merged = Vec::new();
            let mut failed = 0;
            for k in &keep {
                if *k {
                    merged.push(results.next().unwrap());
                } else {
                    failed += 1;
                    merged.push(serde_json::json!({
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard shardId-000000000000"
                    }));
                }
            }
            failed_records.fetch_add(failed, Ordering::Relaxed);
            let prior = answer_json["FailedRecordCount"].as_u64().unwrap_or(0);
            let out = serde_json::json!({"FailedRecordCount": prior + failed, "Records": merged});
            respond(&mut conn, "200 OK", &serde_json::to_vec(&out).unwrap()).await?;
            continue;
        }
        let answer = forward(upstream, &req.head, &req.body).await?;
        let status = answer
            .head
            .lines()
            .next()
            .and_then(|l| l.split_once(' '))
            .map_or("500 Internal Server Error", |(_, status)| status)
            .to_string();
        respond(&mut conn, &status, &answer.body).await?;
    }
    Ok(())
}
