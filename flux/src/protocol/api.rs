//! What a client of the HTTP API sends and reads besides execution summaries: the body of a new
//! secret and the names of the events a stream sends.

use serde::{Deserialize, Serialize};

use crate::event::ExecutionState;

/// The name of the server-sent event that carries a task's progress (`POST .../run/stream`):
/// `{"execution_id", "task_id", "name", "value", "time"}`. The other events of a stream are
/// named `{workflow}.execution.{state}` and carry the execution's summary.
pub const TASK_PROGRESS: &str = "task.progress";

/// The name of the server-sent event a stream-mode resume sends when the workflow refused the
/// resume input: `{"detail": "..."}`. The execution is paused again, and the stream's next and
/// last event says so.
pub const STREAM_ERROR: &str = "error";

/// Whether an execution in `state` is at rest: finished, or paused. A stream ends there, and a
/// `sync` request answers.
pub(crate) fn is_resting(state: ExecutionState) -> bool {
    state.is_terminal() || state == ExecutionState::Paused
}

/// The body of `POST /admin/secrets`: `{"name": ..., "value": ...}`, nothing else.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    /// The secret's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret").field("name", &self.name).field("value", &"<redacted>").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_secrets_are_exactly_a_name_and_a_value() {
        let secret = NewSecret { name: "API_KEY".into(), value: "s3cret".into() };
        let json = serde_json::to_value(&secret).unwrap();
        assert_eq!(json, serde_json::json!({"name": "API_KEY", "value": "s3cret"}));
        assert_eq!(serde_json::from_value::<NewSecret>(json).unwrap(), secret);
        assert!(serde_json::from_str::<NewSecret>(r#"{"name": "a", "value": "b", "x": 1}"#).is_err());
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
