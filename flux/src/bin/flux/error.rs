//! What can go wrong in a command, and how it is shown (standard error, exit code 1).

use std::fmt;

/// A command's failure.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with a non-2xx status.
    Http {
        /// The HTTP status code.
        status: u16,
        /// The server's `{"detail": ...}` (or its body, or the status' reason).
        detail: String,
        /// What the user might do about it.
        hint: Option<&'static str>,
    },
    /// The server could not be reached at all.
    Unreachable {
        /// The server URL that was tried.
        url: String,
        /// Why (the transport error).
        reason: String,
    },
    /// Anything else, already phrased for the user.
    Message(String),
    /// Standard output was closed (`flux workflow list | head`): stop quietly.
    BrokenPipe,
}

impl CliError {
    /// A failure described by `message`.
    pub fn msg(message: impl Into<String>) -> CliError {
        CliError::Message(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Http { status, detail, hint } => {
                write!(f, "error: {detail} (HTTP {status})")?;
                if let Some(hint) = hint {
                    write!(f, "\nhint: {hint}")?;
                }
                Ok(())
            }
            CliError::Unreachable { url, reason } => write!(
                f,
                "error: could not reach the flux server at {url} ({reason})\n\
                 hint: start one with `flux start server`, or point --server-url \
                 (FLUX_WORKERS__SERVER_URL) at a running server"
            ),
            CliError::Message(message) => write!(f, "error: {message}"),
            CliError::BrokenPipe => write!(f, "error: standard output was closed"),
        }
    }
}

impl From<flux::Error> for CliError {
    fn from(error: flux::Error) -> CliError {
        CliError::Message(error.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> CliError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Message(format!("cannot write the output: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_show_the_detail_and_the_status() {
        let error = CliError::Http { status: 404, detail: "execution nope not found".into(), hint: None };
        assert_eq!(error.to_string(), "error: execution nope not found (HTTP 404)");
        let error = CliError::Http { status: 401, detail: "bad token".into(), hint: Some("pass --admin-token") };
        assert_eq!(error.to_string(), "error: bad token (HTTP 401)\nhint: pass --admin-token");
    }

    #[test]
    fn an_unreachable_server_is_named_with_what_to_do() {
        let error = CliError::Unreachable { url: "http://127.0.0.1:9".into(), reason: "connection refused".into() };
        let text = error.to_string();
        assert!(text.starts_with("error: could not reach the flux server at http://127.0.0.1:9"), "{text}");
        assert!(text.contains("flux start server"), "{text}");
    }
}
