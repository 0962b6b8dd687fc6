//! The built-in tasks: recorded time and randomness, and a durable sleep.
//!
//! ```text
//! cargo run --example builtins                      # a new execution, sleeping 1 s
//! cargo run --example builtins -- run <id> [secs]   # start (or continue) execution <id>
//! cargo run --example builtins -- replay <id>       # continue it after a crash
//! ```
//!
//! `now`, `uuid4`, `randint`, `randrange` and `choice` are recorded: a replay prints the values
//! of the first run. `sleep` records when it started: killed in the middle, a replay waits only
//! what is left. Data lives where the default engine puts it (`FLUX_HOME`, default `.flux`).

use std::time::{Duration, SystemTime};

use flux::prelude::*;

#[flux::workflow]
async fn builtins(ctx: ExecutionContext<f64>) -> flux::Result<String> {
    let now = flux::now().await?;
    let id = flux::uuid4().await?;
    let dice = flux::randint(1, 6).await?;
    let even = flux::randrange(0, 100, 2).await?;
    let colour = flux::choice(vec!["red".to_string(), "green".to_string(), "blue".to_string()]).await?;
    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros();
    let drawn = format!("now={since_epoch}µs uuid={id} dice={dice} even={even} colour={colour}");
    println!("drawn: {drawn}");
    flux::sleep(Duration::from_secs_f64(*ctx.input())).await?;
    Ok(drawn)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = std::time::Instant::now();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => builtins.run(1.0).await,
        ["run", id, rest @ ..] => {
            let secs = rest.first().and_then(|s| s.parse().ok()).unwrap_or(1.0);
            builtins.run_with_id(*id, secs).await
        }
        ["replay", id] => builtins.replay(id).await,
        _ => {
            eprintln!("usage: builtins [run <id> [secs] | replay <id>]");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(execution) => {
            println!("execution {}: {}", execution.execution_id(), execution.state());
            if let Some(output) = execution.output() {
                println!("output: {output}");
            }
            println!("events: {:?}", execution.events().iter().map(|e| e.kind().to_string()).collect::<Vec<_>>());
            println!("took: {:.3}s", started.elapsed().as_secs_f64());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
