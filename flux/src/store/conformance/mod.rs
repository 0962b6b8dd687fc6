//! The rules every [`Store`] keeps, checked one by one: a conformance suite for stores.
//!
//! Available with the `test-util` feature. Each check is an async function that takes a new,
//! empty store, writes to it through [`Store::write`], reads it back, and panics with a message
//! naming the rule at the first one the store breaks. [`conformance_tests!`] expands to one test
//! per check, so that `cargo test` runs and reports them one by one; [`MemoryStore`] and the
//! SQLite store run the same list in flux's own tests.
//!
//! A store of another crate runs them from its tests, with flux's `test-util` feature enabled in
//! its `[dev-dependencies]`. The factory gives each test a new store: the store itself, or a
//! pair of the store and what must live as long as it (a temporary directory, a database
//! server), see [`Subject`]. One check, [`nothing_follows_a_seq_of_i64_max`], needs a log that no
//! write can produce, one ending at `i64::MAX` as a damaged database could hold: it runs when
//! `end_log_at` says how to make one. Each test runs on a current-thread Tokio runtime of its
//! own (see [`block_on`]).
//!
//! ```no_run
//! // tests/conformance.rs of a crate with a store of its own. The SQLite store stands in for it
//! // here: the same lines test any `Store`.
//! use flux::store::{Durability, SqliteStore};
//! use tempfile::TempDir;
//!
//! /// A new store in a temporary directory that lives as long as it.
//! fn new_store() -> (SqliteStore, TempDir) {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = SqliteStore::open(dir.path().join("flux.db"), Durability::Default).unwrap();
//!     (store, dir)
//! }
//!
//! /// Gives the last event of execution `id` the seq `seq`, as a damaged file could.
//! fn end_log_at((store, dir): (SqliteStore, TempDir), id: &str, seq: u64) -> (SqliteStore, TempDir) {
//!     let path = store.path().to_path_buf();
//!     drop(store);
//!     let conn = rusqlite::Connection::open(&path).unwrap();
//!     let key: i64 = conn.query_row("SELECT pk FROM executions WHERE id = ?1", [id], |r| r.get(0)).unwrap();
//!     conn.execute(
//!         // A last row holding two events (a step) keeps them: the log then ends after its seq.
//!         "UPDATE events SET seq = ?2 - (next_type IS NOT NULL) WHERE execution = ?1
//!          AND seq = (SELECT max(seq) FROM events WHERE execution = ?1)",
//!         [key, i64::try_from(seq).unwrap()],
//!     )
//!     .unwrap();
//!     (SqliteStore::open(&path, Durability::Default).unwrap(), dir)
//! }
//!
//! // One test per check, named `sqlite::<check>`.
//! flux::store::conformance_tests!(sqlite, new_store, end_log_at = end_log_at);
//! # fn main() {}
//! ```
//!
//! [`MemoryStore`]: super::MemoryStore
//! [`conformance_tests!`]: super::conformance_tests

// A check is a test: it panics, with a message, at the first rule the store breaks, and unwraps
// what the store under test must not fail to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ExecutionRow, LeaseMode, Store, StoredExecution, Write};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, EventType, ExecutionState};

mod claims;
mod listing;
mod log;
mod messages;
mod reads;
mod schedules;
mod states;

pub use claims::*;
pub use listing::*;
pub use log::*;
pub use messages::*;
pub use reads::*;
pub use schedules::*;
pub use states::*;

/// What a check runs on: a store, and whatever must live as long as it.
///
/// Implemented for every [`Store`], and for a pair of a store and a guard (a temporary
/// directory, say) that is dropped after it.
pub trait Subject {
    /// The store under test.
    fn store(&self) -> &dyn Store;
}

impl<S: Store> Subject for S {
    fn store(&self) -> &dyn Store {
        self
    }
}

impl<S: Store, G> Subject for (S, G) {
    fn store(&self) -> &dyn Store {
        &self.0
    }
}

/// Runs `check` to its end on a new current-thread Tokio runtime, with the I/O and time drivers
/// of the Tokio features the build has: what each test of
/// [`conformance_tests!`](super::conformance_tests) does.
pub fn block_on<F: Future>(check: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    runtime.expect("a Tokio runtime for the conformance check").block_on(check)
}

