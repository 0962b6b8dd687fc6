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
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use crate::config::{Config, DatabaseLocation};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::output::{self, FileOutputStorage, OutputStorage};
use crate::secrets::{self, KeySource, Vault};
use crate::store::{Durability, LeaseMode, MemoryStore, Store, StoredExecution, Write};

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
}

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

/// Where a new engine keeps its executions.
#[derive(Default)]
enum Storage {
    #[default]
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    Custom(Arc<dyn Store>),
}

/// The settings of a new [`Engine`] ([`Engine::builder`]). [`EngineBuilder::build`] applies them
/// all at once, so the order in which they are given does not matter.
///
/// Without a storage setting the engine keeps everything in memory. Its *home* is where the key
/// file of its secrets (`encryption.key`) and the `"file"` output storage (`outputs/`) live: by
/// default the directory of the SQLite database; an engine with no home (in memory, or over a
/// store of its own) encrypts its secrets under a random key unless given one.
///
/// ```
/// # fn demo() -> flux::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let engine = flux::Engine::builder()
///     .lease(std::time::Duration::from_secs(5))
///     .sqlite(dir.path().join("flux.db"))
///     .encryption_key("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
///     .build()?;
/// assert_eq!(engine.lease(), std::time::Duration::from_secs(5));
/// # Ok(()) }
/// # demo().unwrap();
/// ```
#[derive(Default)]
#[must_use = "an engine builder does nothing until `build` is called"]
pub struct EngineBuilder {
    storage: Storage,
    durability: Option<Durability>,
    home: Option<PathBuf>,
    encryption_key: Option<String>,
    lease: Option<Duration>,
    outputs: Vec<(String, Arc<dyn OutputStorage>)>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let storage = match &self.storage {
            Storage::Memory => "memory".to_string(),
            #[cfg(feature = "sqlite")]
            Storage::Sqlite(path) => format!("sqlite:{}", path.display()),
            Storage::Custom(store) => store.describe(),
        };
        f.debug_struct("EngineBuilder")
            .field("storage", &storage)
            .field("durability", &self.durability)
            .field("home", &self.home)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .field("lease", &self.lease)
            .field("outputs", &self.outputs.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .finish()
    }
}

impl EngineBuilder {
    /// Keeps everything in memory (the default): for tests.
    pub fn in_memory(mut self) -> Self {
        self.storage = Storage::Memory;
        self
    }

    /// Keeps executions in the SQLite database at `path` (created on first use).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.storage = Storage::Sqlite(path.into());
        self
    }

    /// Keeps executions in `store`.
    pub fn store(mut self, store: impl Store) -> Self {
        self.storage = Storage::Custom(Arc::new(store));
        self
    }

    /// How hard the SQLite store's commits try to reach the disk (default
    /// [`Durability::Default`]). Refused by [`EngineBuilder::build`] for other stores, whose
    /// durability is their own.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// The directory of the secrets' key file and of the `"file"` output storage (default: the
    /// SQLite database's directory; none for other stores).
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// Encrypts secrets under `key`: 32 random bytes written as 64 hexadecimal digits
    /// (`openssl rand -hex 32` makes one), instead of the key file in the home. Checked by
    /// [`EngineBuilder::build`].
    pub fn encryption_key(mut self, key: impl Into<String>) -> Self {
        self.encryption_key = Some(key.into());
        self
    }

    /// How long the leases of the executions this engine runs last (default [`DEFAULT_LEASE`],
    /// at least 100 ms); see [`Engine::with_lease`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Makes `storage` available as `output_storage = "<name>"` (replacing the `"file"` one, or
    /// one given earlier, of the same name).
    pub fn output_storage(mut self, name: impl Into<String>, storage: impl OutputStorage) -> Self {
        self.outputs.push((name.into(), Arc::new(storage)));
        self
    }

    /// Opens the storage and builds the engine.
    pub fn build(self) -> Result<Engine> {
        let key = match &self.encryption_key {
            Some(key) => Some(secrets::parse_configured_key(key)?),
            None => None,
        };
        let (store, home): (Arc<dyn Store>, Option<PathBuf>) = match self.storage {
            Storage::Memory | Storage::Custom(_) if self.durability.is_some() => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a durability is a setting of the SQLite store; this engine's store has its own",
                ));
            }
            Storage::Memory => (Arc::new(MemoryStore::new()), self.home),
            Storage::Custom(store) => (store, self.home),
            #[cfg(feature = "sqlite")]
            Storage::Sqlite(path) => {
                let store = crate::store::SqliteStore::open(&path, self.durability.unwrap_or_default())?;
                let home = self.home.unwrap_or_else(|| {
                    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
                });
                (Arc::new(store), Some(home))
            }
        };
        let key_source = match (key, &home) {
            (Some(key), _) => KeySource::Configured(key),
            (None, Some(home)) => KeySource::File(home.join(secrets::KEY_FILE)),
            (None, None) => KeySource::Ephemeral,
        };
        let mut outputs = Outputs::new();
        if let Some(home) = &home {
            outputs.insert("file".to_string(), Arc::new(FileOutputStorage::new(home.join("outputs"))));
        }
        outputs.extend(self.outputs);
        let vault = Vault::new(store.clone(), key_source);
        let engine = Engine::assemble(store, vault, outputs);
        if let Some(lease) = self.lease {
            engine.set_lease(lease);
        }
        Ok(engine)
    }
}

