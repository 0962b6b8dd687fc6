//! Progress and streaming (docs/design.md §8): durable events as they are recorded, ephemeral
//! progress in between, never stored; a bounded queue for slow readers.

use futures::StreamExt as _;

use EventType::*;
use flux::Event;
use flux::limits::PROGRESS_QUEUE;
use flux::prelude::*;
use flux_suite::kinds;

#[flux::task]
async fn crunch(n: u32) -> u32 {
    for i in 1..=3 {
        flux::progress(format!("{i}/3")).await;
    }
    n * 2
}

#[flux::workflow]
async fn crunching(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    crunch(*ctx.input()).await
}

#[tokio::test]
async fn progress_events_come_in_order_before_the_task_completes_and_are_never_stored() {
    let engine = Engine::in_memory();
    let stream = crunching.on(&engine).stream(21).await.unwrap();
    let id = stream.execution_id().to_string();
    let events: Vec<Event> = stream.map(|e| e.unwrap()).collect().await;
    assert_eq!(
        kinds(&events),
        vec![WorkflowStarted, TaskStarted, TaskProgress, TaskProgress, TaskProgress, TaskCompleted, WorkflowCompleted]
    );
    let values: Vec<String> = events.iter().filter(|e| e.kind() == TaskProgress).map(|e| e.value().unwrap()).collect();
    assert_eq!(values, ["1/3", "2/3", "3/3"]);
    // Progress belongs to the task that sent it.
    assert!(events.iter().filter(|e| e.kind() == TaskProgress).all(|e| e.source_id() == events[1].source_id()));
    assert_eq!(events.last().unwrap().value::<u32>().unwrap(), 42);

    let stored = crunching.on(&engine).status(&id).await.unwrap();
    assert_eq!(kinds(stored.events()), vec![WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
    assert_eq!(stored.output(), Some(&42));
}

#[flux::workflow]
async fn stop_for_review(_ctx: ExecutionContext<()>) -> flux::Result<String> {
    flux::pause::<String>("review").await
}

#[tokio::test]
async fn a_stream_ends_with_the_paused_event() {
    let engine = Engine::in_memory();
    let events: Vec<Event> = stop_for_review.on(&engine).stream(()).await.unwrap().map(|e| e.unwrap()).collect().await;
    assert_eq!(kinds(&events), vec![WorkflowStarted, TaskStarted, TaskPaused, WorkflowPaused]);
}

static EMITTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[flux::task]
async fn chatty(n: u32) -> u32 {
    for i in 0..n {
        flux::progress(i).await;
    }
    EMITTED.notify_one();
    n
}

#[flux::workflow]
async fn chatter(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    chatty(*ctx.input()).await
}

#[tokio::test]
async fn a_reader_that_falls_behind_misses_progress_beyond_the_queue_but_no_durable_event() {
    let engine = Engine::in_memory();
    let sent = PROGRESS_QUEUE as u32 + 500;
    let stream = chatter.on(&engine).stream(sent).await.unwrap();
    // Read nothing until every progress event was sent.
    EMITTED.notified().await;
    let events: Vec<Event> = stream.map(|e| e.unwrap()).collect().await;
    let progress: Vec<u32> = events.iter().filter(|e| e.kind() == TaskProgress).map(|e| e.value().unwrap()).collect();
    assert_eq!(progress.len(), PROGRESS_QUEUE);
    assert_eq!(progress, (0..PROGRESS_QUEUE as u32).collect::<Vec<_>>(), "the oldest are kept, in order");
    let durable: Vec<EventType> = events.iter().map(Event::kind).filter(|k| *k != TaskProgress).collect();
    assert_eq!(durable, vec![WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
}

#[tokio::test]
async fn progress_without_a_listener_or_outside_a_workflow_does_nothing() {
    let engine = Engine::in_memory();
    let execution = crunching.on(&engine).run(1).await.unwrap();
    assert_eq!(execution.output(), Some(&2));
    assert_eq!(kinds(execution.events()), vec![WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
    flux::progress("nobody listens").await;
    assert_eq!(crunch(5).await.unwrap(), 10);
}

#[tokio::test]
async fn the_stream_gives_the_execution_at_its_end() {
    let engine = Engine::in_memory();
    let stream = crunching.on(&engine).stream(4).await.unwrap();
    let execution = stream.execution().await.unwrap();
    assert_eq!(execution.output(), Some(&8));
}