/// Expands to one `#[test]` per check of [`store::conformance`](crate::store::conformance), in a
/// module named `$name`, each on a new store made by `$factory` (a function or closure of no
/// arguments returning a [`Subject`](crate::store::conformance::Subject)).
///
/// With `skip_unless = $ready` (after `end_log_at`), each test first calls `$ready()` and
/// returns at once when it says `false`: for a store whose server may be missing, `$ready`
/// says why on stderr (and a CI run makes it panic instead, so that nothing is skipped there).
///
/// With `end_log_at = $hook`, it also runs
/// [`nothing_follows_a_seq_of_i64_max`](crate::store::conformance::nothing_follows_a_seq_of_i64_max),
/// which calls `$hook(subject, execution_id, seq)` to give the last event of a log the seq
/// `seq` (as a damaged database could) and goes on with the subject it returns.
///
/// The tests need no Tokio of their own: they run each check with
/// [`block_on`](crate::store::conformance::block_on). Names in `$factory` and `$hook` are
/// resolved in the module that invokes the macro.
///
/// ```
/// use flux::store::MemoryStore;
///
/// flux::store::conformance_tests!(memory, MemoryStore::new);
/// # fn main() {}
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! __flux_store_conformance_tests {
    ($name:ident, $factory:expr $(,)?) => {
        $crate::__flux_store_conformance_module!(@module $name, $factory, {});
    };
    ($name:ident, $factory:expr, end_log_at = $hook:expr $(,)?) => {
        $crate::__flux_store_conformance_module!(@module $name, $factory, {
            #[test]
            fn nothing_follows_a_seq_of_i64_max() {
                $crate::store::conformance::block_on(
                    $crate::store::conformance::nothing_follows_a_seq_of_i64_max(($factory)(), $hook),
                );
            }
        });
    };
    ($name:ident, $factory:expr, end_log_at = $hook:expr, skip_unless = $ready:expr $(,)?) => {
        $crate::__flux_store_conformance_module!(@module $name, $factory, skip_unless = $ready, {
            #[test]
            fn nothing_follows_a_seq_of_i64_max() {
                if !($ready)() {
                    return;
                }
                $crate::store::conformance::block_on(
                    $crate::store::conformance::nothing_follows_a_seq_of_i64_max(($factory)(), $hook),
                );
            }
        });
    };
}

/// The module of tests [`conformance_tests!`](crate::store::conformance_tests) expands to.
#[doc(hidden)]
#[macro_export]
macro_rules! __flux_store_conformance_module {
    (@module $name:ident, $factory:expr, { $($more:tt)* }) => {
        $crate::__flux_store_conformance_module!(@module $name, $factory, skip_unless = || true, { $($more)* });
    };
    (@module $name:ident, $factory:expr, skip_unless = $ready:expr, { $($more:tt)* }) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            // Every check of `store::conformance` but the one that needs `end_log_at`.
            $crate::__flux_store_conformance_module!(@checks $factory, $ready;
                appends_must_follow_the_stored_log,
                appends_in_one_batch_follow_each_other,
                appends_to_an_unknown_execution_are_not_found,
                a_refused_batch_applies_nothing,
                a_refused_batch_leaves_other_batches_alone,
                creating_an_existing_execution_is_refused,
                deferred_writes_are_durable_before_later_writes,
                claims_take_generations_one_at_a_time,
                fences_refuse_writers_of_a_stale_generation,
                own_leases_are_taken_whatever_the_lease,
                renewals_need_the_lease_of_the_same_owner,
                takeovers_need_a_lease_that_ran_out,
                takeovers_refuse_executions_held_by_a_worker_or_not_running,
                leases_of_unknown_executions_are_not_found,
                finished_executions_never_change,
                cancelling_executions_only_finish,
                unfinished_executions_change_state_freely,
                state_changes_of_unknown_executions_are_not_found,
                a_batch_sees_its_own_earlier_writes,
                state_reads_the_current_state,
                list_filters_by_state,
                list_orders_rows_by_last_change_then_id,
                loaded_executions_keep_every_field,
                loaded_events_keep_every_field,
                unknown_executions_load_as_none,
                cached_results_expire_and_are_cleared_by_task_name,
                secrets_are_stored_listed_in_order_and_removed,
                listings_are_newest_first,
                listings_filter_by_workflow,
                listings_filter_by_any_of_several_states,
                listings_filter_by_creation_time,
                listings_filter_by_last_change,
                listings_filter_by_parent,
                listings_page_with_limit_and_offset,
                listings_refuse_a_limit_out_of_range,
                listed_rows_keep_every_field,
                deletions_remove_a_finished_execution_and_its_log,
                deletions_of_unfinished_executions_are_refused,
                deletions_of_unknown_executions_are_not_found,
                a_refused_deletion_refuses_its_batch,
                deletions_leave_other_executions_alone,
                a_batch_sees_its_own_deletions,
                schedules_are_created_once_and_replaced_at_their_revision,
                listings_filter_by_schedule,
                messages_are_kept_in_order_by_topic_and_deduplicated_by_key,
            );

            $($more)*
        }
    };
    (@checks $factory:expr, $ready:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                if !($ready)() {
                    return;
                }
                let subject = ($factory)();
                $crate::store::conformance::block_on($crate::store::conformance::$check(
                    $crate::store::conformance::Subject::store(&subject),
                ));
            }
        )*
    };
}

