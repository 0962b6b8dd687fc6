//! The server-sent events of a stream-mode run or resume, typed: each change of state as an
//! [`ExecutionStatus`], each new durable event of a detailed stream as an [`Event`], each
//! progress report as a [`Progress`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use eventsource_stream::Eventsource as _;
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::status::{ExecutionStatus, parse_time};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, ExecutionState};
use crate::protocol::{self, STREAM_ERROR, TASK_PROGRESS};

/// One item of an [`EventStream`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StreamEvent<O> {
    /// The execution moved to a new state (the server's `{workflow}.execution.{state}` event):
    /// its summary then. The last one of a stream is `COMPLETED`, `FAILED`, `CANCELLED` or
    /// `PAUSED`.
    State(ExecutionStatus<O>),
    /// A durable event the execution recorded (task started, completed, retried, ...), in log
    /// order. Only detailed streams ([`RemoteWorkflow::detailed`](super::RemoteWorkflow::detailed))
    /// carry them: the server sends the log with each change of state, and each event is
    /// handed out once, before the state it led to.
    Event(Event),
    /// Progress a task reported with `flux::progress` (never stored).
    Progress(Progress),
}

/// Progress a task reported with `flux::progress`, as a stream delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    execution_id: String,
    task_id: String,
    name: String,
    value: Value,
    time: SystemTime,
    data: Value,
}

#[derive(Deserialize)]
struct WireProgress {
    execution_id: String,
    task_id: String,
    name: String,
    #[serde(default)]
    value: Value,
    time: String,
}

impl Progress {
    /// Reads the data of a `task.progress` event.
    fn from_data(data: &str) -> Result<Progress> {
        let unreadable = |e: serde_json::Error| {
            Error::new(ErrorKind::Http, format!("the server sent a progress event flux cannot read: {e}"))
        };
        let data: Value = serde_json::from_str(data).map_err(unreadable)?;
        let wire = WireProgress::deserialize(&data).map_err(unreadable)?;
        Ok(Progress {
            execution_id: wire.execution_id,
            task_id: wire.task_id,
            name: wire.name,
            value: wire.value,
            time: parse_time(&wire.time)?,
            data,
        })
    }

    /// The execution the task belongs to.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The id of the task that reported it.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The name of the task that reported it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, as `T`.
    pub fn value<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.value).map_err(|e| Error::decode(format_args!("the progress of `{}`", self.task_id), e))
    }

    /// The value as the server sent it (JSON).
    pub fn value_json(&self) -> &Value {
        &self.value
    }

    /// The whole event as the server sent it (`{"execution_id", "task_id", "name", "value",
    /// "time"}`), for programs that show it as it is.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// When the task reported it.
    pub fn time(&self) -> SystemTime {
        self.time
    }
}

/// The events of a stream-mode run or resume, as they happen, until the execution finishes or
/// pauses (then the stream ends).
///
/// A `Stream` of `flux::Result<StreamEvent<O>>`. An item is an `Err` when the stream broke off
/// (the connection was lost, the server stopped before the execution came to rest) or, for a
/// resume, when the workflow refused the resume input (kind [`ErrorKind::InvalidInput`]; the
/// stream goes on to say the execution is `PAUSED` again).
///
/// ```no_run
/// use futures::StreamExt as _;
/// use flux::client::StreamEvent;
///
/// # async fn demo() -> flux::Result<()> {
/// let client = flux::Client::new("http://127.0.0.1:8000")?;
/// let mut events = client.workflow::<u32, u32>("countdown").stream(&5).await?;
/// while let Some(event) = events.next().await {
///     match event? {
///         StreamEvent::State(status) => println!("{}", status.state()),
///         StreamEvent::Progress(progress) => println!("progress: {}", progress.value_json()),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
pub struct EventStream<O> {
    inner: Pin<Box<dyn Stream<Item = Result<StreamEvent<O>>> + Send>>,
}

impl<O> std::fmt::Debug for EventStream<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl<O> Stream for EventStream<O> {
    type Item = Result<StreamEvent<O>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<O: DeserializeOwned + Send + 'static> EventStream<O> {
    /// Reads the server-sent events of `response`.
    pub(crate) fn new(response: reqwest::Response, server: String) -> EventStream<O> {
        let sse = response.bytes_stream().eventsource().boxed();
        let reader = Reader { sse: Some(sse), pending: VecDeque::new(), seen: 0, last: None, server };
        let inner = futures::stream::unfold(reader, |mut reader| async move {
            let item = reader.next().await?;
            Some((item, reader))
        });
        EventStream { inner: Box::pin(inner) }
    }

    /// Reads the stream to its end and returns the execution's last state (finished or paused).
    /// Progress and events are dropped; a refused resume input is the error.
    pub async fn finish(mut self) -> Result<ExecutionStatus<O>> {
        let mut last = None;
        while let Some(item) = self.next().await {
            if let StreamEvent::State(status) = item? {
                last = Some(status);
            }
        }
        last.ok_or_else(|| Error::new(ErrorKind::Http, "the event stream ended before it said anything"))
    }
}

type Sse = futures::stream::BoxStream<
    'static,
    std::result::Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
>;

/// Where an [`EventStream`] is.
struct Reader<O> {
    /// `None` once the stream ended.
    sse: Option<Sse>,
    /// Items read, not yet handed out.
    pending: VecDeque<StreamEvent<O>>,
    /// The highest sequence number of the events handed out.
    seen: u64,
    /// The state the stream last reported.
    last: Option<ExecutionState>,
    /// The server URL, for messages.
    server: String,
}

