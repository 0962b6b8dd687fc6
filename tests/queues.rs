//! Queues and concurrency limits on an embedded engine: a workflow's `max_concurrency`, named
//! queues with a concurrency and a rate, executions waiting in `SCHEDULED` and starting in the
//! order they were submitted. The tasks measure what ran at once; time is Tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flux::prelude::*;
use flux::{Engine, EventType, ExecutionFilter, ExecutionState, State};
use tokio::sync::Semaphore;

/// The log of an execution that waited in a queue and ran one task.
const QUEUED_RUN: [EventType; 5] = [
    EventType::WorkflowScheduled,
    EventType::WorkflowStarted,
    EventType::TaskStarted,
    EventType::TaskCompleted,
    EventType::WorkflowCompleted,
];

/// What the tasks saw: how many ran at once, the most at once, and the order and instants of
/// their starts.
#[derive(Default)]
struct Meter {
    now: AtomicUsize,
    most: AtomicUsize,
    starts: Mutex<Vec<(u32, tokio::time::Instant)>>,
}

impl Meter {
    fn order(&self) -> Vec<u32> {
        self.starts.lock().unwrap().iter().map(|(n, _)| *n).collect()
    }

    /// The work of task call `n`: counted while it runs for `pause`.
    async fn measure(&self, n: u32, pause: Duration) -> u32 {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.starts.lock().unwrap().push((n, tokio::time::Instant::now()));
        tokio::time::sleep(pause).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        n
    }
}

#[flux::task]
async fn measured(n: u32, meter: State<Meter>) -> u32 {
    meter.measure(n, Duration::from_millis(100)).await
}

#[flux::workflow(max_concurrency = 2)]
async fn two_at_a_time(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    measured(*ctx.input()).await
}

#[flux::workflow]
async fn unlimited(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    measured(*ctx.input()).await
}

fn metered() -> Engine {
    Engine::in_memory().with_state(Meter::default())
}

fn meter(engine: &Engine) -> State<Meter> {
    engine.state::<Meter>().unwrap()
}

/// When each execution's `WORKFLOW_STARTED` was recorded.
fn started_at(execution: &flux::Execution<u32, u32>) -> std::time::SystemTime {
    let started = execution.events().iter().find(|e| e.kind() == EventType::WorkflowStarted);
    started.expect("a WORKFLOW_STARTED").time()
}

/// Checks that executions (in the order submitted) started in that order.
fn started_in_order(done: &[flux::Execution<u32, u32>]) {
    let times: Vec<_> = done.iter().map(started_at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "started out of order: {times:?}");
}

async fn scheduled(engine: &Engine) -> u64 {
    engine.list_executions(ExecutionFilter::new().state(ExecutionState::Scheduled)).await.unwrap().total
}

