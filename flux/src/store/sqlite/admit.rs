//! Admissions ([`Store::admit`](crate::store::Store::admit)) on a reading connection: the
//! counts and the record in one `IMMEDIATE` transaction, which holds the file's write lock, so
//! that every process's admissions (and every writer) wait for it.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, params};

use super::sql_error;
use crate::error::Result;
use crate::event::{from_micros, to_micros};
use crate::store::{AdmissionLimit, Admit, Found, RESTING, rate_since};

/// [`Store::admit`](crate::store::Store::admit): the counts and the admission in one
/// `IMMEDIATE` transaction, which holds the file's write lock (every process's admissions, and
/// every writer, wait for it).
pub(super) fn admit(
    conn: &mut Connection,
    path: &Path,
    execution_id: &str,
    limits: &[AdmissionLimit],
    now: SystemTime,
) -> Result<Admit> {
    let err = |e| sql_error(path, "cannot admit an execution in", e);
    // An admission's commit need not reach the disk by itself: the execution's start, which the
    // writer commits after it in the same log, carries it there (and one lost with a crash of
    // the machine is asked for again). The connection's other writes keep their `FULL`.
    conn.execute_batch("PRAGMA synchronous = NORMAL").map_err(err)?;
    let admitted = transaction(conn, path, execution_id, limits, now);
    conn.execute_batch("PRAGMA synchronous = FULL").map_err(err)?;
    admitted
}

fn transaction(
    conn: &mut Connection,
    path: &Path,
    execution_id: &str,
    limits: &[AdmissionLimit],
    now: SystemTime,
) -> Result<Admit> {
    let err = |e| sql_error(path, "cannot admit an execution in", e);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    for limit in limits {
        let since = to_micros(rate_since(limit, now));
        // Admissions that neither hold a place nor count toward the rate any more go.
        let forget = format!(
            "DELETE FROM admissions WHERE scope = ?1 AND admitted_at <= ?2 AND NOT EXISTS
                 (SELECT 1 FROM executions e WHERE e.id = admissions.execution_id AND e.state NOT IN ({RESTING}))"
        );
        tx.prepare_cached(&forget).and_then(|mut stmt| stmt.execute(params![limit.scope, since])).map_err(err)?;
        let count = format!(
            "SELECT
                 EXISTS (SELECT 1 FROM admissions WHERE scope = ?1 AND execution_id = ?2),
                 (SELECT count(*) FROM admissions a JOIN executions e ON e.id = a.execution_id
                  WHERE a.scope = ?1 AND a.execution_id <> ?2 AND e.state NOT IN ({RESTING})),
                 (SELECT count(*) FROM admissions WHERE scope = ?1 AND execution_id <> ?2 AND admitted_at > ?3),
                 (SELECT min(admitted_at) FROM admissions WHERE scope = ?1 AND execution_id <> ?2 AND admitted_at > ?3)"
        );
        let found = tx
            .prepare_cached(&count)
            .and_then(|mut stmt| {
                stmt.query_row(params![limit.scope, execution_id, since], |r| {
                    Ok(Found {
                        admitted: r.get(0)?,
                        holding: r.get::<_, i64>(1)?.max(0) as u64,
                        recent: r.get::<_, i64>(2)?.max(0) as u64,
                        first_recent: r.get::<_, Option<i64>>(3)?.map(from_micros),
                    })
                })
            })
            .map_err(err)?;
        if let Some(refused) = found.refusal(limit) {
            return Ok(refused);
        }
    }
    for limit in limits {
        tx.prepare_cached(
            "INSERT INTO admissions (scope, execution_id, admitted_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope, execution_id) DO NOTHING",
        )
        .and_then(|mut stmt| stmt.execute(params![limit.scope, execution_id, to_micros(now)]))
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(Admit::Yes)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::SqliteStore;
    use super::super::testing::create;
    use crate::event::ExecutionState;
    use crate::store::{AdmissionLimit, Admit, Durability, Store, Write};

    fn limit(concurrency: Option<usize>, rate: Option<(u32, Duration)>) -> AdmissionLimit {
        AdmissionLimit { scope: "queue:q".to_string(), concurrency, rate }
    }

    #[tokio::test]
    async fn admissions_count_the_executions_holding_a_place_and_the_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("flux.db"), Durability::Default).unwrap();
        for id in ["a", "b", "c"] {
            store.write(vec![create(id)]).await.unwrap();
        }
        let now = SystemTime::now();
        let two = [limit(Some(2), None)];
        assert_eq!(store.admit("a", &two, now).unwrap(), Admit::Yes);
        assert_eq!(store.admit("b", &two, now).unwrap(), Admit::Yes);
        assert_eq!(store.admit("c", &two, now).unwrap(), Admit::No { retry_at: None }, "two hold a place");
        assert_eq!(store.admit("a", &two, now).unwrap(), Admit::Yes, "admitted before");
        // A paused execution gives its place back; a finished one too.
        let pause =
            Write::SetState { execution_id: "a".into(), state: ExecutionState::Paused, output: None, time: now };
        store.write(vec![pause]).await.unwrap();
        assert_eq!(store.admit("c", &two, now).unwrap(), Admit::Yes);

        // Three a minute: the fourth waits until a minute after the first.
        let rate = [AdmissionLimit {
            scope: "queue:r".to_string(),
            concurrency: None,
            rate: Some((3, Duration::from_secs(60))),
        }];
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(store.admit(id, &rate, now + Duration::from_secs(i as u64)).unwrap(), Admit::Yes);
        }
        store.write(vec![create("d")]).await.unwrap();
        let refused = store.admit("d", &rate, now + Duration::from_secs(10)).unwrap();
        let expected = now + Duration::from_secs(60);
        match refused {
            Admit::No { retry_at: Some(at) } => {
                let off = at.duration_since(expected).unwrap_or_else(|e| e.duration());
                assert!(off < Duration::from_millis(1), "{at:?} is not a minute after the first");
            }
            other => panic!("not refused for the rate: {other:?}"),
        }
        assert_eq!(store.admit("d", &rate, now + Duration::from_secs(61)).unwrap(), Admit::Yes);
        // Under two limits, a refusal by either admits under neither.
        let both =
            [two[0].clone(), AdmissionLimit { scope: "queue:other".to_string(), concurrency: Some(5), rate: None }];
        assert!(matches!(store.admit("d", &both, now).unwrap(), Admit::No { .. }));
        assert_eq!(store.admit("d", &[both[1].clone()], now).unwrap(), Admit::Yes);
    }
}
