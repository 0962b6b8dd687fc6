//! Checkpoints: what a worker recorded under its claim, stored behind the claim's fence, one
//! execution per request (`POST /workers/{name}/checkpoint/{id}`) or several
//! (`POST /workers/{name}/checkpoints`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use super::hub::HubItem;
use super::respond::{ApiError, ApiResult, body_bytes, path_error, to_completion};
use super::state::{Shared, SharedState, lock};
use super::workers::{adopt, check_session, stale};
use crate::error::ErrorKind;
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::{
    self, BatchAnswer, BatchOutcome, Checkpoint, CheckpointAnswer, CheckpointBatch, MAX_BATCH, WireWrite,
};
use crate::store::Write;

/// The end of year 9999 in microseconds since the Unix epoch: later event times are refused.
const MAX_TIME_MICROS: i64 = 253_402_300_799_999_999;

/// The checkpoint endpoints.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/workers/{name}/checkpoint/{execution_id}", post(checkpoint))
        .route("/workers/{name}/checkpoints", post(checkpoints))
}

/// `POST /workers/{name}/checkpoint/{execution_id}`: stores what a worker recorded under its
/// claim, renews the claim's lease and answers with the last event stored and whether a
/// cancellation is waiting.
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
    counted(&s, 1);
    let answer = store_one(&s, name, id, checkpoint).await?;
    Ok(axum::Json(answer).into_response())
}

/// `POST /workers/{name}/checkpoints`: the checkpoints of several executions in one request
/// (MessagePack both ways). Each is stored, or refused, as if it came alone, all at once (so
/// that they share the store's commits); the answer holds one outcome per checkpoint, in order.
async fn checkpoints(
    State(s): SharedState,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path(name) = path.map_err(path_error)?;
    check_session(&s, &name, &headers)?;
    let bytes = body_bytes(body)?;
    let batch: CheckpointBatch = crate::value::from_msgpack(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a MessagePack batch of checkpoints: {}", e.message()),
        )
    })?;
    if batch.items.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a batch holds at most {MAX_BATCH} checkpoints, not {}", batch.items.len()),
        ));
    }
    // One checkpoint per execution: two of the same one would race each other.
    let mut ids: Vec<&str> = batch.items.iter().map(|i| i.execution_id.as_str()).collect();
    ids.sort_unstable();
    if let Some(twice) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("execution `{}` has two checkpoints in one batch", twice[0]),
        ));
    }
    counted(&s, batch.items.len());
    let stores = batch.items.into_iter().map(|item| store_one(&s, name.clone(), item.execution_id, item.checkpoint));
    let items = futures::future::join_all(stores)
        .await
        .into_iter()
        .map(|outcome| match outcome {
            Ok(answer) => BatchOutcome::stored(answer),
            Err(e) => BatchOutcome::refused(e.status.as_u16(), e.detail),
        })
        .collect();
    let body = crate::value::to_msgpack(&BatchAnswer { items })?;
    Ok(([(header::CONTENT_TYPE, protocol::MSGPACK)], body).into_response())
}

/// Counts a request carrying `n` checkpoints (see `GET /metrics`).
fn counted(s: &Shared, n: usize) {
    s.checkpoints.received.fetch_add(n as u64, Ordering::Relaxed);
    s.checkpoints.requests.fetch_add(1, Ordering::Relaxed);
}

/// Stores checkpoint `checkpoint` of worker `name` for execution `id`.
async fn store_one(s: &Arc<Shared>, name: String, id: String, checkpoint: Checkpoint) -> ApiResult<CheckpointAnswer> {
    let generation = checkpoint.generation;
    let (last, cancelling) = match held(s, &name, &id, generation) {
        Some(Some(claim)) => claim,
        Some(None) => return Err(stale(&name, &id, generation)),
        None => {
            let (shared, worker, execution) = (s.clone(), name.clone(), id.clone());
            to_completion(async move {
                let _serial = shared.claim_lock.lock().await;
                if held(&shared, &worker, &execution, generation).is_some() {
                    return Ok(());
                }
                adopt(&shared, &worker, &execution, generation).await
            })
            .await?;
            held(s, &name, &id, generation).flatten().ok_or_else(|| stale(&name, &id, generation))?
        }
    };
    // Every answer tells the worker whether a cancellation is waiting for it, so that one asked
    // for while its connection was down still reaches it.
    let answer = |seq: u64| Ok(CheckpointAnswer { seq, cancelling });
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
    let received = Received::of(checkpoint.writes, &execution_id, generation, last, cancelling)?;
    // Stored, then remembered and published on a task of its own (see `to_completion`), so
    // that the claim's last seq never falls behind the store.
    let seq = to_completion(store_checkpoint(s.clone(), name, id, generation, received)).await?;
    answer(seq)
}

/// Whether worker `name` holds execution `id` under `generation` through this server (its lease
/// then renewed): `Some(Some((last seq, cancelling)))` if it does, `Some(None)` if someone else
/// does, `None` if this server knows of no claim of `id`.
#[allow(clippy::option_option)]
fn held(s: &Shared, name: &str, id: &str, generation: u64) -> Option<Option<(u64, bool)>> {
    let mut claims = lock(&s.claims);
    match claims.by_execution.get_mut(id) {
        Some(c) if c.worker == name && c.generation == generation => {
            c.lease_until = Instant::now() + s.lease_timeout;
            Some(Some((c.last_seq, c.cancelling)))
        }
        Some(_) => Some(None),
        None => None,
    }
}

