//! Queues of a server: runs submitted over HTTP with `?queue=` (the client's
//! `RemoteWorkflow::queue` and `enqueue`), for workflows the server runs itself and for those
//! its workers run, and the `max_concurrency` a worker's workflow declares. The tasks measure
//! what ran at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flux::Client;
use flux::client::{ExecutionStatus, StreamEvent};
use flux::prelude::*;
use flux::server::{RunningServer, Server};
use flux::worker::Worker;
use flux::{EventType, ExecutionState, State};
use futures::StreamExt as _;
use serde_json::{Value, json};

const BOOTSTRAP: &str = "bootstrap-token-for-queue-tests";

/// How many tasks run at once, the most at once, and the order the tasks started in.
#[derive(Default)]
struct Meter {
    now: AtomicUsize,
    most: AtomicUsize,
    order: std::sync::Mutex<Vec<u32>>,
}

#[flux::task]
async fn measured(n: u32, meter: State<Arc<Meter>>) -> u32 {
    let now = meter.now.fetch_add(1, Ordering::SeqCst) + 1;
    meter.most.fetch_max(now, Ordering::SeqCst);
    meter.order.lock().unwrap().push(n);
    tokio::time::sleep(Duration::from_millis(50)).await;
    meter.now.fetch_sub(1, Ordering::SeqCst);
    n
}

#[flux::workflow]
async fn measured_run(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    measured(*ctx.input()).await
}

#[flux::workflow(max_concurrency = 2)]
async fn two_at_a_time(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    measured(*ctx.input()).await
}

async fn bind(server: Server) -> (RunningServer, String) {
    let running = server.bootstrap_token(BOOTSTRAP).bind("127.0.0.1:0").await.unwrap();
    let url = running.url();
    (running, url)
}

