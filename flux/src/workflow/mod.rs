//! Workflows: [`WorkflowDefinition`], what `#[flux::workflow]` implements, and [`Workflow`], the
//! typed value the macro makes of a workflow's name. Every method is a short path through the
//! [`driver`](crate::driver): encode or decode the typed input and output, plan, prepare, drive.
//!
//! - [`handle`]: [`ExecutionHandle`] and [`ExecutionStream`], runs going on in the background.
//! - [`child`]: `workflow.call(input)`, a sub-workflow called from inside another workflow.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::context::ExecutionContext;
use crate::driver::{self, Cancel, Definition, Launch, NewExecution, Plan, Prepared, Ready};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::execution::Execution;
use crate::store::StoredExecution;
use crate::value::{self, Storable};

mod child;
mod handle;

pub use crate::task::BoxFuture;
pub use handle::{ExecutionHandle, ExecutionStream, Joined};

/// What `#[flux::workflow]` implements for a workflow: its name, types and body.
pub trait WorkflowDefinition: Send + Sync + 'static {
    /// The input type (the `I` of `ExecutionContext<I>`).
    type Input: Storable + Send + 'static;
    /// The output type.
    type Output: Storable + Send + 'static;
    /// The workflow name.
    const NAME: &'static str;
    /// The version of the workflow's code (`#[flux::workflow(version = 2)]`, 1 by default),
    /// stored with each execution when it starts.
    const VERSION: u32 = 1;
    /// The secrets the workflow asks for (`secret_requests`), given to it in its context.
    const SECRET_REQUESTS: &'static [&'static str] = &[];
    /// Where the output is kept (`output_storage`): `None` in the log, or an output storage name.
    const OUTPUT_STORAGE: Option<&'static str> = None;
    /// The JSON Schema of the input, as JSON text: `Some` when flux is built with the `mcp`
    /// feature and the input type derives `schemars::JsonSchema` (`#[flux::workflow]` finds out
    /// by itself; nothing else is asked of other inputs), `None` otherwise. A server shows it
    /// as `input_schema` in its catalog, and the MCP server gives the workflow's own tools
    /// typed parameters from it.
    fn input_schema() -> Option<String> {
        None
    }
    /// How many executions of the workflow an engine runs at once
    /// (`#[flux::workflow(max_concurrency = n)]`); the others wait in `SCHEDULED` and start in
    /// the order they were submitted. `None`: no limit.
    const MAX_CONCURRENCY: Option<usize> = None;
    /// The schedule `#[flux::workflow(schedule = "..")]` declares (with feature `schedule`):
    /// its cron expression and time zone (`timezone = ".."`, UTC by default). A scheduler
    /// creates it, named after the workflow, or brings it up to date, when it starts.
    const SCHEDULE: Option<(&'static str, &'static str)> = None;
    /// The input each fire of the declared schedule starts the workflow with: the input type's
    /// `Default` (`#[flux::workflow(schedule = "..")]` asks for one).
    fn schedule_input() -> Option<Self::Input> {
        None
    }
    /// Runs the body once over `ctx`.
    fn body(ctx: ExecutionContext<Self::Input>) -> BoxFuture<Result<Self::Output>>;
}

