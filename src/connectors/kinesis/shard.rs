//! One shard's reader: GetShardIterator, then GetRecords in a loop within Kinesis's
//! limits, handing each response to the source as one slice of records.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::client::{error_code, is_throttling};
use super::config::{KinesisSourceConfig, StartPosition};
use super::kpl::{Deaggregated, deaggregate};
use crate::connectors::RawRecord;

/// Where a shard reader starts.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardStart {
    At(StartPosition),
    /// After the last record published before the checkpoint a restart resumes from.
    AfterSequence(String),
}

/// What a shard reader tells the source.
#[derive(Debug)]
pub enum ShardEvent {
    /// One GetRecords response (KPL aggregates split), with the sequence number of its
    /// last Kinesis record: the shard's position once these are published.
    Records {
        shard: Arc<str>,
        records: Vec<RawRecord>,
        /// Aggregates that failed their checks: (sequence number, data, reason).
        corrupt: Vec<(String, Vec<u8>, String)>,
        last_sequence: Option<String>,
        millis_behind: Option<i64>,
    },
    /// The shard is closed and read to its end; its children (with all their parents,
    /// as the response's ChildShards name them) may start.
    Closed {
        shard: Arc<str>,
        children: Vec<(String, Vec<String>)>,
    },
}

/// Counters the readers share with the source's reports.
#[derive(Debug, Default)]
pub struct ReaderStats {
    pub get_records_calls: std::sync::atomic::AtomicU64,
    pub throttled: std::sync::atomic::AtomicU64,
    pub expired_iterators: std::sync::atomic::AtomicU64,
}

pub struct ShardReader {
    pub client: Client,
    /// Enhanced fan-out: the registered consumer to subscribe with; polling when None.
    pub consumer_arn: Option<String>,
    pub config: Arc<KinesisSourceConfig>,
    pub shard: Arc<str>,
    pub start: ShardStart,
    pub events: mpsc::Sender<ShardEvent>,
    pub shutdown: watch::Receiver<bool>,
    pub stats: Arc<ReaderStats>,
}

