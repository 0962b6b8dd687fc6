//! What an engine counts of the task attempts it sees: attempts and failed attempts by task, and
//! a histogram of how long attempts took. A server serves them at `/metrics` (feature `server`),
//! with counts read from its store.
//!
//! An engine counts the attempts it runs itself (timed around the task's body) once a server
//! serves it ([`Metrics::enable`]: an engine nobody reads the counters of pays one atomic load
//! per attempt); a server also counts those its workers report, from the events of their
//! checkpoints ([`Attempts`]). The counters start at zero with the process, as Prometheus
//! counters do.

// Without a server, attempts are counted and never read.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::event::{Event, EventType};

/// The upper bounds of the attempt-latency histogram's buckets, in seconds (then `+Inf`).
pub(crate) const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0];

/// How many attempts of workers' tasks a server keeps open (started, not ended) at most; beyond
/// it, new ones are counted but not timed.
const OPEN_ATTEMPTS: usize = 100_000;

/// The counts of one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TaskCounts {
    /// Attempts that ended (completed or failed).
    pub(crate) attempts: u64,
    /// Attempts that failed (an error, a timeout, a panic).
    pub(crate) failures: u64,
}

/// A cumulative histogram, read at once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Histogram {
    /// The count of each bucket of [`BUCKETS`] (not cumulative), then those above the last.
    pub(crate) buckets: [u64; BUCKETS.len() + 1],
    /// The number of observations.
    pub(crate) count: u64,
    /// Their sum, in seconds.
    pub(crate) sum: f64,
}

/// An engine's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Whether attempts are counted: from when a server serves the engine's metrics, so that an
    /// engine nobody reads the counters of does not time its attempts.
    enabled: AtomicBool,
    tasks: Mutex<HashMap<Arc<str>, TaskCounts>>,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Attempts of workers' tasks started and not ended yet: when each started, by execution
    /// and task id.
    open: Mutex<HashMap<OpenAttempt, SystemTime>>,
}

/// An attempt of a worker's task begun and not ended: its execution and task id.
type OpenAttempt = (Arc<str>, Arc<str>);

impl Metrics {
    /// Starts counting.
    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether attempts are counted.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Counts an attempt of `task` that ended (`failed` or not) after `took` (`None`: not timed).
    pub(crate) fn attempt(&self, task: &str, took: Option<Duration>, failed: bool) {
        {
            let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            let counts = match tasks.get_mut(task) {
                Some(counts) => counts,
                None => tasks.entry(Arc::from(task)).or_default(),
            };
            counts.attempts += 1;
            counts.failures += u64::from(failed);
        }
        if let Some(took) = took {
            let seconds = took.as_secs_f64();
            let bucket = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            self.count.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }

    /// The counts of every task seen, by name.
    pub(crate) fn tasks(&self) -> Vec<(Arc<str>, TaskCounts)> {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = tasks.iter().map(|(name, counts)| (name.clone(), *counts)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The attempt-latency histogram now.
    pub(crate) fn latency(&self) -> Histogram {
        let mut h = Histogram::default();
        for (slot, bucket) in h.buckets.iter_mut().zip(&self.buckets) {
            *slot = bucket.load(Ordering::Relaxed);
        }
        h.count = self.count.load(Ordering::Relaxed);
        // Microseconds to seconds: exact enough for any sum a process reaches.
        #[allow(clippy::cast_precision_loss)]
        let seconds = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        h.sum = seconds;
        h
    }

    /// Counts the attempts that the events a worker recorded for `execution` begin and end (see
    /// [`Attempts`]).
    pub(crate) fn observe<'a>(&self, execution: &str, events: impl IntoIterator<Item = &'a Event>) {
        for event in events {
            match Attempts::of(event.kind()) {
                Attempts::Begin => {
                    let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                    if open.len() < OPEN_ATTEMPTS {
                        open.insert((Arc::from(execution), Arc::from(event.source_id())), event.time());
                    }
                }
                Attempts::End { failed } => {
                    let key = (Arc::from(execution), Arc::from(event.source_id()));
                    let began = self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    // An end with no attempt open closes none: the final event of a call whose
                    // last attempt already ended (`TASK_COMPLETED` after `TASK_RETRY_COMPLETED`).
                    if let Some(began) = began {
                        let took = event.time().duration_since(began).ok();
                        self.attempt(event.name(), took, failed);
                    }
                }
                Attempts::Neither => {}
            }
        }
    }
}

/// What an event says of a task's attempts: an attempt begins with `TASK_STARTED` or
/// `TASK_RETRY_STARTED`, and the first of `TASK_COMPLETED`, `TASK_RETRY_COMPLETED` (it
/// succeeded), `TASK_RETRY_FAILED`, `TASK_FAILED` or `TASK_FALLBACK_STARTED` (it failed) that
/// follows ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempts {
    Begin,
    End { failed: bool },
    Neither,
}

impl Attempts {
    fn of(kind: EventType) -> Attempts {
        match kind {
            EventType::TaskStarted | EventType::TaskRetryStarted => Attempts::Begin,
            EventType::TaskCompleted | EventType::TaskRetryCompleted => Attempts::End { failed: false },
            EventType::TaskRetryFailed | EventType::TaskFailed | EventType::TaskFallbackStarted => {
                Attempts::End { failed: true }
            }
            _ => Attempts::Neither,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, task: &str, millis: u64) -> Event {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        Event::new(1, kind, format!("{task}_0"), task, Vec::new(), time)
    }

    #[test]
    fn attempts_are_counted_by_task_and_timed_into_their_bucket() {
        let m = Metrics::default();
        m.attempt("charge", Some(Duration::from_millis(3)), false);
        m.attempt("charge", Some(Duration::from_secs(200)), true);
        m.attempt("mail", None, true);
        assert_eq!(
            m.tasks(),
            vec![
                (Arc::from("charge"), TaskCounts { attempts: 2, failures: 1 }),
                (Arc::from("mail"), TaskCounts { attempts: 1, failures: 1 }),
            ]
        );
        let h = m.latency();
        assert_eq!(h.count, 2);
        assert_eq!(h.buckets[3], 1, "3 ms falls in the 5 ms bucket");
        assert_eq!(h.buckets[BUCKETS.len()], 1, "200 s is above every bound");
        assert!((h.sum - 200.003).abs() < 1e-6, "{}", h.sum);
    }

    /// A worker's call retried once then completed: two attempts, one failed, each timed from
    /// its start event; the call's final event ends nothing more.
    #[test]
    fn a_workers_events_count_each_attempt_once() {
        let m = Metrics::default();
        m.observe(
            "e1",
            [event(EventType::TaskStarted, "charge", 0), event(EventType::TaskRetryFailed, "charge", 20)].iter(),
        );
        m.observe(
            "e1",
            [
                event(EventType::TaskRetryStarted, "charge", 1000),
                event(EventType::TaskRetryCompleted, "charge", 1002),
                event(EventType::TaskCompleted, "charge", 1002),
                event(EventType::TaskFailed, "other", 5),
            ]
            .iter(),
        );
        assert_eq!(m.tasks(), vec![(Arc::from("charge"), TaskCounts { attempts: 2, failures: 1 })]);
        let h = m.latency();
        assert_eq!((h.count, h.buckets[2], h.buckets[5]), (2, 1, 1), "{h:?}");
    }
}
