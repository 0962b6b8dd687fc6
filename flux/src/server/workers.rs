//! Remote workers: registration, the SSE connection that offers them executions, claims with
//! generations and leases, checkpoints, progress; and the dispatcher that offers scheduled
//! executions and takes back the claims of workers that went silent.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::{
    ApiError, ApiResult, Mode, Source, body_bytes, json_body, path_error, sse, summary_of, summary_response,
    to_completion,
};
use super::auth::{Token, bearer, random_token};
use super::hub::{HubItem, HubReceiver};
use super::{DISCONNECT_GRACE, Shared, lock};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::{
    self, Checkpoint, ClaimResponse, Offer, Registered, Registration, Summary, WireExecution, WireWrite,
};
use crate::store::{StoredExecution, Write};

/// How often a worker's connection gets a keep-alive: a vanished worker is noticed when one
/// cannot be written.
const WORKER_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How long an offer waits to be claimed before it is made again (perhaps to another worker).
const REOFFER: Duration = Duration::from_secs(3);

/// The end of year 9999 in microseconds since the Unix epoch: later event times are refused.
const MAX_TIME_MICROS: i64 = 253_402_300_799_999_999;

/// How often the dispatcher looks at leases and offers without being woken.
const TICK: Duration = Duration::from_millis(250);

/// A registered worker.
pub(crate) struct WorkerEntry {
    session: Token,
    workflows: BTreeSet<String>,
    resources: protocol::Resources,
    connection: Option<Connection>,
    connections: u64,
    /// Whether the current session has connected before: a connection of a session that did
    /// is the same process coming back; the first one of a new session may be a new process.
    session_connected: bool,
    /// When it last registered, connected, disconnected or sent a request with its token.
    last_seen: Instant,
}

struct Connection {
    id: u64,
    tx: mpsc::UnboundedSender<(&'static str, Offer)>,
}

/// The claims held by workers, by execution id.
#[derive(Default)]
pub(crate) struct Claims {
    by_execution: HashMap<String, ClaimInfo>,
}

struct ClaimInfo {
    worker: String,
    generation: u64,
    lease_until: Instant,
    /// The last event stored under this claim (0 when unknown, after a restart).
    last_seq: u64,
    /// Its cancellation was asked for: every answer to the worker says so until it ends.
    cancelling: bool,
}

/// Executions waiting for a worker to claim them.
#[derive(Default)]
pub(crate) struct Pending {
    offers: HashMap<String, Offered>,
}

struct Offered {
    workflow: String,
    resumed: bool,
    /// To whom and when it was last offered.
    offered: Option<(String, Instant)>,
}

impl Pending {
    fn add(&mut self, id: &str, workflow: &str, resumed: bool) {
        self.offers.insert(id.to_string(), Offered { workflow: workflow.to_string(), resumed, offered: None });
    }
}

/// The worker endpoints.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/workers/register", post(register))
        .route("/workers/{name}/connect", get(connect))
        .route("/workers/{name}/claim/{execution_id}", post(claim))
        .route("/workers/{name}/checkpoint/{execution_id}", post(checkpoint))
        .route("/workers/{name}/progress/{execution_id}", post(progress))
}

type SharedState = State<Arc<Shared>>;

