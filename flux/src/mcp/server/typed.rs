//! The tools of each workflow in the catalog, as the Python original's service tools:
//! `{wf}` and `{wf}_async` run it, `resume_{wf}` and `resume_{wf}_async` resume it,
//! `status_{wf}` reads an execution. When the catalog carries the workflow's `input_schema`
//! with properties, `{wf}` and `{wf}_async` take those properties as their parameters (checked
//! against the schema before anything runs); otherwise they take `input`, JSON text.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

use super::FluxTools;
use super::answer::{Answer, fail, failed, ok, parse_input};
use super::schema::validate;
use crate::client::Client;

/// What a workflow's tool does.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// Runs it, with typed arguments when it has a schema.
    Run { asynchronous: bool, schema: Option<Arc<Value>> },
    /// Resumes a paused execution of it.
    Resume { asynchronous: bool },
    /// Reads an execution of it.
    Status,
}

/// A workflow's tool: the workflow it calls and what it does.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) workflow: String,
    pub(crate) action: Action,
}

/// Whether `name` can be an MCP tool name (letters, digits, `_`, `-`, `.`; 1 to 64 characters).
fn is_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The schema a typed tool takes: the input's, without the keys MCP clients do not need.
fn typed_schema(schema: &Value) -> Option<JsonObject> {
    let object = schema.as_object()?;
    let has_properties = object.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty());
    if !has_properties || object.get("type").and_then(Value::as_str) != Some("object") {
        return None;
    }
    let mut tool = object.clone();
    tool.remove("$schema");
    Some(tool)
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// The tools of every workflow of the catalog, leaving out names `taken` by other tools.
pub(crate) async fn workflow_tools(client: &Client, taken: impl Fn(&str) -> bool) -> crate::Result<Vec<(Tool, Route)>> {
    let input = json!({"type": "string", "description": "The input as JSON text", "default": "null"});
    let execution_id = json!({"type": "string", "description": "ID of the execution"});
    let mut tools = Vec::new();
    for info in client.workflows().await? {
        let wf = info.name().to_string();
        let schema = info.json().get("input_schema").and_then(typed_schema).map(|s| Arc::new(Value::Object(s)));
        for asynchronous in [false, true] {
            let suffix = if asynchronous { "_async" } else { "" };
            let (parameters, how) = match &schema {
                Some(s) => (object((**s).clone()), "typed parameters"),
                None => (object(json!({"type": "object", "properties": {"input": input}})), "`input` as JSON text"),
            };
            let description = if asynchronous {
                format!(
                    "Run the {wf} workflow ({how}) and return at once with its execution ID (check it with status_{wf})."
                )
            } else {
                format!("Run the {wf} workflow ({how}) and wait until it finishes or pauses.")
            };
            let run = Route { workflow: wf.clone(), action: Action::Run { asynchronous, schema: schema.clone() } };
            tools.push((Tool::new(format!("{wf}{suffix}"), description, parameters), run));
            let resume = object(json!({
                "type": "object",
                "properties": {"execution_id": execution_id, "input": input},
                "required": ["execution_id"],
            }));
            let description = format!(
                "Resume a paused {wf} execution with `input` (JSON text){}.",
                if asynchronous { ", returning at once" } else { "" }
            );
            let route = Route { workflow: wf.clone(), action: Action::Resume { asynchronous } };
            tools.push((Tool::new(format!("resume_{wf}{suffix}"), description, resume), route));
        }
        let status = object(
            json!({"type": "object", "properties": {"execution_id": execution_id}, "required": ["execution_id"]}),
        );
        let route = Route { workflow: wf.clone(), action: Action::Status };
        tools
            .push((Tool::new(format!("status_{wf}"), format!("Check the status of a {wf} execution."), status), route));
    }
    tools.retain(|(tool, _)| {
        let keep = is_tool_name(&tool.name) && !taken(&tool.name);
        if !keep {
            tracing::warn!(tool = %tool.name, "a workflow's tool is left out: its name is taken or not a valid tool name");
        }
        keep
    });
    Ok(tools)
}

/// A string argument, or a failure naming it.
fn text_argument<'a>(arguments: &'a JsonObject, name: &str, default: Option<&'a str>) -> Result<&'a str, String> {
    match arguments.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => default.ok_or_else(|| format!("argument `{name}`: missing (required)")),
        Some(other) => Err(format!("argument `{name}`: expected a string, got {other}")),
    }
}

/// The short answer of a workflow's tool: id, state, output, and what to do next.
fn short(workflow: &str, summary: &Value, asynchronous: bool) -> Answer {
    let id = summary.get("execution_id").cloned().unwrap_or(Value::Null);
    let state = summary.get("state").cloned().unwrap_or(Value::Null);
    let mut answer =
        json!({ "execution_id": id, "state": state, "output": summary.get("output").cloned().unwrap_or(Value::Null) });
    let message = match (state.as_str(), id.as_str()) {
        (Some("PAUSED"), Some(id)) => {
            Some(format!("Use resume_{workflow}(execution_id='{id}', input='...') to continue."))
        }
        (_, Some(id)) if asynchronous => Some(format!("Use status_{workflow}(execution_id='{id}') to check progress.")),
        _ => None,
    };
    if let (Some(message), Some(map)) = (message, answer.as_object_mut()) {
        map.insert("message".to_string(), Value::String(message));
    }
    if let Some(error) = summary.get("error").filter(|e| !e.is_null())
        && let Some(map) = answer.as_object_mut()
    {
        map.insert("error".to_string(), error.clone());
    }
    ok(answer)
}

impl FluxTools {
    /// Calls the workflow tool `route` with `arguments`.
    pub(crate) async fn call_workflow_tool(&self, route: &Route, arguments: JsonObject) -> Answer {
        let client = &self.client;
        let workflow = client.workflow::<Value, Value>(&route.workflow);
        let outcome = match &route.action {
            Action::Run { asynchronous, schema } => {
                let input = match schema {
                    Some(schema) => {
                        let input = Value::Object(arguments);
                        if let Err(reason) = validate(schema, &input) {
                            return fail(format!(
                                "{reason} (the parameters of `{}` follow its input's JSON Schema)",
                                route.workflow
                            ));
                        }
                        input
                    }
                    None => {
                        match text_argument(&arguments, "input", Some("null")).and_then(|t| parse_input("input", t)) {
                            Ok(input) => input,
                            Err(reason) => return fail(reason),
                        }
                    }
                };
                let run = if *asynchronous { workflow.start(&input).await } else { workflow.run(&input).await };
                run.map(|status| (status, *asynchronous))
            }
            Action::Resume { asynchronous } => {
                let parsed = text_argument(&arguments, "execution_id", None).and_then(|id| {
                    let input =
                        text_argument(&arguments, "input", Some("null")).and_then(|t| parse_input("input", t))?;
                    Ok((id.to_string(), input))
                });
                let (id, input) = match parsed {
                    Ok(parsed) => parsed,
                    Err(reason) => return fail(reason),
                };
                let resumed = if *asynchronous {
                    workflow.resume_async(&id, &input).await
                } else {
                    workflow.resume(&id, &input).await
                };
                resumed.map(|status| (status, *asynchronous))
            }
            Action::Status => {
                let id = match text_argument(&arguments, "execution_id", None) {
                    Ok(id) => id.to_string(),
                    Err(reason) => return fail(reason),
                };
                workflow.status(&id).await.map(|status| (status, false))
            }
        };
        match outcome {
            Ok((status, asynchronous)) => short(&route.workflow, status.summary(), asynchronous),
            Err(e) => failed(&e, client.url()),
        }
    }
}
