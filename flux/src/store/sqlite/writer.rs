//! The queue of batches, the writer thread and group commit: whoever commits takes every batch
//! queued at that moment and commits them together, either a task waiting for its commit on its
//! own thread ([`Help`]) or the writer thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::apply::{WriteError, commit, describe_write_error};
use super::lone::insert_alone;
use super::seqs::LastSeqs;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{BATCH_EVENTS, BATCH_WINDOW, Commit, CommitSender, Durability, HOLD_WINDOW, Help, Write};

/// In the `default` and `full` modes, how many queued writes make the writer thread commit
/// without waiting for the hold window to end.
const MAX_GROUP: usize = 4096;

/// A batch of writes waiting for its commit.
struct Job {
    writes: Vec<Write>,
    done: CommitSender,
    /// Nothing waits for it yet: it may be held back to share a later commit.
    deferred: bool,
}

/// How long the writer thread keeps ticking every window after it last saw a job, before it
/// sleeps until the next job wakes it.
const IDLE_AFTER: Duration = Duration::from_millis(200);

/// The queue between the engine and whoever commits, and the only writing connection.
///
/// Jobs are committed in the order they were queued, by one committer at a time: the one
/// holding `writer`, which takes every queued job at once. In the `default` and `batched` modes
/// a task waiting for its commit takes `writer` itself if it is free and commits the queue on
/// its own thread, which saves two thread hand-offs per commit; the writer thread commits what
/// nobody waits for (held-back jobs whose window is over, a full batch) and what a busy
/// committer left behind. In the `full` mode, whose fsync is too long for an async worker
/// thread, the writer thread commits everything.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    writer: Mutex<Writer>,
    inline: bool,
    window: Duration,
    limit: usize,
    transactions: AtomicU64,
}

/// The writing connection and what it remembers between commits.
struct Writer {
    conn: Connection,
    path: PathBuf,
    seqs: LastSeqs,
    /// The group being committed (kept to reuse its allocation).
    group: Vec<Job>,
}

/// The jobs waiting for a committer, and what the writer thread needs to know of them.
#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Writes in `jobs`.
    writes: usize,
    /// Whether a job in `jobs` is waited for.
    waited_for: bool,
    /// When the oldest job in `jobs` was queued.
    first_at: Option<Instant>,
    /// The writer thread waits until it is notified (nothing was queued for a while).
    sleeping: bool,
    /// A committer left jobs someone waits for behind: the writer thread commits them now.
    kick: bool,
    closed: bool,
}