impl Engine {
    /// The settings of a new engine, applied in one go by [`EngineBuilder::build`].
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Opens (or creates) the SQLite database at `path` with default durability. Secrets are
    /// encrypted with the key in `encryption.key` next to the database (created on first use).
    #[cfg(feature = "sqlite")]
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::builder().sqlite(path.as_ref()).build()
    }

    /// Opens (or creates) the SQLite database at `path` with the given durability.
    #[cfg(feature = "sqlite")]
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Engine> {
        Engine::builder().sqlite(path.as_ref()).durability(durability).build()
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
                lease_ms: AtomicU64::new(millis(DEFAULT_LEASE)),
                renewing: AtomicBool::new(false),
                workflows: RwLock::default(),
                outputs: RwLock::new(outputs),
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
        Ok(self.copy_settings_to(Engine::assemble(store, vault, self.outputs())))
    }

    /// An engine over `store` that shares this engine's secrets key and output storages (a
    /// worker's engine, whose logs live on the server).
    #[cfg(feature = "worker")]
    pub(crate) fn with_store_sharing(&self, store: Arc<dyn Store>) -> Engine {
        let vault = self.inner.vault.sharing_key(store.clone());
        self.copy_settings_to(Engine::assemble(store, vault, self.outputs()))
    }

    /// `engine`, with this engine's lease and registered workflows.
    fn copy_settings_to(&self, engine: Engine) -> Engine {
        engine.inner.lease_ms.store(self.inner.lease_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        let workflows = self.inner.workflows.read().unwrap_or_else(|p| p.into_inner()).clone();
        *engine.inner.workflows.write().unwrap_or_else(|p| p.into_inner()) = workflows;
        engine
    }

    fn outputs(&self) -> Outputs {
        self.inner.outputs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Builds the engine a configuration describes.
    pub fn from_config(config: &Config) -> Result<Engine> {
        let mut builder = Engine::builder();
        if let Some(key) = &config.encryption_key {
            // Checked here, so that an error of `build` below is the database's.
            secrets::parse_configured_key(key)?;
            builder = builder.encryption_key(key.as_str());
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

    /// The run of `execution_id` going on in this engine, if any.
    pub(crate) fn local_run(&self, execution_id: &str) -> Option<Arc<dyn LiveRun>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).get(execution_id)?.as_ref()?.upgrade()
    }

    /// The stored state of an execution, read off the async threads.
    pub(crate) async fn state(&self, execution_id: &str) -> Result<Option<ExecutionState>> {
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

    /// The error for an execution id this engine's store does not hold.
    pub(crate) fn not_found(&self, execution_id: &str) -> Error {
        Error::new(ErrorKind::NotFound, format!("no execution `{execution_id}` in {}", self.store().describe()))
    }

    /// The id this engine records as the owner of the executions it runs (unique per engine
    /// and process).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// How long the lease on an execution this engine runs lasts unless renewed.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.inner.lease_ms.load(Ordering::Relaxed))
    }

    /// Sets how long the leases this engine (and every handle to it) takes last: at least 100 ms,
    /// renewed every third of it. A shorter lease lets [`Engine::recover`] continue a dead
    /// process's executions sooner, at the cost of more renewals; every engine on one database
    /// should use the same. [`EngineBuilder::lease`] sets it when the engine is built.
    pub fn with_lease(self, lease: Duration) -> Engine {
        self.set_lease(lease);
        self
    }

    fn set_lease(&self, lease: Duration) {
        self.inner.lease_ms.store(millis(lease.max(MIN_LEASE)), Ordering::Relaxed);
    }

    /// Keeps `workflow` for recovery, under its name.
    pub(crate) fn register_recoverable(&self, workflow: Arc<dyn Recoverable>) {
        self.inner.workflows.write().unwrap_or_else(|p| p.into_inner()).insert(workflow.name(), workflow);
    }

    /// The workflow registered for recovery under `name`.
    pub(crate) fn recoverable(&self, name: &str) -> Option<Arc<dyn Recoverable>> {
        self.inner.workflows.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// This engine's lease write for `execution_id`.
    pub(crate) fn lease_write(&self, execution_id: Arc<str>, mode: LeaseMode) -> Write {
        Write::Lease { execution_id, owner: self.inner.owner.clone(), until: SystemTime::now() + self.lease(), mode }
    }

    /// Records this engine as the owner of `execution_id` (with the next commit) and makes sure
    /// its lease is renewed while it runs here.
    pub(crate) fn own(&self, execution_id: &Arc<str>) {
        drop(self.store().write_deferred(vec![self.lease_write(execution_id.clone(), LeaseMode::Own)]));
        self.renew_in_background();
    }

    /// Starts the renewal task unless it runs already (it ends when nothing runs here).
    pub(crate) fn renew_in_background(&self) {
        if self.inner.renewing.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(renew(Arc::downgrade(&self.inner)))),
            // No runtime, so nothing runs here either: the next run starts the task.
            Err(_) => self.inner.renewing.store(false, Ordering::SeqCst),
        }
    }

    /// A handle that does not keep the engine alive (for background tasks).
    #[cfg(feature = "server")]
    pub(crate) fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }
}

