//! Configuration of the default engine: `flux.toml` and `FLUX_*` environment variables.
//!
//! ```toml
//! [flux]
//! home = ".flux"                          # FLUX_HOME
//! database_url = "sqlite://.flux/flux.db" # FLUX_DATABASE_URL
//! durability = "default"                  # FLUX_DURABILITY: "default" or "full"
//! server_host = "localhost"               # FLUX_SERVER_HOST: where `flux start server` listens
//! server_port = 8000                      # FLUX_SERVER_PORT
//! max_body_bytes = 2097152                # FLUX_MAX_BODY_BYTES: largest HTTP request body
//! max_header_bytes = 65536                # FLUX_MAX_HEADER_BYTES: largest request line and headers
//! max_connections = 1024                  # FLUX_MAX_CONNECTIONS: open HTTP connections at once
//! request_timeout = "30s"                 # FLUX_REQUEST_TIMEOUT: to send a request's headers, or its body
//! retention = "30d"                       # FLUX_RETENTION: delete finished executions this long after
//!                                         #   their last change (default: keep them)
//!
//! [flux.workers]
//! bootstrap_token = "..."                 # FLUX_WORKERS__BOOTSTRAP_TOKEN: workers register with it
//! server_url = "http://localhost:8000"    # FLUX_WORKERS__SERVER_URL: what workers and the CLI call
//! lease_timeout = "30s"                   # FLUX_WORKERS__LEASE_TIMEOUT: a silent worker loses its claims
//! heartbeat_interval = "5s"               # FLUX_WORKERS__HEARTBEAT_INTERVAL
//!
//! [flux.mcp]                              # `flux start mcp`: an MCP server over a flux server
//! name = "Flux"                           # FLUX_MCP__NAME: the name it gives assistants
//! host = "localhost"                      # FLUX_MCP__HOST: where it listens (streamable-http)
//! port = 8080                             # FLUX_MCP__PORT
//! server_url = "http://localhost:8000"    # FLUX_MCP__SERVER_URL: the flux server it talks to
//! transport = "streamable-http"           # FLUX_MCP__TRANSPORT: "stdio" or "streamable-http"
//!
//! [flux.security]
//! encryption_key = "..."                  # FLUX_SECURITY__ENCRYPTION_KEY (secrets at rest)
//! admin_token = "..."                     # FLUX_SECURITY__ADMIN_TOKEN: guards /admin endpoints
//!
//! [flux.queues.emails]                    # a queue's limits (see `QueueSettings`)
//! concurrency = 5                         # FLUX_QUEUES__EMAILS__CONCURRENCY
//! rate = 100                              # FLUX_QUEUES__EMAILS__RATE: starts per `per`
//! per = "1s"                              # FLUX_QUEUES__EMAILS__PER (default one second)
//! ```
//!
//! `retention` deletes `COMPLETED`, `FAILED` and `CANCELLED` executions with their logs once
//! their last change is older than it, in small batches, from a background thread of the
//! engine (see [`EngineBuilder::retention`](crate::EngineBuilder::retention)); unfinished
//! executions, and sub-workflows whose parent has not finished, are never deleted.
//!
//! Environment variables win over the file. Nested keys use `__` (`FLUX_SECURITY__ENCRYPTION_KEY`).
//! The file is `flux.toml` in the working directory, or the one `FLUX_CONFIG` names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::store::Durability;

mod ai;
mod mcp;
mod queues;

#[cfg_attr(not(feature = "ai"), allow(unused_imports))]
pub use self::ai::{AiConfig, ProviderKind, ProviderSettings};
pub use self::mcp::{McpConfig, McpTransport};
pub use self::queues::QueueSettings;
#[cfg(feature = "server")]
pub(crate) use self::queues::check_queue_name;

