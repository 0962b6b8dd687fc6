//! Admissions: the limits of queues kept by the store, so that every engine and server on one
//! database counts the same executions ([`Store::admit`](super::Store::admit)).
//!
//! An execution admitted under a scope (a queue's name, or a workflow's) holds a place there
//! while it is not finished and not paused; its admission time counts toward the scope's rate
//! for as long as the rate's period.

use std::time::{Duration, SystemTime};

/// A limit an execution must fit under to be admitted ([`Store::admit`](super::Store::admit)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionLimit {
    /// What it limits: the executions admitted under the same scope (`queue:emails`,
    /// `workflow:send_email`).
    pub scope: String,
    /// At most this many of them hold a place at once (not finished, not paused).
    pub concurrency: Option<usize>,
    /// At most this many admitted per period.
    pub rate: Option<(u32, Duration)>,
}

/// What [`Store::admit`](super::Store::admit) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Admitted (now, or before): the execution may start.
    Yes,
    /// A limit is reached: try again once an execution of the scope stops, or at `retry_at`
    /// when it is the rate that holds it back.
    No {
        /// When the rate allows one more (`None`: when a place frees).
        retry_at: Option<SystemTime>,
    },
}

/// The states whose executions hold no place (finished or paused), for SQL
/// (`state NOT IN (...)`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const RESTING: &str = "'COMPLETED', 'FAILED', 'CANCELLED', 'PAUSED'";

/// What the store found for one limit, and the decision it makes.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Found {
    /// The execution is admitted under this scope already.
    pub(crate) admitted: bool,
    /// The other executions of the scope holding a place.
    pub(crate) holding: u64,
    /// The other executions of the scope admitted within the rate's period, and the first of
    /// those admissions.
    pub(crate) recent: u64,
    pub(crate) first_recent: Option<SystemTime>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Found {
    /// `None` when `limit` lets the execution in, else why not.
    pub(crate) fn refusal(&self, limit: &AdmissionLimit) -> Option<Admit> {
        if self.admitted {
            return None;
        }
        if limit.concurrency.is_some_and(|n| self.holding >= n as u64) {
            return Some(Admit::No { retry_at: None });
        }
        match limit.rate {
            Some((n, per)) if self.recent >= u64::from(n) => {
                Some(Admit::No { retry_at: self.first_recent.map(|first| first + per) })
            }
            _ => None,
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Since when admissions count toward `limit`'s rate at `now` (`now` itself without a rate:
/// none do).
pub(crate) fn rate_since(limit: &AdmissionLimit, now: SystemTime) -> SystemTime {
    limit.rate.map_or(now, |(_, per)| now.checked_sub(per).unwrap_or(SystemTime::UNIX_EPOCH))
}
