//! What comes back: an execution and its log field for field, the task cache and the secrets.

use std::sync::Arc;

use super::{accept, at, create, list, load};
use crate::event::{Event, EventType, ExecutionState};
use crate::store::{Store, Write};

/// A loaded execution has every field of its row as written: id, workflow, version, state, input,
/// parent, creation and last change (to the microsecond), worker and generation, and the output
/// of its last state change that had one.
pub async fn loaded_executions_keep_every_field(store: &dyn Store) {
    accept(store, vec![create("parent", ExecutionState::Running)], "the creation of `parent`").await;
    let input: Arc<[u8]> = Arc::from(&[0x92, 0x01, 0xa1, 0x78][..]);
    let created = Write::CreateExecution {
        id: "x".into(),
        workflow_name: "orders".into(),
        state: ExecutionState::Scheduled,
        input: input.clone(),
        parent_id: Some("parent".into()),
        version: 7,
        time: at(5),
    };
    accept(store, vec![created], "the creation of `x`").await;
    let x = load(store, "x");
    assert_eq!((x.id.as_str(), x.workflow_name.as_str(), x.state), ("x", "orders", ExecutionState::Scheduled));
    assert_eq!(x.version, 7, "the workflow version");
    assert_eq!((&x.input[..], x.output, x.parent_id.as_deref()), (&input[..], None, Some("parent")));
    assert_eq!((x.created_at, x.updated_at), (at(5), at(5)), "the creation time");
    assert_eq!((x.worker, x.claim_generation, x.events.len()), (None, 0, 0));

    let output: Arc<[u8]> = Arc::from(&[1u8, 2, 3][..]);
    let state = |state, output, time| Write::SetState { execution_id: "x".into(), state, output, time };
    accept(store, vec![state(ExecutionState::Paused, Some(output.clone()), at(7))], "a pause with an output").await;
    let writes = vec![state(ExecutionState::Running, None, at(9)), Write::claim("x", Some("w1"), 1)];
    accept(store, writes, "a change without output, and a claim").await;
    let x = load(store, "x");
    assert_eq!((x.state, x.output.as_deref()), (ExecutionState::Running, Some(&output[..])), "a change without output");
    assert_eq!((x.created_at, x.updated_at), (at(5), at(9)), "the creation and last change");
    assert_eq!((x.worker.as_deref(), x.claim_generation), (Some("w1"), 1));
}

/// `len` bytes that differ from those of another `salt`.
fn bytes(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i * 31 + salt) % 251).unwrap()).collect()
}

/// A loaded log has every event as appended, field for field: seq, type, source id, name,
/// value bytes (empty, small, many of a few kilobytes, and large ones up to a mebibyte) and
/// time to the microsecond.
pub async fn loaded_events_keep_every_field(store: &dyn Store) {
    let kinds: Vec<EventType> = EventType::ALL.iter().copied().filter(|k| *k != EventType::TaskProgress).collect();
    let mut values = vec![Vec::new(), vec![0xc0], bytes(4096, 1), bytes(4097, 2), bytes(70_000, 3), bytes(1 << 20, 4)];
    values.extend((0..40).map(|i| bytes(3000 + i, i)));
    values.push(Vec::new());
    let names = ["step", "step", "other", "naïve ✓"];
    let events: Vec<Event> = (0..values.len())
        .map(|i| {
            let seq = u64::try_from(i).unwrap() + 1;
            let source_id = format!("{}_{}", names[i % names.len()], i / 3);
            let time = at(1_000 + seq * 1_000_003);
            Event::new(seq, kinds[i % kinds.len()], source_id, names[i % names.len()], values[i].clone(), time)
        })
        .collect();
    let (first, rest) = events.split_at(10);
    let mut writes = vec![create("x", ExecutionState::Running)];
    writes.extend(first.iter().map(|e| Write::Append { execution_id: "x".into(), event: e.clone() }));
    accept(store, writes, "the creation of `x` with 10 events").await;
    let writes = rest.iter().map(|e| Write::Append { execution_id: "x".into(), event: e.clone() }).collect();
    accept(store, writes, "the rest of the events of `x`").await;

    let loaded = load(store, "x").events;
    assert_eq!(loaded.len(), events.len(), "the number of events");
    for (got, want) in loaded.iter().zip(&events) {
        let n = want.seq();
        assert_eq!(got.seq(), n, "the seq of event #{n}");
        assert_eq!(got.kind(), want.kind(), "the type of event #{n}");
        assert_eq!(got.source_id(), want.source_id(), "the source id of event #{n}");
        assert_eq!(got.name(), want.name(), "the name of event #{n}");
        let (len, expected) = (got.value_bytes().len(), want.value_bytes().len());
        assert!(
            got.value_bytes() == want.value_bytes(),
            "the value of event #{n}: {len} bytes, not the {expected} written"
        );
        assert_eq!(got.time(), want.time(), "the time of event #{n}");
    }
}

