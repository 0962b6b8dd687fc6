//! The runs of the executions workers run, asked for over HTTP: stored `SCHEDULED` and offered
//! to the workers; one submitted to a queue of the server (`?queue=`), or of a workflow whose
//! workers declared a `max_concurrency`, is held back from the workers until the server's limiter of that queue
//! (and of the workflow) gives it a place ([`crate::Queue`]: the server's engine's queues). It
//! keeps its places until the hub shows it finished or paused.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::dispatch::{answer_remote, store_remote, wait_resting};
use super::respond::{ApiResult, Mode, to_completion};
use super::state::{Shared, lock};
use crate::engine::{Limiter, Ticket};
use crate::event::ExecutionState;
use crate::protocol::Summary;
use crate::store::{LeaseMode, Write};

/// The lines a new execution of remote workflow `name` waits in: queue `queue` when given,
/// then the workflow's own limit when its workers declared one. Empty: it is offered at once.
pub(crate) fn lines(s: &Shared, name: &str, queue: Option<&str>) -> Vec<Arc<Limiter>> {
    let own = lock(&s.catalog).get(name).and_then(|entry| entry.max_concurrency);
    let queue = queue.map(|queue| s.engine.limiter(queue));
    queue.into_iter().chain(own.map(|n| s.engine.workflow_limiter(name, n))).collect()
}

/// Stores a new execution of remote workflow `name` `SCHEDULED` and answers in `mode`; it is
/// offered to the workers at once when `lines` is empty, else entered in `lines` and offered
/// once its turn comes (leased to this server meanwhile).
pub(crate) async fn run_remote(
    s: &Arc<Shared>,
    name: &str,
    lines: Vec<Arc<Limiter>>,
    input: Value,
    encoded: Vec<u8>,
    mode: Mode,
    detailed: bool,
) -> ApiResult {
    let id = crate::driver::new_execution_id();
    super::trace::remember(s, &id);
    let rx = (mode != Mode::Async).then(|| s.hub.subscribe(&id, 0));
    let held = !lines.is_empty();
    // Stored, then offered or entered in its lines, on a task of its own (see `to_completion`).
    let (shared, workflow, execution) = (s.clone(), name.to_string(), id.clone());
    to_completion(async move {
        store_remote(&shared, &workflow, &execution, encoded, held).await?;
        match lines.first() {
            None => {
                lock(&shared.pending).add(&execution, &workflow, false);
                shared.wake.notify_one();
            }
            Some(first) => {
                // Its lease is renewed while it waits here.
                shared.engine.queued(&Arc::from(execution.as_str()));
                let first = first.enter();
                tokio::spawn(hold(shared.clone(), execution, workflow, first, lines));
            }
        }
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
    answer_remote(s, initial, rx, mode, detailed).await
}

/// Waits for the turn of held execution `id` in each of `lines` (the first entered already:
/// `first`) and for the store to admit it (with other servers on the database, they count the
/// same executions), offers it to the workers (unless it was cancelled or deleted meanwhile)
/// and keeps its places until it finished or paused.
async fn hold(s: Arc<Shared>, id: String, workflow: String, first: Ticket, lines: Vec<Arc<Limiter>>) {
    let mut places = Vec::with_capacity(lines.len());
    places.extend(first.turn().await);
    for line in lines.iter().skip(1) {
        places.extend(line.enter().turn().await);
    }
    let mut stop = s.shutdown.subscribe();
    tokio::select! {
        admitted = s.engine.admitted(&id, &lines) => {
            if let Err(e) = admitted {
                // Left SCHEDULED: offered without its queue once its lease runs out, by this
                // server or another.
                tracing::warn!(execution_id = %id, error = %e, "a queued execution could not be admitted");
                s.engine.unqueue(&id);
                return;
            }
        }
        _ = stop.wait_for(|stopped| *stopped) => return,
    }
    s.engine.unqueue(&id);
    let rx = s.hub.subscribe(&id, 0);
    let waiting = {
        let _serial = s.claim_lock.lock().await;
        let stored = s.engine.load(&id).await.ok().flatten();
        let waiting = stored.is_some_and(|stored| stored.state == ExecutionState::Scheduled);
        if waiting {
            // Its lease ends now: a worker of any server may take it.
            let released = Write::Lease {
                execution_id: Arc::from(id.as_str()),
                owner: Arc::from(s.engine.owner()),
                until: SystemTime::now(),
                mode: LeaseMode::Renew,
            };
            if let Err(e) = s.engine.store().write(vec![released]).await {
                tracing::debug!(execution_id = %id, error = %e, "the lease of a queued execution was not released");
            }
            lock(&s.pending).add(&id, &workflow, false);
        }
        waiting
    };
    // Offered: the next in line may go; the places are held until it rests.
    let places: Vec<_> = places.into_iter().map(|admission| admission.permit()).collect();
    if waiting {
        s.wake.notify_one();
        tokio::select! {
            _ = wait_resting(rx) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    }
    drop(places);
}
