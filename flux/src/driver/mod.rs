//! The driver: the one place that starts, continues, resumes and finishes executions.
//!
//! Every way of running an execution goes through the same three steps:
//!
//! 1. [`claim`] claims the execution a [`Launch`] names in this engine, and [`Claimed::plan`]
//!    loads what storage holds of it and decides what to do: return it as stored
//!    ([`Plan::Stored`]), or run it ([`Plan::Run`]). Neither writes, so a refusal leaves storage as
//!    it was.
//! 2. [`Ready::prepare`] makes the [`RunState`] over the loaded log and takes the execution's
//!    lease. The caller may then [`Prepared::subscribe`] to its events and
//!    [`Prepared::begin`] it (storing a new execution's row and `WORKFLOW_STARTED`, or a claimed
//!    one's `RUNNING` state) before handing it to a background task.
//! 3. [`Prepared::drive`] begins it if the caller did not, runs the body (see [`body`]) and
//!    records how it ended (see [`end`]), or only finishes its cancellation.
//!
//! [`cancel`] is the other entry point: it asks a run in this engine to stop, marks one running
//! elsewhere `CANCELLING`, or plans the end of one that nothing runs.
//!
//! The driver knows workflows only by their [`Definition`] and runs bodies of any output type;
//! the typed [`Workflow`](crate::Workflow) and the type-erased workflows of the server and workers
//! are layers over it.

use std::sync::Arc;

use crate::engine::{Engine, LocalClaim};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};
use crate::run::{RunState, Subscription};
use crate::store::{LeaseMode, StoredExecution, Write};

mod body;
mod cancel;
mod end;
mod fork;

pub(crate) use cancel::{Cancel, cancel};
pub(crate) use end::stored_outcome;

/// What the driver needs to know of a workflow, whatever its types.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Definition {
    /// The workflow name.
    pub(crate) name: &'static str,
    /// The secrets the body gets in its context.
    pub(crate) secret_requests: &'static [&'static str],
    /// Where the output is kept: `None` in the log, or an output storage name.
    pub(crate) output_storage: Option<&'static str>,
    /// The workflow's version, stored with each execution it starts (see [`Definition::version`]).
    pub(crate) version: u32,
}

impl Definition {
    /// The version of the workflow, which every new execution of it stores
    /// (`#[flux::workflow(version = N)]`, 1 by default).
    pub(crate) fn version(&self) -> u32 {
        self.version
    }
}

/// What the caller asks for.
pub(crate) enum Launch {
    /// A new execution `id` with the encoded `input`, a sub-workflow of `parent` if given.
    New { id: String, input: Arc<[u8]>, parent: Option<Arc<str>> },
    /// Continue the stored execution `id`: replay its log, finish a cancellation nobody finished,
    /// or return it as stored when it is finished or paused. With `or_new`, an execution that is
    /// not stored is started with that input and parent; without, it is an error.
    Continue { id: String, or_new: Option<NewExecution> },
    /// Resume the paused execution `id` with the encoded `input`.
    Resume { id: String, input: Arc<[u8]> },
    /// Run an execution this worker claimed, as the server sent it, with the input of a pending
    /// resume if there is one.
    Worker { stored: StoredExecution, resume: Option<Arc<[u8]>> },
    /// A new execution `id` with the input of execution `source`, whose log starts with the
    /// recorded calls of the first `from_step` steps of `source` (see [`fork`]).
    Fork { id: String, source: String, from_step: usize },
    /// Start the stored `SCHEDULED` execution `id`, which waited for room in a queue.
    Queued { id: String },
}

/// A new execution's encoded input and the execution it is a sub-workflow of, if any.
pub(crate) struct NewExecution {
    pub(crate) input: Arc<[u8]>,
    pub(crate) parent: Option<Arc<str>>,
}

/// What [`Claimed::plan`] decided.
pub(crate) enum Plan {
    /// Nothing to run: the execution as stored (finished, or paused).
    Stored(StoredExecution),
    /// A run to prepare.
    Run(Ready),
}

