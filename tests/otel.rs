//! Traces (feature `otel`), collected with the OpenTelemetry SDK's in-memory exporter: a workflow
//! run through `flux::Client` → server → worker is one trace with the client's trace id, the
//! workflow's and each task attempt's spans inside it with their attributes, a retry as an event
//! of the failed attempt; a workflow the server runs itself too.

use std::sync::OnceLock;
use std::time::Duration;

use flux::Client;
use flux::otel::Otel;
use flux::prelude::*;
use flux::server::{RunningServer, Server};
use flux::worker::Worker;
use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tracing::Instrument as _;

const BOOTSTRAP: &str = "otel-bootstrap-token";

/// Fails its first attempt for each input.
#[flux::task(retry_max_attempts = 2, retry_delay = 0)]
async fn traced_flaky(n: u32) -> flux::Result<u32> {
    if flux_suite::first_call(n) {
        return Err(flux::Error::new(flux::ErrorKind::TaskFailed, "the first attempt fails"));
    }
    Ok(n + 1)
}

#[flux::task]
async fn traced_double(n: u32) -> u32 {
    n * 2
}

#[flux::workflow]
async fn traced_remote(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let n = traced_flaky(*ctx.input()).await?;
    traced_double(n).await
}

#[flux::workflow]
async fn traced_here(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let n = traced_flaky(*ctx.input()).await?;
    traced_double(n).await
}

/// The process's exporter: every span, as it ends.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let telemetry = Otel::with_exporter(exporter.clone()).install().expect("the subscriber installs");
        // Kept for the whole process: its spans are exported as they end.
        std::mem::forget(telemetry);
        exporter
    })
}

/// The spans of trace `trace` once `done` says they are all there.
async fn spans_of(trace: TraceId, done: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<SpanData> = exporter()
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect();
        if done(&spans) {
            return spans;
        }
        assert!(tokio::time::Instant::now() < deadline, "the trace never completed: {:#?}", names(&spans));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} in {:?}", names(spans));
    found[0]
}

fn id(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

async fn serve() -> (RunningServer, Client) {
    let running = Server::new()
        .engine(&flux::Engine::in_memory())
        .bootstrap_token(BOOTSTRAP)
        .register(traced_here)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let api = Client::builder(running.url()).timeout(Duration::from_secs(30)).build().unwrap();
    (running, api)
}

/// Runs `workflow` with `input` through the client inside a span of the test's: the trace id and
/// the execution id.
async fn run_traced(api: &Client, workflow: &str, input: u32) -> (TraceId, String) {
    let span = tracing::info_span!("test.client");
    let status = async { api.workflow::<u32, u32>(workflow).run(&input).await.unwrap() }.instrument(span).await;
    assert_eq!(status.output(), Some(&((input + 1) * 2)));
    let client = exporter()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .rev()
        .find(|s| s.name == "test.client")
        .expect("the client's span ended");
    (client.span_context.trace_id(), status.execution_id().to_string())
}

/// The task attempts of a run of `traced_*` with a fresh input: the flaky task's failed first
/// attempt (with its retry event) and its second, then the double's, each a child of `workflow`.
fn check_attempts(spans: &[SpanData], workflow: &SpanData, name: &str, execution: &str) {
    let mut attempts: Vec<&SpanData> = spans.iter().filter(|s| s.name == "flux.task.execute").collect();
    attempts.sort_by_key(|s| s.start_time);
    let seen: Vec<(Option<String>, Option<String>)> =
        attempts.iter().map(|s| (attribute(s, "flux.task.name"), attribute(s, "flux.task.attempt"))).collect();
    let expected = [("traced_flaky", "1"), ("traced_flaky", "2"), ("traced_double", "1")];
    assert_eq!(
        seen,
        expected.map(|(task, attempt)| (Some(task.to_string()), Some(attempt.to_string()))),
        "{:#?}",
        names(spans)
    );
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, id(workflow), "a task attempt is a child of its workflow's span");
        assert_eq!(attribute(attempt, "flux.workflow.name").as_deref(), Some(name));
        assert_eq!(attribute(attempt, "flux.execution.id").as_deref(), Some(execution));
        assert!(
            attribute(attempt, "flux.task.id")
                .is_some_and(|t| t.starts_with(attribute(attempt, "flux.task.name").unwrap().as_str()))
        );
    }
    assert!(matches!(attempts[0].status, Status::Error { .. }), "the failed attempt: {:?}", attempts[0].status);
    let events: Vec<&str> = attempts[0].events.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(events, ["flux.task.failed", "flux.task.retry"]);
    assert!(!matches!(attempts[1].status, Status::Error { .. }));
    assert!(attempts[1].events.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_client_server_and_worker_is_one_trace() {
    exporter();
    let (running, api) = serve().await;
    let worker =
        Worker::new(running.url()).name("traced-worker").bootstrap_token(BOOTSTRAP).register(traced_remote).run();
    let worker = tokio::spawn(worker);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.workflow_info("traced_remote").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (trace, execution) = run_traced(&api, "traced_remote", 10).await;
    let spans = spans_of(trace, |spans| {
        spans.iter().filter(|s| s.name == "flux.task.execute").count() == 3
            && spans.iter().any(|s| s.name == "flux.workflow.execute")
    })
    .await;
    let client = one(&spans, "test.client");
    let request = spans
        .iter()
        .find(|s| s.name == "flux.server.request" && attribute(s, "url.path").is_some_and(|p| p.ends_with("/run/sync")))
        .expect("the server's span of the run request");
    assert_eq!(request.parent_span_id, id(client), "the server continues the client's trace");
    assert!(request.parent_span_is_remote);
    let claim = one(&spans, "flux.worker.claim");
    assert_eq!(claim.parent_span_id, id(request), "the worker continues the request's trace");
    assert_eq!(attribute(claim, "flux.worker.name").as_deref(), Some("traced-worker"));
    let workflow = one(&spans, "flux.workflow.execute");
    assert_eq!(workflow.parent_span_id, id(claim));
    assert_eq!(attribute(workflow, "flux.workflow.name").as_deref(), Some("traced_remote"));
    assert_eq!(attribute(workflow, "flux.execution.id").as_deref(), Some(execution.as_str()));
    assert_eq!(attribute(workflow, "flux.worker.name").as_deref(), Some("traced-worker"));
    assert!(!matches!(workflow.status, Status::Error { .. }));
    check_attempts(&spans, workflow, "traced_remote", &execution);

    worker.abort();
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_server_makes_itself_is_in_the_clients_trace() {
    exporter();
    let (running, api) = serve().await;
    let (trace, execution) = run_traced(&api, "traced_here", 20).await;
    let spans = spans_of(trace, |spans| spans.iter().filter(|s| s.name == "flux.task.execute").count() == 3).await;
    let client = one(&spans, "test.client");
    let request = one(&spans, "flux.server.request");
    assert_eq!(request.parent_span_id, id(client));
    let workflow = one(&spans, "flux.workflow.execute");
    assert_eq!(workflow.parent_span_id, id(request));
    assert_eq!(attribute(workflow, "flux.execution.id").as_deref(), Some(execution.as_str()));
    assert_eq!(attribute(workflow, "flux.worker.name"), None, "not run by a worker");
    check_attempts(&spans, workflow, "traced_here", &execution);
    running.shutdown().await.unwrap();
}
