//! The Kinesis source: discovers shards, runs one reader per shard, and publishes what
//! they read, one batch per GetRecords response.
//!
//! Ordering across reshards: a shard starts only when every parent is closed and read
//! to its end (or gone from the stream), so per-key order holds across splits and
//! merges. Everything a reader hands over is published from this one task, so the
//! positions saved at a checkpoint barrier are exactly what was published before it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::client::{client, error_code};
use super::config::{KinesisSourceConfig, StartPosition};
use super::shard::{ReaderStats, ShardEvent, ShardReader, ShardStart};
use crate::connectors::source::{Source, SourceContext, stop_requested};
use crate::error::{ErrorRow, Result, SluiceError};
use crate::time::now_millis;

pub struct KinesisSource {
    pub config: KinesisSourceConfig,
}

/// The saved position of every shard: the checkpointed source state.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Positions {
    shards: BTreeMap<String, ShardPosition>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct ShardPosition {
    /// The last sequence number published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<String>,
    /// Closed and read to its end: never read again, and its children may start.
    #[serde(default)]
    closed: bool,
}

/// A shard as discovery saw it.
#[derive(Debug)]
struct Known {
    parents: Vec<String>,
    /// Closed already when first listed (a reshard before this run).
    closed_when_listed: bool,
    running: bool,
}

/// The in-application stream a shard feeds: shards are dealt out by the number in
/// their id, which spreads them evenly and never moves one after a restart.
fn stream_index(shard: &str, streams: usize) -> usize {
    let n: usize = shard
        .rsplit('-')
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| shard.bytes().map(usize::from).sum());
    n % streams.max(1)
}

struct Discovery<'a> {
    client: &'a Client,
    config: &'a KinesisSourceConfig,
}

impl Discovery<'_> {
    /// ListShards, every page.
    async fn list(&self) -> std::result::Result<Vec<aws_sdk_kinesis::types::Shard>, String> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = self.client.list_shards();
            let request = match &token {
                // The API takes the stream or the token, never both.
                Some(t) => request.next_token(t),
                None => request.stream_name(&self.config.connection.stream_name),
            };
            let page = request.send().await.map_err(|e| error_code(&e))?;
            shards.extend(page.shards().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() && !page.shards().is_empty() => token = Some(t.to_string()),
                _ => return Ok(shards),
            }
        }
    }
}

impl Source for KinesisSource {
    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let config = Arc::new(self.config);
            let stream = config.connection.stream_name.clone();
            let client = client(&config.connection, 1).await;
            let mut positions: Positions = match ctx.resume_bytes.as_deref() {
                Some(bytes) => serde_json::from_slice(bytes)
                    .map_err(|e| SluiceError::runtime(format!("corrupt Kinesis source checkpoint: {e}")))?,
                None => Positions::default(),
            };
            let streams = ctx.stream_count();
            let (events_tx, mut events) = mpsc::channel::<ShardEvent>(64);
            let (stop_readers, readers_stop) = watch::channel(false);
            let stats = Arc::new(ReaderStats::default());
            let mut known: BTreeMap<String, Known> = BTreeMap::new();
            let mut readers: JoinSet<Result<()>> = JoinSet::new();
            let mut lag: BTreeMap<String, i64> = BTreeMap::new();

            // The stream must exist at start; later discovery failures are retried.
            let discovery = Discovery {
                client: &client,
                config: &config,
            };
            let consumer_arn = match &config.efo_consumer {
                Some(name) => Some(register_consumer(&client, &config, name).await?),
                None => None,
            };
            let listed = discovery.list().await.map_err(|code| {
                SluiceError::runtime(format!("cannot list the shards of Kinesis stream {stream}: {code}"))
            })?;
            merge_listing(&mut known, listed);
            tracing::info!(stream = %stream, shards = known.len(), resumed = ctx.resume_bytes.is_some(), "reading Kinesis stream");

            let spawn = |shard: &str, start: ShardStart, readers: &mut JoinSet<Result<()>>| {
                let reader = ShardReader {
                    client: client.clone(),
                    consumer_arn: consumer_arn.clone(),
                    config: Arc::clone(&config),
                    shard: Arc::from(shard),
                    start,
                    events: events_tx.clone(),
                    shutdown: readers_stop.clone(),
                    stats: Arc::clone(&stats),
                };
                readers.spawn(reader.run());
            };
            start_ready(&mut known, &positions, &config.start, &mut readers, &spawn);
            for (shard, _) in known.iter().filter(|(_, k)| k.running) {
                ctx.open_partition(stream_index(shard, streams), shard);
            }

