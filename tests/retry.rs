//! The error chain of docs/design.md §5: retries, timeouts, fallback, rollback, with the exact
//! event sequences, plus `with_options`, metadata and the result cache.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use EventType::*;
use flux::prelude::*;
use flux::{Error, ErrorKind, TaskMetadata, TaskOptions};
use flux_suite::{StoppedLog, kinds};

/// Runs `wf` on an engine of `place`, then loads it again in a fresh engine and checks that
/// state, events and error came back intact.
async fn run_and_reload<W: flux::WorkflowDefinition>(
    place: &flux_suite::Place,
    wf: &flux::Workflow<W>,
    input: W::Input,
) -> Execution<W::Input, W::Output>
where
    W::Output: PartialEq + std::fmt::Debug,
{
    let execution = wf.on(&place.open()).run(input).await.unwrap();
    let reloaded = wf.on(&place.open()).status(execution.execution_id()).await.unwrap();
    assert_eq!(reloaded.state(), execution.state(), "{place}");
    assert_eq!(reloaded.events(), execution.events(), "{place}");
    assert_eq!(reloaded.error(), execution.error(), "{place}");
    assert_eq!(reloaded.output(), execution.output(), "{place}");
    execution
}

// 1. Fails twice, then succeeds.
static TWICE: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 3, retry_delay = 0)]
async fn fails_twice() -> Result<String, String> {
    match TWICE.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Err("not yet".into()),
        _ => Ok("done".into()),
    }
}

#[flux::workflow]
async fn wf_fails_twice(_ctx: ExecutionContext<()>) -> flux::Result<String> {
    fails_twice().await
}

#[tokio::test]
async fn retries_until_an_attempt_succeeds() {
    for place in flux_suite::places() {
        TWICE.store(0, Ordering::SeqCst);
        let execution = run_and_reload(&place, &wf_fails_twice, ()).await;
        assert_eq!(execution.output().map(String::as_str), Some("done"));
        assert_eq!(
            kinds(execution.events()),
            [
                WorkflowStarted,
                TaskStarted,
                TaskRetryFailed,
                TaskRetryStarted,
                TaskRetryFailed,
                TaskRetryStarted,
                TaskRetryCompleted,
                TaskCompleted,
                WorkflowCompleted
            ]
        );
        #[derive(serde::Deserialize)]
        struct Completed {
            current_attempt: u32,
            max_attempts: u32,
            output: String,
        }
        let done: Completed = execution.events()[6].value().unwrap();
        assert_eq!((done.current_attempt, done.max_attempts, done.output.as_str()), (2, 3, "done"));
    }
}

// 2. Always fails.
static ALWAYS: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 2, retry_delay = 0)]
async fn always_fails(x: u32) -> Result<u32, String> {
    ALWAYS.fetch_add(1, Ordering::SeqCst);
    Err(format!("bad {x}"))
}

#[flux::workflow]
async fn wf_always_fails(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    always_fails(*ctx.input()).await
}

#[tokio::test]
async fn exhausted_retries_fail_the_task_and_the_workflow() {
    for place in flux_suite::places() {
        let before = ALWAYS.load(Ordering::SeqCst);
        let execution = run_and_reload(&place, &wf_always_fails, 4).await;
        assert_eq!(ALWAYS.load(Ordering::SeqCst) - before, 3);
        assert_eq!(
            kinds(execution.events()),
            [
                WorkflowStarted,
                TaskStarted,
                TaskRetryFailed,
                TaskRetryStarted,
                TaskRetryFailed,
                TaskRetryStarted,
                TaskRetryFailed,
                TaskFailed,
                WorkflowFailed
            ]
        );
        let err = execution.error().unwrap();
        assert_eq!(err.kind(), ErrorKind::TaskFailed);
        assert_eq!(err.message(), "bad 4");
    }
}

// 3. Same, with a fallback.
fn offline(x: u32) -> Result<u32, String> {
    Ok(x * 100)
}

