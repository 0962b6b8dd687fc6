//! `flux::Client` against a real server on 127.0.0.1 (an ephemeral port per test): every
//! endpoint of the client API round-trips typed. The catalog; runs, starts and statuses; a
//! failed execution's error; streams with their progress and events; a 422 for an input the
//! workflow cannot read and a 404 for what does not exist; pause and resume; cancellation; the
//! admin secrets with and without the token; a worker behind the server; an unreachable server.

use std::time::{Duration, Instant};

use flux::client::StreamEvent;
use flux::prelude::*;
use flux::server::{RunningServer, Server};
use flux::worker::Worker;
use flux::{Client, ErrorKind, ExecutionFilter};
use futures::StreamExt as _;
use serde::Serialize;

const BOOTSTRAP: &str = "bootstrap-token-for-client-tests";
const ADMIN: &str = "admin-token-for-client-tests";

/// How long any wait for the server may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------------

/// The workflows the server runs, in a module of their own: each is a unit struct, so a
/// client's handle of the same name does not clash with it.
mod wf {
    use std::time::Duration;

    use flux::prelude::*;
    use serde::{Deserialize, Serialize};

    #[flux::task]
    async fn say_hello(name: String) -> String {
        format!("Hello, {name}")
    }

    #[flux::workflow]
    pub async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
        say_hello(ctx.input().clone()).await
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Step {
        pub done: u32,
        pub of: u32,
    }

    /// Reports three steps of progress, then doubles its input.
    #[flux::task]
    async fn crunch(n: u32) -> u32 {
        for done in 1..=3 {
            flux::progress(Step { done, of: 3 }).await;
        }
        n * 2
    }

    #[flux::workflow]
    pub async fn crunching(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
        crunch(*ctx.input()).await
    }

    #[derive(Debug)]
    pub struct Declined(pub u64);

    impl std::fmt::Display for Declined {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "card declined for {} cents", self.0)
        }
    }

    impl std::error::Error for Declined {}

    #[flux::task]
    async fn charge(cents: u64) -> Result<String, Declined> {
        if cents > 10_000 { Err(Declined(cents)) } else { Ok(format!("charged {cents}")) }
    }

    #[flux::workflow]
    pub async fn checkout(ctx: ExecutionContext<u64>) -> flux::Result<String> {
        charge(*ctx.input()).await
    }

    /// Pauses for a `String` decision, showing a question while paused.
    #[flux::workflow]
    pub async fn approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
        let decision = flux::pause_with::<String, String>("approval", format!("approve {}?", ctx.input())).await?;
        Ok(format!("{}: {decision}", ctx.input()))
    }

    /// Told by `nap` once it has begun.
    pub static NAPPING: tokio::sync::Notify = tokio::sync::Notify::const_new();

    /// Sleeps for the given number of seconds: long enough to be cancelled.
    #[flux::task]
    async fn nap(seconds: u64) -> u64 {
        NAPPING.notify_one();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        seconds
    }

    #[flux::workflow]
    pub async fn long_nap(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
        nap(*ctx.input()).await
    }

    /// Takes the given number of seconds to answer (without telling anyone). At version 2.
    #[flux::workflow(version = 2)]
    pub async fn slow(ctx: ExecutionContext<u64>) -> u64 {
        tokio::time::sleep(Duration::from_secs(*ctx.input())).await;
        *ctx.input()
    }
}

use wf::{Declined, Step};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A server on an ephemeral port of 127.0.0.1 running every workflow above in process, and a
/// client of it (without the admin token).
async fn serve() -> (RunningServer, Client) {
    let server = Server::new()
        .engine(&Engine::in_memory())
        .register(wf::hello_world)
        .register(wf::crunching)
        .register(wf::checkout)
        .register(wf::approval)
        .register(wf::long_nap)
        .register(wf::slow);
    bind(server).await
}