fn valid_workflow_name(name: &str) -> bool {
    (1..=200).contains(&name.chars().count()) && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn valid_worker_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

async fn register(State(s): SharedState, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult {
    match bearer(&headers) {
        Some(token) if s.bootstrap_token.matches(token) => {}
        _ => return Err(ApiError::unauthorized("bootstrap token")),
    }
    let registration: Registration = serde_json::from_value(json_body(body)?)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("not a worker registration: {e}")))?;
    let name = registration.name;
    if !valid_worker_name(&name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid worker name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"),
        ));
    }
    if let Some(w) = registration.workflows.iter().find(|w| !valid_workflow_name(&w.name)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid workflow name {:?}: use 1 to 200 characters, no spaces or control characters", w.name),
        ));
    }
    let session_token = random_token()?;
    let workflows: BTreeSet<String> = registration.workflows.iter().map(|w| w.name.clone()).collect();
    {
        let mut workers = lock(&s.workers);
        let entry = workers.entry(name.clone()).or_insert_with(|| WorkerEntry {
            session: Token::new(&session_token),
            workflows: BTreeSet::new(),
            resources: protocol::Resources::default(),
            connection: None,
            connections: 0,
            session_connected: false,
            last_seen: Instant::now(),
        });
        if entry.connection.as_ref().is_some_and(|c| !c.tx.is_closed()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("a worker named `{name}` is connected already; give each worker its own name"),
            ));
        }
        entry.session = Token::new(&session_token);
        entry.session_connected = false;
        entry.last_seen = Instant::now();
        entry.workflows = workflows;
        entry.resources = registration.resources;
        tracing::info!(
            worker = %name,
            workflows = ?entry.workflows,
            cpus = entry.resources.cpu_count,
            memory_bytes = entry.resources.memory_total_bytes,
            gpus = entry.resources.gpus.len(),
            "worker registered"
        );
    }
    {
        let mut catalog = lock(&s.catalog);
        for entry in catalog.values_mut() {
            entry.workers.remove(&name);
        }
        for w in &registration.workflows {
            let entry = catalog.entry(w.name.clone()).or_insert_with(|| super::CatalogEntry {
                version: w.version,
                in_process: false,
                workers: BTreeSet::new(),
            });
            entry.version = entry.version.max(w.version);
            entry.workers.insert(name.clone());
        }
    }
    s.wake.notify_one();
    let lease_timeout_ms = u64::try_from(s.lease_timeout.as_millis()).unwrap_or(u64::MAX);
    Ok(axum::Json(Registered { name, session_token, lease_timeout_ms }).into_response())
}

/// Checks the session token of worker `name`.
fn check_session(s: &Shared, name: &str, headers: &HeaderMap) -> ApiResult<()> {
    let mut workers = lock(&s.workers);
    match (workers.get_mut(name), bearer(headers)) {
        (Some(worker), Some(token)) if worker.session.matches(token) => {
            worker.last_seen = Instant::now();
            Ok(())
        }
        _ => Err(ApiError::unauthorized("session token (register with POST /workers/register)")),
    }
}

/// Marks a worker's connection gone when its stream is dropped.
struct Disconnect {
    shared: Arc<Shared>,
    name: String,
    id: u64,
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        let mut workers = lock(&self.shared.workers);
        let Some(worker) = workers.get_mut(&self.name) else {
            return;
        };
        if worker.connection.as_ref().is_none_or(|c| c.id != self.id) {
            return;
        }
        worker.connection = None;
        worker.last_seen = Instant::now();
        drop(workers);
        tracing::info!(worker = %self.name, "worker disconnected");
        let deadline = Instant::now() + DISCONNECT_GRACE;
        let mut claims = lock(&self.shared.claims);
        for claim in claims.by_execution.values_mut().filter(|c| c.worker == self.name) {
            claim.lease_until = claim.lease_until.min(deadline);
        }
        drop(claims);
        self.shared.wake.notify_one();
    }
}

async fn connect(State(s): SharedState, path: Result<Path<String>, PathRejection>, headers: HeaderMap) -> ApiResult {
    let Path(name) = path.map_err(path_error)?;
    check_session(&s, &name, &headers)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (id, coming_back) = {
        let mut workers = lock(&s.workers);
        let Some(worker) = workers.get_mut(&name) else {
            return Err(ApiError::unauthorized("session token"));
        };
        worker.connections += 1;
        worker.connection = Some(Connection { id: worker.connections, tx });
        worker.last_seen = Instant::now();
        let coming_back = std::mem::replace(&mut worker.session_connected, true);
        (worker.connections, coming_back)
    };
    {
        // What was offered to an earlier connection of this worker is offered again.
        let mut pending = lock(&s.pending);
        for offer in pending.offers.values_mut() {
            if offer.offered.as_ref().is_some_and(|(w, _)| *w == name) {
                offer.offered = None;
            }
        }
    }
    {
        // A worker that is back in the same session (its connection dropped) keeps its claims,
        // and hears again of cancellations asked for while it was away. A new session under the
        // same name may be a new process (the old one was killed): it renews nothing here, so
        // the claims it does not hold run out and are offered again, while those it does hold
        // (after a server restart) are renewed by its heartbeats.
        let deadline = Instant::now() + s.lease_timeout;
        let mut cancellations = Vec::new();
        for (id, claim) in lock(&s.claims).by_execution.iter_mut().filter(|(_, c)| c.worker == name) {
            if coming_back {
                claim.lease_until = claim.lease_until.max(deadline);
            }
            if claim.cancelling {
                cancellations.push(id.clone());
            }
        }
        if let Some(connection) = lock(&s.workers).get(&name).and_then(|w| w.connection.as_ref()) {
            for id in cancellations {
                let offer = Offer { execution_id: id, workflow_name: String::new() };
                let _ = connection.tx.send((protocol::EXECUTION_CANCELLED, offer));
            }
        }
    }
    tracing::info!(worker = %name, "worker connected");
    s.wake.notify_one();
    let guard = Disconnect { shared: s.clone(), name, id };
    let offers = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let (kind, offer) = rx.recv().await?;
        let data = serde_json::to_string(&offer).unwrap_or_default();
        Some((Ok::<_, Infallible>(SseEvent::default().event(kind).data(data)), (rx, guard)))
    });
    let mut stop = s.shutdown.subscribe();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    Ok(Sse::new(offers.take_until(Box::pin(stopped)))
        .keep_alive(KeepAlive::new().interval(WORKER_KEEP_ALIVE))
        .into_response())
}

