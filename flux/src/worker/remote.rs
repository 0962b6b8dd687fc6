//! The store a worker's engine writes to: the log of each claimed execution lives on the
//! server, so its writes become checkpoints (batched, in order, acknowledged once the server
//! stored them); everything else (secrets, the task cache, sub-workflows) stays in the worker's
//! local store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventType, ExecutionState};
use crate::protocol::{self, BatchAnswer, BatchOutcome, BatchedCheckpoint, Checkpoint, CheckpointBatch, WireWrite};
use crate::run::Subscription;
use crate::store::{Commit, CommitSender, ExecutionFilter, ExecutionPage, ExecutionRow, Store, StoredExecution, Write};

/// An execution this worker holds.
struct Held {
    generation: u64,
    state: ExecutionState,
    /// Whether anything was written for it since the claim.
    wrote: bool,
    /// The run's events: the progress in it goes out in order with the writes.
    events: Option<Subscription>,
    /// Stops the run.
    abort: Option<tokio::task::AbortHandle>,
    /// Writes nothing waits for yet (`TASK_STARTED`), held back to travel with the next write
    /// or the next progress flush, with the commits they resolve.
    deferred: Vec<WireWrite>,
    deferred_done: Vec<CommitSender>,
}

impl Held {
    /// The progress sent since the last write, in order (the durable events in the stream are
    /// the writes themselves).
    fn take_progress(&mut self) -> Vec<WireWrite> {
        let Some(events) = &mut self.events else {
            return Vec::new();
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut progress = Vec::new();
        while let std::task::Poll::Ready(Some(event)) = events.poll_next(&mut cx) {
            if event.kind() == EventType::TaskProgress {
                progress.push(WireWrite::progress(&event));
            }
        }
        progress
    }
}

/// Writes waiting to be sent.
pub(crate) struct Outgoing {
    pub(crate) execution_id: Arc<str>,
    pub(crate) generation: u64,
    pub(crate) writes: Vec<WireWrite>,
    pub(crate) dones: Vec<CommitSender>,
}

/// The store of a worker's engine: held executions go to the server, the rest stays local.
pub(crate) struct RemoteStore {
    local: Arc<dyn Store>,
    held: Mutex<HashMap<String, Held>>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// The server, for the messages of held executions (which it keeps).
    server: std::sync::OnceLock<Endpoint>,
}

impl RemoteStore {
    /// A store over `local`, and the queue of checkpoints to send.
    pub(crate) fn new(local: Arc<dyn Store>) -> (RemoteStore, mpsc::UnboundedReceiver<Outgoing>) {
        let (outbox, rx) = mpsc::unbounded_channel();
        (RemoteStore { local, held: Mutex::new(HashMap::new()), outbox, server: std::sync::OnceLock::new() }, rx)
    }

    /// Reads the messages of held executions from `server`.
    pub(crate) fn set_server(&self, server: Endpoint) {
        let _ = self.server.set(server);
    }

    /// The executions held, locked.
    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts routing the writes of `id` to the server under `generation`.
    pub(crate) fn hold(&self, id: &str, generation: u64, state: ExecutionState) {
        self.held().insert(
            id.to_string(),
            Held {
                generation,
                state,
                wrote: false,
                events: None,
                abort: None,
                deferred: Vec::new(),
                deferred_done: Vec::new(),
            },
        );
    }

    /// How to stop the run of `id` when its claim turns out to be lost.
    pub(crate) fn set_abort(&self, id: &str, abort: tokio::task::AbortHandle) {
        if let Some(h) = self.held().get_mut(id) {
            h.abort = Some(abort);
        }
    }

    /// Stops the run of `id` at once: another worker holds it now, and nothing it would still
    /// record could be stored.
    pub(crate) fn abort(&self, id: &str) {
        if let Some(abort) = self.held().get_mut(id).and_then(|h| h.abort.take()) {
            tracing::warn!(execution_id = %id, "this worker lost its claim; its run stops");
            abort.abort();
        }
    }

    /// Sends the progress in `events` with the writes of `id`, in the order it was sent.
    pub(crate) fn attach(&self, id: &str, events: Subscription) {
        if let Some(h) = self.held().get_mut(id) {
            h.events = Some(events);
        }
    }

