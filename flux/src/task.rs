//! The task call path: identity and replay lookup, then attempts (retry, timeout), then the
//! record of the outcome.
//!
//! Generated code calls [`TaskCall::begin`] when the task function is *called* (so ids follow
//! call order even in concurrent groups) and [`TaskCall::run`] when the returned future is
//! awaited.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use serde::Serialize;

use crate::context::{self, Lookup, RunState};
use crate::error::{Error, ErrorKind, Result};
use crate::event::EventType;
use crate::value::{self, Storable};

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// How a task is retried and bounded. Set with `#[flux::task(...)]`.
///
/// ```
/// use std::time::Duration;
/// let options = flux::TaskOptions::new()
///     .retry_max_attempts(3)
///     .retry_delay(Duration::from_millis(100))
///     .timeout(Duration::from_secs(30));
/// assert_eq!(options.retry_backoff, 2.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TaskOptions {
    /// Extra attempts after the first (default 0).
    pub retry_max_attempts: u32,
    /// Wait before the first retry (default 1 s).
    pub retry_delay: Duration,
    /// Multiplier applied to the delay after each failed retry (default 2).
    pub retry_backoff: f64,
    /// Limit for each attempt; `None` (or zero) waits forever (default).
    pub timeout: Option<Duration>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions::new()
    }
}

impl TaskOptions {
    /// The defaults: no retry, 1 s first delay, backoff 2, no timeout.
    pub const fn new() -> Self {
        TaskOptions { retry_max_attempts: 0, retry_delay: Duration::from_secs(1), retry_backoff: 2.0, timeout: None }
    }

    /// Sets the number of extra attempts.
    pub const fn retry_max_attempts(mut self, n: u32) -> Self {
        self.retry_max_attempts = n;
        self
    }

    /// Sets the first delay between attempts.
    pub const fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// Sets the backoff multiplier.
    pub const fn retry_backoff(mut self, b: f64) -> Self {
        self.retry_backoff = b;
        self
    }

    /// Sets the per-attempt limit (`Duration::ZERO` means none).
    pub const fn timeout(mut self, d: Duration) -> Self {
        self.timeout = if d.is_zero() { None } else { Some(d) };
        self
    }
}

#[derive(Serialize)]
struct RetryFailed<'a> {
    current_attempt: u32,
    max_attempts: u32,
    error: &'a Error,
}

#[derive(Serialize)]
struct RetryStarted {
    current_attempt: u32,
    max_attempts: u32,
    current_delay: f64,
    backoff: f64,
}

/// `{current_attempt, max_attempts, output}` with the output's encoding spliced in as it is.
fn retry_completed(current_attempt: u32, max_attempts: u32, output: &[u8]) -> Arc<[u8]> {
    let mut buf = Vec::with_capacity(40 + output.len());
    let _ = rmp::encode::write_map_len(&mut buf, 3);
    value::append_str(&mut buf, "current_attempt");
    let _ = rmp::encode::write_uint(&mut buf, u64::from(current_attempt));
    value::append_str(&mut buf, "max_attempts");
    let _ = rmp::encode::write_uint(&mut buf, u64::from(max_attempts));
    value::append_str(&mut buf, "output");
    buf.extend_from_slice(output);
    buf.into()
}

enum State {
    /// Outside a workflow: run the body once, record nothing.
    Direct,
    /// The arguments could not be encoded.
    Invalid(Error),
    /// The log holds the outcome.
    Recorded(Arc<str>, crate::event::Event),
    /// Run it, recording `TASK_STARTED` first when `fresh`.
    Run { run: Arc<RunState>, name: Arc<str>, task_id: Arc<str>, args: Arc<[u8]>, fresh: bool },
}

/// One call of a task. Created by generated code; not for direct use.
pub struct TaskCall {
    state: State,
}

