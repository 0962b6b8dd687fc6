//! Executions running in the background: [`ExecutionHandle`] (from `workflow.start(input)`) and
//! [`ExecutionStream`] (from `workflow.stream(input)`).

use std::future::Future;
use std::pin::Pin;

use super::{Workflow, WorkflowDefinition};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::Execution;
use crate::run::Subscription;

/// The background task running an execution of `W`.
pub(super) type Running<W> =
    tokio::task::JoinHandle<Result<Execution<<W as WorkflowDefinition>::Input, <W as WorkflowDefinition>::Output>>>;

/// A running execution started by [`Workflow::start`]: `.await` it for the result.
pub struct ExecutionHandle<W: WorkflowDefinition> {
    execution_id: String,
    workflow: Workflow<W>,
    join: Running<W>,
}

impl<W: WorkflowDefinition> ExecutionHandle<W> {
    pub(super) fn new(execution_id: String, workflow: Workflow<W>, join: Running<W>) -> Self {
        ExecutionHandle { execution_id, workflow, join }
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// Cancels the execution (see [`Workflow::cancel`]) and waits until it has stopped.
    pub async fn cancel(&self) -> Result<Execution<W::Input, W::Output>> {
        self.workflow.cancel(&self.execution_id).await
    }

    /// Whether the execution has stopped running here (finished, paused or stopped by an error).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

impl<W: WorkflowDefinition> std::fmt::Debug for ExecutionHandle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionHandle").field("workflow", &W::NAME).field("execution_id", &self.execution_id).finish()
    }
}

impl<W: WorkflowDefinition> std::future::IntoFuture for ExecutionHandle<W> {
    type Output = Result<Execution<W::Input, W::Output>>;
    type IntoFuture = Joined<Execution<W::Input, W::Output>>;
    fn into_future(self) -> Self::IntoFuture {
        Joined(self.join)
    }
}

/// The result of an execution running in the background.
#[derive(Debug)]
pub struct Joined<T>(tokio::task::JoinHandle<Result<T>>);

impl<T> Future for Joined<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<T>> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(Error::from_panic(e.into_panic())),
            Err(e) => Err(Error::new(ErrorKind::Cancelled, format!("the execution's task was stopped: {e}"))),
        })
    }
}

/// The events of an execution started by [`Workflow::stream`], as a [`futures::Stream`].
///
/// Yields each event in log order (with the ephemeral `TASK_PROGRESS` events in between) and
/// ends after the final or paused event. If the engine fails, the last item is the error.
/// [`ExecutionStream::execution`] waits for the end and returns the execution.
pub struct ExecutionStream<W: WorkflowDefinition> {
    execution_id: String,
    events: Subscription,
    join: Option<Running<W>>,
    ended: bool,
}

impl<W: WorkflowDefinition> ExecutionStream<W> {
    pub(super) fn new(execution_id: String, events: Subscription, join: Running<W>) -> Self {
        ExecutionStream { execution_id, events, join: Some(join), ended: false }
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// Waits for the execution to stop and returns it (the events not taken are skipped).
    pub async fn execution(mut self) -> Result<Execution<W::Input, W::Output>> {
        match self.join.take() {
            Some(join) => Joined(join).await,
            None => Err(Error::new(ErrorKind::InvalidState, "the stream's execution was taken already")),
        }
    }
}

impl<W: WorkflowDefinition> std::fmt::Debug for ExecutionStream<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionStream").field("workflow", &W::NAME).field("execution_id", &self.execution_id).finish()
    }
}

impl<W: WorkflowDefinition> futures::Stream for ExecutionStream<W> {
    type Item = Result<crate::Event>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.events.poll_next(cx) {
            Poll::Ready(Some(event)) => return Poll::Ready(Some(Ok(event))),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {}
        }
        // Every event was taken: report an engine failure, if the run ended with one.
        let Some(join) = self.join.as_mut() else {
            self.ended = true;
            return Poll::Ready(None);
        };
        let result = std::task::ready!(Pin::new(join).poll(cx));
        self.join = None;
        self.ended = true;
        Poll::Ready(match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(Err(e)),
            Err(e) => Some(Err(Error::new(ErrorKind::Panic, format!("the execution's task failed: {e}")))),
        })
    }
}
