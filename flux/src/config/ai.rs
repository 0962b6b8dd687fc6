//! `[flux.ai]`: the model providers of AI agents (feature `ai`), read with the rest of
//! [`Config`](super::Config).
//!
//! ```toml
//! [flux.ai.providers.openai]          # a provider flux knows, at another URL
//! base_url = "http://127.0.0.1:8080/v1/"
//!
//! [flux.ai.providers.together]        # any other name: an OpenAI-compatible provider
//! base_url = "https://api.together.xyz/v1/"
//! api_key_env = "TOGETHER_API_KEY"    # or api_key_secret = "together_key" (a flux secret)
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// `[flux.ai]`: settings of AI agents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AiConfig {
    /// `[flux.ai.providers.<name>]`, by name.
    pub providers: BTreeMap<String, ProviderSettings>,
}

/// The kinds of provider flux speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI's chat completions API, and any provider compatible with it.
    OpenAi,
    /// Anthropic's messages API.
    Anthropic,
    /// Google's Gemini API.
    Gemini,
    /// Ollama's chat API.
    Ollama,
}

impl ProviderKind {
    /// The kind of a provider flux knows by `name` (`openai`, `anthropic`, `google` or
    /// `gemini`, `ollama`).
    pub fn of_builtin(name: &str) -> Option<ProviderKind> {
        match name {
            "openai" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            "google" | "gemini" => Some(ProviderKind::Gemini),
            "ollama" => Some(ProviderKind::Ollama),
            _ => None,
        }
    }

    /// The environment variable its key is read from unless configured otherwise.
    pub fn default_key_env(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::Gemini => Some("GEMINI_API_KEY"),
            ProviderKind::Ollama => None,
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = Error;

    /// `openai` (or `openai-compatible`), `anthropic`, `google` (or `gemini`), `ollama`.
    fn from_str(s: &str) -> Result<ProviderKind> {
        if s == "openai-compatible" {
            return Ok(ProviderKind::OpenAi);
        }
        ProviderKind::of_builtin(s).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("unknown provider kind `{s}`: expected openai, openai-compatible, anthropic, google or ollama"),
            )
        })
    }
}

/// The settings of one provider: `[flux.ai.providers.<name>]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderSettings {
    /// How to speak to it: for the names flux knows (`openai`, `anthropic`, `google`,
    /// `ollama`) their own API, for any other name OpenAI's unless set.
    pub kind: Option<ProviderKind>,
    /// Its base URL (`http://localhost:8080/v1/`), when not the provider's usual one.
    pub base_url: Option<String>,
    /// The environment variable holding its key. Without it (or `api_key_secret`) the providers
    /// flux knows read their usual variable (`OPENAI_API_KEY`, ...), and a provider of any other
    /// name is called without a key: it never gets another provider's.
    pub api_key_env: Option<String>,
    /// The flux secret holding its key (read from the engine's vault).
    pub api_key_secret: Option<String>,
}

impl ProviderSettings {
    /// No settings: the provider's usual URL and key.
    pub fn new() -> ProviderSettings {
        ProviderSettings::default()
    }

    /// Speaks to it as `kind`.
    pub fn kind(mut self, kind: ProviderKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Its base URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Reads its key from the environment variable `var`.
    pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
        self.api_key_env = Some(var.into());
        self
    }

    /// Reads its key from the flux secret `name`.
    pub fn api_key_secret(mut self, name: impl Into<String>) -> Self {
        self.api_key_secret = Some(name.into());
        self
    }
}

/// `[flux.ai.providers.<name>]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderSection {
    kind: Option<String>,
    base_url: Option<String>,
    api_key_env: Option<String>,
    api_key_secret: Option<String>,
}

/// `[flux.ai]` as written.
#[derive(Default, Deserialize)]
pub(super) struct AiSection {
    #[serde(default)]
    pub(super) providers: BTreeMap<String, ProviderSection>,
}