/// The execution type of workflow `W`.
type ExecutionOf<W> = Execution<<W as WorkflowDefinition>::Input, <W as WorkflowDefinition>::Output>;

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

    pub(crate) fn engine(&self) -> Result<Engine> {
        match &self.engine {
            Some(e) => Ok(e.clone()),
            None => Engine::global(),
        }
    }

    /// Starts a new execution with `input` and runs it to the end (or to a pause).
    ///
    /// `Err` only when the engine cannot work (storage unusable, input not encodable); a
    /// workflow that fails returns `Ok` with an execution in state `FAILED`.
    pub async fn run(&self, input: W::Input) -> Result<ExecutionOf<W>> {
        if W::MAX_CONCURRENCY.is_some() {
            return self.submit(&self.engine()?, None, input).await?.await;
        }
        let (prepared, input) = new_run::<W>(&self.engine()?, driver::new_execution_id(), input).await?;
        drive::<W>(prepared, input).await
    }

    /// Submits a new execution to queue `queue` of the engine ([`Engine::queue`]): it is stored
    /// at once in state `SCHEDULED`, waits for room in the queue (and under the workflow's own
    /// `max_concurrency`), then runs in the background. Executions start in the order they were
    /// submitted. The handle's `.await` gives the result.
    ///
    /// Needs a Tokio runtime. The limits hold for the executions this engine starts; an
    /// execution still waiting when its process stops stays `SCHEDULED`.
    pub async fn enqueue(&self, queue: &str, input: W::Input) -> Result<ExecutionHandle<W>> {
        let engine = self.engine()?;
        let limiter = engine.limiter(queue);
        self.submit(&engine, Some(limiter), input).await
    }

    /// Stores a new execution `SCHEDULED`, takes its places in line (the queue's, then the
    /// workflow's own), and runs it in the background once it has room in both.
    async fn submit(
        &self,
        engine: &Engine,
        queue: Option<Arc<crate::engine::Limiter>>,
        input: W::Input,
    ) -> Result<ExecutionHandle<W>> {
        let (id, encoded) = (driver::new_execution_id(), encode_input::<W>(&input)?);
        let join = submit::<W, _>(engine, queue, id.clone(), encoded, None, |result| result).await?;
        Ok(ExecutionHandle::new(id, self.on(engine), join))
    }

    /// Starts a new execution in the background and returns at once (once the execution is
    /// stored) with a handle: its id, [`ExecutionHandle::cancel`], and `.await` for the result.
    ///
    /// Needs a Tokio runtime (the execution runs as a spawned task).
    pub async fn start(&self, input: W::Input) -> Result<ExecutionHandle<W>> {
        let engine = self.engine()?;
        if W::MAX_CONCURRENCY.is_some() {
            return self.submit(&engine, None, input).await;
        }
        let (mut prepared, input) = new_run::<W>(&engine, driver::new_execution_id(), input).await?;
        prepared.begin().await?;
        let id = prepared.execution_id().to_string();
        let join = tokio::spawn(drive::<W>(prepared, input));
        Ok(ExecutionHandle::new(id, self.on(&engine), join))
    }

    /// Starts a new execution in the background and streams its events: each durable event as
    /// it is recorded, and the ephemeral `TASK_PROGRESS` events of `flux::progress`, ending with
    /// the final (or paused) event.
    ///
    /// Progress events wait in a queue of [`crate::limits::PROGRESS_QUEUE`] per stream; when a
    /// reader falls that far behind, newer progress events are dropped (durable ones never are).
    pub async fn stream(&self, input: W::Input) -> Result<ExecutionStream<W>> {
        let (prepared, input) = new_run::<W>(&self.engine()?, driver::new_execution_id(), input).await?;
        let id = prepared.execution_id().to_string();
        let events = prepared.subscribe();
        let join = tokio::spawn(drive::<W>(prepared, input));
        Ok(ExecutionStream::new(id, events, join))
    }

    /// Runs with a caller-chosen execution id. If an execution with that id exists, it is
    /// continued (as by [`Workflow::replay`]) and `input` is ignored.
    pub async fn run_with_id(&self, id: impl Into<String>, input: W::Input) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        let or_new = Some(NewExecution { input: encode_input::<W>(&input)?, parent: None });
        let claimed = driver::claim(&engine, definition::<W>(), Launch::Continue { id: id.into(), or_new })?;
        run_to_end::<W>(&engine, claimed.plan().await?, Some(input)).await
    }

    /// Continues an existing execution: a finished (or paused) one is returned as stored; one
    /// left running by a crash is run again over its log, replaying every recorded task.
    pub async fn replay(&self, id: &str) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        let claimed = driver::claim(&engine, definition::<W>(), Launch::Continue { id: id.to_string(), or_new: None })?;
        run_to_end::<W>(&engine, claimed.plan().await?, None).await
    }

    /// Resumes a paused execution with `input`: the body replays up to the pause it stopped at,
    /// which returns `input`, and goes on (to its end or to its next pause).
    ///
    /// If `input` does not fit the type the pause asks for, the error says so and the execution
    /// stays `PAUSED`, unchanged.
    pub async fn resume<R: serde::Serialize>(&self, id: &str, input: R) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        let resume: Arc<[u8]> = value::to_msgpack(&input)
            .map_err(|e| {
                Error::new(ErrorKind::Encode, format!("the resume input of execution `{id}` cannot be encoded"))
                    .with_cause(e.message().to_string())
            })?
            .into();
        let launch = Launch::Resume { id: id.to_string(), input: resume };
        run_to_end::<W>(&engine, driver::claim(&engine, definition::<W>(), launch)?.plan().await?, None).await
    }

    /// Cancels an execution and returns it as it then is.
    ///
    /// - Running in this process: `WORKFLOW_CANCELLING` is recorded, the running task records
    ///   `TASK_CANCELLED` and runs its rollback (at most [`crate::limits::ROLLBACK_LIMIT`]), and
    ///   the execution ends `CANCELLED`; this waits for that end.
    /// - Paused (or not yet claimed): it is cancelled at once.
    /// - Running in another process: its state becomes `CANCELLING`; that process notices within
    ///   a fraction of a second and finishes the cancellation (a replay finishes it too, if that
    ///   process is gone). The execution is returned in state `CANCELLING`.
    ///
    /// Cancelling a finished execution is an error that says so.
    pub async fn cancel(&self, id: &str) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        cancelled::<W>(&engine, driver::cancel(&engine, definition::<W>(), id, true).await?).await
    }

    /// Starts a new execution with the input of execution `id`, reusing the recorded results of
    /// its first `from_step` steps, and runs it to its end (or its next pause): the usual way to
    /// re-run an execution after fixing a bug in a later step.
    ///
    /// A step is a call the workflow makes itself (with the calls made inside it); they are
    /// numbered from 0 in the order the log recorded their start. The fork's log starts with
    /// `WORKFLOW_STARTED` and the events of those steps' calls, so its replay answers them from
    /// the log without running them; from step `from_step` on, it runs the current code.
    /// `from_step = 0` starts over with the same input. The execution forked from is left as
    /// it is. A `from_step` past the last step, or past a step that never finished, is refused
    /// with an error listing the steps.
    ///
    /// ```
    /// use flux::prelude::*;
    ///
    /// #[flux::task]
    /// async fn fetch(order: u32) -> String { format!("order {order}") }
    ///
    /// #[flux::task]
    /// async fn bill(order: String) -> String { format!("billed {order}") }
    ///
    /// #[flux::workflow]
    /// async fn invoice(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    ///     let order = fetch(*ctx.input()).await?;
    ///     bill(order).await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> flux::Result<()> {
    /// let engine = Engine::in_memory();
    /// let first = invoice.on(&engine).run(7).await?;
    /// // `fetch` (step 0) answers from the first execution's log; `bill` runs again.
    /// let again = invoice.on(&engine).fork(first.execution_id(), 1).await?;
    /// assert_eq!(again.output(), first.output());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fork(&self, id: &str, from_step: usize) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        let launch = Launch::Fork { id: driver::new_execution_id(), source: id.to_string(), from_step };
        run_to_end::<W>(&engine, driver::claim(&engine, definition::<W>(), launch)?.plan().await?, None).await
    }

    /// Waits until execution `id` stops (finishes, or pauses) and returns it as stored: for an
    /// execution running elsewhere, such as one a schedule started or another process runs. It
    /// looks at the stored state, less often as time passes (from every 5 ms to every 250 ms).
    pub async fn wait(&self, id: &str) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        let mut delay = std::time::Duration::from_millis(5);
        loop {
            match engine.execution_state(id).await? {
                None => return Err(engine.not_found(id)),
                Some(state) if state.is_terminal() || state == crate::ExecutionState::Paused => {
                    return self.status(id).await;
                }
                Some(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_millis(250));
                }
            }
        }
    }

    /// The execution as stored, without running anything.
    pub async fn status(&self, id: &str) -> Result<ExecutionOf<W>> {
        let engine = self.engine()?;
        let stored = engine.load(id).await?.ok_or_else(|| engine.not_found(id))?;
        driver::check_workflow(&stored, W::NAME)?;
        to_execution::<W>(&engine, stored)
    }
}

