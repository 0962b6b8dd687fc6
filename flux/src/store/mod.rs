//! Where executions and their logs live.
//!
//! The engine reaches storage only through the [`Store`] trait: writes are queued in order and
//! acknowledged once durable ([`Commit`]), reads load one execution whole. Two backends ship:
//! [`MemoryStore`] (tests, nothing persisted) and, with the default `sqlite` feature,
//! [`SqliteStore`] (one database file, WAL, one writer thread with group commit). Both keep the
//! rules of [`Store`], and with the `test-util` feature `flux::store::conformance` checks any
//! store against them, one test per rule.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, ExecutionState};

mod admission;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
mod filter;
mod memory;
mod rules;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(any(test, feature = "test-util"))]
#[doc(inline)]
pub use crate::__flux_store_conformance_tests as conformance_tests;
pub use admission::{AdmissionLimit, Admit};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use admission::{Found, RESTING, rate_since};
pub use filter::{ExecutionFilter, ExecutionPage, FIRE_TIME_LEN};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_SCHEMA as POSTGRES_DEFAULT_SCHEMA, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// How hard a commit tries to reach the disk before a task's result is handed back.
///
/// In every mode the stored log is a prefix of what was recorded: batches are committed whole
/// and in order, so a crash can cut the log short but never leaves a gap, a half-written event or
/// a corrupted one, and every stored execution loads again. The execution row and
/// `WORKFLOW_STARTED` are stored before the body runs, and the final `WORKFLOW_*` event (or
/// `WORKFLOW_PAUSED`) before `run` returns. The modes differ in when a task's `TASK_COMPLETED`
/// is durable:
///
/// | mode | `TASK_COMPLETED` is | a crash (kill -9) re-runs |
/// |---|---|---|
/// | [`Durability::Full`] | committed and fsynced before the result is handed back | only tasks that had not completed |
/// | [`Durability::Default`] | committed before the result is handed back | only tasks that had not completed |
/// | [`Durability::Batched`] | committed within [`BATCH_WINDOW`] (or [`BATCH_EVENTS`] writes) | also tasks completed in the last window |
///
/// `TASK_STARTED` and other events nothing waits for may be held back for up to
/// [`HOLD_WINDOW`] so that they share the commit of the event that follows; a crash in between
/// re-runs the task, exactly as it would if `TASK_STARTED` had been stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Durability {
    /// Committed to the write-ahead log before a task's result is handed back: survives the
    /// process being killed at any instant (`kill -9`), but not necessarily a power loss or OS
    /// crash (SQLite `synchronous = NORMAL`).
    #[default]
    Default,
    /// Every commit is fsynced before it is acknowledged: also survives power loss (SQLite
    /// `synchronous = FULL`).
    Full,
    /// A task's result is handed back before its commit; the writer commits every
    /// [`BATCH_WINDOW`] or [`BATCH_EVENTS`] writes, whichever comes first. After a crash, at most the
    /// tasks completed in that last window run again (never more than [`BATCH_PENDING`]
    /// batches). Workflow state changes (start, pause, end) are still waited for.
    Batched,
}

/// How long events nothing waits for (`TASK_STARTED`, retry steps) may be held back to share a
/// later commit, in the `default` and `full` modes.
pub const HOLD_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// How often the `batched` mode commits.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

/// How many queued writes make the `batched` mode commit before its window is over.
pub const BATCH_EVENTS: usize = 1000;

/// In the `batched` mode, how many batches of events (a task's start, its result) a run may have
/// waiting for their commit before it waits for the oldest: room for the writer to commit one
/// batch while the run goes on, and the bound on what a crash can lose.
pub const BATCH_PENDING: usize = 4 * BATCH_EVENTS;

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" | "normal" => Ok(Durability::Default),
            "full" => Ok(Durability::Full),
            "batched" => Ok(Durability::Batched),
            other => Err(Error::new(
                ErrorKind::Config,
                format!("unknown durability `{other}` (expected `default`, `full` or `batched`)"),
            )),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Default => "default",
            Durability::Full => "full",
            Durability::Batched => "batched",
        })
    }
}