fn api(url: &str) -> Client {
    Client::builder(url).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Waits until the server's catalog has `name`.
async fn wait_for_workflow(api: &Client, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.workflow_info(name).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "workflow `{name}` was never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until each execution has finished, and returns them in the order given.
async fn finished(api: &Client, workflow: &str, ids: &[String]) -> Vec<ExecutionStatus<Value>> {
    let remote = api.workflow::<Value, Value>(workflow).detailed(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut done = Vec::new();
    for id in ids {
        loop {
            let status = remote.status(id).await.unwrap();
            if status.state().is_terminal() {
                done.push(status);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "execution {id} never finished");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    done
}

/// The event types of a detailed status.
fn types(status: &ExecutionStatus<Value>) -> Vec<EventType> {
    status.events().expect("detailed").iter().map(|e| e.kind()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_the_server_limits_runs_submitted_over_http_for_its_own_workflows() {
    let meter = Arc::new(Meter::default());
    let engine = flux::Engine::in_memory().with_state(meter.clone());
    engine.queue("pairs").concurrency(2);
    let (running, url) = bind(Server::new().engine(&engine).register(measured_run)).await;
    let api = api(&url);
    let workflow = api.workflow::<u32, u32>("measured_run");
    let mut ids = Vec::new();
    for n in 0..10 {
        let submitted = workflow.enqueue("pairs", &n).await.unwrap();
        assert!(!submitted.state().is_terminal(), "answered at once: {:?}", submitted.state());
        ids.push(submitted.execution_id().to_string());
    }
    let done = finished(&api, "measured_run", &ids).await;
    for (n, status) in done.iter().enumerate() {
        assert_eq!(status.output(), Some(&json!(n)));
        assert_eq!(types(status)[..2], [EventType::WorkflowScheduled, EventType::WorkflowStarted], "waited");
    }
    assert_eq!(meter.most.load(Ordering::SeqCst), 2, "never more than two at once");
    assert_eq!(*meter.order.lock().unwrap(), (0..10).collect::<Vec<_>>(), "started in the order submitted");

    // A run streamed through the queue shows it waiting, then running, then done.
    let mut stream = workflow.clone().queue("pairs").stream(&42).await.unwrap();
    let mut states = Vec::new();
    while let Some(event) = stream.next().await {
        if let StreamEvent::State(status) = event.unwrap() {
            states.push(status.state().to_string());
        }
    }
    assert_eq!(states, ["SCHEDULED", "RUNNING", "COMPLETED"]);

    // A name the server cannot take is refused with the reason, and nothing is stored.
    let refused = workflow.enqueue("no spaces", &1).await.unwrap_err();
    assert_eq!(refused.http_status(), Some(422), "{refused}");
    assert!(refused.message().contains("`no spaces` is not a queue name"), "{refused}");
    assert_eq!(engine.list_executions(flux::ExecutionFilter::new()).await.unwrap().total, 11);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_workflow_a_worker_runs_is_offered_two_at_a_time_over_http() {
    let meter = Arc::new(Meter::default());
    let (running, url) = bind(Server::new().engine(&flux::Engine::in_memory())).await;
    let worker = Worker::new(&url)
        .name("w")
        .bootstrap_token(BOOTSTRAP)
        .register(two_at_a_time)
        .state(meter.clone())
        .max_concurrency(8);
    let worker = tokio::spawn(worker.run());
    let api = api(&url);
    wait_for_workflow(&api, "two_at_a_time").await;
    let workflow = api.workflow::<u32, u32>("two_at_a_time");
    let mut ids = Vec::new();
    for n in 0..10 {
        let started = workflow.start(&n).await.unwrap();
        assert!(!started.state().is_terminal());
        ids.push(started.execution_id().to_string());
    }
    let done = finished(&api, "two_at_a_time", &ids).await;
    for (n, status) in done.iter().enumerate() {
        assert_eq!(status.output(), Some(&json!(n)));
    }
    assert_eq!(meter.most.load(Ordering::SeqCst), 2, "never more than two at once on the worker");
    // Offered in the order submitted; executions offered together (as places free at once)
    // may start on the worker in either order, so only that each ran once is checked here.
    let mut order = meter.order.lock().unwrap().clone();
    order.sort();
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    worker.abort();
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_queue_limits_a_worker_workflow_and_a_cancelled_waiter_never_runs() {
    let meter = Arc::new(Meter::default());
    let dir = tempfile::tempdir().unwrap();
    let file = "[flux]\ndatabase_url = \"sqlite::memory:\"\n[flux.queues.single]\nconcurrency = 1\n";
    let config = flux::Config::from_sources(Some((&dir.path().join("flux.toml"), file)), Vec::new()).unwrap();
    assert_eq!(config.queues["single"], flux::QueueSettings::new().concurrency(1));
    let (running, url) = bind(Server::new().engine(&flux::Engine::from_config(&config).unwrap())).await;
    let worker = Worker::new(&url).name("w").bootstrap_token(BOOTSTRAP).register(measured_run).state(meter.clone());
    let worker = tokio::spawn(worker.run());
    let api = api(&url);
    wait_for_workflow(&api, "measured_run").await;
    let workflow = api.workflow::<u32, u32>("measured_run").queue("single");
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(workflow.start(&n).await.unwrap().execution_id().to_string());
        }
        ids
    };
    // The last one waits behind the others: cancelled while it waits, it never runs.
    let cancelled = workflow.cancel(&ids[3]).await.unwrap();
    assert_eq!(cancelled.state(), ExecutionState::Cancelled);
    let done = finished(&api, "measured_run", &ids[..3]).await;
    assert!(done.iter().all(|s| s.state() == ExecutionState::Completed));
    assert_eq!(meter.most.load(Ordering::SeqCst), 1, "one at a time");
    assert_eq!(*meter.order.lock().unwrap(), [0, 1, 2], "the cancelled one never ran");
    // Not through the queue: offered at once.
    let direct = api.workflow::<u32, u32>("measured_run").run(&9).await.unwrap();
    assert_eq!(direct.output(), Some(&9));
    worker.abort();
    running.shutdown().await.unwrap();
}
