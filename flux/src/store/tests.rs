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
        "UPDATE events SET seq = ?2 WHERE execution = ?1 AND seq = (SELECT max(seq) FROM events WHERE execution = ?1)",
        [key, i64::try_from(seq).unwrap()],
    )
    .unwrap();
    drop(conn);
    (SqliteStore::open(&path, Durability::Default).unwrap(), dir)
}

#[cfg(feature = "sqlite")]
crate::store::conformance_tests!(sqlite, new_sqlite_store, end_log_at = sqlite_log_ending_at);
