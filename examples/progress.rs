//! Progress streaming: `workflow.stream(input)` yields each event as it is recorded, with the
//! ephemeral `TASK_PROGRESS` events a task sends through `flux::progress(value)` in between.
//! Progress is never stored.
//!
//! ```text
//! cargo run --example progress
//! ```

use std::time::Duration;

use futures::StreamExt as _;

use flux::prelude::*;

#[flux::task]
async fn render(frames: u32) -> String {
    for frame in 1..=frames {
        tokio::time::sleep(Duration::from_millis(20)).await;
        flux::progress(format!("frame {frame}/{frames}")).await;
    }
    format!("rendered {frames} frames")
}

#[flux::workflow]
async fn movie(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    render(*ctx.input()).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut stream = match movie.stream(5).await {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let id = stream.execution_id().to_string();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) if event.kind() == EventType::TaskProgress => {
                println!("  progress: {}", event.value::<String>().unwrap_or_default());
            }
            Ok(event) => println!("{:<18} {}", event.kind().to_string(), event.name()),
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    match movie.status(&id).await {
        Ok(stored) => {
            println!("output: {}", stored.output().map_or("-", String::as_str));
            println!("stored events: {} (no progress)", stored.events().len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