/// The largest seq a log holds: seqs are stored as signed 64-bit integers.
const MAX_SEQ: u64 = i64::MAX as u64;

/// A time at a whole microsecond (the precision stores keep), `n` microseconds after a fixed
/// instant.
fn at(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_765_000_000_000_000 + n)
}

/// An hour ago, to the microsecond: a lease until then has run out.
fn past() -> SystemTime {
    crate::event::from_micros(crate::event::to_micros(SystemTime::now() - Duration::from_secs(3600)))
}

/// An hour from now, to the microsecond: a lease until then is live.
fn future() -> SystemTime {
    crate::event::from_micros(crate::event::to_micros(SystemTime::now() + Duration::from_secs(3600)))
}

fn create(id: &str, state: ExecutionState) -> Write {
    create_at(id, state, at(0))
}

fn create_at(id: &str, state: ExecutionState, time: SystemTime) -> Write {
    let input = Arc::from(&[0xc0u8][..]);
    Write::CreateExecution {
        id: id.into(),
        workflow_name: "wf".into(),
        state,
        input,
        parent_id: None,
        version: 1,
        time,
    }
}

fn append(id: &str, seq: u64) -> Write {
    let event = Event::new(seq, EventType::TaskStarted, "t_1", "t", &[0x90u8][..], at(seq % 1_000_000));
    Write::Append { execution_id: id.into(), event }
}

fn set_state(id: &str, state: ExecutionState) -> Write {
    Write::set_state(id, state, None)
}

fn lease(id: &str, owner: &str, until: SystemTime, mode: LeaseMode) -> Write {
    Write::lease(id, owner, until, mode)
}

/// Writes `writes`, which the store must accept.
async fn accept(store: &dyn Store, writes: Vec<Write>, what: &str) {
    if let Err(err) = store.write(writes).await {
        panic!("{what}: the store refused it ({err}); it must accept it");
    }
}

/// Writes `writes`, which the store must refuse with an error of `kind`.
async fn refuse(store: &dyn Store, writes: Vec<Write>, kind: ErrorKind, what: &str) -> Error {
    match store.write(writes).await {
        Ok(()) => panic!("{what}: the store accepted it; it must refuse it with {kind:?}"),
        Err(err) if err.kind() == kind => err,
        Err(err) => {
            panic!("{what}: the store refused it with {:?} ({err}); it must refuse it with {kind:?}", err.kind())
        }
    }
}

/// The stored execution `id`, which must exist.
fn load(store: &dyn Store, id: &str) -> StoredExecution {
    match store.load(id) {
        Ok(Some(stored)) => stored,
        Ok(None) => panic!("execution `{id}` is missing from the store"),
        Err(err) => panic!("execution `{id}` could not be loaded: {err}"),
    }
}

/// Whether the store holds execution `id`.
fn exists(store: &dyn Store, id: &str) -> bool {
    store.load(id).unwrap_or_else(|err| panic!("execution `{id}` could not be loaded: {err}")).is_some()
}

/// The seqs of the stored log of `id`.
fn seqs(store: &dyn Store, id: &str) -> Vec<u64> {
    load(store, id).events.iter().map(Event::seq).collect()
}

/// The rows of the executions in `states`.
fn list(store: &dyn Store, states: &[ExecutionState]) -> Vec<ExecutionRow> {
    store.list(states).unwrap_or_else(|err| panic!("the executions in {states:?} could not be listed: {err}"))
}

/// The row of execution `id`, which must be in `state`.
fn row(store: &dyn Store, id: &str, state: ExecutionState) -> ExecutionRow {
    let rows = list(store, &[state]);
    rows.into_iter().find(|row| row.id == id).unwrap_or_else(|| panic!("`{id}` is not listed as {state}"))
}

/// The ids of `rows`, in their order.
fn ids(rows: &[ExecutionRow]) -> Vec<String> {
    rows.iter().map(|row| row.id.clone()).collect()
}
