//! Server mode (docs/design.md §11) over real HTTP: a server on 127.0.0.1 with an ephemeral port
//! per test, the client API driven through `flux::Client`, workers run in process. Runs (sync,
//! async, stream), pause and resume, cancellation, authentication of the worker and admin
//! endpoints, secrets that never reach logs or disk in clear, the 4xx answers to bad input, and a
//! database shared with another engine. The answers are checked as the server sent them (the
//! client keeps each summary as sent). Raw HTTP remains only for what the client never sends
//! (malformed bodies, unknown modes, other spellings of flags, the worker protocol) and for one
//! test that reads the SSE wire format byte by byte.

use std::time::{Duration, Instant};

use flux::Client;
use flux::client::{EventStream, ExecutionStatus, RemoteWorkflow, StreamEvent};
use flux::prelude::*;
use flux::secrets::Secrets;
use flux::server::{RunningServer, Server};
use flux::worker::Worker;
use futures::StreamExt as _;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const BOOTSTRAP: &str = "bootstrap-token-for-tests";
const ADMIN: &str = "admin-token-for-tests";

/// How long any wait for the server may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------------

#[flux::task]
async fn say_hello(name: String) -> String {
    format!("Hello, {name}")
}

#[flux::workflow]
async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Step {
    done: u32,
    of: u32,
}

/// Sends three progress values, then doubles its input.
#[flux::task]
async fn crunch(n: u32) -> u32 {
    for done in 1..=3 {
        flux::progress(Step { done, of: 3 }).await;
    }
    n * 2
}

#[flux::workflow]
async fn crunching(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    crunch(*ctx.input()).await
}

/// Pauses for a `String` decision, showing a question while paused.
#[flux::workflow]
async fn approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let decision = flux::pause_with::<String, String>("approval", format!("approve {}?", ctx.input())).await?;
    Ok(format!("{}: {decision}", ctx.input()))
}

/// Sleeps for the given number of seconds: long enough to be cancelled.
#[flux::task]
async fn nap(seconds: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

#[flux::workflow]
async fn long_nap(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    nap(*ctx.input()).await
}

/// Uses a secret without ever returning or recording it.
#[flux::task(secret_requests = ["API_TOKEN"])]
async fn token_info(label: String, secrets: Secrets) -> Result<String, String> {
    let token = secrets.get("API_TOKEN").ok_or("no API_TOKEN")?;
    Ok(format!("{label}: a {}-character token", token.len()))
}

#[flux::workflow]
async fn uses_secret(ctx: ExecutionContext<String>) -> flux::Result<String> {
    token_info(ctx.input().clone()).await
}

/// Opened by the test: `wait_for_gate` returns.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Told by `wait_for_gate` once it has begun.
static GATE_REACHED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits for the test to open [`GATE`].
#[flux::task]
async fn wait_for_gate(label: String) -> String {
    GATE_REACHED.notify_one();
    GATE.notified().await;
    format!("{label} passed")
}

#[flux::workflow]
async fn gated(ctx: ExecutionContext<String>) -> flux::Result<String> {
    wait_for_gate(ctx.input().clone()).await
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Binds `server` on an ephemeral port with the test tokens.
async fn bind(server: Server) -> (RunningServer, String) {
    flux_suite::logs::capture("flux=trace");
    let running = server.bootstrap_token(BOOTSTRAP).admin_token(ADMIN).bind("127.0.0.1:0").await.unwrap();
    let url = running.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (running, url)
}

async fn shutdown(running: RunningServer) {
    tokio::time::timeout(PATIENCE, running.shutdown())
        .await
        .expect("the server did not shut down within 30 s")
        .expect("the server shut down cleanly");
}

/// A client of the server at `url` (the typed client: every request of the client API goes
/// through it), as patient as the tests.
fn api(url: &str) -> Client {
    Client::builder(url).timeout(PATIENCE).build().unwrap()
}

/// Raw HTTP, for what the typed client never sends: malformed bodies, unknown modes and flags,
/// other spellings of `detailed`, unknown routes, the worker protocol, the documentation.
fn raw() -> reqwest::Client {
    reqwest::Client::builder().timeout(PATIENCE).build().unwrap()
}

/// The status and the JSON body of a raw response (`{"not_json": ..}` if the body is not JSON).
async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "not_json": text }));
    (status, body)
}

async fn raw_get(http: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    answer(http.get(url).send().await.unwrap()).await
}

async fn raw_post(http: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    answer(http.post(url).json(body).send().await.unwrap()).await
}

