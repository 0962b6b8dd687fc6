//! Reading, on the pool of reading connections: an execution with its log (values gathered in
//! shared chunks, names interned), the rows by state, one state, the task cache and the secrets
//! (whose few changes are made on these connections too).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use super::sql_error;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType, ExecutionState, Value, from_micros, to_micros};
use crate::store::{ExecutionFilter, ExecutionPage, ExecutionRow, StoredExecution, StoredSchedule};

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

/// The state of one execution.
pub(super) fn state(conn: &Connection, path: &Path, execution_id: &str) -> Result<Option<ExecutionState>> {
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
}

/// One execution with its whole log, read in one read transaction.
pub(super) fn load(conn: &mut Connection, path: &Path, execution_id: &str) -> Result<Option<StoredExecution>> {
    let err = |e| sql_error(path, "cannot read from database", e);
    let tx = conn.transaction().map_err(err)?;
    let Some((mut stored, key)) = read_execution(&tx, path, execution_id)? else {
        return Ok(None);
    };
    stored.events = read_log(&tx, path, execution_id, key)?;
    tx.finish().map_err(err)?;
    Ok(Some(stored))
}

/// The row of one execution, its log left empty, and its key; `None` if there is none.
fn read_execution(conn: &Connection, path: &Path, execution_id: &str) -> Result<Option<(StoredExecution, i64)>> {
    let err = |e| sql_error(path, "cannot read from database", e);
    let row = conn
        .query_row(
            "SELECT workflow_name, state, input, output, parent_id, created_at, updated_at, worker,
                    claim_generation, pk, workflow_version
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
                    r.get::<_, i64>(10)?,
                ))
            },
        )
        .optional()
        .map_err(err)?;
    let Some((
        workflow_name,
        state,
        input,
        output,
        parent_id,
        created_at,
        updated_at,
        worker,
        generation,
        key,
        version,
    )) = row
    else {
        return Ok(None);
    };
    let corrupt = |what: String| Error::new(ErrorKind::Corrupt, format!("execution `{execution_id}`: {what}"));
    let state: ExecutionState = state.parse().map_err(|e: Error| corrupt(e.message().to_string()))?;
    let version = u32::try_from(version).map_err(|_| corrupt(format!("its workflow version {version} is not one")))?;
    let stored = StoredExecution {
        id: execution_id.to_string(),
        workflow_name,
        version,
        state,
        input,
        output,
        parent_id,
        created_at: from_micros(created_at),
        updated_at: from_micros(updated_at),
        worker,
        claim_generation: u64::try_from(generation).unwrap_or(0),
        events: Vec::new(),
    };
    Ok(Some((stored, key)))
}

/// The last seq of the log of the execution whose key is `?1` (one backward seek on the primary
/// key).
const LAST_SEQ: &str = concat!("SELECT ", row_end!(), " FROM events WHERE execution = ?1 ORDER BY seq DESC LIMIT 1");

/// The log of the execution whose key is `key`, in order.
fn read_log(conn: &Connection, path: &Path, execution_id: &str, key: i64) -> Result<Vec<Event>> {
    let err = |e| sql_error(path, "cannot read from database", e);
    // Seqs run 1, 2, 3... without a gap: the last one is the number of events.
    let count: Option<i64> = conn
        .prepare_cached(LAST_SEQ)
        .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
        .map_err(err)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, type, source_id, name, value, time, next_type, next_value, next_time FROM events
             WHERE execution = ?1 ORDER BY seq",
        )
        .map_err(err)?;
    let mut rows = stmt.query([key]).map_err(err)?;
    let mut log = LogReader {
        // With room for the few events a run appends after replaying the log (its end at
        // least), so that the first of them does not copy the whole log to grow it.
        events: Vec::with_capacity(count.and_then(|c| usize::try_from(c).ok()).unwrap_or(0).min(1 << 20) + 8),
        strings: Interner::default(),
        values: Values::new(),
        last: None,
    };
    while let Some(r) = rows.next().map_err(err)? {
        log.push(r, path, execution_id)?;
    }
    log.values.finish(&mut log.events);
    Ok(log.events)
}

/// A log being read, row by row.
///
/// A task's events mostly follow one another, and neighbours mostly share a name: a column
/// equal to the previous row's reuses its value without decoding it again. Other names are
/// shared through the interner (there are few of them); another source id gets its own
/// allocation, since most are new.
struct LogReader {
    events: Vec<Event>,
    strings: Interner,
    values: Values,
    /// The type, source id and name of the previous row.
    last: Option<(EventType, Arc<str>, Arc<str>)>,
}

