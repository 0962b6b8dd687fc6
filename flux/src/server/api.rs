//! The client and admin endpoints: the catalog, run / resume / status / cancel of workflows run
//! in this process or by workers, secrets, and the API's own description.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::dispatch;
use super::respond::{
    ApiError, ApiResult, Mode, detailed, detailed_value, json_body, load_of, path_error, query_param, summary_of,
    summary_response, unless_shutdown,
};
use super::state::{CatalogEntry, Shared, SharedState, lock};
use super::stream::{Source, sse};
use crate::event::ExecutionState;
use crate::protocol::{self, NewSecret, Summary};
use crate::store::{ExecutionFilter, ExecutionRow};

/// The client and admin endpoints, and the API's description.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/workflows", get(list_workflows))
        .route("/workflows/{name}", get(show_workflow))
        .route("/workflows/{name}/run/{mode}", axum::routing::post(run))
        .route("/workflows/{name}/resume/{execution_id}/{mode}", axum::routing::post(resume))
        .route("/workflows/{name}/status/{execution_id}", get(status))
        .route("/workflows/{name}/cancel/{execution_id}", get(cancel))
        .route("/workflows/{name}/send/{execution_id}/{topic}", axum::routing::post(send))
        .route("/workflows/{name}/events/{execution_id}/{key}", get(get_event))
        .route("/executions", get(list_executions))
        .route("/executions/{execution_id}", get(show_execution))
        .route("/executions/{execution_id}/stream", get(super::stream::watch))
        .route("/admin/secrets", get(list_secrets).post(set_secret))
        .route("/admin/secrets/{name}", get(get_secret).delete(remove_secret))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

/// `GET /openapi.json`: the OpenAPI document.
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::OPENAPI_JSON)
}

/// `GET /docs`: the interactive API page.
async fn docs() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], super::openapi::DOCS_HTML)
}

/// `GET /workflows`: every workflow of the catalog with its version.
async fn list_workflows(State(s): SharedState) -> impl IntoResponse {
    let catalog = lock(&s.catalog);
    let list: Vec<Value> = catalog
        .iter()
        .map(|(name, e)| {
            let mut entry = json!({ "name": name, "version": e.version, "versions": e.versions });
            add_input_schema(&s, name, &mut entry);
            entry
        })
        .collect();
    axum::Json(Value::Array(list))
}

/// Adds `input_schema` to a catalog entry when the workflow runs here and its input has a JSON
/// Schema ([`WorkflowDefinition::input_schema`](crate::WorkflowDefinition::input_schema)).
fn add_input_schema(s: &Shared, name: &str, entry: &mut Value) {
    let schema = s.local.get(name).and_then(|w| w.input_schema());
    if let (Some(schema), Some(map)) = (schema.and_then(|text| serde_json::from_str(&text).ok()), entry.as_object_mut())
    {
        map.insert("input_schema".to_string(), schema);
    }
}

/// `GET /workflows/{name}`: a workflow, where it runs and which workers registered it.
async fn show_workflow(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(name) = path.map_err(path_error)?;
    let catalog = lock(&s.catalog);
    let entry = catalog.get(&name).ok_or_else(|| unknown_workflow(&name, &catalog))?;
    let mut answer = json!({
        "name": name,
        "version": entry.version,
        "versions": entry.versions,
        "source": if entry.in_process { "in_process" } else { "worker" },
        "workers": entry.workers,
    });
    add_input_schema(&s, &name, &mut answer);
    Ok(axum::Json(answer).into_response())
}

