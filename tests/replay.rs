//! Replay semantics (docs/design.md §2, §4): event sequences, recorded results, occurrence ids,
//! failures.

use std::sync::atomic::{AtomicU32, Ordering};

use EventType::*;
use flux::prelude::*;
use flux::store::Store as _;
use flux::{Error, ErrorKind, Event};
use flux_suite::{StoppedLog, kinds};

#[flux::task]
async fn say_hello(name: String) -> String {
    format!("Hello, {name}")
}

#[flux::workflow]
async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
    say_hello(ctx.input().clone()).await
}

#[tokio::test]
async fn a_plain_run_records_the_documented_events() {
    let engine = Engine::in_memory();
    let execution = hello_world.on(&engine).run("World".to_string()).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Completed);
    assert_eq!(execution.output().map(String::as_str), Some("Hello, World"));
    assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);

    let events = execution.events();
    let workflow_source = format!("hello_world_{}", execution.execution_id());
    assert_eq!(events[0].source_id(), workflow_source);
    assert_eq!(events[0].value::<String>().unwrap(), "World");
    assert_eq!(events[1].source_id(), "say_hello_d5a59662e4644e1f");
    assert_eq!(events[1].name(), "say_hello");
    assert_eq!(events[1].value::<(String,)>().unwrap(), ("World".to_string(),));
    assert_eq!(events[2].value::<String>().unwrap(), "Hello, World");
    assert_eq!(events[3].source_id(), workflow_source);
    assert_eq!(events[3].value::<String>().unwrap(), "Hello, World");
    assert_eq!(events.iter().map(Event::seq).collect::<Vec<_>>(), [1, 2, 3, 4]);

    // What is stored is what was returned.
    let stored = engine.store().load(execution.execution_id()).unwrap().unwrap();
    assert_eq!(stored.events, events);
    assert_eq!(stored.state, ExecutionState::Completed);
}

#[tokio::test]
async fn replaying_a_finished_execution_returns_it_and_writes_nothing() {
    for place in flux_suite::places() {
        let engine = place.open();
        let first = hello_world.on(&engine).run("Ada".to_string()).await.unwrap();
        drop(engine);

        // A fresh engine, as in a new process.
        let engine = place.open();
        let again = hello_world.on(&engine).replay(first.execution_id()).await.unwrap();
        assert_eq!(again.output(), first.output(), "{place}");
        assert_eq!(again.state(), ExecutionState::Completed, "{place}");
        assert_eq!(again.events(), first.events(), "{place}");
        let stored = engine.store().load(first.execution_id()).unwrap().unwrap();
        assert_eq!(stored.events.len(), 4, "{place}: replay wrote no events");

        // run_with_id on an existing id continues that execution instead of starting another.
        let same = hello_world.on(&engine).run_with_id(first.execution_id(), "ignored".into()).await.unwrap();
        assert_eq!(same.output().map(String::as_str), Some("Hello, Ada"), "{place}");
        assert_eq!(engine.store().load(first.execution_id()).unwrap().unwrap().events.len(), 4, "{place}");
    }
}

static ECHO_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn echo(word: String) -> String {
    ECHO_RUNS.fetch_add(1, Ordering::SeqCst);
    word
}

#[flux::workflow]
async fn twice(ctx: ExecutionContext<String>) -> flux::Result<Vec<String>> {
    let a = echo(ctx.input().clone()).await?;
    let b = echo(ctx.input().clone()).await?;
    Ok(vec![a, b])
}

#[tokio::test]
async fn identical_calls_get_occurrence_ids_and_both_run() {
    let engine = Engine::in_memory();
    let before = ECHO_RUNS.load(Ordering::SeqCst);
    let execution = twice.on(&engine).run("hi".to_string()).await.unwrap();
    assert_eq!(ECHO_RUNS.load(Ordering::SeqCst) - before, 2);
    assert_eq!(execution.output().unwrap(), &["hi", "hi"]);
    let ids: Vec<&str> = execution.events().iter().filter(|e| e.kind() == TaskStarted).map(|e| e.source_id()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].starts_with("echo_") && ids[0].len() == "echo_".len() + 16, "{}", ids[0]);
    assert_eq!(ids[1], format!("{}~1", ids[0]));
}

