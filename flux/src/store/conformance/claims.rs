//! Who may write an execution: claims and their generations, fences, and leases in each
//! [`LeaseMode`].

use super::{accept, append, create, future, lease, load, past, refuse, row};
use crate::error::ErrorKind;
use crate::event::ExecutionState;
use crate::store::{LeaseMode, Store, Write};

/// Claims take generations one at a time: a claim carries the stored generation plus one (else
/// `Conflict`, saying the generation is stale), sets the worker (or clears it, with none), and a
/// claim of an unknown execution is `NotFound`.
pub async fn claims_take_generations_one_at_a_time(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Scheduled), append("x", 1)], "the creation of `x`").await;
    accept(store, vec![Write::claim("x", Some("w1"), 1), append("x", 2)], "claim 1 of `x`").await;
    let x = load(store, "x");
    assert_eq!((x.worker.as_deref(), x.claim_generation), (Some("w1"), 1), "claim 1 was not stored");
    // A second claim must move to generation 2, not take 1 again.
    let err = refuse(store, vec![Write::claim("x", Some("w2"), 1)], ErrorKind::Conflict, "claim 1 again").await;
    assert!(err.to_string().contains("stale"), "a repeated claim must say its generation is stale: {err}");
    refuse(store, vec![Write::claim("x", Some("w2"), 3)], ErrorKind::Conflict, "claim 3 after claim 1").await;
    refuse(store, vec![Write::claim("x", Some("w2"), 0)], ErrorKind::Conflict, "claim 0 after claim 1").await;
    accept(store, vec![Write::claim("x", None, 2)], "claim 2, taking `x` back").await;
    let x = load(store, "x");
    assert_eq!((x.worker, x.claim_generation), (None, 2), "claim 2 was not stored");
    let what = "a claim of an unknown execution";
    refuse(store, vec![Write::claim("nope", Some("w1"), 1)], ErrorKind::NotFound, what).await;
}

/// A fence lets the rest of its batch through only at the stored generation: a worker that lost
/// its claim writes nothing (`Conflict`, saying the generation is stale), and a fence of an
/// unknown execution is `NotFound`.
pub async fn fences_refuse_writers_of_a_stale_generation(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Scheduled), append("x", 1)], "the creation of `x`").await;
    accept(store, vec![Write::fence("x", 0), append("x", 2)], "a fence of generation 0").await;
    accept(store, vec![Write::claim("x", Some("w1"), 1), append("x", 3)], "claim 1").await;
    accept(store, vec![Write::fence("x", 1), append("x", 4)], "a fence of generation 1").await;
    accept(store, vec![Write::claim("x", None, 2)], "claim 2").await;
    let what = "a fence of generation 1 after claim 2";
    let err = refuse(store, vec![Write::fence("x", 1), append("x", 5)], ErrorKind::Conflict, what).await;
    assert!(err.to_string().contains("stale"), "a stale fence must say its generation is stale: {err}");
    let what = "a fence of generation 3 at generation 2";
    refuse(store, vec![Write::fence("x", 3), append("x", 5)], ErrorKind::Conflict, what).await;
    let x = load(store, "x");
    assert_eq!(x.events.len(), 4, "the batch of a stale fence was stored");
    assert_eq!((x.worker, x.claim_generation), (None, 2));
    refuse(store, vec![Write::fence("nope", 0)], ErrorKind::NotFound, "a fence of an unknown execution").await;
}

/// A lease in the `Own` mode is taken whatever lease there was, live or not, of whatever
/// execution; the row lists its owner and end (to the microsecond).
pub async fn own_leases_are_taken_whatever_the_lease(store: &dyn Store) {
    let until = future();
    accept(store, vec![create("x", ExecutionState::Running)], "the creation of `x`").await;
    accept(store, vec![lease("x", "a", until, LeaseMode::Own)], "a first lease of `x`").await;
    accept(store, vec![lease("x", "b", until, LeaseMode::Own)], "`b` taking the live lease of `a`").await;
    let x = row(store, "x", ExecutionState::Running);
    let held = (x.owner.as_deref(), x.lease_until);
    assert_eq!(held, (Some("b"), Some(until)), "the lease of `b` was not stored");
    accept(store, vec![create("y", ExecutionState::Completed)], "the creation of a finished `y`").await;
    accept(store, vec![lease("y", "a", until, LeaseMode::Own)], "a lease of a finished execution").await;
}

