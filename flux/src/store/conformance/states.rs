//! An execution's state: which changes are allowed, how a batch sees its own writes, and the
//! reads by state.

use std::sync::Arc;

use super::{accept, at, create, create_at, future, ids, lease, list, load, refuse, row, set_state};
use crate::error::ErrorKind;
use crate::event::ExecutionState;
use crate::store::{LeaseMode, Store, Write};

/// The state an execution has in the store, which must be known.
fn state_of(store: &dyn Store, id: &str) -> ExecutionState {
    match store.state(id) {
        Ok(Some(state)) => state,
        Ok(None) => panic!("execution `{id}` has no state"),
        Err(err) => panic!("the state of `{id}` could not be read: {err}"),
    }
}

/// A finished execution (`COMPLETED`, `FAILED`, `CANCELLED`) never changes state again, not even
/// to the state it has: every change is refused with `InvalidState`.
pub async fn finished_executions_never_change(store: &dyn Store) {
    for &from in ExecutionState::ALL.iter().filter(|s| s.is_terminal()) {
        for &to in ExecutionState::ALL {
            let id = format!("{from}-{to}");
            accept(store, vec![create(&id, from)], "a creation").await;
            let what = format!("a change of a {from} execution to {to}");
            refuse(store, vec![set_state(&id, to)], ErrorKind::InvalidState, &what).await;
            assert_eq!(state_of(store, &id), from, "{what} was refused, yet the state changed");
        }
    }
}

/// A `CANCELLING` execution only finishes: it may become `COMPLETED`, `FAILED`, `CANCELLED` (or
/// stay `CANCELLING`); any other change is refused with `InvalidState`.
pub async fn cancelling_executions_only_finish(store: &dyn Store) {
    for &to in ExecutionState::ALL {
        let id = format!("cancelling-{to}");
        accept(store, vec![create(&id, ExecutionState::Running)], "a creation").await;
        accept(store, vec![set_state(&id, ExecutionState::Cancelling)], "a cancellation").await;
        let what = format!("a change of a CANCELLING execution to {to}");
        if to.is_terminal() || to == ExecutionState::Cancelling {
            accept(store, vec![set_state(&id, to)], &what).await;
            assert_eq!(state_of(store, &id), to, "{what} was accepted, yet not stored");
        } else {
            refuse(store, vec![set_state(&id, to)], ErrorKind::InvalidState, &what).await;
            assert_eq!(state_of(store, &id), ExecutionState::Cancelling, "{what} was refused, yet stored");
        }
    }
}

/// An execution neither finished nor cancelling may move to any state.
pub async fn unfinished_executions_change_state_freely(store: &dyn Store) {
    let unfinished = ExecutionState::ALL.iter().filter(|s| !s.is_terminal() && **s != ExecutionState::Cancelling);
    for &from in unfinished {
        for &to in ExecutionState::ALL {
            let id = format!("{from}-{to}");
            accept(store, vec![create(&id, from)], "a creation").await;
            accept(store, vec![set_state(&id, to)], &format!("a change of a {from} execution to {to}")).await;
            assert_eq!(state_of(store, &id), to, "a change of a {from} execution to {to} was not stored");
        }
    }
}

/// A state change of an execution that does not exist is `NotFound`, and creates nothing.
pub async fn state_changes_of_unknown_executions_are_not_found(store: &dyn Store) {
    let what = "a state change of an unknown execution";
    refuse(store, vec![set_state("nope", ExecutionState::Completed)], ErrorKind::NotFound, what).await;
    assert_eq!(store.state("nope").unwrap(), None, "{what} created it");
}

/// Each write of a batch is judged by the store as the writes before it in the batch leave it:
/// an execution created, claimed, fenced, leased and changed in one batch; a second state change
/// judged from the first; a renewal of a lease the batch has not taken.
pub async fn a_batch_sees_its_own_earlier_writes(store: &dyn Store) {
    let writes = vec![
        create("x", ExecutionState::Scheduled),
        Write::claim("x", Some("w1"), 1),
        Write::fence("x", 1),
        super::append("x", 1),
        set_state("x", ExecutionState::Running),
        Write::claim("x", None, 2),
        lease("x", "a", future(), LeaseMode::Own),
        lease("x", "a", future(), LeaseMode::Renew),
    ];
    accept(store, writes, "a batch creating, claiming, fencing, changing and leasing `x`").await;
    let x = load(store, "x");
    assert_eq!((x.state, x.worker, x.claim_generation, x.events.len()), (ExecutionState::Running, None, 2, 1));
    assert_eq!(row(store, "x", ExecutionState::Running).owner.as_deref(), Some("a"));
    let what = "a batch changing `x` to COMPLETED, then back to RUNNING";
    let writes = vec![set_state("x", ExecutionState::Completed), set_state("x", ExecutionState::Running)];
    refuse(store, writes, ErrorKind::InvalidState, what).await;
    let what = "a batch claiming generation 3 of `x`, then fencing generation 2";
    refuse(store, vec![Write::claim("x", None, 3), Write::fence("x", 2)], ErrorKind::Conflict, what).await;
    let what = "a batch creating `y`, then renewing a lease of it";
    let writes = vec![create("y", ExecutionState::Running), lease("y", "a", future(), LeaseMode::Renew)];
    refuse(store, writes, ErrorKind::Conflict, what).await;
    assert_eq!(store.state("y").unwrap(), None, "{what} was refused, yet `y` was stored");
    assert_eq!(load(store, "x").claim_generation, 2, "a refused batch changed `x`");
}