/// Stores execution `id` of `W` with the `encoded` input in state `SCHEDULED` and takes its
/// places in line: in `queue` when given, then under `W`'s `max_concurrency`. A background task
/// waits for its turn in each, starts it (handing its events to `on_events` first, when given),
/// drives it, holding its places until it stops, and ends with `finish` of its result.
/// Executions start in the order they were submitted: the first line is entered before this
/// returns.
pub(crate) async fn submit<W: WorkflowDefinition, T: Send + 'static>(
    engine: &Engine,
    queue: Option<Arc<crate::engine::Limiter>>,
    id: String,
    encoded: Arc<[u8]>,
    on_events: Option<Box<dyn FnOnce(crate::run::Subscription) + Send>>,
    finish: impl FnOnce(Result<ExecutionOf<W>>) -> Result<T> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<T>>> {
    driver::store_scheduled(engine, definition::<W>(), &id, encoded).await?;
    let queued: Arc<str> = Arc::from(id.as_str());
    engine.queued(&queued);
    let own = W::MAX_CONCURRENCY.map(|n| engine.workflow_limiter(W::NAME, n));
    let lines: Vec<_> = queue.into_iter().chain(own).collect();
    let first = lines.first().map(|line| line.enter());
    let engine = engine.clone();
    // In the submitter's span: the run, prepared once its turn comes, is part of its trace.
    let waiting = async move {
        // However the wait ends, the lease is the run's (or nobody's) from then on.
        let _unqueue = Unqueue(engine.clone(), queued);
        finish(run_queued::<W>(&engine, id, first, lines, on_events).await)
    };
    Ok(tokio::spawn(tracing::Instrument::in_current_span(waiting)))
}