impl AiSection {
    /// Takes `FLUX_AI__PROVIDERS__<NAME>__<FIELD>` (the name in lower case); `false` for a key
    /// that is not one.
    pub(super) fn set_env(&mut self, key: &str, value: String) -> bool {
        let Some(rest) = key.strip_prefix("FLUX_AI__PROVIDERS__") else { return false };
        let Some((name, field)) = rest.rsplit_once("__") else { return false };
        let entry = self.providers.entry(name.to_ascii_lowercase()).or_default();
        match field {
            "KIND" => entry.kind = Some(value),
            "BASE_URL" => entry.base_url = Some(value),
            "API_KEY_ENV" => entry.api_key_env = Some(value),
            "API_KEY_SECRET" => entry.api_key_secret = Some(value),
            _ => return false,
        }
        true
    }

    pub(super) fn finish(self) -> Result<AiConfig> {
        let mut providers = BTreeMap::new();
        for (name, section) in self.providers {
            if section.api_key_env.is_some() && section.api_key_secret.is_some() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("flux.ai.providers.{name}: set api_key_env or api_key_secret, not both"),
                ));
            }
            let kind = match section.kind {
                Some(kind) => Some(kind.parse::<ProviderKind>().map_err(|e| {
                    Error::new(ErrorKind::Config, format!("flux.ai.providers.{name}.kind: {}", e.message()))
                })?),
                None => None,
            };
            if kind.is_none() && ProviderKind::of_builtin(&name).is_none() && section.base_url.is_none() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("flux.ai.providers.{name}: a provider flux does not know needs a base_url"),
                ));
            }
            let settings = ProviderSettings {
                kind,
                base_url: section.base_url.filter(|u| !u.is_empty()),
                api_key_env: section.api_key_env.filter(|v| !v.is_empty()),
                api_key_secret: section.api_key_secret.filter(|v| !v.is_empty()),
            };
            providers.insert(name, settings);
        }
        Ok(AiConfig { providers })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn ai_providers_read_from_file_and_env() {
        let file = "[flux.ai.providers.together]\nbase_url = \"https://api.together.xyz/v1/\"\napi_key_env = \"TOGETHER_API_KEY\"\n\n[flux.ai.providers.openai]\nbase_url = \"http://127.0.0.1:9/v1/\"\n";
        let c = crate::config::Config::from_sources(
            Some((Path::new("flux.toml"), file)),
            env(&[
                ("FLUX_AI__PROVIDERS__LOCAL__BASE_URL", "http://127.0.0.1:1234/v1/"),
                ("FLUX_AI__PROVIDERS__LOCAL__API_KEY_SECRET", "local"),
            ]),
        )
        .unwrap();
        let together = &c.ai.providers["together"];
        assert_eq!(together.base_url.as_deref(), Some("https://api.together.xyz/v1/"));
        assert_eq!(together.api_key_env.as_deref(), Some("TOGETHER_API_KEY"));
        assert_eq!(c.ai.providers["local"].api_key_secret.as_deref(), Some("local"));
        assert_eq!(c.ai.providers["openai"].kind, None);
        let both = "[flux.ai.providers.x]\nbase_url = \"http://x/\"\napi_key_env = \"A\"\napi_key_secret = \"B\"\n";
        let err = crate::config::Config::from_sources(Some((Path::new("flux.toml"), both)), env(&[])).unwrap_err();
        assert!(err.to_string().contains("set api_key_env or api_key_secret, not both"), "{err}");
        let nowhere = "[flux.ai.providers.mystery]\napi_key_env = \"A\"\n";
        let err = crate::config::Config::from_sources(Some((Path::new("flux.toml"), nowhere)), env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("flux.ai.providers.mystery: a provider flux does not know needs a base_url"),
            "{err}"
        );
        let typo = "[flux.ai.providers.openai]\nbase_ur = \"http://x/\"\n";
        let err = crate::config::Config::from_sources(Some((Path::new("flux.toml"), typo)), env(&[])).unwrap_err();
        assert!(err.to_string().contains("base_ur"), "{err}");
        let kind = crate::config::Config::from_sources(
            None,
            env(&[("FLUX_AI__PROVIDERS__X__KIND", "fax"), ("FLUX_AI__PROVIDERS__X__BASE_URL", "http://x/")]),
        );
        assert!(kind.unwrap_err().to_string().contains("unknown provider kind `fax`"));
    }
}
