//! `flux-test-server`: a flux server process for the chaos test (`tests/chaos.rs`), configured
//! like any flux server (`FLUX_HOME`, `FLUX_DATABASE_URL`, `FLUX_WORKERS__*`, ...).
//!
//! ```text
//! flux-test-server <port>
//! ```
//!
//! Prints `listening on <url>` once it accepts connections, then serves until killed.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    flux_suite::log_to_stderr();
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: flux-test-server <port>");
            return ExitCode::from(2);
        }
    };
    let served = async {
        let config = flux::Config::load()?;
        let server = flux::server::Server::from_config(config).bind(("127.0.0.1", port)).await?;
        println!("listening on {}", server.url());
        server.wait().await
    };
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flux-test-server: {e}");
            ExitCode::FAILURE
        }
    }
}
