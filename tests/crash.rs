//! Crash recovery with real processes: the `crash_steps` example is SIGKILLed in the middle of a
//! task, then a new process replays the execution.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flux::{EventType, ExecutionState};
use flux_suite::{Place, example};

/// The example, at home in `home`, storing its executions in `place`.
fn command(home: &Path, place: &Place) -> Command {
    let mut cmd = Command::new(example("crash_steps"));
    cmd.env("FLUX_HOME", home)
        .env("FLUX_DATABASE_URL", place.database_url())
        .env_remove("FLUX_SLOW_STEP")
        .env_remove("FLUX_CONFIG");
    // A lease short enough for `recover` to take a killed process's execution over quickly.
    cmd.env("FLUX_LEASE_MS", LEASE_MS.to_string());
    cmd.current_dir(home);
    cmd
}

/// The lease of the example's engine.
const LEASE_MS: u64 = 2000;

fn run_ok(cmd: &mut Command) -> String {
    let Output { status, stdout, stderr } = cmd.output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(status.success(), "exit {status}\nstdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&stderr));
    stdout
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect()
}

/// Starts the workflow with step `slow` sleeping, waits until that step has started, and kills
/// the process with SIGKILL.
fn kill_during_step(home: &Path, place: &Place, id: &str, file: &Path, slow: u32) {
    kill_during(command(home, place), place, id, file, slow);
}

/// [`kill_during_step`] with the process `cmd` starts.
fn kill_during(mut cmd: Command, place: &Place, id: &str, file: &Path, slow: u32) {
    let mut child = cmd
        .args(["run", id, file.to_str().expect("utf-8 path")])
        .env("FLUX_SLOW_STEP", slow.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example starts");
    let marker = format!("start {slow}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines(file).contains(&marker) {
        assert!(Instant::now() < deadline, "step {slow} never started");
        assert!(child.try_wait().expect("wait").is_none(), "the process ended before step {slow} started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Wait until the step's TASK_STARTED is stored too, so that the replay below is a restart
    // of a started task, not a first start.
    let engine = place.open();
    loop {
        let stored = engine.store().load(id).expect("load");
        let started = stored.map_or(0, |s| s.events.iter().filter(|e| e.kind() == EventType::TaskStarted).count());
        if started == slow as usize {
            break;
        }
        assert!(Instant::now() < deadline, "TASK_STARTED of step {slow} was never stored");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    assert!(!status.success(), "the process was killed, not finished");
}

#[test]
fn killed_during_task_2_replays_without_rerunning_task_1() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("effects.txt");
        kill_during_step(dir.path(), &place, "crash-2", &file, 2);
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2"]);

        let stdout = run_ok(command(dir.path(), &place).args(["replay", "crash-2"]));
        assert!(stdout.contains("state: COMPLETED"), "{stdout}");
        assert!(stdout.contains("output: [10, 20, 30]"), "{stdout}");
        // Task 1 ran exactly once; task 2 ran again because its result was never recorded.
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2", "start 2", "done 2", "start 3", "done 3"]);

        // The stored log: one TASK_STARTED per task (none written twice), three completions.
        let engine = place.open();
        let stored = engine.store().load("crash-2").unwrap().expect("stored");
        assert_eq!(stored.state, ExecutionState::Completed);
        use EventType::*;
        assert_eq!(
            flux_suite::kinds(&stored.events),
            [
                WorkflowStarted,
                TaskStarted,
                TaskCompleted,
                TaskStarted,
                TaskCompleted,
                TaskStarted,
                TaskCompleted,
                WorkflowCompleted
            ]
        );
        let seqs: Vec<u64> = stored.events.iter().map(|e| e.seq()).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    }
}

#[test]
fn killed_during_inline_step_2_replays_without_rerunning_step_1() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("effects.txt");
        let inline = || {
            let mut cmd = command(dir.path(), &place);
            cmd.env("FLUX_INLINE_STEPS", "1");
            cmd
        };
        kill_during(inline(), &place, "inline-2", &file, 2);
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2"]);

        let stdout = run_ok(inline().args(["replay", "inline-2"]));
        assert!(stdout.contains("state: COMPLETED") && stdout.contains("output: [10, 20, 30]"), "{stdout}");
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2", "start 2", "done 2", "start 3", "done 3"]);
        let engine = place.open();
        let stored = engine.store().load("inline-2").unwrap().expect("stored");
        let started: Vec<&str> =
            stored.events.iter().filter(|e| e.kind() == EventType::TaskStarted).map(|e| e.name()).collect();
        assert_eq!(started, ["inline_1", "inline_2", "inline_3"], "one TASK_STARTED per step, none written twice");
        assert_eq!(stored.events.len(), 8);
    }
}

#[test]
fn a_new_process_recovers_a_killed_execution_once_its_lease_has_run_out() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("effects.txt");
        kill_during_step(dir.path(), &place, "lost-2", &file, 2);
        let killed = Instant::now();

        // The dead process renewed its lease until it was killed: for now nothing is taken over.
        let early = run_ok(command(dir.path(), &place).arg("recover"));
        if killed.elapsed() < Duration::from_millis(LEASE_MS / 2) {
            assert!(early.contains("nothing to recover"), "{early}");
            assert_eq!(lines(&file), ["start 1", "done 1", "start 2"]);
        }

        // A new process that names no execution continues it once the lease has run out.
        let stdout = run_ok(command(dir.path(), &place).args(["recover", "60"]));
        assert!(stdout.contains("recovered lost-2: COMPLETED"), "{stdout}");
        assert!(killed.elapsed() >= Duration::from_millis(LEASE_MS / 3), "taken over before the lease ran out");
        // Task 1 ran once; task 2, whose result was never recorded, ran again.
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2", "start 2", "done 2", "start 3", "done 3"]);
        let status = run_ok(command(dir.path(), &place).args(["status", "lost-2"]));
        assert!(status.contains("state: COMPLETED") && status.contains("output: [10, 20, 30]"), "{status}");
        let engine = place.open();
        let stored = engine.store().load("lost-2").unwrap().expect("stored");
        let completed = stored.events.iter().filter(|e| e.kind() == EventType::TaskCompleted).count();
        assert_eq!((stored.events.len(), completed), (8, 3));
        // Nothing is left for another recovery.
        assert!(run_ok(command(dir.path(), &place).arg("recover")).contains("nothing to recover"));
    }
}

