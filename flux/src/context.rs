//! [`ExecutionContext`]: the first parameter of every workflow, its view of the execution it runs
//! in.

use std::fmt;
use std::sync::Arc;

use crate::event::Event;
use crate::run::RunState;
use crate::secrets::Secrets;

/// The first parameter of every workflow: the input and what the body may ask of its execution.
///
/// ```
/// use flux::prelude::*;
///
/// #[flux::workflow]
/// async fn greet(ctx: ExecutionContext<String>) -> String {
///     format!("{} says hi to {}", ctx.workflow_name(), ctx.input())
/// }
/// ```
pub struct ExecutionContext<I> {
    run: Arc<RunState>,
    input: I,
    secrets: Secrets,
}

impl<I> ExecutionContext<I> {
    pub(crate) fn new(run: Arc<RunState>, input: I, secrets: Secrets) -> Self {
        ExecutionContext { run, input, secrets }
    }

    /// The secrets the workflow asked for with `#[flux::workflow(secret_requests = [..])]`.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.run.execution_id
    }

    /// The workflow name.
    pub fn workflow_name(&self) -> &str {
        &self.run.workflow_name
    }

    /// The workflow's input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// Consumes the context, returning the input.
    pub fn into_input(self) -> I {
        self.input
    }

    /// The log so far (a copy).
    pub fn events(&self) -> Vec<Event> {
        self.run.events()
    }
}

impl<I: fmt::Debug> fmt::Debug for ExecutionContext<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionContext")
            .field("execution_id", &self.execution_id())
            .field("workflow_name", &self.workflow_name())
            .field("input", &self.input)
            .finish()
    }
}
