//! The log and the batch: events in sequence, new ids, batches applied whole and in order.

use std::sync::Arc;

use super::{MAX_SEQ, Subject, accept, append, at, create, exists, load, refuse, seqs, set_state};
use crate::error::ErrorKind;
use crate::event::ExecutionState;
use crate::store::{Commit, Store, Write};

/// An event's seq is one more than the last stored event's: the first is 1, and a gap or a
/// repeat is refused (`InvalidState`) and leaves the log as it was.
pub async fn appends_must_follow_the_stored_log(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Running)], "the creation of `x`").await;
    refuse(store, vec![append("x", 0)], ErrorKind::InvalidState, "event #0 of an empty log").await;
    refuse(store, vec![append("x", 2)], ErrorKind::InvalidState, "event #2 of an empty log").await;
    accept(store, vec![append("x", 1)], "event #1 of an empty log").await;
    accept(store, vec![append("x", 2)], "event #2 after #1").await;
    refuse(store, vec![append("x", 2)], ErrorKind::InvalidState, "event #2 again").await;
    refuse(store, vec![append("x", 1)], ErrorKind::InvalidState, "event #1 again").await;
    refuse(store, vec![append("x", 4)], ErrorKind::InvalidState, "event #4 after #2 (a gap)").await;
    assert_eq!(seqs(store, "x"), [1, 2], "refused appends changed the log");
}

/// Events of one batch follow the stored log and each other, in one log or several; a batch
/// with a gap or a repeat anywhere is refused whole.
pub async fn appends_in_one_batch_follow_each_other(store: &dyn Store) {
    let writes = vec![create("x", ExecutionState::Running), append("x", 1), append("x", 2), append("x", 3)];
    accept(store, writes, "a batch creating `x` with events #1 to #3").await;
    for (first, second) in [(4, 4), (4, 6), (5, 4), (3, 4)] {
        let what = format!("a batch of events #{first}, #{second} after #3");
        refuse(store, vec![append("x", first), append("x", second)], ErrorKind::InvalidState, &what).await;
    }
    assert_eq!(seqs(store, "x"), [1, 2, 3], "a refused batch changed the log");
    accept(store, vec![append("x", 4), append("x", 5)], "a batch of events #4, #5 after #3").await;
    let writes = vec![create("y", ExecutionState::Running), append("y", 1), append("x", 6), append("y", 2)];
    accept(store, writes, "a batch appending to two logs in turn").await;
    assert_eq!((seqs(store, "x"), seqs(store, "y")), (vec![1, 2, 3, 4, 5, 6], vec![1, 2]));
}

/// An append to an execution that does not exist is refused with `NotFound`.
pub async fn appends_to_an_unknown_execution_are_not_found(store: &dyn Store) {
    refuse(store, vec![append("nope", 1)], ErrorKind::NotFound, "an append to an unknown execution").await;
    assert!(!exists(store, "nope"), "a refused append created its execution");
}

/// A batch is applied whole or not at all: when a write is refused, none of the writes before
/// it is stored (a new execution, events, a cached result, a claim, a state change).
pub async fn a_refused_batch_applies_nothing(store: &dyn Store) {
    let value = Arc::from(&[1u8][..]);
    let cache = Write::CachePut { key: "k".into(), task_name: "t".into(), value, expires_at: None };
    let writes = vec![create("new", ExecutionState::Running), append("new", 1), cache, append("new", 3)];
    refuse(store, writes, ErrorKind::InvalidState, "a batch ending with an event out of sequence").await;
    assert!(!exists(store, "new"), "the execution of a refused batch was stored");
    assert_eq!(store.cache_get("k", at(0)).unwrap(), None, "the cached result of a refused batch was stored");

    accept(store, vec![create("x", ExecutionState::Running), append("x", 1)], "the creation of `x`").await;
    let writes = vec![
        append("x", 2),
        Write::claim("x", Some("w1"), 1),
        set_state("x", ExecutionState::Paused),
        create("y", ExecutionState::Running),
        set_state("nope", ExecutionState::Completed),
    ];
    refuse(store, writes, ErrorKind::NotFound, "a batch ending with a change to an unknown execution").await;
    let x = load(store, "x");
    assert_eq!(x.events.len(), 1, "the event of a refused batch was stored");
    let changed = (x.state, x.worker, x.claim_generation);
    assert_eq!(changed, (ExecutionState::Running, None, 0), "a refused batch changed `x`");
    assert!(!exists(store, "y"), "the execution of a refused batch was stored");
}

