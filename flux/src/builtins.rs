//! Built-in tasks (docs/design.md §7–§9): recorded time and randomness, a durable `sleep`, `pause`
//! and `progress`.
//!
//! Inside a workflow, [`now`], [`uuid4`], [`randint`], [`randrange`] and [`choice`] are tasks:
//! their first value is recorded and a replay returns it, so the body stays deterministic.
//! Outside a workflow they simply compute a value.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventType, ExecutionState};
use crate::run::{self, Lookup, NIL, PauseRequest, RunState, Source, Stop};
use crate::store::Write;
use crate::task::{Args, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};
use crate::value::{self, Storable};

/// A call of a built-in task named `name` whose value `make` computes once.
fn recorded<T, M>(name: &'static str, args: Args, make: M) -> impl Future<Output = Result<T>> + Send + 'static
where
    T: Storable + Send + 'static,
    M: FnOnce() -> Result<T> + Send + 'static,
{
    let call = TaskCall::begin(name, || (name, args));
    let mut make = Some(make);
    async move {
        let attempt = move |_: &Call<'_>| {
            let value = match make.take() {
                Some(make) => make(),
                None => Err(Error::new(ErrorKind::InvalidState, format!("built-in task `{name}` ran twice"))),
            };
            Ok(std::future::ready(value))
        };
        let handlers = Handlers { fallback: None::<NoHandler<T>>, rollback: None::<NoHandler<()>> };
        call.run(codec::<T>(), &TaskOptions::new(), attempt, handlers).await
    }
}

/// `n` random bytes' worth of randomness from the operating system.
fn random_u64() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(ErrorKind::Unknown, "the operating system gave no randomness").with_cause(e.to_string())
    })?;
    Ok(u64::from_le_bytes(bytes))
}

/// A uniformly random number in `0..n` (`n > 0`), without modulo bias.
fn below(n: u64) -> Result<u64> {
    // Reject the top partial range so every residue is equally likely.
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = random_u64()?;
        if x < zone {
            return Ok(x % n);
        }
    }
}

/// The current time, recorded: a replay returns the time of the first run.
pub fn now() -> impl Future<Output = Result<SystemTime>> + Send + 'static {
    recorded("now", Args::new(0), || Ok(SystemTime::now()))
}

/// A random (version 4) UUID, recorded.
pub fn uuid4() -> impl Future<Output = Result<uuid::Uuid>> + Send + 'static {
    recorded("uuid4", Args::new(0), || Ok(uuid::Uuid::new_v4()))
}

/// A random integer `n` with `a <= n <= b`, recorded. `a > b` is an error.
pub fn randint(a: i64, b: i64) -> impl Future<Output = Result<i64>> + Send + 'static {
    recorded("randint", Args::new(2).arg(&a).arg(&b), move || {
        if a > b {
            return Err(Error::new(
                ErrorKind::TaskFailed,
                format!("randint({a}, {b}): the low bound is above the high one"),
            ));
        }
        // The width fits in u64 (at most 2^64 - 1 when a..=b spans every i64); wrapping keeps it exact.
        let span = b.wrapping_sub(a) as u64;
        let offset = if span == u64::MAX { random_u64()? } else { below(span + 1)? };
        Ok(a.wrapping_add(offset as i64))
    })
}

/// A random element of `range(start, stop, step)` (as in Python), recorded. An empty range or a
/// zero step is an error.
pub fn randrange(start: i64, stop: i64, step: i64) -> impl Future<Output = Result<i64>> + Send + 'static {
    recorded("randrange", Args::new(3).arg(&start).arg(&stop).arg(&step), move || {
        let empty =
            || Error::new(ErrorKind::TaskFailed, format!("randrange({start}, {stop}, {step}): the range is empty"));
        let count: u128 = match step {
            0 => {
                return Err(Error::new(
                    ErrorKind::TaskFailed,
                    format!("randrange({start}, {stop}, {step}): the step cannot be zero"),
                ));
            }
            s if s > 0 && stop > start => {
                (i128::from(stop) - i128::from(start) + i128::from(s) - 1) as u128 / s as u128
            }
            s if s < 0 && stop < start => {
                (i128::from(start) - i128::from(stop) - i128::from(s) - 1) as u128 / s.unsigned_abs() as u128
            }
            _ => return Err(empty()),
        };
        let count = u64::try_from(count).map_err(|_| empty())?;
        let k = below(count)?;
        Ok((i128::from(start) + i128::from(k) * i128::from(step)) as i64)
    })
}

