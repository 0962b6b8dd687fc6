//! Managing stored executions: listing them a page at a time, deleting finished ones with their
//! sub-workflows, and retention, which deletes those that finished long enough ago (see
//! `docs/design.md`, "Execution management and retention").
//!
//! The store does the reading and applies each deletion ([`Write::DeleteExecution`], refused
//! unless the execution finished); this module decides what may go. An execution is deleted
//! with every sub-workflow below it, children first, so that a deletion cut short leaves the
//! root to find the rest again. It is left alone while any of those is unfinished, or while the
//! execution that started it is: its parent's replay could still need it. Neither condition can
//! change once checked, since a finished execution never changes and starts nothing, so the
//! checks and the writes need no lock between them.
//!
//! Deletions are written [`DELETE_BATCH`] at a time: each batch is one transaction, short enough that
//! the runs writing beside it never wait long.

use std::collections::HashSet;
use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime};

use super::{Engine, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::store::{ExecutionFilter, ExecutionPage, ExecutionRow, Store, Write};

/// How many executions one deletion transaction removes at most.
pub const DELETE_BATCH: usize = 500;

/// The shortest time between two background retention passes.
const MIN_RETENTION_INTERVAL: Duration = Duration::from_secs(1);

/// The longest time between two background retention passes.
const MAX_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The background retention of an engine: dropping it (with the engine) stops the thread.
pub(super) struct Retention {
    /// How long finished executions are kept after their last change.
    pub(super) keep: Duration,
    /// Held by a pass while it runs: the background passes and [`Engine::run_retention`] take
    /// turns, so that two passes never try to delete the same executions.
    pass: std::sync::Mutex<()>,
    /// Closed when the engine is dropped, which wakes the thread to stop.
    _stop: mpsc::Sender<()>,
    /// Disconnects when the thread has stopped (for tests).
    #[cfg(test)]
    pub(super) stopped: std::sync::Mutex<Option<mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention").field("keep", &self.keep).finish_non_exhaustive()
    }
}

/// How often the background thread runs a pass for a retention of `keep`: a tenth of it,
/// between [`MIN_RETENTION_INTERVAL`] and [`MAX_RETENTION_INTERVAL`].
pub(super) fn retention_interval(keep: Duration) -> Duration {
    (keep / 10).clamp(MIN_RETENTION_INTERVAL, MAX_RETENTION_INTERVAL)
}

impl Engine {
    /// Deletes finished executions older than `keep` from now on, in a background thread that
    /// stops when the engine is dropped. An engine keeps the first retention it is given.
    pub(super) fn keep_for(&self, keep: Duration) -> Result<()> {
        if self.inner.retention.get().is_none() {
            let retention = start_retention(Arc::downgrade(&self.inner), keep)?;
            // Should another call have set one meanwhile, this one's thread stops with it.
            let _ = self.inner.retention.set(retention);
        }
        Ok(())
    }
}

/// Starts the retention thread of `inner`, which holds it only while a pass runs.
fn start_retention(inner: Weak<Inner>, keep: Duration) -> Result<Retention> {
    let (stop, wake) = mpsc::channel::<()>();
    #[cfg(test)]
    let (done, stopped) = mpsc::channel::<()>();
    let every = retention_interval(keep);
    std::thread::Builder::new()
        .name("flux-retention".into())
        .spawn(move || {
            #[cfg(test)]
            let _done = done;
            // The first pass comes soon after the start, so that a process that never lives a
            // whole interval (a batch job, one restarted often) still deletes what it should;
            // then one per interval. Woken early only when the engine goes (the sender drops).
            let mut wait = MIN_RETENTION_INTERVAL.min(every);
            while let Err(mpsc::RecvTimeoutError::Timeout) = wake.recv_timeout(wait) {
                wait = every;
                let Some(inner) = inner.upgrade() else { return };
                let engine = Engine { inner };
                match retention_pass(&engine, keep) {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "retention deleted finished executions"),
                    Err(e) => tracing::warn!(error = %e, "a retention pass failed; the next one tries again"),
                }
            }
        })
        .map_err(|e| Error::new(ErrorKind::Storage, format!("cannot start the retention thread: {e}")))?;
    #[cfg(test)]
    return Ok(Retention {
        keep,
        pass: std::sync::Mutex::new(()),
        _stop: stop,
        stopped: std::sync::Mutex::new(Some(stopped)),
    });
    #[cfg(not(test))]
    Ok(Retention { keep, pass: std::sync::Mutex::new(()), _stop: stop })
}

