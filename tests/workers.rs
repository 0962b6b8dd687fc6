//! Server mode with real worker processes (docs/design.md §11): a flux server inside the test
//! process on 127.0.0.1 (an ephemeral port, its own SQLite file) and `flux-test-worker` processes
//! that register with it, claim its executions, run them and checkpoint their events. Workers are
//! killed with SIGKILL or paused with SIGSTOP, cut off from the server by a proxy, leases run out,
//! the server restarts under them; and workers made by hand with reqwest show the fencing of stale
//! claims, cancellations and reconnections, and the server's answers to bad times. The client API
//! (runs, statuses, cancels, streams, the catalog) is driven through `flux::Client`; raw HTTP is
//! only the worker protocol of the hand-made workers.
//!
//! Each test has its own temporary directory, database and server; deadlines are generous
//! (tests run in parallel on small machines).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flux::Client;
use flux::client::{EventStream, ExecutionStatus, RemoteWorkflow, StreamEvent};
use futures::StreamExt as _;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const BOOTSTRAP: &str = "workers-test-bootstrap-token";
const ADMIN: &str = "workers-test-admin-token";
const LEASE: Duration = Duration::from_secs(3);
/// How long the server keeps the claims of a worker whose connection dropped (before it comes
/// back or renews them).
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);
/// How long anything may take before a test gives up.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often polling loops look again.
const POLL: Duration = Duration::from_millis(50);
/// Every workflow the test worker registers.
const WORKFLOWS: [&str; 6] = ["approval", "five_steps", "hello_world", "progressing", "sleeper", "three_steps"];

// ---------------------------------------------------------------------------------------------
// The server and the worker processes
// ---------------------------------------------------------------------------------------------

/// A server on `addr` storing executions in `db`, with no workflow of its own.
async fn start_server(db: &Path, addr: &str) -> flux::server::RunningServer {
    flux_suite::logs::capture("flux=info");
    let engine = flux::Engine::open(db).expect("the database opens");
    flux::server::Server::new()
        .engine(&engine)
        .bootstrap_token(BOOTSTRAP)
        .admin_token(ADMIN)
        .lease_timeout(LEASE)
        .bind(addr)
        .await
        .expect("the server starts")
}

/// A `flux-test-worker` process, killed (and reaped) when dropped. Its log (standard error) is
/// kept in a file and printed when the test fails.
struct WorkerProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts a worker named `name` for the server at `url`; its side effects go to
    /// `dir/side-effects.txt`, its log to `dir/worker-{name}.log`.
    fn spawn(url: &str, name: &str, dir: &Path, extra: &[(&str, &str)]) -> WorkerProcess {
        let log = dir.join(format!("worker-{name}.log"));
        let stderr = std::fs::File::create(&log).expect("the worker log is created");
        let mut command = Command::new(env!("CARGO_BIN_EXE_flux-test-worker"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLUX_") {
                command.env_remove(key);
            }
        }
        command
            .current_dir(dir)
            .env("FLUX_HOME", dir.join(format!("home-{name}")))
            .env("FLUX_TEST_SERVER", url)
            .env("FLUX_TEST_WORKER_NAME", name)
            .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", BOOTSTRAP)
            .env("FLUX_TEST_SIDE_EFFECTS", side_effects_path(dir))
            .env("FLUX_TEST_HEARTBEAT_MS", "500")
            .env("RUST_LOG", "info,flux=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().expect("the test worker starts (built by cargo test)");
        WorkerProcess { name: name.to_string(), child, log }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    fn kill(&mut self) {
        self.child.kill().expect("the worker is killed");
        let status = self.child.wait().expect("the worker is reaped");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(status.signal(), Some(9), "worker `{}` ended by SIGKILL: {status}", self.name);
        }
    }

    /// What the worker logged so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls the worker's log (a file: there is no event to await) until it contains `needle`.
    async fn wait_log(&self, what: &str, needle: &str) {
        let start = Instant::now();
        while !self.log_text().contains(needle) {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what} (`{needle}`) in the log of `{}`",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the worker with kill(1).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{signal} of worker `{}`: {status}", self.name);
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("----- log of worker `{}` -----\n{log}----- end of log -----", self.name);
        }
    }
}

fn side_effects_path(dir: &Path) -> PathBuf {
    dir.join("side-effects.txt")
}

/// The lines the tasks appended so far.
fn side_effects(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(side_effects_path(dir)).unwrap_or_default().lines().map(str::to_string).collect()
}

/// A directory `name` inside `dir`, for a worker of its own (its side effects and log).
fn subdirectory(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("the directory is created");
    path
}

// ---------------------------------------------------------------------------------------------
// The server's log
// ---------------------------------------------------------------------------------------------

/// The log of `three_steps` when its first worker is lost during step 2 and a second worker
/// finishes it: step 1 is replayed, step 2 runs again (no second `TASK_STARTED`), no second
/// `WORKFLOW_STARTED`.
const TAKEN_OVER_DURING_STEP_2: [&str; 12] = [
    "WORKFLOW_SCHEDULED",
    "WORKFLOW_CLAIMED",
    "WORKFLOW_STARTED",
    "TASK_STARTED",
    "TASK_COMPLETED",
    "TASK_STARTED",
    "WORKFLOW_SCHEDULED",
    "WORKFLOW_CLAIMED",
    "TASK_COMPLETED",
    "TASK_STARTED",
    "TASK_COMPLETED",
    "WORKFLOW_COMPLETED",
];

