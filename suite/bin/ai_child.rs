//! An agent run in a process of its own, for the tests that kill it.
//!
//! ```text
//! flux-ai-child run <home> <execution-id> <provider-url>     # start the execution
//! flux-ai-child replay <home> <execution-id> <provider-url>  # continue it
//! ```
//!
//! The agent (model `openai/crash` at the OpenAI-compatible `provider-url`, key from
//! `FLUX_TEST_MODEL_KEY`) has two tools: `record`, which appends `record <note>` to the ledger (the file `FLUX_AI_LEDGER`),
//! and `wait`, which appends `waiting` and then, with `FLUX_AI_BLOCK=1`, sleeps for a minute: a
//! test kills the process there.

use std::io::Write as _;
use std::time::Duration;

use flux::ai::{ProviderSettings, Providers};
use flux::prelude::*;

fn append(file: &str, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    writeln!(f, "{line}")?;
    f.sync_data()
}

/// Writes a note in the ledger.
#[flux::task]
async fn record(note: String) -> Result<String, std::io::Error> {
    let ledger = std::env::var("FLUX_AI_LEDGER").unwrap_or_default();
    append(&ledger, &format!("record {note}"))?;
    Ok(format!("recorded {note}"))
}

/// Waits for the world.
#[flux::task]
async fn wait() -> Result<String, std::io::Error> {
    let ledger = std::env::var("FLUX_AI_LEDGER").unwrap_or_default();
    append(&ledger, "waiting")?;
    if std::env::var("FLUX_AI_BLOCK").is_ok_and(|v| v == "1") {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok("waited".to_string())
}

#[flux::workflow]
async fn crashing_agent(_ctx: ExecutionContext<()>) -> flux::Result<String> {
    flux::ai::agent("You keep records.")
        .model("openai/crash")
        .name("clerk")
        .stream(false)
        .tools([record::tool(), wait::tool()])
        .call("Record a note, then wait.")
        .await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, home, id, url] = args.as_slice() else {
        eprintln!("usage: flux-ai-child run|replay <home> <execution-id> <provider-url>");
        return std::process::ExitCode::from(2);
    };
    let engine = match Engine::open(std::path::Path::new(home).join("flux.db")) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let settings = ProviderSettings::new().base_url(url.clone()).api_key_env("FLUX_TEST_MODEL_KEY");
    let engine = engine.with_state(Providers::new().provider("openai", settings));
    let result = match mode.as_str() {
        "run" => crashing_agent.on(&engine).run_with_id(id.as_str(), ()).await,
        "replay" => crashing_agent.on(&engine).replay(id).await,
        _ => {
            eprintln!("unknown mode `{mode}`");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(execution) => {
            println!("state: {}", execution.state());
            if let Some(output) = execution.output() {
                println!("output: {output}");
            }
            if let Some(error) = execution.error() {
                println!("error: {error}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
