//! Retries, backoff and bisection of one batch, independent of HTTP: the callback sink
//! gives [`deliver`] a function that makes one call for a group of records and says what
//! became of each.
//!
//! * The receiver answered: records it did not answer `Ok` for (or did not answer for
//!   at all) are retried, after a backoff, until they have failed `max_attempts` times.
//! * The call failed as a whole (a 5xx, a timeout): with bisection on and more than one
//!   record in the call, the group is split in halves, each retried on its own (left
//!   first); splitting does not count as an attempt. A single record that fails as a
//!   whole counts an attempt. So one record that makes the receiver fail ends up alone,
//!   and only it fails; every other record is delivered.
//! * A whole failure that splitting cannot help (429, unreachable receiver) counts an
//!   attempt for every record of the group, which is retried whole.
//!
//! Backoff is exponential with full jitter over a failure streak shared by every batch
//! in flight to one endpoint: each call that leaves something to retry lengthens it,
//! each clean call resets it. While a receiver is down, calls are spaced out up to the
//! cap (and back-pressure holds the application) rather than hammering it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::Rng;

use super::config::Backoff;

impl Backoff {
    /// The longest wait after `streak` consecutive failures (streak >= 1).
    pub fn ceiling(&self, streak: u32) -> Duration {
        let exp = streak.saturating_sub(1).min(30);
        let ms = self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms);
        Duration::from_millis(ms)
    }

    /// A uniformly random wait in `[0, ceiling(streak)]` (full jitter).
    pub fn delay(&self, streak: u32) -> Duration {
        let ceiling = self.ceiling(streak).as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }
}

/// One record on its way, with its failures so far.
#[derive(Debug, Clone)]
pub struct Item<T> {
    pub value: T,
    /// Failed attempts so far (the KDA payload's `retryHint`).
    pub attempts: u32,
    pub last_error: String,
}

impl<T> Item<T> {
    pub fn new(value: T) -> Self {
        Item {
            value,
            attempts: 0,
            last_error: String::new(),
        }
    }
}

/// What one call did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The receiver answered; per record of the call, in order, `Ok` or why it failed.
    /// A shorter list leaves the last records unanswered (failed).
    PerRecord(Vec<Result<(), String>>),
    /// The call failed as a whole.
    Whole { reason: String, bisectable: bool },
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub bisect: bool,
}

/// What became of a batch.
#[derive(Debug)]
pub struct Report<T> {
    pub delivered: usize,
    /// Records that failed `max_attempts` times, with the last error.
    pub failed: Vec<Item<T>>,
    pub calls: u32,
    /// Records sent again after a failure.
    pub retried: u64,
    /// Groups split in halves.
    pub splits: u32,
}