impl<O: DeserializeOwned> Reader<O> {
    /// The next item, or `None` once the stream ended.
    async fn next(&mut self) -> Option<Result<StreamEvent<O>>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let sse = self.sse.as_mut()?;
            let event = match sse.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    self.sse = None;
                    let error = Error::new(ErrorKind::Http, format!("the event stream from {} broke off", self.server));
                    return Some(Err(error.with_cause(e.to_string())));
                }
                None => {
                    self.sse = None;
                    if self.last.is_some_and(protocol::is_resting) {
                        return None;
                    }
                    let error = Error::new(
                        ErrorKind::Http,
                        format!("the event stream from {} ended before the execution finished or paused", self.server),
                    );
                    return Some(Err(error));
                }
            };
            match self.read(&event) {
                Ok(()) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Reads one server-sent event into `pending` (or returns it as an error).
    fn read(&mut self, event: &eventsource_stream::Event) -> Result<()> {
        match event.event.as_str() {
            TASK_PROGRESS => {
                self.pending.push_back(StreamEvent::Progress(Progress::from_data(&event.data)?));
            }
            STREAM_ERROR => {
                let detail = super::http::detail_of(&event.data, "the server reported an error");
                return Err(Error::new(ErrorKind::InvalidInput, detail));
            }
            name if name.contains(".execution.") => {
                let summary: Value = serde_json::from_str(&event.data).map_err(|e| {
                    Error::new(ErrorKind::Http, format!("the server sent a `{name}` event flux cannot read: {e}"))
                })?;
                let status = ExecutionStatus::<O>::from_summary(summary)?;
                for logged in status.events().unwrap_or_default() {
                    if logged.seq() > self.seen {
                        self.seen = logged.seq();
                        self.pending.push_back(StreamEvent::Event(logged.clone()));
                    }
                }
                self.last = Some(status.state());
                if protocol::is_resting(status.state()) {
                    // Nothing follows a state at rest: stop reading (the server closes too).
                    self.sse = None;
                }
                self.pending.push_back(StreamEvent::State(status));
            }
            // Events of a newer server that this client does not know.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(name: &str, data: &str) -> eventsource_stream::Event {
        eventsource_stream::Event { event: name.into(), data: data.into(), ..Default::default() }
    }

    fn reader() -> Reader<u32> {
        Reader { sse: None, pending: VecDeque::new(), seen: 0, last: None, server: "http://h:1".into() }
    }

    #[test]
    fn progress_events_are_typed() {
        let mut reader = reader();
        let data = r#"{"execution_id": "e1", "task_id": "crunch_1", "name": "crunch", "value": {"done": 3},
                      "time": "2026-12-07T03:00:00.5Z"}"#;
        reader.read(&sse(TASK_PROGRESS, data)).unwrap();
        let Some(StreamEvent::Progress(progress)) = reader.pending.pop_front() else { panic!("no progress") };
        assert_eq!((progress.execution_id(), progress.task_id(), progress.name()), ("e1", "crunch_1", "crunch"));
        assert_eq!(progress.value_json()["done"], 3);
        assert_eq!(progress.data()["task_id"], "crunch_1");
        #[derive(Deserialize)]
        struct Done {
            done: u32,
        }
        assert_eq!(progress.value::<Done>().unwrap().done, 3);
        assert!(reader.read(&sse(TASK_PROGRESS, "{}")).is_err());
    }

    #[test]
    fn detailed_states_hand_out_each_new_event_once_before_the_state() {
        let mut reader = reader();
        let event = |seq: u64, kind: &str| {
            serde_json::json!({"id": format!("e1-{seq}"), "type": kind, "source_id": "s", "name": "n",
                               "value": null, "time": "2026-12-07T03:00:00Z"})
        };
        let state = |state: &str, events: Vec<Value>, output: Value| {
            serde_json::json!({"workflow_name": "w", "execution_id": "e1", "input": 1, "output": output,
                               "state": state, "events": events})
            .to_string()
        };
        reader
            .read(&sse("w.execution.running", &state("RUNNING", vec![event(1, "WORKFLOW_STARTED")], Value::Null)))
            .unwrap();
        assert_eq!(reader.last, Some(ExecutionState::Running));
        let all = vec![event(1, "WORKFLOW_STARTED"), event(2, "TASK_STARTED"), event(3, "WORKFLOW_COMPLETED")];
        reader.read(&sse("w.execution.completed", &state("COMPLETED", all, Value::from(42)))).unwrap();
        let kinds: Vec<String> = reader
            .pending
            .iter()
            .map(|item| match item {
                StreamEvent::Event(e) => e.kind().to_string(),
                StreamEvent::State(s) => s.state().to_string(),
                StreamEvent::Progress(_) => "progress".to_string(),
            })
            .collect();
        assert_eq!(kinds, ["WORKFLOW_STARTED", "RUNNING", "TASK_STARTED", "WORKFLOW_COMPLETED", "COMPLETED"]);
        let Some(StreamEvent::State(done)) = reader.pending.pop_back() else { panic!("no state") };
        assert_eq!(done.into_result().unwrap(), 42);
    }

    #[test]
    fn a_refused_resume_is_an_error_item_and_unknown_events_are_skipped() {
        let mut reader = reader();
        let err = reader.read(&sse(STREAM_ERROR, r#"{"detail": "the input does not fit"}"#)).unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::InvalidInput, "the input does not fit"));
        reader.read(&sse("something.new", "{}")).unwrap();
        assert!(reader.pending.is_empty());
        assert!(reader.read(&sse("w.execution.running", "not json")).is_err());
    }
}
