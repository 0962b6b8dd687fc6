//! The task call path: identity and replay lookup, then the error chain (attempts with retry
//! and timeout, then fallback or rollback), then the record of the outcome.
//!
//! Generated code calls [`TaskCall::begin`] when the task function is *called* (so ids follow
//! call order even in concurrent groups) and [`TaskCall::run`] when the returned future is
//! awaited.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType};
use crate::run::{self, Lookup, RecordedChain, RunState, Source};

mod args;
mod chain;
mod options;

pub use args::{Args, ArgsReader, Codec, codec};
pub use chain::ROLLBACK_LIMIT;
pub use options::{MAX_RETRY_DELAY, TaskOptions};

/// A boxed, sendable future: what a workflow body, a group of calls or a graph node returns.
pub type BoxFuture<T> = futures::future::BoxFuture<'static, T>;

/// What one attempt, fallback or rollback of a call receives.
#[derive(Debug)]
pub struct Call<'a> {
    /// The recorded arguments (empty outside a workflow, where the first attempt owns them).
    pub args: &'a [u8],
    /// The call's task id.
    pub task_id: &'a str,
    /// The task's full name.
    pub task_name: &'a str,
    /// The engine of the execution (`None` outside a workflow).
    pub engine: Option<&'a crate::Engine>,
}

/// One step of a call (an attempt, the fallback or the rollback): given the [`Call`], it
/// makes a future of the step's outcome. Implemented by every closure of that shape.
pub trait Step<O> {
    /// The future of one run of the step.
    type Fut: Future<Output = Result<O>>;
    /// Starts the step.
    fn start(&mut self, call: &Call<'_>) -> Result<Self::Fut>;
}

impl<O, F, Fut> Step<O> for F
where
    F: FnMut(&Call<'_>) -> Result<Fut>,
    Fut: Future<Output = Result<O>>,
{
    type Fut = Fut;
    fn start(&mut self, call: &Call<'_>) -> Result<Fut> {
        self(call)
    }
}

/// The type of an absent fallback or rollback.
pub type NoHandler<T> = fn(&Call<'_>) -> Result<std::future::Ready<Result<T>>>;

/// The fallback and rollback of a call, if the task has them.
pub struct Handlers<B, C> {
    /// Runs when every attempt failed; its output becomes the task's.
    pub fallback: Option<B>,
    /// Runs when the task failed for good and has no fallback.
    pub rollback: Option<C>,
}

enum State {
    /// Outside a workflow: run the body once, record nothing.
    Direct { name: Arc<str>, task_id: String },
    /// The arguments could not be encoded.
    Invalid(Error),
    /// The log holds the outcome.
    Recorded(Arc<str>, Event, crate::Engine),
    /// Run it, recording `TASK_STARTED` first when `fresh`.
    Run {
        run: Arc<RunState>,
        task: Cow<'static, str>,
        name: Arc<str>,
        base: Arc<str>,
        task_id: Arc<str>,
        args: Arc<[u8]>,
        /// How far the call's chain got before a restart (`None`: a fresh call).
        chain: Option<RecordedChain>,
    },
}

/// One call of a task. Created by generated code; not for direct use.
pub struct TaskCall {
    state: State,
}

impl TaskCall {
    /// Starts a call of a task: `make` gives the task's full name and its encoded arguments, from
    /// which the call's id is computed. Inside a workflow the id is looked up in the execution's
    /// log; outside one the task will simply run.
    ///
    /// `task` is the task's declared name (its template, if it has one).
    pub fn begin<N: AsRef<str>>(task: impl Into<Cow<'static, str>>, make: impl FnOnce() -> (N, Args)) -> TaskCall {
        let (full_name, args) = make();
        let full_name = full_name.as_ref();
        let Some(run) = run::current() else {
            if let Some(e) = run::unscoped_call(full_name) {
                return TaskCall { state: State::Invalid(e) };
            }
            // Outside a workflow the id is still computed, for tasks that ask for their metadata.
            let task_id = args.finish().map(|bytes| crate::identity::task_id(full_name, &bytes)).unwrap_or_default();
            return TaskCall { state: State::Direct { name: Arc::from(full_name), task_id } };
        };
        let bytes = match args.finish() {
            Ok(bytes) => bytes,
            Err(e) => {
                let e = Error::new(ErrorKind::Encode, format!("the arguments of task `{full_name}` cannot be encoded"))
                    .with_cause(e.to_string());
                return TaskCall { state: State::Invalid(e) };
            }
        };
        let (base, lookup) = run.lookup(crate::identity::task_id_text(full_name, &bytes).as_str());
        let (task_id, chain) = match lookup {
            Lookup::Recorded(id, event) => {
                return TaskCall { state: State::Recorded(id, event, run.engine().clone()) };
            }
            Lookup::Fresh(task_id) => (task_id, None),
            Lookup::Restart(task_id, chain) => (task_id, Some(chain)),
        };
        let name = run.shared_name(full_name);
        let state = State::Run { run, task: task.into(), name, base, task_id, args: bytes.into(), chain };
        TaskCall { state }
    }

    /// Runs the call. `attempt` produces one attempt; it receives the [`Call`], whose recorded
    /// arguments it decodes for every attempt after the first (see [`ArgsReader`]).
    pub async fn run<T, A: Step<T>, B: Step<T>, C: Step<()>>(
        self,
        codec: Codec<T>,
        options: &TaskOptions,
        mut attempt: A,
        handlers: Handlers<B, C>,
    ) -> Result<T> {
        match self.state {
            State::Direct { name, task_id } => {
                attempt.start(&Call { args: &[], task_id: &task_id, task_name: &name, engine: None })?.await
            }
            State::Invalid(e) => Err(e),
            State::Recorded(task_id, event, engine) => match event.kind() {
                EventType::TaskCompleted => (codec.decode)(&engine.resolve_output(event.value_bytes())?).map_err(|e| {
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
            State::Run { run, task, name, base, task_id, args, chain: recorded } => {
                if run.is_cancelled() {
                    return Err(run::cancelled_error(&task_id));
                }
                if run::is_replay_only() {
                    return Err(run::replay_only_error(&task_id));
                }
                if recorded.is_none() {
                    run.check_new_call(&task_id, &name)?;
                    run.defer([Source::new(&task_id, &name).entry(EventType::TaskStarted, args.clone())], None)?;
                }
                let call = Call { args: &args, task_id: &task_id, task_name: &name, engine: Some(run.engine()) };
                let chain = chain::Chain {
                    run: &run,
                    task: &task,
                    base: &base,
                    task_id: &task_id,
                    name: &name,
                    call,
                    codec,
                    options,
                };
                chain.execute(recorded.unwrap_or_default(), &mut attempt, handlers).await
            }
        }
    }
}

/// Runs a blocking task body on the blocking thread pool.
pub async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Error::from_panic(e.into_panic())),
        Err(e) => Err(Error::new(ErrorKind::TaskFailed, format!("blocking task did not finish: {e}"))),
    }
}
