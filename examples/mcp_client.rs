//! The MCP client task: a workflow discovers the tools of an MCP server and calls them, each a
//! recorded task; a replay answers them from the log without connecting.
//!
//! ```text
//! mcp_client                      # starts an MCP server on loopback, runs, stops it, resumes
//! mcp_client run <id> <url> <name> <tool> <json args> [<tool> <json args>]...
//! mcp_client replay <id>          # continue an execution (a crashed one) from its log
//! ```
//!
//! Without arguments the example starts its own MCP server (rmcp, streamable HTTP on
//! loopback), runs a workflow that calls `add` and `fail` and then pauses, stops the server, and
//! resumes the workflow: the replay gets the tool set and both results from the log. With
//! `FLUX_MCP_HOLD=1`, `run` prints `calls recorded` after the calls and waits a minute, for a
//! test to kill it there. Data lives where the default engine puts it (`FLUX_HOME`).

use std::io::Write as _;
use std::time::Duration;

use flux::prelude::*;
use serde::{Deserialize, Serialize};

/// What the workflow is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Plan {
    url: String,
    name: String,
    calls: Vec<(String, serde_json::Value)>,
    /// Pause at `confirm` after the calls.
    confirm: bool,
}

/// What it did.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    tools: usize,
    results: Vec<String>,
}

#[flux::workflow]
async fn use_tools(ctx: ExecutionContext<Plan>) -> flux::Result<Report> {
    let plan = ctx.input().clone();
    let server = flux::mcp::client(&plan.url).name(&plan.name).connect_timeout(Duration::from_secs(5));
    let tools = server.discover().await?;
    let mut results = Vec::new();
    for (tool, arguments) in plan.calls {
        results.push(match tools.call(&tool, arguments).await {
            Ok(output) => format!("{tool} -> {}", output.text()),
            Err(e) => format!("{tool} failed (terminal: {}): {}", e.is_terminal(), e.message()),
        });
    }
    println!("calls recorded");
    let _ = std::io::stdout().flush();
    if std::env::var("FLUX_MCP_HOLD").is_ok_and(|v| v == "1") {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if plan.confirm {
        let _: bool = flux::pause("confirm").await?;
    }
    Ok(Report { tools: tools.len(), results })
}

fn print(execution: &Execution<Plan, Report>) {
    println!("state: {}", execution.state());
    if let Some(report) = execution.output() {
        println!("tools: {}", report.tools);
        for result in &report.results {
            println!("  {result}");
        }
    }
}

async fn demo() -> flux::Result<()> {
    let server =
        flux_suite::mcp::serve().await.map_err(|e| flux::Error::new(flux::ErrorKind::Config, e.to_string()))?;
    println!("MCP server at {}", server.url);
    let plan = Plan {
        url: server.url.clone(),
        name: "calc".to_string(),
        calls: vec![
            ("add".to_string(), serde_json::json!({"a": 2, "b": 40})),
            ("fail".to_string(), serde_json::json!({"reason": "out of paper"})),
        ],
        confirm: true,
    };
    let first = use_tools.run(plan).await?;
    print(&first);
    let calls = server.calls.load(std::sync::atomic::Ordering::SeqCst);
    server.stop().await;
    println!("server stopped after {calls} tool calls");
    let resumed = use_tools.resume(first.execution_id(), true).await?;
    print(&resumed);
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => demo().await.map(|()| None),
        ["run", id, url, name, rest @ ..] if rest.len() % 2 == 0 => {
            let mut calls = Vec::new();
            for pair in rest.chunks(2) {
                match serde_json::from_str(pair[1]) {
                    Ok(arguments) => calls.push((pair[0].to_string(), arguments)),
                    Err(e) => {
                        eprintln!("the arguments of `{}` are not JSON: {e}", pair[0]);
                        return std::process::ExitCode::from(2);
                    }
                }
            }
            let plan = Plan { url: url.to_string(), name: name.to_string(), calls, confirm: false };
            use_tools.run_with_id(*id, plan).await.map(Some)
        }
        ["replay", id] => use_tools.replay(id).await.map(Some),
        _ => {
            eprintln!(
                "usage: mcp_client | mcp_client run <id> <url> <name> [<tool> <json>]... | mcp_client replay <id>"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(execution) => {
            if let Some(execution) = execution {
                print(&execution);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
