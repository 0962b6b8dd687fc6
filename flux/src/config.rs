//! Configuration of the default engine: `flux.toml` and `FLUX_*` environment variables.
//!
//! ```toml
//! [flux]
//! home = ".flux"                          # FLUX_HOME
//! database_url = "sqlite://.flux/flux.db" # FLUX_DATABASE_URL
//! durability = "default"                  # FLUX_DURABILITY: "default" or "full"
//!
//! [flux.security]
//! encryption_key = "..."                  # FLUX_SECURITY__ENCRYPTION_KEY (secrets at rest)
//! ```
//!
//! Environment variables win over the file. Nested keys use `__` (`FLUX_SECURITY__ENCRYPTION_KEY`).
//! The file is `flux.toml` in the working directory, or the one `FLUX_CONFIG` names.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::store::Durability;

/// Where the default engine keeps its data.
#[derive(Clone, PartialEq, Eq)]
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
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("home", &self.home)
            .field("database_url", &self.database_url)
            .field("durability", &self.durability)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Where a database URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// Nothing persisted (`sqlite::memory:`).
    Memory,
}

/// The environment variables [`Config::load`] reads.
const ENV_KEYS: [&str; 4] = ["FLUX_HOME", "FLUX_DATABASE_URL", "FLUX_DURABILITY", "FLUX_SECURITY__ENCRYPTION_KEY"];

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
    #[serde(default)]
    security: SecuritySection,
}

#[derive(Default, Deserialize)]
struct SecuritySection {
    encryption_key: Option<String>,
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
        // Only flux's own variables are read, so that unrelated non-UTF-8 variables are harmless.
        let mut env = Vec::new();
        for key in ENV_KEYS {
            if let Some(value) = std::env::var_os(key) {
                let value = value.into_string().map_err(|raw| {
                    Error::new(ErrorKind::Config, format!("{key} is not valid UTF-8: {}", raw.to_string_lossy()))
                })?;
                env.push((key.to_string(), value));
            }
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
                "FLUX_SECURITY__ENCRYPTION_KEY" => section.security.encryption_key = Some(value),
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
        let config = Config { home, database_url, durability, encryption_key };
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
        match url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(DatabaseLocation::Sqlite(PathBuf::from(path))),
            Some(_) => Err(Error::new(ErrorKind::Config, format!("database url `{url}` names no file"))),
            None => Err(Error::new(
                ErrorKind::Config,
                format!("unsupported database url `{url}`: expected `sqlite://<path>` or `sqlite::memory:`"),
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
        let err = Config::from_sources(None, env(&[("FLUX_DATABASE_URL", "postgres://db/flux")])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("postgres://db/flux"), "{err}");
        let err = Config::from_sources(None, env(&[("FLUX_DURABILITY", "sometimes")])).unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = Config::from_sources(Some((Path::new("cfg/flux.toml"), "[flux]\nhome = 3\n")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("cfg/flux.toml"), "{err}");
    }
}
