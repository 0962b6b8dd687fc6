//! Workflow versions and determinism: a replay whose calls no longer match the recorded log
//! stops with `ErrorKind::NonDeterminism`, records nothing and runs nothing again;
//! `flux::patched` lets changed code keep the old path for old executions.
//!
//! "Code changes" are modelled by workflows of the same name in different modules: each is the
//! code of `order` at one point in time, run over the same database.

use std::sync::atomic::{AtomicU32, Ordering};

use flux::prelude::*;
use flux::{ErrorKind, State};

/// How often each task really ran.
#[derive(Debug, Default)]
struct Runs {
    reserve: AtomicU32,
    reserve_stock: AtomicU32,
}

#[flux::task]
async fn reserve(item: String, runs: State<Runs>) -> String {
    runs.reserve.fetch_add(1, Ordering::SeqCst);
    format!("reserved {item}")
}

#[flux::task]
async fn reserve_stock(item: String, runs: State<Runs>) -> String {
    runs.reserve_stock.fetch_add(1, Ordering::SeqCst);
    format!("reserved {item} from stock")
}

/// The code the executions started with.
mod v1 {
    use super::*;

    #[flux::workflow(name = "order")]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let reserved = reserve(ctx.input().clone()).await?;
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved}, approved: {approved}"))
    }
}

/// A different task before the pause point.
mod other_task {
    use super::*;

    #[flux::workflow(name = "order", version = 2)]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let reserved = reserve_stock(ctx.input().clone()).await?;
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved}, approved: {approved}"))
    }
}

/// The same task with other arguments.
mod other_arguments {
    use super::*;

    #[flux::workflow(name = "order", version = 2)]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let reserved = reserve(ctx.input().to_uppercase()).await?;
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved}, approved: {approved}"))
    }
}

/// Returns before making the calls the log holds.
mod fewer_calls {
    use super::*;

    #[flux::workflow(name = "order", version = 2)]
    pub async fn order(_ctx: ExecutionContext<String>) -> flux::Result<String> {
        Ok("nothing to do".to_string())
    }
}

/// The change, made with `flux::patched`.
mod patched {
    use super::*;

    #[flux::workflow(name = "order", version = 2)]
    pub async fn order(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let item = ctx.input().clone();
        let reserved =
            if flux::patched("reserve-from-stock") { reserve_stock(item).await? } else { reserve(item).await? };
        let approved: bool = flux::pause("approve").await?;
        Ok(format!("{reserved}, approved: {approved}"))
    }
}

/// What storage holds of an execution: its state and its events (type, source, name, value).
async fn stored(engine: &Engine, id: &str) -> (ExecutionState, Vec<(String, String, String, Vec<u8>)>) {
    let execution = v1::order.on(engine).status(id).await.unwrap();
    let events = execution
        .events()
        .iter()
        .map(|e| (e.kind().to_string(), e.source_id().to_string(), e.name().to_string(), e.value_bytes().to_vec()))
        .collect();
    (execution.state(), events)
}

fn engine_in(dir: &tempfile::TempDir) -> Engine {
    Engine::open(dir.path().join("flux.db")).unwrap().with_state(Runs::default())
}

fn runs(engine: &Engine) -> (u32, u32) {
    let runs = engine.state::<Runs>().unwrap();
    (runs.reserve.load(Ordering::SeqCst), runs.reserve_stock.load(Ordering::SeqCst))
}

/// An execution of `v1` paused at its pause, and what storage holds of it.
async fn paused_under_v1(engine: &Engine) -> (String, (ExecutionState, Vec<(String, String, String, Vec<u8>)>)) {
    let execution = v1::order.on(engine).run("book".to_string()).await.unwrap();
    assert!(execution.is_paused());
    let id = execution.execution_id().to_string();
    let before = stored(engine, &id).await;
    (id, before)
}

