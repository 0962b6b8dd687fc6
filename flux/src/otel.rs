//! Traces (feature `otel`): flux's spans exported over OTLP/HTTP, and the W3C trace context
//! carried from [`Client`](crate::Client) through a server to its workers.
//!
//! Every workflow run is a `flux.workflow.execute` span (`flux.workflow.name`,
//! `flux.execution.id`, and `flux.worker.name` on a worker) and every task attempt a
//! `flux.task.execute` span inside it (`flux.task.name`, `flux.task.id`, `flux.task.attempt`,
//! `flux.workflow.name`, `flux.execution.id`), with `flux.task.failed`, `flux.task.retry`,
//! `flux.task.fallback` and `flux.task.rollback` as events and an error status on failure. They
//! are [`tracing`] spans in every build; this feature sends them to an OpenTelemetry collector:
//!
//! ```no_run
//! # async fn demo() -> flux::Result<()> {
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 OTEL_SERVICE_NAME=orders ./app
//! let telemetry = flux::otel::init()?;
//! // ... run workflows, serve, work ...
//! telemetry.shutdown().await; // exports what is still buffered
//! # Ok(()) }
//! ```
//!
//! The exporter reads the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
//! default, or `http/json`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, and
//! `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` (the service is `flux` when none is named).
//!
//! Context: a `flux::Client` request made inside a span sends its `traceparent`; a server
//! continues that trace in a `flux.server.request` span, under which the workflow runs in the
//! server, or which it hands to the worker that claims the execution (in the claim's answer),
//! whose `flux.worker.claim` span carries on the same trace.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::error::{Error, ErrorKind, Result};

/// A tracer provider that exports flux's spans: built from the environment
/// ([`Otel::from_env`]) or over any exporter ([`Otel::with_exporter`]), then installed
/// ([`Otel::install`]) or given to a subscriber of your own ([`Otel::layer`]).
#[derive(Clone, Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// An OTLP/HTTP exporter configured by the `OTEL_EXPORTER_OTLP_*` variables, exporting in
    /// batches from a thread of its own over flux's HTTP client (run on the current Tokio
    /// runtime, which must exist).
    pub fn from_env() -> Result<Otel> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(ErrorKind::Config, "the OTLP exporter needs a Tokio runtime: build it inside one")
        })?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot build the OTLP HTTP client: {e}")))?;
        use opentelemetry_otlp::WithHttpConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OnTokio { client, handle })
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("invalid OTLP exporter configuration: {e}")))?;
        Ok(Otel { provider: provider(|b| b.with_batch_exporter(exporter)) })
    }

    /// Spans handed to `exporter` one by one as they end (for tests: the SDK's
    /// `InMemorySpanExporter`).
    pub fn with_exporter(exporter: impl SpanExporter + 'static) -> Otel {
        Otel { provider: provider(|b| b.with_simple_exporter(exporter)) }
    }

    /// The tracer provider.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// A [`tracing_subscriber`] layer that turns spans into OpenTelemetry spans of this
    /// provider, for a subscriber of your own.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + 'static
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("flux"))
    }

    /// Installs the process's subscriber: this provider's layer for spans at `info` and above,
    /// and log lines on standard error as `RUST_LOG` says (`warn` by default). Fails if a
    /// subscriber is installed already.
    pub fn install(self) -> Result<Telemetry> {
        let logs = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(logs);
        let spans = self.layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        tracing_subscriber::registry()
            .with(fmt)
            .with(spans)
            .try_init()
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot install the trace subscriber: {e}")))?;
        Ok(Telemetry { otel: Some(self) })
    }
}

use tracing_subscriber::Layer as _;

/// The provider with flux's resource (the service named by `OTEL_SERVICE_NAME`, else `flux`).
fn provider(
    exporter: impl FnOnce(
        opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder,
) -> SdkTracerProvider {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("flux");
    }
    exporter(SdkTracerProvider::builder().with_resource(resource.build())).build()
}

/// [`init`]'s answer: call [`Telemetry::shutdown`] before the process ends, so that the spans
/// still buffered are exported.
#[derive(Debug)]
pub struct Telemetry {
    otel: Option<Otel>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter.
    pub async fn shutdown(mut self) {
        if let Some(otel) = self.otel.take() {
            // The export runs on the Tokio runtime: wait for it off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || otel.provider.shutdown()).await;
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(otel) = self.otel.take() {
            // Not waited for: a runtime thread must not block on an export it runs itself.
            std::thread::spawn(move || otel.provider.shutdown());
        }
    }
}

/// Installs an OTLP/HTTP exporter configured by the environment as the process's subscriber
/// ([`Otel::from_env`], then [`Otel::install`]).
pub fn init() -> Result<Telemetry> {
    Otel::from_env()?.install()
}

/// flux's HTTP client as the exporter's: each request runs on the Tokio runtime the exporter
/// was built in, awaited from the batch thread.
#[derive(Debug)]
struct OnTokio {
    client: reqwest::Client,
    handle: tokio::runtime::Handle,
}

impl HttpClient for OnTokio {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
    {
        let client = self.client.clone();
        let sent = self.handle.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let answer = client.execute(request).await?;
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            let body = answer.bytes().await?;
            Ok::<_, HttpError>(response.body(body)?)
        });
        Box::pin(async move { sent.await.map_err(|e| Box::new(e) as HttpError)? })
    }
}

/// Headers as a carrier of the trace context.
struct Carrier<'a>(&'a mut HashMap<String, String>);

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The id of the current span's trace (32 hexadecimal digits), if it has one: for logs and
/// answers that point at the trace.
///
/// ```no_run
/// let span = tracing::info_span!("checkout");
/// let trace = span.in_scope(flux::otel::trace_id);
/// ```
pub fn trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let id = span.span_context();
    id.is_valid().then(|| id.trace_id().to_string())
}

/// The W3C `traceparent` of the current span, if it belongs to a sampled trace.
pub(crate) fn traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut Carrier(&mut headers));
    headers.remove("traceparent")
}

/// Makes the trace of `traceparent` (a W3C `traceparent` value) the parent of `span`; an
/// unreadable value changes nothing.
#[cfg(feature = "worker")]
pub(crate) fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let mut headers = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&Carrier(&mut headers));
    let _ = span.set_parent(context);
}
