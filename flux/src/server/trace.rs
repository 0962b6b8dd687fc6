//! The W3C trace context of requests (feature `otel`): a request that carries a `traceparent`
//! is served in a `flux.server.request` span continuing its trace, so that a workflow the
//! server runs is part of it; for one a worker runs, the context is kept until a worker claims
//! the execution, and handed to it with the claim. Without `otel`, nothing is kept.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::state::{Shared, lock};

/// How many executions' trace contexts are kept for their claim at most.
const KEPT: usize = 10_000;

/// Serves a request that carries a `traceparent` in a span continuing its trace.
pub(crate) async fn continue_request(request: Request, next: Next) -> Response {
    let Some(parent) = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string) else {
        return next.run(request).await;
    };
    let span = tracing::info_span!(
        "flux.server.request",
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
    );
    #[cfg(feature = "otel")]
    crate::otel::continue_trace(&span, &parent);
    #[cfg(not(feature = "otel"))]
    let _ = parent;
    tracing::Instrument::instrument(next.run(request), span).await
}

/// Keeps the trace context of the current span for execution `id`, which a worker will claim.
pub(crate) fn remember(s: &Arc<Shared>, id: &str) {
    #[cfg(feature = "otel")]
    if let Some(parent) = crate::otel::traceparent() {
        let mut traces = lock(&s.traces);
        if traces.len() < KEPT {
            traces.insert(id.to_string(), parent);
        }
    }
    #[cfg(not(feature = "otel"))]
    let _ = (s, id, KEPT);
}

/// The trace context kept for execution `id`, handed to the worker that claims it (once).
pub(crate) fn claimed(s: &Shared, id: &str) -> Option<String> {
    lock(&s.traces).remove(id)
}