impl Engine {
    /// One page of the stored executions `filter` asks for, newest first, with how many match
    /// in all. No log is loaded.
    ///
    /// ```
    /// # async fn demo() -> flux::Result<()> {
    /// use flux::{ExecutionFilter, ExecutionState};
    /// let engine = flux::Engine::in_memory();
    /// let failed = engine
    ///     .list_executions(ExecutionFilter::new().workflow("orders").state(ExecutionState::Failed).limit(20))
    ///     .await?;
    /// for row in &failed.executions {
    ///     println!("{} v{} failed at {:?}", row.id, row.version, row.updated_at);
    /// }
    /// assert_eq!(failed.total, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn list_executions(&self, filter: ExecutionFilter) -> Result<ExecutionPage> {
        let store = self.store().clone();
        off_thread("listing executions", move || store.list_executions(&filter)).await
    }

    /// Deletes the finished execution `execution_id` with its log and every sub-workflow it
    /// started (recursively); returns how many executions were deleted.
    ///
    /// Refused, deleting nothing, with [`ErrorKind::NotFound`] for an unknown id and
    /// [`ErrorKind::InvalidState`] when the execution, or one of its sub-workflows, has not
    /// finished, or when it is itself a sub-workflow of an execution that has not (its parent's
    /// replay may need it). Outputs kept in an output storage stay (see [`crate::output`]).
    ///
    /// ```
    /// # async fn demo() -> flux::Result<()> {
    /// let engine = flux::Engine::in_memory();
    /// let err = engine.delete("no-such-execution").await.unwrap_err();
    /// assert_eq!(err.kind(), flux::ErrorKind::NotFound);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn delete(&self, execution_id: &str) -> Result<u64> {
        let engine = self.clone();
        let id = execution_id.to_string();
        off_thread("deleting an execution", move || delete_one(&engine, &id)).await
    }

    /// Deletes the finished executions `filter` matches, each with its sub-workflows, as
    /// [`Engine::delete`] would, [`DELETE_BATCH`](crate::limits::DELETE_BATCH) per transaction; returns how many executions were
    /// deleted. Its limit and offset are ignored. A matching execution that cannot be deleted
    /// now (unfinished, or with an unfinished sub-workflow or parent) is left alone.
    ///
    /// ```
    /// # async fn demo() -> flux::Result<()> {
    /// use std::time::{Duration, SystemTime};
    /// let engine = flux::Engine::in_memory();
    /// let week_ago = SystemTime::now() - Duration::from_secs(7 * 24 * 3600);
    /// let deleted = engine.delete_where(flux::ExecutionFilter::new().workflow("orders").created_before(week_ago)).await?;
    /// assert_eq!(deleted, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn delete_where(&self, filter: ExecutionFilter) -> Result<u64> {
        let engine = self.clone();
        off_thread("deleting executions", move || delete_matching(&engine, filter)).await
    }

    /// How long this engine keeps finished executions after their last change
    /// ([`EngineBuilder::retention`](super::EngineBuilder::retention)); `None` keeps them.
    pub fn retention(&self) -> Option<Duration> {
        self.inner.retention.get().map(|r| r.keep)
    }

    /// Runs one retention pass now: deletes the finished executions whose last change is older
    /// than the engine's retention, as the background passes do. Returns how many were
    /// deleted; refused with [`ErrorKind::Config`] when the engine has no retention.
    ///
    /// ```
    /// # async fn demo() -> flux::Result<()> {
    /// let engine = flux::Engine::builder().retention(std::time::Duration::from_secs(30 * 24 * 3600)).build()?;
    /// assert_eq!(engine.run_retention().await?, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn run_retention(&self) -> Result<u64> {
        let keep = self.retention().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "this engine has no retention: set `[flux] retention` (FLUX_RETENTION) or `EngineBuilder::retention`",
            )
        })?;
        let engine = self.clone();
        off_thread("a retention pass", move || retention_pass(&engine, keep)).await
    }
}

/// Runs blocking store work off the async threads.
async fn off_thread<T: Send + 'static>(what: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(Error::new(ErrorKind::Storage, format!("{what} failed: {e}"))),
    }
}

