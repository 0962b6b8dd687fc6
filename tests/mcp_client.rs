//! The MCP client task (`flux::mcp`, docs/design.md §17): against the MCP server written with
//! rmcp in `flux_suite::mcp`, and against the reference server
//! `@modelcontextprotocol/server-everything` from npm (installed by `.ci/run` into
//! `tests/mcp/node_modules`), including a replay in a new process after the server is gone.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flux::mcp::{ElicitationAnswer, ElicitationRequest, ToolError};
use flux::prelude::*;
use flux::{ErrorKind, TaskOptions};
use serde_json::json;

/// Discovers, calls `add`, then `fail` (caught), then pauses: a resume replays the body.
#[flux::workflow]
async fn calc(ctx: ExecutionContext<String>) -> flux::Result<Vec<String>> {
    let server = flux::mcp::client(ctx.input()).name("calc");
    let tools = server.discover().await?;
    let sum = tools.call("add", json!({"a": 2, "b": 40})).await?;
    let failure = tools.call("fail", json!({"reason": "out of paper"})).await.expect_err("`fail` fails");
    assert!(failure.is_terminal() && failure.is::<ToolError>(), "{failure:?}");
    let _: bool = flux::pause("confirm").await?;
    Ok(vec![tools.names().collect::<Vec<_>>().join(","), sum.text(), failure.message().to_string()])
}

