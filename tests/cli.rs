//! The `flux` CLI binary driven as a user would: `flux start server` and `flux start worker` as
//! child processes, then one `flux` process per command: run, status, resume, cancel, stream,
//! the execution list, secrets, and the errors a user sees.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
const FLUX: &str = env!("CARGO_BIN_EXE_flux");
/// The bootstrap token the server and the worker share (through the environment).
const BOOTSTRAP_TOKEN: &str = "cli-test-bootstrap-token";
/// The admin token the server and the CLI share (through the environment).
const ADMIN_TOKEN: &str = "cli-test-admin-token";
/// How long a server may take to listen, or a worker to register (tests run in parallel on
/// small machines).
const STARTUP: Duration = Duration::from_secs(90);
/// How long one CLI command may take.
const COMMAND: Duration = Duration::from_secs(90);
/// How long an execution may take to reach an expected state.
const PROGRESS: Duration = Duration::from_secs(60);
/// The pause between two polls.
const POLL: Duration = Duration::from_millis(100);

/// What one `flux` command did.
#[derive(Debug)]
struct Run {
    args: Vec<String>,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// A server (and maybe a worker) in a temporary directory, killed when dropped (also when a test
/// panics).
struct Flux {
    dir: tempfile::TempDir,
    url: String,
    children: Vec<(&'static str, Child)>,
}

impl Drop for Flux {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `flux` command with the test's configuration: everything under `dir`, nothing from the
/// environment of the test run.
fn flux_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(FLUX);
    command
        .args(args)
        .current_dir(dir)
        .env("FLUX_HOME", dir.join(".flux"))
        .env("FLUX_DATABASE_URL", format!("sqlite://{}", dir.join("flux.db").display()))
        .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN)
        .env("FLUX_SECURITY__ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FLUX_QUEUES__SINGLE__CONCURRENCY", "1")
        .env_remove("FLUX_CONFIG")
        .env_remove("FLUX_SERVER_HOST")
        .env_remove("FLUX_SERVER_PORT")
        .env_remove("FLUX_WORKERS__SERVER_URL")
        .env_remove("FLUX_SECURITY__ENCRYPTION_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end (killed after [`COMMAND`]), collecting its output.
fn run_command(mut command: Command) -> Run {
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the flux binary starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + COMMAND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for flux") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`flux {}` did not finish within {COMMAND:?}", args.join(" "));
        }
        thread::sleep(Duration::from_millis(10));
    };
    Run { args, status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Spawns a long-running `flux start ...` with its standard error in `log`, returning it with
/// the lines of its standard output as they arrive.
fn spawn_logged(mut command: Command, log: &Path) -> (Child, mpsc::Receiver<String>) {
    let log = std::fs::File::create(log).expect("a log file");
    command.env("RUST_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::from(log));
    let mut child = command.spawn().expect("the flux binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                // Nobody listens any more; keep draining so the process never blocks on a full pipe.
                continue;
            }
        }
    });
    (child, receiver)
}

/// Waits for the line of `lines` that starts with `prefix`, returning the rest of it.
fn wait_for_line(lines: &mpsc::Receiver<String>, prefix: &str, deadline: Instant) -> Option<String> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.trim().to_string());
                }
            }
            Err(_) => return None,
        }
    }
}

impl Flux {
    /// `flux start server --host 127.0.0.1 --port 0` in a fresh directory.
    fn server() -> Flux {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let command = flux_command(dir.path(), &["start", "server", "--host", "127.0.0.1", "--port", "0"]);
        let (child, lines) = spawn_logged(command, &dir.path().join("server.log"));
        let mut flux = Flux { dir, url: String::new(), children: vec![("server", child)] };
        match wait_for_line(&lines, "flux server listening on ", Instant::now() + STARTUP) {
            Some(url) => flux.url = url,
            None => flux.fail("the server did not print `flux server listening on http://ADDR`"),
        }
        assert!(flux.url.starts_with("http://127.0.0.1:"), "unexpected server URL {}", flux.url);
        flux
    }

