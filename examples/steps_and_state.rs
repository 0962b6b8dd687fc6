//! Inline steps and shared state, on an in-memory engine.
//!
//! ```text
//! cargo run --example steps_and_state
//! ```
//!
//! The engine is given an `Inventory` once; the task `reserve` receives it as a `State`
//! parameter, which is not part of its id. The workflow also charges the order in an inline
//! step (`flux::step`), without a task function of its own, and pauses for a confirmation: the
//! resume replays both from the log, so neither runs twice.

use std::collections::HashMap;
use std::sync::Mutex;

use flux::State;
use flux::prelude::*;

/// A stand-in for a database: stock by item.
struct Inventory {
    stock: Mutex<HashMap<String, u32>>,
}

/// Takes `quantity` of `item` from the inventory.
#[flux::task]
async fn reserve(item: String, quantity: u32, inventory: State<Inventory>) -> Result<u32, std::io::Error> {
    let mut stock = inventory.stock.lock().map_err(|_| std::io::Error::other("inventory poisoned"))?;
    let left = stock.get_mut(&item).ok_or_else(|| std::io::Error::other(format!("no {item} in stock")))?;
    *left = left.checked_sub(quantity).ok_or_else(|| std::io::Error::other(format!("only {left} {item} left")))?;
    println!("  reserved {quantity} {item}, {left} left");
    Ok(*left)
}

#[flux::workflow]
async fn order(ctx: ExecutionContext<(String, u32)>) -> flux::Result<String> {
    let (item, quantity) = ctx.input().clone();
    let left = reserve(item.clone(), quantity).await?;
    let receipt = flux::step("charge", async move {
        println!("  charging for {quantity} {item}");
        Ok::<_, std::io::Error>(format!("receipt for {quantity} {item}"))
    })
    .await?;
    let confirmed: bool = flux::pause("confirm").await?;
    Ok(format!("{receipt} ({left} left, confirmed: {confirmed})"))
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let inventory = Inventory { stock: Mutex::new(HashMap::from([("lamp".to_string(), 5)])) };
    let engine = Engine::in_memory().with_state(inventory);
    println!("run:");
    let paused = order.on(&engine).run(("lamp".to_string(), 2)).await?;
    println!("  {} at `{}`", paused.state(), paused.pause_name().unwrap_or_default());
    println!("resume:");
    let done = order.on(&engine).resume(paused.execution_id(), true).await?;
    println!("  output: {}", done.into_result()?);
    Ok(())
}
