//! Firing: which schedules are due, what each due one does (start, skip, wait), and the loop
//! that keeps firing them ([`Scheduler`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use super::spec::{from_secs, to_secs};
use super::{Body, FireRequest, Overlap, POLL, StartFuture, fire_id, modify, off_thread};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

/// A fire that started an execution.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The execution it started (`{schedule}_{fire time}`).
    pub execution_id: String,
    /// The instant it fired for.
    pub fire_time: SystemTime,
}

/// What starts the execution of a fire: the engine's registered workflows, or a server's
/// workflows and workers.
pub(crate) trait Starter: Send + Sync {
    /// Stores the fire's execution and starts it; resolves once it is stored, with the run if
    /// it goes on in this process. An execution of this id that exists already is refused
    /// with [`ErrorKind::Conflict`]; a workflow this starter cannot run with
    /// [`ErrorKind::NotFound`].
    fn start<'a>(&'a self, request: FireRequest<'a>) -> StartFuture<'a>;
}

/// The starter of an embedded engine: the workflows registered with it.
pub(crate) struct Local(pub(crate) Engine);

impl Starter for Local {
    fn start<'a>(&'a self, request: FireRequest<'a>) -> StartFuture<'a> {
        Box::pin(async move {
            let Some(workflow) = self.0.recoverable(request.workflow) else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "schedule `{}` starts workflow `{}`, which is not registered with this engine",
                        request.schedule, request.workflow
                    ),
                ));
            };
            let run = workflow.start_new(&self.0, request.execution_id, request.input).await?;
            Ok(Some(run))
        })
    }
}

/// What one turn of firing did.
#[derive(Default)]
pub(crate) struct Turn {
    /// The fires that started an execution.
    pub(crate) fired: Vec<Fired>,
    /// The runs those fires started in this process.
    pub(crate) runs: Vec<tokio::task::JoinHandle<Result<crate::event::ExecutionState>>>,
    /// When the next schedule is due, if any is.
    pub(crate) next: Option<SystemTime>,
}

/// Fires every schedule of `store` due at `now` through `starter`.
pub(crate) async fn fire_due(store: &Arc<dyn Store>, starter: &dyn Starter, now: SystemTime) -> Result<Turn> {
    let listed = off_thread(store, |store| store.schedule_list()).await?;
    let now_s = to_secs(now);
    let mut turn = Turn::default();
    for stored in listed {
        let body = match Body::decode(&stored) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(schedule = %stored.name, error = %e, "a schedule cannot be read; it does not fire");
                continue;
            }
        };
        let next = match fire_one(store, starter, &stored.name, &stored.workflow_name, body, now_s, &mut turn).await {
            Ok(next) => next,
            // A workflow no one here runs (yet): said once a minute, not every turn.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if now_s % 60 == 0 {
                    tracing::warn!(schedule = %stored.name, error = %e, "a schedule cannot fire yet");
                }
                Some(now_s + 1)
            }
            Err(e) => {
                tracing::warn!(schedule = %stored.name, error = %e, "a schedule could not fire; trying again later");
                Some(now_s + 1)
            }
        };
        if let Some(next) = next.map(from_secs) {
            turn.next = Some(turn.next.map_or(next, |n| n.min(next)));
        }
    }
    Ok(turn)
}

