//! The examples run and print what they promise.

use std::process::Command;

fn run(name: &str, dir: &std::path::Path) -> String {
    run_with(name, &[], dir)
}

fn run_with(name: &str, args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new(flux_suite::example(name))
        .args(args)
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
fn terminal_errors_example_retries_a_timeout_and_stops_at_a_declined_card() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("terminal_errors", dir.path());
    assert!(out.contains("attempt 3\n  -> receipt for 2500 cents"), "{out}");
    let declined = &out[out.find("a declined card:").unwrap()..];
    assert!(declined.contains("attempt 1") && !declined.contains("attempt 2"), "{out}");
    assert!(declined.contains("-> FAILED (card declined: insufficient funds)"), "{out}");
    assert!(declined.contains("terminal: true, a PaymentError: true"), "{out}");
}

#[test]
fn steps_and_state_example_runs_each_step_once_across_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("steps_and_state", dir.path());
    assert_eq!(out.matches("reserved 2 lamp, 3 left").count(), 1, "{out}");
    assert_eq!(out.matches("charging for 2 lamp").count(), 1, "{out}");
    assert!(out.contains("PAUSED at `confirm`"), "{out}");
    assert!(out.contains("output: receipt for 2 lamp (3 left, confirmed: true)"), "{out}");
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

#[test]
fn composition_examples_print_their_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("parallel", dir.path());
    assert!(out.contains("output: user 7: 21 orders; stock 10, 20, (sku 3 is discontinued), 40, 50"), "{out}");
    let out = run("pipeline", dir.path());
    assert!(out.contains("output: 49") && out.contains("add_three  input 4"), "{out}");
    let out = run("map", dir.path());
    assert!(out.contains("output: 333833500") && out.contains("events: 2004"), "{out}");
}

#[test]
fn pause_resume_example_pauses_then_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("pause_resume", dir.path());
    assert!(out.contains("paused at `manager_approval`, showing: 120 EUR, due in 30 days"), "{out}");
    assert!(out.contains("output: booked: 120 EUR, due in 30 days"), "{out}");
}

#[test]
fn cancel_example_rolls_back_the_running_task() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("cancel", dir.path());
    assert!(out.contains("(rollback: released the reservation of order 42)"), "{out}");
    assert!(out.contains("state: CANCELLED") && out.contains("TASK_CANCELLED"), "{out}");
    assert!(!out.contains("queued for later"), "{out}");
}

#[test]
fn progress_example_streams_progress_that_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("progress", dir.path());
    assert!(out.contains("progress: frame 5/5") && out.contains("stored events: 4 (no progress)"), "{out}");
}

#[test]
fn builtins_and_subworkflow_examples_complete() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("builtins", dir.path());
    assert!(out.contains("COMPLETED") && out.contains("dice="), "{out}");
    let out = run("subworkflow", dir.path());
    assert!(out.contains(r#"output: ["reserved 7", "packed 7", "notified 7"]"#), "{out}");
}

#[test]
fn queues_example_sends_twenty_emails_three_at_a_time_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("queues", dir.path());
    assert!(out.contains("submitted 20; "), "{out}");
    let sent: Vec<&str> = out.lines().filter(|l| l.starts_with("sent to user")).collect();
    assert_eq!(sent.len(), 20, "{out}");
    for (n, line) in sent.iter().enumerate() {
        assert!(line.starts_with(&format!("sent to user{}@example.com ", n + 1)), "in order: {out}");
        assert!(line.contains("COMPLETED"), "{out}");
    }
    assert!(out.contains("at most 3 at once (limit 3)"), "{out}");
}

#[test]
fn messages_example_pays_one_checkout_once_and_expires_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("messages", dir.path());
    assert!(out.contains("order 1 says: waiting for payment"), "{out}");
    assert!(out.contains("payment sent: delivered true, then delivered false"), "{out}");
    assert!(out.contains("COMPLETED: order 1: charged 2500 cents"), "{out}");
    assert!(out.contains("COMPLETED: order 2: no payment within 3 s, expired"), "{out}");
    assert!(out.contains("order 1 says: order 1: charged 2500 cents"), "{out}");
}