/// Polls the server log until one line contains all of `needles`.
async fn wait_server_log(what: &str, needles: &[&str]) {
    let start = Instant::now();
    loop {
        let logs = flux_suite::logs::captured();
        if logs.lines().any(|line| needles.iter().all(|n| line.contains(n))) {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what} ({needles:?}) in the server log");
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A network between the workers and the server
// ---------------------------------------------------------------------------------------------

/// A TCP proxy in front of the server for worker processes: cutting it is a network outage.
struct Proxy {
    url: String,
    addr: std::net::SocketAddr,
    links: Arc<Mutex<Links>>,
}

struct Links {
    /// Whether new connections go through (if not, they are closed at once).
    up: bool,
    /// The proxy is gone: its thread stops.
    closed: bool,
    /// Both ends of every connection made through the proxy.
    open: Vec<std::net::TcpStream>,
}

impl Proxy {
    /// A proxy to `target` on an ephemeral port, forwarding bytes both ways with threads.
    fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        let addr = listener.local_addr().expect("the proxy's address");
        let links = Arc::new(Mutex::new(Links { up: true, closed: false, open: Vec::new() }));
        let shared = links.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let mut links = shared.lock().unwrap_or_else(|p| p.into_inner());
                if links.closed {
                    return;
                }
                let Ok(client) = client else { continue };
                if !links.up {
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(target) else { continue };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { continue };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
                links.open.extend([client, server]);
            }
        });
        Proxy { url: format!("http://{addr}"), addr, links }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes every connection through the proxy, and refuses new ones until [`Proxy::restore`].
    fn cut(&self) {
        let mut links = self.links();
        links.up = false;
        for stream in links.open.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Lets connections through again.
    fn restore(&self) {
        self.links().up = true;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.links().closed = true;
        // Wakes the thread waiting for a connection, so that it sees `closed`.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("an HTTP client")
}

/// Sends a request (bounded by [`DEADLINE`]) and reads its JSON answer (`null` if it has none).
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let exchange = async {
        let response = request.send().await.expect("the request reaches the server");
        let status = response.status();
        let text = response.text().await.expect("the answer is read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("a JSON answer ({e}): {text}"))
        };
        (status, body)
    };
    tokio::time::timeout(DEADLINE, exchange).await.expect("the server answers within the deadline")
}

/// A client of the server at `url`: every request of the client API goes through it.
fn api(url: &str) -> Client {
    Client::builder(url).timeout(DEADLINE).build().expect("a client")
}

/// The answer of a client call as these tests check the wire: 200 with the summary as the
/// server sent it, or the status of the refusal with `{"detail": ...}` as the client read them.
fn answered(result: flux::Result<ExecutionStatus<Value>>) -> (StatusCode, Value) {
    match result {
        Ok(status) => (StatusCode::OK, status.summary().clone()),
        Err(e) => {
            let code = e.http_status().unwrap_or_else(|| panic!("not an answer of the server: {e}"));
            (StatusCode::from_u16(code).expect("a status"), json!({ "detail": e.message() }))
        }
    }
}

/// A workflow of the server, its input and output as JSON.
fn workflow(api: &Client, name: &str, detailed: bool) -> RemoteWorkflow<Value, Value> {
    api.workflow::<Value, Value>(name).detailed(detailed)
}

/// `run/{mode}` (sync or async) through the client.
async fn run_on(api: &Client, name: &str, mode: &str, detailed: bool, input: &Value) -> (StatusCode, Value) {
    let workflow = workflow(api, name, detailed);
    answered(match mode {
        "sync" => workflow.run(input).await,
        "async" => workflow.start(input).await,
        other => panic!("run_on takes sync or async, not {other}"),
    })
}

/// `resume/{id}/{mode}` (sync or async) through the client.
async fn resume_on(
    api: &Client,
    name: &str,
    id: &str,
    mode: &str,
    detailed: bool,
    input: &Value,
) -> (StatusCode, Value) {
    let workflow = workflow(api, name, detailed);
    answered(match mode {
        "sync" => workflow.resume(id, input).await,
        "async" => workflow.resume_async(id, input).await,
        other => panic!("resume_on takes sync or async, not {other}"),
    })
}

/// `cancel/{id}` (waiting for it with `wait`) through the client.
async fn cancel_on(api: &Client, name: &str, id: &str, wait: bool, detailed: bool) -> (StatusCode, Value) {
    let workflow = workflow(api, name, detailed);
    answered(if wait { workflow.cancel_and_wait(id).await } else { workflow.cancel(id).await })
}

/// `GET /workflows` through the client, as the server sent it.
async fn catalog(api: &Client) -> Value {
    Value::Array(api.workflows().await.expect("the catalog").iter().map(|w| w.json().clone()).collect())
}

/// The detailed status of an execution, as the server sent it.
async fn status(api: &Client, workflow_name: &str, id: &str) -> Value {
    let summary = workflow(api, workflow_name, true).status(id).await;
    summary.unwrap_or_else(|e| panic!("status of {id}: {e}")).summary().clone()
}

/// Polls the status of an execution (there is no event to await for it) until `done` holds.
async fn wait_status(api: &Client, workflow: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let summary = status(api, workflow, id).await;
        if done(&summary) {
            return summary;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}; last status: {summary:#}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the catalog until it lists every workflow of the test worker, and checks that
/// `worker` is among those that registered each one.
async fn wait_catalog(api: &Client, worker: &str) {
    let start = Instant::now();
    loop {
        let list = api.workflows().await.expect("the catalog");
        let mut registered = WORKFLOWS.iter().all(|w| list.iter().any(|entry| entry.name() == *w));
        if registered {
            for workflow in WORKFLOWS {
                let entry = api.workflow_info(workflow).await.expect("a catalog entry");
                registered &= entry.workers().iter().any(|n| n == worker);
            }
        }
        if registered {
            for entry in &list {
                assert_eq!(entry.version(), 1, "{:?}", entry.json());
            }
            return;
        }
        assert!(start.elapsed() < DEADLINE, "worker `{worker}` did not register in time; the catalog is {list:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// The event types of a detailed summary.
fn types(summary: &Value) -> Vec<String> {
    events(summary).iter().map(|e| e["type"].as_str().expect("a type").to_string()).collect()
}

fn events(summary: &Value) -> &Vec<Value> {
    summary["events"].as_array().unwrap_or_else(|| panic!("a detailed summary: {summary:#}"))
}

/// The events of one type.
fn of_type<'a>(summary: &'a Value, kind: &str) -> Vec<&'a Value> {
    events(summary).iter().filter(|e| e["type"] == kind).collect()
}

/// Checks that event ids are `{execution_id}-1`, `-2`, ... without a gap.
fn assert_sequential(summary: &Value) {
    let id = summary["execution_id"].as_str().expect("an execution id");
    for (i, event) in events(summary).iter().enumerate() {
        assert_eq!(event["id"], format!("{id}-{}", i + 1), "{summary:#}");
    }
}

/// Parses the event times the server sends (`2026-11-22T10:00:00.123456Z`).
fn parse_time(text: &str) -> SystemTime {
    fn fail<T>(text: &str) -> T {
        panic!("not an RFC 3339 UTC time: {text}")
    }
    let (date, time) = text.strip_suffix('Z').and_then(|t| t.split_once('T')).unwrap_or_else(|| fail(text));
    let date: Vec<i64> = date.split('-').map(|p| p.parse().unwrap_or_else(|_| fail(text))).collect();
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let hms: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap_or_else(|_| fail(text))).collect();
    let (y, m, d) = (date[0], date[1], date[2]);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).unwrap_or_else(|_| fail(text));
    let nanos: u64 = format!("{fraction:0<9}")[..9].parse().unwrap_or_else(|_| fail(text));
    UNIX_EPOCH + Duration::from_secs(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) + Duration::from_nanos(nanos)
}

fn event_time(event: &Value) -> SystemTime {
    parse_time(event["time"].as_str().expect("a time"))
}

/// `later - earlier`, or zero.
fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// Reads a stream of the client to its end (bounded by [`DEADLINE`]): each change of state as
/// `(event name, summary as sent)`. `first` is told the first summary as soon as it arrives.
async fn read_stream(
    mut events: EventStream<Value>,
    first: tokio::sync::oneshot::Sender<Value>,
) -> Vec<(String, Value)> {
    let mut first = Some(first);
    let mut seen = Vec::new();
    let read = async {
        while let Some(item) = events.next().await {
            if let StreamEvent::State(status) = item.expect("the stream continues") {
                let name =
                    format!("{}.execution.{}", status.workflow_name(), status.state().as_str().to_ascii_lowercase());
                if let Some(tx) = first.take() {
                    let _ = tx.send(status.summary().clone());
                }
                seen.push((name, status.summary().clone()));
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("the stream ends within the deadline");
    seen
}

// ---------------------------------------------------------------------------------------------
// 3. A real worker runs an execution
// ---------------------------------------------------------------------------------------------

/// A worker process registers (the catalog lists its workflows, naming it), is offered the
/// execution over its connection, claims it, runs it and checkpoints its events: `run/sync`
/// answers with the output and exactly the events of a claimed run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_registers_claims_runs_and_checkpoints() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);

    // Before any worker: nothing in the catalog, and hello_world is unknown.
    assert_eq!(catalog(&api).await, json!([]));
    let (code, body) = run_on(&api, "hello_world", "sync", false, &json!("World")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");

    let _worker = WorkerProcess::spawn(&url, "w-hello", tmp.path(), &[]);
    wait_catalog(&api, "w-hello").await;
    let entry = api.workflow_info("hello_world").await.expect("a catalog entry");
    assert_eq!((entry.name(), entry.version(), entry.workers()), ("hello_world", 1, &["w-hello".to_string()][..]));

    let (code, run) = run_on(&api, "hello_world", "sync", true, &json!("World")).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "COMPLETED", "{run:#}");
    assert_eq!(run["output"], "Hello, World");
    assert_eq!(run["input"], "World");
    assert_eq!(run["workflow_name"], "hello_world");
    assert_eq!(run["workflow_id"], "hello_world");
    assert_eq!(
        types(&run),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED"
        ],
        "{run:#}"
    );
    assert_sequential(&run);
    let id = run["execution_id"].as_str().expect("an execution id");
    let events = events(&run);
    let workflow_source = format!("hello_world_{id}");
    for i in [0, 1, 2, 5] {
        assert_eq!(events[i]["source_id"], workflow_source.as_str(), "{run:#}");
        assert_eq!(events[i]["name"], "hello_world");
    }
    assert_eq!(events[1]["value"], "w-hello", "the claim names the worker");
    assert_eq!(events[3]["name"], "say_hello");
    assert!(events[3]["source_id"].as_str().is_some_and(|s| s.starts_with("say_hello_")), "{run:#}");
    assert_eq!(events[3]["source_id"], events[4]["source_id"]);
    assert_eq!(events[4]["value"], "Hello, World");
    assert_eq!(events[5]["value"], "Hello, World");
    for pair in events.windows(2) {
        assert!(event_time(&pair[0]) <= event_time(&pair[1]), "times in order: {run:#}");
    }

    // What the worker checkpointed is what the server stored.
    let stored = status(&api, "hello_world", id).await;
    assert_eq!(stored, run);
    assert_eq!(side_effects(tmp.path()), ["say_hello start", "say_hello done"]);

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 4. A worker killed during a task
// ---------------------------------------------------------------------------------------------

/// A worker is SIGKILLed while task 2 of 3 runs; the server notices, takes the execution back
/// and offers it to a second worker, which replays task 1 from the log, runs task 2 again and
/// finishes. Task 1 ran once; every task completed exactly once in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_execution_is_finished_by_another_worker() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);
    let mut first = WorkerProcess::spawn(&url, "w-first", tmp.path(), &[("FLUX_TEST_SLOW_STEP", "2")]);
    wait_catalog(&api, "w-first").await;

    // A streamed run: its first event names the execution, its end is awaited below.
    let events = tokio::time::timeout(DEADLINE, workflow(&api, "three_steps", true).stream(&json!("a")))
        .await
        .expect("the server answers")
        .expect("the run is accepted");
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let stream = tokio::spawn(read_stream(events, first_tx));
    let opened = tokio::time::timeout(DEADLINE, first_rx).await.expect("a first event").expect("a first event");
    let id = opened["execution_id"].as_str().expect("an execution id").to_string();

    // Task 2 has started on the first worker, and the server stored its TASK_STARTED.
    let start = Instant::now();
    while !side_effects(tmp.path()).iter().any(|l| l == "step 2 start") {
        assert!(start.elapsed() < DEADLINE, "step 2 never started: {:?}", side_effects(tmp.path()));
        tokio::time::sleep(POLL).await;
    }
    wait_status(&api, "three_steps", &id, "TASK_STARTED of step 2", |s| of_type(s, "TASK_STARTED").len() == 2).await;
    let killed_at = SystemTime::now();
    let killed = Instant::now();
    first.kill();

    let _second = WorkerProcess::spawn(&url, "w-second", tmp.path(), &[]);
    let seen = stream.await.expect("the stream reader");
    let finished = killed.elapsed();
    let (last_name, last) = seen.last().expect("the stream sent events");
    assert_eq!(last_name, "three_steps.execution.completed", "{seen:#?}");
    assert_eq!(last["output"], "a:1:2:3", "{last:#}");

    let done = status(&api, "three_steps", &id).await;
    assert_eq!(done["state"], "COMPLETED", "{done:#}");
    assert_eq!(done["output"], "a:1:2:3");
    assert_eq!(last["events"], done["events"], "the stream saw every stored event");

    // Task 1 ran once, task 2 twice (killed the first time), task 3 once.
    assert_eq!(
        side_effects(tmp.path()),
        ["step 1 start", "step 1 done", "step 2 start", "step 2 start", "step 2 done", "step 3 start", "step 3 done"]
    );

    // The log, in the order the spec promises: the first run up to task 2's start, the
    // take-back (scheduled again), the second claim, then task 2's completion (no second
    // WORKFLOW_STARTED, no second TASK_STARTED for task 2), task 3 and the end.
    assert_eq!(types(&done), TAKEN_OVER_DURING_STEP_2, "{done:#}");
    assert_sequential(&done);
    let claims: Vec<&Value> = of_type(&done, "WORKFLOW_CLAIMED").iter().map(|e| &e["value"]).collect();
    assert_eq!(claims, [&json!("w-first"), &json!("w-second")]);
    let started: Vec<&str> = of_type(&done, "TASK_STARTED").iter().map(|e| e["source_id"].as_str().unwrap()).collect();
    let completed: Vec<&str> =
        of_type(&done, "TASK_COMPLETED").iter().map(|e| e["source_id"].as_str().unwrap()).collect();
    assert_eq!(started.len(), 3);
    assert_eq!(completed, started, "exactly one TASK_COMPLETED per task id, in call order");
    for (task_id, output) in started.iter().zip(["a:1", "a:1:2", "a:1:2:3"]) {
        assert!(task_id.starts_with("step_"), "{task_id}");
        let completion = of_type(&done, "TASK_COMPLETED").into_iter().find(|e| e["source_id"] == *task_id).unwrap();
        assert_eq!(completion["value"], output);
    }
    let scheduled = of_type(&done, "WORKFLOW_SCHEDULED");
    assert_eq!(scheduled[1]["value"], "a", "the execution is scheduled again with its input");

    let taken_back = since(killed_at, event_time(scheduled[1]));
    let reclaimed = since(killed_at, event_time(of_type(&done, "WORKFLOW_CLAIMED")[1]));
    eprintln!(
        "takeover after SIGKILL: taken back after {taken_back:?}, claimed by the second worker after \
         {reclaimed:?}, completed after {finished:?}"
    );
    assert!(reclaimed < DEADLINE);

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 5. Stale claims, by hand
// ---------------------------------------------------------------------------------------------

/// Bytes as a MessagePack binary string.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bin(Vec<u8>);

impl Serialize for Bin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bin;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a binary string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bin, E> {
                Ok(Bin(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bin, E> {
                Ok(Bin(v))
            }
        }
        d.deserialize_byte_buf(Visit)
    }
}

/// The answer to a claim (`ClaimResponse` of the worker protocol).
#[derive(Debug, Deserialize)]
struct ClaimAnswer {
    generation: u64,
    execution: ClaimedExecution,
    resume_input: Option<Bin>,
}

#[derive(Debug, Deserialize)]
struct ClaimedExecution {
    id: String,
    workflow_name: String,
    state: String,
    input: Bin,
    output: Option<Bin>,
    parent_id: Option<String>,
    claim_generation: u64,
    events: Vec<WireEvent>,
}

/// An event of the worker protocol.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WireEvent {
    seq: u64,
    #[serde(rename = "type")]
    kind: String,
    source_id: String,
    name: String,
    value: Bin,
    /// Microseconds since the Unix epoch.
    time: i64,
}

/// A checkpoint of the worker protocol.
#[derive(Debug, Serialize)]
struct Checkpoint {
    generation: u64,
    writes: Vec<WireWrite>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum WireWrite {
    Append { event: WireEvent },
    SetState { state: String, output: Option<Bin>, time: i64 },
}

fn micros_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_micros()).expect("in range")
}

/// A worker made by hand: its session token and the requests of the protocol.
struct HandWorker<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    name: &'static str,
    session: String,
}

impl<'a> HandWorker<'a> {
    async fn register(client: &'a reqwest::Client, url: &'a str, name: &'static str) -> HandWorker<'a> {
        let registration = json!({"name": name, "workflows": [{"name": "three_steps", "version": 1}]});
        let (code, body) =
            send(client.post(format!("{url}/workers/register")).bearer_auth(BOOTSTRAP).json(&registration)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["name"], name);
        let session = body["session_token"].as_str().expect("a session token").to_string();
        assert!(!session.is_empty() && session != BOOTSTRAP);
        // The worker learns the lease, to renew its claims well within it.
        assert_eq!(body["lease_timeout_ms"], u64::try_from(LEASE.as_millis()).unwrap(), "{body}");
        HandWorker { client, url, name, session }
    }

    /// `GET /workers/{name}/connect`: the open SSE connection on which offers and cancellations
    /// arrive.
    async fn connect(&self) -> reqwest::Response {
        let request = self.client.get(format!("{}/workers/{}/connect", self.url, self.name)).bearer_auth(&self.session);
        let response = tokio::time::timeout(DEADLINE, request.send()).await.expect("an answer").expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        response
    }

    /// An empty checkpoint: renews the claim of `id` under `generation`.
    async fn heartbeat(&self, id: &str, generation: u64) -> (StatusCode, Value) {
        self.checkpoint(id, &Checkpoint { generation, writes: Vec::new() }).await
    }

    /// `POST /workers/{name}/claim/{id}`: the decoded answer, or the error status and detail.
    async fn claim(&self, id: &str) -> Result<ClaimAnswer, (StatusCode, Value)> {
        let request =
            self.client.post(format!("{}/workers/{}/claim/{id}", self.url, self.name)).bearer_auth(&self.session);
        let response = tokio::time::timeout(DEADLINE, request.send()).await.expect("an answer").expect("sent");
        let status = response.status();
        if status != StatusCode::OK {
            let text = response.text().await.expect("the answer is read");
            return Err((status, serde_json::from_str(&text).unwrap_or(Value::String(text))));
        }
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(content_type.as_deref(), Some("application/msgpack"));
        let bytes = response.bytes().await.expect("the claim is read");
        Ok(flux::value::from_msgpack::<ClaimAnswer>(&bytes).expect("a MessagePack claim answer"))
    }

    /// `POST /workers/{name}/checkpoint/{id}` with a MessagePack body.
    async fn checkpoint(&self, id: &str, checkpoint: &Checkpoint) -> (StatusCode, Value) {
        let body = flux::value::to_msgpack(checkpoint).expect("the checkpoint encodes");
        send(
            self.client
                .post(format!("{}/workers/{}/checkpoint/{id}", self.url, self.name))
                .bearer_auth(&self.session)
                .header("content-type", "application/msgpack")
                .body(body),
        )
        .await
    }
}

/// The hand-made `WORKFLOW_STARTED` of a `three_steps` execution, as event `seq`.
fn started_event(id: &str, seq: u64) -> WireEvent {
    workflow_event(id, seq, "WORKFLOW_STARTED", "a")
}

/// A hand-made workflow event of a `three_steps` execution, with a string value.
fn workflow_event(id: &str, seq: u64, kind: &str, value: &str) -> WireEvent {
    WireEvent {
        seq,
        kind: kind.into(),
        source_id: format!("three_steps_{id}"),
        name: "three_steps".into(),
        value: Bin(flux::value::to_msgpack(value).unwrap()),
        time: micros_now(),
    }
}

/// What a worker writes when it has stopped a cancelled `three_steps` execution whose last
/// event is `last`: `WORKFLOW_CANCELLING`, `WORKFLOW_CANCELLED` and the state.
fn cancelled_writes(id: &str, last: u64) -> Vec<WireWrite> {
    let why = "cancelled on request";
    vec![
        WireWrite::Append { event: workflow_event(id, last + 1, "WORKFLOW_CANCELLING", "") },
        WireWrite::Append { event: workflow_event(id, last + 2, "WORKFLOW_CANCELLED", why) },
        WireWrite::SetState {
            state: "CANCELLED".into(),
            output: Some(Bin(flux::value::to_msgpack(why).unwrap())),
            time: micros_now(),
        },
    ]
}

/// Reads an open SSE answer until its next event (keep-alives skipped): `(event name, data)`,
/// or `None` if none came `within`.
async fn next_sse_event(
    response: &mut reqwest::Response,
    text: &mut String,
    within: Duration,
) -> Option<(String, Value)> {
    let read = async {
        loop {
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let name = block.lines().find_map(|l| l.strip_prefix("event:")).map(|n| n.trim().to_string());
                let data = block.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim);
                if let (Some(name), Some(data)) = (name, data) {
                    return Some((name, serde_json::from_str(data).expect("SSE data is JSON")));
                }
            }
            let chunk = response.chunk().await.expect("the stream continues")?;
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

/// A worker driven by hand claims an execution (a second claim is refused), stops renewing
/// its lease and loses the claim: the server schedules the execution again and it can be
/// claimed under a newer generation. A checkpoint under the old generation is refused with 409
/// and changes nothing; one under the new generation is stored if its seq follows the log, and
/// refused with 400 if not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_claim_cannot_write() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);

    // Registration needs the bootstrap token.
    let registration = json!({"name": "intruder", "workflows": [{"name": "three_steps", "version": 1}]});
    let (code, body) =
        send(client.post(format!("{url}/workers/register")).bearer_auth("wrong").json(&registration)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["detail"].is_string());

    let worker = HandWorker::register(&client, &url, "hand-1").await;
    let list = catalog(&api).await;
    assert_eq!(list, json!([{"name": "three_steps", "version": 1, "versions": [1]}]));

    let (code, run) = run_on(&api, "three_steps", "async", false, &json!("a")).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "SCHEDULED", "{run}");
    let id = run["execution_id"].as_str().expect("an execution id").to_string();

    // The claim: the log so far (with the claim's own event) and generation 1.
    let claim = worker.claim(&id).await.expect("the first claim succeeds");
    assert_eq!(claim.generation, 1);
    assert_eq!(claim.execution.claim_generation, 1);
    assert_eq!(claim.execution.id, id);
    assert_eq!(claim.execution.workflow_name, "three_steps");
    assert_eq!(claim.execution.state, "CLAIMED");
    assert_eq!(flux::value::from_msgpack::<String>(&claim.execution.input.0).unwrap(), "a");
    assert_eq!((&claim.execution.output, &claim.execution.parent_id, &claim.resume_input), (&None, &None, &None));
    let kinds: Vec<&str> = claim.execution.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED"]);
    assert_eq!(claim.execution.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(flux::value::from_msgpack::<String>(&claim.execution.events[1].value.0).unwrap(), "hand-1");

    // A second claim of the same execution, by the same worker or another one: 409.
    let (code, detail) = worker.claim(&id).await.expect_err("a second claim is refused");
    assert_eq!(code, StatusCode::CONFLICT, "{detail}");
    assert!(detail["detail"].as_str().is_some_and(|d| d.contains("already claimed")), "{detail}");
    let other = HandWorker::register(&client, &url, "hand-2").await;
    let (code, detail) = other.claim(&id).await.expect_err("a claim by another worker is refused");
    assert_eq!(code, StatusCode::CONFLICT, "{detail}");

    // One heartbeat (an empty checkpoint) renews the lease; then the worker goes silent.
    let silent = Instant::now();
    let (code, body) = worker.checkpoint(&id, &Checkpoint { generation: 1, writes: Vec::new() }).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], 2);
    let taken_back = wait_status(&api, "three_steps", &id, "the take-back of the expired claim", |s| {
        s["state"] == "SCHEDULED" && of_type(s, "WORKFLOW_SCHEDULED").len() == 2
    })
    .await;
    let expired_after = silent.elapsed();
    assert!(expired_after >= LEASE, "the lease lasted {expired_after:?}");
    assert_eq!(types(&taken_back), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_SCHEDULED"]);
    eprintln!("the claim was taken back {expired_after:?} after the last heartbeat");

    // The worker that lost the claim cannot write any more, even before anyone claims again.
    let late =
        Checkpoint { generation: claim.generation, writes: vec![WireWrite::Append { event: started_event(&id, 4) }] };
    let (code, body) = worker.checkpoint(&id, &late).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(status(&api, "three_steps", &id).await, taken_back, "the late checkpoint changed nothing");

    // Claimed again (offered again: the same hand-made worker takes it), under a newer generation.
    let again = worker.claim(&id).await.expect("the execution can be claimed again");
    assert!(again.generation > claim.generation, "generation {} after {}", again.generation, claim.generation);
    assert_eq!(again.execution.claim_generation, again.generation);
    let kinds: Vec<&str> = again.execution.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED"]);
    eprintln!("claim generations: {} then {}", claim.generation, again.generation);
    // The new holder heartbeats (renewing its lease changes nothing in the log).
    let renew = Checkpoint { generation: again.generation, writes: Vec::new() };
    let (code, body) = worker.checkpoint(&id, &renew).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], 4);

    // The old generation cannot write: 409 with a detail, and the log is unchanged.
    let before = status(&api, "three_steps", &id).await;
    let stale = Checkpoint {
        generation: claim.generation,
        writes: vec![
            WireWrite::Append { event: started_event(&id, 5) },
            WireWrite::SetState { state: "RUNNING".into(), output: None, time: micros_now() },
        ],
    };
    let (code, body) = worker.checkpoint(&id, &stale).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let detail = body["detail"].as_str().expect("a detail");
    assert!(detail.contains(&format!("generation {}", claim.generation)), "{detail}");
    let heartbeat = Checkpoint { generation: claim.generation, writes: Vec::new() };
    assert_eq!(worker.checkpoint(&id, &heartbeat).await.0, StatusCode::CONFLICT, "a stale heartbeat is refused too");
    assert_eq!(status(&api, "three_steps", &id).await, before, "the stale checkpoint changed nothing");
    assert_eq!(before["state"], "CLAIMED");

    // Another worker cannot write under the holder's generation either.
    let (code, body) = other.checkpoint(&id, &Checkpoint { generation: again.generation, writes: Vec::new() }).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");

    // The new generation, with the next seq: stored.
    let next = again.execution.events.last().expect("events").seq + 1;
    assert_eq!(next, 5);
    let current = Checkpoint {
        generation: again.generation,
        writes: vec![
            WireWrite::Append { event: started_event(&id, next) },
            WireWrite::SetState { state: "RUNNING".into(), output: None, time: micros_now() },
        ],
    };
    let (code, body) = worker.checkpoint(&id, &current).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], next);
    let running = status(&api, "three_steps", &id).await;
    assert_eq!(running["state"], "RUNNING", "{running:#}");
    assert_eq!(types(&running).last().map(String::as_str), Some("WORKFLOW_STARTED"));
    assert_eq!(events(&running).last().unwrap()["value"], "a");
    assert_sequential(&running);

    // The same checkpoint again (its answer lost, say): stored already, so it is acknowledged
    // and nothing is written twice.
    let (code, body) = worker.checkpoint(&id, &current).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], next);
    assert_eq!(status(&api, "three_steps", &id).await, running, "a resend changed the log");

    // The new generation with a seq that leaves a gap: 400, and nothing stored.
    let seq = next + 2;
    let wrong =
        Checkpoint { generation: again.generation, writes: vec![WireWrite::Append { event: started_event(&id, seq) }] };
    let (code, body) = worker.checkpoint(&id, &wrong).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "seq {seq}: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    assert_eq!(status(&api, "three_steps", &id).await, running, "seq {seq} changed the log");

    server.shutdown().await.expect("the server stops");
}