/// Binds `server` with the test tokens; a client of it.
async fn bind(server: Server) -> (RunningServer, Client) {
    let running = server.bootstrap_token(BOOTSTRAP).admin_token(ADMIN).bind("127.0.0.1:0").await.unwrap();
    let client = Client::builder(running.url()).timeout(PATIENCE).build().unwrap();
    assert_eq!(client.url(), running.url());
    (running, client)
}

async fn shutdown(running: RunningServer) {
    tokio::time::timeout(PATIENCE, running.shutdown())
        .await
        .expect("the server did not shut down within 30 s")
        .expect("the server shut down cleanly");
}

/// Asks for the status of `id` until it is finished or paused (the API has no way to wait for
/// an execution started with `start` but asking).
async fn rest<I: Serialize, O: serde::de::DeserializeOwned + Send + 'static>(
    workflow: &flux::client::RemoteWorkflow<I, O>,
    id: &str,
) -> flux::client::ExecutionStatus<O> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = workflow.status(id).await.unwrap();
        if status.has_finished() || status.is_paused() {
            return status;
        }
        assert!(Instant::now() < deadline, "execution {id} still {} after {PATIENCE:?}", status.state());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a stream handed out, in order, as short names: `STATE`, `progress`, `event TYPE`.
fn names<O>(items: &[StreamEvent<O>]) -> Vec<String> {
    items
        .iter()
        .map(|item| match item {
            StreamEvent::State(status) => status.state().to_string(),
            StreamEvent::Progress(_) => "progress".to_string(),
            StreamEvent::Event(event) => format!("event {}", event.kind()),
            _ => "other".to_string(),
        })
        .collect()
}

