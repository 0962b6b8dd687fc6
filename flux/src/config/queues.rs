//! `[flux.queues.<name>]`: the limits of an engine's (and a server's) named queues, read with
//! the rest of [`Config`](super::Config).
//!
//! ```toml
//! [flux.queues.emails]
//! concurrency = 5     # FLUX_QUEUES__EMAILS__CONCURRENCY: at most 5 of its executions at once
//! rate = 100          # FLUX_QUEUES__EMAILS__RATE: at most 100 starts ...
//! per = "1s"          # FLUX_QUEUES__EMAILS__PER: ... per this long (default one second)
//! ```
//!
//! A name given in an environment variable is taken in lower case.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::DurationValue;
use crate::error::{Error, ErrorKind, Result};

/// The longest queue name.
pub(crate) const QUEUE_NAME_LEN: usize = 100;

/// Checks a queue name given from outside (HTTP, the CLI): 1 to [`QUEUE_NAME_LEN`] ASCII
/// letters, digits, `_`, `-`, `.` or `:`.
pub(crate) fn check_queue_name(name: &str) -> crate::Result<()> {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if name.is_empty() || name.len() > QUEUE_NAME_LEN || !name.chars().all(fits) {
        return Err(crate::Error::new(
            crate::ErrorKind::InvalidInput,
            format!("`{name}` is not a queue name: 1 to {QUEUE_NAME_LEN} ASCII letters, digits, `_`, `-`, `.` or `:`"),
        ));
    }
    Ok(())
}

/// The limits of one queue: `[flux.queues.<name>]` (see [`crate::Queue`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueSettings {
    /// At most this many of its executions run at once.
    pub concurrency: Option<usize>,
    /// At most this many of its executions start per period (the count and the period).
    pub rate: Option<(u32, Duration)>,
}

impl QueueSettings {
    /// No limits.
    pub fn new() -> QueueSettings {
        QueueSettings::default()
    }

    /// At most `n` executions at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// At most `n` starts per `per`.
    pub fn rate(mut self, n: u32, per: Duration) -> Self {
        self.rate = Some((n, per));
        self
    }
}

/// `[flux.queues.<name>]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueSection {
    concurrency: Option<usize>,
    rate: Option<u32>,
    per: Option<DurationValue>,
}

/// Takes `FLUX_QUEUES__<NAME>__<FIELD>` (the name in lower case); `false` for a key that is
/// not one.
pub(super) fn set_env(queues: &mut BTreeMap<String, QueueSection>, key: &str, value: String) -> Result<bool> {
    let Some(rest) = key.strip_prefix("FLUX_QUEUES__") else { return Ok(false) };
    let Some((name, field)) = rest.rsplit_once("__") else { return Ok(false) };
    let entry = queues.entry(name.to_ascii_lowercase()).or_default();
    match field {
        "CONCURRENCY" => entry.concurrency = Some(super::parse_env(key, &value)?),
        "RATE" => entry.rate = Some(super::parse_env(key, &value)?),
        "PER" => entry.per = Some(DurationValue::Text(value)),
        _ => return Ok(false),
    }
    Ok(true)
}

/// Checks each queue's settings.
pub(super) fn finish(queues: BTreeMap<String, QueueSection>) -> Result<BTreeMap<String, QueueSettings>> {
    let mut settings = BTreeMap::new();
    for (name, section) in queues {
        check_queue_name(&name)
            .map_err(|e| Error::new(ErrorKind::Config, format!("flux.queues.{name}: {}", e.message())))?;
        let zero = |what: &str| Error::new(ErrorKind::Config, format!("flux.queues.{name}.{what} must be at least 1"));
        if section.concurrency == Some(0) {
            return Err(zero("concurrency"));
        }
        let rate = match (section.rate, section.per) {
            (Some(0), _) => return Err(zero("rate")),
            (Some(n), per) => {
                let per = match per {
                    Some(per) => per.parse(&format!("flux.queues.{name}.per"))?,
                    None => Duration::from_secs(1),
                };
                if per.is_zero() {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("flux.queues.{name}.per must be longer than zero"),
                    ));
                }
                Some((n, per))
            }
            (None, Some(_)) => {
                return Err(Error::new(ErrorKind::Config, format!("flux.queues.{name}.per is set without a rate")));
            }
            (None, None) => None,
        };
        settings.insert(name, QueueSettings { concurrency: section.concurrency, rate });
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::QueueSettings;
    use crate::config::Config;

    fn load(file: &str, env: &[(&str, &str)]) -> crate::Result<Config> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_sources(Some((Path::new("flux.toml"), file)), env)
    }

    #[test]
    fn queues_are_read_from_the_file_and_the_environment() {
        let file = "[flux.queues.emails]\nconcurrency = 5\nrate = 100\nper = \"1m\"\n[flux.queues.bulk]\nrate = 10\n";
        let config =
            load(file, &[("FLUX_QUEUES__SINGLE__CONCURRENCY", "1"), ("FLUX_QUEUES__EMAILS__CONCURRENCY", "7")])
                .expect("loads");
        assert_eq!(config.queues["emails"], QueueSettings::new().concurrency(7).rate(100, Duration::from_secs(60)));
        assert_eq!(config.queues["bulk"], QueueSettings::new().rate(10, Duration::from_secs(1)));
        assert_eq!(config.queues["single"], QueueSettings::new().concurrency(1));
    }

    #[test]
    fn bad_queue_settings_are_named() {
        let cases = [
            ("[flux.queues.a]\nconcurrency = 0\n", "flux.queues.a.concurrency must be at least 1"),
            ("[flux.queues.a]\nrate = 0\n", "flux.queues.a.rate must be at least 1"),
            ("[flux.queues.a]\nper = \"1s\"\n", "flux.queues.a.per is set without a rate"),
            ("[flux.queues.a]\nrate = 3\nper = \"soon\"\n", "flux.queues.a.per"),
            ("[flux.queues.a]\nlimit = 3\n", "unknown field `limit`"),
            ("[flux.queues.\"a b\"]\nrate = 3\n", "flux.queues.a b: `a b` is not a queue name"),
        ];
        for (file, expected) in cases {
            let message = load(file, &[]).expect_err(file).to_string();
            assert!(message.contains(expected), "{file}: {message}");
        }
        let message = load("", &[("FLUX_QUEUES__A__CONCURRENCY", "many")]).expect_err("not a number").to_string();
        assert!(message.contains("FLUX_QUEUES__A__CONCURRENCY"), "{message}");
    }

    #[tokio::test]
    async fn an_engine_made_from_the_configuration_gives_its_queues_their_limits() {
        let file = "[flux]\ndatabase_url = \"sqlite::memory:\"\n[flux.queues.single]\nconcurrency = 1\n";
        let engine = crate::Engine::from_config(&load(file, &[]).expect("loads")).expect("opens");
        let shown = format!("{:?}", engine.queue("single"));
        assert!(shown.contains("concurrency: Some(1)"), "{shown}");
        let other = format!("{:?}", engine.queue("other"));
        assert!(other.contains("concurrency: None"), "{other}");
    }
}
