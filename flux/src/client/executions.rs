//! Listing executions (`GET /executions`): [`ExecutionFilter`] as the query, an
//! [`ExecutionList`] of [`ListedExecution`]s as the answer.
//!
//! The filter is the engine's own ([`crate::ExecutionFilter`]): a listing asked of a server
//! selects what the same filter selects in [`Engine::list_executions`](crate::Engine::list_executions).
//! The answer has types of its own because it is what the server sends, not what a store holds:
//! [`ListedExecution`] is a row as the wire carries it (its execution id, not a store's key; the
//! times parsed from RFC 3339), and [`ExecutionList`] says where the page is (the limit and
//! offset the server used), which the engine's [`ExecutionPage`](crate::ExecutionPage) leaves to
//! the caller.

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use super::status::parse_time;
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::store::ExecutionFilter;

/// The query string of `GET /executions` for `filter`: `workflow`, one `state` per state,
/// `created_after`, `created_before` and `updated_before` as RFC 3339 (UTC, microseconds), one
/// `parent` per parent, `limit` (always: the filter always holds one) and `offset` (unless 0).
/// Every criterion the filter can hold is sent; the server reads the same names
/// (`server::api::execution_filter`).
pub(crate) fn query(filter: &ExecutionFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(workflow) = &filter.workflow {
        pairs.push(("workflow", workflow.clone()));
    }
    for state in &filter.states {
        pairs.push(("state", state.as_str().to_string()));
    }
    for (key, time) in [
        ("created_after", filter.created_after),
        ("created_before", filter.created_before),
        ("updated_before", filter.updated_before),
    ] {
        if let Some(time) = time {
            pairs.push((key, rfc3339(time)));
        }
    }
    for parent in &filter.parents {
        pairs.push(("parent", parent.clone()));
    }
    if let Some(schedule) = &filter.schedule {
        pairs.push(("schedule", schedule.clone()));
    }
    pairs.push(("limit", filter.limit.to_string()));
    if filter.offset != 0 {
        pairs.push(("offset", filter.offset.to_string()));
    }
    pairs
}

/// A time as RFC 3339, UTC, with microseconds (`2026-12-07T03:00:00.123456Z`): the precision
/// executions are stored with, so that a window's bounds are compared as given.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// One execution of an [`ExecutionList`]: what it is and where it stands, without its input,
/// output or log (ask for its status for those).
///
/// Named apart from the engine's [`ExecutionRow`](crate::ExecutionRow), which is a store's row:
/// this is the same execution as a server lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedExecution {
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

/// The answer of [`Client::list_executions`](crate::Client::list_executions): a page of
/// executions, newest first, and where the page is in all that match.
///
/// ```no_run
/// use flux::ExecutionFilter;
///
/// # async fn demo() -> flux::Result<()> {
/// let client = flux::Client::new("http://127.0.0.1:8000")?;
/// let mut filter = ExecutionFilter::new().workflow("checkout").limit(100);
/// loop {
///     let list = client.list_executions(filter.clone()).await?;
///     for execution in &list.executions {
///         println!("{} {}", execution.execution_id, execution.state);
///     }
///     match list.next(&filter) {
///         Some(next) => filter = next,
///         None => break,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionList {
    /// The executions of this page, newest first.
    pub executions: Vec<ListedExecution>,
    /// How many executions match the filter in all.
    pub total: u64,
    /// The page size the server used.
    pub limit: u32,
    /// How many matching executions come before this page.
    pub offset: u64,
    /// The answer as the server sent it.
    json: Value,
}

impl ExecutionList {
    /// Whether more executions match after this page.
    pub fn has_more(&self) -> bool {
        self.offset.saturating_add(self.executions.len() as u64) < self.total
    }

    /// `filter` (the one this page answered) moved to the page after this one, or `None` when
    /// this page is the last ([`ExecutionList::has_more`] is false). The next page starts
    /// after the executions this one holds.
    pub fn next(&self, filter: &ExecutionFilter) -> Option<ExecutionFilter> {
        if !self.has_more() {
            return None;
        }
        Some(filter.clone().offset(self.offset.saturating_add(self.executions.len() as u64)))
    }

    /// The answer as the server sent it (`{"executions": [...], "total", "limit", "offset"}`),
    /// with any field this client does not read.
    pub fn json(&self) -> &Value {
        &self.json
    }
}

#[derive(Deserialize)]
struct WireList {
    executions: Vec<WireExecution>,
    total: u64,
    limit: u32,
    offset: u64,
}

