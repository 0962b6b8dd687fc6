//! Shared helpers of the examples, integration tests and benchmarks of flux (not published).

use std::path::PathBuf;

#[cfg(feature = "ai")]
pub mod ai;
#[cfg(feature = "mcp")]
pub mod mcp;
mod places;

#[cfg(feature = "postgres")]
pub use places::postgres;
pub use places::{Place, places};

use flux::{Event, EventType};

/// The event types of a log, in order.
pub fn kinds(events: &[Event]) -> Vec<EventType> {
    events.iter().map(Event::kind).collect()
}

/// The path of a compiled example of this package or of `examples/Cargo.toml` (`cargo test
/// --workspace` builds every package's examples next to the test binaries:
/// `target/<profile>/examples/<name>`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example `{name}` is not built at {}; run the tests with cargo test --workspace",
        path.display()
    );
    path
}

/// Whether this is the first time `key` is asked about in this process: a task that fails its
/// first attempt for each input asks with its input (the tests of a file share a process, so a
/// counter of calls would let one test's call take another's failure).
pub fn first_call(key: u32) -> bool {
    static SEEN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(&key) {
        return false;
    }
    seen.push(key);
    true
}

/// Sends the logs of a test process to standard error, filtered by `RUST_LOG` (default `info`).
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// A trivial task: the unit of work of the benchmarks.
#[flux::task]
pub async fn step(i: u32) -> u32 {
    i
}

/// Runs `step(0)`, `step(1)`, ... `step(n - 1)` one after another and sums the results.
#[flux::workflow]
pub async fn steps(ctx: flux::ExecutionContext<u32>) -> flux::Result<u64> {
    let mut sum = 0u64;
    for i in 0..*ctx.input() {
        sum += u64::from(step(i).await?);
    }
    Ok(sum)
}

/// What `steps(n)` returns: `0 + 1 + ... + (n - 1)`; also what the map and parallel workloads
/// below return.
pub fn steps_sum(n: u32) -> u64 {
    u64::from(n) * u64::from(n.saturating_sub(1)) / 2
}

/// `step::map(0..n)`, summed: the map workload of the benchmarks.
#[flux::workflow]
pub async fn mapped_steps(ctx: flux::ExecutionContext<u32>) -> flux::Result<u64> {
    let out = step::map(0..*ctx.input()).await?;
    Ok(out.iter().map(|&v| u64::from(v)).sum())
}

/// `flux::parallel` of `step(0)` ... `step(n - 1)`, summed: the parallel workload of the
/// benchmarks.
#[flux::workflow]
pub async fn parallel_steps(ctx: flux::ExecutionContext<u32>) -> flux::Result<u64> {
    let out = flux::parallel((0..*ctx.input()).map(step)).await?;
    Ok(out.iter().map(|&v| u64::from(v)).sum())
}

/// The log of `steps(n)` that a process killed just before `WORKFLOW_COMPLETED` leaves: every
/// task recorded, so that a replay answers each call from the log.
pub fn crashed_steps(id: &str, n: u32) -> StoppedLog {
    let mut log = StoppedLog::new(steps::NAME, id, &n);
    for i in 0..n {
        let task_id = log.task_started(step::NAME, &(i,));
        log.event(EventType::TaskCompleted, &task_id, step::NAME, &i);
    }
    log
}

/// Child processes of the tests that kill processes.
pub mod process {
    use std::path::Path;
    use std::process::Child;

    /// A child process SIGKILLed (and reaped) when dropped.
    pub struct Killed(pub Child);

    impl Killed {
        /// SIGKILL, then reap.
        pub fn kill(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for Killed {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// `dir/name`, opened to append a child's log to.
    pub fn log_file(dir: &Path, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name)).expect("a log file")
    }
}

/// Driving a flux server over HTTP in the benchmarks and the chaos test, through
/// `flux::Client`.
#[cfg(feature = "server")]
pub mod http {
    use std::time::{Duration, Instant};

