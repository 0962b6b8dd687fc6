//! Where model calls go: the [`Provider`] trait, the providers flux knows, and the settings
//! (`[flux.ai.providers.<name>]`, or [`Providers`] as engine state) that say where each one
//! listens and where its key comes from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::stream::BoxStream;

use super::message::{ModelRequest, ModelResponse};
pub use crate::config::{ProviderKind, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};

/// What a streamed model call yields: tokens as they come, then the whole response.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ProviderEvent {
    /// A piece of the answer's text.
    Token(String),
    /// The whole response; the last event.
    Done(ModelResponse),
}

/// The events of one model call.
pub type ProviderStream = BoxStream<'static, Result<ProviderEvent>>;

/// Talks to models: one call in, its events out. flux's own is built on the `genai` crate
/// ([`GenaiProvider`](super::GenaiProvider)); give an agent another with
/// [`Agent::provider`](super::Agent::provider) (a gateway of your own, a fake in tests).
///
/// The agent records every call as a task, so a provider only has to make the call: it is asked
/// again only when the call has no recorded answer. Its errors decide retries: a retryable error
/// (with [`Error::with_retry_after`] when the provider said how long to wait) is tried again as
/// the agent's model options say; a terminal one fails the agent.
pub trait Provider: Send + Sync + 'static {
    /// Makes the call `request` at `endpoint`. When `request.stream` is set, tokens should come
    /// as [`ProviderEvent::Token`]s before the final [`ProviderEvent::Done`].
    fn chat(&self, endpoint: Endpoint, request: ModelRequest) -> ProviderStream;
}

/// An API key. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// A key.
    pub fn new(key: impl Into<Arc<str>>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where one call goes: the provider, the model, the base URL and the key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Endpoint {
    /// The provider's name, as in the model string (`openai`, or a configured name).
    pub provider: String,
    /// How to speak to it.
    pub kind: ProviderKind,
    /// The model's name at the provider (`gpt-4o`).
    pub model: String,
    /// Its base URL, when not the provider's usual one.
    pub base_url: Option<String>,
    /// The key, for providers that take one.
    pub api_key: Option<ApiKey>,
}

/// The providers agents may use, by name: install as engine state
/// (`engine.with_state(Providers::new()...)`) to override `[flux.ai.providers]` of the
/// configuration, which is read otherwise.
///
/// ```
/// use flux::ai::{Providers, ProviderSettings};
/// let providers = Providers::new()
///     .provider("openai", ProviderSettings::new().base_url("http://127.0.0.1:8080/v1/"))
///     .provider("local", ProviderSettings::new().base_url("http://127.0.0.1:1234/v1/"))
///     .provider("hosted", ProviderSettings::new().base_url("https://llm.example/v1/").api_key_env("HOSTED_KEY"));
/// // Another name speaks OpenAI's API, with no key unless one is configured.
/// let endpoint = providers.endpoint("local/qwen", None)?;
/// assert_eq!((endpoint.model.as_str(), endpoint.kind), ("qwen", flux::ai::ProviderKind::OpenAi));
/// assert!(endpoint.api_key.is_none());
/// // A configured key that is not there is an error naming where it was looked for.
/// # if std::env::var_os("HOSTED_KEY").is_none() {
/// let missing = providers.endpoint("hosted/big", None).unwrap_err();
/// assert!(missing.message().contains("HOSTED_KEY"));
/// # }
/// assert!(providers.endpoint("gpt-4o", None).is_err());
/// # Ok::<(), flux::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Providers {
    settings: BTreeMap<String, ProviderSettings>,
}

impl Providers {
    /// The providers flux knows, with their usual URLs and keys.
    pub fn new() -> Providers {
        Providers::default()
    }

    /// Sets the settings of the provider `name`.
    pub fn provider(mut self, name: impl Into<String>, settings: ProviderSettings) -> Self {
        self.settings.insert(name.into(), settings);
        self
    }

