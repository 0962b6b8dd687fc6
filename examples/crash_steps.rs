//! A workflow of steps that each append to a side-effect file: the program the crash tests kill.
//!
//! ```text
//! crash_steps run <execution-id> <file> [steps]   # start (or continue) the execution
//! crash_steps replay <execution-id>               # continue a crashed execution
//! crash_steps status <execution-id>               # print its state without running anything
//! crash_steps recover [seconds]                    # continue what a dead process left running
//! crash_steps send <execution-id> <topic> <number>  # send a message to a running execution
//! crash_steps event <execution-id> <key>            # print what the execution set under key
//! ```
//!
//! Every step writes `start <i>` to the file, then `done <i>` when it finishes. With
//! `FLUX_SLOW_STEP=<i>` set, step `i` sleeps for a minute between the two lines: a test kills the
//! process there. With `FLUX_INLINE_STEPS=1` the steps are inline steps (`flux::step`) named
//! `inline_<i>` instead of calls of the task `step`. With `FLUX_RECV=1` the workflow first waits
//! for a number on topic `bonus` (`flux::recv`) and outputs it before the steps' results, and
//! says where it is under the event key `stage` (`flux::set_event`). Data lives where the default engine puts it
//! (`FLUX_HOME`, default `.flux`).
//! `FLUX_LEASE_MS` sets the engine's lease: how long after a process dies `recover` (which
//! retries for up to `seconds`, default 0) can take its executions over.

use std::io::Write as _;
use std::time::Duration;

use flux::prelude::*;
use serde::{Deserialize, Serialize};

/// The workflow input.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    file: String,
    steps: u32,
}

fn append(file: &str, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    writeln!(f, "{line}")?;
    f.sync_data()
}

/// What step `i` does: its side effects, and (with `FLUX_SLOW_STEP=<i>`) a long sleep between
/// them.
async fn effects(i: u32, file: String) -> Result<u32, std::io::Error> {
    append(&file, &format!("start {i}"))?;
    if std::env::var("FLUX_SLOW_STEP").ok().and_then(|s| s.parse::<u32>().ok()) == Some(i) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    append(&file, &format!("done {i}"))?;
    Ok(i * 10)
}

#[flux::task]
async fn step(i: u32, file: String) -> Result<u32, std::io::Error> {
    effects(i, file).await
}

#[flux::workflow]
async fn crash_steps(ctx: ExecutionContext<Job>) -> flux::Result<Vec<u32>> {
    let job = ctx.input().clone();
    let inline = std::env::var("FLUX_INLINE_STEPS").is_ok_and(|v| v == "1");
    let receives = std::env::var("FLUX_RECV").is_ok_and(|v| v == "1");
    let mut out = Vec::new();
    if receives {
        flux::set_event("stage", "waiting for a bonus".to_string()).await?;
        let bonus: u32 = flux::recv("bonus").await?;
        flux::set_event("stage", format!("received bonus {bonus}")).await?;
        out.push(bonus);
    }
    for i in 1..=job.steps {
        out.push(match inline {
            true => flux::step(&format!("inline_{i}"), effects(i, job.file.clone())).await?,
            false => step(i, job.file.clone()).await?,
        });
    }
    if receives {
        flux::set_event("stage", format!("done: {out:?}")).await?;
    }
    Ok(out)
}

/// Calls `Engine::recover` until it continued something or `seconds` have passed, and prints
/// what it did.
async fn recover(seconds: u64) -> flux::Result<()> {
    let engine = Engine::global()?;
    engine.register(crash_steps);
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let recovered = engine.recover().await?;
        for r in &recovered {
            match &r.outcome {
                Ok(state) => println!("recovered {}: {state}", r.execution_id),
                Err(e) => println!("recovered {}: error: {e}", r.execution_id),
            }
        }
        if !recovered.is_empty() || std::time::Instant::now() >= deadline {
            if recovered.is_empty() {
                println!("nothing to recover");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(ms) = std::env::var("FLUX_LEASE_MS").ok().and_then(|s| s.parse().ok()) {
        match Engine::global() {
            Ok(engine) => drop(engine.with_lease(Duration::from_millis(ms))),
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let ["recover", rest @ ..] = args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        let seconds = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0);
        return match recover(seconds).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["run", id, file, rest @ ..] => {
            let steps = rest.first().and_then(|s| s.parse().ok()).unwrap_or(3);
            crash_steps.run_with_id(*id, Job { file: file.to_string(), steps }).await
        }
        ["replay", id] => crash_steps.replay(id).await,
        ["status", id] => crash_steps.status(id).await,
        ["send", id, topic, number] => {
            let Ok(number) = number.parse::<u32>() else {
                eprintln!("error: `{number}` is not a number");
                return std::process::ExitCode::from(2);
            };
            return match crash_steps.send(id, topic, number).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        ["event", id, key] => {
            return match crash_steps.get_event::<String>(id, key).await {
                Ok(value) => {
                    println!("{key}: {}", value.as_deref().unwrap_or("(not set)"));
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        _ => {
            eprintln!(
                "usage: crash_steps run <id> <file> [steps] | replay <id> | status <id> | recover [seconds] \
                 | send <id> <topic> <number> | event <id> <key>"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(execution) => {
            println!("state: {}", execution.state());
            if let Some(output) = execution.output() {
                println!("output: {output:?}");
            }
            println!("events: {}", execution.events().len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
