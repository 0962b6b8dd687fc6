//! # flux: durable workflows for Rust
//!
//! Write ordinary async functions, mark them `#[flux::task]` and `#[flux::workflow]`, and every
//! task's start and result is recorded in an event log (SQLite by default). Run the workflow
//! again after a crash and completed tasks are replayed from the log instead of running twice.
//!
//! ```no_run
//! use flux::prelude::*;
//!
//! #[flux::task]
//! async fn say_hello(name: String) -> String {
//!     format!("Hello, {name}")
//! }
//!
//! #[flux::workflow]
//! async fn hello_world(ctx: ExecutionContext<String>) -> flux::Result<String> {
//!     say_hello(ctx.input().clone()).await
//! }
//!
//! #[tokio::main]
//! async fn main() -> flux::Result<()> {
//!     // Runs on the default engine: SQLite in `.flux/flux.db`.
//!     let execution = hello_world.run("World".to_string()).await?;
//!     assert_eq!(execution.output(), Some(&"Hello, World".to_string()));
//!     // A finished execution is returned as stored; nothing runs again.
//!     let again = hello_world.replay(execution.execution_id()).await?;
//!     assert_eq!(again.output(), execution.output());
//!     Ok(())
//! }
//! ```
//!
//! ## A tour
//!
//! - [`macro@task`] turns a function into a task. Called inside a workflow, it gets a
//!   deterministic id (see [`identity`]), is looked up in the log, and either returns the recorded
//!   result or runs and records `TASK_STARTED` / `TASK_COMPLETED`. Called outside a workflow it
//!   simply runs. Options: `name` (a template over the arguments), `retry_max_attempts`,
//!   `retry_delay`, `retry_backoff`, `timeout`.
//! - [`macro@workflow`] turns a function taking [`ExecutionContext<I>`] into a [`Workflow`] value
//!   with `run`, `run_with_id`, `replay`, `resume`, `cancel`, `start`, `stream`, `status`, `call`
//!   and `on(&engine)`.
//! - [`step`] and [`step_with`] record a block of code as a task without a function of its own.
//! - [`State`]: handles given to the engine once ([`Engine::with_state`]) and received by tasks.
//! - Composition: [`parallel()`] / [`macro@parallel`], `task::map(items)`, [`macro@pipeline`] and
//!   [`Graph`] run groups of calls, each a task in the log; `child.call(input)` runs a
//!   sub-workflow.
//! - Built-ins: [`now`], [`uuid4`], [`randint`], [`randrange`], [`choice`] (recorded), [`sleep`]
//!   (a durable timer), [`pause`] / [`pause_with`] (resumed by `workflow.resume(id, input)`),
//!   [`progress`] (streamed by `workflow.stream(input)`).
//! - Cancellation: `workflow.start(input)` gives an [`ExecutionHandle`]; `workflow.cancel(id)`
//!   works from anywhere.
//! - [`Engine`] holds the storage: [`Engine::open`] (SQLite), [`Engine::in_memory`] (tests), or the
//!   default engine configured by `FLUX_HOME`, `FLUX_DATABASE_URL` and `flux.toml` ([`Config`]).
//! - [`Event`], [`EventType`] and [`ExecutionState`] are the log's vocabulary; [`Execution`] is
//!   what a run returns.
//! - Server mode (feature `server`): `flux::server::Server::new().register(wf).serve(addr)` runs
//!   workflows over HTTP, and `flux::worker::Worker::new(url).register(wf).run()` turns any
//!   binary into a worker for it. `flux::Client::new(url)` (feature `client`) drives such a
//!   server from any program, typed: `client.workflow::<I, O>("name").run(&input)`.
//! - [`store`] is the storage trait with its SQLite and in-memory backends; [`value`] the
//!   canonical MessagePack encoding every stored value uses.
//!
//! ## Determinism and code changes
//!
//! A replay runs the workflow's code from the top and answers each call from the log, so the
//! code must make the calls the log recorded, with the same arguments. Changing a task's body, or
//! anything after the last call an unfinished execution recorded, is safe. A replay that calls a
//! different task, or the same one with other arguments, before making every recorded call, or
//! that returns before making them all, stops with [`ErrorKind::NonDeterminism`] naming the call
//! and the recorded one: nothing is recorded, nothing runs again, and the execution stays as
//! stored until it is replayed by code that matches. [`patched`] branches around a change: the
//! new path for new executions, the old one for executions recorded before it.
//! `#[flux::workflow(version = 2)]` names the version of the code, stored with each execution.
//!
//! ## Guarantees
//!
//! The execution row and `WORKFLOW_STARTED` are stored before the body runs; a task's
//! `TASK_COMPLETED` is stored before its result is handed to the workflow; the final event is
//! stored before `run` returns. With [`Durability::Default`] this survives the process being
//! killed at any instant; [`Durability::Full`] also fsyncs every commit.
//!
//! ## Features
//!
//! - `sqlite` (default): the SQLite store, with SQLite bundled.
//! - `server`: server mode. `flux::server::Server` serves the HTTP/SSE API (run, resume, status,
//!   cancel, stream, secrets, `/openapi.json`, `/docs`) and hands executions to remote
//!   `flux::worker::Worker`s, which claim them, replay their logs and send what they record back
//!   as checkpoints. Implies `sqlite` and `worker`.
//! - `client`: `flux::Client`, the typed HTTP client of a flux server (run, start, stream,
//!   status, resume, cancel, list executions, secrets), with `flux::protocol`; no server crates.
//! - `worker`: `flux::worker::Worker` alone, for a binary that only runs executions a server
//!   hands it: an HTTP client (reqwest) and `flux::protocol`, the shapes that cross the network,
//!   without the server's crates (axum, hyper's server side). Implies `client`.
//! - `cli`: the `flux` command-line tool (`flux start server`, `flux workflow run ...`); implies
//!   `server` and `client`.
//! - `test-util`: the store conformance suite (`flux::store::conformance`) for your own `Store`, and
//!   constructors of the writes only flux makes, for tests.
#![warn(missing_docs)]
// Library code never unwraps: data from files, the database or the network gets an error.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

