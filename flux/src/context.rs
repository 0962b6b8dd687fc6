//! The running execution: [`ExecutionContext`] for the workflow body, the task-local handle task
//! calls use to reach it, and [`Execution`], the result users get back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};
use crate::identity::Occurrences;
use crate::secrets::Secrets;
use crate::store::{Commit, Write};

tokio::task_local! {
    static CURRENT: Arc<RunState>;
}

/// The execution the calling code runs in, if any.
pub(crate) fn current() -> Option<Arc<RunState>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `fut` with `run` as the current execution.
pub(crate) async fn scope<F: Future>(run: Arc<RunState>, fut: F) -> F::Output {
    CURRENT.scope(run, fut).await
}

/// What the log says about one task id.
#[derive(Clone, Copy, Debug, Default)]
struct TaskRecord {
    started: bool,
    /// Index in the log of its `TASK_COMPLETED` or `TASK_FAILED`.
    outcome: Option<usize>,
    progress: Progress,
}

/// How far a started but unfinished task got before its process stopped, so that a restart
/// continues its error chain instead of beginning it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// `TASK_RETRY_FAILED` events: attempts that failed (the next attempt has this number).
    pub(crate) failed_attempts: u32,
    /// `TASK_RETRY_STARTED` events: retries whose wait is over and which were started.
    pub(crate) started_retries: u32,
    /// Index in the log of the last event holding the task's error (`TASK_RETRY_FAILED`,
    /// `TASK_FALLBACK_STARTED` or `TASK_ROLLBACK_STARTED`, each with an `error` field).
    pub(crate) last_failure: Option<usize>,
    pub(crate) fallback_started: bool,
    pub(crate) rollback_started: bool,
}

/// What a task call should do, decided from the log.
pub(crate) enum Lookup {
    /// Never started: record `TASK_STARTED`, then run.
    Fresh(Arc<str>),
    /// Started before but never finished (a crash): continue from where the log ends, without
    /// writing again what it already holds.
    Restart(Arc<str>, Progress),
    /// Finished: the recorded `TASK_COMPLETED` or `TASK_FAILED`.
    Recorded(Arc<str>, Event),
}

struct RunInner {
    events: Vec<Event>,
    /// The `seq` of the next event: one more than the last event of the log.
    next_seq: u64,
    occurrences: Occurrences,
    /// What the log held when the run began. Events recorded during the run are not added:
    /// the occurrence counter gives every call a new id, so they are never looked up again.
    tasks: HashMap<Arc<str>, TaskRecord>,
    /// Commits not waited for yet; checked whenever a later commit is awaited.
    pending: Vec<Commit>,
    /// Set when a write failed: the in-memory log is then ahead of storage and the run must stop.
    broken: Option<Error>,
}

/// One execution being run: its log so far and the bookkeeping of task ids.
pub(crate) struct RunState {
    pub(crate) execution_id: Arc<str>,
    pub(crate) workflow_name: Arc<str>,
    /// `"{workflow_name}_{execution_id}"`, the source id of workflow events.
    pub(crate) workflow_source: Arc<str>,
    engine: Engine,
    inner: Mutex<RunInner>,
}

