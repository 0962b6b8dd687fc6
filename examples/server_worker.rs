//! A whole deployment in one command: a flux server, a worker that runs `hello_world` for it, and
//! a client (`flux::Client`) that talks to the server over HTTP, printing each step.
//!
//! ```text
//! cargo run --example server_worker --features flux-suite/server
//! ```
//!
//! The server stores executions in a temporary SQLite file and listens on a free port of
//! 127.0.0.1. In a real deployment the three parts are separate processes: `flux start server`,
//! a user binary calling `flux::worker::Worker::new(url).register(..).run()`, and any program
//! using `flux::Client` (or the `flux workflow ...` CLI, or any HTTP client).

use std::time::Duration;

use flux::client::StreamEvent;
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
    let client = flux::Client::new(&url)?;
    let catalog = loop {
        let list = client.workflows().await?;
        if !list.is_empty() {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names: Vec<String> = catalog.iter().map(|w| format!("{} v{}", w.name(), w.version())).collect();
    println!("2. worker registered; the catalog is {}", names.join(", "));

    // 3. A synchronous run: the server schedules it, the worker claims and runs it.
    let hello = client.workflow::<String, String>("hello_world");
    let run = hello.run(&"World".to_string()).await?;
    println!("3. run/sync -> state {} output {:?}", run.state(), run.output().map(String::as_str).unwrap_or_default());

    // 4. A streamed run: state changes and progress, as the server sends them.
    println!("4. run/stream:");
    let mut events = hello.stream(&"Stream".to_string()).await?;
    while let Some(event) = events.next().await {
        match event? {
            StreamEvent::State(status) => println!("   state: {}", status.state()),
            StreamEvent::Progress(progress) => println!("   progress: {}", progress.value::<String>()?),
            _ => {}
        }
    }

    // 5. The stored execution with its events.
    let id = run.execution_id();
    let status = hello.clone().detailed(true).status(id).await?;
    let events: Vec<String> = status.events().unwrap_or_default().iter().map(|e| e.kind().to_string()).collect();
    println!("5. status of {id}: {} with events {}", status.state(), events.join(", "));

    worker.abort();
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&home);
    println!("6. server stopped");
    Ok(())
}
