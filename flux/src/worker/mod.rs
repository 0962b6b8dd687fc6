//! Remote workers (feature `worker`, which `server` implies): a process that runs executions a
//! flux server hands it.
//!
//! ```no_run
//! use flux::prelude::*;
//!
//! #[flux::workflow]
//! async fn hello_world(ctx: ExecutionContext<String>) -> String {
//!     format!("Hello, {}", ctx.input())
//! }
//!
//! # async fn demo() -> flux::Result<()> {
//! flux::worker::Worker::new("http://127.0.0.1:8000")
//!     .name("worker-1")
//!     .bootstrap_token("the server's bootstrap token")
//!     .register(hello_world)
//!     .run()
//!     .await
//! # }
//! ```

mod remote;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;

use crate::config::Config;
use crate::engine::{Engine, States};
use crate::erased::{ErasedWorkflow, erase};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventType, ExecutionState};
use crate::protocol::{self, ClaimResponse, Offer, Registered, Registration, Resources, WireWrite, WorkflowRef};
use crate::store::MemoryStore;
use crate::workflow::WorkflowDefinition;

use self::remote::{Endpoint, RemoteStore, detail_of};

/// A connection that shows nothing (not even a keep-alive) for this long is dropped and made
/// again.
const IDLE_LIMIT: Duration = Duration::from_secs(15);

/// The longest a request to the server (registering, claiming, a checkpoint) may take, from
/// sending it to the end of its answer; the event stream has [`IDLE_LIMIT`] instead.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle connection to the server is kept for the next request: less than a
/// server's default `request_timeout`, so that the server is not the one to close it as a
/// request goes out.
const POOL_IDLE: Duration = Duration::from_secs(10);

/// How often the heartbeat task looks at the clock.
const HEARTBEAT_TICK: Duration = Duration::from_millis(100);

/// How long progress, and writes nothing waits for yet (`TASK_STARTED`), wait for a write to
/// carry them before they are sent on their own.
const PROGRESS_FLUSH: Duration = Duration::from_millis(50);

/// The longest wait between two attempts to reach the server.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A worker, being configured.
///
/// A worker registers with the server (bootstrap token), keeps an SSE connection open, and
/// claims the executions the server offers it for the workflows it registered. It runs each one
/// over the log the claim returns, so completed tasks are replayed, not run again, and sends
/// what it records as checkpoints: a task's result is handed back to the workflow only once the
/// server has stored it. If the connection drops, it reconnects with backoff; a worker that
/// stays away past its lease loses its claims, and the server offers them to another worker.
///
/// Secrets and the task cache come from the worker's own engine ([`Worker::engine`]), and so
/// does any sub-workflow a claimed execution starts: secrets set on the server are not sent to
/// workers, and a sub-workflow is stored with the worker that started it, so a worker taking
/// its parent over runs its tasks again.
pub struct Worker {
    server_url: String,
    name: Option<String>,
    token: Option<String>,
    workflows: Vec<Arc<dyn ErasedWorkflow>>,
    engine: Option<Engine>,
    max_concurrency: usize,
    heartbeat: Option<Duration>,
    states: States,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("server_url", &self.server_url)
            .field("name", &self.name)
            .field("workflows", &self.workflows.iter().map(|w| w.name()).collect::<Vec<_>>())
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker of the server at `server_url` (`http://host:port`). Its bootstrap token comes
    /// from the configuration (`FLUX_WORKERS__BOOTSTRAP_TOKEN`) unless given.
    pub fn new(server_url: impl Into<String>) -> Worker {
        Worker {
            server_url: server_url.into().trim_end_matches('/').to_string(),
            name: None,
            token: None,
            workflows: Vec::new(),
            engine: None,
            max_concurrency: 64,
            heartbeat: None,
            states: States::default(),
        }
    }

    /// The worker's name (default: the host name and process id).
    pub fn name(mut self, name: impl Into<String>) -> Worker {
        self.name = Some(name.into());
        self
    }

    /// The server's bootstrap token.
    pub fn bootstrap_token(mut self, token: impl Into<String>) -> Worker {
        self.token = Some(token.into());
        self
    }

    /// Offers `workflow` to the server: executions of it are handed to this worker.
    pub fn register<W: WorkflowDefinition>(mut self, workflow: W) -> Worker {
        self.workflows.retain(|w| w.name() != W::NAME);
        self.workflows.push(erase(workflow));
        self
    }

