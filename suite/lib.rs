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
