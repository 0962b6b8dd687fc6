//! The running execution: [`ExecutionContext`] for the workflow body, the task-local handle task
//! calls use to reach it, and [`Execution`], the result users get back.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState};
use crate::identity::CallIds;
use crate::secrets::Secrets;
use crate::store::{Commit, Write};

tokio::task_local! {
    static CURRENT: Arc<RunState>;
    /// Set while a composite task replays children whose outcome is already recorded: a child
    /// that would have to run is refused instead (see `compose`).
    static REPLAY_ONLY: ();
    /// The task whose attempt is running, for `flux::progress`.
    static CURRENT_TASK: (Arc<str>, Arc<str>);
}

/// The execution the calling code runs in, if any.
pub(crate) fn current() -> Option<Arc<RunState>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `fut` with `run` as the current execution.
pub(crate) async fn scope<F: Future>(run: Arc<RunState>, fut: F) -> F::Output {
    CURRENT.scope(run, fut).await
}

/// Runs `fut` in replay-only mode: task calls inside it return their recorded outcome and never
/// run.
pub(crate) async fn replay_only<F: Future>(fut: F) -> F::Output {
    REPLAY_ONLY.scope((), fut).await
}

/// Whether the caller runs in replay-only mode.
pub(crate) fn is_replay_only() -> bool {
    REPLAY_ONLY.try_with(|_| ()).is_ok()
}

/// Runs `fut` as the attempt of task `task_id` (named `name`).
pub(crate) async fn in_task<F: Future>(task_id: &Arc<str>, name: &Arc<str>, fut: F) -> F::Output {
    CURRENT_TASK.scope((task_id.clone(), name.clone()), fut).await
}

/// The task whose attempt is running, if any.
pub(crate) fn current_task() -> Option<(Arc<str>, Arc<str>)> {
    CURRENT_TASK.try_with(Clone::clone).ok()
}

/// The error a task call gets when its execution is being cancelled.
pub(crate) fn cancelled_error(task_id: &str) -> Error {
    Error::new(ErrorKind::Cancelled, format!("task `{task_id}` was cancelled")).with_task_id(task_id)
}

/// The error a task call gets when it would have to run inside a composite task being replayed.
pub(crate) fn replay_only_error(task_id: &str) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("task `{task_id}` has no recorded outcome and is not run again: the group it belongs to has finished"),
    )
    .with_task_id(task_id)
}

/// The MessagePack encoding of nil, the value of events that carry none.
pub(crate) const NIL: &[u8] = &[0xc0];

/// What the log says about one task id.
#[derive(Clone, Copy, Debug, Default)]
struct TaskRecord {
    /// Index in the log of its `TASK_STARTED`.
    started: Option<usize>,
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

/// A pause reached by the body: what the driver records before it stops the run.
#[derive(Clone, Debug)]
pub(crate) struct PauseRequest {
    pub(crate) task_id: Arc<str>,
    pub(crate) task_name: Arc<str>,
    /// The pause's recorded arguments (`[name]`).
    pub(crate) args: Arc<[u8]>,
    /// The pause name.
    pub(crate) name: String,
    /// The value exposed while paused (`pause_with`), MessagePack.
    pub(crate) output: Arc<[u8]>,
    /// Whether `TASK_STARTED` and `TASK_PAUSED` still have to be recorded.
    pub(crate) fresh: bool,
}

/// Why the body must stop before it finishes.
#[derive(Clone, Debug, Default)]
pub(crate) enum Stop {
    #[default]
    None,
    /// A pause was reached.
    Pause(PauseRequest),
    /// The resume input does not fit the pause: nothing is recorded and the run stops.
    Rejected(Error),
    /// The execution is being cancelled.
    Cancel,
}

/// What came of a request to cancel a running execution.
pub(crate) enum CancelRequest {
    /// `WORKFLOW_CANCELLING` was recorded; the commit resolves when it is durable.
    Requested(Commit),
    /// It was being cancelled already.
    AlreadyRequested,
    /// The run has recorded its end (finished or paused) already.
    Finished,
}

/// Someone streaming the execution's events.
struct Listener {
    tx: mpsc::UnboundedSender<Event>,
    /// Progress events queued and not taken yet; beyond [`PROGRESS_QUEUE`] they are dropped.
    queued: Arc<AtomicUsize>,
}

/// How many progress events may wait for a slow stream reader before newer ones are dropped.
pub const PROGRESS_QUEUE: usize = 1000;

/// The receiving side of a [`RunState`] listener.
pub(crate) struct Subscription {
    pub(crate) rx: mpsc::UnboundedReceiver<Event>,
    pub(crate) queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next event, `None` once the run has ended and every event was taken.
    pub(crate) fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Event>> {
        let polled = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(e)) = &polled
            && e.kind == EventType::TaskProgress
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        polled
    }
}

