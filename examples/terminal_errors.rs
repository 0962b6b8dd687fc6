//! Terminal and retryable errors, on a SQLite engine in a temporary directory.
//!
//! ```text
//! cargo run --example terminal_errors
//! ```
//!
//! `charge` talks to a payment service that answers in one of two ways. A timeout is worth
//! another try, so the task retries it; a declined card gives the same answer however often it
//! is asked, so the error type says it is terminal and the task stops at once. The failed
//! execution is then loaded again from disk: its error still says which type it was.

use std::sync::atomic::{AtomicU32, Ordering};

use flux::prelude::*;

/// What the payment service can answer besides a receipt.
#[derive(Debug)]
enum PaymentError {
    /// The bank refused the card: final.
    Declined { reason: String },
    /// The service did not answer in time: worth another try.
    Timeout,
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentError::Declined { reason } => write!(f, "card declined: {reason}"),
            PaymentError::Timeout => f.write_str("the payment service timed out"),
        }
    }
}

impl std::error::Error for PaymentError {}

impl flux::TerminalError for PaymentError {
    fn is_terminal(&self) -> bool {
        matches!(self, PaymentError::Declined { .. })
    }
}

static ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Charges `cents` to `card`: the card ending in 0000 is declined; any other times out twice,
/// then goes through.
#[flux::task(retry_max_attempts = 5, retry_delay = "50ms", retry_backoff = 2)]
async fn charge(card: String, cents: u64) -> Result<String, PaymentError> {
    let attempt = ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    println!("  charging {cents} cents to {card}: attempt {attempt}");
    if card.ends_with("0000") {
        return Err(PaymentError::Declined { reason: "insufficient funds".to_string() });
    }
    if attempt < 3 {
        return Err(PaymentError::Timeout);
    }
    Ok(format!("receipt for {cents} cents"))
}

#[flux::workflow]
async fn checkout(ctx: ExecutionContext<String>) -> flux::Result<String> {
    charge(ctx.input().clone(), 2_500).await
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let dir = std::env::temp_dir().join(format!("flux-terminal-errors-{}", std::process::id()));
    let path = dir.join("flux.db");

    println!("a card that times out twice:");
    let engine = Engine::open(&path)?;
    let paid = checkout.on(&engine).run("4242 4242 4242 4242".to_string()).await?.into_result()?;
    println!("  -> {paid}");

    println!("a declined card:");
    ATTEMPTS.store(0, Ordering::SeqCst);
    let declined = checkout.on(&engine).run("4000 0000 0000 0000".to_string()).await?;
    let id = declined.execution_id().to_string();
    drop(engine);

    // Another engine over the same file, as another process would open it.
    let engine = Engine::open(&path)?;
    let stored = checkout.on(&engine).status(&id).await?;
    let error = stored.error().expect("a failed execution keeps its error");
    println!("  -> {} ({})", stored.state(), error.message());
    println!("  terminal: {}, a PaymentError: {}", error.is_terminal(), error.is::<PaymentError>());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
