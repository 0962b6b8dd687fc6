//! Retries with backoff and a timeout, on an in-memory engine.
//!
//! ```text
//! cargo run --example retries
//! ```
//!
//! `flaky_fetch` fails twice before it succeeds; the printed log shows each failed attempt, each
//! retry with the delay it waited, and the final success.

use std::sync::atomic::{AtomicU32, Ordering};

use flux::prelude::*;

static CALLS: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 3, retry_delay = "100ms", retry_backoff = 2, timeout = "2s")]
async fn flaky_fetch(url: String) -> Result<String, String> {
    match CALLS.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Err(format!("{url}: connection reset")),
        _ => Ok(format!("200 OK from {url}")),
    }
}

#[flux::workflow]
async fn fetch(ctx: ExecutionContext<String>) -> flux::Result<String> {
    flaky_fetch(ctx.input().clone()).await
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let engine = Engine::in_memory();
    let execution = fetch.on(&engine).run("https://example.test/data".to_string()).await?;
    println!("state: {}", execution.state());
    println!("output: {}", execution.output().map_or("-", String::as_str));
    for event in execution.events() {
        let detail = match event.kind() {
            EventType::TaskRetryStarted => {
                #[derive(serde::Deserialize)]
                struct Retry {
                    current_attempt: u32,
                    current_delay: f64,
                }
                let r: Retry = event.value()?;
                format!("attempt {} after {:.1}s", r.current_attempt, r.current_delay)
            }
            _ => String::new(),
        };
        println!("  {:<22} {detail}", event.kind().to_string());
    }
    Ok(())
}
