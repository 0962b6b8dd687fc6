//! Requests to a flux server: the server URL checked once, endpoint URLs built segment by
//! segment, tokens, and answers read as JSON or turned into a [`flux::Error`](crate::Error) of
//! the kind that fits their status, with the server's `detail` as the message.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// The most of an error body (one that is not `{"detail": ...}`) kept in an error's message.
const MAX_DETAIL_CHARS: usize = 500;

/// Which token a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// The bearer token, if one is set.
    Plain,
    /// The admin token (else the bearer token), for `/admin` endpoints.
    Admin,
}

/// How a client reaches its server: the HTTP client, the server URL and the tokens.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    /// The server URL as the user gave it, without a trailing `/` for a bare host.
    shown: String,
    timeout: Option<Duration>,
    pub(crate) bearer: Option<String>,
    pub(crate) admin: Option<String>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |token: &Option<String>| token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Http")
            .field("url", &self.shown)
            .field("timeout", &self.timeout)
            .field("bearer", &redacted(&self.bearer))
            .field("admin", &redacted(&self.admin))
            .finish()
    }
}

/// The server URL `text`, checked: `http://host[:port][/prefix]` (or `https://` with the `tls`
/// feature).
pub(crate) fn parse_base(text: &str) -> Result<Url> {
    let text = text.trim();
    let invalid = |why: String| Error::new(ErrorKind::Config, format!("invalid flux server URL `{text}`: {why}"));
    let expected = if text.contains("://") {
        "expected http://host:port".to_string()
    } else {
        format!("did you mean http://{text}?")
    };
    let base = Url::parse(text).map_err(|e| invalid(format!("{e} ({expected})")))?;
    match base.scheme() {
        "http" => {}
        "https" if cfg!(feature = "tls") => {}
        "https" => {
            return Err(invalid(
                "this build of flux speaks plain http only: enable its `tls` feature for https".into(),
            ));
        }
        other => return Err(invalid(format!("unsupported scheme `{other}` ({expected})"))),
    }
    if base.cannot_be_a_base() || base.host().is_none() {
        return Err(invalid(expected));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("a server URL has no query or fragment".into()));
    }
    Ok(base)
}

impl Http {
    /// A client of the server at `base`.
    pub(crate) fn new(base: Url, connect_timeout: Duration, timeout: Option<Duration>) -> Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot set up the HTTP client: {}", innermost(&e))))?;
        let mut shown = base.to_string();
        if base.path() == "/" && shown.ends_with('/') {
            shown.pop();
        }
        Ok(Http { client, base, shown, timeout, bearer: None, admin: None })
    }

    /// The server URL, as given (without a trailing `/` for a bare host).
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The URL of the endpoint at `segments` under the server URL, each segment
    /// percent-encoded (so a `/` in an execution id stays inside its segment).
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::new(ErrorKind::Config, format!("invalid flux server URL `{}`", self.shown)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request of `method` to `url`, with the token `auth` asks for.
    pub(crate) fn request(&self, method: reqwest::Method, url: Url, auth: Auth) -> RequestBuilder {
        let mut request = self.client.request(method, url);
        let token = match auth {
            Auth::Plain => self.bearer.as_ref(),
            Auth::Admin => self.admin.as_ref().or(self.bearer.as_ref()),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        // The trace of the caller's span continues on the server.
        #[cfg(feature = "otel")]
        if let Some(traceparent) = crate::otel::traceparent() {
            request = request.header("traceparent", traceparent);
        }
        request
    }

    /// Sends `request` and reads its JSON answer as `T`.
    pub(crate) async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let value = self.value(request).await?;
        T::deserialize(&value).map_err(|e| self.not_the_api(&e))
    }

    /// Sends `request` and reads its answer as JSON.
    pub(crate) async fn value(&self, request: RequestBuilder) -> Result<Value> {
        let request = match self.timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        };
        let response = self.send(request).await?;
        let body = response.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&body).map_err(|e| self.not_the_api(&e))
    }

    /// Sends `request` (no time limit but the connect timeout: for streams), turning transport
    /// failures and answers other than 2xx into errors.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(status_error(status, &body))
    }

    /// An answer that is not what flux's API sends.
    pub(crate) fn not_the_api(&self, e: &dyn std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Http,
            format!("the answer of {} is not what a flux server sends ({e}); is it a flux server?", self.shown),
        )
    }

    /// A transport failure: the server could not be reached, or the exchange broke off.
    pub(crate) fn transport(&self, error: &reqwest::Error) -> Error {
        let reason = innermost(error);
        if error.is_connect() {
            Error::new(ErrorKind::Unreachable, format!("could not reach the flux server at {}", self.shown))
                .with_cause(reason)
        } else if error.is_timeout() {
            Error::new(ErrorKind::Http, format!("the request to the flux server at {} took too long", self.shown))
                .with_cause(reason)
        } else {
            Error::new(ErrorKind::Http, format!("the request to the flux server at {} failed", self.shown))
                .with_cause(reason)
        }
    }
}

