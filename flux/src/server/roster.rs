//! Read-only views of the registered workers, for operators and the MCP server's `list_workers`
//! and `get_worker` tools: `GET /workers` and `GET /workers/{name}`, behind the admin token like
//! the other admin data (a worker's name, machine and workflows say a lot about a deployment).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::api::check_admin;
use super::respond::{ApiError, ApiResult, path_error};
use super::state::{Shared, SharedState, WorkerEntry, lock};

/// `GET /workers` and `GET /workers/{name}`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/workers", get(list_workers)).route("/workers/{name}", get(show_worker))
}

/// `GET /workers`: every registered worker, sorted by name.
async fn list_workers(State(s): SharedState, headers: HeaderMap) -> ApiResult {
    check_admin(&s, &headers)?;
    let claims = claims_by_worker(&s);
    let workers = lock(&s.workers);
    let mut names: Vec<&String> = workers.keys().collect();
    names.sort();
    let list: Vec<Value> =
        names.into_iter().filter_map(|name| workers.get(name).map(|w| worker_json(name, w, &claims))).collect();
    Ok(axum::Json(Value::Array(list)).into_response())
}

/// `GET /workers/{name}`: one worker, or 404.
async fn show_worker(
    State(s): SharedState,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    check_admin(&s, &headers)?;
    let Path(name) = path.map_err(path_error)?;
    let claims = claims_by_worker(&s);
    let workers = lock(&s.workers);
    match workers.get(&name) {
        Some(worker) => Ok(axum::Json(worker_json(&name, worker, &claims)).into_response()),
        None => {
            let mut known: Vec<&str> = workers.keys().map(String::as_str).collect();
            known.sort_unstable();
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no worker named `{name}` is registered (registered: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            ))
        }
    }
}

/// How many claims each worker holds.
fn claims_by_worker(s: &Shared) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    for claim in lock(&s.claims).by_execution.values() {
        *counts.entry(claim.worker.clone()).or_insert(0) += 1;
    }
    counts
}

/// A worker as `GET /workers` shows it (`WorkerInfo` in the OpenAPI document).
fn worker_json(name: &str, worker: &WorkerEntry, claims: &std::collections::HashMap<String, u64>) -> Value {
    json!({
        "name": name,
        "workflows": worker.workflows,
        "resources": worker.resources,
        "connected": worker.connection.as_ref().is_some_and(|c| !c.tx.is_closed()),
        "claims": claims.get(name).copied().unwrap_or(0),
        "last_seen_seconds_ago": worker.last_seen.elapsed().as_secs_f64(),
    })
}
