//! Pause and resume (docs/design.md §9): the exact events, typed resume inputs, several pauses, and
//! the paused state surviving a restart.

use std::collections::BTreeMap;

use EventType::*;
use flux::prelude::*;
use flux::{ErrorKind, Event};
use flux_suite::kinds;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Approval {
    ok: bool,
}

/// The orders `prepare` ran for (tests run in parallel: each uses its own order).
static PREPARED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[flux::task]
async fn prepare(order: String) -> String {
    PREPARED.lock().unwrap().push(order.clone());
    format!("order {order}")
}

#[flux::workflow]
async fn approve_order(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let prepared = prepare(ctx.input().clone()).await?;
    let approval: Approval = flux::pause("approve").await?;
    Ok(format!("{prepared} for {}: {}", ctx.input(), if approval.ok { "approved" } else { "rejected" }))
}

fn workflow_event(events: &[Event], kind: EventType) -> &Event {
    events.iter().find(|e| e.kind() == kind).unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(events)))
}

#[tokio::test]
async fn pause_then_resume_records_the_events_of_the_spec() {
    let engine = Engine::in_memory();
    let paused = approve_order.on(&engine).run("42".to_string()).await.unwrap();
    assert_eq!(paused.state(), ExecutionState::Paused);
    assert!(paused.is_paused());
    assert_eq!(paused.pause_name().as_deref(), Some("approve"));
    assert_eq!(
        kinds(paused.events()),
        vec![WorkflowStarted, TaskStarted, TaskCompleted, TaskStarted, TaskPaused, WorkflowPaused]
    );
    let pause_started = &paused.events()[3];
    assert_eq!(pause_started.name(), "pause");
    assert_eq!(pause_started.value::<(String,)>().unwrap(), ("approve".to_string(),));
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    assert_eq!(paused.events()[4].value::<Named>().unwrap().name, "approve");
    assert_eq!(workflow_event(paused.events(), WorkflowPaused).value::<Named>().unwrap().name, "approve");

    // The resume input `{"ok": true}`, as a map.
    let input: BTreeMap<String, bool> = [("ok".to_string(), true)].into();
    let done = approve_order.on(&engine).resume(paused.execution_id(), input).await.unwrap();
    assert_eq!(done.state(), ExecutionState::Completed);
    assert_eq!(done.output().map(String::as_str), Some("order 42 for 42: approved"));
    let runs = PREPARED.lock().unwrap().iter().filter(|o| *o == "42").count();
    assert_eq!(runs, 1, "the task before the pause is replayed, not run again");
    assert_eq!(
        kinds(done.events()),
        vec![
            WorkflowStarted,
            TaskStarted,
            TaskCompleted,
            TaskStarted,
            TaskPaused,
            WorkflowPaused,
            WorkflowResuming,
            WorkflowResumed,
            TaskResumed,
            TaskCompleted,
            WorkflowCompleted
        ]
    );
    let events = done.events();
    assert_eq!(events[6].value::<Approval>().unwrap(), Approval { ok: true });
    assert_eq!(events[8].source_id(), events[3].source_id());
    #[derive(Deserialize)]
    struct Resumed {
        name: String,
        input: Approval,
    }
    let resumed = events[8].value::<Resumed>().unwrap();
    assert_eq!((resumed.name.as_str(), resumed.input.ok), ("approve", true));
    assert_eq!(events[9].value::<Approval>().unwrap(), Approval { ok: true });
    assert_eq!(events.iter().filter(|e| e.kind() == WorkflowStarted).count(), 1, "no second WORKFLOW_STARTED");

    // Finished: resuming again is an error, and the stored execution is unchanged.
    let again = approve_order.on(&engine).resume(done.execution_id(), Approval { ok: false }).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidState);
    assert!(again.message().contains("not paused"), "{again}");
}

#[flux::workflow]
async fn two_approvals(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let first: Approval = flux::pause_with("manager", format!("amount {}", ctx.input())).await?;
    let second: String = flux::pause("director").await?;
    Ok(format!("{} / {second}", first.ok))
}