/// Counts `add_one` runs; only `a_crashed_execution_replays_...` runs `count_up`, so that
/// parallel tests do not disturb the count.
static STEP_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn add_one(x: u32) -> u32 {
    STEP_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[flux::workflow]
async fn count_up(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let a = add_one(*ctx.input()).await?;
    let b = add_one(a).await?;
    add_one(b).await
}

/// Stores a log as a crashed process would leave it: the first task completed, the second
/// started.
fn crashed_log(engine: &Engine, id: &str) {
    let mut log = StoppedLog::new("count_up", id, &1u32);
    let t1 = log.task_started("add_one", &(1u32,));
    log.event(TaskCompleted, &t1, "add_one", &2u32);
    log.task_started("add_one", &(2u32,));
    log.store(engine);
}

#[test]
fn a_crashed_execution_replays_completed_tasks_and_reruns_the_rest() {
    let engine = Engine::in_memory();
    crashed_log(&engine, "crashed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = STEP_RUNS.load(Ordering::SeqCst);
    let execution = rt.block_on(count_up.on(&engine).replay("crashed")).unwrap();
    assert_eq!(execution.output(), Some(&4));
    // Task 1 was replayed; tasks 2 and 3 ran.
    assert_eq!(STEP_RUNS.load(Ordering::SeqCst) - before, 2);
    // No second WORKFLOW_STARTED, no second TASK_STARTED for the task that had one.
    assert_eq!(
        kinds(execution.events()),
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
}

#[flux::task]
async fn refuse(amount: u32) -> Result<u32, std::io::Error> {
    Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("cannot pay {amount}")))
}

#[flux::workflow]
async fn pay(ctx: ExecutionContext<u32>) -> Result<u32, Error> {
    refuse(*ctx.input()).await
}

#[derive(Debug)]
struct NotEnough(u32);
impl std::fmt::Display for NotEnough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "only {} left", self.0)
    }
}

#[flux::workflow]
async fn budget(ctx: ExecutionContext<u32>) -> Result<u32, NotEnough> {
    if *ctx.input() < 10 { Err(NotEnough(*ctx.input())) } else { Ok(*ctx.input()) }
}

#[tokio::test]
async fn a_failing_body_ends_failed_and_the_error_reloads_from_disk() {
    for place in flux_suite::places() {
        let id = {
            let engine = place.open();
            let execution = budget.on(&engine).run(3).await.unwrap();
            assert!(execution.has_failed(), "{place}");
            assert_eq!(kinds(execution.events()), [WorkflowStarted, WorkflowFailed], "{place}");
            let err = execution.error().unwrap();
            assert_eq!(err.kind(), ErrorKind::WorkflowFailed, "{place}");
            assert_eq!(err.message(), "only 3 left", "{place}");
            execution.execution_id().to_string()
        };
        let engine = place.open();
        let reloaded = budget.on(&engine).status(&id).await.unwrap();
        assert_eq!(reloaded.state(), ExecutionState::Failed, "{place}");
        assert_eq!(reloaded.error().unwrap().message(), "only 3 left", "{place}");
        assert_eq!(reloaded.error().unwrap().kind(), ErrorKind::WorkflowFailed, "{place}");
        assert_eq!(reloaded.output(), None, "{place}");
        assert_eq!(reloaded.events()[1].value::<Error>().unwrap().message(), "only 3 left", "{place}");
    }
}

#[tokio::test]
async fn a_failed_task_is_recorded_and_replayed_as_its_error() {
    for place in flux_suite::places() {
        let engine = place.open();
        let execution = pay.on(&engine).run(7).await.unwrap();
        assert!(execution.has_failed(), "{place}");
        assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskFailed, WorkflowFailed], "{place}");
        let err = execution.error().unwrap();
        assert_eq!(err.kind(), ErrorKind::TaskFailed, "{place}");
        assert_eq!(err.message(), "cannot pay 7", "{place}");
        assert!(err.task_id().unwrap().starts_with("refuse_"), "{place}");
        assert_eq!(err.to_string(), format!("task `{}` failed: cannot pay 7", err.task_id().unwrap()), "{place}");

        let reloaded = pay.on(&place.open()).status(execution.execution_id()).await;
        assert_eq!(reloaded.unwrap().error(), Some(err), "{place}");
    }
}