    /// A server and `flux start worker w1`, once the worker's workflows are in the catalog.
    fn server_and_worker() -> Flux {
        let mut flux = Flux::server();
        let command = flux_command(flux.dir.path(), &["start", "worker", "w1", "--server-url", &flux.url]);
        let (child, _lines) = spawn_logged(command, &flux.dir.path().join("worker.log"));
        flux.children.push(("worker", child));
        let deadline = Instant::now() + STARTUP;
        loop {
            let listed = flux.json(&["workflow", "list", "--format", "json"]);
            let names: Vec<&str> = listed
                .as_array()
                .map(|items| items.iter().filter_map(|w| w["name"].as_str()).collect())
                .unwrap_or_default();
            if ["hello_world", "approval", "countdown"].iter().all(|n| names.contains(n)) {
                break;
            }
            if Instant::now() > deadline {
                flux.fail(&format!("the worker's workflows never appeared in `workflow list`: {listed}"));
            }
            flux.check_alive();
            thread::sleep(POLL);
        }
        flux
    }

    /// A `flux` command against this server (its URL through `FLUX_WORKERS__SERVER_URL`, as a
    /// user's configuration would give it).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = flux_command(self.dir.path(), args);
        command.env("FLUX_WORKERS__SERVER_URL", &self.url);
        command
    }

    /// Runs a command to its end, whatever its exit code.
    fn run(&self, args: &[&str]) -> Run {
        run_command(self.command(args))
    }

    /// Runs a command that must succeed, returning its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        if !run.status.success() {
            self.fail(&format!("`flux {}` failed ({}):\n{}{}", run.args.join(" "), run.status, run.stdout, run.stderr));
        }
        run.stdout
    }

    /// Runs a `--format json` command that must succeed, returning its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| self.fail(&format!("`flux {}` printed no JSON ({e}):\n{stdout}", args.join(" "))))
    }

    /// Runs a command that must fail with exit code 1, returning its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        if run.code() != Some(1) {
            self.fail(&format!("`flux {}` should exit with 1: {run:?}", args.join(" ")));
        }
        assert!(run.stderr.starts_with("error: "), "{run:?}");
        run.stderr
    }

    /// Polls `status` until the execution is in `state`.
    fn wait_for_state(&self, workflow: &str, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + PROGRESS;
        loop {
            let status = self.json(&["workflow", "status", workflow, id, "--format", "json"]);
            if status["state"] == state {
                return status;
            }
            if ["COMPLETED", "FAILED", "CANCELLED"].contains(&status["state"].as_str().unwrap_or_default()) {
                self.fail(&format!("{workflow} {id} finished before reaching {state}: {status}"));
            }
            if Instant::now() > deadline {
                self.fail(&format!("{workflow} {id} never reached {state}: {status}"));
            }
            thread::sleep(POLL);
        }
    }

    /// `GET path` on the server without the CLI: (status code, body).
    fn raw_get(&self, path: &str) -> (u16, String) {
        let address = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to the server");
        stream.set_read_timeout(Some(COMMAND)).expect("a read timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("a response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        (status, body.to_string())
    }

    /// Panics if the server or the worker has exited.
    fn check_alive(&mut self) {
        let mut dead = None;
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                dead = Some(format!("the {name} exited ({status})"));
            }
        }
        if let Some(message) = dead {
            self.fail(&message);
        }
    }

    /// Panics with `message` and the server's and worker's logs.
    fn fail(&self, message: &str) -> ! {
        let mut logs = String::new();
        for name in ["server.log", "worker.log"] {
            let path: PathBuf = self.dir.path().join(name);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                logs.push_str(&format!("\n--- {name} (last lines) ---\n"));
                for line in tail.iter().rev() {
                    logs.push_str(line);
                    logs.push('\n');
                }
            }
        }
        panic!("{message}{logs}");
    }
}