/// 404 for a workflow the catalog does not have, naming those it has.
fn unknown_workflow(name: &str, catalog: &std::collections::BTreeMap<String, CatalogEntry>) -> ApiError {
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
pub(super) enum Target {
    Local(Arc<dyn crate::erased::ErasedWorkflow>),
    Remote,
}

/// Where workflow `name` runs, or 404. With other servers on the database, a workflow this one
/// does not know yet may have been registered with one of them a moment ago.
pub(super) async fn target(s: &Shared, name: &str) -> ApiResult<Target> {
    if let Some(w) = s.local.get(name) {
        return Ok(Target::Local(w.clone()));
    }
    if s.shared_store && !lock(&s.catalog).contains_key(name) {
        super::cluster::learn_catalog(s).await;
    }
    let catalog = lock(&s.catalog);
    if catalog.contains_key(name) { Ok(Target::Remote) } else { Err(unknown_workflow(name, &catalog)) }
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

/// `POST /workflows/{name}/run/{mode}`: starts an execution and answers in `mode`.
async fn run(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, mode)) = path.map_err(path_error)?;
    let mode = Mode::parse(&mode)?;
    let Query(pairs) = query.map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid query string: {}", e.body_text()))
    })?;
    let param = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let detailed = detailed_value(param("detailed"))?;
    let target = target(&s, &name).await?;
    let queue = param("queue");
    if let Some(queue) = queue {
        crate::config::check_queue_name(queue)?;
    }
    let input = json_body(body)?;
    let encoded = protocol::json_to_msgpack(&input)?;
    match target {
        Target::Local(workflow) => {
            workflow.check_input(&encoded)?;
            let queue = queue.map(|queue| s.engine.limiter(queue));
            let started = workflow.start(&s.engine, encoded, mode == Mode::Stream, queue).await?;
            let id = started.execution_id.clone();
            let source = match (started.events, started.queued_events) {
                (Some(events), _) => Some(Source::Run(events)),
                (None, Some(later)) => Some(Source::Queued(later)),
                (None, None) => None,
            };
            match (mode, source) {
                (Mode::Stream, Some(source)) => {
                    // A queued execution's log starts with its WORKFLOW_SCHEDULED, stored already.
                    let (state, first) = match &source {
                        Source::Queued(_) => {
                            let stored = load_of(&s, &name, &id).await?;
                            (stored.state, stored.events)
                        }
                        _ => (ExecutionState::Created, Vec::new()),
                    };
                    let summary = Summary {
                        workflow_name: name,
                        execution_id: id,
                        input,
                        output: Value::Null,
                        state,
                        events: detailed.then(Vec::new),
                    };
                    Ok(sse(s.clone(), summary, first, source))
                }
                (Mode::Sync, _) => {
                    finished(&s, started.done).await?;
                    summary_response(&s, &name, &id, detailed).await
                }
                _ => summary_response(&s, &name, &id, detailed).await,
            }
        }
        Target::Remote => {
            let lines = super::queues::lines(&s, &name, queue);
            super::queues::run_remote(&s, &name, lines, input, encoded, mode, detailed).await
        }
    }
}

/// `POST /workflows/{name}/resume/{execution_id}/{mode}`: resumes a paused execution with
/// the body as its input and answers in `mode`.
async fn resume(
    State(s): SharedState,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, id, mode)) = path.map_err(path_error)?;
    let mode = Mode::parse(&mode)?;
    let detailed = detailed(query.as_deref())?;
    let target = target(&s, &name).await?;
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
        return dispatch::resume_remote(&s, before, encoded, mode, detailed).await;
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

/// `GET /workflows/{name}/status/{execution_id}`: the execution as stored now.
async fn status(
    State(s): SharedState,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let Path((name, id)) = path.map_err(path_error)?;
    let detailed = detailed(query.as_deref())?;
    summary_response(&s, &name, &id, detailed).await
}

/// `GET /workflows/{name}/cancel/{execution_id}`: asks for the cancellation of an execution
/// (`?mode=sync` waits until it is cancelled).
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
    let target = target(&s, &name).await?;
    let stored = load_of(&s, &name, &id).await?;
    if stored.state.is_terminal() {
        return Err(crate::driver::already_finished(&id, stored.state).into());
    }
    match target {
        Target::Local(workflow) => workflow.cancel(&s.engine, id.clone(), wait).await?,
        Target::Remote => dispatch::cancel_remote(&s, stored, wait).await?,
    }
    summary_response(&s, &name, &id, detailed).await
}

/// `POST /workflows/{name}/send/{execution_id}/{topic}`: keeps the body (JSON) as the next
/// message on `topic` for the execution, which `flux::recv` takes; an `Idempotency-Key` header
/// delivers a message of that key once (`"delivered": false` for a duplicate).
async fn send(
    State(s): SharedState,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, id, topic)) = path.map_err(path_error)?;
    target(&s, &name).await?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "the `Idempotency-Key` header is not visible ASCII")
        })?),
    };
    let message = json_body(body)?;
    let encoded = protocol::json_to_msgpack(&message)?;
    let delivered = crate::messages::send_encoded(&s.engine, &name, &id, &topic, key, encoded).await?;
    Ok(axum::Json(json!({ "execution_id": id, "topic": topic, "delivered": delivered })).into_response())
}

/// `GET /workflows/{name}/events/{execution_id}/{key}`: the latest value the execution set
/// under `key` with `flux::set_event` (`"set": false` and a null value if none yet).
async fn get_event(State(s): SharedState, path: Result<Path<(String, String, String)>, PathRejection>) -> ApiResult {
    let Path((name, id, key)) = path.map_err(path_error)?;
    let value = crate::messages::event_value(&s.engine, &name, &id, &key).await?;
    let (set, value) = match value {
        Some(bytes) => (true, protocol::msgpack_to_json(&bytes)),
        None => (false, Value::Null),
    };
    Ok(axum::Json(json!({ "execution_id": id, "key": key, "set": set, "value": value })).into_response())
}

