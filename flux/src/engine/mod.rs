//! [`Engine`]: where executions live. It holds the store, the secrets' vault, the output
//! storages and the workflows registered for recovery, and it keeps the leases of the
//! executions it runs (see `docs/design.md`, "Leases and recovery").
//!
//! Everything above it (runs, tasks, the driver, recovery, the server) reaches the engine's state
//! through the methods here; the runs it tracks and the workflows it keeps are seen through two
//! small traits ([`LiveRun`], [`Recoverable`]), so that the engine never names a module above it.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{Config, DatabaseLocation};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::output::{self, OutputStorage};
use crate::secrets::{self, KeySource, Vault};
#[cfg(any(feature = "sqlite", feature = "postgres", test))]
use crate::store::Durability;
use crate::store::{MemoryStore, Store, StoredExecution};

mod builder;
mod lease;
mod manage;
mod queue;
mod state;

pub use builder::EngineBuilder;
pub use manage::DELETE_BATCH;
pub use queue::Queue;
pub(crate) use queue::{Limiter, Ticket};
pub use state::State;
pub(crate) use state::States;

/// How long an execution's lease lasts unless renewed, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The shortest lease an engine takes.
const MIN_LEASE: Duration = Duration::from_millis(100);

/// Where executions live: a storage backend plus what the runtime needs around it.
///
/// Cloning is cheap and gives a handle to the same engine. Workflows run on the default engine
/// (built from [`Config::load`] on first use) unless given one with `workflow.on(&engine)`.
///
/// ```no_run
/// # async fn demo() -> flux::Result<()> {
/// let engine = flux::Engine::open(".flux/flux.db")?;
/// let memory = flux::Engine::in_memory();
/// let tuned = flux::Engine::builder()
///     .sqlite(".flux/flux.db")
///     .durability(flux::Durability::Full)
///     .lease(std::time::Duration::from_secs(10))
///     .build()?;
/// # let _ = (engine, memory, tuned); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// The secrets: this store, and the key they are encrypted under.
    vault: Vault,
    /// Executions being run by this engine right now, with their run once it exists.
    running: Arc<Mutex<Running>>,
    /// The owner this engine records on the executions it runs.
    owner: Arc<str>,
    /// How long its leases last, in milliseconds.
    lease_ms: AtomicU64,
    /// Set while the lease renewal task runs.
    renewing: AtomicBool,
    /// The workflows [`Engine::recover`] can continue, by name.
    workflows: RwLock<HashMap<&'static str, Arc<dyn Recoverable>>>,
    /// Output storages by name (`output_storage = "file"`).
    outputs: RwLock<Outputs>,
    /// What tasks receive as `State<T>` parameters, one per type.
    states: RwLock<States>,
    /// The background deletion of old finished executions, if the engine has a retention.
    retention: std::sync::OnceLock<manage::Retention>,
    /// The queues, by name, and the limits of workflows and tasks with a `max_concurrency`.
    queues: Mutex<queue::Queues>,
    /// The limits a queue gets when first used (`[flux.queues.<name>]`).
    presets: Mutex<HashMap<String, crate::config::QueueSettings>>,
    /// Told of each message sent through this engine, for the receives waiting here.
    sent: tokio::sync::Notify,
    /// The executions waiting in this engine's queues: their leases are renewed with the runs'.
    queued: Mutex<std::collections::HashSet<Arc<str>>>,
    /// What it counts of the task attempts it sees (served at a server's `/metrics`).
    metrics: crate::metrics::Metrics,
    /// The name of the worker whose engine this is, if it is one (`flux.worker.name` of spans).
    worker_name: std::sync::OnceLock<Arc<str>>,
}

/// The executions claimed here, with their run once it exists.
type Running = HashMap<String, Option<Weak<dyn LiveRun>>>;
type Outputs = HashMap<String, Arc<dyn OutputStorage>>;

/// A run going on in an engine, as the engine sees it: enough to renew its lease, to stop it
/// when the lease is lost, and to hand it back to the layer that made it.
pub(crate) trait LiveRun: Any + Send + Sync {
    /// The execution it runs.
    fn execution_id(&self) -> &Arc<str>;
    /// Stops the run: another engine took its execution over (`error` says so).
    fn lease_lost(&self, error: Error);
}

