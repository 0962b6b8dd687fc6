//! MCP, the Model Context Protocol (feature `mcp`, built on the official SDK, `rmcp`).
//!
//! - The client task: [`client()`] (streamable HTTP) and [`client_stdio`] (a child process) make
//!   an [`McpClient`], whose discovery and tool calls are recorded as tasks
//!   (`mcp_{server}_discover`, `mcp_{server}_{tool}`): a replay answers them from the log without
//!   connecting to the server. See [`client`](mod@client) for the whole story.
//! - [`server`] offers a flux server's API as MCP tools: run, resume, inspect, cancel and list
//!   executions, list workflows and workers, one typed tool per workflow. It is built on
//!   [`Client`](crate::Client), so it runs anywhere a client does: `flux start mcp` (stdio or
//!   streamable HTTP), or at `/mcp` of a flux server itself (`Server::mcp`, with the `server`
//!   feature).

pub mod client;
pub mod server;

pub use client::{
    ElicitationAction, ElicitationAnswer, ElicitationRequest, McpClient, Tool, ToolError, ToolOutput, ToolSet,
    ToolSpec, client, client_stdio,
};
