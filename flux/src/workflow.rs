//! Workflows: the [`Workflow`] value the macro creates, and the driver that runs, continues and
//! loads executions.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt as _;

use std::time::Duration;

use crate::context::{self, CancelRequest, Execution, ExecutionContext, PauseRequest, RunState, Stop, Subscription};
use crate::engine::{Engine, LocalClaim};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventType, ExecutionState};
use crate::store::{StoredExecution, Write};
use crate::task::{Args, ArgsReader, Call, Handlers, NoHandler, TaskCall, TaskOptions};
use crate::value::{self, Storable};

/// A boxed, sendable future: the type of a workflow body.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What `#[flux::workflow]` implements for a workflow: its name, types and body.
pub trait WorkflowDefinition: Send + Sync + 'static {
    /// The input type (the `I` of `ExecutionContext<I>`).
    type Input: Storable + Send + 'static;
    /// The output type.
    type Output: Storable + Send + 'static;
    /// The workflow name.
    const NAME: &'static str;
    /// The secrets the workflow asks for (`secret_requests`), given to it in its context.
    const SECRET_REQUESTS: &'static [&'static str] = &[];
    /// Where the output is kept (`output_storage`): `None` in the log, or an output storage name.
    const OUTPUT_STORAGE: Option<&'static str> = None;
    /// Runs the body once over `ctx`.
    fn body(ctx: ExecutionContext<Self::Input>) -> BoxFuture<Result<Self::Output>>;
}

/// A workflow, ready to run: the value `#[flux::workflow]` makes of the function's name.
///
/// ```no_run
/// use flux::prelude::*;
///
/// #[flux::task]
/// async fn say_hello(name: String) -> String {
///     format!("Hello, {name}")
/// }
///
/// #[flux::workflow]
/// async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
///     say_hello(ctx.input().clone()).await
/// }
///
/// # async fn demo() -> flux::Result<()> {
/// let engine = flux::Engine::in_memory();
/// let execution = hello_world.on(&engine).run("World".to_string()).await?;
/// assert_eq!(execution.output(), Some(&"Hello, World".to_string()));
/// let again = hello_world.on(&engine).replay(execution.execution_id()).await?;
/// assert_eq!(again.output(), execution.output());
/// # Ok(()) }
/// ```
pub struct Workflow<W> {
    engine: Option<Engine>,
    _definition: PhantomData<fn() -> W>,
}

impl<W> std::fmt::Debug for Workflow<W>
where
    W: WorkflowDefinition,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow").field("name", &W::NAME).field("engine", &self.engine).finish()
    }
}

impl<W> Clone for Workflow<W> {
    fn clone(&self) -> Self {
        Workflow { engine: self.engine.clone(), _definition: PhantomData }
    }
}

impl<W: WorkflowDefinition> Default for Workflow<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: WorkflowDefinition> Workflow<W> {
    /// The workflow on the default engine.
    pub const fn new() -> Self {
        Workflow { engine: None, _definition: PhantomData }
    }

    /// The same workflow, running on `engine`.
    pub fn on(&self, engine: &Engine) -> Workflow<W> {
        Workflow { engine: Some(engine.clone()), _definition: PhantomData }
    }

