//! The demo workflows `flux start worker` runs: enough to try every command of the CLI.

use std::time::Duration;

use flux::ExecutionContext;

/// How long one step of [`countdown`] takes.
const COUNTDOWN_STEP: Duration = Duration::from_millis(100);

/// Greets `name`.
#[flux::task]
async fn say_hello(name: String) -> String {
    format!("Hello, {name}")
}

/// `"Hello, {input}"`, through the task `say_hello`.
#[flux::workflow]
pub async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

/// Pauses at `"approval"` until resumed with a string, then returns `"{input} -> {answer}"`.
#[flux::workflow]
pub async fn approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let answer: String = flux::pause("approval").await?;
    Ok(format!("{} -> {answer}", ctx.input()))
}

/// One step of a countdown: waits [`COUNTDOWN_STEP`], reports `"step/total"` as progress and
/// returns how many steps remain.
#[flux::task]
async fn count_step(step: u64, total: u64) -> u64 {
    tokio::time::sleep(COUNTDOWN_STEP).await;
    flux::progress(format!("{step}/{total}")).await;
    total.saturating_sub(step)
}

/// Counts down from its input, one ~100 ms task per step: long enough to watch it stream or to
/// cancel it.
#[flux::workflow]
pub async fn countdown(ctx: ExecutionContext<u64>) -> flux::Result<String> {
    let total = *ctx.input();
    for step in 1..=total {
        count_step(step, total).await?;
    }
    Ok(format!("counted down from {total}"))
}
