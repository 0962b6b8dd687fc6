//! The one public error type of flux, and its structured stored form.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Shorthand for `std::result::Result<T, flux::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form a program can match on.
///
/// The wire and storage name of each kind is its `snake_case` form (`"task_failed"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A task returned an error (or panicked) and no retry or fallback recovered it.
    TaskFailed,
    /// A task attempt ran past its `timeout`.
    TaskTimeout,
    /// The workflow body returned an error.
    WorkflowFailed,
    /// The storage backend failed (I/O error, locked database, full disk, ...).
    Storage,
    /// Stored data could not be read back (corrupt file, not a flux database).
    Corrupt,
    /// The database was written by a newer flux with a schema this version does not know.
    SchemaTooNew,
    /// Configuration could not be read or holds an invalid value.
    Config,
    /// A value could not be encoded to MessagePack.
    Encode,
    /// A stored value does not deserialize into the requested Rust type.
    Decode,
    /// No execution exists with the given id.
    NotFound,
    /// The execution exists but cannot do what was asked in its current state, or belongs to
    /// another workflow.
    InvalidState,
    /// A task or workflow body panicked.
    Panic,
    /// A task or workflow asked for secrets that are not set.
    MissingSecret,
    /// The execution was cancelled while the task (or the workflow) was running.
    Cancelled,
    /// Another holder got there first: the execution is claimed by someone else, or a claim
    /// generation is stale.
    Conflict,
    /// A replay's calls no longer match the recorded log (the workflow's code changed): the
    /// message names the first call that differs and the recorded one. Nothing was recorded
    /// or re-run; the execution is left as it was stored, to be replayed again once the code
    /// matches (or branches with [`patched`](crate::patched)).
    NonDeterminism,
    /// A flux server refused a request's input: a body that is not the workflow's input type, a
    /// query parameter it cannot read, a body over its size limit (HTTP 422 and 413).
    InvalidInput,
    /// A flux server refused a request for want of the right token (HTTP 401 and 403).
    Unauthorized,
    /// A flux server could not be reached: nothing listens at its URL, or connecting took too
    /// long.
    Unreachable,
    /// Any other failure of a request to a flux server: an error of its own (HTTP 5xx), an
    /// exchange that broke off or took too long, an answer that is not flux's API.
    Http,
    /// A stored error whose kind this version of flux does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The stable `snake_case` name of this kind, as stored and sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::TaskFailed => "task_failed",
            ErrorKind::TaskTimeout => "task_timeout",
            ErrorKind::WorkflowFailed => "workflow_failed",
            ErrorKind::Storage => "storage",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::SchemaTooNew => "schema_too_new",
            ErrorKind::Config => "config",
            ErrorKind::Encode => "encode",
            ErrorKind::Decode => "decode",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::Panic => "panic",
            ErrorKind::MissingSecret => "missing_secret",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NonDeterminism => "non_determinism",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Http => "http",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible flux operation, and the failure a workflow sees from a task.
///
/// It is plain data (kind, message, the chain of causes, the task it concerns, the name of the
/// user's error type it came from, whether it is terminal, and for an error a server answered with
/// its HTTP status), so it can be stored in the event
/// log and loaded again exactly: a failed execution always reloads, and its error still says
/// what type it was ([`Error::is`]).
///
/// A *terminal* error is final: a task that fails with one is not retried (its fallback or
/// rollback still runs). Make one with [`Error::terminal`], or let the task's error type say
/// which of its values are terminal by implementing [`TerminalError`]. Every other error is
/// retried as the task's options say.
///
/// ```
/// use flux::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::Config, "FLUX_HOME is empty");
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert_eq!(err.to_string(), "FLUX_HOME is empty");
/// assert!(!err.is_terminal());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    chain: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    type_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    /// How long the failed party asked to wait before another try, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

/// An error type whose values say whether they are final: a task failing with a terminal value
/// is not retried (its fallback or rollback still runs), any other value is retried as the
/// task's options say.
///
/// ```
/// #[derive(Debug)]
/// enum PaymentError {
///     /// The card was declined: asking again gives the same answer.
///     Declined,
///     /// The payment service did not answer in time: worth another try.
///     Timeout,
/// }
///
/// impl std::fmt::Display for PaymentError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self {
///             PaymentError::Declined => "card declined",
///             PaymentError::Timeout => "payment service timed out",
///         })
///     }
/// }
///
/// impl std::error::Error for PaymentError {}
///
/// impl flux::TerminalError for PaymentError {
///     fn is_terminal(&self) -> bool {
///         matches!(self, PaymentError::Declined)
///     }
/// }
///
/// #[flux::task(retry_max_attempts = 3, retry_delay = "100ms")]
/// async fn charge(cents: u64) -> Result<String, PaymentError> {
///     if cents > 10_000 { Err(PaymentError::Declined) } else { Ok(format!("charged {cents}")) }
/// }
/// ```
pub trait TerminalError: std::error::Error {
    /// Whether this value is final: no retry can change it.
    fn is_terminal(&self) -> bool;
}