#[flux::task(retry_max_attempts = 2, retry_delay = 0, fallback = offline)]
async fn with_fallback(x: u32) -> Result<u32, String> {
    Err(format!("bad {x}"))
}

#[flux::workflow]
async fn wf_with_fallback(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    with_fallback(*ctx.input()).await
}

#[tokio::test]
async fn a_fallback_replaces_the_failed_output() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_with_fallback, 7).await;
        assert_eq!(execution.output(), Some(&700));
        assert_eq!(
            kinds(execution.events()),
            [
                WorkflowStarted,
                TaskStarted,
                TaskRetryFailed,
                TaskRetryStarted,
                TaskRetryFailed,
                TaskRetryStarted,
                TaskRetryFailed,
                TaskFallbackStarted,
                TaskFallbackCompleted,
                TaskCompleted,
                WorkflowCompleted
            ]
        );
        assert_eq!(execution.events()[9].value::<u32>().unwrap(), 700);
    }
}

// 4. Rollback only.
static ROLLED_BACK: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

async fn undo_charge(order: String) {
    ROLLED_BACK.lock().unwrap().push(order);
}

#[flux::task(rollback = undo_charge)]
async fn charge(order: String) -> Result<u32, std::io::Error> {
    Err(std::io::Error::other(format!("card declined for {order}")))
}

#[flux::workflow]
async fn wf_rollback(ctx: ExecutionContext<String>) -> flux::Result<u32> {
    charge(ctx.input().clone()).await
}

#[tokio::test]
async fn a_rollback_runs_when_the_task_fails_for_good() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_rollback, "o-1".to_string()).await;
        assert_eq!(
            kinds(execution.events()),
            [WorkflowStarted, TaskStarted, TaskRollbackStarted, TaskRollbackCompleted, TaskFailed, WorkflowFailed]
        );
        assert!(ROLLED_BACK.lock().unwrap().contains(&"o-1".to_string()));
        assert_eq!(execution.error().unwrap().message(), "card declined for o-1");
    }
}

// 5. Fallback and rollback: the fallback wins, the rollback never runs.
static BOTH_ROLLBACKS: AtomicU32 = AtomicU32::new(0);

async fn both_fallback(x: u32) -> Result<u32, String> {
    Ok(x + 1)
}

fn both_rollback(_x: u32) {
    BOTH_ROLLBACKS.fetch_add(1, Ordering::SeqCst);
}

#[flux::task(fallback = both_fallback, rollback = both_rollback)]
async fn both(x: u32) -> Result<u32, String> {
    Err(format!("bad {x}"))
}

#[flux::workflow]
async fn wf_both(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    both(*ctx.input()).await
}

#[tokio::test]
async fn a_fallback_takes_precedence_over_the_rollback() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_both, 1).await;
        assert_eq!(execution.output(), Some(&2));
        assert_eq!(
            kinds(execution.events()),
            [
                WorkflowStarted,
                TaskStarted,
                TaskFallbackStarted,
                TaskFallbackCompleted,
                TaskCompleted,
                WorkflowCompleted
            ]
        );
        assert_eq!(BOTH_ROLLBACKS.load(Ordering::SeqCst), 0);
    }
}

// 6. Failing fallback; failing rollback.
fn broken_fallback(_x: u32) -> Result<u32, String> {
    Err("fallback down too".into())
}

#[flux::task(fallback = broken_fallback)]
async fn with_broken_fallback(x: u32) -> Result<u32, String> {
    Err(format!("bad {x}"))
}

async fn broken_rollback(_x: u32) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("cannot undo"))
}

#[flux::task(rollback = broken_rollback)]
async fn with_broken_rollback(x: u32) -> Result<u32, String> {
    Err(format!("bad {x}"))
}

#[flux::workflow]
async fn wf_broken_fallback(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    with_broken_fallback(*ctx.input()).await
}

