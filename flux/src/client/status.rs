//! What a server reports about executions and workflows, typed: an execution's summary as an
//! [`ExecutionStatus`], its events as [`Event`]s, a catalog entry as a [`WorkflowInfo`].

use std::time::SystemTime;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};

/// One execution as a flux server reports it: the answer of a run, resume, status or cancel,
/// and each change of state of a stream.
///
/// The typed counterpart of the server's summary (`{"workflow_name", "execution_id", "input",
/// "output", "state"}` and, when detailed, `"events"`), shaped like [`crate::Execution`]: the
/// output once `COMPLETED`, the error once `FAILED` or `CANCELLED`, the events when they were
/// asked for ([`RemoteWorkflow::detailed`](super::RemoteWorkflow::detailed)).
///
/// ```no_run
/// # async fn demo() -> flux::Result<()> {
/// let client = flux::Client::new("http://127.0.0.1:8000")?;
/// let status = client.workflow::<String, String>("hello_world").run(&"World".to_string()).await?;
/// if status.has_succeeded() {
///     println!("{} said {:?}", status.execution_id(), status.output());
/// }
/// let greeting: String = status.into_result()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ExecutionStatus<O> {
    execution_id: String,
    workflow_name: String,
    state: ExecutionState,
    output: Option<O>,
    error: Option<Error>,
    events: Option<Vec<Event>>,
    summary: Value,
}

/// The fields of a summary the client reads; others are kept in the raw summary only.
#[derive(Deserialize)]
struct WireSummary {
    execution_id: String,
    workflow_name: String,
    state: ExecutionState,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    events: Option<Vec<WireEvent>>,
}

/// One event as the API shows it: `{"id", "type", "source_id", "name", "value", "time"}`.
#[derive(Deserialize)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    source_id: String,
    name: String,
    #[serde(default)]
    value: Value,
    time: String,
}

impl<O: DeserializeOwned> ExecutionStatus<O> {
    /// Reads a summary as the server sent it.
    pub(crate) fn from_summary(summary: Value) -> Result<ExecutionStatus<O>> {
        let wire = WireSummary::deserialize(&summary).map_err(|e| {
            Error::new(ErrorKind::Http, format!("the server sent an execution summary flux cannot read: {e}"))
        })?;
        let id = &wire.execution_id;
        let (output, error) = match wire.state {
            ExecutionState::Completed => match O::deserialize(&wire.output) {
                Ok(output) => (Some(output), None),
                Err(e) => (
                    None,
                    Some(Error::decode(
                        format_args!("the output of execution `{id}` as {}", std::any::type_name::<O>()),
                        e,
                    )),
                ),
            },
            ExecutionState::Failed | ExecutionState::Cancelled => (None, Some(stored_error(&wire.output, wire.state))),
            _ => (None, None),
        };
        let events = match wire.events {
            Some(events) => {
                Some(events.into_iter().enumerate().map(|(at, e)| e.into_event(at)).collect::<Result<_>>()?)
            }
            None => None,
        };
        Ok(ExecutionStatus {
            execution_id: wire.execution_id,
            workflow_name: wire.workflow_name,
            state: wire.state,
            output,
            error,
            events,
            summary,
        })
    }
}

/// The error a failed or cancelled execution's summary carries as its output: flux's structured
/// error, or, from a server that sends something else, that text.
fn stored_error(output: &Value, state: ExecutionState) -> Error {
    Error::deserialize(output).unwrap_or_else(|_| {
        let kind = if state == ExecutionState::Cancelled { ErrorKind::Cancelled } else { ErrorKind::WorkflowFailed };
        let message = match output {
            Value::String(text) => text.clone(),
            Value::Null => format!("the execution is {state}"),
            other => other.to_string(),
        };
        Error::new(kind, message)
    })
}

impl WireEvent {
    /// The event, its value as MessagePack again; `at` is its place in the list, the sequence
    /// number when the id does not end with one.
    fn into_event(self, at: usize) -> Result<Event> {
        let kind: EventType =
            self.kind.parse().map_err(|e: Error| Error::new(ErrorKind::Http, e.message().to_string()))?;
        let seq = self
            .id
            .rsplit_once('-')
            .and_then(|(_, seq)| seq.parse().ok())
            .unwrap_or_else(|| u64::try_from(at).map_or(u64::MAX, |at| at + 1));
        let time = parse_time(&self.time)?;
        let value = crate::value::to_msgpack(&self.value)?;
        Ok(Event::new(seq, kind, self.source_id, self.name, value, time))
    }
}

