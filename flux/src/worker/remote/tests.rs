//! The batches of checkpoints against a loopback server: each checkpoint's outcome, and the
//! fallback to single checkpoints.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;

use super::{Endpoint, Group, RemoteStore, send_batch};
use crate::error::ErrorKind;
use crate::protocol::{BatchAnswer, BatchOutcome, CheckpointBatch};
use crate::store::{Commit, MemoryStore};

/// A loopback server with the single endpoint, and the batch one answering `batch` (the
/// outcomes in order) or 404 when it is `None`; counts the requests of each.
async fn server(batch: Option<Vec<BatchOutcome>>) -> (String, Arc<[AtomicUsize; 2]>) {
    let counts: Arc<[AtomicUsize; 2]> = Arc::default();
    let (single, batched) = (counts.clone(), counts.clone());
    let mut app = axum::Router::new().route(
        "/workers/w/checkpoint/{id}",
        post(move || async move {
            single[0].fetch_add(1, Ordering::SeqCst);
            axum::Json(serde_json::json!({"seq": 9, "cancelling": false}))
        }),
    );
    if let Some(items) = batch {
        app = app.route(
            "/workers/w/checkpoints",
            post(move |body: axum::body::Bytes| async move {
                batched[1].fetch_add(1, Ordering::SeqCst);
                let sent: CheckpointBatch = crate::value::from_msgpack(&body).unwrap();
                assert_eq!(sent.items.len(), items.len());
                crate::value::to_msgpack(&BatchAnswer { items }).unwrap()
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, counts)
}

fn endpoint(base: String) -> Endpoint {
    Endpoint {
        client: reqwest::Client::new(),
        base,
        worker: "w".into(),
        session: Arc::new(Mutex::new("session".into())),
        singly: Arc::default(),
    }
}

/// Groups of executions `ids`, each with one pending commit.
fn groups(ids: &[&str]) -> (Vec<Group>, Vec<Commit>) {
    ids.iter()
        .map(|id| {
            let (done, commit) = Commit::pending();
            (Group { id: Arc::from(*id), generation: 1, writes: Vec::new(), dones: vec![done] }, commit)
        })
        .unzip()
}

fn outcome(status: u16) -> BatchOutcome {
    BatchOutcome { status, seq: 4, cancelling: false, detail: Some(format!("status {status}")) }
}

/// Each checkpoint of a batch gets its own outcome: stored, refused as stale, refused for
/// another reason; one the server could not store for now goes again alone.
#[tokio::test]
async fn each_checkpoint_of_a_batch_gets_its_own_outcome() {
    let (url, counts) = server(Some(vec![outcome(200), outcome(409), outcome(422), outcome(503)])).await;
    let endpoint = endpoint(url);
    let (store, _rx) = RemoteStore::new(Arc::new(MemoryStore::new()));
    let (groups, commits) = groups(&["a", "b", "c", "d"]);
    send_batch(&endpoint, &store, groups, Duration::from_secs(5)).await;
    let results = futures::future::join_all(commits).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::Conflict);
    let refused = results[2].as_ref().unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Storage);
    assert!(refused.to_string().contains("status 422"), "{refused}");
    assert!(results[3].is_ok(), "sent again alone: {:?}", results[3]);
    assert_eq!([counts[0].load(Ordering::SeqCst), counts[1].load(Ordering::SeqCst)], [1, 1]);
    assert!(!endpoint.singly.load(Ordering::SeqCst));
}

/// A server without the batch endpoint gets the checkpoints one by one, now and from then
/// on.
#[tokio::test]
async fn a_server_without_batches_gets_single_checkpoints() {
    let (url, counts) = server(None).await;
    let endpoint = endpoint(url);
    let (store, _rx) = RemoteStore::new(Arc::new(MemoryStore::new()));
    let (groups, commits) = groups(&["a", "b", "c"]);
    send_batch(&endpoint, &store, groups, Duration::from_secs(5)).await;
    for result in futures::future::join_all(commits).await {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(counts[0].load(Ordering::SeqCst), 3);
    assert!(endpoint.singly.load(Ordering::SeqCst), "the worker remembers to send them alone");
}