/// Registers the hand-made worker `name`, starts `three_steps("a")` with run/async and claims
/// it: the execution id and the claim.
async fn claimed_by_hand(worker: &HandWorker<'_>) -> (String, ClaimAnswer) {
    let (code, run) = run_on(&api(worker.url), "three_steps", "async", false, &json!("a")).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    let id = run["execution_id"].as_str().expect("an execution id").to_string();
    let claim = worker.claim(&id).await.expect("the claim succeeds");
    assert_eq!(claim.execution.events.last().map(|e| e.seq), Some(2));
    (id, claim)
}

/// Checks, for about `window`, that the stored execution stays as `expected`: for what must not
/// happen (a take-back) there is no event to wait for.
async fn stays_the_same(api: &Client, id: &str, expected: &Value, window: Duration) {
    let start = Instant::now();
    while start.elapsed() < window {
        let now = status(api, "three_steps", id).await;
        assert_eq!(&now, expected, "the execution changed after {:?}", start.elapsed());
        tokio::time::sleep(POLL).await;
    }
}

/// An execution is cancelled right after a worker claimed it, before its first checkpoint.
/// That checkpoint (WORKFLOW_STARTED, state RUNNING) is still accepted: the event is stored, the
/// state stays CANCELLING and the answer tells the worker to stop. The worker records the end,
/// and a sync cancel answers CANCELLED without waiting for the lease to run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_after_a_cancellation_is_stored_and_answered_with_it() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);
    let worker = HandWorker::register(&client, &url, "hand-cancel").await;
    let (id, claim) = claimed_by_hand(&worker).await;

    let asked = Instant::now();
    let cancel = tokio::spawn({
        let (api, id) = (api.clone(), id.clone());
        async move { cancel_on(&api, "three_steps", &id, true, true).await }
    });
    wait_status(&api, "three_steps", &id, "CANCELLING", |s| s["state"] == "CANCELLING").await;

    let first = Checkpoint {
        generation: claim.generation,
        writes: vec![
            WireWrite::Append { event: started_event(&id, 3) },
            WireWrite::SetState { state: "RUNNING".into(), output: None, time: micros_now() },
        ],
    };
    let (code, body) = worker.checkpoint(&id, &first).await;
    assert_eq!((code, &body), (StatusCode::OK, &json!({"seq": 3, "cancelling": true})), "{body}");
    let stored = status(&api, "three_steps", &id).await;
    assert_eq!(stored["state"], "CANCELLING", "{stored:#}");
    assert_eq!(types(&stored), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED"]);

    let end = Checkpoint { generation: claim.generation, writes: cancelled_writes(&id, 3) };
    let (code, body) = worker.checkpoint(&id, &end).await;
    assert_eq!((code, &body), (StatusCode::OK, &json!({"seq": 5, "cancelling": true})), "{body}");
    let (code, cancelled) = cancel.await.expect("the cancel request");
    let took = asked.elapsed();
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "CANCELLED", "{cancelled:#}");
    assert_eq!(cancelled["output"], "cancelled on request");
    assert_eq!(
        types(&cancelled),
        ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED", "WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED"]
    );
    assert_sequential(&cancelled);
    assert!(took < LEASE, "the cancel waited {took:?}, as if for the lease");
    assert_eq!(status(&api, "three_steps", &id).await, cancelled);

    server.shutdown().await.expect("the server stops");
}