    /// The local engine for what a worker keeps to itself: secrets and the task cache
    /// (default: in memory).
    pub fn engine(mut self, engine: &Engine) -> Worker {
        self.engine = Some(engine.clone());
        self
    }

    /// Gives the tasks this worker runs `value`, received as a [`State<T>`](crate::State)
    /// parameter (a database pool, an HTTP client: what the tasks of its workflows need here).
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Worker {
        self.states.insert(value);
        self
    }

    /// How many executions this worker runs at once (default 64); offers beyond that are left
    /// for other workers.
    pub fn max_concurrency(mut self, n: usize) -> Worker {
        self.max_concurrency = n.max(1);
        self
    }

    /// How often the worker renews its claims when it has nothing else to send (default: the
    /// configured `heartbeat_interval`, 5 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Worker {
        self.heartbeat = Some(interval);
        self
    }

    /// Runs until the process stops: registers, connects, claims and runs executions, and
    /// reconnects with backoff when the connection drops.
    ///
    /// Returns an error only for what retrying cannot fix: no workflow registered, a wrong
    /// bootstrap token, an invalid name.
    pub async fn run(self) -> Result<()> {
        if self.workflows.is_empty() {
            return Err(Error::new(ErrorKind::Config, "a worker needs at least one workflow (`Worker::register`)"));
        }
        let config = Config::load().unwrap_or_default();
        let token = self.token.clone().or(config.workers.bootstrap_token.clone()).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "no bootstrap token: pass `Worker::bootstrap_token` or set FLUX_WORKERS__BOOTSTRAP_TOKEN",
            )
        })?;
        let name = self.name.clone().unwrap_or_else(default_name);
        let heartbeat = self.heartbeat.unwrap_or(config.workers.heartbeat_interval);
        let local = match &self.engine {
            Some(e) => e.clone(),
            None => Engine::with_store(MemoryStore::new()),
        };
        let (store, outbox) = RemoteStore::new(local.store().clone());
        let store = Arc::new(store);
        let engine = local.with_store_sharing(store.clone());
        engine.set_worker_name(&name);
        engine.add_states(&self.states);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(IDLE_LIMIT)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_keepalive(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot build the HTTP client: {e}")))?;
        let endpoint = Endpoint {
            client,
            base: self.server_url.clone(),
            worker: name.clone(),
            session: Arc::new(Mutex::new(String::new())),
            singly: Arc::default(),
        };
        store.set_server(endpoint.clone());
        let shared = Arc::new(Running {
            endpoint: endpoint.clone(),
            engine,
            store: store.clone(),
            workflows: self.workflows.iter().map(|w| (w.name().to_string(), w.clone())).collect(),
            slots: Arc::new(tokio::sync::Semaphore::new(self.max_concurrency)),
            heartbeat: Mutex::new(heartbeat),
            configured_heartbeat: heartbeat,
            claiming: Mutex::new(std::collections::HashSet::new()),
            renew_now: std::sync::atomic::AtomicBool::new(false),
        });
        let uploader =
            tokio::spawn(remote::uploader(endpoint.clone(), store.clone(), outbox, config.workers.lease_timeout));
        let heartbeats = tokio::spawn(heartbeats(shared.clone()));
        let flusher = tokio::spawn(progress_flusher(store.clone()));
        let result = self.connect_loop(&shared, &token).await;
        heartbeats.abort();
        flusher.abort();
        uploader.abort();
        result
    }

    /// Registers and listens for offers, again and again.
    async fn connect_loop(&self, shared: &Arc<Running>, token: &str) -> Result<()> {
        let endpoint = &shared.endpoint;
        let mut backoff = Duration::from_millis(100);
        let mut registered = false;
        loop {
            if !registered {
                match self.register_with(endpoint, token).await {
                    Ok(answer) => {
                        *endpoint.session.lock().unwrap_or_else(|p| p.into_inner()) = answer.session_token;
                        let mut heartbeat = shared.configured_heartbeat;
                        if answer.lease_timeout_ms > 0 {
                            heartbeat = heartbeat.min(Duration::from_millis(answer.lease_timeout_ms) / 3);
                        }
                        *shared.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = heartbeat;
                        registered = true;
                    }
                    Err(Retry::Never(e)) => return Err(e),
                    Err(Retry::Later(reason)) => {
                        tracing::warn!(server = %endpoint.base, %reason, "cannot register; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let url = format!("{}/workers/{}/connect", endpoint.base, endpoint.worker);
            let response = endpoint.client.get(&url).bearer_auth(endpoint.session()).send();
            let response = match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(response) => response.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
            };
            let response = match response {
                Ok(r) if r.status().is_success() => r,
                Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                    // The server forgot the session (it restarted): register again.
                    registered = false;
                    continue;
                }
                Ok(r) => {
                    let reason = detail_of(r).await;
                    tracing::warn!(server = %endpoint.base, %reason, "cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(server = %endpoint.base, error = %e, "cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            tracing::info!(worker = %endpoint.worker, server = %endpoint.base, "connected");
            shared.renew_now.store(true, std::sync::atomic::Ordering::Relaxed);
            backoff = Duration::from_millis(100);
            listen(shared, response).await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Registers with the bootstrap token; says whether a failure is worth retrying.
    async fn register_with(&self, endpoint: &Endpoint, token: &str) -> std::result::Result<Registered, Retry> {
        let registration = Registration {
            name: endpoint.worker.clone(),
            workflows: self
                .workflows
                .iter()
                .map(|w| WorkflowRef {
                    name: w.name().to_string(),
                    version: w.version(),
                    schedule: w.declared_schedule().and_then(|(cron, timezone, input)| {
                        let input = input.ok()?;
                        Some(protocol::DeclaredSchedule {
                            cron: cron.to_string(),
                            timezone: timezone.to_string(),
                            input: protocol::msgpack_to_json(&input),
                        })
                    }),
                    max_concurrency: w.max_concurrency().map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                })
                .collect(),
            resources: resources(),
            max_concurrency: Some(u32::try_from(self.max_concurrency).unwrap_or(u32::MAX)),
        };
        let response = endpoint
            .client
            .post(format!("{}/workers/register", endpoint.base))
            .timeout(REQUEST_TIMEOUT)
            .bearer_auth(token)
            .json(&registration)
            .send()
            .await
            .map_err(|e| Retry::Later(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            let registered: Registered =
                response.json().await.map_err(|e| Retry::Later(format!("unreadable registration answer: {e}")))?;
            tracing::info!(worker = %registered.name, "registered");
            return Ok(registered);
        }
        let detail = detail_of(response).await;
        // 409: a worker of this name is still connected (an earlier run of this one, perhaps,
        // not yet noticed gone): try again later.
        if status.is_client_error() && status != reqwest::StatusCode::CONFLICT {
            Err(Retry::Never(Error::new(ErrorKind::Config, format!("the server refused the registration: {detail}"))))
        } else {
            Err(Retry::Later(detail))
        }
    }
}

/// Why a registration failed: for now (try again later), or for good.
enum Retry {
    Later(String),
    Never(Error),
}

/// Takes the offers and cancellations of an open connection until it drops or goes silent for
/// [`IDLE_LIMIT`].
async fn listen(shared: &Arc<Running>, response: reqwest::Response) {
    let bytes = response.bytes_stream();
    let bytes = futures::stream::unfold(bytes, |mut bytes| async move {
        match tokio::time::timeout(IDLE_LIMIT, bytes.next()).await {
            Ok(Some(chunk)) => Some((chunk.map_err(|e| e.to_string()), bytes)),
            Ok(None) => None,
            Err(_) => Some((Err("the connection went silent".to_string()), bytes)),
        }
    });
    let mut events = Box::pin(bytes.eventsource());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "connection to the server lost; reconnecting");
                break;
            }
        };
        let Ok(offer) = serde_json::from_str::<Offer>(&event.data) else {
            continue;
        };
        match event.event.as_str() {
            protocol::EXECUTION_SCHEDULED | protocol::EXECUTION_RESUMED => take_offer(shared, offer),
            protocol::EXECUTION_CANCELLED if shared.store.mark_cancelling(&offer.execution_id) => {
                tracing::info!(execution_id = %offer.execution_id, "cancellation requested");
            }
            _ => {}
        }
    }
}

/// What the tasks of a running worker share.
struct Running {
    endpoint: Endpoint,
    engine: Engine,
    store: Arc<RemoteStore>,
    workflows: HashMap<String, Arc<dyn ErasedWorkflow>>,
    slots: Arc<tokio::sync::Semaphore>,
    /// How often claims are renewed: the configured interval, or a third of the server's lease
    /// if that is shorter.
    heartbeat: Mutex<Duration>,
    configured_heartbeat: Duration,
    /// Executions being claimed or run here: an offer made twice is taken once.
    claiming: Mutex<std::collections::HashSet<String>>,
    /// Set when the claims must be renewed at once (the connection is back: the server cut
    /// their leases short when it went).
    renew_now: std::sync::atomic::AtomicBool,
}

/// Claims and runs an offered execution in the background, if there is room.
fn take_offer(shared: &Arc<Running>, offer: Offer) {
    let Some(workflow) = shared.workflows.get(&offer.workflow_name).cloned() else {
        return;
    };
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        tracing::debug!(execution_id = %offer.execution_id, "at capacity; leaving the offer to others");
        return;
    };
    if !shared.claiming.lock().unwrap_or_else(|p| p.into_inner()).insert(offer.execution_id.clone()) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let id = offer.execution_id.clone();
        if let Err(e) = claim_and_run(&shared, workflow, &id).await {
            tracing::warn!(execution_id = %id, error = %e, "execution stopped on this worker");
        }
        shared.claiming.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    });
}

