//! Schedules in server mode: the server's scheduler (it always fires: the workflows it runs in
//! its own process, and those its workers run), and `/schedules` over HTTP.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::respond::{ApiError, ApiResult, json_body, path_error};
use super::state::{Shared, SharedState, lock};
use crate::error::{Error, ErrorKind};
use crate::protocol;
use crate::schedule::{FireRequest, Schedule, ScheduleChange, ScheduleInfo, Scheduler, Starter};

/// The server's starter: a workflow it runs itself starts in its process, one its workers run is
/// stored `SCHEDULED` and offered to them.
struct ServerStarter(Weak<Shared>);

impl Starter for ServerStarter {
    fn start<'a>(&'a self, request: FireRequest<'a>) -> crate::schedule::StartFuture<'a> {
        Box::pin(async move {
            let Some(s) = self.0.upgrade() else {
                return Err(Error::new(ErrorKind::InvalidState, "the server stopped"));
            };
            if let Some(workflow) = s.local.get(request.workflow) {
                let run = workflow.start_new(&s.engine, request.execution_id, request.input).await?;
                return Ok(Some(run));
            }
            if s.shared_store && !lock(&s.catalog).contains_key(request.workflow) {
                super::cluster::learn_catalog(&s).await;
            }
            if !lock(&s.catalog).contains_key(request.workflow) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "schedule `{}` starts workflow `{}`, which no worker has registered yet",
                        request.schedule, request.workflow
                    ),
                ));
            }
            super::dispatch::schedule_remote(&s, request.workflow, &request.execution_id, request.input).await?;
            Ok(None)
        })
    }
}

/// Starts the server's scheduler; it stops when the server does.
pub(crate) fn start(shared: &Arc<Shared>) {
    let starter = Arc::new(ServerStarter(Arc::downgrade(shared)));
    let scheduler = Scheduler::start(shared.engine.clone(), starter, Arc::new(SystemTime::now), true);
    let mut stopped = shared.shutdown.subscribe();
    tokio::spawn(async move {
        let _ = stopped.wait_for(|s| *s).await;
        scheduler.stop().await;
    });
}

/// Creates (or brings up to date) the schedule a worker's workflow `workflow` declares, named
/// after it.
pub(super) async fn declare(s: &Shared, workflow: &str, declared: &protocol::DeclaredSchedule) -> crate::Result<()> {
    let schedule = Schedule::cron(&declared.cron)?.timezone(&declared.timezone)?;
    let input = protocol::json_to_msgpack(&declared.input)?;
    let change = ScheduleChange::new().schedule(schedule).input(input);
    s.engine.put_schedule(workflow, workflow, change).await.map(drop)
}

/// `/schedules` and what is under it.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/schedules", get(list).post(create))
        .route("/schedules/{name}", get(show).put(update).delete(remove))
        .route("/schedules/{name}/pause", post(pause))
        .route("/schedules/{name}/resume", post(resume))
        .route("/schedules/{name}/history", get(history))
}

/// A schedule as the API shows it.
pub(crate) fn schedule_json(info: &ScheduleInfo) -> Value {
    let time = |t: Option<SystemTime>| t.map(protocol::rfc3339);
    json!({
        "id": info.name,
        "name": info.name,
        "workflow_name": info.workflow_name,
        "description": info.description,
        "schedule_type": info.schedule.kind(),
        "schedule_config": info.schedule,
        "status": info.status(),
        "input_data": protocol::msgpack_to_json(&info.input),
        "created_at": protocol::rfc3339(info.created_at),
        "updated_at": protocol::rfc3339(info.updated_at),
        "last_run_at": time(info.last_fire),
        "next_run_at": time(info.next_fire),
        "last_execution_id": info.last_execution,
        "run_count": info.fires,
        "overlap_policy": info.schedule.overlap_policy(),
        "skip_count": info.skips,
        "last_skipped_at": time(info.last_skipped),
    })
}

fn unprocessable(detail: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

/// The `schedule_config` of a request.
fn schedule_of(value: &Value) -> ApiResult<Schedule> {
    serde_json::from_value(value.clone()).map_err(|e| unprocessable(format!("invalid `schedule_config`: {e}")))
}

/// A string field of a request body.
fn text<'a>(body: &'a Value, field: &str) -> ApiResult<Option<&'a str>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(unprocessable(format!("`{field}` must be a string, not {other}"))),
    }
}

/// The encoded `input_data` of a request, checked against workflow `name`'s input type when
/// the server runs it.
fn input_of(s: &Shared, name: &str, body: &Value) -> ApiResult<Option<Vec<u8>>> {
    let Some(input) = body.get("input_data") else { return Ok(None) };
    let encoded = protocol::json_to_msgpack(input)?;
    if let Some(workflow) = s.local.get(name) {
        workflow.check_input(&encoded)?;
    }
    Ok(Some(encoded))
}