    /// Sends the held-back writes and the progress of every held execution that no write has
    /// carried yet.
    pub(crate) fn flush_progress(&self) {
        let mut held = self.held();
        for (id, h) in held.iter_mut() {
            let progress = h.take_progress();
            if progress.is_empty() && h.deferred.is_empty() {
                continue;
            }
            let mut writes = std::mem::take(&mut h.deferred);
            writes.extend(progress);
            let outgoing = Outgoing {
                execution_id: Arc::from(id.as_str()),
                generation: h.generation,
                writes,
                dones: std::mem::take(&mut h.deferred_done),
            };
            if let Err(e) = self.outbox.send(outgoing) {
                for done in e.0.dones {
                    done.send(Err(stopped()));
                }
                return;
            }
        }
    }

    /// Stops routing the writes of `id`; returns whether anything was written for it.
    pub(crate) fn release(&self, id: &str) -> bool {
        self.held().remove(id).is_some_and(|h| h.wrote)
    }

    /// The server asked for the cancellation of `id`: the run notices through [`Store::state`].
    pub(crate) fn mark_cancelling(&self, id: &str) -> bool {
        match self.held().get_mut(id) {
            Some(h) if !h.state.is_terminal() => {
                h.state = ExecutionState::Cancelling;
                true
            }
            _ => false,
        }
    }

    /// The executions held, with their generations (for heartbeats).
    pub(crate) fn generations(&self) -> Vec<(String, u64)> {
        self.held().iter().map(|(id, h)| (id.clone(), h.generation)).collect()
    }

    /// Sends writes for a held execution directly (not through the engine).
    pub(crate) fn send(&self, id: &str, writes: Vec<WireWrite>) -> Commit {
        let Some(generation) = self.held().get(id).map(|h| h.generation) else {
            return Commit::ready(Err(Error::new(ErrorKind::InvalidState, format!("execution `{id}` is not held"))));
        };
        let (done, commit) = Commit::pending();
        let outgoing = Outgoing { execution_id: Arc::from(id), generation, writes, dones: vec![done] };
        if let Err(e) = self.outbox.send(outgoing) {
            for done in e.0.dones {
                done.send(Err(stopped()));
            }
        }
        commit
    }
}

/// The error of a write that can no longer be sent.
fn stopped() -> Error {
    Error::new(ErrorKind::Storage, "the worker stopped sending checkpoints")
}

/// The execution a write belongs to, if any.
fn execution_of(w: &Write) -> Option<&Arc<str>> {
    match w {
        Write::CreateExecution { id, .. } => Some(id),
        Write::Append { execution_id, .. }
        | Write::SetState { execution_id, .. }
        | Write::Claim { execution_id, .. }
        | Write::Fence { execution_id, .. }
        | Write::Lease { execution_id, .. }
        | Write::DeleteExecution { execution_id } => Some(execution_id),
        Write::CachePut { .. } => None,
    }
}

impl RemoteStore {
    /// Sends the writes of a held execution as a checkpoint (after what was held back for it),
    /// or holds them back when `deferred`; other writes go to the local store.
    fn route(&self, mut writes: Vec<Write>, deferred: bool) -> Commit {
        // A worker's hold on an execution is its claim, fenced by the server's generation: the
        // leases an engine takes on executions of its own store have no meaning here.
        writes.retain(|w| !matches!(w, Write::Lease { .. }));
        if writes.is_empty() {
            return Commit::ready(Ok(()));
        }
        // The worker protocol has no deletion: an execution held here is running anyway.
        let held_deletion = writes.iter().find_map(|w| match w {
            Write::DeleteExecution { execution_id } if self.held().contains_key(&**execution_id) => {
                Some(execution_id.clone())
            }
            _ => None,
        });
        if let Some(id) = held_deletion {
            return Commit::ready(Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution `{id}` is running on this worker; only a finished execution can be deleted"),
            )));
        }
        let remote_id = writes.iter().filter_map(execution_of).find(|id| self.held().contains_key(&***id)).cloned();
        let Some(id) = remote_id else {
            return if deferred { self.local.write_deferred(writes) } else { self.local.write(writes) };
        };
        let (remote, local): (Vec<Write>, Vec<Write>) =
            writes.into_iter().partition(|w| execution_of(w).is_some_and(|e| *e == id));
        if !local.is_empty() {
            // Cache entries: kept here, best effort, before the checkpoint is acknowledged.
            drop(self.local.write(local));
        }
        let (progress, held_back, dones);
        let generation = {
            let mut held = self.held();
            let Some(h) = held.get_mut(&*id) else {
                return Commit::ready(Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("execution `{id}` is not held"),
                )));
            };
            h.wrote = true;
            held_back = std::mem::take(&mut h.deferred);
            dones = std::mem::take(&mut h.deferred_done);
            progress = h.take_progress();
            for w in &remote {
                if let Write::SetState { state, .. } = w
                    && h.state != ExecutionState::Cancelling
                {
                    h.state = *state;
                }
            }
            h.generation
        };
        let (done, commit) = Commit::pending();
        let mut wire = held_back;
        wire.extend(progress);
        wire.extend(remote.iter().filter_map(WireWrite::from_write));
        let mut dones = dones;
        dones.push(done);
        if deferred && let Some(h) = self.held().get_mut(&*id) {
            // Sent with the next write of this execution, or by the next progress flush.
            h.deferred = wire;
            h.deferred_done = dones;
            return commit;
        }
        if let Err(e) = self.outbox.send(Outgoing { execution_id: id, generation, writes: wire, dones }) {
            for done in e.0.dones {
                done.send(Err(stopped()));
            }
        }
        commit
    }
}

