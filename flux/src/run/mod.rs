//! One execution being run: [`RunState`] holds its log so far, the ids of the calls it made,
//! its listeners, and why its body must stop (a pause, a rejected resume, a cancellation).
//!
//! - [`scope`]: the task-locals that tie a body and its task calls to their run.
//! - [`index`]: what the loaded log says about each task id, built once when the run begins.
//! - [`record`]: appending events, in memory and to the store, in order and in batches.
//! - [`stop`]: pauses, rejected resumes and cancellations, and the run's end.
//! - [`listen`]: listeners of the run's events and of its ephemeral progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::engine::{Engine, LiveRun};
use crate::error::{Error, ErrorKind};
use crate::event::Event;
use crate::identity::{CallIds, IdHasher};
use crate::store::Commit;

mod index;
mod listen;
mod record;
mod scope;
mod stop;

pub(crate) use index::{Lookup, RecordedChain};
pub use listen::PROGRESS_QUEUE;
pub(crate) use listen::Subscription;
pub(crate) use record::Source;
pub use scope::spawn;
pub(crate) use scope::{
    cancelled_error, current, current_task, in_task, is_replay_only, replay_only, replay_only_error, scope,
    unscoped_call,
};
pub(crate) use stop::{CancelRequest, PauseRequest, Stop};

/// The MessagePack encoding of nil, the value of events that carry none.
pub(crate) const NIL: &[u8] = &[0xc0];

/// What a run changes as it goes, under one lock.
struct RunInner {
    events: Vec<Event>,
    /// The `seq` of the next event: one more than the last event of the log.
    next_seq: u64,
    /// The calls of each base id so far, and what the log held of each id when the run began.
    /// Events recorded during the run are not added: the occurrence counter gives every call a
    /// new id, so they are never looked up again.
    tasks: CallIds<index::TaskRecord>,
    /// The order of the calls the log recorded, and which of them the replay has made again.
    order: index::Order,
    /// Calls made in replay-only mode that the log does not hold (see [`RunState::lookup`]).
    replay_only_misses: u64,
    /// Commits not waited for yet; checked whenever a later commit is awaited.
    pending: std::collections::VecDeque<Commit>,
    /// Set when a write failed: the in-memory log is then ahead of storage and the run must stop.
    broken: Option<Error>,
    stop: Stop,
    /// Set once the run recorded its end (or its pause): nothing may be recorded after it.
    finished: bool,
    /// The input of a `resume`, for the pause the body is stopped at.
    resume_input: Option<Arc<[u8]>>,
    listeners: Vec<listen::Listener>,
    /// The task names of the calls this run makes, each shared by the events they record.
    names: std::collections::HashSet<Arc<str>, std::hash::BuildHasherDefault<IdHasher>>,
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
    /// Whether some call the log recorded has not been made again yet (a copy of
    /// `inner.order.waiting()`, which only ever turns false): a new call needs no check once it
    /// is false.
    replaying: AtomicBool,
    /// Whether anyone listens: progress costs nothing otherwise.
    listening: AtomicBool,
    /// The store hands task results back before their commit (`batched`).
    batched: bool,
    /// Set when the driver is done with the run; wakes those waiting for its end.
    done: AtomicBool,
    done_notify: Notify,
    /// Values the layers above the core keep for the length of the run (an agent's working
    /// memory), by key: see [`RunState::kept`].
    locals: Mutex<Vec<(u64, Arc<dyn std::any::Any + Send + Sync>)>>,
    /// The run's `flux.workflow.execute` span: the body runs in it, each task attempt is a
    /// `flux.task.execute` span inside it. Its parent is the span current where the run was
    /// prepared (a caller's, a server's request, a worker's claim).
    pub(crate) span: tracing::Span,
}

