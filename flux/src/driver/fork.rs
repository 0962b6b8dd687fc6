//! Forking: a new execution of a workflow with another execution's input, whose log starts with
//! the recorded outcomes of that execution's first steps, so that its replay answers them from
//! the log and runs only what comes after (docs/design.md §15).

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType};
use crate::store::StoredExecution;

/// One step of a log: a call made by the workflow itself, with everything recorded between its
/// `TASK_STARTED` and its outcome (the calls it made, and calls running beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// Index in the log of its `TASK_STARTED`.
    pub(crate) started: usize,
    /// Index in the log of its `TASK_COMPLETED` or `TASK_FAILED`, if it has one.
    pub(crate) outcome: Option<usize>,
}

/// The steps of a log, in order: each `TASK_STARTED` that does not fall between the start and
/// the outcome of the step before it begins a step.
pub(crate) fn steps(events: &[Event]) -> Vec<Step> {
    let outcomes: std::collections::HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EventType::TaskCompleted | EventType::TaskFailed))
        .map(|(i, e)| (&*e.source_id, i))
        .collect();
    let mut steps: Vec<Step> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind != EventType::TaskStarted {
            continue;
        }
        let inside = steps.last().is_some_and(|last| last.outcome.is_none_or(|end| i < end));
        if !inside {
            steps.push(Step { started: i, outcome: outcomes.get(&*e.source_id).copied() });
        }
    }
    steps
}

/// The steps of `source` for a message: `0 reserve, 1 charge, 2 pause`.
fn described(source: &StoredExecution, steps: &[Step]) -> String {
    if steps.is_empty() {
        return "none".to_string();
    }
    steps
        .iter()
        .enumerate()
        .map(|(n, step)| match source.events.get(step.started) {
            Some(e) => format!("{n} `{}`", e.name),
            None => n.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The log a fork of `source` starts with: `started` (its `WORKFLOW_STARTED`), then every event
/// of the calls that finished within the first `from_step` steps of `source`, in their order,
/// numbered on from `started`. Refused, naming the steps, when `source` has fewer steps or one
/// of them never finished.
pub(crate) fn forked_log(source: &StoredExecution, from_step: usize, started: Event) -> Result<Vec<Event>> {
    let steps = steps(&source.events);
    if from_step > steps.len() {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "execution `{}` has {} steps ({}); it cannot be forked from step {from_step}",
                source.id,
                steps.len(),
                described(source, &steps)
            ),
        ));
    }
    let mut log = vec![started];
    let Some(last) = from_step.checked_sub(1).and_then(|n| steps.get(n)) else {
        return Ok(log);
    };
    let Some(end) = last.outcome else {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "step {} of execution `{}` never finished; fork it from an earlier step (steps: {})",
                from_step - 1,
                source.id,
                described(source, &steps)
            ),
        ));
    };
    let prefix = &source.events[..=end.min(source.events.len().saturating_sub(1))];
    // Only the calls whose outcome is in the prefix: one still running at the cut (beside the
    // last step) runs again in the fork, as after a crash.
    let finished: HashSet<&str> = prefix
        .iter()
        .filter(|e| matches!(e.kind, EventType::TaskCompleted | EventType::TaskFailed))
        .map(|e| &*e.source_id)
        .collect();
    for e in prefix {
        if e.kind.as_str().starts_with("TASK_") && finished.contains(&*e.source_id) {
            let seq = log.len() as u64 + log[0].seq;
            log.push(Event {
                seq,
                kind: e.kind,
                source_id: Arc::clone(&e.source_id),
                name: Arc::clone(&e.name),
                value: e.value.clone(),
                time: e.time,
            });
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::event::ExecutionState;

    fn event(seq: u64, kind: EventType, source: &str) -> Event {
        Event::new(seq, kind, source, source.split('_').next().unwrap_or(source), vec![0xc0], SystemTime::UNIX_EPOCH)
    }

    fn stored(events: Vec<Event>) -> StoredExecution {
        StoredExecution {
            id: "x".into(),
            workflow_name: "wf".into(),
            version: 1,
            state: ExecutionState::Running,
            input: vec![0xc0],
            output: None,
            parent_id: None,
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            worker: None,
            claim_generation: 0,
            events,
        }
    }

    /// `a`, then `b` calling `n` inside, then `c` left unfinished.
    fn log() -> Vec<Event> {
        use EventType::*;
        vec![
            event(1, WorkflowStarted, "wf_x"),
            event(2, TaskStarted, "a_1"),
            event(3, TaskCompleted, "a_1"),
            event(4, TaskStarted, "b_2"),
            event(5, TaskStarted, "n_3"),
            event(6, TaskCompleted, "n_3"),
            event(7, TaskCompleted, "b_2"),
            event(8, TaskStarted, "c_4"),
        ]
    }

    #[test]
    fn calls_made_inside_a_step_belong_to_it() {
        let steps = steps(&log());
        assert_eq!(
            steps,
            [
                Step { started: 1, outcome: Some(2) },
                Step { started: 3, outcome: Some(6) },
                Step { started: 7, outcome: None }
            ]
        );
    }

    #[test]
    fn a_fork_copies_the_finished_steps_numbered_after_its_start() {
        let source = stored(log());
        let started = event(1, EventType::WorkflowStarted, "wf_y");
        let forked = forked_log(&source, 2, started.clone()).unwrap();
        let shape: Vec<(u64, &str, &str)> = forked.iter().map(|e| (e.seq, e.kind.as_str(), &*e.source_id)).collect();
        assert_eq!(
            shape,
            [
                (1, "WORKFLOW_STARTED", "wf_y"),
                (2, "TASK_STARTED", "a_1"),
                (3, "TASK_COMPLETED", "a_1"),
                (4, "TASK_STARTED", "b_2"),
                (5, "TASK_STARTED", "n_3"),
                (6, "TASK_COMPLETED", "n_3"),
                (7, "TASK_COMPLETED", "b_2"),
            ]
        );
        assert_eq!(forked_log(&source, 0, started.clone()).unwrap().len(), 1, "step 0: only the start");
    }

    #[test]
    fn a_fork_past_the_steps_or_from_an_unfinished_one_is_refused_naming_the_steps() {
        let source = stored(log());
        let started = event(1, EventType::WorkflowStarted, "wf_y");
        let err = forked_log(&source, 3, started.clone()).unwrap_err();
        assert!(err.to_string().contains("step 2 of execution `x` never finished"), "{err}");
        assert!(err.to_string().contains("0 `a`, 1 `b`, 2 `c`"), "{err}");
        let err = forked_log(&source, 4, started).unwrap_err();
        assert!(err.to_string().contains("has 3 steps"), "{err}");
    }
}
