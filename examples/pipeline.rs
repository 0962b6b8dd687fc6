//! `flux::pipeline!`: each task's output is the next one's input.
//!
//! ```text
//! cargo run --example pipeline          # 2 => times_two, add_three, square = 49
//! cargo run --example pipeline -- 5
//! ```

use flux::prelude::*;

#[flux::task]
async fn times_two(x: i64) -> i64 {
    x * 2
}

#[flux::task]
async fn add_three(x: i64) -> i64 {
    x + 3
}

#[flux::task]
async fn square(x: i64) -> i64 {
    x * x
}

#[flux::workflow]
async fn calculate(ctx: ExecutionContext<i64>) -> flux::Result<i64> {
    flux::pipeline!(*ctx.input() => times_two, add_three, square).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let input = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    match calculate.run(input).await {
        Ok(execution) => {
            println!("output: {}", execution.output().copied().unwrap_or_default());
            for event in execution.events() {
                // Each stage's input (its recorded argument) and output.
                let value = match event.kind() {
                    EventType::TaskStarted => event.value::<(i64,)>().map(|(x,)| format!("input {x}")).ok(),
                    EventType::TaskCompleted => event.value::<i64>().map(|x| format!("output {x}")).ok(),
                    _ => None,
                };
                println!("  {:<16} {:<10} {}", event.kind().to_string(), event.name(), value.unwrap_or_default());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