impl LogReader {
    /// Decodes one row of the log and adds its event, or its two events (a row with `next_*`
    /// columns: the second is at the next seq, of the same source id and name).
    fn push(&mut self, r: &rusqlite::Row<'_>, path: &Path, execution_id: &str) -> Result<()> {
        let err = |e| sql_error(path, "cannot read from database", e);
        let seq: i64 = r.get(0).map_err(err)?;
        let corrupt =
            |what: &str| Error::new(ErrorKind::Corrupt, format!("execution `{execution_id}` event #{seq}: {what}"));
        let bytes = |i: usize| match r.get_ref(i).map_err(err)? {
            rusqlite::types::ValueRef::Text(t) => Ok(t),
            _ => Err(corrupt("a text column holds another type")),
        };
        let text = |t| utf8(t).ok_or_else(|| corrupt("text is not UTF-8"));
        let parse = |t| text(t)?.parse().map_err(|e: Error| corrupt(e.message()));
        let (kind_bytes, source_bytes, name_bytes) = (bytes(1)?, bytes(2)?, bytes(3)?);
        let (kind, source_id, name) = match &self.last {
            Some((kind, source_id, name)) => (
                match kind.as_str().as_bytes() == kind_bytes {
                    true => *kind,
                    false => parse(kind_bytes)?,
                },
                match source_id.as_bytes() == source_bytes {
                    true => source_id.clone(),
                    false => Arc::from(text(source_bytes)?),
                },
                match name.as_bytes() == name_bytes {
                    true => name.clone(),
                    false => self.strings.get(text(name_bytes)?),
                },
            ),
            None => (parse(kind_bytes)?, Arc::from(text(source_bytes)?), self.strings.get(text(name_bytes)?)),
        };
        let value = self.value(r.get_ref(4).map_err(err)?).ok_or_else(|| corrupt("its value is not a blob"))?;
        let time: i64 = r.get(5).map_err(err)?;
        let seq = u64::try_from(seq).unwrap_or(0);
        let second = match r.get_ref(6).map_err(err)? {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Text(t) => Some(match t == EventType::TaskCompleted.as_str().as_bytes() {
                true => EventType::TaskCompleted,
                false => parse(t)?,
            }),
            _ => return Err(corrupt("a text column holds another type")),
        };
        let event = Event { seq, kind, source_id, name, value, time: from_micros(time) };
        let Some(next_kind) = second else {
            self.last = Some((kind, event.source_id.clone(), event.name.clone()));
            self.events.push(event);
            return Ok(());
        };
        let next_seq =
            seq.checked_add(1).filter(|s| i64::try_from(*s).is_ok()).ok_or_else(|| corrupt("no seq follows it"))?;
        let (source_id, name) = (event.source_id.clone(), event.name.clone());
        self.events.push(event);
        let value = self
            .value(r.get_ref(7).map_err(err)?)
            .ok_or_else(|| corrupt("the value of the event after it is not a blob"))?;
        let time: i64 =
            r.get::<_, Option<i64>>(8).map_err(err)?.ok_or_else(|| corrupt("the event after it has no time"))?;
        self.last = Some((next_kind, source_id.clone(), name.clone()));
        self.events.push(Event { seq: next_seq, kind: next_kind, source_id, name, value, time: from_micros(time) });
        Ok(())
    }

    /// The value of the event about to be pushed, from its column; `None` if that is not a blob.
    fn value(&mut self, column: rusqlite::types::ValueRef<'_>) -> Option<Value> {
        match column {
            rusqlite::types::ValueRef::Blob(b) => {
                let index = self.events.len();
                Some(self.values.add(&mut self.events, index, b))
            }
            _ => None,
        }
    }
}

/// The columns of an execution's row, as [`row_of`] reads them.
const ROW_COLUMNS: &str = "id, workflow_name, workflow_version, state, worker, claim_generation, created_at, updated_at, \
                           parent_id, owner, lease_until";

/// An execution's row, from a statement selecting [`ROW_COLUMNS`].
fn row_of(r: &rusqlite::Row<'_>, path: &Path) -> Result<ExecutionRow> {
    let err = |e| sql_error(path, "cannot read from database", e);
    let id: String = r.get(0).map_err(err)?;
    let corrupt = |what: String| Error::new(ErrorKind::Corrupt, format!("execution `{id}`: {what}"));
    let version: i64 = r.get(2).map_err(err)?;
    let version = u32::try_from(version).map_err(|_| corrupt(format!("its workflow version {version} is not one")))?;
    let state: String = r.get(3).map_err(err)?;
    let state = state.parse().map_err(|e: Error| corrupt(e.message().to_string()))?;
    Ok(ExecutionRow {
        workflow_name: r.get(1).map_err(err)?,
        version,
        state,
        worker: r.get(4).map_err(err)?,
        claim_generation: u64::try_from(r.get::<_, i64>(5).map_err(err)?).unwrap_or(0),
        created_at: from_micros(r.get(6).map_err(err)?),
        updated_at: from_micros(r.get(7).map_err(err)?),
        parent_id: r.get(8).map_err(err)?,
        owner: r.get(9).map_err(err)?,
        lease_until: r.get::<_, Option<i64>>(10).map_err(err)?.map(from_micros),
        id,
    })
}