/// Locks `m`, poisoned or not: a panic while holding it leaves the queue consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Starts the writer thread of the writing connection `conn`.
    pub(super) fn start(
        conn: Connection,
        path: PathBuf,
        durability: Durability,
    ) -> Result<(Arc<Shared>, JoinHandle<()>)> {
        let (window, limit) = match durability {
            Durability::Batched => (BATCH_WINDOW, BATCH_EVENTS),
            Durability::Default | Durability::Full => (HOLD_WINDOW, MAX_GROUP),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            writer: Mutex::new(Writer { conn, path, seqs: LastSeqs::default(), group: Vec::new() }),
            inline: durability != Durability::Full,
            window,
            limit,
            transactions: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("flux-sqlite-writer".into())
            .spawn(move || thread_shared.run())
            .map_err(|e| Error::new(ErrorKind::Storage, format!("cannot start the writer thread: {e}")))?;
        Ok((shared, writer))
    }

    /// Queues `writes`; the commit resolves once they are durable.
    pub(super) fn submit(self: &Arc<Self>, writes: Vec<Write>, deferred: bool) -> Commit {
        // In the `full` mode nobody but the writer thread commits: nothing for a waiter to do.
        let (done, commit) = if self.inline { Commit::helped(self.clone()) } else { Commit::pending() };
        match self.push(Job { writes, done, deferred }) {
            Ok(()) => commit,
            Err(_) => Commit::ready(Err(Error::new(ErrorKind::Storage, "the storage writer has stopped"))),
        }
    }

    /// How many write transactions have been committed.
    pub(super) fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Closes the queue: the writer thread commits what is pending and stops.
    pub(super) fn close(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }

    fn push(&self, job: Job) -> std::result::Result<(), Job> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(job);
        }
        if q.jobs.is_empty() {
            q.first_at = Some(Instant::now());
        }
        q.writes += job.writes.len();
        q.waited_for |= !job.deferred;
        let notify = q.sleeping
            || (!job.deferred && !self.inline)
            || (q.writes >= self.limit && q.writes - job.writes.len() < self.limit);
        q.sleeping = false;
        q.jobs.push(job);
        drop(q);
        if notify {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Commits every queued job, holding `writer`.
    fn commit_queued(&self, w: &mut Writer) {
        {
            let mut q = lock(&self.queue);
            std::mem::swap(&mut q.jobs, &mut w.group);
            q.writes = 0;
            q.waited_for = false;
            q.first_at = None;
        }
        if !w.group.is_empty() {
            commit_group(w, &self.transactions);
        }
        // Jobs queued meanwhile whose waiters found the writer busy: hand them to the thread.
        let mut q = lock(&self.queue);
        if q.waited_for && !q.kick {
            q.kick = true;
            drop(q);
            self.wake.notify_one();
        }
    }

    /// The writer thread: waits until something is due, commits, and again, until the store is
    /// closed and the queue is empty.
    fn run(&self) {
        let mut last_active = Instant::now();
        loop {
            {
                let mut q = lock(&self.queue);
                loop {
                    let now = Instant::now();
                    if q.jobs.is_empty() {
                        if q.closed {
                            return;
                        }
                        q.kick = false;
                        if now.duration_since(last_active) < IDLE_AFTER {
                            q = self.wake.wait_timeout(q, self.window).unwrap_or_else(|p| p.into_inner()).0;
                        } else {
                            q.sleeping = true;
                            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                        }
                        continue;
                    }
                    last_active = now;
                    if q.closed || q.kick || q.writes >= self.limit || (q.waited_for && !self.inline) {
                        break;
                    }
                    let due = q.first_at.map_or(now, |t| t + self.window);
                    if now >= due {
                        break;
                    }
                    q = self.wake.wait_timeout(q, due - now).unwrap_or_else(|p| p.into_inner()).0;
                }
                q.kick = false;
            }
            self.commit_queued(&mut lock(&self.writer));
        }
    }
}

impl Help for Shared {
    fn help(&self) {
        let Ok(mut w) = self.writer.try_lock() else {
            // Someone is committing; what it leaves behind goes to the writer thread.
            return;
        };
        self.commit_queued(&mut w);
    }
}

