//! `fan_out`: `task::map` over N items and `flux::parallel` of N calls, each in one workflow on
//! SQLite (default durability), reported per item, at N = 100, 1,000, 10,000 and 100,000.
//!
//! ```text
//! cargo bench -p flux-suite --bench fan_out
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::prelude::*;
use flux_suite::{mapped_steps, parallel_steps, steps_sum};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("fan_out");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    for n in [100u32, 1_000, 10_000, 100_000] {
        let expected = steps_sum(n);
        for kind in ["map", "parallel"] {
            group.bench_function(BenchmarkId::new(kind, n), |b| {
                b.iter_custom(|iters| {
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let engine = Engine::open(dir.path().join("flux.db")).expect("engine");
                        let start = Instant::now();
                        let execution = match kind {
                            "map" => rt.block_on(mapped_steps.on(&engine).run(n)),
                            _ => rt.block_on(parallel_steps.on(&engine).run(n)),
                        }
                        .expect("run");
                        took += start.elapsed();
                        assert_eq!(execution.output(), Some(&expected));
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
