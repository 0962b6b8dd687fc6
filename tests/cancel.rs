//! Cancellation (docs/design.md §10): a running task is cancelled, its rollback runs, the fallback
//! does not; from a handle, by id, from another engine on the same file; finished executions
//! refuse.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use EventType::*;
use flux::ErrorKind;
use flux::prelude::*;
use flux_suite::kinds;

/// What the handlers of `charge` saw (tests run in parallel: each uses its own order id).
static ROLLED_BACK: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static FELL_BACK: AtomicBool = AtomicBool::new(false);

fn refund(order: u32) {
    ROLLED_BACK.lock().unwrap().push(order);
}

fn charge_offline(_order: u32) -> String {
    FELL_BACK.store(true, Ordering::SeqCst);
    "offline".to_string()
}

/// The orders whose `charge` is running, and a wake-up for those waiting on it.
static CHARGING: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static CHARGING_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits until `charge(order)` runs.
async fn charging(order: u32) {
    loop {
        let changed = CHARGING_CHANGED.notified();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        if CHARGING.lock().unwrap().contains(&order) {
            return;
        }
        changed.await;
    }
}

/// Never finishes on its own.
#[flux::task(fallback = charge_offline, rollback = refund, retry_max_attempts = 2)]
async fn charge(order: u32) -> String {
    CHARGING.lock().unwrap().push(order);
    CHARGING_CHANGED.notify_waiters();
    std::future::pending::<()>().await;
    format!("charged {order}")
}

#[flux::workflow]
async fn checkout(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    charge(*ctx.input()).await
}

#[tokio::test]
async fn cancelling_a_running_task_runs_its_rollback_not_its_fallback() {
    let engine = Engine::in_memory();
    let handle = checkout.on(&engine).start(1).await.unwrap();
    charging(1).await;
    let cancelled = handle.cancel().await.unwrap();
    assert_eq!(cancelled.state(), ExecutionState::Cancelled);
    assert!(cancelled.is_cancelled());
    assert_eq!(cancelled.error().map(|e| e.kind()), Some(ErrorKind::Cancelled));
    assert_eq!(
        kinds(cancelled.events()),
        vec![
            WorkflowStarted,
            TaskStarted,
            WorkflowCancelling,
            TaskCancelled,
            TaskRollbackStarted,
            TaskRollbackCompleted,
            WorkflowCancelled
        ]
    );
    assert_eq!(*ROLLED_BACK.lock().unwrap(), vec![1]);
    assert!(!FELL_BACK.load(Ordering::SeqCst), "the fallback is skipped");
    // The handle resolves to the cancelled execution too.
    let joined = handle.await.unwrap();
    assert_eq!(joined.state(), ExecutionState::Cancelled);
    // Cancelling a finished execution is an error that says so.
    let again = checkout.on(&engine).cancel(joined.execution_id()).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidState);
    assert!(again.message().contains("already finished (CANCELLED)"), "{again}");
}

#[flux::task]
async fn quick(x: u32) -> u32 {
    x + 1
}

#[flux::workflow]
async fn quick_flow(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    quick(*ctx.input()).await
}

#[tokio::test]
async fn cancelling_a_completed_execution_is_an_error() {
    let engine = Engine::in_memory();
    let done = quick_flow.on(&engine).run(1).await.unwrap();
    let err = quick_flow.on(&engine).cancel(done.execution_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.message().contains("already finished (COMPLETED)"), "{err}");
    let unknown = quick_flow.on(&engine).cancel("no-such-id").await.unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    // The stored execution is untouched.
    let status = quick_flow.on(&engine).status(done.execution_id()).await.unwrap();
    assert_eq!(status.output(), Some(&2));
}

#[flux::workflow]
async fn waits_for_approval(_ctx: ExecutionContext<()>) -> flux::Result<bool> {
    flux::pause::<bool>("approve").await
}