#[cfg(feature = "schedule")]
#[test]
fn schedules_example_prints_five_fires_a_second_apart() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("schedules", dir.path());
    let fires: Vec<&str> = out.lines().filter(|l| l.starts_with("heartbeat_demo_")).collect();
    assert_eq!(fires.len(), 5, "{out}");
    let seconds: Vec<u32> = fires
        .iter()
        .map(|l| {
            assert!(l.ends_with("COMPLETED  heartbeat: all systems nominal"), "{out}");
            let time = l.split_whitespace().next().unwrap().trim_start_matches("heartbeat_demo_");
            let t = humantime::parse_rfc3339(time).unwrap();
            (t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 100_000) as u32
        })
        .collect();
    assert!(seconds.windows(2).all(|w| w[1] == w[0] + 1), "one a second: {out}");
    assert!(out.contains("5 fires in all; the schedule has ended"), "{out}");
}

#[cfg(feature = "server")]
#[test]
fn server_worker_example_runs_through_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("server_worker", dir.path());
    assert!(out.contains("2. worker registered; the catalog is hello_world v1"), "{out}");
    assert!(out.contains("3. run/sync -> state COMPLETED output \"Hello, World\""), "{out}");
    let stream: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("state: ").or_else(|| l.trim().strip_prefix("progress: ")))
        .collect();
    assert_eq!(stream, ["SCHEDULED", "CLAIMED", "RUNNING", "greeting Stream", "COMPLETED"], "{out}");
    assert!(
        out.contains(
            "WORKFLOW_SCHEDULED, WORKFLOW_CLAIMED, WORKFLOW_STARTED, TASK_STARTED, TASK_COMPLETED, WORKFLOW_COMPLETED"
        ),
        "{out}"
    );
    assert!(out.contains("6. server stopped"), "{out}");
}

#[test]
fn versioning_example_refuses_the_unpatched_change_and_patches_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("versioning", dir.path());
    assert!(out.contains("-> PAUSED at `approve`"), "{out}");
    assert!(out.contains("-> refused: execution"), "{out}");
    assert!(out.contains("no longer matches its log"), "{out}");
    assert!(out.contains("stored state is still PAUSED"), "{out}");
    assert!(out.contains("-> COMPLETED: reserved lamp (approved: true)"), "{out}");
    assert!(out.contains("-> COMPLETED: reserved desk from north (approved: true)"), "{out}");
    assert_eq!(out.matches("reserve(lamp) ran").count(), 1, "the old call ran once: {out}");
}

#[cfg(feature = "server")]
#[test]
fn client_example_drives_a_server_typed() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("client", dir.path());
    assert!(out.contains("1. workflows: checkout v1, refund v1, restock v1"), "{out}");
    assert!(out.contains("2. run: order 1 packed (2 items)"), "{out}");
    assert!(out.contains("3. start + status: PAUSED asks \"refund 40 EUR?\""), "{out}");
    assert!(out.contains("   resume: refund of 40 EUR: yes"), "{out}");
    let stream: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("4. stream:"))
        .skip(1)
        .take_while(|l| l.starts_with("   "))
        .map(str::trim)
        .collect();
    assert_eq!(
        stream,
        ["RUNNING", "progress: 1/3", "progress: 2/3", "progress: 3/3", "COMPLETED: order 2 packed (3 items)"],
        "{out}"
    );
    assert!(out.contains("5. cancel: CANCELLED (cancelled)"), "{out}");
    assert!(out.contains("6. a bad input: invalid_input (HTTP 422)"), "{out}");
    assert!(out.contains("7. executions: 4 in all"), "{out}");
    assert!(out.contains("8. server stopped"), "{out}");
}

