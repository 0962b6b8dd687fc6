//! Handing executions to remote workers: runs, resumes and cancellations of the workflows
//! workers run (scheduled here, then offered), the dispatcher that offers pending executions to
//! the connected worker with the least work and takes back the claims of workers that went
//! silent, and the claims restored from storage when the server starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;

use super::hub::{HubItem, HubReceiver};
use super::respond::{ApiError, ApiResult, Mode, summary_of, summary_response, to_completion, unless_shutdown};
use super::state::{Shared, lock};
use super::stream::{Source, sse};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::{self, Offer, Summary};
use crate::store::{ExecutionRow, LeaseMode, StoredExecution, Write};

/// How long an offer waits to be claimed before it is made again (perhaps to another worker).
const REOFFER: Duration = Duration::from_secs(3);

/// How often the dispatcher looks at leases and offers without being woken.
const TICK: Duration = Duration::from_millis(250);

/// How long an execution another server scheduled is left to that server's workers before this
/// one offers it too.
pub(crate) const FOREIGN_GRACE: Duration = Duration::from_millis(100);

/// The source id of an execution's workflow events: `{workflow}_{id}`.
pub(crate) fn workflow_source(workflow: &str, id: &str) -> Arc<str> {
    Arc::from(format!("{workflow}_{id}"))
}

/// The seq of the last event stored for an execution (0 for none).
pub(crate) fn last_seq(stored: &StoredExecution) -> u64 {
    stored.events.last().map_or(0, |e| e.seq())
}

/// The input of a resume scheduled but not yet begun (no `WORKFLOW_RESUMING` after it).
pub(crate) fn pending_resume(events: &[Event]) -> Option<Vec<u8>> {
    for e in events.iter().rev() {
        match e.kind() {
            EventType::WorkflowResumeScheduled => return Some(e.value_bytes().to_vec()),
            EventType::WorkflowResuming | EventType::WorkflowResumed | EventType::WorkflowPaused => return None,
            _ => {}
        }
    }
    None
}

/// Waits until the hub shows the execution finished or paused; returns the reason a worker
/// refused a resume, if it did.
pub(crate) async fn wait_resting(mut rx: HubReceiver) -> Option<String> {
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
pub(crate) async fn answer_remote(
    s: &Arc<Shared>,
    initial: Summary,
    rx: Option<HubReceiver>,
    mode: Mode,
    detailed: bool,
) -> ApiResult {
    let (name, id) = (initial.workflow_name.clone(), initial.execution_id.clone());
    match (mode, rx) {
        (Mode::Stream, Some(rx)) => Ok(sse(s.clone(), initial, Vec::new(), Source::Hub(rx))),
        (Mode::Sync, Some(rx)) => match unless_shutdown(s, wait_resting(rx)).await? {
            Some(reason) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason)),
            None => summary_response(s, &name, &id, detailed).await,
        },
        _ => summary_response(s, &name, &id, detailed).await,
    }
}

/// Stores a new execution `id` of workflow `name`, which workers run, in state `SCHEDULED`,
/// and offers it to them. An execution of this id that exists is refused
/// ([`crate::ErrorKind::Conflict`]).
pub(crate) async fn schedule_remote(s: &Shared, name: &str, id: &str, encoded: Vec<u8>) -> crate::Result<()> {
    store_remote(s, name, id, encoded, false).await?;
    lock(&s.pending).add(id, name, false);
    s.wake.notify_one();
    Ok(())
}