#[flux::workflow]
async fn wf_broken_rollback(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    with_broken_rollback(*ctx.input()).await
}

#[tokio::test]
async fn a_failing_fallback_fails_the_task() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_broken_fallback, 3).await;
        assert_eq!(
            kinds(execution.events()),
            [WorkflowStarted, TaskStarted, TaskFallbackStarted, TaskFallbackFailed, TaskFailed, WorkflowFailed]
        );
        let err = execution.error().unwrap();
        assert_eq!(err.message(), "bad 3");
        assert_eq!(err.chain(), ["fallback failed: fallback down too"]);
    }
}

#[tokio::test]
async fn a_failing_rollback_fails_the_task() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_broken_rollback, 3).await;
        assert_eq!(
            kinds(execution.events()),
            [WorkflowStarted, TaskStarted, TaskRollbackStarted, TaskRollbackFailed, TaskFailed, WorkflowFailed]
        );
        assert_eq!(execution.error().unwrap().chain(), ["rollback failed: cannot undo"]);
    }
}

// 7. Timeouts.
static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(timeout = "1s")]
async fn five_seconds() -> u32 {
    tokio::time::sleep(Duration::from_secs(5)).await;
    5
}

fn quick(_unit: ()) -> u32 {
    1
}

#[flux::task(timeout = "1s", fallback = quick_fallback)]
async fn five_seconds_with_fallback() -> u32 {
    tokio::time::sleep(Duration::from_secs(5)).await;
    5
}

fn quick_fallback() -> u32 {
    quick(())
}

#[flux::task(timeout = "1s", retry_max_attempts = 1, retry_delay = 0)]
async fn five_seconds_retried() -> u32 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    5
}

#[flux::workflow]
async fn wf_timeout(ctx: ExecutionContext<u8>) -> flux::Result<u32> {
    match ctx.input() {
        0 => five_seconds().await,
        1 => five_seconds_with_fallback().await,
        _ => five_seconds_retried().await,
    }
}

#[tokio::test(start_paused = true)]
async fn timeouts_fail_attempts_after_the_limit() {
    let engine = Engine::in_memory();
    let start = tokio::time::Instant::now();
    let execution = wf_timeout.on(&engine).run(0).await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_millis(1100), "{waited:?}");
    assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskFailed, WorkflowFailed]);
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::TaskTimeout);
    assert!(err.message().starts_with("task `five_seconds_") && err.message().ends_with("timed out after 1s"), "{err}");

    let execution = wf_timeout.on(&engine).run(1).await.unwrap();
    assert_eq!(execution.output(), Some(&1));
    assert_eq!(
        kinds(execution.events()),
        [WorkflowStarted, TaskStarted, TaskFallbackStarted, TaskFallbackCompleted, TaskCompleted, WorkflowCompleted]
    );

    let start = tokio::time::Instant::now();
    let execution = wf_timeout.on(&engine).run(2).await.unwrap();
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 2, "two timed-out attempts");
    assert!(start.elapsed() >= Duration::from_secs(2) && start.elapsed() < Duration::from_millis(2200));
    assert_eq!(
        kinds(execution.events()),
        [WorkflowStarted, TaskStarted, TaskRetryFailed, TaskRetryStarted, TaskRetryFailed, TaskFailed, WorkflowFailed]
    );
    assert_eq!(execution.error().unwrap().kind(), ErrorKind::TaskTimeout);
}

#[flux::task(timeout = "50ms")]
fn blocking_sleeper() -> u32 {
    std::thread::sleep(Duration::from_millis(500));
    1
}

#[flux::workflow]
async fn wf_blocking_timeout(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    blocking_sleeper().await
}

#[tokio::test]
async fn a_blocking_task_past_its_timeout_is_no_longer_waited_for() {
    let engine = Engine::in_memory();
    let start = std::time::Instant::now();
    let execution = wf_blocking_timeout.on(&engine).run(()).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(450), "{:?}", start.elapsed());
    assert_eq!(execution.error().unwrap().kind(), ErrorKind::TaskTimeout);
}