/// Claims execution `id` and runs it over the log the claim returns, until it stops here.
async fn claim_and_run(shared: &Running, workflow: Arc<dyn ErasedWorkflow>, id: &str) -> Result<()> {
    let endpoint = &shared.endpoint;
    let response = endpoint
        .client
        .post(endpoint.url("claim", id))
        .timeout(REQUEST_TIMEOUT)
        .bearer_auth(endpoint.session())
        .send()
        .await
        .map_err(|e| Error::new(ErrorKind::Storage, format!("cannot claim: {e}")))?;
    if response.status() == reqwest::StatusCode::CONFLICT {
        tracing::debug!(execution_id = %id, "claimed by someone else");
        return Ok(());
    }
    if !response.status().is_success() {
        return Err(Error::new(ErrorKind::Storage, format!("cannot claim: {}", detail_of(response).await)));
    }
    let bytes = response.bytes().await.map_err(|e| Error::new(ErrorKind::Storage, format!("cannot claim: {e}")))?;
    let claim: ClaimResponse = crate::value::from_msgpack(&bytes)?;
    let stored = claim.execution.into_stored(&endpoint.worker)?;
    let resumed = claim.resume_input.is_some();
    shared.store.hold(id, claim.generation, stored.state);
    tracing::info!(execution_id = %id, workflow = workflow.name(), generation = claim.generation, "running");
    let next_seq = stored.events.last().map_or(1, |e| e.seq() + 1);
    let source = format!("{}_{id}", stored.workflow_name);
    let store = shared.store.clone();
    let held = id.to_string();
    let on_events = Box::new(move |events| store.attach(&held, events));
    // The run continues the trace of the request that started the execution, if it had one.
    let span = tracing::info_span!("flux.worker.claim", flux.worker.name = %endpoint.worker, flux.execution.id = %id);
    #[cfg(feature = "otel")]
    if let Some(parent) = &claim.traceparent {
        crate::otel::continue_trace(&span, parent);
    }
    let run = workflow.run_claimed(&shared.engine, stored, claim.resume_input.map(|b| b.0), on_events);
    let started = match tracing::Instrument::instrument(run, span).await {
        Ok(started) => started,
        Err(e) if e.kind() != ErrorKind::Decode => {
            // Not runnable here now (an earlier run of it is still stopping): the claim lapses
            // and the execution is offered again.
            shared.store.release(id);
            return Err(e);
        }
        Err(e) => {
            // Its stored input does not fit the workflow: it fails, as it would on every worker.
            let failed = fail_unrunnable(shared, id, next_seq, &source, workflow.name(), &e).await;
            shared.store.release(id);
            return failed.and(Err(e));
        }
    };
    shared.store.set_abort(id, started.done.abort_handle());
    let outcome = match started.done.await {
        Ok(result) => result,
        Err(e) => Err(Error::new(ErrorKind::Panic, format!("the execution's task failed: {e}"))),
    };
    let wrote = shared.store.release(id);
    match outcome {
        Ok(state) => {
            tracing::info!(execution_id = %id, state = %state, "execution stopped");
            Ok(())
        }
        Err(e) if resumed && !wrote && e.kind() == ErrorKind::Decode => {
            // The resume input did not fit the pause: the execution goes back to PAUSED.
            shared.store.hold(id, claim.generation, ExecutionState::ResumeClaimed);
            let refused = WireWrite::Refused { reason: e.to_string() };
            let back = shared.store.send(id, vec![set_state(ExecutionState::Paused, None), refused]).await;
            shared.store.release(id);
            back.and(Err(e))
        }
        Err(e) => Err(e),
    }
}

