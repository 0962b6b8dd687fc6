//! Chaos in server mode: one server process and two worker processes; 1,000 executions of
//! `three_steps` are submitted over HTTP; one worker is SIGKILLed and restarted every two
//! seconds, and the server itself is SIGKILLed once and restarted on the same port.
//!
//! Every execution must end COMPLETED with the right output, no log may hold two
//! `TASK_COMPLETED` for one task id, and each log's tasks and result must match those of a clean
//! run of the same input made afterwards without any kill.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flux::{Engine, EventType, ExecutionState};
use flux_suite::process::{Killed as Process, log_file};

const EXECUTIONS: usize = 1000;
const TOKEN: &str = "chaos-bootstrap-token";
const PATIENCE: Duration = Duration::from_secs(120);

/// Starts the server on `port` and waits until it listens.
fn start_server(dir: &Path, port: u16) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flux-test-server"))
        .arg(port.to_string())
        .env("FLUX_HOME", dir)
        .env("FLUX_DATABASE_URL", format!("sqlite://{}", dir.join("flux.db").display()))
        .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", TOKEN)
        .env("FLUX_WORKERS__LEASE_TIMEOUT", "3s")
        .env_remove("FLUX_CONFIG")
        .env_remove("FLUX_SERVER_HOST")
        .env_remove("FLUX_SERVER_PORT")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log_file(dir, "server.log"))
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("the server prints its address");
    assert!(line.starts_with("listening on "), "unexpected server output `{line}`");
    Process(child)
}

fn start_worker(dir: &Path, url: &str, name: &str) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_flux-test-worker"))
        .env("FLUX_TEST_SERVER", url)
        .env("FLUX_TEST_WORKER_NAME", name)
        .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", TOKEN)
        .env("FLUX_TEST_HEARTBEAT_MS", "500")
        .env("FLUX_TEST_STEP_MS", "30")
        .env("FLUX_TEST_MAX_CONCURRENCY", "4")
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

async fn submit(client: &flux::Client, input: &str) -> String {
    let started = client.workflow::<String, String>("three_steps").start(&input.to_string()).await;
    started.expect("the run is accepted").execution_id().to_string()
}

fn completed(db: &Path, ids: &[String]) -> usize {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    let mut stmt = conn.prepare("SELECT state FROM executions WHERE id = ?1").expect("query");
    ids.iter()
        .filter(|id| {
            stmt.query_row([id.as_str()], |r| r.get::<_, String>(0))
                .is_ok_and(|s| s == ExecutionState::Completed.as_str())
        })
        .count()
}

/// The executions not COMPLETED, by state, with the workers holding them.
fn stuck(db: &Path, ids: &[String]) -> String {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    let mut by_state = BTreeMap::<String, Vec<String>>::new();
    for id in ids {
        let (state, worker): (String, Option<String>) = conn
            .query_row("SELECT state, worker FROM executions WHERE id = ?1", [id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("a row");
        if state != ExecutionState::Completed.as_str() {
            by_state.entry(format!("{state} held by {worker:?}")).or_default().push(id.clone());
        }
    }
    let summary: Vec<String> = by_state.iter().map(|(k, v)| format!("{k}: {} (e.g. {})", v.len(), v[0])).collect();
    format!("not completed: {}; files kept in {}", summary.join(", "), db.display())
}

/// What must match between a chaos run and a clean one: each task's id, name and result in
/// order, and the workflow's output.
fn essence(events: &[flux::Event]) -> Vec<(EventType, String, String, Vec<u8>)> {
    events
        .iter()
        .filter(|e| matches!(e.kind(), EventType::TaskCompleted | EventType::WorkflowCompleted))
        .map(|e| {
            let source =
                if e.kind() == EventType::WorkflowCompleted { String::new() } else { e.source_id().to_string() };
            (e.kind(), source, e.name().to_string(), e.value_bytes().to_vec())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_executions_survive_killed_workers_and_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flux.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = start_server(dir.path(), port);
    let mut w1 = start_worker(dir.path(), &url, "w1");
    let _w2 = start_worker(dir.path(), &url, "w2");
    let client = flux::Client::new(&url).unwrap();
    flux_suite::http::wait_for_catalog(&client, Duration::from_secs(60)).await.expect("the workers register");

    let mut ids = Vec::with_capacity(EXECUTIONS);
    for i in 0..EXECUTIONS {
        ids.push(submit(&client, &format!("c{i}")).await);
    }

    // Chaos until every execution is COMPLETED.
    let started = Instant::now();
    let (mut worker_kills, mut server_killed) = (0, false);
    let mut next_worker_kill = Instant::now() + Duration::from_secs(2);
    loop {
        let done = completed(&db, &ids);
        if done == EXECUTIONS {
            break;
        }
        if started.elapsed() >= PATIENCE {
            let kept = dir.keep();
            panic!("only {done} of {EXECUTIONS} executions completed; {}", stuck(&kept.join("flux.db"), &ids));
        }
        if Instant::now() >= next_worker_kill {
            w1.kill();
            worker_kills += 1;
            w1 = start_worker(dir.path(), &url, "w1");
            next_worker_kill = Instant::now() + Duration::from_secs(2);
        }
        if !server_killed && started.elapsed() >= Duration::from_secs(3) {
            assert!(done < EXECUTIONS, "the work ended before the server could be killed");
            server.kill();
            server = start_server(dir.path(), port);
            server_killed = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server_killed && worker_kills >= 1, "the chaos ran: {worker_kills} worker kills");
    eprintln!(
        "chaos: {EXECUTIONS} executions completed in {:?}, {worker_kills} worker kills, 1 server kill",
        started.elapsed()
    );

    // The same inputs once more, with nothing killed: the clean runs to compare with.
    let mut clean = Vec::with_capacity(EXECUTIONS);
    for i in 0..EXECUTIONS {
        clean.push(submit(&client, &format!("c{i}")).await);
    }
    let deadline = Instant::now() + PATIENCE;
    while completed(&db, &clean) < EXECUTIONS {
        assert!(Instant::now() < deadline, "the clean runs did not complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);

    let engine = Engine::open(&db).unwrap();
    let mut claims = BTreeMap::<usize, usize>::new();
    for (i, (id, clean_id)) in ids.iter().zip(&clean).enumerate() {
        let stored = engine.store().load(id).unwrap().expect("stored");
        assert_eq!(stored.state, ExecutionState::Completed, "{id}");
        let output: String = flux::value::from_msgpack(stored.output.as_deref().expect("an output")).unwrap();
        assert_eq!(output, format!("c{i}:1:2:3"), "{id}");
        let mut seen = std::collections::BTreeSet::new();
        for e in stored.events.iter().filter(|e| e.kind() == EventType::TaskCompleted) {
            assert!(seen.insert(e.source_id()), "{id}: two TASK_COMPLETED for {}", e.source_id());
        }
        let seqs: Vec<u64> = stored.events.iter().map(|e| e.seq()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{id}: a gap in the log");
        let reference = engine.store().load(clean_id).unwrap().expect("stored");
        assert_eq!(essence(&stored.events), essence(&reference.events), "{id} differs from a clean run");
        let claimed = stored.events.iter().filter(|e| e.kind() == EventType::WorkflowClaimed).count();
        *claims.entry(claimed).or_default() += 1;
    }
    eprintln!("chaos: executions by number of claims: {claims:?}");
}
