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

/// The test server's URL; `None` (said once, past the harness's capture) when there is none.
fn server() -> Option<String> {
    if let Some(url) = std::env::var("FLUX_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    assert!(
        std::env::var_os("FLUX_TEST_POSTGRES_REQUIRED").is_none(),
        "FLUX_TEST_POSTGRES_URL is not set, and FLUX_TEST_POSTGRES_REQUIRED says these tests must run"
    );
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the PostgreSQL tests need a server; `eval \"$(.ci/postgres start)\"` starts one and sets \
             FLUX_TEST_POSTGRES_URL"
        );
    });
    None
}

/// Runs `sql` on the server's maintenance database.
async fn admin(server: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// A new database of the test server, dropped when this goes.
struct Database {
    server: String,
    name: String,
}

impl Database {
    async fn new(server: &str) -> Database {
        let name = format!("flux_t_{}", uuid_ish());
        admin(server, &format!("CREATE DATABASE {name}")).await;
        Database { server: server.to_string(), name }
    }

    /// Its URL: the server's, with this database.
    fn url(&self) -> String {
        let base = self.server.rsplit_once('/').map_or(self.server.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(admin(&server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        })
        .join()
        .unwrap();
    }
}

fn uuid_ish() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

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
    let db = Database::new(&server).await;
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
    let db = Database::new(&server).await;
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
    let db = Database::new(&server).await;
    drop(Engine::open(db.url()).unwrap());
    admin(&db.url(), "UPDATE flux.flux_schema SET version = 99").await;
    let e = Engine::open(db.url()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SchemaTooNew, "{e}");
    assert!(e.message().contains("version 99"), "{e}");
    let (client, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let version: i32 = client.query_one("SELECT version FROM flux.flux_schema", &[]).await.unwrap().get(0);
    assert_eq!(version, 99, "untouched");
}
