//! Workflows behind a trait object: how the server, workers and recovery hold workflows of any
//! input and output types and run them from encoded inputs. Each method is the typed path of
//! [`crate::workflow`] with the input decoded first and the result reduced to a state.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::driver::{self, Cancel, Launch};
use crate::engine::{Engine, Limiter, Recoverable};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::run::Subscription;
use crate::store::StoredExecution;
use crate::value;
use crate::workflow::{self, Workflow, WorkflowDefinition, definition};

/// An execution started in the background.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct Started {
    /// Its id.
    pub(crate) execution_id: String,
    /// Its events as they are recorded, when asked for.
    pub(crate) events: Option<Subscription>,
    /// Its events from its start on, when asked for and it waits in a queue: handed over once
    /// it leaves the queue and starts (dropped if it never does).
    pub(crate) queued_events: Option<tokio::sync::oneshot::Receiver<Subscription>>,
    /// Resolves with the state it stopped in (finished or paused), or the engine's error.
    pub(crate) done: tokio::task::JoinHandle<Result<ExecutionState>>,
}

/// A workflow of any types.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) trait ErasedWorkflow: Recoverable {
    /// The version of the workflow's code (`#[flux::workflow(version = n)]`).
    fn version(&self) -> u32;

    /// The JSON Schema of the input, as JSON text ([`WorkflowDefinition::input_schema`]).
    fn input_schema(&self) -> Option<String>;

    /// Checks that an encoded input fits the workflow's input type.
    fn check_input(&self, input: &[u8]) -> Result<()>;

    /// How many of its executions may run at once ([`WorkflowDefinition::MAX_CONCURRENCY`]).
    fn max_concurrency(&self) -> Option<usize>;

    /// Stores a new execution of the encoded `input` and runs it in the background; through
    /// `queue` (and the workflow's `max_concurrency`) when given: stored `SCHEDULED`, started
    /// when its turn comes.
    fn start(
        &self,
        engine: &Engine,
        input: Vec<u8>,
        subscribe: bool,
        queue: Option<Arc<Limiter>>,
    ) -> BoxFuture<'static, Result<Started>>;

    /// Resumes the paused execution `id` with the encoded `input`, in the background.
    fn resume(
        &self,
        engine: &Engine,
        id: String,
        input: Vec<u8>,
        subscribe: bool,
    ) -> BoxFuture<'static, Result<Started>>;

    /// Cancels the execution `id`; with `wait`, returns once a run in this process has stopped.
    fn cancel(&self, engine: &Engine, id: String, wait: bool) -> BoxFuture<'static, Result<()>>;

    /// Runs an execution a worker claimed: starts it if it never started, resumes it with
    /// `resume` if a resume is pending, or continues it over its log. `on_events` gets the run's
    /// events before it starts.
    fn run_claimed(
        &self,
        engine: &Engine,
        stored: StoredExecution,
        resume: Option<Vec<u8>>,
        on_events: Box<dyn FnOnce(Subscription) + Send>,
    ) -> BoxFuture<'static, Result<Started>>;
}

struct Erased<W>(PhantomData<fn() -> W>);

/// `workflow` as a trait object.
pub(crate) fn erase<W: WorkflowDefinition>(_workflow: W) -> Arc<dyn ErasedWorkflow> {
    Arc::new(Erased::<W>(PhantomData))
}

/// Runs a prepared run of `W` in a background task, reduced to the state it stops in.
fn spawn<W: WorkflowDefinition>(
    prepared: driver::Prepared,
    input: W::Input,
) -> tokio::task::JoinHandle<Result<ExecutionState>> {
    tokio::spawn(async move { workflow::drive::<W>(prepared, input).await.map(|e| e.state()) })
}

/// Stores execution `id` of `W` with the encoded `input` in state `SCHEDULED` and runs it in
/// the background once its turn comes in `queue` and under `W`'s `max_concurrency` (see
/// [`workflow::submit`]), reduced to the state it stops in.
async fn submit<W: WorkflowDefinition>(
    engine: &Engine,
    queue: Option<Arc<Limiter>>,
    id: String,
    input: Vec<u8>,
    on_events: Option<Box<dyn FnOnce(Subscription) + Send>>,
) -> Result<crate::engine::Run> {
    workflow::decode_input::<W>(&id, &input)?;
    workflow::submit::<W, _>(engine, queue, id, input.into(), on_events, |result| result.map(|e| e.state())).await
}