/// Fires schedule `name` if it is due at `now` (whole seconds); when it is due next.
async fn fire_one(
    store: &Arc<dyn Store>,
    starter: &dyn Starter,
    name: &str,
    workflow: &str,
    body: Body,
    now: i64,
    turn: &mut Turn,
) -> Result<Option<i64>> {
    if body.paused {
        return Ok(None);
    }
    let Some(due) = body.next_fire else { return Ok(None) };
    if due > now {
        return Ok(Some(due));
    }
    let (schedule, anchor) = (&body.schedule, body.created);
    // The instant to fire for: the latest one missed, or the first one missed within the
    // catch-up window.
    let fire = match schedule.catchup() {
        None => schedule.latest(now, due, anchor).or(Some(due)),
        Some(window) => {
            let floor = now.saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
            if due >= floor { Some(due) } else { schedule.after(floor - 1, anchor).filter(|f| *f <= now) }
        }
    };
    let Some(fire) = fire else {
        // Everything missed fell before the window.
        let info = modify(store, name, move |b, _| {
            if b.next_fire == Some(due) {
                b.next_fire = b.schedule.after(now, b.created);
            }
            Ok(())
        })
        .await?;
        return Ok(info.next_fire.map(to_secs));
    };
    let overlap = schedule.overlap_policy();
    if let Some(last) = body.last_execution.clone().filter(|_| overlap != Overlap::Allow) {
        let state = off_thread(store, move |store| store.state(&last)).await?;
        // Still going: not finished (a paused execution is still going).
        if state.is_some_and(|state| !state.is_terminal()) {
            if overlap == Overlap::BufferOne {
                // Kept until the previous execution ends; looked at again then.
                return Ok(Some(now + 1));
            }
            let info = modify(store, name, move |b, _| {
                if b.next_fire == Some(due) {
                    b.skips += 1;
                    b.last_skipped = Some(fire);
                    b.next_fire = b.schedule.after(fire, b.created);
                }
                Ok(())
            })
            .await?;
            tracing::info!(
                schedule = %name, fire = %super::format_secs(fire),
                "fire skipped: the previous execution is still going"
            );
            return Ok(info.next_fire.map(to_secs));
        }
    }
    let execution_id = fire_id(name, fire);
    let request =
        FireRequest { schedule: name, workflow, execution_id: execution_id.clone(), input: body.input.clone() };
    let started = match starter.start(request).await {
        Ok(run) => {
            turn.runs.extend(run);
            turn.fired.push(Fired {
                schedule: name.to_string(),
                execution_id: execution_id.clone(),
                fire_time: from_secs(fire),
            });
            tracing::info!(schedule = %name, execution_id = %execution_id, "schedule fired");
            true
        }
        // Started already: by another scheduler, or by this one before it stopped.
        Err(e) if e.kind() == ErrorKind::Conflict => false,
        Err(e) => return Err(e),
    };
    let id = execution_id.clone();
    let info = modify(store, name, move |b, _| {
        if b.last_fire.is_none_or(|last| last < fire) {
            b.last_fire = Some(fire);
            b.last_execution = Some(id.clone());
        }
        if b.next_fire.is_some_and(|next| next <= fire) {
            b.next_fire = b.schedule.after(fire, b.created);
        }
        if started {
            b.fires += 1;
        }
        Ok(())
    })
    .await?;
    Ok(info.next_fire.map(to_secs))
}

/// The clock a scheduler reads.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Fires schedules in the background until stopped or dropped (see
/// [`Engine::run_schedules`]).
#[must_use = "the scheduler stops when dropped"]
#[derive(Debug)]
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Scheduler {
    /// Starts the loop: declared schedules first (when `declare`), then a turn whenever one is
    /// due, a run it started ends, or [`POLL`] has passed.
    pub(crate) fn start(engine: Engine, starter: Arc<dyn Starter>, clock: Clock, declare: bool) -> Scheduler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            if declare && let Err(e) = engine.declare_schedules().await {
                tracing::warn!(error = %e, "the schedules the workflows declare could not be stored");
            }
            let wake = Arc::new(Notify::new());
            loop {
                let turn = match fire_due(engine.store(), starter.as_ref(), clock()).await {
                    Ok(turn) => turn,
                    Err(e) => {
                        tracing::warn!(error = %e, "firing schedules failed; trying again");
                        Turn::default()
                    }
                };
                for run in turn.runs {
                    let wake = wake.clone();
                    tokio::spawn(async move {
                        let _ = run.await;
                        wake.notify_one();
                    });
                }
                let wait =
                    turn.next.map_or(POLL, |next| next.duration_since(clock()).unwrap_or(Duration::ZERO)).min(POLL);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = wake.notified() => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        });
        Scheduler { stop, task: Some(task) }
    }

    /// Stops firing, and waits for a turn under way to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
