//! Shared state: a handle given to the engine once (`Engine::with_state`,
//! `EngineBuilder::state`, `Server::state`) and received by tasks as a `flux::State<T>`
//! parameter, which is not part of the task id.

use std::sync::atomic::{AtomicU64, Ordering};

use flux::prelude::*;
use flux::{ErrorKind, State};

/// A stand-in for a database pool: it counts the queries made through it.
#[derive(Debug)]
struct PgLikePool {
    name: &'static str,
    queries: AtomicU64,
}

impl PgLikePool {
    fn new(name: &'static str) -> Self {
        PgLikePool { name, queries: AtomicU64::new(0) }
    }
}

/// Some other handle, which no engine here holds.
struct Mailer;

#[flux::task]
async fn count_orders(customer: String, pool: State<PgLikePool>) -> String {
    let n = pool.queries.fetch_add(1, Ordering::SeqCst) + 1;
    format!("{customer}: query {n} on {}", pool.name)
}

#[flux::task(retry_max_attempts = 2, retry_delay = "1ms")]
async fn notify(customer: String, _mailer: State<Mailer>) -> String {
    customer
}

#[flux::workflow]
async fn orders(ctx: ExecutionContext<String>) -> flux::Result<String> {
    count_orders(ctx.input().clone()).await
}

#[flux::workflow]
async fn notify_customer(ctx: ExecutionContext<String>) -> flux::Result<String> {
    notify(ctx.input().clone()).await
}

fn task_ids(execution: &Execution<String, String>) -> Vec<String> {
    execution
        .events()
        .iter()
        .filter(|e| e.kind() == EventType::TaskStarted)
        .map(|e| e.source_id().to_string())
        .collect()
}

#[tokio::test]
async fn a_task_receives_its_engines_state_which_is_not_part_of_its_id() {
    let primary = Engine::in_memory().with_state(PgLikePool::new("primary"));
    let replica = Engine::builder().state(PgLikePool::new("replica")).build().unwrap();
    let on_primary = orders.on(&primary).run("ada".to_string()).await.unwrap();
    let again = orders.on(&primary).run("ada".to_string()).await.unwrap();
    let on_replica = orders.on(&replica).run("ada".to_string()).await.unwrap();
    assert_eq!(on_primary.output().map(String::as_str), Some("ada: query 1 on primary"));
    assert_eq!(again.output().map(String::as_str), Some("ada: query 2 on primary"), "one pool, shared");
    assert_eq!(on_replica.output().map(String::as_str), Some("ada: query 1 on replica"));
    assert_eq!(task_ids(&on_primary), task_ids(&on_replica), "the state is not part of the id");
    assert_eq!(primary.state::<PgLikePool>().unwrap().queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_missing_state_fails_the_task_naming_its_type() {
    let engine = Engine::in_memory();
    let execution = notify_customer.on(&engine).run("ada".to_string()).await.unwrap();
    let error = execution.error().expect("the task failed");
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert!(error.to_string().contains("takes a `State<state::Mailer>`, and its engine holds none"), "{error}");
    assert!(error.to_string().contains("Engine::with_state"), "{error}");
    assert!(error.is_terminal(), "retrying cannot give the engine a state");
    assert!(!execution.events().iter().any(|e| e.kind() == EventType::TaskRetryStarted));
}

#[cfg(feature = "server")]
#[tokio::test]
async fn a_server_gives_its_state_to_the_tasks_it_runs() {
    let engine = Engine::in_memory();
    let server = flux::server::Server::new()
        .engine(&engine)
        .register(orders)
        .state(PgLikePool::new("server"))
        .bootstrap_token("b".repeat(32))
        .admin_token("a".repeat(32));
    let running = server.bind("127.0.0.1:0").await.unwrap();
    let client = flux::Client::new(running.url()).unwrap();
    let output = client.workflow::<String, String>("orders").run(&"cy".to_string()).await.unwrap().into_result();
    assert_eq!(output.unwrap(), "cy: query 1 on server");
    running.shutdown().await.unwrap();
}
