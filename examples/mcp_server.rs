//! A flux server with its MCP endpoint: AI assistants run its workflows as tools.
//!
//! ```text
//! cargo run --example mcp_server --features mcp     # serves on 127.0.0.1:8000 until Ctrl-C
//! ```
//!
//! It prints the configuration an assistant needs. With `FLUX_MCP_EXAMPLE_CHECK=1` (as
//! `tests/examples.rs` runs it) it listens on a free port, connects an MCP client of its own,
//! runs a workflow through it and exits.

use flux::prelude::*;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde::{Deserialize, Serialize};

/// Greets someone.
#[flux::workflow]
async fn greet(ctx: ExecutionContext<String>) -> String {
    format!("Hello, {}", ctx.input())
}

/// A book to order: deriving `JsonSchema` gives the `order_book` tool typed parameters.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct BookOrder {
    /// The book's title.
    title: String,
    /// How many copies.
    copies: u32,
}

#[flux::workflow]
async fn order_book(ctx: ExecutionContext<BookOrder>) -> String {
    format!("ordered {} x {:?}", ctx.input().copies, ctx.input().title)
}

const ADMIN_TOKEN: &str = "change-me-admin-token";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::var("FLUX_MCP_EXAMPLE_CHECK").is_ok_and(|v| v == "1");
    let address = if check { "127.0.0.1:0" } else { "127.0.0.1:8000" };
    let server = flux::server::Server::from_config(flux::Config::default())
        .engine(&Engine::in_memory())
        .admin_token(ADMIN_TOKEN)
        .register(greet)
        .register(order_book)
        .mcp()
        .bind(address)
        .await?;
    let url = format!("{}/mcp", server.url());
    println!("flux server on {} with MCP at {url}", server.url());
    println!("Add this to your assistant's MCP configuration (Claude Desktop: claude_desktop_config.json):");
    let config = serde_json::json!({
        "mcpServers": {
            "flux": { "type": "http", "url": url, "headers": { "Authorization": format!("Bearer {ADMIN_TOKEN}") } }
        }
    });
    println!("{}", serde_json::to_string_pretty(&config)?);

    if !check {
        println!("Serving until Ctrl-C.");
        tokio::signal::ctrl_c().await?;
        server.shutdown().await?;
        return Ok(());
    }

    // Self-check: what an assistant would do.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(ADMIN_TOKEN),
    );
    let client = ().serve(transport).await?;
    let tools = client.list_all_tools().await?;
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).filter(|n| n.contains("book")).collect();
    names.sort_unstable();
    println!("check: {} tools, the workflow's own: {}", tools.len(), names.join(", "));
    let args = serde_json::json!({"title": "Dune", "copies": 2});
    let params = CallToolRequestParams::new("order_book").with_arguments(args.as_object().cloned().unwrap_or_default());
    let answer = client.call_tool(params).await?.structured_content.unwrap_or_default();
    println!("check: order_book -> {} {}", answer["state"], answer["output"]);
    client.cancel().await?;
    server.shutdown().await?;
    println!("check: done");
    Ok(())
}
