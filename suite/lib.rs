//! Shared helpers of the examples, integration tests and benchmarks of flux (not published).

use std::path::PathBuf;

use flux::{Event, EventType};

/// The event types of a log, in order.
pub fn kinds(events: &[Event]) -> Vec<EventType> {
    events.iter().map(Event::kind).collect()
}

/// The path of a compiled example of this package (`cargo test` builds examples next to the
/// test binaries: `target/<profile>/examples/<name>`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "example `{name}` is not built at {}; run the tests with cargo test", path.display());
    path
}

/// A trivial task: the unit of work of the benchmarks.
#[flux::task]
pub async fn step(i: u32) -> u32 {
    i
}

/// Runs `step(0)`, `step(1)`, ... `step(n - 1)` one after another and sums the results.
#[flux::workflow]
pub async fn steps(ctx: flux::ExecutionContext<u32>) -> flux::Result<u64> {
    let mut sum = 0u64;
    for i in 0..*ctx.input() {
        sum += u64::from(step(i).await?);
    }
    Ok(sum)
}