// Lets code generated by the macros name `::flux` inside this crate too (doc tests, unit tests).
#[allow(unused_extern_crates)]
extern crate self as flux;

// The modules, bottom up: each uses only those declared before it (tests/layout.rs checks it).
// Vocabulary.
mod error;
mod duration;
pub mod value;
pub mod output;
mod event;
pub mod identity;
mod metrics;
// Storage and settings.
pub mod store;
pub mod secrets;
mod config;
// Where executions live, and one running execution.
mod engine;
mod run;
mod execution;
mod context;
// The call path and what is built on it.
mod task;
mod builtins;
mod compose;
mod graph;
mod step;
// Starting, continuing, resuming and finishing executions, and the workflows over that.
mod driver;
mod workflow;
mod erased;
mod recovery;
pub mod messages;
#[cfg(feature = "schedule")]
pub mod schedule;
// Server mode: what crosses the network, the typed client, the server, and the worker.
#[cfg(feature = "client")]
pub mod protocol;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "worker")]
pub mod worker;
// AI agents: built on tasks, the client's HTTP stack and, with `mcp`, MCP tool sets.
#[cfg(feature = "ai")]
pub mod ai;

pub use builtins::{choice, now, patched, pause, pause_with, progress, randint, randrange, sleep, uuid4};
#[cfg(feature = "client")]
pub use client::Client;
pub use compose::{AllResults, Parallel, parallel};
pub use config::{AiConfig, Config, DatabaseLocation, McpConfig, McpTransport, QueueSettings, WorkersConfig};
pub use context::ExecutionContext;
pub use engine::{Engine, EngineBuilder, Queue, State};
pub use error::{Error, ErrorKind, Result, TerminalError};
pub use event::{Event, EventType, ExecutionState};
pub use execution::Execution;
pub use graph::{Graph, GraphError};
pub use messages::{recv, set_event};
pub use recovery::Recovered;
pub use run::spawn;
pub use secrets::Vault;
pub use step::{StepBody, step, step_with};
pub use store::{Durability, ExecutionFilter, ExecutionPage, ExecutionRow};
pub use task::TaskOptions;
pub use uuid::Uuid;
pub use value::Storable;
pub use workflow::{ExecutionHandle, ExecutionStream, Joined};

/// What a task with `metadata = true` receives in its `TaskMetadata` parameter.
///
/// ```
/// #[flux::task(metadata = true)]
/// async fn whoami(x: u32, meta: flux::TaskMetadata) -> String {
///     format!("{} ({}) got {x}", meta.task_name, meta.task_id)
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskMetadata {
    /// The call's task id (`name_<16 hex>`, with `~n` for repeats in one execution).
    pub task_id: String,
    /// The task's full name (after filling its name template).
    pub task_name: String,
}
pub use workflow::{Workflow, WorkflowDefinition};

