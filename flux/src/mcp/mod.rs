//! MCP, the Model Context Protocol (feature `mcp`, built on the official SDK, `rmcp`).
//!
//! The client task: [`client()`] (streamable HTTP) and [`client_stdio`] (a child process) make an
//! [`McpClient`], whose discovery and tool calls are recorded as tasks (`mcp_{server}_discover`,
//! `mcp_{server}_{tool}`): a replay answers them from the log without connecting to the server.
//! See [`client`](mod@client) for the whole story.

pub mod client;

pub use client::{
    ElicitationAction, ElicitationAnswer, ElicitationRequest, McpClient, Tool, ToolError, ToolOutput, ToolSet,
    ToolSpec, client, client_stdio,
};