impl RunState {
    pub(crate) fn new(engine: Engine, execution_id: &str, workflow_name: &str, events: Vec<Event>) -> Self {
        let mut tasks: HashMap<Arc<str>, TaskRecord> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if !e.kind.as_str().starts_with("TASK_") {
                continue;
            }
            let record = tasks.entry(e.source_id.clone()).or_default();
            let p = &mut record.progress;
            match e.kind {
                EventType::TaskStarted => record.started = true,
                EventType::TaskCompleted | EventType::TaskFailed => record.outcome = Some(i),
                EventType::TaskRetryFailed => {
                    p.failed_attempts += 1;
                    p.last_failure = Some(i);
                }
                EventType::TaskRetryStarted => p.started_retries += 1,
                EventType::TaskFallbackStarted => {
                    p.fallback_started = true;
                    p.last_failure = Some(i);
                }
                EventType::TaskRollbackStarted => {
                    p.rollback_started = true;
                    p.last_failure = Some(i);
                }
                _ => {}
            }
        }
        RunState {
            execution_id: Arc::from(execution_id),
            workflow_name: Arc::from(workflow_name),
            workflow_source: Arc::from(format!("{workflow_name}_{execution_id}")),
            engine,
            inner: Mutex::new(RunInner {
                next_seq: events.last().map_or(1, |e| e.seq + 1),
                events,
                occurrences: Occurrences::default(),
                tasks,
                pending: Vec::new(),
                broken: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RunInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the call of `base_id` its occurrence id and says what the log knows of it.
    pub(crate) fn lookup(&self, base_id: Arc<str>) -> Lookup {
        let mut inner = self.lock();
        let id = inner.occurrences.next(base_id);
        match inner.tasks.get(&id).copied() {
            Some(TaskRecord { outcome: Some(i), .. }) => match inner.events.get(i) {
                Some(event) => Lookup::Recorded(id.clone(), event.clone()),
                None => Lookup::Restart(id, Progress::default()),
            },
            Some(TaskRecord { started: true, progress, .. }) => Lookup::Restart(id, progress),
            _ => Lookup::Fresh(id),
        }
    }

    /// Appends an event to the log and queues its write in one batch after `extra` (an
    /// execution row to create, a state change, a cache entry). Returns the commit when `wait`
    /// is set; otherwise it is checked at the next wait.
    pub(crate) fn record(
        &self,
        kind: EventType,
        source_id: &Arc<str>,
        name: &Arc<str>,
        value: Arc<[u8]>,
        extra: Option<Write>,
        wait: bool,
    ) -> Result<Option<Commit>> {
        self.record_all([(kind, value)], source_id, name, extra, wait)
    }

    /// Like [`RunState::record`], for several events of one source written in one transaction:
    /// either all of them are stored or none is.
    pub(crate) fn record_all<const N: usize>(
        &self,
        events: [(EventType, Arc<[u8]>); N],
        source_id: &Arc<str>,
        name: &Arc<str>,
        extra: Option<Write>,
        wait: bool,
    ) -> Result<Option<Commit>> {
        let mut inner = self.lock();
        // A write that was not waited for may have failed since: stop before queuing more.
        self.settle_pending(&mut inner, None)?;
        let mut writes = Vec::with_capacity(N + usize::from(extra.is_some()));
        writes.extend(extra);
        let time = crate::event::now();
        for (kind, value) in events {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let event = Event { seq, kind, source_id: source_id.clone(), name: name.clone(), value, time };
            inner.events.push(event.clone());
            writes.push(Write::Append { execution_id: self.execution_id.clone(), event });
        }
        let commit = self.engine.store().write(writes);
        if wait {
            Ok(Some(commit))
        } else {
            inner.pending.push(commit);
            Ok(None)
        }
    }

    /// Checks the commits that were not waited for (and `failure`, the outcome of one that was).
    /// The first failure marks the run broken: its later writes are refused, so the stored log
    /// ends at its last durable event, without gaps, and the execution can be replayed from it.
    fn settle_pending(&self, inner: &mut RunInner, failure: Option<Error>) -> Result<()> {
        if let Some(e) = &inner.broken {
            return Err(e.clone());
        }
        let mut failure = failure;
        inner.pending.retain_mut(|c| match c.try_result() {
            Some(Ok(())) => false,
            Some(Err(e)) => {
                failure.get_or_insert(e);
                false
            }
            None => true,
        });
        match failure {
            None => Ok(()),
            Some(e) => {
                let e = Error::new(
                    ErrorKind::Storage,
                    format!(
                        "execution `{}` stopped: an event could not be stored; its stored log ends at the last \
                         event that was, and it can be replayed from there",
                        self.execution_id
                    ),
                )
                .with_cause(e.to_string());
                inner.broken = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Waits for `commit`, then checks every earlier commit that was not waited for.
    pub(crate) async fn durable(&self, commit: Option<Commit>) -> Result<()> {
        let result = match commit {
            Some(c) => c.await,
            None => Ok(()),
        };
        self.settle_pending(&mut self.lock(), result.err())
    }

    /// Records an event and waits for it to be durable.
    pub(crate) async fn record_durable(
        &self,
        kind: EventType,
        source_id: &Arc<str>,
        name: &Arc<str>,
        value: Arc<[u8]>,
        extra: Option<Write>,
    ) -> Result<()> {
        let commit = self.record(kind, source_id, name, value, extra, true)?;
        self.durable(commit).await
    }

    /// Stops the run: nothing more is recorded, the stored log ends at its last durable event
    /// and the execution can be replayed once the cause (`error`) is fixed.
    pub(crate) fn abort(&self, error: Error) -> Error {
        let e = Error::new(
            ErrorKind::Storage,
            format!("execution `{}` stopped; it can be replayed from its stored log", self.execution_id),
        )
        .with_cause(error.to_string());
        self.lock().broken.get_or_insert(e).clone()
    }

    /// The error that stopped this run's writes, if any.
    pub(crate) fn broken(&self) -> Option<Error> {
        self.lock().broken.clone()
    }

    /// The event at `index` of the log.
    pub(crate) fn event(&self, index: usize) -> Option<Event> {
        self.lock().events.get(index).cloned()
    }

    /// The engine this execution runs on.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A copy of the log so far.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Takes the log out (at the end of the run).
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }
}

/// The first parameter of every workflow: the input and what the body may ask of its execution.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::workflow]
/// async fn greet(ctx: ExecutionContext<String>) -> String {
///     format!("{} says hi to {}", ctx.workflow_name(), ctx.input())
/// }
/// ```
pub struct ExecutionContext<I> {
    run: Arc<RunState>,
    input: I,
    secrets: Secrets,
}

impl<I> ExecutionContext<I> {
    pub(crate) fn new(run: Arc<RunState>, input: I, secrets: Secrets) -> Self {
        ExecutionContext { run, input, secrets }
    }

    /// The secrets the workflow asked for with `#[flux::workflow(secret_requests = [..])]`.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.run.execution_id
    }

    /// The workflow name.
    pub fn workflow_name(&self) -> &str {
        &self.run.workflow_name
    }

    /// The workflow's input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// Consumes the context, returning the input.
    pub fn into_input(self) -> I {
        self.input
    }

    /// The log so far (a copy).
    pub fn events(&self) -> Vec<Event> {
        self.run.events()
    }
}

impl<I: fmt::Debug> fmt::Debug for ExecutionContext<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionContext")
            .field("execution_id", &self.execution_id())
            .field("workflow_name", &self.workflow_name())
            .field("input", &self.input)
            .finish()
    }
}

/// One execution of a workflow, as returned by `run`, `replay` and `status`.
///
/// A workflow that failed is still an `Execution` (in state `FAILED`, with [`Execution::error`]);
/// only a failure of the engine itself is an `Err` from `run`.
#[derive(Clone, Debug)]
pub struct Execution<I, O> {
    pub(crate) execution_id: String,
    pub(crate) workflow_name: String,
    pub(crate) state: ExecutionState,
    pub(crate) input: I,
    pub(crate) output: Option<O>,
    pub(crate) error: Option<Error>,
    pub(crate) events: Vec<Event>,
}

impl<I, O> Execution<I, O> {
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

    /// The error, once `FAILED`.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
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
