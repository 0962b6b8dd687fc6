//! The MCP client task: an MCP server's tools, called from a workflow as recorded tasks.
//!
//! ```no_run
//! use flux::prelude::*;
//!
//! #[flux::workflow]
//! async fn research(ctx: ExecutionContext<String>) -> flux::Result<String> {
//!     let docs = flux::mcp::client("http://127.0.0.1:8931/mcp")
//!         .name("docs")
//!         .bearer("s3cret")
//!         .options(flux::TaskOptions::new().retry_max_attempts(2).timeout(std::time::Duration::from_secs(30)));
//!     // The task `mcp_docs_discover`: its recorded output rebuilds the tool set on replay.
//!     let tools = docs.discover().await?;
//!     // The task `mcp_docs_search`.
//!     let found = tools.call("search", serde_json::json!({"query": ctx.input()})).await?;
//!     Ok(found.text())
//! }
//! ```
//!
//! - **Lazy.** Building a client connects to nothing; the first attempt of a discovery or a tool
//!   call that has to run opens the session (within the connect timeout, 10 s by default), and
//!   the calls after it share it. A replay answers recorded calls from the log, so a workflow
//!   whose calls are all recorded never connects. A session whose transport breaks is dropped and
//!   the next attempt opens another.
//! - **Tasks.** `discover()` is the task `mcp_{server}_discover` (output: the [`ToolSpec`]s);
//!   each tool call is the task `mcp_{server}_{tool}` with the tool's name and arguments as its
//!   arguments (output: the [`ToolOutput`]). They go through the task call path, so their ids,
//!   events, retries, timeouts, cache and replay are a task's. The client's
//!   [`options`](McpClient::options) apply to tool calls; discovery takes their retries and
//!   timeout but never the cache (a cached tool set would never see new tools).
//! - **Failures.** A result that says it is an error (`isError`) fails the task with a
//!   [`ToolError`] carrying the tool's text, terminal unless
//!   [`retry_tool_errors`](McpClient::retry_tool_errors). An unreachable server, a transport that
//!   broke and a timeout are retryable; a request the server refuses as wrong (unknown tool, bad
//!   arguments) is terminal.
//! - **Elicitation.** A server that asks the user for input during a tool call pauses the
//!   workflow at `elicitation_{tool}`, with an [`ElicitationRequest`] as the pause's output;
//!   resume it with an [`ElicitationAnswer`]. The tool call is then made again, and when the
//!   server asks again the answer comes from the log (docs/design.md §17).
//! - **Names.** The server's name is `name(..)`, by default the URL's host (or the command's
//!   file name); in task names every character other than ASCII letters, digits and `_` becomes
//!   `_`.
//! - **Transports.** [`client`] speaks streamable HTTP (plain `http://`: flux builds its HTTP
//!   client without TLS); [`client_stdio`] starts a command and speaks MCP on its stdin and
//!   stdout.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::task::{Args, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};

mod connection;
mod tools;

use connection::{Connector, Transport};
pub use tools::{
    ElicitationAction, ElicitationAnswer, ElicitationRequest, Tool, ToolError, ToolOutput, ToolSet, ToolSpec,
};

/// How long opening a session may take, unless [`McpClient::connect_timeout`] says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of an MCP server over streamable HTTP at `url` (`http://host:port/mcp`).
///
/// ```
/// let client = flux::mcp::client("http://127.0.0.1:8931/mcp").name("docs");
/// assert_eq!(client.server_name(), "docs");
/// assert_eq!(flux::mcp::client("http://search.example:80/mcp").server_name(), "search_example");
/// ```
pub fn client(url: impl Into<String>) -> McpClient {
    let url = url.into();
    let name = host_of(&url).map(sanitize).unwrap_or_else(|| "default".to_string());
    McpClient::new(name, Transport::Http { url, bearer: None })
}