/// Stores a new execution `id` of workflow `name`, which workers run, in state `SCHEDULED`
/// (not offered to them yet); `held` (in a queue of this server): leased to this server, so
/// that no server offers it while the lease is renewed (see [`find_scheduled`]).
pub(crate) async fn store_remote(s: &Shared, name: &str, id: &str, encoded: Vec<u8>, held: bool) -> crate::Result<()> {
    let execution_id: Arc<str> = Arc::from(id);
    let encoded: Arc<[u8]> = encoded.into();
    let now = crate::event::now();
    let event = Event::new(1, EventType::WorkflowScheduled, workflow_source(name, id), name, encoded.clone(), now);
    // A workflow workers run is defined by what they registered: the catalog keeps its version.
    let version = lock(&s.catalog).get(name).map_or(1, |entry| entry.version);
    let writes = vec![
        Write::CreateExecution {
            id: execution_id.clone(),
            workflow_name: Arc::from(name),
            state: ExecutionState::Scheduled,
            input: encoded,
            parent_id: None,
            version,
            time: now,
        },
        Write::Append { execution_id: execution_id.clone(), event: event.clone() },
    ];
    let writes = match held {
        true => writes.into_iter().chain([s.engine.lease_write(execution_id, LeaseMode::Own)]).collect(),
        false => writes,
    };
    s.engine.store().write(writes).await?;
    s.hub.publish(id, std::slice::from_ref(&event));
    Ok(())
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
    let rx = (mode != Mode::Async).then(|| s.hub.subscribe(&id, last_seq(&before)));
    to_completion(schedule_resume(s.clone(), id.clone(), encoded)).await?;
    s.wake.notify_one();
    answer_remote(s, summary_of(s, &before, detailed), rx, mode, detailed).await
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
    let rx = wait.then(|| s.hub.subscribe(&id, last_seq(&stored)));
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
///
/// A worker may hold it through this server or another one on the same database (or through
/// this one before it restarted): the server that hears from the worker tells it, and if none
/// does before the claim's lease runs out, the execution is cancelled then.
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
    // A paused or scheduled execution keeps the name of its last worker, who no longer holds it.
    let held_elsewhere = stored.worker.is_some() && HELD.contains(&stored.state);
    if holder.is_none() && !held_elsewhere {
        finish_cancelled(&s, &stored).await?;
        lock(&s.pending).offers.remove(&id);
        return Ok(());
    }
    if stored.state != ExecutionState::Cancelling {
        s.engine
            .store()
            .write(vec![Write::set_state(Arc::from(id.as_str()), ExecutionState::Cancelling, None)])
            .await?;
    }
    if let Some(worker) = holder {
        tell_cancelled(&s, &worker, &id, &stored.workflow_name);
    }
    Ok(())
}