/// Commits `w.group` in one transaction and reports to each job. If that transaction fails
/// because one batch was refused, each batch is retried alone.
fn commit_group(w: &mut Writer, transactions: &AtomicU64) {
    let Writer { conn, path, seqs, group } = w;
    let result = match insert_alone(conn, seqs, group.iter().flat_map(|j| &j.writes)) {
        Some(result) => result,
        None => commit(conn, seqs, group.iter().flat_map(|j| &j.writes)),
    };
    match result {
        Ok(()) => {
            transactions.fetch_add(1, Ordering::Relaxed);
            for job in group.drain(..) {
                job.done.send(Ok(()));
            }
        }
        // One batch was refused (a duplicate id, an event out of sequence): it belongs to that
        // batch alone, so the others are committed without it, each on its own.
        Err(WriteError::Rejected(_)) if group.len() > 1 => {
            for job in group.drain(..) {
                let result = commit(conn, seqs, &job.writes).map_err(|e| describe_write_error(path, e));
                if result.is_ok() {
                    transactions.fetch_add(1, Ordering::Relaxed);
                }
                job.done.send(result);
            }
        }
        // The database itself failed (locked past the busy timeout, I/O, full disk): the whole
        // group fails together rather than waiting out the timeout once per batch.
        Err(e) => {
            let err = describe_write_error(path, e);
            for job in group.drain(..) {
                job.done.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::super::SqliteStore;
    use super::super::testing::{append, create};
    use crate::error::ErrorKind;
    use crate::store::{BATCH_EVENTS, Commit, Durability, Store};

    #[tokio::test]
    async fn a_refused_batch_does_not_fail_other_executions() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        store.write(vec![create("a"), append("a", 1), create("b"), append("b", 1)]).await.unwrap();
        // Queued together so that they share a group; the middle one repeats a's seq 1.
        let c1 = store.write(vec![append("a", 2)]);
        let c2 = store.write(vec![append("a", 1)]);
        let c3 = store.write(vec![append("b", 2)]);
        c1.await.unwrap();
        let err = c2.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        assert!(err.to_string().contains("does not follow the stored log (its last event is #2)"), "{err}");
        c3.await.unwrap();
        let seqs = |id| store.load(id).unwrap().unwrap().events.iter().map(|e| e.seq()).collect::<Vec<_>>();
        assert_eq!(seqs("a"), [1, 2]);
        assert_eq!(seqs("b"), [1, 2]);
    }

    /// Waits (polling a reader) until execution `id` holds `events` events.
    fn wait_for_events(store: &SqliteStore, id: &str, events: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.load(id).unwrap().map_or(0, |s| s.events.len()) < events {
            assert!(Instant::now() < deadline, "the writes of `{id}` were never committed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn held_back_writes_are_committed_without_anyone_waiting() {
        for durability in [Durability::Default, Durability::Full, Durability::Batched] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("f.db"), durability).unwrap();
            let mut commit = store.write_deferred(vec![create("a"), append("a", 1)]);
            wait_for_events(&store, "a", 1);
            let deadline = Instant::now() + Duration::from_secs(10);
            let result = loop {
                if let Some(result) = commit.try_result() {
                    break result;
                }
                assert!(Instant::now() < deadline, "{durability}: the commit never resolved");
                std::thread::sleep(Duration::from_millis(1));
            };
            result.unwrap();
        }
    }

    #[test]
    fn a_commit_nobody_polls_is_still_made() {
        for durability in [Durability::Default, Durability::Full, Durability::Batched] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("f.db"), durability).unwrap();
            drop(store.write(vec![create("a"), append("a", 1), append("a", 2)]));
            wait_for_events(&store, "a", 2);
        }
    }

    #[tokio::test]
    async fn batched_mode_commits_many_writes_in_few_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Batched).unwrap();
        store.write(vec![create("a")]).await.unwrap();
        let before = store.transactions();
        let n = 3000u64;
        let pending: Vec<Commit> = (1..=n).map(|seq| store.write_deferred(vec![append("a", seq)])).collect();
        // The write someone waits for is committed with everything queued before it.
        store.write(vec![append("a", n + 1)]).await.unwrap();
        for mut commit in pending {
            commit.try_result().expect("committed before the later write").unwrap();
        }
        let transactions = store.transactions() - before;
        // At most one commit per BATCH_EVENTS writes, plus the one waited for.
        assert!(transactions <= 1 + n / BATCH_EVENTS as u64, "{transactions} transactions");
        assert_eq!(store.load("a").unwrap().unwrap().events.len(), usize::try_from(n + 1).unwrap());
    }

    #[test]
    fn concurrent_writers_share_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap());
        let (writers, per_writer) = (8u64, 200u64);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for w in 0..writers {
            rt.block_on(store.write(vec![create(&format!("e{w}"))])).unwrap();
        }
        let before = store.transactions();
        std::thread::scope(|s| {
            for w in 0..writers {
                let store = store.clone();
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                    for seq in 1..=per_writer {
                        rt.block_on(store.write(vec![append(&format!("e{w}"), seq)])).unwrap();
                    }
                });
            }
        });
        let batches = writers * per_writer;
        let transactions = store.transactions() - before;
        assert!(transactions < batches, "{batches} concurrent batches took {transactions} transactions");
        for w in 0..writers {
            assert_eq!(store.load(&format!("e{w}")).unwrap().unwrap().events.len() as u64, per_writer);
        }
    }
}