/// A refused batch fails alone: batches queued before and after it, not yet committed, are
/// stored.
pub async fn a_refused_batch_leaves_other_batches_alone(store: &dyn Store) {
    let writes = vec![create("a", ExecutionState::Running), append("a", 1), create("b", ExecutionState::Running)];
    accept(store, writes, "the creation of `a` and `b`").await;
    // Queued together, so that a store committing in groups puts them in one.
    let before = store.write(vec![append("a", 2)]);
    let refused = store.write(vec![append("a", 1)]);
    let after = store.write(vec![append("b", 1)]);
    before.await.unwrap_or_else(|err| panic!("a batch queued before a refused one failed: {err}"));
    let err = refused.await.expect_err("a repeated event #1 was accepted");
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    after.await.unwrap_or_else(|err| panic!("a batch queued after a refused one failed: {err}"));
    assert_eq!((seqs(store, "a"), seqs(store, "b")), (vec![1, 2], vec![1]));
}

/// Creating an execution whose id exists (stored, or created earlier in the batch) is refused
/// with `InvalidState`, and the stored one is left as it was.
pub async fn creating_an_existing_execution_is_refused(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Running), append("x", 1)], "the creation of `x`").await;
    let what = "`x` created again";
    refuse(store, vec![create("x", ExecutionState::Scheduled)], ErrorKind::InvalidState, what).await;
    let twice = vec![create("y", ExecutionState::Running), create("y", ExecutionState::Running)];
    refuse(store, twice, ErrorKind::InvalidState, "a batch creating `y` twice").await;
    let x = load(store, "x");
    assert_eq!((x.state, x.events.len()), (ExecutionState::Running, 1), "a refused creation changed `x`");
    assert!(!exists(store, "y"), "a refused batch created `y`");
}

/// Batches are durable in the order they were queued: once a later write's commit resolves, an
/// earlier deferred one ([`Store::write_deferred`]) has resolved too, and both are stored.
pub async fn deferred_writes_are_durable_before_later_writes(store: &dyn Store) {
    let mut deferred: Commit = store.write_deferred(vec![create("x", ExecutionState::Running), append("x", 1)]);
    accept(store, vec![append("x", 2)], "an append after a deferred batch").await;
    match deferred.try_result() {
        Some(Ok(())) => {}
        Some(Err(err)) => panic!("a deferred batch was refused: {err}"),
        None => panic!("a deferred batch was not durable once a later batch was"),
    }
    assert_eq!(seqs(store, "x"), [1, 2]);
}

/// Nothing follows an event of seq `i64::MAX`, the largest a log holds: not `i64::MAX + 1`, not
/// `u64::MAX`, and not a repeat (`InvalidState` each time).
///
/// No write makes such a log: `end_log_at(subject, execution_id, seq)` must give the last event
/// of the log of `execution_id` the seq `seq`, as a damaged database could hold, and return the
/// subject to go on with (reopened, if the store must forget what it remembers of the log).
pub async fn nothing_follows_a_seq_of_i64_max<T: Subject>(subject: T, end_log_at: impl FnOnce(T, &str, u64) -> T) {
    let writes = vec![create("x", ExecutionState::Running), append("x", 1)];
    accept(subject.store(), writes, "the creation of `x` with event #1").await;
    let subject = end_log_at(subject, "x", MAX_SEQ);
    let store = subject.store();
    assert_eq!(seqs(store, "x"), [MAX_SEQ], "`end_log_at` did not end the log of `x` at i64::MAX");
    for seq in [MAX_SEQ + 1, u64::MAX, MAX_SEQ] {
        let what = format!("event #{seq} after #{MAX_SEQ}");
        refuse(store, vec![append("x", seq)], ErrorKind::InvalidState, &what).await;
    }
    assert_eq!(seqs(store, "x"), [MAX_SEQ], "a refused append changed the log");
}
