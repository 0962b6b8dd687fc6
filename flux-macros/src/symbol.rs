//! The names of the macros' options, in one place. The parser recognises options by these
//! names, the checks name them in their messages, and the "unknown option" error lists them:
//! a new option is added here first.

use std::fmt;

/// The name of an option as written in an attribute (`timeout` in `#[task(timeout = "1s")]`).
///
/// An `Ident` compares equal to a `Symbol` of the same text, and symbols can be matched on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Symbol(&'static str);

impl Symbol {
    /// The name as written.
    pub(crate) const fn as_str(self) -> &'static str {
        self.0
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `name`: the name of a task or workflow (for a task, possibly a template over its arguments).
pub(crate) const NAME: Symbol = Symbol("name");
/// `retry_max_attempts`: how many times a failed task is tried again.
pub(crate) const RETRY_MAX_ATTEMPTS: Symbol = Symbol("retry_max_attempts");
/// `retry_delay`: the wait before the first retry.
pub(crate) const RETRY_DELAY: Symbol = Symbol("retry_delay");
/// `retry_backoff`: the factor each further retry's wait grows by.
pub(crate) const RETRY_BACKOFF: Symbol = Symbol("retry_backoff");
/// `timeout`: how long one attempt of a task may run.
pub(crate) const TIMEOUT: Symbol = Symbol("timeout");
/// `fallback`: the function giving the output when every attempt failed.
pub(crate) const FALLBACK: Symbol = Symbol("fallback");
/// `rollback`: the function undoing a task when its workflow fails later.
pub(crate) const ROLLBACK: Symbol = Symbol("rollback");
/// `cache`: whether a task's outputs are reused across executions.
pub(crate) const CACHE: Symbol = Symbol("cache");
/// `cache_ttl`: how long a cached output is reused (and turns the cache on).
pub(crate) const CACHE_TTL: Symbol = Symbol("cache_ttl");
/// `metadata`: asks for a `TaskMetadata` parameter.
pub(crate) const METADATA: Symbol = Symbol("metadata");
/// `secret_requests`: the secrets a `Secrets` parameter (or a workflow) gets.
pub(crate) const SECRET_REQUESTS: Symbol = Symbol("secret_requests");
/// `output_storage`: where outputs are kept (`"inline"`, in the log, by default).
pub(crate) const OUTPUT_STORAGE: Symbol = Symbol("output_storage");

/// `version`: the version of a workflow's code, stored with each of its executions.
pub(crate) const VERSION: Symbol = Symbol("version");
/// `schedule`: a cron expression the workflow is started at (feature `schedule`).
pub(crate) const SCHEDULE: Symbol = Symbol("schedule");
/// `max_concurrency`: how many executions of a workflow an engine runs at once.
pub(crate) const MAX_CONCURRENCY: Symbol = Symbol("max_concurrency");
/// `timezone`: the time zone the `schedule` is read in.
pub(crate) const TIMEZONE: Symbol = Symbol("timezone");

/// The options of `#[task]`, in the order messages list them.
pub(crate) const TASK_OPTIONS: &[Symbol] = &[
    NAME,
    RETRY_MAX_ATTEMPTS,
    RETRY_DELAY,
    RETRY_BACKOFF,
    TIMEOUT,
    FALLBACK,
    ROLLBACK,
    CACHE,
    CACHE_TTL,
    METADATA,
    SECRET_REQUESTS,
    OUTPUT_STORAGE,
    MAX_CONCURRENCY,
];

/// The options of `#[workflow]`, in the order messages list them.
pub(crate) const WORKFLOW_OPTIONS: &[Symbol] =
    &[NAME, VERSION, SECRET_REQUESTS, OUTPUT_STORAGE, SCHEDULE, TIMEZONE, MAX_CONCURRENCY];

/// `symbols` as a list for messages: `name, secret_requests, output_storage`.
pub(crate) fn list(symbols: &[Symbol]) -> String {
    symbols.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_compare_with_symbols() {
        let ident = proc_macro2::Ident::new("timeout", proc_macro2::Span::call_site());
        assert!(ident == TIMEOUT);
        assert!(ident != CACHE);
        assert_eq!(
            list(WORKFLOW_OPTIONS),
            "name, version, secret_requests, output_storage, schedule, timezone, max_concurrency"
        );
    }

    #[test]
    fn options_are_listed_once_and_workflow_options_but_version_and_schedule_are_task_options() {
        for options in [TASK_OPTIONS, WORKFLOW_OPTIONS] {
            for (i, a) in options.iter().enumerate() {
                assert!(options[i + 1..].iter().all(|b| a != b), "{a} is listed twice");
            }
        }
        let workflow_only = [VERSION, SCHEDULE, TIMEZONE];
        assert!(WORKFLOW_OPTIONS.iter().all(|w| workflow_only.contains(w) || TASK_OPTIONS.contains(w)));
        assert!(workflow_only.iter().all(|w| !TASK_OPTIONS.contains(w)), "a task has no version or schedule");
    }
}
