//! `GET /metrics`: the server's metrics in the Prometheus text format (version 0.0.4).
//!
//! - `flux_executions{state}` (gauge): the stored executions in each state, read from the store
//!   at each scrape (every server on a database gives the same figures);
//! - `flux_task_attempts_total{task}` and `flux_task_failures_total{task}` (counters): the task
//!   attempts that ended, and those that failed, run by this server or reported to it by its
//!   workers, since it started;
//! - `flux_task_attempt_duration_seconds` (histogram): how long those attempts took;
//! - `flux_queue_waiting{kind,name}` and `flux_queue_running{kind,name}` (gauges): executions
//!   waiting for their turn and running under each queue and `max_concurrency` of this server;
//! - `flux_workers_registered` and `flux_workers_connected` (gauges);
//! - `flux_checkpoints_total` and `flux_checkpoint_requests_total` (counters): the checkpoints
//!   workers sent this server, and the requests that carried them (a worker sends the
//!   checkpoints of several executions in one request).
//!
//! Like `GET /executions`, it needs no token: it tells counts and names of workflows' tasks and
//! queues, never inputs, outputs or secrets.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::hub::HubItem;
use super::respond::ApiResult;
use super::state::{Shared, SharedState, lock};
use crate::event::ExecutionState;
use crate::metrics::BUCKETS;
use crate::store::ExecutionFilter;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route of `/metrics`.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/metrics", get(metrics))
}

/// Counts the task attempts that a worker's checkpoint of execution `id` began and ended.
pub(crate) fn observe(s: &Shared, id: &str, items: &[HubItem]) {
    let events = items.iter().filter_map(|item| match item {
        HubItem::Event(event) => Some(event),
        HubItem::Refused(_) => None,
    });
    s.engine.metrics().observe(id, events);
}

/// `GET /metrics`.
async fn metrics(State(s): SharedState) -> ApiResult {
    let mut out = String::with_capacity(4096);
    family(&mut out, "flux_executions", "gauge", "Stored executions, by state.");
    for &state in ExecutionState::ALL {
        let page = s.engine.list_executions(ExecutionFilter::new().state(state).limit(1)).await?;
        sample(&mut out, "flux_executions", &[("state", state.as_str())], page.total);
    }

    let tasks = s.engine.metrics().tasks();
    family(&mut out, "flux_task_attempts_total", "counter", "Task attempts that ended, by task.");
    for (task, counts) in &tasks {
        sample(&mut out, "flux_task_attempts_total", &[("task", task)], counts.attempts);
    }
    family(&mut out, "flux_task_failures_total", "counter", "Task attempts that failed, by task.");
    for (task, counts) in &tasks {
        sample(&mut out, "flux_task_failures_total", &[("task", task)], counts.failures);
    }

    let latency = s.engine.metrics().latency();
    let name = "flux_task_attempt_duration_seconds";
    family(&mut out, name, "histogram", "How long task attempts took.");
    let mut cumulative = 0;
    for (i, count) in latency.buckets.iter().enumerate() {
        cumulative += count;
        let bound = BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        sample(&mut out, &format!("{name}_bucket"), &[("le", &bound)], cumulative);
    }
    let _ = writeln!(out, "{name}_sum {}", latency.sum);
    let _ = writeln!(out, "{name}_count {}", latency.count);

    let depths = s.engine.queue_depths();
    family(&mut out, "flux_queue_waiting", "gauge", "Executions waiting for their turn, by queue or limit.");
    for (kind, queue, waiting, _) in &depths {
        sample(&mut out, "flux_queue_waiting", &[("kind", kind), ("name", queue)], *waiting as u64);
    }
    family(&mut out, "flux_queue_running", "gauge", "Executions running under a queue or limit.");
    for (kind, queue, _, running) in &depths {
        sample(&mut out, "flux_queue_running", &[("kind", kind), ("name", queue)], *running as u64);
    }

    let (registered, connected) = {
        let workers = lock(&s.workers);
        (workers.len(), workers.values().filter(|w| w.connection.is_some()).count())
    };
    family(&mut out, "flux_workers_registered", "gauge", "Workers registered with this server.");
    sample(&mut out, "flux_workers_registered", &[], registered as u64);
    family(&mut out, "flux_workers_connected", "gauge", "Workers connected to this server now.");
    sample(&mut out, "flux_workers_connected", &[], connected as u64);
    let (received, requests) = (&s.checkpoints.received, &s.checkpoints.requests);
    family(&mut out, "flux_checkpoints_total", "counter", "Checkpoints workers sent this server.");
    sample(&mut out, "flux_checkpoints_total", &[], received.load(std::sync::atomic::Ordering::Relaxed));
    family(&mut out, "flux_checkpoint_requests_total", "counter", "Requests that carried those checkpoints.");
    sample(&mut out, "flux_checkpoint_requests_total", &[], requests.load(std::sync::atomic::Ordering::Relaxed));
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response())
}

/// The `# HELP` and `# TYPE` lines of a metric.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line, its label values escaped.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"");
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("task", "a\"b\\c\nd"), ("k", "v")], 3);
        sample(&mut out, "n", &[], 0);
        assert_eq!(out, "m{task=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3\nn 0\n");
    }
}