/// The fixed limits and defaults of the runtime, for programs that size things by them.
pub mod limits {
    pub use crate::engine::{DEFAULT_LEASE, DELETE_BATCH};
    pub use crate::run::PROGRESS_QUEUE;
    pub use crate::task::{MAX_RETRY_DELAY, ROLLBACK_LIMIT};
}

// The names the root exported before `flux::limits`, kept for a while so that code using them
// still builds.
#[doc(hidden)]
#[deprecated(note = "use `flux::limits::PROGRESS_QUEUE`")]
pub const PROGRESS_QUEUE: usize = limits::PROGRESS_QUEUE;
#[doc(hidden)]
#[deprecated(note = "use `flux::limits::ROLLBACK_LIMIT`")]
pub const ROLLBACK_LIMIT: std::time::Duration = limits::ROLLBACK_LIMIT;
#[doc(hidden)]
#[deprecated(note = "use `flux::limits::MAX_RETRY_DELAY`")]
pub const MAX_RETRY_DELAY: std::time::Duration = limits::MAX_RETRY_DELAY;
#[doc(hidden)]
#[deprecated(note = "use `flux::limits::DEFAULT_LEASE`")]
pub const DEFAULT_LEASE: std::time::Duration = limits::DEFAULT_LEASE;

/// Turns a function into a durable task.
///
/// ```
/// #[flux::task(name = "greet_{name}", retry_max_attempts = 2, retry_delay = "10ms", timeout = "5s")]
/// async fn greet(name: String) -> Result<String, std::io::Error> {
///     Ok(format!("Hello, {name}"))
/// }
/// assert_eq!(greet::NAME, "greet_{name}");
/// ```
///
/// Options (all optional):
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name` | the task name; `{arg}` placeholders are filled from the arguments (`Display`) | the function name |
/// | `retry_max_attempts` | extra attempts after the first | 0 |
/// | `retry_delay` | wait before the first retry: `"30s"`, `"1.5s"`, `"2m"` or seconds | 1 s |
/// | `retry_backoff` | multiplier applied to the delay after each failed retry (capped at 600 s) | 2 |
/// | `timeout` | limit for each attempt (`0`: none); an async attempt is dropped, a blocking one is no longer waited for | none |
/// | `fallback` | a function (async or not) with the task's parameters and return type, used when every attempt failed; to fall back to another task, call that task from such a function | none |
/// | `rollback` | a function (async or not) with the task's parameters, run when the task fails for good and has no fallback; returning `Err` records `TASK_ROLLBACK_FAILED` | none |
/// | `cache` | reuse a result recorded by any execution (any process) for the same task id without `~n` | `false` |
/// | `cache_ttl` | how long a cached result stays valid (implies `cache = true`) | forever |
/// | `metadata` | fill the task's `TaskMetadata` parameter (not an argument of the call) | `false` |
/// | `secret_requests` | fill the task's [`secrets::Secrets`] parameter with these secrets; a missing one fails the attempt, naming it | none |
/// | `output_storage` | `"file"` (or any storage registered on the engine) keeps the output out of the log, see [`output`]; if the storage fails, the run stops with an error and the execution can be replayed | inline |
///
/// Events of one call, in order: `TASK_STARTED {args}`; with retries, each failed attempt
/// `TASK_RETRY_FAILED {current_attempt, max_attempts, error}`, each retry
/// `TASK_RETRY_STARTED {current_attempt, max_attempts, current_delay, backoff}` after its wait,
/// and a successful retry `TASK_RETRY_COMPLETED {current_attempt, max_attempts, output}`; then
/// `TASK_COMPLETED {output}`. When every attempt failed: `TASK_FALLBACK_STARTED {error}` and
/// `TASK_FALLBACK_COMPLETED {output}` + `TASK_COMPLETED`, or `TASK_FALLBACK_FAILED {error}` +
/// `TASK_FAILED`; without a fallback, `TASK_ROLLBACK_STARTED {error}`, `TASK_ROLLBACK_COMPLETED`
/// or `TASK_ROLLBACK_FAILED {error}`, then `TASK_FAILED {error}`. The step that finishes a call
/// is stored in one transaction with its `TASK_COMPLETED` or `TASK_FAILED`, and a call restarted
/// after a crash continues this chain where its log stops. A fallback's output is not cached.
///
/// `task::with_options(TaskOptions { .. }).call(args)` calls the task with other options.
///
/// The call's id is fixed when the task function is *called*, from the current execution, so
/// create the call inside the workflow (`let f = say_hello(x);` may then be awaited anywhere);
/// a task function first called inside a `tokio::spawn`ed future runs as a plain function,
/// without being recorded: spawn with [`spawn`] to keep the execution.
pub use flux_macros::task;

/// Turns an async function taking `ExecutionContext<I>` into a [`Workflow`].
///
/// The function's name becomes a value (a unit struct that dereferences to [`Workflow`]) in
/// its module, so a `let` binding of the same name in that module does not compile: name the
/// binding differently (`let report_run = report.run(..)`). Likewise a task's name is also a
/// type (its companion, holding `NAME` and `OPTIONS`), so it cannot share its name with a module
/// or an imported type in the same scope. A return type counts as fallible when its last path
/// segment is `Result` (`Result<T, E>`, `flux::Result<T>`, `io::Result<T>`); other aliases are
/// recorded as plain values.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::workflow]
/// async fn double(ctx: ExecutionContext<u32>) -> u32 {
///     ctx.input() * 2
/// }
/// assert_eq!(double::NAME, "double");
/// ```
pub use flux_macros::workflow;

