//! Crash torture: `flux-torture` (50 tasks in a row, each recording its runs in an effects file)
//! is SIGKILLed at random instants, 100 times in each durability mode, and run again after each
//! kill until its execution completes; then the next execution starts, until 100 kills.
//!
//! After every kill the stored log is read: a task whose `TASK_COMPLETED` survived the kill must
//! never run again, and (in the `default` and `full` modes) a task may only have started once the
//! previous task's `TASK_COMPLETED` was durable. In the `batched` mode a completion may be lost,
//! but only one made within the last commit window before the kill. Every execution must end
//! COMPLETED with the right output and a log of exactly one `TASK_COMPLETED` per task.
//!
//! The instants come from a seeded generator: `FLUX_TORTURE_SEED=<n>` replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flux::{Engine, EventType, ExecutionState};

const KILLS: u32 = 100;
const TASKS: u32 = 50;
/// Kills land uniformly within this long after the process starts (it needs a few tens of
/// milliseconds for all 50 tasks, more in the `full` mode).
const WINDOW_MS: u64 = 120;
/// How old a completion lost in the `batched` mode may be at the kill: the 10 ms commit window
/// plus room for a busy machine to run the writer thread late.
const BATCHED_LOSS_LIMIT: Duration = Duration::from_millis(500);

/// xorshift64*: a small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros()
}

/// One line of the effects file: (`begin` or `end`, task, µs).
fn effects(path: &Path) -> Vec<(String, u32, u128)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                [what, i, t] => (what.to_string(), i.parse().expect("task"), t.parse().expect("time")),
                _ => panic!("torn effects line `{line}`"),
            }
        })
        .collect()
}

/// The tasks whose `TASK_COMPLETED` is stored, by index (read off their `TASK_STARTED` args).
fn stored_completions(db: &Path, id: &str) -> BTreeSet<u32> {
    let engine = Engine::open(db).expect("the database opens after a kill");
    let Some(stored) = engine.store().load(id).expect("the log loads after a kill") else {
        return BTreeSet::new();
    };
    let mut index = BTreeMap::new();
    let mut done = BTreeSet::new();
    for e in &stored.events {
        match e.kind() {
            EventType::TaskStarted => {
                let (i, _): (u32, String) = e.value().expect("the args decode");
                index.insert(e.source_id().to_string(), i);
            }
            EventType::TaskCompleted => {
                done.insert(*index.get(e.source_id()).expect("a completion follows its start"));
            }
            _ => {}
        }
    }
    done
}

fn spawn(db: &Path, effects: &Path, id: &str, mode: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flux-torture"))
        .args([db.to_str().expect("utf-8"), effects.to_str().expect("utf-8"), id, mode])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flux-torture starts")
}

