//! The tools of the Python original (docs/design.md §17), with its names and parameters, over
//! [`Client`]: workflows, executions, workers and the server's health.

use reqwest::Method;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::FluxTools;
use super::answer::{Answer, execution, fail, failed, ok, parse_input};
use crate::client::Client;
use crate::client::http::Auth;

/// `workflow_name`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct WorkflowName {
    /// Name of the workflow.
    workflow_name: String,
}

/// `workflow_name, input_data, detailed`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct Execute {
    /// Name of the workflow.
    workflow_name: String,
    /// JSON text of the workflow's input (`"\"World\""` for a string, `{"n": 1}` for an object).
    input_data: String,
    /// Whether to add the execution's events to the answer.
    #[serde(default)]
    detailed: bool,
}

/// `workflow_name, execution_id, input_data, detailed`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct Resume {
    /// Name of the workflow.
    workflow_name: String,
    /// ID of the paused execution.
    execution_id: String,
    /// JSON text of the resume input.
    input_data: String,
    /// Whether to add the execution's events to the answer.
    #[serde(default)]
    detailed: bool,
}

/// `workflow_name, execution_id, detailed`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct Status {
    /// Name of the workflow.
    workflow_name: String,
    /// ID of the execution.
    execution_id: String,
    /// Whether to add the execution's events to the answer.
    #[serde(default)]
    detailed: bool,
}

/// `workflow_name, execution_id, mode`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct Cancel {
    /// Name of the workflow.
    workflow_name: String,
    /// ID of the execution to cancel.
    execution_id: String,
    /// `async`: ask and return at once; `sync`: wait until it is cancelled.
    #[serde(default = "async_mode")]
    mode: String,
}

fn async_mode() -> String {
    "async".to_string()
}

/// `workflow_name, state, limit, offset`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ListExecutions {
    /// Only the executions of this workflow.
    #[serde(default)]
    workflow_name: Option<String>,
    /// Only executions in this state (`running`, `paused`, `completed`, `failed`, ...).
    #[serde(default)]
    state: Option<String>,
    /// Most executions to return (1 to 1000).
    #[serde(default = "fifty")]
    limit: u32,
    /// How many matching executions to skip, for the next page.
    #[serde(default)]
    offset: u64,
}

fn fifty() -> u32 {
    50
}

/// `execution_id, detailed`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct GetExecution {
    /// ID of the execution.
    execution_id: String,
    /// Whether to add the execution's events to the answer.
    #[serde(default)]
    detailed: bool,
}

/// `worker_name`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct WorkerName {
    /// Name of the worker.
    worker_name: String,
}

/// The message of an execution that stopped short of finishing: how to go on.
pub(crate) fn next_step(status: &crate::client::ExecutionStatus<Value>, asynchronous: bool) -> Option<String> {
    let (name, id) = (status.workflow_name(), status.execution_id());
    if status.is_paused() {
        Some(format!(
            "Paused: resume it with resume_workflow_sync(workflow_name='{name}', execution_id='{id}', input_data='...')"
        ))
    } else if asynchronous && !status.has_finished() {
        Some(format!("Started: check it with get_execution_status(workflow_name='{name}', execution_id='{id}')"))
    } else {
        None
    }
}

#[tool_router]
impl FluxTools {
    /// The client of the flux server.
    fn client(&self) -> &Client {
        &self.client
    }

    #[tool(description = "List all available workflows in the Flux system.")]
    async fn list_workflows(&self) -> Answer {
        match self.client().workflows().await {
            Ok(list) => {
                let workflows: Vec<Value> = list.iter().map(|w| w.json().clone()).collect();
                ok(json!({ "count": workflows.len(), "workflows": workflows }))
            }
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "Get detailed information about a specific workflow: its versions, where it runs, \
                          and the JSON Schema of its input when it has one.")]
    async fn get_workflow_details(&self, Parameters(p): Parameters<WorkflowName>) -> Answer {
        match self.client().workflow_info(&p.workflow_name).await {
            Ok(info) => ok(json!({ "workflow": info.json() })),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "Execute a workflow synchronously and wait until it finishes or pauses. \
                          input_data is the input as JSON text.")]
    async fn execute_workflow_sync(&self, Parameters(p): Parameters<Execute>) -> Answer {
        self.execute(p, false).await
    }

    #[tool(description = "Execute a workflow asynchronously and return at once with its execution ID \
                          (check it with get_execution_status). input_data is the input as JSON text.")]
    async fn execute_workflow_async(&self, Parameters(p): Parameters<Execute>) -> Answer {
        self.execute(p, true).await
    }

    #[tool(description = "Resume a paused workflow execution with input_data (JSON text) and wait until it \
                          finishes or pauses again.")]
    async fn resume_workflow_sync(&self, Parameters(p): Parameters<Resume>) -> Answer {
        self.resume(p, false).await
    }

    #[tool(description = "Resume a paused workflow execution with input_data (JSON text) and return at once.")]
    async fn resume_workflow_async(&self, Parameters(p): Parameters<Resume>) -> Answer {
        self.resume(p, true).await
    }