/// `POST /schedules`: `{"workflow_name", "name", "schedule_config", "description",
/// "input_data"}`; 201 with the schedule, 409 if the name is taken, 404 for an unknown workflow.
async fn create(State(s): SharedState, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = json_body(body)?;
    let workflow = text(&body, "workflow_name")?.ok_or_else(|| unprocessable("`workflow_name` is required".into()))?;
    super::api::target(&s, workflow).await?;
    let name = text(&body, "name")?.unwrap_or(workflow).to_string();
    if s.engine.schedule_info(&name).await?.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("a schedule named `{name}` exists already")));
    }
    let config = body.get("schedule_config").ok_or_else(|| unprocessable("`schedule_config` is required".into()))?;
    let mut change = ScheduleChange::new().schedule(schedule_of(config)?);
    if let Some(input) = input_of(&s, workflow, &body)? {
        change = change.input(input);
    }
    if let Some(description) = text(&body, "description")? {
        change = change.description(description);
    }
    let info = s.engine.create_schedule(&name, workflow, change).await?;
    Ok((StatusCode::CREATED, axum::Json(schedule_json(&info))).into_response())
}

/// `GET /schedules`: every schedule, by name (`?workflow_name=` keeps one workflow's).
async fn list(State(s): SharedState, query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> ApiResult {
    let Query(pairs) = query.map_err(|e| unprocessable(format!("invalid query string: {}", e.body_text())))?;
    let mut workflow = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "workflow_name" => workflow = Some(value.clone()),
            other => {
                return Err(unprocessable(format!("unknown query parameter `{other}` (expected `workflow_name`)")));
            }
        }
    }
    let schedules = s.engine.schedules().await?;
    let listed: Vec<Value> = schedules
        .iter()
        .filter(|info| workflow.as_ref().is_none_or(|w| *w == info.workflow_name))
        .map(schedule_json)
        .collect();
    Ok(axum::Json(Value::Array(listed)).into_response())
}

fn name_of(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(name) = path.map_err(path_error)?;
    Ok(name)
}

fn not_found(name: &str) -> ApiError {
    crate::store::schedule_not_found(name).into()
}

/// `GET /schedules/{name}`.
async fn show(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = name_of(path)?;
    let info = s.engine.schedule_info(&name).await?.ok_or_else(|| not_found(&name))?;
    Ok(axum::Json(schedule_json(&info)).into_response())
}

/// `PUT /schedules/{name}`: any of `schedule_config`, `input_data`, `description`.
async fn update(
    State(s): SharedState,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = name_of(path)?;
    let body = json_body(body)?;
    let info = s.engine.schedule_info(&name).await?.ok_or_else(|| not_found(&name))?;
    let mut change = ScheduleChange::new();
    if let Some(config) = body.get("schedule_config") {
        change = change.schedule(schedule_of(config)?);
    }
    if let Some(input) = input_of(&s, &info.workflow_name, &body)? {
        change = change.input(input);
    }
    if let Some(description) = text(&body, "description")? {
        change = change.description(description);
    }
    let info = s.engine.update_schedule(&name, change).await?;
    Ok(axum::Json(schedule_json(&info)).into_response())
}

/// `POST /schedules/{name}/pause`.
async fn pause(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let info = s.engine.pause_schedule(&name_of(path)?).await?;
    Ok(axum::Json(schedule_json(&info)).into_response())
}

/// `POST /schedules/{name}/resume`.
async fn resume(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let info = s.engine.resume_schedule(&name_of(path)?).await?;
    Ok(axum::Json(schedule_json(&info)).into_response())
}

/// `DELETE /schedules/{name}`: the executions it started stay.
async fn remove(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = name_of(path)?;
    if !s.engine.delete_schedule(&name).await? {
        return Err(not_found(&name));
    }
    Ok(axum::Json(json!({ "deleted": name })).into_response())
}

/// `GET /schedules/{name}/history?limit=&offset=`: the executions it started, newest first.
async fn history(
    State(s): SharedState,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let name = name_of(path)?;
    let Query(pairs) = query.map_err(|e| unprocessable(format!("invalid query string: {}", e.body_text())))?;
    let (mut limit, mut offset) = (crate::ExecutionFilter::DEFAULT_LIMIT, 0u64);
    for (key, value) in &pairs {
        let number = |what: &str| unprocessable(format!("`{what}` must be a whole number, not `{value}`"));
        match key.as_str() {
            "limit" => limit = value.parse().map_err(|_| number("limit"))?,
            "offset" => offset = value.parse().map_err(|_| number("offset"))?,
            other => {
                return Err(unprocessable(format!("unknown query parameter `{other}` (expected `limit`, `offset`)")));
            }
        }
    }
    let info = s.engine.schedule_info(&name).await?;
    let page = s.engine.schedule_history(&name, limit, offset).await.map_err(|e| unprocessable(e.to_string()))?;
    let entries: Vec<Value> = page
        .executions
        .iter()
        .map(|row| {
            json!({
                "execution_id": row.id,
                "workflow_name": row.workflow_name,
                "state": row.state.as_str(),
                "started_at": protocol::rfc3339(row.created_at),
                "completed_at": row.state.is_terminal().then(|| protocol::rfc3339(row.updated_at)),
            })
        })
        .collect();
    let workflow = info.map(|i| i.workflow_name).or_else(|| page.executions.first().map(|r| r.workflow_name.clone()));
    Ok(axum::Json(json!({
        "schedule_id": name,
        "workflow_name": workflow,
        "entries": entries,
        "total": page.total,
        "limit": limit,
        "offset": offset,
    }))
    .into_response())
}
