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
//!
//! The parts: `schema` opens connections and migrates the file, `writer` queues batches and
//! commits them in groups, `lone` stores a group of a few appends with one statement, `apply`
//! applies any group in a transaction, `seqs` remembers the end of each log the writer
//! appended to, and `read` serves the reading connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use rusqlite::{Connection, ErrorCode};

use super::{
    AdmissionLimit, Admit, Commit, Durability, ExecutionFilter, ExecutionPage, ExecutionRow, Store, StoredExecution,
    StoredSchedule, Write,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;

/// The last seq a row of `events` holds: its own, or the next one if it holds two events (a
/// damaged row at the largest seq counts as ending there; reading the log then names it). The
/// log's end is this of its last row.
macro_rules! row_end {
    () => {
        "seq + (next_type IS NOT NULL AND seq < 9223372036854775807)"
    };
}

mod admit;
mod apply;
mod lone;
mod read;
mod schema;
mod seqs;
mod writer;

use schema::open_connection;
use writer::Shared;

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

/// The error for a failed SQLite call on the file at `path`: [`ErrorKind::Corrupt`] if the file
/// is not a database or is damaged, [`ErrorKind::Storage`] otherwise.
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
        schema::configure_writer(&conn, &path, durability)?;
        schema::migrate(&mut conn, &path)?;
        let (shared, writer) = Shared::start(conn, path.clone(), durability)?;
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
        self.shared.transactions()
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

impl Store for SqliteStore {
    fn write(&self, writes: Vec<Write>) -> Commit {
        self.shared.submit(writes, false)
    }

    fn write_deferred(&self, writes: Vec<Write>) -> Commit {
        self.shared.submit(writes, true)
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn state(&self, execution_id: &str) -> Result<Option<ExecutionState>> {
        self.with_reader(|conn| read::state(conn, &self.path, execution_id))
    }

    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        self.with_reader(|conn| read::load(conn, &self.path, execution_id))
    }

    fn list(&self, states: &[ExecutionState]) -> Result<Vec<ExecutionRow>> {
        self.with_reader(|conn| read::list(conn, &self.path, states))
    }

    fn list_executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage> {
        self.with_reader(|conn| read::list_executions(conn, &self.path, filter))
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>> {
        self.with_reader(|conn| read::cache_get(conn, &self.path, key, now))
    }

    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
        self.with_reader(|conn| read::secret_put(conn, &self.path, name, nonce, ciphertext))
    }

    fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.with_reader(|conn| read::secret_get(conn, &self.path, name))
    }

    fn secret_list(&self) -> Result<Vec<String>> {
        self.with_reader(|conn| read::secret_list(conn, &self.path))
    }

    fn secret_remove(&self, name: &str) -> Result<bool> {
        self.with_reader(|conn| read::secret_remove(conn, &self.path, name))
    }

    fn cache_clear(&self, task_name: Option<&str>) -> Result<u64> {
        self.with_reader(|conn| read::cache_clear(conn, &self.path, task_name))
    }

    fn schedule_put(&self, schedule: &StoredSchedule, expected: Option<u64>) -> Result<u64> {
        self.with_reader(|conn| read::schedule_put(conn, &self.path, schedule, expected))
    }

    fn schedule_get(&self, name: &str) -> Result<Option<StoredSchedule>> {
        self.with_reader(|conn| read::schedule_get(conn, &self.path, name))
    }

    fn schedule_list(&self) -> Result<Vec<StoredSchedule>> {
        self.with_reader(|conn| read::schedule_list(conn, &self.path))
    }

    fn schedule_delete(&self, name: &str) -> Result<bool> {
        self.with_reader(|conn| read::schedule_delete(conn, &self.path, name))
    }

    fn message_put(&self, execution_id: &str, topic: &str, key: Option<&str>, value: &[u8]) -> Result<bool> {
        self.with_reader(|conn| read::message_put(conn, &self.path, execution_id, topic, key, value))
    }

    fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        self.with_reader(|conn| read::message_get(conn, &self.path, execution_id, topic, index))
    }

    fn admit(&self, execution_id: &str, limits: &[AdmissionLimit], now: SystemTime) -> Result<Admit> {
        self.with_reader(|conn| admit::admit(conn, &self.path, execution_id, limits, now))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer commit what is pending and stop.
        self.shared.close();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// Writes the tests of this module's parts share.
#[cfg(test)]
mod testing {
    use std::sync::Arc;
    use std::time::SystemTime;

    use crate::event::{Event, EventType, ExecutionState};
    use crate::store::Write;

    pub(super) fn create(id: &str) -> Write {
        Write::CreateExecution {
            id: id.into(),
            workflow_name: "wf".into(),
            state: ExecutionState::Running,
            input: Arc::from(&b"\xc0"[..]),
            parent_id: None,
            version: 1,
            time: SystemTime::now(),
        }
    }

    pub(super) fn append(id: &str, seq: u64) -> Write {
        Write::Append {
            execution_id: id.into(),
            event: Event::new(seq, EventType::TaskStarted, "t_1", "t", &b"\x90"[..], SystemTime::now()),
        }
    }
}