    /// The workflow name.
    pub fn name(&self) -> &'static str {
        W::NAME
    }

    fn engine(&self) -> Result<Engine> {
        match &self.engine {
            Some(e) => Ok(e.clone()),
            None => Engine::global(),
        }
    }

    /// Starts a new execution with `input` and runs it to the end (or to a pause).
    ///
    /// `Err` only when the engine cannot work (storage unusable, input not encodable); a
    /// workflow that fails returns `Ok` with an execution in state `FAILED`.
    pub async fn run(&self, input: W::Input) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let id = new_execution_id();
        let claim = engine.claim_local(&id)?;
        let (run, bytes) = create::<W>(&engine, &claim, &id, &input, None)?;
        begin(&run, bytes.clone()).await?;
        drive::<W>(run, input, bytes).await
    }

    /// Starts a new execution in the background and returns at once (once the execution is
    /// stored) with a handle: its id, [`ExecutionHandle::cancel`], and `.await` for the result.
    ///
    /// Needs a Tokio runtime (the execution runs as a spawned task).
    pub async fn start(&self, input: W::Input) -> Result<ExecutionHandle<W>> {
        let engine = self.engine()?;
        let id = new_execution_id();
        let claim = engine.claim_local(&id)?;
        let (run, bytes) = create::<W>(&engine, &claim, &id, &input, None)?;
        begin(&run, bytes.clone()).await?;
        let join = tokio::spawn(async move {
            let _claim = claim;
            drive::<W>(run, input, bytes).await
        });
        Ok(ExecutionHandle { execution_id: id, workflow: self.on(&engine), join })
    }

    /// Starts a new execution in the background and streams its events: each durable event as
    /// it is recorded, and the ephemeral `TASK_PROGRESS` events of `flux::progress`, ending with
    /// the final (or paused) event.
    ///
    /// Progress events wait in a queue of [`crate::PROGRESS_QUEUE`] per stream; when a reader falls
    /// that far behind, newer progress events are dropped (durable ones never are).
    pub async fn stream(&self, input: W::Input) -> Result<ExecutionStream<W>> {
        let engine = self.engine()?;
        let id = new_execution_id();
        let claim = engine.claim_local(&id)?;
        let (run, bytes) = create::<W>(&engine, &claim, &id, &input, None)?;
        let events = run.subscribe();
        let join = tokio::spawn(async move {
            let _claim = claim;
            begin(&run, bytes.clone()).await?;
            drive::<W>(run, input, bytes).await
        });
        Ok(ExecutionStream { execution_id: id, events, join: Some(join), ended: false })
    }

    /// Runs with a caller-chosen execution id. If an execution with that id exists, it is
    /// continued (as by [`Workflow::replay`]) and `input` is ignored.
    pub async fn run_with_id(&self, id: impl Into<String>, input: W::Input) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let id = id.into();
        if id.is_empty() {
            return Err(Error::new(ErrorKind::InvalidState, "an execution id cannot be empty"));
        }
        let claim = engine.claim_local(&id)?;
        match engine.load(&id).await? {
            Some(stored) => resume_stored::<W>(&engine, &claim, stored).await,
            None => {
                let (run, bytes) = create::<W>(&engine, &claim, &id, &input, None)?;
                begin(&run, bytes.clone()).await?;
                drive::<W>(run, input, bytes).await
            }
        }
    }

    /// Continues an existing execution: a finished (or paused) one is returned as stored; one
    /// left running by a crash is run again over its log, replaying every recorded task.
    pub async fn replay(&self, id: &str) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let claim = engine.claim_local(id)?;
        let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
        resume_stored::<W>(&engine, &claim, stored).await
    }

    /// Resumes a paused execution with `input`: the body replays up to the pause it stopped at,
    /// which returns `input`, and goes on (to its end or to its next pause).
    ///
    /// If `input` does not fit the type the pause asks for, the error says so and the execution
    /// stays `PAUSED`, unchanged.
    pub async fn resume<R: serde::Serialize>(&self, id: &str, input: R) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let claim = engine.claim_local(id)?;
        let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
        let resume_input: Arc<[u8]> = value::to_msgpack(&input)
            .map_err(|e| {
                Error::new(ErrorKind::Encode, format!("the resume input of execution `{id}` cannot be encoded"))
                    .with_cause(e.message().to_string())
            })?
            .into();
        let (run, input, input_bytes) = prepare_resume::<W>(&engine, &claim, stored, resume_input)?;
        drive::<W>(run, input, input_bytes).await
    }

    /// Cancels an execution and returns it as it then is.
    ///
    /// - Running in this process: `WORKFLOW_CANCELLING` is recorded, the running task records
    ///   `TASK_CANCELLED` and runs its rollback (at most [`crate::ROLLBACK_LIMIT`]), and the
    ///   execution ends `CANCELLED`; this waits for that end.
    /// - Paused (or not yet claimed): it is cancelled at once.
    /// - Running in another process: its state becomes `CANCELLING`; that process notices within
    ///   a fraction of a second and finishes the cancellation (a replay finishes it too, if that
    ///   process is gone). The execution is returned in state `CANCELLING`.
    ///
    /// Cancelling a finished execution is an error that says so.
    pub async fn cancel(&self, id: &str) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        if let Some(run) = engine.local_run(id) {
            if *run.workflow_name != *W::NAME {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("execution `{id}` belongs to workflow `{}`, not `{}`", run.workflow_name, W::NAME),
                ));
            }
            match run.request_cancel(false)? {
                CancelRequest::Requested(commit) => {
                    run.durable(Some(commit)).await?;
                    run.wait_closed().await;
                    return self.status(id).await;
                }
                CancelRequest::AlreadyRequested => {
                    run.wait_closed().await;
                    return self.status(id).await;
                }
                // It recorded its end (finished or paused) already: storage decides below.
                CancelRequest::Finished => run.wait_closed().await,
            }
        }
        let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
        check_workflow::<W>(&stored)?;
        match stored.state {
            state if state.is_terminal() => Err(already_finished(id, state)),
            ExecutionState::Cancelling => to_execution::<W>(&engine, stored),
            ExecutionState::Running
            | ExecutionState::Resuming
            | ExecutionState::Claimed
            | ExecutionState::ResumeClaimed => {
                let request = Write::SetState {
                    execution_id: Arc::from(id),
                    state: ExecutionState::Cancelling,
                    output: None,
                    time: crate::event::now(),
                };
                engine.store().write(vec![request]).await?;
                let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
                to_execution::<W>(&engine, stored)
            }
            _ => {
                let claim = engine.claim_local(id)?;
                let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
                finish_cancelled::<W>(&engine, &claim, stored).await
            }
        }
    }

    /// The execution as stored, without running anything.
    pub async fn status(&self, id: &str) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
        check_workflow::<W>(&stored)?;
        to_execution::<W>(&engine, stored)
    }

    /// Calls this workflow from inside another workflow: a sub-workflow. It gets its own
    /// execution, linked to the parent's (its `parent_id`), and the call is a task in the parent's
    /// log: when the parent replays, the recorded output is returned and the child is not run
    /// again. A child left unfinished by a crash is continued, not started again.
    ///
    /// Outside a workflow it simply runs the workflow and returns its output. A child that
    /// fails, is cancelled or pauses makes the call fail (a paused child cannot be resumed through
    /// its parent).
    ///
    /// ```
    /// use flux::prelude::*;
    ///
    /// #[flux::workflow]
    /// async fn child(ctx: ExecutionContext<u32>) -> u32 {
    ///     ctx.input() * 2
    /// }
    ///
    /// #[flux::workflow]
    /// async fn parent(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    ///     child.call(*ctx.input()).await
    /// }
    /// ```
    pub fn call(&self, input: W::Input) -> impl Future<Output = Result<W::Output>> + Send + 'static {
        let workflow = self.clone();
        let task = TaskCall::begin(W::NAME, || (W::NAME, Args::new(1).arg(&input)));
        let mut input = Some(input);
        async move {
            let attempt = move |call: &Call<'_>| -> Result<BoxFuture<Result<W::Output>>> {
                let input = match input.take() {
                    Some(input) => input,
                    None => ArgsReader::new(call.args, 1)?.read::<W::Input>()?,
                };
                let (Some(engine), Some(parent)) = (call.engine, context::current()) else {
                    // Outside a workflow: an execution of its own.
                    let workflow = workflow.clone();
                    return Ok(Box::pin(async move { output_of::<W>(workflow.run(input).await?) }));
                };
                let child_id = child_execution_id(&parent.execution_id, call.task_id);
                Ok(Box::pin(run_child::<W>(engine.clone(), child_id, parent, input)))
            };
            let handlers = Handlers { fallback: None::<NoHandler<W::Output>>, rollback: None::<NoHandler<()>> };
            task.run(crate::task::codec::<W::Output>(), &TaskOptions::new(), attempt, handlers).await
        }
    }
}

