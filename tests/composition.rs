//! Composition (docs/design.md §6): `parallel`, `parallel!`, `task::map` and `pipeline!`, each a
//! task in the log wrapping its calls' events.

use std::sync::atomic::{AtomicU32, Ordering};

use EventType::*;
use flux::prelude::*;
use flux::{ErrorKind, Event};
use flux_suite::kinds;

/// `(type, name)` of every event.
fn named(events: &[Event]) -> Vec<(EventType, String)> {
    events.iter().map(|e| (e.kind(), e.name().to_string())).collect()
}

fn of(kind: EventType, name: &str) -> (EventType, String) {
    (kind, name.to_string())
}

// With the in-memory store a commit is done at once, so the calls of a group run one after
// another in the order they were made: the orders below are exact. (With SQLite, concurrent
// calls interleave and share commits; the group still wraps them.)

#[flux::task]
async fn a(x: u32) -> String {
    format!("a{x}")
}

#[flux::task]
async fn b(x: u32) -> String {
    format!("b{x}")
}

#[flux::task]
async fn fails_on_two(x: u32) -> Result<String, std::io::Error> {
    if x == 2 { Err(std::io::Error::other(format!("no {x}"))) } else { Ok(format!("a{x}")) }
}

#[flux::workflow]
async fn three_at_once(_ctx: ExecutionContext<()>) -> flux::Result<(String, String, String)> {
    flux::parallel!(a(1), b(2), a(3)).await
}

#[tokio::test]
async fn parallel_macro_returns_outputs_in_order_wrapped_in_the_parallel_task() {
    let engine = Engine::in_memory();
    let execution = three_at_once.on(&engine).run(()).await.unwrap();
    assert_eq!(execution.output(), Some(&("a1".to_string(), "b2".to_string(), "a3".to_string())));
    let events = execution.events();
    assert_eq!(
        named(events),
        vec![
            of(WorkflowStarted, "three_at_once"),
            of(TaskStarted, "parallel"),
            of(TaskStarted, "a"),
            of(TaskCompleted, "a"),
            of(TaskStarted, "b"),
            of(TaskCompleted, "b"),
            of(TaskStarted, "a"),
            of(TaskCompleted, "a"),
            of(TaskCompleted, "parallel"),
            of(WorkflowCompleted, "three_at_once"),
        ]
    );
    // The group records its output too.
    let group = &events[8];
    assert_eq!(group.value::<(String, String, String)>().unwrap(), ("a1".into(), "b2".into(), "a3".into()));
    // Replay from the log gives the same output and writes nothing.
    let again = three_at_once.on(&engine).replay(execution.execution_id()).await.unwrap();
    assert_eq!(again.output(), execution.output());
    assert_eq!(again.events().len(), events.len());
}

#[flux::workflow]
async fn settle_all(_ctx: ExecutionContext<()>) -> flux::Result<Vec<String>> {
    let outcomes = flux::parallel([fails_on_two(1), fails_on_two(2)]).all_results().await?;
    Ok(outcomes.into_iter().map(|r| r.unwrap_or_else(|e| format!("error: {}", e.message()))).collect())
}

#[tokio::test]
async fn all_results_mode_returns_every_slot_and_the_workflow_completes() {
    let engine = Engine::in_memory();
    let execution = settle_all.on(&engine).run(()).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Completed);
    let output = execution.output().unwrap();
    assert_eq!(output[0], "a1");
    assert!(output[1].starts_with("error: ") && output[1].contains("no 2"), "{output:?}");
    assert_eq!(
        kinds(execution.events()),
        vec![
            WorkflowStarted,
            TaskStarted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskFailed,
            TaskCompleted,
            WorkflowCompleted
        ]
    );
    // The group's recorded value holds both slots.
    let group = execution.events().iter().rev().find(|e| e.name() == "parallel").unwrap();
    let slots = group.value::<Vec<Result<String, flux::Error>>>().unwrap();
    assert_eq!(slots[0].as_ref().unwrap(), "a1");
    assert_eq!(slots[1].as_ref().unwrap_err().kind(), ErrorKind::TaskFailed);
}

#[flux::workflow]
async fn settle_macro(_ctx: ExecutionContext<()>) -> flux::Result<String> {
    let (first, second) = flux::parallel!(all_results; fails_on_two(1), fails_on_two(2)).await?;
    Ok(format!("{} {}", first?, second.unwrap_or_else(|e| e.kind().to_string())))
}