/// [`Store::state`] reads the current state, and `None` for an unknown execution.
pub async fn state_reads_the_current_state(store: &dyn Store) {
    assert_eq!(store.state("x").unwrap(), None, "an unknown execution has a state");
    accept(store, vec![create("x", ExecutionState::Scheduled)], "the creation of `x`").await;
    assert_eq!(state_of(store, "x"), ExecutionState::Scheduled);
    accept(store, vec![set_state("x", ExecutionState::Running)], "a change to RUNNING").await;
    assert_eq!(state_of(store, "x"), ExecutionState::Running);
}

/// [`Store::list`] gives the executions in any of the states asked for (none for no state),
/// each row with its workflow, worker, generation, parent, lease owner and end.
pub async fn list_filters_by_state(store: &dyn Store) {
    accept(store, vec![create("a", ExecutionState::Scheduled)], "the creation of `a`").await;
    accept(store, vec![create("b", ExecutionState::Running)], "the creation of `b`").await;
    accept(store, vec![create("c", ExecutionState::Completed)], "the creation of `c`").await;
    assert_eq!(ids(&list(store, &[ExecutionState::Scheduled])), ["a"]);
    let mut both = ids(&list(store, &[ExecutionState::Running, ExecutionState::Scheduled]));
    both.sort();
    assert_eq!(both, ["a", "b"]);
    assert!(list(store, &[]).is_empty(), "a list of no state is not empty");
    assert!(list(store, &[ExecutionState::Paused]).is_empty(), "a list of PAUSED shows other states");

    let until = future();
    let child = Write::CreateExecution {
        id: "child".into(),
        workflow_name: "sub".into(),
        state: ExecutionState::Running,
        input: Arc::from(&[0xc0u8][..]),
        parent_id: Some("b".into()),
        version: 1,
        time: at(1),
    };
    let writes = vec![child, Write::claim("b", Some("w1"), 1), lease("b", "e", until, LeaseMode::Own)];
    accept(store, writes, "a child of `b`, a claim and a lease of `b`").await;
    let b = row(store, "b", ExecutionState::Running);
    let got = (b.workflow_name.as_str(), b.worker.as_deref(), b.claim_generation, b.owner.as_deref(), b.lease_until);
    assert_eq!(got, ("wf", Some("w1"), 1, Some("e"), Some(until)), "the row of `b`");
    let child = row(store, "child", ExecutionState::Running);
    let got = (child.workflow_name.as_str(), child.parent_id.as_deref(), child.owner, child.lease_until);
    assert_eq!(got, ("sub", Some("b"), None, None), "the row of `child`");
}

/// [`Store::list`] orders its rows by their last change, oldest first, and rows changed at the
/// same instant by id; each row's `updated_at` is that change's time.
pub async fn list_orders_rows_by_last_change_then_id(store: &dyn Store) {
    for (id, time) in [("c", 3), ("a", 1), ("d", 2), ("b", 2)] {
        accept(store, vec![create_at(id, ExecutionState::Running, at(time))], "a creation").await;
    }
    let rows = list(store, &[ExecutionState::Running]);
    assert_eq!(ids(&rows), ["a", "b", "d", "c"], "rows in order of their creation, then id");
    assert_eq!(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>(), [at(1), at(2), at(2), at(3)]);
    let change =
        Write::SetState { execution_id: "a".into(), state: ExecutionState::Running, output: None, time: at(10) };
    accept(store, vec![change], "a change of `a`").await;
    assert_eq!(ids(&list(store, &[ExecutionState::Running])), ["b", "d", "c", "a"], "rows after `a` changed last");
}