/// The innermost cause of `error`: the outer messages of reqwest only repeat the URL, the
/// innermost one says what happened ("Connection refused (os error 111)").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

/// The kind of error an answer with `status` is.
pub(crate) fn kind_of(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 => ErrorKind::InvalidState,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 | 422 => ErrorKind::InvalidInput,
        _ => ErrorKind::Http,
    }
}

/// The error of an answer with `status` and `body`: its kind from the status, its message the
/// server's `detail`.
pub(crate) fn status_error(status: StatusCode, body: &str) -> Error {
    let reason = status.canonical_reason().unwrap_or("no reason given");
    Error::new(kind_of(status), detail_of(body, reason)).with_http_status(status.as_u16())
}

/// What an error answer says: its `{"detail": ...}`, else its body (cut), else `reason`.
pub(crate) fn detail_of(body: &str, reason: &str) -> String {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) {
        match object.get("detail") {
            Some(Value::String(detail)) if !detail.trim().is_empty() => return detail.clone(),
            Some(detail) if !detail.is_null() => return detail.to_string(),
            _ => {}
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return reason.to_string();
    }
    let mut shown: String = body.chars().take(MAX_DETAIL_CHARS).collect();
    if shown.len() < body.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> Http {
        Http::new(parse_base(url).unwrap(), Duration::from_secs(1), None).unwrap()
    }

    #[test]
    fn urls_are_built_segment_by_segment() {
        let client = http("http://127.0.0.1:8000");
        assert_eq!(client.shown(), "http://127.0.0.1:8000");
        let url = client.url(&["workflows", "hello world", "status", "a/b"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/workflows/hello%20world/status/a%2Fb");
        let client = http("http://localhost:8000/prefix/");
        assert_eq!(client.url(&["workflows"]).unwrap().as_str(), "http://localhost:8000/prefix/workflows");
        let client = http(" http://localhost:8000/prefix ");
        assert_eq!(client.url(&["workflows"]).unwrap().as_str(), "http://localhost:8000/prefix/workflows");
    }

    #[test]
    fn bad_server_urls_are_named() {
        for bad in ["localhost:8000", "ftp://h", "not a url", "http://", "http://h/?x=1"] {
            let err = parse_base(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
            assert!(err.to_string().contains(&format!("`{}`", bad.trim())), "{err}");
        }
        match cfg!(feature = "tls") {
            true => assert_eq!(parse_base("https://h:1").unwrap().as_str(), "https://h:1/"),
            false => assert!(parse_base("https://h:1").unwrap_err().to_string().contains("enable its `tls` feature")),
        }
        assert!(parse_base("localhost:8000").unwrap_err().to_string().contains("did you mean http://localhost:8000?"));
    }

    #[test]
    fn answers_map_to_kinds_with_the_servers_detail() {
        let err = status_error(StatusCode::NOT_FOUND, r#"{"detail": "no execution `x` of workflow `w`"}"#);
        assert_eq!((err.kind(), err.http_status()), (ErrorKind::NotFound, Some(404)));
        assert_eq!(err.to_string(), "no execution `x` of workflow `w`");
        let kinds = [
            (400, ErrorKind::InvalidState),
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Unauthorized),
            (409, ErrorKind::Conflict),
            (413, ErrorKind::InvalidInput),
            (422, ErrorKind::InvalidInput),
            (500, ErrorKind::Http),
            (503, ErrorKind::Http),
        ];
        for (code, kind) in kinds {
            assert_eq!(kind_of(StatusCode::from_u16(code).unwrap()), kind, "{code}");
        }
    }

    #[test]
    fn error_details_come_from_the_body() {
        assert_eq!(detail_of(r#"{"detail": "execution nope not found"}"#, "Not Found"), "execution nope not found");
        assert_eq!(detail_of(r#"{"detail": [{"loc": "body"}]}"#, "Unprocessable"), r#"[{"loc":"body"}]"#);
        assert_eq!(detail_of("", "Not Found"), "Not Found");
        assert_eq!(detail_of("  plain text \n", "Bad Request"), "plain text");
        assert_eq!(detail_of(r#"{"other": 1}"#, "Bad Request"), r#"{"other": 1}"#);
        let long = "x".repeat(MAX_DETAIL_CHARS + 10);
        assert_eq!(detail_of(&long, "").chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn tokens_do_not_show_in_debug_output() {
        let mut client = http("http://h:1");
        client.admin = Some("s3cret".into());
        client.bearer = Some("t0ken".into());
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("t0ken"), "{shown}");
    }
}
