//! The worker endpoints: registration with the bootstrap token, the SSE connection that offers
//! a worker executions, claims with generations and leases, checkpoints and progress, each
//! checked against the worker's session token.

use std::collections::BTreeSet;
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
use tokio::sync::mpsc;

use super::auth::{Token, bearer, random_token};
use super::dispatch::{last_seq, pending_resume, workflow_source};
use super::hub::HubItem;
use super::respond::{ApiError, ApiResult, json_body, path_error, to_completion};
use super::state::{CatalogEntry, ClaimInfo, Connection, Shared, SharedState, WorkerEntry, lock};
use crate::error::ErrorKind;
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::{self, ClaimResponse, Offer, Registered, Registration, WireExecution};
use crate::store::{LeaseMode, Write};

/// How long a disconnected worker keeps its claims, to allow for a quick reconnect.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// How often a worker's connection gets a keep-alive: a vanished worker is noticed when one
/// cannot be written.
const WORKER_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The worker endpoints.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/workers/register", post(register))
        .route("/workers/{name}/connect", get(connect))
        .route("/workers/{name}/claim/{execution_id}", post(claim))
        .route("/workers/{name}/progress/{execution_id}", post(progress))
        .route("/workers/{name}/messages/{execution_id}/{topic}/{index}", get(message))
}

/// 1 to 200 characters, no whitespace or control characters.
fn valid_workflow_name(name: &str) -> bool {
    (1..=200).contains(&name.chars().count()) && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
fn valid_worker_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `POST /workers/register`: a worker (bootstrap token) registers its workflows and gets a
/// session token; its workflows join the catalog.
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
            capacity: None,
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
        entry.capacity = registration.max_concurrency.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        tracing::info!(
            worker = %name,
            workflows = ?entry.workflows,
            cpus = entry.resources.cpu_count,
            memory_bytes = entry.resources.memory_total_bytes,
            gpus = entry.resources.gpus.len(),
            "worker registered"
        );
    }
    // The schedules the worker's workflows declare, created or brought up to date before the
    // workflows are in the catalog.
    for w in &registration.workflows {
        let Some(declared) = &w.schedule else { continue };
        if let Err(e) = super::schedules::declare(&s, &w.name, declared).await {
            tracing::warn!(worker = %name, workflow = %w.name, error = %e, "a declared schedule could not be stored");
        }
    }
    {
        let mut catalog = lock(&s.catalog);
        for entry in catalog.values_mut() {
            entry.workers.remove(&name);
        }
        for w in &registration.workflows {
            let entry = catalog.entry(w.name.clone()).or_insert_with(|| CatalogEntry {
                version: w.version,
                versions: BTreeSet::new(),
                in_process: false,
                workers: BTreeSet::new(),
                max_concurrency: None,
            });
            entry.max_concurrency = w.max_concurrency.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            entry.version = entry.version.max(w.version);
            entry.versions.insert(w.version);
            entry.workers.insert(name.clone());
        }
    }
    if s.shared_store {
        let workflows = registration.workflows.iter().map(|w| (w.name.clone(), w.version)).collect();
        super::cluster::share_catalog(&s, workflows).await?;
    }
    s.wake.notify_one();
    let lease_timeout_ms = u64::try_from(s.lease_timeout.as_millis()).unwrap_or(u64::MAX);
    Ok(axum::Json(Registered { name, session_token, lease_timeout_ms }).into_response())
}

