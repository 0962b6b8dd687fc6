//! The error chain of one call (docs/design.md §5): attempts with retries and timeouts, then the
//! fallback or the rollback, each step recorded in order. A call restarted after a crash continues
//! from the [`RecordedChain`] its log shows instead of beginning again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{Call, Codec, Handlers, MAX_RETRY_DELAY, Step, TaskOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::event::EventType;
use crate::run::{self, RecordedChain, RunState, Source};
use crate::store::Write;
use crate::value;

#[derive(Serialize)]
struct RetryFailed {
    current_attempt: u32,
    max_attempts: u32,
    error: Error,
}

#[derive(Serialize)]
struct RetryStarted {
    current_attempt: u32,
    max_attempts: u32,
    current_delay: f64,
    backoff: f64,
}

#[derive(Serialize)]
struct Failure<'a> {
    error: &'a Error,
}

/// The `error` field of a recorded failure event.
#[derive(Deserialize)]
struct RecordedFailure {
    error: Error,
}

/// A map of `fields` followed by `output`, whose encoding is spliced in as it is.
fn with_output(fields: &[(&str, u32)], output: &[u8]) -> Arc<[u8]> {
    let mut buf = Vec::with_capacity(16 + 20 * fields.len() + output.len());
    let _ = rmp::encode::write_map_len(&mut buf, u32::try_from(fields.len() + 1).unwrap_or(u32::MAX));
    for (key, n) in fields {
        value::append_str(&mut buf, key);
        let _ = rmp::encode::write_uint(&mut buf, u64::from(*n));
    }
    value::append_str(&mut buf, "output");
    buf.extend_from_slice(output);
    buf.into()
}

/// One call being executed.
pub(super) struct Chain<'a, T> {
    pub(super) run: &'a RunState,
    /// The task's declared name (its template), which names its cache entries.
    pub(super) task: &'a str,
    /// The call's id without `~n`: the key of its cache entry.
    pub(super) base: &'a Arc<str>,
    pub(super) task_id: &'a Arc<str>,
    pub(super) name: &'a Arc<str>,
    pub(super) call: Call<'a>,
    pub(super) codec: Codec<T>,
    pub(super) options: &'a TaskOptions,
}

/// How a finished call ends: the step that finished it (if any) and the call's final event are
/// stored in one transaction, so that a restart never sees one without the other.
enum Finish {
    /// `TASK_COMPLETED`, after the step event (`TASK_RETRY_COMPLETED`, `TASK_FALLBACK_COMPLETED`).
    Completed { step: Option<(EventType, Arc<[u8]>)>, output: Arc<[u8]>, cache: bool },
    /// `TASK_FAILED`, after the step event (`TASK_FALLBACK_FAILED`, `TASK_ROLLBACK_*`).
    Failed { step: Option<(EventType, Arc<[u8]>)>, error: Error },
}

