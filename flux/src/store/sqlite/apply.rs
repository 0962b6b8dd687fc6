//! Applying writes to the database: a group of a few appends stored by one `INSERT` (a task's
//! step by a statement of its own), and any batch inside a transaction, write by write.

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
pub(super) fn insert_alone<'a>(
    conn: &Connection,
    seqs: &mut LastSeqs,
    writes: impl IntoIterator<Item = &'a Write>,
) -> Option<std::result::Result<(), WriteError>> {
    if !conn.is_autocommit() || !seqs.in_transaction.is_empty() {
        return None;
    }
    let mut rows: [Option<LoneRow<'_>>; LONE_ROWS] = [None; LONE_ROWS];
    let mut n = 0;
    for write in writes {
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
        if !rules::follows(end.seq, event.seq) {
            return None;
        }
        let seq = i64::try_from(event.seq).ok()?;
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

/// Applies `writes` in order inside the open transaction; a refused write refuses the batch.
fn apply<'a>(
    conn: &Connection,
    seqs: &mut LastSeqs,
    writes: impl IntoIterator<Item = &'a Write>,
) -> std::result::Result<(), WriteError> {
    let mut batch = Batch { conn, seqs, append: None };
    for w in writes {
        match w {
            Write::CreateExecution { id, workflow_name, state, input, parent_id, time } => {
                batch.create(id, workflow_name, *state, input, parent_id.as_deref(), *time)?;
            }
            Write::Append { execution_id, event } => batch.append(execution_id, event)?,
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
}

impl Batch<'_, '_> {
    fn create(
        &mut self,
        id: &Arc<str>,
        workflow_name: &str,
        state: ExecutionState,
        input: &[u8],
        parent_id: Option<&str>,
        time: SystemTime,
    ) -> std::result::Result<(), WriteError> {
        let t = to_micros(time);
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO executions (id, workflow_name, state, input, parent_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?;
        // The primary key refuses an id that exists.
        stmt.execute(params![&**id, workflow_name, state.as_str(), input, parent_id, t]).map_err(|e| {
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

    fn append(&mut self, execution_id: &Arc<str>, event: &Event) -> std::result::Result<(), WriteError> {
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
        let stmt = match &mut self.append {
            Some(stmt) => stmt,
            None => self.append.insert(conn.prepare_cached(
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
            // Another process appended this very seq since this writer's last look: the append
            // no longer follows the log, as if the memory had been out of date.
            let stored = self.seqs.stored_last(self.conn, execution_id)?;
            return Err(refused_append(execution_id, event.seq, stored));
        }
        self.seqs.wrote(execution_id, LogEnd { key: end.key, seq });
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
            let current: Option<String> = self
                .conn
                .query_row("SELECT state FROM executions WHERE id = ?1", [&**execution_id], |r| r.get(0))
                .optional()?;
            let from = match current.map(|s| s.parse::<ExecutionState>().map_err(|_| s)).transpose() {
                Ok(from) => from,
                Err(s) => {
                    let message = format!("execution `{execution_id}` has an unknown state `{s}`");
                    return Err(WriteError::Rejected(Error::new(ErrorKind::Corrupt, message)));
                }
            };
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
    use std::time::{Duration, SystemTime};

    use rusqlite::Connection;

    use super::super::SqliteStore;
    use super::super::testing::{append, create};
    use crate::error::ErrorKind;
    use crate::event::{Event, EventType, ExecutionState};
    use crate::store::{Durability, Store, Write};

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
