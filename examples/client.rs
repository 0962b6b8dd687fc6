//! The typed client of a flux server: `flux::Client` runs, starts, streams, resumes and cancels
//! executions over HTTP, and lists what the server knows, with the workflows' own types.
//!
//! ```text
//! cargo run --example client --features flux-suite/server
//! ```
//!
//! A server runs in this process on a free port of 127.0.0.1 (in memory); the client could as
//! well be in another program, on another machine: it needs only the server's URL and the
//! workflows' input and output types (or `serde_json::Value`).

use std::time::Duration;

use flux::ExecutionFilter;
use flux::client::StreamEvent;
use futures::StreamExt as _;

/// The workflows the server runs. A workflow's name is also a value in its module, so they live
/// in a module of their own, apart from the client's handles of the same names.
mod workflows {
    use std::time::Duration;

    use flux::prelude::*;
    use serde::{Deserialize, Serialize};

    /// An order to check out.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Order {
        pub id: u32,
        pub items: u32,
    }

    /// How far packing has come.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Packed {
        pub done: u32,
        pub of: u32,
    }

    #[flux::task]
    async fn pack(order: Order) -> String {
        for done in 1..=order.items {
            flux::progress(Packed { done, of: order.items }).await;
        }
        format!("order {} packed ({} items)", order.id, order.items)
    }

    /// Packs an order, reporting progress.
    #[flux::workflow]
    pub async fn checkout(ctx: ExecutionContext<Order>) -> flux::Result<String> {
        pack(ctx.input().clone()).await
    }

    /// Waits for a person's yes or no.
    #[flux::workflow]
    pub async fn refund(ctx: ExecutionContext<u32>) -> flux::Result<String> {
        let answer = flux::pause_with::<String, String>("approve", format!("refund {} EUR?", ctx.input())).await?;
        Ok(format!("refund of {} EUR: {answer}", ctx.input()))
    }

    #[flux::task]
    async fn wait_for_stock(days: u64) -> u64 {
        tokio::time::sleep(Duration::from_secs(days * 24 * 3600)).await;
        days
    }

    /// Waits a long time: something to cancel.
    #[flux::workflow]
    pub async fn restock(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
        wait_for_stock(*ctx.input()).await
    }
}

use workflows::{Order, Packed};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let server = flux::server::Server::new()
        .engine(&flux::Engine::in_memory())
        .admin_token("example-admin-token")
        .register(workflows::checkout)
        .register(workflows::refund)
        .register(workflows::restock)
        .bind("127.0.0.1:0")
        .await?;
    let client = flux::Client::new(server.url())?;

    // 1. What the server runs.
    let mut names: Vec<String> =
        client.workflows().await?.iter().map(|w| format!("{} v{}", w.name(), w.version())).collect();
    names.sort();
    println!("1. workflows: {}", names.join(", "));

    // 2. Run and wait: the output comes back as the workflow's output type.
    let checkout = client.workflow::<Order, String>("checkout");
    let packed: String = checkout.run(&Order { id: 1, items: 2 }).await?.into_result()?;
    println!("2. run: {packed}");

    // 3. Start, then ask: a paused execution says what it waits for.
    let refund = client.workflow::<u32, String>("refund");
    let started = refund.start(&40).await?;
    let id = started.execution_id().to_string();
    let paused = loop {
        let status = refund.status(&id).await?;
        if status.is_paused() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("3. start + status: {} asks {:?}", paused.state(), paused.pause_output::<String>()?.unwrap_or_default());
    let refunded = refund.resume(&id, "yes").await?.into_result()?;
    println!("   resume: {refunded}");

    // 4. Stream: changes of state and progress, typed, as they happen.
    println!("4. stream:");
    let mut events = checkout.stream(&Order { id: 2, items: 3 }).await?;
    while let Some(event) = events.next().await {
        match event? {
            StreamEvent::State(status) => match status.output() {
                Some(output) => println!("   {}: {output}", status.state()),
                None => println!("   {}", status.state()),
            },
            StreamEvent::Progress(progress) => {
                let packed: Packed = progress.value()?;
                println!("   progress: {}/{}", packed.done, packed.of);
            }
            _ => {}
        }
    }

    // 5. Cancel a running execution and wait until it stopped.
    let restock = client.workflow::<u64, u64>("restock");
    let started = restock.start(&30).await?;
    let cancelled = restock.cancel_and_wait(started.execution_id()).await?;
    println!(
        "5. cancel: {} ({})",
        cancelled.state(),
        cancelled.into_result().err().map(|e| e.kind()).unwrap_or(flux::ErrorKind::Unknown)
    );

    // 6. Refusals are errors of the kind that fits, with the server's reason.
    let err = client.workflow::<String, String>("checkout").run(&"not an order".to_string()).await.unwrap_err();
    println!("6. a bad input: {} (HTTP {})", err.kind(), err.http_status().unwrap_or_default());

    // 7. The executions the server keeps.
    let list = client.list_executions(ExecutionFilter::new().limit(10)).await?;
    println!("7. executions: {} in all", list.total);
    for execution in &list.executions {
        println!("   {} {} {}", execution.workflow_name, execution.execution_id, execution.state);
    }

    server.shutdown().await?;
    println!("8. server stopped");
    Ok(())
}
