//! One workflow of a server, typed by its input and output: run, start, stream, status, resume
//! and cancel its executions.

use std::marker::PhantomData;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Client;
use super::http::Auth;
use super::status::{ExecutionStatus, WorkflowInfo};
use super::stream::EventStream;
use crate::error::{Error, ErrorKind, Result};

/// A workflow of a flux server, typed by its input `I` and output `O`
/// ([`Client::workflow`]): the HTTP counterpart of a workflow value's `run`, `start`, `stream`,
/// `status`, `resume` and `cancel`.
///
/// `I` and `O` are the workflow's own types, or any types with the same JSON form
/// (`serde_json::Value` takes anything). An input the workflow cannot read is refused by the
/// server (an error of kind [`ErrorKind::InvalidInput`]); an unknown workflow or execution is
/// [`ErrorKind::NotFound`].
///
/// ```no_run
/// # async fn demo() -> flux::Result<()> {
/// let client = flux::Client::new("http://127.0.0.1:8000")?;
/// let approval = client.workflow::<String, String>("approval");
/// let paused = approval.run(&"order 7".to_string()).await?;
/// assert!(paused.is_paused());
/// let done = approval.resume(paused.execution_id(), &"yes").await?;
/// println!("{:?}", done.output());
/// # Ok(()) }
/// ```
pub struct RemoteWorkflow<I, O> {
    client: Client,
    name: String,
    detailed: bool,
    queue: Option<String>,
    types: PhantomData<fn(&I) -> O>,
}

impl<I, O> Clone for RemoteWorkflow<I, O> {
    fn clone(&self) -> Self {
        RemoteWorkflow {
            client: self.client.clone(),
            name: self.name.clone(),
            detailed: self.detailed,
            queue: self.queue.clone(),
            types: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for RemoteWorkflow<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWorkflow")
            .field("server", &self.client.url())
            .field("name", &self.name)
            .field("detailed", &self.detailed)
            .field("queue", &self.queue)
            .finish()
    }
}

/// How a run or resume answers (the last segment of its path).
#[derive(Clone, Copy)]
enum Mode {
    Sync,
    Async,
    Stream,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
            Mode::Stream => "stream",
        }
    }
}

impl<I, O> RemoteWorkflow<I, O> {
    /// The handle of workflow `name` on `client`'s server.
    pub(crate) fn new(client: Client, name: String) -> Self {
        RemoteWorkflow { client, name, detailed: false, queue: None, types: PhantomData }
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether answers carry the execution's events (`?detailed=true`): then
    /// [`ExecutionStatus::events`] is `Some`, and streams hand out each durable event as
    /// [`StreamEvent::Event`](super::StreamEvent::Event).
    pub fn detailed(mut self, detailed: bool) -> Self {
        self.detailed = detailed;
        self
    }

    /// Runs started through this handle ([`RemoteWorkflow::run`], [`RemoteWorkflow::start`],
    /// [`RemoteWorkflow::stream`]) go through the server's queue `queue` (`?queue=`): each is
    /// stored `SCHEDULED` and starts when the queue has room (see [`crate::Queue`]). For
    /// workflows the server runs itself; a name the server cannot take (1 to 100 ASCII letters,
    /// digits, `_`, `-`, `.` or `:`) is refused.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// `GET /workflows/{name}`: what the server knows of this workflow.
    pub async fn info(&self) -> Result<WorkflowInfo> {
        self.client.workflow_info(&self.name).await
    }

    /// The URL `/workflows/{name}/{segments..}`, with `?detailed=true` when asked for (and
    /// the queue of a run).
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url> {
        let mut path = vec!["workflows", self.name.as_str()];
        path.extend_from_slice(segments);
        let mut url = self.client.http().url(&path)?;
        if self.detailed {
            url.query_pairs_mut().append_pair("detailed", "true");
        }
        if let (Some(queue), Some(&"run")) = (&self.queue, segments.first()) {
            url.query_pairs_mut().append_pair("queue", queue);
        }
        Ok(url)
    }
}

impl<I: Serialize, O: DeserializeOwned + Send + 'static> RemoteWorkflow<I, O> {
    /// `POST /workflows/{name}/run/sync`: runs an execution and answers once it finished or
    /// paused.
    ///
    /// A workflow that fails is an `Ok` status in state `FAILED` with its error (as
    /// [`crate::Execution`]); an `Err` says the request failed.
    pub async fn run(&self, input: &I) -> Result<ExecutionStatus<O>> {
        self.post(&["run", Mode::Sync.as_str()], input).await
    }