#[tokio::test]
async fn two_pauses_resume_one_after_the_other_and_pause_with_exposes_a_value() {
    let engine = Engine::in_memory();
    let wf = two_approvals.on(&engine);
    let first = wf.run(500).await.unwrap();
    assert_eq!(first.pause_name().as_deref(), Some("manager"));
    assert_eq!(first.pause_output::<String>().unwrap().as_deref(), Some("amount 500"));
    let status = wf.status(first.execution_id()).await.unwrap();
    assert!(status.is_paused());
    assert_eq!(status.pause_output::<String>().unwrap().as_deref(), Some("amount 500"));

    let second = wf.resume(first.execution_id(), Approval { ok: true }).await.unwrap();
    assert!(second.is_paused());
    assert_eq!(second.pause_name().as_deref(), Some("director"));
    assert_eq!(second.pause_output::<()>().unwrap(), Some(()));

    let done = wf.resume(first.execution_id(), "signed".to_string()).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("true / signed"));
    assert_eq!(
        kinds(done.events()),
        vec![
            WorkflowStarted,
            TaskStarted,
            TaskPaused,
            WorkflowPaused,
            WorkflowResuming,
            WorkflowResumed,
            TaskResumed,
            TaskCompleted,
            TaskStarted,
            TaskPaused,
            WorkflowPaused,
            WorkflowResuming,
            WorkflowResumed,
            TaskResumed,
            TaskCompleted,
            WorkflowCompleted
        ]
    );
}

#[tokio::test]
async fn a_resume_input_of_the_wrong_type_is_refused_and_the_execution_stays_paused() {
    let engine = Engine::in_memory();
    let wf = approve_order.on(&engine);
    let paused = wf.run("7".to_string()).await.unwrap();
    let before = wf.status(paused.execution_id()).await.unwrap();
    let err = wf.resume(paused.execution_id(), 42u32).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("Approval") && err.message().contains("approve"), "{err}");
    assert!(err.message().contains("stays PAUSED"), "{err}");
    let after = wf.status(paused.execution_id()).await.unwrap();
    assert_eq!(after.state(), ExecutionState::Paused);
    assert_eq!(after.events().len(), before.events().len(), "nothing was recorded");
    // It can still be resumed with the right type.
    let done = wf.resume(paused.execution_id(), Approval { ok: false }).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("order 7 for 7: rejected"));
}

#[tokio::test]
async fn the_paused_state_survives_a_restart() {
    for place in flux_suite::places() {
        let id = {
            let engine = place.open();
            let paused = approve_order.on(&engine).run("restart".to_string()).await.unwrap();
            assert!(paused.is_paused(), "{place}");
            paused.execution_id().to_string()
        };
        // A new engine on the same store (as a new process would open it).
        let engine = place.open();
        let status = approve_order.on(&engine).status(&id).await.unwrap();
        assert_eq!(status.state(), ExecutionState::Paused, "{place}");
        assert_eq!(status.pause_name().as_deref(), Some("approve"), "{place}");
        // A replay of a paused execution returns it as stored.
        let replayed = approve_order.on(&engine).replay(&id).await.unwrap();
        assert!(replayed.is_paused(), "{place}");
        assert_eq!(replayed.events().len(), status.events().len(), "{place}");
        let done = approve_order.on(&engine).resume(&id, Approval { ok: true }).await.unwrap();
        assert_eq!(done.state(), ExecutionState::Completed, "{place}");
        let reloaded = approve_order.on(&place.open()).status(&id).await.unwrap();
        assert_eq!(reloaded.output(), done.output(), "{place}");
        assert_eq!(kinds(reloaded.events()), kinds(done.events()), "{place}");
    }
}

#[tokio::test]
async fn pause_outside_a_workflow_is_an_error() {
    let err = flux::pause::<u32>("nowhere").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
}