const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Below this, ordinary requests (a bearer token, a few headers) would not fit.
const MIN_HEADER_BYTES: usize = 1024;
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the default engine keeps its data.
///
/// Start from [`Config::default`] (or [`Config::load`]) and set fields: new settings are added
/// without breaking such code.
///
/// ```
/// let mut config = flux::Config::default();
/// config.database_url = "sqlite::memory:".to_string();
/// let engine = flux::Engine::from_config(&config)?;
/// # let _ = engine; Ok::<(), flux::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The flux home directory (default `.flux`).
    pub home: PathBuf,
    /// Where executions are stored (default `sqlite://<home>/flux.db`).
    pub database_url: String,
    /// How hard commits try to reach the disk.
    pub durability: Durability,
    /// The key secrets are encrypted with (`[flux.security] encryption_key`,
    /// `FLUX_SECURITY__ENCRYPTION_KEY`); without one, a key file in `home` is used.
    pub encryption_key: Option<String>,
    /// The host `flux start server` listens on (default `localhost`).
    pub server_host: String,
    /// The port `flux start server` listens on (default 8000).
    pub server_port: u16,
    /// The largest request body the server reads, in bytes (default 2 MiB): a larger one gets
    /// 413, before it is read when its `Content-Length` says so.
    pub max_body_bytes: usize,
    /// The largest request line and headers the server reads, in bytes (default 64 KiB, at
    /// least 1 KiB): larger ones get 431.
    pub max_header_bytes: usize,
    /// How many HTTP connections the server keeps open at once (default 1,024); one more is
    /// answered 503 and closed.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, and then its body (default 30 s).
    /// Slower headers (or an idle keep-alive connection) are closed; a slower body gets 408.
    pub request_timeout: Duration,
    /// How long finished executions are kept after their last change (`[flux] retention`,
    /// `FLUX_RETENTION`, a duration such as `"30d"`); `None` (the default) keeps them.
    pub retention: Option<Duration>,
    /// The token that guards the `/admin` endpoints (`[flux.security] admin_token`); without
    /// one, a server generates a token and prints it once.
    pub admin_token: Option<String>,
    /// Server mode: workers and the connection to the server.
    pub workers: WorkersConfig,
    /// `[flux.mcp]`: the MCP server of `flux start mcp`.
    pub mcp: McpConfig,
    /// `[flux.ai]`: the model providers of AI agents.
    pub ai: AiConfig,
    /// `[flux.queues.<name>]`: the limits of named queues, by name: an engine made from this
    /// configuration (and a server) gives its [`Engine::queue`](crate::Engine::queue) of that
    /// name these limits.
    pub queues: BTreeMap<String, QueueSettings>,
}

/// `[flux.workers]`: how workers find the server and how long their claims last.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkersConfig {
    /// The token a worker presents to register; without one, a server generates a token and
    /// prints it once.
    pub bootstrap_token: Option<String>,
    /// The server that workers and the `flux` CLI talk to (default `http://localhost:8000`).
    pub server_url: String,
    /// How long a worker keeps a claim without being heard from (default 30 s). A worker with
    /// no claim and no event stream that is not heard from for two leases is forgotten: its
    /// session token is refused and it registers again.
    pub lease_timeout: Duration,
    /// How often a worker renews its claims when it has nothing else to send (default 5 s).
    pub heartbeat_interval: Duration,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            bootstrap_token: None,
            server_url: "http://localhost:8000".to_string(),
            lease_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for WorkersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkersConfig")
            .field("bootstrap_token", &self.bootstrap_token.as_ref().map(|_| "<redacted>"))
            .field("server_url", &self.server_url)
            .field("lease_timeout", &self.lease_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            home: PathBuf::from(".flux"),
            database_url: "sqlite://.flux/flux.db".to_string(),
            durability: Durability::Default,
            encryption_key: None,
            server_host: "localhost".to_string(),
            server_port: 8000,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retention: None,
            admin_token: None,
            workers: WorkersConfig::default(),
            mcp: McpConfig::default(),
            ai: AiConfig::default(),
            queues: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("home", &self.home)
            .field("database_url", &self.database_url)
            .field("durability", &self.durability)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .field("server_host", &self.server_host)
            .field("server_port", &self.server_port)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_connections", &self.max_connections)
            .field("request_timeout", &self.request_timeout)
            .field("retention", &self.retention)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("workers", &self.workers)
            .field("mcp", &self.mcp)
            .field("ai", &self.ai)
            .field("queues", &self.queues)
            .finish()
    }
}

