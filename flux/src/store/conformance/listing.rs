//! Listing executions a page at a time ([`Store::list_executions`]) and deleting finished ones
//! ([`Write::DeleteExecution`]).

use std::sync::Arc;
use std::time::SystemTime;

use super::{accept, append, at, create, exists, lease, load, refuse, seqs, set_state};
use crate::error::ErrorKind;
use crate::event::ExecutionState;
use crate::store::{ExecutionFilter, ExecutionPage, LeaseMode, Store, Write};

/// A creation of `id`, of workflow `workflow`, sub-workflow of `parent`, in `state`, at `time`.
fn create_full(id: &str, workflow: &str, parent: Option<&str>, state: ExecutionState, time: SystemTime) -> Write {
    Write::CreateExecution {
        id: id.into(),
        workflow_name: workflow.into(),
        state,
        input: Arc::from(&[0xc0u8][..]),
        parent_id: parent.map(Arc::from),
        version: 1,
        time,
    }
}

/// The page `filter` asks for, which the store must give.
fn page(store: &dyn Store, filter: &ExecutionFilter) -> ExecutionPage {
    store.list_executions(filter).unwrap_or_else(|err| panic!("the listing {filter:?} failed: {err}"))
}

/// The ids of the page `filter` asks for, in its order.
fn listed(store: &dyn Store, filter: &ExecutionFilter) -> Vec<String> {
    page(store, filter).executions.into_iter().map(|row| row.id).collect()
}

/// A listing gives the newest executions first; executions created at the same instant come in
/// the opposite order of their creation (the last created first), whatever their ids.
pub async fn listings_are_newest_first(store: &dyn Store) {
    for (id, time) in [("b", 2), ("d", 1), ("a", 3), ("c", 2), ("e", 2)] {
        accept(store, vec![create_full(id, "wf", None, ExecutionState::Running, at(time))], "a creation").await;
    }
    assert_eq!(listed(store, &ExecutionFilter::new()), ["a", "e", "c", "b", "d"], "newest first, then last created");
}

/// A listing of one workflow gives only its executions, and counts only them.
pub async fn listings_filter_by_workflow(store: &dyn Store) {
    for (id, workflow) in [("a", "orders"), ("b", "billing"), ("c", "orders"), ("d", "orders-2")] {
        accept(store, vec![create_full(id, workflow, None, ExecutionState::Running, at(0))], "a creation").await;
    }
    let orders = page(store, &ExecutionFilter::new().workflow("orders"));
    let ids: Vec<&str> = orders.executions.iter().map(|row| row.id.as_str()).collect();
    assert_eq!((ids, orders.total), (vec!["c", "a"], 2), "the executions of `orders`");
    assert_eq!(page(store, &ExecutionFilter::new().workflow("nope")).total, 0, "an unknown workflow");
}

/// A listing of several states gives the executions in any of them; of none, those in every
/// state.
pub async fn listings_filter_by_any_of_several_states(store: &dyn Store) {
    for (n, &state) in ExecutionState::ALL.iter().enumerate() {
        let time = at(u64::try_from(n).unwrap());
        accept(store, vec![create_full(&format!("{state}"), "wf", None, state, time)], "a creation").await;
    }
    let filter = ExecutionFilter::new().state(ExecutionState::Completed).state(ExecutionState::Paused);
    assert_eq!(listed(store, &filter), ["PAUSED", "COMPLETED"], "COMPLETED or PAUSED");
    let finished = ExecutionFilter::new().finished();
    assert_eq!(listed(store, &finished), ["CANCELLED", "FAILED", "COMPLETED"], "the finished ones");
    assert_eq!(page(store, &ExecutionFilter::new()).total, ExecutionState::ALL.len() as u64, "no state given");
}