/// An execution that does not exist loads as `None`, has no state and is not listed.
pub async fn unknown_executions_load_as_none(store: &dyn Store) {
    accept(store, vec![create("x", ExecutionState::Running)], "the creation of `x`").await;
    assert!(store.load("nope").unwrap().is_none(), "an unknown execution loads");
    assert_eq!(store.state("nope").unwrap(), None, "an unknown execution has a state");
    assert!(list(store, ExecutionState::ALL).iter().all(|row| row.id != "nope"), "an unknown execution is listed");
}

/// A cached result is read back while it is valid (no end, or an end after the time asked
/// about), replaced by a later one of its key, and cleared with the others of its task name, or
/// with all; clearing counts what it removed, expired entries included.
pub async fn cached_results_expire_and_are_cleared_by_task_name(store: &dyn Store) {
    let put = |key: &str, task: &str, value: u8, expires_at| Write::CachePut {
        key: key.into(),
        task_name: task.into(),
        value: Arc::from(&[value][..]),
        expires_at,
    };
    let writes = vec![put("k1", "t1", 1, None), put("k2", "t1", 2, Some(at(100))), put("k3", "t2", 3, Some(at(50)))];
    accept(store, writes, "three cached results").await;
    accept(store, vec![put("k4", "t2", 4, None)], "a fourth cached result").await;
    let get = |key: &str, now| store.cache_get(key, now).unwrap();
    assert_eq!(get("k1", at(60)), Some(vec![1]), "a result without end");
    assert_eq!(get("k2", at(60)), Some(vec![2]), "a result before its end");
    assert_eq!(get("k2", at(100)), None, "a result at its end");
    assert_eq!(get("k3", at(60)), None, "a result after its end");
    assert_eq!(get("nope", at(60)), None, "an unknown key");
    accept(store, vec![put("k1", "t1", 9, None)], "a result replaced").await;
    assert_eq!(get("k1", at(60)), Some(vec![9]), "a replaced result");
    assert_eq!(store.cache_clear(Some("t1")).unwrap(), 2, "the results of task `t1` cleared");
    assert_eq!((get("k1", at(60)), get("k2", at(60))), (None, None), "the results of a cleared task");
    assert_eq!(get("k4", at(60)), Some(vec![4]), "a result of another task than the cleared one");
    assert_eq!(store.cache_clear(Some("nope")).unwrap(), 0, "the results of an unknown task cleared");
    assert_eq!(store.cache_clear(None).unwrap(), 2, "all results cleared, the expired one included");
    assert_eq!(get("k4", at(60)), None, "a result after all were cleared");
}

/// A secret is stored with its nonce and ciphertext, replaced by a later one of its name,
/// listed by name in order, and removed once (a second removal finds nothing).
pub async fn secrets_are_stored_listed_in_order_and_removed(store: &dyn Store) {
    for (name, nonce, ciphertext) in [("b", b"n1", b"c1"), ("a", b"n2", b"c2"), ("c", b"n3", b"c3")] {
        store.secret_put(name, nonce, ciphertext).unwrap();
    }
    assert_eq!(store.secret_list().unwrap(), ["a", "b", "c"], "the names, in order");
    assert_eq!(store.secret_get("a").unwrap(), Some((b"n2".to_vec(), b"c2".to_vec())), "secret `a`");
    assert_eq!(store.secret_get("nope").unwrap(), None, "an unknown secret");
    store.secret_put("a", b"n4", b"c4").unwrap();
    assert_eq!(store.secret_get("a").unwrap(), Some((b"n4".to_vec(), b"c4".to_vec())), "a replaced secret");
    assert_eq!(store.secret_list().unwrap().len(), 3, "a replaced secret listed twice");
    assert!(store.secret_remove("a").unwrap(), "the removal of `a` found nothing");
    assert!(!store.secret_remove("a").unwrap(), "a second removal of `a` found it");
    assert_eq!(store.secret_get("a").unwrap(), None, "a removed secret");
    assert_eq!(store.secret_list().unwrap(), ["b", "c"], "the names after a removal");
}