    #[tool(description = "Get the current status of a workflow execution.")]
    async fn get_execution_status(&self, Parameters(p): Parameters<Status>) -> Answer {
        let workflow = self.client().workflow::<Value, Value>(&p.workflow_name).detailed(p.detailed);
        match workflow.status(&p.execution_id).await {
            Ok(status) => execution(&status, next_step(&status, true)),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "Cancel a running workflow execution. mode: 'async' (ask and return at once) or \
                          'sync' (wait until it is cancelled).")]
    async fn cancel_execution(&self, Parameters(p): Parameters<Cancel>) -> Answer {
        let workflow = self.client().workflow::<Value, Value>(&p.workflow_name);
        let cancelled = match p.mode.as_str() {
            "async" => workflow.cancel(&p.execution_id).await,
            "sync" => workflow.cancel_and_wait(&p.execution_id).await,
            other => return fail(format!("Mode must be 'sync' or 'async', not '{other}'")),
        };
        match cancelled {
            Ok(status) => ok(json!({
                "execution_id": p.execution_id,
                "workflow_name": p.workflow_name,
                "cancellation_mode": p.mode,
                "status": status.summary(),
            })),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "List workflow executions, newest first, optionally of one workflow or in one state \
                          (running, paused, completed, failed, cancelled, ...), a page at a time.")]
    async fn list_executions(&self, Parameters(p): Parameters<ListExecutions>) -> Answer {
        let mut query = vec![("limit", p.limit.to_string()), ("offset", p.offset.to_string())];
        if let Some(name) = p.workflow_name.filter(|n| !n.is_empty()) {
            query.push(("workflow", name));
        }
        if let Some(state) = p.state.filter(|s| !s.is_empty()) {
            query.push(("state", state));
        }
        match self.get(&["executions"], &query, Auth::Plain).await {
            Ok(page) => ok(page),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "Get an execution of any workflow by its ID.")]
    async fn get_execution(&self, Parameters(p): Parameters<GetExecution>) -> Answer {
        let query = [("detailed", p.detailed.to_string())];
        match self.get(&["executions", &p.execution_id], &query, Auth::Plain).await {
            Ok(summary) => ok(summary),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "List the workers registered with the Flux server.")]
    async fn list_workers(&self) -> Answer {
        match self.get(&["workers"], &[], Auth::Admin).await {
            Ok(Value::Array(workers)) => ok(json!({ "count": workers.len(), "workers": workers })),
            Ok(other) => fail(format!("the Flux server answered GET /workers with {other}, not a list")),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "Get details of a specific worker: its workflows, machine and claims.")]
    async fn get_worker(&self, Parameters(p): Parameters<WorkerName>) -> Answer {
        match self.get(&["workers", &p.worker_name], &[], Auth::Admin).await {
            Ok(worker) => ok(json!({ "worker": worker })),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    #[tool(description = "Check the health of the Flux server.")]
    async fn health_check(&self) -> Answer {
        match self.client().workflows().await {
            Ok(list) => ok(json!({ "health": {
                "status": "healthy",
                "server_url": self.client().url(),
                "workflows": list.len(),
            }})),
            Err(e) => failed(&e, self.client().url()),
        }
    }
}

impl FluxTools {
    /// The static tools.
    pub(crate) fn static_router() -> ToolRouter<FluxTools> {
        FluxTools::tool_router() + super::schedules::router()
    }

    /// `execute_workflow_sync` and `execute_workflow_async`.
    async fn execute(&self, p: Execute, asynchronous: bool) -> Answer {
        match parse_input("input_data", &p.input_data) {
            Ok(input) => self.run(&p.workflow_name, input, p.detailed, asynchronous).await,
            Err(reason) => fail(reason),
        }
    }

    /// Runs workflow `name` on `input`, waiting unless `asynchronous`.
    pub(crate) async fn run(&self, name: &str, input: Value, detailed: bool, asynchronous: bool) -> Answer {
        let workflow = self.client().workflow::<Value, Value>(name).detailed(detailed);
        let started = if asynchronous { workflow.start(&input).await } else { workflow.run(&input).await };
        match started {
            Ok(status) => execution(&status, next_step(&status, asynchronous)),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    /// `resume_workflow_sync` and `resume_workflow_async`.
    async fn resume(&self, p: Resume, asynchronous: bool) -> Answer {
        match parse_input("input_data", &p.input_data) {
            Ok(input) => self.resume_with(&p.workflow_name, &p.execution_id, input, p.detailed, asynchronous).await,
            Err(reason) => fail(reason),
        }
    }

    /// Resumes execution `id` of workflow `name` with `input`.
    pub(crate) async fn resume_with(
        &self,
        name: &str,
        id: &str,
        input: Value,
        detailed: bool,
        asynchronous: bool,
    ) -> Answer {
        let workflow = self.client().workflow::<Value, Value>(name).detailed(detailed);
        let resumed =
            if asynchronous { workflow.resume_async(id, &input).await } else { workflow.resume(id, &input).await };
        match resumed {
            Ok(status) => execution(&status, next_step(&status, asynchronous)),
            Err(e) => failed(&e, self.client().url()),
        }
    }

    /// `GET` of the API path `segments` with `query`, as JSON.
    async fn get(&self, segments: &[&str], query: &[(&str, String)], auth: Auth) -> crate::Result<Value> {
        let http = self.client().http();
        let mut url = http.url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        http.value(http.request(Method::GET, url, auth)).await
    }
}