#[tokio::test]
async fn parallel_macro_all_results_mode_gives_each_outcome() {
    let engine = Engine::in_memory();
    let execution = settle_macro.on(&engine).run(()).await.unwrap();
    assert_eq!(execution.output().map(String::as_str), Some("a1 task_failed"));
}

#[flux::workflow]
async fn first_failure(_ctx: ExecutionContext<()>) -> flux::Result<Vec<String>> {
    flux::parallel([fails_on_two(1), fails_on_two(2), fails_on_two(3)]).await
}

#[tokio::test]
async fn the_first_failure_fails_the_group() {
    let engine = Engine::in_memory();
    let execution = first_failure.on(&engine).run(()).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Failed);
    assert!(execution.error().unwrap().to_string().contains("no 2"));
    let events = named(execution.events());
    assert_eq!(events.first(), Some(&of(WorkflowStarted, "first_failure")));
    assert_eq!(events[1], of(TaskStarted, "parallel"));
    assert_eq!(events[events.len() - 2], of(TaskFailed, "parallel"));
    assert_eq!(events.last(), Some(&of(WorkflowFailed, "first_failure")));
}

static LIMIT_RUNNING: AtomicU32 = AtomicU32::new(0);
static LIMIT_PEAK: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn counted(x: u32) -> u32 {
    let now = LIMIT_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    LIMIT_PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    LIMIT_RUNNING.fetch_sub(1, Ordering::SeqCst);
    x
}

#[flux::workflow]
async fn limited_map(ctx: ExecutionContext<u32>) -> flux::Result<Vec<u32>> {
    counted::map(0..*ctx.input()).max_concurrency(3).await
}

#[tokio::test]
async fn max_concurrency_bounds_the_calls_running_at_once() {
    let engine = Engine::in_memory();
    let execution = limited_map.on(&engine).run(20).await.unwrap();
    assert_eq!(execution.output(), Some(&(0..20).collect::<Vec<_>>()));
    let peak = LIMIT_PEAK.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak concurrency {peak}");
}

static WIDE_RUNNING: AtomicU32 = AtomicU32::new(0);
static WIDE_PEAK: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn counted_wide(x: u32) -> u32 {
    let now = WIDE_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    WIDE_PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    WIDE_RUNNING.fetch_sub(1, Ordering::SeqCst);
    x
}

#[flux::workflow]
async fn wide_map(ctx: ExecutionContext<u32>) -> flux::Result<Vec<u32>> {
    counted_wide::map(0..*ctx.input()).await
}

/// A map of many items runs 1,024 calls at a time by default (so that a map of a million
/// items does not hold a million calls), and still returns every output in item order.
#[tokio::test]
async fn a_map_runs_at_most_1024_calls_at_once_by_default() {
    let engine = Engine::in_memory();
    let execution = wide_map.on(&engine).run(3000).await.unwrap();
    assert_eq!(execution.output(), Some(&(0..3000).collect::<Vec<_>>()));
    let peak = WIDE_PEAK.load(Ordering::SeqCst);
    assert!((100..=1024).contains(&peak), "peak concurrency {peak}");
    let calls = execution.events().iter().filter(|e| e.name() == "counted_wide" && e.kind() == TaskCompleted).count();
    assert_eq!(calls, 3000);
}

#[flux::task]
async fn double(x: u32) -> Result<u32, std::io::Error> {
    if x == 3 { Err(std::io::Error::other("three is not doubled")) } else { Ok(x * 2) }
}

#[flux::workflow]
async fn double_all(ctx: ExecutionContext<Vec<u32>>) -> flux::Result<Vec<u32>> {
    double::map(ctx.input().clone()).await
}

#[tokio::test]
async fn a_failed_map_item_fails_the_map_and_its_failure_is_logged() {
    let engine = Engine::in_memory();
    let execution = double_all.on(&engine).run(vec![1, 2, 3, 4]).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Failed);
    let events = execution.events();
    let count = |kind: EventType| events.iter().filter(|e| e.name() == "double" && e.kind() == kind).count();
    assert_eq!((count(TaskStarted), count(TaskCompleted), count(TaskFailed)), (4, 3, 1));
    assert_eq!(events[1].kind(), TaskStarted);
    assert_eq!(events[1].name(), "map");
    assert_eq!(events[events.len() - 2].kind(), TaskFailed);
    assert_eq!(events[events.len() - 2].name(), "map");
    assert_eq!(events.last().unwrap().kind(), WorkflowFailed);
    assert!(execution.error().unwrap().to_string().contains("three is not doubled"));

    // Without the failing item the map returns the outputs in item order.
    let ok = double_all.on(&engine).run(vec![5, 1, 4]).await.unwrap();
    assert_eq!(ok.output(), Some(&vec![10, 2, 8]));
}

