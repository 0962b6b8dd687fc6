//! The SSE answer of a run or resume in `stream` mode, and of `GET /executions/{id}/stream` (an
//! execution already started): a `{workflow}.execution.{state}` event for each change of state
//! and `task.progress` for progress, from a run in this process or from the hub (remote
//! executions), until the execution finishes or pauses.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde_json::json;

use super::hub::{HubItem, HubReceiver};
use super::respond::{ApiError, ApiResult, path_error, summary_of};
use super::state::{Shared, SharedState};
use crate::event::{Event, EventType, ExecutionState};
use crate::protocol::{self, Summary};
use crate::run::Subscription;

/// How often keep-alives go to SSE streams.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Where an SSE stream's events come from.
pub(crate) enum Source {
    /// A run in this process.
    Run(Subscription),
    /// The hub (remote executions).
    Hub(HubReceiver),
    /// A run in this process waiting in a queue: its events once it starts.
    Queued(tokio::sync::oneshot::Receiver<Subscription>),
}

impl Source {
    /// The next event, or `None` when the source ended.
    async fn next(&mut self) -> Option<HubItem> {
        loop {
            match self {
                Source::Run(sub) => return std::future::poll_fn(|cx| sub.poll_next(cx)).await.map(HubItem::Event),
                Source::Hub(rx) => return rx.recv().await,
                // Never started (cancelled while it waited): the stream ends with its state.
                Source::Queued(later) => *self = Source::Run((&mut *later).await.ok()?),
            }
        }
    }
}

/// Where an SSE stream is: what it has told the client, what it still has to send.
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

/// The next SSE event of a stream, or `None` once it ended.
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
                    return Some(
                        SseEvent::default()
                            .event(protocol::STREAM_ERROR)
                            .data(json!({ "detail": st.refused }).to_string()),
                    );
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

/// The SSE event of a change of state: `{workflow}.execution.{state}` with the summary.
fn state_event(summary: &Summary) -> SseEvent {
    let name = format!("{}.execution.{}", summary.workflow_name, summary.state.as_str().to_ascii_lowercase());
    SseEvent::default().event(name).data(summary.to_json().to_string())
}

/// `GET /executions/{execution_id}/stream`: the SSE stream of an execution already started,
/// wherever it runs: its state now, then each change of state and each progress report, until
/// it finishes or pauses (a finished or paused one: its state, and the stream ends). 404 for an
/// execution that is not stored.
pub(crate) async fn watch(State(s): SharedState, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(id) = path.map_err(path_error)?;
    // Listen before reading, so that nothing between the two is missed.
    let local = s.engine.local_run(&id).and_then(|run| {
        let run: Arc<dyn std::any::Any + Send + Sync> = run;
        run.downcast::<crate::run::RunState>().ok()
    });
    let local = local.map(|run| run.subscribe());
    let stored = s.engine.load(&id).await?;
    let stored = stored.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no execution `{id}`")))?;
    let summary = summary_of(&s, &stored, false);
    if protocol::is_resting(stored.state) {
        let event = state_event(&summary);
        return Ok(Sse::new(futures::stream::once(async move { Ok::<_, Infallible>(event) })).into_response());
    }
    let source = match local {
        Some(subscription) => Source::Run(subscription),
        None => Source::Hub(s.hub.subscribe(&id, stored.events.last().map_or(0, Event::seq))),
    };
    // The stream opens with the execution's state now: the last event that set it, again.
    let current = stored.events.iter().rev().find(|e| protocol::state_after(e.kind()).is_some()).cloned();
    Ok(sse(s.clone(), summary, current.into_iter().collect(), source))
}
