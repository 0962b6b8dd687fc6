//! Inline steps: [`step`] and [`step_with`] record a block of code as a task, for work that does
//! not deserve a `#[flux::task]` function of its own.
//!
//! A step named `"charge_card"` is the task a `#[flux::task(name = "charge_card")]` function
//! without parameters would be: the same id (`charge_card_<16 hex digits>`, with `~n` when the
//! name repeats in one execution), the same events, the same replay (a recorded result is
//! returned without running the block), and the same options (retries, timeout, cache, fallback
//! excepted). What the block captures is not part of the id: give steps that differ by their
//! data different names (`format!("charge_{order}")`).

use std::borrow::Cow;
use std::future::Future;

use crate::error::{Error, ErrorKind, Result};
use crate::task::{Args, BoxFuture, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};
use crate::value::Storable;

/// What a step runs: a future (one attempt), or a closure that makes a future for every
/// attempt, which a step with retries needs. Either resolves to a `Result` whose error is a
/// `std::error::Error` (a [`flux::Error`](crate::Error) is kept as it is; another error keeps its
/// message, chain of sources and type name, and is retried unless it is terminal).
///
/// The type parameter `M` only tells the two kinds apart; it is inferred.
pub trait StepBody<M>: Send + 'static {
    /// What the step gives when it succeeds.
    type Output: Storable + Send + 'static;

    /// The attempts of this body.
    #[doc(hidden)]
    fn into_attempts(self) -> Attempts<Self::Output>;
}

/// Tells a future apart as a [`StepBody`].
#[doc(hidden)]
pub struct OneFuture;

/// Tells a closure making futures apart as a [`StepBody`].
#[doc(hidden)]
pub struct FutureMaker;

/// The attempts of a step: one future, or a maker of one per attempt.
#[doc(hidden)]
pub struct Attempts<T> {
    once: Option<BoxFuture<Result<T>>>,
    maker: Option<Box<dyn FnMut() -> BoxFuture<Result<T>> + Send>>,
}

impl<T> Attempts<T> {
    /// Whether each attempt runs afresh (a closure), so that the step can be retried.
    fn repeats(&self) -> bool {
        self.maker.is_some()
    }

    /// The next attempt's future, or the error of a future asked to run a second time.
    fn next(&mut self, name: &str) -> Result<BoxFuture<Result<T>>> {
        if let Some(maker) = &mut self.maker {
            return Ok(maker());
        }
        self.once.take().ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "step `{name}` was given a future, which runs once; to retry it, give the step a closure \
                     that makes the future (`|| async {{ .. }}`)"
                ),
            )
        })
    }
}

/// A step's error, made a [`flux::Error`](crate::Error).
fn step_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> Error {
    match (&error as &dyn std::any::Any).downcast_ref::<Error>() {
        Some(error) => error.clone(),
        None => Error::from_std(ErrorKind::TaskFailed, &error).with_type_name(std::any::type_name::<E>()),
    }
}

impl<F, T, E> StepBody<OneFuture> for F
where
    F: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Storable + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    type Output = T;

    fn into_attempts(self) -> Attempts<T> {
        Attempts { once: Some(Box::pin(async move { self.await.map_err(step_error) })), maker: None }
    }
}

impl<C, F, T, E> StepBody<FutureMaker> for C
where
    C: FnMut() -> F + Send + 'static,
    F: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Storable + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    type Output = T;

    fn into_attempts(mut self) -> Attempts<T> {
        let maker = move || -> BoxFuture<Result<T>> {
            let attempt = self();
            Box::pin(async move { attempt.await.map_err(step_error) })
        };
        Attempts { once: None, maker: Some(Box::new(maker)) }
    }
}

/// Runs `body` as a durable step named `name`: inside a workflow it is recorded as the task
/// `name` (`TASK_STARTED`, then `TASK_COMPLETED` or `TASK_FAILED`) and a replay returns the
/// recorded result without running it; outside a workflow it simply runs.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::workflow]
/// async fn checkout(ctx: ExecutionContext<u64>) -> flux::Result<String> {
///     let cents = *ctx.input();
///     let receipt = flux::step("charge_card", async move {
///         // Anything here runs once; a replay gets the recorded receipt.
///         Ok::<_, std::io::Error>(format!("charged {cents} cents"))
///     })
///     .await?;
///     Ok(receipt)
/// }
/// ```
pub fn step<M, B: StepBody<M>>(name: &str, body: B) -> impl Future<Output = Result<B::Output>> + Send + 'static {
    step_with(name, TaskOptions::new(), body)
}

/// [`step`] with task options: retries (give a closure that makes the future, so that each
/// attempt runs afresh), a timeout per attempt, the result cache.
///
/// ```
/// use std::time::Duration;
/// use flux::prelude::*;
///
/// #[flux::workflow]
/// async fn fetch(ctx: ExecutionContext<String>) -> flux::Result<usize> {
///     let url = ctx.input().clone();
///     let options = flux::TaskOptions::new().retry_max_attempts(3).timeout(Duration::from_secs(10));
///     flux::step_with("fetch_page", options, move || {
///         let url = url.clone();
///         async move { Ok::<_, std::io::Error>(url.len()) }
///     })
///     .await
/// }
/// ```
pub fn step_with<M, B: StepBody<M>>(
    name: &str,
    options: TaskOptions,
    body: B,
) -> impl Future<Output = Result<B::Output>> + Send + 'static {
    let call = TaskCall::begin(Cow::Owned(name.to_string()), || (name, Args::new(0)));
    let mut attempts = body.into_attempts();
    let name = name.to_string();
    async move {
        if options.retry_max_attempts > 0 && !attempts.repeats() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "step `{name}` has retries but was given a future, which runs once; give it a closure that \
                     makes the future (`|| async {{ .. }}`)"
                ),
            ));
        }
        let attempt = move |_: &Call<'_>| attempts.next(&name);
        let handlers = Handlers { fallback: None::<NoHandler<B::Output>>, rollback: None::<NoHandler<()>> };
        call.run(codec::<B::Output>(), &options, attempt, handlers).await
    }
}
