//! Workflows behind a trait object: how the server and workers hold workflows of any input and
//! output types, and run them from encoded inputs.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::context::{CancelRequest, RunState, Subscription};
use crate::engine::Engine;
use crate::error::Result;
use crate::event::{EventType, ExecutionState};
use crate::store::{StoredExecution, Write};
use crate::value;
use crate::workflow::{self, BoxFuture, Workflow, WorkflowDefinition};

/// An execution started in the background.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct Started {
    /// Its id.
    pub(crate) execution_id: String,
    /// Its events as they are recorded, when asked for.
    pub(crate) events: Option<Subscription>,
    /// Resolves with the state it stopped in (finished or paused), or the engine's error.
    pub(crate) done: tokio::task::JoinHandle<Result<ExecutionState>>,
}

/// A workflow of any types.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) trait ErasedWorkflow: Send + Sync + 'static {
    /// The workflow name.
    fn name(&self) -> &'static str;

    /// Checks that an encoded input fits the workflow's input type.
    fn check_input(&self, input: &[u8]) -> Result<()>;

    /// Stores a new execution of the encoded `input` and runs it in the background.
    fn start(&self, engine: &Engine, input: Vec<u8>, subscribe: bool) -> BoxFuture<Result<Started>>;

    /// Resumes the paused execution `id` with the encoded `input`, in the background.
    fn resume(&self, engine: &Engine, id: String, input: Vec<u8>, subscribe: bool) -> BoxFuture<Result<Started>>;

    /// Cancels the execution `id`; with `wait`, returns once a run in this process has stopped.
    fn cancel(&self, engine: &Engine, id: String, wait: bool) -> BoxFuture<Result<()>>;

    /// Continues the stored execution `id` over its log (recovery); resolves with the state
    /// its run stopped in.
    fn replay(&self, engine: &Engine, id: String) -> BoxFuture<Result<ExecutionState>>;

    /// Runs an execution a worker claimed: starts it if it never started, resumes it with
    /// `resume` if a resume is pending, or continues it over its log.
    /// `on_events` gets the run's events before it starts.
    fn run_claimed(
        &self,
        engine: &Engine,
        stored: StoredExecution,
        resume: Option<Vec<u8>>,
        on_events: Box<dyn FnOnce(Subscription) + Send>,
    ) -> Result<Started>;
}

struct Erased<W>(PhantomData<fn() -> W>);

/// `workflow` as a trait object.
pub(crate) fn erase<W: WorkflowDefinition>(_workflow: W) -> Arc<dyn ErasedWorkflow> {
    Arc::new(Erased::<W>(PhantomData))
}

impl<W: WorkflowDefinition> ErasedWorkflow for Erased<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn check_input(&self, input: &[u8]) -> Result<()> {
        value::from_msgpack::<W::Input>(input).map(drop).map_err(|e| {
            crate::Error::new(
                crate::ErrorKind::Decode,
                format!(
                    "the input does not fit `{}`, the input type of workflow `{}`",
                    std::any::type_name::<W::Input>(),
                    W::NAME
                ),
            )
            .with_cause(e.message().to_string())
        })
    }

    fn start(&self, engine: &Engine, input: Vec<u8>, subscribe: bool) -> BoxFuture<Result<Started>> {
        let engine = engine.clone();
        Box::pin(async move {
            let id = workflow::new_execution_id();
            let input = workflow::decode_input::<W>(&id, &input)?;
            let claim = engine.claim_local(&id)?;
            let (run, bytes) = workflow::create::<W>(&engine, &claim, &id, &input, None)?;
            let events = subscribe.then(|| run.subscribe());
            workflow::begin(&run, bytes.clone()).await?;
            let done = tokio::spawn(async move {
                let _claim = claim;
                workflow::drive::<W>(run, input, bytes).await.map(|e| e.state())
            });
            Ok(Started { execution_id: id, events, done })
        })
    }

    fn resume(&self, engine: &Engine, id: String, input: Vec<u8>, subscribe: bool) -> BoxFuture<Result<Started>> {
        let engine = engine.clone();
        Box::pin(async move {
            let claim = engine.claim_local(&id)?;
            let stored = engine.load(&id).await?.ok_or_else(|| workflow::not_found(&engine, &id))?;
            let (run, input, bytes) = workflow::prepare_resume::<W>(&engine, &claim, stored, input.into())?;
            let events = subscribe.then(|| run.subscribe());
            let done = tokio::spawn(async move {
                let _claim = claim;
                workflow::drive::<W>(run, input, bytes).await.map(|e| e.state())
            });
            Ok(Started { execution_id: id, events, done })
        })
    }

    fn cancel(&self, engine: &Engine, id: String, wait: bool) -> BoxFuture<Result<()>> {
        let engine = engine.clone();
        Box::pin(async move {
            if !wait && let Some(run) = engine.local_run(&id) {
                if let CancelRequest::Requested(commit) = run.request_cancel(false)? {
                    run.durable(Some(commit)).await?;
                }
                return Ok(());
            }
            Workflow::<W>::new().on(&engine).cancel(&id).await.map(drop)
        })
    }

    fn replay(&self, engine: &Engine, id: String) -> BoxFuture<Result<ExecutionState>> {
        let engine = engine.clone();
        Box::pin(async move { Workflow::<W>::new().on(&engine).replay(&id).await.map(|e| e.state()) })
    }

    fn run_claimed(
        &self,
        engine: &Engine,
        stored: StoredExecution,
        resume: Option<Vec<u8>>,
        on_events: Box<dyn FnOnce(Subscription) + Send>,
    ) -> Result<Started> {
        workflow::check_workflow::<W>(&stored)?;
        let id = stored.id.clone();
        let claim = engine.claim_local(&id)?;
        let input = workflow::decode_input::<W>(&id, &stored.input)?;
        let bytes: Arc<[u8]> = stored.input.into();
        let started = stored.events.iter().any(|e| e.kind() == EventType::WorkflowStarted);
        let run = Arc::new(
            RunState::new(engine.clone(), &id, W::NAME, stored.events).with_parent(stored.parent_id.as_deref()),
        );
        claim.attach(&run);
        on_events(run.subscribe());
        let engine = engine.clone();
        let done = tokio::spawn(async move {
            let _claim = claim;
            match resume {
                Some(resume) => run.set_resume_input(resume.into()),
                None => {
                    let running = Write::SetState {
                        execution_id: run.execution_id.clone(),
                        state: ExecutionState::Running,
                        output: None,
                        time: crate::event::now(),
                    };
                    let began = if started {
                        engine.store().write(vec![running]).await
                    } else {
                        let (source, name) = (run.workflow_source.clone(), run.workflow_name.clone());
                        run.record_durable(EventType::WorkflowStarted, &source, &name, bytes.clone(), Some(running))
                            .await
                    };
                    if let Err(e) = began {
                        run.close();
                        return Err(e);
                    }
                }
            }
            workflow::drive::<W>(run, input, bytes).await.map(|e| e.state())
        });
        Ok(Started { execution_id: id, events: None, done })
    }
}
