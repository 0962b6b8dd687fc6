//! The tools an agent offers its model: tasks (`my_task::tool()`), functions recorded as tasks
//! ([`Tool::from_fn`]), MCP tool sets ([`Tool::mcp`]) and other agents
//! ([`Agent::as_tool`](super::Agent::as_tool)).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::message::ToolDefinition;
use crate::error::{Error, ErrorKind, Result};
use crate::task::{Args, BoxFuture, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};

/// Makes one call of a tool: given the name the call is recorded under and the model's
/// arguments, the future of its output. Made by generated code and by [`Tool`]'s constructors.
pub type ToolFn = Arc<dyn Fn(String, Value) -> BoxFuture<Result<Value>> + Send + Sync>;

/// A tool an agent offers its model. Cheap to clone.
///
/// Every call the model makes is a recorded task: named after the tool on the first turn of
/// tool calls, `{tool}_{turn}` on later turns (SPEC §15), so a replay runs no finished tool.
#[derive(Clone)]
pub struct Tool {
    definition: Arc<ToolDefinition>,
    read_only: bool,
    requires_approval: bool,
    run: ToolFn,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.definition.name)
            .field("read_only", &self.read_only)
            .field("requires_approval", &self.requires_approval)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool made of a call that records itself (a task call): what generated code and the
    /// other constructors build on.
    pub fn from_recorded(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        run: ToolFn,
    ) -> Tool {
        let definition = ToolDefinition { name: name.into(), description: description.into(), parameters };
        Tool { definition: Arc::new(definition), read_only: false, requires_approval: false, run }
    }

    /// A tool that runs `f` with the model's arguments (a JSON object), recorded as a task
    /// named after the tool whose arguments are the model's and whose output is `f`'s.
    ///
    /// ```
    /// use flux::ai::Tool;
    /// let clock = Tool::from_fn(
    ///     "utc_offset",
    ///     "The UTC offset of a city, in hours.",
    ///     serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ///     |args| async move { Ok(serde_json::json!(if args["city"] == "Paris" { 1 } else { 0 })) },
    /// );
    /// assert_eq!(clock.name(), "utc_offset");
    /// ```
    pub fn from_fn<F, Fut>(name: impl Into<String>, description: impl Into<String>, parameters: Value, f: F) -> Tool
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let name = name.into();
        let declared: Cow<'static, str> = Cow::Owned(name.clone());
        let f = Arc::new(f);
        let run: ToolFn = Arc::new(move |task: String, arguments: Value| {
            let call = TaskCall::begin(declared.clone(), || (task.as_str(), Args::new(1).arg(&arguments)));
            let f = f.clone();
            let mut first = Some(arguments);
            Box::pin(async move {
                let attempt = move |info: &Call<'_>| {
                    let arguments = match first.take() {
                        Some(arguments) => arguments,
                        None => crate::task::ArgsReader::new(info.args, 1)?.read::<Value>()?,
                    };
                    Ok(f(arguments))
                };
                let handlers = Handlers { fallback: None::<NoHandler<Value>>, rollback: None::<NoHandler<()>> };
                call.run(codec::<Value>(), &TaskOptions::new(), attempt, handlers).await
            })
        });
        Tool::from_recorded(name, description, parameters, run)
    }

    /// The tools of an MCP server (from [`McpClient::discover`](crate::mcp::McpClient::discover)):
    /// each call is the MCP client's tool call, recorded under the tool's name.
    #[cfg(feature = "mcp")]
    pub fn mcp(tools: &crate::mcp::ToolSet) -> Vec<Tool> {
        tools
            .specs()
            .iter()
            .map(|spec| {
                let client = tools.client().clone();
                let tool_name = spec.name.clone();
                let run: ToolFn = Arc::new(move |task: String, arguments: Value| {
                    let call = client.call_recorded_as(task, &tool_name, arguments);
                    Box::pin(async move {
                        let output = call.await?;
                        Ok(match output.structured {
                            Some(structured) => structured,
                            None => Value::String(output.text()),
                        })
                    })
                });
                Tool::from_recorded(spec.name.clone(), spec.description.clone(), spec.input_schema.clone(), run)
            })
            .collect()
    }

    /// Marks the tool as only reading: the model's calls of read-only tools in one turn run
    /// concurrently, where every other call runs alone, in the order the model gave.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Makes every call of the tool wait for a person: the workflow pauses at
    /// `approve_{call}` (its pause output an [`ApprovalRequest`](super::ApprovalRequest)) and
    /// the resume input, an [`Approval`](super::Approval), approves or rejects the call; a
    /// rejection goes back to the model as the tool's answer.
    pub fn requires_approval(mut self, on: bool) -> Self {
        self.requires_approval = on;
        self
    }

    /// The name the model calls it by.
    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// Its name, description and argument schema, as the model sees them.
    pub fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    /// Whether its calls may run concurrently with other read-only calls.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether its calls wait for a person's approval.
    pub fn needs_approval(&self) -> bool {
        self.requires_approval
    }

    /// Starts a call recorded as `task` (the call begins now: its id follows call order).
    pub(crate) fn start(&self, task: String, arguments: Value) -> BoxFuture<Result<Value>> {
        (self.run)(task, arguments)
    }
}

