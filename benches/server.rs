//! `server`: one execution of N sequential trivial tasks through a flux server and one worker
//! (both in this process, talking HTTP over loopback), submitted with `run/sync`, reported per
//! task, at N = 100, 1,000 and 10,000; and 50 concurrent executions of 100 tasks, reported per
//! task (the inverse of throughput). 100,000 tasks would take about a minute per sample;
//! `benches/compare/run.sh` measures the server path with the worker in its own process.
//!
//! ```text
//! cargo bench -p flux-suite --features server --bench server
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::prelude::*;
use flux_suite::steps;

const TOKEN: &str = "bench-bootstrap-token";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path().join("flux.db")).expect("engine");
    let (server, client) = rt.block_on(async {
        let server = flux::server::Server::new()
            .engine(&engine)
            .bootstrap_token(TOKEN)
            .admin_token("bench-admin-token")
            .bind("127.0.0.1:0")
            .await
            .expect("server");
        let url = server.url();
        let worker = flux::worker::Worker::new(url.clone())
            .name("bench-worker")
            .bootstrap_token(TOKEN)
            .max_concurrency(64)
            .register(steps);
        tokio::spawn(worker.run());
        let client = flux::Client::new(&url).expect("a client");
        flux_suite::http::wait_for_catalog(&client, Duration::from_secs(30)).await.expect("worker registered");
        (server, client)
    });
    let run = |n: u32| {
        let client = client.clone();
        async move { flux_suite::http::run_steps(&client, n).await.expect("run") }
    };

    let mut group = c.benchmark_group("server");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    for n in [100u32, 1_000, 10_000] {
        group.bench_function(BenchmarkId::new("sequential", n), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(run(n));
                }
                start.elapsed() / n
            });
        });
    }
    group.bench_function(BenchmarkId::new("concurrent_50x100", 5_000), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(futures::future::join_all((0..50).map(|_| run(100))));
            }
            start.elapsed() / 5_000
        });
    });
    group.finish();
    rt.block_on(server.shutdown()).expect("shutdown");
}

criterion_group!(benches, bench);
criterion_main!(benches);