#[tokio::test(start_paused = true)]
async fn max_concurrency_two_runs_twenty_executions_two_at_a_time_in_the_order_submitted() {
    let engine = metered();
    let workflow = two_at_a_time.on(&engine);
    let mut handles = Vec::new();
    for n in 0..20 {
        handles.push(workflow.start(n).await.unwrap());
    }
    // Once two run, the other eighteen wait, stored SCHEDULED.
    while meter(&engine).now.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    assert_eq!(scheduled(&engine).await, 18);
    for (n, handle) in handles.into_iter().enumerate() {
        let done = handle.await.unwrap();
        assert_eq!((done.state(), done.output()), (ExecutionState::Completed, Some(&(n as u32))));
    }
    let meter = meter(&engine);
    assert_eq!(meter.most.load(Ordering::SeqCst), 2, "never more than two at once");
    assert_eq!(meter.order(), (0..20).collect::<Vec<_>>(), "started in the order submitted");
    assert_eq!(scheduled(&engine).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_limited_workflow_run_waits_for_room_and_its_log_shows_it_was_scheduled() {
    let engine = metered();
    let first = two_at_a_time.on(&engine).start(1).await.unwrap();
    let second = two_at_a_time.on(&engine).start(2).await.unwrap();
    // `run` of a limited workflow waits its turn like the others.
    let third = two_at_a_time.on(&engine).run(3).await.unwrap();
    assert_eq!(third.output(), Some(&3));
    let types: Vec<EventType> = third.events().iter().map(|e| e.kind()).collect();
    assert_eq!(types, QUEUED_RUN);
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(meter(&engine).order(), [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_rate_of_ten_a_second_holds_over_fifty_executions() {
    let engine = metered();
    engine.queue("mail").rate(10, Duration::from_secs(1));
    let began = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for n in 0..50 {
        handles.push(unlimited.on(&engine).enqueue("mail", n).await.unwrap());
    }
    let mut done = Vec::new();
    for handle in handles {
        let execution = handle.await.unwrap();
        assert_eq!(execution.state(), ExecutionState::Completed);
        done.push(execution);
    }
    started_in_order(&done);
    let mut starts = meter(&engine).starts.lock().unwrap().clone();
    starts.sort_by_key(|(_, at)| *at);
    for window in starts.windows(11) {
        let spread = window[10].1 - window[0].1;
        assert!(spread >= Duration::from_secs(1), "eleven starts within {spread:?}");
    }
    assert!(began.elapsed() >= Duration::from_secs(4), "fifty starts at ten a second took {:?}", began.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_named_queue_limits_the_executions_started_through_it_and_not_the_others() {
    let engine = metered();
    let queue = engine.queue("emails").concurrency(3);
    let mut handles = Vec::new();
    for n in 0..10 {
        handles.push(unlimited.on(&engine).enqueue("emails", n).await.unwrap());
    }
    while meter(&engine).now.load(Ordering::SeqCst) < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!((queue.running(), queue.waiting()), (3, 7));
    // Not through the queue: runs at once beside them.
    let direct = unlimited.on(&engine).run(99).await.unwrap();
    assert_eq!(direct.output(), Some(&99));
    assert_eq!(meter(&engine).most.load(Ordering::SeqCst), 4);
    let mut done = Vec::new();
    for handle in handles {
        done.push(handle.await.unwrap());
    }
    started_in_order(&done);
    assert_eq!((queue.running(), queue.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_execution_cancelled_while_it_waits_never_runs() {
    let engine = metered();
    engine.queue("one").concurrency(1);
    let first = unlimited.on(&engine).enqueue("one", 1).await.unwrap();
    let waiting = unlimited.on(&engine).enqueue("one", 2).await.unwrap();
    let id = waiting.execution_id().to_string();
    let cancelled = unlimited.on(&engine).cancel(&id).await.unwrap();
    assert_eq!(cancelled.state(), ExecutionState::Cancelled);
    first.await.unwrap();
    assert_eq!(waiting.await.unwrap().state(), ExecutionState::Cancelled);
    assert_eq!(meter(&engine).order(), [1], "the cancelled execution's task never ran");
}

#[flux::task(max_concurrency = 2)]
async fn limited_step(n: u32, meter: State<Meter>) -> u32 {
    meter.measure(n, Duration::from_millis(100)).await
}

#[flux::workflow]
async fn uses_a_limited_step(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    limited_step(*ctx.input()).await
}

#[tokio::test(start_paused = true)]
async fn a_task_with_max_concurrency_runs_at_most_that_many_attempts_across_executions() {
    let engine = metered();
    let mut handles = Vec::new();
    for n in 0..8 {
        handles.push(uses_a_limited_step.on(&engine).start(n).await.unwrap());
    }
    let began = tokio::time::Instant::now();
    for handle in handles {
        assert_eq!(handle.await.unwrap().state(), ExecutionState::Completed);
    }
    assert_eq!(meter(&engine).most.load(Ordering::SeqCst), 2, "never more than two attempts at once");
    // Eight attempts of 100 ms, two at a time.
    assert!(began.elapsed() >= Duration::from_millis(400), "{:?}", began.elapsed());
}

/// Several threads and a database on disk: the limit holds as the executions really run in
/// parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_concurrency_holds_on_a_multi_threaded_runtime_with_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap().with_state(Meter::default());
    let mut handles = Vec::new();
    for n in 0..20 {
        handles.push(two_at_a_time.on(&engine).start(n).await.unwrap());
    }
    let mut done = Vec::new();
    for handle in handles {
        done.push(handle.await.unwrap());
    }
    assert!(done.iter().all(|e| e.state() == ExecutionState::Completed));
    started_in_order(&done);
    assert_eq!(meter(&engine).most.load(Ordering::SeqCst), 2);
}

/// A process that queued an execution and died leaves it `SCHEDULED`, leased to it: once the
/// lease has run out, `recover` elsewhere starts it (once).
#[tokio::test]
async fn a_queued_execution_whose_process_died_is_started_by_recover() {
    use flux::store::{LeaseMode, Write};
    let engine = Engine::in_memory().with_state(Meter::default());
    let now = std::time::SystemTime::now();
    let input: Arc<[u8]> = flux::value::to_msgpack(&7u32).unwrap().into();
    let scheduled = |id: &str, owner: Option<&str>| {
        let mut writes = vec![
            Write::CreateExecution {
                id: id.into(),
                workflow_name: "unlimited".into(),
                state: ExecutionState::Scheduled,
                input: input.clone(),
                parent_id: None,
                version: 1,
                time: now,
            },
            Write::Append {
                execution_id: id.into(),
                event: flux::Event::new(
                    1,
                    EventType::WorkflowScheduled,
                    format!("unlimited_{id}"),
                    "unlimited",
                    input.clone(),
                    now,
                ),
            },
        ];
        if let Some(owner) = owner {
            writes.push(Write::lease(id, owner, now - Duration::from_secs(60), LeaseMode::Own));
        }
        writes
    };
    engine.store().write(scheduled("queued-by-the-dead", Some("dead-engine"))).await.unwrap();
    // Scheduled by a server for its workers: no owner, left alone.
    engine.store().write(scheduled("for-a-worker", None)).await.unwrap();
    engine.register(unlimited);
    let recovered = engine.recover().await.unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].execution_id, "queued-by-the-dead");
    assert_eq!(recovered[0].outcome.as_ref().ok(), Some(&ExecutionState::Completed));
    let done = unlimited.on(&engine).status("queued-by-the-dead").await.unwrap();
    let types: Vec<EventType> = done.events().iter().map(|e| e.kind()).collect();
    assert_eq!(types, QUEUED_RUN);
    assert_eq!(unlimited.on(&engine).status("for-a-worker").await.unwrap().state(), ExecutionState::Scheduled);
    assert!(engine.recover().await.unwrap().is_empty(), "a second recover started something");
}

/// While an execution waits in a live engine's queue its lease is renewed: another engine's
/// `recover` leaves it to its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_execution_of_a_live_engine_is_left_to_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let gate = Arc::new(Semaphore::new(0));
    let lease = Duration::from_millis(150);
    let a = Engine::open(&path).unwrap().with_lease(lease).with_state(Meter::default()).with_state(Gate(gate.clone()));
    a.queue("one").concurrency(1);
    let first = gated_workflow.on(&a).enqueue("one", 1).await.unwrap();
    let second = gated_workflow.on(&a).enqueue("one", 2).await.unwrap();
    // Several leases long.
    tokio::time::sleep(lease * 4).await;
    let b = Engine::open(&path).unwrap().with_lease(lease).with_state(Meter::default()).with_state(Gate(gate.clone()));
    b.register(gated_workflow);
    assert!(b.recover().await.unwrap().is_empty(), "another engine took a queued execution");
    gate.add_permits(2);
    assert_eq!(first.await.unwrap().output(), Some(&1));
    assert_eq!(second.await.unwrap().output(), Some(&2));
}

/// Opens when the test says so.
struct Gate(Arc<Semaphore>);

#[flux::task]
async fn through_gate(n: u32, gate: State<Gate>) -> u32 {
    gate.0.acquire().await.expect("the gate closed").forget();
    n
}

#[flux::workflow]
async fn gated_workflow(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    through_gate(*ctx.input()).await
}

/// A meter several engines share.
#[derive(Clone, Default)]
struct SharedMeter(Arc<Meter>);

#[flux::task]
async fn measured_across(n: u32, meter: State<SharedMeter>) -> u32 {
    meter.0.measure(n, Duration::from_millis(50)).await
}

#[flux::workflow]
async fn across_engines(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    measured_across(*ctx.input()).await
}

#[flux::workflow(max_concurrency = 2)]
async fn two_across_engines(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    measured_across(*ctx.input()).await
}

/// Two engines on one database (a SQLite file, and PostgreSQL when the tests have one), each
/// submitting ten executions: the store counts them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_limit_holds_across_two_engines_on_one_database() {
    for place in flux_suite::places() {
        let meter = SharedMeter::default();
        let engines = [place.open().with_state(meter.clone()), place.open().with_state(meter.clone())];
        let mut handles = Vec::new();
        for n in 0..20 {
            let engine = &engines[n as usize % 2];
            engine.queue("pair").concurrency(2);
            handles.push(across_engines.on(engine).enqueue("pair", n).await.unwrap());
        }
        for handle in handles {
            assert_eq!(handle.await.unwrap().state(), ExecutionState::Completed, "{place}");
        }
        assert_eq!(meter.0.most.load(Ordering::SeqCst), 2, "{place}: never more than two at once in all");

        // A workflow's max_concurrency too.
        let meter = SharedMeter::default();
        let engines = [place.open().with_state(meter.clone()), place.open().with_state(meter.clone())];
        let mut handles = Vec::new();
        for n in 0..12 {
            handles.push(two_across_engines.on(&engines[n as usize % 2]).start(n).await.unwrap());
        }
        for handle in handles {
            assert_eq!(handle.await.unwrap().state(), ExecutionState::Completed, "{place}");
        }
        assert_eq!(meter.0.most.load(Ordering::SeqCst), 2, "{place}: max_concurrency across engines");
    }
}

/// A rate across two engines: at most three starts per second in all (the starts are measured
/// by the tasks, a little after each admission: 100 ms of slack).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_rate_holds_across_two_engines_on_one_database() {
    for place in flux_suite::places() {
        let meter = SharedMeter::default();
        let engines = [place.open().with_state(meter.clone()), place.open().with_state(meter.clone())];
        for engine in &engines {
            engine.queue("slow").rate(3, Duration::from_secs(1));
        }
        let mut handles = Vec::new();
        for n in 0..8 {
            handles.push(across_engines.on(&engines[n as usize % 2]).enqueue("slow", n).await.unwrap());
        }
        for handle in handles {
            assert_eq!(handle.await.unwrap().state(), ExecutionState::Completed, "{place}");
        }
        let mut starts: Vec<_> = meter.0.starts.lock().unwrap().iter().map(|(_, at)| *at).collect();
        starts.sort();
        for window in starts.windows(4) {
            let spread = window[3] - window[0];
            assert!(spread >= Duration::from_millis(900), "{place}: four starts within {spread:?}");
        }
    }
}