/// One change to storage. Writes are applied in the order they are submitted.
///
/// The enum is exhaustive on purpose: a [`Store`] must apply every kind of write, so one that
/// does not know a kind must not compile. [`Write::Claim`], [`Write::Fence`] and
/// [`Write::Lease`] are the server's and recovery's own, and marked `#[non_exhaustive]`: code
/// outside flux reads them (a store matches them with `..` and applies their fields) but cannot
/// make them; tests do, through `Write::claim`, `Write::fence` and `Write::lease`, which the
/// `test-util` feature makes public.
///
/// ```compile_fail
/// // Outside flux, a fence can be read but not made.
/// let fence = flux::store::Write::Fence { execution_id: "x".into(), generation: 0 };
/// ```
///
/// ```
/// use flux::store::Write;
/// fn execution_id(write: &Write) -> &str {
///     match write {
///         Write::CreateExecution { id, .. } => id,
///         Write::Append { execution_id, .. }
///         | Write::DeleteExecution { execution_id }
///         | Write::Claim { execution_id, .. }
///         | Write::Fence { execution_id, .. }
///         | Write::Lease { execution_id, .. }
///         | Write::SetState { execution_id, .. } => execution_id,
///         Write::CachePut { key, .. } => key,
///     }
/// }
/// let write = Write::set_state("x", flux::ExecutionState::Cancelling, None);
/// assert_eq!(execution_id(&write), "x");
/// ```
#[derive(Clone, Debug)]
pub enum Write {
    /// Insert a new execution row.
    CreateExecution {
        /// Execution id.
        id: Arc<str>,
        /// Workflow name.
        workflow_name: Arc<str>,
        /// Initial state.
        state: ExecutionState,
        /// The input, MessagePack.
        input: Arc<[u8]>,
        /// The execution that started this one as a sub-workflow.
        parent_id: Option<Arc<str>>,
        /// The version of the workflow it runs (1 for a workflow without versions).
        version: u32,
        /// Creation time.
        time: SystemTime,
    },
    /// Remove a finished execution with its log. Refused unless the execution is `COMPLETED`,
    /// `FAILED` or `CANCELLED` ([`ErrorKind::InvalidState`]), or if there is none
    /// ([`ErrorKind::NotFound`]). It removes only this execution: its sub-workflows are
    /// executions of their own ([`Engine::delete`](crate::Engine::delete) removes them too).
    /// Outputs kept in an output storage are not removed (see [`crate::output`]).
    DeleteExecution {
        /// Execution id.
        execution_id: Arc<str>,
    },
    /// Append one event to an execution's log.
    Append {
        /// Execution id.
        execution_id: Arc<str>,
        /// The event (its `seq` must be the next in the log).
        event: Event,
    },
    /// Store (or replace) a task result in the cache shared by all executions.
    CachePut {
        /// The task id without its `~n` suffix.
        key: Arc<str>,
        /// The task's full name (for clearing one task's entries).
        task_name: Arc<str>,
        /// The output, MessagePack.
        value: Arc<[u8]>,
        /// When the entry stops being valid; `None` keeps it until cleared.
        expires_at: Option<SystemTime>,
    },
    /// Hands an execution to a worker (or takes it back, with `worker: None`) under a new claim
    /// generation. Refused unless `generation` is one more than the stored generation, so that
    /// two claims never get the same generation.
    #[non_exhaustive]
    Claim {
        /// Execution id.
        execution_id: Arc<str>,
        /// The worker now holding the execution.
        worker: Option<Arc<str>>,
        /// The new claim generation.
        generation: u64,
    },
    /// Applies the rest of the batch only if the execution's claim generation is still
    /// `generation`: a worker that lost its claim cannot write.
    #[non_exhaustive]
    Fence {
        /// Execution id.
        execution_id: Arc<str>,
        /// The generation the writer holds.
        generation: u64,
    },
    /// Records which engine runs an execution in its own process, and until when (see
    /// [`LeaseMode`]). Executions whose lease ran out are continued by
    /// [`Engine::recover`](crate::Engine::recover).
    #[non_exhaustive]
    Lease {
        /// Execution id.
        execution_id: Arc<str>,
        /// The engine running it ([`Engine::owner`](crate::Engine::owner)).
        owner: Arc<str>,
        /// When the lease runs out unless renewed.
        until: SystemTime,
        /// How the lease is taken.
        mode: LeaseMode,
    },
    /// Change an execution's state, optionally setting its output (or stored error).
    SetState {
        /// Execution id.
        execution_id: Arc<str>,
        /// New state.
        state: ExecutionState,
        /// Output (for COMPLETED) or structured error (for FAILED), MessagePack.
        output: Option<Arc<[u8]>>,
        /// Time of the change.
        time: SystemTime,
    },
}