/// The names most programs need: `use flux::prelude::*;`.
pub mod prelude {
    pub use crate::{Engine, EventType, Execution, ExecutionContext, ExecutionState};
}

/// With the `ai` feature, `#[flux::task]` gives each task `name::tool()`: the task as a tool of
/// an agent (generated code; the task's arguments are read from the model's JSON object).
#[cfg(feature = "ai")]
#[doc(hidden)]
#[macro_export]
macro_rules! __task_tool {
    ($task:ident, [$($doc:expr),*], [$($arg:ident : $ty:ty),*]) => {
        #[allow(dead_code)]
        impl $task {
            /// This task as a tool of an AI agent (`flux::ai`): named after the task, described
            /// by its doc comment, with its arguments' JSON Schema. Each call the model makes is
            /// a call of the task.
            pub fn tool() -> ::flux::ai::Tool {
                #[allow(unused_imports)]
                use ::flux::__private::{ViaNoToolSchema as _, ViaToolSchema as _};
                let run: ::flux::ai::ToolFn = ::std::sync::Arc::new(
                    |task: ::std::string::String, args: ::flux::__private::serde_json::Value| {
                        #[allow(unused_mut, unused_variables)]
                        let read = ::flux::ai::__private::ToolArgs::new($task::NAME, args).and_then(|mut args| {
                            ::flux::Result::Ok(($(args.take::<$ty>(::core::stringify!($arg))?,)*))
                        });
                        match read {
                            ::core::result::Result::Ok(($($arg,)*)) => {
                                let call = $task::with_options($task::OPTIONS).__recorded_as(task).call($($arg),*);
                                ::std::boxed::Box::pin(async move {
                                    let out = call.await?;
                                    ::flux::ai::__private::to_tool_value($task::NAME, &out)
                                }) as ::flux::__private::BoxFuture<_>
                            }
                            ::core::result::Result::Err(e) => ::std::boxed::Box::pin(::core::future::ready(
                                ::core::result::Result::Err(e),
                            )) as ::flux::__private::BoxFuture<_>,
                        }
                    },
                );
                ::flux::ai::Tool::from_recorded(
                    $task::NAME,
                    ::flux::ai::__private::doc_text(&[$($doc),*]),
                    ::flux::ai::__private::object_schema(::std::vec![$(
                        (::core::stringify!($arg), (&&::flux::__private::SchemaProbe::<$ty>::new()).tool_schema())
                    ),*]),
                    run,
                )
            }
        }
    };
}

/// Without the `ai` feature, tasks are no tools.
#[cfg(not(feature = "ai"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __task_tool {
    ($($anything:tt)*) => {};
}

