//! Messages into a running workflow (`workflow.send`, `flux::recv`) and events out of it
//! (`flux::set_event`, `workflow.get_event`): kept until received, delivered once per
//! idempotency key, recorded so that a replay gets the same message, bounded by a timeout.

use std::sync::Arc;
use std::time::Duration;

use flux::prelude::*;
use flux::{Engine, ErrorKind, ExecutionState, State};
use tokio::sync::Semaphore;

/// Opens when the test says so.
struct Gate(Arc<Semaphore>);

#[flux::task]
async fn wait_at_gate(gate: State<Gate>) -> bool {
    gate.0.acquire().await.expect("the gate closed").forget();
    true
}

/// A checkout: says it waits, waits up to ten minutes for a payment, says how it ended.
#[flux::workflow]
async fn checkout(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    flux::set_event("status", "waiting for payment".to_string()).await?;
    let paid: Option<u32> = flux::recv("payment").timeout(Duration::from_secs(600)).await?;
    let outcome = match paid {
        Some(cents) if cents >= *ctx.input() => format!("paid {cents}"),
        Some(cents) => format!("underpaid {cents}"),
        None => "expired".to_string(),
    };
    flux::set_event("status", outcome.clone()).await?;
    Ok(outcome)
}

/// Waits at a gate, then takes two messages of `numbers`.
#[flux::workflow]
async fn gated_sum(_ctx: ExecutionContext<()>) -> flux::Result<u32> {
    wait_at_gate().await?;
    let a: u32 = flux::recv("numbers").await?;
    let b: Option<u32> = flux::recv("numbers").timeout(Duration::from_secs(5)).await?;
    Ok(a + b.unwrap_or(1000))
}

/// Takes a message, pauses, takes another: the second run replays the first receive.
#[flux::workflow]
async fn two_halves(_ctx: ExecutionContext<()>) -> flux::Result<String> {
    let first: String = flux::recv("word").await?;
    let _: bool = flux::pause("between").await?;
    let second: String = flux::recv("word").await?;
    Ok(format!("{first} {second}"))
}

fn gated() -> (Engine, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    (Engine::in_memory().with_state(Gate(gate.clone())), gate)
}

#[tokio::test(start_paused = true)]
async fn a_waiting_checkout_gets_its_payment_and_its_status_is_read_from_outside() {
    let engine = Engine::in_memory();
    let order = checkout.on(&engine).start(2500).await.unwrap();
    let id = order.execution_id().to_string();
    let workflow = checkout.on(&engine);
    // The status the workflow set, once it is waiting.
    let mut status: Option<String> = None;
    while status.is_none() {
        tokio::task::yield_now().await;
        status = workflow.get_event(&id, "status").await.unwrap();
    }
    assert_eq!(status.as_deref(), Some("waiting for payment"));
    workflow.send(&id, "payment", 2500u32).await.unwrap();
    let done = order.await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("paid 2500"));
    let status: Option<String> = workflow.get_event(&id, "status").await.unwrap();
    assert_eq!(status.as_deref(), Some("paid 2500"), "the latest value set");
    let none: Option<String> = workflow.get_event(&id, "nothing").await.unwrap();
    assert_eq!(none, None);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_nobody_pays_expires_after_its_timeout() {
    let engine = Engine::in_memory();
    let began = tokio::time::Instant::now();
    let done = checkout.on(&engine).run(2500).await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("expired"));
    assert!(began.elapsed() >= Duration::from_secs(600), "{:?}", began.elapsed());
    // The timeout is recorded: the receive's call completed with nothing.
    let recv = done.events().iter().find(|e| e.kind() == flux::EventType::TaskCompleted && e.name() == "recv_payment");
    assert_eq!(recv.map(|e| e.value_bytes().to_vec()), Some(vec![0xc0]));
}

#[tokio::test(start_paused = true)]
async fn a_message_sent_before_the_receiver_waits_is_kept_and_a_keyed_one_is_delivered_once() {
    let (engine, gate) = gated();
    let handle = gated_sum.on(&engine).start(()).await.unwrap();
    let id = handle.execution_id().to_string();
    let workflow = gated_sum.on(&engine);
    // Both sent while the workflow is still at its gate; the second twice, with one key.
    workflow.send(&id, "numbers", 1u32).await.unwrap();
    assert!(workflow.send_keyed(&id, "numbers", "second", 20u32).await.unwrap());
    assert!(!workflow.send_keyed(&id, "numbers", "second", 20u32).await.unwrap(), "a duplicate was kept");
    gate.add_permits(1);
    let done = handle.await.unwrap();
    assert_eq!(done.output(), Some(&21), "each message once, in order");
}

#[tokio::test(start_paused = true)]
async fn a_keyed_duplicate_is_not_delivered_to_the_next_receive() {
    let (engine, gate) = gated();
    let handle = gated_sum.on(&engine).start(()).await.unwrap();
    let id = handle.execution_id().to_string();
    let workflow = gated_sum.on(&engine);
    assert!(workflow.send_keyed(&id, "numbers", "only", 7u32).await.unwrap());
    assert!(!workflow.send_keyed(&id, "numbers", "only", 7u32).await.unwrap());
    gate.add_permits(1);
    // The second receive finds nothing within its five seconds.
    assert_eq!(handle.await.unwrap().output(), Some(&1007));
}

#[tokio::test]
async fn a_replay_gets_the_message_a_receive_recorded_and_the_next_receive_the_next_message() {
    for place in flux_suite::places() {
        let engine = place.open();
        let workflow = two_halves.on(&engine);
        let handle = workflow.start(()).await.unwrap();
        let id = handle.execution_id().to_string();
        workflow.send(&id, "word", "hello").await.unwrap();
        let paused = handle.await.unwrap();
        assert_eq!(paused.state(), ExecutionState::Paused, "{place}");
        workflow.send(&id, "word", "world").await.unwrap();
        // Resumed in another engine on the same database: the first receive is replayed.
        let other = place.open();
        let done = two_halves.on(&other).resume(&id, true).await.unwrap();
        assert_eq!(done.output().map(String::as_str), Some("hello world"), "{place}");
    }
}

#[tokio::test]
async fn messages_to_unknown_finished_or_other_executions_are_refused_with_the_reason() {
    let engine = Engine::in_memory();
    let error = checkout.on(&engine).send("nope", "payment", 1u32).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    let done = two_halves.on(&engine).start(()).await.unwrap();
    let id = done.execution_id().to_string();
    let error = checkout.on(&engine).send(&id, "payment", 1u32).await.unwrap_err();
    assert!(error.to_string().contains("belongs to workflow `two_halves`"), "{error}");
    two_halves.on(&engine).cancel(&id).await.unwrap();
    let error = two_halves.on(&engine).send(&id, "word", "late").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidState, "{error}");
    assert!(error.to_string().contains("has finished (CANCELLED)"), "{error}");
    let error = flux::recv::<u32>("x").await.unwrap_err();
    assert!(error.to_string().contains("outside a workflow"), "{error}");
}