/// A run ready to be driven: the run, the workflow's input and its encoded form.
pub(crate) type Prepared<I> = (Arc<RunState>, I, Arc<[u8]>);

/// Checks that `stored` is a paused execution of `W` and makes the run that resumes it with
/// `resume_input`.
pub(crate) fn prepare_resume<W: WorkflowDefinition>(
    engine: &Engine,
    claim: &LocalClaim,
    stored: StoredExecution,
    resume_input: Arc<[u8]>,
) -> Result<Prepared<W::Input>> {
    let id = stored.id.as_str();
    check_workflow::<W>(&stored)?;
    if stored.state != ExecutionState::Paused {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("execution `{id}` is not paused (it is {}); only a paused execution can be resumed", stored.state),
        ));
    }
    let input = decode_input::<W>(&stored.id, &stored.input)?;
    let run = Arc::new(
        RunState::new(engine.clone(), &stored.id, W::NAME, stored.events).with_parent(stored.parent_id.as_deref()),
    );
    claim.attach(&run);
    engine.own(&run);
    run.set_resume_input(resume_input);
    tracing::debug!(workflow = W::NAME, execution_id = %id, "resuming execution");
    Ok((run, input, stored.input.into()))
}

/// A new random execution id (32 hexadecimal digits).
pub(crate) fn new_execution_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The id of the child execution started by the call `task_id` of execution `parent`: the same
/// on every replay of the parent.
fn child_execution_id(parent: &str, task_id: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(parent.as_bytes());
    hasher.update(&[0]);
    hasher.update(task_id.as_bytes());
    let hash = hasher.finalize();
    let hex = hash.to_hex();
    hex[..32].to_string()
}