    /// `POST /workflows/{name}/run/async`: starts an execution and answers at once; the status
    /// names the execution, for [`RemoteWorkflow::status`], [`RemoteWorkflow::cancel`] and
    /// [`RemoteWorkflow::resume`].
    pub async fn start(&self, input: &I) -> Result<ExecutionStatus<O>> {
        self.post(&["run", Mode::Async.as_str()], input).await
    }

    /// `POST /workflows/{name}/run/async?queue={queue}`: submits an execution to the server's
    /// queue `queue` and answers at once, in state `SCHEDULED` while it waits for room
    /// (shorthand for `.queue(queue).start(input)`; see [`RemoteWorkflow::queue`]).
    pub async fn enqueue(&self, queue: &str, input: &I) -> Result<ExecutionStatus<O>> {
        self.clone().queue(queue).start(input).await
    }

    /// `POST /workflows/{name}/run/stream`: runs an execution and hands out its changes of
    /// state and its progress as they happen, until it finishes or pauses.
    pub async fn stream(&self, input: &I) -> Result<EventStream<O>> {
        self.post_stream(&["run", Mode::Stream.as_str()], input).await
    }

    /// `GET /workflows/{name}/status/{id}`: the execution as stored now.
    pub async fn status(&self, execution_id: &str) -> Result<ExecutionStatus<O>> {
        let url = self.url(&["status", execution_id])?;
        self.summary(self.client.http().request(Method::GET, url, Auth::Plain)).await
    }

    /// `POST /workflows/{name}/send/{id}/{topic}`: sends `message` on `topic` to execution `id`
    /// (kept until it receives it with `flux::recv`).
    pub async fn send<M: Serialize + ?Sized>(&self, execution_id: &str, topic: &str, message: &M) -> Result<()> {
        self.send_message(execution_id, topic, None, message).await.map(drop)
    }

    /// [`RemoteWorkflow::send`] with an idempotency key: a message of the same key is delivered
    /// once; `false` when this one was a duplicate.
    pub async fn send_keyed<M: Serialize + ?Sized>(
        &self,
        execution_id: &str,
        topic: &str,
        key: &str,
        message: &M,
    ) -> Result<bool> {
        self.send_message(execution_id, topic, Some(key), message).await
    }

    async fn send_message<M: Serialize + ?Sized>(
        &self,
        execution_id: &str,
        topic: &str,
        key: Option<&str>,
        message: &M,
    ) -> Result<bool> {
        let url = self.client.http().url(&["workflows", &self.name, "send", execution_id, topic])?;
        let mut request = self.client.http().request(Method::POST, url, Auth::Plain).json(message);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = self.client.http().value(request).await?;
        Ok(answer["delivered"].as_bool().unwrap_or(false))
    }

    /// `GET /workflows/{name}/events/{id}/{key}`: the latest value execution `id` set under
    /// `key` with `flux::set_event`, or `None` if it set none yet.
    pub async fn get_event<T: DeserializeOwned>(&self, execution_id: &str, key: &str) -> Result<Option<T>> {
        let url = self.client.http().url(&["workflows", &self.name, "events", execution_id, key])?;
        let answer = self.client.http().value(self.client.http().request(Method::GET, url, Auth::Plain)).await?;
        if answer["set"] != serde_json::Value::Bool(true) {
            return Ok(None);
        }
        serde_json::from_value(answer["value"].clone())
            .map(Some)
            .map_err(|e| Error::new(ErrorKind::Decode, format!("event `{key}` of execution `{execution_id}`: {e}")))
    }

