//! `sequential`: one workflow of N trivial tasks on SQLite, reported per step, at N = 100, 1,000,
//! 10,000 and 100,000, in each durability mode.
//!
//! Each iteration runs a whole workflow on a fresh database; the time criterion reports is divided
//! by N, so it reads as the cost of one durable step (hash the arguments, look the id up, append
//! `TASK_STARTED` / `TASK_COMPLETED`, wait for the commit). The `full` mode stops at 10,000
//! steps: 100,000 fsyncs take half a minute per sample.
//!
//! ```text
//! cargo bench -p flux-suite --bench sequential
//! cargo bench -p flux-suite --bench sequential -- 'sequential/default'
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::Durability;
use flux::prelude::*;
use flux_suite::{steps, steps_sum};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("sequential");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    for durability in [Durability::Default, Durability::Batched, Durability::Full] {
        for n in [100u32, 1_000, 10_000, 100_000] {
            if durability == Durability::Full && n > 10_000 {
                continue;
            }
            group.bench_function(BenchmarkId::new(durability.to_string(), n), |b| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let engine = Engine::open_with(dir.path().join("flux.db"), durability).expect("engine");
                        let start = Instant::now();
                        let execution = rt.block_on(steps.on(&engine).run(n)).expect("run");
                        took += start.elapsed();
                        assert_eq!(execution.output(), Some(&steps_sum(n)));
                    }
                    took / n
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