impl RunState {
    /// The value kept under `key` for the length of this run, made with `T::default()` the
    /// first time it is asked for. Keys are the callers' (an id each owner draws once); a key
    /// asked for with another type gets a fresh value of that type in place of the old one.
    #[cfg_attr(not(feature = "ai"), allow(dead_code))]
    pub(crate) fn kept<T: Default + Send + Sync + 'static>(&self, key: u64) -> Arc<T> {
        let mut locals = self.locals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, value)) = locals.iter().find(|(k, _)| *k == key)
            && let Ok(value) = Arc::clone(value).downcast::<T>()
        {
            return value;
        }
        locals.retain(|(k, _)| *k != key);
        let value = Arc::new(T::default());
        locals.push((key, value.clone() as Arc<dyn std::any::Any + Send + Sync>));
        value
    }

    /// A run of execution `execution_id` of `workflow_name` (a sub-workflow of `parent_id`) over
    /// its log so far.
    pub(crate) fn new(
        engine: Engine,
        execution_id: &str,
        workflow_name: &str,
        parent_id: Option<&str>,
        events: Vec<Event>,
    ) -> Self {
        let tasks = index::index(&events);
        let order = index::Order::of(&events);
        let replaying = AtomicBool::new(order.waiting());
        let batched = engine.store().durability() == crate::store::Durability::Batched;
        let span = tracing::info_span!(
            "flux.workflow.execute",
            flux.workflow.name = workflow_name,
            flux.execution.id = execution_id,
            flux.worker.name = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if let Some(worker) = engine.worker_name() {
            span.record("flux.worker.name", worker);
        }
        RunState {
            execution_id: Arc::from(execution_id),
            workflow_name: Arc::from(workflow_name),
            workflow_source: Arc::from(format!("{workflow_name}_{execution_id}")),
            parent_id: parent_id.map(Arc::from),
            engine,
            inner: Mutex::new(RunInner {
                next_seq: events.last().map_or(1, |e| e.seq + 1),
                events,
                tasks,
                order,
                replay_only_misses: 0,
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
            replaying,
            listening: AtomicBool::new(false),
            locals: Mutex::new(Vec::new()),
            batched,
            done: AtomicBool::new(false),
            done_notify: Notify::new(),
            span,
        }
    }

    /// The run of `execution_id` going on in `engine`, if any.
    pub(crate) fn local(engine: &Engine, execution_id: &str) -> Option<Arc<RunState>> {
        let run: Arc<dyn std::any::Any + Send + Sync> = engine.local_run(execution_id)?;
        run.downcast::<RunState>().ok()
    }

    fn lock(&self) -> MutexGuard<'_, RunInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The workflow as the source of its own events.
    pub(crate) fn workflow(&self) -> Source<'_> {
        Source::new(&self.workflow_source, &self.workflow_name)
    }

    /// Gives the call of `base_id` its occurrence id and says what the log knows of it. Also
    /// returns the base id as a shared string. An id the log holds is the log's own string, so
    /// a replayed call allocates nothing here, unless it repeats an earlier call's base id.
    pub(crate) fn lookup(&self, base_id: &str) -> (Arc<str>, Lookup) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (base, id, record) = inner.tasks.next(base_id);
        match &record {
            Some(record) => {
                inner.order.made(record);
                if !inner.order.waiting() {
                    self.replaying.store(false, Ordering::Relaxed);
                }
            }
            // Replay-only mode exists only inside a recorded group: a run without a recorded
            // call skips the task-local lookup.
            None if !inner.order.is_empty() && scope::is_replay_only() => {
                // A group being replayed makes a call its first run never made (it stopped
                // before): the call is taken back, so that its id stays free for the call that
                // did take it, and the group stops making calls (see `compose`).
                inner.tasks.take_back(&base);
                inner.replay_only_misses += 1;
            }
            None => {}
        }
        (base, index::decide(id, record, &inner.events))
    }

    /// Looks the call of `base_id` up, and, when the log does not hold it, says whether the
    /// replay has made every call the log recorded (it is then past the log's end): in one step,
    /// so that no call is made in between. A call before the log's end is taken back.
    pub(crate) fn lookup_at_end(&self, base_id: &str) -> (Lookup, bool) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (base, id, record) = inner.tasks.next(base_id);
        let past_end = match &record {
            Some(record) => {
                inner.order.made(record);
                if !inner.order.waiting() {
                    self.replaying.store(false, Ordering::Relaxed);
                }
                true
            }
            None if scope::is_replay_only() || inner.order.waiting() => {
                inner.tasks.take_back(&base);
                false
            }
            None => true,
        };
        (index::decide(id, record, &inner.events), past_end)
    }

    /// How many calls made in replay-only mode the log did not hold, so far.
    pub(crate) fn replay_only_misses(&self) -> u64 {
        self.lock().replay_only_misses
    }

    /// Checks, before a call the log does not hold records its start, that the replay has made
    /// every call the log recorded: otherwise the code no longer matches the log, and the run
    /// stops with [`ErrorKind::NonDeterminism`], recording nothing.
    pub(crate) fn check_new_call(&self, task_id: &str, name: &str) -> Result<(), Error> {
        if !self.replaying.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut inner = self.lock();
        if !inner.order.waiting() {
            return Ok(());
        }
        let recorded = inner.order.first_waiting().and_then(|i| inner.events.get(i));
        let recorded = match recorded {
            Some(e) => format!("`{}` (task `{}`)", e.source_id, e.name),
            None => "another call".to_string(),
        };
        let error = Error::new(
            ErrorKind::NonDeterminism,
            format!(
                "execution `{}` of workflow `{}` no longer matches its log: the code calls `{task_id}` (task \
                 `{name}`) where the log recorded {recorded}; nothing was recorded or run again. Run the code \
                 the execution started with, or branch around the change with `flux::patched`",
                self.execution_id, self.workflow_name
            ),
        )
        .with_task_id(task_id);
        drop(inner);
        Err(self.diverged(error))
    }

    /// The error of a body that returned before making every call its log recorded, if it did.
    pub(crate) fn unmade_call(&self) -> Option<Error> {
        let mut inner = self.lock();
        let at = inner.order.first_waiting()?;
        let recorded = inner.events.get(at)?;
        let error = Error::new(
            ErrorKind::NonDeterminism,
            format!(
                "execution `{}` of workflow `{}` no longer matches its log: the workflow returned without making \
                 the recorded call `{}` (task `{}`); nothing was recorded. Run the code the execution started \
                 with, or branch around the change with `flux::patched`",
                self.execution_id, self.workflow_name, recorded.source_id, recorded.name
            ),
        )
        .with_task_id(&*recorded.source_id);
        drop(inner);
        Some(self.diverged(error))
    }

    /// Stops the run on a replay that no longer matches its log: nothing more is recorded and
    /// the driver leaves the execution as stored.
    fn diverged(&self, error: Error) -> Error {
        let error = self.lock().broken.get_or_insert(error).clone();
        self.request_stop(Stop::Rejected(error.clone()));
        error
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

    /// Whether a task's result is handed back before its commit ([`Durability::Batched`]).
    ///
    /// [`Durability::Batched`]: crate::Durability::Batched
    pub(crate) fn batched(&self) -> bool {
        self.batched
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
        let (listener, subscription) = listen::Listener::new();
        self.lock().listeners.push(listener);
        self.listening.store(true, Ordering::SeqCst);
        subscription
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
            kind: crate::event::EventType::TaskProgress,
            source_id,
            name,
            value: value.into(),
            time: crate::event::now(),
        };
        inner.listeners.retain(|l| l.send_progress(&event));
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

    /// Whether the driver is done with the run.
    pub(crate) fn is_closed(&self) -> bool {
        self.done.load(Ordering::SeqCst)
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
        if error.kind() == ErrorKind::NonDeterminism {
            // A sub-workflow whose replay no longer matches its log stops its parent too.
            return self.diverged(error);
        }
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

impl LiveRun for RunState {
    fn execution_id(&self) -> &Arc<str> {
        &self.execution_id
    }

    fn lease_lost(&self, error: Error) {
        self.abort(error);
    }
}
