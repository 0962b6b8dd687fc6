//! Managing stored executions (docs/design.md §16): listing them with filters and pages through
//! the engine on both stores and over HTTP, deleting finished ones with their sub-workflows, and
//! retention, which keeps a database that runs forever from growing forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use flux::prelude::*;
use flux::store::{Commit, ExecutionFilter, SqliteStore, Store, StoredExecution, Write};
use flux::{ErrorKind, Event, ExecutionPage, ExecutionRow};

#[flux::task]
async fn triple(x: u32) -> u32 {
    x * 3
}

#[flux::workflow]
async fn tripler(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    triple(*ctx.input()).await
}

#[flux::workflow]
async fn approval(ctx: ExecutionContext<u32>) -> flux::Result<String> {
    let decision: String = flux::pause("approve").await?;
    Ok(format!("{}: {decision}", ctx.input()))
}

#[flux::workflow]
async fn family(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let a = tripler.call(*ctx.input()).await?;
    let b = tripler.call(*ctx.input() + 1).await?;
    Ok(a + b)
}

/// A SQLite engine in a new temporary directory.
fn engine_on_disk() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("flux.db")).unwrap();
    (dir, engine)
}

fn ids(page: &ExecutionPage) -> Vec<&str> {
    page.executions.iter().map(|row| row.id.as_str()).collect()
}

/// Runs `tripler` three times, `approval` twice (both paused) and `family` once, in this order,
/// and returns the ids in the order of creation (a `family` is followed by its two children).
async fn run_a_few(engine: &Engine) -> Vec<String> {
    let mut created = Vec::new();
    for n in 0..3 {
        created.push(tripler.on(engine).run(n).await.unwrap().execution_id().to_string());
    }
    for n in 0..2 {
        let paused = approval.on(engine).run(n).await.unwrap();
        assert_eq!(paused.state(), ExecutionState::Paused);
        created.push(paused.execution_id().to_string());
    }
    let parent = family.on(engine).run(10).await.unwrap();
    created.push(parent.execution_id().to_string());
    let children = engine.list_executions(ExecutionFilter::new().parent(parent.execution_id())).await.unwrap();
    let mut children: Vec<ExecutionRow> = children.executions;
    children.reverse();
    created.extend(children.into_iter().map(|row| row.id));
    created
}

/// Lists with filters and pages on `engine`, whatever its store.
async fn list_with_filters_and_pages(engine: &Engine) {
    let before = SystemTime::now();
    let created = run_a_few(engine).await;
    let newest_first: Vec<&str> = created.iter().rev().map(String::as_str).collect();

    let all = engine.list_executions(ExecutionFilter::new()).await.unwrap();
    assert_eq!((ids(&all), all.total), (newest_first.clone(), 8));
    let row = all.executions.iter().find(|row| row.id == created[0]).unwrap();
    assert_eq!((row.workflow_name.as_str(), row.version, row.state), ("tripler", 1, ExecutionState::Completed));
    // Stored times are whole microseconds.
    assert!(row.created_at + Duration::from_micros(1) > before && row.updated_at >= row.created_at, "{row:?}");

    let triplers = engine.list_executions(ExecutionFilter::new().workflow("tripler")).await.unwrap();
    assert_eq!(triplers.total, 5, "three runs and the two children of `family`");
    let paused = ExecutionFilter::new().workflow("approval").state(ExecutionState::Paused);
    let paused = engine.list_executions(paused).await.unwrap();
    assert_eq!(ids(&paused), [created[4].as_str(), created[3].as_str()]);
    let either = ExecutionFilter::new().state(ExecutionState::Paused).state(ExecutionState::Completed);
    assert_eq!(engine.list_executions(either).await.unwrap().total, 8);

    // Pages of three, newest first, each with the same total.
    let mut seen = Vec::new();
    for offset in [0, 3, 6, 9] {
        let page = engine.list_executions(ExecutionFilter::new().limit(3).offset(offset)).await.unwrap();
        assert_eq!(page.total, 8);
        seen.extend(page.executions.into_iter().map(|row| row.id));
    }
    assert_eq!(seen, newest_first);

    // A window of creation times: from the first `approval` on, before the `family`.
    let rows = &all.executions;
    let at = |id: &str| rows.iter().find(|row| row.id == id).unwrap().created_at;
    let window = ExecutionFilter::new().created_after(at(&created[3])).created_before(at(&created[5]));
    let window = engine.list_executions(window).await.unwrap();
    assert_eq!(ids(&window), [created[4].as_str(), created[3].as_str()]);

    let children = engine.list_executions(ExecutionFilter::new().parent(created[5].as_str())).await.unwrap();
    assert_eq!(ids(&children), [created[7].as_str(), created[6].as_str()]);

    let err = engine.list_executions(ExecutionFilter::new().limit(1001)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("between 1 and 1000, not 1001"), "{err}");
}