#[tokio::test]
async fn tasks_outside_a_workflow_just_run() {
    assert_eq!(say_hello("you".into()).await.unwrap(), "Hello, you");
    let err = refuse(5).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    assert_eq!(err.message(), "cannot pay 5");
}

#[flux::task(name = "greet_{name}")]
async fn templated(name: String, punctuation: char) -> String {
    format!("Hi {name}{punctuation}")
}

#[flux::workflow]
async fn greet_all(ctx: ExecutionContext<Vec<String>>) -> flux::Result<Vec<String>> {
    let mut out = Vec::new();
    for name in ctx.input() {
        out.push(templated(name.clone(), '!').await?);
    }
    Ok(out)
}

#[tokio::test]
async fn name_templates_fill_in_arguments() {
    let engine = Engine::in_memory();
    let execution = greet_all.on(&engine).run(vec!["x".into(), "y".into()]).await.unwrap();
    assert_eq!(execution.output().unwrap(), &["Hi x!", "Hi y!"]);
    let started: Vec<(&str, &str)> =
        execution.events().iter().filter(|e| e.kind() == TaskStarted).map(|e| (e.name(), e.source_id())).collect();
    assert_eq!(started[0].0, "greet_x");
    assert_eq!(started[1].0, "greet_y");
    let expected = flux::identity::task_id("greet_x", &flux::value::to_msgpack(&("x", '!')).unwrap());
    assert_eq!(started[0].1, expected);
}

#[flux::workflow(name = "shared_name")]
async fn typed_text(ctx: ExecutionContext<String>) -> String {
    ctx.input().clone()
}

#[flux::workflow(name = "shared_name")]
async fn typed_number(ctx: ExecutionContext<u64>) -> u64 {
    *ctx.input()
}

#[tokio::test]
async fn a_stored_input_of_another_type_is_a_clear_error_and_changes_nothing() {
    let engine = Engine::in_memory();
    let execution = typed_text.on(&engine).run("not a number".into()).await.unwrap();
    let err = typed_number.on(&engine).replay(execution.execution_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let msg = err.to_string();
    assert!(msg.contains(execution.execution_id()) && msg.contains("u64") && msg.contains("shared_name"), "{msg}");
    // The execution is intact.
    let again = typed_text.on(&engine).replay(execution.execution_id()).await.unwrap();
    assert_eq!(again.output().map(String::as_str), Some("not a number"));
    assert_eq!(again.events().len(), 2);
}

#[tokio::test]
async fn unknown_ids_and_other_workflows_are_named_errors() {
    let engine = Engine::in_memory();
    let err = hello_world.on(&engine).replay("nope").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("nope"), "{err}");

    let other = budget.on(&engine).run(50).await.unwrap();
    let err = hello_world.on(&engine).status(other.execution_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("belongs to workflow `budget`"), "{err}");
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 2, retry_delay = "1ms")]
async fn flaky() -> Result<String, String> {
    if FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 { Err("not yet".to_string()) } else { Ok("ok".to_string()) }
}

#[flux::workflow]
async fn retrying(_ctx: ExecutionContext<()>) -> flux::Result<String> {
    flaky().await
}

#[tokio::test]
async fn a_retried_task_records_its_attempts() {
    let engine = Engine::in_memory();
    let execution = retrying.on(&engine).run(()).await.unwrap();
    assert_eq!(execution.output().map(String::as_str), Some("ok"));
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
}

#[flux::task(timeout = "50ms")]
async fn too_slow() -> u32 {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    1
}

#[flux::workflow]
async fn impatient(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    too_slow().await
}