/// One retention pass: the finished executions last changed more than `keep` ago.
fn retention_pass(engine: &Engine, keep: Duration) -> Result<u64> {
    let _turn = engine.inner.retention.get().map(|r| r.pass.lock().unwrap_or_else(|p| p.into_inner()));
    let cutoff = SystemTime::now().checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH);
    delete_matching(engine, ExecutionFilter::new().finished().updated_before(cutoff))
}

/// [`Engine::delete`], on a blocking thread.
fn delete_one(engine: &Engine, id: &str) -> Result<u64> {
    let store = engine.store();
    let root = store.load(id)?.ok_or_else(|| engine.not_found(id))?;
    if !root.state.is_terminal() {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("execution `{id}` is {}; only a finished execution can be deleted", root.state),
        ));
    }
    if let Some(parent) = &root.parent_id
        && let Some(state) = store.state(parent)?.filter(|s| !s.is_terminal())
    {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "execution `{id}` is a sub-workflow of `{parent}`, which is {state}; its replay may need it, so \
                 delete it once `{parent}` has finished"
            ),
        ));
    }
    let Some(tree) = subtrees(store.as_ref(), vec![root.id])?.pop() else {
        return Ok(0);
    };
    match tree {
        Subtree::Deletable(doomed) => delete_ids(store.as_ref(), &doomed),
        Subtree::Blocked(unfinished) => Err(Error::new(
            ErrorKind::InvalidState,
            format!(
                "execution `{id}` cannot be deleted: its sub-workflow `{}` is {}; wait for it to finish or cancel it",
                unfinished.id, unfinished.state
            ),
        )),
    }
}

/// [`Engine::delete_where`], on a blocking thread.
fn delete_matching(engine: &Engine, filter: ExecutionFilter) -> Result<u64> {
    let store = engine.store();
    let finished: Vec<ExecutionState> = match filter.states.is_empty() {
        true => ExecutionState::ALL.iter().copied().filter(|s| s.is_terminal()).collect(),
        false => filter.states.iter().copied().filter(|s| s.is_terminal()).collect(),
    };
    if finished.is_empty() {
        return Ok(0);
    }
    let limit = u32::try_from(DELETE_BATCH).unwrap_or(ExecutionFilter::MAX_LIMIT).min(ExecutionFilter::MAX_LIMIT);
    let mut filter = ExecutionFilter { states: finished, limit, offset: 0, ..filter };
    let mut deleted = 0;
    loop {
        let page = store.list_executions(&filter)?;
        if page.executions.is_empty() {
            return Ok(deleted);
        }
        // Those left alone stay in the listing: the next page starts after them.
        let mut kept = 0;
        let mut roots = Vec::with_capacity(page.executions.len());
        for row in page.executions {
            match &row.parent_id {
                Some(parent) if store.state(parent)?.is_some_and(|s| !s.is_terminal()) => kept += 1,
                _ => roots.push(row.id),
            }
        }
        let mut doomed = Vec::new();
        let mut seen = HashSet::new();
        for tree in subtrees(store.as_ref(), roots)? {
            match tree {
                // A root may also lie below another root of the page: it goes once.
                Subtree::Deletable(ids) => doomed.extend(ids.into_iter().filter(|id| seen.insert(id.clone()))),
                Subtree::Blocked(_) => kept += 1,
            }
        }
        deleted += delete_ids(store.as_ref(), &doomed)?;
        filter.offset += kept;
    }
}

/// What may be deleted of an execution and the sub-workflows below it.
enum Subtree {
    /// All of it is finished: the ids to delete, the execution last and every sub-workflow
    /// before the one that started it, so that a deletion cut short leaves none unreachable
    /// from the execution.
    Deletable(Vec<String>),
    /// This sub-workflow below it has not finished: nothing may go.
    Blocked(ExecutionRow),
}

