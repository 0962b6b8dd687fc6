//! Schedules ([`Store::schedule_put`] and the rest) and the listing of the executions a schedule
//! started ([`ExecutionFilter::schedule`]).

use super::{accept, at, create_at};
use crate::error::ErrorKind;
use crate::event::ExecutionState;
use crate::store::{ExecutionFilter, Store, StoredSchedule};

fn schedule(name: &str, body: &[u8]) -> StoredSchedule {
    StoredSchedule {
        name: name.to_string(),
        workflow_name: "wf".to_string(),
        body: body.to_vec(),
        revision: 0,
        updated_at: at(0),
    }
}

/// A schedule is created once (a second creation of its name is a conflict), replaced only at
/// the revision it was read at (each replacement adding one), listed by name, and removed once.
pub async fn schedules_are_created_once_and_replaced_at_their_revision(store: &dyn Store) {
    assert_eq!(store.schedule_put(&schedule("b", b"1"), None).unwrap(), 1, "the revision of a new schedule");
    store.schedule_put(&schedule("a", b"x"), None).unwrap();
    let taken = store.schedule_put(&schedule("b", b"2"), None).expect_err("a second schedule named `b` was created");
    assert_eq!(taken.kind(), ErrorKind::Conflict, "a second creation of `b`: {taken}");
    let stored = store.schedule_get("b").unwrap().expect("schedule `b` is missing");
    assert_eq!((stored.body.as_slice(), stored.revision, stored.workflow_name.as_str()), (&b"1"[..], 1, "wf"));

    assert_eq!(store.schedule_put(&schedule("b", b"3"), Some(1)).unwrap(), 2, "a replacement at revision 1");
    let stale = store.schedule_put(&schedule("b", b"4"), Some(1)).expect_err("a stale replacement was accepted");
    assert_eq!(stale.kind(), ErrorKind::Conflict, "a replacement at a revision that moved on: {stale}");
    let stored = store.schedule_get("b").unwrap().expect("schedule `b` is missing");
    assert_eq!((stored.body.as_slice(), stored.revision), (&b"3"[..], 2), "the stale replacement changed it");
    let unknown = store.schedule_put(&schedule("zz", b"1"), Some(1)).expect_err("an unknown schedule was replaced");
    assert_eq!(unknown.kind(), ErrorKind::NotFound, "the replacement of an unknown schedule: {unknown}");

    let names: Vec<String> = store.schedule_list().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["a", "b"], "the schedules, by name");
    assert!(store.schedule_delete("b").unwrap(), "the removal of `b` found nothing");
    assert!(!store.schedule_delete("b").unwrap(), "a second removal of `b` found it");
    assert_eq!(store.schedule_get("b").unwrap(), None, "a removed schedule");
    assert_eq!(store.schedule_put(&schedule("b", b"5"), None).unwrap(), 1, "a schedule made again after removal");
}

/// The executions a schedule started are those named after it and a fire time: not those of a
/// schedule whose name starts with the same letters, nor others.
pub async fn listings_filter_by_schedule(store: &dyn Store) {
    let ids = [
        ("nightly_2026-12-07T09:00:00Z", 0),
        ("nightly_2026-12-08T09:00:00Z", 1),
        ("nightly_x_2026-12-07T09:00:00Z", 2),
        ("nightly_xy_2026-12-07T09:00:00", 3),
        ("nightlyx2026-12-07T09:00:00Z", 4),
        ("nightly", 5),
        ("other_2026-12-07T09:00:00Z", 6),
    ];
    for (id, n) in ids {
        accept(store, vec![create_at(id, ExecutionState::Completed, at(n))], "a creation").await;
    }
    let listed = |name: &str| -> Vec<String> {
        let page = store.list_executions(&ExecutionFilter::new().schedule(name)).unwrap();
        page.executions.into_iter().map(|row| row.id).collect()
    };
    assert_eq!(listed("nightly"), ["nightly_2026-12-08T09:00:00Z", "nightly_2026-12-07T09:00:00Z"]);
    assert_eq!(listed("nightly_x"), ["nightly_x_2026-12-07T09:00:00Z"]);
    assert_eq!(listed("none"), Vec::<String>::new());
    let page = store.list_executions(&ExecutionFilter::new().schedule("nightly").limit(1)).unwrap();
    assert_eq!(page.total, 2, "the total of a page of a schedule's executions");
}