/// The events' types of a detailed summary.
fn event_types(summary: &Value) -> Vec<String> {
    summary["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["type"].as_str()).map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn workflows_run_show_their_status_pause_resume_cancel_and_stream() {
    let flux = Flux::server_and_worker();

    // The catalog, as a table and as JSON.
    let table = flux.ok(&["workflow", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("hello_world ")), "{table}");
    let shown = flux.json(&["workflow", "show", "hello_world", "--format", "json"]);
    assert_eq!(shown["name"], "hello_world", "{shown}");
    assert!(
        flux.ok(&["workflow", "show", "countdown"]).lines().any(|l| l.starts_with("name") && l.ends_with("countdown"))
    );

    // run (sync by default): plain text input is a JSON string.
    let run = flux.json(&["workflow", "run", "hello_world", "World", "--format", "json"]);
    assert_eq!(run["state"], "COMPLETED", "{run}");
    assert_eq!(run["output"], "Hello, World", "{run}");
    assert_eq!(run["input"], "World", "{run}");
    assert_eq!(run["workflow_name"], "hello_world", "{run}");
    let id = run["execution_id"].as_str().expect("an execution id").to_string();

    // status, as a key-value view and as JSON with the events.
    let status = flux.ok(&["workflow", "status", "hello_world", &id]);
    for expected in ["COMPLETED", "Hello, World", id.as_str()] {
        assert!(status.contains(expected), "status lacks {expected}:\n{status}");
    }
    assert!(!status.contains("events:"), "{status}");
    let detailed = flux.json(&["workflow", "status", "hello_world", &id, "--detailed", "--format", "json"]);
    assert_eq!(detailed["output"], "Hello, World", "{detailed}");
    let types = event_types(&detailed);
    for expected in ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"] {
        assert!(types.iter().any(|t| t == expected), "no {expected} in {types:?}");
    }
    let detailed_table = flux.ok(&["workflow", "status", "hello_world", &id, "--detailed"]);
    assert!(detailed_table.contains("events:") && detailed_table.contains("WORKFLOW_COMPLETED"), "{detailed_table}");
    assert!(detailed_table.contains("say_hello"), "{detailed_table}");

    // pause, then resume.
    let paused = flux.json(&["workflow", "run", "approval", "x", "--mode", "sync", "--format", "json"]);
    assert_eq!(paused["state"], "PAUSED", "{paused}");
    let paused_id = paused["execution_id"].as_str().expect("an execution id").to_string();
    let resumed = flux.json(&["workflow", "resume", "approval", &paused_id, "yes", "--format", "json"]);
    assert_eq!(resumed["state"], "COMPLETED", "{resumed}");
    assert_eq!(resumed["output"], "x -> yes", "{resumed}");
    assert_eq!(resumed["execution_id"], paused_id.as_str(), "{resumed}");

    // async, then cancel while it runs.
    let started = flux.json(&["workflow", "run", "countdown", "50", "--mode", "async", "--format", "json"]);
    let countdown_id = started["execution_id"].as_str().expect("an execution id").to_string();
    assert!(
        !["COMPLETED", "FAILED", "CANCELLED"].contains(&started["state"].as_str().unwrap_or_default()),
        "{started}"
    );
    flux.wait_for_state("countdown", &countdown_id, "RUNNING");
    let cancelled =
        flux.json(&["workflow", "cancel", "countdown", &countdown_id, "--mode", "sync", "--format", "json"]);
    assert_eq!(cancelled["state"], "CANCELLED", "{cancelled}");
    let after = flux.json(&["workflow", "status", "countdown", &countdown_id, "--detailed", "--format", "json"]);
    assert_eq!(after["state"], "CANCELLED", "{after}");
    assert!(event_types(&after).iter().any(|t| t == "WORKFLOW_CANCELLED"), "{after}");
    // Cancelling it again is refused, with the server's reason.
    let again = flux.fails(&["workflow", "cancel", "countdown", &countdown_id]);
    assert!(again.contains("(HTTP 400)"), "{again}");

    // stream, as a table: one line per event, ending with the completed state.
    let streamed = flux.ok(&["workflow", "run", "hello_world", "Stream", "--mode", "stream"]);
    let lines: Vec<&str> = streamed.lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("hello_world.execution.completed") && last.contains("COMPLETED"), "{streamed}");
    assert!(last.contains("Hello, Stream"), "{streamed}");
    assert!(
        lines.iter().all(|l| l.starts_with("hello_world.execution.") || l.starts_with("task.progress")),
        "{streamed}"
    );

    // stream, on a terminal (a pseudo-terminal made by Python's `pty`): the state lines, and a
    // live line redrawn in place with the tasks done and running and the latest progress.
    let inner = flux.command(&["workflow", "run", "countdown", "8", "--mode", "stream"]);
    let mut command = Command::new("python3");
    command.arg("-c").arg("import pty, sys; sys.exit(pty.spawn(sys.argv[1:]) >> 8)").arg(inner.get_program());
    command.args(inner.get_args()).env("COLUMNS", "160").stdin(Stdio::null());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        command.current_dir(dir);
    }
    let live = run_command(command);
    assert!(live.status.success(), "{}\n{}", live.stdout, live.stderr);
    let screen = live.stdout.replace("\r\n", "\n");
    assert!(screen.contains("\r\x1b[2K"), "the line is redrawn in place: {screen:?}");
    let redrawn: Vec<&str> = screen.split("\r\x1b[2K").map(str::trim_end).collect();
    assert!(redrawn.iter().any(|l| l.contains(" countdown RUNNING  tasks: ")), "{screen:?}");
    assert!(
        redrawn.iter().any(|l| l.contains("count_step: ") && l.contains("/8") && !l.contains("tasks: 0 done")),
        "the tasks done and the latest progress: {screen:?}"
    );
    let finished = redrawn.iter().find(|l| l.starts_with("countdown.execution.completed"));
    assert!(finished.is_some_and(|l| l.contains("counted down from 8")), "{screen:?}");
    assert!(screen.ends_with("\r\x1b[2K"), "the live line is cleared at the end: {screen:?}");

    // stream, as JSON lines, read as they arrive: progress comes while the countdown runs.
    let mut command = flux.command(&["workflow", "run", "countdown", "10", "--mode", "stream", "--format", "json"]);
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("flux starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, arrivals) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send((Instant::now(), line));
        }
    });
    let mut received = Vec::new();
    let deadline = Instant::now() + COMMAND;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match arrivals.recv_timeout(left) {
            Ok(arrival) => received.push(arrival),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let status = child.wait().expect("flux ends");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success(), "the stream failed ({status}): {stderr}");
    let events: Vec<Value> = received
        .iter()
        .map(|(_, line)| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.len(), events.len(), "{events:?}");
    assert_eq!(names.last().copied(), Some("countdown.execution.completed"), "{names:?}");
    assert_eq!(events.last().map(|e| &e["data"]["state"]), Some(&Value::from("COMPLETED")), "{events:?}");
    assert!(names.contains(&"task.progress"), "no progress in {names:?}");
    let progress = events.iter().find(|e| e["event"] == "task.progress").expect("a progress event");
    assert_eq!(progress["data"]["name"], "count_step", "{progress}");
    let (first, last) = (received[0].0, received[received.len() - 1].0);
    assert!(
        last.duration_since(first) >= Duration::from_millis(500),
        "the events came all at once, not as they happened: {names:?}"
    );

    // Errors carry the server's detail and exit with 1.
    let (code, body) = flux.raw_get("/workflows/hello_world/status/nope");
    assert_eq!(code, 404, "{body}");
    let detail =
        serde_json::from_str::<Value>(&body).expect("a JSON error")["detail"].as_str().expect("a detail").to_string();
    let missing = flux.fails(&["workflow", "status", "hello_world", "nope"]);
    assert_eq!(missing.lines().next(), Some(format!("error: {detail} (HTTP 404)").as_str()), "{missing}");
    let unknown = flux.fails(&["workflow", "run", "no_such_workflow", "1"]);
    assert!(unknown.contains("(HTTP 404)"), "{unknown}");
}

