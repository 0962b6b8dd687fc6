//! Applying a group of batches inside a transaction, write by write, each write's rule stated in
//! its statement.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::{CachedStatement, Connection, ErrorCode, OptionalExtension, params};

use super::seqs::{LastSeqs, LogEnd};
use super::sql_error;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState, from_micros, to_micros};
use crate::store::rules::{self, Holder};
use crate::store::{LeaseMode, Write};

/// Why a batch was not applied.
pub(super) enum WriteError {
    /// The database failed.
    Sql(rusqlite::Error),
    /// The batch breaks a rule of the store.
    Rejected(Error),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sql(e)
    }
}

/// The error a refused or failed batch reports.
pub(super) fn describe_write_error(path: &Path, e: WriteError) -> Error {
    match e {
        WriteError::Sql(e) => sql_error(path, "cannot write to database", e),
        WriteError::Rejected(e) => e,
    }
}

/// The one `INSERT` of a sequential step: a task's `TASK_STARTED` and its `TASK_COMPLETED`,
/// which share the execution, the task id and the name, as one row (schema 8): the started
/// event's columns, and the completed event's type, value and time in `next_*`.
///
/// A second writer of the log is still refused by the primary key alone. Every writer appends at
/// the seq after the end it knows, and that end is always the end of a row: one it wrote or read
/// as the last. If the stored log has gone on past that end, its next row starts at exactly that
/// seq, whatever it holds, so the insert meets its key. (For an insert to slip into the middle of
/// a two-event row, a writer would have to know an end inside that row, which no row ends at.)
pub(super) const STEP_INSERT: &str =
    "INSERT INTO events (execution, seq, type, source_id, name, value, time, next_type, \
                           next_value, next_time)
     VALUES (?1, ?2, 'TASK_STARTED', ?3, ?4, ?5, ?6, 'TASK_COMPLETED', ?7, ?8)";

/// Whether two events of one log are a sequential step, the shape [`STEP_INSERT`] stores: a
/// task's start, then its result at the next seq.
pub(super) fn is_step(first: &Event, second: &Event) -> bool {
    first.kind == EventType::TaskStarted
        && second.kind == EventType::TaskCompleted
        && first.seq.checked_add(1) == Some(second.seq)
        && first.source_id == second.source_id
        && first.name == second.name
}

/// Applies `writes` in one transaction: all of them, or none.
pub(super) fn commit<'a>(
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

/// Applies `writes` in order inside the open transaction; a refused write refuses the batch.
fn apply<'a>(
    conn: &Connection,
    seqs: &mut LastSeqs,
    writes: impl IntoIterator<Item = &'a Write>,
) -> std::result::Result<(), WriteError> {
    let mut batch = Batch { conn, seqs, append: None, step: None };
    let mut writes = writes.into_iter().peekable();
    while let Some(w) = writes.next() {
        match w {
            Write::CreateExecution { id, workflow_name, state, input, parent_id, version, time } => {
                let new =
                    NewRow { workflow_name, version: *version, state: *state, input, parent_id: parent_id.as_deref() };
                batch.create(id, new, *time)?;
            }
            Write::Append { execution_id, event } => {
                // A task's start and its result, one after the other: one row (see `lone`).
                let result = match writes.peek() {
                    Some(Write::Append { execution_id: of, event: next })
                        if of == execution_id && is_step(event, next) =>
                    {
                        writes.next();
                        Some(next)
                    }
                    _ => None,
                };
                batch.append(execution_id, event, result)?;
            }
            Write::DeleteExecution { execution_id } => batch.delete(execution_id)?,
            Write::CachePut { key, task_name, value, expires_at } => {
                batch.cache_put(key, task_name, value, *expires_at)?;
            }
            Write::Claim { execution_id, worker, generation } => {
                batch.claim(execution_id, worker.as_deref(), *generation)?;
            }
            Write::Fence { execution_id, generation } => batch.fence(execution_id, *generation)?,
            Write::Lease { execution_id, owner, until, mode } => batch.lease(execution_id, owner, *until, *mode)?,
            Write::SetState { execution_id, state, output, time } => {
                batch.set_state(execution_id, *state, output.as_deref(), *time)?;
            }
        }
    }
    Ok(())
}

