//! The SQLite store: one database file in WAL mode, one writing connection with group commit,
//! and a small pool of read connections.
//!
//! Writes are queued in order. Whoever commits takes every batch queued at that moment and
//! commits them all in one transaction, so concurrent tasks and executions share commits instead
//! of paying one each: the task waiting for a commit when nobody else is committing (not in the
//! `full` mode), otherwise the writer thread, which also commits held-back batches once their
//! window is over. If that transaction fails, each batch is retried alone so that one bad batch
//! cannot fail its neighbours. Other processes may use the same file: SQLite's locking (with a
//! busy timeout) serialises their transactions.
//!
//! The schema carries its version in `flux_schema`; opening a file of an older version migrates
//! it forward in one transaction (a newer one is refused). Since version 2, an execution's events
//! carry its integer key (`executions.pk`) rather than its text id, which keeps each row and its
//! key comparisons small; to read the log by hand, the view `execution_events` shows it with the
//! text id (`SELECT * FROM execution_events WHERE execution_id = '…' ORDER BY seq`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::{Commit, CommitSender, Durability, LeaseMode, Store, StoredExecution, Write};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState, Value, from_micros, to_micros};

/// The schema version this build writes. Databases with a higher version are refused.
pub const SCHEMA_VERSION: i64 = 3;

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// In the `default` and `full` modes, how many queued writes make the writer thread commit
/// without waiting for the hold window to end.
const MAX_GROUP: usize = 4096;

/// Forward migrations: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the initial schema.
    "CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        output BLOB,
        parent_id TEXT,
        worker TEXT,
        claim_generation INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX executions_by_workflow ON executions (workflow_name, state);
    CREATE TABLE events (
        execution_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value BLOB NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (execution_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE workflows (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        metadata BLOB,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE task_cache (
        key TEXT PRIMARY KEY,
        task_name TEXT NOT NULL,
        value BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX task_cache_by_name ON task_cache (task_name);
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        spec TEXT NOT NULL,
        input BLOB,
        next_run_at INTEGER,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL
    );",
    // 1 -> 2: events are keyed by their execution's integer key instead of its text id, which
    // makes each appended row (and its key comparisons) smaller. The key is an explicit INTEGER
    // PRIMARY KEY so that VACUUM cannot renumber it. `execution_events` shows the log with the
    // text id, for reading the file by hand. (`migrate` refuses first if an event has no
    // execution, so that the copy below drops nothing.)
    "CREATE TABLE executions_v2 (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        output BLOB,
        parent_id TEXT,
        worker TEXT,
        claim_generation INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    INSERT INTO executions_v2 (pk, id, workflow_name, state, input, output, parent_id, worker, claim_generation,
                               created_at, updated_at)
        SELECT rowid, id, workflow_name, state, input, output, parent_id, worker, claim_generation, created_at,
               updated_at
        FROM executions;
    CREATE TABLE events_v2 (
        execution INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value BLOB NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (execution, seq)
    ) WITHOUT ROWID;
    INSERT INTO events_v2 (execution, seq, type, source_id, name, value, time)
        SELECT x.pk, e.seq, e.type, e.source_id, e.name, e.value, e.time
        FROM events e JOIN executions_v2 x ON x.id = e.execution_id;
    DROP TABLE events;
    DROP TABLE executions;
    ALTER TABLE executions_v2 RENAME TO executions;
    ALTER TABLE events_v2 RENAME TO events;
    CREATE INDEX executions_by_workflow ON executions (workflow_name, state);
    CREATE VIEW execution_events AS
        SELECT x.id AS execution_id, e.seq, e.type, e.source_id, e.name, e.value, e.time
        FROM events e JOIN executions x ON x.pk = e.execution;",
    // 2 -> 3: the engine running an execution in its own process, and until when (its lease).
    "ALTER TABLE executions ADD COLUMN owner TEXT;
    ALTER TABLE executions ADD COLUMN lease_until INTEGER;",
];

struct Job {
    writes: Vec<Write>,
    done: CommitSender,
    /// Nothing waits for it yet: it may be held back to share a later commit.
    deferred: bool,
}

/// A [`Store`] in one SQLite database file.
///
/// ```no_run
/// use flux::store::{Durability, SqliteStore};
/// let store = SqliteStore::open(".flux/flux.db", Durability::Default)?;
/// # Ok::<(), flux::Error>(())
/// ```
pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    durability: Durability,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn sql_error(path: &Path, context: &str, err: rusqlite::Error) -> Error {
    let kind = match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => ErrorKind::Corrupt,
        _ => ErrorKind::Storage,
    };
    let hint = if kind == ErrorKind::Corrupt { " (the file is not a flux database, or it is corrupt)" } else { "" };
    Error::new(kind, format!("{context} `{}`{hint}: {err}", path.display()))
}

impl SqliteStore {
    /// Opens (creating it and its directories if needed) the database at `path`, brings its
    /// schema up to date, and starts the writer thread.
    ///
    /// Fails with [`ErrorKind::Corrupt`] if the file is not a SQLite database, and with
    /// [`ErrorKind::SchemaTooNew`] if a newer flux wrote it; the file is left untouched then.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::new(ErrorKind::Storage, format!("cannot create directory `{}`: {e}", dir.display()))
            })?;
        }
        let mut conn = open_connection(&path)?;
        let sync = match durability {
            Durability::Default | Durability::Batched => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))
            .map_err(|e| sql_error(&path, "cannot configure database", e))?;
        migrate(&mut conn, &path)?;

        let (window, limit) = match durability {
            Durability::Batched => (super::BATCH_WINDOW, super::BATCH_EVENTS),
            Durability::Default | Durability::Full => (super::HOLD_WINDOW, MAX_GROUP),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            writer: Mutex::new(Writer { conn, path: path.clone(), seqs: LastSeqs::default(), group: Vec::new() }),
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
        // One reader is opened now, so that the first load does not pay for opening it.
        let reader = open_connection(&path)?;
        Ok(SqliteStore { path, shared, writer: Some(writer), readers: Mutex::new(vec![reader]), durability })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many write transactions this store has committed. With group commit this grows more
    /// slowly than the number of [`Store::write`] calls when writers are concurrent.
    pub fn transactions(&self) -> u64 {
        self.shared.transactions.load(Ordering::Relaxed)
    }

    fn queue(&self, writes: Vec<Write>, deferred: bool) -> Commit {
        // In the `full` mode nobody but the writer thread commits: nothing for a waiter to do.
        let (done, commit) = if self.shared.inline { Commit::helped(self.shared.clone()) } else { Commit::pending() };
        match self.shared.push(Job { writes, done, deferred }) {
            Ok(()) => commit,
            Err(_) => Commit::ready(Err(Error::new(ErrorKind::Storage, "the storage writer has stopped"))),
        }
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let result = f(&mut conn);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        result
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_error(path, "cannot open database", e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql_error(path, "cannot configure database", e))?;
    // Room for every statement the writer uses, so that none is parsed again.
    conn.set_prepared_statement_cache_capacity(32);
    // Reading the journal mode is the first access to the file: a file that is not a database
    // fails here, before anything is written to it. Switching a new file to WAL needs an
    // exclusive lock, and SQLite answers BUSY at once (without its busy handler) while another
    // process holds the file, so that step is retried until the busy timeout.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Ok(mode) => break mode,
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(sql_error(path, "cannot open database", e)),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::new(
            ErrorKind::Storage,
            format!("database `{}` cannot use WAL mode (journal mode is `{mode}`)", path.display()),
        ));
    }
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let err = |e| sql_error(path, "cannot migrate database", e);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS flux_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )",
    )
    .map_err(err)?;
    let version: i64 = tx
        .query_row("SELECT version FROM flux_schema WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(err)?
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::SchemaTooNew,
            format!(
                "database `{}` has schema version {version}, newer than the {SCHEMA_VERSION} this flux understands; \
                 upgrade flux to open it",
                path.display()
            ),
        ));
    }
    if version < 0 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("database `{}` has invalid schema version {version}", path.display()),
        ));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        if from == 1 {
            // Version 2 keys events by their execution's row: an event without one would be
            // dropped by the copy, so the migration is refused (and nothing changed) instead.
            let orphans: i64 = tx
                .query_row(
                    "SELECT count(*) FROM events WHERE execution_id NOT IN (SELECT id FROM executions)",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if orphans > 0 {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "database `{}`: {orphans} events belong to no execution; the migration to schema \
                         version 2 would drop them, so the file was left unchanged",
                        path.display()
                    ),
                ));
            }
        }
        tx.execute_batch(sql)
            .map_err(|e| sql_error(path, &format!("migration {from} -> {} failed for", from + 1), e))?;
    }
    tx.execute(
        "INSERT INTO flux_schema (id, version) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET version = ?1",
        [SCHEMA_VERSION],
    )
    .map_err(err)?;
    tx.commit().map_err(err)
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
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    writer: Mutex<Writer>,
    inline: bool,
    window: Duration,
    limit: usize,
    transactions: AtomicU64,
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    seqs: LastSeqs,
    /// The group being committed (kept to reuse its allocation).
    group: Vec<Job>,
}

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
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