/// The output of a finished execution, or why there is none.
fn output_of<W: WorkflowDefinition>(execution: Execution<W::Input, W::Output>) -> Result<W::Output> {
    let id = execution.execution_id.clone();
    match execution.state {
        ExecutionState::Completed => execution.output.ok_or_else(|| {
            Error::new(
                ErrorKind::Decode,
                format!("execution `{id}` of workflow `{}` completed without output", W::NAME),
            )
        }),
        ExecutionState::Paused => Err(Error::new(
            ErrorKind::InvalidState,
            format!("sub-workflow `{}` (execution `{id}`) paused; a sub-workflow cannot wait for a resume", W::NAME),
        )),
        state => {
            let kind =
                if state == ExecutionState::Cancelled { ErrorKind::Cancelled } else { ErrorKind::WorkflowFailed };
            let mut error = Error::new(kind, format!("sub-workflow `{}` (execution `{id}`) ended {state}", W::NAME));
            if let Some(cause) = execution.error {
                error = error.with_cause(cause.to_string());
            }
            Err(error)
        }
    }
}

/// Marks a child execution `CANCELLING` if its parent is cancelled while awaiting it, so that it
/// is not left running without an owner. Dropped for any other reason (the parent paused, or
/// stopped on an engine error), the child stays as it is: its id is derived from the parent's,
/// so the parent's resume or replay continues it.
struct ChildGuard {
    engine: Engine,
    id: String,
    parent: Arc<RunState>,
    armed: bool,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.armed && self.parent.is_cancelled() {
            let request = Write::SetState {
                execution_id: Arc::from(self.id.as_str()),
                state: ExecutionState::Cancelling,
                output: None,
                time: crate::event::now(),
            };
            // Refused harmlessly if the child finished or was never created.
            drop(self.engine.store().write(vec![request]));
        }
    }
}

