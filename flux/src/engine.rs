//! [`Engine`]: where executions are stored and run.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use crate::config::{Config, DatabaseLocation};
use crate::context::RunState;
use crate::error::{Error, Result};
use crate::output::{self, FileOutputStorage, OutputStorage};
use crate::secrets::{self, KeySource, Keyring};
use crate::store::{Durability, MemoryStore, Store, StoredExecution};

/// Where executions live: a storage backend plus what the runtime needs around it.
///
/// Cloning is cheap and gives a handle to the same engine. Workflows run on the default engine
/// (built from [`Config::load`] on first use) unless given one with `workflow.on(&engine)`.
///
/// ```no_run
/// # async fn demo() -> flux::Result<()> {
/// let engine = flux::Engine::open(".flux/flux.db")?;
/// let memory = flux::Engine::in_memory();
/// # let _ = (engine, memory); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    /// Executions being run by this engine right now, with their run once it exists.
    pub(crate) running: Arc<Mutex<Running>>,
    /// The owner this engine records on the executions it runs (see [`crate::recovery`]).
    pub(crate) owner: Arc<str>,
    /// How long its leases last, in milliseconds.
    pub(crate) lease_ms: std::sync::atomic::AtomicU64,
    /// Set while the lease renewal task runs.
    pub(crate) renewing: std::sync::atomic::AtomicBool,
    /// The workflows [`Engine::recover`] can continue, by name.
    pub(crate) workflows: RwLock<HashMap<&'static str, Arc<dyn crate::erased::ErasedWorkflow>>>,
    /// Where the key of the secrets comes from; the key is loaded on first use.
    key_source: KeySource,
    keyring: OnceLock<Keyring>,
    /// Output storages by name (`output_storage = "file"`).
    outputs: RwLock<HashMap<String, Arc<dyn OutputStorage>>>,
}

type Running = HashMap<String, Weak<RunState>>;

impl Inner {
    fn new(store: Arc<dyn Store>, key_source: KeySource, outputs: HashMap<String, Arc<dyn OutputStorage>>) -> Inner {
        let lease_ms = u64::try_from(crate::recovery::DEFAULT_LEASE.as_millis()).unwrap_or(u64::MAX);
        Inner {
            store,
            running: Arc::default(),
            owner: Arc::from(format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())),
            lease_ms: std::sync::atomic::AtomicU64::new(lease_ms),
            renewing: std::sync::atomic::AtomicBool::new(false),
            workflows: RwLock::default(),
            key_source,
            keyring: OnceLock::new(),
            outputs: RwLock::new(outputs),
        }
    }
}

/// Marks an execution as being run by this engine until dropped.
pub(crate) struct LocalClaim {
    running: Arc<Mutex<Running>>,
    id: String,
}

impl LocalClaim {
    /// Makes `run` reachable through [`Engine::local_run`] while the claim lasts.
    pub(crate) fn attach(&self, run: &Arc<RunState>) {
        if let Some(slot) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&self.id) {
            *slot = Arc::downgrade(run);
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
        f.debug_struct("Engine")
            .field("store", &self.inner.store.describe())
            .field("key", &self.inner.key_source)
            .finish_non_exhaustive()
    }
}

static DEFAULT: Mutex<Option<Engine>> = Mutex::new(None);

impl Engine {
    /// Opens (or creates) the SQLite database at `path` with default durability.
    #[cfg(feature = "sqlite")]
    pub fn open(path: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(path, Durability::Default)
    }

    /// Opens (or creates) the SQLite database at `path` with the given durability. Secrets are
    /// encrypted with the key in `encryption.key` next to the database (created on first use).
    #[cfg(feature = "sqlite")]
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Engine> {
        let path = path.as_ref();
        let home = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let store = crate::store::SqliteStore::open(path, durability)?;
        Ok(Engine::build(Arc::new(store), KeySource::File(home.join(secrets::KEY_FILE)), Some(home)))
    }

    /// An engine that keeps everything in memory: for tests. Its secrets key is random.
    pub fn in_memory() -> Engine {
        Engine::with_store(MemoryStore::new())
    }

    /// An engine over any [`Store`]. Its secrets key is random (see
    /// [`Engine::with_encryption_key`]).
    pub fn with_store(store: impl Store) -> Engine {
        Engine::build(Arc::new(store), KeySource::Ephemeral, None)
    }

