//! Several flux servers on one PostgreSQL database (SPEC §17): a workflow run through one server
//! is claimed by a worker connected to another, its sync and stream answers (progress included)
//! come from the server the client asked; the catalog, cancellations and scheduled executions reach every server;
//! and the claims a stopped server answered for are taken back by another once their stored
//! lease runs out, and finished by a worker of that one.
//!
//! Servers run in the test process, each with its own engine on the test's database; workers are
//! `flux-test-worker` processes. They need a PostgreSQL server: `FLUX_TEST_POSTGRES_URL` (`eval
//! "$(.ci/postgres start)"`); without it they say so and pass, unless
//! `FLUX_TEST_POSTGRES_REQUIRED` is set, as `.ci/run` sets it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flux::Client;
use flux::client::{RemoteWorkflow, StreamEvent};
use flux::server::{RunningServer, Server};
use futures::StreamExt as _;
use serde_json::{Value, json};

use flux_suite::postgres::{Database, server};

const BOOTSTRAP: &str = "servers-test-bootstrap-token";
const LEASE: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// The encryption key every server of a test shares.
const KEY: &str = "5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f";

/// A server on an ephemeral port, with its own engine on the database at `url`.
async fn start_server(url: &str, home: &Path) -> RunningServer {
    flux_suite::logs::capture("flux=info");
    let engine =
        flux::Engine::builder().postgres(url).home(home).encryption_key(KEY).build().expect("the database opens");
    Server::new()
        .engine(&engine)
        .bootstrap_token(BOOTSTRAP)
        .admin_token("servers-test-admin")
        .lease_timeout(LEASE)
        .bind("127.0.0.1:0")
        .await
        .expect("the server starts")
}

