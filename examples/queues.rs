//! A burst of work through a queue: twenty emails submitted at once to a queue that sends at
//! most three at a time and ten a second, on an engine on SQLite in `.flux/`. Each waits stored
//! `SCHEDULED` until its turn, and they start in the order they were submitted.
//!
//! ```text
//! cargo run --example queues
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flux::prelude::*;
use flux::{ExecutionFilter, ExecutionState};

/// How many sends run now, and the most at once.
static SENDING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);

#[flux::task]
async fn deliver(to: String) -> String {
    let now = SENDING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    // The mail provider takes a moment.
    tokio::time::sleep(Duration::from_millis(150)).await;
    SENDING.fetch_sub(1, Ordering::SeqCst);
    format!("sent to {to}")
}

#[flux::workflow]
async fn send_email(ctx: ExecutionContext<String>) -> flux::Result<String> {
    deliver(ctx.input().clone()).await
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let engine = flux::Engine::open(".flux/flux.db")?;
    let emails = engine.queue("emails").concurrency(3).rate(10, Duration::from_secs(1));
    let began = Instant::now();
    let mut handles = Vec::new();
    for n in 1..=20 {
        handles.push(send_email.on(&engine).enqueue("emails", format!("user{n}@example.com")).await?);
    }
    let waiting =
        engine.list_executions(ExecutionFilter::new().workflow("send_email").state(ExecutionState::Scheduled)).await?;
    println!("submitted 20; {} wait in SCHEDULED, {} run", waiting.total, emails.running());
    for handle in handles {
        let done = handle.await?;
        let started = done.events().iter().find(|e| e.kind() == flux::EventType::WorkflowStarted).map(|e| e.time());
        let at = started.and_then(|t| t.duration_since(done.events()[0].time()).ok()).unwrap_or_default();
        println!(
            "{:<30} {} after {:>5} ms in line",
            done.output().map(String::as_str).unwrap_or("-"),
            done.state(),
            at.as_millis()
        );
    }
    println!(
        "all 20 in {:.1} s, at most {} at once (limit 3), ten a second",
        began.elapsed().as_secs_f64(),
        MOST.load(Ordering::SeqCst)
    );
    Ok(())
}
