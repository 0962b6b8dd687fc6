//! The MCP server (feature `mcp`) driven by rmcp's own client: the tools and their input
//! schemas as the Python original has them, over streamable HTTP (mounted at `/mcp` of a flux
//! server) and over stdio (`flux start mcp --transport stdio` as a child process); runs sync
//! and async, polling to COMPLETED; resume of a paused execution; cancellation of a running one;
//! bad input answered `success: false` with the reason; a workflow's typed tool checking its
//! arguments against the input's JSON Schema; the endpoint behind the admin token.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flux::server::{RunningServer, Server};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-mcp-tests";
/// How long any wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

mod wf {
    use std::time::Duration;

    use flux::prelude::*;
    use serde::{Deserialize, Serialize};

    #[flux::workflow]
    pub async fn greet(ctx: ExecutionContext<String>) -> String {
        format!("Hello, {}", ctx.input())
    }

    /// An order: its input derives `JsonSchema`, so its tools take typed parameters.
    #[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
    pub struct Order {
        /// What to order.
        pub item: String,
        /// How many.
        pub quantity: u32,
    }

    #[flux::workflow]
    pub async fn order(ctx: ExecutionContext<Order>) -> String {
        format!("{} x {}", ctx.input().quantity, ctx.input().item)
    }

    /// Pauses for an approval, then says what it got.
    #[flux::workflow]
    pub async fn approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{}: {}", ctx.input(), if approved { "approved" } else { "rejected" }))
    }

    /// Runs until cancelled.
    #[flux::workflow]
    pub async fn slow(_ctx: ExecutionContext<u32>) -> flux::Result<()> {
        flux::sleep(Duration::from_secs(3600)).await
    }
}

async fn flux_server() -> RunningServer {
    Server::from_config(flux::Config::default())
        .engine(&flux::Engine::in_memory())
        .admin_token(ADMIN)
        .register(wf::greet)
        .register(wf::order)
        .register(wf::approval)
        .register(wf::slow)
        .mcp()
        .bind("127.0.0.1:0")
        .await
        .expect("the server starts")
}

async fn http_client(url: &str, token: Option<&str>) -> Result<RunningService<RoleClient, ()>, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp"));
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    ().serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
}

fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments are an object, not {other}"),
    }
}

/// Calls `tool` and returns its structured answer, with whether it was flagged `isError`.
async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> (Value, bool) {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments(args));
    let result: CallToolResult = client.call_tool(params).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    let value = result.structured_content.clone().unwrap_or_else(|| panic!("{tool} answers structured content"));
    (value, result.is_error == Some(true))
}

/// Calls `tool`, asserts `success: true` and returns the answer.
async fn ok(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> Value {
    let (value, is_error) = call(client, tool, args).await;
    assert_eq!(value["success"], true, "{tool}: {value}");
    assert!(!is_error, "{tool}: {value}");
    value
}

/// Calls `tool`, asserts `success: false` (flagged `isError`) and returns the error.
async fn failure(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> String {
    let (value, is_error) = call(client, tool, args).await;
    assert_eq!(value["success"], false, "{tool}: {value}");
    assert!(is_error, "{tool}: {value}");
    value["error"].as_str().unwrap_or_else(|| panic!("{tool}: an error message: {value}")).to_string()
}

/// `(properties, required)` of a tool's input schema.
fn shape(tool: &Tool) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &tool.input_schema;
    let properties = schema.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect());
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|v| v.as_str().map(String::from)).collect());
    (properties.unwrap_or_default(), required.unwrap_or_default())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The tools of the Python original, with `(parameters, required parameters)`.
