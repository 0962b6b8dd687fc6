//! Messages sent to executions ([`Store::message_put`], [`Store::message_get`]).

use crate::store::Store;

/// Messages are read back by topic in the order they were kept; one whose key was kept already
/// on the same execution and topic is a duplicate and is not kept; other executions and topics
/// are apart.
pub async fn messages_are_kept_in_order_by_topic_and_deduplicated_by_key(store: &dyn Store) {
    assert!(store.message_put("x", "paid", None, b"1").unwrap(), "a first message");
    assert!(store.message_put("x", "paid", Some("k"), b"2").unwrap(), "a keyed message");
    assert!(!store.message_put("x", "paid", Some("k"), b"3").unwrap(), "a duplicate of key `k` was kept");
    assert!(store.message_put("x", "paid", Some("k2"), b"4").unwrap(), "another key");
    assert!(store.message_put("x", "shipped", Some("k"), b"5").unwrap(), "the same key on another topic");
    assert!(store.message_put("y", "paid", Some("k"), b"6").unwrap(), "the same key for another execution");
    let read = |id: &str, topic: &str, index: u64| store.message_get(id, topic, index).unwrap();
    assert_eq!(read("x", "paid", 0).as_deref(), Some(&b"1"[..]));
    assert_eq!(read("x", "paid", 1).as_deref(), Some(&b"2"[..]));
    assert_eq!(read("x", "paid", 2).as_deref(), Some(&b"4"[..]), "the duplicate took a place");
    assert_eq!(read("x", "paid", 3), None);
    assert_eq!(read("x", "shipped", 0).as_deref(), Some(&b"5"[..]));
    assert_eq!(read("y", "paid", 0).as_deref(), Some(&b"6"[..]));
    assert_eq!(read("z", "paid", 0), None, "an execution with no messages");
}
