//! `task::map(items)`: one call of a single-argument task per item, concurrently, results in
//! item order. The map is a task in the log wrapping the calls.
//!
//! ```text
//! cargo run --release --example map              # 1,000 items
//! cargo run --release --example map -- 10000     # 10,000 items
//! ```

use flux::prelude::*;

#[flux::task]
async fn square(x: u64) -> u64 {
    x * x
}

#[flux::workflow]
async fn sum_of_squares(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    let squares = square::map(1..=*ctx.input()).await?;
    Ok(squares.iter().sum())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let n = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000u64);
    let started = std::time::Instant::now();
    match sum_of_squares.run(n).await {
        Ok(execution) => {
            let took = started.elapsed();
            println!("output: {}", execution.output().copied().unwrap_or_default());
            println!("expected: {}", n * (n + 1) * (2 * n + 1) / 6);
            println!("events: {}", execution.events().len());
            println!("took: {} ms ({:.1} µs per item)", took.as_millis(), took.as_secs_f64() * 1e6 / n as f64);
            println!("execution: {}", execution.execution_id());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
