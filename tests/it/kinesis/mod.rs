//! The Kinesis connector against a real Kinesis-compatible server (kinesalite) with the
//! real SDK client: several shards, resharding while reading, KPL aggregates,
//! throttling, restart from checkpointed positions, and `sluice run` end to end.

mod crash;
pub mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice::app::{
    AppSpec, DestinationSpec, InputSpec, OutputFormat, OutputSpec, RecordColumn, RecordFormat, RecordSchema, SourceSpec,
};
use sluice::connectors::kinesis::{KinesisSinkConfig, KinesisSourceConfig, kpl};
use sluice::engine::{CheckpointOptions, RunOptions, TimeMode};
use sluice::types::{ColumnDef, SqlType};
use support::*;

const PASS_THROUGH: &str = r#"
CREATE OR REPLACE STREAM "OUT" (K VARCHAR(16), N INTEGER, PK VARCHAR(64), SHARD VARCHAR(64));
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "OUT" SELECT STREAM K, N, PK, SHARD FROM "SOURCE_SQL_STREAM_001";
"#;

fn column(name: &str, ty: &str, mapping: &str) -> RecordColumn {
    RecordColumn {
        column: ColumnDef::new(name, SqlType::parse(ty).unwrap()),
        mapping: Some(mapping.to_string()),
    }
}

/// An application reading `source` with columns K, N (payload), PK and SHARD
/// (metadata), writing the named streams to files in `dir`.
fn app(sql: &str, source: KinesisSourceConfig, parallelism: u32, outputs: &[(&str, &Path)]) -> AppSpec {
    AppSpec {
        name: "kinesis-test".into(),
        sql: sql.into(),
        inputs: vec![InputSpec {
            name_prefix: "SOURCE_SQL_STREAM".into(),
            stream_name: None,
            parallelism,
            event_time: None,
            preprocessor: None,
            schema: RecordSchema {
                columns: vec![
                    column("K", "VARCHAR(16)", "$.k"),
                    column("N", "INTEGER", "$.n"),
                    column("PK", "VARCHAR(64)", "METADATA:PARTITION_KEY"),
                    column("SHARD", "VARCHAR(64)", "metadata:shard_id"),
                ],
                format: RecordFormat::Json { row_path: "$".into() },
            },
            source: SourceSpec::Kinesis(source),
        }],
        references: vec![],
        outputs: outputs
            .iter()
            .map(|(stream, path)| OutputSpec {
                stream: stream.to_string(),
                format: OutputFormat::Json,
                destination: DestinationSpec::File {
                    path: path.to_path_buf(),
                },
            })
            .collect(),
    }
}

fn source(stream: &str, endpoint: &str) -> KinesisSourceConfig {
    let mut c = KinesisSourceConfig::new(connection(stream, endpoint));
    c.idle_poll_max_ms = 400;
    c.discovery_interval_ms = 300;
    c
}

fn options() -> RunOptions {
    RunOptions::new(TimeMode::WallClock { bound_interval_ms: 100 })
}

