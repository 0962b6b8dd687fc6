//! `flux-torture`: the process the torture test (`tests/torture.rs`) kills again and again.
//!
//! ```text
//! flux-torture <database> <effects-file> <execution-id> <durability>
//! ```
//!
//! Runs the execution (or continues it over its stored log) of `torture`: 50 tasks in a row,
//! each appending `begin <i> <µs>` to the effects file when its body starts and `end <i> <µs>`
//! when it is about to return (microseconds since the Unix epoch). Each line is one `write` on a
//! file opened with `O_APPEND`, so a line written before a SIGKILL survives it. Prints the
//! output and exits 0 once the execution is COMPLETED.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flux::prelude::*;

/// Tasks per execution.
const TASKS: u32 = 50;

fn micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

fn record(effects: &str, what: &str, i: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(effects)?;
    file.write_all(format!("{what} {i} {}\n", micros()).as_bytes())
}

#[flux::task]
async fn work(i: u32, effects: String) -> Result<u64, std::io::Error> {
    record(&effects, "begin", i)?;
    tokio::time::sleep(Duration::from_micros(300)).await;
    record(&effects, "end", i)?;
    Ok(u64::from(i) * 3)
}

/// The input: where the tasks record their runs.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Job {
    effects: String,
}

#[flux::workflow]
async fn torture(ctx: ExecutionContext<Job>) -> flux::Result<u64> {
    let mut sum = 0;
    for i in 0..TASKS {
        sum += work(i, ctx.input().effects.clone()).await?;
    }
    Ok(sum)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [database, effects, id, durability] = args.as_slice() else {
        eprintln!("usage: flux-torture <database> <effects-file> <execution-id> <durability>");
        return ExitCode::from(2);
    };
    let result = async {
        let durability: flux::Durability = durability.parse()?;
        let engine = Engine::open_with(database, durability)?;
        let exists = engine.store().state(id)?.is_some();
        if exists {
            torture.on(&engine).replay(id).await
        } else {
            torture.on(&engine).run_with_id(id, Job { effects: effects.clone() }).await
        }
    }
    .await;
    match result {
        Ok(execution) if execution.state() == ExecutionState::Completed => {
            println!("output: {:?}", execution.output());
            ExitCode::SUCCESS
        }
        Ok(execution) => {
            eprintln!("execution {id} ended {}", execution.state());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