struct RunInner {
    events: Vec<Event>,
    /// The `seq` of the next event: one more than the last event of the log.
    next_seq: u64,
    /// The calls of each base id so far, and what the log held of each id when the run began.
    /// Events recorded during the run are not added: the occurrence counter gives every call a
    /// new id, so they are never looked up again.
    tasks: CallIds<TaskRecord>,
    /// Commits not waited for yet; checked whenever a later commit is awaited.
    pending: std::collections::VecDeque<Commit>,
    /// Set when a write failed: the in-memory log is then ahead of storage and the run must stop.
    broken: Option<Error>,
    stop: Stop,
    /// Set once the run recorded its end (or its pause): nothing may be recorded after it.
    finished: bool,
    /// The input of a `resume`, for the pause the body is stopped at.
    resume_input: Option<Arc<[u8]>>,
    listeners: Vec<Listener>,
    /// The task names of the calls this run makes, each shared by the events they record.
    names: std::collections::HashSet<Arc<str>, std::hash::BuildHasherDefault<crate::identity::IdHasher>>,
}

/// One execution being run: its log so far and the bookkeeping of task ids.
pub(crate) struct RunState {
    pub(crate) execution_id: Arc<str>,
    pub(crate) workflow_name: Arc<str>,
    /// `"{workflow_name}_{execution_id}"`, the source id of workflow events.
    pub(crate) workflow_source: Arc<str>,
    /// The execution that started this one as a sub-workflow.
    pub(crate) parent_id: Option<Arc<str>>,
    engine: Engine,
    inner: Mutex<RunInner>,
    /// Set with `Stop::Cancel`, readable without the lock.
    cancelled: AtomicBool,
    /// Wakes tasks waiting on user code when the execution is cancelled.
    cancel_notify: Notify,
    /// Wakes the driver when the body must stop (pause, rejected resume, cancel).
    stop_notify: Notify,
    /// Whether anyone listens: progress costs nothing otherwise.
    listening: AtomicBool,
    /// The store hands task results back before their commit (`batched`).
    batched: bool,
    /// Set when the driver is done with the run; wakes those waiting for its end.
    done: AtomicBool,
    done_notify: Notify,
}

