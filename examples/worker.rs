//! A worker process: runs `hello_world` and `count_slowly` for the flux server it connects to.
//!
//! ```text
//! cargo run --example worker --features flux-suite/server -- http://127.0.0.1:8000 worker-1
//! ```
//!
//! The server's bootstrap token comes from `FLUX_WORKERS__BOOTSTRAP_TOKEN` (as the server's
//! does). With several servers on one PostgreSQL database, a worker connects to any one of
//! them and runs what is submitted through all of them (see `examples/two_servers.sh`).

use std::time::Duration;

use flux::prelude::*;

#[flux::task]
async fn say_hello(name: String) -> String {
    format!("Hello, {name}")
}

#[flux::workflow]
async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

#[flux::task]
async fn count(n: u32) -> u32 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    n
}

/// Counts to its input, one second per number, one task each.
#[flux::workflow]
async fn count_slowly(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let mut last = 0;
    for n in 1..=*ctx.input() {
        last = count(n).await?;
    }
    Ok(last)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "http://127.0.0.1:8000".to_string());
    let name = args.next().unwrap_or_else(|| "worker-1".to_string());
    flux::worker::Worker::new(server).name(name).register(hello_world).register(count_slowly).run().await?;
    Ok(())
}