/// The answer of a client call as these tests check the wire: 200 with the summary as the
/// server sent it, or the status of the refusal with `{"detail": ...}` as the client read them.
fn answered(result: flux::Result<ExecutionStatus<Value>>) -> (StatusCode, Value) {
    match result {
        Ok(status) => (StatusCode::OK, status.summary().clone()),
        Err(e) => {
            let code = e.http_status().unwrap_or_else(|| panic!("not an answer of the server: {e}"));
            (StatusCode::from_u16(code).unwrap(), json!({ "detail": e.message() }))
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
async fn resume_on(api: &Client, name: &str, id: &str, mode: &str, input: &Value) -> (StatusCode, Value) {
    let workflow = workflow(api, name, false);
    answered(match mode {
        "sync" => workflow.resume(id, input).await,
        "async" => workflow.resume_async(id, input).await,
        other => panic!("resume_on takes sync or async, not {other}"),
    })
}

/// `status/{id}` through the client.
async fn status_of(api: &Client, name: &str, id: &str, detailed: bool) -> (StatusCode, Value) {
    answered(workflow(api, name, detailed).status(id).await)
}

/// `cancel/{id}` (waiting for it with `wait`) through the client.
async fn cancel_on(api: &Client, name: &str, id: &str, wait: bool, detailed: bool) -> (StatusCode, Value) {
    let workflow = workflow(api, name, detailed);
    answered(if wait { workflow.cancel_and_wait(id).await } else { workflow.cancel(id).await })
}

/// `GET /workflows` through the client, as the server sent it.
/// The catalog as the server sent it, without the inputs' JSON Schemas, which a server built
/// with the `mcp` feature adds (tests/mcp_server.rs checks them).
async fn catalog(api: &Client) -> Value {
    let entries = api.workflows().await.unwrap();
    let without_schema = entries.iter().map(|w| {
        let mut entry = w.json().clone();
        if let Some(entry) = entry.as_object_mut() {
            entry.remove("input_schema");
        }
        entry
    });
    Value::Array(without_schema.collect())
}

/// The `detail` of an error answer (which must be a JSON object with a string `detail`).
fn detail(body: &Value) -> &str {
    body.get("detail").and_then(Value::as_str).unwrap_or_else(|| panic!("no `detail` in {body}"))
}

fn state(summary: &Value) -> &str {
    summary["state"].as_str().unwrap_or_else(|| panic!("no state in {summary}"))
}

fn execution_id(summary: &Value) -> String {
    let id = summary["execution_id"].as_str().unwrap_or_else(|| panic!("no execution_id in {summary}"));
    assert!(!id.is_empty());
    id.to_string()
}

/// The `type` of each event of a detailed summary.
fn types(summary: &Value) -> Vec<String> {
    summary["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {summary}"))
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// Whether `needles` occur in `haystack` in this order (not necessarily next to each other).
fn in_order(haystack: &[String], needles: &[&str]) -> bool {
    let mut rest = haystack.iter();
    needles.iter().all(|n| rest.any(|h| h == n))
}

/// `2026-11-22T10:00:00.123456Z`: ISO 8601 in UTC.
fn is_iso8601_utc(time: &str) -> bool {
    let Some(rest) = time.strip_suffix('Z') else { return false };
    let Some((date, clock)) = rest.split_once('T') else { return false };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let date: Vec<&str> = date.split('-').collect();
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let clock: Vec<&str> = clock.split(':').collect();
    date.len() == 3
        && digits(date[0], 4)
        && digits(date[1], 2)
        && digits(date[2], 2)
        && clock.len() == 3
        && clock.iter().all(|c| digits(c, 2))
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the shape of every event of a detailed summary: exactly `id`, `type`, `source_id`,
/// `name`, `value`, `time`; distinct non-empty ids; times in ISO 8601 UTC.
fn check_event_shapes(summary: &Value) {
    let events = summary["events"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for event in events {
        let keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["id", "name", "source_id", "time", "type", "value"], "{event}");
        let id = event["id"].as_str().unwrap_or_else(|| panic!("event id is not a string: {event}"));
        assert!(!id.is_empty() && ids.insert(id.to_string()), "event ids are distinct and non-empty: {summary}");
        let time = event["time"].as_str().unwrap();
        assert!(is_iso8601_utc(time), "`{time}` is not ISO 8601 UTC");
        assert!(!event["source_id"].as_str().unwrap().is_empty());
    }
}

/// Checks a summary without events: exactly the six keys of the wire shape, with these values.
fn check_summary(summary: &Value, workflow: &str, id: &str, input: &Value, output: &Value, expected_state: &str) {
    assert_eq!(
        summary,
        &json!({
            "workflow_id": workflow,
            "workflow_name": workflow,
            "execution_id": id,
            "input": input,
            "output": output,
            "state": expected_state,
        })
    );
}

/// Asks for the detailed status until `done` holds, and returns that summary.
async fn poll_status(api: &Client, name: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, summary) = status_of(api, name, id, true).await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        if done(&summary) {
            return summary;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last status: {summary}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `name` is in the server's catalog (a worker registered it).
async fn wait_for_workflow(api: &Client, name: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match api.workflow_info(name).await {
            Ok(info) => {
                assert_eq!(info.source(), Some("worker"), "{:?}", info.json());
                return;
            }
            Err(e) => {
                assert_eq!(e.kind(), flux::ErrorKind::NotFound, "{e}");
                assert!(Instant::now() < deadline, "workflow `{name}` never appeared: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One SSE message: its `event:` name and its `data:` parsed as JSON.
#[derive(Debug)]
struct Message {
    event: String,
    data: Value,
}

/// Reads an SSE response to its end and parses the wire format by hand: blocks separated by a
/// blank line, `event:` and `data:` fields, `:` comments (keep-alives) ignored. Every block with
/// an event must have exactly one `data:` line holding one JSON object.
async fn read_sse(response: reqwest::Response) -> Vec<Message> {
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, bytes.next()).await {
            Ok(Some(chunk)) => chunk.unwrap(),
            Ok(None) => break,
            Err(_) => panic!("the stream did not end within 30 s; received so far: {messages:?}"),
        };
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        buffer = buffer.replace("\r\n", "\n");
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if line.is_empty() || line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event = Some(value.to_string()),
                    "data" => data.push(value.to_string()),
                    other => panic!("unexpected SSE field `{other}` in {block:?}"),
                }
            }
            match event {
                None => assert!(data.is_empty(), "a data block without an event name: {block:?}"),
                Some(event) => {
                    assert_eq!(data.len(), 1, "one data line per event: {block:?}");
                    let data: Value = serde_json::from_str(&data[0]).unwrap();
                    assert!(data.is_object(), "{data}");
                    messages.push(Message { event, data });
                }
            }
        }
    }
    assert!(buffer.trim().is_empty(), "the stream ended in the middle of a block: {buffer:?}");
    messages
}

/// Reads a stream of the client to its end, as the messages the server sent: each change of
/// state under its event name with its summary, each progress report with its data.
async fn stream_messages(stream: EventStream<Value>) -> Vec<Message> {
    let items: Vec<StreamEvent<Value>> =
        tokio::time::timeout(PATIENCE, stream.map(|item| item.unwrap()).collect()).await.expect("the stream ended");
    items
        .into_iter()
        .filter_map(|item| match item {
            StreamEvent::State(status) => {
                let event =
                    format!("{}.execution.{}", status.workflow_name(), status.state().as_str().to_ascii_lowercase());
                Some(Message { event, data: status.summary().clone() })
            }
            StreamEvent::Progress(progress) => {
                Some(Message { event: flux::protocol::TASK_PROGRESS.to_string(), data: progress.data().clone() })
            }
            _ => None,
        })
        .collect()
}

fn names(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.event.as_str()).collect()
}

/// A temporary directory with a database file in it.
fn engine_on_disk() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap();
    (dir, engine)
}

// ---------------------------------------------------------------------------------------------
// 1. Sync, async and detailed runs
// ---------------------------------------------------------------------------------------------

/// Checks the detailed events of a completed `hello_world("World")`: the types given, and the
/// sources, names and values of the workflow and task events.
fn check_hello_events(summary: &Value, id: &str, expected: &[&str]) {
    assert_eq!(types(summary), expected, "{summary}");
    check_event_shapes(summary);
    let workflow_source = format!("hello_world_{id}");
    for event in summary["events"].as_array().unwrap() {
        let kind = event["type"].as_str().unwrap();
        if kind.starts_with("WORKFLOW_") {
            assert_eq!(event["source_id"], workflow_source.as_str(), "{event}");
            assert_eq!(event["name"], "hello_world", "{event}");
        } else {
            let source = event["source_id"].as_str().unwrap();
            let hex = source.strip_prefix("say_hello_").unwrap_or_else(|| panic!("task id `{source}`"));
            assert!(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "task id `{source}`");
            assert_eq!(event["name"], "say_hello", "{event}");
        }
        match kind {
            "WORKFLOW_SCHEDULED" | "WORKFLOW_STARTED" => assert_eq!(event["value"], "World", "{event}"),
            "TASK_STARTED" => assert_eq!(event["value"], json!(["World"]), "{event}"),
            "TASK_COMPLETED" | "WORKFLOW_COMPLETED" => assert_eq!(event["value"], "Hello, World", "{event}"),
            "WORKFLOW_CLAIMED" => assert_eq!(event["value"], "w", "{event}"),
            other => panic!("unexpected event {other}"),
        }
    }
    let task_events: Vec<&Value> =
        summary["events"].as_array().unwrap().iter().filter(|e| e["name"] == "say_hello").collect();
    assert_eq!(task_events[0]["source_id"], task_events[1]["source_id"]);
}

/// Runs `hello_world("World")` on the server at `url` in every mode and checks the answers;
/// `events` is the exact event sequence of one completed execution.
async fn hello_world_runs(url: &str, events: &[&str], async_states: &[&str]) {
    let api = api(url);
    let http = raw();
    let world = json!("World");
    let hello = json!("Hello, World");

    // Sync: the summary once it completed, exactly the wire shape.
    let (status, summary) = run_on(&api, "hello_world", "sync", false, &world).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let id = execution_id(&summary);
    check_summary(&summary, "hello_world", &id, &world, &hello, "COMPLETED");
    // Status says the same.
    let (status, stored) = status_of(&api, "hello_world", &id, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored, summary);

    // Async: at once, then poll until it completes.
    let (status, summary) = run_on(&api, "hello_world", "async", false, &world).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let async_id = execution_id(&summary);
    assert_ne!(async_id, id);
    assert!(async_states.contains(&state(&summary)), "async run answered {summary}");
    if state(&summary) != "COMPLETED" {
        assert_eq!(summary["output"], Value::Null, "{summary}");
    }
    let done =
        poll_status(&api, "hello_world", &async_id, "the async run to complete", |s| state(s) == "COMPLETED").await;
    check_hello_events(&done, &async_id, events);
    let (_, done) = status_of(&api, "hello_world", &async_id, false).await;
    check_summary(&done, "hello_world", &async_id, &world, &hello, "COMPLETED");

    // Detailed: the events are added, and only then.
    let (status, detailed) = run_on(&api, "hello_world", "sync", true, &world).await;
    assert_eq!(status, StatusCode::OK, "{detailed}");
    let detailed_id = execution_id(&detailed);
    check_hello_events(&detailed, &detailed_id, events);
    let mut without_events = detailed.clone();
    without_events.as_object_mut().unwrap().remove("events");
    check_summary(&without_events, "hello_world", &detailed_id, &world, &hello, "COMPLETED");
    for flag in ["true", "True", "1"] {
        let (status, again) =
            raw_get(&http, &format!("{url}/workflows/hello_world/status/{detailed_id}?detailed={flag}")).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, detailed, "detailed={flag}");
    }
    for flag in ["false", "False", "0"] {
        let (status, plain) =
            raw_get(&http, &format!("{url}/workflows/hello_world/status/{detailed_id}?detailed={flag}")).await;
        assert_eq!(status, StatusCode::OK, "{plain}");
        assert_eq!(plain, without_events, "detailed={flag}");
    }
    for flag in ["True", "1"] {
        let (status, run) =
            raw_post(&http, &format!("{url}/workflows/hello_world/run/sync?detailed={flag}"), &world).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        check_hello_events(&run, &execution_id(&run), events);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_and_detailed_runs_in_process() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine).register(hello_world)).await;
    hello_world_runs(
        &url,
        &["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"],
        &["RUNNING", "COMPLETED"],
    )
    .await;
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_and_detailed_runs_on_a_worker() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(hello_world).run());
    let api = api(&url);
    wait_for_workflow(&api, "hello_world").await;
    let shown = api.workflow_info("hello_world").await.unwrap();
    assert_eq!((shown.name(), shown.version(), shown.workers()), ("hello_world", 1, &["w".to_string()][..]));
    hello_world_runs(
        &url,
        &[
            "WORKFLOW_SCHEDULED",
            "WORKFLOW_CLAIMED",
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED",
        ],
        &["SCHEDULED", "CLAIMED", "RUNNING", "COMPLETED"],
    )
    .await;
    worker.abort();
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_a_worker_cannot_read_fails_the_execution_with_the_reason() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(hello_world).run());
    let api = api(&url);
    wait_for_workflow(&api, "hello_world").await;
    // The server cannot check the type of a worker's workflow: the worker fails the execution.
    let (status, failed) = run_on(&api, "hello_world", "sync", true, &json!({"bad": 1})).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(state(&failed), "FAILED", "{failed}");
    assert_eq!(types(&failed), ["WORKFLOW_SCHEDULED", "WORKFLOW_CLAIMED", "WORKFLOW_FAILED"], "{failed}");
    let message = failed["output"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not fit") && message.contains("String"), "{failed}");
    worker.abort();
    shutdown(running).await;
}