impl Store for RemoteStore {
    fn write(&self, writes: Vec<Write>) -> Commit {
        self.route(writes, false)
    }

    /// The messages of a held execution are the server's: asked for over HTTP (on the blocking
    /// thread a receive reads them from); others are this worker's own.
    fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        if !self.held().contains_key(execution_id) {
            return self.local.message_get(execution_id, topic, index);
        }
        let Some(server) = self.server.get() else {
            return Err(Error::new(ErrorKind::InvalidState, "the worker is not connected to a server"));
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(ErrorKind::InvalidState, "a worker reads messages from its server inside its runtime")
        })?;
        handle.block_on(server.message(execution_id, topic, index))
    }

    fn message_put(&self, execution_id: &str, topic: &str, key: Option<&str>, value: &[u8]) -> Result<bool> {
        self.local.message_put(execution_id, topic, key, value)
    }

    fn write_deferred(&self, writes: Vec<Write>) -> Commit {
        self.route(writes, true)
    }

    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        self.local.load(execution_id)
    }

    fn list(&self, states: &[ExecutionState]) -> Result<Vec<ExecutionRow>> {
        self.local.list(states)
    }

    fn list_executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage> {
        self.local.list_executions(filter)
    }

    fn state(&self, execution_id: &str) -> Result<Option<ExecutionState>> {
        if let Some(h) = self.held().get(execution_id) {
            return Ok(Some(h.state));
        }
        self.local.state(execution_id)
    }

    fn describe(&self) -> String {
        format!("worker store (local: {})", self.local.describe())
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>> {
        self.local.cache_get(key, now)
    }

    fn cache_clear(&self, task_name: Option<&str>) -> Result<u64> {
        self.local.cache_clear(task_name)
    }

    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
        self.local.secret_put(name, nonce, ciphertext)
    }

    fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.local.secret_get(name)
    }

    fn secret_list(&self) -> Result<Vec<String>> {
        self.local.secret_list()
    }

    fn secret_remove(&self, name: &str) -> Result<bool> {
        self.local.secret_remove(name)
    }
}

/// Where checkpoints go.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) worker: String,
    pub(crate) session: Arc<Mutex<String>>,
    /// The server has no batch endpoint: every checkpoint goes alone.
    pub(crate) singly: Arc<AtomicBool>,
}

impl Endpoint {
    /// The URL of worker endpoint `what` for an execution.
    pub(crate) fn url(&self, what: &str, execution_id: &str) -> String {
        format!("{}/workers/{}/{what}/{execution_id}", self.base, self.worker)
    }