            let mut discover_every =
                tokio::time::interval(Duration::from_millis(config.discovery_interval_ms.max(100)));
            discover_every.tick().await;
            let mut bounds = tokio::time::interval(ctx.bound_interval().unwrap_or(Duration::from_secs(1)));
            let wall_clock = ctx.bound_interval().is_some();
            let mut report = tokio::time::interval(Duration::from_secs(30));
            report.tick().await;
            let mut trigger = ctx.checkpoint_trigger();
            let mut shutdown = ctx.shutdown.clone();
            loop {
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        match event {
                            ShardEvent::Records { shard, records, corrupt, last_sequence, millis_behind } => {
                                ctx.publish_to(stream_index(&shard, streams), &records).await;
                                if !corrupt.is_empty() {
                                    let rows = corrupt_rows(&ctx.input, &shard, corrupt);
                                    let _ = ctx.errors.send(rows);
                                }
                                if let Some(seq) = last_sequence {
                                    positions.shards.entry(shard.to_string()).or_default().seq = Some(seq);
                                }
                                if let Some(ms) = millis_behind {
                                    metrics::gauge!("sluice_kinesis_millis_behind_latest", "stream" => stream.clone(), "shard" => shard.to_string()).set(ms as f64);
                                    lag.insert(shard.to_string(), ms);
                                }
                            }
                            ShardEvent::Closed { shard, children } => {
                                tracing::info!(stream = %stream, shard = %shard, children = ?children.iter().map(|c| &c.0).collect::<Vec<_>>(), "shard closed and read to its end");
                                positions.shards.entry(shard.to_string()).or_default().closed = true;
                                // An ended shard no longer holds the event-time watermark back.
                                ctx.close_partition(stream_index(&shard, streams), &shard).await;
                                lag.remove(shard.as_ref());
                                if let Some(k) = known.get_mut(shard.as_ref()) {
                                    k.running = false;
                                }
                                // Children come from the response's ChildShards (with every
                                // parent, so a merge waits for both) and from a fresh listing,
                                // for servers that do not send ChildShards.
                                for (child, parents) in children {
                                    known.entry(child).or_insert(Known {
                                        parents,
                                        closed_when_listed: false,
                                        running: false,
                                    });
                                }
                                if let Ok(listed) = discovery.list().await {
                                    merge_listing(&mut known, listed);
                                }
                                start_ready(&mut known, &positions, &config.start, &mut readers, &spawn);
                            }
                        }
                    }
                    _ = discover_every.tick() => {
                        match discovery.list().await {
                            Ok(listed) => {
                                merge_listing(&mut known, listed);
                                start_ready(&mut known, &positions, &config.start, &mut readers, &spawn);
                            }
                            Err(code) => tracing::warn!(stream = %stream, error = %code, "ListShards failed; will retry"),
                        }
                    }
                    _ = bounds.tick(), if wall_clock => {
                        let now = ctx.clock();
                        ctx.bound(now).await;
                    }
                    _ = report.tick() => {
                        tracing::info!(
                            stream = %stream,
                            shards_reading = known.values().filter(|k| k.running).count(),
                            max_millis_behind_latest = lag.values().copied().max().unwrap_or(0),
                            get_records_calls = stats.get_records_calls.load(Ordering::Relaxed),
                            throttled = stats.throttled.load(Ordering::Relaxed),
                            "Kinesis source"
                        );
                    }
                    changed = wait_trigger(&mut trigger) => {
                        if !changed {
                            trigger = None;
                        }
                    }
                    _ = stop_requested(&mut shutdown) => break,
                    Some(joined) = readers.join_next() => {
                        match joined {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Err(e),
                            Err(e) => return Err(SluiceError::runtime(format!("a Kinesis shard reader failed: {e}"))),
                        }
                    }
                }
                // Every shard being read takes part in the event-time watermark from its start.
                for (shard, _) in known.iter().filter(|(_, k)| k.running) {
                    ctx.open_partition(stream_index(shard, streams), shard);
                }
                ctx.checkpoint_point_with(|| serde_json::to_vec(&positions).unwrap_or_default())
                    .await;
            }
            let _ = stop_readers.send(true);
            readers.abort_all();
            let final_position = serde_json::to_vec(&positions).unwrap_or_default();
            ctx.stop(final_position).await;
            tracing::info!(
                stream = %stream,
                get_records_calls = stats.get_records_calls.load(Ordering::Relaxed),
                throttled = stats.throttled.load(Ordering::Relaxed),
                expired_iterators = stats.expired_iterators.load(Ordering::Relaxed),
                "Kinesis source stopped"
            );
            Ok(())
        })
    }
}