/// `per_key` records for each of `keys` keys, keys interleaved, each key's N counting up
/// from `from`: (partition key, JSON data).
fn records(keys: usize, from: usize, per_key: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for n in from..from + per_key {
        for k in 0..keys {
            let key = format!("k{k}");
            out.push((key.clone(), format!(r#"{{"k":"{key}","n":{n}}}"#).into_bytes()));
        }
    }
    out
}

/// Checks every key's N values arrive exactly once each, in order: 0..count.
fn assert_exactly_once_in_key_order(rows: &[serde_json::Value], expected_per_key: &BTreeMap<String, i64>) {
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in rows {
        let k = r["K"].as_str().unwrap().to_string();
        assert_eq!(
            r["PK"].as_str(),
            Some(k.as_str()),
            "the partition key column is the record's key"
        );
        assert!(
            r["SHARD"].as_str().is_some_and(|s| s.starts_with("shardId-")),
            "the shard id column is filled: {r}"
        );
        seen.entry(k).or_default().push(r["N"].as_i64().unwrap());
    }
    for (k, count) in expected_per_key {
        let got = seen.remove(k).unwrap_or_default();
        let want: Vec<i64> = (0..*count).collect();
        assert_eq!(got, want, "key {k}: every record once, in the order written");
    }
    assert!(seen.is_empty(), "unexpected keys {:?}", seen.keys());
}

/// Runs `app` until `until` is true of the output file, then stops it.
async fn run_until(app: &AppSpec, options: RunOptions, output: &Path, rows: usize, timeout: Duration) {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = {
        let app = app.clone();
        tokio::spawn(async move { sluice::runtime::run_app_until(&app, options, stop_rx).await })
    };
    let got = wait_lines(output, rows, timeout).await;
    // A little longer: a duplicate would arrive after the last expected row.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    run.await.unwrap().expect("the run ends cleanly");
    assert!(got.len() >= rows, "only {} of {rows} rows arrived in time", got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_shards_and_two_input_streams_deliver_every_record_once_in_key_order() {
    let endpoint = endpoint();
    let client = client().await;
    let stream = unique("several");
    create_stream(&client, &stream, 4).await;
    let input = records(20, 0, 100);
    put(&client, &stream, &input).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    // Parallelism 2: shards are dealt to two in-application streams, each pumped.
    let sql = format!(
        "{PASS_THROUGH}\nCREATE OR REPLACE PUMP \"P2\" AS INSERT INTO \"OUT\" SELECT STREAM K, N, PK, SHARD FROM \"SOURCE_SQL_STREAM_002\";"
    );
    let app = app(&sql, source(&stream, &endpoint), 2, &[("OUT", &out)]);
    run_until(&app, options(), &out, input.len(), Duration::from_secs(240)).await;

    let rows = lines(&out);
    assert_eq!(rows.len(), input.len());
    let expected: BTreeMap<String, i64> = (0..20).map(|k| (format!("k{k}"), 100)).collect();
    assert_exactly_once_in_key_order(&rows, &expected);
    let shards: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r["SHARD"].as_str()).collect();
    assert_eq!(shards.len(), 4, "records came from all four shards: {shards:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_columns_are_implicit_in_every_input_stream() {
    let endpoint = endpoint();
    let client = client().await;
    let stream = unique("envelope");
    create_stream(&client, &stream, 2).await;
    let input = records(6, 0, 5);
    put(&client, &stream, &input).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    // No METADATA mapping: the schema declares the payload only, as KDA's do.
    let sql = r#"
        CREATE OR REPLACE STREAM "OUT" (K VARCHAR(16), N INTEGER, PK VARCHAR(256), SEQ VARCHAR(128), SHARD VARCHAR(128));
        CREATE OR REPLACE PUMP "P1" AS INSERT INTO "OUT"
          SELECT STREAM K, N, PARTITION_KEY, SEQUENCE_NUMBER, SHARD_ID FROM "SOURCE_SQL_STREAM_001";
    "#;
    let mut app = app(sql, source(&stream, &endpoint), 1, &[("OUT", &out)]);
    app.inputs[0].schema.columns.truncate(2);
    run_until(&app, options(), &out, input.len(), Duration::from_secs(120)).await;

    let rows = lines(&out);
    assert_eq!(rows.len(), input.len());
    let expected: BTreeMap<String, i64> = (0..6).map(|k| (format!("k{k}"), 5)).collect();
    assert_exactly_once_in_key_order(&rows, &expected);
    // Sequence numbers are decimal strings (wider than u128) that grow within a shard:
    // compared by length, then digit by digit.
    let mut last: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for r in &rows {
        let seq = r["SEQ"].as_str().unwrap().to_string();
        assert!(
            !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()),
            "a decimal sequence number: {seq}"
        );
        let shard = r["SHARD"].as_str().unwrap().to_string();
        let key = (seq.len(), seq);
        if let Some(previous) = last.insert(shard.clone(), key.clone()) {
            assert!(
                key > previous,
                "shard {shard}: sequence numbers grow: {previous:?} then {key:?}"
            );
        }
    }
    assert_eq!(last.len(), 2, "records came from both shards: {:?}", last.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_reading_lose_nothing_and_keep_key_order() {
    let endpoint = endpoint();
    let client = client().await;
    let stream = unique("reshard");
    create_stream(&client, &stream, 2).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let app = app(PASS_THROUGH, source(&stream, &endpoint), 1, &[("OUT", &out)]);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = {
        let app = app.clone();
        tokio::spawn(async move { sluice::runtime::run_app_until(&app, options(), stop_rx).await })
    };

    // Write in rounds; split a shard after round 5 and merge its children after round 10.
    let keys = 16;
    let rounds = 15;
    let per_round = 10;
    for round in 0..rounds {
        put(&client, &stream, &records(keys, round * per_round, per_round)).await;
        if round == 5 {
            let shards = client.list_shards().stream_name(&stream).send().await.unwrap();
            let first = &shards.shards()[0];
            let range = first.hash_key_range().unwrap();
            let lo: u128 = range.starting_hash_key().parse().unwrap();
            let hi: u128 = range.ending_hash_key().parse().unwrap();
            client
                .split_shard()
                .stream_name(&stream)
                .shard_to_split(first.shard_id())
                .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
                .send()
                .await
                .unwrap();
            wait_active(&client, &stream).await;
        }
        if round == 10 {
            let shards = client.list_shards().stream_name(&stream).send().await.unwrap();
            let open: Vec<_> = shards
                .shards()
                .iter()
                .filter(|s| s.sequence_number_range().unwrap().ending_sequence_number().is_none())
                .filter(|s| s.parent_shard_id().is_some())
                .collect();
            assert_eq!(open.len(), 2, "the split made two children");
            client
                .merge_shards()
                .stream_name(&stream)
                .shard_to_merge(open[0].shard_id())
                .adjacent_shard_to_merge(open[1].shard_id())
                .send()
                .await
                .unwrap();
            wait_active(&client, &stream).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = keys * rounds * per_round;
    let got = wait_lines(&out, total, Duration::from_secs(240)).await;
    // A little longer: a duplicate would arrive after the last expected row.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    run.await.unwrap().unwrap();
    assert!(got.len() >= total, "only {} of {total} rows", got.len());

    let listed = client.list_shards().stream_name(&stream).send().await.unwrap();
    assert_eq!(listed.shards().len(), 5, "2 shards, a split (+2) and a merge (+1)");
    let rows = lines(&out);
    let expected: BTreeMap<String, i64> = (0..keys)
        .map(|k| (format!("k{k}"), (rounds * per_round) as i64))
        .collect();
    assert_exactly_once_in_key_order(&rows, &expected);
    let shards: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r["SHARD"].as_str()).collect();
    assert_eq!(
        shards.len(),
        5,
        "rows were read from parents, children and the merged shard: {shards:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregates_are_split_into_user_records_and_corrupt_ones_go_to_error_stream() {
    let endpoint = endpoint();
    let client = client().await;
    let stream = unique("kpl");
    create_stream(&client, &stream, 1).await;
    // Two aggregates of user records with their own keys, a plain record, and an
    // aggregate whose MD5 trailer does not match.
    let user = |k: &str, n: usize| (k.to_string(), None, format!(r#"{{"k":"{k}","n":{n}}}"#).into_bytes());
    let first = kpl::aggregate(&[user("a", 0), user("b", 0), user("a", 1)]);
    let second = kpl::aggregate(&[user("b", 1), user("c", 0)]);
    let mut corrupt = kpl::aggregate(&[user("z", 0)]);
    let at = corrupt.len() - 20;
    corrupt[at] ^= 0xff;
    put(
        &client,
        &stream,
        &[
            ("agg1".to_string(), first),
            ("plain".to_string(), br#"{"k":"plain","n":0}"#.to_vec()),
            ("bad".to_string(), corrupt),
            ("agg2".to_string(), second),
        ],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let errors = dir.path().join("errors.jsonl");
    let app = app(
        PASS_THROUGH,
        source(&stream, &endpoint),
        1,
        &[("OUT", &out), ("error_stream", &errors)],
    );
    run_until(&app, options(), &out, 6, Duration::from_secs(240)).await;

    let rows = lines(&out);
    let got: Vec<(String, i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["K"].as_str().unwrap().to_string(),
                r["N"].as_i64().unwrap(),
                r["PK"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Each user record keeps its own partition key, not the aggregate's.
    let want: Vec<(String, i64, String)> = [("a", 0), ("b", 0), ("a", 1), ("plain", 0), ("b", 1), ("c", 0)]
        .iter()
        .map(|(k, n)| (k.to_string(), *n, k.to_string()))
        .collect();
    assert_eq!(got, want);
    let errors = wait_lines(&errors, 1, Duration::from_secs(5)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(
        message.contains("CorruptAggregate") && message.contains("MD5"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_expired_iterators_are_survived_by_the_source_and_the_sink() {
    let endpoint = endpoint();
    let client = client().await;
    let input = unique("throttle-in");
    let output = unique("throttle-out");
    create_stream(&client, &input, 2).await;
    create_stream(&client, &output, 2).await;
    let written = records(10, 0, 30);
    put(&client, &input, &written).await;

    let proxy = ThrottlingProxy::start(endpoint.clone()).await;
    proxy.throttle_get_records.store(12, Ordering::SeqCst);
    proxy.fail_put_records.store(3, Ordering::SeqCst);
    proxy.expire_get_records.store(4, Ordering::SeqCst);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut app = app(PASS_THROUGH, source(&input, &proxy.endpoint), 1, &[("OUT", &out)]);
    let mut sink = KinesisSinkConfig::new(connection(&output, &proxy.endpoint), "OUT");
    sink.partition_key = Some("K".into());
    sink.parked_path = dir.path().join("parked.jsonl");
    app.outputs.push(OutputSpec {
        stream: "OUT".into(),
        format: OutputFormat::Json,
        destination: DestinationSpec::Kinesis(sink),
    });
    run_until(&app, options(), &out, written.len(), Duration::from_secs(240)).await;

    assert_eq!(
        proxy.throttle_get_records.load(Ordering::SeqCst),
        0,
        "every throttle was served"
    );
    assert!(proxy.throttled.load(Ordering::SeqCst) >= 12);
    assert_eq!(
        proxy.expire_get_records.load(Ordering::SeqCst),
        0,
        "expired iterators were renewed"
    );
    assert!(
        proxy.failed_records.load(Ordering::SeqCst) > 0,
        "PutRecords had failed records"
    );
    let expected: BTreeMap<String, i64> = (0..10).map(|k| (format!("k{k}"), 30)).collect();
    assert_exactly_once_in_key_order(&lines(&out), &expected);
    // The sink retried only the failed records: the output stream holds each row once,
    // in key order, keyed by the K column.
    let delivered: Vec<serde_json::Value> = read_all(&client, &output)
        .await
        .into_iter()
        .map(|(key, data)| {
            let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(v["K"].as_str(), Some(key.as_str()), "partition key from the K column");
            v
        })
        .collect();
    assert_eq!(delivered.len(), written.len(), "no record lost or sent twice");
    assert_exactly_once_in_key_order(&delivered, &expected);
    assert!(!dir.path().join("parked.jsonl").exists(), "nothing was parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_restarts_from_its_checkpointed_shard_positions() {
    let endpoint = endpoint();
    let client = client().await;
    let stream = unique("restart");
    create_stream(&client, &stream, 3).await;
    put(&client, &stream, &records(12, 0, 50)).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let app = app(PASS_THROUGH, source(&stream, &endpoint), 1, &[("OUT", &out)]);
    let mut options = options();
    options.checkpoints = Some(CheckpointOptions {
        state_dir: dir.path().join("state"),
        interval_ms: 150,
        fresh: false,
    });

    // First run: read everything, let a checkpoint or two complete, then crash (the
    // task is dropped mid-flight: no shutdown, no final checkpoint).
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let first = {
        let (app, options) = (app.clone(), options.clone());
        tokio::spawn(async move { sluice::runtime::run_app_until(&app, options, stop_rx).await })
    };
    let got = wait_lines(&out, 600, Duration::from_secs(240)).await;
    assert_eq!(got.len(), 600);
    tokio::time::sleep(Duration::from_millis(600)).await;
    first.abort();
    let _ = first.await;

    // More records while it is down; the restart reads only what is new.
    put(&client, &stream, &records(12, 50, 30)).await;
    run_until(&app, options, &out, 12 * 80, Duration::from_secs(240)).await;
    let expected: BTreeMap<String, i64> = (0..12).map(|k| (format!("k{k}"), 80)).collect();
    assert_exactly_once_in_key_order(&lines(&out), &expected);
}

/// Enhanced fan-out against kinesis-local (kinesalite has no SubscribeToShard): the
/// consumer is registered, shards are read by subscription, and a split while reading
/// hands over from the parent's last event (which names the children) to the children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_fan_out_reads_every_record_once_in_key_order_across_a_split() {
    let endpoint = mock_endpoint();
    let client = client_for(&endpoint).await;
    let stream = unique("efo");
    create_stream(&client, &stream, 2).await;
    put(&client, &stream, &records(8, 0, 15)).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut config = source(&stream, &endpoint);
    config.efo_consumer = Some("sluice-test".into());
    let app = app(PASS_THROUGH, config, 1, &[("OUT", &out)]);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = {
        let app = app.clone();
        tokio::spawn(async move { sluice::runtime::run_app_until(&app, options(), stop_rx).await })
    };
    let first = wait_lines(&out, 8 * 15, Duration::from_secs(240)).await;
    assert_eq!(first.len(), 8 * 15, "the first records arrived by subscription");

    let shards = client.list_shards().stream_name(&stream).send().await.unwrap();
    let shard = &shards.shards()[0];
    let range = shard.hash_key_range().unwrap();
    let lo: u128 = range.starting_hash_key().parse().unwrap();
    let hi: u128 = range.ending_hash_key().parse().unwrap();
    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split(shard.shard_id())
        .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&client, &stream).await;
    put(&client, &stream, &records(8, 15, 15)).await;

    let got = wait_lines(&out, 8 * 30, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    run.await.unwrap().unwrap();
    assert!(got.len() >= 8 * 30, "only {} of {} rows", got.len(), 8 * 30);
    let expected: BTreeMap<String, i64> = (0..8).map(|k| (format!("k{k}"), 30)).collect();
    assert_exactly_once_in_key_order(&lines(&out), &expected);
    let consumers = client
        .list_stream_consumers()
        .stream_arn(
            client
                .describe_stream_summary()
                .stream_name(&stream)
                .send()
                .await
                .unwrap()
                .stream_description_summary()
                .unwrap()
                .stream_arn(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(consumers.consumers().len(), 1, "the consumer was registered once");
}

/// The README's Kinesis example: `sluice run` of the cancellation-spike application,
/// rides read from one stream, alerts written to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_run_reads_rides_from_kinesis_and_writes_alerts_to_kinesis() {
    let endpoint = endpoint();
    let client = client().await;
    let rides = unique("rides");
    let alerts = unique("alerts");
    create_stream(&client, &rides, 2).await;
    create_stream(&client, &alerts, 1).await;

    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("queries/cancellation-spike/app.sql"),
        dir.path().join("app.sql"),
    )
    .unwrap();
    let manifest = format!(
        r#"
name = "cancellation-spike-kinesis"
code = "app.sql"

[[inputs]]
name_prefix = "SOURCE_SQL_STREAM"
[inputs.schema]
record_format = "JSON"
columns = [
  {{ name = "RIDE_ID",    sql_type = "VARCHAR(16)", mapping = "$.ride_id" }},
  {{ name = "EVENT_TYPE", sql_type = "VARCHAR(16)", mapping = "$.event_type" }},
  {{ name = "CITY",       sql_type = "VARCHAR(16)", mapping = "$.city" }},
]
[inputs.source]
kind = "kinesis"
name = "{rides}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"

[[outputs]]
stream = "ALERT_STREAM"
format = "JSON"
[outputs.destination]
kind = "kinesis"
arn = "arn:aws:kinesis:us-east-1:000000000000:stream/{alerts}"
endpoint = "{endpoint}"
access_key_id = "test"
secret_access_key = "test"
"#
    );
    std::fs::write(dir.path().join("sluice.toml"), manifest).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", dir.path().to_str().unwrap(), "--bound-interval-ms", "200"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log.txt")).unwrap())
        .spawn()
        .unwrap();

    // 300 cancellations and some completed rides, all within a second or two: whatever
    // minute boundary they straddle, one minute holds more than 100 cancellations.
    let events: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| {
            let kind = if i % 4 == 3 { "COMPLETED" } else { "CANCELLATION" };
            let id = format!("r{i}");
            let data = format!(r#"{{"ride_id":"{id}","event_type":"{kind}","city":"Lisbon"}}"#);
            (id, data.into_bytes())
        })
        .collect();
    // Give the application a moment to list the shards before the burst.
    tokio::time::sleep(Duration::from_secs(2)).await;
    put(&client, &rides, &events).await;

    // The alert for a minute fires when the minute ends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let delivered = loop {
        let got = read_all(&client, &alerts).await;
        if !got.is_empty() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap_or_default();
    assert!(!delivered.is_empty(), "no alert reached the alerts stream; log:\n{log}");
    let alert: serde_json::Value = serde_json::from_slice(&delivered[0].1).unwrap();
    assert!(alert["CANCELLATIONS"].as_i64().unwrap() > 100, "{alert}");
    assert!(alert["WINDOW_START"].as_str().is_some(), "{alert}");
}

/// LATEST skips what the stream held before the application started; AT_TIMESTAMP
/// starts at the first record that arrived at or after the timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_and_at_timestamp_start_where_asked() {
    let endpoint = endpoint();
    let client = client().await;
    let stream = unique("start");
    create_stream(&client, &stream, 2).await;
    put(&client, &stream, &records(4, 0, 5)).await;
    // kinesalite's arrival times have millisecond precision; keep the batches apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = sluice::time::now_millis();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&client, &stream, &records(4, 5, 5)).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("at.jsonl");
    let mut config = source(&stream, &endpoint);
    config.start = sluice::connectors::kinesis::StartPosition::AtTimestamp(between);
    let at = app(PASS_THROUGH, config, 1, &[("OUT", &out)]);
    run_until(&at, options(), &out, 20, Duration::from_secs(240)).await;
    let rows = lines(&out);
    assert_eq!(rows.len(), 20, "only the second batch");
    assert!(rows.iter().all(|r| r["N"].as_i64().unwrap() >= 5), "{rows:?}");

    let out = dir.path().join("latest.jsonl");
    let mut config = source(&stream, &endpoint);
    config.start = sluice::connectors::kinesis::StartPosition::Latest;
    let latest = app(PASS_THROUGH, config, 1, &[("OUT", &out)]);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move { sluice::runtime::run_app_until(&latest, options(), stop_rx).await });
    // Once its readers hold their LATEST iterators, new records are read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    put(&client, &stream, &records(4, 10, 3)).await;
    let got = wait_lines(&out, 12, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    run.await.unwrap().unwrap();
    assert_eq!(got.len(), 12);
    let mut ns: Vec<i64> = lines(&out).iter().map(|r| r["N"].as_i64().unwrap()).collect();
    ns.sort();
    ns.dedup();
    assert_eq!(ns, [10, 11, 12], "only what was written after the start");
}