/// Every item of a stream, which must end without an error.
async fn collect<O>(stream: flux::client::EventStream<O>) -> Vec<StreamEvent<O>> {
    tokio::time::timeout(PATIENCE, stream.map(|item| item.unwrap()).collect()).await.expect("the stream ended")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_workflows_with_their_versions() {
    let (running, client) = serve().await;
    let workflows = client.workflows().await.unwrap();
    let mut names: Vec<(&str, u32)> = workflows.iter().map(|w| (w.name(), w.version())).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [("approval", 1), ("checkout", 1), ("crunching", 1), ("hello_world", 1), ("long_nap", 1), ("slow", 2)]
    );
    let slow = workflows.iter().find(|w| w.name() == "slow").unwrap();
    assert_eq!(slow.versions(), [2], "the version of #[flux::workflow(version = 2)]");
    assert_eq!(slow.json()["versions"], serde_json::json!([2]));
    let info = client.workflow::<String, String>("hello_world").info().await.unwrap();
    assert_eq!((info.name(), info.version(), info.source()), ("hello_world", 1, Some("in_process")));
    assert!(info.workers().is_empty());
    assert_eq!(info.json()["name"], "hello_world");

    let err = client.workflow_info("nope").await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::NotFound, Some(404)));
    assert!(err.message().contains("workflow `nope` is not registered"), "{err}");
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_start_and_status_are_typed() {
    let (running, client) = serve().await;
    let hello = client.workflow::<String, String>("hello_world");

    let done = hello.run(&"World".to_string()).await.unwrap();
    assert_eq!((done.workflow_name(), done.state()), ("hello_world", ExecutionState::Completed));
    assert_eq!(done.output().map(String::as_str), Some("Hello, World"));
    assert_eq!(done.input::<String>().unwrap(), "World");
    assert!(done.events().is_none(), "events only when asked for");
    let id = done.execution_id().to_string();
    assert_eq!(done.into_result().unwrap(), "Hello, World");

    let stored = hello.status(&id).await.unwrap();
    assert_eq!((stored.execution_id(), stored.output().map(String::as_str)), (id.as_str(), Some("Hello, World")));

    // Detailed: the log, each value decoding as its type.
    let detailed = hello.clone().detailed(true).status(&id).await.unwrap();
    let events = detailed.events().unwrap();
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [EventType::WorkflowStarted, EventType::TaskStarted, EventType::TaskCompleted, EventType::WorkflowCompleted]
    );
    assert_eq!(events.iter().map(|e| e.seq()).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(events[2].value::<String>().unwrap(), "Hello, World");
    assert_eq!(events[0].source_id(), format!("hello_world_{id}"));

    // Started: the answer names the execution, which comes to rest.
    let started = hello.start(&"Ada".to_string()).await.unwrap();
    assert!(!started.has_finished() || started.has_succeeded(), "{:?}", started.state());
    let finished = rest(&hello, started.execution_id()).await;
    assert_eq!(finished.into_result().unwrap(), "Hello, Ada");

    // Untyped: anything that has the JSON form.
    let any = client.workflow::<serde_json::Value, serde_json::Value>("hello_world");
    let done = any.run(&serde_json::json!("JSON")).await.unwrap();
    assert_eq!(done.output(), Some(&serde_json::json!("Hello, JSON")));
    assert_eq!(done.summary()["workflow_id"], "hello_world");
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_carries_its_recorded_error() {
    let (running, client) = serve().await;
    let checkout = client.workflow::<u64, String>("checkout");
    assert_eq!(checkout.run(&500).await.unwrap().into_result().unwrap(), "charged 500");

    let failed = checkout.run(&25_000).await.unwrap();
    assert!(failed.has_failed() && failed.output().is_none());
    let error = failed.error().unwrap();
    assert_eq!(error.kind(), ErrorKind::TaskFailed);
    assert_eq!(error.message(), "card declined for 25000 cents");
    assert!(error.is::<Declined>(), "{:?}", error.type_name());
    assert!(error.task_id().is_some_and(|id| id.starts_with("charge_")), "{error:?}");
    assert_eq!(error.http_status(), None, "the execution's error, not the request's");
    let err = failed.into_result().unwrap_err();
    assert!(err.is::<Declined>());
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_hand_out_states_progress_and_events() {
    let (running, client) = serve().await;
    let crunching = client.workflow::<u32, u32>("crunching");

    let items = collect(crunching.stream(&21).await.unwrap()).await;
    assert_eq!(names(&items), ["RUNNING", "progress", "progress", "progress", "COMPLETED"]);
    let progress: Vec<Step> = items
        .iter()
        .filter_map(|item| match item {
            StreamEvent::Progress(p) => Some(p.value::<Step>().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [1, 2, 3].map(|done| Step { done, of: 3 }));
    let StreamEvent::Progress(first) = &items[1] else { panic!("no progress") };
    assert_eq!(first.name(), "crunch");
    assert!(first.task_id().starts_with("crunch_"), "{}", first.task_id());
    let StreamEvent::State(done) = items.last().unwrap() else { panic!("no final state") };
    assert_eq!(first.execution_id(), done.execution_id());
    assert_eq!(done.output(), Some(&42));

    // Detailed: each durable event once, before the state it led to.
    let items = collect(crunching.clone().detailed(true).stream(&4).await.unwrap()).await;
    assert_eq!(
        names(&items),
        [
            "event WORKFLOW_STARTED",
            "RUNNING",
            "progress",
            "progress",
            "progress",
            "event TASK_STARTED",
            "event TASK_COMPLETED",
            "event WORKFLOW_COMPLETED",
            "COMPLETED"
        ]
    );

    // `finish` reads to the end; a stream that pauses ends at the pause.
    let done = crunching.stream(&5).await.unwrap().finish().await.unwrap();
    assert_eq!(done.into_result().unwrap(), 10);
    let approval = client.workflow::<String, String>("approval");
    let paused = approval.stream(&"order 3".to_string()).await.unwrap().finish().await.unwrap();
    assert!(paused.is_paused());
    assert_eq!(paused.pause_output::<String>().unwrap().as_deref(), Some("approve order 3?"));
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_errors_of_the_kind_that_fits() {
    let (running, client) = serve().await;

    // An input that is not the workflow's input type: 422, with the server's reason.
    let wrong = client.workflow::<u32, String>("hello_world");
    for err in
        [wrong.run(&7).await.unwrap_err(), wrong.start(&7).await.unwrap_err(), wrong.stream(&7).await.unwrap_err()]
    {
        assert_eq!((err.kind(), err.http_status()), (ErrorKind::InvalidInput, Some(422)), "{err}");
        assert!(!err.message().is_empty());
    }

    // What does not exist: 404.
    let unknown = client.workflow::<String, String>("nope");
    let err = unknown.run(&"World".to_string()).await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::NotFound, Some(404)), "{err}");
    assert!(err.message().contains("`nope`"), "{err}");
    let hello = client.workflow::<String, String>("hello_world");
    for err in [
        hello.status("no-such-execution").await.unwrap_err(),
        hello.cancel("no-such-execution").await.unwrap_err(),
        hello.resume("no-such-execution", "yes").await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.message().contains("no-such-execution"), "{err}");
    }

    // An execution of another workflow is not found under this one.
    let done = hello.run(&"World".to_string()).await.unwrap();
    let err = client.workflow::<String, String>("approval").status(done.execution_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // An output read as another type: the status is there, the output does not decode.
    let as_number = client.workflow::<String, u32>("hello_world").status(done.execution_id()).await.unwrap();
    assert!(as_number.has_succeeded() && as_number.output().is_none());
    assert_eq!(as_number.into_result().unwrap_err().kind(), ErrorKind::Decode);
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_execution_resumes_in_each_mode() {
    let (running, client) = serve().await;
    let approval = client.workflow::<String, String>("approval").detailed(true);

    let paused = approval.run(&"order 1".to_string()).await.unwrap();
    assert!(paused.is_paused());
    assert_eq!(paused.pause_name().as_deref(), Some("approval"));
    assert_eq!(paused.pause_output::<String>().unwrap().as_deref(), Some("approve order 1?"));
    let err = paused.clone().into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    let id = paused.execution_id().to_string();

    // A resume input the pause cannot read is refused, and the execution stays paused.
    let err = approval.resume(&id, &42).await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::InvalidInput, Some(422)), "{err}");
    assert!(approval.status(&id).await.unwrap().is_paused());

    let done = approval.resume(&id, "yes").await.unwrap();
    assert_eq!(done.output().map(String::as_str), Some("order 1: yes"));
    let kinds: Vec<EventType> = done.events().unwrap().iter().map(|e| e.kind()).collect();
    assert!(kinds.contains(&EventType::WorkflowResuming) && kinds.contains(&EventType::TaskResumed), "{kinds:?}");

    // Resuming what is not paused: 400.
    let err = approval.resume(&id, "again").await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::InvalidState, Some(400)), "{err}");
    assert!(err.message().contains("not paused"), "{err}");

    // Async: answers at once; the execution finishes.
    let paused = approval.run(&"order 2".to_string()).await.unwrap();
    let resumed = approval.resume_async(paused.execution_id(), "no").await.unwrap();
    assert_eq!(resumed.execution_id(), paused.execution_id());
    assert_eq!(rest(&approval, paused.execution_id()).await.into_result().unwrap(), "order 2: no");

    // Stream: the events of the resumed run.
    let paused = approval.run(&"order 3".to_string()).await.unwrap();
    let items = collect(approval.resume_stream(paused.execution_id(), "maybe").await.unwrap()).await;
    let StreamEvent::State(done) = items.last().unwrap() else { panic!("no final state") };
    assert_eq!(done.output().map(String::as_str), Some("order 3: maybe"));
    assert!(names(&items).contains(&"event TASK_RESUMED".to_string()), "{:?}", names(&items));
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_execution_is_cancelled() {
    let (running, client) = serve().await;
    let long_nap = client.workflow::<u64, u64>("long_nap");

    // Waiting: the answer is the cancelled execution.
    let started = long_nap.start(&30).await.unwrap();
    tokio::time::timeout(PATIENCE, wf::NAPPING.notified()).await.expect("the nap began");
    let cancelled = long_nap.cancel_and_wait(started.execution_id()).await.unwrap();
    assert!(cancelled.is_cancelled(), "{:?}", cancelled.state());
    assert_eq!(cancelled.error().map(|e| e.kind()), Some(ErrorKind::Cancelled));
    assert_eq!(cancelled.into_result().unwrap_err().kind(), ErrorKind::Cancelled);

    // Cancelling it again: 400, saying it has finished.
    let err = long_nap.cancel(started.execution_id()).await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::InvalidState, Some(400)), "{err}");

    // Not waiting: the answer comes at once, and the execution ends cancelled.
    let started = long_nap.start(&30).await.unwrap();
    tokio::time::timeout(PATIENCE, wf::NAPPING.notified()).await.expect("the nap began");
    let asked = long_nap.cancel(started.execution_id()).await.unwrap();
    assert!(matches!(asked.state(), ExecutionState::Cancelling | ExecutionState::Cancelled), "{:?}", asked.state());
    assert!(rest(&long_nap, started.execution_id()).await.is_cancelled());

    // A paused execution is cancelled at once.
    let approval = client.workflow::<String, String>("approval");
    let paused = approval.run(&"order 4".to_string()).await.unwrap();
    assert!(approval.cancel(paused.execution_id()).await.unwrap().is_cancelled());
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_need_the_admin_token() {
    let (running, client) = serve().await;

    for anonymous in [client.clone(), client.clone().admin_token("not-the-token")] {
        let err = anonymous.list_secrets().await.unwrap_err();
        assert_eq!((err.kind(), err.http_status()), (ErrorKind::Unauthorized, Some(401)), "{err}");
        assert!(err.message().contains("admin token"), "{err}");
        let err = anonymous.set_secret("API_KEY", "s3cret").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(anonymous.get_secret("API_KEY").await.unwrap_err().kind(), ErrorKind::Unauthorized);
        assert_eq!(anonymous.remove_secret("API_KEY").await.unwrap_err().kind(), ErrorKind::Unauthorized);
    }

    let admin = client.clone().admin_token(ADMIN);
    assert!(admin.list_secrets().await.unwrap().is_empty());
    admin.set_secret("API_KEY", "s3cret").await.unwrap();
    admin.set_secret("OTHER / KEY", "two words").await.unwrap();
    let mut names = admin.list_secrets().await.unwrap();
    names.sort_unstable();
    assert_eq!(names, ["API_KEY", "OTHER / KEY"]);
    assert_eq!(admin.get_secret("API_KEY").await.unwrap(), "s3cret");
    assert_eq!(admin.get_secret("OTHER / KEY").await.unwrap(), "two words");
    admin.remove_secret("API_KEY").await.unwrap();
    for err in [admin.get_secret("API_KEY").await.unwrap_err(), admin.remove_secret("API_KEY").await.unwrap_err()] {
        assert_eq!((err.kind(), err.http_status()), (ErrorKind::NotFound, Some(404)), "{err}");
    }
    // A bearer token for every request also opens the admin endpoints when it is the admin's.
    assert_eq!(client.bearer_token(ADMIN).list_secrets().await.unwrap(), ["OTHER / KEY"]);
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_on_a_worker_runs_streams_and_resumes_through_the_client() {
    let (running, client) = bind(Server::new().engine(&Engine::in_memory())).await;
    let worker = tokio::spawn(
        Worker::new(running.url())
            .name("client-test-worker")
            .bootstrap_token(BOOTSTRAP)
            .register(wf::crunching)
            .register(wf::approval)
            .run(),
    );
    let deadline = Instant::now() + PATIENCE;
    while client.workflows().await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the worker did not register within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info = client.workflow_info("crunching").await.unwrap();
    assert_eq!((info.source(), info.workers()), (Some("worker"), &["client-test-worker".to_string()][..]));

    let crunching = client.workflow::<u32, u32>("crunching");
    assert_eq!(crunching.run(&21).await.unwrap().into_result().unwrap(), 42);
    let items = collect(crunching.stream(&1).await.unwrap()).await;
    assert_eq!(names(&items), ["SCHEDULED", "CLAIMED", "RUNNING", "progress", "progress", "progress", "COMPLETED"]);

    let approval = client.workflow::<String, String>("approval");
    let paused = approval.run(&"order 5".to_string()).await.unwrap();
    assert!(paused.is_paused());
    let done = approval.resume(paused.execution_id(), "yes").await.unwrap();
    assert_eq!(done.into_result().unwrap(), "order 5: yes");
    worker.abort();
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_is_unreachable_and_a_slow_answer_times_out() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = Client::new(format!("http://127.0.0.1:{port}")).unwrap();
    let err = client.workflows().await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::Unreachable, None), "{err}");
    assert!(err.message().contains(&format!("http://127.0.0.1:{port}")), "{err}");

    let (running, _) = serve().await;
    let impatient = Client::builder(running.url()).timeout(Duration::from_millis(200)).build().unwrap();
    let err = impatient.workflow::<u64, u64>("slow").run(&30).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http, "{err}");
    assert!(err.message().contains("took too long"), "{err}");
    shutdown(running).await;
}

