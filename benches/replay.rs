//! `replay`: re-running a 1,000-task execution from a fresh engine, reported per recorded step.
//!
//! - `recorded_tasks`: the log holds all 1,000 completed tasks but no final event (a crash just
//!   before the end); the body runs again and every call is answered from the log.
//! - `finished`: the execution is complete and is returned as stored.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::EventType;
use flux::prelude::*;
use flux_suite::{StoppedLog, steps};

/// The log a process killed just before `WORKFLOW_COMPLETED` leaves behind.
fn recorded_log(id: &str, n: u32) -> Vec<flux::store::Write> {
    let mut log = StoppedLog::new("steps", id, &n);
    for i in 0..n {
        let task_id = log.task_started("step", &(i,));
        log.event(EventType::TaskCompleted, &task_id, "step", &i);
    }
    log.into_writes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let n = 1_000u32;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flux.db");
    let mut group = c.benchmark_group("replay");
    group.sample_size(20).measurement_time(Duration::from_secs(10));

    let mut counter = 0u64;
    group.bench_function(BenchmarkId::new("recorded_tasks", n), |b| {
        b.iter_custom(|iters| {
            // Prepare one crashed execution per iteration, then replay each from a fresh engine.
            let writer = Engine::open(&path).expect("engine");
            let ids: Vec<String> = (0..iters)
                .map(|_| {
                    counter += 1;
                    let id = format!("crashed-{counter}");
                    rt.block_on(writer.store().write(recorded_log(&id, n))).expect("write");
                    id
                })
                .collect();
            drop(writer);
            let engine = Engine::open(&path).expect("engine");
            let start = Instant::now();
            for id in &ids {
                let execution = rt.block_on(steps.on(&engine).replay(id)).expect("replay");
                assert!(execution.has_succeeded());
            }
            start.elapsed() / n
        });
    });

    let finished = {
        let engine = Engine::open(&path).expect("engine");
        rt.block_on(steps.on(&engine).run(n)).expect("run").execution_id().to_string()
    };
    group.bench_function(BenchmarkId::new("finished", n), |b| {
        let engine = Engine::open(&path).expect("engine");
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let execution = rt.block_on(steps.on(&engine).replay(&finished)).expect("replay");
                assert!(execution.has_succeeded());
            }
            start.elapsed() / n
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
