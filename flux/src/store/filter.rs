//! Which executions a listing asks for ([`ExecutionFilter`]) and the page that answers it
//! ([`ExecutionPage`]).

use std::time::SystemTime;

use super::ExecutionRow;
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;

/// The executions a listing or a deletion asks for, and which page of them.
///
/// Every condition given must hold (an execution in *any* of the states given counts as in the
/// states); a condition not given holds for every execution. Times are compared as stored, to
/// the microsecond; `created_after` and `created_before` make the half-open interval
/// `[created_after, created_before)`, so that consecutive windows never list an execution twice.
/// Pages are ordered newest first: by creation time, and executions created at the same instant
/// in the opposite order of their creation.
///
/// ```
/// use flux::{ExecutionFilter, ExecutionState};
/// use std::time::{Duration, SystemTime};
///
/// let filter = ExecutionFilter::new()
///     .workflow("orders")
///     .state(ExecutionState::Failed)
///     .state(ExecutionState::Cancelled)
///     .created_after(SystemTime::now() - Duration::from_secs(24 * 3600))
///     .limit(20)
///     .offset(40);
/// assert_eq!(filter.states, [ExecutionState::Failed, ExecutionState::Cancelled]);
/// assert_eq!((filter.limit, filter.offset), (20, 40));
/// assert!(ExecutionFilter::new().limit(1001).check().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionFilter {
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// Only executions in one of these states; empty: in any state.
    pub states: Vec<ExecutionState>,
    /// Only executions created at this instant or later.
    pub created_after: Option<SystemTime>,
    /// Only executions created strictly before this instant.
    pub created_before: Option<SystemTime>,
    /// Only executions whose last change was strictly before this instant.
    pub updated_before: Option<SystemTime>,
    /// Only sub-workflow executions started by one of these executions; empty: any execution,
    /// sub-workflow or not.
    pub parents: Vec<String>,
    /// Only executions that the schedule of this name started: those whose id is the name, `_`
    /// and a fire time of [`FIRE_TIME_LEN`] characters (see `flux::schedule`).
    pub schedule: Option<String>,
    /// The most rows a page holds: [`ExecutionFilter::DEFAULT_LIMIT`] unless set, at most
    /// [`ExecutionFilter::MAX_LIMIT`].
    pub limit: u32,
    /// How many matching executions the page skips, newest first.
    pub offset: u64,
}