#[tokio::test]
async fn a_timed_out_task_fails_naming_the_task_and_the_limit() {
    let engine = Engine::in_memory();
    let execution = impatient.on(&engine).run(()).await.unwrap();
    assert!(execution.has_failed());
    let err = execution.error().unwrap();
    assert_eq!(err.kind(), ErrorKind::TaskTimeout);
    assert!(err.to_string().contains("too_slow_") && err.to_string().contains("50ms"), "{err}");
    assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskFailed, WorkflowFailed]);
}

#[flux::task]
fn blocking_sum(values: Vec<u64>) -> u64 {
    values.iter().sum()
}

#[flux::task]
async fn explode(x: u32) -> u32 {
    if x > 0 {
        panic!("boom {x}");
    }
    x
}

#[flux::workflow]
async fn mixed(ctx: ExecutionContext<Vec<u64>>) -> flux::Result<u64> {
    let sum = blocking_sum(ctx.input().clone()).await?;
    match explode(1).await {
        Err(e) if e.kind() == ErrorKind::Panic => Ok(sum),
        other => Err(Error::new(ErrorKind::WorkflowFailed, format!("expected a panic, got {other:?}"))),
    }
}

#[tokio::test]
async fn blocking_tasks_run_and_panics_become_task_failures() {
    let engine = Engine::in_memory();
    let execution = mixed.on(&engine).run(vec![1, 2, 3]).await.unwrap();
    assert_eq!(execution.output(), Some(&6), "{:?}", execution.error());
    assert_eq!(
        kinds(execution.events()),
        [WorkflowStarted, TaskStarted, TaskCompleted, TaskStarted, TaskFailed, WorkflowCompleted]
    );
    assert!(execution.events()[4].value::<Error>().unwrap().message().contains("boom 1"));
}

static SPLIT_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 3, retry_delay = "1ms", retry_backoff = 1.5)]
async fn split(text: String, parts: Vec<usize>) -> Result<Vec<String>, String> {
    // Fails twice: the retries get their arguments back from the recorded encoding.
    if SPLIT_RUNS.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(format!("flaky on {text}"));
    }
    Ok(parts.iter().map(|&n| text.chars().take(n).collect()).collect())
}

#[flux::workflow]
async fn splitter(ctx: ExecutionContext<String>) -> flux::Result<Vec<String>> {
    split(ctx.input().clone(), vec![1, 3]).await
}

#[tokio::test]
async fn retries_receive_the_same_arguments() {
    let engine = Engine::in_memory();
    let execution = splitter.on(&engine).run("flux".to_string()).await.unwrap();
    assert_eq!(execution.output().unwrap(), &["f", "flu"]);
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
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Started {
        current_attempt: u32,
        max_attempts: u32,
        current_delay: f64,
        backoff: f64,
    }
    let started: Vec<Started> =
        execution.events().iter().filter(|e| e.kind() == TaskRetryStarted).map(|e| e.value().unwrap()).collect();
    assert_eq!(started[0], Started { current_attempt: 1, max_attempts: 3, current_delay: 0.001, backoff: 1.5 });
    assert_eq!(started[1].current_attempt, 2);
    assert!((started[1].current_delay - 0.0015).abs() < 1e-9, "{:?}", started[1]);
}

/// A store that refuses one chosen `write` call (counted from 1) as a failing disk would.
fn failing_store(fail_at: u32) -> impl flux::store::Store {
    let calls = AtomicU32::new(0);
    flux_suite::HookedStore::new(move |inner: &flux::store::MemoryStore, writes| {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == fail_at {
            return flux::store::Commit::ready(Err(Error::new(ErrorKind::Storage, "disk I/O error (injected)")));
        }
        inner.write(writes)
    })
}

static LINE_RUNS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

#[flux::task]
async fn line(i: u32) -> u32 {
    LINE_RUNS.lock().unwrap().push(i);
    i * 10
}

#[flux::workflow]
async fn three_lines(_ctx: ExecutionContext<()>) -> flux::Result<Vec<u32>> {
    Ok(vec![line(1).await?, line(2).await?, line(3).await?])
}