/// `created_after` and `created_before` make the half-open window `[after, before)`.
pub async fn listings_filter_by_creation_time(store: &dyn Store) {
    for n in 1..=5 {
        let writes = vec![create_full(&format!("x{n}"), "wf", None, ExecutionState::Running, at(n * 10))];
        accept(store, writes, "a creation").await;
    }
    let window = ExecutionFilter::new().created_after(at(20)).created_before(at(40));
    assert_eq!(listed(store, &window), ["x3", "x2"], "created in [20, 40)");
    assert_eq!(listed(store, &ExecutionFilter::new().created_after(at(41))), ["x5"], "created at 41 or later");
    assert_eq!(listed(store, &ExecutionFilter::new().created_before(at(10))), Vec::<String>::new(), "before 10");
}

/// `updated_before` gives the executions whose last change was strictly before the instant.
pub async fn listings_filter_by_last_change(store: &dyn Store) {
    for id in ["a", "b", "c"] {
        accept(store, vec![create_full(id, "wf", None, ExecutionState::Running, at(1))], "a creation").await;
    }
    let change = |id: &str, time| Write::SetState {
        execution_id: id.into(),
        state: ExecutionState::Completed,
        output: None,
        time: at(time),
    };
    accept(store, vec![change("a", 10), change("b", 20)], "two changes").await;
    assert_eq!(listed(store, &ExecutionFilter::new().updated_before(at(20))), ["c", "a"], "changed before 20");
    let old_finished = ExecutionFilter::new().finished().updated_before(at(21));
    assert_eq!(listed(store, &old_finished), ["b", "a"], "finished and changed before 21");
}

/// A listing of one parent gives the sub-workflows it started, not their own sub-workflows; of
/// several parents, those any of them started.
pub async fn listings_filter_by_parent(store: &dyn Store) {
    let writes = vec![
        create_full("p", "wf", None, ExecutionState::Running, at(0)),
        create_full("c1", "sub", Some("p"), ExecutionState::Running, at(1)),
        create_full("c2", "sub", Some("p"), ExecutionState::Completed, at(2)),
        create_full("g", "sub", Some("c1"), ExecutionState::Running, at(3)),
    ];
    accept(store, writes, "a parent, two children and a grandchild").await;
    assert_eq!(listed(store, &ExecutionFilter::new().parent("p")), ["c2", "c1"], "the children of `p`");
    let running = ExecutionFilter::new().parent("p").state(ExecutionState::Running);
    assert_eq!(listed(store, &running), ["c1"], "the running children of `p`");
    assert_eq!(listed(store, &ExecutionFilter::new().parent("g")), Vec::<String>::new(), "a childless execution");
    let both = ExecutionFilter::new().parent("c1").parent("p");
    assert_eq!(listed(store, &both), ["g", "c2", "c1"], "the children of `p` or `c1`");
}

/// A page holds at most `limit` rows after skipping `offset`, and its total counts every
/// matching execution, whatever the page; a page past the end is empty with the same total.
pub async fn listings_page_with_limit_and_offset(store: &dyn Store) {
    for n in 0..7u64 {
        let state = if n % 2 == 0 { ExecutionState::Completed } else { ExecutionState::Failed };
        accept(store, vec![create_full(&format!("x{n}"), "wf", None, state, at(n))], "a creation").await;
    }
    let all = ExecutionFilter::new();
    let first = page(store, &all.clone().limit(3));
    let ids: Vec<&str> = first.executions.iter().map(|row| row.id.as_str()).collect();
    assert_eq!((ids, first.total), (vec!["x6", "x5", "x4"], 7), "the first page of 3");
    let third = page(store, &all.clone().limit(3).offset(6));
    let ids: Vec<&str> = third.executions.iter().map(|row| row.id.as_str()).collect();
    assert_eq!((ids, third.total), (vec!["x0"], 7), "the last page of 3");
    let past = page(store, &all.clone().limit(3).offset(100));
    assert_eq!((past.executions.len(), past.total), (0, 7), "a page past the end");
    let completed = page(store, &all.state(ExecutionState::Completed).limit(2).offset(1));
    let ids: Vec<&str> = completed.executions.iter().map(|row| row.id.as_str()).collect();
    assert_eq!((ids, completed.total), (vec!["x4", "x2"], 4), "the second and third COMPLETED");
}