/// The checkpoints of several executions in one batch.
#[derive(Debug, Serialize)]
struct Batch {
    items: Vec<Batched>,
}

#[derive(Debug, Serialize)]
struct Batched {
    execution_id: String,
    checkpoint: Checkpoint,
}

/// One outcome of a batch.
#[derive(Debug, Deserialize, PartialEq)]
struct Outcome {
    status: u16,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    cancelling: bool,
    #[serde(default)]
    detail: Option<String>,
}

impl HandWorker<'_> {
    /// `POST /workers/{name}/checkpoints` with a MessagePack body: the status, and the outcomes
    /// (MessagePack) or the error (JSON).
    async fn checkpoints(&self, batch: &Batch) -> (StatusCode, Result<Vec<Outcome>, Value>) {
        let body = flux::value::to_msgpack(batch).expect("the batch encodes");
        let request = self
            .client
            .post(format!("{}/workers/{}/checkpoints", self.url, self.name))
            .bearer_auth(&self.session)
            .header("content-type", "application/msgpack")
            .body(body);
        let response = tokio::time::timeout(DEADLINE, request.send()).await.expect("an answer").expect("sent");
        let status = response.status();
        let bytes = response.bytes().await.expect("the answer is read");
        if status != StatusCode::OK {
            return (status, Err(serde_json::from_slice(&bytes).unwrap_or(Value::Null)));
        }
        #[derive(Deserialize)]
        struct Answer {
            items: Vec<Outcome>,
        }
        let answer: Answer = flux::value::from_msgpack(&bytes).expect("a MessagePack answer");
        (status, Ok(answer.items))
    }
}