    /// The current session token.
    pub(crate) fn session(&self) -> String {
        self.session.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The `index`-th message on `topic` for held execution `id`, from the server
    /// (`GET /workers/{name}/messages/{id}/{topic}/{index}`): the MessagePack value, or `None`.
    pub(crate) async fn message(&self, id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        let mut url = reqwest::Url::parse(&self.base)
            .map_err(|e| Error::new(ErrorKind::Config, format!("invalid server URL `{}`: {e}", self.base)))?;
        url.path_segments_mut()
            .map_err(|()| Error::new(ErrorKind::Config, format!("invalid server URL `{}`", self.base)))?
            .pop_if_empty()
            .extend(["workers", self.worker.as_str(), "messages", id, topic, &index.to_string()]);
        let answer =
            self.client.get(url).timeout(super::REQUEST_TIMEOUT).bearer_auth(self.session()).send().await.map_err(
                |e| Error::new(ErrorKind::Unreachable, format!("reading a message of execution `{id}` failed: {e}")),
            )?;
        match answer.status() {
            reqwest::StatusCode::NO_CONTENT => Ok(None),
            status if status.is_success() => answer.bytes().await.map(|b| Some(b.to_vec())).map_err(|e| {
                Error::new(ErrorKind::Unreachable, format!("reading a message of execution `{id}` failed: {e}"))
            }),
            status => {
                let detail = detail_of(answer).await;
                Err(Error::new(
                    ErrorKind::Storage,
                    format!("the server refused a message of execution `{id}` ({status}): {detail}"),
                ))
            }
        }
    }

    /// Sends one checkpoint, retrying network failures and server errors for up to `patience`.
    pub(crate) async fn checkpoint(
        &self,
        id: &str,
        checkpoint: &Checkpoint,
        patience: Duration,
    ) -> Result<protocol::CheckpointAnswer> {
        let body = crate::value::to_msgpack(checkpoint)?;
        let what = format!("a checkpoint of execution `{id}`");
        let r = self.post_retrying(&self.url("checkpoint", id), body, patience, &what).await?;
        match r.status() {
            status if status.is_success() => Ok(r.json().await.unwrap_or_default()),
            reqwest::StatusCode::CONFLICT => Err(Error::new(ErrorKind::Conflict, detail_of(r).await)),
            _ => {
                Err(Error::new(ErrorKind::Storage, format!("the server refused a checkpoint: {}", detail_of(r).await)))
            }
        }
    }

    /// Sends the checkpoints of several executions in one request (`POST
    /// /workers/{name}/checkpoints`), retrying as [`Endpoint::checkpoint`] does; one outcome per
    /// checkpoint, in order. `None` if the server has no such endpoint (a server older than this
    /// worker): then the checkpoints go one by one.
    pub(crate) async fn checkpoints(
        &self,
        batch: &CheckpointBatch,
        patience: Duration,
    ) -> Result<Option<Vec<BatchOutcome>>> {
        let body = crate::value::to_msgpack(batch)?;
        let url = format!("{}/workers/{}/checkpoints", self.base, self.worker);
        let what = format!("{} checkpoints", batch.items.len());
        let r = self.post_retrying(&url, body, patience, &what).await?;
        match r.status() {
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::METHOD_NOT_ALLOWED => return Ok(None),
            status if status.is_success() => {}
            _ => {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("the server refused {what}: {}", detail_of(r).await),
                ));
            }
        }
        let bytes = r
            .bytes()
            .await
            .map_err(|e| Error::new(ErrorKind::Storage, format!("the answer to {what} was cut off: {e}")))?;
        let answer: BatchAnswer = crate::value::from_msgpack(&bytes)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("the answer to {what} cannot be read: {e}")))?;
        if answer.items.len() != batch.items.len() {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("the server answered {} outcomes to {what}", answer.items.len()),
            ));
        }
        Ok(Some(answer.items))
    }

    /// Posts `body` (MessagePack) to `url`, again after network failures, server errors and a
    /// forgotten session (a restarted server: the worker registers again meanwhile), for up to
    /// `patience`; any other answer is returned.
    async fn post_retrying(
        &self,
        url: &str,
        body: Vec<u8>,
        patience: Duration,
        what: &str,
    ) -> Result<reqwest::Response> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut delay = Duration::from_millis(50);
        loop {
            let sent = self
                .client
                .post(url)
                .timeout(super::REQUEST_TIMEOUT)
                .bearer_auth(self.session())
                .header(reqwest::header::CONTENT_TYPE, protocol::MSGPACK)
                .body(body.clone())
                .send()
                .await;
            let retry = match sent {
                Ok(r) if r.status().is_server_error() || r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                    detail_of(r).await
                }
                Ok(r) => return Ok(r),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() + delay > deadline {
                return Err(Error::new(ErrorKind::Storage, format!("cannot send {what} to {}: {retry}", self.base)));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// The `detail` of an error answer, or its status.
pub(crate) async fn detail_of(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or(text);
    format!("{detail} (HTTP {})", status.as_u16())
}

/// The writes of one execution sent in one checkpoint, with the commits they complete.
struct Group {
    id: Arc<str>,
    generation: u64,
    writes: Vec<WireWrite>,
    dones: Vec<CommitSender>,
}

/// Sends queued writes as checkpoints until the store is dropped: everything queued while a
/// checkpoint is on its way goes in the next one, the checkpoints of several executions in one
/// request.
pub(crate) async fn uploader(
    endpoint: Endpoint,
    store: Arc<RemoteStore>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    patience: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // Group by execution, keeping the order of each execution's writes.
        let mut groups: Vec<Group> = Vec::new();
        for o in batch {
            match groups.iter_mut().find(|g| g.id == o.execution_id && g.generation == o.generation) {
                Some(g) => {
                    g.writes.extend(o.writes);
                    g.dones.extend(o.dones);
                }
                None => groups.push(Group {
                    id: o.execution_id,
                    generation: o.generation,
                    writes: o.writes,
                    dones: o.dones,
                }),
            }
        }
        if groups.len() > 1 && !endpoint.singly.load(Ordering::Relaxed) {
            // Several executions: one request for up to `MAX_BATCH` of them.
            let mut chunks = Vec::new();
            let mut rest = groups;
            while rest.len() > protocol::MAX_BATCH {
                let tail = rest.split_off(protocol::MAX_BATCH);
                chunks.push(std::mem::replace(&mut rest, tail));
            }
            chunks.push(rest);
            let sends = chunks.into_iter().map(|chunk| send_batch(&endpoint, &store, chunk, patience));
            futures::future::join_all(sends).await;
        } else {
            let sends = groups.into_iter().map(|group| send_one(&endpoint, &store, group, patience));
            futures::future::join_all(sends).await;
        }
    }
}

/// Sends one execution's checkpoint alone, and completes its commits with the outcome.
async fn send_one(endpoint: &Endpoint, store: &RemoteStore, group: Group, patience: Duration) {
    let Group { id, generation, writes, dones } = group;
    let result = endpoint.checkpoint(&id, &Checkpoint { generation, writes }, patience).await;
    settle(store, &id, dones, result);
}

/// Completes the commits of execution `id`'s checkpoint with its outcome, and tells the run a
/// cancellation is waiting if the answer says so.
fn settle(store: &RemoteStore, id: &str, dones: Vec<CommitSender>, result: Result<protocol::CheckpointAnswer>) {
    if result.as_ref().is_ok_and(|answer| answer.cancelling) {
        store.mark_cancelling(id);
    }
    for done in dones {
        done.send(result.clone().map(drop));
    }
}

/// Sends the checkpoints of several executions in one request, and completes each one's commits
/// with its outcome. One the server could not store for now (a server error) goes again alone,
/// with the retries of [`Endpoint::checkpoint`] (a resend of what was stored is answered as
/// stored); all go alone from then on if the server has no batch endpoint.
async fn send_batch(endpoint: &Endpoint, store: &RemoteStore, mut groups: Vec<Group>, patience: Duration) {
    // The writes travel in the batch; each group keeps its commits, and gets its writes back if
    // it has to go again alone.
    let items = groups
        .iter_mut()
        .map(|g| BatchedCheckpoint {
            execution_id: g.id.to_string(),
            checkpoint: Checkpoint { generation: g.generation, writes: std::mem::take(&mut g.writes) },
        })
        .collect();
    let mut batch = CheckpointBatch { items };
    let sent = endpoint.checkpoints(&batch, patience).await;
    for (group, item) in groups.iter_mut().zip(&mut batch.items) {
        group.writes = std::mem::take(&mut item.checkpoint.writes);
    }
    let outcomes = match sent {
        Ok(Some(outcomes)) => outcomes,
        Ok(None) => {
            endpoint.singly.store(true, Ordering::Relaxed);
            futures::future::join_all(groups.into_iter().map(|g| send_one(endpoint, store, g, patience))).await;
            return;
        }
        Err(e) => {
            for done in groups.into_iter().flat_map(|g| g.dones) {
                done.send(Err(e.clone()));
            }
            return;
        }
    };
    let mut again = Vec::new();
    for (group, outcome) in groups.into_iter().zip(outcomes) {
        let result = match outcome.status {
            200..=299 => Ok(protocol::CheckpointAnswer { seq: outcome.seq, cancelling: outcome.cancelling }),
            409 => Err(Error::new(ErrorKind::Conflict, outcome.detail.unwrap_or_default())),
            401 | 500.. => {
                again.push(group);
                continue;
            }
            status => Err(Error::new(
                ErrorKind::Storage,
                format!("the server refused a checkpoint: {} (HTTP {status})", outcome.detail.unwrap_or_default()),
            )),
        };
        settle(store, &group.id, group.dones, result);
    }
    futures::future::join_all(again.into_iter().map(|g| send_one(endpoint, store, g, patience))).await;
}

#[cfg(all(test, feature = "server"))]
mod tests;
