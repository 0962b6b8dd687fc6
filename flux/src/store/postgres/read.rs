//! Reads, on the reading connections: an execution with its log, rows by state and by filter,
//! one state, the task cache and the secrets (whose few changes are made here too, outside the
//! writer's queue, as on SQLite).

use std::sync::Arc;
use std::time::SystemTime;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::describe_error;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, ExecutionState, Value, from_micros, to_micros};
use crate::store::{ExecutionFilter, ExecutionPage, ExecutionRow, StoredExecution, StoredSchedule};

/// The columns of an execution's row, as [`row_of`] reads them.
const ROW_COLUMNS: &str = "id, workflow_name, workflow_version, state, worker, claim_generation, created_at, updated_at, \
                           parent_id, owner, lease_until";

/// A reading connection and its prepared statements.
pub(super) struct Reader {
    client: Client,
    shown: String,
    execution: Statement,
    log: Statement,
    state: Statement,
    cache: Statement,
}

impl Reader {
    pub(super) async fn new(client: Client, shown: &str) -> Result<Reader> {
        let err = |e: tokio_postgres::Error| describe_error(shown, "cannot prepare the reads of", &e);
        let execution = client
            .prepare(
                "SELECT workflow_name, state, input, output, parent_id, created_at, updated_at, worker,
                        claim_generation, pk, workflow_version
                 FROM executions WHERE id = $1",
            )
            .await
            .map_err(err)?;
        let log = client
            .prepare("SELECT seq, type, source_id, name, value, time FROM events WHERE execution = $1 ORDER BY seq")
            .await
            .map_err(err)?;
        let state = client.prepare("SELECT state FROM executions WHERE id = $1").await.map_err(err)?;
        let cache = client
            .prepare("SELECT value FROM task_cache WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)")
            .await
            .map_err(err)?;
        Ok(Reader { client, shown: shown.to_string(), execution, log, state, cache })
    }

    fn err(&self, context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
        move |e| describe_error(&self.shown, context, &e)
    }

    /// One execution with its log: the row, then the log (two statements, so a log may hold
    /// events appended after the row was read, never fewer than the row had).
    pub(super) async fn load(&self, id: &str) -> Result<Option<StoredExecution>> {
        let err = self.err("cannot read from");
        let row = self.client.query_opt(&self.execution, &[&id]).await.map_err(&err)?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |what: String| Error::new(ErrorKind::Corrupt, format!("execution `{id}`: {what}"));
        let state: String = row.try_get(1).map_err(&err)?;
        let state: ExecutionState = state.parse().map_err(|e: Error| corrupt(e.message().to_string()))?;
        let version: i64 = row.try_get(10).map_err(&err)?;
        let version =
            u32::try_from(version).map_err(|_| corrupt(format!("its workflow version {version} is not one")))?;
        let key: i64 = row.try_get(9).map_err(&err)?;
        let mut stored = StoredExecution {
            id: id.to_string(),
            workflow_name: row.try_get(0).map_err(&err)?,
            version,
            state,
            input: row.try_get(2).map_err(&err)?,
            output: row.try_get(3).map_err(&err)?,
            parent_id: row.try_get(4).map_err(&err)?,
            created_at: from_micros(row.try_get(5).map_err(&err)?),
            updated_at: from_micros(row.try_get(6).map_err(&err)?),
            worker: row.try_get(7).map_err(&err)?,
            claim_generation: u64::try_from(row.try_get::<_, i64>(8).map_err(&err)?).unwrap_or(0),
            events: Vec::new(),
        };
        let rows = self.client.query(&self.log, &[&key]).await.map_err(&err)?;
        stored.events.reserve(rows.len() + 8);
        let mut names: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
        for r in rows {
            let seq: i64 = r.try_get(0).map_err(&err)?;
            let corrupt = |what: &str| Error::new(ErrorKind::Corrupt, format!("execution `{id}` event #{seq}: {what}"));
            let kind: &str = r.try_get(1).map_err(&err)?;
            let name: &str = r.try_get(3).map_err(&err)?;
            let name = match names.get(name) {
                Some(shared) => shared.clone(),
                None => {
                    let shared: Arc<str> = Arc::from(name);
                    names.insert(shared.clone());
                    shared
                }
            };
            let value: &[u8] = r.try_get(4).map_err(&err)?;
            stored.events.push(Event {
                seq: u64::try_from(seq).map_err(|_| corrupt("its seq is negative"))?,
                kind: kind.parse().map_err(|e: Error| corrupt(e.message()))?,
                source_id: Arc::from(r.try_get::<_, &str>(2).map_err(&err)?),
                name,
                value: Value::from(Arc::<[u8]>::from(value)),
                time: from_micros(r.try_get(5).map_err(&err)?),
            });
        }
        Ok(Some(stored))
    }