/// Runs (or continues, or returns as stored) the child execution `id` of a parent.
async fn run_child<W: WorkflowDefinition>(
    engine: Engine,
    id: String,
    parent: Arc<RunState>,
    input: W::Input,
) -> Result<W::Output> {
    let claim = engine.claim_local(&id)?;
    let mut guard = ChildGuard { engine: engine.clone(), id: id.clone(), parent: parent.clone(), armed: true };
    let ran = async {
        match engine.load(&id).await? {
            Some(stored) => resume_stored::<W>(&engine, &claim, stored).await,
            None => {
                let (run, bytes) = create::<W>(&engine, &claim, &id, &input, Some(parent.execution_id.clone()))?;
                begin(&run, bytes.clone()).await?;
                drive::<W>(run, input, bytes).await
            }
        }
    };
    // The engine could not run the child (storage failed): the parent stops too, without
    // recording the call as failed, and both can be replayed once storage works.
    let execution = ran.await.map_err(|e| parent.abort(e))?;
    guard.armed = false;
    output_of::<W>(execution)
}

/// The background task running an execution of `W`.
type Running<W> =
    tokio::task::JoinHandle<Result<Execution<<W as WorkflowDefinition>::Input, <W as WorkflowDefinition>::Output>>>;

/// A running execution started by [`Workflow::start`]: `.await` it for the result.
pub struct ExecutionHandle<W: WorkflowDefinition> {
    execution_id: String,
    workflow: Workflow<W>,
    join: Running<W>,
}

impl<W: WorkflowDefinition> ExecutionHandle<W> {
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
            Err(e) if e.is_panic() => Err(crate::task::panic_error(e.into_panic())),
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

pub(crate) fn not_found(engine: &Engine, id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no execution `{id}` in {}", engine.store().describe()))
}

/// The refusal of a cancel of execution `id`, which ended in `state`.
pub(crate) fn already_finished(id: &str, state: ExecutionState) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("execution `{id}` has already finished ({state}); only a running or paused execution can be cancelled"),
    )
}

pub(crate) fn check_workflow<W: WorkflowDefinition>(stored: &StoredExecution) -> Result<()> {
    if stored.workflow_name != W::NAME {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("execution `{}` belongs to workflow `{}`, not `{}`", stored.id, stored.workflow_name, W::NAME),
        ));
    }
    Ok(())
}

pub(crate) fn decode_input<W: WorkflowDefinition>(id: &str, bytes: &[u8]) -> Result<W::Input> {
    value::from_msgpack(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Decode,
            format!(
                "the stored input of execution `{id}` does not fit the input type `{}` of workflow `{}`",
                std::any::type_name::<W::Input>(),
                W::NAME
            ),
        )
        .with_cause(e.message().to_string())
    })
}

/// Builds the user's view of a stored execution.
pub(crate) fn to_execution<W: WorkflowDefinition>(
    engine: &Engine,
    stored: StoredExecution,
) -> Result<Execution<W::Input, W::Output>> {
    let input = decode_input::<W>(&stored.id, &stored.input)?;
    let (mut output, mut error) = (None, None);
    match (stored.state, &stored.output) {
        (ExecutionState::Completed, Some(bytes)) => {
            output = Some(value::from_msgpack(&engine.resolve_output(bytes)?).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!(
                        "the stored output of execution `{}` does not fit the output type `{}` of workflow `{}`",
                        stored.id,
                        std::any::type_name::<W::Output>(),
                        W::NAME
                    ),
                )
                .with_cause(e.message().to_string())
            })?);
        }
        (ExecutionState::Failed | ExecutionState::Cancelled, Some(bytes)) => {
            // A stored error always loads: if it cannot be read as an Error it is reported as one.
            error = Some(value::from_msgpack::<Error>(bytes).unwrap_or_else(|e| {
                Error::new(ErrorKind::Unknown, "the stored error of this execution cannot be read")
                    .with_cause(e.message().to_string())
            }));
        }
        _ => {}
    }
    Ok(Execution {
        execution_id: stored.id,
        workflow_name: stored.workflow_name,
        state: stored.state,
        input,
        output,
        error,
        parent_id: stored.parent_id,
        events: stored.events,
    })
}