impl TaskCall {
    /// Starts a call of a task. Inside a workflow, `make` gives the task's full name and its
    /// encoded arguments, from which the call's id is computed and looked up in the execution's
    /// log; outside one nothing is encoded and the task will simply run.
    pub fn begin<N: AsRef<str>>(make: impl FnOnce() -> (N, Args)) -> TaskCall {
        let Some(run) = context::current() else {
            return TaskCall { state: State::Direct };
        };
        let (full_name, args) = make();
        let full_name = full_name.as_ref();
        let bytes = match args.finish() {
            Ok(bytes) => bytes,
            Err(e) => {
                let e = Error::new(ErrorKind::Encode, format!("the arguments of task `{full_name}` cannot be encoded"))
                    .with_cause(e.to_string());
                return TaskCall { state: State::Invalid(e) };
            }
        };
        let base = crate::identity::task_id(full_name, &bytes);
        let name: Arc<str> = Arc::from(full_name);
        let state = match run.lookup(base) {
            Lookup::Recorded(id, event) => State::Recorded(id, event),
            Lookup::Fresh(task_id) => State::Run { run, name, task_id, args: bytes.into(), fresh: true },
            Lookup::Restart(task_id) => State::Run { run, name, task_id, args: bytes.into(), fresh: false },
        };
        TaskCall { state }
    }

    /// Runs the call. `attempt` produces one attempt; it receives the encoded arguments, which it
    /// decodes for every attempt after the first (see [`ArgsReader`]).
    pub async fn run<T, F, Fut>(self, codec: Codec<T>, options: &TaskOptions, mut attempt: F) -> Result<T>
    where
        F: FnMut(&[u8]) -> Result<Fut>,
        Fut: Future<Output = Result<T>>,
    {
        match self.state {
            State::Direct => attempt(&[])?.await,
            State::Invalid(e) => Err(e),
            State::Recorded(task_id, event) => match event.kind() {
                EventType::TaskCompleted => (codec.decode)(event.value_bytes()).map_err(|e| {
                    Error::new(
                        ErrorKind::Decode,
                        format!(
                            "the recorded output of task `{task_id}` does not fit `{}`",
                            std::any::type_name::<T>()
                        ),
                    )
                    .with_task_id(&*task_id)
                    .with_cause(e.to_string())
                }),
                _ => Err(event.value::<Error>().unwrap_or_else(|e| {
                    Error::new(
                        ErrorKind::TaskFailed,
                        format!("task `{task_id}` failed (its recorded error cannot be read)"),
                    )
                    .with_cause(e.to_string())
                    .with_task_id(&*task_id)
                })),
            },
            State::Run { run, name, task_id, args, fresh } => {
                if fresh {
                    run.record(EventType::TaskStarted, &task_id, &name, args.clone(), None, false)?;
                }
                execute(&run, &task_id, &name, &args, codec, options, &mut attempt).await
            }
        }
    }
}

async fn execute<T, F, Fut>(
    run: &RunState,
    task_id: &Arc<str>,
    name: &Arc<str>,
    args: &[u8],
    codec: Codec<T>,
    options: &TaskOptions,
    attempt: &mut F,
) -> Result<T>
where
    F: FnMut(&[u8]) -> Result<Fut>,
    Fut: Future<Output = Result<T>>,
{
    let max = options.retry_max_attempts;
    let mut delay = options.retry_delay.min(MAX_RETRY_DELAY);
    let mut k = 0;
    let failure = loop {
        if k > 0 {
            tokio::time::sleep(delay).await;
            let started = RetryStarted {
                current_attempt: k,
                max_attempts: max,
                current_delay: delay.as_secs_f64(),
                backoff: options.retry_backoff,
            };
            run.record(EventType::TaskRetryStarted, task_id, name, value::to_msgpack(&started)?.into(), None, false)?;
        }
        match one_attempt(task_id, args, options, attempt).await {
            Ok(output) => {
                let bytes: Arc<[u8]> = (codec.encode)(&output)
                    .map_err(|e| {
                        Error::new(ErrorKind::Encode, format!("the output of task `{task_id}` cannot be encoded"))
                            .with_cause(e.to_string())
                            .with_task_id(&**task_id)
                    })?
                    .into();
                if k > 0 {
                    run.record(
                        EventType::TaskRetryCompleted,
                        task_id,
                        name,
                        retry_completed(k, max, &bytes),
                        None,
                        false,
                    )?;
                }
                run.record_durable(EventType::TaskCompleted, task_id, name, bytes, None).await?;
                return Ok(output);
            }
            Err(e) => {
                if max > 0 {
                    let failed = RetryFailed { current_attempt: k, max_attempts: max, error: &e };
                    run.record(
                        EventType::TaskRetryFailed,
                        task_id,
                        name,
                        value::to_msgpack(&failed)?.into(),
                        None,
                        false,
                    )?;
                }
                if k >= max {
                    break e;
                }
                if k > 0 {
                    delay = next_delay(delay, options.retry_backoff);
                }
                k += 1;
            }
        }
    };
    run.record_durable(EventType::TaskFailed, task_id, name, value::to_msgpack(&failure)?.into(), None).await?;
    Err(failure)
}