/// A time the server sent: RFC 3339 in UTC, or, for a time that format cannot show (after the
/// year 9999), microseconds since the Unix epoch.
pub(crate) fn parse_time(text: &str) -> Result<SystemTime> {
    if let Ok(micros) = text.parse::<i64>() {
        return Ok(crate::event::from_micros(micros));
    }
    let utc = match text.strip_suffix("+00:00") {
        Some(head) => format!("{head}Z"),
        None => text.to_string(),
    };
    humantime::parse_rfc3339(&utc)
        .map_err(|e| Error::new(ErrorKind::Http, format!("the server sent a time flux cannot read, `{text}`: {e}")))
}

impl<O> ExecutionStatus<O> {
    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The workflow name.
    pub fn workflow_name(&self) -> &str {
        &self.workflow_name
    }

    /// The state when the server answered.
    pub fn state(&self) -> ExecutionState {
        self.state
    }

    /// The output, once `COMPLETED` (`None` also when it does not fit `O`: see
    /// [`ExecutionStatus::error`]).
    pub fn output(&self) -> Option<&O> {
        self.output.as_ref()
    }

    /// Consumes the status, returning the output.
    pub fn into_output(self) -> Option<O> {
        self.output
    }

    /// The error, once `FAILED` (or `CANCELLED`: an error of kind [`ErrorKind::Cancelled`]),
    /// as the execution recorded it: kind, message, causes, type name. For a `COMPLETED`
    /// execution whose output does not fit `O`, why (kind [`ErrorKind::Decode`]).
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The outcome as a `Result`, as [`crate::Execution::into_result`]: the output once
    /// `COMPLETED`, the execution's error once `FAILED` or `CANCELLED`, and an error of kind
    /// [`ErrorKind::InvalidState`] naming the state of an execution that has not finished.
    ///
    /// ```no_run
    /// # async fn demo() -> flux::Result<()> {
    /// let client = flux::Client::new("http://127.0.0.1:8000")?;
    /// let doubled: u32 = client.workflow::<u32, u32>("double").run(&21).await?.into_result()?;
    /// # Ok(()) }
    /// ```
    pub fn into_result(self) -> Result<O> {
        let pause = self.pause_name();
        crate::execution::outcome(&self.execution_id, self.state, self.output, self.error, pause)
    }

    /// The input, as the type `T` (the workflow's input type, or `serde_json::Value`).
    pub fn input<T: DeserializeOwned>(&self) -> Result<T> {
        let input = self.summary.get("input").unwrap_or(&Value::Null);
        T::deserialize(input)
            .map_err(|e| Error::decode(format_args!("the input of execution `{}`", self.execution_id), e))
    }

    /// The value a `PAUSED` execution exposes (`flux::pause_with`; `()` for `flux::pause`) as
    /// `U`. `Ok(None)` when the execution is not paused; an error when the value does not fit.
    pub fn pause_output<U: DeserializeOwned>(&self) -> Result<Option<U>> {
        if self.state != ExecutionState::Paused {
            return Ok(None);
        }
        let output = self.summary.get("output").unwrap_or(&Value::Null);
        U::deserialize(output)
            .map(Some)
            .map_err(|e| Error::decode(format_args!("the pause output of execution `{}`", self.execution_id), e))
    }

    /// The name of the pause a `PAUSED` execution waits at, when its events were asked for.
    pub fn pause_name(&self) -> Option<String> {
        crate::execution::pause_name(self.state, self.events.as_deref().unwrap_or_default())
    }

    /// The log, when it was asked for ([`RemoteWorkflow::detailed`](super::RemoteWorkflow::detailed)):
    /// each event with its value as MessagePack again, so [`Event::value`] decodes it.
    pub fn events(&self) -> Option<&[Event]> {
        self.events.as_deref()
    }

    /// The summary as the server sent it (JSON), for programs that show it as it is.
    pub fn summary(&self) -> &Value {
        &self.summary
    }