impl Write {
    /// A change of an execution's state, with its output (or stored error) if it has one, at the
    /// current time (to the microsecond, as stored).
    pub fn set_state(execution_id: impl Into<Arc<str>>, state: ExecutionState, output: Option<Arc<[u8]>>) -> Self {
        Write::SetState { execution_id: execution_id.into(), state, output, time: crate::event::now() }
    }

    /// A [`Write::DeleteExecution`]: removes the finished execution `execution_id` with its log.
    pub fn delete_execution(execution_id: impl Into<Arc<str>>) -> Self {
        Write::DeleteExecution { execution_id: execution_id.into() }
    }

    /// A [`Write::Claim`]: hands the execution to `worker` (or takes it back, with `None`) at
    /// claim generation `generation`.
    #[cfg(any(test, feature = "test-util"))]
    pub fn claim(execution_id: impl Into<Arc<str>>, worker: Option<&str>, generation: u64) -> Self {
        Write::Claim { execution_id: execution_id.into(), worker: worker.map(Arc::from), generation }
    }

    /// A [`Write::Fence`]: the rest of the batch applies only at claim generation `generation`.
    #[cfg(any(test, feature = "test-util"))]
    pub fn fence(execution_id: impl Into<Arc<str>>, generation: u64) -> Self {
        Write::Fence { execution_id: execution_id.into(), generation }
    }

    /// A [`Write::Lease`]: `owner` runs the execution until `until`, the lease taken as `mode`
    /// says.
    #[cfg(any(test, feature = "test-util"))]
    pub fn lease(
        execution_id: impl Into<Arc<str>>,
        owner: impl Into<Arc<str>>,
        until: SystemTime,
        mode: LeaseMode,
    ) -> Self {
        Write::Lease { execution_id: execution_id.into(), owner: owner.into(), until, mode }
    }
}

/// How a [`Write::Lease`] is taken. A lease that cannot be taken refuses its batch with
/// [`ErrorKind::Conflict`] (an unknown execution with [`ErrorKind::NotFound`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseMode {
    /// Whatever lease there was: this engine runs the execution now (a run, replay or resume
    /// asked for by name).
    Own,
    /// Only while the lease is still this owner's: another engine may have taken it over.
    Renew,
    /// Only from a lease that ran out (or none) of an execution still `RUNNING` or `CANCELLING`
    /// and held by no worker: the takeover of [`Engine::recover`](crate::Engine::recover), which
    /// two engines cannot both win.
    TakeOver,
}

/// An execution as stored: its row and its whole log.
#[derive(Clone, Debug)]
pub struct StoredExecution {
    /// Execution id.
    pub id: String,
    /// Workflow name.
    pub workflow_name: String,
    /// The version of the workflow it runs (1 for executions stored before versions were).
    pub version: u32,
    /// Current state.
    pub state: ExecutionState,
    /// The input, MessagePack.
    pub input: Vec<u8>,
    /// The output or stored error, MessagePack.
    pub output: Option<Vec<u8>>,
    /// The parent execution, for sub-workflows.
    pub parent_id: Option<String>,
    /// When the execution was created.
    pub created_at: SystemTime,
    /// When its row last changed.
    pub updated_at: SystemTime,
    /// The worker holding the execution (server mode).
    pub worker: Option<String>,
    /// How many times the execution has been claimed or taken back (server mode).
    pub claim_generation: u64,
    /// The log, in order.
    pub events: Vec<Event>,
}

/// An execution's row, without its log: what [`Store::list`] and [`Store::list_executions`]
/// return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRow {
    /// Execution id.
    pub id: String,
    /// Workflow name.
    pub workflow_name: String,
    /// The version of the workflow it runs.
    pub version: u32,
    /// Current state.
    pub state: ExecutionState,
    /// The worker holding the execution (server mode).
    pub worker: Option<String>,
    /// The claim generation (server mode).
    pub claim_generation: u64,
    /// When the execution was created.
    pub created_at: SystemTime,
    /// When its row last changed.
    pub updated_at: SystemTime,
    /// The execution that started this one as a sub-workflow.
    pub parent_id: Option<String>,
    /// The engine running it in its own process, if one ever did ([`Write::Lease`]).
    pub owner: Option<String>,
    /// When that engine's lease runs out.
    pub lease_until: Option<SystemTime>,
}