/// A batch stores each execution's checkpoint as if it had come alone: the current ones
/// stored, a stale one refused with 409 beside them (and nothing of it stored), a resend
/// answered as stored; a batch naming one execution twice, or too many, is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_checkpoints_stores_each_as_if_alone() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);
    let worker = HandWorker::register(&client, &url, "hand-batch").await;
    let (a, claim_a) = claimed_by_hand(&worker).await;
    let (b, claim_b) = claimed_by_hand(&worker).await;
    let (c, claim_c) = claimed_by_hand(&worker).await;
    let started = |id: &str, generation| Batched {
        execution_id: id.to_string(),
        checkpoint: Checkpoint {
            generation,
            writes: vec![
                WireWrite::Append { event: started_event(id, 3) },
                WireWrite::SetState { state: "RUNNING".into(), output: None, time: micros_now() },
            ],
        },
    };
    let batch = Batch {
        items: vec![
            started(&a, claim_a.generation),
            started(&b, claim_b.generation + 7),
            started(&c, claim_c.generation),
        ],
    };
    let (code, outcomes) = worker.checkpoints(&batch).await;
    assert_eq!(code, StatusCode::OK);
    let outcomes = outcomes.expect("outcomes");
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0], Outcome { status: 200, seq: 3, cancelling: false, detail: None });
    assert_eq!(outcomes[2], Outcome { status: 200, seq: 3, cancelling: false, detail: None });
    assert_eq!(outcomes[1].status, 409, "{outcomes:?}");
    let detail = outcomes[1].detail.as_deref().expect("a detail");
    assert!(detail.contains(&format!("execution `{b}`")), "{detail}");
    for id in [&a, &c] {
        let stored = status(&api, "three_steps", id).await;
        assert_eq!(stored["state"], "RUNNING", "{stored:#}");
        assert_eq!(types(&stored), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED"]);
    }
    let b_stored = status(&api, "three_steps", &b).await;
    assert_eq!(types(&b_stored), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED"], "the stale checkpoint changed nothing");

    // The same batch again, its answer lost: stored already, acknowledged, nothing written twice.
    let before = status(&api, "three_steps", &a).await;
    let (code, again) = worker.checkpoints(&batch).await;
    assert_eq!(code, StatusCode::OK);
    let again = again.expect("outcomes");
    assert_eq!((again[0].status, again[0].seq, again[2].seq), (200, 3, 3), "{again:?}");
    assert_eq!(status(&api, "three_steps", &a).await, before, "a resend changed the log");

    // Refused whole, nothing stored: one execution twice, more than 1,024, no session.
    let twice = Batch { items: vec![started(&b, claim_b.generation), started(&b, claim_b.generation)] };
    let (code, body) = worker.checkpoints(&twice).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
    let body = body.expect_err("an error");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("two checkpoints")), "{body}");
    let many = Batch {
        items: (0..1025)
            .map(|i| Batched {
                execution_id: format!("x{i}"),
                checkpoint: Checkpoint { generation: 1, writes: Vec::new() },
            })
            .collect(),
    };
    let (code, body) = worker.checkpoints(&many).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
    assert!(body.expect_err("an error")["detail"].as_str().is_some_and(|d| d.contains("at most 1024")));
    let anonymous = HandWorker { session: "not-a-session".into(), ..worker };
    let (code, _) = anonymous.checkpoints(&Batch { items: vec![started(&b, claim_b.generation)] }).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&api, "three_steps", &b).await, b_stored, "a refused batch changed nothing");

    server.shutdown().await.expect("the server stops");
}

