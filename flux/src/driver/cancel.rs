//! Cancelling an execution from anywhere: a run in this engine is told directly, one running
//! elsewhere is marked `CANCELLING` in storage (its process notices), and one that nothing runs
//! (paused, or not claimed yet) has its cancellation finished here.

use super::{Definition, Kind, Ready, already_finished, cancelling_recorded, check_workflow, other_workflow};
use crate::engine::Engine;
use crate::error::Result;
use crate::event::ExecutionState;
use crate::run::{CancelRequest, RunState};
use crate::store::{StoredExecution, Write};

/// What [`cancel`] did.
pub(crate) enum Cancel {
    /// The run in this engine was asked to stop and has recorded `WORKFLOW_CANCELLING`; it was
    /// not waited for.
    Asked,
    /// The execution as it is now: cancelled by a run here that was waited for, or `CANCELLING`
    /// for the process that runs it.
    Stored(StoredExecution),
    /// Nothing runs it: its cancellation is to be finished by driving this run.
    Finish(Ready),
}

/// Cancels execution `id` of `definition`'s workflow. A run in this engine records
/// `WORKFLOW_CANCELLING` at once; with `wait`, this returns once that run has stopped. Cancelling
/// a finished execution is an error that says so.
pub(crate) async fn cancel(engine: &Engine, definition: Definition, id: &str, wait: bool) -> Result<Cancel> {
    if let Some(run) = RunState::local(engine, id) {
        if *run.workflow_name != *definition.name {
            return Err(other_workflow(id, &run.workflow_name, definition.name));
        }
        let stopped = match run.request_cancel(false)? {
            CancelRequest::Requested(commit) => {
                run.durable(commit).await?;
                true
            }
            CancelRequest::AlreadyRequested => true,
            // It recorded its end (finished or paused) already: storage decides below.
            CancelRequest::Finished => false,
        };
        if !wait {
            return Ok(Cancel::Asked);
        }
        run.wait_closed().await;
        if stopped {
            return load_checked(engine, definition, id).await.map(Cancel::Stored);
        }
    }
    let stored = load_checked(engine, definition, id).await?;
    match stored.state {
        state if state.is_terminal() => Err(already_finished(id, state)),
        ExecutionState::Cancelling => Ok(Cancel::Stored(stored)),
        ExecutionState::Running
        | ExecutionState::Resuming
        | ExecutionState::Claimed
        | ExecutionState::ResumeClaimed => {
            let request = Write::set_state(stored.id.as_str(), ExecutionState::Cancelling, None);
            engine.store().write(vec![request]).await?;
            load_checked(engine, definition, id).await.map(Cancel::Stored)
        }
        _ => {
            let claim = engine.claim_local(id)?;
            let stored = engine.load(id).await?.ok_or_else(|| engine.not_found(id))?;
            let kind = Kind::FinishCancel { asked: cancelling_recorded(&stored.events) };
            Ok(Cancel::Finish(Ready {
                engine: engine.clone(),
                definition,
                claim,
                id: stored.id,
                parent: stored.parent_id,
                input: stored.input.into(),
                events: stored.events,
                kind,
            }))
        }
    }
}

/// Loads execution `id` and checks that it belongs to `definition`'s workflow.
async fn load_checked(engine: &Engine, definition: Definition, id: &str) -> Result<StoredExecution> {
    let stored = engine.load(id).await?.ok_or_else(|| engine.not_found(id))?;
    check_workflow(&stored, definition.name)?;
    Ok(stored)
}