impl Plan {
    /// The run, for a caller that asked for one (a new execution, a resume): an execution
    /// found with nothing to run is refused, naming its state.
    pub(crate) fn into_run(self) -> Result<Ready> {
        match self {
            Plan::Run(ready) => Ok(ready),
            Plan::Stored(stored) => Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution `{}` is {}: there is nothing to run", stored.id, stored.state),
            )),
        }
    }
}

/// What kind of run a [`Ready`] is.
enum Kind {
    /// A new execution: its row and `WORKFLOW_STARTED` are stored by [`Prepared::begin`].
    New,
    /// A stored execution left running: its log is replayed.
    Continue,
    /// A paused execution, resumed with this input.
    Resume(Arc<[u8]>),
    /// A claimed execution: `RUNNING` (and `WORKFLOW_STARTED` unless `started`) is stored by
    /// [`Prepared::begin`], or it is resumed with the pending input.
    Claimed { started: bool, resume: Option<Arc<[u8]>> },
    /// An execution being cancelled that nothing runs: its cancellation is recorded
    /// (`WORKFLOW_CANCELLING` too, unless `asked` says the log has it).
    FinishCancel { asked: bool },
    /// A fork: its row, lease and whole starting log are stored by [`Prepared::begin`].
    Fork,
    /// A queued execution: `RUNNING`, its lease and `WORKFLOW_STARTED` are stored by
    /// [`Prepared::begin`].
    Queued,
}

/// An execution claimed in this engine and loaded, not yet touched in storage.
pub(crate) struct Ready {
    engine: Engine,
    definition: Definition,
    claim: LocalClaim,
    id: String,
    parent: Option<String>,
    input: Arc<[u8]>,
    events: Vec<Event>,
    kind: Kind,
}

/// A run ready to be driven.
pub(crate) struct Prepared {
    run: Arc<RunState>,
    claim: LocalClaim,
    definition: Definition,
    input: Arc<[u8]>,
    begin: Begin,
}

/// What must be stored before the body runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// Nothing (any more).
    Nothing,
    /// A new execution's row, lease and `WORKFLOW_STARTED`.
    Create,
    /// A claimed execution's `RUNNING` state, and `WORKFLOW_STARTED` unless `started`.
    Claimed { started: bool },
    /// Nothing: the run only records the end of its cancellation (see [`Kind::FinishCancel`]).
    FinishCancel { asked: bool },
    /// A fork's row, lease and starting log (`WORKFLOW_STARTED` and the copied calls).
    Fork,
    /// A queued execution's `RUNNING` state, lease and `WORKFLOW_STARTED`.
    Queued,
}

/// Stores a new execution `id` of `definition` with the encoded `input` in state `SCHEDULED`,
/// with `WORKFLOW_SCHEDULED`: an execution waiting for room in a queue. Durable when this
/// returns.
pub(crate) async fn store_scheduled(engine: &Engine, definition: Definition, id: &str, input: Arc<[u8]>) -> Result<()> {
    let now = crate::event::now();
    let source = format!("{}_{id}", definition.name);
    let event = Event::new(1, EventType::WorkflowScheduled, source, definition.name, input.clone(), now);
    let execution_id: Arc<str> = Arc::from(id);
    let create = Write::CreateExecution {
        id: execution_id.clone(),
        workflow_name: Arc::from(definition.name),
        state: ExecutionState::Scheduled,
        input,
        parent_id: None,
        version: definition.version(),
        time: now,
    };
    // Leased to this engine while it waits here: once the lease runs out (the process is gone),
    // `Engine::recover` elsewhere starts it.
    let lease = engine.lease_write(execution_id.clone(), LeaseMode::Own);
    engine.store().write(vec![create, Write::Append { execution_id, event }, lease]).await
}