// 8. Delays and backoff.
#[flux::task(retry_max_attempts = 2, retry_delay = "1s", retry_backoff = 3)]
async fn backing_off() -> Result<u32, String> {
    Err("no".into())
}

#[flux::workflow]
async fn wf_backoff(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    backing_off().await
}

#[tokio::test(start_paused = true)]
async fn delays_grow_by_the_backoff_and_really_wait() {
    let engine = Engine::in_memory();
    let start = tokio::time::Instant::now();
    let execution = wf_backoff.on(&engine).run(()).await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_millis(4100), "{waited:?}");
    #[derive(serde::Deserialize)]
    struct Started {
        current_attempt: u32,
        max_attempts: u32,
        current_delay: f64,
        backoff: f64,
    }
    let started: Vec<Started> =
        execution.events().iter().filter(|e| e.kind() == TaskRetryStarted).map(|e| e.value().unwrap()).collect();
    let delays: Vec<f64> = started.iter().map(|s| s.current_delay).collect();
    assert_eq!(delays, [1.0, 3.0]);
    assert!(started.iter().all(|s| s.max_attempts == 2 && s.backoff == 3.0));
    assert_eq!(started.iter().map(|s| s.current_attempt).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(execution.events().iter().filter(|e| e.kind() == TaskRetryFailed).count(), 3);
}

// 9. The cache.
static CACHED_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(cache = true)]
async fn expensive(x: u32) -> u32 {
    CACHED_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[flux::workflow]
async fn wf_cached(ctx: ExecutionContext<u32>) -> flux::Result<Vec<u32>> {
    let x = *ctx.input();
    Ok(vec![expensive(x).await?, expensive(x).await?, expensive(x).await?])
}

static TTL_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(cache_ttl = "150ms")]
async fn short_lived(x: u32) -> u32 {
    TTL_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[flux::workflow]
async fn wf_ttl(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    short_lived(*ctx.input()).await
}

#[tokio::test]
async fn cached_results_are_shared_across_executions_until_they_expire() {
    for place in flux_suite::places() {
        CACHED_RUNS.store(0, Ordering::SeqCst);
        TTL_RUNS.store(0, Ordering::SeqCst);
        let first = wf_cached.on(&place.open()).run(9).await.unwrap();
        assert_eq!(first.output().unwrap(), &[81, 81, 81], "{place}");
        let ids: Vec<&str> =
            first.events().iter().filter(|e| e.kind() == TaskCompleted).map(|e| e.source_id()).collect();
        assert!(ids[1].ends_with("~1") && ids[2].ends_with("~2"), "{place}: {ids:?}");
        // A second execution, in a fresh engine as another process would have.
        let second = wf_cached.on(&place.open()).run(9).await.unwrap();
        assert_eq!(second.output().unwrap(), &[81, 81, 81], "{place}");
        assert_eq!(CACHED_RUNS.load(Ordering::SeqCst), 1, "{place}: the body ran once");
        assert_eq!(
            kinds(second.events()),
            [
                WorkflowStarted,
                TaskStarted,
                TaskCompleted,
                TaskStarted,
                TaskCompleted,
                TaskStarted,
                TaskCompleted,
                WorkflowCompleted
            ],
            "{place}"
        );
        // Clearing the cache makes it run again.
        let engine = place.open();
        assert_eq!(engine.clear_task_cache(expensive::NAME).unwrap(), 1, "{place}");
        wf_cached.on(&engine).run(9).await.unwrap();
        assert_eq!(CACHED_RUNS.load(Ordering::SeqCst), 2, "{place}");

        let engine = place.open();
        wf_ttl.on(&engine).run(1).await.unwrap();
        wf_ttl.on(&engine).run(1).await.unwrap();
        assert_eq!(TTL_RUNS.load(Ordering::SeqCst), 1, "{place}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        wf_ttl.on(&engine).run(1).await.unwrap();
        assert_eq!(TTL_RUNS.load(Ordering::SeqCst), 2, "{place}: an expired entry runs the task again");
    }
}

// 10. Name templates.
#[flux::task(name = "process_{item}")]
async fn process(item: String) -> usize {
    item.len()
}

#[flux::workflow]
async fn wf_process(ctx: ExecutionContext<String>) -> flux::Result<usize> {
    process(ctx.input().clone()).await
}

#[tokio::test]
async fn name_templates_name_the_events() {
    let execution = wf_process.on(&Engine::in_memory()).run("x".into()).await.unwrap();
    let task_events: Vec<&str> = execution
        .events()
        .iter()
        .filter(|e| e.kind() != WorkflowStarted && e.kind() != WorkflowCompleted)
        .map(|e| e.name())
        .collect();
    assert_eq!(task_events, ["process_x", "process_x"]);
    assert!(execution.events()[1].source_id().starts_with("process_x_"));
}

// 13. A workflow that catches a task failure and goes on.
#[flux::task]
async fn flaky_lookup(key: String) -> Result<String, String> {
    Err(format!("{key} not found"))
}

#[flux::workflow]
async fn wf_catches(ctx: ExecutionContext<String>) -> flux::Result<String> {
    match flaky_lookup(ctx.input().clone()).await {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == ErrorKind::TaskFailed => Ok(format!("default ({})", e.message())),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn a_caught_failure_lets_the_workflow_complete() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_catches, "k".into()).await;
        assert_eq!(execution.output().map(String::as_str), Some("default (k not found)"));
        assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskFailed, WorkflowCompleted]);
        assert_eq!(execution.events()[2].value::<Error>().unwrap().message(), "k not found");
    }
}