/// Where a database URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// Nothing persisted (`sqlite::memory:`).
    Memory,
    /// A PostgreSQL database (`postgres://…` or `postgresql://…`), the URL as given.
    Postgres(String),
}

/// The environment variables [`Config::load`] reads.
const ENV_KEYS: [&str; 21] = [
    "FLUX_HOME",
    "FLUX_DATABASE_URL",
    "FLUX_DURABILITY",
    "FLUX_SERVER_HOST",
    "FLUX_SERVER_PORT",
    "FLUX_MAX_BODY_BYTES",
    "FLUX_MAX_HEADER_BYTES",
    "FLUX_MAX_CONNECTIONS",
    "FLUX_REQUEST_TIMEOUT",
    "FLUX_RETENTION",
    "FLUX_SECURITY__ENCRYPTION_KEY",
    "FLUX_SECURITY__ADMIN_TOKEN",
    "FLUX_WORKERS__BOOTSTRAP_TOKEN",
    "FLUX_WORKERS__SERVER_URL",
    "FLUX_WORKERS__LEASE_TIMEOUT",
    "FLUX_WORKERS__HEARTBEAT_INTERVAL",
    "FLUX_MCP__NAME",
    "FLUX_MCP__HOST",
    "FLUX_MCP__PORT",
    "FLUX_MCP__SERVER_URL",
    "FLUX_MCP__TRANSPORT",
];

#[derive(Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    flux: FileSection,
}

#[derive(Default, Deserialize)]
struct FileSection {
    home: Option<PathBuf>,
    database_url: Option<String>,
    durability: Option<String>,
    server_host: Option<String>,
    server_port: Option<u16>,
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_connections: Option<usize>,
    request_timeout: Option<DurationValue>,
    retention: Option<DurationValue>,
    #[serde(default)]
    security: SecuritySection,
    #[serde(default)]
    workers: WorkersSection,
    #[serde(default)]
    mcp: McpSection,
    #[serde(default)]
    ai: ai::AiSection,
    #[serde(default)]
    queues: BTreeMap<String, queues::QueueSection>,
}

#[derive(Default, Deserialize)]
struct McpSection {
    name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    server_url: Option<String>,
    transport: Option<String>,
}

#[derive(Default, Deserialize)]
struct SecuritySection {
    encryption_key: Option<String>,
    admin_token: Option<String>,
}

#[derive(Default, Deserialize)]
struct WorkersSection {
    bootstrap_token: Option<String>,
    server_url: Option<String>,
    lease_timeout: Option<DurationValue>,
    heartbeat_interval: Option<DurationValue>,
}

/// A duration written as text (`"30s"`, `"1.5s"`, `"1h 30m"`, in the syntax of
/// `crate::duration`) or as a number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    fn parse(self, key: &str) -> Result<Duration> {
        match self {
            DurationValue::Seconds(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
            DurationValue::Seconds(s) => {
                Err(Error::new(ErrorKind::Config, format!("{key} must be a positive number of seconds, not {s}")))
            }
            DurationValue::Text(t) => match crate::duration::parse(&t) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(Error::new(ErrorKind::Config, format!("{key} must be longer than zero"))),
                // The key and the text say what is wrong; the parser's message would repeat the text.
                Err(_) => {
                    Err(Error::new(ErrorKind::Config, format!("invalid {key} `{t}`: {}", crate::duration::EXPECTED)))
                }
            },
        }
    }
}

fn parse_env<T: std::str::FromStr>(key: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e| Error::new(ErrorKind::Config, format!("invalid {key} `{value}`: {e}")))
}