/// A new random execution id (32 hexadecimal digits).
pub(crate) fn new_execution_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The execution a [`Launch`] names, claimed in this engine: nothing else here runs it until
/// the claim is dropped.
pub(crate) struct Claimed {
    engine: Engine,
    definition: Definition,
    claim: LocalClaim,
    launch: Launch,
}

/// Claims the execution `launch` names in this engine, refused while another run of it goes on
/// here (so that one execution is never driven twice at once by one engine). Writes nothing.
pub(crate) fn claim(engine: &Engine, definition: Definition, launch: Launch) -> Result<Claimed> {
    let id = match &launch {
        Launch::New { id, .. } | Launch::Resume { id, .. } | Launch::Fork { id, .. } | Launch::Queued { id } => {
            id.as_str()
        }
        Launch::Continue { id, or_new } => {
            // A caller-chosen id for a new execution: an empty one would not be one.
            if id.is_empty() && or_new.is_some() {
                return Err(Error::new(ErrorKind::InvalidState, "an execution id cannot be empty"));
            }
            id.as_str()
        }
        Launch::Worker { stored, .. } => {
            check_workflow(stored, definition.name)?;
            stored.id.as_str()
        }
    };
    let claim = engine.claim_local(id)?;
    Ok(Claimed { engine: engine.clone(), definition, claim, launch })
}

impl Claimed {
    /// Loads what storage holds of the execution and decides what to do with it. Writes nothing,
    /// so a refusal leaves storage as it was.
    pub(crate) async fn plan(self) -> Result<Plan> {
        let Claimed { engine, definition, claim, launch } = self;
        let ready = |id, parent, input, events, kind| {
            Plan::Run(Ready { engine: engine.clone(), definition, claim, id, parent, input, events, kind })
        };
        match launch {
            Launch::New { id, input, parent } => {
                Ok(ready(id, parent.as_deref().map(str::to_string), input, Vec::new(), Kind::New))
            }
            Launch::Continue { id, or_new } => {
                let stored = match (engine.load(&id).await?, or_new) {
                    (Some(stored), _) => stored,
                    (None, Some(NewExecution { input, parent })) => {
                        return Ok(ready(id, parent.as_deref().map(str::to_string), input, Vec::new(), Kind::New));
                    }
                    (None, None) => return Err(engine.not_found(&id)),
                };
                check_workflow(&stored, definition.name)?;
                let kind = match stored.state {
                    state if state.is_terminal() || state == ExecutionState::Paused => {
                        return Ok(Plan::Stored(stored));
                    }
                    // Its cancellation was asked for while no process ran it (or the one that
                    // did is gone).
                    ExecutionState::Cancelling => Kind::FinishCancel { asked: cancelling_recorded(&stored.events) },
                    // Queued by an engine that is gone, never started: started now.
                    ExecutionState::Scheduled if stored.worker.is_none() && !started(&stored.events) => Kind::Queued,
                    _ => Kind::Continue,
                };
                Ok(ready(id, stored.parent_id, stored.input.into(), stored.events, kind))
            }
            Launch::Resume { id, input } => {
                let stored = engine.load(&id).await?.ok_or_else(|| engine.not_found(&id))?;
                check_workflow(&stored, definition.name)?;
                if stored.state != ExecutionState::Paused {
                    return Err(Error::new(
                        ErrorKind::InvalidState,
                        format!(
                            "execution `{id}` is not paused (it is {}); only a paused execution can be resumed",
                            stored.state
                        ),
                    ));
                }
                Ok(ready(id, stored.parent_id, stored.input.into(), stored.events, Kind::Resume(input)))
            }
            Launch::Fork { id, source, from_step } => {
                let source = engine.load(&source).await?.ok_or_else(|| engine.not_found(&source))?;
                check_workflow(&source, definition.name)?;
                let input: Arc<[u8]> = source.input.clone().into();
                let started = Event::new(
                    1,
                    EventType::WorkflowStarted,
                    format!("{}_{id}", definition.name),
                    definition.name,
                    input.clone(),
                    crate::event::now(),
                );
                let events = fork::forked_log(&source, from_step, started)?;
                Ok(ready(id, None, input, events, Kind::Fork))
            }
            Launch::Queued { id } => {
                let stored = engine.load(&id).await?.ok_or_else(|| engine.not_found(&id))?;
                check_workflow(&stored, definition.name)?;
                let kind = match stored.state {
                    ExecutionState::Scheduled => Kind::Queued,
                    // Cancelled while it waited.
                    ExecutionState::Cancelling => Kind::FinishCancel { asked: cancelling_recorded(&stored.events) },
                    state if state.is_terminal() => return Ok(Plan::Stored(stored)),
                    state => {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!("queued execution `{id}` is {state}: another process started it"),
                        ));
                    }
                };
                Ok(ready(id, stored.parent_id, stored.input.into(), stored.events, kind))
            }
            Launch::Worker { stored, resume } => {
                let started = stored.events.iter().any(|e| e.kind() == EventType::WorkflowStarted);
                let kind = Kind::Claimed { started, resume };
                Ok(ready(stored.id, stored.parent_id, stored.input.into(), stored.events, kind))
            }
        }
    }
}