static SEEN: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());

#[flux::task]
async fn times_two(x: i64) -> i64 {
    SEEN.lock().unwrap().push(x);
    x * 2
}

#[flux::task]
async fn add_three(x: i64) -> i64 {
    SEEN.lock().unwrap().push(x);
    x + 3
}

#[flux::task]
async fn square(x: i64) -> i64 {
    SEEN.lock().unwrap().push(x);
    x * x
}

#[flux::workflow]
async fn calc(ctx: ExecutionContext<i64>) -> flux::Result<i64> {
    flux::pipeline!(*ctx.input() => times_two, add_three, square).await
}

#[tokio::test]
async fn pipeline_feeds_each_output_to_the_next_task() {
    let engine = Engine::in_memory();
    let execution = calc.on(&engine).run(2).await.unwrap();
    assert_eq!(execution.output(), Some(&49));
    assert_eq!(*SEEN.lock().unwrap(), vec![2, 4, 7]);
    assert_eq!(
        named(execution.events()),
        vec![
            of(WorkflowStarted, "calc"),
            of(TaskStarted, "pipeline"),
            of(TaskStarted, "times_two"),
            of(TaskCompleted, "times_two"),
            of(TaskStarted, "add_three"),
            of(TaskCompleted, "add_three"),
            of(TaskStarted, "square"),
            of(TaskCompleted, "square"),
            of(TaskCompleted, "pipeline"),
            of(WorkflowCompleted, "calc"),
        ]
    );
    // The children received 2, 4 and 7.
    let args: Vec<(i64,)> = execution
        .events()
        .iter()
        .filter(|e| e.kind() == TaskStarted && e.name() != "pipeline")
        .map(|e| e.value().unwrap())
        .collect();
    assert_eq!(args, vec![(2,), (4,), (7,)]);
}

