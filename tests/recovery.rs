//! `Engine::recover`: executions left RUNNING by an engine that is gone are continued by another
//! one once their lease has run out, and only then; a live engine keeps its executions.
//! (A process SIGKILLed and recovered by a new process is in `tests/crash.rs`.)

use std::time::Duration;

use flux::store::{LeaseMode, Write};
use flux::{Engine, ErrorKind, EventType, ExecutionState};
use flux_suite::{StoppedLog, crashed_steps, steps, steps_sum};

fn outcomes(recovered: &[flux::Recovered]) -> Vec<(String, ExecutionState)> {
    recovered
        .iter()
        .map(|r| (r.execution_id.clone(), *r.outcome.as_ref().unwrap_or_else(|e| panic!("{}: {e}", r.execution_id))))
        .collect()
}

#[tokio::test]
async fn a_crashed_execution_of_a_registered_workflow_is_continued_once() {
    let engine = Engine::in_memory();
    // Stopped after 5 of 8 steps, by an engine that never recorded a lease (an older one).
    let mut log = StoppedLog::new(steps::NAME, "crashed", &8u32);
    for i in 0..5u32 {
        let task_id = log.task_started(flux_suite::step::NAME, &(i,));
        log.event(EventType::TaskCompleted, &task_id, flux_suite::step::NAME, &i);
    }
    log.commit(&engine).await;

    // Not registered: left alone.
    assert!(engine.recover().await.unwrap().is_empty());
    assert_eq!(engine.store().state("crashed").unwrap(), Some(ExecutionState::Running));

    engine.register(steps);
    let recovered = engine.recover().await.unwrap();
    assert_eq!(outcomes(&recovered), [("crashed".to_string(), ExecutionState::Completed)]);
    assert_eq!(recovered[0].workflow_name, steps::NAME);
    let done = steps.on(&engine).status("crashed").await.unwrap();
    assert_eq!(done.output(), Some(&steps_sum(8)));
    // The five recorded steps were answered from the log: one TASK_STARTED per step.
    let started = done.events().iter().filter(|e| e.kind() == EventType::TaskStarted).count();
    assert_eq!(started, 8);

    // Nothing is left to recover.
    assert!(engine.recover().await.unwrap().is_empty());
}

#[tokio::test]
async fn held_executions_and_children_of_running_parents_are_left_alone() {
    let engine = Engine::in_memory().with_lease(Duration::from_secs(60));
    engine.register(steps);
    // Held by a worker: the server's claims recover it.
    let held = crashed_steps("held", 3).into_writes();
    engine.store().write(held).await.unwrap();
    let claim = Write::claim("held", Some("w1"), 1);
    engine.store().write(vec![claim]).await.unwrap();
    // A live lease of another engine.
    engine.store().write(crashed_steps("leased", 3).into_writes()).await.unwrap();
    let lease = Write::lease(
        "leased",
        "another-engine",
        std::time::SystemTime::now() + Duration::from_secs(60),
        LeaseMode::Own,
    );
    engine.store().write(vec![lease]).await.unwrap();
    // A sub-workflow whose parent is running: the parent's replay continues it.
    engine.store().write(crashed_steps("parent", 2).into_writes()).await.unwrap();
    let mut child = crashed_steps("child", 2).into_writes();
    if let Some(Write::CreateExecution { parent_id, .. }) = child.first_mut() {
        *parent_id = Some("parent".into());
    }
    engine.store().write(child).await.unwrap();

    let recovered = engine.recover().await.unwrap();
    // Only the parent (no lease recorded) is taken over; its replay calls no child here, so
    // the child is continued by the next recovery, once its parent is no longer running.
    assert_eq!(outcomes(&recovered), [("parent".to_string(), ExecutionState::Completed)]);
    let recovered = engine.recover().await.unwrap();
    assert_eq!(outcomes(&recovered), [("child".to_string(), ExecutionState::Completed)]);
    for id in ["held", "leased"] {
        assert_eq!(engine.store().state(id).unwrap(), Some(ExecutionState::Running), "{id}");
    }
}

#[tokio::test]
async fn a_lease_is_taken_over_only_once_it_has_run_out_and_only_by_one_engine() {
    lease_rules(&Engine::in_memory()).await;
    for place in flux_suite::places() {
        lease_rules(&place.open()).await;
    }
}

