//! [`Execution`]: what a run, a replay or a status gives back. The driver (or storage) reports
//! how an execution ended as an [`Ended`]; [`Execution::new`] adds the typed input to it.

use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};

/// How an execution ended (or where it stopped), as the driver or storage reports it: an
/// [`Execution`] without its typed input, which is still encoded.
pub(crate) struct Ended<O> {
    pub(crate) execution_id: String,
    pub(crate) workflow_name: String,
    pub(crate) state: ExecutionState,
    /// The input, MessagePack.
    pub(crate) input: Arc<[u8]>,
    pub(crate) output: Option<O>,
    pub(crate) error: Option<Error>,
    pub(crate) parent_id: Option<String>,
    pub(crate) events: Vec<Event>,
}

/// The value of `WORKFLOW_PAUSED`, read back.
#[derive(serde::Deserialize)]
struct PausedAt<U> {
    name: String,
    output: U,
}

/// The `WORKFLOW_PAUSED` a `PAUSED` execution stopped at: the last of its log.
fn paused_event(state: ExecutionState, events: &[Event]) -> Option<&Event> {
    if state != ExecutionState::Paused {
        return None;
    }
    events.iter().rev().find(|e| e.kind == EventType::WorkflowPaused)
}

/// The name of the pause a `PAUSED` execution with log `events` stopped at.
pub(crate) fn pause_name(state: ExecutionState, events: &[Event]) -> Option<String> {
    paused_event(state, events)?.value::<PausedAt<serde::de::IgnoredAny>>().ok().map(|p| p.name)
}

/// An execution's outcome as a `Result`: the output once `COMPLETED`, the error once `FAILED`
/// or `CANCELLED`, and an error naming the state (and the `pause`) before then. The one rule of
/// [`Execution::into_result`] and of the client's statuses.
pub(crate) fn outcome<O>(
    id: &str,
    state: ExecutionState,
    output: Option<O>,
    error: Option<Error>,
    pause: Option<String>,
) -> Result<O> {
    match state {
        ExecutionState::Completed => match (output, error) {
            (Some(output), _) => Ok(output),
            // An output that could not be read (the client's) is its error.
            (None, Some(error)) => Err(error),
            (None, None) => Err(Error::new(ErrorKind::Decode, format!("execution `{id}` completed without an output"))),
        },
        ExecutionState::Failed | ExecutionState::Cancelled => Err(error.unwrap_or_else(|| {
            Error::new(ErrorKind::Unknown, format!("execution `{id}` ended {state} without an error"))
        })),
        ExecutionState::Paused => {
            let pause = pause.map(|name| format!(" at pause `{name}`")).unwrap_or_default();
            Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution `{id}` has not finished: it is PAUSED{pause}; resume it to go on"),
            ))
        }
        state => Err(Error::new(ErrorKind::InvalidState, format!("execution `{id}` has not finished: it is {state}"))),
    }
}

/// One execution of a workflow, as returned by `run`, `replay` and `status`.
///
/// A workflow that failed is still an `Execution` (in state `FAILED`, with [`Execution::error`]);
/// only a failure of the engine itself is an `Err` from `run`.
#[derive(Clone, Debug)]
pub struct Execution<I, O> {
    execution_id: String,
    workflow_name: String,
    state: ExecutionState,
    input: I,
    output: Option<O>,
    error: Option<Error>,
    parent_id: Option<String>,
    events: Vec<Event>,
}

impl<I, O> Execution<I, O> {
    /// The execution `ended` describes, with its decoded `input`: the one way an `Execution`
    /// is made.
    pub(crate) fn new(ended: Ended<O>, input: I) -> Self {
        let Ended { execution_id, workflow_name, state, input: _, output, error, parent_id, events } = ended;
        Execution { execution_id, workflow_name, state, input, output, error, parent_id, events }
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The workflow name.
    pub fn workflow_name(&self) -> &str {
        &self.workflow_name
    }

    /// The state.
    pub fn state(&self) -> ExecutionState {
        self.state
    }

    /// The input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// The output, once `COMPLETED`.
    pub fn output(&self) -> Option<&O> {
        self.output.as_ref()
    }

    /// Consumes the execution, returning the output.
    pub fn into_output(self) -> Option<O> {
        self.output
    }

    /// The outcome as a `Result`, for callers who want `?`: the output once `COMPLETED`, the
    /// execution's error once `FAILED` or `CANCELLED`, and an error of kind
    /// [`ErrorKind::InvalidState`] naming the state (and the pause) of an execution that has not
    /// finished.
    ///
    /// ```
    /// use flux::prelude::*;
    ///
    /// #[flux::workflow]
    /// async fn double(ctx: ExecutionContext<u32>) -> u32 {
    ///     ctx.input() * 2
    /// }
    ///
    /// # async fn demo() -> flux::Result<()> {
    /// let engine = flux::Engine::in_memory();
    /// let doubled: u32 = double.on(&engine).run(21).await?.into_result()?;
    /// assert_eq!(doubled, 42);
    /// # Ok(()) }
    /// ```
    ///
    /// [`ErrorKind::InvalidState`]: crate::ErrorKind::InvalidState
    pub fn into_result(self) -> Result<O> {
        let pause = self.pause_name();
        outcome(&self.execution_id, self.state, self.output, self.error, pause)
    }

    /// The error, once `FAILED` (or `CANCELLED`: an error of kind [`ErrorKind::Cancelled`]).
    ///
    /// [`ErrorKind::Cancelled`]: crate::ErrorKind::Cancelled
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The execution that started this one as a sub-workflow, if any.
    pub fn parent_id(&self) -> Option<&str> {
        self.parent_id.as_deref()
    }

    /// The name of the pause a `PAUSED` execution waits at.
    pub fn pause_name(&self) -> Option<String> {
        pause_name(self.state, &self.events)
    }

    /// The value a `PAUSED` execution exposes (`flux::pause_with`; `()` for `flux::pause`).
    /// `Ok(None)` when the execution is not paused; an error when the value does not fit `U`.
    pub fn pause_output<U: crate::Storable>(&self) -> Result<Option<U>> {
        match self.paused_event() {
            None => Ok(None),
            Some(event) => event.value::<PausedAt<U>>().map(|p| Some(p.output)),
        }
    }

    fn paused_event(&self) -> Option<&Event> {
        paused_event(self.state, &self.events)
    }

    /// The log.
    pub fn events(&self) -> &[Event] {
        &self.events
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
