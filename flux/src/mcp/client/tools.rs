//! What the client task records and hands back: tool descriptions, tool sets, tool outputs,
//! the failure of a tool, and the two sides of an elicitation.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::McpClient;
use crate::error::{Error, ErrorKind, Result};

/// A tool as its server describes it: what an AI agent needs to offer it to a model. This is the
/// recorded output of `mcp_{server}_discover`, one per tool.
///
/// ```
/// let spec = flux::mcp::ToolSpec::new("add", "Adds two numbers", serde_json::json!({"type": "object"}));
/// assert_eq!(spec.name, "add");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolSpec {
    /// The tool's name on its server (what a call names).
    pub name: String,
    /// What the tool does, for a model or a person (empty when the server gives none).
    pub description: String,
    /// The JSON Schema of the tool's arguments (an object schema).
    pub input_schema: Value,
}

impl ToolSpec {
    /// A tool description.
    pub fn new(name: impl Into<String>, description: impl Into<String>, input_schema: Value) -> Self {
        ToolSpec { name: name.into(), description: description.into(), input_schema }
    }
}

/// What a tool answered: its content blocks (as the protocol's JSON: `{"type": "text", "text":
/// ..}`, images, resources, ..) and its structured content, if it gave one. This is the recorded
/// output of a `mcp_{server}_{tool}` task.
///
/// ```
/// let output = flux::mcp::ToolOutput::from_text("42");
/// assert_eq!(output.text(), "42");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolOutput {
    /// The content blocks, in order.
    pub content: Vec<Value>,
    /// The structured result, when the tool gives one.
    pub structured: Option<Value>,
}

impl ToolOutput {
    /// An output of one text block.
    pub fn from_text(text: impl Into<String>) -> Self {
        ToolOutput { content: vec![serde_json::json!({"type": "text", "text": text.into()})], structured: None }
    }

    /// The text blocks of the content, joined by newlines (empty when there are none).
    pub fn text(&self) -> String {
        self.texts().collect::<Vec<_>>().join("\n")
    }

    fn texts(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter(|block| block["type"] == "text").filter_map(|block| block["text"].as_str())
    }

    /// The structured content, or else the text read as JSON, decoded into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let decoded = match &self.structured {
            Some(value) => serde_json::from_value(value.clone()),
            None => serde_json::from_str(&self.text()),
        };
        decoded.map_err(|e| {
            Error::new(ErrorKind::Decode, format!("a tool's output does not fit `{}`", std::any::type_name::<T>()))
                .with_cause(e.to_string())
        })
    }

    /// The failure text of a result that says it is an error: its text blocks joined by `"; "`.
    pub(super) fn failure_text(&self) -> String {
        let text = self.texts().collect::<Vec<_>>().join("; ");
        if text.is_empty() { "the tool gave no reason".to_string() } else { text }
    }
}

/// A tool said its call failed (`isError`): the failure of a `mcp_{server}_{tool}` task, with the
/// tool's text. Terminal unless the client was built with
/// [`retry_tool_errors`](McpClient::retry_tool_errors): a tool that says it failed gave its
/// answer. `error.is::<flux::mcp::ToolError>()` tells it from a transport failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolError {
    /// The server's name (the client's `name`).
    pub server: String,
    /// The tool's name.
    pub tool: String,
    /// What the tool said.
    pub message: String,
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MCP tool `{}` of server `{}` failed: {}", self.tool, self.server, self.message)
    }
}

impl std::error::Error for ToolError {}

impl ToolError {
    pub(super) fn into_error(self, terminal: bool) -> Error {
        let error =
            Error::new(ErrorKind::TaskFailed, self.to_string()).with_type_name(std::any::type_name::<ToolError>());
        if terminal { error.into_terminal() } else { error }
    }
}

/// The tools an MCP server offered, as recorded by [`McpClient::discover`]: a replay rebuilds
/// it from the log, and its calls are tasks (`mcp_{server}_{tool}`).
///
/// An AI agent layer takes [`specs`](ToolSet::specs) to describe the tools to a model and
/// [`call`](ToolSet::call) (or [`Tool::call`]) to run what the model asks for.
#[derive(Clone)]
pub struct ToolSet {
    pub(super) client: McpClient,
    pub(super) specs: Arc<[ToolSpec]>,
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSet").field("server", &self.client.server_name()).field("tools", &self.specs).finish()
    }
}

