//! Leases: the engine records itself as the owner of each execution it runs, and renews those
//! leases while the runs last (see `docs/design.md` §12).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::{Engine, Inner, LiveRun, MIN_LEASE, Recoverable};
use crate::error::{Error, ErrorKind};
use crate::store::{LeaseMode, Write};

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

    /// Sets how long the leases this engine (and every handle to it) takes last: at least 100 ms,
    /// renewed every third of it. A shorter lease lets [`Engine::recover`] continue a dead
    /// process's executions sooner, at the cost of more renewals; every engine on one database
    /// should use the same. [`EngineBuilder::lease`](super::EngineBuilder::lease) sets it when the engine is built.
    pub fn with_lease(self, lease: Duration) -> Engine {
        self.set_lease(lease);
        self
    }

    pub(super) fn set_lease(&self, lease: Duration) {
        self.inner.lease_ms.store(millis(lease.max(MIN_LEASE)), Ordering::Relaxed);
    }

    /// Keeps `workflow` for recovery, under its name.
    pub(crate) fn register_recoverable(&self, workflow: Arc<dyn Recoverable>) {
        self.inner.workflows.write().unwrap_or_else(|p| p.into_inner()).insert(workflow.name(), workflow);
    }

    /// The workflow registered for recovery under `name`.
    pub(crate) fn recoverable(&self, name: &str) -> Option<Arc<dyn Recoverable>> {
        self.inner.workflows.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every workflow registered for recovery.
    #[cfg_attr(not(feature = "schedule"), allow(dead_code))]
    pub(crate) fn recoverables(&self) -> Vec<Arc<dyn Recoverable>> {
        self.inner.workflows.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// This engine's lease write for `execution_id`.
    pub(crate) fn lease_write(&self, execution_id: Arc<str>, mode: LeaseMode) -> Write {
        Write::Lease { execution_id, owner: self.inner.owner.clone(), until: SystemTime::now() + self.lease(), mode }
    }

    /// Records this engine as the owner of `execution_id` (with the next commit) and makes sure
    /// its lease is renewed while it runs here.
    pub(crate) fn own(&self, execution_id: &Arc<str>) {
        drop(self.store().write_deferred(vec![self.lease_write(execution_id.clone(), LeaseMode::Own)]));
        self.renew_in_background();
    }

    /// Keeps the lease of queued execution `id` renewed until [`Engine::unqueue`].
    pub(crate) fn queued(&self, id: &Arc<str>) {
        self.inner.queued.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
        self.renew_in_background();
    }

    /// Stops renewing the lease of queued execution `id` as a queued one (it started, or will
    /// not).
    pub(crate) fn unqueue(&self, id: &str) {
        self.inner.queued.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Whether execution `id` waits in one of this engine's queues.
    pub(crate) fn is_queued(&self, id: &str) -> bool {
        self.inner.queued.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
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

    /// A handle that does not keep the engine alive (for background tasks).
    #[cfg(feature = "server")]
    pub(crate) fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }
}

/// An [`Engine`] that background tasks hold without keeping it alive.
#[cfg(feature = "server")]
#[derive(Clone)]
pub(crate) struct WeakEngine(Weak<Inner>);

#[cfg(feature = "server")]
impl WeakEngine {
    /// The engine, unless every handle to it is gone.
    pub(crate) fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// `d` in whole milliseconds (saturating).
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
        let queued: Vec<Arc<str>> =
            engine.inner.queued.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let runs: Vec<Arc<dyn LiveRun>> = {
            let running = engine.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.is_empty() && queued.is_empty() {
                // Under the lock, so that a run claimed after this starts a new task.
                engine.inner.renewing.store(false, Ordering::SeqCst);
                return;
            }
            running.values().flatten().filter_map(Weak::upgrade).collect()
        };
        for id in queued {
            if let Err(e) = engine.store().write(vec![engine.lease_write(id.clone(), LeaseMode::Renew)]).await {
                // Taken over (this engine stalled past its lease), or gone: starting it here
                // will be refused if another engine started it.
                tracing::debug!(execution_id = %id, error = %e, "the lease of a queued execution was not renewed");
            }
        }
        for run in runs {
            let id = run.execution_id();
            match engine.store().write(vec![engine.lease_write(id.clone(), LeaseMode::Renew)]).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    tracing::warn!(execution_id = %id, "another engine took this execution over; stopping its run here");
                    run.lease_lost(Error::new(
                        ErrorKind::Conflict,
                        format!("execution `{id}` was taken over by another engine after this one's lease ran out"),
                    ));
                }
                // A run that has just finished (or whose row is gone) needs no lease; a
                // storage failure is retried at the next renewal, well before the lease ends.
                Err(e) => tracing::debug!(execution_id = %id, error = %e, "lease not renewed"),
            }
        }
    }
}