/// The rows of the executions in any of `states`, oldest change first.
pub(super) fn list(conn: &Connection, path: &Path, states: &[ExecutionState]) -> Result<Vec<ExecutionRow>> {
    let err = |e| sql_error(path, "cannot read from database", e);
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM executions WHERE state IN (SELECT value FROM json_each(?1)) ORDER BY updated_at, id"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
    let wanted = format!("[{}]", states.iter().map(|s| format!("\"{}\"", s.as_str())).collect::<Vec<_>>().join(","));
    let mut rows = stmt.query([wanted]).map_err(err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        out.push(row_of(r, path)?);
    }
    Ok(out)
}

/// The `WHERE` clause of `filter` and its parameters, numbered from `?1`. Each condition is one
/// an index answers: `executions_by_workflow (workflow_name, state, created_at)`,
/// `executions_of_workflow (workflow_name, created_at)`, `executions_by_created`,
/// `executions_by_state (state, updated_at)`, `executions_by_parent`.
fn filter_clause(filter: &ExecutionFilter) -> (String, Vec<SqlValue>) {
    /// Adds `value` to `params`; its placeholder.
    fn bind(params: &mut Vec<SqlValue>, value: SqlValue) -> String {
        params.push(value);
        format!("?{}", params.len())
    }
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(workflow) = &filter.workflow {
        conditions.push(format!("workflow_name = {}", bind(&mut params, SqlValue::Text(workflow.clone()))));
    }
    if !filter.states.is_empty() {
        let states: Vec<String> =
            filter.states.iter().map(|s| bind(&mut params, SqlValue::Text(s.as_str().to_string()))).collect();
        conditions.push(format!("state IN ({})", states.join(", ")));
    }
    for (condition, at) in filter.time_bounds() {
        conditions.push(format!("{condition} {}", bind(&mut params, SqlValue::Integer(to_micros(at)))));
    }
    if !filter.parents.is_empty() {
        let parents: Vec<String> =
            filter.parents.iter().map(|p| bind(&mut params, SqlValue::Text(p.clone()))).collect();
        conditions.push(format!("parent_id IN ({})", parents.join(", ")));
    }
    if let Some((prefix, len)) = filter.schedule_ids() {
        // A range of the unique index on `id` (`_` is followed by `` ` `` in byte order), then
        // the length in bytes, which leaves out the ids of a schedule named `{name}_…`.
        let above = format!("{}`", &prefix[..prefix.len() - 1]);
        let from = bind(&mut params, SqlValue::Text(prefix));
        let to = bind(&mut params, SqlValue::Text(above));
        let len = bind(&mut params, SqlValue::Integer(i64::try_from(len).unwrap_or(i64::MAX)));
        conditions.push(format!("id >= {from} AND id < {to} AND length(CAST(id AS BLOB)) = {len}"));
    }
    let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    (clause, params)
}

/// A page of the executions `filter` asks for, newest first, and how many match, in one read
/// transaction.
pub(super) fn list_executions(conn: &mut Connection, path: &Path, filter: &ExecutionFilter) -> Result<ExecutionPage> {
    filter.check()?;
    let err = |e| sql_error(path, "cannot list the executions of", e);
    let (clause, mut params) = filter_clause(filter);
    let tx = conn.transaction().map_err(err)?;
    let total: i64 = tx
        .prepare_cached(&format!("SELECT count(*) FROM executions {clause}"))
        .and_then(|mut stmt| stmt.query_row(rusqlite::params_from_iter(&params), |r| r.get(0)))
        .map_err(err)?;
    // The key is the order of creation: it orders executions created at the same instant, and
    // every index holds it, so that an index on `created_at` gives the order without a sort.
    let n = params.len();
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM executions {clause} ORDER BY created_at DESC, pk DESC LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    );
    params.push(SqlValue::Integer(i64::from(filter.limit)));
    params.push(SqlValue::Integer(i64::try_from(filter.offset).unwrap_or(i64::MAX)));
    let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(&params)).map_err(err)?;
    let mut executions = Vec::with_capacity(filter.limit as usize);
    while let Some(r) = rows.next().map_err(err)? {
        executions.push(row_of(r, path)?);
    }
    drop(rows);
    drop(stmt);
    tx.finish().map_err(err)?;
    Ok(ExecutionPage::new(executions, u64::try_from(total).unwrap_or(0)))
}