/// A change of state, now, as a worker sends it.
fn set_state(state: ExecutionState, output: Option<Vec<u8>>) -> WireWrite {
    WireWrite::SetState {
        state: state.as_str().to_string(),
        output: output.map(protocol::Blob),
        time: crate::event::to_micros(crate::event::now()),
    }
}

/// Records the failure of an execution this worker cannot even start.
async fn fail_unrunnable(shared: &Running, id: &str, seq: u64, source: &str, name: &str, error: &Error) -> Result<()> {
    let recorded = crate::value::to_msgpack(error)?;
    let event =
        crate::event::Event::new(seq, EventType::WorkflowFailed, source, name, recorded.clone(), crate::event::now());
    let writes = vec![
        WireWrite::Append { event: protocol::WireEvent::from_event(&event) },
        set_state(ExecutionState::Failed, Some(recorded)),
    ];
    shared.store.send(id, writes).await
}

/// Sends progress and held-back writes no write carried within [`PROGRESS_FLUSH`].
async fn progress_flusher(store: Arc<RemoteStore>) {
    loop {
        tokio::time::sleep(PROGRESS_FLUSH).await;
        store.flush_progress();
    }
}

/// Renews the leases of the executions this worker holds, learns of cancellations asked for
/// while the connection was down, and stops runs whose claim was lost.
async fn heartbeats(shared: Arc<Running>) {
    let mut last = tokio::time::Instant::now();
    loop {
        // The interval can shrink when the worker (re)registers and learns the server's lease.
        tokio::time::sleep(HEARTBEAT_TICK).await;
        let every = *shared.heartbeat.lock().unwrap_or_else(|p| p.into_inner());
        let now = shared.renew_now.swap(false, std::sync::atomic::Ordering::Relaxed);
        if !now && last.elapsed() < every {
            continue;
        }
        last = tokio::time::Instant::now();
        for (id, generation) in shared.store.generations() {
            let checkpoint = protocol::Checkpoint { generation, writes: Vec::new() };
            match shared.endpoint.checkpoint(&id, &checkpoint, every).await {
                Ok(answer) if answer.cancelling => {
                    shared.store.mark_cancelling(&id);
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Conflict => shared.store.abort(&id),
                Err(e) => tracing::warn!(execution_id = %id, error = %e, "cannot renew the claim"),
            }
        }
    }
}

/// `host-pid`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

/// What this machine has: CPUs, memory and GPUs (read from `/proc` on Linux).
fn resources() -> Resources {
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let mut gpus = Vec::new();
    if let Ok(dirs) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        for dir in dirs.flatten() {
            let info = std::fs::read_to_string(dir.path().join("information")).unwrap_or_default();
            let name = info.lines().find_map(|l| l.strip_prefix("Model:")).map(|m| m.trim().to_string());
            gpus.push(protocol::Gpu { name: name.unwrap_or_else(|| "NVIDIA GPU".to_string()), memory_total_bytes: 0 });
        }
    }
    Resources {
        cpu_count,
        memory_total_bytes: field("MemTotal:"),
        memory_available_bytes: field("MemAvailable:"),
        gpus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_read_from_this_machine() {
        let r = resources();
        assert!(r.cpu_count >= 1);
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(r.memory_total_bytes > r.memory_available_bytes / 2 && r.memory_available_bytes > 0, "{r:?}");
        }
    }

    #[test]
    fn default_names_are_valid_worker_names() {
        let name = default_name();
        assert!(name.ends_with(&format!("-{}", std::process::id())), "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{name}");
    }
}
