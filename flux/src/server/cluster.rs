//! Several servers on one database (PostgreSQL): what one server learns of the others' work.
//!
//! Every server keeps its own workers, offers and listeners; what they share is the store. Each
//! server follows the changes the others commit ([`Store::changes`]) and, since notices can be
//! lost, also looks at the store every [`POLL`]:
//!
//! - an execution scheduled (or taken back) elsewhere joins this server's offers, so a workflow
//!   run through one server is claimed by a worker connected to any of them; the claim itself
//!   is fenced by its generation in the database, so only one worker gets it;
//! - a cancellation asked for elsewhere reaches the worker holding the execution through this
//!   server;
//! - the durable events another server stores reach this server's streams and waiting
//!   requests, and so does the progress its workers report (passed on without being stored,
//!   see [`Store::publish`](crate::store::Store::publish));
//! - the workflows workers registered elsewhere are in this server's catalog.
//!
//! Claims a dead server answered for are taken back by any server once their stored lease runs
//! out (see `dispatch::take_over`).
//!
//! [`Store::changes`]: crate::store::Store::changes

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::dispatch::{FOREIGN_GRACE, find_scheduled, list, tell_cancelled};
use super::hub::HubItem;
use super::state::{CatalogEntry, Shared, lock};
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::Blob;
use crate::store::Change;

/// How often the store is looked at for what notices may have missed.
const POLL: Duration = Duration::from_secs(1);

/// Follows the changes of the other servers until this one stops.
pub(crate) async fn follow(s: Arc<Shared>, mut changes: broadcast::Receiver<Change>) {
    let mut stop = s.shutdown.subscribe();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listening = true;
    loop {
        let first = tokio::select! {
            change = changes.recv(), if listening => change,
            _ = poll.tick() => {
                look_everywhere(&s).await;
                continue;
            }
            _ = stopped(&mut stop) => return,
        };
        // Whatever else arrived meanwhile is taken together.
        let mut seen = Seen::default();
        let mut next = Some(first);
        while let Some(change) = next.take() {
            match change {
                Ok(Change::Execution { id, state }) => seen.note(&s, id, state),
                Ok(Change::Published { id, message }) => pass_on_progress(&s, &id, &message),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => seen.everything = true,
                Err(broadcast::error::RecvError::Closed) => {
                    // The store stopped telling: polling alone from now on.
                    listening = false;
                }
            }
            next = match changes.try_recv() {
                Ok(change) => Some(Ok(change)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(broadcast::error::RecvError::Lagged(n))),
                Err(_) => None,
            };
        }
        if seen.everything {
            look_everywhere(&s).await;
            continue;
        }
        if seen.scheduled {
            look_for_scheduled(&s).await;
        }
        for id in seen.cancelling {
            pass_on_cancellation(&s, &id);
        }
        for id in seen.followed {
            tail(&s, &id).await;
        }
    }
}

/// Resolves when the server stops.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// What a run of changes asks for.
#[derive(Default)]
struct Seen {
    /// Look at everything (notices were lost).
    everything: bool,
    /// An execution was scheduled or taken back.
    scheduled: bool,
    /// Executions being cancelled.
    cancelling: HashSet<Arc<str>>,
    /// Executions this server's streams or requests listen to.
    followed: HashSet<Arc<str>>,
}

impl Seen {
    fn note(&mut self, s: &Shared, id: Arc<str>, state: Option<ExecutionState>) {
        match state {
            Some(ExecutionState::Scheduled | ExecutionState::ResumeScheduled) => self.scheduled = true,
            Some(ExecutionState::Cancelling) => {
                self.cancelling.insert(id.clone());
            }
            _ => {}
        }
        if s.hub.follows(&id) {
            self.followed.insert(id);
        }
    }
}

