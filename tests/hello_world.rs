//! The hello_world example, run as a user would: two separate processes on `.flux/flux.db`.

use std::process::Command;

fn run_example(dir: &std::path::Path) -> String {
    let out = Command::new(flux_suite::example("hello_world"))
        .current_dir(dir)
        .env_remove("FLUX_HOME")
        .env_remove("FLUX_DATABASE_URL")
        .env_remove("FLUX_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The event lines of the example's output: (type, source id).
fn events(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .skip_while(|l| *l != "events:")
        .skip(1)
        .map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            (parts.next().unwrap().to_string(), parts.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn hello_world_prints_its_output_and_events_with_a_stable_task_id() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_example(dir.path());
    let second = run_example(dir.path());
    assert!(dir.path().join(".flux/flux.db").exists(), "the default engine stores in .flux/flux.db");

    let mut task_ids = Vec::new();
    for stdout in [&first, &second] {
        assert!(stdout.starts_with("output: Hello, World\n"), "{stdout}");
        let events = events(stdout);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"]);
        let task_id = &events[1].1;
        let hex = task_id.strip_prefix("say_hello_").expect("task id starts with the task name");
        assert!(hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{task_id}");
        assert_eq!(&events[2].1, task_id);
        task_ids.push(task_id.clone());
    }
    assert_eq!(task_ids[0], task_ids[1], "the same call gets the same id in another process");
    assert_eq!(task_ids[0], "say_hello_d5a59662e4644e1f");
}
