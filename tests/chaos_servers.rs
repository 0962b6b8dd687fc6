//! Chaos on three servers (SPEC §17): three `flux-test-server` processes on one PostgreSQL
//! database, two `flux-test-worker` processes connected to two of them, 1,000 executions of
//! `five_steps` submitted round-robin to the three; mid-run one server and one worker are
//! SIGKILLed and restarted.
//!
//! Every execution must end COMPLETED with the right output; no log may hold two
//! `TASK_COMPLETED` for one task, or a gap; each log's tasks and result must match a clean run of
//! the same input made afterwards; and the ledger the steps write (a table in the same database)
//! must hold each step of each execution, again only for a step that was cut short by the kill
//! of its worker or of the server it spoke to (it ran, but its result was never stored).
//!
//! `FLUX_TEST_CHAOS_RUNS` (default 1) repeats the whole run on fresh databases. It needs a
//! PostgreSQL server (`FLUX_TEST_POSTGRES_URL`, `eval "$(.ci/postgres start)"`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flux::{Engine, EventType, ExecutionState};
use flux_suite::postgres::{Database, execute, server};
use flux_suite::process::{Killed as Process, log_file};

const EXECUTIONS: usize = 1000;
const SERVERS: usize = 3;
const TOKEN: &str = "chaos-servers-bootstrap-token";
const PATIENCE: Duration = Duration::from_secs(240);
/// How many executions a worker runs at once.
const CONCURRENCY: usize = 8;

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port()
}

/// Starts server `n` on `port` and waits until it listens.
fn start_server(dir: &Path, db_url: &str, n: usize, port: u16) -> Process {
    let home = dir.join(format!("server-{n}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_flux-test-server"))
        .arg(port.to_string())
        .env("FLUX_HOME", &home)
        .env("FLUX_DATABASE_URL", db_url)
        .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", TOKEN)
        .env("FLUX_WORKERS__LEASE_TIMEOUT", "3s")
        .env("FLUX_SECURITY__ENCRYPTION_KEY", "5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f")
        .env_remove("FLUX_CONFIG")
        .env_remove("FLUX_SERVER_HOST")
        .env_remove("FLUX_SERVER_PORT")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log_file(dir, &format!("server-{n}.log")))
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("the server prints its address");
    assert!(line.starts_with("listening on "), "unexpected server output `{line}`");
    Process(child)
}

fn start_worker(dir: &Path, url: &str, name: &str, ledger: &str) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_flux-test-worker"))
        .env("FLUX_HOME", dir.join(format!("home-{name}")))
        .env("FLUX_TEST_SERVER", url)
        .env("FLUX_TEST_WORKER_NAME", name)
        .env("FLUX_TEST_LEDGER_URL", ledger)
        .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", TOKEN)
        .env("FLUX_TEST_HEARTBEAT_MS", "500")
        .env("FLUX_TEST_STEP_MS", "5")
        .env("FLUX_TEST_MAX_CONCURRENCY", CONCURRENCY.to_string())
        .env_remove("FLUX_CONFIG")
        .env_remove("FLUX_TEST_SLOW_STEP")
        .env_remove("FLUX_TEST_SIDE_EFFECTS")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_file(dir, &format!("{name}.log")))
        .spawn()
        .expect("the worker starts");
    Process(child)
}

/// A client of the database, for the counts and the ledger.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("the database");
    tokio::spawn(connection);
    client
}

