//! The checked models: what `check` makes of a parsed attribute and function once it has found
//! nothing wrong, and what `expand` generates code from.

use std::time::Duration;

use syn::ext::IdentExt as _;
use syn::{Ident, ItemFn, LitStr, Type};

pub(crate) use crate::ast::Output;

/// One parameter of a task.
pub(crate) struct Arg {
    /// The parameter's name (a generated one for `_`).
    pub(crate) ident: Ident,
    /// Whether it is written `mut name`.
    pub(crate) mutable: bool,
    /// The parameter's type.
    pub(crate) ty: Type,
    /// Filled by flux rather than passed by the caller (and not part of the task id).
    pub(crate) injected: Option<Injected>,
}

/// Parameters flux fills in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    /// `TaskMetadata`, with `metadata = true`.
    Metadata,
    /// `Secrets`, with `secret_requests = [..]`.
    Secrets,
    /// `State<T>`: a value given to the engine, always filled in.
    State,
}

/// The options of `#[flux::task(...)]`, checked; each is its default when not given.
#[derive(Default)]
pub(crate) struct TaskOptions {
    /// `name`: the literal (a template if it has placeholders).
    pub(crate) name: Option<LitStr>,
    /// `retry_max_attempts`: 0 when not given.
    pub(crate) retry_max_attempts: u32,
    /// `retry_delay`.
    pub(crate) retry_delay: Option<Duration>,
    /// `retry_backoff`: above zero.
    pub(crate) retry_backoff: Option<f64>,
    /// `timeout`.
    pub(crate) timeout: Option<Duration>,
    /// `fallback`: the function's path.
    pub(crate) fallback: Option<syn::Path>,
    /// `rollback`: the function's path.
    pub(crate) rollback: Option<syn::Path>,
    /// `cache`.
    pub(crate) cache: bool,
    /// `cache_ttl`: longer than zero.
    pub(crate) cache_ttl: Option<Duration>,
    /// `metadata`: whether a `TaskMetadata` parameter is asked for.
    pub(crate) metadata: bool,
    /// `secret_requests`: the names, non-empty and distinct (`None` when the option is not given).
    pub(crate) secret_requests: Option<Vec<String>>,
    /// `output_storage`: the name of an output storage (`None` keeps outputs inline).
    pub(crate) output_storage: Option<String>,
    /// `max_concurrency`: at least 1, if given.
    pub(crate) max_concurrency: Option<u32>,
}

/// A checked `#[flux::task]`.
pub(crate) struct TaskDef {
    /// The function as written.
    pub(crate) item: ItemFn,
    /// Whether the function is an `async fn`.
    pub(crate) is_async: bool,
    /// The function's parameters, in order.
    pub(crate) args: Vec<Arg>,
    /// What the function returns.
    pub(crate) output: Output,
    /// The attribute's options.
    pub(crate) options: TaskOptions,
    /// The name (the function's, unless `name` gives one).
    pub(crate) name: String,
    /// Whether the name is a template over the arguments.
    pub(crate) templated: bool,
}

/// A checked `#[flux::workflow]`.
pub(crate) struct WorkflowDef {
    /// The function as written.
    pub(crate) item: ItemFn,
    /// The name (the function's, unless `name` gives one).
    pub(crate) name: String,
    /// `version`: 1 unless given.
    pub(crate) version: u32,
    /// `secret_requests`: the names, non-empty and distinct.
    pub(crate) secret_requests: Vec<String>,
    /// `output_storage`: the name of an output storage (`None` keeps outputs inline).
    pub(crate) output_storage: Option<String>,
    /// `schedule`: a cron expression, checked.
    pub(crate) schedule: Option<String>,
    /// `timezone`: the schedule's time zone (UTC unless given).
    pub(crate) timezone: Option<String>,
    /// `max_concurrency`: at least 1, if given.
    pub(crate) max_concurrency: Option<u32>,
    /// `I` of the `ExecutionContext<I>` parameter.
    pub(crate) input: Type,
    /// What the function returns.
    pub(crate) output: Output,
}

impl WorkflowDef {
    /// The function's name without `r#`, for generated identifiers.
    pub(crate) fn name_ident(&self) -> String {
        self.item.sig.ident.unraw().to_string()
    }
}