impl RunState {
    pub(crate) fn new(engine: Engine, execution_id: &str, workflow_name: &str, events: Vec<Event>) -> Self {
        let mut tasks = CallIds::<TaskRecord>::with_capacity(events.len() / 2);
        for (i, e) in events.iter().enumerate() {
            if !e.kind.as_str().starts_with("TASK_") {
                continue;
            }
            let record = tasks.info_mut(e.source_id.clone());
            let p = &mut record.progress;
            match e.kind {
                EventType::TaskStarted => record.started = Some(i),
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
        let batched = engine.store().durability() == crate::store::Durability::Batched;
        RunState {
            execution_id: Arc::from(execution_id),
            workflow_name: Arc::from(workflow_name),
            workflow_source: Arc::from(format!("{workflow_name}_{execution_id}")),
            parent_id: None,
            engine,
            inner: Mutex::new(RunInner {
                next_seq: events.last().map_or(1, |e| e.seq + 1),
                events,
                tasks,
                pending: std::collections::VecDeque::new(),
                broken: None,
                stop: Stop::None,
                finished: false,
                resume_input: None,
                listeners: Vec::new(),
                names: Default::default(),
            }),
            cancelled: AtomicBool::new(false),
            cancel_notify: Notify::new(),
            stop_notify: Notify::new(),
            listening: AtomicBool::new(false),
            batched,
            done: AtomicBool::new(false),
            done_notify: Notify::new(),
        }
    }

    /// The same run, as the child of execution `parent`.
    pub(crate) fn with_parent(mut self, parent: Option<&str>) -> Self {
        self.parent_id = parent.map(Arc::from);
        self
    }

    fn lock(&self) -> MutexGuard<'_, RunInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the call of `base_id` its occurrence id and says what the log knows of it. Also
    /// returns the base id as a shared string. An id the log holds is the log's own string, so
    /// a replayed call allocates nothing here, unless it repeats an earlier call's base id.
    pub(crate) fn lookup(&self, base_id: &str) -> (Arc<str>, Lookup) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (base, id, record) = inner.tasks.next(base_id);
        let events = &inner.events;
        let lookup = match record {
            Some(TaskRecord { outcome: Some(i), .. }) => match events.get(i) {
                Some(event) => Lookup::Recorded(id, event.clone()),
                None => Lookup::Restart(id, Progress::default()),
            },
            Some(TaskRecord { started: Some(_), progress, .. }) => Lookup::Restart(id, progress),
            _ => Lookup::Fresh(id),
        };
        (base, lookup)
    }

    /// `name` as a shared string, one per distinct name in the run: the calls of a task share
    /// its name instead of each copying it.
    pub(crate) fn shared_name(&self, name: &str) -> Arc<str> {
        let mut inner = self.lock();
        if let Some(shared) = inner.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(name);
        inner.names.insert(shared.clone());
        shared
    }

    /// When the log recorded the `TASK_STARTED` of `task_id` (a call being restarted).
    pub(crate) fn started_time(&self, task_id: &str) -> Option<std::time::SystemTime> {
        let inner = self.lock();
        let index = inner.tasks.info(task_id)?.started?;
        inner.events.get(index).map(|e| e.time)
    }

    /// Appends events to the in-memory log (and to listeners) and queues their write after
    /// `extra`, all in one batch. The caller holds the lock and has settled pending commits.
    /// A `deferred` batch is one nothing waits for yet: the store may hold it back to share a
    /// later commit.
    fn push<'a>(
        &self,
        inner: &mut RunInner,
        events: impl IntoIterator<Item = (EventType, &'a Arc<str>, &'a Arc<str>, Arc<[u8]>)>,
        extra: impl IntoIterator<Item = Write>,
        deferred: bool,
    ) -> Result<Commit> {
        if inner.finished {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution `{}` has already recorded its end; nothing more is recorded", self.execution_id),
            ));
        }
        let mut writes: Vec<Write> = extra.into_iter().collect();
        let time = crate::event::now();
        for (kind, source_id, name, value) in events {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let event =
                Event { seq, kind, source_id: source_id.clone(), name: name.clone(), value: value.into(), time };
            if !inner.listeners.is_empty() {
                inner.listeners.retain(|l| l.tx.send(event.clone()).is_ok());
            }
            inner.events.push(event.clone());
            writes.push(Write::Append { execution_id: self.execution_id.clone(), event });
        }
        let store = self.engine.store();
        Ok(if deferred { store.write_deferred(writes) } else { store.write(writes) })
    }

    /// Appends an event to the log and queues its write in one batch after `extra` (an
    /// execution row to create, a state change, a cache entry). Returns the commit when `wait`
    /// is set; otherwise the write is deferred (see [`Store::write_deferred`]) and its commit is
    /// checked at the next wait.
    ///
    /// [`Store::write_deferred`]: crate::store::Store::write_deferred
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
        let commit = self.push(&mut inner, events.map(|(kind, value)| (kind, source_id, name, value)), extra, !wait)?;
        if wait {
            Ok(Some(commit))
        } else {
            inner.pending.push_back(commit);
            Ok(None)
        }
    }

    /// Whether a task's result is handed back before its commit ([`Durability::Batched`]).
    ///
    /// [`Durability::Batched`]: crate::Durability::Batched
    pub(crate) fn batched(&self) -> bool {
        self.batched
    }

    /// In the `batched` mode, waits for the oldest commits not waited for while more than
    /// [`BATCH_PENDING`] are outstanding, so that a crash loses at most that many.
    ///
    /// [`BATCH_PENDING`]: crate::store::BATCH_PENDING
    pub(crate) async fn bounded(&self) -> Result<()> {
        loop {
            let oldest = {
                let mut inner = self.lock();
                self.settle_pending(&mut inner, None)?;
                if inner.pending.len() <= crate::store::BATCH_PENDING {
                    return Ok(());
                }
                inner.pending.pop_front()
            };
            if let Some(commit) = oldest {
                let result = commit.await;
                self.settle_pending(&mut self.lock(), result.err())?;
            }
        }
    }

    /// Records events of several sources (and `extra`) in one transaction and returns its commit.
    pub(crate) fn record_batch<'a>(
        &self,
        events: impl IntoIterator<Item = (EventType, &'a Arc<str>, &'a Arc<str>, Arc<[u8]>)>,
        extra: impl IntoIterator<Item = Write>,
    ) -> Result<Commit> {
        let mut inner = self.lock();
        self.settle_pending(&mut inner, None)?;
        self.push(&mut inner, events, extra, false)
    }

    /// Checks the commits that were not waited for (and `failure`, the outcome of one that was).
    /// The first failure marks the run broken: its later writes are refused, so the stored log
    /// ends at its last durable event, without gaps, and the execution can be replayed from it.
    fn settle_pending(&self, inner: &mut RunInner, failure: Option<Error>) -> Result<()> {
        if let Some(e) = &inner.broken {
            return Err(e.clone());
        }
        let mut failure = failure;
        // Commits resolve in the order they were queued: the first one still running ends the
        // check, so that it costs nothing per commit outstanding.
        while let Some(front) = inner.pending.front_mut() {
            match front.try_result() {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    failure.get_or_insert(e);
                }
                None => break,
            }
            inner.pending.pop_front();
        }
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

    /// Records the end of the run: `decide` is told whether a cancellation was asked for and
    /// gives the final event, its value and the final state. Nothing is recorded after it.
    pub(crate) fn record_end(
        &self,
        decide: impl FnOnce(bool) -> Result<(EventType, Arc<[u8]>, ExecutionState)>,
    ) -> Result<(Commit, ExecutionState)> {
        let mut inner = self.lock();
        self.settle_pending(&mut inner, None)?;
        let (kind, value, state) = decide(matches!(inner.stop, Stop::Cancel))?;
        let set_state = Write::SetState {
            execution_id: self.execution_id.clone(),
            state,
            output: Some(value.clone()),
            time: crate::event::now(),
        };
        let commit =
            self.push(&mut inner, [(kind, &self.workflow_source, &self.workflow_name, value)], Some(set_state), false)?;
        inner.finished = true;
        Ok((commit, state))
    }

    /// Records a pause the body reached (`TASK_STARTED`, `TASK_PAUSED` when new, then
    /// `WORKFLOW_PAUSED` and the state `PAUSED`, in one transaction). `None` when a cancellation
    /// came first: the run then ends cancelled instead.
    pub(crate) fn record_pause(&self, pause: &PauseRequest) -> Result<Option<Commit>> {
        let mut inner = self.lock();
        self.settle_pending(&mut inner, None)?;
        if matches!(inner.stop, Stop::Cancel) {
            return Ok(None);
        }
        let task_paused = crate::value::to_msgpack(&PausedTask { name: &pause.name })?;
        let workflow_paused = paused_value(&pause.name, &pause.output);
        let mut events = Vec::with_capacity(3);
        if pause.fresh {
            events.push((EventType::TaskStarted, &pause.task_id, &pause.task_name, pause.args.clone()));
            events.push((EventType::TaskPaused, &pause.task_id, &pause.task_name, task_paused.into()));
        }
        events.push((EventType::WorkflowPaused, &self.workflow_source, &self.workflow_name, workflow_paused));
        let set_state = Write::SetState {
            execution_id: self.execution_id.clone(),
            state: ExecutionState::Paused,
            output: Some(pause.output.clone()),
            time: crate::event::now(),
        };
        let commit = self.push(&mut inner, events, Some(set_state), false)?;
        inner.finished = true;
        Ok(Some(commit))
    }

    /// Asks the body to stop (a pause or a rejected resume) and wakes the driver.
    pub(crate) fn request_stop(&self, stop: Stop) {
        {
            let mut inner = self.lock();
            if !matches!(inner.stop, Stop::Cancel) {
                inner.stop = stop;
            }
        }
        self.stop_notify.notify_waiters();
    }

    /// Why the body must stop, if it must.
    pub(crate) fn stop(&self) -> Stop {
        self.lock().stop.clone()
    }

    /// Waits until the body is asked to stop. Create it before checking [`RunState::stop`].
    pub(crate) fn stop_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.stop_notify.notified()
    }

    /// Starts the cancellation of this run: records `WORKFLOW_CANCELLING` (and the state
    /// `CANCELLING`, unless `state_set` says it is stored already) and wakes the running tasks.
    pub(crate) fn request_cancel(&self, state_set: bool) -> Result<CancelRequest> {
        let commit = {
            let mut inner = self.lock();
            if inner.finished {
                return Ok(CancelRequest::Finished);
            }
            if matches!(inner.stop, Stop::Cancel) {
                return Ok(CancelRequest::AlreadyRequested);
            }
            self.settle_pending(&mut inner, None)?;
            let set_state = (!state_set).then(|| Write::SetState {
                execution_id: self.execution_id.clone(),
                state: ExecutionState::Cancelling,
                output: None,
                time: crate::event::now(),
            });
            let commit = self.push(
                &mut inner,
                [(EventType::WorkflowCancelling, &self.workflow_source, &self.workflow_name, Arc::from(NIL))],
                set_state,
                false,
            )?;
            inner.stop = Stop::Cancel;
            self.cancelled.store(true, Ordering::SeqCst);
            commit
        };
        self.cancel_notify.notify_waiters();
        self.stop_notify.notify_waiters();
        Ok(CancelRequest::Requested(commit))
    }

    /// Whether the execution is being cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `fut` unless the execution is (or gets) cancelled first: `None` then, and `fut` is
    /// dropped.
    pub(crate) async fn or_cancelled<F: Future>(&self, fut: F) -> Option<F::Output> {
        let notified = self.cancel_notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.is_cancelled() {
            return None;
        }
        let fut = std::pin::pin!(fut);
        match futures::future::select(notified, fut).await {
            futures::future::Either::Left(_) => None,
            futures::future::Either::Right((out, _)) => Some(out),
        }
    }

    /// Gives the run the input of a `resume`, for the pause its body stopped at.
    pub(crate) fn set_resume_input(&self, input: Arc<[u8]>) {
        self.lock().resume_input = Some(input);
    }

    /// Takes the input of a `resume` (once).
    pub(crate) fn take_resume_input(&self) -> Option<Arc<[u8]>> {
        self.lock().resume_input.take()
    }

    /// Adds a listener of the run's events (from now on).
    pub(crate) fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        self.lock().listeners.push(Listener { tx, queued: queued.clone() });
        self.listening.store(true, Ordering::SeqCst);
        Subscription { rx, queued }
    }

    /// Sends an ephemeral progress event to the listeners, dropping it for a listener that has
    /// [`PROGRESS_QUEUE`] progress events waiting already.
    pub(crate) fn emit_progress(&self, source_id: Arc<str>, name: Arc<str>, value: Arc<[u8]>) {
        if !self.listening.load(Ordering::Relaxed) {
            return;
        }
        let mut inner = self.lock();
        let seq = inner.next_seq.saturating_sub(1);
        let event = Event {
            seq,
            kind: EventType::TaskProgress,
            source_id,
            name,
            value: value.into(),
            time: crate::event::now(),
        };
        inner.listeners.retain(|l| {
            if l.queued.load(Ordering::Relaxed) >= PROGRESS_QUEUE {
                return !l.tx.is_closed();
            }
            l.queued.fetch_add(1, Ordering::Relaxed);
            l.tx.send(event.clone()).is_ok()
        });
    }

    /// Marks the run as over: listeners get the end of their stream and waiters wake.
    pub(crate) fn close(&self) {
        {
            let mut inner = self.lock();
            inner.finished = true;
            inner.listeners.clear();
        }
        self.listening.store(false, Ordering::SeqCst);
        self.done.store(true, Ordering::SeqCst);
        self.done_notify.notify_waiters();
    }

    /// Waits until the driver is done with the run.
    pub(crate) async fn wait_closed(&self) {
        let notified = self.done_notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
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

/// The value of `WORKFLOW_PAUSED`, read back.
#[derive(serde::Deserialize)]
struct PausedAt<U> {
    name: String,
    output: U,
}

/// The value of `TASK_PAUSED`.
#[derive(serde::Serialize)]
struct PausedTask<'a> {
    name: &'a str,
}

/// The value of `WORKFLOW_PAUSED`: `{name, output}`, the output spliced in as encoded.
fn paused_value(name: &str, output: &[u8]) -> Arc<[u8]> {
    let mut buf = Vec::with_capacity(16 + name.len() + output.len());
    let _ = rmp::encode::write_map_len(&mut buf, 2);
    crate::value::append_str(&mut buf, "name");
    crate::value::append_str(&mut buf, name);
    crate::value::append_str(&mut buf, "output");
    buf.extend_from_slice(output);
    buf.into()
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
    pub(crate) parent_id: Option<String>,
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

    /// The error, once `FAILED` (or `CANCELLED`: an error of kind [`ErrorKind::Cancelled`]).
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The execution that started this one as a sub-workflow, if any.
    pub fn parent_id(&self) -> Option<&str> {
        self.parent_id.as_deref()
    }

    /// The name of the pause a `PAUSED` execution waits at.
    pub fn pause_name(&self) -> Option<String> {
        self.paused_event()?.value::<PausedAt<serde::de::IgnoredAny>>().ok().map(|p| p.name)
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
        if self.state != ExecutionState::Paused {
            return None;
        }
        self.events.iter().rev().find(|e| e.kind == EventType::WorkflowPaused)
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