// ---------------------------------------------------------------------------------------------
// 2. SSE streams
// ---------------------------------------------------------------------------------------------

/// Checks a stream of `crunching(21)`: the state events named `state_names` (lowercase), then
/// three progress events, then completed, each `data:` as the wire shapes say.
fn check_crunching_stream(messages: &[Message], leading_states: &[&str]) {
    let mut expected: Vec<String> = leading_states.iter().map(|s| format!("crunching.execution.{s}")).collect();
    expected.extend(["task.progress"; 3].map(String::from));
    expected.push("crunching.execution.completed".to_string());
    assert_eq!(names(messages), expected, "{messages:#?}");

    let id = execution_id(&messages[0].data);
    for (message, leading) in messages.iter().zip(leading_states) {
        check_summary(&message.data, "crunching", &id, &json!(21), &Value::Null, &leading.to_ascii_uppercase());
    }
    let progress = &messages[leading_states.len()..leading_states.len() + 3];
    let task_id = progress[0].data["task_id"].as_str().unwrap().to_string();
    assert!(task_id.starts_with("crunch_"), "{task_id}");
    for (i, message) in progress.iter().enumerate() {
        let data = message.data.as_object().unwrap();
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["execution_id", "name", "task_id", "time", "value"], "{data:?}");
        assert_eq!(data["execution_id"], id.as_str());
        assert_eq!(data["task_id"], task_id.as_str());
        assert_eq!(data["name"], "crunch");
        assert_eq!(data["value"], json!({ "done": i + 1, "of": 3 }));
        assert!(is_iso8601_utc(data["time"].as_str().unwrap()), "{data:?}");
    }
    check_summary(&messages.last().unwrap().data, "crunching", &id, &json!(21), &json!(42), "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_in_process_sends_state_changes_and_progress_then_ends() {
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine).register(crunching).register(approval)).await;
    let api = api(&url);

    let messages = stream_messages(workflow(&api, "crunching", false).stream(&json!(21)).await.unwrap()).await;
    check_crunching_stream(&messages, &["running"]);
    // Progress is never stored, and the task of the progress events is the one in the log.
    let id = execution_id(&messages[0].data);
    let (_, stored) = status_of(&api, "crunching", &id, true).await;
    assert_eq!(types(&stored), ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"]);
    assert_eq!(stored["events"][1]["source_id"], messages[1].data["task_id"]);

    // A pausing workflow's stream ends at the pause, with the pause output.
    let messages = stream_messages(workflow(&api, "approval", false).stream(&json!("order 1")).await.unwrap()).await;
    assert_eq!(names(&messages), ["approval.execution.running", "approval.execution.paused"], "{messages:#?}");
    let id = execution_id(&messages[0].data);
    check_summary(&messages[0].data, "approval", &id, &json!("order 1"), &Value::Null, "RUNNING");
    check_summary(&messages[1].data, "approval", &id, &json!("order 1"), &json!("approve order 1?"), "PAUSED");
    shutdown(running).await;
}