/// `GET /executions` through the client, with the engine's filter: by workflow and state, by
/// times, by parent, a page at a time; every criterion reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_executions_filters_and_pages() {
    let (running, client) = serve().await;
    let hello = client.workflow::<String, String>("hello_world");
    for name in ["a", "b", "c"] {
        hello.run(&name.to_string()).await.unwrap();
    }
    let approval = client.workflow::<String, String>("approval");
    let paused = approval.run(&"order 6".to_string()).await.unwrap();

    let all = client.list_executions(ExecutionFilter::new()).await.unwrap();
    assert_eq!((all.total, all.executions.len(), all.offset, all.limit), (4, 4, 0, 50));
    assert!(!all.has_more());
    assert_eq!(all.next(&ExecutionFilter::new()), None);
    assert_eq!(all.executions[0].execution_id, paused.execution_id(), "newest first");
    assert_eq!(all.json()["total"], 4);

    let hellos = client.list_executions(ExecutionFilter::new().workflow("hello_world")).await.unwrap();
    assert_eq!(hellos.total, 3);
    assert!(hellos.executions.iter().all(|row| row.workflow_name == "hello_world"
        && row.state == ExecutionState::Completed
        && row.workflow_version == 1
        && row.created_at <= row.updated_at));

    // Page by page, each page's `next` the filter of the one after.
    let mut filter = ExecutionFilter::new().workflow("hello_world").limit(2);
    let mut pages = Vec::new();
    loop {
        let page = client.list_executions(filter.clone()).await.unwrap();
        pages.push((page.executions.len(), page.offset, page.has_more()));
        match page.next(&filter) {
            Some(next) => filter = next,
            None => break,
        }
    }
    assert_eq!(pages, [(2, 0, true), (1, 2, false)]);

    let waiting = ExecutionFilter::new().states([ExecutionState::Paused, ExecutionState::Running]);
    let waiting = client.list_executions(waiting).await.unwrap();
    assert_eq!(waiting.executions.len(), 1);
    assert_eq!(waiting.executions[0].execution_id, paused.execution_id());

    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    let total = |filter: ExecutionFilter| {
        let client = client.clone();
        async move { client.list_executions(filter).await.unwrap().total }
    };
    assert_eq!(total(ExecutionFilter::new().created_after(future)).await, 0);
    assert_eq!(total(ExecutionFilter::new().created_before(future)).await, 4);
    // The criteria the engine's filter adds reach the server too (none is dropped on the way).
    assert_eq!(total(ExecutionFilter::new().updated_before(past)).await, 0);
    assert_eq!(total(ExecutionFilter::new().updated_before(future)).await, 4);
    assert_eq!(total(ExecutionFilter::new().parent(paused.execution_id()).parent("nobody")).await, 0);

    // A filter the engine refuses is refused the same way, before any request.
    let err = client.list_executions(ExecutionFilter::new().limit(1001)).await.unwrap_err();
    assert_eq!((err.kind(), err.http_status()), (ErrorKind::Config, None), "{err}");
    assert!(err.to_string().contains("between 1 and 1000, not 1001"), "{err}");
    shutdown(running).await;
}