fn workflow_source(workflow: &str, id: &str) -> Arc<str> {
    Arc::from(format!("{workflow}_{id}"))
}

fn last_seq(stored: &StoredExecution) -> u64 {
    stored.events.last().map_or(0, |e| e.seq())
}

/// The input of a resume scheduled but not yet begun (no `WORKFLOW_RESUMING` after it).
fn pending_resume(events: &[Event]) -> Option<Vec<u8>> {
    for e in events.iter().rev() {
        match e.kind() {
            EventType::WorkflowResumeScheduled => return Some(e.value_bytes().to_vec()),
            EventType::WorkflowResuming | EventType::WorkflowResumed | EventType::WorkflowPaused => return None,
            _ => {}
        }
    }
    None
}

fn msgpack_response<T: serde::Serialize>(value: &T) -> ApiResult {
    let bytes = crate::value::to_msgpack(value)?;
    Ok(([(header::CONTENT_TYPE, protocol::MSGPACK)], bytes).into_response())
}

async fn claim(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let Path((name, id)) = path.map_err(path_error)?;
    check_session(&s, &name, &headers)?;
    to_completion(claim_execution(s, name, id)).await
}

/// Claims execution `id` for worker `name`: the claim is stored, then remembered with its lease
/// (on a task of its own: see [`to_completion`]).
async fn claim_execution(s: Arc<Shared>, name: String, id: String) -> ApiResult {
    let _serial = s.claim_lock.lock().await;
    if let Some(holder) = lock(&s.claims).by_execution.get(&id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("execution `{id}` is already claimed by worker `{}`", holder.worker),
        ));
    }
    let Some(mut stored) = s.engine.load(&id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no execution `{id}`")));
    };
    let resumed = match stored.state {
        ExecutionState::Scheduled => false,
        ExecutionState::ResumeScheduled => true,
        state => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("execution `{id}` is {state}; only a scheduled execution can be claimed"),
            ));
        }
    };
    let registered = lock(&s.workers).get(&name).is_some_and(|w| w.workflows.contains(&stored.workflow_name));
    if !registered {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("worker `{name}` did not register workflow `{}`", stored.workflow_name),
        ));
    }
    let generation = stored.claim_generation + 1;
    let (kind, state) = if resumed {
        (EventType::WorkflowResumeClaimed, ExecutionState::ResumeClaimed)
    } else {
        (EventType::WorkflowClaimed, ExecutionState::Claimed)
    };
    let seq = last_seq(&stored) + 1;
    let event = Event::new(
        seq,
        kind,
        workflow_source(&stored.workflow_name, &id),
        stored.workflow_name.as_str(),
        crate::value::to_msgpack(&name)?,
        crate::event::now(),
    );
    let execution_id: Arc<str> = Arc::from(id.as_str());
    s.engine
        .store()
        .write(vec![
            Write::Claim { execution_id: execution_id.clone(), worker: Some(Arc::from(name.as_str())), generation },
            Write::Append { execution_id: execution_id.clone(), event: event.clone() },
            Write::SetState { execution_id, state, output: None, time: event.time() },
        ])
        .await?;
    lock(&s.claims).by_execution.insert(
        id.clone(),
        ClaimInfo {
            worker: name.clone(),
            generation,
            lease_until: Instant::now() + s.lease_timeout,
            last_seq: seq,
            cancelling: false,
        },
    );
    lock(&s.pending).offers.remove(&id);
    s.hub.publish(&id, std::slice::from_ref(&event));
    tracing::debug!(worker = %name, execution_id = %id, generation, "execution claimed");
    stored.events.push(event);
    stored.state = state;
    stored.claim_generation = generation;
    stored.worker = Some(name);
    let resume_input = if resumed { pending_resume(&stored.events).map(protocol::Blob) } else { None };
    msgpack_response(&ClaimResponse { generation, execution: WireExecution::from_stored(&stored), resume_input })
}

