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
//! ```text
//! eval "$(.ci/postgres start)"
//! cargo bench -p flux-suite --features postgres --bench postgres
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