/// A new execution's run and encoded input, attached to `claim`.
pub(crate) fn create<W: WorkflowDefinition>(
    engine: &Engine,
    claim: &LocalClaim,
    id: &str,
    input: &W::Input,
    parent: Option<Arc<str>>,
) -> Result<(Arc<RunState>, Arc<[u8]>)> {
    let input_bytes: Arc<[u8]> = value::to_msgpack(input)
        .map_err(|e| {
            Error::new(ErrorKind::Encode, format!("the input of workflow `{}` cannot be encoded", W::NAME))
                .with_cause(e.message().to_string())
        })?
        .into();
    let run = Arc::new(RunState::new(engine.clone(), id, W::NAME, Vec::new()).with_parent(parent.as_deref()));
    claim.attach(&run);
    Ok((run, input_bytes))
}

/// Stores a new execution: its row and `WORKFLOW_STARTED` in one transaction, durable before the
/// body runs.
pub(crate) async fn begin(run: &Arc<RunState>, input: Arc<[u8]>) -> Result<()> {
    let create = Write::CreateExecution {
        id: run.execution_id.clone(),
        workflow_name: run.workflow_name.clone(),
        state: ExecutionState::Running,
        input: input.clone(),
        parent_id: run.parent_id.clone(),
        time: crate::event::now(),
    };
    // The lease goes in the same transaction: the execution is never stored without its owner.
    let lease = run.engine().lease_write(run.execution_id.clone(), crate::store::LeaseMode::Own);
    let started = match run
        .record_batch([(EventType::WorkflowStarted, &run.workflow_source, &run.workflow_name, input)], [create, lease])
    {
        Ok(commit) => run.durable(Some(commit)).await,
        Err(e) => Err(e),
    };
    run.engine().renew_in_background();
    if started.is_err() {
        run.close();
    }
    started?;
    tracing::debug!(workflow = %run.workflow_name, execution_id = %run.execution_id, "execution started");
    Ok(())
}

/// Continues a stored execution, or returns it as stored when there is nothing to run.
pub(crate) async fn resume_stored<W: WorkflowDefinition>(
    engine: &Engine,
    claim: &LocalClaim,
    stored: StoredExecution,
) -> Result<Execution<W::Input, W::Output>> {
    check_workflow::<W>(&stored)?;
    if stored.state.is_terminal() || stored.state == ExecutionState::Paused {
        return to_execution::<W>(engine, stored);
    }
    if stored.state == ExecutionState::Cancelling {
        // Its cancellation was asked for while no process ran it (or the one that did is gone).
        return finish_cancelled::<W>(engine, claim, stored).await;
    }
    let input = decode_input::<W>(&stored.id, &stored.input)?;
    tracing::debug!(workflow = W::NAME, execution_id = %stored.id, events = stored.events.len(), "continuing execution");
    let run = Arc::new(
        RunState::new(engine.clone(), &stored.id, W::NAME, stored.events).with_parent(stored.parent_id.as_deref()),
    );
    claim.attach(&run);
    engine.own(&run);
    drive::<W>(run, input, stored.input.into()).await
}

