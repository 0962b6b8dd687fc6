//! How the server reads requests and answers them: request bodies read within the limits of
//! `[flux]`, the error answer `{"detail": ...}` with its status, path, query and body
//! extractors, the modes a run or resume answers in, work that must not stop halfway when a
//! client goes away, and an execution's summary as an answer.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::{Value, json};

use super::state::{Shared, SharedState};
use crate::error::{Error, ErrorKind};
use crate::protocol::Summary;
use crate::store::StoredExecution;

/// Reads the whole request body before a handler sees it, within the limits of `[flux]`: a body
/// whose `Content-Length` is over `max_body_bytes` gets 413 before any of it is read, one that
/// turns out longer gets 413 as soon as the excess arrives, and one that takes longer than
/// `request_timeout` to arrive gets 408.
pub(crate) async fn read_body(State(s): SharedState, request: Request, next: Next) -> Response {
    let limit = s.max_body_bytes;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return too_large(limit).into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(s.request_timeout, collect_body(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => {
            let detail = format!(
                "the request body did not arrive within {} (flux.request_timeout)",
                humantime::format_duration(s.request_timeout)
            );
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, detail).into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// The body's bytes, refused as soon as they are more than `limit`. A body that arrives in one
/// piece (the usual case) is not copied.
async fn collect_body(body: axum::body::Body, limit: usize) -> ApiResult<Bytes> {
    let mut chunks = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large(limit));
        }
        match &first {
            None => first = Some(chunk),
            Some(head) => {
                if joined.is_empty() {
                    joined.extend_from_slice(head);
                }
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if joined.is_empty() { first.unwrap_or_default() } else { Bytes::from(joined) })
}

/// 413: the body is larger than `max_body_bytes`.
fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than the server accepts (flux.max_body_bytes = {limit})"),
    )
}

/// An error answer: `{"detail": "..."}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
}

impl ApiError {
    /// An answer with `status` and `detail`.
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError { status, detail: detail.into() }
    }

    /// 401 for a missing or wrong token (`what`), with `WWW-Authenticate: Bearer`.
    pub(crate) fn unauthorized(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong {what} (send `Authorization: Bearer <token>`)"),
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidState => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict | ErrorKind::NonDeterminism => StatusCode::CONFLICT,
            ErrorKind::Decode | ErrorKind::Encode | ErrorKind::MissingSecret | ErrorKind::InvalidInput => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "detail": self.detail }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A handler's answer, or the error it answers with.
pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

/// Runs `work` on a task of its own and waits for it. The server drops a request's handler where
/// it waits when the client goes away (a worker killed mid-request, a client giving up); work
/// that writes to the store and then updates what the server keeps in memory (claims, offers)
/// must not stop in between, or an execution would stay claimed, or scheduled, with nothing to
/// take it back or offer it until the server restarts.
pub(crate) async fn to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")),
    }
}

/// Waits for `fut`, unless the server shuts down first (then 503: the execution goes on).
pub(crate) async fn unless_shutdown<T>(s: &Shared, fut: impl std::future::Future<Output = T>) -> ApiResult<T> {
    let mut stop = s.shutdown.subscribe();
    tokio::select! {
        out = fut => Ok(out),
        _ = stop.wait_for(|v| *v) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; the execution goes on (ask for its status later)",
        )),
    }
}

/// 400 for a path whose segments cannot be read.
pub(crate) fn path_error(e: PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, format!("invalid path: {}", e.body_text()))
}

/// The request body, or why it could not be read (413 when it is too large).
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        let status = e.status();
        let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than the server accepts (flux.max_body_bytes)".to_string()
        } else {
            format!("cannot read the request body: {}", e.body_text())
        };
        ApiError::new(status, detail)
    })
}

/// A JSON body; an empty body is `null`.
pub(crate) fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let bytes = body_bytes(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the request body is not valid JSON: {e}"))
    })
}

/// The value of query parameter `key`, if present.
pub(crate) fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `?detailed=`: `true`/`True`/`1` or `false`/`False`/`0`.
pub(crate) fn detailed(query: Option<&str>) -> ApiResult<bool> {
    detailed_value(query_param(query, "detailed"))
}

/// The value of `?detailed=` (see [`detailed`]).
pub(crate) fn detailed_value(value: Option<&str>) -> ApiResult<bool> {
    match value {
        None => Ok(false),
        Some("true" | "True" | "1") => Ok(true),
        Some("false" | "False" | "0" | "") => Ok(false),
        Some(other) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`detailed` must be true or false, not `{other}`"),
        )),
    }
}

/// How a run or resume answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// When the execution finished or paused.
    Sync,
    /// At once.
    Async,
    /// With an SSE stream of its events.
    Stream,
}

impl Mode {
    /// The mode of a `.../{mode}` path: `sync`, `async` or `stream`.
    pub(crate) fn parse(mode: &str) -> ApiResult<Mode> {
        match mode {
            "sync" => Ok(Mode::Sync),
            "async" => Ok(Mode::Async),
            "stream" => Ok(Mode::Stream),
            other => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown mode `{other}` (expected sync, async or stream)"),
            )),
        }
    }
}

/// 404 for a path the server does not serve.
pub(crate) async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (see /docs)")
}

/// 405 for a method a served path does not take.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method (see /docs)")
}

/// The stored execution `id` of workflow `name`, or 404.
pub(crate) async fn load_of(s: &Shared, name: &str, id: &str) -> ApiResult<StoredExecution> {
    match s.engine.load(id).await? {
        Some(stored) if stored.workflow_name == name => Ok(stored),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no execution `{id}` of workflow `{name}`"))),
    }
}

/// The summary of a stored execution, with the values of output storages in place of their
/// references.
pub(crate) fn summary_of(s: &Shared, stored: &StoredExecution, detailed: bool) -> Summary {
    Summary::of(stored, detailed, |bytes| s.engine.resolve_output(bytes).map(|v| v.into_owned()))
}

/// The summary of execution `id` as stored now.
pub(crate) async fn summary_response(s: &Shared, name: &str, id: &str, detailed: bool) -> ApiResult {
    let stored = load_of(s, name, id).await?;
    Ok(axum::Json(summary_of(s, &stored, detailed).to_json()).into_response())
}
