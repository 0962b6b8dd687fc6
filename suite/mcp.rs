//! An MCP server for the tests, examples and benchmarks of the MCP client task, written with
//! rmcp's server side and served over streamable HTTP on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;

/// The arguments of `add`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AddArgs {
    /// The first number.
    pub a: i64,
    /// The second number.
    pub b: i64,
}

/// The arguments of `fail`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct FailArgs {
    /// What the failure says.
    pub reason: String,
}

/// What `greet` asks the user for.
#[derive(Debug, serde::Serialize, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct Name {
    /// The user's name.
    pub name: String,
}
rmcp::elicit_safe!(Name);

/// The test server: `add`, `fail` (always `isError`) and `greet` (asks for a name by
/// elicitation). Counts the tool calls it answers.
#[derive(Clone)]
pub struct TestServer {
    calls: Arc<AtomicUsize>,
}

#[tool_router]
impl TestServer {
    fn new(calls: Arc<AtomicUsize>) -> Self {
        TestServer { calls }
    }

    #[tool(description = "Adds two integers")]
    async fn add(&self, Parameters(args): Parameters<AddArgs>) -> Result<CallToolResult, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(CallToolResult::success(vec![ContentBlock::text((args.a + args.b).to_string())]))
    }

    #[tool(description = "Always fails, saying why")]
    async fn fail(&self, Parameters(args): Parameters<FailArgs>) -> Result<CallToolResult, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(CallToolResult::error(vec![ContentBlock::text(args.reason)]))
    }

    #[tool(description = "Greets the user, asking for their name")]
    async fn greet(&self, context: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = match context.peer.elicit::<Name>("What is your name?").await {
            Ok(Some(name)) => name.name,
            Ok(None) => "nobody".to_string(),
            Err(e) => return Ok(CallToolResult::error(vec![ContentBlock::text(format!("no answer: {e}"))])),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("hello, {name}"))]))
    }
}

#[tool_handler]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A running test server: its URL, how many tool calls it answered, and how to stop it.
pub struct Running {
    /// `http://127.0.0.1:{port}/mcp`.
    pub url: String,
    /// The tool calls answered so far.
    pub calls: Arc<AtomicUsize>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and waits until it no longer listens.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts the test server on a free loopback port.
pub async fn serve() -> std::io::Result<Running> {
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let made = calls.clone();
    let service = StreamableHttpService::new(
        move || Ok(TestServer::new(made.clone())),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(Running { url, calls, stop, task })
}