/// Waits up to `limit` for the process to end; `true` if it ended (successfully).
fn ended_within(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            assert!(status.success(), "flux-torture failed: {status}\n{stderr}");
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

#[derive(Debug, Default)]
struct Report {
    kills: u32,
    executions: u32,
    /// Task bodies that ran more than once (restarts of unfinished tasks included).
    reruns: u32,
    /// Tasks whose body had finished but whose completion was not stored at the kill (any mode:
    /// the kill may fall between a body's end and its commit).
    unstored_completions: u32,
    /// The oldest such completion at its kill.
    oldest_unstored: Duration,
    /// Of those, the tasks whose result was handed back anyway: the next task had begun. Never in
    /// the `default` and `full` modes; the `batched` mode hands results back before their commit.
    handed_back_unstored: u32,
}

fn torture(mode: &str) -> Report {
    let seed: u64 = std::env::var("FLUX_TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_f100);
    let mode_salt: u64 = mode.bytes().fold(0, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng((seed ^ mode_salt).max(1));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flux.db");
    let mut report = Report::default();
    while report.kills < KILLS {
        report.executions += 1;
        let id = format!("torture-{}", report.executions);
        let file = dir.path().join(format!("{id}.effects"));
        // (lines of the effects file at the kill, completions stored after it)
        let mut durable: Vec<(usize, BTreeSet<u32>)> = Vec::new();
        loop {
            let mut child = spawn(&db, &file, &id, mode);
            let last = report.kills >= KILLS;
            let delay = if last { Duration::from_secs(120) } else { Duration::from_millis(rng.below(WINDOW_MS)) };
            if ended_within(&mut child, delay) {
                break;
            }
            assert!(!last, "{mode}: the last run of {id} did not finish");
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            let killed_at = now_micros();
            report.kills += 1;
            let done = stored_completions(&db, &id);
            let lines = effects(&file);
            // Bodies that finished before the kill but whose completion is not stored.
            let ended: BTreeMap<u32, u128> =
                lines.iter().filter(|(w, ..)| w == "end").map(|(_, i, t)| (*i, *t)).collect();
            let begun: BTreeSet<u32> = lines.iter().filter(|(w, ..)| w == "begin").map(|(_, i, _)| *i).collect();
            for (&i, &t) in &ended {
                if done.contains(&i) {
                    continue;
                }
                let age = Duration::from_micros(u64::try_from(killed_at.saturating_sub(t)).unwrap_or(u64::MAX));
                report.unstored_completions += 1;
                report.oldest_unstored = report.oldest_unstored.max(age);
                // Task i + 1 begins once task i's result is handed back.
                if begun.contains(&(i + 1)) {
                    report.handed_back_unstored += 1;
                    eprintln!("{mode}: {id}: task {} began but task {i}'s completion was not stored", i + 1);
                }
                if mode == "batched" {
                    assert!(age <= BATCHED_LOSS_LIMIT, "{mode}: {id} lost the completion of task {i}, {age:?} old");
                }
            }
            durable.push((lines.len(), done));
        }

        // The execution completed with the right output and a clean log.
        let engine = Engine::open(&db).unwrap();
        let stored = engine.store().load(&id).unwrap().expect("stored");
        assert_eq!(stored.state, ExecutionState::Completed, "{mode}: {id}");
        let expected: u64 = (0..u64::from(TASKS)).map(|i| i * 3).sum();
        assert_eq!(flux::value::from_msgpack::<u64>(stored.output.as_deref().expect("output")).unwrap(), expected);
        let seqs: Vec<u64> = stored.events.iter().map(|e| e.seq()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{mode}: {id}: a gap in the log");
        let completions: Vec<&str> =
            stored.events.iter().filter(|e| e.kind() == EventType::TaskCompleted).map(|e| e.source_id()).collect();
        let distinct: BTreeSet<&str> = completions.iter().copied().collect();
        assert_eq!((completions.len(), distinct.len()), (TASKS as usize, TASKS as usize), "{mode}: {id}");

        // A task whose completion survived a kill never ran again after it.
        let lines = effects(&file);
        for (at, done) in &durable {
            for (what, i, _) in &lines[*at..] {
                assert!(
                    !(what == "begin" && done.contains(i)),
                    "{mode}: {id}: task {i} ran again after its durable completion"
                );
            }
        }
        let mut runs = BTreeMap::<u32, u32>::new();
        for (what, i, _) in &lines {
            if what == "begin" {
                *runs.entry(*i).or_default() += 1;
            }
        }
        assert_eq!(runs.len(), TASKS as usize, "{mode}: {id}: every task ran");
        report.reruns += runs.values().map(|n| n - 1).sum::<u32>();
    }
    eprintln!("torture {mode}: {report:?}");
    report
}

/// `default` and `full` hand a task's result back only once its completion is durable: no kill
/// ever finds the next task begun while a completion is missing.
#[test]
fn torture_default_mode() {
    let report = torture("default");
    assert_eq!(report.handed_back_unstored, 0, "{report:?}");
}

#[test]
fn torture_full_mode() {
    let report = torture("full");
    assert_eq!(report.handed_back_unstored, 0, "{report:?}");
}

/// `batched` may hand results back before their commit, and a kill may lose them, but only
/// those of its last window.
#[test]
fn torture_batched_mode() {
    let report = torture("batched");
    assert!(report.oldest_unstored <= BATCHED_LOSS_LIMIT, "{report:?}");
}