#[test]
fn executions_are_listed_filtered_and_paged() {
    let flux = Flux::server_and_worker();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let run = flux.json(&["workflow", "run", "hello_world", name, "--format", "json"]);
        assert_eq!(run["state"], "COMPLETED", "{run}");
        ids.push(run["execution_id"].as_str().expect("an execution id").to_string());
    }
    let paused = flux.json(&["workflow", "run", "approval", "x", "--format", "json"]);
    assert_eq!(paused["state"], "PAUSED", "{paused}");
    let paused_id = paused["execution_id"].as_str().expect("an execution id").to_string();

    // As JSON: the server's answer, newest first.
    let all = flux.json(&["execution", "list", "--format", "json"]);
    assert_eq!((all["total"].as_u64(), all["limit"].as_u64(), all["offset"].as_u64()), (Some(4), Some(50), Some(0)));
    let listed: Vec<&str> =
        all["executions"].as_array().expect("rows").iter().filter_map(|r| r["execution_id"].as_str()).collect();
    assert_eq!(listed, [paused_id.as_str(), ids[2].as_str(), ids[1].as_str(), ids[0].as_str()], "{all}");

    // As a table: a header, a row per execution, and what part of the total it shows.
    let table = flux.ok(&["execution", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "WORKFLOW", "VERSION", "STATE", "CREATED", "UPDATED"], "{table}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..4], [paused_id.as_str(), "approval", "1", "PAUSED"], "{table}");
    assert!(row[4].ends_with('Z') && row[5].ends_with('Z'), "{table}");
    assert_eq!(lines.last().copied(), Some("1-4 of 4 shown"), "{table}");

    // Filters: workflow, states (any case, repeated), creation window.
    let hellos = flux.json(&["execution", "list", "--workflow", "hello_world", "--format", "json"]);
    assert_eq!(hellos["total"], 3, "{hellos}");
    let waiting = flux.json(&["execution", "list", "--state", "paused", "--format", "json"]);
    assert_eq!(waiting["total"], 1, "{waiting}");
    assert_eq!(waiting["executions"][0]["execution_id"], paused_id.as_str(), "{waiting}");
    let either = flux.json(&["execution", "list", "--state", "PAUSED", "--state", "completed", "--format", "json"]);
    assert_eq!(either["total"], 4, "{either}");
    let (past, future) = ("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z");
    let none = flux.json(&["execution", "list", "--created-after", future, "--format", "json"]);
    assert_eq!(none["total"], 0, "{none}");
    let window =
        flux.json(&["execution", "list", "--created-after", past, "--created-before", future, "--format", "json"]);
    assert_eq!(window["total"], 4, "{window}");
    assert_eq!(flux.ok(&["execution", "list", "--created-before", past]), "no executions match\n");

    // Pages.
    let first = flux.ok(&["execution", "list", "--workflow", "hello_world", "--limit", "2"]);
    assert_eq!(first.lines().count(), 5, "{first}");
    assert!(first.ends_with("\n1-2 of 3 shown; the next page: --offset 2\n"), "{first}");
    let second = ["execution", "list", "--workflow", "hello_world", "--limit", "2", "--offset", "2"];
    let next = flux.json(&[&second[..], &["--format", "json"]].concat());
    assert_eq!(next["offset"], 2, "{next}");
    assert_eq!(next["executions"][0]["execution_id"], ids[0].as_str(), "{next}");

    // Bad options are usage errors that name the value and what would do.
    let dir = flux.dir.path();
    let bad_state = run_command(flux.command(&["execution", "list", "--state", "done"]));
    assert_eq!(bad_state.code(), Some(2), "{bad_state:?}");
    assert!(bad_state.stderr.contains("unknown state `done`"), "{bad_state:?}");
    for state in ["RUNNING", "PAUSED", "COMPLETED", "FAILED", "CANCELLED"] {
        assert!(bad_state.stderr.contains(state), "{state} missing: {bad_state:?}");
    }
    let bad_time = run_command(flux_command(dir, &["execution", "list", "--created-after", "yesterday"]));
    assert_eq!(bad_time.code(), Some(2), "{bad_time:?}");
    assert!(bad_time.stderr.contains("`yesterday` is not an RFC 3339 time"), "{bad_time:?}");
    let bad_limit = run_command(flux_command(dir, &["execution", "list", "--limit", "1001"]));
    assert_eq!(bad_limit.code(), Some(2), "{bad_limit:?}");
    assert!(bad_limit.stderr.contains("1001"), "{bad_limit:?}");
}