impl ToolSet {
    /// The client the tools are called through.
    pub fn client(&self) -> &McpClient {
        &self.client
    }

    /// The descriptions of the tools, in the server's order.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// The tools' names, in the server's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|spec| spec.name.as_str())
    }

    /// How many tools there are.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether the server offered no tool.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Whether the server offered a tool of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.specs.iter().any(|spec| spec.name == name)
    }

    /// The tool of this name.
    pub fn get(&self, name: &str) -> Option<Tool> {
        let spec = self.specs.iter().find(|spec| spec.name == name)?;
        Some(Tool { client: self.client.clone(), spec: spec.clone() })
    }

    /// Every tool, in the server's order.
    pub fn iter(&self) -> impl Iterator<Item = Tool> + '_ {
        self.specs.iter().map(|spec| Tool { client: self.client.clone(), spec: spec.clone() })
    }

    /// Calls the tool `name` with `arguments` (a JSON object, or `null` for none): the task
    /// `mcp_{server}_{tool}`. A name the server did not offer is a terminal error naming the
    /// tools it did, and records nothing.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<ToolOutput> {
        if !self.contains(name) {
            let offered = self.names().collect::<Vec<_>>().join(", ");
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("MCP server `{}` offers no tool `{name}` (it offers: {offered})", self.client.server_name()),
            )
            .into_terminal());
        }
        self.client.call(name, arguments).await
    }
}

/// One tool of a [`ToolSet`]: its description and a way to call it.
#[derive(Clone)]
pub struct Tool {
    client: McpClient,
    spec: ToolSpec,
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool").field("server", &self.client.server_name()).field("spec", &self.spec).finish()
    }
}

impl Tool {
    /// The tool's description.
    pub fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Calls the tool: the task `mcp_{server}_{tool}` (see [`McpClient::call`]).
    pub async fn call(&self, arguments: Value) -> Result<ToolOutput> {
        self.client.call(&self.spec.name, arguments).await
    }
}

/// What a server asked the user for in the middle of a tool call: the output of the pause
/// `elicitation_{tool}` (`execution.pause_output()`), for whoever answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ElicitationRequest {
    /// The server's name (the client's `name`).
    pub server: String,
    /// The tool whose call asked.
    pub tool: String,
    /// `"form"` (answer with content that fits `requested_schema`) or `"url"` (the user opens
    /// `url`; the answer only says whether they did).
    pub mode: String,
    /// What the server says it needs.
    pub message: String,
    /// The JSON Schema of the content asked for (form mode).
    pub requested_schema: Option<Value>,
    /// The page to open (URL mode; always `http` or `https`: flux declines any other scheme).
    pub url: Option<String>,
    /// The server's id of the request (URL mode).
    pub elicitation_id: Option<String>,
}

/// What the user decided, as the MCP protocol names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElicitationAction {
    /// Go on with this content.
    Accept,
    /// Refuse to give it; the tool may go on without it.
    Decline,
    /// Stop the whole operation.
    Cancel,
}

/// The resume input of an `elicitation_{tool}` pause: `{"action": "accept", "content": {..}}`.
///
/// ```
/// let answer = flux::mcp::ElicitationAnswer::accept(serde_json::json!({"name": "Ada"}));
/// assert_eq!(answer.action, flux::mcp::ElicitationAction::Accept);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ElicitationAnswer {
    /// The decision.
    pub action: ElicitationAction,
    /// The content given (with `accept`, in form mode).
    #[serde(default)]
    pub content: Option<Value>,
}

impl ElicitationAnswer {
    /// Accepts, giving `content`.
    pub fn accept(content: Value) -> Self {
        ElicitationAnswer { action: ElicitationAction::Accept, content: Some(content) }
    }

    /// Declines.
    pub fn decline() -> Self {
        ElicitationAnswer { action: ElicitationAction::Decline, content: None }
    }

    /// Cancels.
    pub fn cancel() -> Self {
        ElicitationAnswer { action: ElicitationAction::Cancel, content: None }
    }
}