fn task_events(execution: &Execution<String, Vec<String>>) -> Vec<(EventType, String)> {
    let tasks = execution.events().iter().filter(|e| !e.source_id().starts_with("calc_"));
    tasks.map(|e| (e.kind(), e.name().to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_tasks_and_a_replay_needs_no_server() {
    let server = flux_suite::mcp::serve().await.unwrap();
    let engine = Engine::in_memory();
    let paused = calc.on(&engine).run(server.url.clone()).await.unwrap();
    assert_eq!(paused.state(), ExecutionState::Paused, "{:?}", paused.error());
    let events = task_events(&paused);
    use EventType::*;
    let expected = [
        (TaskStarted, "mcp_calc_discover"),
        (TaskCompleted, "mcp_calc_discover"),
        (TaskStarted, "mcp_calc_add"),
        (TaskCompleted, "mcp_calc_add"),
        (TaskStarted, "mcp_calc_fail"),
        (TaskFailed, "mcp_calc_fail"),
        (TaskStarted, "pause"),
        (TaskPaused, "pause"),
    ];
    let expected: Vec<_> = expected.iter().map(|(k, n)| (*k, n.to_string())).collect();
    assert_eq!(events, expected);
    assert_eq!(server.calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    // The server goes away; the resume replays discovery and both calls from the log.
    server.stop().await;
    let done = calc.on(&engine).resume(paused.execution_id(), true).await.unwrap();
    assert_eq!(done.state(), ExecutionState::Completed, "{:?}", done.error());
    let output = done.output().unwrap();
    assert_eq!(output[0], "add,fail,greet");
    assert_eq!(output[1], "42");
    assert_eq!(output[2], "MCP tool `fail` of server `calc` failed: out of paper");
}

#[tokio::test]
async fn an_unreachable_server_is_retried_and_not_terminal() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    #[flux::workflow]
    async fn unreachable(ctx: ExecutionContext<String>) -> flux::Result<usize> {
        let options = TaskOptions::new().retry_max_attempts(1).retry_delay(Duration::from_millis(1));
        let server = flux::mcp::client(ctx.input()).name("gone").options(options);
        Ok(server.discover().await?.len())
    }
    let engine = Engine::in_memory();
    let failed = unreachable.on(&engine).run(format!("http://127.0.0.1:{port}/mcp")).await.unwrap();
    let error = failed.error().unwrap();
    assert!(error.message().contains("could not be reached") && !error.is_terminal(), "{error:?}");
    let kinds: Vec<EventType> = failed.events().iter().map(flux::Event::kind).collect();
    assert!(kinds.contains(&EventType::TaskRetryStarted) && kinds.contains(&EventType::TaskFailed), "{kinds:?}");
}

#[tokio::test]
async fn arguments_that_are_not_an_object_and_unknown_tools_record_nothing() {
    let client = flux::mcp::client("http://127.0.0.1:1/mcp");
    let error = client.call("add", json!([1, 2])).await.unwrap_err();
    assert!(error.is_terminal() && error.kind() == ErrorKind::InvalidInput, "{error:?}");
    assert_eq!(client.connections(), 0);
}

/// Calls `greet`, which asks for a name by elicitation.
#[flux::workflow]
async fn greeting(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let server = flux::mcp::client(ctx.input()).name("calc");
    Ok(server.call("greet", json!({})).await?.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_pauses_and_the_resume_answers_it() {
    let server = flux_suite::mcp::serve().await.unwrap();
    let engine = Engine::in_memory();
    let paused = greeting.on(&engine).run(server.url.clone()).await.unwrap();
    assert_eq!(paused.state(), ExecutionState::Paused, "{:?}", paused.error());
    let request: ElicitationRequest = paused.pause_output().unwrap().unwrap();
    assert_eq!((request.tool.as_str(), request.mode.as_str()), ("greet", "form"));
    assert_eq!(request.message, "What is your name?");
    let answer = ElicitationAnswer::accept(json!({"name": "Ada"}));
    let done = greeting.on(&engine).resume(paused.execution_id(), answer).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("hello, Ada"), "{:?}", done.error());
    // The call was made again after the resume, and the answer came from the log.
    assert_eq!(server.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    server.stop().await;
}

/// The reference server's entry point, or `None` (loudly) when `npm install` has not run.
fn everything() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/mcp");
    let entry = root.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if entry.exists() {
        return Some(entry);
    }
    eprintln!(
        "\n*** SKIPPED: {} is missing; run `npm install --prefix tests/mcp` (.ci/run does) ***\n",
        entry.display()
    );
    None
}

/// Starts the reference server over streamable HTTP on a free port; returns it and its URL.
fn start_everything(entry: &std::path::Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("node")
        .arg(entry)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    // It says so on stderr once it listens.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server ended before listening");
        if line.contains("listening on port") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, format!("http://127.0.0.1:{port}/mcp"))
}

#[test]
fn the_reference_server_is_called_and_a_new_process_replays_after_it_is_killed() {
    let Some(entry) = everything() else { return };
    let home = tempfile::tempdir().unwrap();
    let (mut server, url) = start_everything(&entry);
    let example = flux_suite::example("mcp_client");
    let mut run = Command::new(&example)
        .args(["run", "mcp-1", &url, "everything"])
        .args(["echo", r#"{"message": "hi"}"#, "get-sum", r#"{"a": 1, "b": 2}"#])
        .args(["get-sum", r#"{"a": "one", "b": 2}"#])
        .env("FLUX_HOME", home.path())
        .env("FLUX_MCP_HOLD", "1")
        .env_remove("FLUX_DATABASE_URL")
        .env_remove("FLUX_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example starts");
    let mut stdout = BufReader::new(run.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("calls recorded") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the example ended before its calls were recorded");
    }
    // Both processes die: the MCP server, then the workflow's process, with SIGKILL.
    server.kill().unwrap();
    server.wait().unwrap();
    run.kill().unwrap();
    assert!(!run.wait().unwrap().success());

    let out = Command::new(&example)
        .args(["replay", "mcp-1"])
        .env("FLUX_HOME", home.path())
        .env_remove("FLUX_DATABASE_URL")
        .env_remove("FLUX_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("state: COMPLETED"), "{stdout}");
    assert!(stdout.contains("echo -> Echo: hi"), "{stdout}");
    assert!(stdout.contains("get-sum -> The sum of 1 and 2 is 3."), "{stdout}");
    assert!(stdout.contains("get-sum failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_over_stdio() {
    let Some(entry) = everything() else { return };
    #[flux::workflow]
    async fn over_stdio(ctx: ExecutionContext<String>) -> flux::Result<(usize, String)> {
        let server = flux::mcp::client_stdio("node").arg(ctx.input()).arg("stdio").name("everything");
        let tools = server.discover().await?;
        let echo = tools.get("echo").expect("`echo` is offered");
        assert!(echo.spec().input_schema["properties"]["message"].is_object(), "{:?}", echo.spec());
        let said = echo.call(json!({"message": "over stdio"})).await?.text();
        server.close().await;
        Ok((tools.len(), said))
    }
    let engine = Engine::in_memory();
    let done = over_stdio.on(&engine).run(entry.display().to_string()).await.unwrap();
    let (count, said) = done.output().unwrap().clone();
    assert!(count >= 10, "{count} tools");
    assert_eq!(said, "Echo: over stdio");
}
