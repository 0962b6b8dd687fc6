//! `flux start mcp`: an MCP server over a flux server's API, for AI assistants.

use clap::Args;

use crate::cli::GlobalOptions;
use crate::error::CliError;

/// `flux start mcp` options (`--server-url` and `--admin-token` are the global ones).
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The host to listen on with streamable-http [default: FLUX_MCP__HOST, flux.toml, or localhost]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The port to listen on with streamable-http [default: FLUX_MCP__PORT, flux.toml, or 8080]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// How assistants connect: stdio, streamable-http (at /mcp) or sse (not supported by rmcp 3:
    /// use streamable-http) [default: FLUX_MCP__TRANSPORT, flux.toml, or streamable-http]
    #[arg(long, value_name = "TRANSPORT", value_parser = parse_transport)]
    pub transport: Option<flux::McpTransport>,
    /// The name the MCP server gives assistants [default: FLUX_MCP__NAME, flux.toml, or Flux]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

fn parse_transport(text: &str) -> Result<flux::McpTransport, String> {
    text.parse().map_err(|e: flux::Error| e.to_string())
}

/// Shown after `flux start mcp --help`.
pub const MCP_HELP: &str = "\
The flux server is --server-url [default: FLUX_MCP__SERVER_URL, flux.toml [flux.mcp] server_url,
or http://localhost:8000]; --admin-token (FLUX_SECURITY__ADMIN_TOKEN) lets list_workers and
get_worker read the server's workers.

An assistant's configuration (Claude Desktop and other `mcpServers` clients):
  {\"mcpServers\": {\"flux\": {\"command\": \"flux\",
     \"args\": [\"start\", \"mcp\", \"--transport\", \"stdio\", \"--server-url\", \"http://localhost:8000\"]}}}
or, with `flux start mcp` running: {\"mcpServers\": {\"flux\": {\"url\": \"http://localhost:8080/mcp\"}}}";

/// Runs the MCP server until the assistant disconnects (stdio) or Ctrl-C (streamable-http).
pub async fn start_mcp(global: &GlobalOptions, args: McpArgs) -> Result<(), CliError> {
    let config = flux::Config::load()?;
    let mut mcp = config.mcp.clone();
    if let Some(url) = &global.server_url {
        mcp.server_url = url.clone();
    }
    if let Some(host) = args.host {
        mcp.host = host;
    }
    if let Some(port) = args.port {
        mcp.port = port;
    }
    if let Some(transport) = args.transport {
        mcp.transport = transport;
    }
    if let Some(name) = args.name {
        mcp.name = name;
    }
    let admin_token = global.admin_token.clone().or(config.admin_token.clone());
    let server = flux::mcp::server::McpServer::from_config(&mcp, admin_token.as_deref())?;
    if mcp.transport == flux::McpTransport::StreamableHttp {
        // Standard output is the protocol's with stdio; with HTTP it says where to connect.
        tracing::info!(server_url = %mcp.server_url, "MCP server for the flux server");
        eprintln!("flux MCP server `{}` for {} on http://{}:{}/mcp", mcp.name, mcp.server_url, mcp.host, mcp.port);
    }
    server.serve(&mcp).await.map_err(|e| CliError::msg(format!("cannot serve MCP: {e}")))
}