/// Looks at the store for everything a notice may have told: the catalog, scheduled and
/// cancelled executions, and the events of those listened to.
async fn look_everywhere(s: &Arc<Shared>) {
    learn_catalog(s).await;
    look_for_scheduled(s).await;
    match list(s, &[ExecutionState::Cancelling]).await {
        Ok(rows) => {
            for row in rows {
                pass_on_cancellation(s, &row.id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for cancelled executions"),
    }
    for id in s.hub.followed() {
        tail(s, &id).await;
    }
}

/// Takes the scheduled executions in the store as this server's offers too, and wakes the
/// dispatcher, now and once those scheduled by other servers may be offered.
async fn look_for_scheduled(s: &Arc<Shared>) {
    match find_scheduled(s, Some(Instant::now())).await {
        Ok(()) => {
            s.wake.notify_one();
            let shared = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(FOREIGN_GRACE).await;
                shared.wake.notify_one();
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot look for scheduled executions"),
    }
}

/// Tells the worker holding execution `id` through this server that it is being cancelled (once).
fn pass_on_cancellation(s: &Shared, id: &str) {
    let worker = lock(&s.claims).by_execution.get_mut(id).and_then(|c| {
        if c.cancelling {
            return None;
        }
        c.cancelling = true;
        Some(c.worker.clone())
    });
    if let Some(worker) = worker {
        tell_cancelled(s, &worker, id, "");
    }
}

/// Passes the events of execution `id` that another server stored on to this server's
/// listeners (the hub drops those they had).
async fn tail(s: &Shared, id: &str) {
    match s.engine.load(id).await {
        Ok(Some(stored)) => s.hub.publish(id, &stored.events),
        Ok(None) => {}
        Err(e) => tracing::warn!(execution_id = %id, error = %e, "cannot read the events of an execution"),
    }
}

/// A task's progress, as servers pass it to each other: task id, task name, value (MessagePack)
/// and time (microseconds since the epoch).
type SharedProgress = (String, String, Blob, i64);

/// Passes the progress a worker reported through this server to the other servers, whose
/// streams of the execution may be open.
pub(crate) fn share_progress(s: &Shared, execution_id: &str, items: &[HubItem]) {
    if !s.shared_store {
        return;
    }
    for item in items {
        if let HubItem::Event(e) = item
            && e.kind() == EventType::TaskProgress
        {
            let shared: SharedProgress = (
                e.source_id().to_string(),
                e.name().to_string(),
                Blob(e.value_bytes().to_vec()),
                crate::event::to_micros(e.time()),
            );
            if let Ok(message) = crate::value::to_msgpack(&shared) {
                s.engine.store().publish(execution_id, &message);
            }
        }
    }
}

/// Gives this server's listeners of execution `id` the progress another server passed on.
fn pass_on_progress(s: &Shared, id: &str, message: &[u8]) {
    if !s.hub.follows(id) {
        return;
    }
    let Ok((task_id, name, value, time)) = crate::value::from_msgpack::<SharedProgress>(message) else {
        return;
    };
    let time = crate::event::from_micros(time);
    s.hub.publish(id, &[Event::new(0, EventType::TaskProgress, task_id, name, value.0, time)]);
}

/// Adds the workflows workers registered with other servers to the catalog.
pub(crate) async fn learn_catalog(s: &Shared) {
    let store = s.engine.store().clone();
    let listed = match tokio::task::spawn_blocking(move || store.catalog_list()).await {
        Ok(Ok(listed)) => listed,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the catalog");
            return;
        }
        Err(_) => return,
    };
    let mut catalog = lock(&s.catalog);
    for (name, version) in listed {
        let entry = catalog.entry(name).or_insert_with(|| CatalogEntry {
            version,
            versions: BTreeSet::new(),
            in_process: false,
            workers: BTreeSet::new(),
            max_concurrency: None,
        });
        entry.version = entry.version.max(version);
        entry.versions.insert(version);
    }
}

/// Records the workflows a worker registered, for the other servers on the database.
pub(crate) async fn share_catalog(s: &Shared, workflows: Vec<(String, u32)>) -> crate::Result<()> {
    let store = s.engine.store().clone();
    tokio::task::spawn_blocking(move || {
        workflows.iter().try_for_each(|(name, version)| store.catalog_put(name, *version))
    })
    .await
    .map_err(|e| crate::Error::new(crate::ErrorKind::Storage, format!("recording the catalog failed: {e}")))?
}