/// The SSE wire format itself, read by hand from raw bytes (the one stream not read through
/// `flux::Client`, which would hide a framing mistake it tolerates): blocks of one `event:` and
/// one `data:` line, the event names and data the client's tests rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sse_wire_format_is_pinned_byte_by_byte() {
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine).register(crunching)).await;
    let http = raw();
    let response = http.post(format!("{url}/workflows/crunching/run/stream")).json(&21).send().await.unwrap();
    let messages = read_sse(response).await;
    check_crunching_stream(&messages, &["running"]);
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_on_a_worker_sends_scheduled_claimed_running_progress_completed() {
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(
        Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(crunching).register(approval).run(),
    );
    let api = api(&url);
    wait_for_workflow(&api, "crunching").await;

    let messages = stream_messages(workflow(&api, "crunching", false).stream(&json!(21)).await.unwrap()).await;
    check_crunching_stream(&messages, &["scheduled", "claimed", "running"]);

    let messages = stream_messages(workflow(&api, "approval", false).stream(&json!("order 2")).await.unwrap()).await;
    assert_eq!(
        names(&messages),
        [
            "approval.execution.scheduled",
            "approval.execution.claimed",
            "approval.execution.running",
            "approval.execution.paused"
        ],
        "{messages:#?}"
    );
    let id = execution_id(&messages[0].data);
    check_summary(&messages[3].data, "approval", &id, &json!("order 2"), &json!("approve order 2?"), "PAUSED");
    worker.abort();
    shutdown(running).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Pause, resume, cancel
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_in_process() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine).register(approval)).await;
    let api = api(&url);
    let input = json!("order 7");

    // run/sync stops at the pause, with its output.
    let (status, paused) = run_on(&api, "approval", "sync", false, &input).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let id = execution_id(&paused);
    check_summary(&paused, "approval", &id, &input, &json!("approve order 7?"), "PAUSED");

    // A resume input of the wrong type: 422 naming the problem; still paused.
    let (status, refused) = resume_on(&api, "approval", &id, "sync", &json!(42)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let why = detail(&refused);
    assert!(why.contains("approval") && why.contains("String"), "{why}");
    let (_, still) = status_of(&api, "approval", &id, false).await;
    check_summary(&still, "approval", &id, &input, &json!("approve order 7?"), "PAUSED");

    // The right input completes it.
    let (status, done) = resume_on(&api, "approval", &id, "sync", &json!("yes")).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    check_summary(&done, "approval", &id, &input, &json!("order 7: yes"), "COMPLETED");
    let (_, detailed) = status_of(&api, "approval", &id, true).await;
    assert_eq!(
        types(&detailed),
        [
            "WORKFLOW_STARTED",
            "TASK_STARTED",
            "TASK_PAUSED",
            "WORKFLOW_PAUSED",
            "WORKFLOW_RESUMING",
            "WORKFLOW_RESUMED",
            "TASK_RESUMED",
            "TASK_COMPLETED",
            "WORKFLOW_COMPLETED"
        ]
    );

    // Resuming again: 400, it is not paused.
    let (status, again) = resume_on(&api, "approval", &id, "sync", &json!("yes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert!(detail(&again).contains("not paused"), "{again}");

    // Async resume answers at once; the execution then completes.
    let (_, paused) = run_on(&api, "approval", "sync", false, &json!("order 8")).await;
    let id = execution_id(&paused);
    let (status, resumed) = resume_on(&api, "approval", &id, "async", &json!("no")).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert!(["RESUMING", "RUNNING", "COMPLETED"].contains(&state(&resumed)), "{resumed}");
    let done = poll_status(&api, "approval", &id, "the resume to complete", |s| state(s) == "COMPLETED").await;
    assert_eq!(done["output"], "order 8: no");
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_on_a_worker() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(approval).run());
    let api = api(&url);
    wait_for_workflow(&api, "approval").await;
    let input = json!("order 9");

    let (status, paused) = run_on(&api, "approval", "sync", false, &input).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    let id = execution_id(&paused);
    check_summary(&paused, "approval", &id, &input, &json!("approve order 9?"), "PAUSED");

    // Async resume: RESUME_SCHEDULED at once, then the worker completes it.
    let (status, scheduled) = resume_on(&api, "approval", &id, "async", &json!("yes")).await;
    assert_eq!(status, StatusCode::OK, "{scheduled}");
    assert_eq!(state(&scheduled), "RESUME_SCHEDULED", "{scheduled}");
    assert_eq!(scheduled["execution_id"], id.as_str());
    let done = poll_status(&api, "approval", &id, "the resume to complete", |s| state(s) == "COMPLETED").await;
    assert_eq!(done["output"], "order 9: yes");
    let kinds = types(&done);
    assert!(
        in_order(
            &kinds,
            &[
                "WORKFLOW_SCHEDULED",
                "WORKFLOW_CLAIMED",
                "WORKFLOW_STARTED",
                "TASK_STARTED",
                "TASK_PAUSED",
                "WORKFLOW_PAUSED",
                "WORKFLOW_RESUME_SCHEDULED",
                "WORKFLOW_RESUME_CLAIMED",
                "WORKFLOW_RESUMED",
                "TASK_RESUMED",
                "TASK_COMPLETED",
                "WORKFLOW_COMPLETED"
            ]
        ),
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "WORKFLOW_STARTED").count(), 1, "{kinds:?}");
    check_event_shapes(&done);

    // Resuming again: 400.
    let (status, again) = resume_on(&api, "approval", &id, "async", &json!("yes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert!(detail(&again).contains("not paused"), "{again}");

    // A resume input of the wrong type is refused (the worker finds out): it stays PAUSED, and
    // the right input then completes it.
    let (_, paused) = run_on(&api, "approval", "sync", false, &json!("order 10")).await;
    assert_eq!(state(&paused), "PAUSED", "{paused}");
    let id = execution_id(&paused);
    let (status, answer) = resume_on(&api, "approval", &id, "async", &json!(42)).await;
    match status {
        StatusCode::OK => {
            assert_eq!(state(&answer), "RESUME_SCHEDULED", "{answer}");
            poll_status(&api, "approval", &id, "the refused resume to leave it PAUSED", |s| {
                state(s) == "PAUSED" && types(s).last().map(String::as_str) != Some("WORKFLOW_RESUME_SCHEDULED")
            })
            .await;
        }
        StatusCode::UNPROCESSABLE_ENTITY => assert!(!detail(&answer).is_empty()),
        other => panic!("a wrong resume input answered {other}: {answer}"),
    }
    let (_, still) = status_of(&api, "approval", &id, false).await;
    check_summary(&still, "approval", &id, &json!("order 10"), &json!("approve order 10?"), "PAUSED");
    let (status, resumed) = resume_on(&api, "approval", &id, "async", &json!("ok")).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    let done = poll_status(&api, "approval", &id, "the second resume to complete", |s| state(s) == "COMPLETED").await;
    assert_eq!(done["output"], "order 10: ok");
    worker.abort();
    shutdown(running).await;
}

/// A sync resume of a worker-run execution with an input its pause refuses must answer (422, or
/// the PAUSED summary), not wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sync_resume_on_a_worker_answers() {
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(approval).run());
    let api = api(&url);
    wait_for_workflow(&api, "approval").await;
    let (_, paused) = run_on(&api, "approval", "sync", false, &json!("order 11")).await;
    assert_eq!(state(&paused), "PAUSED", "{paused}");
    let id = execution_id(&paused);

    let refused = json!(42);
    let request = resume_on(&api, "approval", &id, "sync", &refused);
    let (status, body) = tokio::time::timeout(Duration::from_secs(15), request)
        .await
        .expect("a sync resume with a refused input never answered (waited 15 s)");
    // The worker's refusal comes back as the in-process one does: 422 naming the pause's type.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let reason = detail(&body);
    assert!(reason.contains("approval") && reason.contains("String") && reason.contains("PAUSED"), "{reason}");
    let (_, still) = status_of(&api, "approval", &id, false).await;
    assert_eq!(state(&still), "PAUSED", "{still}");
    worker.abort();
    shutdown(running).await;
}

