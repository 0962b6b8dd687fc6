//! A checkout that waits for its payment: the workflow says what it waits for
//! (`flux::set_event`), takes the payment message (`flux::recv`, at most a few seconds), and
//! ends paid or expired. Two orders on an engine on SQLite in `.flux/`: one is paid (sent twice
//! with one idempotency key: delivered once), the other expires.
//!
//! ```text
//! cargo run --example messages
//! ```

use std::time::Duration;

use flux::prelude::*;

#[flux::task]
async fn charge(order: u32, cents: u32) -> String {
    format!("order {order}: charged {cents} cents")
}

#[flux::workflow]
async fn checkout(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let order = *ctx.input();
    flux::set_event("status", "waiting for payment".to_string()).await?;
    let payment: Option<u32> = flux::recv("payment").timeout(Duration::from_secs(3)).await?;
    let outcome = match payment {
        Some(cents) => charge(order, cents).await?,
        None => format!("order {order}: no payment within 3 s, expired"),
    };
    flux::set_event("status", outcome.clone()).await?;
    Ok(outcome)
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let engine = flux::Engine::open(".flux/flux.db")?;
    let workflow = checkout.on(&engine);
    let paid = workflow.start(1).await?;
    let unpaid = workflow.start(2).await?;
    let id = paid.execution_id().to_string();

    // A caller polls the status the workflow sets.
    let mut status: Option<String> = None;
    while status.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = workflow.get_event(&id, "status").await?;
    }
    println!("order 1 says: {}", status.unwrap_or_default());

    // The payment webhook fires twice: one idempotency key, one delivery.
    let first = workflow.send_keyed(&id, "payment", "psp-evt-42", 2500).await?;
    let again = workflow.send_keyed(&id, "payment", "psp-evt-42", 2500).await?;
    println!("payment sent: delivered {first}, then delivered {again}");

    for handle in [paid, unpaid] {
        let done = handle.await?;
        println!("{}: {}", done.state(), done.output().map(String::as_str).unwrap_or("-"));
    }
    let status: Option<String> = workflow.get_event(&id, "status").await?;
    println!("order 1 says: {}", status.unwrap_or_default());
    Ok(())
}
