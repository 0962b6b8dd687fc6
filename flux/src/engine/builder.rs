//! [`EngineBuilder`]: the settings of a new engine, applied all at once.

#[cfg(feature = "sqlite")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Engine, Outputs, States};
use crate::error::{Error, ErrorKind, Result};
use crate::output::{FileOutputStorage, OutputStorage};
use crate::secrets::{self, KeySource, Vault};
use crate::store::{Durability, MemoryStore, Store};

/// Where a new engine keeps its executions.
#[derive(Default)]
enum Storage {
    #[default]
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
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
    retention: Option<Duration>,
    outputs: Vec<(String, Arc<dyn OutputStorage>)>,
    states: States,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let storage = match &self.storage {
            Storage::Memory => "memory".to_string(),
            #[cfg(feature = "sqlite")]
            Storage::Sqlite(path) => format!("sqlite:{}", path.display()),
            #[cfg(feature = "postgres")]
            Storage::Postgres(_) => "postgres".to_string(),
            Storage::Custom(store) => store.describe(),
        };
        f.debug_struct("EngineBuilder")
            .field("storage", &storage)
            .field("durability", &self.durability)
            .field("home", &self.home)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .field("lease", &self.lease)
            .field("retention", &self.retention)
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

    /// Keeps the executions in the PostgreSQL database at `url`
    /// (`postgres://user:password@host:port/database`), in the schema `flux`; see
    /// [`PostgresStore`](crate::store::PostgresStore). Its home (secrets key file, `"file"`
    /// outputs) is `.flux` unless [`home`](EngineBuilder::home) says otherwise: flux servers
    /// sharing a database must share their encryption key
    /// ([`encryption_key`](EngineBuilder::encryption_key)) to read each other's secrets.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.storage = Storage::Postgres(url.into());
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

    /// How long the leases of the executions this engine runs last (default [`DEFAULT_LEASE`](super::DEFAULT_LEASE),
    /// at least 100 ms); see [`Engine::with_lease`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Deletes finished executions (`COMPLETED`, `FAILED`, `CANCELLED`) once their last change
    /// is older than `keep`, with their logs, in a background thread that runs a pass a second
    /// after the engine is built, then every tenth of `keep` (at least every hour, at most every
    /// second), and stops when the engine is
    /// dropped. Unfinished executions, and sub-workflows whose parent has not finished, are
    /// never deleted; see [`Engine::run_retention`] and [`Engine::delete_where`]. Refused by
    /// [`EngineBuilder::build`] if zero. Default: executions are kept.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// Makes `storage` available as `output_storage = "<name>"` (replacing the `"file"` one, or
    /// one given earlier, of the same name).
    pub fn output_storage(mut self, name: impl Into<String>, storage: impl OutputStorage) -> Self {
        self.outputs.push((name.into(), Arc::new(storage)));
        self
    }

    /// Gives the engine's tasks `value`, received as a [`State<T>`](crate::State) parameter (see
    /// [`Engine::with_state`]).
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.states.insert(value);
        self
    }

    /// Opens the storage and builds the engine.
    pub fn build(self) -> Result<Engine> {
        if self.retention.is_some_and(|keep| keep.is_zero()) {
            return Err(Error::new(ErrorKind::Config, "a retention must be longer than zero"));
        }
        let key = match &self.encryption_key {
            Some(key) => Some(secrets::parse_configured_key(key)?),
            None => None,
        };
        let (store, home): (Arc<dyn Store>, Option<PathBuf>) = match self.storage {
            Storage::Memory | Storage::Custom(_) if self.durability.is_some() => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a durability is a setting of the SQLite and PostgreSQL stores; this engine's store has its own",
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
            #[cfg(feature = "postgres")]
            Storage::Postgres(url) => {
                let store = crate::store::PostgresStore::open(&url, self.durability.unwrap_or_default())?;
                (Arc::new(store), Some(self.home.unwrap_or_else(|| PathBuf::from(".flux"))))
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
        engine.add_states(&self.states);
        if let Some(keep) = self.retention {
            engine.keep_for(keep)?;
        }
        Ok(engine)
    }
}

impl Engine {
    /// The settings of a new engine, applied in one go by [`EngineBuilder::build`].
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }
}
