//! Built-in tasks (docs/design.md §7): recorded values survive a pause and resume; `sleep` is a
//! durable timer (a real process killed in the middle of it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use EventType::*;
use flux::prelude::*;
use flux::{ErrorKind, Uuid};
use flux_suite::{example, kinds};

type Drawn = (SystemTime, Uuid, i64, i64, String);

#[flux::workflow]
async fn draw_then_wait(_ctx: ExecutionContext<()>) -> flux::Result<(Drawn, Drawn)> {
    let first: Drawn = (
        flux::now().await?,
        flux::uuid4().await?,
        flux::randint(1, 1_000_000).await?,
        flux::randrange(0, 1_000_000, 7).await?,
        flux::choice((0..1000).map(|i| format!("item {i}")).collect()).await?,
    );
    // The values before the pause, seen again after the resume (the body replays from the top).
    let seen_again = first.clone();
    flux::pause::<()>("look").await?;
    Ok((first, seen_again))
}

#[tokio::test]
async fn recorded_values_are_the_same_after_resume() {
    let engine = Engine::in_memory();
    let wf = draw_then_wait.on(&engine);
    let paused = wf.run(()).await.unwrap();
    assert!(paused.is_paused());
    assert_eq!(
        kinds(paused.events()),
        vec![
            WorkflowStarted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskPaused,
            WorkflowPaused
        ]
    );
    let names: Vec<&str> = paused.events().iter().filter(|e| e.kind() == TaskStarted).map(|e| e.name()).collect();
    assert_eq!(names, ["now", "uuid4", "randint", "randrange", "choice", "pause"]);
    // What the first run drew, read from its log.
    let recorded: Vec<_> = paused.events().iter().filter(|e| e.kind() == TaskCompleted).collect();
    let first_now: SystemTime = recorded[0].value().unwrap();
    let first_uuid: Uuid = recorded[1].value().unwrap();
    let first_int: i64 = recorded[2].value().unwrap();
    let first_range: i64 = recorded[3].value().unwrap();
    let first_choice: String = recorded[4].value().unwrap();

    let done = wf.resume(paused.execution_id(), ()).await.unwrap();
    let (after, again) = done.output().unwrap().clone();
    assert_eq!(after, (first_now, first_uuid, first_int, first_range, first_choice));
    assert_eq!(after, again);
    assert_eq!(after.1.get_version_num(), 4);
    assert!((1..=1_000_000).contains(&after.2));
    assert!((0..1_000_000).contains(&after.3) && after.3 % 7 == 0);
    // The resume recorded no new draws.
    assert_eq!(done.events().iter().filter(|e| e.kind() == TaskStarted).count(), 6);
}

#[flux::workflow]
async fn bad_draws(ctx: ExecutionContext<u32>) -> flux::Result<i64> {
    match ctx.input() {
        0 => flux::randint(5, 1).await,
        1 => flux::randrange(0, 10, 0).await,
        2 => flux::randrange(10, 0, 1).await,
        _ => flux::choice(Vec::<i64>::new()).await,
    }
}

#[tokio::test]
async fn impossible_draws_fail_with_a_clear_error() {
    let engine = Engine::in_memory();
    for (case, expected) in [(0, "low bound"), (1, "step cannot be zero"), (2, "range is empty"), (3, "empty list")] {
        let execution = bad_draws.on(&engine).run(case).await.unwrap();
        assert_eq!(execution.state(), ExecutionState::Failed);
        let error = execution.error().unwrap();
        assert_eq!(error.kind(), ErrorKind::TaskFailed);
        assert!(error.to_string().contains(expected), "case {case}: {error}");
    }
}

#[tokio::test]
async fn builtins_outside_a_workflow_just_compute() {
    assert!(flux::randint(3, 3).await.unwrap() == 3);
    assert!([10, 5].contains(&flux::randrange(10, 0, -5).await.unwrap()));
    assert_eq!(flux::choice(vec!["only".to_string()]).await.unwrap(), "only");
    assert!(flux::now().await.unwrap() <= SystemTime::now());
    flux::sleep(Duration::from_millis(1)).await.unwrap();
}

fn lines_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "exit {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn a_sleep_killed_half_way_waits_only_what_is_left() {
    let home = tempfile::tempdir().unwrap();
    let command = || {
        let mut cmd = Command::new(example("builtins"));
        cmd.env("FLUX_HOME", home.path()).env_remove("FLUX_DATABASE_URL").env_remove("FLUX_CONFIG");
        cmd.current_dir(home.path());
        cmd
    };
    let id = "sleepy";
    let mut child = command().args(["run", id, "2"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until the sleep's TASK_STARTED is stored: the timer runs from there.
    let engine = Engine::open(home.path().join("flux.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let sleep_started = loop {
        let stored = engine.store().load(id).unwrap();
        if let Some(e) = stored.and_then(|s| s.events.into_iter().find(|e| e.name() == "sleep")) {
            break e.time();
        }
        assert!(Instant::now() < deadline, "the sleep never started");
        assert!(child.try_wait().unwrap().is_none(), "the process ended before sleeping");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Kill it one second into its two-second sleep.
    let one_second_in = sleep_started + Duration::from_secs(1);
    if let Ok(wait) = one_second_in.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let stored = engine.store().load(id).unwrap().unwrap();
    assert_eq!(stored.state, ExecutionState::Running);
    assert!(!stored.events.iter().any(|e| e.name() == "sleep" && e.kind() == TaskCompleted));

    let before = Instant::now();
    let out = lines_of(command().args(["replay", id]));
    let took = before.elapsed();
    assert!(out.contains("COMPLETED"), "{out}");
    // About one more second (process start included), clearly not two.
    assert!(took >= Duration::from_millis(700), "the replay did not wait for the rest of the sleep: {took:?}");
    assert!(took < Duration::from_millis(1800), "the replay waited the whole sleep again: {took:?}");
    let stored = engine.store().load(id).unwrap().unwrap();
    let sleep_events: Vec<_> = stored.events.iter().filter(|e| e.name() == "sleep").map(|e| e.kind()).collect();
    assert_eq!(sleep_events, vec![TaskStarted, TaskCompleted]);
    // A finished sleep is not waited again.
    let before = Instant::now();
    lines_of(command().args(["replay", id]));
    assert!(before.elapsed() < Duration::from_millis(900));
}