    /// The providers of the configuration (`[flux.ai.providers]` of `flux.toml` and
    /// `FLUX_AI__PROVIDERS__<NAME>__<FIELD>`), read once per process.
    pub fn from_config() -> Result<Providers> {
        static LOADED: OnceLock<Result<Providers>> = OnceLock::new();
        LOADED
            .get_or_init(|| {
                let config = crate::config::Config::load()?;
                Ok(Providers::from_settings(config.ai.providers.clone()))
            })
            .clone()
    }

    pub(crate) fn from_settings(settings: BTreeMap<String, ProviderSettings>) -> Providers {
        Providers { settings }
    }

    /// Where calls of `model` (`provider/name`) go, with the key read from the environment or,
    /// given an engine, its secrets. A model naming no provider, an unknown provider and a
    /// missing key are terminal errors that say so.
    pub fn endpoint(&self, model: &str, engine: Option<&crate::Engine>) -> Result<Endpoint> {
        let Some((provider, name)) = model.split_once('/').filter(|(p, n)| !p.is_empty() && !n.is_empty()) else {
            return Err(Error::new(
                ErrorKind::Config,
                format!("model `{model}` names no provider: write it as `provider/model`, like `openai/gpt-4o`"),
            )
            .into_terminal());
        };
        let settings = self.settings.get(provider);
        let kind = settings.and_then(|s| s.kind).or_else(|| ProviderKind::of_builtin(provider));
        let kind = match (kind, settings) {
            (Some(kind), _) => kind,
            (None, Some(_)) => ProviderKind::OpenAi,
            (None, None) => {
                let known = ["openai", "anthropic", "google", "ollama"]
                    .into_iter()
                    .map(String::from)
                    .chain(self.settings.keys().cloned())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "model `{model}`: no provider `{provider}` (known: {known}); declare it in `[flux.ai.providers.{provider}]`"
                    ),
                )
                .into_terminal());
            }
        };
        let api_key = self.api_key(provider, kind, settings, engine)?;
        Ok(Endpoint {
            provider: provider.to_string(),
            kind,
            model: name.to_string(),
            base_url: settings.and_then(|s| s.base_url.clone()),
            api_key,
        })
    }

    fn api_key(
        &self,
        provider: &str,
        kind: ProviderKind,
        settings: Option<&ProviderSettings>,
        engine: Option<&crate::Engine>,
    ) -> Result<Option<ApiKey>> {
        if let Some(secret) = settings.and_then(|s| s.api_key_secret.as_deref()) {
            let Some(engine) = engine else {
                return Err(missing(provider, &format!("the flux secret `{secret}` (read only inside a workflow)")));
            };
            return match crate::secrets::get(engine.vault(), secret)? {
                Some(key) => Ok(Some(ApiKey::new(key))),
                None => Err(missing(provider, &format!("the flux secret `{secret}`"))),
            };
        }
        // A provider of another name gets only the key configured for it: never, say,
        // `OPENAI_API_KEY` sent to a third party's OpenAI-compatible server. Without one it is
        // called with no key (a local server).
        let usual = ProviderKind::of_builtin(provider).and_then(|_| kind.default_key_env());
        let Some(var) = settings.and_then(|s| s.api_key_env.as_deref()).or(usual) else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(key) if !key.is_empty() => Ok(Some(ApiKey::new(key))),
            _ => Err(missing(provider, &format!("the environment variable `{var}`"))),
        }
    }
}

fn missing(provider: &str, source: &str) -> Error {
    Error::new(
        ErrorKind::MissingSecret,
        format!("the API key of provider `{provider}` is not set: it is read from {source}"),
    )
    .into_terminal()
}