impl super::Help for Shared {
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
    let result = match insert_alone(conn, seqs, group) {
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

/// The most events [`insert_alone`] stores with one statement.
const LONE_ROWS: usize = 4;

/// `INSERT INTO events` of 1 to [`LONE_ROWS`] rows, one statement each (kept in the statement
/// cache like the others).
const LONE_INSERTS: [&str; LONE_ROWS] = [
    "INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES (?,?,?,?,?,?,?)",
    "INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES (?,?,?,?,?,?,?),
     (?,?,?,?,?,?,?)",
    "INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES (?,?,?,?,?,?,?),
     (?,?,?,?,?,?,?), (?,?,?,?,?,?,?)",
    "INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES (?,?,?,?,?,?,?),
     (?,?,?,?,?,?,?), (?,?,?,?,?,?,?), (?,?,?,?,?,?,?)",
];

/// Commits a group made of nothing but a few appends (a task's `TASK_STARTED` and its result,
/// say), each following the end of its log as this writer remembers it, with a single `INSERT`
/// outside an explicit transaction. SQLite makes one statement atomic and durable on its own, so
/// this is the same commit as `BEGIN`, one `INSERT` per event and `COMMIT`, for one statement
/// instead of four.
///
/// `None` leaves the group to [`commit`]: a group of anything else, or an append the memory does
/// not vouch for. An insert that meets a row another process wrote meanwhile (the primary key
/// refuses it, and SQLite undoes the whole statement) is also left to [`commit`], which reads the
/// stored end of each log and refuses just the append that no longer follows it.
fn insert_alone(conn: &Connection, seqs: &mut LastSeqs, group: &[Job]) -> Option<std::result::Result<(), WriteError>> {
    if !conn.is_autocommit() || !seqs.in_transaction.is_empty() {
        return None;
    }
    let mut rows: [Option<LoneRow<'_>>; LONE_ROWS] = [None; LONE_ROWS];
    let mut n = 0;
    for write in group.iter().flat_map(|j| &j.writes) {
        let Write::Append { execution_id, event } = write else {
            return None;
        };
        if n == LONE_ROWS {
            return None;
        }
        // The end of this log: an earlier row of the group, or what the last commit left.
        let earlier = rows[..n].iter().flatten().rev().find(|(id, _, _)| *id == execution_id).map(|r| r.2);
        let end = match earlier {
            Some(end) => end,
            None => *seqs.known.get(execution_id)?,
        };
        let seq = i64::try_from(event.seq).ok()?;
        if end.seq.checked_add(1) != Some(seq) {
            return None;
        }
        rows[n] = Some((execution_id, event, LogEnd { key: end.key, seq }));
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let inserted = match rows {
        [Some(started), Some(ended), None, None] if is_step(&started, &ended) => insert_step(conn, &started, &ended),
        _ => insert_rows(conn, &rows[..n]),
    };
    match inserted {
        Ok(_) => {
            for (id, _, end) in rows.iter().flatten() {
                match seqs.known.get_mut(*id) {
                    Some(known) => *known = *end,
                    None => {
                        seqs.known.insert((*id).clone(), *end);
                    }
                }
            }
            Some(Ok(()))
        }
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => None,
        Err(e) => Some(Err(WriteError::Sql(e))),
    }
}

/// An append of [`insert_alone`]: the execution, the event and the log's end once it is stored.
type LoneRow<'a> = (&'a Arc<str>, &'a Event, LogEnd);

/// The one `INSERT` of a sequential step: a task's `TASK_STARTED` and its `TASK_COMPLETED`,
/// which share the execution, the task id and the name. Those are bound once and the event types
/// are part of the statement: eight parameters instead of fourteen.
const STEP_INSERT: &str = "INSERT INTO events (execution, seq, type, source_id, name, value, time)
     VALUES (?1, ?2, 'TASK_STARTED', ?3, ?4, ?5, ?6), (?1, ?2 + 1, 'TASK_COMPLETED', ?3, ?4, ?7, ?8)";

/// Whether two rows are a sequential step, the shape [`STEP_INSERT`] stores.
fn is_step(started: &LoneRow<'_>, ended: &LoneRow<'_>) -> bool {
    let ((id, first, a), (other_id, second, b)) = (started, ended);
    first.kind == EventType::TaskStarted
        && second.kind == EventType::TaskCompleted
        && id == other_id
        && a.key == b.key
        && a.seq.checked_add(1) == Some(b.seq)
        && first.source_id == second.source_id
        && first.name == second.name
}

fn insert_step(conn: &Connection, started: &LoneRow<'_>, ended: &LoneRow<'_>) -> rusqlite::Result<usize> {
    let ((_, first, at), (_, second, _)) = (started, ended);
    let mut stmt = conn.prepare_cached(STEP_INSERT)?;
    stmt.raw_bind_parameter(1, at.key)?;
    stmt.raw_bind_parameter(2, at.seq)?;
    stmt.raw_bind_parameter(3, &*first.source_id)?;
    stmt.raw_bind_parameter(4, &*first.name)?;
    stmt.raw_bind_parameter(5, &*first.value)?;
    stmt.raw_bind_parameter(6, to_micros(first.time))?;
    stmt.raw_bind_parameter(7, &*second.value)?;
    stmt.raw_bind_parameter(8, to_micros(second.time))?;
    stmt.raw_execute()
}

fn insert_rows(conn: &Connection, rows: &[Option<LoneRow<'_>>]) -> rusqlite::Result<usize> {
    conn.prepare_cached(LONE_INSERTS[rows.len() - 1]).and_then(|mut stmt| {
        for (i, (_, event, end)) in rows.iter().flatten().enumerate() {
            let at = i * 7;
            stmt.raw_bind_parameter(at + 1, end.key)?;
            stmt.raw_bind_parameter(at + 2, end.seq)?;
            stmt.raw_bind_parameter(at + 3, event.kind.as_str())?;
            stmt.raw_bind_parameter(at + 4, &*event.source_id)?;
            stmt.raw_bind_parameter(at + 5, &*event.name)?;
            stmt.raw_bind_parameter(at + 6, &*event.value)?;
            stmt.raw_bind_parameter(at + 7, to_micros(event.time))?;
        }
        stmt.raw_execute()
    })
}

/// An execution's integer key (`executions.pk`, which its events carry) and its last event seq.
#[derive(Clone, Copy)]
struct LogEnd {
    key: i64,
    seq: i64,
}

/// The key and last event seq of each execution this writer appended to, so that an append
/// needs no query in the common case. Changes made inside a transaction are kept apart until it
/// commits. Entries go when an execution finishes.
#[derive(Default)]
struct LastSeqs {
    known: crate::identity::IdMap<Arc<str>, LogEnd>,
    /// Changes of the open transaction: a new end, or `None` for a finished execution.
    in_transaction: crate::identity::IdMap<Arc<str>, Option<LogEnd>>,
}

impl LastSeqs {
    /// The remembered end of the log, or the stored one; `None` if there is no such execution.
    fn last(&mut self, conn: &Connection, execution_id: &Arc<str>) -> rusqlite::Result<Option<LogEnd>> {
        match self.in_transaction.get(execution_id) {
            Some(Some(end)) => return Ok(Some(*end)),
            Some(None) => {}
            None => {
                if let Some(end) = self.known.get(execution_id) {
                    return Ok(Some(*end));
                }
            }
        }
        self.stored_last(conn, execution_id)
    }

    /// The end of the stored log (one lookup of the key, one backward seek on the events' primary
    /// key); `None` if there is no such execution.
    fn stored_last(&self, conn: &Connection, execution_id: &str) -> rusqlite::Result<Option<LogEnd>> {
        let mut stmt = conn.prepare_cached(
            "SELECT x.pk, (SELECT seq FROM events WHERE execution = x.pk ORDER BY seq DESC LIMIT 1)
             FROM executions x WHERE x.id = ?1",
        )?;
        stmt.query_row([execution_id], |r| Ok(LogEnd { key: r.get(0)?, seq: r.get::<_, Option<i64>>(1)?.unwrap_or(0) }))
            .optional()
    }

    fn wrote(&mut self, execution_id: &Arc<str>, end: LogEnd) {
        match self.in_transaction.get_mut(execution_id) {
            Some(last) => *last = Some(end),
            None => {
                self.in_transaction.insert(execution_id.clone(), Some(end));
            }
        }
    }

    fn finished(&mut self, execution_id: &Arc<str>) {
        self.in_transaction.insert(execution_id.clone(), None);
    }

    fn committed(&mut self) {
        for (id, seq) in self.in_transaction.drain() {
            match seq {
                Some(seq) => {
                    self.known.insert(id, seq);
                }
                None => {
                    self.known.remove(&id);
                }
            }
        }
    }

    fn rolled_back(&mut self) {
        self.in_transaction.clear();
    }
}

/// `bytes` as text, if they are UTF-8.
fn utf8(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Shares one allocation among equal strings read from the database. It keeps the default
/// hasher: ids in a log written by a remote worker are chosen outside this process.
#[derive(Default)]
struct Interner {
    seen: std::collections::HashSet<Arc<str>>,
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.seen.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.seen.insert(shared.clone());
        shared
    }
}

/// The size of the shared buffers a loaded log's values are gathered in.
const VALUE_CHUNK: usize = 64 * 1024;

/// A value longer than this gets a buffer of its own when loaded: gathering it would only add a
/// copy, and keeps a chunk's slack small.
const OWN_BUFFER: usize = 4 * 1024;

/// Gathers the values of a log being loaded into shared buffers of up to [`VALUE_CHUNK`] bytes,
/// so that loading makes an allocation per chunk instead of one per event, and holds no more
/// than a chunk beyond the values themselves.
struct Values {
    chunk: Vec<u8>,
    /// The events whose values are in `chunk`, and where.
    waiting: Vec<(usize, std::ops::Range<usize>)>,
    none: Arc<[u8]>,
}

impl Values {
    fn new() -> Self {
        Values { chunk: Vec::new(), waiting: Vec::new(), none: Arc::from(&[][..]) }
    }

    /// The value of `events[index]`, the event about to be pushed: given now, or when its chunk
    /// is full (see [`Values::finish`]).
    fn add(&mut self, events: &mut [Event], index: usize, bytes: &[u8]) -> Value {
        if bytes.len() > OWN_BUFFER {
            return Value::from(Arc::<[u8]>::from(bytes));
        }
        if self.chunk.len() + bytes.len() > VALUE_CHUNK {
            self.finish(events);
        }
        self.waiting.push((index, self.chunk.len()..self.chunk.len() + bytes.len()));
        self.chunk.extend_from_slice(bytes);
        Value::shared(&self.none, 0..0)
    }

    /// Gives the events waiting for the current chunk their values, and starts a new chunk.
    fn finish(&mut self, events: &mut [Event]) {
        if self.waiting.is_empty() {
            return;
        }
        let buf: Arc<[u8]> = Arc::from(&self.chunk[..]);
        self.chunk.clear();
        for (index, range) in self.waiting.drain(..) {
            if let Some(event) = events.get_mut(index) {
                event.value = Value::shared(&buf, range);
            }
        }
    }
}

enum WriteError {
    Sql(rusqlite::Error),
    Rejected(Error),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sql(e)
    }
}

fn describe_write_error(path: &Path, e: WriteError) -> Error {
    match e {
        WriteError::Sql(e) => sql_error(path, "cannot write to database", e),
        WriteError::Rejected(e) => e,
    }
}

fn commit<'a>(
    conn: &Connection,
    seqs: &mut LastSeqs,
    writes: impl IntoIterator<Item = &'a Write>,
) -> std::result::Result<(), WriteError> {
    if !conn.is_autocommit() {
        // A transaction left open by a failed ROLLBACK would swallow every later commit.
        conn.execute_batch("ROLLBACK")?;
    }
    // Both statements come from the cache: parsing them again costs as much as an insert.
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = apply(conn, seqs, writes).and_then(|()| {
        conn.prepare_cached("COMMIT").and_then(|mut c| c.execute([]).map(drop)).map_err(WriteError::from)
    });
    match result {
        Ok(()) => {
            seqs.committed();
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            seqs.rolled_back();
            Err(e)
        }
    }
}

fn apply<'a>(
    conn: &Connection,
    seqs: &mut LastSeqs,
    writes: impl IntoIterator<Item = &'a Write>,
) -> std::result::Result<(), WriteError> {
    // Taken from the statement cache once per transaction rather than once per event.
    let mut append = None;
    for w in writes {
        match w {
            Write::CreateExecution { id, workflow_name, state, input, parent_id, time } => {
                let t = to_micros(*time);
                let mut stmt = conn.prepare_cached(
                    "INSERT INTO executions (id, workflow_name, state, input, parent_id, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?;
                stmt.execute(params![&**id, &**workflow_name, state.as_str(), &**input, parent_id.as_deref(), t])
                    .map_err(|e| {
                        if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
                            WriteError::Rejected(Error::new(
                                ErrorKind::InvalidState,
                                format!("execution `{id}` already exists"),
                            ))
                        } else {
                            WriteError::Sql(e)
                        }
                    })?;
                // Its events will carry the key the row was just given.
                seqs.wrote(id, LogEnd { key: conn.last_insert_rowid(), seq: 0 });
            }
            Write::Append { execution_id, event } => {
                // The event must follow the stored log exactly: no gap, no second writer's event
                // in between.
                let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
                let no_execution =
                    || WriteError::Rejected(Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}`")));
                let mut end = seqs.last(conn, execution_id)?.ok_or_else(no_execution)?;
                // `checked_add`: a damaged file may hold a last seq of i64::MAX, which nothing follows.
                if end.seq.checked_add(1) != Some(seq) {
                    // The remembered value may be stale (another process continued this
                    // execution): only the stored log decides.
                    end = seqs.stored_last(conn, execution_id)?.ok_or_else(no_execution)?;
                    if end.seq.checked_add(1) != Some(seq) {
                        return Err(WriteError::Rejected(super::out_of_sequence(
                            execution_id,
                            event.seq,
                            u64::try_from(end.seq).unwrap_or(0),
                        )));
                    }
                }
                let stmt = match &mut append {
                    Some(stmt) => stmt,
                    None => append.insert(conn.prepare_cached(
                        "INSERT INTO events (execution, seq, type, source_id, name, value, time)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?),
                };
                let inserted = stmt.execute(params![
                    end.key,
                    seq,
                    event.kind.as_str(),
                    &*event.source_id,
                    &*event.name,
                    &*event.value,
                    to_micros(event.time)
                ]);
                if let Err(e) = inserted {
                    if e.sqlite_error_code() != Some(ErrorCode::ConstraintViolation) {
                        return Err(WriteError::Sql(e));
                    }
                    // Another process appended this very seq since this writer's last look: the
                    // append no longer follows the log, as if the memory had been out of date.
                    let end = seqs.stored_last(conn, execution_id)?.ok_or_else(no_execution)?;
                    return Err(WriteError::Rejected(super::out_of_sequence(
                        execution_id,
                        event.seq,
                        u64::try_from(end.seq).unwrap_or(0),
                    )));
                }
                seqs.wrote(execution_id, LogEnd { key: end.key, seq });
            }
            Write::CachePut { key, task_name, value, expires_at } => {
                let mut stmt = conn.prepare_cached(
                    "INSERT INTO task_cache (key, task_name, value, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (key) DO UPDATE SET task_name = ?2, value = ?3, created_at = ?4, expires_at = ?5",
                )?;
                stmt.execute(params![
                    &**key,
                    &**task_name,
                    &**value,
                    to_micros(std::time::SystemTime::now()),
                    expires_at.map(to_micros)
                ])?;
            }
            Write::Claim { execution_id, worker, generation } => {
                let generation = i64::try_from(*generation).unwrap_or(i64::MAX);
                let mut stmt = conn.prepare_cached(
                    "UPDATE executions SET worker = ?2, claim_generation = ?3 WHERE id = ?1 AND claim_generation = ?3 - 1",
                )?;
                if stmt.execute(params![&**execution_id, worker.as_deref(), generation])? == 0 {
                    return Err(WriteError::Rejected(generation_mismatch(conn, execution_id, generation)?));
                }
            }
            Write::Fence { execution_id, generation } => {
                let generation = i64::try_from(*generation).unwrap_or(i64::MAX);
                let mut stmt = conn.prepare_cached("SELECT claim_generation FROM executions WHERE id = ?1")?;
                let stored: Option<i64> = stmt.query_row([&**execution_id], |r| r.get(0)).optional()?;
                if stored != Some(generation) {
                    return Err(WriteError::Rejected(generation_mismatch(conn, execution_id, generation)?));
                }
            }
            Write::Lease { execution_id, owner, until, mode } => {
                let until = to_micros(*until);
                let changed = match mode {
                    LeaseMode::Own => conn
                        .prepare_cached("UPDATE executions SET owner = ?2, lease_until = ?3 WHERE id = ?1")?
                        .execute(params![&**execution_id, &**owner, until])?,
                    LeaseMode::Renew => conn
                        .prepare_cached("UPDATE executions SET lease_until = ?3 WHERE id = ?1 AND owner = ?2")?
                        .execute(params![&**execution_id, &**owner, until])?,
                    LeaseMode::TakeOver => conn
                        .prepare_cached(
                            "UPDATE executions SET owner = ?2, lease_until = ?3
                             WHERE id = ?1 AND state IN ('RUNNING', 'CANCELLING') AND worker IS NULL
                               AND (lease_until IS NULL OR lease_until < ?4)",
                        )?
                        .execute(params![&**execution_id, &**owner, until, to_micros(std::time::SystemTime::now())])?,
                };
                if changed == 0 {
                    let exists: Option<i64> = conn
                        .query_row("SELECT pk FROM executions WHERE id = ?1", [&**execution_id], |r| r.get(0))
                        .optional()?;
                    return Err(WriteError::Rejected(match exists {
                        None => Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}`")),
                        Some(_) => super::lease_refused(execution_id, *mode),
                    }));
                }
            }
            Write::SetState { execution_id, state, output, time } => {
                let mut stmt = conn.prepare_cached(
                    "UPDATE executions SET state = ?2, output = COALESCE(?3, output), updated_at = ?4
                     WHERE id = ?1 AND state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
                       AND (state <> 'CANCELLING' OR ?2 IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CANCELLING'))",
                )?;
                let changed =
                    stmt.execute(params![&**execution_id, state.as_str(), output.as_deref(), to_micros(*time)])?;
                if state.is_terminal() {
                    seqs.finished(execution_id);
                }
                if changed == 0 {
                    let current: Option<String> = conn
                        .query_row("SELECT state FROM executions WHERE id = ?1", [&**execution_id], |r| r.get(0))
                        .optional()?;
                    return Err(WriteError::Rejected(match current {
                        None => Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}`")),
                        Some(s) => match s.parse::<ExecutionState>() {
                            Ok(from) => super::transition_refused(execution_id, from, *state),
                            Err(_) => Error::new(
                                ErrorKind::Corrupt,
                                format!("execution `{execution_id}` has an unknown state `{s}`"),
                            ),
                        },
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Why a claim or fence for `generation` was refused.
fn generation_mismatch(conn: &Connection, execution_id: &str, generation: i64) -> rusqlite::Result<Error> {
    let stored: Option<i64> = conn
        .query_row("SELECT claim_generation FROM executions WHERE id = ?1", [execution_id], |r| r.get(0))
        .optional()?;
    Ok(match stored {
        None => Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}`")),
        Some(stored) => super::stale_generation(
            execution_id,
            u64::try_from(generation).unwrap_or(0),
            u64::try_from(stored).unwrap_or(0),
        ),
    })
}

impl Store for SqliteStore {
    fn write(&self, writes: Vec<Write>) -> Commit {
        self.queue(writes, false)
    }

    fn write_deferred(&self, writes: Vec<Write>) -> Commit {
        self.queue(writes, true)
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn state(&self, execution_id: &str) -> Result<Option<ExecutionState>> {
        let path = &self.path;
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT state FROM executions WHERE id = ?1")
                .map_err(|e| sql_error(path, "cannot read from database", e))?;
            let state: Option<String> = stmt
                .query_row([execution_id], |r| r.get(0))
                .optional()
                .map_err(|e| sql_error(path, "cannot read from database", e))?;
            state
                .map(|s| {
                    s.parse().map_err(|e: Error| {
                        Error::new(ErrorKind::Corrupt, format!("execution `{execution_id}`: {}", e.message()))
                    })
                })
                .transpose()
        })
    }

    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        let path = &self.path;
        self.with_reader(|conn| {
            let err = |e| sql_error(path, "cannot read from database", e);
            let tx = conn.transaction().map_err(err)?;
            let row = tx
                .query_row(
                    "SELECT workflow_name, state, input, output, parent_id, created_at, updated_at, worker,
                            claim_generation, pk
                     FROM executions WHERE id = ?1",
                    [execution_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, Option<Vec<u8>>>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, Option<String>>(7)?,
                            r.get::<_, i64>(8)?,
                            r.get::<_, i64>(9)?,
                        ))
                    },
                )
                .optional()
                .map_err(err)?;
            let Some((workflow_name, state, input, output, parent_id, created_at, updated_at, worker, generation, key)) =
                row
            else {
                return Ok(None);
            };
            let state: ExecutionState = state.parse().map_err(|e: Error| {
                Error::new(ErrorKind::Corrupt, format!("execution `{execution_id}`: {}", e.message()))
            })?;
            // Seqs run 1, 2, 3... without a gap: the last one is the number of events.
            let count: Option<i64> = tx
                .prepare_cached("SELECT seq FROM events WHERE execution = ?1 ORDER BY seq DESC LIMIT 1")
                .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
                .map_err(err)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, type, source_id, name, value, time FROM events WHERE execution = ?1 ORDER BY seq",
                )
                .map_err(err)?;
            let mut rows = stmt.query([key]).map_err(err)?;
            // With room for the few events a run appends after replaying the log (its end at
            // least), so that the first of them does not copy the whole log to grow it.
            let mut events: Vec<Event> =
                Vec::with_capacity(count.and_then(|c| usize::try_from(c).ok()).unwrap_or(0).min(1 << 20) + 8);
            // A task's events mostly follow one another, and neighbours mostly share a name: a
            // column equal to the previous row's reuses its value without decoding it again.
            // Other names are shared through the interner (there are few of them); another source
            // id gets its own allocation, since most are new.
            let mut strings = Interner::default();
            let mut values = Values::new();
            let mut last: Option<(EventType, Arc<str>, Arc<str>)> = None;
            while let Some(r) = rows.next().map_err(err)? {
                let seq: i64 = r.get(0).map_err(err)?;
                let corrupt = |what: &str| {
                    Error::new(ErrorKind::Corrupt, format!("execution `{execution_id}` event #{seq}: {what}"))
                };
                let bytes = |i: usize| match r.get_ref(i).map_err(err)? {
                    rusqlite::types::ValueRef::Text(t) => Ok(t),
                    _ => Err(corrupt("a text column holds another type")),
                };
                let text = |t| utf8(t).ok_or_else(|| corrupt("text is not UTF-8"));
                let (kind_bytes, source_bytes, name_bytes) = (bytes(1)?, bytes(2)?, bytes(3)?);
                let (kind, source_id, name) = match &last {
                    Some((kind, source_id, name)) => (
                        match kind.as_str().as_bytes() == kind_bytes {
                            true => *kind,
                            false => text(kind_bytes)?.parse().map_err(|e: Error| corrupt(e.message()))?,
                        },
                        match source_id.as_bytes() == source_bytes {
                            true => source_id.clone(),
                            false => Arc::from(text(source_bytes)?),
                        },
                        match name.as_bytes() == name_bytes {
                            true => name.clone(),
                            false => strings.get(text(name_bytes)?),
                        },
                    ),
                    None => (
                        text(kind_bytes)?.parse().map_err(|e: Error| corrupt(e.message()))?,
                        Arc::from(text(source_bytes)?),
                        strings.get(text(name_bytes)?),
                    ),
                };
                last = Some((kind, source_id.clone(), name.clone()));
                let value = match r.get_ref(4).map_err(err)? {
                    rusqlite::types::ValueRef::Blob(b) => {
                        let index = events.len();
                        values.add(&mut events, index, b)
                    }
                    _ => return Err(corrupt("its value is not a blob")),
                };
                let time: i64 = r.get(5).map_err(err)?;
                events.push(Event {
                    seq: u64::try_from(seq).unwrap_or(0),
                    kind,
                    source_id,
                    name,
                    value,
                    time: from_micros(time),
                });
            }
            values.finish(&mut events);
            drop(rows);
            drop(stmt);
            tx.finish().map_err(err)?;
            Ok(Some(StoredExecution {
                id: execution_id.to_string(),
                workflow_name,
                state,
                input,
                output,
                parent_id,
                created_at: from_micros(created_at),
                updated_at: from_micros(updated_at),
                worker,
                claim_generation: u64::try_from(generation).unwrap_or(0),
                events,
            }))
        })
    }

    fn list(&self, states: &[ExecutionState]) -> Result<Vec<super::ExecutionRow>> {
        let path = &self.path;
        self.with_reader(|conn| {
            let err = |e| sql_error(path, "cannot read from database", e);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, workflow_name, state, worker, claim_generation, updated_at, parent_id, owner,
                            lease_until
                     FROM executions WHERE state IN (SELECT value FROM json_each(?1)) ORDER BY updated_at, id",
                )
                .map_err(err)?;
            let wanted =
                format!("[{}]", states.iter().map(|s| format!("\"{}\"", s.as_str())).collect::<Vec<_>>().join(","));
            let mut rows = stmt.query([wanted]).map_err(err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(err)? {
                let id: String = r.get(0).map_err(err)?;
                let state: String = r.get(2).map_err(err)?;
                let state = state
                    .parse()
                    .map_err(|e: Error| Error::new(ErrorKind::Corrupt, format!("execution `{id}`: {}", e.message())))?;
                out.push(super::ExecutionRow {
                    workflow_name: r.get(1).map_err(err)?,
                    state,
                    worker: r.get(3).map_err(err)?,
                    claim_generation: u64::try_from(r.get::<_, i64>(4).map_err(err)?).unwrap_or(0),
                    updated_at: from_micros(r.get(5).map_err(err)?),
                    parent_id: r.get(6).map_err(err)?,
                    owner: r.get(7).map_err(err)?,
                    lease_until: r.get::<_, Option<i64>>(8).map_err(err)?.map(from_micros),
                    id,
                });
            }
            Ok(out)
        })
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn cache_get(&self, key: &str, now: std::time::SystemTime) -> Result<Option<Vec<u8>>> {
        let path = &self.path;
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT value FROM task_cache WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .map_err(|e| sql_error(path, "cannot read the task cache of", e))?;
            stmt.query_row(params![key, to_micros(now)], |r| r.get(0))
                .optional()
                .map_err(|e| sql_error(path, "cannot read the task cache of", e))
        })
    }

    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
        let path = &self.path;
        self.with_reader(|conn| {
            conn.execute(
                "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET nonce = ?2, ciphertext = ?3, updated_at = ?4",
                params![name, nonce, ciphertext, to_micros(std::time::SystemTime::now())],
            )
            .map(|_| ())
            .map_err(|e| sql_error(path, "cannot store a secret in", e))
        })
    }

    fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let path = &self.path;
        self.with_reader(|conn| {
            conn.query_row("SELECT nonce, ciphertext FROM secrets WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| sql_error(path, "cannot read a secret from", e))
        })
    }

    fn secret_list(&self) -> Result<Vec<String>> {
        let path = &self.path;
        self.with_reader(|conn| {
            let err = |e| sql_error(path, "cannot list the secrets of", e);
            let mut stmt = conn.prepare("SELECT name FROM secrets ORDER BY name").map_err(err)?;
            let names = stmt.query_map([], |r| r.get(0)).map_err(err)?;
            names.collect::<std::result::Result<Vec<String>, _>>().map_err(err)
        })
    }

    fn secret_remove(&self, name: &str) -> Result<bool> {
        let path = &self.path;
        self.with_reader(|conn| {
            conn.execute("DELETE FROM secrets WHERE name = ?1", [name])
                .map(|n| n > 0)
                .map_err(|e| sql_error(path, "cannot remove a secret from", e))
        })
    }

    fn cache_clear(&self, task_name: Option<&str>) -> Result<u64> {
        let path = &self.path;
        self.with_reader(|conn| {
            let changed = match task_name {
                Some(name) => conn.execute("DELETE FROM task_cache WHERE task_name = ?1", [name]),
                None => conn.execute("DELETE FROM task_cache", []),
            };
            changed.map(|n| n as u64).map_err(|e| sql_error(path, "cannot clear the task cache of", e))
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer commit what is pending and stop.
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::event::EventType;

    fn create(id: &str) -> Write {
        Write::CreateExecution {
            id: id.into(),
            workflow_name: "wf".into(),
            state: ExecutionState::Running,
            input: Arc::from(&b"\xc0"[..]),
            parent_id: None,
            time: SystemTime::now(),
        }
    }

    fn append(id: &str, seq: u64) -> Write {
        Write::Append {
            execution_id: id.into(),
            event: Event::new(seq, EventType::TaskStarted, "t_1", "t", &b"\x90"[..], SystemTime::now()),
        }
    }

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
        assert!(transactions <= 1 + n / super::super::BATCH_EVENTS as u64, "{transactions} transactions");
        assert_eq!(store.load("a").unwrap().unwrap().events.len(), usize::try_from(n + 1).unwrap());
    }

    #[tokio::test]
    async fn events_must_follow_the_stored_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        store.write(vec![create("a"), append("a", 1)]).await.unwrap();
        let gap = store.write(vec![append("a", 3)]).await.unwrap_err();
        assert!(gap.to_string().contains("event #3"), "{gap}");
        let first = store.write(vec![append("a", 1)]).await.unwrap_err();
        assert!(first.to_string().contains("event #1"), "{first}");
        store.write(vec![append("a", 2)]).await.unwrap();
        assert_eq!(store.load("a").unwrap().unwrap().events.len(), 2);
    }

    #[tokio::test]
    async fn another_writer_of_the_same_log_is_seen() {
        // Two stores on one file, as two processes: each remembers the last seq it wrote, and
        // defers to the database when that memory is out of date.
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        let b = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        a.write(vec![create("x"), append("x", 1), append("x", 2)]).await.unwrap();
        b.write(vec![append("x", 3)]).await.unwrap();
        a.write(vec![append("x", 4)]).await.unwrap();
        let err = a.write(vec![append("x", 4)]).await.unwrap_err();
        assert!(err.to_string().contains("its last event is #4"), "{err}");
        let err = b.write(vec![append("x", 6)]).await.unwrap_err();
        assert!(err.to_string().contains("event #6"), "{err}");
        assert_eq!(a.load("x").unwrap().unwrap().events.len(), 4);
    }

    #[tokio::test]
    async fn appends_stored_by_one_insert_are_all_or_nothing() {
        // `a` remembers that x and y end at #1; `b`, as another process, appends x's #2. A group
        // of y's #2 and x's #2 then meets b's row in its single INSERT: y's event is still
        // stored, x's is refused, and b's row is left as b wrote it.
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        let b = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        a.write(vec![create("x"), append("x", 1), create("y"), append("y", 1)]).await.unwrap();
        let theirs = Event::new(2, EventType::TaskCompleted, "t_1", "t", &b"\x07"[..], SystemTime::now());
        b.write(vec![Write::Append { execution_id: "x".into(), event: theirs.clone() }]).await.unwrap();
        let y2 = a.write(vec![append("y", 2)]);
        let x2 = a.write(vec![append("x", 2)]);
        y2.await.unwrap();
        let err = x2.await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        assert!(err.to_string().contains("its last event is #2"), "{err}");
        let x = a.load("x").unwrap().unwrap().events;
        assert_eq!(x.len(), 2);
        assert_eq!((x[1].kind, &x[1].value), (theirs.kind, &theirs.value));
        let seqs = |id| a.load(id).unwrap().unwrap().events.iter().map(|e| e.seq()).collect::<Vec<_>>();
        assert_eq!(seqs("y"), [1, 2]);
        // a still remembers x ending at #1: its next append reads the stored end and follows b's row.
        a.write(vec![append("x", 3), append("x", 4)]).await.unwrap();
        assert_eq!(seqs("x"), [1, 2, 3, 4]);
        // More appends than one insert takes are committed in a transaction, as before.
        a.write((3..=8).map(|seq| append("y", seq)).collect()).await.unwrap();
        assert_eq!(seqs("y"), [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    /// A task's `TASK_STARTED` and `TASK_COMPLETED` committed together take the step statement,
    /// which binds what they share once; other pairs take the general one. Both store every
    /// field as given.
    #[tokio::test]
    async fn a_step_and_other_pairs_of_appends_are_stored_field_for_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        store.write(vec![create("a"), append("a", 1)]).await.unwrap();
        let at = |micros: u64| SystemTime::UNIX_EPOCH + Duration::from_micros(1_765_000_000_000_000 + micros);
        let event = |seq, kind, id: &str, name: &str, value: &[u8], time| Event::new(seq, kind, id, name, value, time);
        let pairs = [
            // A step: the same task, started then completed.
            [
                event(2, EventType::TaskStarted, "step_1", "step", b"\x91\x05", at(2)),
                event(3, EventType::TaskCompleted, "step_1", "step", b"\x05", at(3)),
            ],
            // Not steps: another task's result, another order, another name.
            [
                event(4, EventType::TaskStarted, "step_2", "step", b"\x91\x06", at(4)),
                event(5, EventType::TaskCompleted, "step_3", "step", b"\x06", at(5)),
            ],
            [
                event(6, EventType::TaskCompleted, "step_4", "step", b"", at(6)),
                event(7, EventType::TaskStarted, "step_4", "step", b"\xc0", at(7)),
            ],
            [
                event(8, EventType::TaskStarted, "step_5", "step", b"\x90", at(8)),
                event(9, EventType::TaskCompleted, "step_5", "other", b"\x07", at(9)),
            ],
        ];
        for pair in &pairs {
            let writes = pair.iter().map(|e| Write::Append { execution_id: "a".into(), event: e.clone() });
            store.write(writes.collect()).await.unwrap();
        }
        let events = store.load("a").unwrap().unwrap().events;
        assert_eq!(&events[1..], pairs.concat());
    }

    /// Values are gathered into shared buffers when a log is loaded: small ones across several
    /// chunks, large ones on their own, and each event still reads back exactly its own.
    #[tokio::test]
    async fn a_loaded_log_reads_back_every_value_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        let value = |seq: u64| -> Vec<u8> {
            let len = match seq % 7 {
                0 => 0,
                1 => OWN_BUFFER,
                2 => OWN_BUFFER + 1,
                3 => 3 * OWN_BUFFER,
                _ => usize::try_from(seq).unwrap() % 300,
            };
            (0..len).map(|i| u8::try_from((i + usize::try_from(seq).unwrap()) % 251).unwrap()).collect()
        };
        let gathered: usize = (1..=120).map(|seq| value(seq).len()).filter(|&len| len <= OWN_BUFFER).sum();
        assert!(gathered > VALUE_CHUNK, "the gathered values must fill more than one chunk ({gathered} bytes)");
        let appends = (1..=120).map(|seq| Write::Append {
            execution_id: "a".into(),
            event: Event::new(seq, EventType::TaskCompleted, "t_1", "t", value(seq), SystemTime::now()),
        });
        store.write(std::iter::once(create("a")).chain(appends).collect()).await.unwrap();
        let events = store.load("a").unwrap().unwrap().events;
        assert_eq!(events.len(), 120);
        for event in &events {
            assert_eq!(event.value_bytes(), value(event.seq()), "event #{}", event.seq());
        }
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

    #[test]
    fn many_openers_of_a_new_file_all_succeed() {
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("fresh-{round}.db"));
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        barrier.wait();
                        SqliteStore::open(&path, Durability::Default).unwrap();
                    });
                }
            });
        }
    }

    #[tokio::test]
    async fn terminal_states_are_final() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Full).unwrap();
        let set = |s| Write::SetState { execution_id: "a".into(), state: s, output: None, time: SystemTime::now() };
        store.write(vec![create("a")]).await.unwrap();
        store.write(vec![set(ExecutionState::Completed)]).await.unwrap();
        let err = store.write(vec![set(ExecutionState::Running)]).await.unwrap_err();
        assert!(err.to_string().contains("already COMPLETED"), "{err}");
        assert_eq!(store.load("a").unwrap().unwrap().state, ExecutionState::Completed);
    }

    /// A database as flux wrote it at schema version 1: two executions (ids chosen so that
    /// their text order differs from their creation order) with interleaved events.
    fn version_1_database(path: &Path, orphan: bool) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "CREATE TABLE flux_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
             INSERT INTO flux_schema VALUES (1, 1);
             INSERT INTO executions (id, workflow_name, state, input, created_at, updated_at, worker,
                                     claim_generation)
                 VALUES ('zz-first', 'wf', 'RUNNING', x'c0', 1, 2, 'w1', 3);
             INSERT INTO executions (id, workflow_name, state, input, output, created_at, updated_at)
                 VALUES ('aa-second', 'wf', 'COMPLETED', x'c0', x'05', 4, 5);
             INSERT INTO events VALUES ('zz-first', 1, 'WORKFLOW_STARTED', 'wf_zz-first', 'wf', x'c0', 10);
             INSERT INTO events VALUES ('aa-second', 1, 'WORKFLOW_STARTED', 'wf_aa-second', 'wf', x'c0', 11);
             INSERT INTO events VALUES ('zz-first', 2, 'TASK_STARTED', 't_1', 't', x'90', 12);
             INSERT INTO events VALUES ('aa-second', 2, 'WORKFLOW_COMPLETED', 'wf_aa-second', 'wf', x'05', 13);",
        )
        .unwrap();
        if orphan {
            conn.execute("INSERT INTO events VALUES ('gone', 1, 'WORKFLOW_STARTED', 'wf_gone', 'wf', x'c0', 14)", [])
                .unwrap();
        }
    }

    fn summary(events: &[Event]) -> Vec<(u64, &str, &str, &[u8], i64)> {
        events
            .iter()
            .map(|e| (e.seq(), e.kind().as_str(), e.source_id(), e.value_bytes(), to_micros(e.time())))
            .collect()
    }

    #[tokio::test]
    async fn a_version_1_database_is_migrated_with_every_event_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_database(&path, false);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();

        let first = store.load("zz-first").unwrap().unwrap();
        assert_eq!(
            (first.state, first.worker.as_deref(), first.claim_generation),
            (ExecutionState::Running, Some("w1"), 3)
        );
        assert_eq!(
            summary(&first.events),
            [(1, "WORKFLOW_STARTED", "wf_zz-first", &b"\xc0"[..], 10), (2, "TASK_STARTED", "t_1", &b"\x90"[..], 12)]
        );
        let second = store.load("aa-second").unwrap().unwrap();
        assert_eq!((second.state, second.output.as_deref()), (ExecutionState::Completed, Some(&b"\x05"[..])));
        assert_eq!(
            summary(&second.events),
            [
                (1, "WORKFLOW_STARTED", "wf_aa-second", &b"\xc0"[..], 11),
                (2, "WORKFLOW_COMPLETED", "wf_aa-second", &b"\x05"[..], 13)
            ]
        );

        // The migrated log goes on where it stopped, and refuses what does not follow it.
        store.write(vec![append("zz-first", 3)]).await.unwrap();
        assert!(store.write(vec![append("zz-first", 3)]).await.is_err());
        store.write(vec![create("new"), append("new", 1)]).await.unwrap();
        assert_eq!(store.load("zz-first").unwrap().unwrap().events.len(), 3);
        drop(store);

        // VACUUM cannot renumber the key the events carry, and the view shows the text ids.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("VACUUM").unwrap();
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mut stmt =
            conn.prepare("SELECT execution_id, seq FROM execution_events ORDER BY execution_id, seq").unwrap();
        let rows: Vec<(String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap();
        let expected =
            [("aa-second", 1), ("aa-second", 2), ("new", 1), ("zz-first", 1), ("zz-first", 2), ("zz-first", 3)];
        assert_eq!(rows, expected.map(|(id, seq)| (id.to_string(), seq)));
        drop(stmt);
        drop(conn);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();
        assert_eq!(store.load("zz-first").unwrap().unwrap().events.len(), 3);
        assert_eq!(summary(&store.load("aa-second").unwrap().unwrap().events), summary(&second.events));
    }

    #[tokio::test]
    async fn nothing_follows_a_stored_seq_of_i64_max() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path, Durability::Default).unwrap();
        store.write(vec![create("a"), append("a", 1)]).await.unwrap();
        drop(store);
        // A damaged file: the last event's seq is the largest an INTEGER holds.
        Connection::open(&path).unwrap().execute("UPDATE events SET seq = ?1", [i64::MAX]).unwrap();
        let store = SqliteStore::open(&path, Durability::Default).unwrap();
        let err = store.write(vec![append("a", u64::try_from(i64::MAX).unwrap())]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        let err = store.write(vec![append("a", u64::MAX)]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        assert_eq!(store.load("a").unwrap().unwrap().events.len(), 1);
    }

    #[test]
    fn a_version_1_database_with_an_event_of_no_execution_is_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_database(&path, true);
        let Err(err) = SqliteStore::open(&path, Durability::Default) else { panic!("the migration is refused") };
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("1 events belong to no execution"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        let events: i64 =
            conn.query_row("SELECT count(*) FROM events WHERE execution_id = 'gone'", [], |r| r.get(0)).unwrap();
        assert_eq!((version, events), (1, 1));
    }
}
