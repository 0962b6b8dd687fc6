//! The conformance suite on the stores of this crate: one test per check and store, named
//! `store::tests::<store>::<check>`.

use super::MemoryStore;
#[cfg(feature = "sqlite")]
use super::{Durability, SqliteStore};

/// `store`, with the last event of log `id` at `seq`.
fn memory_log_ending_at(store: MemoryStore, id: &str, seq: u64) -> MemoryStore {
    store.set_last_seq(id, seq);
    store
}

crate::store::conformance_tests!(memory, MemoryStore::new, end_log_at = memory_log_ending_at);

/// A SQLite store in a new temporary directory, which lives as long as it.
#[cfg(feature = "sqlite")]
fn new_sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("flux.db"), Durability::Default).unwrap();
    (store, dir)
}

/// The store, with the last event of log `id` at `seq`: the file changed while the store is
/// closed, then opened again (a running store would go on from the end it remembers).
#[cfg(feature = "sqlite")]
fn sqlite_log_ending_at(
    (store, dir): (SqliteStore, tempfile::TempDir),
    id: &str,
    seq: u64,
) -> (SqliteStore, tempfile::TempDir) {
    let path = store.path().to_path_buf();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let key: i64 = conn.query_row("SELECT pk FROM executions WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    conn.execute(
        // A last row holding two events keeps them: the log then ends one after its seq.
        "UPDATE events SET seq = ?2 - (next_type IS NOT NULL)
         WHERE execution = ?1 AND seq = (SELECT max(seq) FROM events WHERE execution = ?1)",
        [key, i64::try_from(seq).unwrap()],
    )
    .unwrap();
    drop(conn);
    (SqliteStore::open(&path, Durability::Default).unwrap(), dir)
}

#[cfg(feature = "sqlite")]
crate::store::conformance_tests!(sqlite, new_sqlite_store, end_log_at = sqlite_log_ending_at);

/// The PostgreSQL store on the server `FLUX_TEST_POSTGRES_URL` names (`.ci/postgres start`
/// makes one), each test in a schema of its own, dropped after it.
#[cfg(feature = "postgres")]
pub(crate) mod pg {
    use crate::store::{Durability, PostgresStore};

    /// The server's URL, if the run has one.
    pub(crate) fn url() -> Option<String> {
        std::env::var("FLUX_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
    }

    /// Whether the PostgreSQL tests can run; says why not when they cannot, and panics instead
    /// when `FLUX_TEST_POSTGRES_REQUIRED` is set (as `.ci/run` sets it), so that CI never skips
    /// them.
    pub(crate) fn ready() -> bool {
        if url().is_some() {
            return true;
        }
        if std::env::var_os("FLUX_TEST_POSTGRES_REQUIRED").is_some() {
            panic!("FLUX_TEST_POSTGRES_URL is not set, and FLUX_TEST_POSTGRES_REQUIRED says these tests must run");
        }
        // Once, and past the test harness's capture, so that it shows.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the PostgreSQL store's tests need a server; `eval \"$(.ci/postgres start)\"` starts one and \
                 sets FLUX_TEST_POSTGRES_URL"
            );
        });
        false
    }

    /// Runs `sql` on the test server, on a thread of its own (callers may be inside a runtime).
    pub(crate) fn execute(sql: String) {
        let url = url().expect("FLUX_TEST_POSTGRES_URL");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client.batch_execute(&sql).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }

    /// A schema of the test server, dropped with everything in it when this goes.
    pub(crate) struct Schema(pub(crate) String);

    impl Schema {
        /// A new, unused schema name.
        pub(crate) fn new() -> Schema {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Schema(format!("flux_test_{}_{n}_{}", std::process::id(), uuid::Uuid::new_v4().simple()))
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            execute(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
        }
    }

    /// A store in a new schema, which lives as long as it.
    pub(crate) fn new_store() -> (PostgresStore, Schema) {
        let schema = Schema::new();
        let store =
            PostgresStore::open_in_schema(&url().expect("FLUX_TEST_POSTGRES_URL"), &schema.0, Durability::Default)
                .unwrap();
        (store, schema)
    }

    /// The store, with the last event of log `id` at `seq`, as a damaged database could hold.
    pub(crate) fn log_ending_at(
        (store, schema): (PostgresStore, Schema),
        id: &str,
        seq: u64,
    ) -> (PostgresStore, Schema) {
        let seq = i64::try_from(seq).unwrap();
        execute(format!(
            "SET search_path TO \"{s}\";
             UPDATE events SET seq = {seq}
                 WHERE execution = (SELECT pk FROM executions WHERE id = '{id}')
                 AND seq = (SELECT last_seq FROM executions WHERE id = '{id}');
             UPDATE executions SET last_seq = {seq} WHERE id = '{id}';",
            s = schema.0
        ));
        (store, schema)
    }
}

#[cfg(feature = "postgres")]
crate::store::conformance_tests!(postgres, pg::new_store, end_log_at = pg::log_ending_at, skip_unless = pg::ready);