#[derive(Deserialize)]
struct WireExecution {
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

impl ExecutionList {
    /// Reads an answer of `GET /executions` (such as [`ExecutionList::json`] gives back); one
    /// that is not such an answer is an error of kind [`ErrorKind::Http`] saying why.
    ///
    /// ```
    /// let answer = serde_json::json!({
    ///     "executions": [{"execution_id": "e1", "workflow_name": "checkout", "workflow_version": 1,
    ///                     "state": "FAILED", "parent_id": null, "worker": null,
    ///                     "created_at": "2026-12-07T03:00:00Z", "updated_at": "2026-12-07T03:00:01Z"}],
    ///     "total": 1, "limit": 50, "offset": 0,
    /// });
    /// let list = flux::client::ExecutionList::from_json(answer)?;
    /// assert_eq!(list.executions[0].state, flux::ExecutionState::Failed);
    /// assert!(!list.has_more());
    /// # Ok::<(), flux::Error>(())
    /// ```
    pub fn from_json(json: Value) -> Result<ExecutionList> {
        let wire = WireList::deserialize(&json).map_err(|e| {
            Error::new(ErrorKind::Http, format!("the server sent a list of executions flux cannot read: {e}"))
        })?;
        let executions = wire
            .executions
            .into_iter()
            .map(|row| {
                Ok(ListedExecution {
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
        Ok(ExecutionList { executions, total: wire.total, limit: wire.limit, offset: wire.offset, json })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn an_empty_filter_sends_only_its_limit() {
        assert_eq!(query(&ExecutionFilter::new()), [("limit", "50".to_string())]);
    }

    #[test]
    fn every_criterion_becomes_the_query_the_server_reads() {
        let after = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_612_400_123_456);
        let before = after + Duration::from_secs(60);
        let filter = ExecutionFilter::new()
            .workflow("check out")
            .state(ExecutionState::Failed)
            .states([ExecutionState::Cancelled, ExecutionState::Failed])
            .created_after(after)
            .created_before(before)
            .updated_before(before)
            .parent("p1")
            .parent("p2")
            .limit(1000)
            .offset(100);
        let query = query(&filter);
        let shown: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            shown,
            [
                ("workflow", "check out"),
                ("state", "FAILED"),
                ("state", "CANCELLED"),
                ("created_after", "2026-12-07T03:00:00.123456Z"),
                ("created_before", "2026-12-07T03:01:00.123456Z"),
                ("updated_before", "2026-12-07T03:01:00.123456Z"),
                ("parent", "p1"),
                ("parent", "p2"),
                ("limit", "1000"),
                ("offset", "100"),
            ]
        );
        // As a URL query: percent-encoded, states and parents repeated.
        let mut url = reqwest::Url::parse("http://h:1/executions").unwrap();
        url.query_pairs_mut().extend_pairs(&query);
        assert_eq!(
            url.query(),
            Some(
                "workflow=check+out&state=FAILED&state=CANCELLED&created_after=2026-12-07T03%3A00%3A00.123456Z\
                 &created_before=2026-12-07T03%3A01%3A00.123456Z&updated_before=2026-12-07T03%3A01%3A00.123456Z\
                 &parent=p1&parent=p2&limit=1000&offset=100"
            )
        );
    }

    #[test]
    fn lists_are_read_typed_and_kept_as_sent() {
        let answer = json!({
            "executions": [
                {"execution_id": "e1", "workflow_name": "checkout", "workflow_version": 2, "state": "COMPLETED",
                 "parent_id": null, "worker": null, "created_at": "2026-12-07T03:00:00.123456Z",
                 "updated_at": "2026-12-07T03:00:01Z"},
                {"execution_id": "e2", "workflow_name": "checkout", "state": "RUNNING",
                 "parent_id": "e1", "worker": "w-1", "created_at": "2026-12-07T03:00:02Z",
                 "updated_at": "2026-12-07T03:00:02Z", "something_new": true},
            ],
            "total": 3,
            "limit": 2,
            "offset": 0,
        });
        let list = ExecutionList::from_json(answer.clone()).unwrap();
        assert_eq!((list.total, list.limit, list.offset), (3, 2, 0));
        assert_eq!(list.json(), &answer);
        let first = &list.executions[0];
        assert_eq!(
            (first.execution_id.as_str(), first.workflow_version, first.state),
            ("e1", 2, ExecutionState::Completed)
        );
        assert_eq!(first.created_at, SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_612_400_123_456));
        let second = &list.executions[1];
        assert_eq!(
            (second.workflow_version, second.parent_id.as_deref(), second.worker.as_deref()),
            (1, Some("e1"), Some("w-1"))
        );
    }

    #[test]
    fn the_next_page_starts_after_this_one_and_there_is_none_after_the_last() {
        let row = json!({"execution_id": "e", "workflow_name": "w", "state": "COMPLETED",
                         "created_at": "2026-12-07T03:00:00Z", "updated_at": "2026-12-07T03:00:00Z"});
        let list = |count: usize, total: u64, offset: u64| {
            let executions = vec![row.clone(); count];
            ExecutionList::from_json(json!({"executions": executions, "total": total, "limit": 2, "offset": offset}))
                .unwrap()
        };
        let filter = ExecutionFilter::new().workflow("w").limit(2);
        let first = list(2, 5, 0);
        assert!(first.has_more());
        assert_eq!(first.next(&filter), Some(filter.clone().offset(2)));
        let middle = list(2, 5, 2);
        assert_eq!(middle.next(&filter.clone().offset(2)), Some(filter.clone().offset(4)));
        let last = list(1, 5, 4);
        assert!(!last.has_more());
        assert_eq!(last.next(&filter.clone().offset(4)), None);
        assert_eq!(list(0, 0, 0).next(&filter), None);
        // Past the end: nothing more either.
        assert_eq!(list(0, 5, 10).next(&filter.clone().offset(10)), None);
    }

    #[test]
    fn answers_that_are_not_lists_are_refused_with_a_reason() {
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
            let err = ExecutionList::from_json(bad.clone()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Http, "{bad}: {err}");
        }
    }
}