#[cfg(feature = "mcp")]
#[test]
fn mcp_client_example_calls_tools_and_resumes_without_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("mcp_client", dir.path());
    assert!(out.contains("state: PAUSED") && out.contains("server stopped after 2 tool calls"), "{out}");
    let resumed = &out[out.find("server stopped").unwrap()..];
    assert!(resumed.contains("state: COMPLETED\ntools: 3\n  add -> 42\n"), "{out}");
    assert!(
        resumed.contains("fail failed (terminal: true): MCP tool `fail` of server `calc` failed: out of paper"),
        "{out}"
    );
}

#[cfg(feature = "mcp")]
#[test]
fn mcp_server_example_prints_an_assistant_config_and_checks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(flux_suite::example("mcp_server"))
        .current_dir(dir.path())
        .env("FLUX_MCP_EXAMPLE_CHECK", "1")
        .env_remove("FLUX_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"mcpServers\""), "{stdout}");
    assert!(stdout.contains("\"Authorization\": \"Bearer change-me-admin-token\""), "{stdout}");
    assert!(stdout.contains("check: 31 tools, the workflow's own: order_book, order_book_async, resume_order_book, resume_order_book_async, status_order_book"), "{stdout}");
    assert!(stdout.contains("check: order_book -> \"COMPLETED\" \"ordered 2 x \\\"Dune\\\"\""), "{stdout}");
    assert!(stdout.contains("check: done"), "{stdout}");
}

#[cfg(feature = "ai")]
#[test]
fn agent_example_researches_with_a_tool_then_streams_the_article() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("agent", dir.path());
    let journal: Vec<&str> = out.lines().filter(|l| l.starts_with("TASK_") || l.starts_with("WORKFLOW_")).collect();
    let journal: Vec<String> = journal.iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    let expected = [
        "WORKFLOW_STARTED research_and_write",
        "TASK_STARTED researcher",
        "TASK_STARTED llm_0",
        "TASK_COMPLETED llm_0",
        "TASK_STARTED search_notes",
        "TASK_COMPLETED search_notes",
        "TASK_STARTED llm_1",
        "TASK_COMPLETED llm_1",
        "TASK_COMPLETED researcher",
        "TASK_STARTED writer",
        "TASK_STARTED llm_0",
        "TASK_COMPLETED llm_0",
        "TASK_COMPLETED writer",
        "WORKFLOW_COMPLETED research_and_write",
    ];
    assert_eq!(journal, expected, "{out}");
    assert!(out.contains("  tokens: Work that survives a crash"), "{out}");
    assert!(out.contains("streamed 61 tokens; stored: 14 events, 0 of them progress"), "{out}");
    assert!(out.contains("model requests: 3\n"), "{out}");
    assert!(out.contains(": COMPLETED"), "{out}");
    assert!(dir.path().join(".flux/flux.db").exists(), "the execution is stored on the default engine");
}

#[cfg(feature = "ai")]
#[test]
fn agent_chat_example_remembers_and_pauses_for_approval() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("agent_chat", dir.path());
    assert!(
        out.contains("PAUSED: agent `support` asks to call `issue_refund` with {\"cents\":2599,\"order\":1042}\nresuming: approved"),
        "{out}"
    );
    assert!(out.contains("support:  It was order 1042, the lamp with the cracked shade."), "{out}");
    assert!(out.contains("support:  Done: $25.99 for order 1042 is on its way back to you."), "{out}");
    assert!(out.contains("tasks: llm_0 wm_memorize_0 wm_memorize_1 llm_0 wm_memorize_2 wm_memorize_3 llm_0 pause issue_refund llm_1 wm_memorize_4 wm_memorize_5\n"), "{out}");
    assert!(out.contains("refunds issued: 1\nmodel requests: 4\n"), "{out}");

    let out = run_with("agent_chat", &["--reject"], dir.path());
    assert!(out.contains("resuming: rejected"), "{out}");
    assert!(out.contains("support:  I could not issue the refund"), "{out}");
    assert!(out.contains("refunds issued: 0\n"), "{out}");
}