/// Support for generated code. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    use std::fmt::Display;

    pub use crate::compose::{group, limited, map, semaphore};
    pub use crate::step::{Attempts, FutureMaker, OneFuture};
    // For the macro crate's tests, which check that its duration syntax is this one.
    pub use crate::duration::parse as parse_duration;
    pub use crate::task::BoxFuture;
    pub use crate::task::{Args, ArgsReader, Call, Codec, Handlers, NoHandler, TaskCall, codec, run_blocking};
    pub use serde;
    pub use tokio;

    use crate::error::{Error, ErrorKind};

    /// The input a schedule declared by `#[flux::workflow(schedule = "..")]` starts the
    /// workflow with: the input type's default.
    #[cfg(feature = "schedule")]
    pub fn scheduled_input<T: Default>() -> Option<T> {
        Some(T::default())
    }

    /// Without feature `schedule`, `schedule = ".."` is refused naming the feature.
    #[cfg(not(feature = "schedule"))]
    #[diagnostic::on_unimplemented(
        message = "`#[flux::workflow(schedule = \"..\")]` needs flux's feature `schedule`",
        label = "enable feature `schedule` of flux"
    )]
    pub trait ScheduleFeature {}

    /// Without feature `schedule`, `schedule = ".."` is refused naming the feature.
    #[cfg(not(feature = "schedule"))]
    pub fn scheduled_input<T: ScheduleFeature>() -> Option<T> {
        None
    }

    /// Holds a user error on its way to becoming a [`Error`].
    pub struct ErrorWrap<E>(pub E);

    /// An error type that says which of its values are terminal keeps that, its chain of
    /// sources and its type's name.
    pub trait ViaTerminalError {
        /// Converts.
        fn to_flux_error(&self, kind: ErrorKind) -> Error;
    }
    impl<E: crate::TerminalError + 'static> ViaTerminalError for &&&ErrorWrap<E> {
        fn to_flux_error(&self, kind: ErrorKind) -> Error {
            let error = Error::from_std(kind, &self.0).with_type_name(std::any::type_name::<E>());
            if self.0.is_terminal() { error.into_terminal() } else { error }
        }
    }

    /// Asks whether a workflow's input type has a JSON Schema: see [`ViaJsonSchema`].
    pub struct SchemaProbe<T>(std::marker::PhantomData<fn() -> T>);

    impl<T> SchemaProbe<T> {
        /// A probe of `T`.
        pub const fn new() -> Self {
            SchemaProbe(std::marker::PhantomData)
        }
    }

    impl<T> Default for SchemaProbe<T> {
        fn default() -> Self {
            SchemaProbe::new()
        }
    }

    /// An input type deriving `schemars::JsonSchema` (with the `mcp` feature) has its schema.
    pub trait ViaJsonSchema {
        /// The schema as JSON text.
        fn input_schema(&self) -> Option<String>;
    }
    #[cfg(feature = "mcp")]
    impl<T: schemars::JsonSchema> ViaJsonSchema for &SchemaProbe<T> {
        fn input_schema(&self) -> Option<String> {
            serde_json::to_string(&schemars::schema_for!(T)).ok()
        }
    }

    /// Any other input type has none.
    pub trait ViaNoSchema {
        /// `None`.
        fn input_schema(&self) -> Option<String>;
    }
    impl<T> ViaNoSchema for SchemaProbe<T> {
        fn input_schema(&self) -> Option<String> {
            None
        }
    }

    /// A task argument's type deriving `schemars::JsonSchema` (with the `ai` feature) has its
    /// schema in the tool an agent is given.
    #[cfg(feature = "ai")]
    pub trait ViaToolSchema {
        /// The schema.
        fn tool_schema(&self) -> serde_json::Value;
    }
    #[cfg(feature = "ai")]
    impl<T: schemars::JsonSchema> ViaToolSchema for &SchemaProbe<T> {
        fn tool_schema(&self) -> serde_json::Value {
            crate::ai::inline_schema::<T>()
        }
    }

    /// Any other argument type is described as any JSON value.
    #[cfg(feature = "ai")]
    pub trait ViaNoToolSchema {
        /// `{}`.
        fn tool_schema(&self) -> serde_json::Value;
    }
    #[cfg(feature = "ai")]
    impl<T> ViaNoToolSchema for SchemaProbe<T> {
        fn tool_schema(&self) -> serde_json::Value {
            serde_json::Value::Object(serde_json::Map::new())
        }
    }

    #[cfg(feature = "ai")]
    pub use serde_json;

    /// `flux::Error` is kept as it is.
    pub trait ViaFluxError {
        /// Converts.
        fn to_flux_error(&self, kind: ErrorKind) -> Error;
    }
    impl ViaFluxError for &&ErrorWrap<Error> {
        fn to_flux_error(&self, _kind: ErrorKind) -> Error {
            self.0.clone()
        }
    }

    /// A `std::error::Error` keeps its chain of sources and its type's name.
    pub trait ViaStdError {
        /// Converts.
        fn to_flux_error(&self, kind: ErrorKind) -> Error;
    }
    impl<E: std::error::Error + 'static> ViaStdError for &ErrorWrap<E> {
        fn to_flux_error(&self, kind: ErrorKind) -> Error {
            Error::from_std(kind, &self.0).with_type_name(std::any::type_name::<E>())
        }
    }

    /// Anything else that displays (a `String`, say) becomes its message.
    pub trait ViaDisplay {
        /// Converts.
        fn to_flux_error(&self, kind: ErrorKind) -> Error;
    }
    impl<E: Display> ViaDisplay for ErrorWrap<E> {
        fn to_flux_error(&self, kind: ErrorKind) -> Error {
            Error::new(kind, self.0.to_string())
        }
    }

    pub use crate::error::ErrorKind as Kind;
    pub use crate::task::TaskOptions;
    pub use crate::workflow::{Workflow, WorkflowDefinition};
    pub use crate::{ExecutionContext, Result, TaskMetadata};

    /// The secrets a task asked for; an error lists those that are not set.
    pub fn secrets(call: &Call<'_>, requested: &[&str]) -> Result<crate::secrets::Secrets> {
        let requester = format!("task `{}`", if call.task_id.is_empty() { call.task_name } else { call.task_id });
        match call.engine {
            Some(engine) => crate::secrets::fetch(engine.vault(), requested, &requester),
            None => crate::secrets::fetch(crate::Engine::global()?.vault(), requested, &requester),
        }
    }

    /// The state of type `T` of the call's engine, for a `State<T>` parameter; an error names
    /// the type when the engine has none.
    pub fn state<T: Send + Sync + 'static>(call: &Call<'_>) -> Result<crate::State<T>> {
        let engine = match call.engine {
            Some(engine) => engine.clone(),
            None => crate::Engine::global()?,
        };
        engine.state::<T>().ok_or_else(|| {
            let task = if call.task_id.is_empty() { call.task_name } else { call.task_id };
            Error::new(
                ErrorKind::Config,
                format!(
                    "task `{task}` takes a `State<{}>`, and its engine holds none: give one with \
                     `Engine::with_state(..)` (or the server's or worker's `state(..)`)",
                    std::any::type_name::<T>()
                ),
            )
            // No retry can give the engine a state it lacks.
            .into_terminal()
        })
    }

    /// The metadata of a call.
    pub fn metadata(call: &Call<'_>) -> TaskMetadata {
        TaskMetadata { task_id: call.task_id.to_string(), task_name: call.task_name.to_string() }
    }

    /// The result of a fallback or rollback function, which may be async or not.
    pub struct MaybeAsync<V>(pub std::cell::Cell<Option<V>>);

    impl<V> MaybeAsync<V> {
        #[allow(clippy::expect_used)]
        fn take(&self) -> V {
            // Generated code resolves each value exactly once.
            self.0.take().expect("a fallback or rollback result is resolved once")
        }
    }

    /// An async function's result: await the future.
    pub trait ViaFuture {
        /// The future to await.
        type Fut;
        /// Resolves.
        fn resolve(&self) -> Self::Fut;
    }
    impl<F: std::future::Future> ViaFuture for &MaybeAsync<F> {
        type Fut = F;
        fn resolve(&self) -> F {
            self.take()
        }
    }

    /// A plain function's result: ready now.
    pub trait ViaValue {
        /// The future to await.
        type Fut;
        /// Resolves.
        fn resolve(&self) -> Self::Fut;
    }
    impl<V> ViaValue for MaybeAsync<V> {
        type Fut = std::future::Ready<V>;
        fn resolve(&self) -> Self::Fut {
            std::future::ready(self.take())
        }
    }

    /// A rollback's result: an `Err` means the rollback failed, anything else that it worked.
    pub struct RollbackOutcome<V>(pub V);

    /// A rollback returning `Result`.
    pub trait ViaRollbackResult {
        /// The outcome.
        fn outcome(&self) -> Result<()>;
    }
    impl<T, E: Display> ViaRollbackResult for &RollbackOutcome<std::result::Result<T, E>> {
        fn outcome(&self) -> Result<()> {
            match &self.0 {
                Ok(_) => Ok(()),
                Err(e) => Err(Error::new(ErrorKind::TaskFailed, e.to_string())),
            }
        }
    }

    /// A rollback returning anything else.
    pub trait ViaRollbackValue {
        /// The outcome.
        fn outcome(&self) -> Result<()>;
    }
    impl<V> ViaRollbackValue for RollbackOutcome<V> {
        fn outcome(&self) -> Result<()> {
            Ok(())
        }
    }
}
