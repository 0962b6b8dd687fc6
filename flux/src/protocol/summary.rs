//! Executions as the client API shows them: the summary a run, resume, status or cancel answers
//! (and each state event of a stream carries), the JSON form of one event, and the states a
//! stream stops at.

use serde_json::{Map, Value};

use super::json::{msgpack_to_json, rfc3339};
use crate::error::{Error, Result};
use crate::event::{Event, EventType, ExecutionState};
use crate::store::StoredExecution;

/// The state a workflow event moves its execution to, if it is a workflow event.
pub(crate) fn state_after(kind: EventType) -> Option<ExecutionState> {
    Some(match kind {
        EventType::WorkflowScheduled => ExecutionState::Scheduled,
        EventType::WorkflowClaimed => ExecutionState::Claimed,
        EventType::WorkflowStarted | EventType::WorkflowResumed => ExecutionState::Running,
        EventType::WorkflowCompleted => ExecutionState::Completed,
        EventType::WorkflowFailed => ExecutionState::Failed,
        EventType::WorkflowPaused => ExecutionState::Paused,
        EventType::WorkflowResuming => ExecutionState::Resuming,
        EventType::WorkflowResumeScheduled => ExecutionState::ResumeScheduled,
        EventType::WorkflowResumeClaimed => ExecutionState::ResumeClaimed,
        EventType::WorkflowCancelling => ExecutionState::Cancelling,
        EventType::WorkflowCancelled => ExecutionState::Cancelled,
        _ => return None,
    })
}

/// The JSON form of one event (`{"id", "type", "source_id", "name", "value", "time"}`).
pub(crate) fn event_json(execution_id: &str, event: &Event) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), Value::String(format!("{execution_id}-{}", event.seq)));
    map.insert("type".into(), Value::String(event.kind.as_str().to_string()));
    map.insert("source_id".into(), Value::String(event.source_id.to_string()));
    map.insert("name".into(), Value::String(event.name.to_string()));
    map.insert("value".into(), msgpack_to_json(&event.value));
    map.insert("time".into(), Value::String(rfc3339(event.time)));
    Value::Object(map)
}

/// An execution summary as sent on the wire, built from storage or from a stream of events.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    pub(crate) workflow_name: String,
    pub(crate) execution_id: String,
    pub(crate) input: Value,
    pub(crate) output: Value,
    pub(crate) state: ExecutionState,
    /// `Some` when the events are asked for (`?detailed=true`).
    pub(crate) events: Option<Vec<Value>>,
}

impl Summary {
    /// The summary of a stored execution; `resolve` turns an output-storage reference into the
    /// value it stands for.
    pub(crate) fn of(stored: &StoredExecution, detailed: bool, resolve: impl Fn(&[u8]) -> Result<Vec<u8>>) -> Summary {
        let output = match (&stored.output, stored.state) {
            (Some(bytes), ExecutionState::Completed) => match resolve(bytes) {
                Ok(bytes) => msgpack_to_json(&bytes),
                Err(e) => unreadable(&e),
            },
            (Some(bytes), _) => msgpack_to_json(bytes),
            (None, _) => Value::Null,
        };
        Summary {
            workflow_name: stored.workflow_name.clone(),
            execution_id: stored.id.clone(),
            input: msgpack_to_json(&stored.input),
            output,
            state: stored.state,
            events: detailed.then(|| stored.events.iter().map(|e| event_json(&stored.id, e)).collect()),
        }
    }

    /// Applies one durable event; returns the new state if the event changed it.
    pub(crate) fn apply(
        &mut self,
        event: &Event,
        resolve: impl Fn(&[u8]) -> Result<Vec<u8>>,
    ) -> Option<ExecutionState> {
        if let Some(events) = &mut self.events {
            events.push(event_json(&self.execution_id, event));
        }
        let state = state_after(event.kind)?;
        match event.kind {
            EventType::WorkflowCompleted => {
                self.output = match resolve(&event.value) {
                    Ok(bytes) => msgpack_to_json(&bytes),
                    Err(e) => unreadable(&e),
                }
            }
            EventType::WorkflowFailed | EventType::WorkflowCancelled => self.output = msgpack_to_json(&event.value),
            EventType::WorkflowPaused => {
                self.output = match msgpack_to_json(&event.value) {
                    Value::Object(mut map) => map.remove("output").unwrap_or(Value::Null),
                    _ => Value::Null,
                }
            }
            EventType::WorkflowResumed | EventType::WorkflowResuming => self.output = Value::Null,
            _ => {}
        }
        self.state = state;
        Some(state)
    }

    /// The JSON object: `{"workflow_id", "workflow_name", "execution_id", "input", "output",
    /// "state"}` and, when detailed, `"events"`.
    pub(crate) fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("workflow_id".into(), Value::String(self.workflow_name.clone()));
        map.insert("workflow_name".into(), Value::String(self.workflow_name.clone()));
        map.insert("execution_id".into(), Value::String(self.execution_id.clone()));
        map.insert("input".into(), self.input.clone());
        map.insert("output".into(), self.output.clone());
        map.insert("state".into(), Value::String(self.state.as_str().to_string()));
        if let Some(events) = &self.events {
            map.insert("events".into(), Value::Array(events.clone()));
        }
        Value::Object(map)
    }
}

/// What a summary shows for an output that cannot be read back.
fn unreadable(e: &Error) -> Value {
    serde_json::json!({ "unreadable_output": e.to_string() })
}
