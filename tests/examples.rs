//! The examples run and print what they promise.

use std::process::Command;

fn run(name: &str, dir: &std::path::Path) -> String {
    let out = Command::new(flux_suite::example(name))
        .current_dir(dir)
        .env_remove("FLUX_HOME")
        .env_remove("FLUX_DATABASE_URL")
        .env_remove("FLUX_CONFIG")
        .env_remove("FLUX_SECURITY__ENCRYPTION_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn retries_example_shows_growing_delays() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("retries", dir.path());
    assert!(out.contains("output: 200 OK from https://example.test/data"), "{out}");
    assert!(out.contains("attempt 1 after 0.1s") && out.contains("attempt 2 after 0.2s"), "{out}");
}

#[test]
fn fallback_rollback_example_uses_both() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("fallback_rollback", dir.path());
    assert!(out.contains("(rollback: released 3 x widgets)"), "{out}");
    assert!(out.contains("priced widgets at 42 from yesterday's price list"), "{out}");
    assert!(out.contains("TASK_FALLBACK_COMPLETED") && out.contains("TASK_ROLLBACK_COMPLETED"), "{out}");
}

#[test]
fn secrets_example_injects_and_names_missing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("secrets", dir.path());
    assert!(out.contains("output: sunny in Lisbon (asked with a 19-character key)"), "{out}");
    assert!(out.contains("needs secrets that are not set: WEATHER_API_KEY"), "{out}");
    assert!(dir.path().join(".flux/encryption.key").exists());
}
