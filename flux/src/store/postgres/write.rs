//! The writer: one connection that commits every batch queued while it was busy in one
//! transaction, its writes checked by the rules of every store against the rows they touch,
//! read `FOR UPDATE`. Usually in two round trips ([`super::pipeline`]); when the database
//! refuses what the rules allowed, again with each batch under a savepoint (here).

use std::collections::HashMap;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_postgres::{Client, Statement, Transaction};

use super::describe_error;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{ExecutionState, from_micros, to_micros};
use crate::store::rules::{self, Holder};
use crate::store::{CommitSender, HOLD_WINDOW, Write};

/// At most this many batches share a commit.
const GROUP: usize = 256;

/// A batch of writes and who waits for its commit.
pub(super) struct Job {
    pub(super) writes: Vec<Write>,
    pub(super) reply: CommitSender,
    /// Nothing waits for it yet ([`Store::write_deferred`](crate::store::Store::write_deferred)):
    /// it may wait up to [`HOLD_WINDOW`] for a write to share its commit.
    pub(super) deferred: bool,
    /// A published message's notice ([`Store::publish`](crate::store::Store::publish)), sent
    /// in the commit of its group before the commit's own notices: other stores get it before
    /// they hear of the writes queued after it.
    pub(super) published: Option<String>,
}

/// The notices of `group`'s commit: the published messages in order, then what the `applied`
/// batches changed.
pub(super) fn notices_of<'w>(
    group: &'w [Job],
    applied: impl Iterator<Item = &'w [Write]>,
    notices: &super::notice::Channel,
) -> Vec<String> {
    let mut all: Vec<String> = group.iter().filter_map(|j| j.published.clone()).collect();
    all.extend(notices.payloads(applied));
    all
}

/// The writer's prepared statements: by primary key for the slow path (a batch at a time),
/// by id for the pipeline (see [`super::pipeline`]).
pub(super) struct Statements {
    row: Statement,
    pub(super) rows: Statement,
    pub(super) create_plain: Statement,
    pub(super) append_by_id: Statement,
    pub(super) last_seq_by_id: Statement,
    pub(super) delete_by_id: Statement,
    pub(super) claim_by_id: Statement,
    pub(super) lease_by_id: Statement,
    pub(super) set_state_by_id: Statement,
    create: Statement,
    append: Statement,
    last_seq: Statement,
    delete: Statement,
    pub(super) cache_put: Statement,
    claim: Statement,
    lease: Statement,
    set_state: Statement,
    pub(super) notify: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> std::result::Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            rows: client
                .prepare(
                    "SELECT id, pk, state, claim_generation, worker IS NOT NULL, owner, lease_until, last_seq
                     FROM executions WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                )
                .await?,
            create_plain: client
                .prepare(
                    "INSERT INTO executions (id, workflow_name, workflow_version, state, input, parent_id, created_at,
                                             updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .await?,
            append_by_id: client
                .prepare(
                    "INSERT INTO events (execution, seq, type, source_id, name, value, time)
                     SELECT pk, $2, $3, $4, $5, $6, $7 FROM executions WHERE id = $1",
                )
                .await?,
            last_seq_by_id: client.prepare("UPDATE executions SET last_seq = $2 WHERE id = $1").await?,
            delete_by_id: client.prepare("DELETE FROM executions WHERE id = $1").await?,
            claim_by_id: client
                .prepare("UPDATE executions SET worker = $2, claim_generation = $3 WHERE id = $1")
                .await?,
            lease_by_id: client.prepare("UPDATE executions SET owner = $2, lease_until = $3 WHERE id = $1").await?,
            set_state_by_id: client
                .prepare(
                    "UPDATE executions SET state = $2, output = COALESCE($3, output), updated_at = $4 WHERE id = $1",
                )
                .await?,
            row: client
                .prepare(
                    "SELECT pk, state, claim_generation, worker IS NOT NULL, owner, lease_until, last_seq
                     FROM executions WHERE id = $1 FOR UPDATE",
                )
                .await?,
            create: client
                .prepare(
                    "INSERT INTO executions (id, workflow_name, workflow_version, state, input, parent_id, created_at,
                                             updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (id) DO NOTHING
                     RETURNING pk",
                )
                .await?,
            append: client
                .prepare(
                    "INSERT INTO events (execution, seq, type, source_id, name, value, time)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await?,
            last_seq: client.prepare("UPDATE executions SET last_seq = $2 WHERE pk = $1").await?,
            delete: client.prepare("DELETE FROM executions WHERE pk = $1").await?,
            cache_put: client
                .prepare(
                    "INSERT INTO task_cache (key, task_name, value, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (key) DO UPDATE SET task_name = $2, value = $3, created_at = $4, expires_at = $5",
                )
                .await?,
            claim: client.prepare("UPDATE executions SET worker = $2, claim_generation = $3 WHERE pk = $1").await?,
            lease: client.prepare("UPDATE executions SET owner = $2, lease_until = $3 WHERE pk = $1").await?,
            set_state: client
                .prepare(
                    "UPDATE executions SET state = $2, output = COALESCE($3, output), updated_at = $4 WHERE pk = $1",
                )
                .await?,
            notify: client.prepare("SELECT pg_notify($1, $2)").await?,
        })
    }
}

