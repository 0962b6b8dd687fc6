//! Listing executions (`GET /executions`): the filter as a query, a page of rows as the answer.

use std::time::SystemTime;

use serde::Deserialize;

use super::status::parse_time;
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;

/// How many executions a page holds when the filter does not say.
pub const DEFAULT_LIMIT: u32 = 50;

/// The most executions one page holds; a larger limit is lowered to this.
pub const MAX_LIMIT: u32 = 1000;

/// Which executions [`Client::list_executions`](crate::Client::list_executions) asks for: a
/// workflow, states, a time range of creation, and a page (`limit`, `offset`). Every part is
/// optional; an empty filter asks for the first [`DEFAULT_LIMIT`] executions of every workflow.
///
/// ```
/// use flux::ExecutionState;
/// use flux::client::ExecutionFilter;
///
/// let filter = ExecutionFilter::new()
///     .workflow("checkout")
///     .state(ExecutionState::Failed)
///     .state(ExecutionState::Cancelled)
///     .created_after(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
///     .limit(20);
/// assert_eq!(filter.page_size(), 20);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    workflow: Option<String>,
    states: Vec<ExecutionState>,
    created_after: Option<SystemTime>,
    created_before: Option<SystemTime>,
    limit: Option<u32>,
    offset: Option<u64>,
}

impl ExecutionFilter {
    /// Every execution (the first page of them).
    pub fn new() -> ExecutionFilter {
        ExecutionFilter::default()
    }

    /// Only executions of the workflow `name`.
    pub fn workflow(mut self, name: impl Into<String>) -> ExecutionFilter {
        self.workflow = Some(name.into());
        self
    }

    /// Only executions in `state`; called again, in any of the states given.
    pub fn state(mut self, state: ExecutionState) -> ExecutionFilter {
        if !self.states.contains(&state) {
            self.states.push(state);
        }
        self
    }

    /// Only executions in any of `states` (added to those already given).
    pub fn states(self, states: impl IntoIterator<Item = ExecutionState>) -> ExecutionFilter {
        states.into_iter().fold(self, ExecutionFilter::state)
    }

    /// Only executions created after `time`.
    pub fn created_after(mut self, time: SystemTime) -> ExecutionFilter {
        self.created_after = Some(time);
        self
    }

    /// Only executions created before `time`.
    pub fn created_before(mut self, time: SystemTime) -> ExecutionFilter {
        self.created_before = Some(time);
        self
    }

    /// At most `n` executions (at most [`MAX_LIMIT`]; default [`DEFAULT_LIMIT`]).
    pub fn limit(mut self, n: u32) -> ExecutionFilter {
        self.limit = Some(n.min(MAX_LIMIT));
        self
    }

    /// Skip the first `n` executions that match (for the next pages).
    pub fn offset(mut self, n: u64) -> ExecutionFilter {
        self.offset = Some(n);
        self
    }

    /// The size of the page asked for.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// The same filter, for the page after one that started at `offset` and held `count` rows.
    pub fn next_page(&self, page: &ExecutionPage) -> ExecutionFilter {
        let offset = page.offset.saturating_add(page.executions.len() as u64);
        self.clone().offset(offset)
    }

    /// The query string's pairs: `workflow`, one `state` per state, `created_after` and
    /// `created_before` as RFC 3339 (UTC, microseconds), `limit`, `offset`; only those given.
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(workflow) = &self.workflow {
            pairs.push(("workflow", workflow.clone()));
        }
        for state in &self.states {
            pairs.push(("state", state.as_str().to_string()));
        }
        if let Some(time) = self.created_after {
            pairs.push(("created_after", rfc3339(time)));
        }
        if let Some(time) = self.created_before {
            pairs.push(("created_before", rfc3339(time)));
        }
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(offset) = self.offset {
            pairs.push(("offset", offset.to_string()));
        }
        pairs
    }
}

/// A time as RFC 3339, UTC, with microseconds (`2026-12-07T03:00:00.123456Z`).
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// One execution of a list: what it is and where it stands, without its input, output or log
/// (ask for its status for those).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionRow {
    /// The execution id.
    pub execution_id: String,
    /// The workflow's name.
    pub workflow_name: String,
    /// The version of the workflow the execution started with.
    pub workflow_version: u32,
    /// Its state.
    pub state: ExecutionState,
    /// The execution that started it as a sub-workflow, if any.
    pub parent_id: Option<String>,
    /// The worker that runs (or ran) it, if a worker does.
    pub worker: Option<String>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
}

/// A page of executions: the rows, and where the page is in all that match.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionPage {
    /// The executions of this page.
    pub executions: Vec<ExecutionRow>,
    /// How many executions match the filter in all.
    pub total: u64,
    /// The page size the server used.
    pub limit: u32,
    /// How many matching executions come before this page.
    pub offset: u64,
}

impl ExecutionPage {
    /// Whether more executions match after this page.
    pub fn has_more(&self) -> bool {
        self.offset.saturating_add(self.executions.len() as u64) < self.total
    }
}

#[derive(Deserialize)]
struct WirePage {
    executions: Vec<WireRow>,
    total: u64,
    limit: u32,
    offset: u64,
}

