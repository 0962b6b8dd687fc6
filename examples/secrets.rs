//! Secrets: stored encrypted in `.flux/flux.db`, injected into a task, never recorded.
//!
//! ```text
//! cargo run --example secrets
//! ```
//!
//! The key is the file `.flux/encryption.key` (created on first use, mode 0600), unless
//! `FLUX_SECURITY__ENCRYPTION_KEY` or `[flux.security] encryption_key` in `flux.toml` sets one.

use flux::prelude::*;
use flux::secrets::{self, Secrets};

#[flux::task(secret_requests = ["WEATHER_API_KEY"])]
async fn forecast(city: String, secrets: Secrets) -> Result<String, String> {
    let key = secrets.get("WEATHER_API_KEY").ok_or("no API key")?;
    // A real task would call the API with the key; this one only shows that it has it.
    Ok(format!("sunny in {city} (asked with a {}-character key)", key.len()))
}

#[flux::workflow]
async fn weather(ctx: ExecutionContext<String>) -> flux::Result<String> {
    forecast(ctx.input().clone()).await
}

#[tokio::main]
async fn main() -> flux::Result<()> {
    let engine = Engine::global()?;
    secrets::set(&engine, "WEATHER_API_KEY", "demo-key-0123456789")?;
    println!("secrets: {:?}", secrets::list(&engine)?);
    let execution = weather.run("Lisbon".to_string()).await?;
    println!("output: {}", execution.output().map_or("-", String::as_str));
    // The recorded arguments hold the city only.
    println!("TASK_STARTED args: {:?}", execution.events()[1].value::<(String,)>()?);
    secrets::remove(&engine, "WEATHER_API_KEY")?;
    let execution = weather.run("Oslo".to_string()).await?;
    println!("without the secret: {}", execution.error().map_or_else(String::new, ToString::to_string));
    Ok(())
}
