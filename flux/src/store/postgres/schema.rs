//! The PostgreSQL schema, its versions, and bringing a database up to date.
//!
//! Every table lives in one PostgreSQL schema (`flux` unless told otherwise), so that one
//! database can hold several flux installations (and the tests one each). Times are
//! microseconds since the Unix epoch, as on SQLite; an execution's row keeps the seq of its last
//! event, which an append checks and moves under the row's lock.

use tokio_postgres::Client;

use super::{describe_error, quote};
use crate::error::{Error, ErrorKind, Result};

/// The version this code writes.
pub(super) const SCHEMA_VERSION: i32 = 5;

/// Migration `n` takes a database from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE executions (
        pk BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        workflow_version BIGINT NOT NULL DEFAULT 1,
        state TEXT NOT NULL,
        input BYTEA NOT NULL,
        output BYTEA,
        parent_id TEXT,
        worker TEXT,
        claim_generation BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        owner TEXT,
        lease_until BIGINT,
        last_seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        execution BIGINT NOT NULL REFERENCES executions (pk) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value BYTEA NOT NULL,
        time BIGINT NOT NULL,
        PRIMARY KEY (execution, seq)
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        nonce BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE task_cache (
        key TEXT PRIMARY KEY,
        task_name TEXT NOT NULL,
        value BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE INDEX task_cache_by_name ON task_cache (task_name);
    CREATE INDEX executions_by_workflow ON executions (workflow_name, state, created_at);
    CREATE INDEX executions_of_workflow ON executions (workflow_name, created_at);
    CREATE INDEX executions_by_created ON executions (created_at);
    CREATE INDEX executions_by_state ON executions (state, updated_at);
    CREATE INDEX executions_by_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;",
    // 1 -> 2: the workflows workers registered with any of the servers sharing the database.
    "CREATE TABLE catalog (
        name TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );",
    // 2 -> 3: schedules.
    "CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        body BYTEA NOT NULL,
        revision BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );",
    // 3 -> 4: messages sent to executions, in the order they were stored.
    "CREATE TABLE messages (
        id BIGSERIAL PRIMARY KEY,
        execution_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        key TEXT,
        value BYTEA NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX messages_of_topic ON messages (execution_id, topic, id);
    CREATE UNIQUE INDEX messages_by_key ON messages (execution_id, topic, key) WHERE key IS NOT NULL;",
    // 4 -> 5: the admissions of queues' executions, which every process on the database counts.
    "CREATE TABLE admissions (
        scope TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        admitted_at BIGINT NOT NULL,
        PRIMARY KEY (scope, execution_id)
    );
    CREATE INDEX admissions_by_time ON admissions (scope, admitted_at);",
];

/// Creates the schema if needed and brings it to [`SCHEMA_VERSION`], in one transaction that
/// holds an advisory lock of the schema, so that servers starting together migrate it once.
/// A schema written by a newer flux is refused ([`ErrorKind::SchemaTooNew`]) and left as it is.
pub(super) async fn migrate(client: &mut Client, schema: &str, shown: &str) -> Result<()> {
    let err = |context: &str, e: tokio_postgres::Error| describe_error(shown, context, &e);
    let tx = client.transaction().await.map_err(|e| err("cannot migrate", e))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("flux schema {schema}")])
        .await
        .map_err(|e| err("cannot lock the schema of", e))?;
    let q = quote(schema);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
         CREATE TABLE IF NOT EXISTS {q}.flux_schema (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             version INTEGER NOT NULL
         );"
    ))
    .await
    .map_err(|e| err("cannot create the schema in", e))?;
    let row = tx
        .query_opt(&format!("SELECT version FROM {q}.flux_schema WHERE id = 1"), &[])
        .await
        .map_err(|e| err("cannot read the schema version of", e))?;
    let version: i32 = match row {
        Some(row) => row.try_get(0).map_err(|e| err("cannot read the schema version of", e))?,
        None => 0,
    };
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::SchemaTooNew,
            format!(
                "the flux schema `{schema}` of {shown} is at version {version}, newer than this flux knows \
                 ({SCHEMA_VERSION}); upgrade flux to use it"
            ),
        ));
    }
    if version == SCHEMA_VERSION {
        return tx.commit().await.map_err(|e| err("cannot migrate", e));
    }
    tx.batch_execute(&format!("SET LOCAL search_path TO {q}")).await.map_err(|e| err("cannot migrate", e))?;
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        tx.batch_execute(sql).await.map_err(|e| err(&format!("cannot migrate from version {from}"), e))?;
    }
    tx.execute(
        "INSERT INTO flux_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = $1",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(|e| err("cannot record the schema version of", e))?;
    tx.commit().await.map_err(|e| err("cannot migrate", e))
}
