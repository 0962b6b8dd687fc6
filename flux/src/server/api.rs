//! The client and admin endpoints: the catalog, run / resume / status / cancel, secrets, the
//! OpenAPI document; and the SSE form of an execution's events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;
use serde_json::{Value, json};

use super::hub::{HubItem, HubReceiver};
use super::{KEEP_ALIVE, Shared, lock};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::{self, NewSecret, Summary};
use crate::run::Subscription;
use crate::store::StoredExecution;

type SharedState = State<Arc<Shared>>;

/// Every route of the server.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.max_body_bytes;
    Router::new()
        .route("/workflows", get(list_workflows))
        .route("/workflows/{name}", get(show_workflow))
        .route("/workflows/{name}/run/{mode}", axum::routing::post(run))
        .route("/workflows/{name}/resume/{execution_id}/{mode}", axum::routing::post(resume))
        .route("/workflows/{name}/status/{execution_id}", get(status))
        .route("/workflows/{name}/cancel/{execution_id}", get(cancel))
        .route("/admin/secrets", get(list_secrets).post(set_secret))
        .route("/admin/secrets/{name}", get(get_secret).delete(remove_secret))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .merge(super::workers::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), read_body))
        .with_state(shared)
}

/// Reads the whole request body before a handler sees it, within the limits of `[flux]`: a body
/// whose `Content-Length` is over `max_body_bytes` gets 413 before any of it is read, one that
/// turns out longer gets 413 as soon as the excess arrives, and one that takes longer than
/// `request_timeout` to arrive gets 408.
async fn read_body(State(s): SharedState, request: Request, next: Next) -> Response {
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
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError { status, detail: detail.into() }
    }

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
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Decode | ErrorKind::Encode | ErrorKind::MissingSecret => StatusCode::UNPROCESSABLE_ENTITY,
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
fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `?detailed=`: `true`/`True`/`1` or `false`/`False`/`0`.
pub(crate) fn detailed(query: Option<&str>) -> ApiResult<bool> {
    match query_param(query, "detailed") {
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
    fn parse(mode: &str) -> ApiResult<Mode> {
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

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (see /docs)")
}

async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method (see /docs)")
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::OPENAPI_JSON)
}

async fn docs() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], super::openapi::DOCS_HTML)
}

async fn list_workflows(State(s): SharedState) -> impl IntoResponse {
    let catalog = lock(&s.catalog);
    let list: Vec<Value> = catalog.iter().map(|(name, e)| json!({ "name": name, "version": e.version })).collect();
    axum::Json(Value::Array(list))
}

async fn show_workflow(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(name) = path.map_err(path_error)?;
    let catalog = lock(&s.catalog);
    let entry = catalog.get(&name).ok_or_else(|| unknown_workflow(&name, &catalog))?;
    Ok(axum::Json(json!({
        "name": name,
        "version": entry.version,
        "source": if entry.in_process { "in_process" } else { "worker" },
        "workers": entry.workers,
    }))
    .into_response())
}

fn unknown_workflow(name: &str, catalog: &std::collections::BTreeMap<String, super::CatalogEntry>) -> ApiError {
    let known: Vec<&str> = catalog.keys().map(String::as_str).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "workflow `{name}` is not registered (known: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ),
    )
}

/// Where a workflow runs.
enum Target {
    Local(Arc<dyn crate::erased::ErasedWorkflow>),
    Remote,
}

fn target(s: &Shared, name: &str) -> ApiResult<Target> {
    if let Some(w) = s.local.get(name) {
        return Ok(Target::Local(w.clone()));
    }
    let catalog = lock(&s.catalog);
    if catalog.contains_key(name) { Ok(Target::Remote) } else { Err(unknown_workflow(name, &catalog)) }
}

/// The stored execution `id` of workflow `name`, or 404.
pub(crate) async fn load_of(s: &Shared, name: &str, id: &str) -> ApiResult<StoredExecution> {
    match s.engine.load(id).await? {
        Some(stored) if stored.workflow_name == name => Ok(stored),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no execution `{id}` of workflow `{name}`"))),
    }
}

pub(crate) fn summary_of(s: &Shared, stored: &StoredExecution, detailed: bool) -> Summary {
    Summary::of(stored, detailed, |bytes| s.engine.resolve_output(bytes).map(|v| v.into_owned()))
}