/// The rules of `Write::Lease`, the same in every store.
async fn lease_rules(engine: &Engine) {
    engine.store().write(crashed_steps("x", 1).into_writes()).await.unwrap();
    let lease = |owner: &str, until: std::time::SystemTime, mode| Write::lease("x", owner, until, mode);
    let now = std::time::SystemTime::now();
    let later = now + Duration::from_secs(60);
    engine.store().write(vec![lease("a", later, LeaseMode::Own)]).await.unwrap();
    let err = engine.store().write(vec![lease("b", later, LeaseMode::TakeOver)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("cannot be taken over"), "{err}");
    // Its owner lets it run out; one engine takes it over, the next one cannot.
    engine.store().write(vec![lease("a", now - Duration::from_secs(1), LeaseMode::Renew)]).await.unwrap();
    engine.store().write(vec![lease("b", later, LeaseMode::TakeOver)]).await.unwrap();
    let err = engine.store().write(vec![lease("c", later, LeaseMode::TakeOver)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // The first owner's renewal now fails: it must stop.
    let err = engine.store().write(vec![lease("a", later, LeaseMode::Renew)]).await.unwrap_err();
    assert!(err.to_string().contains("taken over by another engine"), "{err}");
    let rows = engine.store().list(&[ExecutionState::Running]).unwrap();
    assert_eq!(rows[0].owner.as_deref(), Some("b"));
    let err = engine.store().write(vec![Write::lease("nope", "b", later, LeaseMode::Own)]);
    assert_eq!(err.await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// A task that waits until the test lets it finish.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[flux::task]
async fn gated(i: u32) -> Result<u32, std::io::Error> {
    GATE.notified().await;
    Ok(i)
}

#[flux::workflow]
async fn waits(ctx: flux::ExecutionContext<u32>) -> flux::Result<u32> {
    gated(*ctx.input()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_engine_renews_its_leases_and_keeps_its_executions() {
    for place in flux_suite::places() {
        live_engine_keeps_its_executions(&place).await;
    }
}

/// Two engines on `place` (two processes, or two servers on one database): the one running an
/// execution renews its lease, so the other never takes it over.
async fn live_engine_keeps_its_executions(place: &flux_suite::Place) {
    let lease = Duration::from_millis(300);
    let running = place.open().with_lease(lease);
    let other = place.open().with_lease(lease);
    other.register(waits);

    let run = tokio::spawn({
        let running = running.clone();
        async move { waits.on(&running).run_with_id("live", 7).await }
    });
    // Wait until the task runs (its TASK_STARTED is durable with the lease).
    loop {
        let stored = other.store().load("live").unwrap();
        if stored.is_some_and(|s| s.events.iter().any(|e| e.kind() == EventType::TaskStarted)) {
            break;
        }
        tokio::task::yield_now().await;
    }
    let owner = other.store().list(&[ExecutionState::Running]).unwrap()[0].owner.clone();
    assert_eq!(owner.as_deref(), Some(running.owner()));
    // Three leases long: only renewals keep the execution its owner's.
    tokio::time::sleep(lease * 3).await;
    // A takeover would replay the waiting task and block: the timeout tells it apart.
    let recovered = tokio::time::timeout(lease * 3, other.recover()).await;
    assert!(recovered.is_ok_and(|r| r.unwrap().is_empty()), "{place}: a live engine's execution was taken over");

    GATE.notify_one();
    let done = run.await.unwrap().unwrap();
    assert_eq!(done.output(), Some(&7), "{place}");
}

#[cfg(feature = "server")]
#[tokio::test]
async fn a_server_continues_its_own_executions_left_running_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap();
    // Left RUNNING, after 2 of 6 steps, by a server process that died before recording a lease.
    engine.store().write(crashed_steps("left", 2).into_writes()).await.unwrap();
    let mut log = StoppedLog::new(steps::NAME, "left-6", &6u32);
    for i in 0..2u32 {
        let task_id = log.task_started(flux_suite::step::NAME, &(i,));
        log.event(EventType::TaskCompleted, &task_id, flux_suite::step::NAME, &i);
    }
    log.commit(&engine).await;

    let server = flux::server::Server::new().engine(&engine).register(steps).bind("127.0.0.1:0").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for (id, n) in [("left", 2u32), ("left-6", 6)] {
        loop {
            if engine.store().state(id).unwrap() == Some(ExecutionState::Completed) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} was not continued");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(steps.on(&engine).status(id).await.unwrap().output(), Some(&steps_sum(n)));
    }
    server.shutdown().await.unwrap();
}

/// A task that waits until the test lets it finish (its own gate: tests run at once).
#[cfg(feature = "server")]
static LONG_GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[cfg(feature = "server")]
#[flux::task]
async fn long_gated(i: u32) -> Result<u32, std::io::Error> {
    LONG_GATE.notified().await;
    Ok(i)
}

#[cfg(feature = "server")]
#[flux::workflow]
async fn waits_long(ctx: flux::ExecutionContext<u32>) -> flux::Result<u32> {
    long_gated(*ctx.input()).await
}

/// A recovered run that takes long does not hold back the server's next looks for expired
/// leases: an execution whose lease runs out while it goes on is continued meanwhile.
#[cfg(feature = "server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_recovered_run_does_not_hold_back_the_next_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(200);
    let engine = Engine::open(dir.path().join("flux.db")).unwrap().with_lease(lease);
    // Left RUNNING with no lease: continued at once, and then waits on its gate.
    StoppedLog::new(waits_long::NAME, "long", &7u32).commit(&engine).await;
    // Left RUNNING by another engine whose lease lasts a while longer.
    engine.store().write(crashed_steps("later", 2).into_writes()).await.unwrap();
    let live = Write::lease(
        "later",
        "another-engine",
        std::time::SystemTime::now() + Duration::from_millis(600),
        LeaseMode::Own,
    );
    engine.store().write(vec![live]).await.unwrap();

    let server = flux::server::Server::new()
        .engine(&engine)
        .register(steps)
        .register(waits_long)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while engine.store().state("later").unwrap() != Some(ExecutionState::Completed) {
        assert!(std::time::Instant::now() < deadline, "`later` was not continued while `long` ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(steps.on(&engine).status("later").await.unwrap().output(), Some(&steps_sum(2)));
    let long = engine.store().load("long").unwrap().unwrap();
    assert_eq!(long.state, ExecutionState::Running, "`long` is still at its gate");
    assert_eq!(long.events.last().map(|e| e.kind()), Some(EventType::TaskStarted));

    LONG_GATE.notify_one();
    while engine.store().state("long").unwrap() != Some(ExecutionState::Completed) {
        assert!(std::time::Instant::now() < deadline, "`long` did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waits_long.on(&engine).status("long").await.unwrap().output(), Some(&7));
    server.shutdown().await.unwrap();
}