#[tokio::test]
async fn a_different_task_before_the_pause_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(&dir);
    let (id, before) = paused_under_v1(&engine).await;
    assert_eq!(runs(&engine), (1, 0));

    let err = other_task::order.on(&engine).resume(&id, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NonDeterminism, "{err}");
    let message = err.to_string();
    let new_call = flux::identity::task_id("reserve_stock", &flux::value::to_msgpack(&("book",)).unwrap());
    let recorded = flux::identity::task_id("reserve", &flux::value::to_msgpack(&("book",)).unwrap());
    assert!(message.contains(&format!("calls `{new_call}`")), "names the new call: {message}");
    assert!(message.contains(&format!("recorded `{recorded}`")), "names the recorded call: {message}");
    assert_eq!(err.task_id(), Some(new_call.as_str()));

    assert_eq!(runs(&engine), (1, 0), "nothing ran again, the new task did not run");
    assert_eq!(stored(&engine, &id).await, before, "the stored log and state are unchanged");

    // Also after a restart of the process, with the old code back, the execution resumes.
    drop(engine);
    let engine = engine_in(&dir);
    let done = v1::order.on(&engine).resume(&id, true).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("reserved book, approved: true"));
    assert_eq!(runs(&engine), (0, 0), "the recorded call answers from the log");
}

#[tokio::test]
async fn other_arguments_for_the_same_task_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(&dir);
    let (id, before) = paused_under_v1(&engine).await;
    let err = other_arguments::order.on(&engine).resume(&id, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NonDeterminism, "{err}");
    assert!(err.to_string().contains("(task `reserve`) where the log recorded"), "{err}");
    assert_eq!(runs(&engine), (1, 0));
    assert_eq!(stored(&engine, &id).await, before);
}

#[tokio::test]
async fn returning_before_the_recorded_calls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(&dir);
    let (id, before) = paused_under_v1(&engine).await;
    let err = fewer_calls::order.on(&engine).resume(&id, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NonDeterminism, "{err}");
    let recorded = flux::identity::task_id("reserve", &flux::value::to_msgpack(&("book",)).unwrap());
    assert!(err.to_string().contains(&format!("without making the recorded call `{recorded}`")), "{err}");
    assert_eq!(stored(&engine, &id).await, before);
}

#[tokio::test]
async fn patched_keeps_the_old_path_for_old_executions_and_takes_the_new_one_for_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(&dir);
    let (old, _) = paused_under_v1(&engine).await;

    let old = patched::order.on(&engine).resume(&old, true).await.unwrap();
    assert_eq!(old.output().map(String::as_str), Some("reserved book, approved: true"), "the old path");
    assert_eq!(runs(&engine), (1, 0), "the old call answered from the log, the new one never ran");
    assert!(!old.events().iter().any(|e| e.name() == "patched"), "an old execution records no patch marker");

    let new = patched::order.on(&engine).run("book".to_string()).await.unwrap();
    assert!(new.is_paused());
    assert_eq!(runs(&engine), (1, 1), "a new execution takes the new path");
    let markers: Vec<(String, String)> = new
        .events()
        .iter()
        .filter(|e| e.name() == "patched")
        .map(|e| (e.kind().to_string(), e.source_id().to_string()))
        .collect();
    let marker = flux::identity::task_id("patched", &flux::value::to_msgpack(&("reserve-from-stock",)).unwrap());
    assert_eq!(markers, [("TASK_STARTED".to_string(), marker.clone()), ("TASK_COMPLETED".to_string(), marker)]);

    // Its replay takes the new path again, from the log.
    let new = patched::order.on(&engine).resume(new.execution_id(), false).await.unwrap();
    assert_eq!(new.output().map(String::as_str), Some("reserved book from stock, approved: false"));
    assert_eq!(runs(&engine), (1, 1));
}

#[tokio::test]
async fn patched_outside_a_workflow_is_true() {
    assert!(flux::patched("anything"));
}

#[tokio::test]
async fn every_execution_keeps_the_version_it_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(&dir);
    let (old, _) = paused_under_v1(&engine).await;
    let new = patched::order.on(&engine).run("chair".to_string()).await.unwrap();
    // Resumed by version 2's code, the old execution still says it started under version 1.
    patched::order.on(&engine).resume(&old, true).await.unwrap();

    let page = engine.list_executions(flux::ExecutionFilter::new().workflow("order")).await.unwrap();
    let mut versions: Vec<(String, u32)> = page.executions.iter().map(|row| (row.id.clone(), row.version)).collect();
    versions.sort();
    let mut expected = vec![(old, 1), (new.execution_id().to_string(), 2)];
    expected.sort();
    assert_eq!(versions, expected);
    drop(engine);

    // Also once the file is opened again.
    let engine = engine_in(&dir);
    let page = engine.list_executions(flux::ExecutionFilter::new().workflow("order")).await.unwrap();
    assert_eq!(page.executions.iter().map(|row| row.version).max(), Some(2));
}
