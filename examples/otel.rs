//! Traces of a whole deployment, exported over OTLP/HTTP: a server, a worker and a client in one
//! process, each part of the one trace the client's span starts.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=orders \
//!   cargo run --example otel --features flux-suite/otel
//! ```
//!
//! Any OTLP/HTTP collector receives them (the OpenTelemetry Collector, Jaeger, Grafana Tempo):
//! a `flux.server.request` span under the client's, the worker's `flux.worker.claim` under it,
//! then `flux.workflow.execute` with a `flux.task.execute` span for each task attempt. It prints
//! the trace id to look for.

use std::time::Duration;

use flux::prelude::*;
use tracing::Instrument as _;

#[flux::task(retry_max_attempts = 2, retry_delay = 0)]
async fn reserve_stock(order: u32) -> flux::Result<u32> {
    // The first attempt fails, to show a retry in the trace.
    static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    if FIRST.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return Err(flux::Error::new(flux::ErrorKind::TaskFailed, "the warehouse did not answer"));
    }
    Ok(order)
}

#[flux::task]
async fn charge(order: u32) -> String {
    format!("order {order} charged")
}

#[flux::workflow]
async fn checkout(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let order = reserve_stock(*ctx.input()).await?;
    charge(order).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = flux::otel::init()?;
    let server = flux::server::Server::new()
        .engine(&flux::Engine::in_memory())
        .bootstrap_token("example-bootstrap")
        .bind("127.0.0.1:0")
        .await?;
    let worker = flux::worker::Worker::new(server.url())
        .name("example-worker")
        .bootstrap_token("example-bootstrap")
        .register(checkout)
        .run();
    let worker = tokio::spawn(worker);
    let client = flux::Client::builder(server.url()).timeout(Duration::from_secs(30)).build()?;
    while client.workflow_info("checkout").await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let span = tracing::info_span!("example.checkout");
    let trace = span.in_scope(flux::otel::trace_id).unwrap_or_default();
    let status = async { client.workflow::<u32, String>("checkout").run(&42).await }.instrument(span).await?;
    println!("execution {} {}: {:?}", status.execution_id(), status.state(), status.output());
    println!("trace {trace}");

    // The worker's last spans end as it records the execution's end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.abort();
    server.shutdown().await?;
    telemetry.shutdown().await;
    Ok(())
}