    pub(super) async fn state(&self, id: &str) -> Result<Option<ExecutionState>> {
        let row = self.client.query_opt(&self.state, &[&id]).await.map_err(self.err("cannot read from"))?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get(0).map_err(self.err("cannot read from"))?;
        state
            .parse()
            .map(Some)
            .map_err(|e: Error| Error::new(ErrorKind::Corrupt, format!("execution `{id}`: {}", e.message())))
    }

    pub(super) async fn list(&self, states: &[ExecutionState]) -> Result<Vec<ExecutionRow>> {
        let err = self.err("cannot read from");
        let wanted: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let sql = format!("SELECT {ROW_COLUMNS} FROM executions WHERE state = ANY($1) ORDER BY updated_at, id");
        let rows = self.client.query(&sql, &[&wanted]).await.map_err(&err)?;
        rows.iter().map(|r| row_of(r, &err)).collect()
    }

    /// A page of the executions `filter` asks for, newest first, and how many match, read by one
    /// statement (so one snapshot).
    pub(super) async fn list_executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage> {
        let err = self.err("cannot list the executions of");
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut conditions = Vec::new();
        let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>, value: Box<dyn ToSql + Sync + Send>| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(workflow) = &filter.workflow {
            conditions.push(format!("workflow_name = {}", bind(&mut params, Box::new(workflow.clone()))));
        }
        if !filter.states.is_empty() {
            let states: Vec<String> = filter.states.iter().map(|s| s.as_str().to_string()).collect();
            conditions.push(format!("state = ANY({})", bind(&mut params, Box::new(states))));
        }
        for (condition, at) in filter.time_bounds() {
            conditions.push(format!("{condition} {}", bind(&mut params, Box::new(to_micros(at)))));
        }
        if !filter.parents.is_empty() {
            conditions.push(format!("parent_id = ANY({})", bind(&mut params, Box::new(filter.parents.clone()))));
        }
        if let Some((prefix, len)) = filter.schedule_ids() {
            let len = bind(&mut params, Box::new(i32::try_from(len).unwrap_or(i32::MAX)));
            let prefix = bind(&mut params, Box::new(prefix));
            conditions.push(format!("octet_length(id) = {len} AND starts_with(id, {prefix})"));
        }
        let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let limit = bind(&mut params, Box::new(i64::from(filter.limit)));
        let offset = bind(&mut params, Box::new(i64::try_from(filter.offset).unwrap_or(i64::MAX)));
        // The key is the order of creation: it orders executions created at the same instant.
        let sql = format!(
            "WITH matching AS (SELECT pk, {ROW_COLUMNS} FROM executions {clause})
             SELECT (SELECT count(*) FROM matching), page.*
             FROM (SELECT 1) AS one
             LEFT JOIN (SELECT {ROW_COLUMNS} FROM matching ORDER BY created_at DESC, pk DESC LIMIT {limit} OFFSET {offset})
                 AS page ON true"
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&sql, &refs).await.map_err(&err)?;
        let total: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(&err)?,
            None => 0,
        };
        let mut executions = Vec::with_capacity(rows.len());
        for r in &rows {
            if r.try_get::<_, Option<String>>(1).map_err(&err)?.is_some() {
                executions.push(row_at(r, 1, &err)?);
            }
        }
        Ok(ExecutionPage::new(executions, u64::try_from(total).unwrap_or(0)))
    }

    pub(super) async fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>> {
        let row = self
            .client
            .query_opt(&self.cache, &[&key, &to_micros(now)])
            .await
            .map_err(self.err("cannot read the task cache of"))?;
        row.map(|r| r.try_get(0)).transpose().map_err(self.err("cannot read the task cache of"))
    }

    pub(super) async fn cache_clear(&self, task_name: Option<&str>) -> Result<u64> {
        let err = self.err("cannot clear the task cache of");
        match task_name {
            Some(name) => self.client.execute("DELETE FROM task_cache WHERE task_name = $1", &[&name]).await,
            None => self.client.execute("DELETE FROM task_cache", &[]).await,
        }
        .map_err(err)
    }

    pub(super) async fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET nonce = $2, ciphertext = $3, updated_at = $4",
                &[&name, &nonce, &ciphertext, &to_micros(SystemTime::now())],
            )
            .await
            .map(|_| ())
            .map_err(self.err("cannot store a secret in"))
    }

    pub(super) async fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let err = self.err("cannot read a secret from");
        let row = self
            .client
            .query_opt("SELECT nonce, ciphertext FROM secrets WHERE name = $1", &[&name])
            .await
            .map_err(&err)?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose().map_err(&err)
    }

    pub(super) async fn secret_list(&self) -> Result<Vec<String>> {
        let err = self.err("cannot list the secrets of");
        // `COLLATE "C"`: byte order, as the other stores sort.
        let rows =
            self.client.query("SELECT name FROM secrets ORDER BY name COLLATE \"C\"", &[]).await.map_err(&err)?;
        rows.iter().map(|r| r.try_get(0)).collect::<std::result::Result<_, _>>().map_err(&err)
    }

    pub(super) async fn catalog_put(&self, name: &str, version: u32) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO catalog (name, version, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET version = GREATEST(catalog.version, $2), updated_at = $3",
                &[&name, &i64::from(version), &to_micros(SystemTime::now())],
            )
            .await
            .map(|_| ())
            .map_err(self.err("cannot record a workflow in"))
    }

    pub(super) async fn catalog_list(&self) -> Result<Vec<(String, u32)>> {
        let err = self.err("cannot list the workflows of");
        let rows = self
            .client
            .query("SELECT name, version FROM catalog ORDER BY name COLLATE \"C\"", &[])
            .await
            .map_err(&err)?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get(1).map_err(&err)?;
                Ok((r.try_get(0).map_err(&err)?, u32::try_from(version).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    pub(super) async fn schedule_put(&self, schedule: &StoredSchedule, expected: Option<u64>) -> Result<u64> {
        let err = self.err("cannot store a schedule in");
        let now = to_micros(SystemTime::now());
        let Some(expected) = expected else {
            let created = self
                .client
                .execute(
                    "INSERT INTO schedules (name, workflow_name, body, revision, updated_at) VALUES ($1, $2, $3, 1, $4)
                     ON CONFLICT (name) DO NOTHING",
                    &[&schedule.name, &schedule.workflow_name, &schedule.body, &now],
                )
                .await
                .map_err(&err)?;
            return if created == 1 { Ok(1) } else { Err(crate::store::schedule_exists(&schedule.name)) };
        };
        let revision = i64::try_from(expected).unwrap_or(i64::MAX);
        let replaced = self
            .client
            .execute(
                "UPDATE schedules SET workflow_name = $2, body = $3, revision = revision + 1, updated_at = $4
                 WHERE name = $1 AND revision = $5",
                &[&schedule.name, &schedule.workflow_name, &schedule.body, &now, &revision],
            )
            .await
            .map_err(&err)?;
        if replaced == 1 {
            return Ok(expected + 1);
        }
        match self.schedule_get(&schedule.name).await? {
            Some(stored) => Err(crate::store::schedule_moved(&schedule.name, expected, stored.revision)),
            None => Err(crate::store::schedule_not_found(&schedule.name)),
        }
    }

    pub(super) async fn schedule_get(&self, name: &str) -> Result<Option<StoredSchedule>> {
        let err = self.err("cannot read a schedule from");
        let row = self
            .client
            .query_opt(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = $1"), &[&name])
            .await
            .map_err(&err)?;
        row.map(|r| schedule_of(&r)).transpose().map_err(&err)
    }

    pub(super) async fn schedule_list(&self) -> Result<Vec<StoredSchedule>> {
        let err = self.err("cannot list the schedules of");
        let rows = self
            .client
            .query(&format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name COLLATE \"C\""), &[])
            .await
            .map_err(&err)?;
        rows.iter().map(schedule_of).collect::<std::result::Result<_, _>>().map_err(&err)
    }

    pub(super) async fn schedule_delete(&self, name: &str) -> Result<bool> {
        self.client
            .execute("DELETE FROM schedules WHERE name = $1", &[&name])
            .await
            .map(|n| n > 0)
            .map_err(self.err("cannot remove a schedule from"))
    }

    /// Keeps a message; `false` for a duplicate of its key. Inserted in a transaction holding
    /// an advisory lock of the execution's topic, so that the messages of a topic commit in the
    /// order of their ids (a reader never sees a later one before an earlier one).
    pub(super) async fn message_put(
        &self,
        execution_id: &str,
        topic: &str,
        key: Option<&str>,
        value: &[u8],
    ) -> Result<bool> {
        let err = self.err("cannot keep a message in");
        // Two topics whose names hash alike only wait for each other.
        let lock = format!("{execution_id}/{topic}");
        let sql = "WITH locked AS (SELECT pg_advisory_xact_lock(hashtextextended($1, 0)))
             INSERT INTO messages (execution_id, topic, key, value, created_at)
             SELECT $2, $3, $4, $5, $6 FROM locked
             ON CONFLICT (execution_id, topic, key) WHERE key IS NOT NULL DO NOTHING";
        let now = to_micros(SystemTime::now());
        let inserted =
            self.client.execute(sql, &[&lock, &execution_id, &topic, &key, &value, &now]).await.map_err(&err)?;
        Ok(inserted == 1)
    }

    pub(super) async fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        let err = self.err("cannot read a message from");
        let offset = i64::try_from(index).unwrap_or(i64::MAX);
        let row = self
            .client
            .query_opt(
                "SELECT value FROM messages WHERE execution_id = $1 AND topic = $2 ORDER BY id LIMIT 1 OFFSET $3",
                &[&execution_id, &topic, &offset],
            )
            .await
            .map_err(&err)?;
        row.map(|r| r.try_get(0)).transpose().map_err(&err)
    }

    pub(super) async fn secret_remove(&self, name: &str) -> Result<bool> {
        self.client
            .execute("DELETE FROM secrets WHERE name = $1", &[&name])
            .await
            .map(|n| n > 0)
            .map_err(self.err("cannot remove a secret from"))
    }
}

/// An execution's row, from a statement selecting [`ROW_COLUMNS`].
fn row_of(r: &Row, err: &impl Fn(tokio_postgres::Error) -> Error) -> Result<ExecutionRow> {
    row_at(r, 0, err)
}

/// An execution's row, from [`ROW_COLUMNS`] starting at column `at`.
fn row_at(r: &Row, at: usize, err: &impl Fn(tokio_postgres::Error) -> Error) -> Result<ExecutionRow> {
    let id: String = r.try_get(at).map_err(err)?;
    let corrupt = |what: String| Error::new(ErrorKind::Corrupt, format!("execution `{id}`: {what}"));
    let version: i64 = r.try_get(at + 2).map_err(err)?;
    let version = u32::try_from(version).map_err(|_| corrupt(format!("its workflow version {version} is not one")))?;
    let state: String = r.try_get(at + 3).map_err(err)?;
    let state = state.parse().map_err(|e: Error| corrupt(e.message().to_string()))?;
    Ok(ExecutionRow {
        workflow_name: r.try_get(at + 1).map_err(err)?,
        version,
        state,
        worker: r.try_get(at + 4).map_err(err)?,
        claim_generation: u64::try_from(r.try_get::<_, i64>(at + 5).map_err(err)?).unwrap_or(0),
        created_at: from_micros(r.try_get(at + 6).map_err(err)?),
        updated_at: from_micros(r.try_get(at + 7).map_err(err)?),
        parent_id: r.try_get(at + 8).map_err(err)?,
        owner: r.try_get(at + 9).map_err(err)?,
        lease_until: r.try_get::<_, Option<i64>>(at + 10).map_err(err)?.map(from_micros),
        id,
    })
}

const SCHEDULE_COLUMNS: &str = "name, workflow_name, body, revision, updated_at";

fn schedule_of(r: &Row) -> std::result::Result<StoredSchedule, tokio_postgres::Error> {
    let revision: i64 = r.try_get(3)?;
    Ok(StoredSchedule {
        name: r.try_get(0)?,
        workflow_name: r.try_get(1)?,
        body: r.try_get(2)?,
        revision: u64::try_from(revision).unwrap_or(0),
        updated_at: from_micros(r.try_get(4)?),
    })
}
