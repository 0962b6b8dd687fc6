//! Leases and recovery: which engine runs an execution in its own process, and how another one
//! continues it once that process is gone.
//!
//! An engine that runs an execution (a run, replay or resume) records itself as the execution's
//! owner with a lease ([`Engine::lease`], 30 s by default) in the same transaction as its first
//! write, and renews the leases of the executions it runs every third of that time. A process
//! that dies stops renewing; once the lease has run out, [`Engine::recover`] in any process
//! sharing the database takes the execution over (one engine wins the takeover) and replays it:
//! completed tasks answer from the log and the body goes on from where it stopped.
//!
//! An engine that finds its lease taken over (it stalled past its lease and another engine
//! recovered the execution) stops its run: its later writes are refused, so the two runs never
//! interleave in the log. Executions held by remote workers are recovered by the server's claims
//! instead, and a sub-workflow whose parent is still running is continued by its parent's replay.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::context::RunState;
use crate::engine::{Engine, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::store::{LeaseMode, Write};

/// How long an execution's lease lasts unless renewed, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// What [`Engine::recover`] did with one execution it took over.
#[derive(Debug)]
pub struct Recovered {
    /// The execution.
    pub execution_id: String,
    /// Its workflow.
    pub workflow_name: String,
    /// The state its continued run stopped in (finished, paused), or why it could not go on.
    pub outcome: Result<ExecutionState>,
}

/// An execution this engine has taken over, to be continued.
struct TakenOver {
    workflow: Arc<dyn crate::erased::ErasedWorkflow>,
    execution_id: String,
    workflow_name: String,
}

impl TakenOver {
    /// Replays the execution to its end or its next pause.
    async fn continue_on(self, engine: &Engine) -> Recovered {
        let outcome = self.workflow.replay(engine, self.execution_id.clone()).await;
        Recovered { execution_id: self.execution_id, workflow_name: self.workflow_name, outcome }
    }
}

impl Engine {
    /// The id this engine records as the owner of the executions it runs (unique per engine
    /// and process).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// How long the lease on an execution this engine runs lasts unless renewed.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.inner.lease_ms.load(Ordering::Relaxed))
    }

    /// Sets how long the leases this engine takes last (at least 100 ms; renewed every third of
    /// it). A shorter lease lets [`Engine::recover`] continue a dead process's executions
    /// sooner, at the cost of more renewals; every engine on one database should use the same.
    pub fn with_lease(self, lease: Duration) -> Engine {
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(100);
        self.inner.lease_ms.store(ms, Ordering::Relaxed);
        self
    }

    /// Makes `workflow` known to [`Engine::recover`], which continues only executions of
    /// registered workflows.
    pub fn register<W: crate::WorkflowDefinition>(&self, workflow: W) -> &Engine {
        self.register_erased(crate::erased::erase(workflow));
        self
    }

    /// [`Engine::register`] for a workflow held as a trait object (the server's).
    pub(crate) fn register_erased(&self, workflow: Arc<dyn crate::erased::ErasedWorkflow>) {
        self.inner.workflows.write().unwrap_or_else(|p| p.into_inner()).insert(workflow.name(), workflow);
    }

    /// Takes over the expired executions now and then once per lease, until `stop` turns true
    /// or the engine is dropped: what the server does, so that the executions it ran in its own
    /// process (or a dead peer on the same database did) are continued without waiting for a
    /// restart. Each continued run goes on in a task of its own, so that a long one does not
    /// hold back the next look for expired leases.
    #[cfg(feature = "server")]
    pub(crate) fn recover_in_background(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let engine = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = engine.upgrade() else { return };
                let engine_now = Engine { inner };
                let lease = engine_now.lease();
                match engine_now.take_over_expired().await {
                    Ok(taken) => {
                        for run in taken {
                            let engine = engine_now.clone();
                            tokio::spawn(async move {
                                let recovered = run.continue_on(&engine).await;
                                match recovered.outcome {
                                    Ok(state) => tracing::info!(
                                        execution_id = %recovered.execution_id, %state, "recovered execution stopped"
                                    ),
                                    Err(e) => tracing::warn!(
                                        execution_id = %recovered.execution_id, error = %e, "recovered execution failed"
                                    ),
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "recovering executions failed; trying again later"),
                }
                drop(engine_now);
                tokio::select! {
                    () = tokio::time::sleep(lease) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
    }

    /// Continues the executions left `RUNNING` (or `CANCELLING`) by processes that are gone:
    /// those whose lease has run out, of workflows registered with [`Engine::register`]. Each
    /// is taken over (when two engines recover at once, one wins each execution) and replayed to
    /// its end or its next pause; this returns once all of them have stopped.
    ///
    /// Executions of workflows this engine does not know are left alone (and logged), as are
    /// those a worker holds and sub-workflows whose parent is still running: the parent's
    /// replay continues them.
    ///
    /// ```no_run
    /// # #[flux::workflow]
    /// # async fn orders(ctx: flux::ExecutionContext<u32>) -> flux::Result<u32> { Ok(*ctx.input()) }
    /// # async fn demo() -> flux::Result<()> {
    /// let engine = flux::Engine::open(".flux/flux.db")?;
    /// engine.register(orders);
    /// for recovered in engine.recover().await? {
    ///     println!("{}: {:?}", recovered.execution_id, recovered.outcome);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recover(&self) -> Result<Vec<Recovered>> {
        let taken = self.take_over_expired().await?;
        Ok(futures::future::join_all(taken.into_iter().map(|run| run.continue_on(self))).await)
    }

    /// Takes over every expired execution [`Engine::recover`] would continue, without running
    /// them yet.
    async fn take_over_expired(&self) -> Result<Vec<TakenOver>> {
        let store = self.store().clone();
        let states = [ExecutionState::Running, ExecutionState::Cancelling];
        let rows = match tokio::task::spawn_blocking(move || store.list(&states)).await {
            Ok(rows) => rows?,
            Err(e) => return Err(Error::new(ErrorKind::Storage, format!("listing running executions failed: {e}"))),
        };
        let now = SystemTime::now();
        let running: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut taken = Vec::new();
        for row in &rows {
            let expired = row.lease_until.is_none_or(|until| until < now);
            let parent_runs = row.parent_id.as_deref().is_some_and(|p| running.contains(p));
            if row.worker.is_some() || !expired || parent_runs || self.local_run(&row.id).is_some() {
                continue;
            }
            let workflow =
                self.inner.workflows.read().unwrap_or_else(|p| p.into_inner()).get(&*row.workflow_name).cloned();
            let Some(workflow) = workflow else {
                tracing::warn!(
                    execution_id = %row.id, workflow = %row.workflow_name,
                    "an execution whose lease ran out belongs to a workflow this engine does not know; register it to recover it"
                );
                continue;
            };
            let take_over = Write::Lease {
                execution_id: Arc::from(row.id.as_str()),
                owner: self.inner.owner.clone(),
                until: SystemTime::now() + self.lease(),
                mode: LeaseMode::TakeOver,
            };
            match self.store().write(vec![take_over]).await {
                Ok(()) => {}
                // Another engine won it, or it moved on since the listing.
                Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => continue,
                Err(e) => return Err(e),
            }
            tracing::info!(execution_id = %row.id, workflow = %row.workflow_name, previous_owner = ?row.owner, "recovering execution");
            taken.push(TakenOver { workflow, execution_id: row.id.clone(), workflow_name: row.workflow_name.clone() });
        }
        Ok(taken)
    }

    /// Records this engine as the owner of `run`'s execution (with the next commit) and makes
    /// sure its lease is renewed while the run lasts.
    pub(crate) fn own(&self, run: &RunState) {
        drop(self.store().write_deferred(vec![self.lease_write(run.execution_id.clone(), LeaseMode::Own)]));
        self.renew_in_background();
    }

    /// The lease write of this engine for `execution_id`.
    pub(crate) fn lease_write(&self, execution_id: Arc<str>, mode: LeaseMode) -> Write {
        Write::Lease { execution_id, owner: self.inner.owner.clone(), until: SystemTime::now() + self.lease(), mode }
    }

    /// Starts the renewal task unless it runs already (it ends when nothing runs here).
    pub(crate) fn renew_in_background(&self) {
        if self.inner.renewing.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(renew(Arc::downgrade(&self.inner)))),
            // No runtime, so nothing runs here either: the next run starts the task.
            Err(_) => self.inner.renewing.store(false, Ordering::SeqCst),
        }
    }
}

/// Renews the lease of every execution the engine runs, every third of the lease, until the
/// engine is dropped or runs nothing. A run whose lease was taken over is stopped.
async fn renew(inner: Weak<Inner>) {
    loop {
        let period = match inner.upgrade() {
            Some(inner) => Duration::from_millis(inner.lease_ms.load(Ordering::Relaxed) / 3),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let engine = Engine { inner };
        let runs: Vec<Arc<RunState>> = {
            let running = engine.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.is_empty() {
                // Under the lock, so that a run claimed after this starts a new task.
                engine.inner.renewing.store(false, Ordering::SeqCst);
                return;
            }
            running.values().filter_map(Weak::upgrade).collect()
        };
        for run in runs {
            let renewal = engine.lease_write(run.execution_id.clone(), LeaseMode::Renew);
            match engine.store().write(vec![renewal]).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    tracing::warn!(execution_id = %run.execution_id, "another engine took this execution over; stopping its run here");
                    run.abort(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "execution `{}` was taken over by another engine after this one's lease ran out",
                            run.execution_id
                        ),
                    ));
                }
                // A run that has just finished (or whose row is gone) needs no lease; a
                // storage failure is retried at the next renewal, well before the lease ends.
                Err(e) => tracing::debug!(execution_id = %run.execution_id, error = %e, "lease not renewed"),
            }
        }
    }
}