impl<T> Chain<'_, T> {
    /// This call as the source of its events.
    fn source(&self) -> Source<'_> {
        Source::new(self.task_id, self.name)
    }

    /// Records a step of the chain that nothing waits for (it shares a later commit).
    fn defer(&self, kind: EventType, value: Arc<[u8]>) -> Result<()> {
        self.run.defer([self.source().entry(kind, value)], None)
    }

    fn defer_value(&self, kind: EventType, value: &impl Serialize) -> Result<()> {
        self.defer(kind, value::to_msgpack(value)?.into())
    }

    /// Encodes the output as it is recorded: inline, or a reference to where the output
    /// storage keeps it. The outer error stops the run (the output storage failed: nothing is
    /// recorded and the execution can be replayed); the inner one fails the attempt (the output
    /// cannot be encoded).
    fn encode_output(&self, output: &T) -> Result<std::result::Result<Arc<[u8]>, Error>> {
        let bytes = match (self.codec.encode)(output) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Ok(Err(Error::new(
                    ErrorKind::Encode,
                    format!("the output of task `{}` cannot be encoded", self.task_id),
                )
                .with_cause(e.to_string())
                .with_task_id(&**self.task_id)));
            }
        };
        match &self.options.output_storage {
            None => Ok(Ok(bytes.into())),
            Some(storage) => match self.run.engine().store_output(storage, &bytes) {
                Ok(reference) => Ok(Ok(reference.into())),
                Err(e) => Err(self.run.abort(e)),
            },
        }
    }

    /// Records how the call ended and waits until it is durable.
    async fn finish(&self, finish: Finish) -> Result<()> {
        let (step, last, extra) = match finish {
            Finish::Completed { step, output, cache } => {
                let entry = (cache && self.options.cache).then(|| Write::CachePut {
                    key: self.base.clone(),
                    task_name: Arc::from(self.task),
                    value: output.clone(),
                    expires_at: self.options.cache_ttl.map(|ttl| SystemTime::now() + ttl),
                });
                (step, (EventType::TaskCompleted, output), entry)
            }
            Finish::Failed { step, error } => (step, (EventType::TaskFailed, value::to_msgpack(&error)?.into()), None),
        };
        let source = self.source();
        let entries = step.into_iter().chain([last]).map(|(kind, value)| source.entry(kind, value));
        // In the `batched` mode the result is handed back before its commit (bounded by
        // `BATCH_EVENTS`); otherwise only once it is durable.
        if self.run.batched() {
            self.run.defer(entries, extra)?;
            self.run.bounded().await
        } else {
            self.run.record_durable(entries, extra).await
        }
    }

    /// A valid cached result of this call, if the task is cached and one exists.
    fn cached(&self) -> Result<Option<(T, Arc<[u8]>)>> {
        if !self.options.cache {
            return Ok(None);
        }
        let engine = self.run.engine();
        let Some(bytes) = engine.store().cache_get(self.base, SystemTime::now())? else {
            return Ok(None);
        };
        // An entry that no longer fits the output type (the task changed), or whose stored output
        // is gone, is ignored and replaced.
        let value = engine.resolve_output(&bytes).ok().and_then(|v| (self.codec.decode)(&v).ok());
        Ok(value.map(|v| (v, Arc::from(bytes))))
    }

    /// The error of the last failed attempt, as the log recorded it.
    fn recorded_failure(&self, recorded: &RecordedChain) -> Error {
        recorded
            .last_failure
            .and_then(|i| self.run.event(i))
            .and_then(|e| e.value::<RecordedFailure>().ok())
            .map(|r| r.error)
            .unwrap_or_else(|| {
                Error::new(ErrorKind::TaskFailed, format!("task `{}` failed before its process stopped", self.task_id))
                    .with_task_id(&**self.task_id)
            })
    }

    pub(super) async fn execute<A: Step<T>, B: Step<T>, C: Step<()>>(
        &self,
        recorded: RecordedChain,
        attempt: &mut A,
        handlers: Handlers<B, C>,
    ) -> Result<T> {
        let options = self.options;
        let Handlers { fallback, mut rollback } = handlers;
        if recorded == RecordedChain::default()
            && let Some((output, bytes)) = self.cached()?
        {
            self.finish(Finish::Completed { step: None, output: bytes, cache: false }).await?;
            return Ok(output);
        }
        let max = options.retry_max_attempts;
        let mut k = recorded.failed_attempts;
        let resumed_failure = recorded.fallback_started || recorded.rollback_started || k > max;
        // The wait the last failure asked for (`Error::retry_after`), if longer than the options'.
        let mut asked: Option<Duration> = None;
        // The span of the last attempt: a fallback or rollback that follows is an event of it.
        let mut last = tracing::Span::none();
        let failure = if resumed_failure {
            self.recorded_failure(&recorded)
        } else {
            loop {
                if k > 0 && recorded.started_retries < k {
                    let delay = match asked.take() {
                        Some(wait) => options.delay_before(k).max(wait.min(MAX_RETRY_DELAY)),
                        None => options.delay_before(k),
                    };
                    if self.run.or_cancelled(tokio::time::sleep(delay)).await.is_none() {
                        return self.cancelled(rollback.take()).await;
                    }
                    let started = RetryStarted {
                        current_attempt: k,
                        max_attempts: max,
                        current_delay: delay.as_secs_f64(),
                        backoff: options.retry_backoff,
                    };
                    self.defer_value(EventType::TaskRetryStarted, &started)?;
                }
                // A task with a `max_concurrency` waits for a place among the engine's attempts of
                // it, held for this attempt.
                let place = match options.max_concurrency {
                    Some(n) => {
                        let turn = self.run.engine().task_limiter(self.task, n).enter().turn();
                        match self.run.or_cancelled(turn).await {
                            None => return self.cancelled(rollback.take()).await,
                            Some(admission) => admission.map(|a| a.permit()),
                        }
                    }
                    None => None,
                };
                let span = tracing::info_span!(
                    parent: &self.run.span,
                    "flux.task.execute",
                    flux.task.name = &**self.name,
                    flux.task.id = &**self.task_id,
                    flux.task.attempt = k + 1,
                    flux.workflow.name = &*self.run.workflow_name,
                    flux.execution.id = &*self.run.execution_id,
                    otel.status_code = tracing::field::Empty,
                );
                last = span.clone();
                let running = run::in_task(
                    self.task_id,
                    self.name,
                    guarded(self.task_id, options.timeout, attempt.start(&self.call)),
                )
                .instrument(span.clone());
                let metrics = self.run.engine().metrics();
                let began = metrics.enabled().then(std::time::Instant::now);
                let outcome = self.run.or_cancelled(running).await;
                drop(place);
                let Some(outcome) = outcome else {
                    return self.cancelled(rollback.take()).await;
                };
                let outcome = match outcome {
                    Ok(output) => self.encode_output(&output)?.map(|bytes| (output, bytes)),
                    Err(error) => Err(error),
                };
                if let Some(began) = began {
                    metrics.attempt(self.name, Some(began.elapsed()), outcome.is_err());
                }
                if let Err(error) = &outcome {
                    span.record("otel.status_code", "error");
                    tracing::info!(parent: &span, error = %error, "flux.task.failed");
                }
                match outcome {
                    Ok((output, bytes)) => {
                        let step = (k > 0).then(|| {
                            (
                                EventType::TaskRetryCompleted,
                                with_output(&[("current_attempt", k), ("max_attempts", max)], &bytes),
                            )
                        });
                        self.finish(Finish::Completed { step, output: bytes, cache: true }).await?;
                        return Ok(output);
                    }
                    // A terminal error is final: no retry, straight to the fallback or rollback.
                    Err(error) if error.is_terminal() => break error,
                    Err(error) => {
                        asked = error.retry_after();
                        if max > 0 {
                            let failed = RetryFailed { current_attempt: k, max_attempts: max, error };
                            self.defer_value(EventType::TaskRetryFailed, &failed)?;
                            if k >= max {
                                break failed.error;
                            }
                        } else {
                            break error;
                        }
                        tracing::info!(parent: &span, flux.task.next_attempt = k + 2, "flux.task.retry");
                        k += 1;
                    }
                }
            }
        };

        if let Some(mut fallback) = fallback {
            if !recorded.fallback_started {
                self.defer_value(EventType::TaskFallbackStarted, &Failure { error: &failure })?;
            }
            tracing::info!(parent: &last, "flux.task.fallback");
            let running =
                run::in_task(self.task_id, self.name, guarded(self.task_id, None, fallback.start(&self.call)))
                    .instrument(last.clone());
            let Some(outcome) = self.run.or_cancelled(running).await else {
                return self.cancelled(rollback.take()).await;
            };
            let outcome = match outcome {
                Ok(output) => self.encode_output(&output)?.map(|bytes| (output, bytes)),
                Err(error) => Err(error),
            };
            return match outcome {
                Ok((output, bytes)) => {
                    // A fallback's output is the call's, but not the task's: it is not cached.
                    let step = Some((EventType::TaskFallbackCompleted, with_output(&[], &bytes)));
                    self.finish(Finish::Completed { step, output: bytes, cache: false }).await?;
                    Ok(output)
                }
                Err(error) => {
                    let step =
                        Some((EventType::TaskFallbackFailed, value::to_msgpack(&Failure { error: &error })?.into()));
                    let error = failure.with_cause(format!("fallback failed: {}", plain(&error)));
                    self.finish(Finish::Failed { step, error: error.clone() }).await?;
                    Err(error)
                }
            };
        }
        let mut failure = failure;
        let mut step = None;
        if let Some(mut rollback) = rollback {
            if !recorded.rollback_started {
                self.defer_value(EventType::TaskRollbackStarted, &Failure { error: &failure })?;
            }
            tracing::info!(parent: &last, "flux.task.rollback");
            step = Some(match guarded(self.task_id, None, rollback.start(&self.call)).await {
                Ok(()) => (EventType::TaskRollbackCompleted, value::to_msgpack(&())?.into()),
                Err(error) => {
                    let recorded = value::to_msgpack(&Failure { error: &error })?.into();
                    failure = failure.with_cause(format!("rollback failed: {}", plain(&error)));
                    (EventType::TaskRollbackFailed, recorded)
                }
            });
        }
        self.finish(Finish::Failed { step, error: failure.clone() }).await?;
        Err(failure)
    }

    /// The execution is being cancelled while this call runs: `TASK_CANCELLED`, then the
    /// rollback (if any, bounded by [`ROLLBACK_LIMIT`]) with its events; retries and fallback are
    /// skipped. The call has no outcome in the log, so a replay would run it again.
    async fn cancelled<C: Step<()>>(&self, rollback: Option<C>) -> Result<T> {
        let error = run::cancelled_error(self.task_id);
        let failure = value::to_msgpack(&Failure { error: &error })?;
        let commit = match rollback {
            None => self.run.record([self.source().entry(EventType::TaskCancelled, failure.into())], None)?,
            Some(mut rollback) => {
                self.defer(EventType::TaskCancelled, failure.clone().into())?;
                self.defer(EventType::TaskRollbackStarted, failure.into())?;
                let step = match guarded(self.task_id, Some(ROLLBACK_LIMIT), rollback.start(&self.call)).await {
                    Ok(()) => (EventType::TaskRollbackCompleted, value::to_msgpack(&())?.into()),
                    Err(error) => {
                        (EventType::TaskRollbackFailed, value::to_msgpack(&Failure { error: &error })?.into())
                    }
                };
                self.run.record([self.source().entry(step.0, step.1)], None)?
            }
        };
        self.run.durable(commit).await?;
        Err(error)
    }
}

/// How long the rollback of a cancelled task may run.
pub const ROLLBACK_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// An error's message and causes, without the "task `id` failed" prefix of its `Display`.
fn plain(error: &Error) -> String {
    std::iter::once(error.message()).chain(error.chain().iter().map(String::as_str)).collect::<Vec<_>>().join(": ")
}

/// Runs one attempt (or fallback, or rollback): panics become errors, a timeout drops it, and
/// errors are tagged with the task id.
async fn guarded<T, F>(task_id: &str, timeout: Option<std::time::Duration>, made: Result<F>) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let fut = AssertUnwindSafe(made.map_err(|e| e.with_task_id(task_id))?).catch_unwind();
    let outcome = match timeout.filter(|limit| !limit.is_zero()) {
        None => fut.await,
        Some(limit) => match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::TaskTimeout,
                    format!("task `{task_id}` timed out after {}", humantime::format_duration(limit)),
                )
                .with_task_id(task_id));
            }
        },
    };
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.task_id().is_some() => Err(e),
        Ok(Err(e)) => Err(e.with_task_id(task_id)),
        Err(panic) => Err(Error::from_panic(panic).with_task_id(task_id)),
    }
}
