//! [`Store::admit`](crate::store::Store::admit) on PostgreSQL: on a connection of its own (the
//! readers are shared by concurrent calls, and an admission needs a transaction), each scope's
//! advisory lock taken first, in order, so that the counts that follow see every admission
//! committed before, by any process on the database.

use std::time::SystemTime;

use tokio_postgres::Client;

use super::describe_error;
use crate::error::Result;
use crate::event::{from_micros, to_micros};
use crate::store::{AdmissionLimit, Admit, Found, RESTING, rate_since};

/// The admission connection, opened on first use and again after a failure.
pub(super) type Slot = std::sync::Arc<tokio::sync::Mutex<Option<Client>>>;

/// Admits `execution_id` under `limits` at `now`, in one transaction on the slot's connection.
pub(super) async fn admit(
    slot: &Slot,
    connect: impl std::future::Future<Output = Result<Client>>,
    shown: &str,
    execution_id: &str,
    limits: &[AdmissionLimit],
    now: SystemTime,
) -> Result<Admit> {
    let mut held = slot.lock().await;
    let client = match held.take() {
        Some(client) if !client.is_closed() => held.insert(client),
        _ => held.insert(connect.await?),
    };
    let admitted = transaction(client, execution_id, limits, now).await;
    if admitted.is_err() {
        // A failed transaction may have left the connection unusable: the next admission opens
        // another.
        *held = None;
    }
    admitted.map_err(|e| describe_error(shown, "cannot admit an execution in", &e))
}

async fn transaction(
    client: &mut Client,
    execution_id: &str,
    limits: &[AdmissionLimit],
    now: SystemTime,
) -> std::result::Result<Admit, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut scopes: Vec<&str> = limits.iter().map(|l| l.scope.as_str()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    for scope in scopes {
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[&format!("flux-admission/{scope}")])
            .await?;
    }
    let forget = format!(
        "DELETE FROM admissions WHERE scope = $1 AND admitted_at <= $2 AND NOT EXISTS
             (SELECT 1 FROM executions e WHERE e.id = admissions.execution_id AND e.state NOT IN ({RESTING}))"
    );
    let count = format!(
        "SELECT
             EXISTS (SELECT 1 FROM admissions WHERE scope = $1 AND execution_id = $2),
             (SELECT count(*) FROM admissions a JOIN executions e ON e.id = a.execution_id
              WHERE a.scope = $1 AND a.execution_id <> $2 AND e.state NOT IN ({RESTING})),
             (SELECT count(*) FROM admissions WHERE scope = $1 AND execution_id <> $2 AND admitted_at > $3),
             (SELECT min(admitted_at) FROM admissions WHERE scope = $1 AND execution_id <> $2 AND admitted_at > $3)"
    );
    for limit in limits {
        let since = to_micros(rate_since(limit, now));
        tx.execute(&forget, &[&limit.scope, &since]).await?;
        let row = tx.query_one(&count, &[&limit.scope, &execution_id, &since]).await?;
        let found = Found {
            admitted: row.try_get(0)?,
            holding: row.try_get::<_, i64>(1)?.max(0) as u64,
            recent: row.try_get::<_, i64>(2)?.max(0) as u64,
            first_recent: row.try_get::<_, Option<i64>>(3)?.map(from_micros),
        };
        if let Some(refused) = found.refusal(limit) {
            tx.rollback().await?;
            return Ok(refused);
        }
    }
    for limit in limits {
        tx.execute(
            "INSERT INTO admissions (scope, execution_id, admitted_at) VALUES ($1, $2, $3)
             ON CONFLICT (scope, execution_id) DO NOTHING",
            &[&limit.scope, &execution_id, &to_micros(now)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Admit::Yes)
}