/// A workflow registered for recovery: its name, and how to continue one of its executions.
pub(crate) trait Recoverable: Send + Sync {
    /// The workflow name.
    fn name(&self) -> &'static str;
    /// Continues the stored execution `id` over its log; resolves with the state its run stopped
    /// in.
    fn continue_execution(&self, engine: &Engine, id: String) -> BoxFuture<'static, Result<ExecutionState>>;
    /// Stores a fork of execution `source` from step `from_step` under a new id and runs it to
    /// its end (or next pause); resolves with the new id.
    fn fork(&self, engine: &Engine, source: String, from_step: usize) -> BoxFuture<'static, Result<String>>;
    /// Stores a new execution `id` with the encoded `input` (refused with
    /// [`ErrorKind::Conflict`] if the id is taken) and runs it in the background; resolves once
    /// it is stored, with the run.
    #[cfg_attr(not(feature = "schedule"), allow(dead_code))]
    fn start_new(&self, engine: &Engine, id: String, input: Vec<u8>) -> BoxFuture<'static, Result<Run>>;
    /// The schedule `#[flux::workflow(schedule = "..")]` declares: its cron expression, its time
    /// zone, and the encoded input of each fire.
    #[cfg_attr(not(feature = "schedule"), allow(dead_code))]
    fn declared_schedule(&self) -> Option<(&'static str, &'static str, Result<Vec<u8>>)>;
}

/// A run going on in the background, resolving with the state it stopped in.
pub(crate) type Run = tokio::task::JoinHandle<Result<ExecutionState>>;

/// Marks an execution as being run by this engine until dropped.
pub(crate) struct LocalClaim {
    running: Arc<Mutex<Running>>,
    id: String,
}

impl LocalClaim {
    /// Makes `run` reachable through [`Engine::local_run`] (and its lease renewed) while the
    /// claim lasts.
    pub(crate) fn attach<R: LiveRun>(&self, run: &Arc<R>) {
        let weak: Weak<dyn LiveRun> = Arc::downgrade(run) as Weak<dyn LiveRun>;
        if let Some(slot) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&self.id) {
            *slot = Some(weak);
        }
    }
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("vault", &self.inner.vault).finish_non_exhaustive()
    }
}

impl AsRef<Vault> for Engine {
    fn as_ref(&self) -> &Vault {
        &self.inner.vault
    }
}

static DEFAULT: Mutex<Option<Engine>> = Mutex::new(None);