/// A cancellation asked for while the holder's connection is down: every answer to its
/// heartbeats says so, and its next connection starts with `execution_cancelled` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_away_during_a_cancellation_hears_of_it() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);
    let worker = HandWorker::register(&client, &url, "hand-away").await;
    let connection = worker.connect().await;
    let (id, claim) = claimed_by_hand(&worker).await;
    let g = claim.generation;
    let started = Checkpoint {
        generation: g,
        writes: vec![
            WireWrite::Append { event: started_event(&id, 3) },
            WireWrite::SetState { state: "RUNNING".into(), output: None, time: micros_now() },
        ],
    };
    let (code, body) = worker.checkpoint(&id, &started).await;
    assert_eq!((code, &body), (StatusCode::OK, &json!({"seq": 3, "cancelling": false})), "{body}");

    // The connection drops; meanwhile the execution is cancelled.
    drop(connection);
    let (code, cancelling) = cancel_on(&api, "three_steps", &id, false, false).await;
    assert_eq!(code, StatusCode::OK, "{cancelling}");
    assert_eq!(cancelling["state"], "CANCELLING", "{cancelling}");

    // The worker's heartbeats tell it.
    for _ in 0..2 {
        let (code, body) = worker.heartbeat(&id, g).await;
        assert_eq!((code, &body), (StatusCode::OK, &json!({"seq": 3, "cancelling": true})), "{body}");
    }
    // So does its next connection, first thing.
    let mut connection = worker.connect().await;
    let mut text = String::new();
    let (event, data) = next_sse_event(&mut connection, &mut text, Duration::from_secs(5))
        .await
        .expect("the new connection tells of the cancellation");
    assert_eq!(event, "execution_cancelled", "{data}");
    assert_eq!(data["execution_id"], id.as_str(), "{data}");

    // The worker stops the run and records it.
    let (code, body) = worker.checkpoint(&id, &Checkpoint { generation: g, writes: cancelled_writes(&id, 3) }).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let done = status(&api, "three_steps", &id).await;
    assert_eq!(done["state"], "CANCELLED", "{done:#}");
    assert_eq!(
        types(&done),
        ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED", "WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED"]
    );

    server.shutdown().await.expect("the server stops");
}

/// A worker's connection drops and the server sees it go (cutting its claims' leases to a short
/// grace); the worker connects again at once and keeps its claims: they are not taken back when
/// the grace would have run out, and its next heartbeat and checkpoint are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_reconnects_keeps_its_claims() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);
    let worker = HandWorker::register(&client, &url, "hand-back").await;
    let connection = worker.connect().await;
    let (id, claim) = claimed_by_hand(&worker).await;

    drop(connection);
    wait_server_log("the server to see the connection go", &["worker disconnected", "worker=hand-back"]).await;
    let _connection = worker.connect().await;
    let claimed = status(&api, "three_steps", &id).await;
    assert_eq!(types(&claimed), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED"]);
    assert_eq!(claimed["state"], "CLAIMED");
    // No heartbeat for longer than the grace and a sweep of the server: the claim holds.
    stays_the_same(&api, &id, &claimed, DISCONNECT_GRACE + Duration::from_millis(500)).await;
    let (code, body) = worker.heartbeat(&id, claim.generation).await;
    assert_eq!((code, &body), (StatusCode::OK, &json!({"seq": 2, "cancelling": false})), "{body}");
    let started =
        Checkpoint { generation: claim.generation, writes: vec![WireWrite::Append { event: started_event(&id, 3) }] };
    let (code, body) = worker.checkpoint(&id, &started).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        types(&status(&api, "three_steps", &id).await),
        ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED"]
    );

    server.shutdown().await.expect("the server stops");
}