/// A random element of `items`, recorded. An empty list is an error.
pub fn choice<T>(items: Vec<T>) -> impl Future<Output = Result<T>> + Send + 'static
where
    T: Storable + Send + 'static,
{
    let args = Args::new(1).arg(&items);
    recorded("choice", args, move || {
        let mut items = items;
        if items.is_empty() {
            return Err(Error::new(ErrorKind::TaskFailed, "choice from an empty list"));
        }
        let i = below(items.len() as u64)? as usize;
        Ok(items.swap_remove(i))
    })
}

/// Waits `duration`, durably: the wait is a task whose start is recorded, so a replay after a
/// crash waits only what is left (and not at all once it has passed). Cancelling the execution
/// ends the wait.
///
/// Outside a workflow it is a plain sleep.
pub async fn sleep(duration: Duration) -> Result<()> {
    let Some(run) = run::current() else {
        tokio::time::sleep(duration).await;
        return Ok(());
    };
    let args: Arc<[u8]> = Args::new(1).arg(&duration.as_secs_f64()).finish()?.into();
    let name: Arc<str> = Arc::from("sleep");
    let wake = match run.lookup(crate::identity::task_id_text(&name, &args).as_str()).1 {
        Lookup::Recorded(task_id, event) => {
            return match event.kind() {
                EventType::TaskCompleted => Ok(()),
                _ => Err(event.value::<Error>().unwrap_or_else(|e| {
                    Error::new(ErrorKind::TaskFailed, format!("`{task_id}` failed")).with_cause(e.to_string())
                })),
            };
        }
        Lookup::Fresh(task_id) => {
            if run.is_cancelled() {
                return Err(run::cancelled_error(&task_id));
            }
            if run::is_replay_only() {
                return Err(run::replay_only_error(&task_id));
            }
            run.check_new_call(&task_id, &name)?;
            // The start must be durable before the wait: the wake time is counted from it.
            run.record_durable([Source::new(&task_id, &name).entry(EventType::TaskStarted, args)], None).await?;
            (task_id, tokio::time::Instant::now() + duration)
        }
        Lookup::Restart(task_id, _) => {
            if run::is_replay_only() {
                return Err(run::replay_only_error(&task_id));
            }
            let started = run.started_time(&task_id).unwrap_or_else(SystemTime::now);
            let left = (started + duration).duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
            (task_id, tokio::time::Instant::now() + left)
        }
    };
    let (task_id, wake) = wake;
    if run.or_cancelled(tokio::time::sleep_until(wake)).await.is_none() {
        let error = run::cancelled_error(&task_id);
        let failure = value::to_msgpack(&CancelledValue { error: &error })?;
        run.record_durable([Source::new(&task_id, &name).entry(EventType::TaskCancelled, failure.into())], None)
            .await?;
        return Err(error);
    }
    run.record_durable([Source::new(&task_id, &name).entry(EventType::TaskCompleted, Arc::from(NIL))], None).await?;
    Ok(())
}

#[derive(serde::Serialize)]
struct CancelledValue<'a> {
    error: &'a Error,
}

/// Pauses the execution at the pause named `name` until it is resumed with a `T`:
/// `let ok: Approval = flux::pause("approve").await?`.
///
/// The first run records `TASK_STARTED`, `TASK_PAUSED` and `WORKFLOW_PAUSED`, stores the
/// execution as `PAUSED` and `run` returns it. `workflow.resume(id, value)` replays the body to
/// this point, where `pause` returns `value` (recorded: later replays return it too).
pub async fn pause<T: Storable>(name: &str) -> Result<T> {
    pause_with::<T, ()>(name, ()).await
}