/// Waits for the turn of queued execution `id` in each of `lines` (the first entered already:
/// `first`), then for the store to admit it under their limits (every engine on the store
/// counts the same executions), starts it and drives it to its stop. Its places here are held
/// meanwhile, so that the next in line waits behind it.
async fn run_queued<W: WorkflowDefinition>(
    engine: &Engine,
    id: String,
    first: Option<crate::engine::Ticket>,
    lines: Vec<Arc<crate::engine::Limiter>>,
    on_events: Option<Box<dyn FnOnce(crate::run::Subscription) + Send>>,
) -> Result<ExecutionOf<W>> {
    let closed = || Error::new(ErrorKind::InvalidState, "the engine's queue stopped");
    let mut places = Vec::with_capacity(lines.len());
    if let Some(first) = first {
        places.push(first.turn().await.ok_or_else(closed)?);
    }
    for line in lines.iter().skip(1) {
        places.push(line.enter().turn().await.ok_or_else(closed)?);
    }
    engine.admitted(&id, &lines).await?;
    let plan = driver::claim(engine, definition::<W>(), Launch::Queued { id })?.plan().await?;
    let (prepared, input) = match plan {
        Plan::Stored(stored) => return to_execution::<W>(engine, stored),
        Plan::Run(ready) => {
            let (mut prepared, input) = prepare::<W>(ready, None)?;
            if let Some(on_events) = on_events {
                on_events(prepared.subscribe());
            }
            prepared.begin().await?;
            (prepared, input)
        }
    };
    // Started: the next in line may start; the places are held until the run stops.
    let places: Vec<_> = places.into_iter().map(|admission| admission.permit()).collect();
    let result = drive::<W>(prepared, input).await;
    drop(places);
    result
}

