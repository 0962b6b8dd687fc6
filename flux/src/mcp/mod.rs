//! MCP, the Model Context Protocol (feature `mcp`): AI assistants drive flux through it.
//!
//! [`server`] offers a flux server's API as MCP tools: run, resume, inspect, cancel and list
//! executions, list workflows and workers, one typed tool per workflow. It is built on
//! [`Client`](crate::Client) and the official Rust SDK (rmcp), so it runs anywhere a client
//! does: `flux start mcp` (stdio or streamable HTTP), or at `/mcp` of a flux server itself
//! (`Server::mcp`, with the `server` feature).

pub mod server;