#[test]
fn batched_mode_killed_during_task_2_keeps_a_prefix_of_the_log_and_completes() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("effects.txt");
        // TASK_STARTED of task 2 reaches the disk through a batch commit: the log is a prefix of
        // what was recorded, so task 1's TASK_COMPLETED, recorded before it, is there too.
        std::fs::write(dir.path().join("flux.toml"), "[flux]\ndurability = \"batched\"\n").unwrap();
        kill_during_step(dir.path(), &place, "batched-2", &file, 2);
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2"]);

        let stdout = run_ok(command(dir.path(), &place).args(["replay", "batched-2"]));
        assert!(stdout.contains("state: COMPLETED"), "{stdout}");
        assert!(stdout.contains("output: [10, 20, 30]"), "{stdout}");
        assert_eq!(lines(&file), ["start 1", "done 1", "start 2", "start 2", "done 2", "start 3", "done 3"]);

        let engine = place.open();
        let stored = engine.store().load("batched-2").unwrap().expect("stored");
        assert_eq!(stored.state, ExecutionState::Completed);
        let seqs: Vec<u64> = stored.events.iter().map(|e| e.seq()).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
        let completed = stored.events.iter().filter(|e| e.kind() == EventType::TaskCompleted).count();
        assert_eq!(completed, 3);
    }
}

#[test]
fn killed_inside_task_1_leaves_a_running_execution_that_completes() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("effects.txt");
        kill_during_step(dir.path(), &place, "crash-1", &file, 1);

        let status = run_ok(command(dir.path(), &place).args(["status", "crash-1"]));
        assert!(status.contains("state: RUNNING"), "{status}");

        let stdout = run_ok(command(dir.path(), &place).args(["replay", "crash-1"]));
        assert!(stdout.contains("state: COMPLETED"), "{stdout}");
        assert!(stdout.contains("output: [10, 20, 30]"), "{stdout}");
        assert_eq!(lines(&file), ["start 1", "start 1", "done 1", "start 2", "done 2", "start 3", "done 3"]);

        // Replaying the finished execution runs nothing and writes nothing.
        let before = place.open().store().load("crash-1").unwrap().unwrap().events.len();
        let again = run_ok(command(dir.path(), &place).args(["replay", "crash-1"]));
        assert!(again.contains("output: [10, 20, 30]"), "{again}");
        let after = place.open().store().load("crash-1").unwrap().unwrap().events.len();
        assert_eq!(before, after);
        assert_eq!(lines(&file).len(), 7);
    }
}

