//! What the request handlers and the dispatcher share: the catalog of workflows, the registered
//! workers and their connections, the claims they hold, the executions waiting for one, and the
//! server's settings. Only data lives here; the endpoints and the dispatcher act on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use tokio::sync::{Notify, mpsc, watch};

use super::auth::Token;
use super::http::Limits;
use super::hub::Hub;
use crate::engine::Engine;
use crate::erased::ErasedWorkflow;
use crate::protocol::{Offer, Resources};

/// A workflow in the catalog.
#[derive(Clone, Debug)]
pub(crate) struct CatalogEntry {
    /// The highest version registered.
    pub(crate) version: u32,
    /// Every version registered (by the server and its workers).
    pub(crate) versions: BTreeSet<u32>,
    /// Whether the server runs it in its own process.
    pub(crate) in_process: bool,
    /// The workers that registered it.
    pub(crate) workers: BTreeSet<String>,
    /// How many of its executions run at once, when its workers say (`max_concurrency`).
    pub(crate) max_concurrency: Option<usize>,
}

impl CatalogEntry {
    /// A workflow the server runs in its own process, at `version`.
    pub(crate) fn in_process(version: u32) -> CatalogEntry {
        let versions = BTreeSet::from([version]);
        CatalogEntry { version, versions, in_process: true, workers: BTreeSet::new(), max_concurrency: None }
    }
}

/// What every request handler shares.
/// What `GET /metrics` tells of checkpoints: those workers sent, and the requests that carried
/// them (one each, or a batch).
#[derive(Default)]
pub(crate) struct CheckpointCounts {
    pub(crate) received: std::sync::atomic::AtomicU64,
    pub(crate) requests: std::sync::atomic::AtomicU64,
}

pub(crate) struct Shared {
    /// Where executions are stored.
    pub(crate) engine: Engine,
    /// Workflows run in this process.
    pub(crate) local: HashMap<&'static str, Arc<dyn ErasedWorkflow>>,
    /// Every workflow the server knows, by name.
    pub(crate) catalog: Mutex<BTreeMap<String, CatalogEntry>>,
    /// The registered workers, by name.
    pub(crate) workers: Mutex<HashMap<String, WorkerEntry>>,
    /// The claims workers hold.
    pub(crate) claims: Mutex<Claims>,
    /// Serializes claims, take-backs and the server's own writes to remote executions.
    pub(crate) claim_lock: tokio::sync::Mutex<()>,
    /// The executions waiting for a worker.
    pub(crate) pending: Mutex<Pending>,
    /// The events of remote executions, to their streams and waiting requests.
    pub(crate) hub: Hub,
    /// The token workers register with.
    pub(crate) bootstrap_token: Token,
    /// The token that guards `/admin`.
    pub(crate) admin_token: Token,
    /// What the console's sessions are signed with (from the admin token).
    pub(crate) console_key: super::auth::SessionKey,
    /// How long a claim lasts without news from its worker.
    pub(crate) lease_timeout: Duration,
    /// The largest request body (`flux.max_body_bytes`).
    pub(crate) max_body_bytes: usize,
    /// How long a request body may take to arrive (`flux.request_timeout`).
    pub(crate) request_timeout: Duration,
    /// What [`Server::bind`](super::Server::bind)'s listener allows its connections.
    pub(crate) http_limits: Limits,
    /// Wakes the dispatcher (new work, a worker connected).
    pub(crate) wake: Notify,
    /// The W3C trace contexts of remote executions not claimed yet, by id (see `trace`).
    pub(crate) traces: Mutex<HashMap<String, String>>,
    /// Checkpoints received from workers, and the requests that carried them.
    pub(crate) checkpoints: CheckpointCounts,
    /// Whether other servers may share the store (it tells of their changes): executions
    /// are then also looked for in the store, not only where this server scheduled them.
    pub(crate) shared_store: bool,
    /// Turns true when the server stops: the dispatcher and open streams end.
    pub(crate) shutdown: watch::Sender<bool>,
}

/// The state every handler extracts.
pub(crate) type SharedState = State<Arc<Shared>>;

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered worker.
pub(crate) struct WorkerEntry {
    /// The token of its current session.
    pub(crate) session: Token,
    /// The workflows it registered.
    pub(crate) workflows: BTreeSet<String>,
    /// What its machine has.
    pub(crate) resources: Resources,
    /// How many executions it runs at once (`None`: it did not say).
    pub(crate) capacity: Option<usize>,
    /// Its event stream, while connected.
    pub(crate) connection: Option<Connection>,
    /// How many connections it opened (the id of the latest).
    pub(crate) connections: u64,
    /// Whether the current session has connected before: a connection of a session that did
    /// is the same process coming back; the first one of a new session may be a new process.
    pub(crate) session_connected: bool,
    /// When it last registered, connected, disconnected or sent a request with its token.
    pub(crate) last_seen: Instant,
}

/// A worker's open event stream: what the dispatcher and the server's cancellations send it.
pub(crate) struct Connection {
    /// Which of the worker's connections this is.
    pub(crate) id: u64,
    /// Offers and cancellations: the SSE event's name and its message.
    pub(crate) tx: mpsc::UnboundedSender<(&'static str, Offer)>,
}

/// The claims held by workers, by execution id.
#[derive(Default)]
pub(crate) struct Claims {
    /// Each claim by the id of the execution it holds.
    pub(crate) by_execution: HashMap<String, ClaimInfo>,
}

/// A claim: which worker holds an execution, under which generation, until when.
pub(crate) struct ClaimInfo {
    /// The worker that holds it.
    pub(crate) worker: String,
    /// The claim generation its checkpoints carry.
    pub(crate) generation: u64,
    /// When it runs out unless the worker is heard from.
    pub(crate) lease_until: Instant,
    /// When the lease stored with it runs out unless renewed: other servers on the database
    /// take the execution back after that (see [`Write::Lease`](crate::store::Write::Lease)).
    pub(crate) stored_until: Instant,
    /// The last event stored under this claim (0 when unknown, after a restart).
    pub(crate) last_seq: u64,
    /// Its cancellation was asked for: every answer to the worker says so until it ends.
    pub(crate) cancelling: bool,
}

/// Executions waiting for a worker to claim them.
#[derive(Default)]
pub(crate) struct Pending {
    /// Each waiting execution by its id.
    pub(crate) offers: HashMap<String, Offered>,
}

/// An execution waiting for a worker: its workflow, and to whom it was last offered.
pub(crate) struct Offered {
    /// Its workflow.
    pub(crate) workflow: String,
    /// Whether it waits for a resume (rather than its first run).
    pub(crate) resumed: bool,
    /// To whom and when it was last offered.
    pub(crate) offered: Option<(String, Instant)>,
    /// When it was added.
    pub(crate) since: Instant,
    /// Not offered before then: an execution another server scheduled is left to that server's
    /// workers for a moment (see `dispatch::find_scheduled`).
    pub(crate) not_before: Option<Instant>,
}

impl Pending {
    /// Adds execution `id` to those waiting for a worker (to resume it, when `resumed`).
    pub(crate) fn add(&mut self, id: &str, workflow: &str, resumed: bool) {
        let offered =
            Offered { workflow: workflow.to_string(), resumed, offered: None, since: Instant::now(), not_before: None };
        self.offers.insert(id.to_string(), offered);
    }
}