/// A client of an MCP server run as a child process (`program` with [`arg`](McpClient::arg)s),
/// speaking MCP on its stdin and stdout. The process starts with the session (lazily) and is
/// killed when the session ends.
///
/// ```
/// let client = flux::mcp::client_stdio("node").arg("server.js").arg("stdio");
/// assert_eq!(client.server_name(), "node");
/// ```
pub fn client_stdio(program: impl Into<String>) -> McpClient {
    let program = program.into();
    let stem = std::path::Path::new(&program).file_stem().and_then(|s| s.to_str()).map(sanitize);
    let name = stem.filter(|s| !s.is_empty()).unwrap_or_else(|| "default".to_string());
    McpClient::new(name, Transport::Stdio { program, args: Vec::new() })
}

/// The host of an `http(s)://` URL, without user info or port.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

/// A name made fit for a task name: ASCII letters, digits and `_`.
fn sanitize(name: &str) -> String {
    let sanitized: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if sanitized.is_empty() { "_unknown".to_string() } else { sanitized }
}

#[derive(Clone, Debug)]
struct Settings {
    name: String,
    transport: Transport,
    connect_timeout: Duration,
    options: TaskOptions,
    retry_tool_errors: bool,
}

/// A client of one MCP server, whose discovery and tool calls are tasks. Made by [`client`] or
/// [`client_stdio`]; cheap to clone (clones share the session); see [the module](self).
#[derive(Clone)]
pub struct McpClient {
    settings: Arc<Settings>,
    connector: Arc<Connector>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bearer token stays out of logs.
        f.debug_struct("McpClient").field("name", &self.settings.name).finish_non_exhaustive()
    }
}

impl McpClient {
    fn new(name: String, transport: Transport) -> Self {
        let settings = Settings {
            name,
            transport,
            connect_timeout: CONNECT_TIMEOUT,
            options: TaskOptions::new(),
            retry_tool_errors: false,
        };
        McpClient { settings: Arc::new(settings), connector: Arc::default() }
    }

