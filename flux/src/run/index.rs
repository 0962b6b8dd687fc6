//! What a loaded log says about each task id: where its start and outcome are, and how far the
//! error chain of a call that never finished got. Built once when a run begins, so that every
//! call is answered by a lookup, never by a scan.

use std::sync::Arc;

use crate::event::{Event, EventType};
use crate::identity::CallIds;

/// What the log says about one task id.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TaskRecord {
    /// Index in the log of its `TASK_STARTED`.
    pub(super) started: Option<usize>,
    /// How many `TASK_STARTED` come before its own in the log (its position in [`Order`]).
    pub(super) position: u32,
    /// Index in the log of its `TASK_COMPLETED` or `TASK_FAILED`.
    pub(super) outcome: Option<usize>,
    pub(super) chain: RecordedChain,
}

/// How far the error chain of a started but unfinished call got before its process stopped, so
/// that a restart continues the chain instead of beginning it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordedChain {
    /// `TASK_RETRY_FAILED` events: attempts that failed (the next attempt has this number).
    pub(crate) failed_attempts: u32,
    /// `TASK_RETRY_STARTED` events: retries whose wait is over and which were started.
    pub(crate) started_retries: u32,
    /// Index in the log of the last event holding the task's error (`TASK_RETRY_FAILED`,
    /// `TASK_FALLBACK_STARTED` or `TASK_ROLLBACK_STARTED`, each with an `error` field).
    pub(crate) last_failure: Option<usize>,
    pub(crate) fallback_started: bool,
    pub(crate) rollback_started: bool,
}

/// What a task call should do, decided from the log.
pub(crate) enum Lookup {
    /// Never started: record `TASK_STARTED`, then run.
    Fresh(Arc<str>),
    /// Started before but never finished (a crash): continue from where the log ends, without
    /// writing again what it already holds.
    Restart(Arc<str>, RecordedChain),
    /// Finished: the recorded `TASK_COMPLETED` or `TASK_FAILED`.
    Recorded(Arc<str>, Event),
}

/// Indexes the task events of a loaded log by task id.
pub(super) fn index(events: &[Event]) -> CallIds<TaskRecord> {
    let mut tasks = CallIds::<TaskRecord>::with_capacity(events.len() / 2);
    let mut starts = 0u32;
    for (i, e) in events.iter().enumerate() {
        if !e.kind.as_str().starts_with("TASK_") {
            continue;
        }
        let record = tasks.info_mut(e.source_id.clone());
        let chain = &mut record.chain;
        match e.kind {
            EventType::TaskStarted => {
                record.started = Some(i);
                record.position = starts;
                starts = starts.saturating_add(1);
            }
            EventType::TaskCompleted | EventType::TaskFailed => record.outcome = Some(i),
            EventType::TaskRetryFailed => {
                chain.failed_attempts += 1;
                chain.last_failure = Some(i);
            }
            EventType::TaskRetryStarted => chain.started_retries += 1,
            EventType::TaskFallbackStarted => {
                chain.fallback_started = true;
                chain.last_failure = Some(i);
            }
            EventType::TaskRollbackStarted => {
                chain.rollback_started = true;
                chain.last_failure = Some(i);
            }
            _ => {}
        }
    }
    tasks
}

/// What the log says a call with `record` should do.
pub(super) fn decide(id: Arc<str>, record: Option<TaskRecord>, events: &[Event]) -> Lookup {
    match record {
        Some(TaskRecord { outcome: Some(i), .. }) => match events.get(i) {
            Some(event) => Lookup::Recorded(id, event.clone()),
            None => Lookup::Restart(id, RecordedChain::default()),
        },
        Some(TaskRecord { started: Some(_), chain, .. }) => Lookup::Restart(id, chain),
        _ => Lookup::Fresh(id),
    }
}

/// The order of the calls a log recorded, and which of them a replay has made again: a new call
/// while some recorded call is still waiting to be made, or a body that returns before making
/// them all, means the code no longer makes the calls its log holds (docs/design.md §14).
///
/// A call made again also accounts for every call recorded between its `TASK_STARTED` and its
/// outcome: those are the calls it made itself (which a replay answered from the log never
/// makes again) or calls running beside it (which are made on their own). So the check never
/// refuses a faithful replay; it can miss a change among concurrent calls.
#[derive(Debug, Default)]
pub(super) struct Order {
    /// The log index of every `TASK_STARTED`, in log order.
    starts: Vec<usize>,
    /// For each position of `starts`, the first position at or after it not yet made again
    /// (`starts.len()` when none); a union-find with path halving, so accounting for a range
    /// costs about one step per call in it.
    next: Vec<u32>,
    /// How many recorded calls are still waiting to be made again.
    waiting: usize,
}

impl Order {
    /// The order of the calls `events` recorded.
    pub(super) fn of(events: &[Event]) -> Order {
        let starts: Vec<usize> =
            events.iter().enumerate().filter(|(_, e)| e.kind == EventType::TaskStarted).map(|(i, _)| i).collect();
        let next = (0..=starts.len()).map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect();
        Order { waiting: starts.len(), starts, next }
    }

    /// Whether the log recorded no call at all (a new execution's run).
    pub(super) fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Whether some recorded call has not been made again yet.
    pub(super) fn waiting(&self) -> bool {
        self.waiting > 0
    }

    /// The first position at or after `at` whose call has not been made again.
    fn find(&mut self, mut at: usize) -> usize {
        while let Some(&n) = self.next.get(at) {
            let n = n as usize;
            if n == at {
                return at;
            }
            let skip = self.next.get(n).copied().unwrap_or(n as u32);
            self.next[at] = skip;
            at = skip as usize;
        }
        self.starts.len()
    }

    /// Notes that the call recorded with `record` was made again, with the calls recorded
    /// between its start and its outcome.
    pub(super) fn made(&mut self, record: &TaskRecord) {
        if self.waiting == 0 {
            return;
        }
        let Some(started) = record.started else { return };
        let end = record.outcome.unwrap_or(started);
        let mut at = self.find(record.position as usize);
        while at < self.starts.len() && self.starts[at] <= end {
            self.next[at] = (at + 1) as u32;
            self.waiting -= 1;
            at = self.find(at + 1);
        }
    }

    /// The log index of the first recorded call not made again, if any.
    pub(super) fn first_waiting(&mut self) -> Option<usize> {
        if self.waiting == 0 {
            return None;
        }
        let at = self.find(0);
        self.starts.get(at).copied()
    }
}