/// Checks the session token of worker `name`.
pub(super) fn check_session(s: &Shared, name: &str, headers: &HeaderMap) -> ApiResult<()> {
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

/// `GET /workers/{name}/connect`: the SSE stream of offers and cancellations for a worker;
/// while it is open the worker is connected.
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

/// A MessagePack answer.
fn msgpack_response<T: serde::Serialize>(value: &T) -> ApiResult {
    let bytes = crate::value::to_msgpack(value)?;
    Ok(([(header::CONTENT_TYPE, protocol::MSGPACK)], bytes).into_response())
}

/// `POST /workers/{name}/claim/{execution_id}`: a worker claims an execution it was offered.
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
            lock(&s.pending).offers.remove(&id);
            s.wake.notify_one();
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
    let now = Instant::now();
    let claimed = s
        .engine
        .store()
        .write(vec![
            Write::Claim { execution_id: execution_id.clone(), worker: Some(Arc::from(name.as_str())), generation },
            lease(&s, &execution_id),
            Write::Append { execution_id: execution_id.clone(), event: event.clone() },
            Write::SetState { execution_id, state, output: None, time: event.time() },
        ])
        .await;
    if let Err(e) = claimed {
        // Claimed, finished or removed meanwhile: no longer to be offered. Any other error
        // (storage busy, say) leaves the offer, made again later.
        if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::InvalidState | ErrorKind::NotFound) {
            lock(&s.pending).offers.remove(&id);
            s.wake.notify_one();
        }
        return Err(match e.kind() {
            // Claimed through another server on the database since it was read.
            ErrorKind::Conflict => {
                ApiError::new(StatusCode::CONFLICT, format!("execution `{id}` was claimed by another worker"))
            }
            _ => e.into(),
        });
    }
    lock(&s.claims).by_execution.insert(
        id.clone(),
        ClaimInfo {
            worker: name.clone(),
            generation,
            lease_until: now + s.lease_timeout,
            stored_until: now + s.lease_timeout,
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
    let (execution, traceparent) = (WireExecution::from_stored(&stored), super::trace::claimed(&s, &id));
    msgpack_response(&ClaimResponse { generation, execution, resume_input, traceparent })
}

/// The lease this server stores with a claim it answers for: other servers on the database take
/// the execution back once it runs out.
fn lease(s: &Shared, execution_id: &Arc<str>) -> Write {
    Write::Lease {
        execution_id: execution_id.clone(),
        owner: Arc::from(s.engine.owner()),
        until: std::time::SystemTime::now() + s.lease_timeout,
        mode: LeaseMode::Own,
    }
}

/// Takes up a claim this server does not know of, from the checkpoint of the worker holding it:
/// the worker held it through this server before it restarted, or through another server on the
/// database that it left. The claim is taken up only if storage says the worker holds the
/// execution under `generation` and it has not finished; the lease stored with it is this
/// server's from then on. The caller holds `claim_lock`.
pub(super) async fn adopt(s: &Shared, name: &str, id: &str, generation: u64) -> ApiResult<()> {
    let stored = s.engine.load(id).await?;
    let Some(stored) = stored.filter(|e| {
        e.worker.as_deref() == Some(name) && e.claim_generation == generation && !protocol::is_resting(e.state)
    }) else {
        return Err(stale(name, id, generation));
    };
    let execution_id: Arc<str> = Arc::from(id);
    s.engine
        .store()
        .write(vec![Write::Fence { execution_id: execution_id.clone(), generation }, lease(s, &execution_id)])
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Conflict => stale(name, id, generation),
            _ => e.into(),
        })?;
    let now = Instant::now();
    lock(&s.claims).by_execution.insert(
        id.to_string(),
        ClaimInfo {
            worker: name.to_string(),
            generation,
            lease_until: now + s.lease_timeout,
            stored_until: now + s.lease_timeout,
            last_seq: last_seq(&stored),
            cancelling: stored.state == ExecutionState::Cancelling,
        },
    );
    tracing::info!(worker = %name, execution_id = %id, generation, "took up the claim of a returning worker");
    Ok(())
}

/// 409: the worker no longer holds the execution under this generation.
pub(super) fn stale(name: &str, id: &str, generation: u64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "worker `{name}` no longer holds execution `{id}` under claim generation {generation}; stop running it"
        ),
    )
}

/// `POST /workers/{name}/progress/{execution_id}`: progress of a task, passed on to the
/// execution's streams.
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
    let items = [HubItem::Event(event)];
    s.hub.publish_items(&id, &items);
    super::cluster::share_progress(&s, &id, &items);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /workers/{name}/messages/{execution_id}/{topic}/{index}`: the `index`-th message on
/// `topic` for an execution the worker holds, as MessagePack (`flux::recv` in a workflow the
/// worker runs), or 204 when there is none yet.
async fn message(
    State(s): SharedState,
    path: Result<Path<(String, String, String, u64)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let Path((name, id, topic, index)) = path.map_err(path_error)?;
    check_session(&s, &name, &headers)?;
    let holds = lock(&s.claims).by_execution.get(&id).is_some_and(|c| c.worker == name);
    if !holds {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("worker `{name}` does not hold execution `{id}`")));
    }
    let store = s.engine.store().clone();
    let found = tokio::task::spawn_blocking(move || store.message_get(&id, &topic, index))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("storage task failed: {e}")))??;
    Ok(match found {
        Some(bytes) => ([(header::CONTENT_TYPE, protocol::MSGPACK)], bytes).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