impl Error {
    /// The error of a body that panicked with `payload`.
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".to_string());
        Error::new(ErrorKind::Panic, format!("panicked: {message}"))
    }

    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            chain: Vec::new(),
            task_id: None,
            type_name: None,
            terminal: false,
            http_status: None,
            retry_after_ms: None,
        }
    }

    /// A terminal task failure made of `err`: a task that fails with it is not retried (its
    /// fallback or rollback still runs). It keeps `err`'s message, its chain of sources and the
    /// name of its type.
    ///
    /// ```
    /// #[derive(Debug)]
    /// struct PaymentDeclined;
    /// impl std::fmt::Display for PaymentDeclined {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("payment declined")
    ///     }
    /// }
    /// impl std::error::Error for PaymentDeclined {}
    ///
    /// #[flux::task(retry_max_attempts = 5)]
    /// async fn charge(cents: u64) -> flux::Result<()> {
    ///     Err(flux::Error::terminal(PaymentDeclined))
    /// }
    ///
    /// let err = flux::Error::terminal(PaymentDeclined);
    /// assert!(err.is_terminal() && err.is::<PaymentDeclined>());
    /// ```
    pub fn terminal<E: std::error::Error + 'static>(err: E) -> Self {
        Error::from_std(ErrorKind::TaskFailed, &err).with_type_name(std::any::type_name::<E>()).into_terminal()
    }

    /// The same error, terminal: a task that fails with it is not retried.
    pub fn into_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Whether this error is final: a task that failed with it was not retried.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// The name of the error type this error was made of (a task's or workflow's own error
    /// type that implements `std::error::Error`, as `std::any::type_name` gives it), kept
    /// through storage. `None` for flux's own errors and for errors that are only a message (a
    /// `String`).
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// Whether this error was made of a value of type `E`, also after it was stored and loaded
    /// again: the type is known by its name (`std::any::type_name`), which one build of a
    /// program gives the same way.
    pub fn is<E: ?Sized + 'static>(&self) -> bool {
        self.type_name.as_deref() == Some(std::any::type_name::<E>())
    }

    /// Records the name of the error type this error was made of.
    pub(crate) fn with_type_name(mut self, type_name: &str) -> Self {
        self.type_name = Some(type_name.to_string());
        self
    }

    /// An error of `kind` built from another error: its message, then each `source()` in turn
    /// as the chain of causes.
    pub fn from_std(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = Vec::new();
        let mut cause = err.source();
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        Error {
            kind,
            message: err.to_string(),
            chain,
            task_id: None,
            type_name: None,
            terminal: false,
            http_status: None,
            retry_after_ms: None,
        }
    }

    /// Attaches the id of the task this error concerns.
    pub fn with_task_id(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }

    /// Appends a cause to the chain.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.chain.push(cause.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The causes, outermost first.
    pub fn chain(&self) -> &[String] {
        &self.chain
    }

    /// The id of the task this error concerns, if any.
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    /// The HTTP status a flux server answered with, for an error a `flux::Client` request got
    /// back (`404` for [`ErrorKind::NotFound`], ...); `None` for every other error.
    ///
    /// ```
    /// let err = flux::Error::new(flux::ErrorKind::NotFound, "no execution `x`").with_http_status(404);
    /// assert_eq!(err.http_status(), Some(404));
    /// ```
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// Records the HTTP status a server answered with.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Says how long to wait before the next attempt (an HTTP `Retry-After`, say): the retry
    /// that follows this error waits at least that long, and never more than
    /// [`MAX_RETRY_DELAY`](crate::task::MAX_RETRY_DELAY) (a terminal error is not retried at all).
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = flux::Error::new(flux::ErrorKind::TaskFailed, "rate limited").with_retry_after(Duration::from_secs(2));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    /// ```
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// How long the failed party asked to wait before another try, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after_ms.map(std::time::Duration::from_millis)
    }

    pub(crate) fn decode(what: impl fmt::Display, err: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Decode, format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.task_id) {
            (ErrorKind::TaskFailed, Some(id)) => write!(f, "task `{id}` failed: {}", self.message)?,
            _ => f.write_str(&self.message)?,
        }
        for cause in &self.chain {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("charge failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_is_collected_from_sources() {
        let err = Error::from_std(ErrorKind::TaskFailed, &Outer(std::io::Error::other("card declined")))
            .with_task_id("charge_0123456789abcdef");
        assert_eq!(err.chain(), ["card declined"]);
        assert_eq!(err.to_string(), "task `charge_0123456789abcdef` failed: charge failed: card declined");
    }

    #[test]
    fn unknown_kinds_still_load() {
        let bytes = crate::value::to_msgpack(&serde_json_like()).expect("encode");
        let err: Error = crate::value::from_msgpack(&bytes).expect("decode");
        assert_eq!(err.kind(), ErrorKind::Unknown);
        assert_eq!(err.message(), "from the future");
    }

    fn serde_json_like() -> std::collections::BTreeMap<&'static str, &'static str> {
        [("kind", "quantum_decoherence"), ("message", "from the future")].into_iter().collect()
    }
}