/// Stops renewing a queued execution's lease as a queued one when dropped.
struct Unqueue(Engine, Arc<str>);

impl Drop for Unqueue {
    fn drop(&mut self) {
        self.0.unqueue(&self.1);
    }
}

/// The driver's view of `W`.
pub(crate) fn definition<W: WorkflowDefinition>() -> Definition {
    Definition {
        name: W::NAME,
        secret_requests: W::SECRET_REQUESTS,
        output_storage: W::OUTPUT_STORAGE,
        version: W::VERSION,
    }
}

/// The encoded input of a new execution of `W`.
fn encode_input<W: WorkflowDefinition>(input: &W::Input) -> Result<Arc<[u8]>> {
    let bytes = value::to_msgpack(input).map_err(|e| {
        Error::new(ErrorKind::Encode, format!("the input of workflow `{}` cannot be encoded", W::NAME))
            .with_cause(e.message().to_string())
    })?;
    Ok(bytes.into())
}

/// The stored input of execution `id`, as `W`'s input type.
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

/// A new execution `id` of `W` with `input`, claimed and prepared.
pub(crate) async fn new_run<W: WorkflowDefinition>(
    engine: &Engine,
    id: String,
    input: W::Input,
) -> Result<(Prepared, W::Input)> {
    let launch = Launch::New { id, input: encode_input::<W>(&input)?, parent: None };
    let ready = driver::claim(engine, definition::<W>(), launch)?.plan().await?.into_run()?;
    prepare::<W>(ready, Some(input))
}

/// Prepares a planned run of `W`, with its input: the caller's for a new execution, else the
/// stored one, decoded before anything is written.
pub(crate) fn prepare<W: WorkflowDefinition>(ready: Ready, input: Option<W::Input>) -> Result<(Prepared, W::Input)> {
    let input = match input {
        Some(input) if ready.is_new() => input,
        _ => decode_input::<W>(ready.execution_id(), ready.input())?,
    };
    Ok((ready.prepare(), input))
}

/// Runs what was planned to its end (or pause), or returns the execution as stored.
pub(crate) async fn run_to_end<W: WorkflowDefinition>(
    engine: &Engine,
    plan: Plan,
    input: Option<W::Input>,
) -> Result<ExecutionOf<W>> {
    match plan {
        Plan::Stored(stored) => to_execution::<W>(engine, stored),
        Plan::Run(ready) => {
            let (prepared, input) = prepare::<W>(ready, input)?;
            drive::<W>(prepared, input).await
        }
    }
}

/// Drives a prepared run of `W` to its end (or pause).
pub(crate) async fn drive<W: WorkflowDefinition>(prepared: Prepared, input: W::Input) -> Result<ExecutionOf<W>> {
    let ended = prepared.drive(move |run, secrets| W::body(ExecutionContext::new(run, input, secrets))).await?;
    let input = decode_input::<W>(&ended.execution_id, &ended.input)?;
    Ok(Execution::new(ended, input))
}

/// The execution a cancellation left, finishing it when nothing else runs it.
pub(crate) async fn cancelled<W: WorkflowDefinition>(engine: &Engine, cancel: Cancel) -> Result<ExecutionOf<W>> {
    match cancel {
        Cancel::Stored(stored) => to_execution::<W>(engine, stored),
        Cancel::Finish(ready) => run_to_end::<W>(engine, Plan::Run(ready), None).await,
        // Only a cancel that does not wait leaves the run going.
        Cancel::Asked => Err(Error::new(ErrorKind::InvalidState, "the cancellation was asked for, not waited for")),
    }
}

/// The user's view of a stored execution.
pub(crate) fn to_execution<W: WorkflowDefinition>(engine: &Engine, stored: StoredExecution) -> Result<ExecutionOf<W>> {
    let input = decode_input::<W>(&stored.id, &stored.input)?;
    let ended = driver::stored_outcome::<W::Output>(engine, stored, W::NAME)?;
    Ok(Execution::new(ended, input))
}
