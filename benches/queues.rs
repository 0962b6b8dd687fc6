//! `queues`: what going through a queue adds to an execution of one trivial step on a SQLite
//! file, sequentially (each execution waits for the one before).
//!
//! - `run`: `workflow.run(input)`, no queue: the baseline.
//! - `enqueue`: `workflow.enqueue("q", input)` then its result, through a queue of one place:
//!   the execution is stored `SCHEDULED`, admitted by the store (one `IMMEDIATE` transaction
//!   that counts the queue's executions), then started.
//!
//! ```text
//! cargo bench -p flux-suite --bench queues
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flux::prelude::*;
use flux_suite::{steps, steps_sum};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("queues");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = rt.block_on(async { Engine::open(dir.path().join("flux.db")) }).expect("engine");
    rt.block_on(async { engine.queue("q").concurrency(1) });
    group.bench_function("run", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let execution = rt.block_on(steps.on(&engine).run(1)).expect("run");
                assert_eq!(execution.output(), Some(&steps_sum(1)));
            }
            start.elapsed()
        });
    });
    group.bench_function("enqueue", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let execution = rt.block_on(async {
                    let handle = steps.on(&engine).enqueue("q", 1).await.expect("enqueue");
                    handle.await.expect("run")
                });
                assert_eq!(execution.output(), Some(&steps_sum(1)));
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