/// A `flux-test-worker` process, SIGKILLed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(url: &str, name: &str, dir: &Path, extra: &[(&str, &str)]) -> WorkerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flux-test-worker"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLUX_") {
                command.env_remove(key);
            }
        }
        let log = std::fs::File::create(dir.join(format!("worker-{name}.log"))).expect("a log file");
        command
            .env("FLUX_HOME", dir.join(format!("home-{name}")))
            .env("FLUX_TEST_SERVER", url)
            .env("FLUX_TEST_WORKER_NAME", name)
            .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", BOOTSTRAP)
            .env("FLUX_TEST_HEARTBEAT_MS", "300")
            .env("FLUX_TEST_SIDE_EFFECTS", dir.join("side-effects.txt"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (key, value) in extra {
            command.env(key, value);
        }
        WorkerProcess(command.spawn().expect("the test worker starts"))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn api(url: &str) -> Client {
    Client::builder(url).timeout(DEADLINE).build().expect("a client")
}

fn workflow(api: &Client, name: &str) -> RemoteWorkflow<Value, Value> {
    api.workflow::<Value, Value>(name).detailed(true)
}

/// Waits until `check` holds, or fails naming `what`.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the server at `api` lists `name` in its catalog.
async fn wait_catalog(api: &Client, name: &str) {
    wait_until(&format!("workflow `{name}` in the catalog"), || async {
        api.workflows().await.is_ok_and(|list| list.iter().any(|w| w.json()["name"] == name))
    })
    .await;
}

/// The event types of a detailed summary.
fn types(summary: &Value) -> Vec<String> {
    summary["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["type"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The `value` of the `WORKFLOW_CLAIMED` events: the workers that claimed the execution.
fn claimed_by(summary: &Value) -> Vec<String> {
    let events = summary["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["type"] == "WORKFLOW_CLAIMED" || e["type"] == "WORKFLOW_RESUME_CLAIMED")
        .filter_map(|e| e["value"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_one_server_is_run_by_a_worker_of_another_and_answered_where_asked() {
    let Some(pg) = server() else { return };
    let db = Database::new(&pg);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let a = start_server(&db.url(), &tmp.path().join("a")).await;
    let b = start_server(&db.url(), &tmp.path().join("b")).await;
    let _worker = WorkerProcess::spawn(&b.url(), "only-on-b", tmp.path(), &[]);
    let (api_a, api_b) = (api(&a.url()), api(&b.url()));
    wait_catalog(&api_b, "three_steps").await;
    // Server A learns the catalog from the database, not from a worker of its own.
    wait_catalog(&api_a, "three_steps").await;

    // Sync through A: answered by A once the worker on B finished it.
    let done = workflow(&api_a, "three_steps").run(&json!("x")).await.expect("the sync run answers");
    let summary = done.summary().clone();
    assert_eq!(summary["state"], "COMPLETED", "{summary:#}");
    assert_eq!(summary["output"], "x:1:2:3", "{summary:#}");
    assert_eq!(claimed_by(&summary), ["only-on-b"], "{summary:#}");
    assert_eq!(
        types(&summary),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED"
        ]
    );

    // Streamed through A: every stored event once, in order, then the end.
    let mut events = workflow(&api_a, "three_steps").stream(&json!("y")).await.expect("the stream opens");
    let mut seen = Vec::new();
    let mut last = Value::Null;
    let read = async {
        while let Some(item) = events.next().await {
            match item.expect("a stream event") {
                StreamEvent::Event(e) => seen.push(e.kind().as_str().to_string()),
                StreamEvent::State(status) => last = status.summary().clone(),
                _ => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("the stream ends");
    assert_eq!(last["state"], "COMPLETED", "{last:#}");
    assert_eq!(last["output"], "y:1:2:3", "{last:#}");
    assert_eq!(seen, types(&last), "the stream through A saw each event B stored, once, in order");

    // Progress the worker reports through B reaches a stream opened through A.
    let mut events = workflow(&api_a, "progressing").stream(&json!(3)).await.expect("the stream opens");
    let mut progress = Vec::new();
    let read = async {
        while let Some(item) = events.next().await {
            if let StreamEvent::Progress(p) = item.expect("a stream event") {
                progress.push(p.value_json().clone());
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("the stream ends");
    assert_eq!(progress, [json!("1 of 3"), json!("2 of 3"), json!("3 of 3")]);
    drop(_worker);
    a.shutdown().await.expect("A stops");
    b.shutdown().await.expect("B stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_one_server_reaches_the_worker_holding_the_execution_through_another() {
    let Some(pg) = server() else { return };
    let db = Database::new(&pg);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let a = start_server(&db.url(), &tmp.path().join("a")).await;
    let b = start_server(&db.url(), &tmp.path().join("b")).await;
    let _worker = WorkerProcess::spawn(&b.url(), "on-b", tmp.path(), &[]);
    let (api_a, api_b) = (api(&a.url()), api(&b.url()));
    wait_catalog(&api_b, "sleeper").await;

    let started = workflow(&api_b, "sleeper").start(&json!(30_000)).await.expect("the run starts");
    let id = started.summary()["execution_id"].as_str().expect("an id").to_string();
    wait_until("the sleeper's task to start", || async {
        workflow(&api_a, "sleeper")
            .status(&id)
            .await
            .is_ok_and(|s| types(s.summary()).iter().any(|t| t == "TASK_STARTED"))
    })
    .await;
    let began = Instant::now();
    let cancelled = workflow(&api_a, "sleeper").cancel_and_wait(&id).await.expect("the cancel answers");
    let summary = cancelled.summary().clone();
    assert_eq!(summary["state"], "CANCELLED", "{summary:#}");
    assert!(began.elapsed() < Duration::from_secs(20), "the cancel waited for the 30 s task");
    let kinds = types(&summary);
    let task_cancelled = kinds.iter().position(|t| t == "TASK_CANCELLED");
    let cancelling = kinds.iter().position(|t| t == "WORKFLOW_CANCELLING");
    assert!(cancelling.is_some() && task_cancelled > cancelling, "the worker cancelled its task: {kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("WORKFLOW_CANCELLED"), "{kinds:?}");
    a.shutdown().await.expect("A stops");
    b.shutdown().await.expect("B stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claims_of_a_server_that_stopped_are_finished_through_another_once_their_lease_ends() {
    let Some(pg) = server() else { return };
    let db = Database::new(&pg);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let a = start_server(&db.url(), &tmp.path().join("a")).await;
    let b = start_server(&db.url(), &tmp.path().join("b")).await;
    let (api_a, api_b) = (api(&a.url()), api(&b.url()));
    // The worker on A runs step 2 slowly (a minute): it will still be in it when A goes.
    let worker_a = WorkerProcess::spawn(&a.url(), "on-a", tmp.path(), &[("FLUX_TEST_SLOW_STEP", "2")]);
    wait_catalog(&api_a, "three_steps").await;

    let started = workflow(&api_a, "three_steps").start(&json!("z")).await.expect("the run starts");
    let id = started.summary()["execution_id"].as_str().expect("an id").to_string();
    wait_until("step 2 to start on A's worker", || async {
        workflow(&api_b, "three_steps")
            .status(&id)
            .await
            .is_ok_and(|s| types(s.summary()).iter().filter(|t| *t == "TASK_STARTED").count() == 2)
    })
    .await;

    // A goes away with its worker; a worker connects to B.
    let stopped = Instant::now();
    drop(worker_a);
    a.shutdown().await.expect("A stops");
    let _worker_b = WorkerProcess::spawn(&b.url(), "on-b", tmp.path(), &[]);
    let summary = loop {
        let status = workflow(&api_b, "three_steps").status(&id).await.expect("a status");
        if status.summary()["state"] == "COMPLETED" {
            break status.summary().clone();
        }
        assert!(stopped.elapsed() < DEADLINE, "never completed through B: {:#}", status.summary());
        tokio::time::sleep(POLL).await;
    };
    let took = stopped.elapsed();
    assert!(took >= LEASE, "taken back before the lease ran out ({took:?})");
    assert_eq!(summary["output"], "z:1:2:3", "{summary:#}");
    assert_eq!(claimed_by(&summary), ["on-a", "on-b"], "{summary:#}");
    let kinds = types(&summary);
    let completed = kinds.iter().filter(|t| *t == "TASK_COMPLETED").count();
    assert_eq!(completed, 3, "each task completed once: {kinds:?}");
    // Step 1 ran once (replayed on B), step 2 twice (A's worker never finished it).
    let effects = std::fs::read_to_string(tmp.path().join("side-effects.txt")).unwrap_or_default();
    let count = |line: &str| effects.lines().filter(|l| *l == line).count();
    assert_eq!((count("step 1 done"), count("step 2 start"), count("step 3 done")), (1, 2, 1), "{effects}");
    eprintln!("taken back and finished {took:?} after server A stopped (lease {LEASE:?})");
    b.shutdown().await.expect("B stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_encryption_key_differs_from_the_others_refuses_to_start() {
    let Some(pg) = server() else { return };
    let db = Database::new(&pg);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let start = |home: &str, key: &str| {
        let engine = flux::Engine::builder()
            .postgres(db.url())
            .home(tmp.path().join(home))
            .encryption_key(key)
            .build()
            .expect("the database opens");
        Server::new().engine(&engine).bootstrap_token(BOOTSTRAP).admin_token("admin").bind("127.0.0.1:0")
    };
    const OTHER: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let a = start("a", KEY).await.expect("the first server starts");
    let b = start("b", KEY).await.expect("a server with the same key starts");
    let error = start("c", OTHER).await.expect_err("a server with another key is refused");
    assert_eq!(error.kind(), flux::ErrorKind::Config, "{error}");
    assert!(error.message().contains("encrypted under another key"), "{error}");
    assert!(error.message().contains("FLUX_SECURITY__ENCRYPTION_KEY"), "{error}");
    // The check is not a secret anyone sees.
    assert!(flux::secrets::list(a.engine()).expect("the secrets").is_empty());
    a.shutdown().await.expect("A stops");
    b.shutdown().await.expect("B stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_fire_each_instant_of_a_schedule_once() {
    let Some(pg) = server() else { return };
    let db = Database::new(&pg);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let a = start_server(&db.url(), &tmp.path().join("a")).await;
    let b = start_server(&db.url(), &tmp.path().join("b")).await;
    let _worker = WorkerProcess::spawn(&b.url(), "w", tmp.path(), &[]);
    let (api_a, api_b) = (api(&a.url()), api(&b.url()));
    wait_catalog(&api_b, "three_steps").await;
    wait_catalog(&api_a, "three_steps").await;
    // Four instants a second apart, from two seconds from now; both servers fire schedules.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock").as_secs();
    let at = |s: u64| humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(s)).to_string();
    let config = json!({"type": "interval", "interval_seconds": 1, "start_time": at(now + 2),
                        "end_time": at(now + 5), "overlap": "allow"});
    let created = api_a.create_schedule("three_steps", "ticks", config, json!("t")).await.expect("the schedule");
    assert_eq!(created["status"], "active", "{created}");
    wait_until("four completed fires", || async {
        let history = api_b.schedule_history("ticks", 100, 0).await.expect("the history");
        let entries = history["entries"].as_array().cloned().unwrap_or_default();
        entries.iter().filter(|e| e["state"] == "COMPLETED").count() == 4
    })
    .await;
    // A little longer than the last instant: no fire came twice, through either server.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let history = api_a.schedule_history("ticks", 100, 0).await.expect("the history");
    let mut ids: Vec<String> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["execution_id"].as_str().unwrap().into())
        .collect();
    ids.sort();
    let expected: Vec<String> = (2..=5).map(|s| format!("ticks_{}", at(now + s))).collect();
    assert_eq!(ids, expected, "{history}");
    let schedule = api_b.schedule("ticks").await.expect("the schedule");
    assert_eq!((&schedule["run_count"], &schedule["status"]), (&json!(4), &json!("ended")), "{schedule}");
    drop(_worker);
    a.shutdown().await.expect("A stops");
    b.shutdown().await.expect("B stops");
}

/// How many tasks run at once across the workers of both servers, and the most at once.
#[derive(Default)]
struct Meter {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

#[flux::task]
async fn metered_step(n: u32, meter: flux::State<std::sync::Arc<Meter>>) -> u32 {
    use std::sync::atomic::Ordering::SeqCst;
    let now = meter.now.fetch_add(1, SeqCst) + 1;
    meter.most.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    meter.now.fetch_sub(1, SeqCst);
    n
}

#[flux::workflow]
async fn metered(ctx: flux::ExecutionContext<u32>) -> flux::Result<u32> {
    metered_step(*ctx.input()).await
}

/// Two servers, each with queue `pair` (two at a time) and a worker of its own: runs submitted
/// to the queue through both servers run two at a time in all, the database counting them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_two_servers_runs_their_workers_executions_two_at_a_time_in_all() {
    let Some(pg) = server() else { return };
    let db = Database::new(&pg);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let meter = std::sync::Arc::new(Meter::default());
    let mut servers = Vec::new();
    let mut workers = Vec::new();
    for name in ["a", "b"] {
        let engine = flux::Engine::builder().postgres(db.url()).home(tmp.path().join(name)).encryption_key(KEY).build();
        let engine = engine.expect("the database opens");
        engine.queue("pair").concurrency(2);
        let running = Server::new()
            .engine(&engine)
            .bootstrap_token(BOOTSTRAP)
            .admin_token("servers-test-admin")
            .bind("127.0.0.1:0")
            .await
            .expect("the server starts");
        let worker = flux::worker::Worker::new(running.url())
            .name(format!("w{name}"))
            .bootstrap_token(BOOTSTRAP)
            .register(metered)
            .state(meter.clone())
            .max_concurrency(8);
        workers.push(tokio::spawn(worker.run()));
        servers.push(running);
    }
    let apis: Vec<Client> = servers.iter().map(|s| api(&s.url())).collect();
    for api in &apis {
        wait_catalog(api, "metered").await;
    }
    let mut submitted = Vec::new();
    for n in 0..12u32 {
        let api = &apis[n as usize % 2];
        let status = api.workflow::<u32, u32>("metered").enqueue("pair", &n).await.expect("submitted");
        submitted.push((api.clone(), status.execution_id().to_string(), n));
    }
    for (api, id, n) in &submitted {
        let remote = api.workflow::<u32, u32>("metered");
        wait_until(&format!("execution {n} to complete"), || async {
            remote.status(id).await.is_ok_and(|s| s.state() == flux::ExecutionState::Completed)
        })
        .await;
        assert_eq!(remote.status(id).await.expect("its status").output(), Some(n));
    }
    assert_eq!(meter.most.load(std::sync::atomic::Ordering::SeqCst), 2, "two at a time through both servers");
    for worker in workers {
        worker.abort();
    }
    for running in servers {
        running.shutdown().await.expect("the server stops");
    }
}