#[test]
fn secrets_are_managed_with_the_admin_token_and_never_listed_with_values() {
    let flux = Flux::server();
    let value = "s3cr3t-value";

    let stored = flux.ok(&["secrets", "set", "API_KEY", value]);
    assert!(stored.contains("API_KEY") && !stored.contains(value), "{stored}");

    let listed = flux.ok(&["secrets", "list"]);
    assert!(listed.lines().any(|l| l.trim() == "API_KEY"), "{listed}");
    assert!(!listed.contains(value), "{listed}");
    let listed = flux.json(&["secrets", "list", "--format", "json"]);
    assert_eq!(listed, serde_json::json!(["API_KEY"]));

    let got = flux.ok(&["secrets", "get", "API_KEY"]);
    assert!(got.lines().any(|l| l.starts_with("value") && l.ends_with(value)), "{got}");
    let got = flux.json(&["secrets", "get", "API_KEY", "--format", "json"]);
    assert_eq!(got["value"], value, "{got}");

    // A wrong token is refused by the server; no token at all is refused before asking.
    let refused = flux.fails(&["secrets", "list", "--admin-token", "wrong-token"]);
    assert!(refused.contains("401"), "{refused}");
    assert!(!refused.contains(value), "{refused}");
    let mut command = flux.command(&["secrets", "list"]);
    command.env_remove("FLUX_SECURITY__ADMIN_TOKEN");
    let no_token = run_command(command);
    assert_eq!(no_token.code(), Some(1), "{no_token:?}");
    assert!(no_token.stderr.contains("admin token"), "{no_token:?}");

    let removed = flux.ok(&["secrets", "remove", "API_KEY"]);
    assert!(removed.contains("API_KEY"), "{removed}");
    assert!(flux.fails(&["secrets", "get", "API_KEY"]).contains("(HTTP 404)"));
    assert!(flux.fails(&["secrets", "remove", "API_KEY"]).contains("(HTTP 404)"));
    assert_eq!(flux.json(&["secrets", "list", "--format", "json"]), serde_json::json!([]));
}

