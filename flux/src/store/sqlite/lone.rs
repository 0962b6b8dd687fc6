//! A group of a few appends, each following the end of its log as the writer remembers it,
//! stored by one `INSERT` outside an explicit transaction; a task's step (its `TASK_STARTED` and
//! `TASK_COMPLETED`) as one row, by a statement of its own.

use std::sync::Arc;

use rusqlite::{Connection, ErrorCode};

use super::apply::{STEP_INSERT, WriteError, is_step};
use super::seqs::{LastSeqs, LogEnd};
use crate::event::{Event, to_micros};
use crate::store::Write;
use crate::store::rules;

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
/// `None` leaves the group to [`commit`](super::apply::commit): a group of anything else, or an append the memory does
/// not vouch for. An insert that meets a row another process wrote meanwhile (the primary key
/// refuses it, and SQLite undoes the whole statement) is also left to `commit`, which reads the
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
        [Some(started), Some(ended), None, None] if started.0 == ended.0 && is_step(started.1, ended.1) => {
            insert_step(conn, &started, &ended)
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::SqliteStore;
    use super::super::testing::{append, create};
    use crate::error::ErrorKind;
    use crate::event::{Event, EventType};
    use crate::store::{Durability, Store, Write};

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
        // The step is one row (its seq the started event's), the other pairs two rows each.
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        let rows: Vec<(i64, Option<String>)> = conn
            .prepare("SELECT seq, next_type FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let completed = Some("TASK_COMPLETED".to_string());
        assert_eq!(rows, [(1, None), (2, completed), (4, None), (5, None), (6, None), (7, None), (8, None), (9, None)]);
    }

    /// A writer whose memory of a log is stale meets a step another process stored as one row:
    /// its append is refused by the row's key, never stored inside the step.
    #[tokio::test]
    async fn a_stale_writer_is_refused_by_a_step_stored_as_one_row() {
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        let b = SqliteStore::open(dir.path().join("f.db"), Durability::Default).unwrap();
        a.write(vec![create("x"), append("x", 1)]).await.unwrap();
        let now = SystemTime::now();
        let step = |seq, id: &str| {
            [EventType::TaskStarted, EventType::TaskCompleted]
                .into_iter()
                .enumerate()
                .map(|(i, kind)| Write::Append {
                    execution_id: "x".into(),
                    event: Event::new(seq + i as u64, kind, id, "t", &b"\x90"[..], now),
                })
                .collect::<Vec<_>>()
        };
        // b stores #2 and #3 as one row; a still remembers the log ending at #1.
        b.write(step(2, "t_b")).await.unwrap();
        for (writes, what) in [(vec![append("x", 2)], "one event"), (step(2, "t_a"), "a step")] {
            let err = a.write(writes).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidState, "{what}: {err}");
            assert!(err.to_string().contains("its last event is #3"), "{what}: {err}");
        }
        let seqs = |id| {
            a.load(id).unwrap().unwrap().events.iter().map(|e| (e.seq(), e.source_id().to_string())).collect::<Vec<_>>()
        };
        assert_eq!(seqs("x"), [(1, "t_1".to_string()), (2, "t_b".to_string()), (3, "t_b".to_string())]);
        // Having read the stored end, a goes on after b's step, as one row again.
        a.write(step(4, "t_a")).await.unwrap();
        assert_eq!(seqs("x").iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }
}