impl<W: WorkflowDefinition> Recoverable for Erased<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn continue_execution(&self, engine: &Engine, id: String) -> BoxFuture<'static, Result<ExecutionState>> {
        let engine = engine.clone();
        Box::pin(async move { Workflow::<W>::new().on(&engine).replay(&id).await.map(|e| e.state()) })
    }

    fn fork(&self, engine: &Engine, source: String, from_step: usize) -> BoxFuture<'static, Result<String>> {
        let engine = engine.clone();
        Box::pin(async move {
            let id = driver::new_execution_id();
            let launch = Launch::Fork { id: id.clone(), source, from_step };
            let ready = driver::claim(&engine, definition::<W>(), launch)?.plan().await?.into_run()?;
            let (prepared, input) = workflow::prepare::<W>(ready, None)?;
            workflow::drive::<W>(prepared, input).await?;
            Ok(id)
        })
    }

    fn start_new(&self, engine: &Engine, id: String, input: Vec<u8>) -> BoxFuture<'static, Result<crate::engine::Run>> {
        let engine = engine.clone();
        Box::pin(async move {
            if W::MAX_CONCURRENCY.is_some() {
                // Under the workflow's limit like its other runs: stored `SCHEDULED`, started
                // when its turn comes.
                return submit::<W>(&engine, None, id, input, None).await;
            }
            let input = workflow::decode_input::<W>(&id, &input)?;
            let (mut prepared, input) = workflow::new_run::<W>(&engine, id, input).await?;
            prepared.begin().await?;
            Ok(spawn::<W>(prepared, input))
        })
    }

    fn declared_schedule(&self) -> Option<(&'static str, &'static str, Result<Vec<u8>>)> {
        let (expression, timezone) = W::SCHEDULE?;
        let input = W::schedule_input().map(|input| {
            value::to_msgpack(&input).map_err(|e| {
                Error::new(
                    ErrorKind::Encode,
                    format!("the scheduled input of workflow `{}` cannot be encoded", W::NAME),
                )
                .with_cause(e.message().to_string())
            })
        });
        Some((expression, timezone, input.unwrap_or_else(|| Ok(vec![0xc0]))))
    }
}

impl<W: WorkflowDefinition> ErasedWorkflow for Erased<W> {
    fn version(&self) -> u32 {
        W::VERSION
    }

    fn input_schema(&self) -> Option<String> {
        W::input_schema()
    }

    fn max_concurrency(&self) -> Option<usize> {
        W::MAX_CONCURRENCY
    }

    fn check_input(&self, input: &[u8]) -> Result<()> {
        value::from_msgpack::<W::Input>(input).map(drop).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "the input does not fit `{}`, the input type of workflow `{}`",
                    std::any::type_name::<W::Input>(),
                    W::NAME
                ),
            )
            .with_cause(e.message().to_string())
        })
    }

    fn start(
        &self,
        engine: &Engine,
        input: Vec<u8>,
        subscribe: bool,
        queue: Option<Arc<Limiter>>,
    ) -> BoxFuture<'static, Result<Started>> {
        let engine = engine.clone();
        Box::pin(async move {
            let execution_id = driver::new_execution_id();
            if queue.is_some() || W::MAX_CONCURRENCY.is_some() {
                let (handed, queued_events) = tokio::sync::oneshot::channel();
                let on_events = subscribe
                    .then(|| Box::new(move |events| drop(handed.send(events))) as Box<dyn FnOnce(Subscription) + Send>);
                let done = submit::<W>(&engine, queue, execution_id.clone(), input, on_events).await?;
                let queued_events = subscribe.then_some(queued_events);
                return Ok(Started { execution_id, events: None, queued_events, done });
            }
            let input = workflow::decode_input::<W>(&execution_id, &input)?;
            let (mut prepared, input) = workflow::new_run::<W>(&engine, execution_id.clone(), input).await?;
            let events = subscribe.then(|| prepared.subscribe());
            prepared.begin().await?;
            Ok(Started { execution_id, events, queued_events: None, done: spawn::<W>(prepared, input) })
        })
    }

    fn resume(
        &self,
        engine: &Engine,
        id: String,
        input: Vec<u8>,
        subscribe: bool,
    ) -> BoxFuture<'static, Result<Started>> {
        let engine = engine.clone();
        Box::pin(async move {
            let launch = Launch::Resume { id: id.clone(), input: input.into() };
            let ready = driver::claim(&engine, definition::<W>(), launch)?.plan().await?.into_run()?;
            let (prepared, input) = workflow::prepare::<W>(ready, None)?;
            let events = subscribe.then(|| prepared.subscribe());
            Ok(Started { execution_id: id, events, queued_events: None, done: spawn::<W>(prepared, input) })
        })
    }

    fn cancel(&self, engine: &Engine, id: String, wait: bool) -> BoxFuture<'static, Result<()>> {
        let engine = engine.clone();
        Box::pin(async move {
            match driver::cancel(&engine, definition::<W>(), &id, wait).await? {
                Cancel::Asked => Ok(()),
                cancel => workflow::cancelled::<W>(&engine, cancel).await.map(drop),
            }
        })
    }

    fn run_claimed(
        &self,
        engine: &Engine,
        stored: StoredExecution,
        resume: Option<Vec<u8>>,
        on_events: Box<dyn FnOnce(Subscription) + Send>,
    ) -> BoxFuture<'static, Result<Started>> {
        let engine = engine.clone();
        Box::pin(async move {
            let execution_id = stored.id.clone();
            let launch = Launch::Worker { stored, resume: resume.map(Arc::from) };
            let ready = driver::claim(&engine, definition::<W>(), launch)?.plan().await?.into_run()?;
            let (prepared, input) = workflow::prepare::<W>(ready, None)?;
            on_events(prepared.subscribe());
            Ok(Started { execution_id, events: None, queued_events: None, done: spawn::<W>(prepared, input) })
        })
    }
}