/// The summary of execution `id` as stored now.
pub(crate) async fn summary_response(s: &Shared, name: &str, id: &str, detailed: bool) -> ApiResult {
    let stored = load_of(s, name, id).await?;
    Ok(axum::Json(summary_of(s, &stored, detailed).to_json()).into_response())
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

/// Waits for a run in this process to stop.
async fn finished(
    s: &Shared,
    done: tokio::task::JoinHandle<crate::Result<ExecutionState>>,
) -> ApiResult<ExecutionState> {
    match unless_shutdown(s, done).await? {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the execution's task failed: {e}"))),
    }
}

async fn run(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, mode)) = path.map_err(path_error)?;
    let mode = Mode::parse(&mode)?;
    let detailed = detailed(query.as_deref())?;
    let target = target(&s, &name)?;
    let input = json_body(body)?;
    let encoded = protocol::json_to_msgpack(&input)?;
    match target {
        Target::Local(workflow) => {
            workflow.check_input(&encoded)?;
            let started = workflow.start(&s.engine, encoded, mode == Mode::Stream).await?;
            let id = started.execution_id.clone();
            match (mode, started.events) {
                (Mode::Stream, Some(events)) => {
                    let summary = Summary {
                        workflow_name: name,
                        execution_id: id,
                        input,
                        output: Value::Null,
                        state: ExecutionState::Created,
                        events: detailed.then(Vec::new),
                    };
                    Ok(sse(s.clone(), summary, Vec::new(), Source::Run(events)))
                }
                (Mode::Sync, _) => {
                    finished(&s, started.done).await?;
                    summary_response(&s, &name, &id, detailed).await
                }
                _ => summary_response(&s, &name, &id, detailed).await,
            }
        }
        Target::Remote => super::workers::run_remote(&s, &name, input, encoded, mode, detailed).await,
    }
}

async fn resume(
    State(s): SharedState,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, id, mode)) = path.map_err(path_error)?;
    let mode = Mode::parse(&mode)?;
    let detailed = detailed(query.as_deref())?;
    let target = target(&s, &name)?;
    let input = json_body(body)?;
    let encoded = protocol::json_to_msgpack(&input)?;
    let before = load_of(&s, &name, &id).await?;
    if before.state != ExecutionState::Paused {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("execution `{id}` is not paused (it is {}); only a paused execution can be resumed", before.state),
        ));
    }
    let Target::Local(workflow) = target else {
        return super::workers::resume_remote(&s, before, encoded, mode, detailed).await;
    };
    let started = workflow.resume(&s.engine, id.clone(), encoded, true).await?;
    let mut done = started.done;
    let Some(mut events) = started.events else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the resumed run has no event stream"));
    };
    // The resume is accepted once it records its first event; a refused input stops it before.
    let first = tokio::select! {
        biased;
        event = std::future::poll_fn(|cx| events.poll_next(cx)) => event,
        ended = &mut done => {
            match ended {
                Ok(result) => { result?; }
                Err(e) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the execution's task failed: {e}"))),
            }
            std::future::poll_fn(|cx| events.poll_next(cx)).await
        }
    };
    let mut summary = summary_of(&s, &before, detailed);
    match mode {
        Mode::Stream => Ok(sse(s.clone(), summary, first.into_iter().collect(), Source::Run(events))),
        Mode::Sync => {
            drop(events);
            finished(&s, done).await?;
            summary_response(&s, &name, &id, detailed).await
        }
        Mode::Async => {
            if let Some(first) = &first {
                summary.apply(first, |b| s.engine.resolve_output(b).map(|v| v.into_owned()));
            }
            Ok(axum::Json(summary.to_json()).into_response())
        }
    }
}

async fn status(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let Path((name, id)) = path.map_err(path_error)?;
    let detailed = detailed(query.as_deref())?;
    summary_response(&s, &name, &id, detailed).await
}

async fn cancel(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let Path((name, id)) = path.map_err(path_error)?;
    let wait = match query_param(query.as_deref(), "mode") {
        None | Some("async") => false,
        Some("sync") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown cancel mode `{other}` (expected async or sync)"),
            ));
        }
    };
    let detailed = detailed(query.as_deref())?;
    let target = target(&s, &name)?;
    let stored = load_of(&s, &name, &id).await?;
    if stored.state.is_terminal() {
        return Err(crate::driver::already_finished(&id, stored.state).into());
    }
    match target {
        Target::Local(workflow) => workflow.cancel(&s.engine, id.clone(), wait).await?,
        Target::Remote => super::workers::cancel_remote(&s, stored, wait).await?,
    }
    summary_response(&s, &name, &id, detailed).await
}

fn check_admin(s: &Shared, headers: &HeaderMap) -> ApiResult<()> {
    match super::auth::bearer(headers) {
        Some(token) if s.admin_token.matches(token) => Ok(()),
        _ => Err(ApiError::unauthorized("admin token")),
    }
}

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> crate::Result<T> + Send + 'static) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("storage task failed: {e}"))),
    }
}

async fn list_secrets(State(s): SharedState, headers: HeaderMap) -> ApiResult {
    check_admin(&s, &headers)?;
    let engine = s.engine.clone();
    let names = blocking(move || crate::secrets::list(&engine)).await?;
    Ok(axum::Json(names).into_response())
}