#[tokio::test]
async fn a_failed_write_stops_the_run_without_a_gap_and_the_execution_replays() {
    // Writes: 1 = row + WORKFLOW_STARTED, 2 = TASK_STARTED(1), 3 = TASK_COMPLETED(1),
    // 4 = TASK_STARTED(2): refused.
    let engine = Engine::with_store(failing_store(4));
    let err = three_lines.on(&engine).run_with_id("broken", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(err.to_string().contains("disk I/O error (injected)"), "{err}");

    let stored = engine.store().load("broken").unwrap().unwrap();
    assert_eq!(stored.state, ExecutionState::Running);
    assert_eq!(kinds(&stored.events), [WorkflowStarted, TaskStarted, TaskCompleted]);
    assert_eq!(stored.events.iter().map(Event::seq).collect::<Vec<_>>(), [1, 2, 3]);

    let execution = three_lines.on(&engine).replay("broken").await.unwrap();
    assert_eq!(execution.output().unwrap(), &[10, 20, 30]);
    let stored = engine.store().load("broken").unwrap().unwrap();
    assert_eq!(stored.events.iter().map(Event::seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    // Task 1 ran once; task 2 ran in the broken run (unrecorded) and again on replay.
    assert_eq!(*LINE_RUNS.lock().unwrap(), [1, 2, 2, 3]);
}

static GATE_ENTERED: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
static GATE_OPEN: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
static GATE_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn gated() -> u32 {
    GATE_RUNS.fetch_add(1, Ordering::SeqCst);
    GATE_ENTERED.get_or_init(Default::default).notify_one();
    GATE_OPEN.get_or_init(Default::default).notified().await;
    7
}

#[flux::workflow]
async fn gate(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    gated().await
}

#[tokio::test]
async fn an_execution_is_not_run_twice_at_once() {
    let engine = Engine::in_memory();
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { gate.on(&engine).run_with_id("once", ()).await }
    });
    GATE_ENTERED.get_or_init(Default::default).notified().await;
    let err = gate.on(&engine).replay("once").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.to_string().contains("already running"), "{err}");
    let err = gate.on(&engine).run_with_id("once", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    GATE_OPEN.get_or_init(Default::default).notify_one();
    let execution = first.await.unwrap().unwrap();
    assert_eq!(execution.output(), Some(&7));
    assert_eq!(GATE_RUNS.load(Ordering::SeqCst), 1);
    // Once finished it can be loaded again.
    assert_eq!(gate.on(&engine).replay("once").await.unwrap().output(), Some(&7));
}

static SECOND_TRY_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(retry_max_attempts = 1, retry_delay = 0)]
async fn second_try(x: u32) -> Result<u32, String> {
    if SECOND_TRY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 { Err("first try".into()) } else { Ok(x) }
}

#[flux::workflow]
async fn wf_second_try(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    second_try(*ctx.input()).await
}

#[tokio::test]
async fn a_finishing_step_is_stored_with_the_outcome_or_not_at_all() {
    // Writes: 1 = row + WORKFLOW_STARTED, 2 = TASK_STARTED, 3 = TASK_RETRY_FAILED,
    // 4 = TASK_RETRY_STARTED, 5 = TASK_RETRY_COMPLETED with TASK_COMPLETED: refused.
    let engine = Engine::with_store(failing_store(5));
    wf_second_try.on(&engine).run_with_id("pair", 4).await.unwrap_err();
    let stored = engine.store().load("pair").unwrap().unwrap();
    assert_eq!(kinds(&stored.events), [WorkflowStarted, TaskStarted, TaskRetryFailed, TaskRetryStarted]);
    // The replay runs retry 1 again without a second TASK_RETRY_STARTED.
    let execution = wf_second_try.on(&engine).replay("pair").await.unwrap();
    assert_eq!(execution.output(), Some(&4));
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
    assert_eq!(SECOND_TRY_RUNS.load(Ordering::SeqCst), 3);
}

/// What each step of `billing` did, and whether `bill` is fixed yet.
#[derive(Default)]
struct Billing {
    fetched: AtomicU32,
    priced: AtomicU32,
    billed: AtomicU32,
    fixed: std::sync::atomic::AtomicBool,
}

