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
    for (i, e) in events.iter().enumerate() {
        if !e.kind.as_str().starts_with("TASK_") {
            continue;
        }
        let record = tasks.info_mut(e.source_id.clone());
        let chain = &mut record.chain;
        match e.kind {
            EventType::TaskStarted => record.started = Some(i),
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