/// Starts `long_nap(30)` with run/async and waits until its task runs.
async fn start_long_nap(api: &Client) -> String {
    let (status, started) = run_on(api, "long_nap", "async", false, &json!(30)).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let id = execution_id(&started);
    poll_status(api, "long_nap", &id, "the task to start", |s| types(s).iter().any(|t| t == "TASK_STARTED")).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_process_running_and_paused() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine).register(long_nap).register(approval)).await;
    let api = api(&url);

    let id = start_long_nap(&api).await;
    let began = Instant::now();
    let (status, cancelled) = cancel_on(&api, "long_nap", &id, true, true).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert!(began.elapsed() < Duration::from_secs(20), "the cancel waited for the 30 s task");
    assert_eq!(state(&cancelled), "CANCELLED", "{cancelled}");
    assert_eq!(
        types(&cancelled),
        ["WORKFLOW_STARTED", "TASK_STARTED", "WORKFLOW_CANCELLING", "TASK_CANCELLED", "WORKFLOW_CANCELLED"]
    );
    check_event_shapes(&cancelled);
    assert!(cancelled["output"].to_string().to_lowercase().contains("cancel"), "{cancelled}");
    let (_, stored) = status_of(&api, "long_nap", &id, false).await;
    assert_eq!(state(&stored), "CANCELLED");

    // Cancelling again: 400, it has finished.
    let (status, again) = cancel_on(&api, "long_nap", &id, true, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert!(detail(&again).contains("already finished"), "{again}");

    // Async cancel (the default mode) answers at once; the execution then ends CANCELLED.
    let id = start_long_nap(&api).await;
    let (status, cancelling) = cancel_on(&api, "long_nap", &id, false, false).await;
    assert_eq!(status, StatusCode::OK, "{cancelling}");
    assert!(["CANCELLING", "CANCELLED"].contains(&state(&cancelling)), "{cancelling}");
    let done = poll_status(&api, "long_nap", &id, "the async cancel", |s| state(s) == "CANCELLED").await;
    assert!(in_order(&types(&done), &["WORKFLOW_CANCELLING", "TASK_CANCELLED", "WORKFLOW_CANCELLED"]));

    // A paused execution is cancelled at once.
    let (_, paused) = run_on(&api, "approval", "sync", false, &json!("order 12")).await;
    assert_eq!(state(&paused), "PAUSED");
    let id = execution_id(&paused);
    let (status, cancelled) = cancel_on(&api, "approval", &id, true, true).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(state(&cancelled), "CANCELLED", "{cancelled}");
    assert_eq!(types(&cancelled).last().map(String::as_str), Some("WORKFLOW_CANCELLED"));
    let (status, resume) = resume_on(&api, "approval", &id, "sync", &json!("yes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a cancelled execution cannot be resumed: {resume}");
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_a_worker_running_and_paused() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(
        Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(long_nap).register(approval).run(),
    );
    let api = api(&url);
    wait_for_workflow(&api, "long_nap").await;

    let id = start_long_nap(&api).await;
    let began = Instant::now();
    let (status, cancelled) = cancel_on(&api, "long_nap", &id, true, true).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert!(began.elapsed() < Duration::from_secs(20), "the cancel waited for the 30 s task");
    assert_eq!(state(&cancelled), "CANCELLED", "{cancelled}");
    let kinds = types(&cancelled);
    assert!(
        in_order(
            &kinds,
            &[
                "WORKFLOW_SCHEDULED",
                "WORKFLOW_CLAIMED",
                "WORKFLOW_STARTED",
                "TASK_STARTED",
                "WORKFLOW_CANCELLING",
                "TASK_CANCELLED",
                "WORKFLOW_CANCELLED"
            ]
        ),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("WORKFLOW_CANCELLED"), "{kinds:?}");
    check_event_shapes(&cancelled);
    let (status, again) = cancel_on(&api, "long_nap", &id, true, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert!(detail(&again).contains("already finished"), "{again}");

    // A paused one (no worker holds it) is cancelled at once.
    let (_, paused) = run_on(&api, "approval", "sync", false, &json!("order 13")).await;
    assert_eq!(state(&paused), "PAUSED", "{paused}");
    let id = execution_id(&paused);
    let (status, cancelled) = cancel_on(&api, "approval", &id, true, true).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(state(&cancelled), "CANCELLED", "{cancelled}");
    assert!(in_order(&types(&cancelled), &["WORKFLOW_PAUSED", "WORKFLOW_CANCELLING", "WORKFLOW_CANCELLED"]));
    worker.abort();
    shutdown(running).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Authentication and secrets
// ---------------------------------------------------------------------------------------------

/// Sends a request with an optional bearer token and expects 401 with a JSON `detail`.
async fn expect_401(http: &reqwest::Client, method: reqwest::Method, url: &str, token: Option<&str>, body: &Value) {
    let mut request = http.request(method.clone(), url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let (status, answer) = answer(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url} with {token:?}: {answer}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{method} {url}");
    assert!(!detail(&answer).is_empty());
}

async fn register_worker(http: &reqwest::Client, url: &str, name: &str) -> String {
    let registration = json!({ "name": name, "workflows": [{ "name": "remote_only", "version": 1 }] });
    let response = http.post(format!("{url}/workers/register")).bearer_auth(BOOTSTRAP).json(&registration).send().await;
    let (status, registered) = answer(response.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert_eq!(registered["name"], name);
    let token = registered["session_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty() && token != BOOTSTRAP && token != ADMIN);
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_admin_endpoints_need_the_right_token() {
    use reqwest::Method;
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine).register(hello_world)).await;
    let http = raw();
    let w1 = register_worker(&http, &url, "w1").await;
    let w2 = register_worker(&http, &url, "w2").await;
    assert_ne!(w1, w2);
    let api = api(&url);
    assert_eq!(
        catalog(&api).await,
        json!([{ "name": "hello_world", "version": 1, "versions": [1] }, { "name": "remote_only", "version": 1, "versions": [1] }])
    );

    let registration = json!({ "name": "w3", "workflows": [] });
    for token in [None, Some("wrong"), Some(w1.as_str()), Some(ADMIN)] {
        expect_401(&http, Method::POST, &format!("{url}/workers/register"), token, &registration).await;
    }
    let session_endpoints = |name: &str| {
        [
            (Method::GET, format!("{url}/workers/{name}/connect")),
            (Method::POST, format!("{url}/workers/{name}/claim/0123456789abcdef")),
            (Method::POST, format!("{url}/workers/{name}/checkpoint/0123456789abcdef")),
            (Method::POST, format!("{url}/workers/{name}/progress/0123456789abcdef")),
        ]
    };
    let progress = json!({ "task_id": "t_1", "name": "t", "value": 1 });
    for (method, endpoint) in session_endpoints("w1") {
        for token in [None, Some("wrong"), Some(BOOTSTRAP), Some(ADMIN), Some(w2.as_str())] {
            expect_401(&http, method.clone(), &endpoint, token, &progress).await;
        }
    }
    // A session token is only for its own worker name, registered or not.
    for (method, endpoint) in session_endpoints("w2").into_iter().chain(session_endpoints("ghost")) {
        expect_401(&http, method, &endpoint, Some(&w1), &progress).await;
    }
    // The right session token gets past authentication (to answers about the unknown execution).
    let response = http.post(format!("{url}/workers/w1/claim/0123456789abcdef")).bearer_auth(&w1).send().await;
    let (status, body) = answer(response.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let response =
        http.post(format!("{url}/workers/w1/progress/0123456789abcdef")).bearer_auth(&w1).json(&progress).send().await;
    let (status, body) = answer(response.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Registering again replaces the session token.
    let renewed = register_worker(&http, &url, "w1").await;
    expect_401(&http, Method::POST, &format!("{url}/workers/w1/claim/0123456789abcdef"), Some(&w1), &json!(null)).await;
    let response = http.post(format!("{url}/workers/w1/claim/0123456789abcdef")).bearer_auth(&renewed).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::NOT_FOUND);

    for token in [None, Some("wrong"), Some(BOOTSTRAP), Some(renewed.as_str())] {
        let client = match token {
            Some(token) => api.clone().admin_token(token),
            None => api.clone(),
        };
        for refused in [
            client.list_secrets().await.map(|_| ()),
            client.set_secret("X", "y").await,
            client.get_secret("X").await.map(|_| ()),
            client.remove_secret("X").await,
        ] {
            let e = refused.unwrap_err();
            assert_eq!((e.kind(), e.http_status()), (flux::ErrorKind::Unauthorized, Some(401)), "{token:?}: {e}");
            assert!(!e.message().is_empty());
        }
    }
    // Nothing was stored by the refused requests.
    assert!(api.clone().admin_token(ADMIN).list_secrets().await.unwrap().is_empty());
    shutdown(running).await;
}

const SECRET_VALUE: &str = "sk-live-5a1f0c9e-never-in-clear";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_through_the_admin_api_never_reach_logs_or_disk_in_clear() {
    let (dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine).register(uses_secret)).await;
    let api = api(&url);
    let http = raw();
    let admin = api.clone().admin_token(ADMIN);

    admin.set_secret("API_TOKEN", SECRET_VALUE).await.unwrap();

    // Listing names it and never shows the value.
    assert_eq!(admin.list_secrets().await.unwrap(), ["API_TOKEN"]);

    // Getting it by name returns it.
    assert_eq!(admin.get_secret("API_TOKEN").await.unwrap(), SECRET_VALUE);

    // A worker registers (its session token must not be logged either).
    let session = register_worker(&http, &url, "w-secret").await;

    // A workflow run over HTTP uses it; it is in neither its answer nor its events.
    let (status, run) = run_on(&api, "uses_secret", "sync", true, &json!("k")).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["output"], format!("k: a {}-character token", SECRET_VALUE.len()));
    assert!(!run.to_string().contains(SECRET_VALUE), "{run}");

    // The files of the engine (database, write-ahead log, key) never hold it in clear.
    let check_files = || {
        let mut seen = 0;
        for entry in walk(dir.path()) {
            // SQLite's transient files may go between the listing and the read.
            let Ok(bytes) = std::fs::read(&entry) else { continue };
            seen += 1;
            assert!(
                !bytes.windows(SECRET_VALUE.len()).any(|w| w == SECRET_VALUE.as_bytes()),
                "{} holds the secret in clear",
                entry.display()
            );
        }
        assert!(seen >= 1);
    };
    assert!(dir.path().join("flux.db").exists());
    check_files();

    // Deleting removes it.
    admin.remove_secret("API_TOKEN").await.unwrap();
    let gone = admin.get_secret("API_TOKEN").await.unwrap_err();
    assert_eq!(gone.http_status(), Some(404), "{gone}");
    assert!(gone.message().contains("API_TOKEN"), "{gone}");
    assert_eq!(admin.remove_secret("API_TOKEN").await.unwrap_err().http_status(), Some(404));
    assert!(admin.list_secrets().await.unwrap().is_empty());
    shutdown(running).await;
    drop(engine);
    check_files();

    // The logs (flux at TRACE) show the server at work, never the value, nor a token.
    let logs = flux_suite::logs::captured();
    assert!(logs.contains("flux server listening"), "the log capture works");
    assert!(logs.contains("worker registered"), "{logs}");
    assert!(!logs.contains(SECRET_VALUE), "the secret appears in the logs");
    for (what, token) in [("bootstrap", BOOTSTRAP), ("admin", ADMIN), ("session", session.as_str())] {
        assert!(!logs.contains(token), "the {what} token appears in the logs");
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input, the catalog, the documentation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_4xx_with_a_detail() {
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine).register(hello_world).register(approval)).await;
    let api = api(&url);
    let http = raw();

    // Malformed JSON.
    let response = http
        .post(format!("{url}/workflows/hello_world/run/sync"))
        .header("content-type", "application/json")
        .body("{\"not json")
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(detail(&body).contains("JSON"), "{body}");

    // An input of the wrong type.
    let (status, body) = run_on(&api, "hello_world", "sync", false, &json!({ "a": 1 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(detail(&body).contains("hello_world") && detail(&body).contains("String"), "{body}");
    let hello = workflow(&api, "hello_world", false);
    let (status, body) = answered(hello.start(&json!(7)).await);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "run/async: {body}");
    let refused = hello.stream(&json!(7)).await.unwrap_err();
    assert_eq!(refused.http_status(), Some(422), "run/stream: {refused}");

    // An unknown workflow.
    let (status, body) = run_on(&api, "nope", "sync", false, &json!("World")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(detail(&body).contains("nope"), "{body}");

    // An unknown execution, for status, cancel and resume.
    let missing = "00000000000000000000000000000000";
    for (status, body) in [
        status_of(&api, "hello_world", missing, false).await,
        cancel_on(&api, "hello_world", missing, false, false).await,
        cancel_on(&api, "hello_world", missing, true, false).await,
        resume_on(&api, "approval", missing, "sync", &json!("yes")).await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(detail(&body).contains(missing), "{body}");
    }
    // An execution asked for under another workflow's name is unknown there too.
    let (_, done) = run_on(&api, "hello_world", "sync", false, &json!("World")).await;
    let id = execution_id(&done);
    let (status, body) = status_of(&api, "approval", &id, false).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Unknown modes and flags.
    let (status, body) = raw_post(&http, &format!("{url}/workflows/hello_world/run/fast"), &json!("World")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(detail(&body).contains("fast"), "{body}");
    let (status, body) = raw_post(&http, &format!("{url}/workflows/approval/resume/{id}/fast"), &json!("x")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = raw_get(&http, &format!("{url}/workflows/hello_world/cancel/{id}?mode=now")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(detail(&body).contains("now"), "{body}");
    let (status, body) = raw_get(&http, &format!("{url}/workflows/hello_world/status/{id}?detailed=maybe")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Unknown routes and methods.
    let (status, body) = raw_get(&http, &format!("{url}/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!detail(&body).is_empty());
    let (status, body) = answer(http.delete(format!("{url}/workflows")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(!detail(&body).is_empty());

    // Odd bytes are never a 500.
    let response = http
        .post(format!("{url}/workflows/hello_world/run/sync"))
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, 0x00, 0x22])
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The catalog.
    assert_eq!(
        catalog(&api).await,
        json!([{ "name": "approval", "version": 1, "versions": [1] }, { "name": "hello_world", "version": 1, "versions": [1] }])
    );
    let shown = api.workflow_info("hello_world").await.unwrap();
    assert_eq!((shown.name(), shown.version()), ("hello_world", 1));
    let unknown = api.workflow_info("nope").await.unwrap_err();
    assert_eq!(unknown.http_status(), Some(404), "{unknown}");
    assert!(unknown.message().contains("nope"), "{unknown}");

    // The documentation.
    let response = http.get(format!("{url}/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let openapi: Value = response.json().await.unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"].get("/workflows/{name}/run/{mode}").is_some(), "{}", openapi["paths"]);
    let response = http.get(format!("{url}/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.to_ascii_lowercase().contains("<html"), "{html}");
    shutdown(running).await;
}

/// Workflow names travel in URLs, SSE event names and logs: a worker registering one with
/// whitespace or control characters is refused (422) and nothing of that registration is kept;
/// a stream run of such a name answers 404 like any unknown name. Other names, Unicode ones
/// too, are registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_names_with_whitespace_or_control_characters_are_refused() {
    let engine = Engine::in_memory();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let api = api(&url);
    let http = raw();
    let register = |names: &[&str]| {
        let workflows: Vec<Value> = names.iter().map(|n| json!({ "name": n, "version": 1 })).collect();
        http.post(format!("{url}/workers/register"))
            .bearer_auth(BOOTSTRAP)
            .json(&json!({ "name": "w-names", "workflows": workflows }))
            .send()
    };

    for bad in [
        "a\nb",
        "a\rb",
        "tab\there",
        "two words",
        " leading",
        "trailing ",
        "nul\0",
        "bell\u{7}",
        "nbsp\u{a0}",
        "line\u{2028}separator",
        "",
    ] {
        let (status, body) = answer(register(&["fine", bad]).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {body}");
        assert!(detail(&body).contains("invalid workflow name"), "{bad:?}: {body}");
    }
    assert_eq!(catalog(&api).await, json!([]), "a refused registration registered nothing");
    let response = http.post(format!("{url}/workflows/a%0Ab/run/stream")).json(&json!("x")).send().await.unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(detail(&body).contains("not registered"), "{body}");

    let (status, body) = answer(register(&["fine", "ünïcode-名前.v2"]).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        catalog(&api).await,
        json!([{ "name": "fine", "version": 1, "versions": [1] }, { "name": "ünïcode-名前.v2", "version": 1, "versions": [1] }])
    );
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_with_a_json_detail() {
    let engine = Engine::in_memory();
    let mut config = flux::Config::default();
    config.max_body_bytes = 1024;
    let (running, url) = bind(Server::from_config(config).engine(&engine).register(hello_world)).await;
    let api = api(&url);
    let http = raw();
    let big = json!("x".repeat(2000));

    let (status, body) = run_on(&api, "hello_world", "sync", false, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(!detail(&body).is_empty());
    let too_big = api.clone().admin_token(ADMIN).set_secret("BIG", &"x".repeat(2000)).await.unwrap_err();
    assert_eq!((too_big.kind(), too_big.http_status()), (flux::ErrorKind::InvalidInput, Some(413)), "{too_big}");
    assert!(!too_big.message().is_empty());
    let registration = json!({ "name": "w", "workflows": [{ "name": "x".repeat(2000) }] });
    let response =
        http.post(format!("{url}/workers/register")).bearer_auth(BOOTSTRAP).json(&registration).send().await.unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(!detail(&body).is_empty());
    // A body without a length (chunked) over the limit too.
    let chunks = futures::stream::iter(
        (0..4).map(|i| Ok::<_, std::io::Error>(if i == 0 { "\"".to_string() } else { "y".repeat(600) })),
    );
    let response = http
        .post(format!("{url}/workflows/hello_world/run/sync"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(!detail(&body).is_empty());

    // Under the limit all is well.
    let (status, body) = run_on(&api, "hello_world", "sync", false, &json!("World")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"], "Hello, World");
    shutdown(running).await;
}

// ---------------------------------------------------------------------------------------------
// 6. A database shared with other engines
// ---------------------------------------------------------------------------------------------

/// A server started on a database where another engine (of another process, say) is running an
/// execution leaves it alone: no worker ever claimed it, so it is not the server's to take back.
/// The run finishes undisturbed, and the server shows its log as that engine wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_leaves_alone_the_runs_of_other_engines_on_its_database() {
    let (dir, engine) = engine_on_disk();
    let id = "run-of-another-engine";
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { gated.on(&engine).run_with_id(id, "x".to_string()).await }
    });
    tokio::time::timeout(PATIENCE, GATE_REACHED.notified()).await.expect("the task begins");

    let server_engine = Engine::open(dir.path().join("flux.db")).unwrap();
    let (running, url) = bind(Server::new().engine(&server_engine)).await;
    let api = api(&url);
    let during = poll_status(&api, "gated", id, "TASK_STARTED", |s| types(s).len() >= 2).await;
    assert_eq!(state(&during), "RUNNING", "{during}");
    assert_eq!(types(&during), ["WORKFLOW_STARTED", "TASK_STARTED"], "{during}");

    GATE.notify_one();
    let done = tokio::time::timeout(PATIENCE, run).await.expect("the run ends").unwrap().expect("the run succeeds");
    assert_eq!(done.state(), ExecutionState::Completed, "{:?}", done.error());
    assert_eq!(done.output().map(String::as_str), Some("x passed"));
    let (status, stored) = status_of(&api, "gated", id, true).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(state(&stored), "COMPLETED", "{stored}");
    assert_eq!(stored["output"], "x passed");
    assert_eq!(
        types(&stored),
        ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"],
        "{stored}"
    );
    check_event_shapes(&stored);
    shutdown(running).await;
}

// ---------------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------------

/// Waits until the history of schedule `name` lists a completed execution; its entry.
async fn first_completed_fire(http: &reqwest::Client, url: &str, name: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, history) = raw_get(http, &format!("{url}/schedules/{name}/history")).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let entries = history["entries"].as_array().cloned().unwrap_or_default();
        if let Some(done) = entries.into_iter().find(|e| e["state"] == "COMPLETED") {
            return done;
        }
        assert!(Instant::now() < deadline, "schedule `{name}` never completed a fire: {history}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn schedules_over_http_fire_on_a_worker_and_are_paused_resumed_changed_and_deleted() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(hello_world).run());
    let api = api(&url);
    wait_for_workflow(&api, "hello_world").await;
    let http = raw();
    let every_second = json!({"type": "interval", "interval_seconds": 1});
    let request = json!({
        "workflow_name": "hello_world",
        "name": "greeter",
        "schedule_config": every_second,
        "input_data": "Ann",
        "description": "greets Ann",
    });
    let (status, created) = raw_post(&http, &format!("{url}/schedules"), &request).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (&created["name"], &created["workflow_name"], &created["status"], &created["schedule_type"]),
        (&json!("greeter"), &json!("hello_world"), &json!("active"), &json!("interval")),
        "{created}"
    );
    assert_eq!(created["schedule_config"], json!({"type": "interval", "interval_seconds": 1, "overlap": "skip"}));
    assert_eq!((&created["input_data"], &created["run_count"]), (&json!("Ann"), &json!(0)));

    // The server fires it; the worker runs the execution it stored.
    let fire = first_completed_fire(&http, &url, "greeter").await;
    let id = fire["execution_id"].as_str().unwrap();
    assert!(id.starts_with("greeter_20") && id.len() == "greeter_".len() + 20, "{id}");
    let (_, run) = raw_get(&http, &format!("{url}/executions/{id}")).await;
    assert_eq!((&run["output"], &run["state"]), (&json!("Hello, Ann"), &json!("COMPLETED")), "{run}");
    // The listing of executions filters by schedule too.
    let listed = api.list_executions(flux::ExecutionFilter::new().schedule("greeter")).await.unwrap();
    assert!(listed.executions.iter().any(|row| row.execution_id == id), "{:?}", listed.json());
    assert_eq!(api.list_executions(flux::ExecutionFilter::new().schedule("other")).await.unwrap().total, 0);

    // Refusals, each with its reason.
    let (status, taken) = raw_post(&http, &format!("{url}/schedules"), &request).await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    let bad_cron = json!({"workflow_name": "hello_world", "name": "bad",
                          "schedule_config": {"type": "cron", "cron_expression": "0 25 * * *"}});
    let (status, refused) = raw_post(&http, &format!("{url}/schedules"), &bad_cron).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("invalid cron expression `0 25 * * *`"), "{refused}");
    let unknown = json!({"workflow_name": "nope", "schedule_config": every_second});
    let (status, refused) = raw_post(&http, &format!("{url}/schedules"), &unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    let bad_name = json!({"workflow_name": "hello_world", "name": "a b", "schedule_config": every_second});
    let (status, refused) = raw_post(&http, &format!("{url}/schedules"), &bad_name).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Pause, list, resume, change, through the typed client.
    let paused = api.pause_schedule("greeter").await.unwrap();
    assert_eq!(paused["status"], "paused");
    let listed = api.schedules().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((&listed[0]["name"], &listed[0]["status"]), (&json!("greeter"), &json!("paused")));
    let resumed = api.resume_schedule("greeter").await.unwrap();
    assert_eq!(resumed["status"], "active");
    let cron = json!({"type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "Europe/Paris"});
    let changed = api.update_schedule("greeter", json!({"schedule_config": cron, "input_data": "Bo"})).await.unwrap();
    assert_eq!((&changed["schedule_type"], &changed["input_data"]), (&json!("cron"), &json!("Bo")), "{changed}");
    let next = changed["next_run_at"].as_str().unwrap();
    assert!(next.ends_with(":00:00Z") || next.ends_with(":00:00.000000Z"), "{next}");

    // Deleted: gone, its executions kept.
    api.delete_schedule("greeter").await.unwrap();
    let error = api.schedule("greeter").await.unwrap_err();
    assert_eq!(error.kind(), flux::ErrorKind::NotFound, "{error}");
    let error = api.delete_schedule("greeter").await.unwrap_err();
    assert_eq!(error.kind(), flux::ErrorKind::NotFound, "{error}");
    let history = api.schedule_history("greeter", 10, 0).await.unwrap();
    assert!(history["total"].as_u64().unwrap() >= 1, "{history}");
    worker.abort();
    shutdown(running).await;
}

#[tokio::test]
async fn a_schedule_of_a_workflow_the_server_runs_fires_in_its_process() {
    let (running, url) = bind(Server::new().engine(&Engine::in_memory()).register(hello_world)).await;
    let http = raw();
    let request = json!({"workflow_name": "hello_world", "schedule_config": {"type": "interval", "interval_seconds": 1},
                         "input_data": "Cy"});
    let (status, created) = raw_post(&http, &format!("{url}/schedules"), &request).await;
    assert_eq!((status, &created["name"]), (StatusCode::CREATED, &json!("hello_world")), "{created}");
    let fire = first_completed_fire(&http, &url, "hello_world").await;
    let (_, run) = raw_get(&http, &format!("{url}/executions/{}", fire["execution_id"].as_str().unwrap())).await;
    assert_eq!(run["output"], "Hello, Cy", "{run}");
    // An input the workflow cannot take is refused before anything is stored.
    let wrong = json!({"workflow_name": "hello_world", "name": "wrong", "schedule_config": {"type": "interval",
                       "interval_seconds": 60}, "input_data": {"n": 1}});
    let (status, refused) = raw_post(&http, &format!("{url}/schedules"), &wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, _) = raw_get(&http, &format!("{url}/schedules/wrong")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    shutdown(running).await;
}

// ---------------------------------------------------------------------------------------------
// Messages and events
// ---------------------------------------------------------------------------------------------

/// Says it waits, takes a payment (at most a minute), then any second one for a second, says
/// what it got.
#[flux::workflow]
async fn awaits_payment(_ctx: ExecutionContext<String>) -> flux::Result<String> {
    flux::set_event("status", "waiting".to_string()).await?;
    let cents: Option<u32> = flux::recv("payment").timeout(Duration::from_secs(60)).await?;
    let again: Option<u32> = flux::recv("payment").timeout(Duration::from_secs(1)).await?;
    let outcome = match (cents, again) {
        (Some(c), None) => format!("paid {c}"),
        (Some(c), Some(d)) => format!("paid {c} and {d}"),
        (None, _) => "expired".to_string(),
    };
    flux::set_event("status", outcome.clone()).await?;
    Ok(outcome)
}

#[tokio::test]
async fn messages_and_events_over_http_reach_a_workflow_the_server_runs() {
    let (running, url) = bind(Server::new().engine(&Engine::in_memory()).register(awaits_payment)).await;
    let api = api(&url);
    let workflow = api.workflow::<String, String>("awaits_payment");
    let started = workflow.start(&"order 7".to_string()).await.unwrap();
    let id = started.execution_id().to_string();
    let deadline = Instant::now() + PATIENCE;
    while workflow.get_event::<String>(&id, "status").await.unwrap().as_deref() != Some("waiting") {
        assert!(Instant::now() < deadline, "the workflow never said it waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(workflow.send_keyed(&id, "payment", "pay-1", &2500).await.unwrap());
    assert!(!workflow.send_keyed(&id, "payment", "pay-1", &2500).await.unwrap(), "a duplicate was delivered");
    let deadline = Instant::now() + PATIENCE;
    let done = loop {
        let (_, status) = status_of(&api, "awaits_payment", &id, false).await;
        if state(&status) == "COMPLETED" {
            break status;
        }
        assert!(Instant::now() < deadline, "the payment never completed the workflow: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["output"], "paid 2500", "{done}");
    assert_eq!(workflow.get_event::<String>(&id, "status").await.unwrap().as_deref(), Some("paid 2500"));
    assert_eq!(workflow.get_event::<String>(&id, "nothing").await.unwrap(), None);

    // Refusals: a finished execution, an unknown one, an unknown workflow.
    let http = raw();
    let (status, refused) =
        raw_post(&http, &format!("{url}/workflows/awaits_payment/send/{id}/payment"), &json!(1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("has finished (COMPLETED)"), "{refused}");
    let (status, _) = raw_post(&http, &format!("{url}/workflows/awaits_payment/send/nope/payment"), &json!(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = raw_post(&http, &format!("{url}/workflows/nope/send/{id}/payment"), &json!(1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, event) = raw_get(&http, &format!("{url}/workflows/awaits_payment/events/{id}/status")).await;
    assert_eq!((status, &event["set"], &event["value"]), (StatusCode::OK, &json!(true), &json!("paid 2500")));
    shutdown(running).await;
}

#[tokio::test]
async fn a_workflow_run_by_a_worker_receives_the_messages_sent_to_the_server() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(awaits_payment).run());
    let api = api(&url);
    wait_for_workflow(&api, "awaits_payment").await;
    let workflow = api.workflow::<String, String>("awaits_payment");
    let started = workflow.start(&"order 8".to_string()).await.unwrap();
    let id = started.execution_id().to_string();
    let deadline = Instant::now() + PATIENCE;
    while workflow.get_event::<String>(&id, "status").await.unwrap().as_deref() != Some("waiting") {
        assert!(Instant::now() < deadline, "the worker's run never said it waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workflow.send(&id, "payment", &4200).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let done = loop {
        let (_, status) = status_of(&api, "awaits_payment", &id, false).await;
        if state(&status) == "COMPLETED" {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker's run never got its payment: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["output"], "paid 4200", "{done}");
    // Only the worker holding an execution reads its messages.
    let http = raw();
    let (status, _) = raw_get(&http, &format!("{url}/workers/w/messages/{id}/payment/0")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    worker.abort();
    shutdown(running).await;
}

/// Declares a schedule: every second, with the input's default.
#[flux::workflow(schedule = "* * * * * *")]
async fn ticking(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    Ok(*ctx.input() + 1)
}

#[tokio::test]
async fn a_schedule_a_workers_workflow_declares_is_created_by_the_server_and_fired_on_the_worker() {
    let (_dir, engine) = engine_on_disk();
    let (running, url) = bind(Server::new().engine(&engine)).await;
    let worker = tokio::spawn(Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(ticking).run());
    let api = api(&url);
    wait_for_workflow(&api, "ticking").await;
    let schedule = api.schedule("ticking").await.unwrap();
    assert_eq!(
        schedule["schedule_config"],
        json!({"type": "cron", "cron_expression": "* * * * * *", "timezone": "UTC", "overlap": "skip"})
    );
    assert_eq!(schedule["input_data"], 0);
    let http = raw();
    let fire = first_completed_fire(&http, &url, "ticking").await;
    let (_, run) = raw_get(&http, &format!("{url}/executions/{}", fire["execution_id"].as_str().unwrap())).await;
    assert_eq!(run["output"], 1, "{run}");
    api.pause_schedule("ticking").await.unwrap();
    worker.abort();
    shutdown(running).await;
}
