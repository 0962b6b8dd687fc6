//! Recovery: how an engine continues the executions a process that is gone left running.
//!
//! An engine that runs an execution (a run, replay or resume) records itself as the execution's
//! owner with a lease ([`Engine::lease`], 30 s by default) in the same transaction as its first
//! write, and renews the leases of the executions it runs every third of that time (see
//! [`crate::engine`]). A process that dies stops renewing; once the lease has run out,
//! [`Engine::recover`] in any process sharing the database takes the execution over (one engine
//! wins the takeover) and replays it: completed tasks answer from the log and the body goes on
//! from where it stopped.
//!
//! An engine that finds its lease taken over (it stalled past its lease and another engine
//! recovered the execution) stops its run: its later writes are refused, so the two runs never
//! interleave in the log. Executions held by remote workers are recovered by the server's claims
//! instead, and a sub-workflow whose parent is still running is continued by its parent's replay.

use std::sync::Arc;
use std::time::SystemTime;

use crate::engine::{Engine, Recoverable};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::store::LeaseMode;
use crate::workflow::WorkflowDefinition;

/// What [`Engine::recover`] did with one execution it took over.
#[derive(Debug)]
#[non_exhaustive]
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
    workflow: Arc<dyn Recoverable>,
    execution_id: String,
    workflow_name: String,
}

impl TakenOver {
    /// Replays the execution to its end or its next pause.
    async fn continue_on(self, engine: &Engine) -> Recovered {
        let outcome = self.workflow.continue_execution(engine, self.execution_id.clone()).await;
        Recovered { execution_id: self.execution_id, workflow_name: self.workflow_name, outcome }
    }
}

impl Engine {
    /// Makes `workflow` known to [`Engine::recover`], which continues only executions of
    /// registered workflows.
    pub fn register<W: WorkflowDefinition>(&self, workflow: W) -> &Engine {
        self.register_recoverable(crate::erased::erase(workflow));
        self
    }

    /// Takes over the expired executions now and then once per lease, until `stop` turns true
    /// or the engine is dropped: what the server does, so that the executions it ran in its own
    /// process (or a dead peer on the same database did) are continued without waiting for a
    /// restart. Each continued run goes on in a task of its own, so that a long one does not
    /// hold back the next look for expired leases.
    #[cfg(feature = "server")]
    pub(crate) fn recover_in_background(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let engine = self.downgrade();
        tokio::spawn(async move {
            loop {
                let Some(engine_now) = engine.upgrade() else { return };
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

    /// Runs a fork of execution `id` from step `from_step` (see [`Workflow::fork`]) to its end
    /// (or its next pause) and returns the new execution's id, without naming the workflow's
    /// type: the execution's workflow must be registered with this engine
    /// ([`Engine::register`]).
    ///
    /// [`Workflow::fork`]: crate::Workflow::fork
    pub async fn fork(&self, id: &str, from_step: usize) -> Result<String> {
        let stored = self.load(id).await?.ok_or_else(|| self.not_found(id))?;
        let Some(workflow) = self.recoverable(&stored.workflow_name) else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!(
                    "execution `{id}` belongs to workflow `{}`, which is not registered with this engine; \
                     register it with `engine.register(..)` (or fork through the workflow: `workflow.fork(id, step)`)",
                    stored.workflow_name
                ),
            ));
        };
        workflow.fork(self, id.to_string(), from_step).await
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
        let states = [ExecutionState::Running, ExecutionState::Cancelling, ExecutionState::Scheduled];
        let rows = match tokio::task::spawn_blocking(move || store.list(&states)).await {
            Ok(rows) => rows?,
            Err(e) => return Err(Error::new(ErrorKind::Storage, format!("listing running executions failed: {e}"))),
        };
        let now = SystemTime::now();
        let running: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut taken = Vec::new();
        for row in &rows {
            // A scheduled execution is recovered only if an engine queued it (it has an owner
            // and was never claimed) and it does not wait in this engine's queues; one a server
            // scheduled waits for a worker.
            if row.state == ExecutionState::Scheduled
                && (row.owner.is_none() || row.claim_generation > 0 || self.is_queued(&row.id))
            {
                continue;
            }
            let expired = row.lease_until.is_none_or(|until| until < now);
            let parent_runs = row.parent_id.as_deref().is_some_and(|p| running.contains(p));
            if row.worker.is_some() || !expired || parent_runs || self.local_run(&row.id).is_some() {
                continue;
            }
            let Some(workflow) = self.recoverable(&row.workflow_name) else {
                tracing::warn!(
                    execution_id = %row.id, workflow = %row.workflow_name,
                    "an execution whose lease ran out belongs to a workflow this engine does not know; register it to recover it"
                );
                continue;
            };
            // A queued execution cannot be taken over (it is not running): it is leased here, and
            // of two engines starting it, one commits its `WORKFLOW_STARTED`.
            let mode = if row.state == ExecutionState::Scheduled { LeaseMode::Own } else { LeaseMode::TakeOver };
            let take_over = self.lease_write(Arc::from(row.id.as_str()), mode);
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
}
