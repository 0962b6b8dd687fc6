//! Why a run's body must stop before it returns (a pause it reached, a resume input that does not
//! fit, a cancellation), and the events that end a run.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{NIL, RunState};
use crate::error::{Error, Result};
use crate::event::{EventType, ExecutionState};
use crate::store::{Commit, Write};

/// A pause reached by the body: what the driver records before it stops the run.
#[derive(Clone, Debug)]
pub(crate) struct PauseRequest {
    pub(crate) task_id: Arc<str>,
    pub(crate) task_name: Arc<str>,
    /// The pause's recorded arguments (`[name]`).
    pub(crate) args: Arc<[u8]>,
    /// The pause name.
    pub(crate) name: String,
    /// The value exposed while paused (`pause_with`), MessagePack.
    pub(crate) output: Arc<[u8]>,
    /// Whether `TASK_STARTED` and `TASK_PAUSED` still have to be recorded.
    pub(crate) fresh: bool,
}

/// Why the body must stop before it finishes.
#[derive(Clone, Debug, Default)]
pub(crate) enum Stop {
    #[default]
    None,
    /// A pause was reached.
    Pause(PauseRequest),
    /// The resume input does not fit the pause: nothing is recorded and the run stops.
    Rejected(Error),
    /// The execution is being cancelled.
    Cancel,
}

/// What came of a request to cancel a running execution.
pub(crate) enum CancelRequest {
    /// `WORKFLOW_CANCELLING` was recorded; the commit resolves when it is durable.
    Requested(Commit),
    /// It was being cancelled already.
    AlreadyRequested,
    /// The run has recorded its end (finished or paused) already.
    Finished,
}

impl RunState {
    /// Asks the body to stop (a pause or a rejected resume) and wakes the driver.
    pub(crate) fn request_stop(&self, stop: Stop) {
        {
            let mut inner = self.lock();
            if !matches!(inner.stop, Stop::Cancel) {
                inner.stop = stop;
            }
        }
        self.stop_notify.notify_waiters();
    }

    /// Why the body must stop, if it must.
    pub(crate) fn stop(&self) -> Stop {
        self.lock().stop.clone()
    }

    /// Waits until the body is asked to stop. Create it before checking [`RunState::stop`].
    pub(crate) fn stop_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.stop_notify.notified()
    }

    /// Starts the cancellation of this run: records `WORKFLOW_CANCELLING` (and the state
    /// `CANCELLING`, unless `state_set` says it is stored already) and wakes the running tasks.
    pub(crate) fn request_cancel(&self, state_set: bool) -> Result<CancelRequest> {
        let commit = {
            let mut inner = self.lock();
            if inner.finished {
                return Ok(CancelRequest::Finished);
            }
            if matches!(inner.stop, Stop::Cancel) {
                return Ok(CancelRequest::AlreadyRequested);
            }
            self.settle_pending(&mut inner, None)?;
            let set_state =
                (!state_set).then(|| Write::set_state(self.execution_id.clone(), ExecutionState::Cancelling, None));
            let cancelling = self.workflow().entry(EventType::WorkflowCancelling, Arc::from(NIL));
            let commit = self.record_locked(&mut inner, [cancelling], set_state)?;
            inner.stop = Stop::Cancel;
            self.cancelled.store(true, Ordering::SeqCst);
            commit
        };
        self.cancel_notify.notify_waiters();
        self.stop_notify.notify_waiters();
        Ok(CancelRequest::Requested(commit))
    }

    /// Whether the execution is being cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `fut` unless the execution is (or gets) cancelled first: `None` then, and `fut` is
    /// dropped.
    pub(crate) async fn or_cancelled<F: Future>(&self, fut: F) -> Option<F::Output> {
        let notified = self.cancel_notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.is_cancelled() {
            return None;
        }
        let fut = std::pin::pin!(fut);
        match futures::future::select(notified, fut).await {
            futures::future::Either::Left(_) => None,
            futures::future::Either::Right((out, _)) => Some(out),
        }
    }

    /// Records the end of the run: `decide` is told whether a cancellation was asked for and
    /// gives the final event, its value and the final state, stored with the state in one
    /// transaction. Nothing is recorded after it.
    pub(crate) fn record_end(
        &self,
        decide: impl FnOnce(bool) -> Result<(EventType, Arc<[u8]>, ExecutionState)>,
    ) -> Result<(Commit, ExecutionState)> {
        let mut inner = self.lock();
        self.settle_pending(&mut inner, None)?;
        let (kind, value, state) = decide(matches!(inner.stop, Stop::Cancel))?;
        let set_state = Write::set_state(self.execution_id.clone(), state, Some(value.clone()));
        let commit = self.record_last(&mut inner, [self.workflow().entry(kind, value)], set_state)?;
        Ok((commit, state))
    }

    /// Records a pause the body reached (`TASK_STARTED`, `TASK_PAUSED` when new, then
    /// `WORKFLOW_PAUSED` and the state `PAUSED`, in one transaction). `None` when a cancellation
    /// came first: the run then ends cancelled instead.
    pub(crate) fn record_pause(&self, pause: &PauseRequest) -> Result<Option<Commit>> {
        let mut inner = self.lock();
        self.settle_pending(&mut inner, None)?;
        if matches!(inner.stop, Stop::Cancel) {
            return Ok(None);
        }
        let task = super::Source::new(&pause.task_id, &pause.task_name);
        let task_paused = crate::value::to_msgpack(&PausedTask { name: &pause.name })?;
        let mut events = Vec::with_capacity(3);
        if pause.fresh {
            events.push(task.entry(EventType::TaskStarted, pause.args.clone()));
            events.push(task.entry(EventType::TaskPaused, task_paused.into()));
        }
        events.push(self.workflow().entry(EventType::WorkflowPaused, paused_value(&pause.name, &pause.output)));
        let set_state = Write::set_state(self.execution_id.clone(), ExecutionState::Paused, Some(pause.output.clone()));
        self.record_last(&mut inner, events, set_state).map(Some)
    }
}

/// The value of `TASK_PAUSED`.
#[derive(serde::Serialize)]
struct PausedTask<'a> {
    name: &'a str,
}

/// The value of `WORKFLOW_PAUSED`: `{name, output}`, the output spliced in as encoded.
fn paused_value(name: &str, output: &[u8]) -> Arc<[u8]> {
    let mut buf = Vec::with_capacity(16 + name.len() + output.len());
    let _ = rmp::encode::write_map_len(&mut buf, 2);
    crate::value::append_str(&mut buf, "name");
    crate::value::append_str(&mut buf, name);
    crate::value::append_str(&mut buf, "output");
    buf.extend_from_slice(output);
    buf.into()
}