// with_options and metadata.
static OVERRIDDEN: AtomicU32 = AtomicU32::new(0);

#[flux::task(metadata = true)]
async fn described(x: u32, meta: TaskMetadata) -> Result<String, String> {
    if OVERRIDDEN.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err("first try fails".into());
    }
    Ok(format!("{x} {} {}", meta.task_name, meta.task_id))
}

#[flux::workflow]
async fn wf_options(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let options = TaskOptions::new().retry_max_attempts(1).retry_delay(Duration::ZERO);
    described::with_options(options).call(*ctx.input()).await
}

#[tokio::test]
async fn with_options_overrides_the_attribute_and_metadata_is_filled_in() {
    assert_eq!(described::OPTIONS.retry_max_attempts, 0);
    let execution = wf_options.on(&Engine::in_memory()).run(5).await.unwrap();
    let task_id = execution.events()[1].source_id().to_string();
    assert_eq!(execution.output().unwrap(), &format!("5 described {task_id}"));
    assert_eq!(
        kinds(execution.events()),
        [
            WorkflowStarted,
            TaskStarted,
            TaskRetryFailed,
            TaskRetryStarted,
            TaskRetryCompleted,
            TaskCompleted,
            WorkflowCompleted
        ]
    );
    // The metadata parameter is not an argument: the id is that of `described(5)`.
    let expected = flux::identity::task_id("described", &flux::value::to_msgpack(&(5u32,)).unwrap());
    assert_eq!(task_id, expected);
}

// Restarting a call whose process stopped in the middle of its error chain.
static RESUMED_ATTEMPTS: AtomicU32 = AtomicU32::new(0);
/// Held by the tests that count `resumable` runs, so that they never overlap.
static RESUMED_COUNTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());
static RESUMED_ROLLBACKS: AtomicU32 = AtomicU32::new(0);

fn resumed_rollback(_x: u32) {
    RESUMED_ROLLBACKS.fetch_add(1, Ordering::SeqCst);
}

