//! Workflows: the [`Workflow`] value the macro creates, and the driver that runs, continues and
//! loads executions.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt as _;

use crate::context::{self, Execution, ExecutionContext, RunState};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventType, ExecutionState};
use crate::store::{StoredExecution, Write};
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
        let id = uuid::Uuid::new_v4().simple().to_string();
        let _claim = engine.claim_local(&id)?;
        start::<W>(&engine, id, input).await
    }

    /// Runs with a caller-chosen execution id. If an execution with that id exists, it is
    /// continued (as by [`Workflow::replay`]) and `input` is ignored.
    pub async fn run_with_id(&self, id: impl Into<String>, input: W::Input) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let id = id.into();
        if id.is_empty() {
            return Err(Error::new(ErrorKind::InvalidState, "an execution id cannot be empty"));
        }
        let _claim = engine.claim_local(&id)?;
        match engine.load(&id).await? {
            Some(stored) => resume_stored::<W>(&engine, stored).await,
            None => start::<W>(&engine, id, input).await,
        }
    }

    /// Continues an existing execution: a finished (or paused) one is returned as stored; one
    /// left running by a crash is run again over its log, replaying every recorded task.
    pub async fn replay(&self, id: &str) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let _claim = engine.claim_local(id)?;
        let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
        resume_stored::<W>(&engine, stored).await
    }

    /// The execution as stored, without running anything.
    pub async fn status(&self, id: &str) -> Result<Execution<W::Input, W::Output>> {
        let engine = self.engine()?;
        let stored = engine.load(id).await?.ok_or_else(|| not_found(&engine, id))?;
        check_workflow::<W>(&stored)?;
        to_execution::<W>(&engine, stored)
    }
}

fn not_found(engine: &Engine, id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no execution `{id}` in {}", engine.store().describe()))
}

fn check_workflow<W: WorkflowDefinition>(stored: &StoredExecution) -> Result<()> {
    if stored.workflow_name != W::NAME {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("execution `{}` belongs to workflow `{}`, not `{}`", stored.id, stored.workflow_name, W::NAME),
        ));
    }
    Ok(())
}

fn decode_input<W: WorkflowDefinition>(id: &str, bytes: &[u8]) -> Result<W::Input> {
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
fn to_execution<W: WorkflowDefinition>(
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
        (ExecutionState::Failed, Some(bytes)) => {
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
        events: stored.events,
    })
}

/// Creates a new execution (row and `WORKFLOW_STARTED`, durable before the body runs) and runs it.
async fn start<W: WorkflowDefinition>(
    engine: &Engine,
    id: String,
    input: W::Input,
) -> Result<Execution<W::Input, W::Output>> {
    let input_bytes: Arc<[u8]> = value::to_msgpack(&input)
        .map_err(|e| {
            Error::new(ErrorKind::Encode, format!("the input of workflow `{}` cannot be encoded", W::NAME))
                .with_cause(e.message().to_string())
        })?
        .into();
    let run = Arc::new(RunState::new(engine.clone(), &id, W::NAME, Vec::new()));
    let create = Write::CreateExecution {
        id: run.execution_id.clone(),
        workflow_name: run.workflow_name.clone(),
        state: ExecutionState::Running,
        input: input_bytes.clone(),
        time: crate::event::now(),
    };
    // The row and WORKFLOW_STARTED are one transaction, durable before the body runs.
    run.record_durable(
        EventType::WorkflowStarted,
        &run.workflow_source,
        &run.workflow_name,
        input_bytes.clone(),
        Some(create),
    )
    .await?;
    tracing::debug!(workflow = W::NAME, execution_id = %id, "execution started");
    drive::<W>(run, input, &input_bytes).await
}

/// Continues a stored execution, or returns it as stored when there is nothing to run.
async fn resume_stored<W: WorkflowDefinition>(
    engine: &Engine,
    stored: StoredExecution,
) -> Result<Execution<W::Input, W::Output>> {
    check_workflow::<W>(&stored)?;
    if stored.state.is_terminal() || stored.state == ExecutionState::Paused {
        return to_execution::<W>(engine, stored);
    }
    let input = decode_input::<W>(&stored.id, &stored.input)?;
    tracing::debug!(workflow = W::NAME, execution_id = %stored.id, events = stored.events.len(), "continuing execution");
    let run = Arc::new(RunState::new(engine.clone(), &stored.id, W::NAME, stored.events));
    drive::<W>(run, input, &stored.input).await
}

/// Runs the body over `run`'s log and records how it ended.
async fn drive<W: WorkflowDefinition>(
    run: Arc<RunState>,
    input: W::Input,
    input_bytes: &[u8],
) -> Result<Execution<W::Input, W::Output>> {
    let requester = format!("workflow `{}`", W::NAME);
    let outcome = match crate::secrets::fetch(run.engine(), W::SECRET_REQUESTS, &requester) {
        // Without the secrets it asked for, the body does not run and the workflow fails.
        Err(e) => Err(e),
        Ok(secrets) => {
            let ctx = ExecutionContext::new(run.clone(), input, secrets);
            let body = AssertUnwindSafe(W::body(ctx)).catch_unwind();
            match context::scope(run.clone(), body).await {
                Ok(result) => result,
                Err(panic) => Err(crate::task::panic_error(panic)),
            }
        }
    };
    if let Some(broken) = run.broken() {
        // The log in storage stopped at the last durable event: the execution stays RUNNING
        // there and can be replayed once storage works again.
        return Err(broken);
    }
    let (state, kind, stored, output, error) = match outcome {
        Ok(output) => match value::to_msgpack(&output) {
            Ok(bytes) => {
                let recorded = match W::OUTPUT_STORAGE {
                    None => bytes,
                    // An output storage that fails stops the run: the execution stays RUNNING
                    // and can be replayed once the storage works.
                    Some(storage) => run.engine().store_output(storage, &bytes).map_err(|e| run.abort(e))?,
                };
                (ExecutionState::Completed, EventType::WorkflowCompleted, recorded, Some(output), None)
            }
            Err(e) => {
                let err =
                    Error::new(ErrorKind::Encode, format!("the output of workflow `{}` cannot be encoded", W::NAME))
                        .with_cause(e.message().to_string());
                (ExecutionState::Failed, EventType::WorkflowFailed, value::to_msgpack(&err)?, None, Some(err))
            }
        },
        Err(err) => (ExecutionState::Failed, EventType::WorkflowFailed, value::to_msgpack(&err)?, None, Some(err)),
    };
    let stored: Arc<[u8]> = stored.into();
    let set_state = Write::SetState {
        execution_id: run.execution_id.clone(),
        state,
        output: Some(stored.clone()),
        time: crate::event::now(),
    };
    run.record_durable(kind, &run.workflow_source, &run.workflow_name, stored, Some(set_state)).await?;
    tracing::debug!(workflow = W::NAME, execution_id = %run.execution_id, state = %state, "execution finished");
    Ok(Execution {
        execution_id: run.execution_id.to_string(),
        workflow_name: W::NAME.to_string(),
        state,
        input: decode_input::<W>(&run.execution_id, input_bytes)?,
        output,
        error,
        events: run.take_events(),
    })
}
