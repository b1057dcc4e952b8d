//! The built-in demo generator: ride-hailing events with a realistic mix of event
//! types and, every minute or two, a burst of cancellations (the kind of spike the
//! cancellation-spike alert exists to catch).
//!
//! Deterministic for a seed: the same seed gives the same events and bursts. With the
//! wall clock it paces itself to `rate` events per second; in recorded time it stamps
//! event i at `start + i / rate` and runs as fast as it can (tests, benchmarks).

use futures::future::BoxFuture;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::RawRecord;
use super::source::{PendingRecords, Source, SourceContext, stop_requested};
use crate::engine::TimeMode;
use crate::error::Result;
use crate::time::Millis;

const CITIES: [&str; 6] = ["Lisbon", "Porto", "Braga", "Faro", "Coimbra", "Aveiro"];
/// Normal mix: (event type, weight).
const NORMAL_MIX: [(&str, u32); 5] = [
    ("REQUESTED", 34),
    ("ACCEPTED", 24),
    ("STARTED", 16),
    ("COMPLETED", 21),
    ("CANCELLATION", 5),
];
/// Share of cancellations during a burst, in percent.
const BURST_CANCELLATION_PCT: u32 = 45;
/// 2024-03-01 00:00:00 UTC: where recorded-time generation starts.
const RECORDED_START: Millis = 1_709_251_200_000;

/// The schema of the generated events, as a KDA input schema would map them.
pub const COLUMNS: [(&str, &str, &str); 6] = [
    ("RIDE_ID", "VARCHAR(16)", "$.ride_id"),
    ("EVENT_TYPE", "VARCHAR(16)", "$.event_type"),
    ("CITY", "VARCHAR(16)", "$.city"),
    ("FARE", "REAL", "$.fare"),
    ("DRIVER_ID", "INTEGER", "$.driver_id"),
    ("EVENT_TIME", "TIMESTAMP", "$.event_time"),
];

/// An input of the ride generator, with its schema, as the benchmarks run it:
/// `SOURCE_SQL_STREAM_001`, seed 42.
pub fn ride_input(rate: u64, limit: Option<u64>) -> crate::app::InputSpec {
    use crate::app::{InputSpec, RecordColumn, RecordFormat, RecordSchema, SourceSpec};
    let columns = COLUMNS
        .iter()
        .map(|(name, sql_type, mapping)| RecordColumn {
            column: crate::types::ColumnDef::new(
                *name,
                crate::types::SqlType::parse(sql_type).expect("the generator's types parse"),
            ),
            mapping: Some(mapping.to_string()),
        })
        .collect();
    InputSpec {
        name_prefix: "SOURCE_SQL_STREAM".into(),
        stream_name: None,
        parallelism: 1,
        event_time: None,
        preprocessor: None,
        schema: RecordSchema {
            columns,
            format: RecordFormat::Json { row_path: "$".into() },
        },
        source: SourceSpec::Generator { rate, seed: 42, limit },
    }
}

pub struct RideEvents {
    rng: SmallRng,
    next_id: u64,
    /// Milliseconds since the start at which the current or next burst starts / ends.
    burst_start: Millis,
    burst_end: Millis,
}

impl RideEvents {
    pub fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        // The first burst comes early so a demo alerts within a couple of minutes.
        let burst_start = rng.random_range(20_000..50_000);
        let burst_end = burst_start + rng.random_range(35_000..55_000);
        RideEvents {
            rng,
            next_id: 100_000,
            burst_start,
            burst_end,
        }
    }

    /// Is `elapsed` (ms since start) inside a burst? Schedules the next burst after one ends.
    fn in_burst(&mut self, elapsed: Millis) -> bool {
        while elapsed >= self.burst_end {
            self.burst_start = self.burst_end + self.rng.random_range(60_000..150_000);
            self.burst_end = self.burst_start + self.rng.random_range(35_000..55_000);
        }
        elapsed >= self.burst_start
    }

    /// One event as JSON, for an event that happened at `event_time`, `elapsed` ms
    /// after the generator started.
    pub fn next_event(&mut self, elapsed: Millis, event_time: Millis) -> Vec<u8> {
        let burst = self.in_burst(elapsed);
        let event_type = if burst && self.rng.random_range(0..100) < BURST_CANCELLATION_PCT {
            "CANCELLATION"
        } else {
            let total: u32 = NORMAL_MIX.iter().map(|(_, w)| w).sum();
            let mut pick = self.rng.random_range(0..total);
            NORMAL_MIX
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(t, _)| *t)
                .unwrap_or("REQUESTED")
        };
        let city = CITIES[self.rng.random_range(0..CITIES.len())];
        let fare = match event_type {
            "COMPLETED" => format!("{:.2}", self.rng.random_range(4.0..60.0f64)),
            "CANCELLATION" => "0.0".to_string(),
            _ => "null".to_string(),
        };
        let id = self.next_id;
        self.next_id += 1;
        let driver = self.rng.random_range(1..500u32);
        format!(
            r#"{{"ride_id":"R{id}","event_type":"{event_type}","city":"{city}","fare":{fare},"driver_id":{driver},"event_time":"{}"}}"#,
            crate::time::format_timestamp(event_time)
        )
        .into_bytes()
    }
}