    /// `POST /workflows/{name}/resume/{id}/sync`: resumes a paused execution with `input` (the
    /// type its pause waits for) and answers once it finished or paused again. A resume input
    /// the pause cannot read is refused (kind [`ErrorKind::InvalidInput`], or a status still
    /// `PAUSED` from a worker that refused it); an execution that is not paused is
    /// [`ErrorKind::InvalidState`].
    pub async fn resume<R: Serialize + ?Sized>(&self, execution_id: &str, input: &R) -> Result<ExecutionStatus<O>> {
        self.post(&["resume", execution_id, Mode::Sync.as_str()], input).await
    }

    /// `POST /workflows/{name}/resume/{id}/async`: resumes a paused execution and answers at
    /// once.
    pub async fn resume_async<R: Serialize + ?Sized>(
        &self,
        execution_id: &str,
        input: &R,
    ) -> Result<ExecutionStatus<O>> {
        self.post(&["resume", execution_id, Mode::Async.as_str()], input).await
    }

    /// `POST /workflows/{name}/resume/{id}/stream`: resumes a paused execution and hands out
    /// its events until it finishes or pauses again.
    pub async fn resume_stream<R: Serialize + ?Sized>(&self, execution_id: &str, input: &R) -> Result<EventStream<O>> {
        self.post_stream(&["resume", execution_id, Mode::Stream.as_str()], input).await
    }

    /// `GET /workflows/{name}/cancel/{id}`: asks for the cancellation of an execution and
    /// answers at once (state `CANCELLING`, or `CANCELLED` for one that was not running).
    /// Cancelling a finished execution is [`ErrorKind::InvalidState`].
    pub async fn cancel(&self, execution_id: &str) -> Result<ExecutionStatus<O>> {
        self.cancel_in(execution_id, "async").await
    }

    /// `GET /workflows/{name}/cancel/{id}?mode=sync`: cancels an execution and answers once it
    /// is `CANCELLED` (its running task stopped, its rollback run).
    pub async fn cancel_and_wait(&self, execution_id: &str) -> Result<ExecutionStatus<O>> {
        self.cancel_in(execution_id, "sync").await
    }

    async fn cancel_in(&self, execution_id: &str, mode: &str) -> Result<ExecutionStatus<O>> {
        let mut url = self.url(&["cancel", execution_id])?;
        url.query_pairs_mut().append_pair("mode", mode);
        self.summary(self.client.http().request(Method::GET, url, Auth::Plain)).await
    }

    /// `POST` of `input` as JSON to `/workflows/{name}/{segments..}`, answered with a summary.
    async fn post<B: Serialize + ?Sized>(&self, segments: &[&str], input: &B) -> Result<ExecutionStatus<O>> {
        let url = self.url(segments)?;
        let body = encode(input)?;
        self.summary(self.client.http().request(Method::POST, url, Auth::Plain).json(&body)).await
    }

    /// `POST` of `input` as JSON to `/workflows/{name}/{segments..}`, answered with events.
    async fn post_stream<B: Serialize + ?Sized>(&self, segments: &[&str], input: &B) -> Result<EventStream<O>> {
        let url = self.url(segments)?;
        let body = encode(input)?;
        let http = self.client.http();
        let request = http
            .request(Method::POST, url, Auth::Plain)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&body);
        let response = http.send(request).await?;
        Ok(EventStream::new(response, http.shown().to_string()))
    }

    /// Sends `request` and reads its summary.
    async fn summary(&self, request: reqwest::RequestBuilder) -> Result<ExecutionStatus<O>> {
        let summary = self.client.http().value(request).await?;
        ExecutionStatus::from_summary(summary)
    }
}

/// `input` as the JSON value sent.
fn encode<B: Serialize + ?Sized>(input: &B) -> Result<serde_json::Value> {
    serde_json::to_value(input)
        .map_err(|e| Error::new(ErrorKind::Encode, format!("the input cannot be written as JSON: {e}")))
}
