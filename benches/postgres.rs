//! `postgres`: the PostgreSQL store against the commit limit of the same server, in one run.
//!
//! - `raw commit/{default,full}`: one connection of tokio-postgres alone, each iteration
//!   `BEGIN; INSERT` one row the size of an event `; COMMIT`, with `synchronous_commit` `off`
//!   (what flux's `default` mode sets) and `on` (`full`): the cost of one durable row;
//! - `sequential/{default,full}`: a workflow of 1,000 trivial tasks on the store, reported per
//!   step (hash, look up, append `TASK_STARTED` / `TASK_COMPLETED`, wait for the commit).
//!
//! The ratio of the two is what a step costs over the database's own commit.
//!
//! - `servers/{1,3}`: 50 concurrent executions of `five_steps` (trivial steps) submitted
//!   round-robin, `run/sync`, to one or three servers of this process on one database, each with
//!   one `flux-test-worker` process; reported per task (its inverse is tasks/s).
//!
//! ```text
//! eval "$(.ci/postgres start)"
//! cargo bench -p flux-suite --features server,postgres --bench postgres
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::Durability;
use flux::prelude::*;
use flux_suite::postgres::{Database, server};
use flux_suite::{steps, steps_sum};

/// Steps per workflow in `sequential`.
const STEPS: u32 = 1_000;

fn bench(c: &mut Criterion) {
    let Some(server) = server() else {
        eprintln!("no PostgreSQL server: set FLUX_TEST_POSTGRES_URL (eval \"$(.ci/postgres start)\")");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = Database::new(&server);
    let url = db.url();
    let mut group = c.benchmark_group("postgres");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));

    let (client, connection) = rt.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls)).expect("connect");
    rt.spawn(connection);
    rt.block_on(client.batch_execute(
        "CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, execution BIGINT NOT NULL, seq BIGINT NOT NULL,
                                  type TEXT NOT NULL, name TEXT NOT NULL, value BYTEA NOT NULL, time BIGINT NOT NULL)",
    ))
    .expect("table");
    let insert = rt
        .block_on(client.prepare(
            "INSERT INTO raw_events (execution, seq, type, name, value, time) VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .expect("prepare");
    let value = vec![0x92u8; 24];
    for (mode, synchronous) in [("default", "off"), ("full", "on")] {
        rt.block_on(client.batch_execute(&format!("SET synchronous_commit TO {synchronous}"))).expect("set");
        let mut seq = 0i64;
        group.bench_function(BenchmarkId::new("raw commit", mode), |b| {
            b.iter(|| {
                seq += 1;
                rt.block_on(async {
                    client.batch_execute("BEGIN").await.expect("begin");
                    client
                        .execute(&insert, &[&1i64, &seq, &"TASK_COMPLETED", &"step", &value, &seq])
                        .await
                        .expect("insert");
                    client.batch_execute("COMMIT").await.expect("commit");
                })
            })
        });
    }

    for durability in [Durability::Default, Durability::Full] {
        let engine = Engine::open_with(&url, durability).expect("engine");
        group.bench_function(BenchmarkId::new("sequential", durability.to_string()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let execution = rt.block_on(steps.on(&engine).run(STEPS)).expect("run");
                    assert_eq!(execution.output(), Some(&steps_sum(STEPS)));
                }
                start.elapsed() / STEPS
            });
        });
    }
    for servers in [1, 3] {
        let deployment = rt.block_on(Deployment::start(&server, servers));
        group.bench_function(BenchmarkId::new("servers", servers), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(deployment.run(CONCURRENT));
                }
                start.elapsed() / (CONCURRENT * 5)
            });
        });
        rt.block_on(deployment.stop());
    }
    group.finish();
}

/// Executions at once in `servers`.
const CONCURRENT: u32 = 50;

/// Servers on one database, each with one worker process.
struct Deployment {
    _db: Database,
    _home: tempfile::TempDir,
    servers: Vec<flux::server::RunningServer>,
    workers: Vec<std::process::Child>,
    clients: Vec<flux::Client>,
}

impl Deployment {
    async fn start(server: &str, count: usize) -> Deployment {
        let db = Database::new(server);
        let home = tempfile::tempdir().expect("a directory");
        let mut deployment =
            Deployment { _db: db, _home: home, servers: Vec::new(), workers: Vec::new(), clients: Vec::new() };
        for i in 0..count {
            let engine = Engine::builder()
                .postgres(deployment._db.url())
                .home(deployment._home.path().join(format!("server-{i}")))
                .encryption_key("5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f")
                .build()
                .expect("engine");
            let running = flux::server::Server::new()
                .engine(&engine)
                .bootstrap_token("bench-token")
                .admin_token("bench-admin")
                .bind("127.0.0.1:0")
                .await
                .expect("server");
            let url = running.url();
            deployment.workers.push(
                std::process::Command::new(env!("CARGO_BIN_EXE_flux-test-worker"))
                    .env("FLUX_HOME", deployment._home.path().join(format!("worker-{i}")))
                    .env("FLUX_TEST_SERVER", &url)
                    .env("FLUX_TEST_WORKER_NAME", format!("bench-worker-{i}"))
                    .env("FLUX_WORKERS__BOOTSTRAP_TOKEN", "bench-token")
                    .env("FLUX_TEST_MAX_CONCURRENCY", "64")
                    .env_remove("FLUX_TEST_LEDGER_URL")
                    .env_remove("FLUX_TEST_STEP_MS")
                    .env_remove("FLUX_TEST_SIDE_EFFECTS")
                    .env("RUST_LOG", "error")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("the test worker starts"),
            );
            let client = flux::Client::new(&url).expect("client");
            flux_suite::http::wait_for_catalog(&client, Duration::from_secs(60)).await.expect("the worker registers");
            deployment.clients.push(client);
            deployment.servers.push(running);
        }
        deployment
    }

    /// `n` executions of `five_steps` at once, round-robin over the servers.
    async fn run(&self, n: u32) {
        let runs = (0..n).map(|i| {
            let client = &self.clients[i as usize % self.clients.len()];
            async move {
                let done = client.workflow::<String, String>("five_steps").run(&format!("b{i}")).await.expect("run");
                assert_eq!(done.output().map(String::as_str), Some(format!("b{i}:1:2:3:4:5").as_str()));
            }
        });
        futures::future::join_all(runs).await;
    }

    async fn stop(mut self) {
        for server in self.servers.drain(..) {
            server.shutdown().await.expect("shutdown");
        }
        for worker in &mut self.workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
