//! The file's set-up: opening a connection (busy timeout, statement cache, WAL), the durability
//! pragma of the writing connection, and the versioned migrations of the schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::sql_error;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Durability;

/// The schema version this build writes. Databases with a higher version are refused.
pub(crate) const SCHEMA_VERSION: i64 = 8;

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Forward migrations: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the initial schema.
    "CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        output BLOB,
        parent_id TEXT,
        worker TEXT,
        claim_generation INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX executions_by_workflow ON executions (workflow_name, state);
    CREATE TABLE events (
        execution_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value BLOB NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (execution_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE workflows (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        metadata BLOB,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE task_cache (
        key TEXT PRIMARY KEY,
        task_name TEXT NOT NULL,
        value BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX task_cache_by_name ON task_cache (task_name);
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        spec TEXT NOT NULL,
        input BLOB,
        next_run_at INTEGER,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL
    );",
    // 1 -> 2: events are keyed by their execution's integer key instead of its text id, which
    // makes each appended row (and its key comparisons) smaller. The key is an explicit INTEGER
    // PRIMARY KEY so that VACUUM cannot renumber it. `execution_events` shows the log with the
    // text id, for reading the file by hand. (`migrate` refuses first if an event has no
    // execution, so that the copy below drops nothing.)
    "CREATE TABLE executions_v2 (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        output BLOB,
        parent_id TEXT,
        worker TEXT,
        claim_generation INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    INSERT INTO executions_v2 (pk, id, workflow_name, state, input, output, parent_id, worker, claim_generation,
                               created_at, updated_at)
        SELECT rowid, id, workflow_name, state, input, output, parent_id, worker, claim_generation, created_at,
               updated_at
        FROM executions;
    CREATE TABLE events_v2 (
        execution INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value BLOB NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (execution, seq)
    ) WITHOUT ROWID;
    INSERT INTO events_v2 (execution, seq, type, source_id, name, value, time)
        SELECT x.pk, e.seq, e.type, e.source_id, e.name, e.value, e.time
        FROM events e JOIN executions_v2 x ON x.id = e.execution_id;
    DROP TABLE events;
    DROP TABLE executions;
    ALTER TABLE executions_v2 RENAME TO executions;
    ALTER TABLE events_v2 RENAME TO events;
    CREATE INDEX executions_by_workflow ON executions (workflow_name, state);
    CREATE VIEW execution_events AS
        SELECT x.id AS execution_id, e.seq, e.type, e.source_id, e.name, e.value, e.time
        FROM events e JOIN executions x ON x.pk = e.execution;",
    // 2 -> 3: the engine running an execution in its own process, and until when (its lease).
    "ALTER TABLE executions ADD COLUMN owner TEXT;
    ALTER TABLE executions ADD COLUMN lease_until INTEGER;",
    // 3 -> 4: executions can be deleted, so their key becomes AUTOINCREMENT: a key is never
    // given again, and a writer that still remembers a deleted execution's key (another process,
    // say) can never append to a newer execution's log through it. The table is copied with
    // its keys (which the events carry) and gains the version of the workflow each execution
    // runs (1 for those stored before), and the indexes the listings and retention read by:
    // workflow and state in order of creation (which also counts them), workflow in order of
    // creation, creation alone, state in order of last change, and the sub-workflows of a
    // parent.
    "DROP VIEW execution_events;
    CREATE TABLE executions_v4 (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        workflow_version INTEGER NOT NULL DEFAULT 1,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        output BLOB,
        parent_id TEXT,
        worker TEXT,
        claim_generation INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        owner TEXT,
        lease_until INTEGER
    );
    INSERT INTO executions_v4 (pk, id, workflow_name, state, input, output, parent_id, worker, claim_generation,
                               created_at, updated_at, owner, lease_until)
        SELECT pk, id, workflow_name, state, input, output, parent_id, worker, claim_generation, created_at,
               updated_at, owner, lease_until
        FROM executions;
    DROP TABLE executions;
    ALTER TABLE executions_v4 RENAME TO executions;
    CREATE INDEX executions_by_workflow ON executions (workflow_name, state, created_at);
    CREATE INDEX executions_of_workflow ON executions (workflow_name, created_at);
    CREATE INDEX executions_by_created ON executions (created_at);
    CREATE INDEX executions_by_state ON executions (state, updated_at);
    CREATE INDEX executions_by_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
    CREATE VIEW execution_events AS
        SELECT x.id AS execution_id, e.seq, e.type, e.source_id, e.name, e.value, e.time
        FROM events e JOIN executions x ON x.pk = e.execution;",
    // 4 -> 5: schedules, in the table version 1 set aside for them (which nothing wrote to) with
    // the columns they need.
    "DROP TABLE schedules;
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        body BLOB NOT NULL,
        revision INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );",
    // 5 -> 6: messages sent to executions, in the order they were stored.
    "CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        key TEXT,
        value BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX messages_of_topic ON messages (execution_id, topic, id);
    CREATE UNIQUE INDEX messages_by_key ON messages (execution_id, topic, key) WHERE key IS NOT NULL;",
    // 6 -> 7: the admissions of queues' executions, which every process on the file counts.
    "CREATE TABLE admissions (
        scope TEXT NOT NULL,
        execution_id TEXT NOT NULL,
        admitted_at INTEGER NOT NULL,
        PRIMARY KEY (scope, execution_id)
    ) WITHOUT ROWID;
    CREATE INDEX admissions_by_time ON admissions (scope, admitted_at);",
    // 7 -> 8: a row of the log may hold two events: a task's `TASK_STARTED` (its own columns)
    // and, at the next seq, the result committed with it (`next_type`, `next_value`,
    // `next_time`; same source id and name). A sequential step is then one row, one insert into
    // the primary key, instead of two. Rows stored before hold one event each (the new columns
    // are NULL), and are read as before; the view shows every event on a line of its own.
    "ALTER TABLE events ADD COLUMN next_type TEXT;
    ALTER TABLE events ADD COLUMN next_value BLOB;
    ALTER TABLE events ADD COLUMN next_time INTEGER;
    DROP VIEW execution_events;
    CREATE VIEW execution_events AS
        SELECT x.id AS execution_id, e.seq, e.type, e.source_id, e.name, e.value, e.time
        FROM events e JOIN executions x ON x.pk = e.execution
        UNION ALL
        SELECT x.id, e.seq + 1, e.next_type, e.source_id, e.name, e.next_value, e.next_time
        FROM events e JOIN executions x ON x.pk = e.execution
        WHERE e.next_type IS NOT NULL;",
];