/// `GET /executions`: a page of the stored executions, newest first, with how many match.
///
/// Query: `workflow`, `state` (repeated for several), `created_after` and `created_before`
/// (RFC 3339 UTC times, `[after, before)`), `updated_before` (RFC 3339, last change strictly
/// before), `parent` (repeated for several), `limit` (1 to 1000, default 50) and `offset`: every
/// criterion of an [`ExecutionFilter`], so that the typed client sends any filter whole. Anything else, or a value that is not one, is answered 422
/// saying which.
async fn list_executions(
    State(s): SharedState,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let Query(pairs) = query.map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid query string: {}", e.body_text()))
    })?;
    let filter = execution_filter(&pairs)?;
    let page = s.engine.list_executions(filter.clone()).await?;
    let executions: Vec<Value> = page.executions.iter().map(execution_row).collect();
    Ok(axum::Json(json!({
        "executions": executions,
        "total": page.total,
        "limit": filter.limit,
        "offset": filter.offset,
    }))
    .into_response())
}

/// `GET /executions/{execution_id}`: an execution of any workflow, as stored now (the status
/// of `GET /workflows/{name}/status/{execution_id}` for a caller that knows only the id), with
/// its version, parent, worker and times.
async fn show_execution(
    State(s): SharedState,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let Path(id) = path.map_err(path_error)?;
    let detailed = detailed(query.as_deref())?;
    match s.engine.load(&id).await? {
        Some(stored) => {
            let mut answer = summary_of(&s, &stored, detailed).to_json();
            if let Some(map) = answer.as_object_mut() {
                map.insert("workflow_version".into(), json!(stored.version));
                map.insert("parent_id".into(), json!(stored.parent_id));
                map.insert("worker".into(), json!(stored.worker));
                map.insert("created_at".into(), json!(protocol::rfc3339(stored.created_at)));
                map.insert("updated_at".into(), json!(protocol::rfc3339(stored.updated_at)));
            }
            Ok(axum::Json(answer).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no execution `{id}`"))),
    }
}

/// The filter of `GET /executions`, or 422 naming the parameter at fault.
fn execution_filter(pairs: &[(String, String)]) -> ApiResult<ExecutionFilter> {
    let invalid = |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
    let time = |key: &str, value: &str| {
        humantime::parse_rfc3339(value.trim()).map_err(|_| {
            invalid(format!("`{key}` must be an RFC 3339 time in UTC such as 2026-12-07T03:00:00Z, not `{value}`"))
        })
    };
    let mut filter = ExecutionFilter::new();
    for (key, value) in pairs {
        filter = match key.as_str() {
            "workflow" => filter.workflow(value),
            "state" => filter.state(value.trim().to_ascii_uppercase().parse().map_err(|_| {
                let known: Vec<&str> = ExecutionState::ALL.iter().map(|s| s.as_str()).collect();
                invalid(format!("unknown state `{value}` (expected one of {})", known.join(", ")))
            })?),
            "created_after" => filter.created_after(time(key, value)?),
            "created_before" => filter.created_before(time(key, value)?),
            "updated_before" => filter.updated_before(time(key, value)?),
            "parent" => filter.parent(value),
            "schedule" => filter.schedule(value),
            "limit" => match value.trim().parse::<u32>() {
                Ok(limit) if (1..=ExecutionFilter::MAX_LIMIT).contains(&limit) => filter.limit(limit),
                _ => {
                    return Err(invalid(format!(
                        "`limit` must be a whole number from 1 to {}, not `{value}`",
                        ExecutionFilter::MAX_LIMIT
                    )));
                }
            },
            "offset" => match value.trim().parse::<u64>() {
                Ok(offset) if i64::try_from(offset).is_ok() => filter.offset(offset),
                _ => return Err(invalid(format!("`offset` must be a whole number from 0, not `{value}`"))),
            },
            other => {
                return Err(invalid(format!(
                    "unknown query parameter `{other}` (expected workflow, state, created_after, created_before, \
                     updated_before, parent, schedule, limit or offset)"
                )));
            }
        };
    }
    Ok(filter)
}

/// An execution of `GET /executions`.
fn execution_row(row: &ExecutionRow) -> Value {
    json!({
        "execution_id": row.id,
        "workflow_name": row.workflow_name,
        "workflow_version": row.version,
        "state": row.state.as_str(),
        "parent_id": row.parent_id,
        "worker": row.worker,
        "created_at": protocol::rfc3339(row.created_at),
        "updated_at": protocol::rfc3339(row.updated_at),
    })
}

/// 401 unless the request carries the admin token, or comes from a signed-in console page.
pub(super) fn check_admin(s: &Shared, headers: &HeaderMap) -> ApiResult<()> {
    match super::auth::bearer(headers) {
        Some(token) if s.admin_token.matches(token) => Ok(()),
        _ if super::auth::console_session(headers, &s.console_key, super::auth::unix_now()) => Ok(()),
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

/// `GET /admin/secrets`: the names of the secrets.
async fn list_secrets(State(s): SharedState, headers: HeaderMap) -> ApiResult {
    check_admin(&s, &headers)?;
    let engine = s.engine.clone();
    let names = blocking(move || crate::secrets::list(&engine)).await?;
    Ok(axum::Json(names).into_response())
}

/// `POST /admin/secrets`: stores a secret ([`NewSecret`]).
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

/// `GET /admin/secrets/{name}`: a secret with its value.
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

/// `DELETE /admin/secrets/{name}`: removes a secret.
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