#[test]
fn schedules_are_created_fire_on_the_worker_and_are_paused_resumed_shown_and_deleted() {
    let flux = Flux::server_and_worker();
    let created = flux.ok(&["schedule", "create", "hello_world", "--name", "greet", "--every", "1s", "--input", "Dee"]);
    assert!(created.lines().any(|l| l.starts_with("status") && l.ends_with("active")), "{created}");
    let deadline = Instant::now() + PROGRESS;
    let id = loop {
        let history = flux.json(&["schedule", "history", "greet", "--format", "json"]);
        let done = history["entries"].as_array().and_then(|e| e.iter().find(|e| e["state"] == "COMPLETED").cloned());
        if let Some(entry) = done {
            break entry["execution_id"].as_str().expect("an execution id").to_string();
        }
        if Instant::now() > deadline {
            flux.fail(&format!("the schedule never completed a fire: {history}"));
        }
        thread::sleep(POLL);
    };
    assert!(id.starts_with("greet_"), "{id}");
    let status = flux.json(&["workflow", "status", "hello_world", &id, "--format", "json"]);
    assert_eq!(status["output"], "Hello, Dee", "{status}");
    // Messages and events on it: it set none, and a finished execution takes no message.
    let event = flux.ok(&["workflow", "event", "hello_world", &id, "status"]);
    assert!(event.contains("set no event"), "{event}");
    let refused = flux.fails(&["workflow", "send", "hello_world", &id, "payment", "25", "--key", "k1"]);
    assert!(refused.contains("has finished (COMPLETED)"), "{refused}");
    let history = flux.ok(&["schedule", "history", "greet"]);
    assert!(history.contains(&id) && history.contains("COMPLETED") && history.contains("shown"), "{history}");

    let created = flux.json(&[
        "schedule",
        "create",
        "hello_world",
        "--name",
        "weekdays",
        "--cron",
        "0 9 * * MON-FRI",
        "--timezone",
        "Europe/Paris",
        "--overlap",
        "buffer-one",
        "--format",
        "json",
    ]);
    assert_eq!(created["schedule_config"]["overlap"], "buffer_one", "{created}");
    let listed = flux.ok(&["schedule", "list"]);
    for expected in ["NAME", "greet", "weekdays", "cron", "interval", "active"] {
        assert!(listed.contains(expected), "`schedule list` lacks {expected}:\n{listed}");
    }
    assert!(flux.ok(&["schedule", "pause", "weekdays"]).contains("paused"));
    assert_eq!(flux.json(&["schedule", "show", "weekdays", "--format", "json"])["status"], "paused");
    assert!(flux.ok(&["schedule", "resume", "weekdays"]).contains("active"));
    assert!(flux.ok(&["schedule", "delete", "weekdays"]).contains("deleted"));
    assert!(flux.fails(&["schedule", "show", "weekdays"]).contains("(HTTP 404)"));
    let refused = flux.fails(&["schedule", "create", "hello_world", "--name", "bad", "--cron", "0 25 * * *"]);
    assert!(refused.contains("invalid cron expression `0 25 * * *`"), "{refused}");
    let refused = flux.fails(&["schedule", "create", "hello_world", "--name", "bad", "--every", "soon"]);
    assert!(refused.contains("invalid --every `soon`"), "{refused}");
    flux.ok(&["schedule", "delete", "greet"]);
}