fn stale(name: &str, id: &str, generation: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "worker `{name}` no longer holds execution `{id}` under claim generation {generation}; stop running it"
        ),
    )
}

async fn checkpoint(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, id)) = path.map_err(path_error)?;
    check_session(&s, &name, &headers)?;
    let bytes = body_bytes(body)?;
    let checkpoint: Checkpoint = crate::value::from_msgpack(&bytes).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("not a MessagePack checkpoint: {}", e.message()))
    })?;
    let generation = checkpoint.generation;
    let (last, cancelling) = {
        let mut claims = lock(&s.claims);
        match claims.by_execution.get_mut(&id) {
            Some(c) if c.worker == name && c.generation == generation => {
                c.lease_until = Instant::now() + s.lease_timeout;
                (c.last_seq, c.cancelling)
            }
            _ => return Err(stale(&name, &id, generation)),
        }
    };
    // Every answer tells the worker whether a cancellation is waiting for it, so that one asked
    // for while its connection was down still reaches it.
    let answer = |seq: u64| Ok(axum::Json(json!({ "seq": seq, "cancelling": cancelling })).into_response());
    if checkpoint.writes.is_empty() {
        return answer(last);
    }
    let first_seq = checkpoint.writes.iter().find_map(|w| match w {
        WireWrite::Append { event } => Some(event.seq),
        _ => None,
    });
    if last > 0 && first_seq.is_some_and(|seq| seq <= last) {
        // Under one generation only this worker writes: events at or below the last stored
        // one are a resend of a checkpoint whose answer was lost. It is stored already.
        return answer(last);
    }
    let execution_id: Arc<str> = Arc::from(id.as_str());
    let mut writes = Vec::with_capacity(checkpoint.writes.len() + 1);
    writes.push(Write::Fence { execution_id: execution_id.clone(), generation });
    // What the execution's streams get, in the worker's order: events and progress.
    let mut items = Vec::new();
    let mut seq = last;
    let mut resting = false;
    for w in checkpoint.writes {
        let time = match &w {
            WireWrite::Append { event } => event.time,
            WireWrite::SetState { time, .. } | WireWrite::Progress { time, .. } => *time,
            WireWrite::Refused { .. } => 0,
        };
        if !(0..=MAX_TIME_MICROS).contains(&time) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid checkpoint: time {time} is outside the years 1970 to 9999"),
            ));
        }
        match w {
            WireWrite::SetState { state, .. }
                if cancelling && !state.parse::<ExecutionState>().is_ok_and(|s| s.is_terminal()) =>
            {
                // A cancelling execution only finishes: the worker learns of the cancellation
                // from this answer and records it.
                continue;
            }
            WireWrite::Progress { task_id, name, value, time } => {
                let event =
                    Event::new(0, EventType::TaskProgress, task_id, name, value.0, crate::event::from_micros(time));
                items.push(HubItem::Event(event));
                continue;
            }
            WireWrite::Refused { reason } => {
                items.push(HubItem::Refused(reason));
                continue;
            }
            _ => {}
        }
        let w = w.into_write(&execution_id).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid checkpoint write: {}", e.message()))
        })?;
        match &w {
            Write::Append { event, .. } => {
                seq = event.seq();
                items.push(HubItem::Event(event.clone()));
            }
            Write::SetState { state, .. } => resting = protocol::is_resting(*state),
            _ => {}
        }
        writes.push(w);
    }
    // Stored, then remembered and published on a task of its own (see `to_completion`), so
    // that the claim's last seq never falls behind the store.
    let seq = to_completion(async move {
        if writes.len() > 1
            && let Err(e) = s.engine.store().write(writes).await
        {
            return Err(match e.kind() {
                ErrorKind::Conflict => stale(&name, &id, generation),
                _ => e.into(),
            });
        }
        {
            let mut claims = lock(&s.claims);
            if let Some(c) = claims.by_execution.get_mut(&id).filter(|c| c.generation == generation) {
                c.last_seq = seq;
                if resting {
                    claims.by_execution.remove(&id);
                }
            }
        }
        s.hub.publish_items(&id, &items);
        Ok(seq)
    })
    .await?;
    answer(seq)
}