/// The model's arguments of a task tool, read one by one (generated code).
#[doc(hidden)]
pub struct ToolArgs {
    tool: &'static str,
    map: serde_json::Map<String, Value>,
}

impl ToolArgs {
    /// The arguments `value` of the tool `tool`: an object (or `null` for none).
    pub fn new(tool: &'static str, value: Value) -> Result<ToolArgs> {
        match value {
            Value::Object(map) => Ok(ToolArgs { tool, map }),
            Value::Null => Ok(ToolArgs { tool, map: serde_json::Map::new() }),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the arguments of tool `{tool}` must be a JSON object, not `{other}`"),
            )
            .into_terminal()),
        }
    }

    /// Takes the argument `name` (absent reads as `null`, which fits an `Option`).
    pub fn take<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Result<T> {
        let value = self.map.remove(name).unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, format!("argument `{name}` of tool `{}`: {e}", self.tool))
                .into_terminal()
        })
    }
}

/// A task's output as the model's tool result.
#[doc(hidden)]
pub fn to_tool_value<T: serde::Serialize>(tool: &str, value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorKind::Encode, format!("the output of tool `{tool}` is not JSON: {e}")))
}

/// The JSON Schema of a tool's arguments: an object with one property per argument.
#[doc(hidden)]
pub fn object_schema(properties: Vec<(&'static str, Value)>) -> Value {
    let required: Vec<Value> = properties
        .iter()
        .filter(|(_, schema)| !accepts_null(schema))
        .map(|(name, _)| Value::String((*name).to_string()))
        .collect();
    let properties: serde_json::Map<String, Value> =
        properties.into_iter().map(|(name, schema)| (name.to_string(), schema)).collect();
    serde_json::json!({"type": "object", "properties": properties, "required": required})
}

/// Whether a schema lets the value be `null` (an `Option` argument, which may be left out).
fn accepts_null(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        Some(Value::String(t)) => t == "null",
        _ => schema.get("anyOf").and_then(Value::as_array).is_some_and(|alts| alts.iter().any(accepts_null)),
    }
}

#[doc(hidden)]
/// The JSON Schema of a type, inlined (no `$ref`s: models read a schema best whole) and without
/// the `$schema` key.
pub fn inline_schema<T: schemars::JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = serde_json::to_value(schema).unwrap_or(Value::Bool(true));
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
    }
    value
}

/// A task tool's description: its doc comment, lines trimmed.
#[doc(hidden)]
pub fn doc_text(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_arguments_are_not_required() {
        let schema = object_schema(vec![
            ("query", serde_json::json!({"type": "string"})),
            ("limit", serde_json::json!({"type": ["integer", "null"]})),
        ]);
        assert_eq!(schema["required"], serde_json::json!(["query"]));
        let mut args = ToolArgs::new("search", serde_json::json!({"query": "rust"})).unwrap();
        assert_eq!(args.take::<String>("query").unwrap(), "rust");
        assert_eq!(args.take::<Option<u32>>("limit").unwrap(), None);
        let e = args.take::<u32>("page").unwrap_err();
        assert!(e.message().contains("argument `page` of tool `search`"), "{e}");
        assert!(ToolArgs::new("search", serde_json::json!([1])).is_err());
        assert_eq!(doc_text(&[" Searches.", " More."]), "Searches.\nMore.");
    }
}