/// How many executions of `five_steps` are in each state.
async fn states(db: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    let rows = db
        .query("SELECT state, count(*) FROM flux.executions WHERE workflow_name = 'five_steps' GROUP BY state", &[])
        .await
        .expect("the states");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Waits until `ids` are all COMPLETED, or fails with what is left.
async fn wait_completed(db: &tokio_postgres::Client, ids: &[String], what: &str) {
    let start = Instant::now();
    loop {
        let done: i64 = db
            .query_one("SELECT count(*) FROM flux.executions WHERE id = ANY($1) AND state = 'COMPLETED'", &[&ids])
            .await
            .expect("a count")
            .get(0);
        if usize::try_from(done).is_ok_and(|d| d == ids.len()) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "{what}: only {done} of {} completed; {:?}", ids.len(), states(db).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits `five_steps` with inputs `{prefix}{i}` round-robin to `clients`; a submission a
/// server does not answer (it was killed) goes to the next one. (One it stored without
/// answering runs too, and is checked with every other execution in the database.)
async fn submit_all(clients: Vec<flux::Client>, prefix: String) -> Vec<String> {
    let mut ids = Vec::with_capacity(EXECUTIONS);
    for i in 0..EXECUTIONS {
        let input = format!("{prefix}{i}");
        let mut attempt = 0;
        let id = loop {
            let client = &clients[(i + attempt) % clients.len()];
            match client.workflow::<String, String>("five_steps").start(&input).await {
                Ok(started) => break started.execution_id().to_string(),
                Err(e) if attempt < 20 && e.http_status().is_none() => attempt += 1,
                Err(e) => panic!("submission {i} refused: {e}"),
            }
        };
        ids.push(id);
    }
    ids
}

/// Each task's name and result in order, and the workflow's output. (The steps take the
/// execution id, for the ledger: their task ids differ between two executions by design.)
fn essence(events: &[flux::Event]) -> Vec<(EventType, String, Vec<u8>)> {
    events
        .iter()
        .filter(|e| matches!(e.kind(), EventType::TaskCompleted | EventType::WorkflowCompleted))
        .map(|e| (e.kind(), e.name().to_string(), e.value_bytes().to_vec()))
        .collect()
}

/// One chaos run on a fresh database.
async fn chaos_run(pg: &str, run: usize) {
    let database = Database::new(pg);
    let db_url = database.url();
    execute(&db_url, "CREATE TABLE ledger (execution TEXT NOT NULL, step INTEGER NOT NULL)");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ports: Vec<u16> = (0..SERVERS).map(|_| free_port()).collect();
    let urls: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let mut servers: Vec<Process> =
        ports.iter().enumerate().map(|(n, port)| start_server(dir.path(), &db_url, n, *port)).collect();
    // The workers speak to servers 0 and 1; server 2 has none of its own.
    let _w0 = start_worker(dir.path(), &urls[0], "w0", &db_url);
    let mut w1 = start_worker(dir.path(), &urls[1], "w1", &db_url);
    let clients: Vec<flux::Client> = urls.iter().map(|u| flux::Client::new(u).expect("a client")).collect();
    for client in &clients {
        flux_suite::http::wait_for_catalog(client, Duration::from_secs(60)).await.expect("the catalog");
    }
    let db = connect(&db_url).await;

    let started = Instant::now();
    let submitting = tokio::spawn(submit_all(clients.clone(), format!("r{run}-")));
    // Mid-run: server 0 and worker w1 (of server 1) are killed, then restarted.
    loop {
        let done = states(&db).await.get("COMPLETED").copied().unwrap_or(0);
        if done >= 300 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "no progress: {:?}", states(&db).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_kill = states(&db).await;
    servers[0].kill();
    w1.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    servers[0] = start_server(dir.path(), &db_url, 0, ports[0]);
    w1 = start_worker(dir.path(), &urls[1], "w1", &db_url);
    let ids = submitting.await.expect("the submissions");
    wait_completed(&db, &ids, "the chaos run").await;
    let took = started.elapsed();
    drop(w1);

    // The same inputs once more, with nothing killed: the clean runs to compare with.
    let clean = submit_all(clients, format!("r{run}-")).await;
    wait_completed(&db, &clean, "the clean run").await;
    drop(servers);

    let engine = Engine::builder().postgres(&db_url).home(dir.path().join("check")).build().expect("the database");
    let mut claims = BTreeMap::<usize, usize>::new();
    for (i, (id, clean_id)) in ids.iter().zip(&clean).enumerate() {
        let stored = engine.store().load(id).expect("a load").expect("stored");
        assert_eq!(stored.state, ExecutionState::Completed, "{id}");
        let output: String = flux::value::from_msgpack(stored.output.as_deref().expect("an output")).expect("a string");
        assert_eq!(output, format!("r{run}-{i}:1:2:3:4:5"), "{id}");
        let mut seen = BTreeSet::new();
        for e in stored.events.iter().filter(|e| e.kind() == EventType::TaskCompleted) {
            assert!(seen.insert(e.source_id()), "{id}: two TASK_COMPLETED for {}", e.source_id());
        }
        let seqs: Vec<u64> = stored.events.iter().map(|e| e.seq()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{id}: a gap in the log");
        let reference = engine.store().load(clean_id).expect("a load").expect("stored");
        assert_eq!(essence(&stored.events), essence(&reference.events), "{id} differs from a clean run");
        let claimed = stored.events.iter().filter(|e| e.kind() == EventType::WorkflowClaimed).count();
        *claims.entry(claimed).or_default() += 1;
    }

    // The ledger: every step of every execution ran; a step ran twice only if it was cut short.
    let rows = db.query("SELECT execution, step, count(*) FROM ledger GROUP BY execution, step", &[]).await.unwrap();
    let ledger: HashMap<(String, i32), i64> = rows.iter().map(|r| ((r.get(0), r.get(1)), r.get(2))).collect();
    let mut again = 0;
    for id in ids.iter().chain(&clean) {
        for step in 1..=5 {
            let count = ledger.get(&(id.clone(), step)).copied().unwrap_or(0);
            assert!(count >= 1, "{id}: step {step} never ran");
            again += count - 1;
        }
    }
    for id in &clean {
        for step in 1..=5 {
            assert_eq!(ledger[&(id.clone(), step)], 1, "{id}: a step of a clean run ran twice");
        }
    }
    // At a kill, each worker had at most CONCURRENCY executions in flight, each in one step.
    let cut_short = i64::try_from(2 * CONCURRENCY).unwrap_or(i64::MAX);
    assert!(again <= cut_short, "{again} steps ran again: more than the {cut_short} the kills could cut short");
    let executions = states(&db).await;
    assert_eq!(executions.len(), 1, "every execution in the database completed: {executions:?}");
    assert!(at_kill.get("COMPLETED").is_some_and(|&done| done < 1000), "the kills came after the work: {at_kill:?}");
    eprintln!(
        "chaos on {SERVERS} servers, run {run}: {EXECUTIONS} executions completed in {took:?}; at the kills {at_kill:?}; \
         steps run again: {again}; executions by number of claims: {claims:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_executions_on_three_servers_survive_a_killed_server_and_a_killed_worker() {
    let Some(pg) = server() else { return };
    let runs = std::env::var("FLUX_TEST_CHAOS_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    for run in 0..runs {
        chaos_run(&pg, run).await;
    }
}