    /// Waits until the server of `client` lists a workflow (its worker has registered).
    pub async fn wait_for_catalog(client: &flux::Client, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        loop {
            // A server still starting is not reachable yet: ask again until the deadline.
            let last = match client.workflows().await {
                Ok(list) if !list.is_empty() => return Ok(()),
                Ok(_) => "none registered".to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!("no workflow registered at {} within {patience:?} ({last})", client.url()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `steps(n)` on the server of `client` with `run/sync` and checks that it completed
    /// with [`steps_sum`](super::steps_sum)`(n)`.
    pub async fn run_steps(client: &flux::Client, n: u32) -> Result<(), String> {
        let status = client.workflow::<u32, u64>("steps").run(&n).await.map_err(|e| e.to_string())?;
        match status.output() {
            Some(&sum) if sum == super::steps_sum(n) => Ok(()),
            _ => Err(format!("steps({n}) did not complete with {}: {}", super::steps_sum(n), status.summary())),
        }
    }
}

/// The log a process leaves behind when it stops in the middle of an execution, built event by
/// event, for tests and benchmarks of replay.
///
/// ```text
/// let mut log = StoppedLog::new("count_up", "crashed", &1u32);
/// let t1 = log.task_started("add_one", &(1u32,));
/// log.event(EventType::TaskCompleted, &t1, "add_one", &2u32);
/// log.store(&engine);
/// ```
pub struct StoppedLog {
    id: String,
    writes: Vec<flux::store::Write>,
    next_seq: u64,
    time: std::time::SystemTime,
}

impl StoppedLog {
    /// A RUNNING execution of `workflow` with its row and `WORKFLOW_STARTED`.
    pub fn new<I: serde::Serialize>(workflow: &str, id: &str, input: &I) -> Self {
        let time = std::time::SystemTime::now();
        let input = flux::value::to_msgpack(input).expect("the input encodes");
        let mut log = StoppedLog {
            id: id.to_string(),
            writes: vec![flux::store::Write::CreateExecution {
                id: id.into(),
                workflow_name: workflow.into(),
                state: flux::ExecutionState::Running,
                input: input.clone().into(),
                parent_id: None,
                version: 1,
                time,
            }],
            next_seq: 1,
            time,
        };
        log.push(EventType::WorkflowStarted, &format!("{workflow}_{id}"), workflow, input);
        log
    }

    /// Appends `TASK_STARTED` of a call of `task` with `args` (a tuple); returns the call's id.
    pub fn task_started<A: serde::Serialize>(&mut self, task: &str, args: &A) -> String {
        let (bytes, task_id) = flux::identity::encode_call(task, args).expect("the arguments encode");
        self.push(EventType::TaskStarted, &task_id, task, bytes);
        task_id
    }

    /// Appends an event of the call `task_id` with `value`.
    pub fn event<V: serde::Serialize>(&mut self, kind: EventType, task_id: &str, task: &str, value: &V) -> &mut Self {
        self.push(kind, task_id, task, flux::value::to_msgpack(value).expect("the value encodes"));
        self
    }

    /// Appends an event with an already encoded value (copied from another log).
    pub fn raw(&mut self, kind: EventType, source: &str, name: &str, value: Vec<u8>) -> &mut Self {
        self.push(kind, source, name, value);
        self
    }

    /// Stores the log in `engine` (from async code).
    pub async fn commit(self, engine: &flux::Engine) {
        engine.store().write(self.writes).await.expect("stored");
    }

    fn push(&mut self, kind: EventType, source: &str, name: &str, value: Vec<u8>) {
        let event = Event::new(self.next_seq, kind, source, name, value, self.time);
        self.writes.push(flux::store::Write::Append { execution_id: self.id.as_str().into(), event });
        self.next_seq += 1;
    }

    /// The writes that store this log.
    pub fn into_writes(self) -> Vec<flux::store::Write> {
        self.writes
    }

    /// Stores the log in `engine` (from synchronous code).
    pub fn store(self, engine: &flux::Engine) {
        let commit = engine.store().write(self.writes);
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(commit).expect("stored");
    }
}

/// Everything flux logs while a test binary runs, kept in memory: tests check what the logs
/// say (and what they never say, such as a secret's value), including the logs of spawned
/// tasks on every runtime thread.
pub mod logs {
    use std::sync::{Mutex, Once};

    static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    struct Sink;

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            LOGS.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Installs, once for the whole test binary, a global subscriber that keeps the logs that
    /// `filter` selects (`"flux=trace"`). Later calls change nothing.
    pub fn capture(filter: &str) {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            use tracing_subscriber::util::SubscriberInitExt as _;
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(|| Sink)
                .with_ansi(false)
                .finish()
                .try_init()
                .expect("no other global subscriber in this test binary");
        });
    }

    /// What was logged so far.
    pub fn captured() -> String {
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// An in-memory store whose writes go through a hook first: tests use it to fail a chosen write
/// as a broken disk would, or to hold a commit back. Everything else is the memory store's.
pub struct HookedStore<F> {
    /// The store that keeps the data.
    pub inner: flux::store::MemoryStore,
    /// Called with the inner store and each batch instead of writing it: it writes (or not) and
    /// returns the commit the engine waits for.
    pub on_write: F,
}

impl<F> HookedStore<F>
where
    F: Fn(&flux::store::MemoryStore, Vec<flux::store::Write>) -> flux::store::Commit + Send + Sync + 'static,
{
    /// A new, empty store with `on_write` in front of it.
    pub fn new(on_write: F) -> Self {
        HookedStore { inner: flux::store::MemoryStore::new(), on_write }
    }
}

impl<F> flux::store::Store for HookedStore<F>
where
    F: Fn(&flux::store::MemoryStore, Vec<flux::store::Write>) -> flux::store::Commit + Send + Sync + 'static,
{
    fn write(&self, writes: Vec<flux::store::Write>) -> flux::store::Commit {
        (self.on_write)(&self.inner, writes)
    }
    fn load(&self, id: &str) -> flux::Result<Option<flux::store::StoredExecution>> {
        self.inner.load(id)
    }
    fn state(&self, id: &str) -> flux::Result<Option<flux::ExecutionState>> {
        self.inner.state(id)
    }
    fn list(&self, states: &[flux::ExecutionState]) -> flux::Result<Vec<flux::store::ExecutionRow>> {
        self.inner.list(states)
    }
    fn list_executions(&self, filter: &flux::ExecutionFilter) -> flux::Result<flux::ExecutionPage> {
        self.inner.list_executions(filter)
    }
    fn describe(&self) -> String {
        "memory (hooked)".into()
    }
    fn cache_get(&self, key: &str, now: std::time::SystemTime) -> flux::Result<Option<Vec<u8>>> {
        self.inner.cache_get(key, now)
    }
    fn cache_clear(&self, task_name: Option<&str>) -> flux::Result<u64> {
        self.inner.cache_clear(task_name)
    }
    fn secret_put(&self, name: &str, nonce: &[u8], sealed: &[u8]) -> flux::Result<()> {
        self.inner.secret_put(name, nonce, sealed)
    }
    fn secret_get(&self, name: &str) -> flux::Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.inner.secret_get(name)
    }
    fn secret_list(&self) -> flux::Result<Vec<String>> {
        self.inner.secret_list()
    }
    fn secret_remove(&self, name: &str) -> flux::Result<bool> {
        self.inner.secret_remove(name)
    }
    fn schedule_put(&self, schedule: &flux::store::StoredSchedule, expected: Option<u64>) -> flux::Result<u64> {
        self.inner.schedule_put(schedule, expected)
    }
    fn schedule_get(&self, name: &str) -> flux::Result<Option<flux::store::StoredSchedule>> {
        self.inner.schedule_get(name)
    }
    fn schedule_list(&self) -> flux::Result<Vec<flux::store::StoredSchedule>> {
        self.inner.schedule_list()
    }
    fn schedule_delete(&self, name: &str) -> flux::Result<bool> {
        self.inner.schedule_delete(name)
    }
    fn message_put(&self, execution_id: &str, topic: &str, key: Option<&str>, value: &[u8]) -> flux::Result<bool> {
        self.inner.message_put(execution_id, topic, key, value)
    }
    fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> flux::Result<Option<Vec<u8>>> {
        self.inner.message_get(execution_id, topic, index)
    }
    fn admit(
        &self,
        execution_id: &str,
        limits: &[flux::store::AdmissionLimit],
        now: std::time::SystemTime,
    ) -> flux::Result<flux::store::Admit> {
        self.inner.admit(execution_id, limits, now)
    }
}