/// A storage backend.
///
/// Implementations must apply the writes of one [`Store::write`] call atomically and in order,
/// and calls in the order they were made; [`Commit`] resolves once those writes (and every write
/// submitted before them) are durable. They must refuse (and not apply) a batch that creates an
/// existing execution, appends an event whose `seq` is not one more than the last stored event of
/// its execution (nothing follows `i64::MAX`), changes the state of a finished execution, or
/// moves a `CANCELLING` execution to anything but a finished state; a [`Write::Claim`] not at the
/// stored generation plus one, a [`Write::Fence`] not at the stored generation, or a
/// [`Write::Lease`] its [`LeaseMode`] does not allow; a [`Write::DeleteExecution`] of an
/// execution that has not finished; and a write (other than its creation) to an execution that
/// does not exist, with [`ErrorKind::NotFound`]. Each write is judged from the store as the
/// writes before it in the batch leave it. The `test-util` feature's `flux::store::conformance` checks these rules one by one.
pub trait Store: Send + Sync + 'static {
    /// Queues `writes` and returns a handle that resolves when they are durable.
    fn write(&self, writes: Vec<Write>) -> Commit;

    /// Queues `writes` that nothing is waiting for yet: the store may hold them back (up to
    /// [`HOLD_WINDOW`], or [`BATCH_WINDOW`] in the `batched` mode) so that they share the commit
    /// of later writes. Order is kept: they are durable no later than any write queued after
    /// them.
    fn write_deferred(&self, writes: Vec<Write>) -> Commit {
        self.write(writes)
    }

    /// The durability this store gives; with [`Durability::Batched`] the engine hands a task's
    /// result back before its commit.
    fn durability(&self) -> Durability {
        Durability::Default
    }

    /// Loads one execution with its log, or `None` if no execution has this id.
    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>>;

    /// The executions in any of `states`, oldest change first.
    fn list(&self, states: &[ExecutionState]) -> Result<Vec<ExecutionRow>>;

    /// One page of the executions `filter` asks for, newest first (see [`ExecutionFilter`]), and
    /// how many match in all, read together (the count and the page agree). Refuses a filter
    /// [`ExecutionFilter::check`] refuses. Loads no log.
    fn list_executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage>;

    /// The current state of one execution, or `None` if no execution has this id. Cheaper than
    /// [`Store::load`]: running executions poll it to notice a cancellation asked for elsewhere.
    fn state(&self, execution_id: &str) -> Result<Option<ExecutionState>>;

    /// A short description for messages (`sqlite:.flux/flux.db`).
    fn describe(&self) -> String;

    /// A cached task result that is still valid at `now`.
    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>>;

    /// Removes cached results: all of them, or those of one task name. Returns how many.
    fn cache_clear(&self, task_name: Option<&str>) -> Result<u64>;

    /// Stores (or replaces) an encrypted secret.
    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()>;

    /// The nonce and ciphertext of a secret.
    fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>>;

    /// The names of all secrets, sorted.
    fn secret_list(&self) -> Result<Vec<String>>;

    /// Removes a secret; returns whether it existed.
    fn secret_remove(&self, name: &str) -> Result<bool>;

    /// The changes other processes commit, for a store several processes share (PostgreSQL):
    /// each receiver gets every [`Change`] committed after it was made, except this store's
    /// own. `None` (the default) for a store only this process writes to, whose writes the
    /// process sees as it makes them.
    ///
    /// Notices can be lost (a dropped connection, a receiver that fell behind): a receiver then
    /// gets [`Change::Missed`] and should read again what it follows, and a process that must
    /// not miss a change also looks at the store from time to time.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// Passes `message`, about execution `execution_id`, to the other processes on a shared store
    /// without storing it (a task's progress, which a stream on another server shows); they get
    /// it as [`Change::Published`]. At most [`MAX_PUBLISHED`] bytes; larger messages, and every
    /// message on a store only this process uses (the default), go nowhere. It does not wait,
    /// and a message can be lost like any notice.
    fn publish(&self, execution_id: &str, message: &[u8]) {
        let _ = (execution_id, message);
    }

    /// Records that a worker registered workflow `name` at `version` with a server, for a
    /// store several servers share: the others then accept runs of it too. A store only this
    /// process writes to keeps nothing (the default).
    fn catalog_put(&self, name: &str, version: u32) -> Result<()> {
        let _ = (name, version);
        Ok(())
    }

    /// The workflows [`Store::catalog_put`] recorded, each with its highest version, sorted by
    /// name.
    fn catalog_list(&self) -> Result<Vec<(String, u32)>> {
        Ok(Vec::new())
    }

    /// Stores a new schedule (`expected: None`; refused with [`ErrorKind::Conflict`] if one of
    /// this name exists), or replaces one whose stored revision is still `expected` (refused
    /// with [`ErrorKind::Conflict`] if it moved on, [`ErrorKind::NotFound`] if there is none).
    /// Returns the revision it now has: 1 for a new one, one more than `expected` otherwise. The
    /// revision of `schedule` itself is ignored. Two processes that read a schedule and both
    /// replace it: one wins, the other is told.
    ///
    /// The default keeps no schedules and refuses, naming the store.
    fn schedule_put(&self, schedule: &StoredSchedule, expected: Option<u64>) -> Result<u64> {
        let _ = (schedule, expected);
        Err(no_schedules(&self.describe()))
    }

    /// One schedule, or `None` if there is none of this name.
    fn schedule_get(&self, name: &str) -> Result<Option<StoredSchedule>> {
        let _ = name;
        Ok(None)
    }

    /// Every schedule, sorted by name.
    fn schedule_list(&self) -> Result<Vec<StoredSchedule>> {
        Ok(Vec::new())
    }

    /// Removes a schedule (not the executions it started); whether it existed.
    fn schedule_delete(&self, name: &str) -> Result<bool> {
        let _ = name;
        Ok(false)
    }

    /// Keeps `value` as the next message on `topic` for execution `execution_id` (which need
    /// not exist yet). With a `key`, a message of the same execution, topic and key that is kept
    /// already makes this one a duplicate: nothing is kept, and `false` is returned. Messages of
    /// one execution and topic are kept in the order they were stored.
    ///
    /// The default keeps no messages and refuses, naming the store.
    fn message_put(&self, execution_id: &str, topic: &str, key: Option<&str>, value: &[u8]) -> Result<bool> {
        let _ = (execution_id, topic, key, value);
        Err(no_messages(&self.describe()))
    }

    /// The `index`-th message (from 0) kept on `topic` for `execution_id`, or `None` if fewer
    /// are kept.
    fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        let _ = (execution_id, topic, index);
        Err(no_messages(&self.describe()))
    }

    /// Admits execution `execution_id` under every one of `limits` at `now`, or under none: each
    /// scope's count of the other executions admitted there that hold a place (not finished, not
    /// paused) must be below its concurrency, and of those admitted within its rate's period
    /// below its rate, judged under a lock every process on the store takes. Admitted before
    /// under a scope counts as fitting it. The default admits everything: a store only one engine
    /// uses ([`MemoryStore`]), whose engine counts for itself.
    fn admit(&self, execution_id: &str, limits: &[AdmissionLimit], now: SystemTime) -> Result<Admit> {
        let _ = (execution_id, limits, now);
        Ok(Admit::Yes)
    }
}