async fn set_secret(State(s): SharedState, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult {
    check_admin(&s, &headers)?;
    let body = json_body(body)?;
    let secret: NewSecret = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {{\"name\": string, \"value\": string}}: {e}"),
        )
    })?;
    if secret.name.trim().is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "a secret needs a name"));
    }
    let engine = s.engine.clone();
    let name = secret.name.clone();
    blocking(move || crate::secrets::set(&engine, &secret.name, &secret.value)).await?;
    Ok(axum::Json(json!({ "name": name })).into_response())
}

async fn get_secret(State(s): SharedState, headers: HeaderMap, path: Result<Path<String>, PathRejection>) -> ApiResult {
    check_admin(&s, &headers)?;
    let Path(name) = path.map_err(path_error)?;
    let engine = s.engine.clone();
    let key = name.clone();
    match blocking(move || crate::secrets::get(&engine, &key)).await? {
        Some(value) => Ok(axum::Json(json!({ "name": name, "value": value })).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no secret named `{name}`"))),
    }
}

async fn remove_secret(
    State(s): SharedState,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    check_admin(&s, &headers)?;
    let Path(name) = path.map_err(path_error)?;
    let engine = s.engine.clone();
    let key = name.clone();
    if blocking(move || crate::secrets::remove(&engine, &key)).await? {
        Ok(axum::Json(json!({ "name": name, "removed": true })).into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, format!("no secret named `{name}`")))
    }
}

/// Where an SSE stream's events come from.
pub(crate) enum Source {
    /// A run in this process.
    Run(Subscription),
    /// The hub (remote executions).
    Hub(HubReceiver),
}

impl Source {
    async fn next(&mut self) -> Option<HubItem> {
        match self {
            Source::Run(sub) => std::future::poll_fn(|cx| sub.poll_next(cx)).await.map(HubItem::Event),
            Source::Hub(rx) => rx.recv().await,
        }
    }
}

struct StreamState {
    shared: Arc<Shared>,
    summary: Summary,
    queued: VecDeque<Event>,
    source: Source,
    ended: bool,
    /// Set when a worker refused the resume: the paused state is sent next, then the end.
    refused: Option<String>,
}

/// The SSE answer of a stream-mode run or resume: `{workflow}.execution.{state}` for each state
/// change, `task.progress` for progress, until the execution finishes or pauses.
pub(crate) fn sse(shared: Arc<Shared>, summary: Summary, queued: Vec<Event>, source: Source) -> Response {
    let mut stop = shared.shutdown.subscribe();
    let state = StreamState { shared, summary, queued: queued.into(), source, ended: false, refused: None };
    let events = futures::stream::unfold(state, |mut st| async move {
        let event = next_sse(&mut st).await?;
        Some((Ok::<_, Infallible>(event), st))
    });
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    Sse::new(events.take_until(Box::pin(stopped))).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

async fn next_sse(st: &mut StreamState) -> Option<SseEvent> {
    if st.ended {
        return None;
    }
    if st.refused.is_some() {
        st.ended = true;
        return Some(state_event(&st.summary));
    }
    loop {
        let event = match st.queued.pop_front() {
            Some(e) => e,
            None => match st.source.next().await {
                Some(HubItem::Event(e)) => e,
                Some(HubItem::Refused(reason)) => {
                    // The worker refused the resume input: the execution is paused again.
                    st.summary.state = ExecutionState::Paused;
                    st.refused = Some(reason);
                    return Some(SseEvent::default().event("error").data(json!({ "detail": st.refused }).to_string()));
                }
                None => {
                    // The run ended without a final event reaching us (its engine failed):
                    // report the execution as stored.
                    st.ended = true;
                    let stored = st.shared.engine.load(&st.summary.execution_id).await.ok().flatten()?;
                    let summary = summary_of(&st.shared, &stored, st.summary.events.is_some());
                    return Some(state_event(&summary));
                }
            },
        };
        if event.kind() == EventType::TaskProgress {
            let data = json!({
                "execution_id": st.summary.execution_id,
                "task_id": event.source_id(),
                "name": event.name(),
                "value": protocol::msgpack_to_json(event.value_bytes()),
                "time": protocol::rfc3339(event.time()),
            });
            return Some(SseEvent::default().event(protocol::TASK_PROGRESS).data(data.to_string()));
        }
        let engine = st.shared.engine.clone();
        if let Some(state) = st.summary.apply(&event, |b| engine.resolve_output(b).map(|v| v.into_owned())) {
            st.ended = protocol::is_resting(state);
            return Some(state_event(&st.summary));
        }
    }
}

fn state_event(summary: &Summary) -> SseEvent {
    let name = format!("{}.execution.{}", summary.workflow_name, summary.state.as_str().to_ascii_lowercase());
    SseEvent::default().event(name).data(summary.to_json().to_string())
}
