//! Cancellation: `workflow.start(input)` returns a handle; `handle.cancel()` (or
//! `workflow.cancel(id)` from anywhere, even another process) stops the execution. The running
//! task records `TASK_CANCELLED`, its rollback runs, its retries and fallback do not.
//!
//! ```text
//! cargo run --example cancel
//! ```

use std::time::Duration;

use flux::prelude::*;

fn release(order: u32) {
    println!("(rollback: released the reservation of order {order})");
}

fn ship_later(order: u32) -> String {
    format!("order {order} queued for later")
}

#[flux::task]
async fn reserve(order: u32) -> String {
    format!("reserved order {order}")
}

/// Takes far longer than we are willing to wait.
#[flux::task(rollback = release, fallback = ship_later)]
async fn ship(order: u32) -> String {
    println!("shipping order {order}...");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    format!("shipped order {order}")
}

#[flux::workflow]
async fn fulfilment(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    reserve(*ctx.input()).await?;
    ship(*ctx.input()).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let handle = match fulfilment.start(42).await {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("started {}", handle.execution_id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("cancelling...");
    match handle.cancel().await {
        Ok(execution) => {
            println!("state: {}", execution.state());
            for event in execution.events() {
                println!("  {:<24} {}", event.kind().to_string(), event.name());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