async fn progress(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, id)) = path.map_err(path_error)?;
    check_session(&s, &name, &headers)?;
    let report: protocol::ProgressReport = serde_json::from_value(json_body(body)?).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("expected {{\"task_id\", \"name\", \"value\"}}: {e}"))
    })?;
    let holds = lock(&s.claims).by_execution.get(&id).is_some_and(|c| c.worker == name);
    if !holds {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("worker `{name}` does not hold execution `{id}`")));
    }
    let value = protocol::json_to_msgpack(&report.value)?;
    let event = Event::new(0, EventType::TaskProgress, report.task_id, report.name, value, crate::event::now());
    s.hub.publish(&id, &[event]);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Waits until the hub shows the execution finished or paused; returns the reason a worker
/// refused a resume, if it did.
async fn wait_resting(mut rx: HubReceiver) -> Option<String> {
    while let Some(item) = rx.recv().await {
        match item {
            HubItem::Refused(reason) => return Some(reason),
            HubItem::Event(event) if protocol::state_after(event.kind()).is_some_and(protocol::is_resting) => {
                return None;
            }
            HubItem::Event(_) => {}
        }
    }
    None
}

/// Answers a run or resume of a remote execution in `mode`.
async fn respond(s: &Arc<Shared>, initial: Summary, rx: Option<HubReceiver>, mode: Mode, detailed: bool) -> ApiResult {
    let (name, id) = (initial.workflow_name.clone(), initial.execution_id.clone());
    match (mode, rx) {
        (Mode::Stream, Some(rx)) => Ok(sse(s.clone(), initial, Vec::new(), Source::Hub(rx))),
        (Mode::Sync, Some(rx)) => match super::api::unless_shutdown(s, wait_resting(rx)).await? {
            Some(reason) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason)),
            None => summary_response(s, &name, &id, detailed).await,
        },
        _ => summary_response(s, &name, &id, detailed).await,
    }
}

/// Schedules a new execution of a workflow that workers run.
pub(crate) async fn run_remote(
    s: &Arc<Shared>,
    name: &str,
    input: Value,
    encoded: Vec<u8>,
    mode: Mode,
    detailed: bool,
) -> ApiResult {
    let id = crate::driver::new_execution_id();
    let rx = (mode != Mode::Async).then(|| s.hub.subscribe(&id));
    let execution_id: Arc<str> = Arc::from(id.as_str());
    let encoded: Arc<[u8]> = encoded.into();
    let now = crate::event::now();
    let event = Event::new(1, EventType::WorkflowScheduled, workflow_source(name, &id), name, encoded.clone(), now);
    let writes = vec![
        Write::CreateExecution {
            id: execution_id.clone(),
            workflow_name: Arc::from(name),
            state: ExecutionState::Scheduled,
            input: encoded,
            parent_id: None,
            time: now,
        },
        Write::Append { execution_id, event: event.clone() },
    ];
    // Stored, then offered, on a task of its own (see `to_completion`).
    let (shared, scheduled, workflow) = (s.clone(), id.clone(), name.to_string());
    to_completion(async move {
        shared.engine.store().write(writes).await?;
        shared.hub.publish(&scheduled, std::slice::from_ref(&event));
        lock(&shared.pending).add(&scheduled, &workflow, false);
        shared.wake.notify_one();
        Ok(())
    })
    .await?;
    let initial = Summary {
        workflow_name: name.to_string(),
        execution_id: id,
        input,
        output: Value::Null,
        state: ExecutionState::Created,
        events: detailed.then(Vec::new),
    };
    respond(s, initial, rx, mode, detailed).await
}

/// Schedules the resume of a paused remote execution.
pub(crate) async fn resume_remote(
    s: &Arc<Shared>,
    before: StoredExecution,
    encoded: Vec<u8>,
    mode: Mode,
    detailed: bool,
) -> ApiResult {
    let id = before.id.clone();
    let rx = (mode != Mode::Async).then(|| s.hub.subscribe(&id));
    to_completion(schedule_resume(s.clone(), id.clone(), encoded)).await?;
    s.wake.notify_one();
    respond(s, summary_of(s, &before, detailed), rx, mode, detailed).await
}