#[flux::task(retry_max_attempts = 2, retry_delay = 0, rollback = resumed_rollback)]
async fn resumable(x: u32) -> Result<u32, String> {
    RESUMED_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    if x == 0 { Err("never works".into()) } else { Ok(x) }
}

#[flux::workflow]
async fn wf_resumable(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    resumable(*ctx.input()).await
}

/// Stores the log of a process that stopped after `chain` (events of one `resumable(x)` call).
fn stopped_log(engine: &Engine, id: &str, x: u32, chain: &[EventType]) {
    #[derive(serde::Serialize)]
    struct RetryFailed {
        current_attempt: u32,
        max_attempts: u32,
        error: Error,
    }
    let mut log = StoppedLog::new("wf_resumable", id, &x);
    let mut task_id = String::new();
    let mut failed = 0u32;
    for kind in chain {
        match kind {
            TaskStarted => task_id = log.task_started("resumable", &(x,)),
            TaskRetryFailed => {
                let error = Error::new(ErrorKind::TaskFailed, format!("attempt {failed} failed"));
                log.event(
                    *kind,
                    &task_id,
                    "resumable",
                    &RetryFailed { current_attempt: failed, max_attempts: 2, error },
                );
                failed += 1;
            }
            _ => {
                log.event(*kind, &task_id, "resumable", &());
            }
        }
    }
    log.store(engine);
}

#[test]
fn a_restart_continues_the_error_chain_where_it_stopped() {
    let _counters = RESUMED_COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
    let engine = Engine::in_memory();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Stopped during retry 1 (its TASK_RETRY_STARTED is recorded): retry 1 runs again, and
    // nothing already in the log is written twice.
    stopped_log(&engine, "mid-retry", 5, &[TaskStarted, TaskRetryFailed, TaskRetryStarted]);
    let before = RESUMED_ATTEMPTS.load(Ordering::SeqCst);
    let execution = rt.block_on(wf_resumable.on(&engine).replay("mid-retry")).unwrap();
    assert_eq!(execution.output(), Some(&5));
    assert_eq!(RESUMED_ATTEMPTS.load(Ordering::SeqCst) - before, 1);
    assert_eq!(
        kinds(execution.events()),
        [
            WorkflowStarted,
            TaskStarted,
            TaskRetryFailed,
            TaskRetryStarted,
            TaskRetryCompleted,
            TaskCompleted,
            WorkflowCompleted
        ]
    );

    // Stopped after the last attempt failed: no attempt runs again; the rollback runs and the
    // task fails with the error its log recorded.
    stopped_log(
        &engine,
        "exhausted",
        0,
        &[TaskStarted, TaskRetryFailed, TaskRetryStarted, TaskRetryFailed, TaskRetryStarted, TaskRetryFailed],
    );
    let before = RESUMED_ATTEMPTS.load(Ordering::SeqCst);
    let rollbacks = RESUMED_ROLLBACKS.load(Ordering::SeqCst);
    let execution = rt.block_on(wf_resumable.on(&engine).replay("exhausted")).unwrap();
    assert_eq!(RESUMED_ATTEMPTS.load(Ordering::SeqCst) - before, 0);
    assert_eq!(RESUMED_ROLLBACKS.load(Ordering::SeqCst) - rollbacks, 1);
    assert_eq!(execution.error().unwrap().message(), "attempt 2 failed");
    assert_eq!(
        kinds(&execution.events()[7..]),
        [TaskRollbackStarted, TaskRollbackCompleted, TaskFailed, WorkflowFailed]
    );
}

// 14, for the failures that the tests above check in memory: a timeout and a missing secret.
#[flux::task(timeout = "50ms")]
async fn too_slow_on_disk() -> u32 {
    tokio::time::sleep(Duration::from_secs(30)).await;
    1
}

#[flux::workflow]
async fn wf_slow_on_disk(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    too_slow_on_disk().await
}

