//! Concurrent task calls: `flux::parallel!` for calls of different types (a tuple back), and
//! `flux::parallel(..)` for many calls of one type, with a concurrency bound and the mode that
//! returns every outcome.
//!
//! ```text
//! cargo run --example parallel
//! ```

use std::time::Duration;

use flux::prelude::*;

#[flux::task]
async fn fetch_user(id: u32) -> String {
    tokio::time::sleep(Duration::from_millis(50)).await;
    format!("user {id}")
}

#[flux::task]
async fn count_orders(id: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(50)).await;
    id * 3
}

#[flux::task]
async fn check_stock(sku: u32) -> Result<u32, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    if sku == 3 { Err(std::io::Error::other(format!("sku {sku} is discontinued"))) } else { Ok(sku * 10) }
}

#[flux::workflow]
async fn dashboard(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let id = *ctx.input();
    // Both calls run at once: about 50 ms, not 100.
    let (user, orders) = flux::parallel!(fetch_user(id), count_orders(id)).await?;
    // Five stock checks, at most two at a time; one fails and the others still report.
    let stock = flux::parallel((1..=5).map(check_stock)).max_concurrency(2).all_results().await?;
    let stock: Vec<String> =
        stock.into_iter().map(|r| r.map_or_else(|e| format!("({})", e.message()), |n| n.to_string())).collect();
    Ok(format!("{user}: {orders} orders; stock {}", stock.join(", ")))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let started = std::time::Instant::now();
    match dashboard.run(7).await {
        Ok(execution) => {
            println!("output: {}", execution.output().map_or("-", String::as_str));
            println!("took: {} ms", started.elapsed().as_millis());
            for event in execution.events() {
                println!("  {:<16} {}", event.kind().to_string(), event.name());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
