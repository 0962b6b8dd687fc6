//! The smallest durable workflow: one task, run on the default engine (SQLite in `.flux/`).
//!
//! ```text
//! cargo run --release --example hello_world            # runs "World"
//! cargo run --release --example hello_world -- Joe     # runs "Joe"
//! ```
//!
//! It prints the output and every recorded event, then the id: run
//! `cargo run --example hello_world -- --replay <id>` to load that execution again without
//! running anything.

use flux::prelude::*;

#[flux::task]
async fn say_hello(name: String) -> String {
    format!("Hello, {name}")
}

#[flux::workflow]
async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, id] if flag == "--replay" => hello_world.replay(id).await,
        [name] => hello_world.run(name.clone()).await,
        _ => hello_world.run("World".to_string()).await,
    };
    match result {
        Ok(execution) => {
            print(&execution);
            if execution.has_succeeded() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn print(execution: &Execution<String, String>) {
    match execution.output() {
        Some(output) => println!("output: {output}"),
        None => println!("state: {}", execution.state()),
    }
    if let Some(error) = execution.error() {
        println!("error: {error}");
    }
    println!("execution: {}", execution.execution_id());
    println!("events:");
    for event in execution.events() {
        println!("  {:>2} {:<20} {}", event.seq(), event.kind().to_string(), event.source_id());
    }
}