#[flux::task(secret_requests = ["NOT_SET_ANYWHERE"])]
async fn needs_secret(secrets: flux::secrets::Secrets) -> usize {
    secrets.len()
}

#[flux::workflow]
async fn wf_needs_secret(_ctx: ExecutionContext<()>) -> flux::Result<usize> {
    needs_secret().await
}

#[tokio::test]
async fn timeout_and_missing_secret_failures_reload_from_disk() {
    for place in flux_suite::places() {
        let execution = run_and_reload(&place, &wf_slow_on_disk, ()).await;
        let err = execution.error().unwrap();
        assert_eq!(err.kind(), ErrorKind::TaskTimeout);
        assert!(err.message().ends_with("timed out after 50ms"), "{err}");
        let execution = run_and_reload(&place, &wf_needs_secret, ()).await;
        let err = execution.error().unwrap();
        assert_eq!(err.kind(), ErrorKind::MissingSecret);
        assert!(err.message().ends_with("needs secrets that are not set: NOT_SET_ANYWHERE"), "{err}");
    }
}

// Review follow-ups: the cache key, the cache with output storage and fallbacks, sync tasks
// with async handlers, clearing by template name, a restart after TASK_ROLLBACK_STARTED.
static FETCHES: AtomicU32 = AtomicU32::new(0);

#[flux::task(name = "fetch_{url}", cache = true)]
async fn fetch_page(url: String) -> String {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    format!("body of {url}")
}

#[flux::workflow]
async fn wf_fetch_pages(ctx: ExecutionContext<Vec<String>>) -> flux::Result<Vec<String>> {
    let mut out = Vec::new();
    for url in ctx.input() {
        out.push(fetch_page(url.clone()).await?);
    }
    Ok(out)
}

#[tokio::test]
async fn a_tilde_in_a_filled_name_does_not_merge_cache_entries() {
    let engine = Engine::in_memory();
    let urls = vec!["http://h/~alice/a".to_string(), "http://h/~bob/b".to_string()];
    let execution = wf_fetch_pages.on(&engine).run(urls).await.unwrap();
    assert_eq!(execution.output().unwrap(), &["body of http://h/~alice/a", "body of http://h/~bob/b"]);
    // Entries are named by the template, so clearing by `NAME` clears them all.
    assert_eq!(engine.clear_task_cache(fetch_page::NAME).unwrap(), 2);
    wf_fetch_pages.on(&engine).run(vec!["http://h/~alice/a".to_string()]).await.unwrap();
    assert_eq!(engine.clear_cache().unwrap(), 1);
    assert_eq!(FETCHES.load(Ordering::SeqCst), 3);
}

static STORED_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(cache = true, output_storage = "file")]
async fn stored_and_cached(n: u32) -> Vec<u32> {
    STORED_RUNS.fetch_add(1, Ordering::SeqCst);
    (0..n).collect()
}

#[flux::workflow]
async fn wf_stored_and_cached(ctx: ExecutionContext<u32>) -> flux::Result<usize> {
    Ok(stored_and_cached(*ctx.input()).await?.len())
}

#[tokio::test]
async fn the_cache_reads_outputs_kept_in_output_storage() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap();
    for _ in 0..3 {
        let execution = wf_stored_and_cached.on(&engine).run(1000).await.unwrap();
        assert_eq!(execution.output(), Some(&1000));
        assert!(execution.events()[2].output_reference().is_some());
    }
    assert_eq!(STORED_RUNS.load(Ordering::SeqCst), 1);
}

static DEGRADED_RUNS: AtomicU32 = AtomicU32::new(0);

fn degraded(_x: u32) -> Result<String, String> {
    Ok("DEGRADED".into())
}

#[flux::task(cache = true, fallback = degraded)]
async fn cached_with_fallback(x: u32) -> Result<String, String> {
    if DEGRADED_RUNS.fetch_add(1, Ordering::SeqCst) == 0 { Err("down".into()) } else { Ok(format!("fresh {x}")) }
}

