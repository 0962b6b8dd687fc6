//! Composition (docs/design.md §6): [`parallel`], `task::map`, [`macro@crate::parallel`],
//! [`macro@crate::pipeline`] (and [`crate::Graph`]) are tasks themselves: their `TASK_STARTED` and
//! `TASK_COMPLETED` wrap the events of the calls they make.
//!
//! A group whose outcome is recorded returns that outcome on replay. Its calls are still made
//! (each answers from the log without running), so that the occurrence numbers of later calls
//! (`~n`) are the same as in the first run.

use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::StreamExt as _;

use crate::error::{Error, ErrorKind, Result};
use crate::event::EventType;
use crate::run::{self, Lookup, Source};
use crate::task::{Args, BoxFuture, Codec, codec};
use crate::value::{self, Storable};

/// Runs `body` as the task `name` (with recorded arguments `args`): `TASK_STARTED` before it,
/// its outcome after it. Outside a workflow, `body` simply runs.
pub(crate) async fn composite<T, F>(name: &str, args: Args, codec: Codec<T>, body: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let Some(run) = run::current() else {
        return body.await;
    };
    let args: Arc<[u8]> = args.finish()?.into();
    let name: Arc<str> = Arc::from(name);
    // Boxed: a group's future would otherwise hold its body inline, and groups nested in groups
    // would grow geometrically (megabytes of stack at a few levels).
    let body = Box::pin(AssertUnwindSafe(body).catch_unwind());
    let settle = |r: std::result::Result<Result<T>, Box<dyn std::any::Any + Send>>| {
        r.unwrap_or_else(|panic| Err(Error::from_panic(panic)))
    };
    let task_id = match run.lookup(crate::identity::task_id_text(&name, &args).as_str()).1 {
        Lookup::Recorded(task_id, event) => {
            // Make the group's calls again, in replay-only mode, so that they take their
            // occurrence numbers; their outcome is the recorded one.
            let _ = run::replay_only(body).await;
            return match event.kind() {
                EventType::TaskCompleted => {
                    (codec.decode)(&run.engine().resolve_output(event.value_bytes())?).map_err(|e| {
                        Error::new(
                            ErrorKind::Decode,
                            format!("the recorded output of `{task_id}` does not fit `{}`", std::any::type_name::<T>()),
                        )
                        .with_task_id(&*task_id)
                        .with_cause(e.to_string())
                    })
                }
                _ => Err(event.value::<Error>().unwrap_or_else(|e| {
                    Error::new(ErrorKind::TaskFailed, format!("`{task_id}` failed (its recorded error cannot be read)"))
                        .with_task_id(&*task_id)
                        .with_cause(e.to_string())
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
            run.defer([Source::new(&task_id, &name).entry(EventType::TaskStarted, args)], None)?;
            task_id
        }
        Lookup::Restart(task_id, _) => {
            if run::is_replay_only() {
                return Err(run::replay_only_error(&task_id));
            }
            task_id
        }
    };
    let outcome = settle(body.await);
    let (kind, recorded) = match &outcome {
        Ok(output) => match (codec.encode)(output) {
            Ok(bytes) => (EventType::TaskCompleted, bytes),
            Err(e) => {
                let e = Error::new(ErrorKind::Encode, format!("the output of `{task_id}` cannot be encoded"))
                    .with_task_id(&*task_id)
                    .with_cause(e.to_string());
                let bytes = value::to_msgpack(&e)?;
                run.record_durable([Source::new(&task_id, &name).entry(EventType::TaskFailed, bytes.into())], None)
                    .await?;
                return Err(e);
            }
        },
        // Cancelled: the group has no outcome in the log, like the call that was cancelled.
        Err(e) if e.kind() == ErrorKind::Cancelled && run.is_cancelled() => return outcome,
        Err(e) => (EventType::TaskFailed, value::to_msgpack(e)?),
    };
    run.record_durable([Source::new(&task_id, &name).entry(kind, recorded.into())], None).await?;
    outcome
}

/// Runs task calls (or any futures of `flux::Result`) concurrently: `flux::parallel(calls)`.
///
/// (`task::map(items)` is the same group with one call per item, except that a failed item
/// does not cancel the others: every item runs, then the first failure in item order is
/// returned; and that at most 1,024 calls run at once unless `max_concurrency` says otherwise,
/// the items taken from their iterator as places free up.)
///
/// Await it for the outputs in the order given. The first failure (in time) cancels the calls
/// still running and is returned; [`Parallel::all_results`] returns every slot as a `Result`
/// instead. [`Parallel::max_concurrency`] bounds how many run at once. Inside a workflow the
/// group is itself a task named `parallel`, wrapping its calls' events.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::task]
/// async fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[flux::workflow]
/// async fn squares(ctx: ExecutionContext<u64>) -> flux::Result<Vec<u64>> {
///     flux::parallel((1..=*ctx.input()).map(square)).max_concurrency(4).await
/// }
/// ```
pub fn parallel<I>(calls: I) -> Parallel<I::IntoIter>
where
    I: IntoIterator,
{
    Parallel { name: "parallel", label: None, calls: calls.into_iter(), max_concurrency: usize::MAX, fail_fast: true }
}

/// A group of concurrent calls; see [`parallel`].
#[must_use = "a group of calls does nothing until awaited"]
#[derive(Debug)]
pub struct Parallel<I> {
    name: &'static str,
    /// A recorded argument naming the group (the task of a `map`).
    label: Option<&'static str>,
    calls: I,
    max_concurrency: usize,
    /// Whether the first failure cancels the calls still running (`parallel`), or every call
    /// runs to its end before the first failure in item order is returned (`map`).
    fail_fast: bool,
}

impl<I> Parallel<I> {
    /// Runs at most `n` calls at once (at least one).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Waits for every call and returns each outcome, failures included, in order.
    pub fn all_results(self) -> AllResults<I> {
        AllResults(self)
    }

    fn args(&self) -> Args {
        match self.label {
            Some(label) => Args::new(1).arg_str(label),
            None => Args::new(0),
        }
    }
}

/// The group of `task::map(items)`: one call of the task per item.
#[doc(hidden)]
pub fn map<I>(task: &'static str, calls: I) -> Parallel<I::IntoIter>
where
    I: IntoIterator,
{
    Parallel {
        name: "map",
        label: Some(task),
        calls: calls.into_iter(),
        max_concurrency: MAP_CONCURRENCY,
        fail_fast: false,
    }
}

/// How many calls of a `task::map` run at once unless [`Parallel::max_concurrency`] says
/// otherwise. The items are taken from their iterator as places free up, so a map of a million
/// items holds a thousand calls, not a million (each call's future, and its item, live only
/// while it runs).
pub(crate) const MAP_CONCURRENCY: usize = 1024;

impl<I, F, T> IntoFuture for Parallel<I>
where
    I: Iterator<Item = F> + Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
    T: Storable + Send + 'static,
{
    type Output = Result<Vec<T>>;
    type IntoFuture = BoxFuture<Result<Vec<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        let args = self.args();
        let Parallel { name, calls, max_concurrency, fail_fast, .. } = self;
        Box::pin(composite(name, args, codec::<Vec<T>>(), async move {
            let mut slots: Vec<Option<T>> = Vec::new();
            let mut failure: Option<(usize, Error)> = None;
            // Replayed (its outcome recorded), the group must make the very calls its first run
            // made, so that later calls get the same occurrence numbers. A fail-fast first run
            // stopped making calls at its first failure, which a replay may see earlier: so a
            // replay goes on past failures, and stops making calls at the first one its first
            // run never made (which the log does not hold; see `RunState::lookup`).
            let replaying = run::is_replay_only();
            let misses = || run::current().map_or(0, |run| run.replay_only_misses());
            let misses_before = if replaying { misses() } else { 0 };
            let calls = calls.take_while(move |_| !replaying || misses() == misses_before);
            let mut running = futures::stream::iter(calls.enumerate().map(|(i, call)| call.map(move |r| (i, r))))
                .buffer_unordered(max_concurrency);
            while let Some((i, result)) = running.next().await {
                match result {
                    Ok(output) => {
                        if slots.len() <= i {
                            slots.resize_with(i + 1, || None);
                        }
                        slots[i] = Some(output);
                    }
                    // The first failure drops the stream, and with it every call still running.
                    Err(e) if fail_fast && !replaying => return Err(e),
                    Err(e) => {
                        if failure.as_ref().is_none_or(|(first, _)| i < *first) {
                            failure = Some((i, e));
                        }
                    }
                }
            }
            if let Some((_, e)) = failure {
                return Err(e);
            }
            slots
                .into_iter()
                .map(|slot| slot.ok_or_else(|| Error::new(ErrorKind::InvalidState, "a parallel call gave no result")))
                .collect()
        }))
    }
}

/// A group of calls whose every outcome is returned; see [`Parallel::all_results`].
#[must_use = "a group of calls does nothing until awaited"]
#[derive(Debug)]
pub struct AllResults<I>(Parallel<I>);

impl<I> AllResults<I> {
    /// Runs at most `n` calls at once (at least one).
    pub fn max_concurrency(self, n: usize) -> Self {
        AllResults(self.0.max_concurrency(n))
    }
}

impl<I, F, T> IntoFuture for AllResults<I>
where
    I: Iterator<Item = F> + Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
    T: Storable + Send + 'static,
{
    type Output = Result<Vec<Result<T>>>;
    type IntoFuture = BoxFuture<Result<Vec<Result<T>>>>;

    fn into_future(self) -> Self::IntoFuture {
        let args = self.0.args();
        let Parallel { name, calls, max_concurrency, .. } = self.0;
        Box::pin(composite(name, args, codec::<Vec<Result<T>>>(), async move {
            let mut outcomes: Vec<(usize, Result<T>)> =
                futures::stream::iter(calls.enumerate().map(|(i, call)| call.map(move |r| (i, r))))
                    .buffer_unordered(max_concurrency)
                    .collect()
                    .await;
            // A cancelled execution stops the group: the calls' outcomes are not its result.
            if let Some((_, Err(e))) =
                outcomes.iter().find(|(_, r)| matches!(r, Err(e) if e.kind() == ErrorKind::Cancelled))
                && run::current().is_some_and(|run| run.is_cancelled())
            {
                return Err(e.clone());
            }
            outcomes.sort_unstable_by_key(|(i, _)| *i);
            Ok(outcomes.into_iter().map(|(_, r)| r).collect())
        }))
    }
}

/// Runs the group of a `parallel!` or `pipeline!` as a task.
#[doc(hidden)]
pub fn group<T: Storable, F: Future<Output = Result<T>>>(
    name: &'static str,
    body: F,
) -> impl Future<Output = Result<T>> {
    // Boxed here too, so that the group's own future stays small wherever it is nested.
    Box::pin(composite(name, Args::new(0), codec::<T>(), body))
}

/// Waits for a permit of `limit` (if any), then runs `call`.
#[doc(hidden)]
pub async fn limited<F: Future>(limit: Option<&tokio::sync::Semaphore>, call: F) -> F::Output {
    let _permit = match limit {
        Some(limit) => limit.acquire().await.ok(),
        None => None,
    };
    call.await
}

/// Makes the semaphore of `parallel!(max_concurrency = n; ..)`.
#[doc(hidden)]
pub fn semaphore(n: usize) -> tokio::sync::Semaphore {
    tokio::sync::Semaphore::new(n.clamp(1, tokio::sync::Semaphore::MAX_PERMITS))
}

/// Runs task calls of different types concurrently and returns their outputs as a tuple.
///
/// - `flux::parallel!(a(1), b(2))` → `flux::Result<(A, B)>`: the first failure cancels the calls
///   still running and is returned.
/// - `flux::parallel!(all_results; a(1), b(2))` → `flux::Result<(flux::Result<A>, flux::Result<B>)>`:
///   every call runs to its end.
/// - `max_concurrency = n;` (alone or after `all_results,`) bounds how many run at once.
///
/// The calls are made (and get their ids) where the macro is written, in the order written.
/// Inside a workflow the group is a task named `parallel` wrapping its calls' events.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::task]
/// async fn a(x: u32) -> String { format!("a{x}") }
///
/// #[flux::task]
/// async fn b(x: u32) -> u32 { x * 10 }
///
/// #[flux::workflow]
/// async fn both(_ctx: ExecutionContext<()>) -> flux::Result<(String, u32)> {
///     flux::parallel!(a(1), b(2)).await
/// }
/// ```
#[macro_export]
macro_rules! parallel {
    (all_results, max_concurrency = $n:expr; $($call:expr),+ $(,)?) => {
        $crate::__parallel_bind!(@all [::core::option::Option::Some($n)] [] $($call,)+)
    };
    (max_concurrency = $n:expr, all_results; $($call:expr),+ $(,)?) => {
        $crate::__parallel_bind!(@all [::core::option::Option::Some($n)] [] $($call,)+)
    };
    (all_results; $($call:expr),+ $(,)?) => {
        $crate::__parallel_bind!(@all [::core::option::Option::None::<usize>] [] $($call,)+)
    };
    (max_concurrency = $n:expr; $($call:expr),+ $(,)?) => {
        $crate::__parallel_bind!(@first [::core::option::Option::Some($n)] [] $($call,)+)
    };
    ($($call:expr),+ $(,)?) => {
        $crate::__parallel_bind!(@first [::core::option::Option::None::<usize>] [] $($call,)+)
    };
}

/// Binds each call of `parallel!` to its own local (each expansion step makes a distinct
/// hygienic `call`), then joins them.
#[doc(hidden)]
#[macro_export]
macro_rules! __parallel_bind {
    (@$mode:ident [$limit:expr] [$($bound:ident)*] $head:expr, $($rest:expr,)*) => {{
        let call = $head;
        $crate::__parallel_bind!(@$mode [$limit] [$($bound)* call] $($rest,)*)
    }};
    (@first [$limit:expr] [$($bound:ident)*]) => {
        $crate::__private::group("parallel", async move {
            let limit = ($limit).map($crate::__private::semaphore);
            $crate::__private::tokio::try_join!($($crate::__private::limited(limit.as_ref(), $bound)),*)
        })
    };
    (@all [$limit:expr] [$($bound:ident)*]) => {
        $crate::__private::group("parallel", async move {
            let limit = ($limit).map($crate::__private::semaphore);
            ::core::result::Result::Ok::<_, $crate::Error>(
                $crate::__private::tokio::join!($($crate::__private::limited(limit.as_ref(), $bound)),*)
            )
        })
    };
}

/// Feeds a value through tasks one after the other: each output is the next task's input.
///
/// `flux::pipeline!(2 => times_two, add_three, square)` awaits `times_two(2)`, then `add_three`
/// of its output, then `square` of that, and returns the last output (a `flux::Result`). A
/// failure stops the pipeline and is returned. Inside a workflow the pipeline is a task named
/// `pipeline` wrapping its calls' events.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::task]
/// async fn times_two(x: i64) -> i64 { x * 2 }
///
/// #[flux::task]
/// async fn add_three(x: i64) -> i64 { x + 3 }
///
/// #[flux::workflow]
/// async fn calc(ctx: ExecutionContext<i64>) -> flux::Result<i64> {
///     flux::pipeline!(*ctx.input() => times_two, add_three).await
/// }
/// ```
#[macro_export]
macro_rules! pipeline {
    ($input:expr => $($stage:expr),+ $(,)?) => {{
        let value = $input;
        $crate::__private::group("pipeline", async move {
            $( let value = ($stage)(value).await?; )+
            ::core::result::Result::Ok::<_, $crate::Error>(value)
        })
    }};
}