/// Ends the cancellation of an execution nobody runs: `WORKFLOW_CANCELLING` (unless the log has
/// it already) and `WORKFLOW_CANCELLED`, state `CANCELLED`, in one transaction.
pub(crate) async fn finish_cancelled<W: WorkflowDefinition>(
    engine: &Engine,
    claim: &LocalClaim,
    stored: StoredExecution,
) -> Result<Execution<W::Input, W::Output>> {
    let input = decode_input::<W>(&stored.id, &stored.input)?;
    let asked = stored.events.iter().rev().any(|e| e.kind() == EventType::WorkflowCancelling);
    let run = Arc::new(
        RunState::new(engine.clone(), &stored.id, W::NAME, stored.events).with_parent(stored.parent_id.as_deref()),
    );
    claim.attach(&run);
    let _closed = CloseOnDrop(&run);
    let error = cancelled_workflow(&run.execution_id);
    let recorded: Arc<[u8]> = value::to_msgpack(&error)?.into();
    let mut events = Vec::with_capacity(2);
    if !asked {
        events.push((EventType::WorkflowCancelling, &run.workflow_source, &run.workflow_name, Arc::from(context::NIL)));
    }
    events.push((EventType::WorkflowCancelled, &run.workflow_source, &run.workflow_name, recorded.clone()));
    let set_state = Write::SetState {
        execution_id: run.execution_id.clone(),
        state: ExecutionState::Cancelled,
        output: Some(recorded),
        time: crate::event::now(),
    };
    let commit = run.record_batch(events, Some(set_state))?;
    run.durable(Some(commit)).await?;
    tracing::debug!(workflow = W::NAME, execution_id = %run.execution_id, "execution cancelled");
    Ok(Execution {
        execution_id: run.execution_id.to_string(),
        workflow_name: W::NAME.to_string(),
        state: ExecutionState::Cancelled,
        input,
        output: None,
        error: Some(error),
        parent_id: run.parent_id.as_deref().map(str::to_string),
        events: run.take_events(),
    })
}

/// The error of a cancelled execution.
fn cancelled_workflow(id: &str) -> Error {
    Error::new(ErrorKind::Cancelled, format!("execution `{id}` was cancelled"))
}

/// Closes a run (listeners, waiters) however the driver leaves.
struct CloseOnDrop<'a>(&'a RunState);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// How long a cancelled body may take to wind down (its running task's rollback included)
/// before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(15);

/// How often a running execution checks storage for a cancellation asked for by another
/// process.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// How the body stopped.
enum Ending<O> {
    /// It returned (or panicked).
    Returned(Result<O>),
    /// It reached a pause.
    Paused(PauseRequest),
    /// A resume input did not fit its pause.
    Rejected(Error),
}

/// Resolves once storage says the execution is `CANCELLING` (asked for by another process).
async fn cancel_requested_in_store(run: &RunState) {
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        if let Ok(Some(ExecutionState::Cancelling)) = run.engine().state(&run.execution_id).await {
            return;
        }
    }
}

