//! A fallback replaces a failed task's output; a rollback cleans up when there is none.
//!
//! ```text
//! cargo run --example fallback_rollback
//! ```

use flux::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Quote {
    price: u32,
    source: String,
}

/// Used when the live pricing service keeps failing.
fn cached_price(item: String) -> Result<Quote, String> {
    Ok(Quote { price: 42, source: format!("yesterday's price list ({item})") })
}

#[flux::task(retry_max_attempts = 1, retry_delay = "50ms", fallback = cached_price)]
async fn live_price(item: String) -> Result<Quote, String> {
    Err(format!("pricing service unavailable for {item}"))
}

/// Undoes a reservation when `reserve` fails for good.
async fn release(item: String, quantity: u32) {
    println!("  (rollback: released {quantity} x {item})");
}

#[flux::task(rollback = release)]
async fn reserve(item: String, quantity: u32) -> Result<u32, String> {
    Err(format!("only {} {item} left", quantity - 1))
}

#[flux::workflow]
async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let item = ctx.input().clone();
    let quote = live_price(item.clone()).await?;
    match reserve(item.clone(), 3).await {
        Ok(n) => Ok(format!("reserved {n} {item} at {} from {}", quote.price, quote.source)),
        Err(e) => Ok(format!("priced {item} at {} from {}, but: {}", quote.price, quote.source, e.message())),
    }
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let engine = Engine::in_memory();
    let execution = order.on(&engine).run("widgets".to_string()).await?;
    println!("output: {}", execution.output().map_or("-", String::as_str));
    for event in execution.events() {
        println!("  {:<25} {}", event.kind().to_string(), event.name());
    }
    Ok(())
}