#[flux::task]
async fn fetch_order(order: u32, ledger: flux::State<Billing>) -> String {
    ledger.fetched.fetch_add(1, Ordering::SeqCst);
    format!("order {order}")
}

#[flux::task]
async fn price(order: String, ledger: flux::State<Billing>) -> u64 {
    ledger.priced.fetch_add(1, Ordering::SeqCst);
    order.len() as u64 * 100
}

#[flux::task]
async fn bill(order: String, cents: u64, ledger: flux::State<Billing>) -> Result<String, std::io::Error> {
    ledger.billed.fetch_add(1, Ordering::SeqCst);
    if !ledger.fixed.load(Ordering::SeqCst) {
        return Err(std::io::Error::other("the billing service rejected the currency"));
    }
    Ok(format!("billed {order}: {cents} cents"))
}

#[flux::workflow]
async fn billing(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let order = fetch_order(*ctx.input()).await?;
    let cents = price(order.clone()).await?;
    bill(order, cents).await
}

fn counts(engine: &Engine) -> (u32, u32, u32) {
    let b = engine.state::<Billing>().unwrap();
    (b.fetched.load(Ordering::SeqCst), b.priced.load(Ordering::SeqCst), b.billed.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_fork_reuses_the_results_before_its_step_and_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap().with_state(Billing::default());
    let failed = billing.on(&engine).run(7).await.unwrap();
    assert!(failed.has_failed());
    assert_eq!(counts(&engine), (1, 1, 1));

    // The bug is fixed; the execution is re-run from its third step (`bill`).
    engine.state::<Billing>().unwrap().fixed.store(true, Ordering::SeqCst);
    let fork = billing.on(&engine).fork(failed.execution_id(), 2).await.unwrap();
    assert_eq!(fork.output().map(String::as_str), Some("billed order 7: 700 cents"));
    assert_eq!(counts(&engine), (1, 1, 2), "fetch_order and price answered from the log, only bill ran");
    assert_ne!(fork.execution_id(), failed.execution_id());
    assert_eq!(fork.input(), &7);

    // The fork's log starts with the copied steps; the original is untouched.
    let names: Vec<(EventType, &str)> = fork.events().iter().map(|e| (e.kind(), e.name())).collect();
    assert_eq!(
        names[..5],
        [
            (EventType::WorkflowStarted, "billing"),
            (EventType::TaskStarted, "fetch_order"),
            (EventType::TaskCompleted, "fetch_order"),
            (EventType::TaskStarted, "price"),
            (EventType::TaskCompleted, "price"),
        ]
    );
    let original = billing.on(&engine).status(failed.execution_id()).await.unwrap();
    assert_eq!(original.events(), failed.events());
    assert!(original.has_failed());

    // From step 0 everything runs again; past the last step is refused, naming the steps.
    billing.on(&engine).fork(failed.execution_id(), 0).await.unwrap();
    assert_eq!(counts(&engine), (2, 2, 3));
    let err = billing.on(&engine).fork(failed.execution_id(), 4).await.unwrap_err();
    assert!(err.to_string().contains("has 3 steps (0 `fetch_order`, 1 `price`, 2 `bill`)"), "{err}");
}

#[tokio::test]
async fn the_engine_forks_an_execution_of_a_registered_workflow() {
    let engine = Engine::in_memory().with_state(Billing::default());
    engine.state::<Billing>().unwrap().fixed.store(true, Ordering::SeqCst);
    let first = billing.on(&engine).run(3).await.unwrap();
    let err = engine.fork(first.execution_id(), 1).await.unwrap_err();
    assert!(err.to_string().contains("not registered with this engine"), "{err}");

    engine.register(billing);
    let id = engine.fork(first.execution_id(), 1).await.unwrap();
    let fork = billing.on(&engine).status(&id).await.unwrap();
    assert_eq!(fork.output(), first.output());
    assert_eq!(counts(&engine), (1, 2, 2), "only the steps from 1 on ran again");
    let err = engine.fork("no-such-execution", 0).await.unwrap_err();
    assert_eq!(err.kind(), flux::ErrorKind::NotFound);
}
