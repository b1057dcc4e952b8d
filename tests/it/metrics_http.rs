//! `sluice run --http`: the binary serves its metrics registry and health while it runs,
//! with checkpoint figures from a real state folder.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child however the test ends, so a failed assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One plain HTTP/1.1 GET; returns the body of a 200 response.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    body.to_string()
}

/// The values of the series whose name and labels start with `prefix`.
fn values(text: &str, prefix: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, prefix: &str) -> Option<f64> {
    values(text, prefix).first().map(|v| v.1)
}

const MANIFEST: &str = r#"name = "metrics-http"
code = "app.sql"
[[inputs]]
name_prefix = "SOURCE_SQL_STREAM"
[inputs.schema]
record_format = "JSON"
columns = [
  { name = "RIDE_ID",    sql_type = "VARCHAR(16)", mapping = "$.ride_id" },
  { name = "EVENT_TYPE", sql_type = "VARCHAR(16)", mapping = "$.event_type" },
  { name = "CITY",       sql_type = "VARCHAR(16)", mapping = "$.city" },
  { name = "FARE",       sql_type = "REAL",        mapping = "$.fare" },
  { name = "DRIVER_ID",  sql_type = "INTEGER",     mapping = "$.driver_id" },
  { name = "EVENT_TIME", sql_type = "TIMESTAMP",   mapping = "$.event_time" },
]
[inputs.source]
kind = "generator"
rate = 200
seed = 42
[[outputs]]
stream = "ALERT_STREAM"
[outputs.destination]
kind = "stdout"
"#;

#[test]
fn run_with_http_serves_metrics_and_health_with_checkpoints() {
    // The cancellation-spike example's code on the built-in generator. Its manifest is
    // not used as is: its error_stream output never sees a checkpoint barrier, so with
    // it no checkpoint would ever complete.
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/cancellation-spike");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(example.join("app.sql"), dir.path().join("app.sql")).unwrap();
    std::fs::write(dir.path().join("sluice.toml"), MANIFEST).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "run",
                "--rate",
                "200",
                "--checkpoint-interval-ms",
                "200",
                "--http",
                "127.0.0.1:0",
            ])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg(dir.path())
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // The log names the bound address; the reader keeps draining stderr afterwards so
    // the child never blocks on a full pipe.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if let Some((_, rest)) = line.split_once("serving metrics and health on http://") {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                let _ = tx.send(addr);
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the log line with the bound address")
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let app = r#"{app="metrics-http""#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = get(addr, "/metrics");
        let last_id = value(&text, &format!("sluice_checkpoint_last_id{app}}}"));
        if last_id.is_some_and(|id| id >= 2.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no second checkpoint within 60 s:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };

    assert!(
        value(&text, &format!("sluice_records_in_total{app}}}")).unwrap() > 0.0,
        "{text}"
    );
    let pumps = values(&text, &format!(r#"sluice_state_size_bytes{app},part="pump/"#));
    assert!(!pumps.is_empty() && pumps.iter().all(|(_, v)| *v > 0.0), "{text}");
    assert!(
        value(&text, &format!("sluice_checkpoint_size_bytes{app}}}")).unwrap() > 0.0,
        "{text}"
    );
    assert!(
        value(&text, &format!("sluice_checkpoint_duration_seconds_sum{app}}}")).unwrap() > 0.0,
        "{text}"
    );
    assert!(
        value(&text, &format!("sluice_checkpoint_duration_seconds_count{app}}}")).unwrap() >= 2.0,
        "{text}"
    );
    assert!(
        value(&text, &format!("sluice_recovery_seconds{app}}}")).is_some(),
        "{text}"
    );

    let body = get(addr, "/health");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["app"], "metrics-http", "{body}");
    assert_eq!(health["status"], "running", "{body}");
    assert!(health["records_in"].as_u64().is_some_and(|n| n > 0), "{body}");
    assert!(health["checkpoint_id"].as_u64().is_some_and(|id| id >= 2), "{body}");
    assert!(health["checkpoint_age_ms"].is_u64(), "{body}");
}