pub struct GeneratorSource {
    pub rate: u64,
    pub seed: u64,
    pub limit: Option<u64>,
}

impl Source for GeneratorSource {
    fn run(self: Box<Self>, mut ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let rate = self.rate.max(1);
            let mut events = RideEvents::new(self.seed);
            // Position = events produced. Resuming replays the generator's choices up to
            // the checkpoint (cheap), so the events after it are the same ones.
            let resumed = ctx.resume.unwrap_or(0);
            for i in 0..resumed {
                let elapsed = (i * 1000 / self.rate.max(1)) as Millis;
                events.next_event(elapsed, 0);
            }
            let mut produced: u64 = resumed;
            let limit = self.limit.unwrap_or(u64::MAX);
            match ctx.time.clone() {
                TimeMode::Recorded { .. } => {
                    // Synthetic time: as fast as possible, deterministic ROWTIMEs.
                    let mut batch = PendingRecords::default();
                    while produced < limit && !*ctx.shutdown.borrow() {
                        let elapsed = (produced * 1000 / rate) as Millis;
                        let t = RECORDED_START + elapsed;
                        let full = batch.push(RawRecord {
                            data: events.next_event(elapsed, t),
                            rowtime: Some(t),
                            ..Default::default()
                        });
                        produced += 1;
                        if full {
                            ctx.publish(batch.records()).await;
                            batch.clear();
                            ctx.checkpoint_point(produced).await;
                        }
                    }
                    ctx.publish(batch.records()).await;
                }
                TimeMode::WallClock { .. } => {
                    let start = ctx.clock();
                    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
                    let mut bound_every =
                        tokio::time::interval(ctx.bound_interval().unwrap_or(std::time::Duration::from_secs(1)));
                    let mut shutdown = ctx.shutdown.clone();
                    while produced < limit {
                        tokio::select! {
                            _ = tick.tick() => {
                                let now = ctx.clock();
                                let due = (resumed + ((now - start) as u64) * rate / 1000 + 1).min(limit);
                                let batch: Vec<RawRecord> = (produced..due)
                                    .map(|_| RawRecord { data: events.next_event(now - start, now), ..Default::default() })
                                    .collect();
                                produced = due.max(produced);
                                ctx.publish(&batch).await;
                                ctx.checkpoint_point(produced).await;
                            }
                            _ = bound_every.tick() => {
                                let now = ctx.clock();
                                ctx.bound(now).await;
                            }
                            _ = stop_requested(&mut shutdown) => break,
                        }
                    }
                }
            }
            ctx.finish(produced).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_and_bursts_raise_cancellations() {
        let mut a = RideEvents::new(7);
        let mut b = RideEvents::new(7);
        for i in 0..100 {
            assert_eq!(a.next_event(i * 50, i), b.next_event(i * 50, i));
        }
        let mut g = RideEvents::new(7);
        let share = |g: &mut RideEvents, from: Millis| {
            let n = 2000;
            let c = (0..n)
                .filter(|i| {
                    String::from_utf8(g.next_event(from + i, 0))
                        .unwrap()
                        .contains("CANCELLATION")
                })
                .count();
            c as f64 / n as f64
        };
        let normal = share(&mut g, 0);
        let (start, end) = (g.burst_start, g.burst_end);
        assert!(end > start);
        let burst = share(&mut g, start);
        assert!(normal < 0.1, "normal share {normal}");
        assert!(burst > 0.3, "burst share {burst}");
    }
}