/// A cached result still valid at `now`.
pub(super) fn cache_get(conn: &Connection, path: &Path, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>> {
    let mut stmt = conn
        .prepare_cached("SELECT value FROM task_cache WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)")
        .map_err(|e| sql_error(path, "cannot read the task cache of", e))?;
    stmt.query_row(params![key, to_micros(now)], |r| r.get(0))
        .optional()
        .map_err(|e| sql_error(path, "cannot read the task cache of", e))
}

/// Stores (or replaces) a secret. Secrets, like the cache's clearing, are changed on a reading
/// connection, outside the writer's queue.
pub(super) fn secret_put(conn: &Connection, path: &Path, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET nonce = ?2, ciphertext = ?3, updated_at = ?4",
        params![name, nonce, ciphertext, to_micros(SystemTime::now())],
    )
    .map(|_| ())
    .map_err(|e| sql_error(path, "cannot store a secret in", e))
}

/// A secret's nonce and ciphertext.
pub(super) fn secret_get(conn: &Connection, path: &Path, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    conn.query_row("SELECT nonce, ciphertext FROM secrets WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(|e| sql_error(path, "cannot read a secret from", e))
}

/// The names of the secrets, sorted.
pub(super) fn secret_list(conn: &Connection, path: &Path) -> Result<Vec<String>> {
    let err = |e| sql_error(path, "cannot list the secrets of", e);
    let mut stmt = conn.prepare("SELECT name FROM secrets ORDER BY name").map_err(err)?;
    let names = stmt.query_map([], |r| r.get(0)).map_err(err)?;
    names.collect::<std::result::Result<Vec<String>, _>>().map_err(err)
}

/// Removes a secret; whether it existed.
pub(super) fn secret_remove(conn: &Connection, path: &Path, name: &str) -> Result<bool> {
    conn.execute("DELETE FROM secrets WHERE name = ?1", [name])
        .map(|n| n > 0)
        .map_err(|e| sql_error(path, "cannot remove a secret from", e))
}

/// Removes cached results (all, or one task's); how many.
pub(super) fn cache_clear(conn: &Connection, path: &Path, task_name: Option<&str>) -> Result<u64> {
    let changed = match task_name {
        Some(name) => conn.execute("DELETE FROM task_cache WHERE task_name = ?1", [name]),
        None => conn.execute("DELETE FROM task_cache", []),
    };
    changed.map(|n| n as u64).map_err(|e| sql_error(path, "cannot clear the task cache of", e))
}

/// Stores a new schedule, or replaces one still at revision `expected` (each one statement,
/// so two processes cannot both win); the revision it now has.
pub(super) fn schedule_put(
    conn: &Connection,
    path: &Path,
    schedule: &StoredSchedule,
    expected: Option<u64>,
) -> Result<u64> {
    let err = |e| sql_error(path, "cannot store a schedule in", e);
    let now = to_micros(SystemTime::now());
    let Some(expected) = expected else {
        let created = conn
            .execute(
                "INSERT INTO schedules (name, workflow_name, body, revision, updated_at) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![schedule.name, schedule.workflow_name, schedule.body, now],
            )
            .map_err(err)?;
        return if created == 1 { Ok(1) } else { Err(crate::store::schedule_exists(&schedule.name)) };
    };
    let revision = i64::try_from(expected).map_err(|_| bad_revision(&schedule.name, expected))?;
    let replaced = conn
        .execute(
            "UPDATE schedules SET workflow_name = ?2, body = ?3, revision = revision + 1, updated_at = ?4
             WHERE name = ?1 AND revision = ?5",
            params![schedule.name, schedule.workflow_name, schedule.body, now, revision],
        )
        .map_err(err)?;
    if replaced == 1 {
        return Ok(expected + 1);
    }
    match schedule_get(conn, path, &schedule.name)? {
        Some(stored) => Err(crate::store::schedule_moved(&schedule.name, expected, stored.revision)),
        None => Err(crate::store::schedule_not_found(&schedule.name)),
    }
}

fn bad_revision(name: &str, revision: u64) -> Error {
    Error::new(ErrorKind::Conflict, format!("schedule `{name}` has no revision {revision}"))
}

const SCHEDULE_COLUMNS: &str = "name, workflow_name, body, revision, updated_at";

fn schedule_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSchedule> {
    let revision: i64 = r.get(3)?;
    Ok(StoredSchedule {
        name: r.get(0)?,
        workflow_name: r.get(1)?,
        body: r.get(2)?,
        revision: u64::try_from(revision).unwrap_or(0),
        updated_at: from_micros(r.get(4)?),
    })
}

/// One schedule.
pub(super) fn schedule_get(conn: &Connection, path: &Path, name: &str) -> Result<Option<StoredSchedule>> {
    conn.query_row(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1"), [name], schedule_of)
        .optional()
        .map_err(|e| sql_error(path, "cannot read a schedule from", e))
}

/// Every schedule, by name.
pub(super) fn schedule_list(conn: &Connection, path: &Path) -> Result<Vec<StoredSchedule>> {
    let err = |e| sql_error(path, "cannot list the schedules of", e);
    let mut stmt = conn.prepare(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name")).map_err(err)?;
    let rows = stmt.query_map([], schedule_of).map_err(err)?;
    rows.collect::<std::result::Result<Vec<_>, _>>().map_err(err)
}

/// Removes a schedule; whether it existed.
pub(super) fn schedule_delete(conn: &Connection, path: &Path, name: &str) -> Result<bool> {
    conn.execute("DELETE FROM schedules WHERE name = ?1", [name])
        .map(|n| n > 0)
        .map_err(|e| sql_error(path, "cannot remove a schedule from", e))
}

/// Keeps a message; `false` for a duplicate of its key.
pub(super) fn message_put(
    conn: &Connection,
    path: &Path,
    execution_id: &str,
    topic: &str,
    key: Option<&str>,
    value: &[u8],
) -> Result<bool> {
    conn.execute(
        "INSERT INTO messages (execution_id, topic, key, value, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (execution_id, topic, key) WHERE key IS NOT NULL DO NOTHING",
        params![execution_id, topic, key, value, to_micros(SystemTime::now())],
    )
    .map(|n| n == 1)
    .map_err(|e| sql_error(path, "cannot keep a message in", e))
}

/// The `index`-th message of a topic.
pub(super) fn message_get(
    conn: &Connection,
    path: &Path,
    execution_id: &str,
    topic: &str,
    index: u64,
) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT value FROM messages WHERE execution_id = ?1 AND topic = ?2 ORDER BY id LIMIT 1 OFFSET ?3",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![execution_id, topic, i64::try_from(index).unwrap_or(i64::MAX)], |r| r.get(0)).optional()
    })
    .map_err(|e| sql_error(path, "cannot read a message from", e))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::super::SqliteStore;
    use super::super::testing::create;
    use super::{OWN_BUFFER, VALUE_CHUNK};
    use crate::event::{Event, EventType};
    use crate::store::{Durability, Store, Write};

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

    /// The listings read through an index, never by scanning the table: the plan of each
    /// common filter names an index, and those of a workflow, a state of it, or a time window
    /// need no sort (a parent's sub-workflows, several states or the retention's old
    /// executions are sorted once found).
    #[test]
    fn listings_are_answered_from_indexes() {
        use crate::event::ExecutionState;
        use crate::store::ExecutionFilter;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        drop(SqliteStore::open(&path, Durability::Default).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let day = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        let filters = [
            ExecutionFilter::new(),
            ExecutionFilter::new().workflow("wf").state(ExecutionState::Completed).offset(100),
            ExecutionFilter::new().workflow("wf").created_after(day),
            ExecutionFilter::new().created_after(day).created_before(day),
            ExecutionFilter::new().parent("p"),
            ExecutionFilter::new().finished().updated_before(day),
        ];
        for filter in filters {
            let (clause, params) = super::filter_clause(&filter);
            for sql in [
                format!("SELECT count(*) FROM executions {clause}"),
                format!("SELECT {} FROM executions {clause} ORDER BY created_at DESC, pk DESC", super::ROW_COLUMNS),
            ] {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let plan: Vec<String> = stmt
                    .query_map(rusqlite::params_from_iter(&params), |r| r.get(3))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let plan = plan.join("; ");
                assert!(plan.contains("INDEX"), "{filter:?}: {sql}: {plan}");
                let whole_scan = plan.contains("SCAN executions") && !plan.contains("USING");
                assert!(!whole_scan, "{filter:?} scans the table: {plan}");
                let sorted = filter.states.len() > 1 || filter.updated_before.is_some() || !filter.parents.is_empty();
                if !sorted && sql.contains("ORDER BY") {
                    assert!(!plan.contains("TEMP B-TREE"), "{filter:?} sorts: {plan}");
                }
            }
        }
    }
}
