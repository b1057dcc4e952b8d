//! The S3-compatible test server (moto_server, started by scripts/test.sh, or by the
//! first test that needs it), buckets, and reading objects back with the real SDK.

use std::io::BufRead;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_s3::Client;
use sluice::connectors::s3::S3Connection;

/// The S3-compatible server's endpoint: `SLUICE_S3_ENDPOINT` (set by scripts/test.sh),
/// else a moto_server started here from the venv the script installed.
pub fn endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| std::env::var("SLUICE_S3_ENDPOINT").unwrap_or_else(|_| start_moto()))
        .clone()
}

// moto_server is stopped with the test process's group; nothing waits on it.
#[allow(clippy::zombie_processes)]
fn start_moto() -> String {
    let servers = std::env::var("SLUICE_TEST_SERVERS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sluice-test-servers",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let moto = Path::new(&servers).join("moto-venv/bin/moto_server");
    assert!(
        moto.exists(),
        "moto_server is not installed at {}: run scripts/test.sh, which installs and starts the test servers",
        moto.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A shell that ends moto when this test process ends (moto does not watch its parent).
    let script = format!(
        "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; echo started; \
         while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
        moto.display(),
        std::process::id()
    );
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting moto_server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return endpoint;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("moto_server did not answer on {endpoint}");
}

/// The connection sluice uses to reach `bucket` on the test server.
pub fn connection(bucket: &str) -> S3Connection {
    S3Connection {
        bucket: bucket.to_string(),
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
    }
}

/// A test's own S3 client, the same SDK sluice uses.
pub async fn client() -> Client {
    sluice::connectors::s3::client::client(&connection("unused"), 3).await
}

/// Creates a bucket with a name no other test uses.
pub async fn create_bucket(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        prefix.to_ascii_lowercase().replace('_', "-"),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    client()
        .await
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("CreateBucket");
    name
}

/// Every object key in `bucket`, sorted, following continuation tokens.
pub async fn list_keys(bucket: &str) -> Vec<String> {
    let client = client().await;
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .expect("ListObjectsV2");
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    keys.sort();
    keys
}

/// An object's bytes.
pub async fn get(bucket: &str, key: &str) -> Vec<u8> {
    let out = client()
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {bucket}/{key}: {e:?}"));
    out.body.collect().await.expect("object body").into_bytes().to_vec()
}

/// Writes an object (reference data, a fixture).
pub async fn put(bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    client()
        .await
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {bucket}/{key}: {e:?}"));
}
