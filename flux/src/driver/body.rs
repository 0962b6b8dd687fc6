//! Running a workflow body: polled in its run's scope until it returns, reaches a pause, has its
//! resume input refused or is cancelled (from this process, or from another one through storage).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tracing::Instrument as _;

use super::cancelled_workflow;
use crate::error::{Error, Result};
use crate::event::ExecutionState;
use crate::run::{self, CancelRequest, PauseRequest, RunState, Stop};

/// How long a cancelled body may take to wind down (its running task's rollback included)
/// before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(15);

/// How often a running execution checks storage for a cancellation asked for by another
/// process.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// How the body stopped.
pub(super) enum Ending<O> {
    /// It returned (or panicked).
    Returned(Result<O>),
    /// It reached a pause.
    Paused(PauseRequest),
    /// A resume input did not fit its pause.
    Rejected(Error),
}

/// Resolves once storage says the execution is `CANCELLING` (asked for by another process).
async fn cancel_requested_in_store(run: &RunState) {
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        if let Ok(Some(ExecutionState::Cancelling)) = run.engine().execution_state(&run.execution_id).await {
            return;
        }
    }
}

/// Polls the body until it returns or is told to stop (pause, rejected resume); a cancelled body
/// is given [`CANCEL_GRACE`] to record its cancellation.
pub(super) async fn run_body<O>(run: &Arc<RunState>, body: BoxFuture<'static, Result<O>>) -> Ending<O> {
    let body = run::scope(run.clone(), AssertUnwindSafe(body).catch_unwind()).instrument(run.span.clone());
    let mut body = std::pin::pin!(body);
    let returned = |r: std::result::Result<Result<O>, Box<dyn std::any::Any + Send>>| {
        let result = r.unwrap_or_else(|panic| Err(Error::from_panic(panic)));
        if let Err(e) = &result {
            run.span.record("otel.status_code", "error");
            tracing::info!(parent: &run.span, error = %e, "flux.workflow.failed");
        }
        Ending::Returned(result)
    };
    let watch = cancel_requested_in_store(run);
    let mut watch = std::pin::pin!(watch);
    let mut watching = true;
    loop {
        let notified = run.stop_notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        match run.stop() {
            Stop::Pause(pause) => return Ending::Paused(pause),
            Stop::Rejected(e) => return Ending::Rejected(e),
            Stop::Cancel => {
                return match tokio::time::timeout(CANCEL_GRACE, body.as_mut()).await {
                    Ok(r) => returned(r),
                    Err(_) => Ending::Returned(Err(cancelled_workflow(&run.execution_id))),
                };
            }
            Stop::None => {}
        }
        tokio::select! {
            r = body.as_mut() => return returned(r),
            _ = notified => {}
            _ = watch.as_mut(), if watching => {
                watching = false;
                match run.request_cancel(true) {
                    Ok(CancelRequest::Requested(commit)) => {
                        // A failure marks the run broken; it is reported when the run ends.
                        let _ = run.durable(commit).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(execution_id = %run.execution_id, error = %e, "cannot record the cancellation"),
                }
            }
        }
    }
}
