//! Pause and resume: a workflow stops at `flux::pause_with`, exposing a value, and waits; a
//! later `resume(id, value)` (from this or another process) continues it with a typed input.
//!
//! ```text
//! cargo run --example pause_resume                      # runs to the pause, then resumes it
//! cargo run --example pause_resume -- start             # runs to the pause and exits
//! cargo run --example pause_resume -- approve <id>      # resumes it with {"approved": true}
//! cargo run --example pause_resume -- reject <id>
//! ```

use flux::prelude::*;
use serde::{Deserialize, Serialize};

/// The resume input the pause expects.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Decision {
    approved: bool,
}

#[flux::task]
async fn quote(amount: u32) -> String {
    format!("{amount} EUR, due in 30 days")
}

#[flux::task]
async fn book(quote: String) -> String {
    format!("booked: {quote}")
}

#[flux::workflow]
async fn expense(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let quoted = quote(*ctx.input()).await?;
    // Stops here until resumed; the quote is visible while paused.
    let decision: Decision = flux::pause_with("manager_approval", quoted.clone()).await?;
    if decision.approved { book(quoted).await } else { Ok(format!("rejected: {quoted}")) }
}

fn show(execution: &Execution<u32, String>) {
    println!("execution {}: {}", execution.execution_id(), execution.state());
    if execution.is_paused() {
        let waiting_with = execution.pause_output::<String>().ok().flatten().unwrap_or_default();
        println!("paused at `{}`, showing: {waiting_with}", execution.pause_name().unwrap_or_default());
    }
    if let Some(output) = execution.output() {
        println!("output: {output}");
    }
    println!("events: {}", execution.events().iter().map(|e| e.kind().to_string()).collect::<Vec<_>>().join(" "));
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => match expense.run(120).await {
            Ok(paused) => {
                show(&paused);
                expense.resume(paused.execution_id(), Decision { approved: true }).await
            }
            Err(e) => Err(e),
        },
        ["start"] => expense.run(120).await,
        ["approve", id] => expense.resume(id, Decision { approved: true }).await,
        ["reject", id] => expense.resume(id, Decision { approved: false }).await,
        _ => {
            eprintln!("usage: pause_resume [start | approve <id> | reject <id>]");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(execution) => {
            show(&execution);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
