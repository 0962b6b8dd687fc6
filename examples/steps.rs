//! Runs one workflow of N trivial tasks on the default engine and reports what it cost.
//!
//! ```text
//! cargo run --release --example steps -- 1000
//! ```
//!
//! Prints the wall time per step and the size of the database directory afterwards (the
//! database file, its write-ahead log and the WAL index).

use std::time::Instant;

use flux_suite::steps;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let start = Instant::now();
    let execution = match steps.run(n).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let elapsed = start.elapsed();
    println!("state: {}", execution.state());
    println!("events: {}", execution.events().len());
    println!("per step: {:.1} µs", elapsed.as_secs_f64() * 1e6 / f64::from(n.max(1)));
    // The database file plus its write-ahead log (and the shared-memory index).
    let home = std::env::var("FLUX_HOME").unwrap_or_else(|_| ".flux".into());
    let size: u64 = std::fs::read_dir(&home)
        .map(|dir| dir.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    println!("{home}/ holds {size} bytes");
    std::process::ExitCode::SUCCESS
}
