//! The PostgreSQL store (feature `postgres`, SPEC §17) through the engine: `Engine::open` and
//! `FLUX_DATABASE_URL` with a `postgres://` URL, a workflow stored and loaded again by another
//! engine, and the errors of a bad URL, a refused connection, a missing database and a schema
//! from a newer flux. (The store's conformance suite runs in flux's own tests.)
//!
//! They need a server: `FLUX_TEST_POSTGRES_URL` (`eval "$(.ci/postgres start)"`). Without it
//! they say so and pass, unless `FLUX_TEST_POSTGRES_REQUIRED` is set, as `.ci/run` sets it.

use std::sync::atomic::{AtomicU32, Ordering};

use flux::ErrorKind;
use flux::prelude::*;

use flux_suite::postgres::{Database, execute, server};

static CHARGED: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn reserve(item: String) -> String {
    format!("reserved {item}")
}

#[flux::task]
async fn charge(cents: u32) -> u32 {
    CHARGED.fetch_add(1, Ordering::SeqCst);
    cents
}

#[flux::workflow]
async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let reserved = reserve(ctx.input().clone()).await?;
    let cents = charge(2500).await?;
    Ok(format!("{reserved}, charged {cents}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_open_stores_a_workflow_that_another_engine_loads_and_replays() {
    let Some(server) = server() else { return };
    let db = Database::new(&server);
    let engine = Engine::open(db.url()).unwrap();
    let done = order.on(&engine).run("lamp".to_string()).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("reserved lamp, charged 2500"), "{:?}", done.error());
    let kinds = flux_suite::kinds(done.events());
    use EventType::*;
    assert_eq!(kinds, [WorkflowStarted, TaskStarted, TaskCompleted, TaskStarted, TaskCompleted, WorkflowCompleted]);
    assert!(engine.store().describe().starts_with("postgres:"), "{}", engine.store().describe());

    // Another engine (another server, say) on the same database sees it whole, and a replay
    // runs nothing again.
    let other = Engine::open(db.url()).unwrap();
    let charged = CHARGED.load(Ordering::SeqCst);
    let replayed = order.on(&other).replay(done.execution_id()).await.unwrap();
    assert_eq!(replayed.output(), done.output());
    assert_eq!(flux_suite::kinds(replayed.events()), kinds);
    assert_eq!(CHARGED.load(Ordering::SeqCst), charged, "a replay charges nothing");
    drop((engine, other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_database_url_selects_postgres() {
    let Some(server) = server() else { return };
    let db = Database::new(&server);
    let config = flux::Config::from_sources(None, vec![("FLUX_DATABASE_URL".to_string(), db.url())]).unwrap();
    let engine = Engine::from_config(&config).unwrap();
    let done = order.on(&engine).run("desk".to_string()).await.unwrap();
    assert_eq!(done.state(), ExecutionState::Completed, "{:?}", done.error());
    let loaded = engine.store().load(done.execution_id()).unwrap().unwrap();
    assert_eq!(loaded.events.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_refused_connections_and_missing_databases_say_what_is_wrong() {
    // A URL that is not one: no server needed.
    let e = Engine::open("postgres://user@host:notaport/db").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("invalid PostgreSQL URL"), "{e}");

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = Engine::open(format!("postgres://flux:secret-password@127.0.0.1:{port}/flux")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(
        e.message().contains(&format!("cannot connect to PostgreSQL at `postgres://flux@127.0.0.1:{port}/flux`")),
        "{e}"
    );
    assert!(!e.to_string().contains("secret-password"), "the password is never shown: {e}");

    let Some(server) = server() else { return };
    let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
    let e = Engine::open(format!("{base}/no_such_database")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.message().contains("database \"no_such_database\" does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_flux_is_refused_and_left_alone() {
    let Some(server) = server() else { return };
    let db = Database::new(&server);
    drop(Engine::open(db.url()).unwrap());
    execute(&db.url(), "UPDATE flux.flux_schema SET version = 99");
    let e = Engine::open(db.url()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaTooNew, "{e}");
    assert!(e.message().contains("version 99"), "{e}");
    let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let version: i32 = client.query_one("SELECT version FROM flux.flux_schema", &[]).await.unwrap().get(0);
    assert_eq!(version, 99, "untouched");
}

/// Two servers on one database share secrets when they share the encryption key; the database
/// holds only ciphertext, and another key is refused, not misread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_database_and_a_key_share_secrets_stored_encrypted() {
    let Some(server) = server() else { return };
    let db = Database::new(&server);
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let open = |home: &std::path::Path, key: &str| {
        Engine::builder().postgres(db.url()).home(home).encryption_key(key).build().unwrap()
    };
    let a = open(home_a.path(), KEY);
    let value = "sk-live-do-not-leak-0123456789";
    flux::secrets::set(&a, "PAYMENTS_KEY", value).unwrap();
    let b = open(home_b.path(), KEY);
    assert_eq!(flux::secrets::get(&b, "PAYMENTS_KEY").unwrap().as_deref(), Some(value));
    assert_eq!(flux::secrets::list(&b).unwrap(), ["PAYMENTS_KEY"]);

    let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client.query_one("SELECT nonce, ciphertext FROM flux.secrets WHERE name = 'PAYMENTS_KEY'", &[]).await;
    let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = row.map(|r| (r.get(0), r.get(1))).unwrap();
    assert!(!nonce.is_empty());
    assert!(!ciphertext.windows(value.len()).any(|w| w == value.as_bytes()), "the database holds it in clear");

    let other_key = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let c = open(tempfile::tempdir().unwrap().path(), other_key);
    let e = flux::secrets::get(&c, "PAYMENTS_KEY").unwrap_err();
    assert!(!e.to_string().contains(value), "{e}");
}

/// The next change `rx` hears of, within ten seconds.
async fn heard(rx: &mut tokio::sync::broadcast::Receiver<flux::store::Change>) -> flux::store::Change {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a change within ten seconds")
        .expect("the store still tells")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_hears_of_the_commits_of_another_store_on_its_schema_but_not_of_its_own() {
    use flux::store::{Change, Durability, PostgresStore, Store, Write};
    let Some(server) = server() else { return };
    let db = Database::new(&server);
    let a = PostgresStore::open(&db.url(), Durability::Default).unwrap();
    let b = PostgresStore::open(&db.url(), Durability::Default).unwrap();
    let mut heard_by_a = a.changes().expect("a PostgreSQL store tells of changes");
    let mut heard_by_b = b.changes().expect("a PostgreSQL store tells of changes");
    // Each listener says first that it may have missed what came before it listened.
    assert_eq!(heard(&mut heard_by_a).await, Change::Missed);
    assert_eq!(heard(&mut heard_by_b).await, Change::Missed);

    let created = |id: &str| Write::CreateExecution {
        id: id.into(),
        workflow_name: "order".into(),
        state: ExecutionState::Scheduled,
        input: std::sync::Arc::from(&[0xc0u8][..]),
        parent_id: None,
        version: 1,
        time: std::time::SystemTime::now(),
    };
    a.write(vec![created("shared-1")]).await.unwrap();
    assert_eq!(
        heard(&mut heard_by_b).await,
        Change::Execution { id: "shared-1".into(), state: Some(ExecutionState::Scheduled) }
    );
    b.write(vec![Write::set_state("shared-1", ExecutionState::Cancelled, None)]).await.unwrap();
    assert_eq!(
        heard(&mut heard_by_a).await,
        Change::Execution { id: "shared-1".into(), state: Some(ExecutionState::Cancelled) }
    );
    // A refused batch tells nothing, and neither store hears of its own commits: the next
    // change each hears of is the other's next commit.
    assert!(a.write(vec![Write::set_state("shared-1", ExecutionState::Running, None)]).await.is_err());
    a.write(vec![created("shared-2")]).await.unwrap();
    assert_eq!(
        heard(&mut heard_by_b).await,
        Change::Execution { id: "shared-2".into(), state: Some(ExecutionState::Scheduled) }
    );
    b.write(vec![created("shared-3")]).await.unwrap();
    assert_eq!(
        heard(&mut heard_by_a).await,
        Change::Execution { id: "shared-3".into(), state: Some(ExecutionState::Scheduled) }
    );
    // A published message is heard, whole, before the writes queued after it.
    a.publish("shared-2", b"progress 1");
    a.write(vec![Write::set_state("shared-2", ExecutionState::Running, None)]).await.unwrap();
    assert_eq!(
        heard(&mut heard_by_b).await,
        Change::Published { id: "shared-2".into(), message: b"progress 1"[..].into() }
    );
    assert_eq!(
        heard(&mut heard_by_b).await,
        Change::Execution { id: "shared-2".into(), state: Some(ExecutionState::Running) }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_database_refuses_is_left_out_and_the_batches_committed_with_it_are_kept() {
    use flux::store::{Durability, PostgresStore, Store, Write};
    let Some(server) = server() else { return };
    let db = Database::new(&server);
    let store = PostgresStore::open(&db.url(), Durability::Default).unwrap();
    let create = |id: &str| Write::CreateExecution {
        id: id.into(),
        workflow_name: "order".into(),
        state: ExecutionState::Running,
        input: std::sync::Arc::from(&[0xc0u8][..]),
        parent_id: None,
        version: 1,
        time: std::time::SystemTime::now(),
    };
    // PostgreSQL's text cannot hold a NUL character: the rules allow the name, the database
    // refuses it. Both batches are queued before either commits, so they meet in one group.
    let kept = store.write(vec![create("kept")]);
    let refused = store.write(vec![create("refused\0name")]);
    let also_kept = store.write(vec![create("also-kept")]);
    assert!(kept.await.is_ok());
    let error = refused.await.expect_err("a NUL in an id is refused by PostgreSQL");
    assert_eq!(error.kind(), ErrorKind::Storage, "{error}");
    assert!(also_kept.await.is_ok());
    assert!(store.load("kept").unwrap().is_some());
    assert!(store.load("also-kept").unwrap().is_some());
}
