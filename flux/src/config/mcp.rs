//! `[flux.mcp]`: the settings of `flux start mcp`, read with the rest of [`Config`](super::Config).

use crate::error::{Error, ErrorKind, Result};

/// `[flux.mcp]`: the MCP server `flux start mcp` runs over a flux server's API (feature `mcp`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct McpConfig {
    /// The name the MCP server gives assistants (default `Flux`).
    pub name: String,
    /// The host it listens on with the streamable HTTP transport (default `localhost`).
    pub host: String,
    /// The port it listens on with the streamable HTTP transport (default 8080).
    pub port: u16,
    /// The flux server whose API it offers as tools (default `http://localhost:8000`).
    pub server_url: String,
    /// How assistants reach it (default streamable HTTP).
    pub transport: McpTransport,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            name: "Flux".to_string(),
            host: "localhost".to_string(),
            port: 8080,
            server_url: "http://localhost:8000".to_string(),
            transport: McpTransport::StreamableHttp,
        }
    }
}

/// How an MCP server is reached: `stdio`, `streamable-http` or `sse`.
///
/// ```
/// use flux::McpTransport;
/// assert_eq!("streamable-http".parse::<McpTransport>()?, McpTransport::StreamableHttp);
/// assert_eq!(McpTransport::Stdio.to_string(), "stdio");
/// assert!("carrier-pigeon".parse::<McpTransport>().is_err());
/// # Ok::<(), flux::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum McpTransport {
    /// Standard input and output: the assistant starts the server as a child process.
    Stdio,
    /// Streamable HTTP at `/mcp` (stateless: any of several servers can answer a client).
    StreamableHttp,
    /// The legacy HTTP+SSE transport of MCP 2024-11-05. Accepted as a setting so that a Python
    /// configuration reads, but the MCP SDK flux is built on (rmcp 3) no longer serves it:
    /// starting a server with it is an error that says to use `streamable-http`.
    Sse,
}

impl McpTransport {
    /// Its name in configuration: `stdio`, `streamable-http`, `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            McpTransport::Stdio => "stdio",
            McpTransport::StreamableHttp => "streamable-http",
            McpTransport::Sse => "sse",
        }
    }
}

impl std::fmt::Display for McpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for McpTransport {
    type Err = Error;

    fn from_str(s: &str) -> Result<McpTransport> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "stdio" => Ok(McpTransport::Stdio),
            "streamable-http" | "http" | "streamable" => Ok(McpTransport::StreamableHttp),
            "sse" => Ok(McpTransport::Sse),
            _ => Err(Error::new(
                ErrorKind::Config,
                format!("unknown MCP transport `{s}` (expected stdio, streamable-http or sse)"),
            )),
        }
    }
}