/// Delivers `items` through `call`, retrying, backing off and bisecting (see the module
/// documentation). Never fails: what cannot be delivered comes back in `failed`.
pub async fn deliver<T, F, Fut>(items: Vec<T>, policy: &Policy, streak: &AtomicU32, mut call: F) -> Report<T>
where
    F: FnMut(&[Item<T>]) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut report = Report {
        delivered: 0,
        failed: Vec::new(),
        calls: 0,
        retried: 0,
        splits: 0,
    };
    let max_attempts = policy.max_attempts.max(1);
    let mut queue: VecDeque<Vec<Item<T>>> = VecDeque::new();
    if !items.is_empty() {
        queue.push_back(items.into_iter().map(Item::new).collect());
    }
    while let Some(group) = queue.pop_front() {
        report.calls += 1;
        let outcome = call(&group).await;
        let mut retry = Vec::new();
        let mut fail = |mut item: Item<T>, reason: String, report: &mut Report<T>| {
            item.attempts += 1;
            item.last_error = reason;
            if item.attempts >= max_attempts {
                report.failed.push(item);
            } else {
                retry.push(item);
            }
        };
        let clean = match outcome {
            Outcome::PerRecord(results) => {
                let mut clean = true;
                for (i, item) in group.into_iter().enumerate() {
                    match results.get(i) {
                        Some(Ok(())) => report.delivered += 1,
                        Some(Err(reason)) => {
                            clean = false;
                            fail(item, reason.clone(), &mut report);
                        }
                        None => {
                            clean = false;
                            fail(item, "the receiver gave no result for the record".into(), &mut report);
                        }
                    }
                }
                clean
            }
            Outcome::Whole { reason, bisectable } if policy.bisect && bisectable && group.len() > 1 => {
                let mut left = group;
                for item in &mut left {
                    item.last_error = reason.clone();
                }
                let right = left.split_off(left.len() / 2);
                report.splits += 1;
                queue.push_front(right);
                queue.push_front(left);
                false
            }
            Outcome::Whole { reason, .. } => {
                for item in group {
                    fail(item, reason.clone(), &mut report);
                }
                false
            }
        };
        if clean {
            streak.store(0, Ordering::Relaxed);
            continue;
        }
        let n = streak.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if !retry.is_empty() {
            report.retried += retry.len() as u64;
            queue.push_front(retry);
        }
        if !queue.is_empty() {
            tokio::time::sleep(policy.backoff.delay(n)).await;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> Policy {
        Policy {
            max_attempts,
            backoff: Backoff { base_ms: 0, cap_ms: 0 },
            bisect: true,
        }
    }

    /// A receiver that fails any call holding a poison value as a whole.
    fn poisoned(poison: &'static [u32]) -> impl FnMut(&[Item<u32>]) -> std::future::Ready<Outcome> {
        move |group| {
            let outcome = if group.iter().any(|i| poison.contains(&i.value)) {
                Outcome::Whole {
                    reason: "HTTP status 500".into(),
                    bisectable: true,
                }
            } else {
                Outcome::PerRecord(vec![Ok(()); group.len()])
            };
            std::future::ready(outcome)
        }
    }

    #[tokio::test]
    async fn bisect_isolates_one_poison_record() {
        let streak = AtomicU32::new(0);
        let report = deliver((0..16).collect(), &policy(3), &streak, poisoned(&[5])).await;
        assert_eq!(report.delivered, 15);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].value, 5);
        assert_eq!(report.failed[0].attempts, 3);
        assert_eq!(report.failed[0].last_error, "HTTP status 500");
        // 16 → 8 → 4 → 2 → 1: four splits, each a failed call plus its clean half; then
        // the poison alone three times.
        assert_eq!(report.splits, 4);
        assert_eq!(report.calls, 1 + 4 * 2 + 2);
    }

    #[tokio::test]
    async fn bisect_isolates_two_poison_records() {
        let streak = AtomicU32::new(0);
        let report = deliver((0..10).collect(), &policy(2), &streak, poisoned(&[0, 9])).await;
        assert_eq!(report.delivered, 8);
        let mut failed: Vec<u32> = report.failed.iter().map(|i| i.value).collect();
        failed.sort();
        assert_eq!(failed, [0, 9]);
    }

    #[tokio::test]
    async fn without_bisect_the_whole_group_fails_together() {
        let streak = AtomicU32::new(0);
        let mut p = policy(2);
        p.bisect = false;
        let report = deliver((0..4).collect(), &p, &streak, poisoned(&[1])).await;
        assert_eq!(report.delivered, 0);
        assert_eq!(report.failed.len(), 4);
        assert_eq!(report.calls, 2);
    }

    #[tokio::test]
    async fn per_record_failures_are_retried_and_unanswered_records_fail() {
        let streak = AtomicU32::new(0);
        let mut seen = Vec::new();
        // The first call fails record 1 and answers only three of four.
        let report = deliver((0..4u32).collect(), &policy(3), &streak, |group| {
            seen.push(group.iter().map(|i| (i.value, i.attempts)).collect::<Vec<_>>());
            let outcome = if seen.len() == 1 {
                Outcome::PerRecord(vec![Ok(()), Err("DeliveryFailed".into()), Ok(())])
            } else {
                Outcome::PerRecord(vec![Ok(()); group.len()])
            };
            std::future::ready(outcome)
        })
        .await;
        assert_eq!(report.delivered, 4);
        assert!(report.failed.is_empty());
        assert_eq!(report.retried, 2);
        assert_eq!(seen[1], [(1, 1), (3, 1)], "retried with their attempt counts");
        assert_eq!(streak.load(Ordering::Relaxed), 0, "a clean call resets the streak");
    }

    #[tokio::test]
    async fn an_unreachable_receiver_counts_attempts_without_splitting() {
        let streak = AtomicU32::new(0);
        let report = deliver((0..8u32).collect(), &policy(3), &streak, |_| {
            std::future::ready(Outcome::Whole {
                reason: "cannot connect".into(),
                bisectable: false,
            })
        })
        .await;
        assert_eq!(report.calls, 3);
        assert_eq!(report.splits, 0);
        assert_eq!(report.failed.len(), 8);
        assert_eq!(streak.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn backoff_is_exponential_up_to_the_cap() {
        let b = Backoff {
            base_ms: 100,
            cap_ms: 1_000,
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_millis(1_000));
        assert_eq!(b.ceiling(500), Duration::from_millis(1_000));
        for streak in 1..10 {
            assert!(b.delay(streak) <= b.ceiling(streak));
        }
    }
}