#[test]
fn two_processes_share_one_database() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = ["a", "b"]
            .iter()
            .map(|id| {
                let file = dir.path().join(format!("effects-{id}.txt"));
                command(dir.path(), &place)
                    .args(["run", id, file.to_str().unwrap(), "300"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("the example starts")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("finished");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains("state: COMPLETED"), "{stdout}");
            assert!(stdout.contains("events: 602"), "{stdout}");
        }
        let engine = place.open();
        for id in ["a", "b"] {
            let stored = engine.store().load(id).unwrap().expect("stored");
            assert_eq!(stored.state, ExecutionState::Completed);
            assert_eq!(stored.events.len(), 602);
            assert_eq!(lines(&dir.path().join(format!("effects-{id}.txt"))).len(), 600);
        }
    }
}

/// What `crash_steps event <id> stage` prints, run as a process of its own (its error, before
/// the execution is stored).
fn stage(home: &Path, place: &Place, id: &str) -> String {
    let out = command(home, place).args(["event", id, "stage"]).output().expect("the example runs");
    let text = if out.status.success() { out.stdout } else { out.stderr };
    String::from_utf8_lossy(&text).trim().to_string()
}

/// Polls `read` (another process each time) until it gives `expected`.
fn wait_for_output(expected: &str, mut read: impl FnMut() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = read();
        if seen == expected {
            return;
        }
        assert!(Instant::now() < deadline, "never saw `{expected}`; last: `{seen}`");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_after_a_receive_the_replay_gets_the_same_message_and_no_other() {
    for place in flux_suite::places() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let file = home.join("effects.txt");
        let id = "receives";
        let mut child = command(home, &place)
            .args(["run", id, file.to_str().expect("utf-8 path"), "2"])
            .env("FLUX_RECV", "1")
            .env("FLUX_SLOW_STEP", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts");

        // Another process reads the event the running workflow set, then sends it its message.
        wait_for_output("stage: waiting for a bonus", || stage(home, &place, id));
        run_ok(command(home, &place).args(["send", id, "bonus", "7"]));
        wait_for_output("stage: received bonus 7", || stage(home, &place, id));

        // Step 1 has started (its TASK_STARTED stored); a second message waits, unreceived.
        let engine = place.open();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stored = engine.store().load(id).expect("load").expect("stored");
            let step = |e: &&flux::Event| e.kind() == EventType::TaskStarted && e.name() == "step";
            if lines(&file) == ["start 1"] && stored.events.iter().filter(step).count() == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "step 1 never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        run_ok(command(home, &place).args(["send", id, "bonus", "8"]));
        child.kill().expect("SIGKILL");
        assert!(!child.wait().expect("reaped").success(), "the process was killed, not finished");

        // The replay answers the receive from the log: 7 again, not the 8 waiting behind it.
        let stdout = run_ok(command(home, &place).env("FLUX_RECV", "1").args(["replay", id]));
        assert!(stdout.contains("state: COMPLETED"), "{stdout}");
        assert!(stdout.contains("output: [7, 10, 20]"), "{stdout}");
        assert_eq!(lines(&file), ["start 1", "start 1", "done 1", "start 2", "done 2"]);
        let stored = engine.store().load(id).expect("load").expect("stored");
        let receives: Vec<_> = stored.events.iter().filter(|e| e.name() == "recv_bonus").map(|e| e.kind()).collect();
        assert_eq!(receives, [EventType::TaskStarted, EventType::TaskCompleted], "one receive, recorded once");
        let second = engine.store().message_get(id, "bonus", 1).expect("read").expect("kept");
        assert_eq!(
            flux::value::from_msgpack::<u32>(&second).expect("a number"),
            8,
            "the second message is still there"
        );

        // After completion, another process reads the final event.
        assert_eq!(stage(home, &place, id), "stage: done: [7, 10, 20]");
    }
}