    /// Changes a setting. A client whose settings change gets a session of its own.
    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self.connector = Arc::default();
        self
    }

    /// Names the server in task names (`mcp_{name}_{tool}`); characters other than ASCII
    /// letters, digits and `_` become `_`.
    pub fn name(self, name: &str) -> Self {
        let name = sanitize(name);
        self.with(|s| s.name = name)
    }

    /// Sends `Authorization: Bearer {token}` with every request (streamable HTTP only). The
    /// token is not part of any task's arguments, so it is never recorded.
    pub fn bearer(self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.with(|s| {
            if let Transport::Http { bearer, .. } = &mut s.transport {
                *bearer = Some(token);
            }
        })
    }

    /// Adds an argument to the command of a [`client_stdio`] (ignored over HTTP).
    pub fn arg(self, arg: impl Into<String>) -> Self {
        let arg = arg.into();
        self.with(|s| {
            if let Transport::Stdio { args, .. } = &mut s.transport {
                args.push(arg);
            }
        })
    }

    /// How long opening a session may take (10 s by default); past it the attempt fails
    /// (retryably).
    pub fn connect_timeout(self, limit: Duration) -> Self {
        self.with(|s| s.connect_timeout = limit)
    }

    /// The task options of tool calls (retries, timeout per attempt, cache); discovery takes
    /// the retries and the timeout.
    pub fn options(self, options: TaskOptions) -> Self {
        self.with(|s| s.options = options)
    }

    /// Retries a tool's own failures (`isError`) as the options say, instead of failing for good.
    pub fn retry_tool_errors(self, on: bool) -> Self {
        self.with(|s| s.retry_tool_errors = on)
    }

    /// The server's name, as it appears in task names.
    pub fn server_name(&self) -> &str {
        &self.settings.name
    }

    /// How many sessions this client (and its clones) opened: 0 for a replay answered from
    /// the log.
    pub fn connections(&self) -> u64 {
        self.connector.opened()
    }

    /// Ends the open session, if any (a later call opens another).
    pub async fn close(&self) {
        self.connector.close().await;
    }

    /// Lists the server's tools: the task `mcp_{server}_discover`, whose recorded output
    /// rebuilds the [`ToolSet`] on replay without connecting.
    pub async fn discover(&self) -> Result<ToolSet> {
        let task = format!("mcp_{}_discover", self.settings.name);
        let call = TaskCall::begin(Cow::Owned(task.clone()), || (task.as_str(), Args::new(0)));
        let options = self.settings.options.clone().cache(false);
        let this = self.clone();
        let attempt = move |_: &Call<'_>| {
            let this = this.clone();
            // Boxed, as every attempt here: rmcp's futures are large, and a workflow's future
            // holds the attempt it waits on.
            Ok(Box::pin(async move { this.list_tools().await }))
        };
        let handlers = Handlers { fallback: None::<NoHandler<Vec<ToolSpec>>>, rollback: None::<NoHandler<()>> };
        let specs = call.run(codec::<Vec<ToolSpec>>(), &options, attempt, handlers).await?;
        Ok(ToolSet { client: self.clone(), specs: specs.into() })
    }

    /// Calls the tool `tool` with `arguments` (a JSON object, or `null` for none): the task
    /// `mcp_{server}_{tool}`, whose arguments are the tool's name and `arguments`. Arguments that
    /// are not an object are a terminal error, and record nothing.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<ToolOutput> {
        let task = format!("mcp_{}_{}", self.settings.name, sanitize(tool));
        self.call_recorded_as(task, tool, arguments).await
    }

    /// Calls the tool `tool` as [`call`](McpClient::call) does, recorded as the task `task`
    /// (an agent's tool calls are named after the tool). The call begins now, so its id
    /// follows call order.
    pub(crate) fn call_recorded_as(
        &self,
        task: String,
        tool: &str,
        arguments: Value,
    ) -> impl std::future::Future<Output = Result<ToolOutput>> + Send + 'static {
        let arguments = match arguments {
            Value::Object(map) => Some(map),
            Value::Null => None,
            other => {
                let error = Error::new(
                    ErrorKind::InvalidInput,
                    format!("the arguments of MCP tool `{tool}` must be a JSON object, not `{other}`"),
                )
                .into_terminal();
                return futures::future::Either::Left(std::future::ready(Err(error)));
            }
        };
        let call =
            TaskCall::begin(Cow::Owned(task.clone()), || (task.as_str(), Args::new(2).arg_str(tool).arg(&arguments)));
        let this = self.clone();
        let tool = tool.to_string();
        let attempt = move |_: &Call<'_>| {
            let (this, tool, arguments) = (this.clone(), tool.clone(), arguments.clone());
            Ok(Box::pin(async move { this.call_once(&tool, arguments).await }))
        };
        let handlers = Handlers { fallback: None::<NoHandler<ToolOutput>>, rollback: None::<NoHandler<()>> };
        let options = self.settings.options.clone();
        futures::future::Either::Right(
            async move { call.run(codec::<ToolOutput>(), &options, attempt, handlers).await },
        )
    }

    /// One attempt of a discovery.
    async fn list_tools(&self) -> Result<Vec<ToolSpec>> {
        let s = &self.settings;
        let connection = self.connector.get(&s.name, &s.transport, s.connect_timeout).await?;
        match connection.service.list_all_tools().await {
            Ok(tools) => Ok(tools
                .into_iter()
                .map(|tool| {
                    let description = tool.description.as_deref().unwrap_or_default().to_string();
                    ToolSpec::new(tool.name, description, Value::Object((*tool.input_schema).clone()))
                })
                .collect()),
            Err(e) => Err(self.failed(&connection, "the list of tools", e).await),
        }
    }

    /// One attempt of a tool call: elicitation requests that come while it waits pause the
    /// workflow (or, on the replay after the resume, are answered from the log).
    async fn call_once(&self, tool: &str, arguments: Option<serde_json::Map<String, Value>>) -> Result<ToolOutput> {
        let s = &self.settings;
        let connection = self.connector.get(&s.name, &s.transport, s.connect_timeout).await?;
        let (sender, mut requests) = mpsc::unbounded_channel();
        let _registered = connection.register(sender);
        let mut params = rmcp::model::CallToolRequestParams::new(tool.to_string());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let call = connection.service.call_tool(params);
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                result = &mut call => break result,
                Some((request, reply)) = requests.recv() => {
                    let answer = self.elicit(tool, request).await?;
                    // A server that stopped waiting for the answer needs none.
                    let _ = reply.send(answer);
                }
            }
        };
        let result = match result {
            Ok(result) => result,
            Err(e) => return Err(self.failed(&connection, &format!("the call of tool `{tool}`"), e).await),
        };
        let output = ToolOutput {
            content: result.content.iter().filter_map(|block| serde_json::to_value(block).ok()).collect(),
            structured: result.structured_content,
        };
        if result.is_error == Some(true) {
            let error = ToolError { server: s.name.clone(), tool: tool.to_string(), message: output.failure_text() };
            return Err(error.into_error(!s.retry_tool_errors));
        }
        Ok(output)
    }

    /// The answer to an elicitation request: the resume input of the pause `elicitation_{tool}`.
    async fn elicit(&self, tool: &str, request: rmcp::model::ElicitRequestParams) -> Result<rmcp::model::ElicitResult> {
        use rmcp::model::ElicitRequestParams as Params;
        let server = self.settings.name.clone();
        let request = match request {
            Params::FormElicitationParams { message, requested_schema, .. } => ElicitationRequest {
                server,
                tool: tool.to_string(),
                mode: "form".to_string(),
                message,
                requested_schema: serde_json::to_value(&requested_schema).ok(),
                url: None,
                elicitation_id: None,
            },
            Params::UrlElicitationParams { message, url, elicitation_id, .. } => {
                // A page for a person to open, never another scheme a server could abuse.
                if !(url.to_ascii_lowercase().starts_with("http://")
                    || url.to_ascii_lowercase().starts_with("https://"))
                {
                    tracing::warn!(server, tool, "an elicitation asked to open a URL that is not http(s): declined");
                    return Ok(rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Decline));
                }
                ElicitationRequest {
                    server,
                    tool: tool.to_string(),
                    mode: "url".to_string(),
                    message,
                    requested_schema: None,
                    url: Some(url),
                    elicitation_id: Some(elicitation_id).filter(|id| !id.is_empty()),
                }
            }
            _ => {
                tracing::warn!(server, tool, "an elicitation of a kind flux does not know: declined");
                return Ok(rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Decline));
            }
        };
        let answer: ElicitationAnswer =
            crate::builtins::pause_with(&format!("elicitation_{}", sanitize(tool)), request).await?;
        let action = match answer.action {
            ElicitationAction::Accept => rmcp::model::ElicitationAction::Accept,
            ElicitationAction::Decline => rmcp::model::ElicitationAction::Decline,
            ElicitationAction::Cancel => rmcp::model::ElicitationAction::Cancel,
        };
        let accepted = answer.action == ElicitationAction::Accept;
        let mut result = rmcp::model::ElicitResult::new(action);
        if let Some(content) = answer.content.filter(|_| accepted) {
            result = result.with_content(content);
        }
        Ok(result)
    }

    /// A failed request as a flux error; a broken session is dropped first.
    async fn failed(
        &self,
        connection: &Arc<connection::Connection>,
        what: &str,
        error: rmcp::service::ServiceError,
    ) -> Error {
        let (error, broken) = connection::request_error(&self.settings.name, what, error);
        if broken {
            self.connector.discard(connection).await;
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_host_and_are_sanitized() {
        assert_eq!(client("http://127.0.0.1:9000/mcp").server_name(), "127_0_0_1");
        assert_eq!(client("https://user@tools.example.com/mcp").server_name(), "tools_example_com");
        assert_eq!(client("http://[::1]:80/").server_name(), "__1");
        assert_eq!(client("not a url").server_name(), "default");
        assert_eq!(client("http://x/").name("my-server").server_name(), "my_server");
        assert_eq!(client_stdio("/usr/bin/mcp-server.sh").server_name(), "mcp_server");
        assert_eq!(sanitize("get-sum"), "get_sum");
    }

    #[test]
    fn a_changed_client_gets_a_session_of_its_own() {
        let a = client("http://127.0.0.1:1/mcp");
        let b = a.clone().bearer("t");
        assert!(!Arc::ptr_eq(&a.connector, &b.connector));
        assert!(format!("{b:?}").contains("127_0_0_1") && !format!("{b:?}").contains("\"t\""));
    }
}