/// The lease of a claim runs out while storage refuses writes (another process's trigger makes
/// every new event fail): the take-back fails, and is tried again until storage accepts it. The
/// execution is then scheduled again and claimed by another worker, and the old holder is
/// fenced off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_back_that_storage_refuses_is_tried_again() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let db = tmp.path().join("flux.db");
    let server = start_server(&db, "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);
    let worker = HandWorker::register(&client, &url, "hand-refused").await;
    let (id, claim) = claimed_by_hand(&worker).await;

    let other_process = rusqlite::Connection::open(&db).expect("the database opens");
    other_process
        .execute_batch(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .expect("the trigger is created");
    // The lease runs out; taking the claim back needs an event, which storage refuses.
    wait_server_log("the refused take-back", &["cannot take back an expired claim", &format!("execution_id={id}")])
        .await;
    let refused = status(&api, "three_steps", &id).await;
    assert_eq!(types(&refused), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED"]);
    assert_eq!(refused["state"], "CLAIMED");
    other_process.execute_batch("DROP TRIGGER refuse_events").expect("the trigger is dropped");

    let taken_back =
        wait_status(&api, "three_steps", &id, "the take-back once storage accepts it", |s| s["state"] != "CLAIMED")
            .await;
    assert_eq!(taken_back["state"], "SCHEDULED", "{taken_back:#}");
    assert_eq!(types(&taken_back), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_SCHEDULED"]);
    assert_sequential(&taken_back);
    let (code, body) = worker.heartbeat(&id, claim.generation).await;
    assert_eq!(code, StatusCode::CONFLICT, "the old holder is fenced off: {body}");
    let other = HandWorker::register(&client, &url, "hand-next").await;
    let again = other.claim(&id).await.expect("another worker claims it");
    assert!(again.generation > claim.generation, "generation {} after {}", again.generation, claim.generation);
    let kinds: Vec<&str> = again.execution.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED"]);

    server.shutdown().await.expect("the server stops");
}

/// Event times are microseconds since 1970 and must be shown as RFC 3339: a checkpoint with a
/// time before 1970 or after 9999 is refused (422) and stores nothing, the last microsecond of
/// 9999 is fine; and a time past 9999 already in the database (from an older server) is shown
/// as its microseconds instead of failing the status request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_times_outside_the_years_1970_to_9999_are_refused() {
    const LAST_OF_9999: i64 = 253_402_300_799_999_999;
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let db = tmp.path().join("flux.db");
    let server = start_server(&db, "127.0.0.1:0").await;
    let url = server.url();
    let client = client();
    let api = api(&url);
    let worker = HandWorker::register(&client, &url, "hand-times").await;
    let (id, claim) = claimed_by_hand(&worker).await;
    let claimed = status(&api, "three_steps", &id).await;

    let at = |time: i64| {
        let mut event = started_event(&id, 3);
        event.time = time;
        event
    };
    for time in [i64::MAX, LAST_OF_9999 + 1, -1, i64::MIN] {
        for writes in [
            vec![WireWrite::Append { event: at(time) }],
            vec![
                WireWrite::Append { event: started_event(&id, 3) },
                WireWrite::SetState { state: "RUNNING".into(), output: None, time },
            ],
        ] {
            let (code, body) = worker.checkpoint(&id, &Checkpoint { generation: claim.generation, writes }).await;
            assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "time {time}: {body}");
            assert!(body["detail"].as_str().is_some_and(|d| d.contains(&time.to_string())), "{body}");
            assert_eq!(status(&api, "three_steps", &id).await, claimed, "time {time} changed the log");
        }
    }

    let last = Checkpoint { generation: claim.generation, writes: vec![WireWrite::Append { event: at(LAST_OF_9999) }] };
    let (code, body) = worker.checkpoint(&id, &last).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let stored = status(&api, "three_steps", &id).await;
    assert_eq!(types(&stored), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_STARTED"]);
    assert_eq!(events(&stored)[2]["time"], "9999-12-31T23:59:59.999999Z");

    // A time past 9999 written into the database behind the server's back.
    let other_process = rusqlite::Connection::open(&db).expect("the database opens");
    let changed = other_process
        .execute(
            "UPDATE events SET time = ?1 WHERE execution = (SELECT pk FROM executions WHERE id = ?2) AND seq = 3",
            rusqlite::params![i64::MAX, id],
        )
        .expect("the event is updated");
    assert_eq!(changed, 1);
    let shown = status(&api, "three_steps", &id).await;
    assert_eq!(events(&shown)[2]["time"], i64::MAX.to_string(), "{shown:#}");
    assert_eq!(events(&shown)[..2], events(&stored)[..2]);

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 6. Pause, resume and cancel over HTTP
// ---------------------------------------------------------------------------------------------

/// An execution run by a worker pauses (`run/sync` answers PAUSED), is resumed with
/// `resume/sync` (COMPLETED with the joined output); another one is cancelled while its task
/// sleeps (`cancel?mode=sync` answers CANCELLED, the task is cancelled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_run_executions_pause_resume_and_cancel() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);
    let _worker = WorkerProcess::spawn(&url, "w-pause", tmp.path(), &[]);
    wait_catalog(&api, "w-pause").await;

    // Pause.
    let (code, paused) = run_on(&api, "approval", "sync", true, &json!("order-7")).await;
    assert_eq!(code, StatusCode::OK, "{paused}");
    assert_eq!(paused["state"], "PAUSED", "{paused:#}");
    assert_eq!(paused["output"], Value::Null);
    assert_eq!(
        types(&paused),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_PAUSED",
            "WORKFLOW_PAUSED"
        ],
        "{paused:#}"
    );
    let id = paused["execution_id"].as_str().expect("an execution id").to_string();

    // Resume.
    let (code, resumed) = resume_on(&api, "approval", &id, "sync", true, &json!("yes")).await;
    assert_eq!(code, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "COMPLETED", "{resumed:#}");
    assert_eq!(resumed["output"], "order-7:yes");
    assert_eq!(
        types(&resumed),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_PAUSED",
            "WORKFLOW_PAUSED",
            "WORKFLOW_RESUME_SCHEDULED",
            "WORKFLOW_RESUME_CLAIMED",
            "WORKFLOW_RESUMING",
            "WORKFLOW_RESUMED",
            "TASK_RESUMED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED"
        ],
        "{resumed:#}"
    );
    assert_sequential(&resumed);
    assert_eq!(of_type(&resumed, "TASK_COMPLETED")[0]["value"], "yes");
    let (code, body) = resume_on(&api, "approval", &id, "sync", false, &json!("again")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a finished execution cannot be resumed: {body}");

    // Cancel.
    let (code, run) = run_on(&api, "sleeper", "async", false, &json!(30_000)).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    let id = run["execution_id"].as_str().expect("an execution id").to_string();
    wait_status(&api, "sleeper", &id, "the sleeping task to start", |s| !of_type(s, "TASK_STARTED").is_empty()).await;
    let asked = Instant::now();
    let (code, cancelled) = cancel_on(&api, "sleeper", &id, true, true).await;
    let took = asked.elapsed();
    assert_eq!(code, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "CANCELLED", "{cancelled:#}");
    assert!(took < Duration::from_secs(20), "the sleeping task was interrupted ({took:?})");
    let stored = status(&api, "sleeper", &id).await;
    assert_eq!(stored["state"], "CANCELLED");
    let kinds = types(&stored);
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap_or_else(|| panic!("no {kind}: {kinds:?}"));
    assert!(position("WORKFLOW_CANCELLING") < position("TASK_CANCELLED"), "{kinds:?}");
    assert!(position("TASK_STARTED") < position("TASK_CANCELLED"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("WORKFLOW_CANCELLED"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "TASK_COMPLETED" || k == "WORKFLOW_COMPLETED"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| k.starts_with("WORKFLOW_CANCEL")).count(), 2, "{kinds:?}");
    assert_sequential(&stored);
    assert_eq!(
        side_effects(tmp.path()).iter().filter(|l| l.starts_with("sleep_for")).collect::<Vec<_>>(),
        ["sleep_for start"]
    );
    let (code, body) = cancel_on(&api, "sleeper", &id, true, false).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a finished execution cannot be cancelled: {body}");
    eprintln!("cancel?mode=sync of a worker-run task took {took:?}");

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 7. The server restarts under a worker
// ---------------------------------------------------------------------------------------------

/// The server stops while a worker runs; a new server on the same database and port comes up.
/// The worker reconnects on its own (registering again) and runs a new execution; the earlier
/// execution is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_to_a_restarted_server() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let db = tmp.path().join("flux.db");
    let server = start_server(&db, "127.0.0.1:0").await;
    let url = server.url();
    let addr = server.local_addr();
    let api = api(&url);
    let _worker = WorkerProcess::spawn(&url, "w-reconnect", tmp.path(), &[]);
    wait_catalog(&api, "w-reconnect").await;
    let (code, before) = run_on(&api, "hello_world", "sync", false, &json!("World")).await;
    assert_eq!(code, StatusCode::OK, "{before}");
    assert_eq!(before["state"], "COMPLETED", "{before:#}");
    let first_id = before["execution_id"].as_str().expect("an execution id").to_string();

    tokio::time::timeout(DEADLINE, server.shutdown())
        .await
        .expect("the server stops within the deadline although a worker is connected")
        .expect("the server stops");
    let stopped = Instant::now();
    // A new client: the old one's pooled connections went with the old server.
    let api = self::api(&url);
    let gone = api.workflows().await.expect_err("nothing listens any more");
    assert_eq!(gone.kind(), flux::ErrorKind::Unreachable, "{gone}");

    // The same port, as soon as it is free again.
    let server = loop {
        let engine = flux::Engine::open(&db).expect("the database opens again");
        let bound = flux::server::Server::new()
            .engine(&engine)
            .bootstrap_token(BOOTSTRAP)
            .admin_token(ADMIN)
            .lease_timeout(LEASE)
            .bind(addr)
            .await;
        match bound {
            Ok(server) => break server,
            Err(e) => {
                assert!(stopped.elapsed() < Duration::from_secs(10), "port {} stays busy: {e}", addr.port());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(server.url(), url);

    // The new server knows the worker only once it registered again.
    wait_catalog(&api, "w-reconnect").await;
    let reconnected = stopped.elapsed();
    eprintln!("the worker registered with the restarted server {reconnected:?} after the restart");

    let (code, after) = run_on(&api, "hello_world", "sync", true, &json!("Again")).await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["state"], "COMPLETED", "{after:#}");
    assert_eq!(after["output"], "Hello, Again");
    assert_eq!(of_type(&after, "WORKFLOW_CLAIMED")[0]["value"], "w-reconnect");
    assert_eq!(
        types(&after),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED"
        ]
    );

    // The execution of the first server is in the same database.
    let old = status(&api, "hello_world", &first_id).await;
    assert_eq!(old["state"], "COMPLETED");
    assert_eq!(old["output"], "Hello, World");

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 8. Leases: learned from the server, renewed in time, and lost
// ---------------------------------------------------------------------------------------------

/// The workers are configured to renew their claims every 5 s, but the server's lease is 3 s:
/// they learn the lease when they register and renew well within it, so a 4 s task is neither
/// taken back nor run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_renew_their_claims_within_the_server_s_lease() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);
    let slow = [("FLUX_TEST_HEARTBEAT_MS", "5000")];
    let _a = WorkerProcess::spawn(&url, "w-lease-a", tmp.path(), &slow);
    let _b = WorkerProcess::spawn(&url, "w-lease-b", tmp.path(), &slow);
    wait_catalog(&api, "w-lease-a").await;
    wait_catalog(&api, "w-lease-b").await;

    let (code, run) = run_on(&api, "sleeper", "sync", true, &json!(4000)).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "COMPLETED", "{run:#}");
    assert_eq!(run["output"], 4000);
    assert_eq!(
        types(&run),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED"
        ],
        "{run:#}"
    );
    assert_sequential(&run);
    assert_eq!(side_effects(tmp.path()), ["sleep_for start", "sleep_for done"]);

    server.shutdown().await.expect("the server stops");
}

/// A worker is paused (SIGSTOP, as a machine is suspended) during task 2 of 3 for longer than
/// its lease: the claim is taken back and another worker finishes the execution. When the first
/// worker wakes up, its heartbeat is refused (409) and it stops its run at once instead of going
/// on with a task whose results can no longer be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_claim_stops_its_run() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);
    let (dir_paused, dir_other) = (subdirectory(tmp.path(), "paused"), subdirectory(tmp.path(), "other"));
    let paused = WorkerProcess::spawn(&url, "w-paused", &dir_paused, &[("FLUX_TEST_SLOW_STEP", "2")]);
    wait_catalog(&api, "w-paused").await;
    let (code, run) = run_on(&api, "three_steps", "async", false, &json!("a")).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    let id = run["execution_id"].as_str().expect("an execution id").to_string();
    wait_status(&api, "three_steps", &id, "TASK_STARTED of step 2", |s| of_type(s, "TASK_STARTED").len() == 2).await;
    // Named to be chosen first when the execution is offered again.
    let _other = WorkerProcess::spawn(&url, "w-other", &dir_other, &[]);
    wait_catalog(&api, "w-other").await;

    paused.signal("STOP");
    let done =
        wait_status(&api, "three_steps", &id, "completion by the other worker", |s| s["state"] == "COMPLETED").await;
    paused.signal("CONT");
    paused.wait_log("the run to stop", "this worker lost its claim; its run stops").await;
    paused.wait_log("the run to end", "execution stopped on this worker").await;

    assert_eq!(done["output"], "a:1:2:3");
    assert_eq!(types(&done), TAKEN_OVER_DURING_STEP_2, "{done:#}");
    assert_sequential(&done);
    let claims: Vec<&Value> = of_type(&done, "WORKFLOW_CLAIMED").iter().map(|e| &e["value"]).collect();
    assert_eq!(claims, [&json!("w-paused"), &json!("w-other")]);
    // The paused worker's task 2 was stopped (it can never write `step 2 done` now); the other
    // worker replayed task 1 and ran tasks 2 and 3.
    assert_eq!(side_effects(&dir_paused), ["step 1 start", "step 1 done", "step 2 start"]);
    assert_eq!(side_effects(&dir_other), ["step 2 start", "step 2 done", "step 3 start", "step 3 done"]);
    assert_eq!(status(&api, "three_steps", &id).await, done, "the stopped run wrote nothing");

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 9. A cancellation while a worker is cut off
// ---------------------------------------------------------------------------------------------

/// The network between a worker and the server goes down while the worker's task sleeps, the
/// execution is cancelled meanwhile (the message on the dead connection is lost), and the
/// network comes back: the worker hears of the cancellation (from its heartbeats' answers or
/// when it reconnects) and stops the task. The execution ends CANCELLED, recorded by the worker,
/// long before the task would have finished, and was never taken back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_asked_while_a_worker_is_cut_off_reaches_it() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);
    let proxy = Proxy::start(server.local_addr());
    let _worker = WorkerProcess::spawn(&proxy.url, "w-cut-off", tmp.path(), &[]);
    wait_catalog(&api, "w-cut-off").await;
    let (code, run) = run_on(&api, "sleeper", "async", false, &json!(30_000)).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    let id = run["execution_id"].as_str().expect("an execution id").to_string();
    wait_status(&api, "sleeper", &id, "the sleeping task to start", |s| !of_type(s, "TASK_STARTED").is_empty()).await;

    proxy.cut();
    let asked = Instant::now();
    let (code, cancelling) = cancel_on(&api, "sleeper", &id, false, false).await;
    assert_eq!(code, StatusCode::OK, "{cancelling}");
    assert_eq!(cancelling["state"], "CANCELLING", "{cancelling}");
    proxy.restore();

    let done = wait_status(&api, "sleeper", &id, "the end", |s| {
        ["CANCELLED", "COMPLETED", "FAILED"].contains(&s["state"].as_str().unwrap_or(""))
    })
    .await;
    let took = asked.elapsed();
    assert_eq!(done["state"], "CANCELLED", "{done:#}");
    assert!(took < Duration::from_secs(20), "the cancellation waited for the 30 s task ({took:?})");
    assert_eq!(
        types(&done),
        [
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "WORKFLOW_CANCELLING",
            "TASK_CANCELLED",
            "WORKFLOW_CANCELLED"
        ],
        "{done:#}"
    );
    assert_sequential(&done);
    assert_eq!(side_effects(tmp.path()), ["sleep_for start"]);
    eprintln!("a cancellation asked while the worker was cut off ended the run after {took:?}");

    server.shutdown().await.expect("the server stops");
}