/// Commits the jobs that arrive on `jobs` until the store goes; each commit tells the store's
/// listeners in other processes which executions it changed (see [`super::notice`]).
pub(super) async fn run(
    mut client: Client,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shown: String,
    notices: super::notice::Channel,
) {
    let statements = match Statements::prepare(&client).await {
        Ok(s) => s,
        Err(e) => {
            let error = describe_error(&shown, "cannot prepare the writes of", &e);
            while let Some(job) = jobs.recv().await {
                job.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    let mut group: Vec<Job> = Vec::new();
    while let Some(first) = jobs.recv().await {
        group.push(first);
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                // Only deferred writes so far: the write that follows them (a task's result
                // after its start) usually comes within the window, and shares the commit.
                Err(_) if group.iter().all(|j| j.deferred) => {
                    match tokio::time::timeout(HOLD_WINDOW, jobs.recv()).await {
                        Ok(Some(job)) => group.push(job),
                        Ok(None) | Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        let results = commit(&mut client, &statements, &group, &shown, &notices).await;
        for (job, result) in group.drain(..).zip(results) {
            job.reply.send(result);
        }
    }
}

/// Commits `group` in one transaction; the result of each job.
///
/// Usually in two round trips (see [`super::pipeline`]). If the database refuses what the rules
/// allowed, the group is committed again with each job under a savepoint, so that only the
/// refused ones are left out.
async fn commit(
    client: &mut Client,
    s: &Statements,
    group: &[Job],
    shown: &str,
    notices: &super::notice::Channel,
) -> Vec<Result<()>> {
    if let Some(results) = super::pipeline::commit(client, s, group, shown, notices).await {
        return results;
    }
    let failed = |e: &tokio_postgres::Error| describe_error(shown, "cannot commit to", e);
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return group.iter().map(|_| Err(failed(&e))).collect(),
    };
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = tx.batch_execute("SAVEPOINT batch").await {
            return group.iter().map(|_| Err(failed(&e))).collect();
        }
        let mut rows = HashMap::new();
        let applied = match apply(&tx, s, &job.writes, &mut rows, shown).await {
            Ok(()) => flush(&tx, s, &rows, shown).await,
            Err(e) => Err(e),
        };
        let end = if applied.is_ok() { "RELEASE SAVEPOINT batch" } else { "ROLLBACK TO SAVEPOINT batch" };
        if let Err(e) = tx.batch_execute(end).await {
            return group.iter().map(|_| Err(failed(&e))).collect();
        }
        results.push(applied);
    }
    let applied = group.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(j, _)| &j.writes[..]);
    if let Err(e) = notify(&tx, s, notices, &notices_of(group, applied, notices), shown).await {
        return group.iter().map(|_| Err(e.clone())).collect();
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => results.into_iter().map(|r| r.and(Err(failed(&e)))).collect(),
    }
}

/// What the rules look at in one execution, as the batch leaves it so far.
#[derive(Clone, Debug)]
pub(super) struct Row {
    pub(super) pk: i64,
    pub(super) state: ExecutionState,
    pub(super) generation: u64,
    pub(super) worker: bool,
    pub(super) owner: Option<String>,
    pub(super) until: Option<SystemTime>,
    pub(super) last_seq: i64,
    /// Whether `last_seq` moved in this batch.
    pub(super) appended: bool,
}

impl Row {
    pub(super) fn holder(&self) -> Holder<'_> {
        Holder { state: self.state, worker: self.worker, owner: self.owner.as_deref(), until: self.until }
    }
}

/// The executions a transaction touched so far, as its writes leave them (`None`: no such
/// execution, any more).
type Rows<'w> = HashMap<&'w str, Option<Row>>;

/// Applies one batch, or refuses it (its transaction or savepoint is then rolled back).
async fn apply<'w>(
    tx: &Transaction<'_>,
    s: &Statements,
    writes: &'w [Write],
    rows: &mut Rows<'w>,
    shown: &str,
) -> Result<()> {
    let err = |e: tokio_postgres::Error| describe_error(shown, "cannot write to", &e);
    for write in writes {
        match write {
            Write::CreateExecution { id, workflow_name, state, input, parent_id, version, time } => {
                if let Some(Some(_)) = rows.get(&**id) {
                    return Err(rules::already_exists(id));
                }
                let created = tx
                    .query_opt(
                        &s.create,
                        &[
                            &&**id,
                            &&**workflow_name,
                            &i64::from(*version),
                            &state.as_str(),
                            &&**input,
                            &parent_id.as_deref(),
                            &to_micros(*time),
                        ],
                    )
                    .await
                    .map_err(err)?;
                let Some(created) = created else { return Err(rules::already_exists(id)) };
                let row = Row {
                    pk: created.try_get(0).map_err(err)?,
                    state: *state,
                    generation: 0,
                    worker: false,
                    owner: None,
                    until: None,
                    last_seq: 0,
                    appended: false,
                };
                rows.insert(id, Some(row));
            }
            Write::Append { execution_id: id, event } => {
                let row = row(tx, s, rows, id, shown).await?;
                rules::check_append(id, event.seq, row.as_ref().map(|r| r.last_seq))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                let seq =
                    i64::try_from(event.seq).map_err(|_| rules::append_refused(id, event.seq, Some(row.last_seq)))?;
                tx.execute(
                    &s.append,
                    &[
                        &row.pk,
                        &seq,
                        &event.kind.as_str(),
                        &&*event.source_id,
                        &&*event.name,
                        &event.value_bytes(),
                        &to_micros(event.time),
                    ],
                )
                .await
                .map_err(err)?;
                row.last_seq = seq;
                row.appended = true;
            }
            Write::DeleteExecution { execution_id: id } => {
                let row = row(tx, s, rows, id, shown).await?;
                rules::check_delete(id, row.as_ref().map(|r| r.state))?;
                if let Some(r) = row.take() {
                    tx.execute(&s.delete, &[&r.pk]).await.map_err(err)?;
                }
            }
            Write::CachePut { key, task_name, value, expires_at } => {
                tx.execute(
                    &s.cache_put,
                    &[&&**key, &&**task_name, &&**value, &to_micros(SystemTime::now()), &expires_at.map(to_micros)],
                )
                .await
                .map_err(err)?;
            }
            Write::Claim { execution_id: id, worker, generation } => {
                let row = row(tx, s, rows, id, shown).await?;
                rules::check_claim(id, *generation, row.as_ref().map(|r| r.generation))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                let stored = i64::try_from(*generation).map_err(|_| {
                    Error::new(ErrorKind::InvalidState, format!("claim generation {generation} is too large"))
                })?;
                tx.execute(&s.claim, &[&row.pk, &worker.as_deref(), &stored]).await.map_err(err)?;
                (row.generation, row.worker) = (*generation, worker.is_some());
            }
            Write::Fence { execution_id: id, generation } => {
                let row = row(tx, s, rows, id, shown).await?;
                rules::check_fence(id, *generation, row.as_ref().map(|r| r.generation))?;
            }
            Write::Lease { execution_id: id, owner, until, mode } => {
                let row = row(tx, s, rows, id, shown).await?;
                rules::check_lease(id, owner, *mode, SystemTime::now(), row.as_ref().map(Row::holder))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                tx.execute(&s.lease, &[&row.pk, &&**owner, &to_micros(*until)]).await.map_err(err)?;
                (row.owner, row.until) = (Some(owner.to_string()), Some(*until));
            }
            Write::SetState { execution_id: id, state, output, time } => {
                let row = row(tx, s, rows, id, shown).await?;
                rules::check_set_state(id, *state, row.as_ref().map(|r| r.state))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                tx.execute(&s.set_state, &[&row.pk, &state.as_str(), &output.as_deref(), &to_micros(*time)])
                    .await
                    .map_err(err)?;
                row.state = *state;
            }
        }
    }
    Ok(())
}