#[flux::workflow]
async fn wf_cached_with_fallback(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    cached_with_fallback(*ctx.input()).await
}

#[tokio::test]
async fn a_fallback_output_is_not_cached() {
    let engine = Engine::in_memory();
    let first = wf_cached_with_fallback.on(&engine).run(1).await.unwrap();
    assert_eq!(first.output().map(String::as_str), Some("DEGRADED"));
    let second = wf_cached_with_fallback.on(&engine).run(1).await.unwrap();
    assert_eq!(second.output().map(String::as_str), Some("fresh 1"));
    let third = wf_cached_with_fallback.on(&engine).run(1).await.unwrap();
    assert_eq!(third.output().map(String::as_str), Some("fresh 1"));
    assert_eq!(DEGRADED_RUNS.load(Ordering::SeqCst), 2, "the third run was served from the cache");
}

static ASYNC_UNDONE: AtomicU32 = AtomicU32::new(0);

async fn async_fallback(x: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    Ok(x + 1000)
}

async fn async_undo(_x: u32) -> Result<(), String> {
    tokio::task::yield_now().await;
    ASYNC_UNDONE.fetch_add(1, Ordering::SeqCst);
    Err("undo failed".into())
}

#[flux::task(fallback = async_fallback)]
fn sync_with_async_fallback(x: u32) -> Result<u32, String> {
    Err(format!("sync failure {x}"))
}

#[flux::task(rollback = async_undo)]
fn sync_with_async_rollback(x: u32) -> Result<u32, String> {
    Err(format!("sync failure {x}"))
}

#[flux::workflow]
async fn wf_sync_handlers(ctx: ExecutionContext<u32>) -> flux::Result<(u32, String)> {
    let a = sync_with_async_fallback(*ctx.input()).await?;
    let b = sync_with_async_rollback(*ctx.input()).await.unwrap_err();
    Ok((a, b.to_string()))
}

#[tokio::test]
async fn blocking_tasks_may_have_async_fallbacks_and_rollbacks() {
    let execution = wf_sync_handlers.on(&Engine::in_memory()).run(5).await.unwrap();
    let (a, b) = execution.output().unwrap();
    assert_eq!(*a, 1005);
    assert!(b.ends_with("failed: sync failure 5: rollback failed: undo failed"), "{b}");
    assert_eq!(ASYNC_UNDONE.load(Ordering::SeqCst), 1, "the async rollback ran");
    assert!(kinds(execution.events()).contains(&TaskRollbackFailed));
}

#[test]
fn a_restart_after_the_rollback_started_runs_the_rollback_once_more() {
    let _counters = RESUMED_COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
    let engine = Engine::in_memory();
    let rt = tokio::runtime::Runtime::new().unwrap();
    stopped_log(
        &engine,
        "rolling-back",
        0,
        &[
            TaskStarted,
            TaskRetryFailed,
            TaskRetryStarted,
            TaskRetryFailed,
            TaskRetryStarted,
            TaskRetryFailed,
            TaskRollbackStarted,
        ],
    );
    let attempts = RESUMED_ATTEMPTS.load(Ordering::SeqCst);
    let rollbacks = RESUMED_ROLLBACKS.load(Ordering::SeqCst);
    let execution = rt.block_on(wf_resumable.on(&engine).replay("rolling-back")).unwrap();
    assert_eq!(RESUMED_ATTEMPTS.load(Ordering::SeqCst), attempts, "no attempt runs again");
    assert_eq!(RESUMED_ROLLBACKS.load(Ordering::SeqCst) - rollbacks, 1);
    // TASK_ROLLBACK_STARTED is not written a second time.
    assert_eq!(
        kinds(&execution.events()[7..]),
        [TaskRollbackStarted, TaskRollbackCompleted, TaskFailed, WorkflowFailed]
    );
}