/// Exponential backoff with full jitter, as AWS recommends for throttling.
struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE_MS: u64 = 100;
    const CAP_MS: u64 = 10_000;

    fn next(&mut self) -> Duration {
        let ceiling = (Self::BASE_MS << self.attempt.min(10)).min(Self::CAP_MS);
        self.attempt += 1;
        Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling))
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl ShardReader {
    /// Reads the shard until it is closed and read to its end, or shutdown.
    pub async fn run(self) -> crate::Result<()> {
        match self.consumer_arn.clone() {
            Some(consumer) => self.subscribe(consumer).await,
            None => self.poll().await,
        }
    }

    /// Enhanced fan-out: SubscribeToShard pushes events over HTTP/2 for up to 5 minutes,
    /// then the subscription ends and is renewed from the continuation sequence number.
    async fn subscribe(mut self, consumer_arn: String) -> crate::Result<()> {
        use aws_sdk_kinesis::types::{StartingPosition as Position, SubscribeToShardEventStream};
        let mut last_sequence: Option<String> = match &self.start {
            ShardStart::AfterSequence(s) => Some(s.clone()),
            ShardStart::At(_) => None,
        };
        let mut backoff = Backoff { attempt: 0 };
        let mut last_end_check: Option<Instant> = None;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            let position = match (&last_sequence, &self.start) {
                (Some(seq), _) | (None, ShardStart::AfterSequence(seq)) => Position::builder()
                    .r#type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                (None, ShardStart::At(StartPosition::TrimHorizon)) => {
                    Position::builder().r#type(ShardIteratorType::TrimHorizon)
                }
                (None, ShardStart::At(StartPosition::Latest)) => Position::builder().r#type(ShardIteratorType::Latest),
                (None, ShardStart::At(StartPosition::AtTimestamp(t))) => Position::builder()
                    .r#type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from_millis(*t)),
            }
            .build()
            .map_err(|e| crate::SluiceError::runtime(format!("SubscribeToShard position: {e}")))?;
            self.stats
                .get_records_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let subscribed = self
                .client
                .subscribe_to_shard()
                .consumer_arn(&consumer_arn)
                .shard_id(self.shard.as_ref())
                .starting_position(position)
                .send()
                .await;
            let mut output = match subscribed {
                Ok(o) => o,
                Err(e) => {
                    // ResourceInUse: the previous subscription of this shard is still
                    // open on the service side; it lets go within seconds.
                    if !self
                        .retry_after(&error_code(&e), &mut backoff, "SubscribeToShard")
                        .await
                    {
                        return Ok(());
                    }
                    continue;
                }
            };
            loop {
                let event = tokio::select! {
                    e = output.event_stream.recv() => e,
                    _ = self.shutdown.changed() => return Ok(()),
                };
                match event {
                    Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e))) => {
                        backoff.reset();
                        let (records, corrupt, _) = convert_records(e.records(), &self.shard, self.config.deaggregate);
                        last_sequence = Some(e.continuation_sequence_number().to_string());
                        let event = ShardEvent::Records {
                            shard: Arc::clone(&self.shard),
                            records,
                            corrupt,
                            last_sequence: last_sequence.clone(),
                            millis_behind: Some(e.millis_behind_latest()),
                        };
                        if self.events.send(event).await.is_err() {
                            return Ok(());
                        }
                        // Kinesis names the children in a closed shard's last event. A
                        // server that does not (kinesis-mock keeps sending empty events) is
                        // asked, now and then while caught up, whether the shard has ended.
                        let caught_up = e.records().is_empty() && e.millis_behind_latest() == 0;
                        let check_due = last_end_check.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
                        let ended = !e.child_shards().is_empty()
                            || (caught_up && check_due && {
                                last_end_check = Some(Instant::now());
                                self.read_to_end(last_sequence.clone()).await
                            });
                        if ended {
                            let children = e.child_shards().iter().map(child).collect();
                            let _ = self
                                .events
                                .send(ShardEvent::Closed {
                                    shard: Arc::clone(&self.shard),
                                    children,
                                })
                                .await;
                            return Ok(());
                        }
                    }
                    Ok(Some(_)) => {}
                    // The subscription's 5 minutes are up: subscribe again.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(shard = %self.shard, error = %aws_sdk_kinesis::error::DisplayErrorContext(&e), "subscription ended; subscribing again");
                        break;
                    }
                }
            }
        }
    }

    /// True when the shard is closed and nothing is left after `after`: GetRecords
    /// there returns no record and no next iterator.
    async fn read_to_end(&mut self, after: Option<String>) -> bool {
        let mut backoff = Backoff { attempt: 0 };
        let Ok(Some(iterator)) = self.iterator(after.as_deref(), &mut backoff).await else {
            return false;
        };
        match self.client.get_records().shard_iterator(iterator).limit(1).send().await {
            Ok(r) => r.records().is_empty() && r.next_shard_iterator().is_none(),
            Err(_) => false,
        }
    }

    async fn poll(mut self) -> crate::Result<()> {
        let mut last_sequence: Option<String> = match &self.start {
            ShardStart::AfterSequence(s) => Some(s.clone()),
            ShardStart::At(_) => None,
        };
        let mut backoff = Backoff { attempt: 0 };
        let Some(mut iterator) = self.iterator(last_sequence.as_deref(), &mut backoff).await? else {
            return Ok(());
        };
        let min_interval = Duration::from_millis(self.config.poll_interval_ms.max(200));
        let idle_max = Duration::from_millis(self.config.idle_poll_max_ms).max(min_interval);
        let mut interval = min_interval;
        let mut last_call: Option<Instant> = None;
        loop {
            if let Some(t) = last_call {
                let due = t + interval;
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.shutdown.changed() => return Ok(()),
                }
            }
            if *self.shutdown.borrow() {
                return Ok(());
            }
            last_call = Some(Instant::now());
            self.stats
                .get_records_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let response = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(self.config.max_records.clamp(1, 10_000))
                .send()
                .await;
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    let code = error_code(&e);
                    if is_throttling(&code) {
                        self.stats.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let wait = backoff.next();
                        tracing::debug!(shard = %self.shard, %code, wait_ms = wait.as_millis() as u64, "throttled; backing off");
                        interval = wait.max(min_interval);
                    } else if code == "ExpiredIteratorException" {
                        // Iterators live 5 minutes: take a new one where this one was.
                        self.stats
                            .expired_iterators
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        match self.iterator(last_sequence.as_deref(), &mut backoff).await? {
                            Some(i) => iterator = i,
                            None => return Ok(()),
                        }
                    } else {
                        let wait = backoff.next();
                        tracing::warn!(shard = %self.shard, error = %code, wait_ms = wait.as_millis() as u64, "GetRecords failed; retrying");
                        interval = wait.max(min_interval);
                    }
                    continue;
                }
            };
            backoff.reset();
            let millis_behind = response.millis_behind_latest();
            let (records, corrupt, last) = self.convert(response.records());
            let empty = records.is_empty() && corrupt.is_empty();
            if let Some(last) = last {
                last_sequence = Some(last);
            }
            if !empty || millis_behind.is_some() {
                let event = ShardEvent::Records {
                    shard: Arc::clone(&self.shard),
                    records,
                    corrupt,
                    last_sequence: last_sequence.clone(),
                    millis_behind,
                };
                if self.events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            match response.next_shard_iterator() {
                Some(next) => iterator = next.to_string(),
                None => {
                    // Closed and read to its end (a reshard).
                    let children = response.child_shards().iter().map(child).collect();
                    let _ = self
                        .events
                        .send(ShardEvent::Closed {
                            shard: Arc::clone(&self.shard),
                            children,
                        })
                        .await;
                    return Ok(());
                }
            }
            // Adaptive polling: an idle shard is asked less often; a busy one (or one
            // behind) as often as the limit allows.
            interval = if empty && millis_behind.unwrap_or(0) == 0 {
                (interval * 2).min(idle_max)
            } else {
                min_interval
            };
        }
    }

    /// A shard iterator at the reader's position: after `after`, or at the configured
    /// start. None when shutdown came first.
    /// After a failed call: counts a throttle, then waits out the backoff. False when
    /// the reader is shut down meanwhile.
    async fn retry_after(&mut self, code: &str, backoff: &mut Backoff, call: &str) -> bool {
        if is_throttling(code) {
            self.stats.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let wait = backoff.next();
        tracing::debug!(shard = %self.shard, %code, wait_ms = wait.as_millis() as u64, "{call} failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.shutdown.changed() => false,
        }
    }

    async fn iterator(&mut self, after: Option<&str>, backoff: &mut Backoff) -> crate::Result<Option<String>> {
        loop {
            let mut request = self
                .client
                .get_shard_iterator()
                .stream_name(&self.config.connection.stream_name)
                .shard_id(self.shard.as_ref());
            request = match (after, &self.start) {
                (Some(seq), _) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                (None, ShardStart::AfterSequence(seq)) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                (None, ShardStart::At(StartPosition::TrimHorizon)) => {
                    request.shard_iterator_type(ShardIteratorType::TrimHorizon)
                }
                (None, ShardStart::At(StartPosition::Latest)) => request.shard_iterator_type(ShardIteratorType::Latest),
                (None, ShardStart::At(StartPosition::AtTimestamp(t))) => request
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from_millis(*t)),
            };
            match request.send().await {
                Ok(r) => match r.shard_iterator() {
                    Some(i) => return Ok(Some(i.to_string())),
                    None => {
                        return Err(crate::SluiceError::runtime(format!(
                            "Kinesis gave no iterator for shard {}",
                            self.shard
                        )));
                    }
                },
                Err(e) => {
                    let code = error_code(&e);
                    if code == "ResourceNotFoundException" || code == "InvalidArgumentException" {
                        return Err(crate::SluiceError::runtime(format!(
                            "Kinesis stream {} shard {}: {code}",
                            self.config.connection.stream_name, self.shard
                        )));
                    }
                    if !self.retry_after(&code, backoff, "GetShardIterator").await {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Kinesis records to raw records, splitting KPL aggregates.
    #[allow(clippy::type_complexity)]
    fn convert(
        &self,
        records: &[aws_sdk_kinesis::types::Record],
    ) -> (Vec<RawRecord>, Vec<(String, Vec<u8>, String)>, Option<String>) {
        convert_records(records, &self.shard, self.config.deaggregate)
    }
}

fn child(c: &aws_sdk_kinesis::types::ChildShard) -> (String, Vec<String>) {
    (c.shard_id().to_string(), c.parent_shards().to_vec())
}

/// Kinesis records of one GetRecords response to raw records (KPL aggregates split into
/// their user records), the aggregates that failed their checks, and the last sequence
/// number. Public for the read-path benchmark.
#[allow(clippy::type_complexity)]
pub fn convert_records(
    records: &[aws_sdk_kinesis::types::Record],
    shard: &Arc<str>,
    deaggregate_kpl: bool,
) -> (Vec<RawRecord>, Vec<(String, Vec<u8>, String)>, Option<String>) {
    let mut out = Vec::with_capacity(records.len());
    let mut corrupt = Vec::new();
    for r in records {
        let arrival = r.approximate_arrival_timestamp().map(|t| {
            t.to_millis()
                .unwrap_or_else(|_| t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000))
        });
        let data = r.data().as_ref();
        let sequence = r.sequence_number();
        let split = if deaggregate_kpl {
            deaggregate(data)
        } else {
            Deaggregated::Plain
        };
        match split {
            Deaggregated::Plain => out.push(RawRecord {
                data: data.to_vec(),
                rowtime: None,
                arrival,
                partition_key: r.partition_key().map(str::to_string),
                sequence_number: Some(sequence.to_string()),
                shard_id: Some(Arc::clone(shard)),
            }),
            Deaggregated::Records(users) => out.extend(users.into_iter().map(|u| RawRecord {
                data: u.data,
                rowtime: None,
                arrival,
                partition_key: Some(u.partition_key),
                // The user record's identity: the aggregate's sequence number and its
                // sub-sequence number, as the KCL writes them.
                sequence_number: Some(format!("{sequence}:{}", u.sub_sequence)),
                shard_id: Some(Arc::clone(shard)),
            })),
            Deaggregated::Corrupt(reason) => corrupt.push((sequence.to_string(), data.to_vec(), reason)),
        }
    }
    let last = records.last().map(|r| r.sequence_number().to_string());
    (out, corrupt, last)
}
