//! The rules every store applies to a batch of writes, and the errors that refuse one.
//!
//! Each check decides one write from what the store holds for its execution, as the writes
//! before it in the same batch leave it (`None`: no such execution), and refuses it with the
//! error every store gives. A refused write refuses its whole batch.
//!
//! [`MemoryStore`](super::MemoryStore) runs the checks before it applies anything. The SQLite
//! store states the same conditions in its statements, so that a write that is allowed costs no
//! read: the primary key refuses an existing id, an `UPDATE … WHERE` changes no row, an append
//! follows the end of the log the writer remembers. When the database refuses a write, the
//! store reads what the check needs and lets it name the error; its tests hold both forms of
//! each rule to the same answers.

use std::time::SystemTime;

use super::LeaseMode;
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;

/// The error for a write to an execution that does not exist.
pub(crate) fn not_found(execution_id: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}`"))
}

/// The error for the creation of an execution whose id is taken.
pub(crate) fn already_exists(execution_id: &str) -> Error {
    Error::new(ErrorKind::InvalidState, format!("execution `{execution_id}` already exists"))
}

/// A created execution needs a new id.
pub(crate) fn check_create(execution_id: &str, exists: bool) -> Result<()> {
    if exists { Err(already_exists(execution_id)) } else { Ok(()) }
}

/// Whether an event numbered `seq` directly follows a log whose last event is `last` (0 for an
/// empty log). Seqs are stored as signed 64-bit integers: nothing follows `i64::MAX`.
#[inline]
pub(crate) fn follows(last: i64, seq: u64) -> bool {
    last.checked_add(1).is_some_and(|next| i64::try_from(seq) == Ok(next))
}

/// An appended event directly follows the log: the last stored event, or the batch's previous
/// event of the same log.
pub(crate) fn check_append(execution_id: &str, seq: u64, last: Option<i64>) -> Result<()> {
    match last {
        Some(last) if follows(last, seq) => Ok(()),
        _ => Err(append_refused(execution_id, seq, last)),
    }
}

/// The error for an event `seq` that does not follow a log ending at `last` (`None`: there is
/// no such execution).
pub(crate) fn append_refused(execution_id: &str, seq: u64, last: Option<i64>) -> Error {
    match last {
        None => not_found(execution_id),
        Some(last) => out_of_sequence(execution_id, seq, u64::try_from(last).unwrap_or(0)),
    }
}

/// The error for an event that does not directly follow the stored log.
pub(crate) fn out_of_sequence(execution_id: &str, seq: u64, last: u64) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!(
            "event #{seq} of execution `{execution_id}` does not follow the stored log (its last event is #{last}); \
             another run of this execution may have written in between"
        ),
    )
}

/// A claim takes the generation after the stored one, so that two claims never share one.
pub(crate) fn check_claim(execution_id: &str, generation: u64, stored: Option<u64>) -> Result<()> {
    match stored {
        None => Err(not_found(execution_id)),
        Some(stored) if stored.checked_add(1) == Some(generation) => Ok(()),
        Some(stored) => Err(stale_generation(execution_id, generation, stored)),
    }
}

/// A fence holds the stored generation: a worker that lost its claim cannot write.
pub(crate) fn check_fence(execution_id: &str, generation: u64, stored: Option<u64>) -> Result<()> {
    match stored {
        None => Err(not_found(execution_id)),
        Some(stored) if stored == generation => Ok(()),
        Some(stored) => Err(stale_generation(execution_id, generation, stored)),
    }
}

/// The error for a claim or fence whose generation does not match the stored one.
pub(crate) fn stale_generation(execution_id: &str, generation: u64, stored: u64) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "claim generation {generation} of execution `{execution_id}` is stale (the execution is at generation \
             {stored}); another worker holds it now"
        ),
    )
}

/// What the lease rules look at in an execution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holder<'a> {
    /// Its state.
    pub(crate) state: ExecutionState,
    /// Whether a worker holds it.
    pub(crate) worker: bool,
    /// The engine whose lease it has, if any.
    pub(crate) owner: Option<&'a str>,
    /// When that lease runs out.
    pub(crate) until: Option<SystemTime>,
}

/// A lease is taken as its [`LeaseMode`] says, judged at `now`.
pub(crate) fn check_lease(
    execution_id: &str,
    owner: &str,
    mode: LeaseMode,
    now: SystemTime,
    held: Option<Holder<'_>>,
) -> Result<()> {
    let Some(held) = held else {
        return Err(not_found(execution_id));
    };
    let allowed = match mode {
        LeaseMode::Own => true,
        LeaseMode::Renew => held.owner == Some(owner),
        LeaseMode::TakeOver => {
            matches!(held.state, ExecutionState::Running | ExecutionState::Cancelling)
                && !held.worker
                && held.until.is_none_or(|until| until < now)
        }
    };
    if allowed { Ok(()) } else { Err(lease_refused(execution_id, mode)) }
}

/// The error for a lease that could not be taken.
pub(crate) fn lease_refused(execution_id: &str, mode: LeaseMode) -> Error {
    Error::new(
        ErrorKind::Conflict,
        match mode {
            LeaseMode::Own => format!("execution `{execution_id}` cannot be leased"),
            LeaseMode::Renew => format!("the lease of execution `{execution_id}` was taken over by another engine"),
            LeaseMode::TakeOver => format!(
                "execution `{execution_id}` cannot be taken over: it is not running, a worker holds it, or its \
                 lease has not run out"
            ),
        },
    )
}

/// A state change is allowed from the current state `from` (see [`transition_allowed`]).
pub(crate) fn check_set_state(execution_id: &str, to: ExecutionState, from: Option<ExecutionState>) -> Result<()> {
    match from {
        None => Err(not_found(execution_id)),
        Some(from) if transition_allowed(from, to) => Ok(()),
        Some(from) => Err(transition_refused(execution_id, from, to)),
    }
}

/// Whether an execution in state `from` may move to `to`: a finished execution never changes, and
/// a cancelling one only finishes.
pub(crate) fn transition_allowed(from: ExecutionState, to: ExecutionState) -> bool {
    !from.is_terminal() && (from != ExecutionState::Cancelling || to.is_terminal() || to == from)
}

/// The error for a refused state change.
pub(crate) fn transition_refused(execution_id: &str, from: ExecutionState, to: ExecutionState) -> Error {
    if from.is_terminal() {
        Error::new(
            ErrorKind::InvalidState,
            format!("execution `{execution_id}` is already {from}; a finished execution never changes"),
        )
    } else {
        Error::new(
            ErrorKind::InvalidState,
            format!("execution `{execution_id}` is {from}; it cannot become {to}, only finish"),
        )
    }
}

/// Only a finished execution is deleted (`state` is its state, `None`: there is none).
pub(crate) fn check_delete(execution_id: &str, state: Option<ExecutionState>) -> Result<()> {
    match state {
        None => Err(not_found(execution_id)),
        Some(state) if state.is_terminal() => Ok(()),
        Some(state) => Err(delete_refused(execution_id, state)),
    }
}

/// The error for the deletion of an execution that has not finished.
pub(crate) fn delete_refused(execution_id: &str, state: ExecutionState) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!(
            "execution `{execution_id}` is {state}; only a finished execution (COMPLETED, FAILED or CANCELLED) \
             can be deleted"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_event_follows_the_last_one_and_nothing_follows_i64_max() {
        assert!(follows(0, 1));
        assert!(follows(41, 42));
        assert!(!follows(41, 41) && !follows(41, 43) && !follows(0, 0));
        let max = u64::try_from(i64::MAX).unwrap();
        assert!(follows(i64::MAX - 1, max));
        assert!(!follows(i64::MAX, max + 1));
        assert!(!follows(i64::MAX - 1, u64::MAX), "a seq beyond i64::MAX is never stored");
        let err = check_append("x", max + 1, Some(i64::MAX)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
        assert!(err.to_string().contains(&format!("its last event is #{max}")), "{err}");
        assert_eq!(check_append("x", 1, None).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn generations_move_one_at_a_time_and_fences_hold_the_current_one() {
        assert!(check_claim("x", 1, Some(0)).is_ok());
        assert_eq!(check_claim("x", 1, Some(1)).unwrap_err().kind(), ErrorKind::Conflict);
        assert_eq!(check_claim("x", 0, Some(u64::MAX)).unwrap_err().kind(), ErrorKind::Conflict);
        assert_eq!(check_claim("x", 1, None).unwrap_err().kind(), ErrorKind::NotFound);
        assert!(check_fence("x", 3, Some(3)).is_ok());
        let err = check_fence("x", 2, Some(3)).unwrap_err();
        assert!(err.to_string().contains("claim generation 2 of execution `x` is stale"), "{err}");
        assert_eq!(check_fence("x", 0, None).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn leases_are_taken_as_their_mode_says() {
        let now = SystemTime::now();
        let held = |state, worker, owner, until| Some(Holder { state, worker, owner, until });
        let (past, future) = (Some(now - Duration::from_secs(1)), Some(now + Duration::from_secs(1)));
        let running = ExecutionState::Running;
        assert!(
            check_lease("x", "a", LeaseMode::Own, now, held(ExecutionState::Completed, true, Some("b"), future))
                .is_ok()
        );
        assert!(check_lease("x", "a", LeaseMode::Renew, now, held(running, false, Some("a"), past)).is_ok());
        assert!(check_lease("x", "a", LeaseMode::Renew, now, held(running, false, Some("b"), future)).is_err());
        assert!(check_lease("x", "a", LeaseMode::Renew, now, held(running, false, None, None)).is_err());
        assert!(check_lease("x", "a", LeaseMode::TakeOver, now, held(running, false, Some("b"), past)).is_ok());
        assert!(
            check_lease("x", "a", LeaseMode::TakeOver, now, held(ExecutionState::Cancelling, false, None, None))
                .is_ok()
        );
        for refused in [
            held(running, false, Some("b"), future),
            held(running, true, None, None),
            held(ExecutionState::Paused, false, None, None),
        ] {
            let err = check_lease("x", "a", LeaseMode::TakeOver, now, refused).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        }
        assert_eq!(check_lease("x", "a", LeaseMode::Own, now, None).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn finished_executions_never_change_and_cancelling_ones_only_finish() {
        use ExecutionState::*;
        for &from in ExecutionState::ALL {
            for &to in ExecutionState::ALL {
                let allowed = match from {
                    Completed | Failed | Cancelled => false,
                    Cancelling => matches!(to, Completed | Failed | Cancelled | Cancelling),
                    _ => true,
                };
                assert_eq!(check_set_state("x", to, Some(from)).is_ok(), allowed, "{from} -> {to}");
            }
        }
        let err = check_set_state("x", Running, Some(Completed)).unwrap_err();
        assert!(err.to_string().contains("is already COMPLETED"), "{err}");
        let err = check_set_state("x", Running, Some(Cancelling)).unwrap_err();
        assert!(err.to_string().contains("it cannot become RUNNING, only finish"), "{err}");
        assert_eq!(check_set_state("x", Running, None).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn only_finished_executions_are_deleted() {
        for &state in ExecutionState::ALL {
            assert_eq!(check_delete("x", Some(state)).is_ok(), state.is_terminal(), "{state}");
        }
        let err = check_delete("x", Some(ExecutionState::Paused)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidState);
        assert!(err.to_string().contains("execution `x` is PAUSED; only a finished execution"), "{err}");
        assert_eq!(check_delete("x", None).unwrap_err().kind(), ErrorKind::NotFound);
    }
}
