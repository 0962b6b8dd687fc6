//! An MCP server over a flux server's API (feature `mcp`): docs/design.md §17.
//!
//! [`McpServer`] offers the API of the flux server a [`Client`] talks to as MCP tools, with
//! the names and parameters of the Python original: `list_workflows`, `get_workflow_details`,
//! `execute_workflow_sync` / `_async`, `resume_workflow_sync` / `_async`,
//! `get_execution_status`, `cancel_execution`, `list_executions`, `get_execution`,
//! `list_workers`, `get_worker`, `health_check`, the schedule tools (`create_schedule`,
//! `list_schedules`, `get_schedule`, `update_schedule`, `pause_schedule`, `resume_schedule`,
//! `delete_schedule`, `get_schedule_history`); and, for each workflow of the catalog,
//! `{wf}`, `{wf}_async`, `resume_{wf}`, `resume_{wf}_async` and `status_{wf}`, whose run tools
//! take typed parameters when the workflow's input derives `schemars::JsonSchema`.
//!
//! Every tool answers a JSON object: `{"success": true, ...}`, or `{"success": false, "error":
//! "..."}` with `isError` set when the request cannot be done (an unknown workflow, input that
//! is not JSON or does not fit, a server that cannot be reached); protocol errors are kept for
//! protocol faults (an unknown tool, arguments that are not the tool's parameters).
//!
//! ```no_run
//! use flux::mcp::server::McpServer;
//!
//! # async fn demo() -> flux::Result<()> {
//! let client = flux::Client::new("http://127.0.0.1:8000")?.admin_token("my-admin-token");
//! // Streamable HTTP at http://127.0.0.1:8080/mcp, stateless: until Ctrl-C.
//! let running = McpServer::new(client).name("Flux").bind("127.0.0.1:8080").await?;
//! println!("MCP server at {}", running.url());
//! running.wait().await
//! # }
//! ```

mod answer;
mod schedules;
mod schema;
mod tools;
mod typed;

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::{McpConfig, McpTransport};
use crate::error::{Error, ErrorKind, Result};

/// The MCP handler: the tools over one client. Cheap to clone (one per HTTP request).
#[derive(Clone)]
pub(crate) struct FluxTools {
    client: Client,
    name: Arc<str>,
    router: Arc<ToolRouter<FluxTools>>,
}

const INSTRUCTIONS: &str = "Tools of a Flux durable-workflow server. list_workflows shows what can run; \
execute_workflow_sync runs a workflow and waits, execute_workflow_async starts it and returns an execution_id \
to poll with get_execution_status; a PAUSED execution continues with resume_workflow_sync. input_data is JSON \
text. Each workflow also has its own tools ({workflow}, {workflow}_async, resume_{workflow}, status_{workflow}). \
Every answer has `success`; when it is false, `error` says what to fix.";

impl ServerHandler for FluxTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(self.name.to_string(), env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        let mut tools = self.router.list_all();
        match typed::workflow_tools(&self.client, |name| self.router.has_route(name)).await {
            Ok(more) => tools.extend(more.into_iter().map(|(tool, _)| tool)),
            // The static tools still work (health_check says what is wrong).
            Err(e) => tracing::warn!(error = %e, "cannot list the workflows' own tools"),
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        if self.router.has_route(&request.name) {
            return self.router.call(ToolCallContext::new(self, request, context)).await;
        }
        let tools = match typed::workflow_tools(&self.client, |name| self.router.has_route(name)).await {
            Ok(tools) => tools,
            Err(e) => return answer::failed(&e, self.client.url()).map(Into::into),
        };
        match tools.into_iter().find(|(tool, _)| tool.name == request.name) {
            Some((_, route)) => {
                self.call_workflow_tool(&route, request.arguments.unwrap_or_default()).await.map(Into::into)
            }
            None => Err(ErrorData::invalid_params(
                format!("no tool named `{}` (list_tools shows the tools there are)", request.name),
                None,
            )),
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router.get(name).cloned()
    }
}

/// An MCP server over the API of the flux server a [`Client`] talks to.
///
/// Serve it over stdio ([`McpServer::serve_stdio`]), over streamable HTTP at `/mcp`
/// ([`McpServer::bind`]), or mount [`McpServer::router`] in an axum application of your own.
/// Give the client the server's admin token for `list_workers` and `get_worker`.
#[derive(Clone)]
pub struct McpServer {
    tools: FluxTools,
    allowed_hosts: Option<Vec<String>>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.tools.name)
            .field("server_url", &self.tools.client.url())
            .finish_non_exhaustive()
    }
}

impl McpServer {
    /// An MCP server named `Flux` over `client`'s server.
    ///
    /// ```
    /// let client = flux::Client::new("http://127.0.0.1:8000")?;
    /// let mcp = flux::mcp::server::McpServer::new(client).name("Orders");
    /// # drop(mcp); Ok::<(), flux::Error>(())
    /// ```
    pub fn new(client: Client) -> McpServer {
        McpServer {
            tools: FluxTools { client, name: Arc::from("Flux"), router: Arc::new(FluxTools::static_router()) },
            allowed_hosts: None,
        }
    }