impl Config {
    /// Reads `flux.toml` (or the file `FLUX_CONFIG` names) and the process environment.
    pub fn load() -> Result<Config> {
        let explicit = std::env::var_os("FLUX_CONFIG").map(PathBuf::from);
        let path = explicit.clone().unwrap_or_else(|| PathBuf::from("flux.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => None,
            Err(e) => {
                return Err(Error::new(ErrorKind::Config, format!("cannot read `{}`: {e}", path.display())));
            }
        };
        // Only flux's own variables are read, so that unrelated non-UTF-8 variables are harmless:
        // the fixed keys, and those of the named sections (`FLUX_AI__PROVIDERS__<NAME>__..`,
        // `FLUX_QUEUES__<NAME>__..`).
        let ours =
            |key: &str| ENV_KEYS.contains(&key) || key.starts_with("FLUX_AI__") || key.starts_with("FLUX_QUEUES__");
        let mut env = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str().filter(|key| ours(key)) else { continue };
            let value = value.into_string().map_err(|raw| {
                Error::new(ErrorKind::Config, format!("{key} is not valid UTF-8: {}", raw.to_string_lossy()))
            })?;
            env.push((key.to_string(), value));
        }
        Config::from_sources(text.as_deref().map(|t| (path.as_path(), t)), env)
    }

