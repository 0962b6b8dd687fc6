//! How a group of batches usually commits: in two round trips.
//!
//! The first sends `BEGIN` and reads (and locks, `FOR UPDATE`, in id order) every execution row
//! the group touches in one statement. The rules of [`Store`](crate::store::Store) are then
//! judged in memory, batch by batch, each from the rows as the batches before it leave them: a
//! refused batch is simply left out. The second round trip sends every write of the accepted
//! batches, the notices and `COMMIT` together, as one pipeline.
//!
//! If the database refuses a statement the rules allowed (another server created the same
//! execution meanwhile) or the connection fails, PostgreSQL turns the `COMMIT` into a rollback
//! and the writer commits the group the slow way instead (see `write::commit`).

use std::collections::HashMap;
use std::time::SystemTime;

use tokio_postgres::Client;

use super::notice;
use super::write::{Job, Row, Statements};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{from_micros, to_micros};
use crate::store::Write;
use crate::store::rules;

/// One statement of the pipeline, with its parameters.
enum Sql<'w> {
    Create {
        id: &'w str,
        workflow: &'w str,
        version: i64,
        state: &'static str,
        input: &'w [u8],
        parent: Option<&'w str>,
        time: i64,
    },
    Append {
        id: &'w str,
        seq: i64,
        kind: &'static str,
        source: &'w str,
        name: &'w str,
        value: &'w [u8],
        time: i64,
    },
    Delete {
        id: &'w str,
    },
    CachePut {
        key: &'w str,
        task_name: &'w str,
        value: &'w [u8],
        now: i64,
        expires: Option<i64>,
    },
    Claim {
        id: &'w str,
        worker: Option<&'w str>,
        generation: i64,
    },
    Lease {
        id: &'w str,
        owner: &'w str,
        until: i64,
    },
    SetState {
        id: &'w str,
        state: &'static str,
        output: Option<&'w [u8]>,
        time: i64,
    },
    LastSeq {
        id: String,
        seq: i64,
    },
}

impl Sql<'_> {
    async fn run(&self, c: &Client, s: &Statements) -> std::result::Result<u64, tokio_postgres::Error> {
        match self {
            Sql::Create { id, workflow, version, state, input, parent, time } => {
                c.execute(&s.create_plain, &[id, workflow, version, state, input, parent, time]).await
            }
            Sql::Append { id, seq, kind, source, name, value, time } => {
                c.execute(&s.append_by_id, &[id, seq, kind, source, name, value, time]).await
            }
            Sql::Delete { id } => c.execute(&s.delete_by_id, &[id]).await,
            Sql::CachePut { key, task_name, value, now, expires } => {
                c.execute(&s.cache_put, &[key, task_name, value, now, expires]).await
            }
            Sql::Claim { id, worker, generation } => c.execute(&s.claim_by_id, &[id, worker, generation]).await,
            Sql::Lease { id, owner, until } => c.execute(&s.lease_by_id, &[id, owner, until]).await,
            Sql::SetState { id, state, output, time } => {
                c.execute(&s.set_state_by_id, &[id, state, output, time]).await
            }
            Sql::LastSeq { id, seq } => c.execute(&s.last_seq_by_id, &[id, seq]).await,
        }
    }
}

/// The rows a group touches (`None`: no such execution), as the batches accepted so far leave
/// them.
type Rows<'w> = HashMap<&'w str, Option<Row>>;

/// The execution a write is about (`None` for a cache entry).
fn execution_of(write: &Write) -> Option<&str> {
    match write {
        Write::CreateExecution { id, .. } => Some(id),
        Write::Append { execution_id, .. }
        | Write::DeleteExecution { execution_id }
        | Write::Claim { execution_id, .. }
        | Write::Fence { execution_id, .. }
        | Write::Lease { execution_id, .. }
        | Write::SetState { execution_id, .. } => Some(execution_id),
        Write::CachePut { .. } => None,
    }
}

