//! Driving a prepared run to its end: the body's outcome becomes the final event and state
//! (`WORKFLOW_COMPLETED`, `WORKFLOW_FAILED`, `WORKFLOW_CANCELLED`) or a pause
//! (`WORKFLOW_PAUSED`), stored in one transaction; and how a stored execution's outcome reads
//! back.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::body::{Ending, run_body};
use super::{Begin, Definition, Prepared, cancelled_workflow};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventType, ExecutionState};
use crate::execution::Ended;
use crate::run::{NIL, RunState};
use crate::secrets::Secrets;
use crate::store::{StoredExecution, Write};
use crate::value::{self, Storable};

/// Closes a run (listeners, waiters) however the driver leaves.
struct CloseOnDrop<'a>(&'a RunState);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Prepared {
    /// Runs the body `body` makes (from the run and the secrets the workflow asked for) over
    /// the run's log, after [`Prepared::begin`] if the caller did not call it, and records how it
    /// ended. A run that only finishes a cancellation records that instead, without a body.
    ///
    /// `Err` only when the engine could not go on (storage failed, the output could not be
    /// kept): the stored log then ends at its last durable event and the execution can be
    /// replayed.
    pub(crate) async fn drive<O: Storable>(
        mut self,
        body: impl FnOnce(Arc<RunState>, Secrets) -> BoxFuture<'static, Result<O>>,
    ) -> Result<Ended<O>> {
        if let Begin::FinishCancel { asked } = self.begin {
            return self.finish_cancel(asked).await;
        }
        self.begin().await?;
        let Prepared { run, claim, definition, input, .. } = self;
        let _claim = claim;
        let _closed = CloseOnDrop(&run);
        let requester = format!("workflow `{}`", definition.name);
        let ending = match crate::secrets::fetch(run.engine().vault(), definition.secret_requests, &requester) {
            // Without the secrets it asked for, the body does not run and the workflow fails.
            Err(e) => Ending::Returned(Err(e)),
            Ok(secrets) => run_body(&run, body(run.clone(), secrets)).await,
        };
        if matches!(ending, Ending::Returned(_)) && !run.is_cancelled() {
            // A body that returns before making every call its log recorded no longer matches
            // it: the execution is left as stored (`broken` below).
            let _ = run.unmade_call();
        }
        if let Some(broken) = run.broken() {
            // The log in storage stopped at the last durable event: the execution stays RUNNING
            // there and can be replayed once storage works again.
            return Err(broken);
        }
        let outcome = match ending {
            Ending::Rejected(e) => return Err(e),
            Ending::Paused(pause) => match run.record_pause(&pause)? {
                Some(commit) => {
                    run.durable(commit).await?;
                    tracing::debug!(workflow = definition.name, execution_id = %run.execution_id, pause = %pause.name, "execution paused");
                    return Ok(ended(&run, input, ExecutionState::Paused, None, None));
                }
                // Cancelled before the pause was recorded.
                None => Err(cancelled_workflow(&run.execution_id)),
            },
            Ending::Returned(outcome) => outcome,
        };
        let Closing { kind, recorded, state, output, error } = closing(&run, definition, outcome)?;
        let cancel_error = cancelled_workflow(&run.execution_id);
        let (commit, state) = run.record_end(|cancelled| {
            if cancelled {
                // Once its cancellation is recorded, an execution ends cancelled, whatever its body did.
                Ok((EventType::WorkflowCancelled, value::to_msgpack(&cancel_error)?.into(), ExecutionState::Cancelled))
            } else {
                Ok((kind, recorded.into(), state))
            }
        })?;
        run.durable(commit).await?;
        tracing::debug!(workflow = definition.name, execution_id = %run.execution_id, state = %state, "execution finished");
        let (output, error) =
            if state == ExecutionState::Cancelled { (None, Some(cancel_error)) } else { (output, error) };
        Ok(ended(&run, input, state, output, error))
    }