/// Records the resume of paused execution `id` and offers it to the workers, on a task of its
/// own (see [`to_completion`]).
async fn schedule_resume(s: Arc<Shared>, id: String, encoded: Vec<u8>) -> ApiResult<()> {
    let _serial = s.claim_lock.lock().await;
    let Some(stored) = s.engine.load(&id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no execution `{id}`")));
    };
    if stored.state != ExecutionState::Paused {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("execution `{id}` is not paused (it is {}); only a paused execution can be resumed", stored.state),
        ));
    }
    let event = Event::new(
        last_seq(&stored) + 1,
        EventType::WorkflowResumeScheduled,
        workflow_source(&stored.workflow_name, &id),
        stored.workflow_name.as_str(),
        encoded,
        crate::event::now(),
    );
    let execution_id: Arc<str> = Arc::from(id.as_str());
    s.engine
        .store()
        .write(vec![
            Write::Append { execution_id: execution_id.clone(), event: event.clone() },
            Write::SetState { execution_id, state: ExecutionState::ResumeScheduled, output: None, time: event.time() },
        ])
        .await?;
    s.hub.publish(&id, std::slice::from_ref(&event));
    lock(&s.pending).add(&id, &stored.workflow_name, true);
    Ok(())
}

/// Cancels a remote execution: at once when no worker holds it, otherwise by telling the worker
/// (its state becomes `CANCELLING` until the worker records the end).
pub(crate) async fn cancel_remote(s: &Arc<Shared>, stored: StoredExecution, wait: bool) -> ApiResult<()> {
    let id = stored.id.clone();
    let rx = wait.then(|| s.hub.subscribe(&id));
    to_completion(start_cancel(s.clone(), id.clone())).await?;
    if let Some(rx) = rx {
        let mut stop = s.shutdown.subscribe();
        tokio::select! {
            _ = wait_resting(rx) => {}
            _ = stop.wait_for(|v| *v) => {}
        }
    }
    Ok(())
}

/// Cancels execution `id` at once if no worker holds it, or marks it `CANCELLING` and tells its
/// worker; on a task of its own (see [`to_completion`]).
async fn start_cancel(s: Arc<Shared>, id: String) -> ApiResult<()> {
    let _serial = s.claim_lock.lock().await;
    let stored = s.engine.load(&id).await?.ok_or_else(|| s.engine.not_found(&id))?;
    if stored.state.is_terminal() {
        return Err(crate::driver::already_finished(&id, stored.state).into());
    }
    let holder = lock(&s.claims).by_execution.get_mut(&id).map(|c| {
        c.cancelling = true;
        c.worker.clone()
    });
    let Some(worker) = holder else {
        finish_cancelled(&s, &stored).await?;
        lock(&s.pending).offers.remove(&id);
        return Ok(());
    };
    if stored.state != ExecutionState::Cancelling {
        s.engine
            .store()
            .write(vec![Write::SetState {
                execution_id: Arc::from(id.as_str()),
                state: ExecutionState::Cancelling,
                output: None,
                time: crate::event::now(),
            }])
            .await?;
    }
    let offer = Offer { execution_id: id.clone(), workflow_name: stored.workflow_name.clone() };
    if let Some(connection) = lock(&s.workers).get(&worker).and_then(|w| w.connection.as_ref()) {
        let _ = connection.tx.send((protocol::EXECUTION_CANCELLED, offer));
    }
    Ok(())
}