/// Judges one batch against `rows`: its statements and the rows it changed, or the error that
/// refuses it.
fn judge<'w>(writes: &'w [Write], rows: &Rows<'w>) -> Result<(Vec<Sql<'w>>, Rows<'w>)> {
    let mut changed: Rows<'w> = HashMap::new();
    let mut sql = Vec::with_capacity(writes.len());
    for write in writes {
        let Some(id) = execution_of(write) else {
            if let Write::CachePut { key, task_name, value, expires_at } = write {
                sql.push(Sql::CachePut {
                    key,
                    task_name,
                    value,
                    now: to_micros(SystemTime::now()),
                    expires: expires_at.map(to_micros),
                });
            }
            continue;
        };
        let row = changed.entry(id).or_insert_with(|| rows.get(id).cloned().flatten());
        match write {
            Write::CreateExecution { workflow_name, state, input, parent_id, version, time, .. } => {
                rules::check_create(id, row.is_some())?;
                *row = Some(Row {
                    pk: 0,
                    state: *state,
                    generation: 0,
                    worker: false,
                    owner: None,
                    until: None,
                    last_seq: 0,
                    appended: false,
                });
                sql.push(Sql::Create {
                    id,
                    workflow: workflow_name,
                    version: i64::from(*version),
                    state: state.as_str(),
                    input,
                    parent: parent_id.as_deref(),
                    time: to_micros(*time),
                });
            }
            Write::Append { event, .. } => {
                rules::check_append(id, event.seq, row.as_ref().map(|r| r.last_seq))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                let seq =
                    i64::try_from(event.seq).map_err(|_| rules::append_refused(id, event.seq, Some(row.last_seq)))?;
                (row.last_seq, row.appended) = (seq, true);
                sql.push(Sql::Append {
                    id,
                    seq,
                    kind: event.kind.as_str(),
                    source: &event.source_id,
                    name: &event.name,
                    value: event.value_bytes(),
                    time: to_micros(event.time),
                });
            }
            Write::DeleteExecution { .. } => {
                rules::check_delete(id, row.as_ref().map(|r| r.state))?;
                *row = None;
                sql.push(Sql::Delete { id });
            }
            Write::Claim { worker, generation, .. } => {
                rules::check_claim(id, *generation, row.as_ref().map(|r| r.generation))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                let stored = i64::try_from(*generation).map_err(|_| {
                    Error::new(ErrorKind::InvalidState, format!("claim generation {generation} is too large"))
                })?;
                (row.generation, row.worker) = (*generation, worker.is_some());
                sql.push(Sql::Claim { id, worker: worker.as_deref(), generation: stored });
            }
            Write::Fence { generation, .. } => {
                rules::check_fence(id, *generation, row.as_ref().map(|r| r.generation))?;
            }
            Write::Lease { owner, until, mode, .. } => {
                rules::check_lease(id, owner, *mode, SystemTime::now(), row.as_ref().map(Row::holder))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                (row.owner, row.until) = (Some(owner.to_string()), Some(*until));
                sql.push(Sql::Lease { id, owner, until: to_micros(*until) });
            }
            Write::SetState { state, output, time, .. } => {
                rules::check_set_state(id, *state, row.as_ref().map(|r| r.state))?;
                let Some(row) = row else { return Err(rules::not_found(id)) };
                row.state = *state;
                sql.push(Sql::SetState {
                    id,
                    state: state.as_str(),
                    output: output.as_deref(),
                    time: to_micros(*time),
                });
            }
            Write::CachePut { .. } => {}
        }
    }
    Ok((sql, changed))
}

/// Reads (and locks) the rows of `ids`; `None` if one holds a state this flux does not know
/// (the slow path names it).
async fn read_rows<'w>(client: &Client, s: &Statements, ids: &[&'w str]) -> Option<Rows<'w>> {
    let found = client.query(&s.rows, &[&ids]).await.ok()?;
    let mut rows: Rows<'w> = ids.iter().map(|id| (*id, None)).collect();
    for r in found {
        let id: &str = r.try_get(0).ok()?;
        let state: &str = r.try_get(2).ok()?;
        let row = Row {
            pk: r.try_get(1).ok()?,
            state: state.parse().ok()?,
            generation: u64::try_from(r.try_get::<_, i64>(3).ok()?).unwrap_or(0),
            worker: r.try_get(4).ok()?,
            owner: r.try_get(5).ok()?,
            until: r.try_get::<_, Option<i64>>(6).ok()?.map(from_micros),
            last_seq: r.try_get(7).ok()?,
            appended: false,
        };
        *rows.get_mut(id)? = Some(row);
    }
    Some(rows)
}

/// Commits `group` in two round trips; `None` when the database refused what the rules allowed
/// (nothing of the group is then committed).
pub(super) async fn commit(
    client: &Client,
    s: &Statements,
    group: &[Job],
    shown: &str,
    notices: &notice::Channel,
) -> Option<Vec<Result<()>>> {
    let mut ids: Vec<&str> = group.iter().flat_map(|j| j.writes.iter().filter_map(execution_of)).collect();
    ids.sort_unstable();
    ids.dedup();
    let (begun, read) = tokio::join!(client.batch_execute("BEGIN"), read_rows(client, s, &ids));
    let mut rows = match (begun, read) {
        (Ok(()), Some(rows)) => rows,
        _ => {
            let _ = client.batch_execute("ROLLBACK").await;
            return None;
        }
    };
    let mut results = Vec::with_capacity(group.len());
    let mut sql = Vec::new();
    for job in group {
        match judge(&job.writes, &rows) {
            Ok((statements, changed)) => {
                sql.extend(statements);
                rows.extend(changed);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    for (id, row) in &rows {
        if let Some(row) = row.as_ref().filter(|r| r.appended) {
            sql.push(Sql::LastSeq { id: (*id).to_string(), seq: row.last_seq });
        }
    }
    let accepted = group.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(j, _)| &j.writes[..]);
    let payloads = super::write::notices_of(group, accepted, notices);
    let channel = notices.name();
    let writes = futures::future::join_all(sql.iter().map(|q| q.run(client, s)));
    let notify = futures::future::join_all(
        payloads.iter().map(|p| async move { client.execute(&s.notify, &[&channel, p]).await }),
    );
    let (written, notified, committed) = tokio::join!(writes, notify, client.batch_execute("COMMIT"));
    if written.iter().any(Result::is_err) || notified.iter().any(Result::is_err) {
        // The transaction was aborted: its COMMIT rolled it back.
        return None;
    }
    if let Err(e) = committed {
        let error = super::describe_error(shown, "cannot commit to", &e);
        return Some(results.into_iter().map(|r| r.and(Err(error.clone()))).collect());
    }
    Some(results)
}