// ---------------------------------------------------------------------------------------------
// 10. Two workers with one name
// ---------------------------------------------------------------------------------------------

/// A second worker process started under the name of a connected one (`flux start worker NAME`
/// twice) is refused (409) and keeps trying, without disturbing the first, which runs the
/// executions. When the first is gone, the second registers and takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_under_a_connected_name_waits_for_the_first_to_go() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let server = start_server(&tmp.path().join("flux.db"), "127.0.0.1:0").await;
    let url = server.url();
    let api = api(&url);
    let (dir_first, dir_second) = (subdirectory(tmp.path(), "first"), subdirectory(tmp.path(), "second"));
    let mut first = WorkerProcess::spawn(&url, "w-same", &dir_first, &[]);
    wait_catalog(&api, "w-same").await;
    first.wait_log("its connection", "connected").await;
    let second = WorkerProcess::spawn(&url, "w-same", &dir_second, &[]);
    second.wait_log("the refused registration", "is connected already").await;
    second.wait_log("another try", "cannot register; retrying").await;

    let (code, run) = run_on(&api, "three_steps", "sync", true, &json!("a")).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "COMPLETED", "{run:#}");
    assert_eq!(run["output"], "a:1:2:3");
    assert_eq!(
        types(&run),
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
        ],
        "{run:#}"
    );
    assert_sequential(&run);
    assert_eq!(
        side_effects(&dir_first),
        ["step 1 start", "step 1 done", "step 2 start", "step 2 done", "step 3 start", "step 3 done"]
    );
    assert_eq!(side_effects(&dir_second), Vec::<String>::new());
    let first_log = first.log_text();
    assert!(!first_log.contains("cannot renew") && !first_log.contains("cannot connect"), "{first_log}");

    first.kill();
    let (code, run) = run_on(&api, "hello_world", "sync", false, &json!("World")).await;
    assert_eq!(code, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "COMPLETED", "{run:#}");
    assert_eq!(run["output"], "Hello, World");
    assert_eq!(side_effects(&dir_second), ["say_hello start", "say_hello done"]);

    server.shutdown().await.expect("the server stops");
}