/// Without a limit a page holds [`ExecutionFilter::DEFAULT_LIMIT`] rows; a limit of zero or
/// above [`ExecutionFilter::MAX_LIMIT`] is refused with `Config`, naming it.
pub async fn listings_refuse_a_limit_out_of_range(store: &dyn Store) {
    let writes: Vec<Write> =
        (0..60).map(|n| create_full(&format!("x{n}"), "wf", None, ExecutionState::Running, at(n))).collect();
    accept(store, writes, "60 creations").await;
    let default = page(store, &ExecutionFilter::new());
    assert_eq!((default.executions.len(), default.total), (50, 60), "a page of the default size");
    assert_eq!(page(store, &ExecutionFilter::new().limit(ExecutionFilter::MAX_LIMIT)).executions.len(), 60);
    for limit in [0, ExecutionFilter::MAX_LIMIT + 1, u32::MAX] {
        match store.list_executions(&ExecutionFilter::new().limit(limit)) {
            Ok(_) => panic!("a listing with limit {limit} was answered; it must be refused"),
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Config, "the refusal of limit {limit}: {err}");
                assert!(err.to_string().contains(&format!("not {limit}")), "the refusal names the limit: {err}");
            }
        }
    }
}

/// A listed row has every field of the execution: workflow, version, state, parent, worker,
/// generation, creation and last change, lease owner and end.
pub async fn listed_rows_keep_every_field(store: &dyn Store) {
    let mut created = create_full("x", "orders", Some("p"), ExecutionState::Scheduled, at(5));
    if let Write::CreateExecution { version, .. } = &mut created {
        *version = 3;
    }
    let until = super::future();
    let change =
        Write::SetState { execution_id: "x".into(), state: ExecutionState::Running, output: None, time: at(9) };
    let writes = vec![created, change, Write::claim("x", Some("w1"), 1), lease("x", "e", until, LeaseMode::Own)];
    accept(store, writes, "the creation, a change, a claim and a lease of `x`").await;
    let rows = page(store, &ExecutionFilter::new()).executions;
    let [row] = &rows[..] else { panic!("one row is listed, not {}", rows.len()) };
    assert_eq!((row.id.as_str(), row.workflow_name.as_str(), row.version), ("x", "orders", 3), "id, workflow, version");
    assert_eq!((row.state, row.parent_id.as_deref()), (ExecutionState::Running, Some("p")), "state and parent");
    assert_eq!((row.worker.as_deref(), row.claim_generation), (Some("w1"), 1), "worker and generation");
    assert_eq!((row.created_at, row.updated_at), (at(5), at(9)), "creation and last change");
    assert_eq!((row.owner.as_deref(), row.lease_until), (Some("e"), Some(until)), "lease");
}

/// Deleting a finished execution removes it and its log: it no longer loads, has no state, is
/// not listed, and its id can be created again with a new log.
pub async fn deletions_remove_a_finished_execution_and_its_log(store: &dyn Store) {
    for &state in ExecutionState::ALL.iter().filter(|s| s.is_terminal()) {
        let id = format!("x-{state}");
        let writes = vec![create(&id, ExecutionState::Running), append(&id, 1), append(&id, 2), set_state(&id, state)];
        accept(store, writes, "an execution with two events that finished").await;
        accept(store, vec![Write::delete_execution(id.as_str())], &format!("the deletion of a {state} execution"))
            .await;
        assert!(!exists(store, &id), "a deleted {state} execution still loads");
        assert_eq!(store.state(&id).unwrap(), None, "a deleted {state} execution has a state");
        assert!(listed(store, &ExecutionFilter::new()).iter().all(|listed| *listed != id), "a deleted one is listed");
        accept(store, vec![create(&id, ExecutionState::Running), append(&id, 1)], "the id created again").await;
        assert_eq!(seqs(store, &id), [1], "the log of an id created again after a deletion");
    }
}