/// The subtree of each of `roots`, in their order: their sub-workflows found a level at a time,
/// with one listing per [`DELETE_BATCH`] parents (not one per execution).
fn subtrees(store: &dyn Store, roots: Vec<String>) -> Result<Vec<Subtree>> {
    // Each execution found, by id: the root it lies below.
    let mut root_of: std::collections::HashMap<String, usize> =
        roots.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    let mut found: Vec<Vec<String>> = vec![Vec::new(); roots.len()];
    let mut blocked: Vec<Option<ExecutionRow>> = vec![None; roots.len()];
    // The root each root lies below, when one is a sub-workflow of another.
    let mut under: Vec<Option<usize>> = vec![None; roots.len()];
    let mut level = roots.clone();
    while !level.is_empty() {
        let mut next = Vec::new();
        for parents in level.chunks(DELETE_BATCH) {
            let mut filter = ExecutionFilter::new().limit(ExecutionFilter::MAX_LIMIT);
            filter.parents = parents.to_vec();
            loop {
                let page = store.list_executions(&filter)?;
                let len = page.executions.len();
                for child in page.executions {
                    let Some(root) = child.parent_id.as_ref().and_then(|p| root_of.get(p).copied()) else { continue };
                    match root_of.get(&child.id) {
                        // Another root: its own subtree is found from it; whether it may go
                        // decides whether this one may.
                        Some(&other) if roots[other] == child.id => under[other] = Some(root),
                        // Seen before: a cycle of parents, which no run makes.
                        Some(_) => {}
                        None => {
                            root_of.insert(child.id.clone(), root);
                            next.push(child.id.clone());
                            found[root].push(child.id.clone());
                            if !child.state.is_terminal() && blocked[root].is_none() {
                                blocked[root] = Some(child);
                            }
                        }
                    }
                }
                if len < filter.limit as usize {
                    break;
                }
                filter.offset += len as u64;
            }
        }
        level = next;
    }
    // A root below another that must stay keeps that one too (at most as many steps up as
    // there are roots, whatever the data).
    for root in 0..roots.len() {
        let Some(unfinished) = blocked[root].clone() else { continue };
        let mut up = under[root];
        for _ in 0..roots.len() {
            let Some(above) = up.filter(|&above| blocked[above].is_none()) else { break };
            blocked[above] = Some(unfinished.clone());
            up = under[above];
        }
    }
    let trees = roots.into_iter().zip(found).zip(blocked).map(|((root, mut below), blocked)| match blocked {
        Some(unfinished) => Subtree::Blocked(unfinished),
        None => {
            below.reverse();
            below.push(root);
            Subtree::Deletable(below)
        }
    });
    Ok(trees.collect())
}

/// Deletes `ids` in order, [`DELETE_BATCH`](crate::limits::DELETE_BATCH) per transaction; how many were deleted. An execution
/// deleted meanwhile by someone else (another engine's retention) is passed over.
fn delete_ids(store: &dyn Store, ids: &[String]) -> Result<u64> {
    let mut deleted = 0;
    for chunk in ids.chunks(DELETE_BATCH) {
        let writes = chunk.iter().map(|id| Write::delete_execution(id.as_str())).collect();
        match wait(store.write(writes)) {
            Ok(()) => deleted += chunk.len() as u64,
            // One of them is gone (or cannot go): the others, one at a time.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidState) => {
                for id in chunk {
                    match wait(store.write(vec![Write::delete_execution(id.as_str())])) {
                        Ok(()) => deleted += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Waits for `future` on this (blocking) thread: a store's commit resolves from its writer
/// thread, or on the thread that polls it.
fn wait<F: Future>(future: F) -> F::Output {
    /// Wakes the waiting thread.
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_run_a_tenth_of_the_retention_apart_within_bounds() {
        assert_eq!(retention_interval(Duration::from_millis(5)), MIN_RETENTION_INTERVAL);
        assert_eq!(retention_interval(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(retention_interval(Duration::from_secs(30 * 24 * 3600)), MAX_RETENTION_INTERVAL);
    }

    #[test]
    fn the_retention_thread_stops_when_the_engine_is_dropped() {
        let engine = Engine::builder().retention(Duration::from_millis(1)).build().unwrap();
        let stopped = engine.inner.retention.get().and_then(|r| r.stopped.lock().unwrap().take()).unwrap();
        let store = engine.store().clone();
        drop(engine);
        // The thread holds the engine only during a pass: once it stops, the store is ours alone.
        assert_eq!(stopped.recv_timeout(Duration::from_secs(30)), Err(mpsc::RecvTimeoutError::Disconnected));
        assert_eq!(Arc::strong_count(&store), 1, "the retention thread still holds the store");
    }
}