/// Records the cancellation of an execution no worker runs. The caller holds `claim_lock`.
async fn finish_cancelled(s: &Shared, stored: &StoredExecution) -> crate::Result<()> {
    let id: Arc<str> = Arc::from(stored.id.as_str());
    let source = workflow_source(&stored.workflow_name, &stored.id);
    let name = stored.workflow_name.as_str();
    let error = Error::new(ErrorKind::Cancelled, format!("execution `{}` was cancelled", stored.id));
    let recorded: Arc<[u8]> = crate::value::to_msgpack(&error)?.into();
    let now = crate::event::now();
    let mut seq = last_seq(stored);
    let mut events = Vec::with_capacity(2);
    if !stored.events.iter().any(|e| e.kind() == EventType::WorkflowCancelling) {
        seq += 1;
        events.push(Event::new(seq, EventType::WorkflowCancelling, source.clone(), name, crate::run::NIL, now));
    }
    events.push(Event::new(seq + 1, EventType::WorkflowCancelled, source, name, recorded.clone(), now));
    let mut writes =
        vec![Write::Claim { execution_id: id.clone(), worker: None, generation: stored.claim_generation + 1 }];
    writes.extend(events.iter().map(|e| Write::Append { execution_id: id.clone(), event: e.clone() }));
    writes.push(Write::SetState {
        execution_id: id,
        state: ExecutionState::Cancelled,
        output: Some(recorded),
        time: now,
    });
    s.engine.store().write(writes).await?;
    lock(&s.claims).by_execution.remove(&stored.id);
    s.hub.publish(&stored.id, &events);
    tracing::info!(execution_id = %stored.id, "execution cancelled");
    Ok(())
}

/// Takes an execution back from the worker that held it and schedules it again (or finishes
/// its cancellation). The caller holds `claim_lock`.
///
/// The claim is dropped only once the execution is rescheduled (or finished): if storage
/// refuses, the next sweep tries again.
async fn take_back(s: &Shared, id: &str) -> crate::Result<()> {
    let Some(stored) = s.engine.load(id).await? else {
        lock(&s.claims).by_execution.remove(id);
        return Ok(());
    };
    if protocol::is_resting(stored.state) {
        lock(&s.claims).by_execution.remove(id);
        return Ok(());
    }
    if stored.state == ExecutionState::Cancelling {
        return finish_cancelled(s, &stored).await;
    }
    let resume = pending_resume(&stored.events);
    let (kind, value, state) = match &resume {
        Some(input) => (EventType::WorkflowResumeScheduled, input.clone(), ExecutionState::ResumeScheduled),
        None => (EventType::WorkflowScheduled, stored.input.clone(), ExecutionState::Scheduled),
    };
    let event = Event::new(
        last_seq(&stored) + 1,
        kind,
        workflow_source(&stored.workflow_name, id),
        stored.workflow_name.as_str(),
        value,
        crate::event::now(),
    );
    let execution_id: Arc<str> = Arc::from(id);
    s.engine
        .store()
        .write(vec![
            Write::Claim { execution_id: execution_id.clone(), worker: None, generation: stored.claim_generation + 1 },
            Write::Append { execution_id: execution_id.clone(), event: event.clone() },
            Write::SetState { execution_id, state, output: None, time: event.time() },
        ])
        .await?;
    lock(&s.claims).by_execution.remove(id);
    s.hub.publish(id, std::slice::from_ref(&event));
    lock(&s.pending).add(id, &stored.workflow_name, resume.is_some());
    tracing::warn!(
        execution_id = %id,
        worker = stored.worker.as_deref().unwrap_or("?"),
        "a worker lost its claim; the execution is offered again"
    );
    Ok(())
}

/// At start-up: scheduled executions of remote workflows are offered again, and claims found
/// in storage get a fresh lease (their worker may still be running them).
pub(crate) async fn restore(s: &Arc<Shared>) -> crate::Result<()> {
    let store = s.engine.store().clone();
    let states = [
        ExecutionState::Scheduled,
        ExecutionState::ResumeScheduled,
        ExecutionState::Claimed,
        ExecutionState::ResumeClaimed,
        ExecutionState::Running,
        ExecutionState::Resuming,
        ExecutionState::Cancelling,
    ];
    let rows = tokio::task::spawn_blocking(move || store.list(&states))
        .await
        .map_err(|e| Error::new(ErrorKind::Storage, format!("listing executions failed: {e}")))??;
    for row in rows {
        if s.local.contains_key(row.workflow_name.as_str()) {
            continue;
        }
        match (row.state, row.worker) {
            (ExecutionState::Scheduled | ExecutionState::ResumeScheduled, _) => {
                lock(&s.pending).add(&row.id, &row.workflow_name, row.state == ExecutionState::ResumeScheduled);
            }
            (state, Some(worker)) => {
                lock(&s.claims).by_execution.insert(
                    row.id,
                    ClaimInfo {
                        worker,
                        generation: row.claim_generation,
                        lease_until: Instant::now() + s.lease_timeout,
                        last_seq: 0,
                        cancelling: state == ExecutionState::Cancelling,
                    },
                );
            }
            // Never claimed by a worker: run by an engine of another process on the same
            // database (or a child of an in-process run), not the server's to take.
            (_, None) => {}
        }
    }
    Ok(())
}