/// What the writes of a checkpoint stand for.
struct Received {
    /// The engine writes to store, behind the claim's fence.
    writes: Vec<Write>,
    /// What the execution's streams get, in the worker's order: events and progress.
    items: Vec<HubItem>,
    /// The last event stored once the writes are.
    seq: u64,
    /// Whether the execution finished or paused.
    resting: bool,
}

impl Received {
    /// Reads the writes of a checkpoint under claim `generation`, whose last stored event is
    /// `last`; a state other than an end is dropped while the execution is `cancelling`.
    fn of(
        wire: Vec<WireWrite>,
        execution_id: &Arc<str>,
        generation: u64,
        last: u64,
        cancelling: bool,
    ) -> ApiResult<Received> {
        let mut writes = Vec::with_capacity(wire.len() + 1);
        writes.push(Write::Fence { execution_id: execution_id.clone(), generation });
        let mut received = Received { writes, items: Vec::new(), seq: last, resting: false };
        for w in wire {
            check_time(&w)?;
            match w {
                WireWrite::SetState { state, .. }
                    if cancelling && !state.parse::<ExecutionState>().is_ok_and(|s| s.is_terminal()) =>
                {
                    // A cancelling execution only finishes: the worker learns of the
                    // cancellation from this answer and records it.
                    continue;
                }
                WireWrite::Progress { task_id, name, value, time } => {
                    let time = crate::event::from_micros(time);
                    let event = Event::new(0, EventType::TaskProgress, task_id, name, value.0, time);
                    received.items.push(HubItem::Event(event));
                    continue;
                }
                WireWrite::Refused { reason } => {
                    received.items.push(HubItem::Refused(reason));
                    continue;
                }
                _ => {}
            }
            let w = w.into_write(execution_id).map_err(|e| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid checkpoint write: {}", e.message()))
            })?;
            match &w {
                Write::Append { event, .. } => {
                    received.seq = event.seq();
                    received.items.push(HubItem::Event(event.clone()));
                }
                Write::SetState { state, .. } => received.resting = protocol::is_resting(*state),
                _ => {}
            }
            received.writes.push(w);
        }
        Ok(received)
    }
}

/// Refuses a write whose time is before 1970 or after the year 9999.
fn check_time(w: &WireWrite) -> ApiResult<()> {
    let time = match w {
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
    Ok(())
}

/// Stores what a checkpoint of worker `name` received, then moves the claim's last seq (and
/// drops the claim of an execution that finished or paused) and publishes to the execution's
/// streams; returns the last event stored. Run through [`to_completion`].
async fn store_checkpoint(
    s: Arc<Shared>,
    name: String,
    id: String,
    generation: u64,
    received: Received,
) -> ApiResult<u64> {
    let Received { writes, items, seq, mut resting } = received;
    // Told before the writes are queued: other servers' streams get the progress before the
    // events that follow it.
    super::cluster::share_progress(&s, &id, &items);
    if writes.len() > 1 {
        // A state change may be refused because the execution was cancelled through another
        // server since the claim was read: kept to try again without it.
        let moves = |w: &Write| matches!(w, Write::SetState { state, .. } if !state.is_terminal());
        let again = writes.iter().any(moves).then(|| writes.clone());
        let mut stored = s.engine.store().write(writes).await;
        if let Some(mut writes) = again
            && stored.as_ref().is_err_and(|e| e.kind() == ErrorKind::InvalidState)
            && s.engine.execution_state(&id).await? == Some(ExecutionState::Cancelling)
        {
            // Cancelled through another server since the claim was read: the worker hears of it
            // from this answer; what it recorded is stored, but for a state other than an end.
            if let Some(c) = lock(&s.claims).by_execution.get_mut(&id).filter(|c| c.generation == generation) {
                c.cancelling = true;
            }
            writes.retain(|w| !moves(w));
            resting = writes.iter().any(|w| matches!(w, Write::SetState { state, .. } if protocol::is_resting(*state)));
            stored = s.engine.store().write(writes).await;
        }
        if let Err(e) = stored {
            return Err(match e.kind() {
                ErrorKind::Conflict => {
                    // The fence refused it: this claim is over, whoever holds the execution now.
                    let mut claims = lock(&s.claims);
                    if claims.by_execution.get(&id).is_some_and(|c| c.generation == generation) {
                        claims.by_execution.remove(&id);
                    }
                    stale(&name, &id, generation)
                }
                _ => e.into(),
            });
        }
    }
    {
        let mut claims = lock(&s.claims);
        if let Some(c) = claims.by_execution.get_mut(&id).filter(|c| c.generation == generation) {
            c.last_seq = seq;
            if resting {
                claims.by_execution.remove(&id);
                // The worker has room for another execution.
                s.wake.notify_one();
            }
        }
    }
    super::metrics::observe(&s, &id, &items);
    s.hub.publish_items(&id, &items);
    Ok(seq)
}