/// Tells `worker`, if connected, that execution `id` is to be cancelled.
pub(crate) fn tell_cancelled(s: &Shared, worker: &str, id: &str, workflow: &str) {
    let offer = Offer { execution_id: id.to_string(), workflow_name: workflow.to_string() };
    if let Some(connection) = lock(&s.workers).get(worker).and_then(|w| w.connection.as_ref()) {
        let _ = connection.tx.send((protocol::EXECUTION_CANCELLED, offer));
    }
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

/// Forgets this server's claim of `id` at `generation`: the claim moved on without it.
fn forget_claim(s: &Shared, id: &str, generation: u64) {
    let mut claims = lock(&s.claims);
    if claims.by_execution.get(id).is_some_and(|c| c.generation == generation) {
        claims.by_execution.remove(id);
        tracing::info!(execution_id = %id, "another server answers for this claim now");
    }
}

/// Whose claim [`take_back`] takes back.
#[derive(Clone, Copy)]
enum Whose {
    /// This server's claim at this generation, whose worker went silent: taken back only while
    /// the stored lease is still this server's (another server may have taken the claim up for
    /// the worker, which then speaks to it).
    Mine(u64),
    /// A claim another server answered for, seen in storage at this generation with its lease
    /// run out.
    Theirs(u64),
}

/// Takes an execution back from the worker that held it and schedules it again (or finishes
/// its cancellation). The caller holds `claim_lock`. Nothing is done if the claim moved on from
/// the generation `whose` names.
///
/// The claim is dropped only once the execution is rescheduled (or finished): if storage
/// refuses, the next sweep tries again.
async fn take_back(s: &Shared, id: &str, whose: Whose) -> crate::Result<()> {
    let Some(stored) = s.engine.load(id).await? else {
        lock(&s.claims).by_execution.remove(id);
        return Ok(());
    };
    let (Whose::Mine(generation) | Whose::Theirs(generation)) = whose;
    if generation != stored.claim_generation || stored.worker.is_none() {
        if matches!(whose, Whose::Mine(_)) {
            forget_claim(s, id, generation);
        }
        return Ok(());
    }
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
    let mut writes = Vec::with_capacity(4);
    if matches!(whose, Whose::Mine(_)) {
        // Refused unless the stored lease is still this server's.
        writes.push(Write::Lease {
            execution_id: execution_id.clone(),
            owner: Arc::from(s.engine.owner()),
            until: SystemTime::now(),
            mode: LeaseMode::Renew,
        });
    }
    writes.extend([
        Write::Claim { execution_id: execution_id.clone(), worker: None, generation: stored.claim_generation + 1 },
        Write::Append { execution_id: execution_id.clone(), event: event.clone() },
        Write::SetState { execution_id, state, output: None, time: event.time() },
    ]);
    if let Err(e) = s.engine.store().write(writes).await {
        if e.kind() == ErrorKind::Conflict && matches!(whose, Whose::Mine(_)) {
            // Another server took the claim up for the worker, or took it back.
            forget_claim(s, id, generation);
        }
        return Err(e);
    }
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

/// The states of an execution a worker may hold.
const HELD: [ExecutionState; 5] = [
    ExecutionState::Claimed,
    ExecutionState::ResumeClaimed,
    ExecutionState::Running,
    ExecutionState::Resuming,
    ExecutionState::Cancelling,
];

/// The executions in `states`, read on the blocking pool.
pub(crate) async fn list(s: &Shared, states: &'static [ExecutionState]) -> crate::Result<Vec<ExecutionRow>> {
    let store = s.engine.store().clone();
    tokio::task::spawn_blocking(move || store.list(states))
        .await
        .map_err(|e| Error::new(ErrorKind::Storage, format!("listing executions failed: {e}")))?
}

/// Adds the scheduled executions of remote workflows in storage to those waiting for a worker
/// (at start-up, and with other servers on the database, from time to time: they may have
/// scheduled them, or taken them back); forgets those waiting since before `since` that are no
/// longer scheduled (a worker of another server claimed them, or they were cancelled).
///
/// With other servers (`since` given), an execution scheduled less than [`FOREIGN_GRACE`] ago
/// is offered only once that much has passed: the server that scheduled it usually has a worker
/// claim it first, and offering it here too would only make two workers race for one claim.
pub(crate) async fn find_scheduled(s: &Shared, since: Option<Instant>) -> crate::Result<()> {
    let rows = list(s, &[ExecutionState::Scheduled, ExecutionState::ResumeScheduled]).await?;
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut pending = lock(&s.pending);
    let mut found = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        // Waiting in a queue of this server or another: leased to that server while it waits
        // (a scheduled run has no other lease that has not run out: a take-back ends its
        // claim's; a resume may follow a claim whose lease is still running, so it is not one).
        let queued = row.state == ExecutionState::Scheduled && row.lease_until.is_some_and(|until| until > wall);
        if s.local.contains_key(row.workflow_name.as_str()) || queued {
            continue;
        }
        if !pending.offers.contains_key(&row.id) {
            pending.add(&row.id, &row.workflow_name, row.state == ExecutionState::ResumeScheduled);
            let waited = wall.duration_since(row.updated_at).unwrap_or_default();
            if since.is_some()
                && let Some(left) = FOREIGN_GRACE.checked_sub(waited)
                && let Some(offer) = pending.offers.get_mut(&row.id)
            {
                offer.not_before = Some(now + left);
            }
        }
        found.insert(row.id);
    }
    if let Some(since) = since {
        pending.offers.retain(|id, offer| offer.since >= since || found.contains(id));
    }
    Ok(())
}

/// At start-up: scheduled executions of remote workflows are offered again. Claims found in
/// storage are left to their lease: the worker holding one continues it (its next checkpoint
/// is taken as its claim, see `workers::adopt`), or, if it is not heard from before the lease
/// runs out, the execution is taken back (by this server or another on the database).
pub(crate) async fn restore(s: &Arc<Shared>) -> crate::Result<()> {
    find_scheduled(s, None).await
}

/// When the lease stored with a claim runs out; a claim stored before leases were has one
/// lease from its last change.
fn stored_deadline(row: &ExecutionRow, lease: Duration) -> SystemTime {
    row.lease_until.unwrap_or(row.updated_at + lease)
}

/// Takes back the claims this server does not hold whose stored lease ran out: their worker
/// and the server it spoke to went silent (killed, or cut off from the database).
async fn take_over(s: &Shared) {
    let rows = match list(s, &HELD).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "cannot look for expired claims");
            return;
        }
    };
    let now = SystemTime::now();
    let expired: Vec<(String, u64)> = {
        let claims = lock(&s.claims);
        rows.into_iter()
            .filter(|r| {
                r.worker.is_some()
                    && !s.local.contains_key(r.workflow_name.as_str())
                    && !claims.by_execution.contains_key(&r.id)
                    && stored_deadline(r, s.lease_timeout) < now
            })
            .map(|r| (r.id, r.claim_generation))
            .collect()
    };
    if expired.is_empty() {
        return;
    }
    let _serial = s.claim_lock.lock().await;
    for (id, generation) in expired {
        if lock(&s.claims).by_execution.contains_key(&id) {
            continue;
        }
        match take_back(s, &id, Whose::Theirs(generation)).await {
            Ok(()) => {}
            // Another server took it back first.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::debug!(execution_id = %id, "another server took back an expired claim first");
            }
            Err(e) => tracing::error!(execution_id = %id, error = %e, "cannot take back an expired claim"),
        }
    }
}