impl Default for ExecutionFilter {
    fn default() -> Self {
        ExecutionFilter {
            workflow: None,
            states: Vec::new(),
            created_after: None,
            created_before: None,
            updated_before: None,
            parents: Vec::new(),
            schedule: None,
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl ExecutionFilter {
    /// The rows of a page unless [`ExecutionFilter::limit`] says otherwise.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The most rows a page may hold.
    pub const MAX_LIMIT: u32 = 1000;

    /// Every execution, the first [`ExecutionFilter::DEFAULT_LIMIT`] of them.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only executions of workflow `name`.
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflow = Some(name.into());
        self
    }

    /// Also executions in `state` (each call adds one: an execution in any of them matches).
    pub fn state(mut self, state: ExecutionState) -> Self {
        if !self.states.contains(&state) {
            self.states.push(state);
        }
        self
    }

    /// Also executions in any of `states`.
    pub fn states(self, states: impl IntoIterator<Item = ExecutionState>) -> Self {
        states.into_iter().fold(self, Self::state)
    }

    /// Only finished executions: `COMPLETED`, `FAILED` or `CANCELLED`.
    pub fn finished(self) -> Self {
        self.states(ExecutionState::ALL.iter().copied().filter(|s| s.is_terminal()))
    }

    /// Only executions created at `time` or later.
    pub fn created_after(mut self, time: SystemTime) -> Self {
        self.created_after = Some(time);
        self
    }

    /// Only executions created strictly before `time`.
    pub fn created_before(mut self, time: SystemTime) -> Self {
        self.created_before = Some(time);
        self
    }

    /// Only executions whose last change was strictly before `time`.
    pub fn updated_before(mut self, time: SystemTime) -> Self {
        self.updated_before = Some(time);
        self
    }

    /// Also the sub-workflow executions that execution `id` started (each call adds one: a
    /// sub-workflow of any of them matches).
    pub fn parent(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if !self.parents.contains(&id) {
            self.parents.push(id);
        }
        self
    }

    /// Only executions that schedule `name` started.
    pub fn schedule(mut self, name: impl Into<String>) -> Self {
        self.schedule = Some(name.into());
        self
    }

    /// The id prefix (`{schedule}_`) and the id length of the executions
    /// [`ExecutionFilter::schedule`] asks for.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn schedule_ids(&self) -> Option<(String, usize)> {
        self.schedule.as_ref().map(|name| {
            let prefix = format!("{name}_");
            let len = prefix.len() + FIRE_TIME_LEN;
            (prefix, len)
        })
    }

    /// At most `limit` rows per page (1 to [`ExecutionFilter::MAX_LIMIT`], checked by
    /// [`ExecutionFilter::check`]).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` matching executions.
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Refuses a limit of zero or above [`ExecutionFilter::MAX_LIMIT`] with
    /// [`ErrorKind::Config`], and an offset too large to store. Every [`Store`](super::Store)
    /// checks its filter so before it reads.
    pub fn check(&self) -> Result<()> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(Error::new(
                ErrorKind::Config,
                format!("an execution listing's limit must be between 1 and {}, not {}", Self::MAX_LIMIT, self.limit),
            ));
        }
        if i64::try_from(self.offset).is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("an execution listing's offset must be at most {}, not {}", i64::MAX, self.offset),
            ));
        }
        Ok(())
    }

    /// The filter's time conditions a store states in SQL, each as the column with its
    /// comparison and the instant: `created_at >=`, `created_at <`, `updated_at <`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn time_bounds(&self) -> impl Iterator<Item = (&'static str, SystemTime)> {
        [
            ("created_at >=", self.created_after),
            ("created_at <", self.created_before),
            ("updated_at <", self.updated_before),
        ]
        .into_iter()
        .filter_map(|(condition, at)| at.map(|at| (condition, at)))
    }

    /// Whether the execution of `row` meets every condition of the filter (not the page).
    pub fn matches(&self, row: &ExecutionRow) -> bool {
        self.workflow.as_ref().is_none_or(|w| *w == row.workflow_name)
            && (self.states.is_empty() || self.states.contains(&row.state))
            && self.created_after.is_none_or(|t| row.created_at >= t)
            && self.created_before.is_none_or(|t| row.created_at < t)
            && self.updated_before.is_none_or(|t| row.updated_at < t)
            && (self.parents.is_empty() || row.parent_id.as_ref().is_some_and(|p| self.parents.contains(p)))
            && self.schedule.as_ref().is_none_or(|name| started_by(&row.id, name))
    }
}

/// How many characters the fire time at the end of a scheduled execution's id has
/// (`2026-12-24T18:00:00Z`).
pub const FIRE_TIME_LEN: usize = 20;

/// Whether execution `id` is one that schedule `name` started: `{name}_{fire time}`.
fn started_by(id: &str, name: &str) -> bool {
    id.len() == name.len() + 1 + FIRE_TIME_LEN && id.strip_prefix(name).is_some_and(|rest| rest.starts_with('_'))
}

/// One page of a listing: the rows, newest first, and how many executions match in all.
///
/// ```
/// let page = flux::ExecutionPage::new(Vec::new(), 0);
/// assert!(page.executions.is_empty() && page.total == 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionPage {
    /// The rows of the page, newest first.
    pub executions: Vec<ExecutionRow>,
    /// How many executions meet the filter's conditions, on every page.
    pub total: u64,
}

impl ExecutionPage {
    /// A page of `executions` out of `total`.
    pub fn new(executions: Vec<ExecutionRow>, total: u64) -> Self {
        ExecutionPage { executions, total }
    }
}