/// Registers the enhanced fan-out consumer `name` (or finds it, when it exists) and
/// waits until it is ACTIVE; returns its ARN.
async fn register_consumer(client: &Client, config: &KinesisSourceConfig, name: &str) -> Result<String> {
    let stream = &config.connection.stream_name;
    let fail = |what: &str, code: String| {
        SluiceError::runtime(format!(
            "enhanced fan-out for Kinesis stream {stream}: {what} failed: {code} (an endpoint without \
             RegisterStreamConsumer/SubscribeToShard cannot use `efo_consumer`)"
        ))
    };
    let stream_arn = match &config.connection.stream_arn {
        Some(arn) => arn.clone(),
        None => client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| fail("DescribeStreamSummary", error_code(&e)))?
            .stream_description_summary()
            .map(|s| s.stream_arn().to_string())
            .ok_or_else(|| fail("DescribeStreamSummary", "no stream description".into()))?,
    };
    match client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name(name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => {
            let code = error_code(&e);
            if code != "ResourceInUseException" {
                return Err(fail("RegisterStreamConsumer", code));
            }
        }
    }
    for _ in 0..600 {
        let d = client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| fail("DescribeStreamConsumer", error_code(&e)))?;
        if let Some(c) = d.consumer_description()
            && *c.consumer_status() == aws_sdk_kinesis::types::ConsumerStatus::Active
        {
            tracing::info!(stream = %stream, consumer = name, "reading with enhanced fan-out");
            return Ok(c.consumer_arn().to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail("waiting for the consumer to become ACTIVE", "timed out".into()))
}

/// Waits for the next checkpoint trigger; false when there will be none.
async fn wait_trigger(trigger: &mut Option<watch::Receiver<u64>>) -> bool {
    match trigger {
        Some(t) => t.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

fn merge_listing(known: &mut BTreeMap<String, Known>, listed: Vec<aws_sdk_kinesis::types::Shard>) {
    for s in listed {
        known.entry(s.shard_id().to_string()).or_insert_with(|| Known {
            parents: s
                .parent_shard_id()
                .into_iter()
                .chain(s.adjacent_parent_shard_id())
                .map(str::to_string)
                .collect(),
            closed_when_listed: s
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_some(),
            running: false,
        });
    }
}

/// Starts every shard that is not running, not finished, and whose parents are all
/// finished (or no longer in the stream).
fn start_ready(
    known: &mut BTreeMap<String, Known>,
    positions: &Positions,
    configured: &StartPosition,
    readers: &mut JoinSet<Result<()>>,
    spawn: &impl Fn(&str, ShardStart, &mut JoinSet<Result<()>>),
) {
    let finished = |id: &str, known: &BTreeMap<String, Known>| {
        positions.shards.get(id).is_some_and(|p| p.closed) || !known.contains_key(id)
    };
    let ready: Vec<(String, ShardStart)> = known
        .iter()
        .filter(|(id, k)| !k.running && !finished(id, known))
        .filter(|(_, k)| k.parents.iter().all(|p| finished(p, known)))
        .map(|(id, k)| {
            let start = match positions.shards.get(id).and_then(|p| p.seq.clone()) {
                Some(seq) => ShardStart::AfterSequence(seq),
                None => {
                    // A child of a shard this application read from: all of it, so
                    // nothing written between the reshard and now is skipped. A child
                    // of shards closed before the application ever read them: the
                    // configured start, like any other shard.
                    let inherited = k.parents.iter().all(|p| {
                        known.get(p).is_none_or(|pk| pk.closed_when_listed)
                            && positions.shards.get(p).is_none_or(|pp| pp.seq.is_none())
                    });
                    if inherited {
                        ShardStart::At(configured.clone())
                    } else {
                        ShardStart::At(StartPosition::TrimHorizon)
                    }
                }
            };
            (id.clone(), start)
        })
        .collect();
    for (id, start) in ready {
        tracing::debug!(shard = %id, ?start, "starting shard reader");
        spawn(&id, start, readers);
        if let Some(k) = known.get_mut(&id) {
            k.running = true;
        }
    }
}

fn corrupt_rows(stream: &str, shard: &str, corrupt: Vec<(String, Vec<u8>, String)>) -> Vec<ErrorRow> {
    let now = now_millis();
    corrupt
        .into_iter()
        .map(|(seq, data, reason)| {
            ErrorRow::for_record(
                "CorruptAggregate",
                format!("{stream}: KPL aggregated record {seq} in shard {shard} is corrupt: {reason}"),
                &data,
                now,
                stream,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_dealt_to_streams_by_number() {
        assert_eq!(stream_index("shardId-000000000000", 2), 0);
        assert_eq!(stream_index("shardId-000000000001", 2), 1);
        assert_eq!(stream_index("shardId-000000000002", 2), 0);
        assert_eq!(stream_index("shardId-000000000007", 1), 0);
    }

    #[test]
    fn positions_round_trip() {
        let mut p = Positions::default();
        p.shards.insert(
            "shardId-000000000000".into(),
            ShardPosition {
                seq: Some("4959".into()),
                closed: true,
            },
        );
        let bytes = serde_json::to_vec(&p).unwrap();
        assert_eq!(serde_json::from_slice::<Positions>(&bytes).unwrap(), p);
    }
}