impl Ready {
    /// The execution id.
    pub(crate) fn execution_id(&self) -> &str {
        &self.id
    }

    /// The workflow's input, MessagePack.
    pub(crate) fn input(&self) -> &[u8] {
        &self.input
    }

    /// Whether this is a new execution (its input is the caller's).
    pub(crate) fn is_new(&self) -> bool {
        matches!(self.kind, Kind::New)
    }

    /// Makes the run over the loaded log and takes the execution's lease (a claimed execution's
    /// is the server's claim instead).
    pub(crate) fn prepare(self) -> Prepared {
        let Ready { engine, definition, claim, id, parent, input, events, kind } = self;
        let run = Arc::new(RunState::new(engine.clone(), &id, definition.name, parent.as_deref(), events));
        claim.attach(&run);
        let begin = match kind {
            Kind::New => Begin::Create,
            Kind::Continue => {
                tracing::debug!(workflow = definition.name, execution_id = %id, "continuing execution");
                engine.own(&run.execution_id);
                Begin::Nothing
            }
            Kind::Resume(resume) => {
                engine.own(&run.execution_id);
                run.set_resume_input(resume);
                tracing::debug!(workflow = definition.name, execution_id = %id, "resuming execution");
                Begin::Nothing
            }
            Kind::Claimed { resume: Some(resume), .. } => {
                run.set_resume_input(resume);
                Begin::Nothing
            }
            Kind::Claimed { started, resume: None } => Begin::Claimed { started },
            Kind::FinishCancel { asked } => Begin::FinishCancel { asked },
            Kind::Fork => Begin::Fork,
            Kind::Queued => Begin::Queued,
        };
        Prepared { run, claim, definition, input, begin }
    }
}

impl Prepared {
    /// The execution id.
    pub(crate) fn execution_id(&self) -> &str {
        &self.run.execution_id
    }

    /// A listener of the run's events from now on.
    pub(crate) fn subscribe(&self) -> Subscription {
        self.run.subscribe()
    }