/// The error of a store that keeps no messages.
fn no_messages(store: &str) -> Error {
    Error::new(ErrorKind::Config, format!("store `{store}` does not keep messages between workflows"))
}

/// The error of a store that keeps no schedules.
fn no_schedules(store: &str) -> Error {
    Error::new(ErrorKind::Config, format!("store `{store}` does not keep schedules"))
}

/// The error of creating a schedule whose name is taken.
pub(crate) fn schedule_exists(name: &str) -> Error {
    Error::new(ErrorKind::Conflict, format!("a schedule named `{name}` exists already"))
}

/// The error of a schedule that is not stored.
pub(crate) fn schedule_not_found(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no schedule named `{name}`"))
}

/// The error of replacing a schedule that was changed since it was read.
pub(crate) fn schedule_moved(name: &str, expected: u64, stored: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("schedule `{name}` changed since it was read (revision {stored}, not {expected}); read it again"),
    )
}

/// A schedule as a store keeps it: its name, the workflow it starts, and the rest (definition,
/// input, state) as the `schedule` module encodes it, which stores keep without reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSchedule {
    /// The schedule's name, unique in the store.
    pub name: String,
    /// The workflow each fire starts.
    pub workflow_name: String,
    /// The definition and state, encoded.
    pub body: Vec<u8>,
    /// How many times it was stored: 1 when created, one more at each replacement.
    pub revision: u64,
    /// When it was last stored.
    pub updated_at: SystemTime,
}