#[test]
fn runs_submitted_to_a_configured_queue_wait_scheduled_and_run_one_at_a_time() {
    // The server's configuration (FLUX_QUEUES__SINGLE__CONCURRENCY=1) gives queue `single` one
    // place.
    let flux = Flux::server_and_worker();
    let submit = |input: &str| {
        let args = ["workflow", "run", "countdown", input, "--queue", "single", "--mode", "async", "--format", "json"];
        let submitted = flux.json(&args);
        submitted["execution_id"].as_str().expect("an execution id").to_string()
    };
    // The first runs for about 3 s (30 steps of ~100 ms): long enough for the commands below,
    // each a process of its own, to see the second waiting even on a loaded machine.
    let (first, second) = (submit("30"), submit("1"));
    flux.wait_for_state("countdown", &first, "RUNNING");
    let waiting = flux.json(&["execution", "list", "--state", "scheduled", "--format", "json"]);
    let ids: Vec<&str> =
        waiting["executions"].as_array().unwrap().iter().filter_map(|e| e["execution_id"].as_str()).collect();
    assert_eq!(ids, [second.as_str()], "the second waits while the first runs: {waiting}");
    let status = flux.ok(&["workflow", "status", "countdown", &second]);
    assert!(status.contains("SCHEDULED"), "{status}");
    let done = flux.wait_for_state("countdown", &second, "COMPLETED");
    let first = flux.json(&["workflow", "status", "countdown", &first, "--detailed", "--format", "json"]);
    let time = |summary: &Value, kind: &str| {
        let events = summary["events"].as_array().expect("events");
        let event = events.iter().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("no {kind}: {summary}"));
        humantime::parse_rfc3339(event["time"].as_str().expect("a time")).expect("an RFC 3339 time")
    };
    let second = flux.json(&["workflow", "status", "countdown", &second, "--detailed", "--format", "json"]);
    assert_eq!(done["state"], "COMPLETED");
    assert!(
        time(&second, "WORKFLOW_STARTED") >= time(&first, "WORKFLOW_COMPLETED"),
        "the second started before the first ended:\n{first}\n{second}"
    );
    let refused = flux.fails(&["workflow", "run", "countdown", "1", "--queue", "no/slash"]);
    assert!(refused.contains("`no/slash` is not a queue name"), "{refused}");
}

#[test]
fn a_server_without_tokens_prints_the_ones_it_generated_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut command = flux_command(dir.path(), &["start", "server", "--host", "127.0.0.1", "--port", "0"]);
    command.env_remove("FLUX_WORKERS__BOOTSTRAP_TOKEN").env_remove("FLUX_SECURITY__ADMIN_TOKEN");
    let (child, lines) = spawn_logged(command, &dir.path().join("server.log"));
    let mut flux = Flux { dir, url: String::new(), children: vec![("server", child)] };
    let deadline = Instant::now() + STARTUP;
    flux.url = wait_for_line(&lines, "flux server listening on ", deadline)
        .unwrap_or_else(|| flux.fail("the server did not print its address"));
    let bootstrap = wait_for_line(&lines, "bootstrap token: ", deadline)
        .unwrap_or_else(|| flux.fail("the server did not print the bootstrap token it generated"));
    let admin = wait_for_line(&lines, "admin token: ", deadline)
        .unwrap_or_else(|| flux.fail("the server did not print the admin token it generated"));
    assert!(!bootstrap.is_empty() && !admin.is_empty() && bootstrap != admin);

    // The printed admin token works; the environment holds none.
    let mut command = flux.command(&["secrets", "list", "--admin-token", &admin]);
    command.env_remove("FLUX_SECURITY__ADMIN_TOKEN");
    let listed = run_command(command);
    assert!(listed.status.success(), "{listed:?}");

    #[cfg(unix)]
    {
        let (_, server) = &mut flux.children[0];
        let pid = server.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + COMMAND;
        let status = loop {
            if let Some(status) = server.try_wait().expect("wait for the server") {
                break status;
            }
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            thread::sleep(POLL);
        };
        assert!(status.success(), "the server did not stop cleanly: {status}");
    }
}

