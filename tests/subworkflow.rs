//! Sub-workflows (docs/design.md §6): a child execution linked to its parent, replayed rather than
//! re-run.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use EventType::*;
use flux::prelude::*;
use flux::{ErrorKind, ExecutionState};
use flux_suite::{example, kinds};

/// The inputs `child_step` ran with (tests run in parallel: each uses its own inputs).
static CHILD_RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[flux::task]
async fn child_step(x: u32) -> Result<u32, std::io::Error> {
    CHILD_RUNS.lock().unwrap().push(x);
    if x == 13 { Err(std::io::Error::other("unlucky")) } else { Ok(x * 3) }
}

#[flux::workflow]
async fn child(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    child_step(*ctx.input()).await
}

#[flux::workflow]
async fn parent(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let tripled = child.call(*ctx.input()).await?;
    Ok(tripled + 1)
}

fn runs_of(x: u32) -> usize {
    CHILD_RUNS.lock().unwrap().iter().filter(|v| **v == x).count()
}

#[tokio::test]
async fn a_child_runs_as_its_own_execution_linked_to_the_parent() {
    let engine = Engine::in_memory();
    let execution = parent.on(&engine).run(2).await.unwrap();
    assert_eq!(execution.output(), Some(&7));
    assert_eq!(execution.parent_id(), None);
    assert_eq!(kinds(execution.events()), vec![WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
    // The call is a task named after the child, whose arguments are the child's input.
    let call = &execution.events()[1];
    assert_eq!(call.name(), "child");
    assert_eq!(call.value::<(u32,)>().unwrap(), (2,));
    assert_eq!(execution.events()[2].value::<u32>().unwrap(), 6);

    // Find the child: it is the only execution of `child` with this parent; its id is derived from
    // the parent's id and the call's task id, so the parent's replay finds it again.
    let replayed = parent.on(&engine).replay(execution.execution_id()).await.unwrap();
    assert_eq!(replayed.output(), Some(&7));
    assert_eq!(runs_of(2), 1);
}

#[tokio::test]
async fn the_child_execution_is_stored_with_its_parent() {
    for place in flux_suite::places() {
        let engine = place.open();
        let execution = parent.on(&engine).run(4).await.unwrap();
        drop(engine);
        // A fresh engine finds the child by its parent.
        let engine = place.open();
        let filter = flux::ExecutionFilter::new().workflow("child").parent(execution.execution_id());
        let page = engine.store().list_executions(&filter).unwrap();
        assert_eq!(page.total, 1, "{place}: {page:?}");
        let row = &page.executions[0];
        assert_eq!(row.parent_id.as_deref(), Some(execution.execution_id()), "{place}");
        let status = child.on(&engine).status(&row.id).await.unwrap();
        assert_eq!(status.parent_id(), Some(execution.execution_id()), "{place}");
        assert_eq!(status.output(), Some(&12), "{place}");
        assert_eq!(
            kinds(status.events()),
            vec![WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted],
            "{place}"
        );
    }
}

#[tokio::test]
async fn a_failing_child_fails_the_call_with_its_error() {
    let engine = Engine::in_memory();
    let execution = parent.on(&engine).run(13).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Failed);
    let error = execution.error().unwrap();
    assert!(error.to_string().contains("sub-workflow `child`") && error.to_string().contains("unlucky"), "{error}");
    assert_eq!(kinds(execution.events()), vec![WorkflowStarted, TaskStarted, TaskFailed, WorkflowFailed]);
}

#[tokio::test]
async fn outside_a_workflow_call_just_runs_the_workflow() {
    let engine = Engine::in_memory();
    assert_eq!(child.on(&engine).call(5).await.unwrap(), 15);
    let err = child.on(&engine).call(13).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkflowFailed);
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "exit {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn a_parent_killed_after_its_child_finished_replays_without_running_the_child_again() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("effects.log");
    let command = || {
        let mut cmd = Command::new(example("subworkflow"));
        cmd.env("FLUX_HOME", home.path()).env_remove("FLUX_DATABASE_URL").env_remove("FLUX_CONFIG");
        cmd.env_remove("FLUX_SLOW_NOTIFY").current_dir(home.path());
        cmd
    };
    let lines = || std::fs::read_to_string(&file).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>();
    let mut process = command()
        .args(["run", "order-1", file.to_str().unwrap()])
        .env("FLUX_SLOW_NOTIFY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The parent's last task has started: the child finished before it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines().contains(&"notify start 7".to_string()) {
        assert!(Instant::now() < deadline, "the last task never started");
        assert!(process.try_wait().unwrap().is_none(), "the process ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    process.kill().unwrap();
    assert!(!process.wait().unwrap().success());
    assert_eq!(lines(), ["reserve 7", "pack 7", "notify start 7"]);

    let out = stdout_of(command().args(["replay", "order-1"]));
    assert!(out.contains("COMPLETED"), "{out}");
    assert!(out.contains(r#"["reserved 7", "packed 7", "notified 7"]"#), "{out}");
    // Neither the child's task nor the parent's first task ran again; the interrupted one did.
    assert_eq!(lines(), ["reserve 7", "pack 7", "notify start 7", "notify start 7", "notify done 7"]);

    let engine = Engine::open(home.path().join("flux.db")).unwrap();
    let stored = engine.store().load("order-1").unwrap().unwrap();
    assert_eq!(stored.state, ExecutionState::Completed);
    let call = stored.events.iter().filter(|e| e.name() == "fulfil").map(|e| e.kind()).collect::<Vec<_>>();
    assert_eq!(call, vec![TaskStarted, TaskCompleted], "the child call was recorded once");
}

#[flux::workflow]
async fn child_beside_a_pause(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let (tripled, approved) = flux::parallel!(child.call(*ctx.input()), flux::pause::<bool>("approve")).await?;
    Ok(if approved { tripled } else { 0 })
}

#[tokio::test]
async fn a_child_dropped_by_a_pause_is_continued_by_the_resume() {
    let engine = Engine::in_memory();
    let paused = child_beside_a_pause.on(&engine).run(8).await.unwrap();
    assert!(paused.is_paused());
    let done = child_beside_a_pause.on(&engine).resume(paused.execution_id(), true).await.unwrap();
    assert_eq!(done.state(), ExecutionState::Completed, "{:?}", done.error());
    assert_eq!(done.output(), Some(&24));
}
