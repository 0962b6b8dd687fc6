//! `list_executions`: one filtered page of stored executions, from a SQLite file holding 10,000
//! of them over four workflows and four states (no log is loaded).
//!
//! - `workflow_state`: one workflow in one state (about 625 match), 50 rows from offset 200,
//!   with the total: what a console's second page of "failed orders" asks.
//! - `workflow_two_states`: the same workflow in either of two states, 50 rows from offset 200.
//! - `newest`: the first 50 of all 10,000, with the total.
//!
//! ```text
//! cargo bench -p flux-suite --bench list_executions
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use flux::Event;
use flux::prelude::*;
use flux::store::{ExecutionFilter, Write};

/// The stored executions.
const EXECUTIONS: usize = 10_000;

const WORKFLOWS: [&str; 4] = ["orders", "billing", "shipping", "emails"];

const STATES: [ExecutionState; 4] =
    [ExecutionState::Completed, ExecutionState::Failed, ExecutionState::Running, ExecutionState::Paused];

/// Stores the executions, a second apart, each with the two events of a started run, 1,000 per
/// transaction.
fn fill(rt: &tokio::runtime::Runtime, engine: &Engine) {
    let start = SystemTime::now() - Duration::from_secs(EXECUTIONS as u64);
    let input: Arc<[u8]> = Arc::from(vec![0x91, 0x2a]);
    for chunk in (0..EXECUTIONS).collect::<Vec<_>>().chunks(1000) {
        let mut writes = Vec::new();
        for &i in chunk {
            let id: Arc<str> = Arc::from(format!("execution-{i:05}"));
            let workflow = WORKFLOWS[i % WORKFLOWS.len()];
            let time = start + Duration::from_secs(i as u64);
            writes.push(Write::CreateExecution {
                id: id.clone(),
                workflow_name: workflow.into(),
                state: ExecutionState::Running,
                input: input.clone(),
                parent_id: None,
                version: 1,
                time,
            });
            let source = format!("{workflow}_{id}");
            for (seq, kind) in [(1, EventType::WorkflowStarted), (2, EventType::TaskStarted)] {
                let event = Event::new(seq, kind, source.clone(), workflow, input.clone(), time);
                writes.push(Write::Append { execution_id: id.clone(), event });
            }
            // The state cycles more slowly than the workflow, so that every pair occurs.
            let state = STATES[(i / WORKFLOWS.len()) % STATES.len()];
            if state != ExecutionState::Running {
                writes.push(Write::set_state(id, state, None));
            }
        }
        rt.block_on(engine.store().write(writes)).expect("stored");
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path().join("flux.db")).expect("engine");
    fill(&rt, &engine);
    let cases = [
        ("workflow_state", ExecutionFilter::new().workflow("orders").state(ExecutionState::Failed).offset(200), 625),
        (
            "workflow_two_states",
            ExecutionFilter::new()
                .workflow("orders")
                .state(ExecutionState::Failed)
                .state(ExecutionState::Paused)
                .offset(200),
            1250,
        ),
        ("newest", ExecutionFilter::new(), EXECUTIONS as u64),
    ];
    let mut group = c.benchmark_group("list_executions");
    group.sample_size(50).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for (name, filter, total) in cases {
        // The answer is checked once, outside the timing.
        let page = engine.store().list_executions(&filter).expect("listed");
        assert_eq!((page.executions.len(), page.total), (50, total), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| engine.store().list_executions(&filter).expect("listed"));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