/// A lease in the `Renew` mode is taken only while the lease is the same owner's (even to let
/// it run out); after another engine took it over, or when there is none, it is a `Conflict`.
pub async fn renewals_need_the_lease_of_the_same_owner(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Running)], "the creation of `x`").await;
    let what = "a renewal of no lease";
    refuse(store, vec![lease("x", "a", future(), LeaseMode::Renew)], ErrorKind::Conflict, what).await;
    accept(store, vec![lease("x", "a", future(), LeaseMode::Own)], "a lease of `a`").await;
    accept(store, vec![lease("x", "a", future(), LeaseMode::Renew)], "`a` renewing its lease").await;
    let what = "`b` renewing the lease of `a`";
    refuse(store, vec![lease("x", "b", future(), LeaseMode::Renew)], ErrorKind::Conflict, what).await;
    accept(store, vec![lease("x", "a", past(), LeaseMode::Renew)], "`a` letting its lease run out").await;
    accept(store, vec![lease("x", "b", future(), LeaseMode::TakeOver)], "`b` taking over").await;
    let what = "`a` renewing a lease taken over by `b`";
    refuse(store, vec![lease("x", "a", future(), LeaseMode::Renew)], ErrorKind::Conflict, what).await;
    assert_eq!(row(store, "x", ExecutionState::Running).owner.as_deref(), Some("b"));
}

/// A lease in the `TakeOver` mode is taken from no lease or one that ran out, of a `RUNNING` or
/// `CANCELLING` execution; from a live lease it is a `Conflict`, so two engines cannot both win.
pub async fn takeovers_need_a_lease_that_ran_out(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Running)], "the creation of `x`").await;
    accept(store, vec![lease("x", "a", future(), LeaseMode::TakeOver)], "a takeover of no lease").await;
    let what = "a takeover of a live lease";
    refuse(store, vec![lease("x", "b", future(), LeaseMode::TakeOver)], ErrorKind::Conflict, what).await;
    accept(store, vec![lease("x", "a", past(), LeaseMode::Own)], "a lease that ran out").await;
    accept(store, vec![lease("x", "b", future(), LeaseMode::TakeOver)], "a takeover of a lease that ran out").await;
    let what = "a second takeover";
    refuse(store, vec![lease("x", "c", future(), LeaseMode::TakeOver)], ErrorKind::Conflict, what).await;
    assert_eq!(row(store, "x", ExecutionState::Running).owner.as_deref(), Some("b"));
    accept(store, vec![create("y", ExecutionState::Cancelling)], "the creation of a cancelling `y`").await;
    accept(store, vec![lease("y", "a", future(), LeaseMode::TakeOver)], "a takeover of a cancelling execution").await;
}

/// A lease in the `TakeOver` mode of an execution a worker holds, or of one neither `RUNNING`
/// nor `CANCELLING`, is a `Conflict`, lease or no lease.
pub async fn takeovers_refuse_executions_held_by_a_worker_or_not_running(store: &dyn Store) {
    let writes = vec![create("held", ExecutionState::Running), Write::claim("held", Some("w1"), 1)];
    accept(store, writes, "the creation of `held`, claimed by a worker").await;
    let what = "a takeover of an execution a worker holds";
    refuse(store, vec![lease("held", "a", future(), LeaseMode::TakeOver)], ErrorKind::Conflict, what).await;
    accept(store, vec![Write::claim("held", None, 2)], "the worker's claim taken back").await;
    accept(store, vec![lease("held", "a", future(), LeaseMode::TakeOver)], "a takeover once no worker holds it").await;
    let idle =
        ExecutionState::ALL.iter().filter(|s| !matches!(s, ExecutionState::Running | ExecutionState::Cancelling));
    for &state in idle {
        let id = format!("in-{state}");
        accept(store, vec![create(&id, state), lease(&id, "a", past(), LeaseMode::Own)], "a creation").await;
        let what = format!("a takeover of a {state} execution");
        refuse(store, vec![lease(&id, "b", future(), LeaseMode::TakeOver)], ErrorKind::Conflict, &what).await;
    }
}

/// A lease of an execution that does not exist is `NotFound`, in every mode.
pub async fn leases_of_unknown_executions_are_not_found(store: &dyn Store) {
    for mode in [LeaseMode::Own, LeaseMode::Renew, LeaseMode::TakeOver] {
        let what = format!("a lease ({mode:?}) of an unknown execution");
        refuse(store, vec![lease("nope", "a", future(), mode)], ErrorKind::NotFound, &what).await;
    }
}