    /// Ends the cancellation of an execution nobody runs: `WORKFLOW_CANCELLING` (unless the log
    /// has it already) and `WORKFLOW_CANCELLED`, state `CANCELLED`, in one transaction.
    async fn finish_cancel<O>(self, asked: bool) -> Result<Ended<O>> {
        let Prepared { run, claim, definition, input, .. } = self;
        let _claim = claim;
        let _closed = CloseOnDrop(&run);
        let error = cancelled_workflow(&run.execution_id);
        let recorded: Arc<[u8]> = value::to_msgpack(&error)?.into();
        let workflow = run.workflow();
        let mut events = Vec::with_capacity(2);
        if !asked {
            events.push(workflow.entry(EventType::WorkflowCancelling, Arc::from(NIL)));
        }
        events.push(workflow.entry(EventType::WorkflowCancelled, recorded.clone()));
        let set_state = Write::set_state(run.execution_id.clone(), ExecutionState::Cancelled, Some(recorded));
        run.record_durable(events, [set_state]).await?;
        tracing::debug!(workflow = definition.name, execution_id = %run.execution_id, "execution cancelled");
        Ok(ended(&run, input, ExecutionState::Cancelled, None, Some(error)))
    }
}

/// What a body's outcome makes the end of a run: the final event with its recorded value, the
/// state, and what the caller gets.
struct Closing<O> {
    kind: EventType,
    recorded: Vec<u8>,
    state: ExecutionState,
    output: Option<O>,
    error: Option<Error>,
}

/// The end a body's `outcome` makes. The output is recorded inline, or kept in the workflow's
/// output storage with a reference recorded; an output that cannot be encoded fails the
/// workflow. `Err` when the output storage fails: that stops the run (the execution stays
/// `RUNNING` and can be replayed once the storage works).
fn closing<O: Storable>(run: &RunState, definition: Definition, outcome: Result<O>) -> Result<Closing<O>> {
    let failed = |error: Error| -> Result<Closing<O>> {
        let recorded = value::to_msgpack(&error)?;
        let (kind, state) = (EventType::WorkflowFailed, ExecutionState::Failed);
        Ok(Closing { kind, recorded, state, output: None, error: Some(error) })
    };
    let output = match outcome {
        Ok(output) => output,
        Err(error) => return failed(error),
    };
    let bytes = match value::to_msgpack(&output) {
        Ok(bytes) => bytes,
        Err(e) => {
            let error = Error::new(
                ErrorKind::Encode,
                format!("the output of workflow `{}` cannot be encoded", definition.name),
            )
            .with_cause(e.message().to_string());
            return failed(error);
        }
    };
    let recorded = match definition.output_storage {
        None => bytes,
        Some(storage) => run.engine().store_output(storage, &bytes).map_err(|e| run.abort(e))?,
    };
    let (kind, state) = (EventType::WorkflowCompleted, ExecutionState::Completed);
    Ok(Closing { kind, recorded, state, output: Some(output), error: None })
}

/// How `run` ended, with its log.
fn ended<O>(
    run: &RunState,
    input: Arc<[u8]>,
    state: ExecutionState,
    output: Option<O>,
    error: Option<Error>,
) -> Ended<O> {
    Ended {
        execution_id: run.execution_id.to_string(),
        workflow_name: run.workflow_name.to_string(),
        state,
        input,
        output,
        error,
        parent_id: run.parent_id.as_deref().map(str::to_string),
        events: run.take_events(),
    }
}

/// A stored execution's outcome: its output decoded as an `O` once `COMPLETED`, its error once
/// `FAILED` or `CANCELLED` (a stored error always loads: one that cannot be read is reported as
/// such). `workflow` names the workflow in messages.
pub(crate) fn stored_outcome<O: Storable>(
    engine: &Engine,
    stored: StoredExecution,
    workflow: &str,
) -> Result<Ended<O>> {
    let (mut output, mut error) = (None, None);
    match (stored.state, &stored.output) {
        (ExecutionState::Completed, Some(bytes)) => {
            output = Some(value::from_msgpack(&engine.resolve_output(bytes)?).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!(
                        "the stored output of execution `{}` does not fit the output type `{}` of workflow \
                         `{workflow}`",
                        stored.id,
                        std::any::type_name::<O>(),
                    ),
                )
                .with_cause(e.message().to_string())
            })?);
        }
        (ExecutionState::Failed | ExecutionState::Cancelled, Some(bytes)) => {
            error = Some(value::from_msgpack::<Error>(bytes).unwrap_or_else(|e| {
                Error::new(ErrorKind::Unknown, "the stored error of this execution cannot be read")
                    .with_cause(e.message().to_string())
            }));
        }
        _ => {}
    }
    Ok(Ended {
        execution_id: stored.id,
        workflow_name: stored.workflow_name,
        state: stored.state,
        input: stored.input.into(),
        output,
        error,
        parent_id: stored.parent_id,
        events: stored.events,
    })
}