    /// Builds a configuration from a file's text (with its path, for messages) and environment
    /// variables; variables win.
    ///
    /// ```
    /// use std::path::Path;
    /// let file = "[flux]\nhome = \"data\"\n";
    /// let env = [("FLUX_DURABILITY".to_string(), "full".to_string())];
    /// let config = flux::Config::from_sources(Some((Path::new("flux.toml"), file)), env)?;
    /// assert_eq!(config.database_url, "sqlite://data/flux.db");
    /// assert_eq!(config.durability, flux::Durability::Full);
    /// # Ok::<(), flux::Error>(())
    /// ```
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut section = match file {
            Some((path, text)) => {
                toml::from_str::<FileConfig>(text)
                    .map_err(|e| Error::new(ErrorKind::Config, format!("invalid `{}`: {e}", path.display())))?
                    .flux
            }
            None => FileSection::default(),
        };
        for (key, value) in env {
            match key.as_str() {
                "FLUX_HOME" => section.home = Some(PathBuf::from(value)),
                "FLUX_DATABASE_URL" => section.database_url = Some(value),
                "FLUX_DURABILITY" => section.durability = Some(value),
                "FLUX_SERVER_HOST" => section.server_host = Some(value),
                "FLUX_SERVER_PORT" => section.server_port = Some(parse_env(&key, &value)?),
                "FLUX_MAX_BODY_BYTES" => section.max_body_bytes = Some(parse_env(&key, &value)?),
                "FLUX_MAX_HEADER_BYTES" => section.max_header_bytes = Some(parse_env(&key, &value)?),
                "FLUX_MAX_CONNECTIONS" => section.max_connections = Some(parse_env(&key, &value)?),
                "FLUX_REQUEST_TIMEOUT" => section.request_timeout = Some(DurationValue::Text(value)),
                "FLUX_RETENTION" => section.retention = Some(DurationValue::Text(value)),
                "FLUX_SECURITY__ENCRYPTION_KEY" => section.security.encryption_key = Some(value),
                "FLUX_SECURITY__ADMIN_TOKEN" => section.security.admin_token = Some(value),
                "FLUX_WORKERS__BOOTSTRAP_TOKEN" => section.workers.bootstrap_token = Some(value),
                "FLUX_WORKERS__SERVER_URL" => section.workers.server_url = Some(value),
                "FLUX_WORKERS__LEASE_TIMEOUT" => section.workers.lease_timeout = Some(DurationValue::Text(value)),
                "FLUX_WORKERS__HEARTBEAT_INTERVAL" => {
                    section.workers.heartbeat_interval = Some(DurationValue::Text(value))
                }
                "FLUX_MCP__NAME" => section.mcp.name = Some(value),
                "FLUX_MCP__HOST" => section.mcp.host = Some(value),
                "FLUX_MCP__PORT" => section.mcp.port = Some(parse_env(&key, &value)?),
                "FLUX_MCP__SERVER_URL" => section.mcp.server_url = Some(value),
                "FLUX_MCP__TRANSPORT" => section.mcp.transport = Some(value),
                _ if key.starts_with("FLUX_AI__") => {
                    section.ai.set_env(&key, value);
                }
                _ if key.starts_with("FLUX_QUEUES__") => {
                    queues::set_env(&mut section.queues, &key, value)?;
                }
                _ => {}
            }
        }
        let home = section.home.unwrap_or_else(|| PathBuf::from(".flux"));
        if home.as_os_str().is_empty() {
            return Err(Error::new(ErrorKind::Config, "FLUX_HOME (flux.home) is empty"));
        }
        let database_url =
            section.database_url.unwrap_or_else(|| format!("sqlite://{}", home.join("flux.db").display()));
        let durability = match section.durability {
            Some(d) => d.parse()?,
            None => Durability::Default,
        };
        let encryption_key = section.security.encryption_key.filter(|k| !k.is_empty());
        if let Some(key) = &encryption_key {
            crate::secrets::parse_configured_key(key)?;
        }
        let defaults = WorkersConfig::default();
        let workers = WorkersConfig {
            bootstrap_token: section.workers.bootstrap_token.filter(|t| !t.is_empty()),
            server_url: section.workers.server_url.unwrap_or(defaults.server_url),
            lease_timeout: match section.workers.lease_timeout {
                Some(d) => d.parse("flux.workers.lease_timeout")?,
                None => defaults.lease_timeout,
            },
            heartbeat_interval: match section.workers.heartbeat_interval {
                Some(d) => d.parse("flux.workers.heartbeat_interval")?,
                None => defaults.heartbeat_interval,
            },
        };
        let mcp_defaults = McpConfig::default();
        let mcp = McpConfig {
            name: section.mcp.name.filter(|n| !n.trim().is_empty()).unwrap_or(mcp_defaults.name),
            host: section.mcp.host.unwrap_or(mcp_defaults.host),
            port: section.mcp.port.unwrap_or(mcp_defaults.port),
            server_url: section.mcp.server_url.unwrap_or(mcp_defaults.server_url),
            transport: match section.mcp.transport {
                Some(t) => t.parse()?,
                None => mcp_defaults.transport,
            },
        };
        let max_body_bytes = section.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(Error::new(ErrorKind::Config, "flux.max_body_bytes must be more than zero"));
        }
        let max_header_bytes = section.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES);
        if max_header_bytes < MIN_HEADER_BYTES {
            return Err(Error::new(
                ErrorKind::Config,
                format!("flux.max_header_bytes must be at least {MIN_HEADER_BYTES}, not {max_header_bytes}"),
            ));
        }
        let max_connections = section.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(Error::new(ErrorKind::Config, "flux.max_connections must be more than zero"));
        }
        let request_timeout = match section.request_timeout {
            Some(d) => d.parse("flux.request_timeout")?,
            None => DEFAULT_REQUEST_TIMEOUT,
        };
        let retention = section.retention.map(|d| d.parse("flux.retention")).transpose()?;
        let config = Config {
            home,
            database_url,
            durability,
            encryption_key,
            server_host: section.server_host.unwrap_or_else(|| "localhost".to_string()),
            server_port: section.server_port.unwrap_or(8000),
            max_body_bytes,
            max_header_bytes,
            max_connections,
            request_timeout,
            retention,
            admin_token: section.security.admin_token.filter(|t| !t.is_empty()),
            workers,
            mcp,
            ai: section.ai.finish()?,
            queues: queues::finish(section.queues)?,
        };
        config.database()?;
        Ok(config)
    }

    /// Parses `database_url`: `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or
    /// `sqlite::memory:`.
    pub fn database(&self) -> Result<DatabaseLocation> {
        let url = self.database_url.trim();
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(DatabaseLocation::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(url.to_string()));
        }
        match url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(DatabaseLocation::Sqlite(PathBuf::from(path))),
            Some(_) => Err(Error::new(ErrorKind::Config, format!("database url `{url}` names no file"))),
            None => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "unsupported database url `{url}`: expected `sqlite://<path>`, `sqlite::memory:` or \
                     `postgres://user:password@host:port/database`"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.home, PathBuf::from(".flux"));
        assert_eq!(c.database().unwrap(), DatabaseLocation::Sqlite(PathBuf::from(".flux/flux.db")));
        assert_eq!(c.durability, Durability::Default);
    }

    #[test]
    fn environment_wins_over_file() {
        let file = "[flux]\nhome = \"a\"\ndatabase_url = \"sqlite://a/x.db\"\n";
        let c = Config::from_sources(
            Some((Path::new("flux.toml"), file)),
            env(&[("FLUX_DATABASE_URL", "sqlite:///tmp/y.db"), ("OTHER", "1")]),
        )
        .unwrap();
        assert_eq!(c.home, PathBuf::from("a"));
        assert_eq!(c.database().unwrap(), DatabaseLocation::Sqlite(PathBuf::from("/tmp/y.db")));
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_sources(None, env(&[("FLUX_DATABASE_URL", "mysql://db/flux")])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("mysql://db/flux") && err.to_string().contains("postgres://"), "{err}");
        let c = Config::from_sources(None, env(&[("FLUX_DATABASE_URL", "postgres://db/flux")])).unwrap();
        assert_eq!(c.database().unwrap(), DatabaseLocation::Postgres("postgres://db/flux".into()));
        let err = Config::from_sources(None, env(&[("FLUX_DURABILITY", "sometimes")])).unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = Config::from_sources(Some((Path::new("cfg/flux.toml"), "[flux]\nhome = 3\n")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("cfg/flux.toml"), "{err}");
        let err = Config::from_sources(None, env(&[("FLUX_SERVER_PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().contains("FLUX_SERVER_PORT") && err.to_string().contains("eighty"), "{err}");
        let err = Config::from_sources(None, env(&[("FLUX_WORKERS__LEASE_TIMEOUT", "soon")])).unwrap_err();
        assert!(err.to_string().contains("lease_timeout") && err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn server_sections_nest_and_the_environment_wins() {
        let file = "[flux]\nserver_port = 9000\n[flux.workers]\nbootstrap_token = \"from-file\"\nlease_timeout = 12\n\
                    [flux.security]\nadmin_token = \"admin-file\"\n";
        let c = Config::from_sources(
            Some((Path::new("flux.toml"), file)),
            env(&[("FLUX_WORKERS__BOOTSTRAP_TOKEN", "from-env"), ("FLUX_WORKERS__HEARTBEAT_INTERVAL", "250ms")]),
        )
        .unwrap();
        assert_eq!(c.server_port, 9000);
        assert_eq!(c.workers.bootstrap_token.as_deref(), Some("from-env"));
        assert_eq!(c.workers.lease_timeout, Duration::from_secs(12));
        assert_eq!(c.workers.heartbeat_interval, Duration::from_millis(250));
        assert_eq!(c.admin_token.as_deref(), Some("admin-file"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("from-env") && !shown.contains("admin-file"), "{shown}");
    }

    #[test]
    fn durations_have_the_syntax_of_task_options() {
        let file = "[flux]\nrequest_timeout = \"1.5s\"\n[flux.workers]\nlease_timeout = \"1h 30m\"\n";
        let c = Config::from_sources(
            Some((Path::new("flux.toml"), file)),
            env(&[("FLUX_WORKERS__HEARTBEAT_INTERVAL", "1.5s")]),
        )
        .unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.workers.lease_timeout, Duration::from_secs(5400));
        assert_eq!(c.workers.heartbeat_interval, Duration::from_millis(1500));
        // A number of seconds written as text.
        let c = Config::from_sources(None, env(&[("FLUX_REQUEST_TIMEOUT", "2.5")])).unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(2500));

        let expected = "expected a number of seconds or a duration such as \"30s\", \"1.5s\", \"2m\" or \"1h 30m\"";
        let err = Config::from_sources(None, env(&[("FLUX_REQUEST_TIMEOUT", "1.5 fortnights")])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.to_string().contains(&format!("invalid flux.request_timeout `1.5 fortnights`: {expected}")),
            "{err}"
        );
        let file = "[flux.workers]\nheartbeat_interval = \"1,5s\"\n";
        let err = Config::from_sources(Some((Path::new("flux.toml"), file)), env(&[])).unwrap_err();
        assert!(
            err.to_string().contains(&format!("invalid flux.workers.heartbeat_interval `1,5s`: {expected}")),
            "{err}"
        );
        let err = Config::from_sources(None, env(&[("FLUX_WORKERS__LEASE_TIMEOUT", "0.0s")])).unwrap_err();
        assert!(err.to_string().contains("flux.workers.lease_timeout must be longer than zero"), "{err}");
    }

    #[test]
    fn retention_is_a_duration_from_the_file_or_the_environment() {
        assert_eq!(Config::from_sources(None, env(&[])).unwrap().retention, None, "kept by default");
        let file = "[flux]\nretention = \"30d\"\n";
        let c = Config::from_sources(Some((Path::new("flux.toml"), file)), env(&[])).unwrap();
        assert_eq!(c.retention, Some(Duration::from_secs(30 * 24 * 3600)));
        let c = Config::from_sources(Some((Path::new("flux.toml"), file)), env(&[("FLUX_RETENTION", "12h")])).unwrap();
        assert_eq!(c.retention, Some(Duration::from_secs(12 * 3600)), "the environment wins");
        for (value, named) in [("0s", "flux.retention must be longer than zero"), ("forever", "invalid flux.retention")]
        {
            let err = Config::from_sources(None, env(&[("FLUX_RETENTION", value)])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().contains(named), "{value}: {err}");
        }
    }

    #[test]
    fn http_limits_are_read_and_checked() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!((c.max_header_bytes, c.max_connections, c.request_timeout), (65536, 1024, Duration::from_secs(30)));
        let file = "[flux]\nmax_header_bytes = 8192\nmax_connections = 10\nrequest_timeout = 2.5\n";
        let c =
            Config::from_sources(Some((Path::new("flux.toml"), file)), env(&[("FLUX_MAX_CONNECTIONS", "3")])).unwrap();
        assert_eq!((c.max_header_bytes, c.max_connections, c.request_timeout), (8192, 3, Duration::from_millis(2500)));
        let c = Config::from_sources(None, env(&[("FLUX_REQUEST_TIMEOUT", "150ms")])).unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(150));
        for (key, value, named) in [
            ("FLUX_MAX_HEADER_BYTES", "512", "at least 1024, not 512"),
            ("FLUX_MAX_CONNECTIONS", "0", "max_connections must be more than zero"),
            ("FLUX_REQUEST_TIMEOUT", "0s", "request_timeout must be longer than zero"),
            ("FLUX_REQUEST_TIMEOUT", "later", "invalid flux.request_timeout `later`"),
            ("FLUX_MAX_CONNECTIONS", "-1", "invalid FLUX_MAX_CONNECTIONS `-1`"),
        ] {
            let err = Config::from_sources(None, env(&[(key, value)])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn mcp_section_reads_from_file_and_env() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.mcp, McpConfig::default());
        assert_eq!((c.mcp.port, c.mcp.transport), (8080, McpTransport::StreamableHttp));
        let file = "[flux.mcp]\nname = \"Ops\"\nport = 9100\ntransport = \"stdio\"\n";
        let c = Config::from_sources(
            Some((Path::new("flux.toml"), file)),
            env(&[("FLUX_MCP__PORT", "9200"), ("FLUX_MCP__SERVER_URL", "http://flux:8000")]),
        )
        .unwrap();
        assert_eq!((c.mcp.name.as_str(), c.mcp.port, c.mcp.transport), ("Ops", 9200, McpTransport::Stdio));
        assert_eq!(c.mcp.server_url, "http://flux:8000");
        let err = Config::from_sources(None, env(&[("FLUX_MCP__TRANSPORT", "carrier-pigeon")])).unwrap_err();
        assert!(err.to_string().contains("unknown MCP transport `carrier-pigeon`"), "{err}");
    }
}