/// Offers pending executions to connected workers and takes back expired claims, until the
/// server stops.
pub(crate) async fn dispatcher(s: Arc<Shared>) {
    let mut stop = s.shutdown.subscribe();
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        sweep(&s).await;
        offer(&s);
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(64) {
            s.hub.prune();
        }
    }
}

/// Takes back every claim whose lease expired.
async fn sweep(s: &Shared) {
    let now = Instant::now();
    expire_sessions(s, now);
    let expired: Vec<(String, u64)> = lock(&s.claims)
        .by_execution
        .iter()
        .filter(|(_, c)| c.lease_until <= now)
        .map(|(id, c)| (id.clone(), c.generation))
        .collect();
    if expired.is_empty() {
        return;
    }
    let _serial = s.claim_lock.lock().await;
    for (id, generation) in expired {
        let still = lock(&s.claims)
            .by_execution
            .get(&id)
            .is_some_and(|c| c.generation == generation && c.lease_until <= Instant::now());
        if still && let Err(e) = take_back(s, &id).await {
            tracing::error!(execution_id = %id, error = %e, "cannot take back an expired claim");
        }
    }
}

/// Forgets the workers that have no event stream open, hold no claim and have not been heard
/// from for two leases: their session tokens are refused from then on (401), and a worker that
/// comes back registers again.
fn expire_sessions(s: &Shared, now: Instant) {
    let idle_limit = s.lease_timeout.saturating_mul(2);
    let expired: Vec<String> = {
        // The order of `offer`: workers, then claims.
        let mut workers = lock(&s.workers);
        let claims = lock(&s.claims);
        let expired: Vec<String> = workers
            .iter()
            .filter(|(name, w)| {
                w.connection.as_ref().is_none_or(|c| c.tx.is_closed())
                    && now.saturating_duration_since(w.last_seen) >= idle_limit
                    && !claims.by_execution.values().any(|c| c.worker == **name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &expired {
            workers.remove(name);
        }
        expired
    };
    if expired.is_empty() {
        return;
    }
    let mut catalog = lock(&s.catalog);
    for name in &expired {
        for entry in catalog.values_mut() {
            entry.workers.remove(name);
        }
        tracing::info!(worker = %name, "worker session expired: not heard from for two leases");
    }
}

/// Offers each pending execution to the connected worker with the least work that runs its
/// workflow.
fn offer(s: &Shared) {
    let workers = lock(&s.workers);
    let claims = lock(&s.claims);
    let mut load: HashMap<&str, usize> = HashMap::new();
    for c in claims.by_execution.values() {
        *load.entry(c.worker.as_str()).or_default() += 1;
    }
    let mut pending = lock(&s.pending);
    let now = Instant::now();
    let mut ids: Vec<&String> = pending.offers.keys().collect();
    ids.sort();
    let ids: Vec<String> = ids.into_iter().cloned().collect();
    for id in ids {
        let Some(offer) = pending.offers.get_mut(&id) else { continue };
        if offer.offered.as_ref().is_some_and(|(_, at)| now.duration_since(*at) < REOFFER) {
            continue;
        }
        let previous = offer.offered.as_ref().map(|(w, _)| w.as_str());
        let chosen = workers
            .iter()
            .filter(|(_, w)| w.connection.is_some() && w.workflows.contains(&offer.workflow))
            .min_by_key(|(name, _)| {
                (load.get(name.as_str()).copied().unwrap_or(0), Some(name.as_str()) == previous, name.as_str())
            })
            .map(|(name, w)| (name.as_str(), w));
        let Some((name, worker)) = chosen else { continue };
        let kind = if offer.resumed { protocol::EXECUTION_RESUMED } else { protocol::EXECUTION_SCHEDULED };
        let message = Offer { execution_id: id.clone(), workflow_name: offer.workflow.clone() };
        if let Some(connection) = &worker.connection
            && connection.tx.send((kind, message)).is_ok()
        {
            *load.entry(name).or_default() += 1;
            offer.offered = Some((name.to_string(), now));
        }
    }
}
