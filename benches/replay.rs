//! `replay`: re-running an execution whose N tasks are all recorded, reported per recorded step,
//! at N = 100, 1,000, 10,000 and 100,000.
//!
//! - `recorded_tasks`: the log holds all N completed tasks but no final event (a process killed
//!   just before the end); the body runs again and every call is answered from the log. Timed
//!   from the call of `replay` (which reads the log once) to its result.
//! - `finished`: the execution is complete and is returned as stored (its log is still read).
//!
//! ```text
//! cargo bench -p flux-suite --bench replay
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::prelude::*;
use flux_suite::{crashed_steps, steps, steps_sum};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("replay");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path().join("flux.db")).expect("engine");
    let mut counter = 0u64;
    for n in [100u32, 1_000, 10_000, 100_000] {
        let expected = steps_sum(n);
        group.bench_function(BenchmarkId::new("recorded_tasks", n), |b| {
            b.iter_custom(|iters| {
                // One crashed execution per iteration, each replayed once.
                let ids: Vec<String> = (0..iters)
                    .map(|_| {
                        counter += 1;
                        let id = format!("crashed-{counter}");
                        rt.block_on(crashed_steps(&id, n).commit(&engine));
                        id
                    })
                    .collect();
                let start = Instant::now();
                for id in &ids {
                    let execution = rt.block_on(steps.on(&engine).replay(id)).expect("replay");
                    assert_eq!(execution.output(), Some(&expected));
                }
                start.elapsed() / n
            });
        });
        let finished = rt.block_on(steps.on(&engine).run(n)).expect("run").execution_id().to_string();
        group.bench_function(BenchmarkId::new("finished", n), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let execution = rt.block_on(steps.on(&engine).replay(&finished)).expect("replay");
                    assert_eq!(execution.output(), Some(&expected));
                }
                start.elapsed() / n
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