#[tokio::test]
async fn listings_filter_and_page_in_memory() {
    list_with_filters_and_pages(&Engine::in_memory()).await;
}

#[tokio::test]
async fn listings_filter_and_page_in_every_store() {
    for place in flux_suite::places() {
        list_with_filters_and_pages(&place.open()).await;
    }
}

/// The number of events stored for execution `id`, read from the file itself.
fn events_in_file(path: &std::path::Path, id: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM execution_events WHERE execution_id = ?1", [id], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_finished_execution_is_deleted_with_its_sub_workflows_and_their_events() {
    let (dir, engine) = engine_on_disk();
    let path = dir.path().join("flux.db");
    let parent = family.on(&engine).run(4).await.unwrap();
    let other = tripler.on(&engine).run(7).await.unwrap();
    let children = engine.list_executions(ExecutionFilter::new().parent(parent.execution_id())).await.unwrap();
    assert_eq!(children.total, 2);
    let family_ids: Vec<String> = std::iter::once(parent.execution_id().to_string())
        .chain(children.executions.into_iter().map(|r| r.id))
        .collect();
    assert!(family_ids.iter().all(|id| events_in_file(&path, id) > 0));

    assert_eq!(engine.delete(parent.execution_id()).await.unwrap(), 3, "the parent and its two children");
    for id in &family_ids {
        assert!(engine.store().load(id).unwrap().is_none(), "`{id}` is still stored");
        assert_eq!(events_in_file(&path, id), 0, "the events of `{id}` are still stored");
    }
    assert_eq!(tripler.on(&engine).status(other.execution_id()).await.unwrap().output(), Some(&21));
    let err = engine.delete(parent.execution_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A creation of `id` at `time`, in `state`, as a sub-workflow of `parent` if given.
fn created(id: &str, state: ExecutionState, parent: Option<&str>, time: SystemTime) -> Write {
    Write::CreateExecution {
        id: id.into(),
        workflow_name: if parent.is_some() { "child" } else { "wf" }.into(),
        state,
        input: Arc::from(&[0x01u8][..]),
        parent_id: parent.map(Arc::from),
        version: 1,
        time,
    }
}

#[tokio::test]
async fn unfinished_executions_are_never_deleted_and_a_refusal_deletes_nothing() {
    let engine = Engine::in_memory();
    let paused = approval.on(&engine).run(1).await.unwrap();
    let err = engine.delete(paused.execution_id()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.to_string().contains("is PAUSED; only a finished execution can be deleted"), "{err}");

    // A finished parent whose second child is still running, and whose first child has a
    // finished child of its own.
    let now = SystemTime::now();
    let writes = vec![
        created("p", ExecutionState::Completed, None, now),
        created("c1", ExecutionState::Completed, Some("p"), now),
        created("g", ExecutionState::Failed, Some("c1"), now),
        created("c2", ExecutionState::Running, Some("p"), now),
    ];
    engine.store().write(writes).await.unwrap();
    let err = engine.delete("p").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert!(err.to_string().contains("its sub-workflow `c2` is RUNNING"), "{err}");
    for id in ["p", "c1", "g", "c2"] {
        assert!(engine.store().load(id).unwrap().is_some(), "`{id}` was deleted by a refused deletion");
    }
    // A child of an unfinished parent stays: the parent's replay may need it.
    engine.store().write(vec![created("q", ExecutionState::Running, None, now)]).await.unwrap();
    engine.store().write(vec![created("q1", ExecutionState::Completed, Some("q"), now)]).await.unwrap();
    let err = engine.delete("q1").await.unwrap_err();
    assert!(err.to_string().contains("is a sub-workflow of `q`, which is RUNNING"), "{err}");

    // By filter: only what may go goes, subtrees whole.
    engine.store().write(vec![Write::set_state("c2", ExecutionState::Cancelled, None)]).await.unwrap();
    let deleted = engine.delete_where(ExecutionFilter::new()).await.unwrap();
    assert_eq!(deleted, 4, "p with c1, g and c2; not q (running), q1 (its parent runs) nor the paused one");
    let left = engine.list_executions(ExecutionFilter::new()).await.unwrap();
    let mut left: Vec<&str> = ids(&left);
    left.sort_unstable();
    let mut expected = vec!["q", "q1", paused.execution_id()];
    expected.sort_unstable();
    assert_eq!(left, expected);
}

/// A store that counts the deletions of each write it passes on to a SQLite store.
struct Counted {
    inner: SqliteStore,
    /// The most deletions one write (one transaction) held.
    most: AtomicUsize,
    /// The writes that held deletions.
    batches: AtomicUsize,
    /// The deletions, in all.
    deleted: AtomicUsize,
}

#[derive(Clone)]
struct Watched(Arc<Counted>);

impl Store for Watched {
    fn write(&self, writes: Vec<Write>) -> Commit {
        let deletions = writes.iter().filter(|w| matches!(w, Write::DeleteExecution { .. })).count();
        if deletions > 0 {
            self.0.most.fetch_max(deletions, Ordering::Relaxed);
            self.0.batches.fetch_add(1, Ordering::Relaxed);
            self.0.deleted.fetch_add(deletions, Ordering::Relaxed);
        }
        self.0.inner.write(writes)
    }
    fn write_deferred(&self, writes: Vec<Write>) -> Commit {
        self.0.inner.write_deferred(writes)
    }
    fn load(&self, id: &str) -> flux::Result<Option<StoredExecution>> {
        self.0.inner.load(id)
    }
    fn list(&self, states: &[ExecutionState]) -> flux::Result<Vec<ExecutionRow>> {
        self.0.inner.list(states)
    }
    fn list_executions(&self, filter: &ExecutionFilter) -> flux::Result<ExecutionPage> {
        self.0.inner.list_executions(filter)
    }
    fn state(&self, id: &str) -> flux::Result<Option<ExecutionState>> {
        self.0.inner.state(id)
    }
    fn describe(&self) -> String {
        self.0.inner.describe()
    }
    fn cache_get(&self, key: &str, now: SystemTime) -> flux::Result<Option<Vec<u8>>> {
        self.0.inner.cache_get(key, now)
    }
    fn cache_clear(&self, task_name: Option<&str>) -> flux::Result<u64> {
        self.0.inner.cache_clear(task_name)
    }
    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> flux::Result<()> {
        self.0.inner.secret_put(name, nonce, ciphertext)
    }
    fn secret_get(&self, name: &str) -> flux::Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.0.inner.secret_get(name)
    }
    fn secret_list(&self) -> flux::Result<Vec<String>> {
        self.0.inner.secret_list()
    }
    fn secret_remove(&self, name: &str) -> flux::Result<bool> {
        self.0.inner.secret_remove(name)
    }
}

/// `n` finished executions of round `round`, created and finished at `time`, each with the
/// four events of a one-task run (values of about 100 bytes), written 1,000 per batch.
async fn finished_executions(store: &dyn Store, round: usize, n: usize, time: SystemTime) {
    let value: Arc<[u8]> = Arc::from(vec![0xa5; 100]);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut writes = Vec::with_capacity(chunk.len() * 6);
        for i in chunk {
            let id = format!("old-{round}-{i}");
            writes.push(created(&id, ExecutionState::Running, None, time));
            for (seq, kind) in [
                EventType::WorkflowStarted,
                EventType::TaskStarted,
                EventType::TaskCompleted,
                EventType::WorkflowCompleted,
            ]
            .into_iter()
            .enumerate()
            {
                let event = Event::new(seq as u64 + 1, kind, format!("t_{i}"), "triple", value.clone(), time);
                writes.push(Write::Append { execution_id: id.as_str().into(), event });
            }
            let mut done = Write::set_state(id.as_str(), ExecutionState::Completed, Some(value.clone()));
            if let Write::SetState { time: at, .. } = &mut done {
                *at = time;
            }
            writes.push(done);
        }
        store.write(writes).await.unwrap();
    }
}

