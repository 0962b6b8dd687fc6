//! The task-locals that tie running code to its execution: the run a workflow body and its task
//! calls belong to, the task whose attempt is running (for `flux::progress`), and the
//! replay-only mode of a composite task being replayed.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use futures::future::BoxFuture;

use super::RunState;
use crate::error::{Error, ErrorKind};

tokio::task_local! {
    static CURRENT: Arc<RunState>;
    /// Set while a composite task replays children whose outcome is already recorded: a child
    /// that would have to run is refused instead (see `compose`).
    static REPLAY_ONLY: ();
    /// The task whose attempt is running, for `flux::progress`.
    static CURRENT_TASK: (Arc<str>, Arc<str>);
}

/// The execution the calling code runs in, if any.
pub(crate) fn current() -> Option<Arc<RunState>> {
    CURRENT.try_with(Arc::clone).ok()
}

thread_local! {
    /// The run whose code this thread polled last, and the Tokio task its scope was entered
    /// from: a task call without a scope, made on this thread by a Tokio task spawned after
    /// that one while the run goes on, was most likely spawned by the run with `tokio::spawn`
    /// (see [`unscoped_call`]).
    static LAST_RUN: RefCell<Option<(Weak<RunState>, Option<tokio::task::Id>)>> = const { RefCell::new(None) };
}

/// Runs `fut` with `run` as the current execution.
pub(crate) async fn scope<F: Future>(run: Arc<RunState>, fut: F) -> F::Output {
    let weak = Arc::downgrade(&run);
    let entered_from = tokio::task::try_id();
    let mut scoped = std::pin::pin!(CURRENT.scope(run, fut));
    std::future::poll_fn(move |cx| {
        LAST_RUN.with(|last| {
            let mut last = last.borrow_mut();
            if !last.as_ref().is_some_and(|(w, from)| Weak::ptr_eq(w, &weak) && *from == entered_from) {
                *last = Some((weak.clone(), entered_from));
            }
        });
        scoped.as_mut().poll(cx)
    })
    .await
}

/// The error of a call of task `name` made without an execution's scope by code a running
/// execution most likely spawned with `tokio::spawn`: a Tokio task started after the one the
/// execution runs in, polled on a thread that runs the execution, while it goes on. Such a call
/// would run unrecorded; [`spawn`] carries the scope instead.
///
/// It is a heuristic, since Tokio does not say which task spawned which: on a current-thread
/// runtime (`#[tokio::test]`'s) every such call is caught; on a multi-thread one, those of
/// spawned tasks that run on another worker thread than the execution can go unnoticed.
pub(crate) fn unscoped_call(name: &str) -> Option<Error> {
    // Code run by `block_on` (outside any task) is never spawned by an execution.
    let caller = tokio::task::try_id()?;
    let run = LAST_RUN.with(|last| {
        let last = last.borrow();
        let (weak, entered_from) = last.as_ref()?;
        if entered_from.is_some_and(|from| caller <= from) {
            return None;
        }
        weak.upgrade()
    })?;
    if run.is_closed() {
        return None;
    }
    Some(Error::new(
        ErrorKind::InvalidState,
        format!(
            "task `{name}` was called outside its execution's scope, in a future given to `tokio::spawn` while \
             execution `{}` runs; it would run unrecorded. Spawn it with `flux::spawn` instead, which keeps it in \
             the execution",
            run.execution_id
        ),
    ))
}

/// Runs `fut` in replay-only mode: task calls inside it return their recorded outcome and never
/// run.
pub(crate) async fn replay_only<F: Future>(fut: F) -> F::Output {
    REPLAY_ONLY.scope((), fut).await
}

/// Whether the caller runs in replay-only mode.
pub(crate) fn is_replay_only() -> bool {
    REPLAY_ONLY.try_with(|_| ()).is_ok()
}

/// Runs `fut` as the attempt of task `task_id` (named `name`).
pub(crate) async fn in_task<F: Future>(task_id: &Arc<str>, name: &Arc<str>, fut: F) -> F::Output {
    CURRENT_TASK.scope((task_id.clone(), name.clone()), fut).await
}

/// The task whose attempt is running, if any.
pub(crate) fn current_task() -> Option<(Arc<str>, Arc<str>)> {
    CURRENT_TASK.try_with(Clone::clone).ok()
}

/// Spawns `future` on the Tokio runtime, as `tokio::spawn` does, inside the execution it is
/// called from: the task calls it makes are recorded in that execution's log, as if the body
/// made them. (A future given to `tokio::spawn` leaves the execution behind: its task calls run
/// as plain function calls, unrecorded.) Outside a workflow it is `tokio::spawn`.
///
/// A spawned call takes its id when it is made, like any call: when spawned futures make calls of
/// the same task with the same arguments, the order of their occurrence numbers (`~n`) is the
/// order in which they run.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::task]
/// async fn fetch(page: u32) -> String {
///     format!("page {page}")
/// }
///
/// #[flux::workflow]
/// async fn crawl(_ctx: ExecutionContext<()>) -> flux::Result<String> {
///     let background = flux::spawn(async { fetch(2).await });
///     let first = fetch(1).await?;
///     let second = background.await.map_err(|e| flux::Error::new(flux::ErrorKind::Panic, e.to_string()))??;
///     Ok(format!("{first}, {second}"))
/// }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(run) = current() else {
        return tokio::spawn(future);
    };
    let mut carried: BoxFuture<'static, F::Output> = Box::pin(future);
    if let Some(task) = current_task() {
        carried = Box::pin(CURRENT_TASK.scope(task, carried));
    }
    if is_replay_only() {
        carried = Box::pin(REPLAY_ONLY.scope((), carried));
    }
    tokio::spawn(CURRENT.scope(run, carried))
}

/// The error a task call gets when its execution is being cancelled.
pub(crate) fn cancelled_error(task_id: &str) -> Error {
    Error::new(ErrorKind::Cancelled, format!("task `{task_id}` was cancelled")).with_task_id(task_id)
}

/// The error a task call gets when it would have to run inside a composite task being replayed.
pub(crate) fn replay_only_error(task_id: &str) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("task `{task_id}` has no recorded outcome and is not run again: the group it belongs to has finished"),
    )
    .with_task_id(task_id)
}
