//! Output storage (issue must-show 12): large outputs leave the log, references stay, replay and
//! loading read the values back.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use EventType::*;
use flux::output::OutputStorage;
use flux::prelude::*;
use flux::{ErrorKind, Event};
use flux_suite::kinds;

const MIB: usize = 1 << 20;
static BIG_RUNS: AtomicU32 = AtomicU32::new(0);

#[flux::task(output_storage = "file")]
async fn big_blob(seed: u8) -> Vec<u8> {
    BIG_RUNS.fetch_add(1, Ordering::SeqCst);
    (0..MIB).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[flux::task]
async fn checksum(data: Vec<u8>) -> u64 {
    data.iter().map(|&b| u64::from(b)).sum()
}

#[flux::workflow]
async fn big_workflow(ctx: ExecutionContext<u8>) -> flux::Result<(usize, u64)> {
    let blob = big_blob(*ctx.input()).await?;
    let sum = checksum(blob.clone()).await?;
    Ok((blob.len(), sum))
}

#[flux::workflow(output_storage = "file")]
async fn big_output(ctx: ExecutionContext<u8>) -> flux::Result<Vec<u8>> {
    big_blob(*ctx.input()).await
}

#[tokio::test]
async fn a_large_output_is_kept_out_of_the_log_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let engine = Engine::open(&path).unwrap();
    let execution = big_workflow.on(&engine).run(3).await.unwrap();
    let expected: Vec<u8> = (0..MIB).map(|i| (i as u8).wrapping_mul(31).wrapping_add(3)).collect();
    let expected_sum: u64 = expected.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(execution.output(), Some(&(MIB, expected_sum)));

    // The TASK_COMPLETED of big_blob holds a small reference, not the mebibyte.
    let completed: &Event = &execution.events()[2];
    assert_eq!(completed.kind(), TaskCompleted);
    assert!(completed.value_bytes().len() < 100, "{} bytes", completed.value_bytes().len());
    let (storage, reference) = completed.output_reference().expect("a reference");
    assert_eq!(storage, "file");
    assert!(dir.path().join("outputs").join(&reference).exists());
    let err = completed.value::<Vec<u8>>().unwrap_err();
    assert!(err.to_string().contains("kept in output storage `file`"), "{err}");

    // Replaying the body from a fresh engine reads the value back and does not run the task.
    let before = BIG_RUNS.load(Ordering::SeqCst);
    let stored = Engine::open(&path).unwrap().store().load(execution.execution_id()).unwrap().unwrap();
    let engine = Engine::open(&path).unwrap();
    let crashed = flux::store::StoredExecution { state: ExecutionState::Running, ..stored.clone() };
    let id = "replayed";
    let mut writes = vec![flux::store::Write::CreateExecution {
        id: id.into(),
        workflow_name: crashed.workflow_name.clone().into(),
        state: ExecutionState::Running,
        input: crashed.input.clone().into(),
        parent_id: None,
        version: 1,
        time: std::time::SystemTime::now(),
    }];
    // Everything up to big_blob's TASK_COMPLETED, as a process killed right after it leaves.
    for event in crashed.events.iter().take(3) {
        let source =
            if event.kind() == WorkflowStarted { format!("big_workflow_{id}") } else { event.source_id().to_string() };
        let copy = Event::new(event.seq(), event.kind(), source, event.name(), event.value_bytes(), event.time());
        writes.push(flux::store::Write::Append { execution_id: id.into(), event: copy });
    }
    engine.store().write(writes).await.unwrap();
    let replayed = big_workflow.on(&engine).replay(id).await.unwrap();
    assert_eq!(replayed.output(), Some(&(MIB, expected_sum)));
    assert_eq!(BIG_RUNS.load(Ordering::SeqCst), before, "big_blob was replayed, not re-run");
    assert_eq!(
        kinds(replayed.events()),
        [WorkflowStarted, TaskStarted, TaskCompleted, TaskStarted, TaskCompleted, WorkflowCompleted]
    );
}

#[tokio::test]
async fn a_workflow_output_can_live_in_output_storage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flux.db");
    let execution = big_output.on(&Engine::open(&path).unwrap()).run(9).await.unwrap();
    assert_eq!(execution.output().map(Vec::len), Some(MIB));
    let last = execution.events().last().unwrap();
    assert_eq!(last.kind(), WorkflowCompleted);
    assert!(last.output_reference().is_some());
    let stored = Engine::open(&path).unwrap().store().load(execution.execution_id()).unwrap().unwrap();
    assert!(stored.output.unwrap().len() < 100, "the execution row holds the reference");
    let reloaded = big_output.on(&Engine::open(&path).unwrap()).status(execution.execution_id()).await.unwrap();
    assert_eq!(reloaded.output(), execution.output());
}

/// An output storage of the user's: values in memory, references numbered.
#[derive(Default, Clone)]
struct Numbered(Arc<Mutex<Vec<Vec<u8>>>>);

impl OutputStorage for Numbered {
    fn put(&self, value: &[u8]) -> flux::Result<String> {
        let mut values = self.0.lock().unwrap();
        values.push(value.to_vec());
        Ok(format!("n{}", values.len() - 1))
    }
    fn get(&self, reference: &str) -> flux::Result<Vec<u8>> {
        let index: usize = reference
            .trim_start_matches('n')
            .parse()
            .map_err(|_| flux::Error::new(ErrorKind::Corrupt, format!("bad reference {reference}")))?;
        self.0.lock().unwrap().get(index).cloned().ok_or_else(|| flux::Error::new(ErrorKind::NotFound, "gone"))
    }
}

#[flux::task(output_storage = "numbered")]
async fn numbered_greeting(name: String) -> String {
    format!("hello {name}")
}

#[flux::workflow]
async fn wf_numbered(ctx: ExecutionContext<String>) -> flux::Result<String> {
    numbered_greeting(ctx.input().clone()).await
}

#[tokio::test]
async fn users_can_plug_in_their_own_output_storage() {
    let engine = Engine::in_memory();
    // Without the storage the output cannot be kept: the run stops (an engine error, not a task
    // failure) and the execution stays RUNNING, with no outcome recorded for the call.
    let err = wf_numbered.on(&engine).run_with_id("plug", "b".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
    assert!(err.to_string().contains("no output storage named `numbered`"), "{err}");
    let stored = engine.store().load("plug").unwrap().unwrap();
    assert_eq!(stored.state, ExecutionState::Running);
    assert_eq!(kinds(&stored.events), [WorkflowStarted, TaskStarted]);

    // Once the storage exists, the execution replays to the end.
    let storage = Numbered::default();
    engine.register_output_storage("numbered", storage.clone());
    let execution = wf_numbered.on(&engine).replay("plug").await.unwrap();
    assert_eq!(execution.output().map(String::as_str), Some("hello b"));
    assert_eq!(kinds(execution.events()), [WorkflowStarted, TaskStarted, TaskCompleted, WorkflowCompleted]);
    assert_eq!(execution.events()[2].output_reference(), Some(("numbered".to_string(), "n0".to_string())));
    assert_eq!(storage.0.lock().unwrap().len(), 1);
}
