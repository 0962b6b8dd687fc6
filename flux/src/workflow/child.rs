//! Sub-workflows: `child.call(input)` inside a workflow runs `child` as an execution of its own,
//! linked to its parent, and the call is a task in the parent's log.

use std::future::Future;
use std::sync::Arc;

use super::{BoxFuture, ExecutionOf, Workflow, WorkflowDefinition, definition, run_to_end};
use crate::driver::{self, Launch, NewExecution};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::run::{self, RunState};
use crate::store::Write;
use crate::task::{Args, ArgsReader, Call, Handlers, NoHandler, TaskCall, TaskOptions};

impl<W: WorkflowDefinition> Workflow<W> {
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
                let (Some(engine), Some(parent)) = (call.engine, run::current()) else {
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
fn output_of<W: WorkflowDefinition>(execution: ExecutionOf<W>) -> Result<W::Output> {
    let id = execution.execution_id().to_string();
    match execution.state() {
        ExecutionState::Completed => execution.into_output().ok_or_else(|| {
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
            if let Some(cause) = execution.error() {
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
            let request = Write::set_state(self.id.as_str(), ExecutionState::Cancelling, None);
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
    let or_new =
        Some(NewExecution { input: super::encode_input::<W>(&input)?, parent: Some(parent.execution_id.clone()) });
    let claimed = driver::claim(&engine, definition::<W>(), Launch::Continue { id: id.clone(), or_new })?;
    let mut guard = ChildGuard { engine: engine.clone(), id, parent: parent.clone(), armed: true };
    let ran = async { run_to_end::<W>(&engine, claimed.plan().await?, Some(input)).await };
    // The engine could not run the child (storage failed): the parent stops too, without
    // recording the call as failed, and both can be replayed once storage works.
    let execution = ran.await.map_err(|e| parent.abort(e))?;
    guard.armed = false;
    output_of::<W>(execution)
}