/// Stores the end of each log the transaction appended to.
async fn flush(tx: &Transaction<'_>, s: &Statements, rows: &Rows<'_>, shown: &str) -> Result<()> {
    for row in rows.values().flatten().filter(|r| r.appended) {
        tx.execute(&s.last_seq, &[&row.pk, &row.last_seq])
            .await
            .map_err(|e| describe_error(shown, "cannot write to", &e))?;
    }
    Ok(())
}

/// Sends the notices of a commit, inside its transaction: PostgreSQL delivers them when (and
/// only if) it commits.
async fn notify(
    tx: &Transaction<'_>,
    s: &Statements,
    notices: &super::notice::Channel,
    payloads: &[String],
    shown: &str,
) -> Result<()> {
    for payload in payloads {
        tx.execute(&s.notify, &[&notices.name(), payload])
            .await
            .map_err(|e| describe_error(shown, "cannot notify the listeners of", &e))?;
    }
    Ok(())
}

/// Execution `id` as the batch leaves it so far, read (and locked) on first use.
async fn row<'r, 'w>(
    tx: &Transaction<'_>,
    s: &Statements,
    rows: &'r mut Rows<'w>,
    id: &'w str,
    shown: &str,
) -> Result<&'r mut Option<Row>> {
    if !rows.contains_key(id) {
        let err = |e: tokio_postgres::Error| describe_error(shown, "cannot read from", &e);
        let found = tx.query_opt(&s.row, &[&id]).await.map_err(err)?;
        let row = match found {
            None => None,
            Some(r) => {
                let state: String = r.try_get(1).map_err(err)?;
                let state = state
                    .parse()
                    .map_err(|e: Error| Error::new(ErrorKind::Corrupt, format!("execution `{id}`: {}", e.message())))?;
                Some(Row {
                    pk: r.try_get(0).map_err(err)?,
                    state,
                    generation: u64::try_from(r.try_get::<_, i64>(2).map_err(err)?).unwrap_or(0),
                    worker: r.try_get(3).map_err(err)?,
                    owner: r.try_get(4).map_err(err)?,
                    until: r.try_get::<_, Option<i64>>(5).map_err(err)?.map(from_micros),
                    last_seq: r.try_get(6).map_err(err)?,
                    appended: false,
                })
            }
        };
        rows.insert(id, row);
    }
    Ok(rows.entry(id).or_insert(None))
}