/// Deleting an execution that has not finished is refused with `InvalidState`, naming it and
/// its state, and deletes nothing.
pub async fn deletions_of_unfinished_executions_are_refused(store: &dyn Store) {
    for &state in ExecutionState::ALL.iter().filter(|s| !s.is_terminal()) {
        let id = format!("x-{state}");
        accept(store, vec![create(&id, state), append(&id, 1)], "a creation").await;
        let what = format!("the deletion of a {state} execution");
        let err = refuse(store, vec![Write::delete_execution(id.as_str())], ErrorKind::InvalidState, &what).await;
        assert!(err.to_string().contains(&format!("execution `{id}` is {state}")), "{what}: {err}");
        assert_eq!(seqs(store, &id), [1], "{what} was refused, yet the execution or its log changed");
    }
}

/// Deleting an execution that does not exist (or no longer does) is `NotFound`.
pub async fn deletions_of_unknown_executions_are_not_found(store: &dyn Store) {
    refuse(store, vec![Write::delete_execution("nope")], ErrorKind::NotFound, "the deletion of `nope`").await;
    accept(store, vec![create("x", ExecutionState::Completed)], "a creation").await;
    accept(store, vec![Write::delete_execution("x")], "the deletion of `x`").await;
    refuse(store, vec![Write::delete_execution("x")], ErrorKind::NotFound, "a second deletion of `x`").await;
}

/// A refused deletion refuses its whole batch: a finished execution deleted before it in the
/// batch stays.
pub async fn a_refused_deletion_refuses_its_batch(store: &dyn Store) {
    accept(store, vec![create("done", ExecutionState::Completed), create("busy", ExecutionState::Running)], "two")
        .await;
    let writes = vec![Write::delete_execution("done"), Write::delete_execution("busy")];
    refuse(store, writes, ErrorKind::InvalidState, "a batch deleting a finished and a running execution").await;
    assert!(exists(store, "done") && exists(store, "busy"), "a refused batch deleted something");
}

/// A deletion removes only its execution: others, its sub-workflows among them, stay with their
/// logs.
pub async fn deletions_leave_other_executions_alone(store: &dyn Store) {
    let writes = vec![
        create_full("p", "wf", None, ExecutionState::Completed, at(0)),
        create_full("c", "sub", Some("p"), ExecutionState::Completed, at(1)),
        create("other", ExecutionState::Completed),
        append("other", 1),
    ];
    accept(store, writes, "a parent, its child and another execution").await;
    accept(store, vec![Write::delete_execution("p")], "the deletion of `p`").await;
    assert!(!exists(store, "p"), "the deleted parent still loads");
    assert_eq!(load(store, "c").parent_id.as_deref(), Some("p"), "the child of a deleted parent");
    assert_eq!(seqs(store, "other"), [1], "the log of another execution");
}

/// A batch sees its own deletions: after one, an append to the execution is `NotFound`, and the
/// id may be created again in the same batch.
pub async fn a_batch_sees_its_own_deletions(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Completed), append("x", 1), append("x", 2)], "a creation").await;
    let writes = vec![Write::delete_execution("x"), append("x", 3)];
    refuse(store, writes, ErrorKind::NotFound, "a batch deleting `x`, then appending to it").await;
    assert_eq!(seqs(store, "x"), [1, 2], "a refused batch deleted `x`");
    let writes = vec![Write::delete_execution("x"), create("x", ExecutionState::Running), append("x", 1)];
    accept(store, writes, "a batch deleting `x`, then creating it again").await;
    assert_eq!((load(store, "x").state, seqs(store, "x")), (ExecutionState::Running, vec![1]), "the new `x`");
}