#[tokio::test]
async fn a_paused_execution_is_cancelled_at_once() {
    let engine = Engine::in_memory();
    let paused = waits_for_approval.on(&engine).run(()).await.unwrap();
    let cancelled = waits_for_approval.on(&engine).cancel(paused.execution_id()).await.unwrap();
    assert_eq!(cancelled.state(), ExecutionState::Cancelled);
    assert_eq!(
        kinds(cancelled.events()),
        vec![WorkflowStarted, TaskStarted, TaskPaused, WorkflowPaused, WorkflowCancelling, WorkflowCancelled]
    );
    let err = waits_for_approval.on(&engine).resume(paused.execution_id(), true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}

#[tokio::test]
async fn a_cancel_by_id_from_another_engine_is_noticed_by_the_running_one() {
    // Orders 20, 21, ...: one per store, apart from the other tests' orders.
    for (order, place) in (20u32..).zip(flux_suite::places()) {
        cancel_from_another_engine(order, &place).await;
    }
}

/// Runs order `order` on one engine of `place` and cancels it from another (another process,
/// or another server on one database).
async fn cancel_from_another_engine(order: u32, place: &flux_suite::Place) {
    let runner = place.open();
    let handle = checkout.on(&runner).start(order).await.unwrap();
    let id = handle.execution_id().to_string();
    charging(order).await;

    // Another engine (as another process would) asks for the cancellation.
    let other = place.open();
    let asked = checkout.on(&other).cancel(&id).await.unwrap();
    assert!(matches!(asked.state(), ExecutionState::Cancelling | ExecutionState::Cancelled), "state {}", asked.state());
    let finished = handle.await.unwrap();
    assert_eq!(finished.state(), ExecutionState::Cancelled);
    assert_eq!(
        kinds(finished.events()),
        vec![
            WorkflowStarted,
            TaskStarted,
            WorkflowCancelling,
            TaskCancelled,
            TaskRollbackStarted,
            TaskRollbackCompleted,
            WorkflowCancelled
        ]
    );
    assert!(ROLLED_BACK.lock().unwrap().contains(&order), "{place}");
    let stored = checkout.on(&other).status(&id).await.unwrap();
    assert_eq!(stored.state(), ExecutionState::Cancelled, "{place}");
    assert_eq!(kinds(stored.events()), kinds(finished.events()), "{place}");
}

#[tokio::test]
async fn a_cancellation_left_unfinished_is_finished_by_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let engine = Engine::open(&path).unwrap();
    // A RUNNING execution whose process is gone: a cancellation is asked for.
    let mut log = flux_suite::StoppedLog::new("checkout", "orphan", &3u32);
    log.task_started("charge", &(3u32,));
    log.commit(&engine).await;
    let asked = checkout.on(&engine).cancel("orphan").await.unwrap();
    assert_eq!(asked.state(), ExecutionState::Cancelling);
    let finished = checkout.on(&engine).replay("orphan").await.unwrap();
    assert_eq!(finished.state(), ExecutionState::Cancelled);
    assert_eq!(kinds(finished.events()), vec![WorkflowStarted, TaskStarted, WorkflowCancelling, WorkflowCancelled]);
    // The task was not run again.
    assert!(!ROLLED_BACK.lock().unwrap().contains(&3));
}

#[tokio::test]
async fn a_sleeping_workflow_is_cancelled_without_waiting_for_the_timer() {
    #[flux::workflow]
    async fn nap(_ctx: ExecutionContext<()>) -> flux::Result<()> {
        flux::sleep(std::time::Duration::from_secs(3600)).await
    }
    let engine = Engine::in_memory();
    let handle = nap.on(&engine).start(()).await.unwrap();
    let id = handle.execution_id().to_string();
    // The timer's start is durable before it waits: wait until it is stored.
    while !nap.on(&engine).status(&id).await.unwrap().events().iter().any(|e| e.kind() == TaskStarted) {
        tokio::task::yield_now().await;
    }
    let cancelled = tokio::time::timeout(std::time::Duration::from_secs(10), handle.cancel()).await.unwrap().unwrap();
    assert_eq!(
        kinds(cancelled.events()),
        vec![WorkflowStarted, TaskStarted, WorkflowCancelling, TaskCancelled, WorkflowCancelled]
    );
}