static AFTER_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn after(x: i64) -> i64 {
    AFTER_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

/// A recorded group is replayed, and the calls after it keep the ids of the first run.
#[flux::workflow]
async fn group_then_repeat(_ctx: ExecutionContext<()>) -> flux::Result<i64> {
    let piped = flux::pipeline!(1 => after, after).await?;
    // The same call as the pipeline's first: its id is `after_..~2`, in every run.
    let again = after(1).await?;
    Ok(piped + again)
}

#[tokio::test]
async fn calls_after_a_replayed_group_keep_their_occurrence_numbers() {
    for place in flux_suite::places() {
        AFTER_RUNS.store(0, Ordering::SeqCst);
        let engine = place.open();
        let first = group_then_repeat.on(&engine).run(()).await.unwrap();
        assert_eq!(first.output(), Some(&2), "{place}");
        assert_eq!(AFTER_RUNS.load(Ordering::SeqCst), 3, "{place}");
        // A crash right after the group: the last call and the end are not in the log.
        let id = "after-the-group";
        let mut log = flux_suite::StoppedLog::new("group_then_repeat", id, &());
        for event in first.events().iter().skip(1).take(6) {
            log.raw(event.kind(), event.source_id(), event.name(), event.value_bytes().to_vec());
        }
        log.commit(&engine).await;
        drop(engine);
        let engine = place.open();
        let replayed = group_then_repeat.on(&engine).replay(id).await.unwrap();
        assert_eq!(replayed.output(), Some(&2), "{place}");
        // Only the call after the group ran again, under the id of the first run.
        assert_eq!(AFTER_RUNS.load(Ordering::SeqCst), 4, "{place}");
        let last_call = &replayed.events()[replayed.events().len() - 3];
        assert_eq!(last_call.kind(), TaskStarted, "{place}");
        assert_eq!(last_call.source_id(), first.events()[first.events().len() - 3].source_id(), "{place}");
        assert!(last_call.source_id().ends_with("~2"), "{place}: {}", last_call.source_id());
    }
}

#[flux::task]
async fn plus_one(x: u64) -> u64 {
    x + 1
}

#[flux::workflow]
async fn big_map(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    let outputs = plus_one::map(0..*ctx.input()).await?;
    Ok(outputs.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_item_map_completes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap();
    let n = 10_000u64;
    let execution = big_map.on(&engine).run(n).await.unwrap();
    assert_eq!(execution.state(), ExecutionState::Completed);
    assert_eq!(execution.output(), Some(&(n * (n + 1) / 2)));
    let events = execution.events();
    assert_eq!(events.len() as u64, 2 * n + 4);
    assert_eq!(events.iter().filter(|e| e.kind() == TaskCompleted && e.name() == "plus_one").count() as u64, n);
    // Reloads and replays from a fresh engine.
    let engine = Engine::open(dir.path().join("flux.db")).unwrap();
    let again = big_map.on(&engine).replay(execution.execution_id()).await.unwrap();
    assert_eq!(again.output(), execution.output());
}

#[flux::task]
async fn inc(x: u32) -> u32 {
    x + 1
}

#[flux::workflow]
async fn nested_groups(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    let ((piped, two), three) =
        flux::parallel!(flux::parallel!(flux::pipeline!(1 => inc, inc), inc(2)), inc(3)).await?;
    Ok(piped + two + three)
}

#[test]
fn groups_nested_in_groups_run_on_a_small_stack() {
    // A 1 MiB thread (half the default of test threads): a group's future must not hold its
    // body inline at every level.
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let engine = Engine::in_memory();
                nested_groups.on(&engine).run(()).await.unwrap()
            })
        })
        .unwrap();
    let execution = handle.join().expect("no stack overflow");
    assert_eq!(execution.output(), Some(&10));
    let groups: Vec<&str> = execution
        .events()
        .iter()
        .filter(|e| e.kind() == TaskStarted)
        .map(|e| e.name())
        .filter(|n| *n != "inc")
        .collect();
    assert_eq!(groups, ["parallel", "parallel", "pipeline"]);
}

/// For the fail-fast replay: item 3 tells item 1 it has started, and item 1 fails then, so that
/// the group's first run made calls 1, 2 and 3 (but not 4) before it stopped.
#[derive(Default)]
struct Race {
    third_started: tokio::sync::Notify,
    third_calls: AtomicU32,
    runs: AtomicU32,
}

#[flux::task]
async fn work(x: u32, race: flux::State<Race>) -> Result<u32, std::io::Error> {
    race.runs.fetch_add(1, Ordering::SeqCst);
    match x {
        1 => {
            race.third_started.notified().await;
            Err(std::io::Error::other("one fails"))
        }
        3 if race.third_calls.fetch_add(1, Ordering::SeqCst) == 0 => {
            race.third_started.notify_one();
            std::future::pending().await
        }
        x => Ok(x * 10),
    }
}

#[flux::workflow]
async fn fail_fast_then_repeat(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    let group = flux::parallel((1..=4).map(work)).max_concurrency(2).await;
    assert!(group.is_err());
    // The same call as the group's third: its id is the next occurrence, `~1`.
    let again = work(3).await?;
    let _: bool = flux::pause("check").await?;
    Ok(again)
}

#[tokio::test]
async fn a_fail_fast_group_replays_every_call_its_first_run_made() {
    let engine = Engine::in_memory().with_state(Race::default());
    let race = engine.state::<Race>().unwrap();
    let paused = fail_fast_then_repeat.on(&engine).run(()).await.unwrap();
    assert!(paused.is_paused());
    // Items 1, 2 and 3 ran in the group (4 was never made), then the repeated call.
    assert_eq!(race.runs.load(Ordering::SeqCst), 4);
    let id = paused.execution_id().to_string();

    // The replay of the failed group must make calls 1, 2 and 3 again (and not 4), so that the
    // repeated call gets its own recorded outcome instead of running the group's third again.
    let done = fail_fast_then_repeat.on(&engine).resume(&id, true).await.unwrap();
    assert_eq!(done.output(), Some(&30));
    assert_eq!(race.runs.load(Ordering::SeqCst), 4, "nothing ran again");
    let started = done.events().iter().filter(|e| e.kind() == TaskStarted && e.name() == "work").count();
    assert_eq!(started, 4, "no call was started again");
}