    /// The same storage, with secrets encrypted under `key`: 32 random bytes written as 64
    /// hexadecimal digits (`openssl rand -hex 32` makes one). Other handles to this engine keep
    /// their key.
    pub fn with_encryption_key(&self, key: &str) -> Result<Engine> {
        let key = secrets::parse_configured_key(key)?;
        let outputs = self.inner.outputs.read().unwrap_or_else(|p| p.into_inner()).clone();
        let engine = Engine::build(self.inner.store.clone(), KeySource::Configured(key), None);
        *engine.inner.outputs.write().unwrap_or_else(|p| p.into_inner()) = outputs;
        Ok(engine)
    }

    /// An engine over `store` that shares this engine's secrets key and output storages.
    #[cfg(feature = "server")]
    pub(crate) fn with_store_sharing(&self, store: Arc<dyn Store>) -> Engine {
        let outputs = self.inner.outputs.read().unwrap_or_else(|p| p.into_inner()).clone();
        let engine = Engine { inner: Arc::new(Inner::new(store, self.inner.key_source.clone(), outputs)) };
        // The same key, even when it is an in-memory one.
        if let Ok(keyring) = self.keyring() {
            let _ = engine.inner.keyring.set(keyring.clone());
        }
        engine
    }

    /// An engine; with a `home`, the `"file"` output storage keeps outputs in `home/outputs`.
    fn build(store: Arc<dyn Store>, key_source: KeySource, home: Option<&Path>) -> Engine {
        let mut outputs: HashMap<String, Arc<dyn OutputStorage>> = HashMap::new();
        if let Some(home) = home {
            outputs.insert("file".to_string(), Arc::new(FileOutputStorage::new(home.join("outputs"))));
        }
        Engine { inner: Arc::new(Inner::new(store, key_source, outputs)) }
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
                crate::ErrorKind::Config,
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

    /// Builds the engine a configuration describes.
    pub fn from_config(config: &Config) -> Result<Engine> {
        match config.database()? {
            DatabaseLocation::Memory => {
                let key = match &config.encryption_key {
                    Some(key) => KeySource::Configured(secrets::parse_configured_key(key)?),
                    None => KeySource::Ephemeral,
                };
                Ok(Engine::build(Arc::new(MemoryStore::new()), key, None))
            }
            #[cfg(feature = "sqlite")]
            DatabaseLocation::Sqlite(path) => {
                let store = crate::store::SqliteStore::open(&path, config.durability).map_err(|e| {
                    Error::new(e.kind(), format!("cannot open database `{}`", config.database_url))
                        .with_cause(e.to_string())
                })?;
                // Secrets and stored outputs live in the flux home, whatever the database path.
                let key = match &config.encryption_key {
                    Some(key) => KeySource::Configured(secrets::parse_configured_key(key)?),
                    None => KeySource::File(config.home.join(secrets::KEY_FILE)),
                };
                Ok(Engine::build(Arc::new(store), key, Some(&config.home)))
            }
            #[cfg(not(feature = "sqlite"))]
            DatabaseLocation::Sqlite(_) => Err(Error::new(
                crate::ErrorKind::Config,
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

    /// The cipher of this engine's secrets, loading (or creating) its key on first use.
    pub(crate) fn keyring(&self) -> Result<&Keyring> {
        if let Some(k) = self.inner.keyring.get() {
            return Ok(k);
        }
        let loaded = Keyring::load(&self.inner.key_source)?;
        Ok(self.inner.keyring.get_or_init(|| loaded))
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
                crate::ErrorKind::InvalidState,
                format!("execution `{execution_id}` is already running; wait for it instead of running it again"),
            ));
        }
        running.insert(execution_id.to_string(), Weak::new());
        Ok(LocalClaim { running: self.inner.running.clone(), id: execution_id.to_string() })
    }

    /// The run of `execution_id` going on in this engine, if any.
    pub(crate) fn local_run(&self, execution_id: &str) -> Option<Arc<RunState>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).get(execution_id).and_then(Weak::upgrade)
    }

    /// The stored state of an execution, read off the async threads.
    pub(crate) async fn state(&self, execution_id: &str) -> Result<Option<crate::ExecutionState>> {
        let store = self.inner.store.clone();
        let id = execution_id.to_string();
        match tokio::task::spawn_blocking(move || store.state(&id)).await {
            Ok(result) => result,
            Err(e) => Err(Error::new(
                crate::ErrorKind::Storage,
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
            Err(e) => {
                Err(Error::new(crate::ErrorKind::Storage, format!("loading execution `{execution_id}` failed: {e}")))
            }
        }
    }
}