#[derive(Deserialize)]
struct WireRow {
    execution_id: String,
    workflow_name: String,
    #[serde(default = "first_version")]
    workflow_version: u32,
    state: ExecutionState,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    worker: Option<String>,
    created_at: String,
    updated_at: String,
}

/// The version of an execution's workflow when the server does not say.
fn first_version() -> u32 {
    1
}

impl ExecutionPage {
    /// Reads the answer of `GET /executions`.
    pub(crate) fn from_json(value: &serde_json::Value) -> Result<ExecutionPage> {
        let wire = WirePage::deserialize(value).map_err(|e| {
            Error::new(ErrorKind::Http, format!("the server sent a list of executions flux cannot read: {e}"))
        })?;
        let executions = wire
            .executions
            .into_iter()
            .map(|row| {
                Ok(ExecutionRow {
                    created_at: parse_time(&row.created_at)?,
                    updated_at: parse_time(&row.updated_at)?,
                    execution_id: row.execution_id,
                    workflow_name: row.workflow_name,
                    workflow_version: row.workflow_version,
                    state: row.state,
                    parent_id: row.parent_id,
                    worker: row.worker,
                })
            })
            .collect::<Result<_>>()?;
        Ok(ExecutionPage { executions, total: wire.total, limit: wire.limit, offset: wire.offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn an_empty_filter_sends_no_query() {
        assert!(ExecutionFilter::new().query().is_empty());
        assert_eq!(ExecutionFilter::new().page_size(), DEFAULT_LIMIT);
    }

    #[test]
    fn filters_become_the_query_the_server_reads() {
        let after = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_612_400_123_456);
        let before = after + Duration::from_secs(60);
        let filter = ExecutionFilter::new()
            .workflow("check out")
            .state(ExecutionState::Failed)
            .states([ExecutionState::Cancelled, ExecutionState::Failed])
            .created_after(after)
            .created_before(before)
            .limit(5000)
            .offset(100);
        let query = filter.query();
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("workflow", "check out"),
                ("state", "FAILED"),
                ("state", "CANCELLED"),
                ("created_after", "2026-12-07T03:00:00.123456Z"),
                ("created_before", "2026-12-07T03:01:00.123456Z"),
                ("limit", "1000"),
                ("offset", "100"),
            ]
        );
        // As a URL query: percent-encoded, states repeated.
        let mut url = reqwest::Url::parse("http://h:1/executions").unwrap();
        url.query_pairs_mut().extend_pairs(&query);
        assert_eq!(
            url.query(),
            Some(
                "workflow=check+out&state=FAILED&state=CANCELLED&created_after=2026-12-07T03%3A00%3A00.123456Z\
                 &created_before=2026-12-07T03%3A01%3A00.123456Z&limit=1000&offset=100"
            )
        );
    }

    #[test]
    fn pages_are_read_typed() {
        let answer = json!({
            "executions": [
                {"execution_id": "e1", "workflow_name": "checkout", "workflow_version": 2, "state": "COMPLETED",
                 "parent_id": null, "worker": null, "created_at": "2026-12-07T03:00:00.123456Z",
                 "updated_at": "2026-12-07T03:00:01Z"},
                {"execution_id": "e2", "workflow_name": "checkout", "state": "RUNNING",
                 "parent_id": "e1", "worker": "w-1", "created_at": "2026-12-07T03:00:02Z",
                 "updated_at": "2026-12-07T03:00:02Z", "something_new": true},
            ],
            "total": 123,
            "limit": 2,
            "offset": 0,
        });
        let page = ExecutionPage::from_json(&answer).unwrap();
        assert_eq!((page.total, page.limit, page.offset), (123, 2, 0));
        assert!(page.has_more());
        let first = &page.executions[0];
        assert_eq!(
            (first.execution_id.as_str(), first.workflow_version, first.state),
            ("e1", 2, ExecutionState::Completed)
        );
        assert_eq!(first.created_at, SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_612_400_123_456));
        let second = &page.executions[1];
        assert_eq!(
            (second.workflow_version, second.parent_id.as_deref(), second.worker.as_deref()),
            (1, Some("e1"), Some("w-1"))
        );
        let next = ExecutionFilter::new().workflow("checkout").limit(2).next_page(&page);
        assert_eq!(next, ExecutionFilter::new().workflow("checkout").limit(2).offset(2));
    }

    #[test]
    fn answers_that_are_not_pages_are_refused_with_a_reason() {
        for bad in [
            json!([]),
            json!({"executions": [], "total": -1, "limit": 50, "offset": 0}),
            json!({"executions": [{"execution_id": "e"}], "total": 1, "limit": 50, "offset": 0}),
            json!({"executions": [{"execution_id": "e", "workflow_name": "w", "state": "DONE",
                                   "created_at": "2026-12-07T03:00:00Z", "updated_at": "2026-12-07T03:00:00Z"}],
                   "total": 1, "limit": 50, "offset": 0}),
            json!({"executions": [{"execution_id": "e", "workflow_name": "w", "state": "RUNNING",
                                   "created_at": "today", "updated_at": "2026-12-07T03:00:00Z"}],
                   "total": 1, "limit": 50, "offset": 0}),
        ] {
            let err = ExecutionPage::from_json(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Http, "{bad}: {err}");
        }
    }
}