/// An [`Engine`] that background tasks hold without keeping it alive.
#[cfg(feature = "server")]
#[derive(Clone)]
pub(crate) struct WeakEngine(Weak<Inner>);

#[cfg(feature = "server")]
impl WeakEngine {
    /// The engine, unless every handle to it is gone.
    pub(crate) fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Renews the lease of every execution the engine runs, every third of the lease, until the
/// engine is dropped or runs nothing. A run whose lease was taken over is stopped.
async fn renew(inner: Weak<Inner>) {
    loop {
        let period = match inner.upgrade() {
            Some(inner) => Duration::from_millis(inner.lease_ms.load(Ordering::Relaxed) / 3),
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let engine = Engine { inner };
        let runs: Vec<Arc<dyn LiveRun>> = {
            let running = engine.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.is_empty() {
                // Under the lock, so that a run claimed after this starts a new task.
                engine.inner.renewing.store(false, Ordering::SeqCst);
                return;
            }
            running.values().flatten().filter_map(Weak::upgrade).collect()
        };
        for run in runs {
            let id = run.execution_id();
            match engine.store().write(vec![engine.lease_write(id.clone(), LeaseMode::Renew)]).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    tracing::warn!(execution_id = %id, "another engine took this execution over; stopping its run here");
                    run.lease_lost(Error::new(
                        ErrorKind::Conflict,
                        format!("execution `{id}` was taken over by another engine after this one's lease ran out"),
                    ));
                }
                // A run that has just finished (or whose row is gone) needs no lease; a
                // storage failure is retried at the next renewal, well before the lease ends.
                Err(e) => tracing::debug!(execution_id = %id, error = %e, "lease not renewed"),
            }
        }
    }
}