/// The error of a model call the provider answered with HTTP `status`: retryable for 408, 409,
/// 429 and 5xx (waiting `retry_after` when the provider said), terminal for the rest (a request
/// the provider will refuse again: bad request, bad key, no such model, context too long).
pub fn status_error(endpoint: &Endpoint, status: u16, detail: &str, retry_after: Option<Duration>) -> Error {
    let retryable = matches!(status, 408 | 409 | 429) || status >= 500;
    let what = match status {
        401 | 403 => "refused the key",
        404 => "does not know the model (or the URL is wrong)",
        429 => "is rate limiting",
        400 | 413 | 422 => "refused the request",
        _ if status >= 500 => "failed",
        _ => "answered with an error",
    };
    let detail = detail.trim();
    let detail = if detail.len() > 500 {
        format!("{}…", detail.chars().take(500).collect::<String>())
    } else {
        detail.to_string()
    };
    let error = Error::new(
        ErrorKind::TaskFailed,
        format!("provider `{}` {what} for model `{}`: HTTP {status}", endpoint.provider, endpoint.model),
    )
    .with_http_status(status)
    .with_cause(detail);
    let error = match retry_after {
        Some(wait) if retryable => error.with_retry_after(wait),
        _ => error,
    };
    if retryable { error } else { error.into_terminal() }
}

/// The error of a model call that got no HTTP answer (refused connection, timeout, broken
/// stream): retryable.
pub fn transport_error(endpoint: &Endpoint, detail: &str) -> Error {
    Error::new(
        ErrorKind::TaskFailed,
        format!("provider `{}` could not be reached for model `{}`", endpoint.provider, endpoint.model),
    )
    .with_cause(detail.to_string())
}

/// Reads a `Retry-After` value: seconds, or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = humantime::parse_rfc3339_weak(value).ok().or_else(|| httpdate(value))?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(value: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months.iter().position(|m| m == month)? + 1;
    let text = format!("{year}-{month:02}-{:0>2}T{time}Z", day);
    humantime::parse_rfc3339(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 2.5 "), Some(Duration::from_millis(2500)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn statuses_say_whether_to_try_again() {
        let endpoint = Endpoint {
            provider: "openai".into(),
            kind: ProviderKind::OpenAi,
            model: "gpt-4o".into(),
            base_url: None,
            api_key: Some(ApiKey::new("sk-secret")),
        };
        let limited = status_error(&endpoint, 429, "slow down", Some(Duration::from_secs(1)));
        assert!(!limited.is_terminal());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
        let refused = status_error(&endpoint, 401, "bad key", Some(Duration::from_secs(1)));
        assert!(refused.is_terminal() && refused.retry_after().is_none());
        assert!(refused.message().contains("provider `openai` refused the key for model `gpt-4o`"), "{refused}");
        assert!(!status_error(&endpoint, 503, "", None).is_terminal());
        assert!(status_error(&endpoint, 400, "context_length_exceeded", None).is_terminal());
        assert!(!format!("{endpoint:?}").contains("sk-secret"));
    }

    #[test]
    fn endpoints_name_what_is_missing() {
        let providers = Providers::new().provider("vault", ProviderSettings::new().api_key_secret("K"));
        let e = providers.endpoint("nobody/model", None).unwrap_err();
        assert!(e.is_terminal() && e.message().contains("no provider `nobody`"), "{e}");
        let e = providers.endpoint("vault/m", None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingSecret);
        let ollama = providers.endpoint("ollama/llama3", None).unwrap();
        assert!(ollama.api_key.is_none() && ollama.kind == ProviderKind::Ollama);
        let e = Providers::new()
            .provider("anthropic", ProviderSettings::new().api_key_env("FLUX_TEST_SURELY_UNSET_KEY"))
            .endpoint("anthropic/claude", None)
            .unwrap_err();
        assert!(e.message().contains("FLUX_TEST_SURELY_UNSET_KEY"), "{e}");
        // Another name speaking OpenAI's API never borrows OpenAI's key.
        let local = Providers::new().provider("local", ProviderSettings::new().base_url("http://127.0.0.1:1/v1/"));
        assert!(local.endpoint("local/m", None).unwrap().api_key.is_none());
    }
}