/// Like [`pause`], exposing `output` while paused (see `Execution::pause_output`).
pub async fn pause_with<T: Storable, U: Storable>(name: &str, output: U) -> Result<T> {
    let Some(run) = run::current() else {
        return Err(Error::new(ErrorKind::InvalidState, format!("pause `{name}` is only possible inside a workflow")));
    };
    let args: Arc<[u8]> = Args::new(1).arg_str(name).finish()?.into();
    let task_name: Arc<str> = Arc::from("pause");
    let (task_id, fresh) = match run.lookup(crate::identity::task_id_text(&task_name, &args).as_str()).1 {
        Lookup::Recorded(task_id, event) => {
            return match event.kind() {
                EventType::TaskCompleted => event.value::<T>().map_err(|e| {
                    Error::new(
                        ErrorKind::Decode,
                        format!(
                            "the recorded resume input of pause `{name}` does not fit `{}`",
                            std::any::type_name::<T>()
                        ),
                    )
                    .with_task_id(&*task_id)
                    .with_cause(e.message().to_string())
                }),
                _ => Err(event.value::<Error>().unwrap_or_else(|e| {
                    Error::new(ErrorKind::TaskFailed, format!("pause `{name}` failed")).with_cause(e.to_string())
                })),
            };
        }
        Lookup::Fresh(task_id) => (task_id, true),
        Lookup::Restart(task_id, _) if run::is_replay_only() => {
            return Err(run::replay_only_error(&task_id));
        }
        Lookup::Restart(task_id, _) => match run.take_resume_input() {
            Some(input) => return resumed(&run, &task_id, &task_name, name, input).await,
            None => (task_id, false),
        },
    };
    if run.is_cancelled() {
        return Err(run::cancelled_error(&task_id));
    }
    if run::is_replay_only() {
        return Err(run::replay_only_error(&task_id));
    }
    if fresh {
        run.check_new_call(&task_id, &task_name)?;
    }
    let output: Arc<[u8]> = value::to_msgpack(&output)
        .map_err(|e| {
            Error::new(ErrorKind::Encode, format!("the output of pause `{name}` cannot be encoded"))
                .with_cause(e.message().to_string())
        })?
        .into();
    run.request_stop(Stop::Pause(PauseRequest {
        task_id: task_id.clone(),
        task_name,
        args,
        name: name.to_string(),
        output,
        fresh,
    }));
    // The driver stops the body here; only a cancellation ends this wait.
    run.or_cancelled(std::future::pending::<()>()).await;
    Err(run::cancelled_error(&task_id))
}

/// The pause the body stopped at, reached again by `resume` with `input`.
async fn resumed<T: Storable>(
    run: &RunState,
    task_id: &Arc<str>,
    task_name: &Arc<str>,
    name: &str,
    input: Arc<[u8]>,
) -> Result<T> {
    let value = match value::from_msgpack::<T>(&input) {
        Ok(value) => value,
        Err(e) => {
            let error = Error::new(
                ErrorKind::Decode,
                format!(
                    "the resume input does not fit `{}`, the type pause `{name}` of execution `{}` expects; the \
                     execution stays PAUSED",
                    std::any::type_name::<T>(),
                    run.execution_id
                ),
            )
            .with_cause(e.message().to_string());
            run.request_stop(Stop::Rejected(error.clone()));
            run.or_cancelled(std::future::pending::<()>()).await;
            return Err(error);
        }
    };
    // `{name, input}`, the input spliced in as encoded.
    let mut task_resumed = Vec::with_capacity(24 + name.len() + input.len());
    let _ = rmp::encode::write_map_len(&mut task_resumed, 2);
    value::append_str(&mut task_resumed, "name");
    value::append_str(&mut task_resumed, name);
    value::append_str(&mut task_resumed, "input");
    task_resumed.extend_from_slice(&input);
    let set_state = Write::set_state(run.execution_id.clone(), ExecutionState::Running, None);
    let (workflow, task) = (run.workflow(), Source::new(task_id, task_name));
    let events = [
        workflow.entry(EventType::WorkflowResuming, input.clone()),
        workflow.entry(EventType::WorkflowResumed, value::to_msgpack(&name)?.into()),
        task.entry(EventType::TaskResumed, task_resumed.into()),
        task.entry(EventType::TaskCompleted, input),
    ];
    run.record_durable(events, [set_state]).await?;
    Ok(value)
}