/// Opens a connection to the file and switches it to WAL mode.
pub(super) fn open_connection(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_error(path, "cannot open database", e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql_error(path, "cannot configure database", e))?;
    // Room for every statement the writer uses, so that none is parsed again.
    conn.set_prepared_statement_cache_capacity(32);
    // Reading the journal mode is the first access to the file: a file that is not a database
    // fails here, before anything is written to it. Switching a new file to WAL needs an
    // exclusive lock, and SQLite answers BUSY at once (without its busy handler) while another
    // process holds the file, so that step is retried until the busy timeout.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Ok(mode) => break mode,
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(sql_error(path, "cannot open database", e)),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::new(
            ErrorKind::Storage,
            format!("database `{}` cannot use WAL mode (journal mode is `{mode}`)", path.display()),
        ));
    }
    Ok(conn)
}

/// Sets the writing connection's `synchronous` pragma for `durability`.
pub(super) fn configure_writer(conn: &Connection, path: &Path, durability: Durability) -> Result<()> {
    let sync = match durability {
        Durability::Default | Durability::Batched => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))
        .map_err(|e| sql_error(path, "cannot configure database", e))
}

/// Brings the schema of the file up to [`SCHEMA_VERSION`] in one transaction, refusing a newer
/// one.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let err = |e| sql_error(path, "cannot migrate database", e);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS flux_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )",
    )
    .map_err(err)?;
    let version: i64 = tx
        .query_row("SELECT version FROM flux_schema WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(err)?
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::SchemaTooNew,
            format!(
                "database `{}` has schema version {version}, newer than the {SCHEMA_VERSION} this flux understands; \
                 upgrade flux to open it",
                path.display()
            ),
        ));
    }
    if version < 0 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("database `{}` has invalid schema version {version}", path.display()),
        ));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        if from == 1 {
            // Version 2 keys events by their execution's row: an event without one would be
            // dropped by the copy, so the migration is refused (and nothing changed) instead.
            let orphans: i64 = tx
                .query_row(
                    "SELECT count(*) FROM events WHERE execution_id NOT IN (SELECT id FROM executions)",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if orphans > 0 {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "database `{}`: {orphans} events belong to no execution; the migration to schema \
                         version 2 would drop them, so the file was left unchanged",
                        path.display()
                    ),
                ));
            }
        }
        if from == 4 {
            // The table of version 1 is replaced: refused (and nothing changed) if it holds rows
            // flux did not write.
            let rows: i64 = tx.query_row("SELECT count(*) FROM schedules", [], |r| r.get(0)).map_err(err)?;
            if rows > 0 {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "database `{}`: table `schedules` holds {rows} rows that flux did not write; the migration \
                         to schema version 5 would replace it, so the file was left unchanged",
                        path.display()
                    ),
                ));
            }
        }
        tx.execute_batch(sql)
            .map_err(|e| sql_error(path, &format!("migration {from} -> {} failed for", from + 1), e))?;
    }
    tx.execute(
        "INSERT INTO flux_schema (id, version) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET version = ?1",
        [SCHEMA_VERSION],
    )
    .map_err(err)?;
    tx.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::Connection;

    use super::super::SqliteStore;
    use super::super::testing::{append, create};
    use super::{MIGRATIONS, SCHEMA_VERSION};
    use crate::error::ErrorKind;
    use crate::event::{Event, EventType, ExecutionState, to_micros};
    use crate::store::{Durability, Store, Write};

    #[test]
    fn many_openers_of_a_new_file_all_succeed() {
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("fresh-{round}.db"));
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        barrier.wait();
                        SqliteStore::open(&path, Durability::Default).unwrap();
                    });
                }
            });
        }
    }

    /// A database as flux wrote it at schema version 1: two executions (ids chosen so that
    /// their text order differs from their creation order) with interleaved events.
    fn version_1_database(path: &Path, orphan: bool) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "CREATE TABLE flux_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
             INSERT INTO flux_schema VALUES (1, 1);
             INSERT INTO executions (id, workflow_name, state, input, created_at, updated_at, worker,
                                     claim_generation)
                 VALUES ('zz-first', 'wf', 'RUNNING', x'c0', 1, 2, 'w1', 3);
             INSERT INTO executions (id, workflow_name, state, input, output, created_at, updated_at)
                 VALUES ('aa-second', 'wf', 'COMPLETED', x'c0', x'05', 4, 5);
             INSERT INTO events VALUES ('zz-first', 1, 'WORKFLOW_STARTED', 'wf_zz-first', 'wf', x'c0', 10);
             INSERT INTO events VALUES ('aa-second', 1, 'WORKFLOW_STARTED', 'wf_aa-second', 'wf', x'c0', 11);
             INSERT INTO events VALUES ('zz-first', 2, 'TASK_STARTED', 't_1', 't', x'90', 12);
             INSERT INTO events VALUES ('aa-second', 2, 'WORKFLOW_COMPLETED', 'wf_aa-second', 'wf', x'05', 13);",
        )
        .unwrap();
        if orphan {
            conn.execute("INSERT INTO events VALUES ('gone', 1, 'WORKFLOW_STARTED', 'wf_gone', 'wf', x'c0', 14)", [])
                .unwrap();
        }
    }

    fn summary(events: &[Event]) -> Vec<(u64, &str, &str, &[u8], i64)> {
        events
            .iter()
            .map(|e| (e.seq(), e.kind().as_str(), e.source_id(), e.value_bytes(), to_micros(e.time())))
            .collect()
    }

    #[tokio::test]
    async fn a_version_1_database_is_migrated_with_every_event_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_database(&path, false);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();

        let first = store.load("zz-first").unwrap().unwrap();
        assert_eq!(
            (first.state, first.worker.as_deref(), first.claim_generation),
            (ExecutionState::Running, Some("w1"), 3)
        );
        assert_eq!(
            summary(&first.events),
            [(1, "WORKFLOW_STARTED", "wf_zz-first", &b"\xc0"[..], 10), (2, "TASK_STARTED", "t_1", &b"\x90"[..], 12)]
        );
        let second = store.load("aa-second").unwrap().unwrap();
        assert_eq!((second.state, second.output.as_deref()), (ExecutionState::Completed, Some(&b"\x05"[..])));
        assert_eq!(
            summary(&second.events),
            [
                (1, "WORKFLOW_STARTED", "wf_aa-second", &b"\xc0"[..], 11),
                (2, "WORKFLOW_COMPLETED", "wf_aa-second", &b"\x05"[..], 13)
            ]
        );

        // The migrated log goes on where it stopped, and refuses what does not follow it.
        store.write(vec![append("zz-first", 3)]).await.unwrap();
        assert!(store.write(vec![append("zz-first", 3)]).await.is_err());
        store.write(vec![create("new"), append("new", 1)]).await.unwrap();
        assert_eq!(store.load("zz-first").unwrap().unwrap().events.len(), 3);
        drop(store);

        // VACUUM cannot renumber the key the events carry, and the view shows the text ids.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("VACUUM").unwrap();
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mut stmt =
            conn.prepare("SELECT execution_id, seq FROM execution_events ORDER BY execution_id, seq").unwrap();
        let rows: Vec<(String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap();
        let expected =
            [("aa-second", 1), ("aa-second", 2), ("new", 1), ("zz-first", 1), ("zz-first", 2), ("zz-first", 3)];
        assert_eq!(rows, expected.map(|(id, seq)| (id.to_string(), seq)));
        drop(stmt);
        drop(conn);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();
        assert_eq!(store.load("zz-first").unwrap().unwrap().events.len(), 3);
        assert_eq!(summary(&store.load("aa-second").unwrap().unwrap().events), summary(&second.events));
    }

    #[test]
    fn a_version_1_database_with_an_event_of_no_execution_is_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_database(&path, true);
        let Err(err) = SqliteStore::open(&path, Durability::Default) else { panic!("the migration is refused") };
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("1 events belong to no execution"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        let events: i64 =
            conn.query_row("SELECT count(*) FROM events WHERE execution_id = 'gone'", [], |r| r.get(0)).unwrap();
        assert_eq!((version, events), (1, 1));
    }

    /// A database as flux wrote it at schema version 3: a finished execution with two events
    /// and a sub-workflow running, with a lease.
    fn version_3_database(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE flux_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
             INSERT INTO flux_schema VALUES (1, 3);
             INSERT INTO executions (pk, id, workflow_name, state, input, output, created_at, updated_at)
                 VALUES (7, 'done', 'wf', 'COMPLETED', x'c0', x'05', 1, 2);
             INSERT INTO executions (pk, id, workflow_name, state, input, parent_id, created_at, updated_at, owner,
                                     lease_until)
                 VALUES (9, 'child', 'sub', 'RUNNING', x'c0', 'done', 3, 4, 'engine-1', 50);
             INSERT INTO events VALUES (7, 1, 'WORKFLOW_STARTED', 'wf_done', 'wf', x'c0', 10);
             INSERT INTO events VALUES (9, 1, 'WORKFLOW_STARTED', 'sub_child', 'sub', x'c0', 11);
             INSERT INTO events VALUES (7, 2, 'WORKFLOW_COMPLETED', 'wf_done', 'wf', x'05', 12);",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_version_3_database_is_migrated_and_its_executions_read_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        version_3_database(&path);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();

        let done = store.load("done").unwrap().unwrap();
        assert_eq!(
            (done.version, done.state, done.output.as_deref()),
            (1, ExecutionState::Completed, Some(&[5u8][..]))
        );
        assert_eq!(
            summary(&done.events).iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
            [(1, "WORKFLOW_STARTED"), (2, "WORKFLOW_COMPLETED")]
        );
        let child = store.load("child").unwrap().unwrap();
        assert_eq!((child.version, child.parent_id.as_deref(), child.events.len()), (1, Some("done"), 1));
        let rows = store.list(&[ExecutionState::Running]).unwrap();
        assert_eq!((rows[0].owner.as_deref(), rows[0].version), (Some("engine-1"), 1), "the lease is kept");

        // Keys are never given again: the execution with the largest key deleted, the next one
        // created gets a larger key, and starts a log of its own.
        store.write(vec![append("child", 2), Write::set_state("child", ExecutionState::Failed, None)]).await.unwrap();
        store.write(vec![Write::delete_execution("child")]).await.unwrap();
        store.write(vec![create("new"), append("new", 1)]).await.unwrap();
        assert_eq!(store.load("new").unwrap().unwrap().events.len(), 1);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let key: i64 = conn.query_row("SELECT pk FROM executions WHERE id = 'new'", [], |r| r.get(0)).unwrap();
        assert!(key > 9, "a deleted execution's key was given again ({key})");
        let orphans: i64 = conn
            .query_row("SELECT count(*) FROM events WHERE execution NOT IN (SELECT pk FROM executions)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(orphans, 0, "the deleted execution's events were kept");
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A database at schema version 4, with `rows` in the table version 1 set aside for
    /// schedules.
    fn version_4_database(path: &Path, rows: usize) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE flux_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
             INSERT INTO flux_schema VALUES (1, 4);",
        )
        .unwrap();
        for n in 0..rows {
            conn.execute(
                "INSERT INTO schedules (name, workflow_name, spec, created_at) VALUES (?1, 'wf', '{}', 1)",
                [format!("s{n}")],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_version_4_database_gets_the_schedules_table_of_version_5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        version_4_database(&path, 0);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();
        let schedule = crate::store::StoredSchedule {
            name: "nightly".into(),
            workflow_name: "wf".into(),
            body: b"{}".to_vec(),
            revision: 0,
            updated_at: std::time::SystemTime::now(),
        };
        assert_eq!(store.schedule_put(&schedule, None).unwrap(), 1);
        assert_eq!(store.schedule_list().unwrap().len(), 1);
    }

    #[test]
    fn a_version_4_database_with_rows_in_the_old_schedules_table_is_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        version_4_database(&path, 2);
        let Err(err) = SqliteStore::open(&path, Durability::Default) else { panic!("the migration is refused") };
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("holds 2 rows that flux did not write"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        let rows: i64 = conn.query_row("SELECT count(*) FROM schedules", [], |r| r.get(0)).unwrap();
        assert_eq!((version, rows), (4, 2));
    }

    /// A database as flux wrote it at schema version 7: a running execution whose step (a
    /// task's start and result) is two rows, as every event was one row then.
    fn version_7_database(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE flux_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
             INSERT INTO flux_schema VALUES (1, 7);
             INSERT INTO executions (pk, id, workflow_name, state, input, created_at, updated_at)
                 VALUES (3, 'run', 'wf', 'RUNNING', x'c0', 1, 2);
             INSERT INTO events VALUES (3, 1, 'WORKFLOW_STARTED', 'wf_run', 'wf', x'c0', 10);
             INSERT INTO events VALUES (3, 2, 'TASK_STARTED', 't_1', 't', x'9101', 11);
             INSERT INTO events VALUES (3, 3, 'TASK_COMPLETED', 't_1', 't', x'01', 12);",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_version_7_database_is_migrated_and_goes_on_with_a_step_as_one_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v7.db");
        version_7_database(&path);
        let store = SqliteStore::open(&path, Durability::Default).unwrap();
        let before = store.load("run").unwrap().unwrap().events;
        assert_eq!(
            summary(&before),
            [
                (1, "WORKFLOW_STARTED", "wf_run", &[0xc0][..], 10),
                (2, "TASK_STARTED", "t_1", &[0x91, 0x01][..], 11),
                (3, "TASK_COMPLETED", "t_1", &[0x01][..], 12),
            ]
        );
        let at = |micros| std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
        let step = [
            Event::new(4, EventType::TaskStarted, "t_2", "t", &[0x91, 0x02][..], at(13)),
            Event::new(5, EventType::TaskCompleted, "t_2", "t", &[0x02][..], at(14)),
        ];
        store
            .write(step.iter().map(|e| Write::Append { execution_id: "run".into(), event: e.clone() }).collect())
            .await
            .unwrap();
        store.write(vec![append("run", 6)]).await.unwrap();
        let after = store.load("run").unwrap().unwrap().events;
        assert_eq!(&after[..3], &before[..]);
        assert_eq!(&after[3..5], &step[..]);
        assert_eq!(after.iter().map(Event::seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        drop(store);

        // On disk: the old rows as they were, the new step in one row, and the view shows every
        // event on a line of its own.
        let conn = Connection::open(&path).unwrap();
        let rows: Vec<(i64, String, Option<String>)> = conn
            .prepare("SELECT seq, type, next_type FROM events WHERE execution = 3 ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let row = |seq, kind: &str, next: Option<&str>| (seq, kind.to_string(), next.map(str::to_string));
        assert_eq!(
            rows,
            [
                row(1, "WORKFLOW_STARTED", None),
                row(2, "TASK_STARTED", None),
                row(3, "TASK_COMPLETED", None),
                row(4, "TASK_STARTED", Some("TASK_COMPLETED")),
                row(6, "TASK_STARTED", None),
            ]
        );
        let shown: Vec<(i64, String, Vec<u8>, i64)> = conn
            .prepare("SELECT seq, type, value, time FROM execution_events WHERE execution_id = 'run' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(shown.len(), 6);
        assert_eq!(shown[3], (4, "TASK_STARTED".to_string(), vec![0x91, 0x02], 13));
        assert_eq!(shown[4], (5, "TASK_COMPLETED".to_string(), vec![0x02], 14));
        let version: i64 = conn.query_row("SELECT version FROM flux_schema", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A row holding two events whose second is damaged is refused by name, never half read.
    #[tokio::test]
    async fn a_damaged_second_event_of_a_row_is_refused_by_name() {
        let damage = [
            ("next_time = NULL", "the event after it has no time"),
            ("next_value = 'text'", "the value of the event after it is not a blob"),
            ("next_type = 'NO_SUCH_EVENT'", "NO_SUCH_EVENT"),
            ("next_type = x'00'", "a text column holds another type"),
            ("seq = 9223372036854775807", "no seq follows it"),
        ];
        for (change, named) in damage {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.db");
            let store = SqliteStore::open(&path, Durability::Default).unwrap();
            let now = std::time::SystemTime::now();
            let step = [
                Event::new(2, EventType::TaskStarted, "t_2", "t", &[0x90][..], now),
                Event::new(3, EventType::TaskCompleted, "t_2", "t", &[0xc0][..], now),
            ];
            store.write(vec![create("x"), append("x", 1)]).await.unwrap();
            store
                .write(step.iter().map(|e| Write::Append { execution_id: "x".into(), event: e.clone() }).collect())
                .await
                .unwrap();
            Connection::open(&path).unwrap().execute(&format!("UPDATE events SET {change} WHERE seq = 2"), []).unwrap();
            let err = store.load("x").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{change}: {err}");
            assert!(err.to_string().contains(named), "{change}: {err}");
            assert!(err.to_string().contains("execution `x`"), "{change}: {err}");
        }
    }
}
