//! `flux-test-worker`: a worker process for the integration tests of server mode
//! (`tests/workers.rs`), configured by environment variables.
//!
//! | variable | meaning |
//! |---|---|
//! | `FLUX_TEST_SERVER` | the server's URL (required) |
//! | `FLUX_TEST_WORKER_NAME` | the worker's name (default: host name and process id) |
//! | `FLUX_WORKERS__BOOTSTRAP_TOKEN` | the bootstrap token (read by the worker from its configuration) |
//! | `FLUX_TEST_SIDE_EFFECTS` | a file every task run appends lines to (`step 1 start`, `step 1 done`) |
//! | `FLUX_TEST_SLOW_STEP` | `n`: step `n` sleeps 60 s after writing its start line |
//! | `FLUX_TEST_HEARTBEAT_MS` | how often claims are renewed (default: the configured interval) |
//! | `FLUX_TEST_STEP_MS` | how long each `step` sleeps (default: not at all) |
//! | `FLUX_TEST_MAX_CONCURRENCY` | how many executions the worker runs at once (default: the worker's) |
//!
//! Workflows: `hello_world(String) -> String`, `three_steps(String) -> String` (three calls of
//! `step`, `"a"` gives `"a:1:2:3"`), `approval(String) -> String` (pauses at `approval` and
//! joins the input with the answer), `sleeper(u64)` (one task sleeping that many milliseconds).
//! Logs go to standard error (`RUST_LOG`, default `info`).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use flux::prelude::*;

/// Appends one line to the side-effect file, if there is one. Each line is a single `write` on
/// a file opened with `O_APPEND`, so a process killed right after it keeps the line.
fn side_effect(line: &str) {
    let Some(path) = std::env::var_os("FLUX_TEST_SIDE_EFFECTS") else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the side-effect file {}: {e}", path.to_string_lossy()));
    file.write_all(format!("{line}\n").as_bytes()).expect("the side-effect line is written");
    file.flush().expect("the side-effect file is flushed");
}

/// Whether step `n` is the slow one (`FLUX_TEST_SLOW_STEP`).
fn is_slow(n: u32) -> bool {
    std::env::var("FLUX_TEST_SLOW_STEP").ok().and_then(|v| v.trim().parse::<u32>().ok()) == Some(n)
}

#[flux::task]
async fn say_hello(name: String) -> String {
    side_effect("say_hello start");
    let greeting = format!("Hello, {name}");
    side_effect("say_hello done");
    greeting
}

#[flux::workflow]
async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

#[flux::task]
async fn step(n: u32, input: String) -> String {
    side_effect(&format!("step {n} start"));
    if is_slow(n) {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    if let Some(ms) = std::env::var("FLUX_TEST_STEP_MS").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    side_effect(&format!("step {n} done"));
    format!("{input}:{n}")
}

#[flux::workflow]
async fn three_steps(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let one = step(1, ctx.input().clone()).await?;
    let two = step(2, one).await?;
    step(3, two).await
}

/// The connection to the ledger (`FLUX_TEST_LEDGER_URL`): a table `ledger (execution, step)`
/// in a PostgreSQL database, where each run of a `five_steps` step adds a row.
#[cfg(feature = "postgres")]
static LEDGER: tokio::sync::OnceCell<Option<tokio_postgres::Client>> = tokio::sync::OnceCell::const_new();

/// Adds a row for step `n` of `execution` to the ledger, if there is one.
#[cfg(feature = "postgres")]
async fn ledger(execution: &str, n: u32) {
    let client = LEDGER
        .get_or_init(|| async {
            let url = std::env::var("FLUX_TEST_LEDGER_URL").ok()?;
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the ledger: {e}"));
            tokio::spawn(connection);
            Some(client)
        })
        .await;
    if let Some(client) = client {
        client
            .execute(
                "INSERT INTO ledger (execution, step) VALUES ($1, $2)",
                &[&execution, &i32::try_from(n).unwrap_or(0)],
            )
            .await
            .unwrap_or_else(|e| panic!("cannot write to the ledger: {e}"));
    }
}

#[cfg(not(feature = "postgres"))]
async fn ledger(_execution: &str, _n: u32) {}

#[flux::task]
async fn ledger_step(execution: String, n: u32, input: String) -> String {
    if let Some(ms) = std::env::var("FLUX_TEST_STEP_MS").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    ledger(&execution, n).await;
    format!("{input}:{n}")
}

/// Five steps, each adding a row to the ledger.
#[flux::workflow]
async fn five_steps(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let id = ctx.execution_id().to_string();
    let mut value = ctx.input().clone();
    for n in 1..=5 {
        value = ledger_step(id.clone(), n, value).await?;
    }
    Ok(value)
}

#[flux::task]
async fn report_progress(n: u32) -> u32 {
    for i in 1..=n {
        flux::progress(format!("{i} of {n}")).await;
    }
    n
}

/// A task reporting its progress `n` times.
#[flux::workflow]
async fn progressing(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    report_progress(*ctx.input()).await
}

#[flux::workflow]
async fn approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let answer: String = flux::pause("approval").await?;
    Ok(format!("{}:{answer}", ctx.input()))
}

#[flux::task]
async fn sleep_for(millis: u64) -> u64 {
    side_effect("sleep_for start");
    tokio::time::sleep(Duration::from_millis(millis)).await;
    side_effect("sleep_for done");
    millis
}

#[flux::workflow]
async fn sleeper(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    sleep_for(*ctx.input()).await
}

#[tokio::main]
async fn main() -> ExitCode {
    flux_suite::log_to_stderr();
    let Ok(server) = std::env::var("FLUX_TEST_SERVER") else {
        eprintln!("flux-test-worker: set FLUX_TEST_SERVER to the server's URL");
        return ExitCode::from(2);
    };
    let mut worker = flux::worker::Worker::new(server)
        .register(hello_world)
        .register(three_steps)
        .register(five_steps)
        .register(progressing)
        .register(approval)
        .register(sleeper);
    if let Ok(name) = std::env::var("FLUX_TEST_WORKER_NAME") {
        worker = worker.name(name);
    }
    if let Some(n) = std::env::var("FLUX_TEST_MAX_CONCURRENCY").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        worker = worker.max_concurrency(n);
    }
    if let Some(ms) = std::env::var("FLUX_TEST_HEARTBEAT_MS").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        worker = worker.heartbeat_interval(Duration::from_millis(ms));
    }
    match worker.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flux-test-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