    /// `COMPLETED`, `FAILED` or `CANCELLED`.
    pub fn has_finished(&self) -> bool {
        self.state.is_terminal()
    }

    /// `COMPLETED`.
    pub fn has_succeeded(&self) -> bool {
        self.state == ExecutionState::Completed
    }

    /// `FAILED`.
    pub fn has_failed(&self) -> bool {
        self.state == ExecutionState::Failed
    }

    /// `PAUSED`.
    pub fn is_paused(&self) -> bool {
        self.state == ExecutionState::Paused
    }

    /// `CANCELLED`.
    pub fn is_cancelled(&self) -> bool {
        self.state == ExecutionState::Cancelled
    }
}

/// A workflow a server knows: `GET /workflows` lists them, `GET /workflows/{name}` shows one.
///
/// ```no_run
/// # async fn demo() -> flux::Result<()> {
/// let client = flux::Client::new("http://127.0.0.1:8000")?;
/// for workflow in client.workflows().await? {
///     println!("{} (version {})", workflow.name(), workflow.version());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowInfo {
    name: String,
    version: u32,
    versions: Vec<u32>,
    source: Option<String>,
    workers: Vec<String>,
    json: Value,
}

#[derive(Deserialize)]
struct WireWorkflow {
    name: String,
    #[serde(default = "first_version")]
    version: u32,
    #[serde(default)]
    versions: Vec<u32>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    workers: Vec<String>,
}

/// The version of a workflow that does not say.
fn first_version() -> u32 {
    1
}