impl Engine {
    /// Opens (or creates) the SQLite database at `path` with default durability. Secrets are
    /// encrypted with the key in `encryption.key` next to the database (created on first use).
    /// With the `postgres` feature, a `postgres://…` URL opens that PostgreSQL database instead
    /// (see `EngineBuilder::postgres`).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, Durability::Default)
    }

    /// [`Engine::open`] with the given durability.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Engine> {
        let path = path.as_ref();
        #[cfg(feature = "postgres")]
        if let Some(url) = path.to_str().filter(|p| p.starts_with("postgres://") || p.starts_with("postgresql://")) {
            return Engine::builder().postgres(url).durability(durability).build();
        }
        #[cfg(feature = "sqlite")]
        return Engine::builder().sqlite(path).durability(durability).build();
        #[cfg(not(feature = "sqlite"))]
        Err(Error::new(
            ErrorKind::Config,
            format!("`{}` is not a postgres:// URL, and this build has no SQLite", path.display()),
        ))
    }

    /// An engine that keeps everything in memory: for tests. Its secrets key is random.
    pub fn in_memory() -> Engine {
        Engine::with_store(MemoryStore::new())
    }

    /// An engine over any [`Store`]. Its secrets key is random (see
    /// [`Engine::with_encryption_key`]).
    pub fn with_store(store: impl Store) -> Engine {
        let store: Arc<dyn Store> = Arc::new(store);
        let vault = Vault::new(store.clone(), KeySource::Ephemeral);
        Engine::assemble(store, vault, Outputs::new())
    }

    /// A new engine (its own owner id, nothing running) from its parts.
    fn assemble(store: Arc<dyn Store>, vault: Vault, outputs: Outputs) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store,
                vault,
                running: Arc::default(),
                owner: Arc::from(format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())),
                lease_ms: AtomicU64::new(lease::millis(DEFAULT_LEASE)),
                renewing: AtomicBool::new(false),
                workflows: RwLock::default(),
                outputs: RwLock::new(outputs),
                states: RwLock::default(),
                retention: std::sync::OnceLock::new(),
                queues: Mutex::default(),
                presets: Mutex::default(),
                sent: tokio::sync::Notify::new(),
                queued: Mutex::default(),
                metrics: crate::metrics::Metrics::default(),
                worker_name: std::sync::OnceLock::new(),
            }),
        }
    }

    /// An engine over the same storage, with secrets encrypted under `key`: 32 random bytes
    /// written as 64 hexadecimal digits (`openssl rand -hex 32` makes one). It keeps every other
    /// setting of this one (lease, output storages, registered workflows); other handles to this
    /// engine keep their key.
    pub fn with_encryption_key(&self, key: &str) -> Result<Engine> {
        let key = secrets::parse_configured_key(key)?;
        let store = self.inner.store.clone();
        let vault = Vault::new(store.clone(), KeySource::Configured(key));
        let engine = self.copy_settings_to(Engine::assemble(store, vault, self.outputs()));
        // The same storage, so the same retention (a worker's engine, over a server's, has none).
        if let Some(keep) = self.retention() {
            engine.keep_for(keep)?;
        }
        Ok(engine)
    }

    /// An engine over `store` that shares this engine's secrets key and output storages (a
    /// worker's engine, whose logs live on the server).
    #[cfg(feature = "worker")]
    pub(crate) fn with_store_sharing(&self, store: Arc<dyn Store>) -> Engine {
        let vault = self.inner.vault.sharing_key(store.clone());
        self.copy_settings_to(Engine::assemble(store, vault, self.outputs()))
    }

    /// `engine`, with this engine's lease, registered workflows and states.
    fn copy_settings_to(&self, engine: Engine) -> Engine {
        engine.add_states(&self.inner.states.read().unwrap_or_else(|p| p.into_inner()));
        engine.inner.lease_ms.store(self.inner.lease_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        let workflows = self.inner.workflows.read().unwrap_or_else(|p| p.into_inner()).clone();
        *engine.inner.workflows.write().unwrap_or_else(|p| p.into_inner()) = workflows;
        let presets = self.inner.presets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        *engine.inner.presets.lock().unwrap_or_else(|p| p.into_inner()) = presets;
        engine
    }

    fn outputs(&self) -> Outputs {
        self.inner.outputs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Builds the engine a configuration describes.
    pub fn from_config(config: &Config) -> Result<Engine> {
        let engine = Engine::open_configured(config)?;
        let mut presets = engine.inner.presets.lock().unwrap_or_else(|p| p.into_inner());
        presets.extend(config.queues.iter().map(|(name, settings)| (name.clone(), *settings)));
        drop(presets);
        Ok(engine)
    }

    /// The engine of `config`'s database, home and keys.
    fn open_configured(config: &Config) -> Result<Engine> {
        let mut builder = Engine::builder();
        if let Some(key) = &config.encryption_key {
            // Checked here, so that an error of `build` below is the database's.
            secrets::parse_configured_key(key)?;
            builder = builder.encryption_key(key.as_str());
        }
        if let Some(keep) = config.retention {
            builder = builder.retention(keep);
        }
        match config.database()? {
            // In memory, secrets and outputs live in memory too (a random key unless one is set).
            DatabaseLocation::Memory => builder.build(),
            // Secrets and stored outputs live in the flux home, whatever the database path.
            #[cfg(feature = "sqlite")]
            DatabaseLocation::Sqlite(path) => {
                builder.home(&config.home).sqlite(path).durability(config.durability).build().map_err(|e| {
                    Error::new(e.kind(), format!("cannot open database `{}`", config.database_url))
                        .with_cause(e.to_string())
                })
            }
            #[cfg(not(feature = "sqlite"))]
            DatabaseLocation::Sqlite(_) => Err(Error::new(
                ErrorKind::Config,
                format!("`{}` needs the `sqlite` feature of flux", config.database_url),
            )),
            #[cfg(feature = "postgres")]
            DatabaseLocation::Postgres(url) => {
                builder.home(&config.home).postgres(url).durability(config.durability).build().map_err(|e| {
                    Error::new(e.kind(), "cannot open the PostgreSQL database of FLUX_DATABASE_URL")
                        .with_cause(e.to_string())
                })
            }
            #[cfg(not(feature = "postgres"))]
            DatabaseLocation::Postgres(_) => {
                Err(Error::new(ErrorKind::Config, "a `postgres://` database URL needs the `postgres` feature of flux"))
            }
        }
    }

    /// The process-wide default engine, built from [`Config::load`] on first use.
    ///
    /// If it cannot be built, the error is returned and the next call tries again.
    pub fn global() -> Result<Engine> {
        let mut slot = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(engine) = &*slot {
            return Ok(engine.clone());
        }
        let engine = Engine::from_config(&Config::load()?)?;
        *slot = Some(engine.clone());
        Ok(engine)
    }

    /// Makes `engine` the process-wide default (replacing any earlier one).
    pub fn set_global(engine: Engine) {
        *DEFAULT.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine);
    }

    /// The storage backend.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Where this engine's secrets are kept (what the functions of [`crate::secrets`] take; the
    /// engine itself may be given to them too).
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// Gives the engine's tasks `value`: a task taking a [`State<T>`] parameter receives it
    /// (replacing a value of the same type given before). Every handle to this engine sees it.
    pub fn with_state<T: Send + Sync + 'static>(self, value: T) -> Engine {
        self.inner.states.write().unwrap_or_else(|p| p.into_inner()).insert(value);
        self
    }

    /// The value of type `T` given with [`Engine::with_state`], if any.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        self.inner.states.read().unwrap_or_else(|p| p.into_inner()).get()
    }

    /// Takes every state of `states` (replacing those of the same types).
    pub(crate) fn add_states(&self, states: &States) {
        self.inner.states.write().unwrap_or_else(|p| p.into_inner()).extend(states);
    }

    /// Makes `storage` available as `output_storage = "<name>"` (replacing one of that name).
    pub fn register_output_storage(&self, name: impl Into<String>, storage: impl OutputStorage) {
        self.inner.outputs.write().unwrap_or_else(|p| p.into_inner()).insert(name.into(), Arc::new(storage));
    }

    fn output_storage(&self, name: &str) -> Result<Arc<dyn OutputStorage>> {
        let outputs = self.inner.outputs.read().unwrap_or_else(|p| p.into_inner());
        outputs.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = outputs.keys().map(String::as_str).collect();
            known.sort_unstable();
            Error::new(
                ErrorKind::Config,
                format!(
                    "no output storage named `{name}` in this engine (known: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            )
        })
    }

    /// Keeps `value` in the named output storage and returns what to record instead.
    pub(crate) fn store_output(&self, storage: &str, value: &[u8]) -> Result<Vec<u8>> {
        let reference = self.output_storage(storage)?.put(value)?;
        output::encode_reference(storage, &reference)
    }

    /// The value a recorded output stands for: itself, or what its reference points to.
    pub(crate) fn resolve_output<'a>(&self, recorded: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        match output::reference_of(recorded) {
            None => Ok(Cow::Borrowed(recorded)),
            Some((storage, reference)) => Ok(Cow::Owned(self.output_storage(&storage)?.get(&reference)?)),
        }
    }

    /// Removes every cached task result (see the `cache` task option). Returns how many.
    pub fn clear_cache(&self) -> Result<u64> {
        self.inner.store.cache_clear(None)
    }

    /// Removes the cached results of the task named `task_name`. Returns how many.
    pub fn clear_task_cache(&self, task_name: &str) -> Result<u64> {
        self.inner.store.cache_clear(Some(task_name))
    }

    /// Claims `execution_id` for a run in this engine; refused while another run of it is going
    /// on here, so that one execution is never driven twice at once by the same engine.
    pub(crate) fn claim_local(&self, execution_id: &str) -> Result<LocalClaim> {
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(execution_id) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution `{execution_id}` is already running; wait for it instead of running it again"),
            ));
        }
        running.insert(execution_id.to_string(), None);
        Ok(LocalClaim { running: self.inner.running.clone(), id: execution_id.to_string() })
    }

    /// Names this engine as worker `name`'s (set once).
    #[cfg(feature = "worker")]
    pub(crate) fn set_worker_name(&self, name: &str) {
        let _ = self.inner.worker_name.set(Arc::from(name));
    }

    /// The name of the worker whose engine this is, if it is one.
    pub(crate) fn worker_name(&self) -> Option<&str> {
        self.inner.worker_name.get().map(|name| &**name)
    }

    /// What this engine counts of task attempts.
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The run of `execution_id` going on in this engine, if any.
    pub(crate) fn local_run(&self, execution_id: &str) -> Option<Arc<dyn LiveRun>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).get(execution_id)?.as_ref()?.upgrade()
    }

    /// The stored state of an execution, read off the async threads.
    pub(crate) async fn execution_state(&self, execution_id: &str) -> Result<Option<ExecutionState>> {
        let store = self.inner.store.clone();
        let id = execution_id.to_string();
        match tokio::task::spawn_blocking(move || store.state(&id)).await {
            Ok(result) => result,
            Err(e) => Err(Error::new(
                ErrorKind::Storage,
                format!("reading the state of execution `{execution_id}` failed: {e}"),
            )),
        }
    }

    /// Loads an execution as stored, off the async threads.
    pub(crate) async fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        let store = self.inner.store.clone();
        let id = execution_id.to_string();
        match tokio::task::spawn_blocking(move || store.load(&id)).await {
            Ok(result) => result,
            Err(e) => Err(Error::new(ErrorKind::Storage, format!("loading execution `{execution_id}` failed: {e}"))),
        }
    }

    /// Told of each message sent through this engine ([`crate::messages`]).
    pub(crate) fn messages_sent(&self) -> &tokio::sync::Notify {
        &self.inner.sent
    }

    /// The error for an execution id this engine's store does not hold.
    pub(crate) fn not_found(&self, execution_id: &str) -> Error {
        Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}` in {}", self.store().describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    /// An output storage that keeps nothing: only its presence is looked at.
    struct Nowhere;

    impl OutputStorage for Nowhere {
        fn put(&self, _value: &[u8]) -> Result<String> {
            Ok("nowhere".to_string())
        }
        fn get(&self, reference: &str) -> Result<Vec<u8>> {
            Err(Error::new(ErrorKind::NotFound, format!("no output `{reference}`")))
        }
    }

    /// A workflow kept for recovery under `name`, which never runs.
    struct Named(&'static str);

    impl Recoverable for Named {
        fn fork(&self, _: &Engine, _: String, _: usize) -> BoxFuture<'static, Result<String>> {
            Box::pin(async { Err(Error::new(ErrorKind::InvalidState, "not a workflow")) })
        }

        fn name(&self) -> &'static str {
            self.0
        }
        fn continue_execution(&self, _engine: &Engine, _id: String) -> BoxFuture<'static, Result<ExecutionState>> {
            Box::pin(async { Ok(ExecutionState::Completed) })
        }
        fn start_new(&self, _: &Engine, _: String, _: Vec<u8>) -> BoxFuture<'static, Result<Run>> {
            Box::pin(async { Err(Error::new(ErrorKind::InvalidState, "not a workflow")) })
        }
        fn declared_schedule(&self) -> Option<(&'static str, &'static str, Result<Vec<u8>>)> {
            None
        }
    }

    #[test]
    fn a_builder_applies_its_settings_in_any_order() {
        let lease = Duration::from_secs(7);
        let built = [
            Engine::builder().lease(lease).encryption_key(KEY).output_storage("nowhere", Nowhere).build(),
            Engine::builder().output_storage("nowhere", Nowhere).encryption_key(KEY).lease(lease).build(),
        ];
        for engine in built {
            let engine = engine.unwrap();
            assert_eq!(engine.lease(), lease);
            assert!(engine.output_storage("nowhere").is_ok());
            secrets::set(&engine, "A", "1").unwrap();
            // The same key decrypts it from another engine over the same store.
            let other = Engine::assemble(
                engine.store().clone(),
                Vault::new(engine.store().clone(), KeySource::Configured(secrets::parse_configured_key(KEY).unwrap())),
                Outputs::new(),
            );
            assert_eq!(secrets::get(&other, "A").unwrap().as_deref(), Some("1"));
        }
    }

    #[test]
    fn a_bad_setting_is_refused_by_build_naming_it() {
        let err = Engine::builder().encryption_key("hunter2").build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("64 hexadecimal digits") && !err.to_string().contains("hunter2"), "{err}");
        let err = Engine::builder().durability(Durability::Full).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("durability"), "{err}");
        assert!(Engine::builder().lease(Duration::ZERO).build().unwrap().lease() >= MIN_LEASE);
    }

    #[test]
    fn another_key_keeps_every_other_setting() {
        let engine = Engine::in_memory().with_lease(Duration::from_secs(9));
        engine.register_output_storage("nowhere", Nowhere);
        engine.register_recoverable(Arc::new(Named("orders")));
        let rekeyed = engine.with_encryption_key(KEY).unwrap();
        assert_eq!(rekeyed.lease(), Duration::from_secs(9));
        assert!(rekeyed.output_storage("nowhere").is_ok());
        assert!(rekeyed.recoverable("orders").is_some());
        // The same store, another engine: its own owner id.
        assert!(Arc::ptr_eq(engine.store(), rekeyed.store()));
        assert_ne!(engine.owner(), rekeyed.owner());
        // And the order of the two settings does not matter.
        let other_order = Engine::in_memory().with_encryption_key(KEY).unwrap().with_lease(Duration::from_secs(9));
        assert_eq!(other_order.lease(), rekeyed.lease());
    }
}