fn expected_static_tools() -> Vec<(&'static str, BTreeSet<String>, BTreeSet<String>)> {
    let run = set(&["workflow_name", "input_data", "detailed"]);
    let resume = set(&["workflow_name", "execution_id", "input_data", "detailed"]);
    vec![
        ("list_workflows", set(&[]), set(&[])),
        ("get_workflow_details", set(&["workflow_name"]), set(&["workflow_name"])),
        ("execute_workflow_sync", run.clone(), set(&["workflow_name", "input_data"])),
        ("execute_workflow_async", run, set(&["workflow_name", "input_data"])),
        ("resume_workflow_sync", resume.clone(), set(&["workflow_name", "execution_id", "input_data"])),
        ("resume_workflow_async", resume, set(&["workflow_name", "execution_id", "input_data"])),
        (
            "get_execution_status",
            set(&["workflow_name", "execution_id", "detailed"]),
            set(&["workflow_name", "execution_id"]),
        ),
        ("cancel_execution", set(&["workflow_name", "execution_id", "mode"]), set(&["workflow_name", "execution_id"])),
        ("list_executions", set(&["workflow_name", "state", "limit", "offset"]), set(&[])),
        ("get_execution", set(&["execution_id", "detailed"]), set(&["execution_id"])),
        ("list_workers", set(&[]), set(&[])),
        ("get_worker", set(&["worker_name"]), set(&["worker_name"])),
        ("health_check", set(&[]), set(&[])),
        (
            "create_schedule",
            set(&["workflow_name", "name", "schedule_config", "description", "input_data"]),
            set(&["workflow_name", "name", "schedule_config"]),
        ),
        ("list_schedules", set(&["workflow_name", "active_only", "limit", "offset"]), set(&[])),
        ("get_schedule", set(&["schedule_id"]), set(&["schedule_id"])),
        (
            "update_schedule",
            set(&["schedule_id", "schedule_config", "description", "input_data"]),
            set(&["schedule_id"]),
        ),
        ("pause_schedule", set(&["schedule_id"]), set(&["schedule_id"])),
        ("resume_schedule", set(&["schedule_id"]), set(&["schedule_id"])),
        ("delete_schedule", set(&["schedule_id"]), set(&["schedule_id"])),
        ("get_schedule_history", set(&["schedule_id", "limit", "offset"]), set(&["schedule_id"])),
    ]
}

/// Checks the tool list: every static tool with its exact parameters, and each workflow's own.
fn assert_tools(tools: &[Tool]) {
    for (name, properties, required) in expected_static_tools() {
        let tool = tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tool {name}"));
        assert_eq!(shape(tool), (properties, required), "{name}");
    }
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for wf in ["greet", "order", "approval", "slow"] {
        for tool in [wf.to_string(), format!("{wf}_async"), format!("resume_{wf}"), format!("status_{wf}")] {
            assert!(names.contains(tool.as_str()), "no tool {tool}: {names:?}");
        }
    }
    assert!(!names.contains("upload_workflow"));
    let order = tools.iter().find(|t| t.name == "order").expect("order's tool");
    assert_eq!(shape(order), (set(&["item", "quantity"]), set(&["item", "quantity"])));
    let greet = tools.iter().find(|t| t.name == "greet").expect("greet's tool");
    assert_eq!(shape(greet), (set(&["input"]), set(&[])));
}