impl WorkflowInfo {
    /// Reads a catalog entry as the server sent it.
    pub(crate) fn from_json(json: Value) -> std::result::Result<WorkflowInfo, serde_json::Error> {
        let wire = WireWorkflow::deserialize(&json)?;
        // A server that lists no versions knows the one it names.
        let versions = if wire.versions.is_empty() { vec![wire.version] } else { wire.versions };
        Ok(WorkflowInfo {
            name: wire.name,
            version: wire.version,
            versions,
            source: wire.source,
            workers: wire.workers,
            json,
        })
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The highest version of it the server knows.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Every version of it the server knows (registered in the server or by its workers), in
    /// order.
    pub fn versions(&self) -> &[u32] {
        &self.versions
    }

    /// Where it runs, when the server says (`GET /workflows/{name}`): `"in_process"` or
    /// `"worker"`.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The workers that registered it, when the server says (`GET /workflows/{name}`).
    pub fn workers(&self) -> &[String] {
        &self.workers
    }

    /// The entry as the server sent it (JSON).
    pub fn json(&self) -> &Value {
        &self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(state: &str, output: Value) -> Value {
        json!({
            "workflow_id": "hello_world",
            "workflow_name": "hello_world",
            "execution_id": "0b7c-41",
            "input": "World",
            "output": output,
            "state": state,
        })
    }

    #[test]
    fn a_completed_summary_has_its_typed_output() {
        let status = ExecutionStatus::<String>::from_summary(summary("COMPLETED", json!("Hello, World"))).unwrap();
        assert_eq!((status.execution_id(), status.workflow_name()), ("0b7c-41", "hello_world"));
        assert_eq!(status.state(), ExecutionState::Completed);
        assert!(status.has_finished() && status.has_succeeded() && status.error().is_none());
        assert_eq!(status.input::<String>().unwrap(), "World");
        assert_eq!(status.summary()["input"], "World");
        assert_eq!(status.into_result().unwrap(), "Hello, World");
    }

    #[test]
    fn an_output_of_another_type_is_a_decode_error_not_a_lost_status() {
        let status = ExecutionStatus::<u32>::from_summary(summary("COMPLETED", json!("Hello"))).unwrap();
        assert_eq!(status.state(), ExecutionState::Completed);
        assert_eq!(status.output(), None);
        assert_eq!(status.error().map(Error::kind), Some(ErrorKind::Decode));
        assert_eq!(status.into_result().unwrap_err().kind(), ErrorKind::Decode);
    }

    #[test]
    fn a_failed_summary_carries_the_structured_error() {
        let error = json!({"kind": "task_failed", "message": "card declined", "chain": ["insufficient funds"],
                           "task_id": "charge_0123456789abcdef", "type_name": "shop::PaymentError", "terminal": true});
        let status = ExecutionStatus::<String>::from_summary(summary("FAILED", error)).unwrap();
        let err = status.error().unwrap();
        assert_eq!(err.kind(), ErrorKind::TaskFailed);
        assert_eq!(err.chain(), ["insufficient funds"]);
        assert!(err.is_terminal() && err.type_name() == Some("shop::PaymentError"));
        assert_eq!(status.into_result().unwrap_err().task_id(), Some("charge_0123456789abcdef"));
        // A server that sends only text still gives an error.
        let status = ExecutionStatus::<String>::from_summary(summary("FAILED", json!("boom"))).unwrap();
        assert_eq!(status.error().map(|e| (e.kind(), e.message())), Some((ErrorKind::WorkflowFailed, "boom")));
        let status = ExecutionStatus::<String>::from_summary(summary("CANCELLED", Value::Null)).unwrap();
        assert_eq!(status.into_result().unwrap_err().kind(), ErrorKind::Cancelled);
    }

    #[test]
    fn detailed_summaries_carry_events_that_decode() {
        let mut value = summary("PAUSED", json!({"amount": 120}));
        value["events"] = json!([
            {"id": "0b7c-41-1", "type": "WORKFLOW_STARTED", "source_id": "hello_world_0b7c-41",
             "name": "hello_world", "value": "World", "time": "2026-12-07T03:00:00.123456Z"},
            {"id": "0b7c-41-2", "type": "WORKFLOW_PAUSED", "source_id": "hello_world_0b7c-41",
             "name": "hello_world", "value": {"name": "approval", "output": {"amount": 120}},
             "time": "2026-12-07T03:00:01Z"},
        ]);
        let status = ExecutionStatus::<String>::from_summary(value).unwrap();
        let events = status.events().unwrap();
        assert_eq!(events.iter().map(Event::seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(events[0].kind(), EventType::WorkflowStarted);
        assert_eq!(events[0].value::<String>().unwrap(), "World");
        assert_eq!(events[0].time(), humantime::parse_rfc3339("2026-12-07T03:00:00.123456Z").unwrap());
        assert_eq!(status.pause_name().as_deref(), Some("approval"));
        assert_eq!(status.pause_output::<serde_json::Map<String, Value>>().unwrap().unwrap()["amount"], 120);
        let err = status.into_result().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState);
        assert!(err.to_string().contains("PAUSED at pause `approval`"), "{err}");
    }

    #[test]
    fn summaries_that_are_not_flux_are_refused_with_a_reason() {
        for bad in [json!([]), json!({"state": "COMPLETED"}), summary("DONE", Value::Null)] {
            let err = ExecutionStatus::<Value>::from_summary(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Http, "{err}");
        }
        let mut value = summary("RUNNING", Value::Null);
        value["events"] = json!([{"id": "1", "type": "TASK_TELEPORTED", "source_id": "x", "name": "x",
                                   "value": null, "time": "2026-12-07T03:00:00Z"}]);
        let err = ExecutionStatus::<Value>::from_summary(value).unwrap_err();
        assert!(err.to_string().contains("TASK_TELEPORTED"), "{err}");
        assert!(parse_time("yesterday").is_err());
        // Beyond the year 9999 the server sends microseconds since the epoch.
        assert_eq!(parse_time(&i64::MAX.to_string()).unwrap(), crate::event::from_micros(i64::MAX));
        assert_eq!(parse_time("1970-01-01T00:00:01+00:00").unwrap(), parse_time("1970-01-01T00:00:01Z").unwrap());
    }

    #[test]
    fn catalog_entries_default_to_version_one() {
        let info = WorkflowInfo::from_json(json!({"name": "hello_world"})).unwrap();
        assert_eq!((info.name(), info.version(), info.source()), ("hello_world", 1, None));
        let info =
            WorkflowInfo::from_json(json!({"name": "w", "version": 3, "source": "worker", "workers": ["a"]})).unwrap();
        assert_eq!((info.version(), info.source(), info.workers()), (3, Some("worker"), &["a".to_string()][..]));
        assert!(WorkflowInfo::from_json(json!({"version": 1})).is_err());
    }
}
