//! Inline steps (`flux::step`, `flux::step_with`): recorded and replayed exactly as the
//! `#[flux::task]` of the same name without parameters would be.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flux::prelude::*;
use flux::{ErrorKind, TaskOptions};

static TASK_RUNS: AtomicU32 = AtomicU32::new(0);
static STEP_RUNS: AtomicU32 = AtomicU32::new(0);
static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(name = "charge_card")]
async fn charge_card() -> Result<String, std::io::Error> {
    TASK_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok("receipt 42".to_string())
}

#[flux::workflow]
async fn with_task(_ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let receipt = charge_card().await?;
    let again = charge_card().await?;
    let approved: bool = flux::pause("approve").await?;
    Ok(format!("{receipt}, {again}, {approved}"))
}

#[flux::workflow]
async fn with_step(_ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let charge = || {
        flux::step("charge_card", async {
            STEP_RUNS.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>("receipt 42".to_string())
        })
    };
    let receipt = charge().await?;
    let again = charge().await?;
    let approved: bool = flux::pause("approve").await?;
    Ok(format!("{receipt}, {again}, {approved}"))
}

/// The events of an execution as (type, source id, name, value), without times and with the
/// workflow's own source id left out (it names the workflow and the execution).
fn log(execution: &Execution<u32, String>) -> Vec<(String, String, String, Vec<u8>)> {
    execution
        .events()
        .iter()
        .filter(|e| e.kind().to_string().starts_with("TASK_"))
        .map(|e| (e.kind().to_string(), e.source_id().to_string(), e.name().to_string(), e.value_bytes().to_vec()))
        .collect()
}

#[tokio::test]
async fn a_step_is_recorded_and_replayed_as_the_task_of_its_name() {
    let engine = Engine::in_memory();
    let task_run = with_task.on(&engine).run(1).await.unwrap();
    let step_run = with_step.on(&engine).run(1).await.unwrap();
    assert!(step_run.is_paused());
    assert_eq!(log(&step_run), log(&task_run), "the same events, ids, names and values");
    let ids: Vec<String> = log(&step_run).into_iter().map(|(_, id, ..)| id).collect();
    assert!(ids[0].starts_with("charge_card_") && ids[2] == format!("{}~1", ids[0]), "{ids:?}");

    // The resume replays the body: the recorded receipts answer, nothing runs again.
    let (task_runs, step_runs) = (TASK_RUNS.load(Ordering::SeqCst), STEP_RUNS.load(Ordering::SeqCst));
    let task_done = with_task.on(&engine).resume(task_run.execution_id(), true).await.unwrap();
    let step_done = with_step.on(&engine).resume(step_run.execution_id(), true).await.unwrap();
    assert_eq!(step_done.output(), Some(&"receipt 42, receipt 42, true".to_string()));
    assert_eq!(step_done.output(), task_done.output());
    assert_eq!(log(&step_done), log(&task_done));
    assert_eq!((TASK_RUNS.load(Ordering::SeqCst), STEP_RUNS.load(Ordering::SeqCst)), (task_runs, step_runs));
}

#[flux::workflow]
async fn flaky(_ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let options = TaskOptions::new().retry_max_attempts(3).retry_delay(Duration::from_millis(1));
    flux::step_with("flaky_call", options, || async {
        match FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err(std::io::Error::other("connection reset")),
            n => Ok(n),
        }
    })
    .await
}

#[tokio::test]
async fn a_step_made_by_a_closure_is_retried_afresh() {
    let engine = Engine::in_memory();
    let execution = flaky.on(&engine).run(0).await.unwrap();
    assert_eq!(execution.output(), Some(&2));
    let kinds: Vec<String> = execution.events().iter().map(|e| e.kind().to_string()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "TASK_RETRY_FAILED").count(), 2, "{kinds:?}");
    assert!(kinds.contains(&"TASK_RETRY_COMPLETED".to_string()), "{kinds:?}");
}

#[flux::workflow]
async fn retried_future(_ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    flux::step_with("once", TaskOptions::new().retry_max_attempts(2), async { Ok::<_, std::io::Error>(1) }).await
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the warehouse")
    }
}

impl std::error::Error for Refused {}

#[flux::workflow]
async fn refused(_ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    flux::step("reserve", async { Err::<u32, _>(Refused) }).await
}

#[tokio::test]
async fn step_errors_say_what_is_wrong_and_keep_their_type() {
    let engine = Engine::in_memory();
    let err = retried_future.on(&engine).run(0).await.unwrap().into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("step `once` has retries but was given a future"), "{err}");
    let err = refused.on(&engine).run(0).await.unwrap().into_result().unwrap_err();
    assert!(err.is::<Refused>() && err.message() == "refused by the warehouse", "{err:?}");
    // Outside a workflow a step simply runs.
    assert_eq!(flux::step("plain", async { Ok::<_, std::io::Error>(5) }).await.unwrap(), 5);
}

static FETCHES: AtomicU32 = AtomicU32::new(0);

#[flux::task]
async fn fetch_page(page: u32) -> String {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    format!("page {page}")
}

#[flux::workflow]
async fn crawl(_ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let background = flux::spawn(async { fetch_page(2).await });
    let first = fetch_page(1).await?;
    let second = background.await.map_err(|e| flux::Error::new(ErrorKind::Panic, e.to_string()))??;
    let approved: bool = flux::pause("approve").await?;
    Ok(format!("{first}, {second}, {approved}"))
}

#[tokio::test]
async fn a_future_given_to_flux_spawn_records_its_calls_in_the_execution() {
    let engine = Engine::in_memory();
    let paused = crawl.on(&engine).run(0).await.unwrap();
    let mut names: Vec<&str> =
        paused.events().iter().filter(|e| e.kind() == EventType::TaskCompleted).map(|e| e.source_id()).collect();
    names.sort_unstable();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("fetch_page_")), "{names:?}");
    let fetched = FETCHES.load(Ordering::SeqCst);
    let done = crawl.on(&engine).resume(paused.execution_id(), true).await.unwrap();
    assert_eq!(done.output(), Some(&"page 1, page 2, true".to_string()));
    assert_eq!(FETCHES.load(Ordering::SeqCst), fetched, "the resume replays both calls from the log");
}

#[flux::workflow]
async fn crawl_with_tokio_spawn(_ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let background = tokio::spawn(async { fetch_page(2).await });
    let first = fetch_page(1).await?;
    let second = background.await.map_err(|e| flux::Error::new(ErrorKind::Panic, e.to_string()))??;
    Ok(format!("{first}, {second}"))
}

#[tokio::test]
async fn a_task_called_from_tokio_spawn_inside_a_workflow_fails_instead_of_running_unrecorded() {
    let engine = Engine::in_memory();
    let failed = crawl_with_tokio_spawn.on(&engine).run(0).await.unwrap();
    assert!(failed.has_failed(), "{:?}", failed.state());
    let error = failed.error().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidState, "{error}");
    let message = error.to_string();
    assert!(message.contains("was called outside its execution's scope"), "{message}");
    assert!(message.contains("`flux::spawn`"), "names the way out: {message}");
    assert!(message.contains(failed.execution_id()), "names the execution: {message}");
    // The spawned call never ran; only the body's own call did, and only it is recorded.
    let recorded = failed.events().iter().filter(|e| e.kind() == EventType::TaskStarted).count();
    assert_eq!(recorded, 1);

    // A task called directly, outside any workflow, still simply runs.
    assert_eq!(fetch_page(7).await.unwrap(), "page 7");
}