    /// Stores what must be stored before the body runs, unless done already: a new execution's
    /// row, lease and `WORKFLOW_STARTED` in one transaction, or a claimed execution's `RUNNING`
    /// state (with `WORKFLOW_STARTED` if it never started). Durable when this returns. On a
    /// failure the run is closed.
    pub(crate) async fn begin(&mut self) -> Result<()> {
        let run = &self.run;
        let stored = match self.begin {
            Begin::Nothing | Begin::FinishCancel { .. } => return Ok(()),
            Begin::Create => {
                let create = Write::CreateExecution {
                    id: run.execution_id.clone(),
                    workflow_name: run.workflow_name.clone(),
                    state: ExecutionState::Running,
                    input: self.input.clone(),
                    parent_id: run.parent_id.clone(),
                    version: self.definition.version(),
                    time: crate::event::now(),
                };
                // The lease goes in the same transaction: the execution is never stored without
                // its owner.
                let lease = run.engine().lease_write(run.execution_id.clone(), LeaseMode::Own);
                let started = run.workflow().entry(EventType::WorkflowStarted, self.input.clone());
                let stored = run.record_durable([started], [create, lease]).await;
                run.engine().renew_in_background();
                stored
            }
            Begin::Fork => {
                let create = Write::CreateExecution {
                    id: run.execution_id.clone(),
                    workflow_name: run.workflow_name.clone(),
                    state: ExecutionState::Running,
                    input: self.input.clone(),
                    parent_id: None,
                    version: self.definition.version(),
                    time: crate::event::now(),
                };
                let lease = run.engine().lease_write(run.execution_id.clone(), LeaseMode::Own);
                let mut writes = vec![create, lease];
                writes.extend(
                    run.events()
                        .into_iter()
                        .map(|event| Write::Append { execution_id: run.execution_id.clone(), event }),
                );
                // The row, the lease and the whole starting log in one transaction: a fork is
                // stored whole or not at all.
                let stored = run.engine().store().write(writes).await;
                run.engine().renew_in_background();
                stored
            }
            Begin::Queued => {
                // The state, the lease and `WORKFLOW_STARTED` (at the seq after the log's) in one
                // transaction: of two processes starting it, one commits.
                let running = Write::set_state(run.execution_id.clone(), ExecutionState::Running, None);
                let lease = run.engine().lease_write(run.execution_id.clone(), LeaseMode::Own);
                let started = run.workflow().entry(EventType::WorkflowStarted, self.input.clone());
                let stored = run.record_durable([started], [running, lease]).await;
                run.engine().renew_in_background();
                stored
            }
            Begin::Claimed { started } => {
                let running = Write::set_state(run.execution_id.clone(), ExecutionState::Running, None);
                if started {
                    run.engine().store().write(vec![running]).await
                } else {
                    let entry = run.workflow().entry(EventType::WorkflowStarted, self.input.clone());
                    run.record_durable([entry], [running]).await
                }
            }
        };
        if let Err(e) = stored {
            run.close();
            return Err(e);
        }
        if matches!(self.begin, Begin::Create | Begin::Fork | Begin::Queued) {
            tracing::debug!(workflow = %run.workflow_name, execution_id = %run.execution_id, "execution started");
        }
        self.begin = Begin::Nothing;
        Ok(())
    }
}

/// Whether a log holds `WORKFLOW_STARTED`.
fn started(events: &[Event]) -> bool {
    events.iter().any(|e| e.kind() == EventType::WorkflowStarted)
}

/// Whether a log holds `WORKFLOW_CANCELLING` (looked for from its end).
fn cancelling_recorded(events: &[Event]) -> bool {
    events.iter().rev().any(|e| e.kind() == EventType::WorkflowCancelling)
}

/// Checks that `stored` is an execution of the workflow `name`.
pub(crate) fn check_workflow(stored: &StoredExecution, name: &str) -> Result<()> {
    if stored.workflow_name != name {
        return Err(other_workflow(&stored.id, &stored.workflow_name, name));
    }
    Ok(())
}

/// The refusal to act on execution `id` of workflow `actual` as one of workflow `asked`.
fn other_workflow(id: &str, actual: &str, asked: &str) -> Error {
    Error::new(ErrorKind::InvalidState, format!("execution `{id}` belongs to workflow `{actual}`, not `{asked}`"))
}

/// The error of a cancelled execution.
pub(crate) fn cancelled_workflow(id: &str) -> Error {
    Error::new(ErrorKind::Cancelled, format!("execution `{id}` was cancelled"))
}

/// The refusal of a cancel of execution `id`, which ended in `state`.
pub(crate) fn already_finished(id: &str, state: ExecutionState) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("execution `{id}` has already finished ({state}); only a running or paused execution can be cancelled"),
    )
}