/// A change another process committed to a shared store (see [`Store::changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Execution `id` changed: events were appended, or its row changed (to `state`, when the
    /// commit set one; the last one it set).
    Execution {
        /// The execution.
        id: Arc<str>,
        /// The state the commit left it in, if the commit set one.
        state: Option<ExecutionState>,
    },
    /// A message another process published about execution `id` ([`Store::publish`]).
    Published {
        /// The execution.
        id: Arc<str>,
        /// The message.
        message: Arc<[u8]>,
    },
    /// Notices may have been lost since the last one: read again whatever is followed.
    Missed,
}

/// The largest message [`Store::publish`] passes on.
pub const MAX_PUBLISHED: usize = 3800;

/// Resolves when a submitted batch of writes is durable (or failed).
#[must_use = "a write is only known to be durable once its commit resolves"]
#[derive(Debug)]
pub struct Commit(CommitInner);

/// A store that can commit queued writes on the thread of a task waiting for them.
pub(crate) trait Help: Send + Sync {
    /// Commits what is queued now, unless someone else is committing.
    fn help(&self);
}

enum CommitInner {
    Ready(Option<Result<()>>),
    Pending(oneshot::Receiver<Result<()>>),
    /// Pending, and polling it may commit the queue on the polling thread; the flag says
    /// whether it yielded once already. (Only the SQLite store helps so far.)
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Helped(oneshot::Receiver<Result<()>>, Arc<dyn Help>, bool),
}

impl std::fmt::Debug for CommitInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitInner::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            CommitInner::Pending(_) | CommitInner::Helped(..) => f.write_str("Pending"),
        }
    }
}

impl Commit {
    /// A commit that is already done.
    pub fn ready(result: Result<()>) -> Self {
        Commit(CommitInner::Ready(Some(result)))
    }

    /// A commit and the sender that completes it.
    pub fn pending() -> (CommitSender, Self) {
        let (tx, rx) = oneshot::channel();
        (CommitSender(tx), Commit(CommitInner::Pending(rx)))
    }

    /// A pending commit whose waiter may commit the queue of `store` itself.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn helped(store: Arc<dyn Help>) -> (CommitSender, Self) {
        let (tx, rx) = oneshot::channel();
        (CommitSender(tx), Commit(CommitInner::Helped(rx, store, false)))
    }

    /// The result if the commit has finished, without waiting.
    pub fn try_result(&mut self) -> Option<Result<()>> {
        match &mut self.0 {
            CommitInner::Ready(r) => r.take(),
            CommitInner::Pending(rx) | CommitInner::Helped(rx, ..) => match rx.try_recv() {
                Ok(r) => Some(r),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(writer_gone())),
            },
        }
    }
}

fn writer_gone() -> Error {
    Error::new(ErrorKind::Storage, "the storage writer stopped before confirming a commit")
}

impl Future for Commit {
    type Output = Result<()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.0 {
            CommitInner::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| {
                Err(Error::new(ErrorKind::InvalidState, "a commit was polled again after it finished"))
            })),
            CommitInner::Pending(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or_else(|_| Err(writer_gone()))),
            CommitInner::Helped(rx, store, yielded) => {
                if let Poll::Ready(r) = Pin::new(&mut *rx).poll(cx) {
                    return Poll::Ready(r.unwrap_or_else(|_| Err(writer_gone())));
                }
                if !*yielded {
                    // Let the other tasks that are ready run first: their writes join the queue
                    // and share this commit.
                    *yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                // Committing here, a few tens of microseconds without a fsync, saves handing the
                // work to the writer thread and being woken by it.
                store.help();
                Pin::new(rx).poll(cx).map(|r| r.unwrap_or_else(|_| Err(writer_gone())))
            }
        }
    }
}

/// Completes a pending [`Commit`].
#[derive(Debug)]
pub struct CommitSender(oneshot::Sender<Result<()>>);

impl CommitSender {
    /// Reports the outcome of the commit.
    pub fn send(self, result: Result<()>) {
        // The waiter may have gone away (its future dropped); nothing to do then.
        let _ = self.0.send(result);
    }
}

#[cfg(test)]
mod tests;
