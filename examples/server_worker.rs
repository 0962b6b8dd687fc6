//! A whole deployment in one command: a flux server, a worker that runs `hello_world` for it, and
//! a client that talks to the server over HTTP, printing each step.
//!
//! ```text
//! cargo run --example server_worker --features flux-suite/server
//! ```
//!
//! The server stores executions in a temporary SQLite file and listens on a free port of
//! 127.0.0.1. In a real deployment the three parts are separate processes: `flux start server`,
//! a user binary calling `flux::worker::Worker::new(url).register(..).run()`, and any HTTP client
//! (or the `flux workflow ...` CLI).

use std::time::Duration;

use flux::prelude::*;
use futures::StreamExt as _;

#[flux::task]
async fn say_hello(name: String) -> String {
    flux::progress(format!("greeting {name}")).await;
    format!("Hello, {name}")
}

#[flux::workflow]
async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let home = std::env::temp_dir().join(format!("flux-server-worker-{}", std::process::id()));
    let engine = flux::Engine::open(home.join("flux.db"))?;

    // 1. The server: no workflow of its own, so hello_world runs on a worker.
    let server = flux::server::Server::new()
        .engine(&engine)
        .bootstrap_token("demo-bootstrap-token")
        .admin_token("demo-admin-token")
        .bind("127.0.0.1:0")
        .await?;
    let url = server.url();
    println!("1. server listening on {url}");

    // 2. A worker, registering hello_world with the bootstrap token.
    let worker = flux::worker::Worker::new(url.clone())
        .name("demo-worker")
        .bootstrap_token("demo-bootstrap-token")
        .register(hello_world);
    let worker = tokio::spawn(worker.run());
    let client = reqwest::Client::new();
    let catalog = loop {
        let list: serde_json::Value = client.get(format!("{url}/workflows")).send().await?.json().await?;
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("2. worker registered; the catalog is {catalog}");

    // 3. A synchronous run: the server schedules it, the worker claims and runs it.
    let run: serde_json::Value =
        client.post(format!("{url}/workflows/hello_world/run/sync")).json(&"World").send().await?.json().await?;
    println!("3. run/sync -> state {} output {}", run["state"], run["output"]);

    // 4. A streamed run: state changes and progress as server-sent events.
    println!("4. run/stream:");
    let response = client.post(format!("{url}/workflows/hello_world/run/stream")).json(&"Stream").send().await?;
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
                println!("   event: {name}");
            }
        }
    }

    // 5. The stored execution with its events.
    let id = run["execution_id"].as_str().unwrap_or_default();
    let status: serde_json::Value =
        client.get(format!("{url}/workflows/hello_world/status/{id}?detailed=true")).send().await?.json().await?;
    let events: Vec<&str> = status["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["type"].as_str()).collect())
        .unwrap_or_default();
    println!("5. status of {id}: {} with events {}", status["state"], events.join(", "));

    worker.abort();
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&home);
    println!("6. server stopped");
    Ok(())
}