fn next_delay(delay: Duration, backoff: f64) -> Duration {
    let next = delay.as_secs_f64() * backoff;
    if next.is_finite() && next > 0.0 {
        Duration::from_secs_f64(next.min(MAX_RETRY_DELAY.as_secs_f64()))
    } else {
        delay
    }
}

async fn one_attempt<T, F, Fut>(task_id: &str, args: &[u8], options: &TaskOptions, attempt: &mut F) -> Result<T>
where
    F: FnMut(&[u8]) -> Result<Fut>,
    Fut: Future<Output = Result<T>>,
{
    let fut = AssertUnwindSafe(attempt(args).map_err(|e| e.with_task_id(task_id))?).catch_unwind();
    let outcome = match options.timeout.filter(|limit| !limit.is_zero()) {
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
        Err(panic) => Err(panic_error(panic).with_task_id(task_id)),
    }
}

/// Turns a panic payload into an error.
pub(crate) fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_string());
    Error::new(ErrorKind::Panic, format!("panicked: {message}"))
}

/// How a task's output is encoded and decoded.
///
/// Generated code gets one from [`codec`], called with the span of the task's return type, so a
/// type that cannot be stored is reported once, there; the call path itself needs no bound.
pub struct Codec<T> {
    encode: fn(&T) -> Result<Vec<u8>>,
    decode: fn(&[u8]) -> Result<T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

/// The codec of a storable type.
pub const fn codec<T: Storable>() -> Codec<T> {
    Codec { encode: value::to_msgpack::<T>, decode: value::from_msgpack::<T> }
}

/// The arguments of a call, encoded one by one as a MessagePack array in declaration order.
///
/// Produces the same bytes as encoding the tuple of the arguments.
pub struct Args {
    bytes: Vec<u8>,
    error: Option<Error>,
}

impl Args {
    /// Starts an array of `len` arguments.
    pub fn new(len: u32) -> Self {
        let mut bytes = Vec::with_capacity(32);
        let _ = rmp::encode::write_array_len(&mut bytes, len);
        Args { bytes, error: None }
    }

    /// Appends one argument.
    pub fn arg<T: Storable>(mut self, value: &T) -> Self {
        if self.error.is_none()
            && let Err(e) = value::append_msgpack(&mut self.bytes, value)
        {
            self.error = Some(e);
        }
        self
    }

    fn finish(self) -> Result<Vec<u8>> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.bytes),
        }
    }
}

/// Reads recorded arguments back one by one, for attempts after the first.
pub struct ArgsReader<'a> {
    de: rmp_serde::Deserializer<rmp_serde::decode::ReadReader<&'a [u8]>>,
}

impl<'a> ArgsReader<'a> {
    /// Opens an encoded argument array that must hold `len` arguments.
    pub fn new(bytes: &'a [u8], len: u32) -> Result<Self> {
        let mut rest = bytes;
        let found = rmp::decode::read_array_len(&mut rest)
            .map_err(|e| Error::decode("recorded task arguments are not an array", e))?;
        if found != len {
            return Err(Error::new(
                ErrorKind::Decode,
                format!("recorded task arguments hold {found} values, the task takes {len}"),
            ));
        }
        Ok(ArgsReader { de: rmp_serde::Deserializer::new(rest) })
    }

    /// Reads the next argument.
    pub fn read<T: Storable>(&mut self) -> Result<T> {
        T::deserialize(&mut self.de).map_err(|e| {
            Error::decode(format_args!("recorded task argument does not fit `{}`", std::any::type_name::<T>()), e)
        })
    }
}

/// Runs a blocking task body on the blocking thread pool.
pub async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(panic_error(e.into_panic())),
        Err(e) => Err(Error::new(ErrorKind::TaskFailed, format!("blocking task did not finish: {e}"))),
    }
}