/// Renews the stored lease of every claim whose worker is still heard from, once a third of the
/// lease has passed; forgets a claim whose lease another server took (its worker now speaks
/// to that one).
async fn renew(s: &Shared) {
    let now = Instant::now();
    let margin = s.lease_timeout.saturating_mul(2) / 3;
    let due: Vec<(String, u64)> = lock(&s.claims)
        .by_execution
        .iter()
        .filter(|(_, c)| c.lease_until > now && c.stored_until <= now + margin)
        .map(|(id, c)| (id.clone(), c.generation))
        .collect();
    if due.is_empty() {
        return;
    }
    let owner: Arc<str> = Arc::from(s.engine.owner());
    let until = SystemTime::now() + s.lease_timeout;
    let commits = due.iter().map(|(id, _)| {
        s.engine.store().write(vec![Write::Lease {
            execution_id: Arc::from(id.as_str()),
            owner: owner.clone(),
            until,
            mode: LeaseMode::Renew,
        }])
    });
    let results = futures::future::join_all(commits).await;
    let mut claims = lock(&s.claims);
    for ((id, generation), result) in due.into_iter().zip(results) {
        let Some(claim) = claims.by_execution.get_mut(&id).filter(|c| c.generation == generation) else {
            continue;
        };
        match result {
            Ok(()) => claim.stored_until = now + s.lease_timeout,
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::info!(execution_id = %id, "another server answers for this claim now");
                claims.by_execution.remove(&id);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                claims.by_execution.remove(&id);
            }
            Err(e) => tracing::warn!(execution_id = %id, error = %e, "cannot renew the lease of a claim"),
        }
    }
}

/// Offers pending executions to connected workers and takes back expired claims, until the
/// server stops.
pub(crate) async fn dispatcher(s: Arc<Shared>) {
    let mut stop = s.shutdown.subscribe();
    let mut ticks = 0u32;
    // Stored leases are looked at four times a lease, from one lease after start-up: the
    // workers of claims left by a restart get a whole lease to come back.
    let every = (s.lease_timeout / 4).clamp(TICK, Duration::from_secs(5));
    let mut next_take_over = Instant::now() + s.lease_timeout;
    loop {
        tokio::select! {
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        sweep(&s).await;
        renew(&s).await;
        if Instant::now() >= next_take_over {
            take_over(&s).await;
            next_take_over = Instant::now() + every;
        }
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
        if !still {
            continue;
        }
        match take_back(s, &id, Whose::Mine(generation)).await {
            // Another server answers for it now (see `forget_claim`).
            Ok(()) | Err(_) if !lock(&s.claims).by_execution.contains_key(&id) => {}
            Ok(()) => {}
            Err(e) => tracing::error!(execution_id = %id, error = %e, "cannot take back an expired claim"),
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

/// Offers each pending execution, oldest first, to the connected worker with the least work that
/// runs its workflow and has room for it: a worker that said how many executions it runs at
/// once is offered no more than that, counting its claims and the offers it has not answered.
fn offer(s: &Shared) {
    let workers = lock(&s.workers);
    let claims = lock(&s.claims);
    let mut pending = lock(&s.pending);
    let now = Instant::now();
    let mut load: HashMap<&str, usize> = HashMap::new();
    for c in claims.by_execution.values() {
        *load.entry(c.worker.as_str()).or_default() += 1;
    }
    for offer in pending.offers.values() {
        if let Some((worker, at)) = &offer.offered
            && now.duration_since(*at) < REOFFER
            && let Some((name, _)) = workers.get_key_value(worker)
        {
            *load.entry(name.as_str()).or_default() += 1;
        }
    }
    let mut ids: Vec<(Instant, String)> = pending
        .offers
        .iter()
        .filter(|(_, o)| o.offered.as_ref().is_none_or(|(_, at)| now.duration_since(*at) >= REOFFER))
        .filter(|(_, o)| o.not_before.is_none_or(|at| at <= now))
        .map(|(id, o)| (o.since, id.clone()))
        .collect();
    ids.sort_unstable();
    for (_, id) in ids {
        let Some(offer) = pending.offers.get_mut(&id) else { continue };
        let previous = offer.offered.as_ref().map(|(w, _)| w.as_str());
        let chosen = workers
            .iter()
            .filter(|(name, w)| {
                w.connection.is_some()
                    && w.workflows.contains(&offer.workflow)
                    && w.capacity.is_none_or(|room| load.get(name.as_str()).copied().unwrap_or(0) < room)
            })
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