/// Polls `get_execution_status` until the execution is in `state`.
async fn wait_for_state(client: &RunningService<RoleClient, ()>, workflow: &str, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = ok(client, "get_execution_status", json!({"workflow_name": workflow, "execution_id": id})).await;
        if status["state"] == state {
            return status;
        }
        assert!(Instant::now() < deadline, "{workflow} {id} never reached {state}: {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The schedule tools: create (its fires run), list, get, update, pause, resume, history and
/// delete, and the reasons of refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_tools_create_pause_resume_and_delete_schedules() {
    let server = flux_server().await;
    let client = http_client(&server.url(), Some(ADMIN)).await.expect("the MCP client connects");
    let config = r#"{"type": "interval", "interval_seconds": 1}"#;
    let created = ok(
        &client,
        "create_schedule",
        json!({"workflow_name": "greet", "name": "hello", "schedule_config": config, "input_data": "\"Bob\"",
               "description": "greets Bob"}),
    )
    .await;
    let schedule = &created["schedule"];
    assert_eq!((schedule["name"].as_str(), schedule["status"].as_str()), (Some("hello"), Some("active")), "{created}");
    assert_eq!((schedule["description"].as_str(), schedule["input_data"].as_str()), (Some("greets Bob"), Some("Bob")));

    // The server fires it every second: its first execution completes.
    let deadline = Instant::now() + PATIENCE;
    let first = loop {
        let history = ok(&client, "get_schedule_history", json!({"schedule_id": "hello"})).await;
        let done = history["entries"].as_array().and_then(|e| e.iter().find(|e| e["state"] == "COMPLETED").cloned());
        if let Some(entry) = done {
            break entry;
        }
        assert!(Instant::now() < deadline, "the schedule never fired: {history}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = first["execution_id"].as_str().expect("an execution id");
    assert!(id.starts_with("hello_") && id.ends_with('Z'), "{id}");
    let run = ok(&client, "get_execution", json!({"execution_id": id})).await;
    assert_eq!(run["output"], "Hello, Bob", "{run}");

    let paused = ok(&client, "pause_schedule", json!({"schedule_id": "hello"})).await;
    assert_eq!(paused["schedule"]["status"], "paused");
    let active = ok(&client, "list_schedules", json!({})).await;
    assert_eq!(active["count"], 0, "a paused schedule is not active: {active}");
    let all = ok(&client, "list_schedules", json!({"active_only": false, "workflow_name": "greet"})).await;
    assert_eq!(all["count"], 1, "{all}");
    let resumed = ok(&client, "resume_schedule", json!({"schedule_id": "hello"})).await;
    assert_eq!(resumed["schedule"]["status"], "active");
    let updated = ok(
        &client,
        "update_schedule",
        json!({"schedule_id": "hello", "schedule_config": r#"{"type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "Europe/Paris"}"#}),
    )
    .await;
    assert_eq!(updated["schedule"]["schedule_config"]["timezone"], "Europe/Paris", "{updated}");
    let got = ok(&client, "get_schedule", json!({"schedule_id": "hello"})).await;
    assert_eq!(got["schedule"]["schedule_type"], "cron", "{got}");

    let error = failure(
        &client,
        "create_schedule",
        json!({"workflow_name": "greet", "name": "hello", "schedule_config": config}),
    )
    .await;
    assert!(error.contains("a schedule named `hello` exists already"), "{error}");
    let bad = r#"{"type": "cron", "cron_expression": "0 25 * * *"}"#;
    let error =
        failure(&client, "create_schedule", json!({"workflow_name": "greet", "name": "bad", "schedule_config": bad}))
            .await;
    assert!(error.contains("invalid cron expression `0 25 * * *`"), "{error}");
    let error = failure(
        &client,
        "create_schedule",
        json!({"workflow_name": "greet", "name": "bad", "schedule_config": "{oops"}),
    )
    .await;
    assert!(error.contains("`schedule_config` is not valid JSON"), "{error}");
    let error =
        failure(&client, "create_schedule", json!({"workflow_name": "nope", "name": "x", "schedule_config": config}))
            .await;
    assert!(error.contains("workflow `nope` is not registered"), "{error}");

    let deleted = ok(&client, "delete_schedule", json!({"schedule_id": "hello"})).await;
    assert_eq!(deleted["deleted"], "hello");
    let error = failure(&client, "get_schedule", json!({"schedule_id": "hello"})).await;
    assert!(error.contains("no schedule named `hello`"), "{error}");
    let history = ok(&client, "get_schedule_history", json!({"schedule_id": "hello"})).await;
    assert!(history["total"].as_u64().is_some_and(|n| n >= 1), "the executions stay: {history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_over_streamable_http_run_resume_cancel_and_explain_failures() {
    let server = flux_server().await;
    let client = http_client(&server.url(), Some(ADMIN)).await.expect("the MCP client connects");
    assert_tools(&client.list_all_tools().await.expect("tools/list"));

    // Sync and async runs.
    let run = ok(&client, "execute_workflow_sync", json!({"workflow_name": "greet", "input_data": "\"World\""})).await;
    assert_eq!((run["state"].as_str(), run["output"].as_str()), (Some("COMPLETED"), Some("Hello, World")), "{run}");
    let started =
        ok(&client, "execute_workflow_async", json!({"workflow_name": "greet", "input_data": "\"Ada\""})).await;
    let id = started["execution_id"].as_str().expect("an execution id").to_string();
    let done = wait_for_state(&client, "greet", &id, "COMPLETED").await;
    assert_eq!(done["output"], "Hello, Ada");
    let found = ok(&client, "get_execution", json!({"execution_id": id, "detailed": true})).await;
    assert_eq!((found["workflow_name"].as_str(), found["events"].is_array()), (Some("greet"), true), "{found}");

    // Pause and resume.
    let paused =
        ok(&client, "execute_workflow_sync", json!({"workflow_name": "approval", "input_data": "\"invoice 7\""})).await;
    assert_eq!(paused["state"], "PAUSED", "{paused}");
    assert!(paused["message"].as_str().is_some_and(|m| m.contains("resume_workflow_sync")), "{paused}");
    let paused_id = paused["execution_id"].as_str().expect("an execution id");
    let resumed = ok(
        &client,
        "resume_workflow_sync",
        json!({"workflow_name": "approval", "execution_id": paused_id, "input_data": "true"}),
    )
    .await;
    assert_eq!(
        (resumed["state"].as_str(), resumed["output"].as_str()),
        (Some("COMPLETED"), Some("invoice 7: approved"))
    );

    // Cancel a running execution.
    let slow = ok(&client, "execute_workflow_async", json!({"workflow_name": "slow", "input_data": "1"})).await;
    let slow_id = slow["execution_id"].as_str().expect("an execution id").to_string();
    wait_for_state(&client, "slow", &slow_id, "RUNNING").await;
    let cancelled =
        ok(&client, "cancel_execution", json!({"workflow_name": "slow", "execution_id": slow_id, "mode": "sync"}))
            .await;
    assert_eq!(cancelled["status"]["state"], "CANCELLED", "{cancelled}");
    let error =
        failure(&client, "cancel_execution", json!({"workflow_name": "slow", "execution_id": slow_id, "mode": "now"}))
            .await;
    assert!(error.contains("Mode must be 'sync' or 'async'"), "{error}");

    // Failures an assistant can act on, never a crash.
    let error =
        failure(&client, "execute_workflow_sync", json!({"workflow_name": "greet", "input_data": "{oops"})).await;
    assert!(error.contains("`input_data` is not valid JSON"), "{error}");
    let error =
        failure(&client, "execute_workflow_sync", json!({"workflow_name": "greet", "input_data": "[1, 2]"})).await;
    assert!(error.contains("greet"), "the server's reason names the workflow: {error}");
    let error = failure(&client, "execute_workflow_sync", json!({"workflow_name": "nope", "input_data": "1"})).await;
    assert!(error.contains("workflow `nope` is not registered"), "{error}");
    let error = failure(&client, "get_worker", json!({"worker_name": "w9"})).await;
    assert!(error.contains("no worker named `w9`"), "{error}");

    // Listing and health.
    let workflows = ok(&client, "list_workflows", json!({})).await;
    assert_eq!(workflows["count"], 4, "{workflows}");
    let details = ok(&client, "get_workflow_details", json!({"workflow_name": "order"})).await;
    assert_eq!(details["workflow"]["input_schema"]["properties"]["quantity"]["type"], "integer", "{details}");
    let page =
        ok(&client, "list_executions", json!({"workflow_name": "greet", "state": "completed", "limit": 1})).await;
    assert_eq!((page["total"].as_u64(), page["executions"].as_array().map(Vec::len)), (Some(2), Some(1)), "{page}");
    let error = failure(&client, "list_executions", json!({"state": "sleepy"})).await;
    assert!(error.contains("unknown state `sleepy`"), "{error}");
    let workers = ok(&client, "list_workers", json!({})).await;
    assert_eq!(workers["count"], 0, "{workers}");
    let health = ok(&client, "health_check", json!({})).await;
    assert_eq!(health["health"]["status"], "healthy");

    // A workflow's own tools: typed parameters checked against its input's schema.
    let error = failure(&client, "order", json!({"item": "lamp", "quantity": "two"})).await;
    assert!(error.contains("argument `quantity`: expected integer"), "{error}");
    let error = failure(&client, "order", json!({"quantity": 2})).await;
    assert!(error.contains("argument `item`: missing"), "{error}");
    let ordered = ok(&client, "order", json!({"item": "lamp", "quantity": 2})).await;
    assert_eq!((ordered["state"].as_str(), ordered["output"].as_str()), (Some("COMPLETED"), Some("2 x lamp")));
    let started = ok(&client, "greet_async", json!({"input": "\"Grace\""})).await;
    assert!(started["message"].as_str().is_some_and(|m| m.contains("status_greet")), "{started}");
    let id = started["execution_id"].as_str().expect("an execution id").to_string();
    wait_for_state(&client, "greet", &id, "COMPLETED").await;
    let status = ok(&client, "status_greet", json!({"execution_id": id})).await;
    assert_eq!(status["output"], "Hello, Grace");
    let paused = ok(&client, "approval", json!({"input": "\"po 9\""})).await;
    let id = paused["execution_id"].as_str().expect("an execution id");
    let resumed = ok(&client, "resume_approval", json!({"execution_id": id, "input": "false"})).await;
    assert_eq!(resumed["output"], "po 9: rejected");
    let error = failure(&client, "greet", json!({"input": "not json"})).await;
    assert!(error.contains("`input` is not valid JSON"), "{error}");
    // An unknown tool is a protocol fault.
    let unknown = client.call_tool(CallToolRequestParams::new("no_such_tool")).await;
    assert!(unknown.is_err(), "{unknown:?}");

    client.cancel().await.expect("the client closes");
    server.shutdown().await.expect("the server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_endpoint_refuses_missing_and_wrong_admin_tokens() {
    let server = flux_server().await;
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for token in [None, Some("wrong"), Some("")] {
        let mut request = http
            .post(format!("{}/mcp", server.url()))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.expect("the server answers");
        assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    assert!(http_client(&server.url(), None).await.is_err(), "no token, no MCP session");
    assert!(http_client(&server.url(), Some("wrong")).await.is_err(), "a wrong token, no MCP session");
    let client = http_client(&server.url(), Some(ADMIN)).await.expect("the right token connects");
    client.cancel().await.expect("the client closes");
    server.shutdown().await.expect("the server stops");
}

/// The `flux` binary, built by this workspace (built now when it is not yet).
fn flux_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("tests live in target/<profile>/deps");
    let binary = profile.join(format!("flux{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "flux", "--features", "cli", "--bin", "flux"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build of the flux binary failed");
    }
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_over_stdio_of_flux_start_mcp() {
    let server = flux_server().await;
    let mut command = tokio::process::Command::new(flux_binary());
    command
        .args(["start", "mcp", "--transport", "stdio", "--server-url", &server.url(), "--admin-token", ADMIN])
        .env_remove("FLUX_CONFIG")
        .env("RUST_LOG", "warn");
    let transport = TokioChildProcess::new(command).expect("flux start mcp starts");
    let client = ().serve(transport).await.expect("the MCP session over stdio starts");
    assert_tools(&client.list_all_tools().await.expect("tools/list"));
    let run = ok(&client, "execute_workflow_sync", json!({"workflow_name": "greet", "input_data": "\"stdio\""})).await;
    assert_eq!(run["output"], "Hello, stdio", "{run}");
    let workers = ok(&client, "list_workers", json!({})).await;
    assert_eq!(workers["count"], 0, "the admin token reaches the server: {workers}");
    let error = failure(&client, "execute_workflow_sync", json!({"workflow_name": "greet", "input_data": "{"})).await;
    assert!(error.contains("not valid JSON"), "{error}");
    client.cancel().await.expect("the client closes");
    server.shutdown().await.expect("the server stops");
}

/// A workflow that uses flux's own MCP server through the MCP client task: discovers its tools,
/// runs a workflow through `execute_workflow_sync`, gets a refusal as a failed task, then
/// pauses; resumed after the server is gone, it completes from its log.
#[flux::workflow]
async fn assistant(ctx: flux::ExecutionContext<String>) -> flux::Result<Vec<String>> {
    let server = flux::mcp::client(format!("{}/mcp", ctx.input())).name("flux").bearer(ADMIN);
    let tools = server.discover().await?;
    let run = tools.call("execute_workflow_sync", json!({"workflow_name": "greet", "input_data": "\"Ada\""})).await?;
    let run: Value = run.json()?;
    let refused = tools
        .call("execute_workflow_sync", json!({"workflow_name": "nope", "input_data": "1"}))
        .await
        .expect_err("an unknown workflow is refused");
    let _: bool = flux::pause("look").await?;
    Ok(vec![
        tools.len().to_string(),
        run["output"].as_str().unwrap_or_default().to_string(),
        refused.is::<flux::mcp::ToolError>().to_string(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_client_task_drives_flux_own_mcp_server_and_replays_without_it() {
    let running = flux_server().await;
    let url = running.url().to_string();
    let engine = flux::Engine::in_memory();
    let paused = assistant.on(&engine).run(url).await.unwrap();
    assert_eq!(paused.state(), flux::ExecutionState::Paused, "{:?}", paused.error());
    let names: Vec<&str> =
        paused.events().iter().filter(|e| e.kind() == flux::EventType::TaskStarted).map(|e| e.name()).collect();
    assert_eq!(
        names,
        ["mcp_flux_discover", "mcp_flux_execute_workflow_sync", "mcp_flux_execute_workflow_sync", "pause"]
    );

    // The flux server (and its MCP endpoint) goes away; the resume answers every call from the log.
    tokio::time::timeout(PATIENCE, running.shutdown()).await.unwrap().unwrap();
    let done = assistant.on(&engine).resume(paused.execution_id(), true).await.unwrap();
    assert_eq!(done.state(), flux::ExecutionState::Completed, "{:?}", done.error());
    let output = done.output().unwrap();
    assert!(output[0].parse::<usize>().unwrap() >= 13, "the 13 tools and the workflows' own: {output:?}");
    assert_eq!(output[1..], ["Hello, Ada".to_string(), "true".to_string()]);
}