    /// The MCP server `[flux.mcp]` describes: its name, and a client of its `server_url`
    /// (with `admin_token`, when given, for the worker tools).
    pub fn from_config(config: &McpConfig, admin_token: Option<&str>) -> Result<McpServer> {
        let mut client = Client::new(&config.server_url)?;
        if let Some(token) = admin_token {
            client = client.admin_token(token);
        }
        Ok(McpServer::new(client).name(&config.name))
    }

    /// The name it gives assistants (default `Flux`).
    pub fn name(mut self, name: impl AsRef<str>) -> McpServer {
        self.tools.name = Arc::from(name.as_ref());
        self
    }

    /// The `Host` headers the streamable HTTP endpoint answers (`"example.com"`,
    /// `"example.com:8080"`), against DNS rebinding; an empty list answers any. By default,
    /// the loopback names and the host it was bound to ([`McpServer::bind`]), or only the
    /// loopback names ([`McpServer::router`]).
    pub fn allowed_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> McpServer {
        self.allowed_hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// The streamable HTTP service: stateless (no session, JSON answers), so any of several
    /// MCP servers behind one address can answer any request.
    pub(crate) fn http_service(
        &self,
        allowed_hosts: Vec<String>,
        cancel: CancellationToken,
    ) -> StreamableHttpService<FluxTools, LocalSessionManager> {
        let tools = self.tools.clone();
        let mut config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_cancellation_token(cancel);
        config = if allowed_hosts.is_empty() {
            config.disable_allowed_hosts()
        } else {
            config.with_allowed_hosts(allowed_hosts)
        };
        StreamableHttpService::new(move || Ok(tools.clone()), Arc::default(), config)
    }

    /// The streamable HTTP endpoint as an axum router answering at `/mcp`, to serve or nest in
    /// an application of your own (put your own authentication in front of it).
    pub fn router(&self) -> axum::Router {
        let hosts = self.allowed_hosts.clone().unwrap_or_else(loopback_hosts);
        axum::Router::new().route_service("/mcp", self.http_service(hosts, CancellationToken::new()))
    }

    /// Serves MCP on standard input and output until the assistant closes them.
    pub async fn serve_stdio(self) -> Result<()> {
        let running = self
            .tools
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::new(ErrorKind::Http, format!("the MCP session over stdio did not start: {e}")))?;
        running
            .waiting()
            .await
            .map(drop)
            .map_err(|e| Error::new(ErrorKind::Panic, format!("the MCP session over stdio failed: {e}")))
    }

    /// Listens on `addr` (port 0 picks a free port) and serves streamable HTTP at `/mcp`.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> Result<RunningMcpServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::new(ErrorKind::Config, format!("the MCP server cannot listen: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot read the listening address: {e}")))?;
        let hosts = match &self.allowed_hosts {
            Some(hosts) => hosts.clone(),
            // Listening on every interface: any name may reach it.
            None if local_addr.ip().is_unspecified() => Vec::new(),
            None => {
                let mut hosts = loopback_hosts();
                hosts.push(local_addr.ip().to_string());
                hosts
            }
        };
        let cancel = CancellationToken::new();
        let app = axum::Router::new().route_service("/mcp", self.http_service(hosts, cancel.clone()));
        let stop = cancel.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled_owned().await }).await
        });
        tracing::info!(address = %local_addr, "MCP server listening");
        Ok(RunningMcpServer { local_addr, cancel, server })
    }

    /// Serves as `config` says: `stdio`, or streamable HTTP on `host:port` until Ctrl-C; `sse`
    /// is an error (rmcp 3 no longer serves the legacy SSE transport).
    pub async fn serve(self, config: &McpConfig) -> Result<()> {
        match config.transport {
            McpTransport::Stdio => self.serve_stdio().await,
            McpTransport::StreamableHttp => {
                let running = self.bind((config.host.as_str(), config.port)).await?;
                let stop = running.cancel.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.cancel();
                });
                running.wait().await
            }
            McpTransport::Sse => Err(sse_unsupported()),
            #[allow(unreachable_patterns)]
            _ => Err(sse_unsupported()),
        }
    }
}

/// Why `--transport sse` does not start.
fn sse_unsupported() -> Error {
    Error::new(
        ErrorKind::Config,
        "the legacy MCP SSE transport is not supported (the MCP SDK flux uses, rmcp 3, dropped it): use \
         `--transport streamable-http` (clients connect to http://host:port/mcp) or `--transport stdio`",
    )
}

/// The names of the loopback interface.
fn loopback_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1", "[::1]"].into_iter().map(String::from).collect()
}

/// An MCP server listening for streamable HTTP: made by [`McpServer::bind`].
#[derive(Debug)]
pub struct RunningMcpServer {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningMcpServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its endpoint, `http://host:port/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.local_addr)
    }

    /// Stops serving and waits until it has stopped.
    pub async fn shutdown(self) -> Result<()> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until it stops (after [`RunningMcpServer::shutdown`], or an error).
    pub async fn wait(self) -> Result<()> {
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::new(ErrorKind::Http, format!("the MCP server stopped: {e}"))),
            Err(e) => Err(Error::new(ErrorKind::Panic, format!("the MCP server task failed: {e}"))),
        }
    }
}