/// Polls the body until it returns or is told to stop (pause, rejected resume); a cancelled body
/// is given [`CANCEL_GRACE`] to record its cancellation.
async fn run_body<O>(run: &Arc<RunState>, body: BoxFuture<Result<O>>) -> Ending<O> {
    let body = context::scope(run.clone(), AssertUnwindSafe(body).catch_unwind());
    let mut body = std::pin::pin!(body);
    let returned = |r: std::result::Result<Result<O>, Box<dyn std::any::Any + Send>>| {
        Ending::Returned(r.unwrap_or_else(|panic| Err(crate::task::panic_error(panic))))
    };
    let watch = cancel_requested_in_store(run);
    let mut watch = std::pin::pin!(watch);
    let mut watching = true;
    loop {
        let notified = run.stop_notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        match run.stop() {
            Stop::Pause(pause) => return Ending::Paused(pause),
            Stop::Rejected(e) => return Ending::Rejected(e),
            Stop::Cancel => {
                return match tokio::time::timeout(CANCEL_GRACE, body.as_mut()).await {
                    Ok(r) => returned(r),
                    Err(_) => Ending::Returned(Err(cancelled_workflow(&run.execution_id))),
                };
            }
            Stop::None => {}
        }
        tokio::select! {
            r = body.as_mut() => return returned(r),
            _ = notified => {}
            _ = watch.as_mut(), if watching => {
                watching = false;
                match run.request_cancel(true) {
                    Ok(CancelRequest::Requested(commit)) => {
                        // A failure marks the run broken; it is reported when the run ends.
                        let _ = run.durable(Some(commit)).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(execution_id = %run.execution_id, error = %e, "cannot record the cancellation"),
                }
            }
        }
    }
}

/// Runs the body over `run`'s log and records how it ended.
pub(crate) async fn drive<W: WorkflowDefinition>(
    run: Arc<RunState>,
    input: W::Input,
    input_bytes: Arc<[u8]>,
) -> Result<Execution<W::Input, W::Output>> {
    let _closed = CloseOnDrop(&run);
    let requester = format!("workflow `{}`", W::NAME);
    let ending = match crate::secrets::fetch(run.engine(), W::SECRET_REQUESTS, &requester) {
        // Without the secrets it asked for, the body does not run and the workflow fails.
        Err(e) => Ending::Returned(Err(e)),
        Ok(secrets) => run_body(&run, W::body(ExecutionContext::new(run.clone(), input, secrets))).await,
    };
    if let Some(broken) = run.broken() {
        // The log in storage stopped at the last durable event: the execution stays RUNNING
        // there and can be replayed once storage works again.
        return Err(broken);
    }
    let outcome = match ending {
        Ending::Rejected(e) => return Err(e),
        Ending::Paused(pause) => match run.record_pause(&pause)? {
            Some(commit) => {
                run.durable(Some(commit)).await?;
                tracing::debug!(workflow = W::NAME, execution_id = %run.execution_id, pause = %pause.name, "execution paused");
                return Ok(Execution {
                    execution_id: run.execution_id.to_string(),
                    workflow_name: W::NAME.to_string(),
                    state: ExecutionState::Paused,
                    input: decode_input::<W>(&run.execution_id, &input_bytes)?,
                    output: None,
                    error: None,
                    parent_id: run.parent_id.as_deref().map(str::to_string),
                    events: run.take_events(),
                });
            }
            // Cancelled before the pause was recorded.
            None => Err(cancelled_workflow(&run.execution_id)),
        },
        Ending::Returned(outcome) => outcome,
    };
    let (kind, recorded, state, output, error) = match outcome {
        Ok(output) => match value::to_msgpack(&output) {
            Ok(bytes) => {
                let recorded = match W::OUTPUT_STORAGE {
                    None => bytes,
                    // An output storage that fails stops the run: the execution stays RUNNING
                    // and can be replayed once the storage works.
                    Some(storage) => run.engine().store_output(storage, &bytes).map_err(|e| run.abort(e))?,
                };
                (EventType::WorkflowCompleted, recorded, ExecutionState::Completed, Some(output), None)
            }
            Err(e) => {
                let err =
                    Error::new(ErrorKind::Encode, format!("the output of workflow `{}` cannot be encoded", W::NAME))
                        .with_cause(e.message().to_string());
                (EventType::WorkflowFailed, value::to_msgpack(&err)?, ExecutionState::Failed, None, Some(err))
            }
        },
        Err(err) => (EventType::WorkflowFailed, value::to_msgpack(&err)?, ExecutionState::Failed, None, Some(err)),
    };
    let cancel_error = cancelled_workflow(&run.execution_id);
    let (commit, state) = run.record_end(|cancelled| {
        if cancelled {
            // Once its cancellation is recorded, an execution ends cancelled, whatever its body did.
            Ok((EventType::WorkflowCancelled, value::to_msgpack(&cancel_error)?.into(), ExecutionState::Cancelled))
        } else {
            Ok((kind, recorded.into(), state))
        }
    })?;
    run.durable(Some(commit)).await?;
    tracing::debug!(workflow = W::NAME, execution_id = %run.execution_id, state = %state, "execution finished");
    let (output, error) = if state == ExecutionState::Cancelled { (None, Some(cancel_error)) } else { (output, error) };
    Ok(Execution {
        execution_id: run.execution_id.to_string(),
        workflow_name: W::NAME.to_string(),
        state,
        input: decode_input::<W>(&run.execution_id, &input_bytes)?,
        output,
        error,
        parent_id: run.parent_id.as_deref().map(str::to_string),
        events: run.take_events(),
    })
}