/// What a new execution's row holds besides its id and time.
struct NewRow<'a> {
    workflow_name: &'a str,
    version: u32,
    state: ExecutionState,
    input: &'a [u8],
    parent_id: Option<&'a str>,
}

/// The transaction a batch is applied in, and what it keeps between writes.
///
/// Each write states its rule (see `store::rules`) in its statement, so that a write that is
/// allowed costs no read; when the database refuses one, the store reads what the rule looks
/// at and lets it name the error.
struct Batch<'c, 's> {
    conn: &'c Connection,
    seqs: &'s mut LastSeqs,
    /// The statement of an append, taken from the statement cache once per transaction rather
    /// than once per event.
    append: Option<CachedStatement<'c>>,
    /// The same, of a step's two events in one row.
    step: Option<CachedStatement<'c>>,
}

impl Batch<'_, '_> {
    fn create(&mut self, id: &Arc<str>, new: NewRow<'_>, time: SystemTime) -> std::result::Result<(), WriteError> {
        let t = to_micros(time);
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO executions (id, workflow_name, workflow_version, state, input, parent_id, created_at,
                                     updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )?;
        let NewRow { workflow_name, version, state, input, parent_id } = new;
        // The unique id refuses an id that exists.
        stmt.execute(params![&**id, workflow_name, version, state.as_str(), input, parent_id, t]).map_err(|e| {
            if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
                refused(rules::check_create(id, true), || rules::already_exists(id))
            } else {
                WriteError::Sql(e)
            }
        })?;
        // Its events will carry the key the row was just given.
        self.seqs.wrote(id, LogEnd { key: self.conn.last_insert_rowid(), seq: 0 });
        Ok(())
    }

    /// Appends `event`, and `result` in the same row if it is given (a step: see [`is_step`]).
    fn append(
        &mut self,
        execution_id: &Arc<str>,
        event: &Event,
        result: Option<&Event>,
    ) -> std::result::Result<(), WriteError> {
        // The event must follow the stored log exactly: no gap, no second writer's event in
        // between.
        let end = match self.seqs.last(self.conn, execution_id)? {
            Some(end) if rules::follows(end.seq, event.seq) => end,
            // The remembered end may be stale (another process continued this execution): only
            // the stored log decides.
            Some(_) => match self.seqs.stored_last(self.conn, execution_id)? {
                Some(end) if rules::follows(end.seq, event.seq) => end,
                stored => return Err(refused_append(execution_id, event.seq, stored)),
            },
            // `last` found no execution in the stored log.
            None => return Err(refused_append(execution_id, event.seq, None)),
        };
        let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
        let conn = self.conn;
        let inserted = match result {
            None => {
                let stmt = match &mut self.append {
                    Some(stmt) => stmt,
                    None => self.append.insert(conn.prepare_cached(
                        "INSERT INTO events (execution, seq, type, source_id, name, value, time)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?),
                };
                stmt.execute(params![
                    end.key,
                    seq,
                    event.kind.as_str(),
                    &*event.source_id,
                    &*event.name,
                    &*event.value,
                    to_micros(event.time)
                ])
            }
            Some(result) => {
                let stmt = match &mut self.step {
                    Some(stmt) => stmt,
                    None => self.step.insert(conn.prepare_cached(STEP_INSERT)?),
                };
                stmt.execute(params![
                    end.key,
                    seq,
                    &*event.source_id,
                    &*event.name,
                    &*event.value,
                    to_micros(event.time),
                    &*result.value,
                    to_micros(result.time)
                ])
            }
        };
        if let Err(e) = inserted {
            if e.sqlite_error_code() != Some(ErrorCode::ConstraintViolation) {
                return Err(WriteError::Sql(e));
            }
            // Another process appended this very seq since this writer's last look: the append
            // no longer follows the log, as if the memory had been out of date.
            let stored = self.seqs.stored_last(self.conn, execution_id)?;
            return Err(refused_append(execution_id, event.seq, stored));
        }
        let last = result.map_or(seq, |r| i64::try_from(r.seq).unwrap_or(i64::MAX));
        self.seqs.wrote(execution_id, LogEnd { key: end.key, seq: last });
        Ok(())
    }

    fn delete(&mut self, execution_id: &Arc<str>) -> std::result::Result<(), WriteError> {
        // Only a finished execution: its row goes, then the log its key held.
        let key: Option<i64> = self
            .conn
            .prepare_cached(
                "DELETE FROM executions WHERE id = ?1 AND state IN ('COMPLETED', 'FAILED', 'CANCELLED') RETURNING pk",
            )?
            .query_row([&**execution_id], |r| r.get(0))
            .optional()?;
        let Some(key) = key else {
            let state = stored_state(self.conn, execution_id)?;
            return Err(refused(rules::check_delete(execution_id, state), || {
                rules::delete_refused(execution_id, state.unwrap_or(ExecutionState::Running))
            }));
        };
        self.conn.prepare_cached("DELETE FROM events WHERE execution = ?1")?.execute([key])?;
        // Nothing is appended to it any more; its key is never given again (AUTOINCREMENT).
        self.seqs.finished(execution_id);
        Ok(())
    }

    fn cache_put(
        &mut self,
        key: &str,
        task_name: &str,
        value: &[u8],
        expires_at: Option<SystemTime>,
    ) -> std::result::Result<(), WriteError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO task_cache (key, task_name, value, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET task_name = ?2, value = ?3, created_at = ?4, expires_at = ?5",
        )?;
        stmt.execute(params![key, task_name, value, to_micros(SystemTime::now()), expires_at.map(to_micros)])?;
        Ok(())
    }

    fn claim(
        &mut self,
        execution_id: &str,
        worker: Option<&str>,
        generation: u64,
    ) -> std::result::Result<(), WriteError> {
        // The generation after the stored one.
        let mut stmt = self.conn.prepare_cached(
            "UPDATE executions SET worker = ?2, claim_generation = ?3 WHERE id = ?1 AND claim_generation = ?3 - 1",
        )?;
        if stmt.execute(params![execution_id, worker, i64::try_from(generation).unwrap_or(i64::MAX)])? == 0 {
            let stored = stored_generation(self.conn, execution_id)?;
            return Err(refused(rules::check_claim(execution_id, generation, stored), || {
                rules::stale_generation(execution_id, generation, stored.unwrap_or(0))
            }));
        }
        Ok(())
    }

    fn fence(&mut self, execution_id: &str, generation: u64) -> std::result::Result<(), WriteError> {
        let stored = stored_generation(self.conn, execution_id)?;
        rules::check_fence(execution_id, generation, stored).map_err(WriteError::Rejected)
    }

    fn lease(
        &mut self,
        execution_id: &str,
        owner: &str,
        until: SystemTime,
        mode: LeaseMode,
    ) -> std::result::Result<(), WriteError> {
        let until = to_micros(until);
        // Stored times are whole microseconds: the statement and the rule compare the same ones.
        let now = to_micros(SystemTime::now());
        let conn = self.conn;
        let changed = match mode {
            LeaseMode::Own => conn
                .prepare_cached("UPDATE executions SET owner = ?2, lease_until = ?3 WHERE id = ?1")?
                .execute(params![execution_id, owner, until])?,
            LeaseMode::Renew => conn
                .prepare_cached("UPDATE executions SET lease_until = ?3 WHERE id = ?1 AND owner = ?2")?
                .execute(params![execution_id, owner, until])?,
            LeaseMode::TakeOver => conn
                .prepare_cached(
                    "UPDATE executions SET owner = ?2, lease_until = ?3
                     WHERE id = ?1 AND state IN ('RUNNING', 'CANCELLING') AND worker IS NULL
                       AND (lease_until IS NULL OR lease_until < ?4)",
                )?
                .execute(params![execution_id, owner, until, now])?,
        };
        if changed == 0 {
            return Err(lease_refused(conn, execution_id, owner, mode, now)?);
        }
        Ok(())
    }

    fn set_state(
        &mut self,
        execution_id: &Arc<str>,
        state: ExecutionState,
        output: Option<&[u8]>,
        time: SystemTime,
    ) -> std::result::Result<(), WriteError> {
        // A finished execution never changes, a cancelling one only finishes.
        let mut stmt = self.conn.prepare_cached(
            "UPDATE executions SET state = ?2, output = COALESCE(?3, output), updated_at = ?4
             WHERE id = ?1 AND state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
               AND (state <> 'CANCELLING' OR ?2 IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CANCELLING'))",
        )?;
        let changed = stmt.execute(params![&**execution_id, state.as_str(), output, to_micros(time)])?;
        if state.is_terminal() {
            self.seqs.finished(execution_id);
        }
        if changed == 0 {
            let from = stored_state(self.conn, execution_id)?;
            return Err(refused(rules::check_set_state(execution_id, state, from), || {
                rules::transition_refused(execution_id, from.unwrap_or(state), state)
            }));
        }
        Ok(())
    }
}

/// The error for a write the database refused, as the rules name it from what the database
/// holds now; `otherwise` should they allow it, which the statements agreeing with them rules
/// out.
fn refused(checked: Result<()>, otherwise: impl FnOnce() -> Error) -> WriteError {
    WriteError::Rejected(checked.err().unwrap_or_else(otherwise))
}

/// The error for an event that does not follow the stored log, which ends at `stored`.
fn refused_append(execution_id: &str, seq: u64, stored: Option<LogEnd>) -> WriteError {
    WriteError::Rejected(rules::append_refused(execution_id, seq, stored.map(|end| end.seq)))
}

/// The stored state of an execution, `None` if there is no such execution.
fn stored_state(conn: &Connection, execution_id: &str) -> std::result::Result<Option<ExecutionState>, WriteError> {
    let current: Option<String> = conn
        .prepare_cached("SELECT state FROM executions WHERE id = ?1")?
        .query_row([execution_id], |r| r.get(0))
        .optional()?;
    current
        .map(|s| {
            s.parse::<ExecutionState>().map_err(|_| {
                let message = format!("execution `{execution_id}` has an unknown state `{s}`");
                WriteError::Rejected(Error::new(ErrorKind::Corrupt, message))
            })
        })
        .transpose()
}

/// The stored claim generation of an execution, `None` if there is no such execution.
fn stored_generation(conn: &Connection, execution_id: &str) -> rusqlite::Result<Option<u64>> {
    let mut stmt = conn.prepare_cached("SELECT claim_generation FROM executions WHERE id = ?1")?;
    let stored: Option<i64> = stmt.query_row([execution_id], |r| r.get(0)).optional()?;
    Ok(stored.map(|generation| u64::try_from(generation).unwrap_or(0)))
}

/// Why a lease the database refused at `now` (in microseconds) could not be taken.
fn lease_refused(
    conn: &Connection,
    execution_id: &str,
    owner: &str,
    mode: LeaseMode,
    now: i64,
) -> rusqlite::Result<WriteError> {
    let row: Option<(String, bool, Option<String>, Option<i64>)> = conn
        .query_row(
            "SELECT state, worker IS NOT NULL, owner, lease_until FROM executions WHERE id = ?1",
            [execution_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let checked = match &row {
        None => rules::check_lease(execution_id, owner, mode, from_micros(now), None),
        Some((state, worker, held_by, until)) => match state.parse() {
            Ok(state) => {
                let holder =
                    Holder { state, worker: *worker, owner: held_by.as_deref(), until: until.map(from_micros) };
                rules::check_lease(execution_id, owner, mode, from_micros(now), Some(holder))
            }
            // No lease is taken of an execution in an unknown state.
            Err(_) => Ok(()),
        },
    };
    Ok(refused(checked, || rules::lease_refused(execution_id, mode)))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use rusqlite::Connection;

    use super::super::SqliteStore;
    use super::super::testing::{append, create};
    use crate::error::ErrorKind;
    use crate::event::{Event, EventType, ExecutionState};
    use crate::store::{Durability, Store, Write};

    /// In a transaction too (a new execution and its log in one batch, as a fork or a replay's
    /// fixture writes it), a task's start followed by its result is one row; a start followed by
    /// anything else stays a row of its own.
    #[tokio::test]
    async fn a_step_in_a_transaction_is_one_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_765_000_000_000_000);
        let event = |seq, kind, id: &str| Write::Append {
            execution_id: "a".into(),
            event: Event::new(seq, kind, id, "t", &b"\x90"[..], now),
        };
        let writes = vec![
            create("a"),
            event(1, EventType::WorkflowStarted, "wf_a"),
            event(2, EventType::TaskStarted, "t_2"),
            event(3, EventType::TaskCompleted, "t_2"),
            event(4, EventType::TaskStarted, "t_4"),
            event(5, EventType::TaskFailed, "t_4"),
        ];
        let expected: Vec<Event> = writes
            .iter()
            .filter_map(|w| if let Write::Append { event, .. } = w { Some(event.clone()) } else { None })
            .collect();
        store.write(writes).await.unwrap();
        assert_eq!(store.load("a").unwrap().unwrap().events, expected);
        let rows: Vec<(i64, Option<String>)> = Connection::open(store.path())
            .unwrap()
            .prepare("SELECT seq, next_type FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(1, None), (2, Some("TASK_COMPLETED".to_string())), (4, None), (5, None)]);
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
}

/// Each rule is stated twice in this store: in the statement that applies what it allows, and
/// in `rules`, which names the error when the statement refuses. These tests hold the two to
/// the same answers, case by case.
#[cfg(test)]
mod agreement {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::super::SqliteStore;
    use crate::error::{ErrorKind, Result};
    use crate::event::{ExecutionState, from_micros, to_micros};
    use crate::store::rules::{self, Holder};
    use crate::store::{Durability, LeaseMode, Store, Write};

    /// An answer as the tests compare it: accepted, or the kind and message of the error.
    fn answer(result: Result<()>) -> std::result::Result<(), (ErrorKind, String)> {
        result.map_err(|e| (e.kind(), e.to_string()))
    }

    fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap(), dir)
    }

    fn create_in(id: &str, state: ExecutionState) -> Write {
        let input = Arc::from(&b"\xc0"[..]);
        Write::CreateExecution {
            id: id.into(),
            workflow_name: "wf".into(),
            state,
            input,
            parent_id: None,
            version: 1,
            time: SystemTime::now(),
        }
    }

    fn set_state(id: &str, state: ExecutionState) -> Write {
        Write::SetState { execution_id: id.into(), state, output: None, time: SystemTime::now() }
    }

    fn claim(id: &str, worker: Option<&str>, generation: u64) -> Write {
        Write::Claim { execution_id: id.into(), worker: worker.map(Arc::from), generation }
    }

    fn lease(id: &str, owner: &str, until: SystemTime, mode: LeaseMode) -> Write {
        Write::Lease { execution_id: id.into(), owner: owner.into(), until, mode }
    }

    #[tokio::test]
    async fn state_changes_are_refused_as_the_rules_say() {
        let (store, _dir) = store();
        let pairs =
            || ExecutionState::ALL.iter().flat_map(|&from| ExecutionState::ALL.iter().map(move |&to| (from, to)));
        let id = |from: ExecutionState, to: ExecutionState| format!("{from}-{to}");
        store.write(pairs().map(|(from, to)| create_in(&id(from, to), from)).collect()).await.unwrap();
        for (from, to) in pairs() {
            let id = id(from, to);
            let stored = store.write(vec![set_state(&id, to)]).await;
            assert_eq!(answer(stored), answer(rules::check_set_state(&id, to, Some(from))), "{from} -> {to}");
        }
        let stored = store.write(vec![set_state("nope", ExecutionState::Running)]).await;
        assert_eq!(answer(stored), answer(rules::check_set_state("nope", ExecutionState::Running, None)));
    }

    #[tokio::test]
    async fn claims_and_fences_are_refused_as_the_rules_say() {
        let (store, _dir) = store();
        for stored in 0..3u64 {
            for generation in 0..5u64 {
                let id = format!("x{stored}-{generation}");
                let mut setup = vec![create_in(&id, ExecutionState::Scheduled)];
                setup.extend((1..=stored).map(|g| claim(&id, Some("w"), g)));
                store.write(setup).await.unwrap();
                let fenced = store.write(vec![Write::Fence { execution_id: id.as_str().into(), generation }]).await;
                let expected = rules::check_fence(&id, generation, Some(stored));
                assert_eq!(answer(fenced), answer(expected), "fence {generation} at {stored}");
                let claimed = store.write(vec![claim(&id, None, generation)]).await;
                let expected = rules::check_claim(&id, generation, Some(stored));
                assert_eq!(answer(claimed), answer(expected), "claim {generation} at {stored}");
            }
        }
        let claimed = store.write(vec![claim("nope", None, 1)]).await;
        assert_eq!(answer(claimed), answer(rules::check_claim("nope", 1, None)));
        let fenced = store.write(vec![Write::Fence { execution_id: "nope".into(), generation: 0 }]).await;
        assert_eq!(answer(fenced), answer(rules::check_fence("nope", 0, None)));
    }

    #[tokio::test]
    async fn leases_are_refused_as_the_rules_say() {
        let (store, _dir) = store();
        let now = SystemTime::now();
        let (past, future) = (now - Duration::from_secs(60), now + Duration::from_secs(60));
        let mut cases = Vec::new();
        for &state in ExecutionState::ALL {
            for worker in [false, true] {
                for held in [None, Some(("a", past)), Some(("a", future)), Some(("b", future))] {
                    for mode in [LeaseMode::Own, LeaseMode::Renew, LeaseMode::TakeOver] {
                        cases.push((format!("x{}", cases.len()), state, worker, held, mode));
                    }
                }
            }
        }
        let mut setup = Vec::new();
        for (id, state, worker, held, _) in &cases {
            setup.push(create_in(id, *state));
            setup.extend(worker.then(|| claim(id, Some("w"), 1)));
            setup.extend(held.map(|(owner, until)| lease(id, owner, until, LeaseMode::Own)));
        }
        store.write(setup).await.unwrap();
        for (id, state, worker, held, mode) in &cases {
            let taken = store.write(vec![lease(id, "a", future, *mode)]).await;
            let holder = Holder {
                state: *state,
                worker: *worker,
                owner: held.map(|(owner, _)| owner),
                until: held.map(|(_, until)| from_micros(to_micros(until))),
            };
            let expected = rules::check_lease(id, "a", *mode, SystemTime::now(), Some(holder));
            assert_eq!(answer(taken), answer(expected), "{mode:?} of {state}, worker {worker}, lease {held:?}");
        }
        let taken = store.write(vec![lease("nope", "a", future, LeaseMode::Own)]).await;
        assert_eq!(answer(taken), answer(rules::check_lease("nope", "a", LeaseMode::Own, now, None)));
    }

    #[tokio::test]
    async fn deletions_are_refused_as_the_rules_say() {
        let (store, _dir) = store();
        store.write(ExecutionState::ALL.iter().map(|&s| create_in(&format!("x-{s}"), s)).collect()).await.unwrap();
        for &state in ExecutionState::ALL {
            let id = format!("x-{state}");
            let deleted = store.write(vec![Write::delete_execution(id.as_str())]).await;
            assert_eq!(answer(deleted), answer(rules::check_delete(&id, Some(state))), "{state}");
        }
        let deleted = store.write(vec![Write::delete_execution("nope")]).await;
        assert_eq!(answer(deleted), answer(rules::check_delete("nope", None)));
    }
}