#[test]
fn an_unreachable_server_is_named_with_what_to_do() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", free.local_addr().expect("an address"));
    drop(free);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let run = run_command(flux_command(dir.path(), &["workflow", "list", "--server-url", &url]));
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains(&url), "{run:?}");
    assert!(run.stderr.contains("flux start server"), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");

    let run = run_command(flux_command(dir.path(), &["workflow", "list", "--server-url", "localhost:8000"]));
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("http://localhost:8000"), "{run:?}");
}

#[test]
fn every_command_has_help_and_bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let help = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--help");
        let run = run_command(flux_command(dir.path(), &all));
        assert!(run.status.success(), "{run:?}");
        assert!(run.stdout.contains("Usage: flux"), "{run:?}");
        run.stdout
    };
    let root = help(&[]);
    for command in
        ["start", "workflow", "execution", "secrets", "schedule", "--server-url", "--admin-token", "--format"]
    {
        assert!(root.contains(command), "flux --help lacks {command}:\n{root}");
    }
    help(&["start"]);
    assert!(help(&["start", "server"]).contains("--port"));
    let worker = help(&["start", "worker"]);
    for expected in ["Worker::new", ".register(", "hello_world", "approval", "countdown", "--token"] {
        assert!(worker.contains(expected), "flux start worker --help lacks {expected}:\n{worker}");
    }
    for command in ["workflow", "execution", "secrets"] {
        help(&[command]);
    }
    let run = help(&["workflow", "run"]);
    assert!(run.contains("not valid JSON") && run.contains("sync") && run.contains("stream"), "{run}");
    assert!(help(&["workflow", "resume"]).contains("EXECUTION_ID"));
    assert!(help(&["workflow", "cancel"]).contains("async"));
    for command in ["list", "show", "status"] {
        help(&["workflow", command]);
    }
    assert!(help(&["workflow", "send"]).contains("--key"));
    assert!(help(&["workflow", "event"]).contains("set_event"));
    let list = help(&["execution", "list"]);
    for expected in ["--workflow", "--state", "--created-after", "--created-before", "--limit", "--offset"] {
        assert!(list.contains(expected), "flux execution list --help lacks {expected}:\n{list}");
    }
    assert!(help(&["secrets", "list"]).contains("never"));
    let create = help(&["schedule", "create"]);
    for expected in ["--cron", "--timezone", "--every", "--at", "--overlap", "--catchup-window", "--input"] {
        assert!(create.contains(expected), "flux schedule create --help lacks {expected}:\n{create}");
    }
    for command in ["list", "show", "pause", "resume", "delete", "history"] {
        help(&["schedule", command]);
    }
    for command in ["set", "get", "remove"] {
        help(&["secrets", command]);
    }

    for bad in [
        &["workflow", "run", "hello_world", "x", "--mode", "later"][..],
        &["workflow", "cancel", "hello_world", "id", "--mode", "stream"],
        &["workflow", "run", "hello_world"],
        &["secrets", "set", "ONLY_A_NAME"],
        &["schedule", "create", "hello_world"],
        &["schedule", "create", "hello_world", "--cron", "* * * * *", "--every", "5"],
        &["--format", "yaml", "workflow", "list"],
        &["start", "server", "--port", "99999"],
    ] {
        let run = run_command(flux_command(dir.path(), bad));
        assert_eq!(run.code(), Some(2), "{run:?}");
        assert!(run.stderr.starts_with("error: ") && run.stderr.contains("--help"), "{run:?}");
    }
}