/// Old executions retention must keep: running, paused, a finished child of a running parent,
/// and a finished parent with a running child. Returns their ids.
async fn old_unfinished(store: &dyn Store, round: usize, time: SystemTime) -> Vec<String> {
    let id = |what: &str| format!("keep-{round}-{what}");
    let writes = vec![
        created(&id("running"), ExecutionState::Running, None, time),
        created(&id("paused"), ExecutionState::Paused, None, time),
        created(&id("child-of-running"), ExecutionState::Completed, Some(&id("running")), time),
        created(&id("done-parent"), ExecutionState::Completed, None, time),
        created(&id("running-child"), ExecutionState::Running, Some(&id("done-parent")), time),
    ];
    store.write(writes).await.unwrap();
    ["running", "paused", "child-of-running", "done-parent", "running-child"].map(id).to_vec()
}

/// The size of the database file once its write-ahead log is checkpointed into it.
fn file_size(path: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_in_bounded_batches_beside_new_runs_and_the_file_stops_growing() {
    const N: usize = 10_000;
    const NEW_RUNS: u32 = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let inner = SqliteStore::open(&path, flux::Durability::Default).unwrap();
    let counted = Arc::new(Counted {
        inner,
        most: AtomicUsize::new(0),
        batches: AtomicUsize::new(0),
        deleted: AtomicUsize::new(0),
    });
    let keep = Duration::from_secs(3600);
    let engine = Engine::builder().store(Watched(counted.clone())).retention(keep).build().unwrap();
    // Executions that finished two hours ago, with a retention of one hour: the clock they
    // were written with is what ages them.
    let old = SystemTime::now() - 2 * keep;
    let mut sizes = Vec::new();
    let mut kept = Vec::new();
    let mut new_runs = 0;
    for round in 0..3 {
        // Counted from before the writes: the engine's thread may delete while they go on.
        counted.batches.store(0, Ordering::Relaxed);
        counted.deleted.store(0, Ordering::Relaxed);
        finished_executions(engine.store().as_ref(), round, N, old).await;
        kept.extend(old_unfinished(engine.store().as_ref(), round, old).await);

        // New executions run while retention deletes (as many each round, so that what they
        // add to the file is the same each round).
        let runner = {
            let engine = engine.clone();
            tokio::spawn(async move {
                for n in 0..NEW_RUNS {
                    let done = tripler.on(&engine).run(n).await.unwrap();
                    assert_eq!(done.output(), Some(&(n * 3)));
                }
            })
        };
        let started = std::time::Instant::now();
        // The engine's own thread may have begun a pass already (its first comes a second after
        // the start): passes take turns, and between them they delete everything once.
        engine.run_retention().await.unwrap();
        let took = started.elapsed();
        runner.await.unwrap();
        new_runs += NEW_RUNS;

        let deleted = counted.deleted.load(Ordering::Relaxed);
        assert_eq!(deleted, N, "round {round}: every old finished execution, and nothing else");
        let (most, batches) = (counted.most.load(Ordering::Relaxed), counted.batches.load(Ordering::Relaxed));
        assert!(most <= flux::limits::DELETE_BATCH, "round {round}: {most} deletions in one transaction");
        assert!(batches >= N / flux::limits::DELETE_BATCH, "round {round}: only {batches} deletion batches");
        let size = file_size(&path);
        println!("round {round}: deleted {deleted} in {batches} batches in {took:?}; file {size} bytes");
        sizes.push(size);
    }
    for id in &kept {
        assert!(engine.store().load(id).unwrap().is_some(), "retention deleted `{id}`");
    }
    let runs = engine.list_executions(ExecutionFilter::new().workflow("tripler")).await.unwrap();
    assert_eq!(runs.total, u64::from(new_runs), "the new runs are all kept");
    assert_eq!(engine.list_executions(ExecutionFilter::new()).await.unwrap().total, u64::from(new_runs) + 15);

    // Deleted rows leave free pages in the file, which the next round's executions reuse: the
    // file grows in the first round only. Round 3 may still exceed round 2 by what the file
    // keeps on purpose each round, the 100 new runs and the 5 executions retention must keep
    // (about 1 KiB each), and by the pages its B-trees split differently when refilled: 5% of
    // the file (about 500 KiB), far less than the 10,000 executions (about 7 MiB) it would grow
    // by otherwise.
    let margin = sizes[1] / 20;
    assert!(sizes[2] <= sizes[1] + margin, "the file still grows: {sizes:?} bytes after each round");
    drop(engine);
}

/// Over HTTP: `GET /executions` answers pages of exactly the documented shape, takes every
/// criterion of the filter, and answers 422 for a bad state, limit or time.
#[cfg(feature = "server")]
#[tokio::test]
async fn the_http_listing_answers_pages_and_refuses_bad_filters() {
    use serde_json::{Value, json};

    let (_dir, engine) = engine_on_disk();
    let created = run_a_few(&engine).await;
    let server = flux::server::Server::from_config(flux::Config::default())
        .engine(&engine)
        .register(tripler)
        .register(approval)
        .register(family)
        .admin_token("admin")
        .bootstrap_token("bootstrap")
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("{}/executions", server.url());
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let get = |query: &str| {
        let (client, url, query) = (client.clone(), url.clone(), query.to_string());
        async move {
            let response = client.get(format!("{url}{query}")).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, page) = get("?workflow=tripler&state=COMPLETED&limit=2&offset=1").await;
    assert_eq!(status, 200, "{page}");
    let rows = engine.list_executions(ExecutionFilter::new().workflow("tripler").limit(2).offset(1)).await.unwrap();
    let expected: Vec<Value> = rows
        .executions
        .iter()
        .map(|row| {
            json!({
                "execution_id": row.id,
                "workflow_name": "tripler",
                "workflow_version": 1,
                "state": "COMPLETED",
                "parent_id": row.parent_id,
                "worker": null,
                "created_at": humantime::format_rfc3339_micros(row.created_at).to_string(),
                "updated_at": humantime::format_rfc3339_micros(row.updated_at).to_string(),
            })
        })
        .collect();
    assert_eq!(page, json!({"executions": expected, "total": 5, "limit": 2, "offset": 1}));

    let (_, page) = get("?state=PAUSED&state=completed").await;
    assert_eq!((page["total"].as_u64(), page["limit"].as_u64()), (Some(8), Some(50)));
    let (_, page) = get("?workflow=approval").await;
    let listed: Vec<&str> =
        page["executions"].as_array().unwrap().iter().map(|r| r["execution_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [created[4].as_str(), created[3].as_str()]);
    let (_, page) = get("?created_after=2000-01-01T00:00:00Z&created_before=2001-01-01T00:00:00Z").await;
    assert_eq!(page, json!({"executions": [], "total": 0, "limit": 50, "offset": 0}));
    // The last change, and several parents as repeated parameters: every criterion of the filter
    // can be sent.
    let (_, page) = get("?updated_before=2000-01-01T00:00:00Z").await;
    assert_eq!(page["total"].as_u64(), Some(0), "{page}");
    let (_, page) = get("?updated_before=2999-01-01T00:00:00Z&workflow=tripler").await;
    assert_eq!(page["total"].as_u64(), Some(5), "{page}");
    let (_, page) = get(&format!("?parent={}&parent={}&parent=nobody", created[5], created[0])).await;
    let listed: Vec<&str> =
        page["executions"].as_array().unwrap().iter().map(|r| r["execution_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [created[7].as_str(), created[6].as_str()]);

    for (query, named) in [
        ("?state=DONE", "unknown state `DONE`"),
        ("?limit=1001", "`limit` must be a whole number from 1 to 1000, not `1001`"),
        ("?limit=0", "not `0`"),
        ("?offset=-1", "`offset`"),
        ("?created_after=yesterday", "`created_after` must be an RFC 3339 time"),
        ("?created_before=2026-13-01T00:00:00Z", "`created_before`"),
        ("?updated_before=soon", "`updated_before` must be an RFC 3339 time"),
        ("?states=RUNNING", "unknown query parameter `states`"),
    ] {
        let (status, body) = get(query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(named), "{query}: {body}");
    }
    server.shutdown().await.unwrap();
}
