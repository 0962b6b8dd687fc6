//! `sequential`: one workflow of N trivial tasks on SQLite, reported per step.
//!
//! Each iteration runs a whole workflow; the time criterion reports is divided by N, so it reads
//! as the cost of one durable step (hash the arguments, look the id up, append
//! `TASK_STARTED` / `TASK_COMPLETED`, wait for the commit).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flux::Durability;
use flux::prelude::*;
use flux_suite::steps;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("sequential");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for (label, durability) in [("default", Durability::Default), ("full", Durability::Full)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("flux.db");
        let engine = Engine::open_with(&path, durability).expect("engine");
        let n = 1_000u32;
        if durability == Durability::Default {
            let fresh = tempfile::tempdir().expect("tempdir");
            let one = Engine::open(fresh.path().join("flux.db")).expect("engine");
            rt.block_on(steps.on(&one).run(n)).expect("run");
            drop(one);
            let size: u64 = ["flux.db", "flux.db-wal"]
                .iter()
                .filter_map(|f| std::fs::metadata(fresh.path().join(f)).ok())
                .map(|m| m.len())
                .sum();
            eprintln!("database size after one {n}-task execution (file + WAL): {size} bytes");
        }
        group.bench_function(BenchmarkId::new(label, n), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let execution = rt.block_on(steps.on(&engine).run(n)).expect("run");
                    assert!(execution.has_succeeded());
                }
                start.elapsed() / n
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