/// Sends `value` to whoever streams the execution, as an ephemeral `TASK_PROGRESS` event of the
/// running task (`workflow.stream(..)`, or SSE in server mode). It is never stored or replayed,
/// never blocks, and costs nothing when nobody listens; a listener more than
/// [`crate::limits::PROGRESS_QUEUE`] events behind misses the newest ones.
pub async fn progress<T: serde::Serialize>(value: T) {
    let Some(run) = run::current() else {
        return;
    };
    let (source, name) =
        run::current_task().unwrap_or_else(|| (run.workflow_source.clone(), run.workflow_name.clone()));
    match value::to_msgpack(&value) {
        Ok(bytes) => run.emit_progress(source, name, bytes.into()),
        Err(e) => tracing::debug!(error = %e, "a progress value cannot be encoded; it is dropped"),
    }
}

/// Whether this execution runs the new code of the change named `id`: `if flux::patched("id")
/// { new code } else { old code }`, for changing a workflow while executions of the old code
/// are paused or unfinished (docs: "Determinism and code changes").
///
/// - A new execution, or one whose replay has made every call its log recorded, takes the new
///   path: `patched` returns `true` and records that it did (a task named `patched`, with `id`
///   as its argument), so that its later replays take the new path again.
/// - An execution replayed from a log that goes on past this point without that record ran the
///   old code here: `patched` returns `false` and records nothing, and the old path's calls
///   answer from the log.
///
/// Once no unfinished execution ran the old code, the old path can go; the `patched` call
/// itself can go once no unfinished execution recorded it. Outside a workflow it returns
/// `true`.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::task]
/// async fn charge(cents: u64) -> u64 { cents }
///
/// #[flux::task]
/// async fn charge_with_tax(cents: u64) -> u64 { cents * 108 / 100 }
///
/// #[flux::workflow]
/// async fn checkout(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
///     let cents = *ctx.input();
///     let charged = if flux::patched("tax") { charge_with_tax(cents).await? } else { charge(cents).await? };
///     let _approved: bool = flux::pause("approve").await?;
///     Ok(charged)
/// }
/// ```
pub fn patched(id: &str) -> bool {
    let Some(run) = run::current() else {
        return true;
    };
    let Ok(args) = Args::new(1).arg_str(id).finish() else {
        return true;
    };
    let name = "patched";
    match run.lookup_at_end(crate::identity::task_id_text(name, &args).as_str()) {
        (Lookup::Recorded(_, event), _) => event.kind() == EventType::TaskCompleted,
        // Recorded with its outcome in one batch: a start alone is not a log this makes.
        (Lookup::Restart(..), _) => true,
        (Lookup::Fresh(_), false) => false,
        (Lookup::Fresh(task_id), true) => {
            let name = run.shared_name(name);
            let source = Source::new(&task_id, &name);
            let value = value::to_msgpack(&true).map(Arc::from).unwrap_or_else(|_| Arc::from(&[0xc3][..]));
            // A write refused here (the run is stopping) is reported by the run's end.
            let _ = run.defer(
                [source.entry(EventType::TaskStarted, args.into()), source.entry(EventType::TaskCompleted, value)],
                None,
            );
            true
        }
    }
}
