//! The HTTP client of the server's API: URLs, requests, error bodies and SSE streams.

use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures::Stream;
use reqwest::{RequestBuilder, Response, Url};
use serde_json::Value;

use crate::error::{CliError, chain};

/// How long connecting to the server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of an error body (that is not `{"detail": ...}`) shown to the user.
const MAX_DETAIL_CHARS: usize = 500;

/// Shown with a 401 from an `/admin` endpoint.
const ADMIN_TOKEN_HINT: &str = "pass the server's admin token with --admin-token or FLUX_SECURITY__ADMIN_TOKEN \
                                (a server without a configured one prints the token it generated when it starts)";

/// A command-line INPUT as the JSON value to send: the text parsed as JSON, or, when it is not
/// valid JSON, the text itself as a JSON string (so `World` sends `"World"`).
pub fn parse_input(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A client of one flux server.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    admin_token: Option<String>,
}

impl Client {
    /// A client of the server at `server_url` (`http://host:port`), using `admin_token` for
    /// `/admin` endpoints.
    pub fn new(server_url: &str, admin_token: Option<String>) -> Result<Client, CliError> {
        let expected = if server_url.contains("://") {
            "expected http://host:port".to_string()
        } else {
            format!("did you mean http://{}?", server_url.trim())
        };
        let base = Url::parse(server_url.trim())
            .map_err(|e| CliError::msg(format!("invalid server URL `{server_url}`: {e} ({expected})")))?;
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(CliError::msg(format!(
                    "invalid server URL `{server_url}`: this build of flux speaks plain http only"
                )));
            }
            other => {
                return Err(CliError::msg(format!(
                    "invalid server URL `{server_url}`: unsupported scheme `{other}` ({expected})"
                )));
            }
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(CliError::msg(format!("invalid server URL `{server_url}`: {expected}")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| CliError::msg(format!("cannot set up the HTTP client: {}", chain(&e))))?;
        Ok(Client { http, base, admin_token })
    }

    /// The URL of the endpoint at `segments` under the server URL, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Result<Url, CliError> {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| CliError::msg(format!("invalid server URL `{}`", self.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `GET url`, returning its JSON.
    pub async fn get(&self, url: Url) -> Result<Value, CliError> {
        self.json(self.http.get(url), false).await
    }

    /// `POST url` with `body` as JSON, returning the response's JSON.
    pub async fn post(&self, url: Url, body: &Value) -> Result<Value, CliError> {
        self.json(self.http.post(url).json(body), false).await
    }

    /// `GET url` with the admin token.
    pub async fn admin_get(&self, url: Url) -> Result<Value, CliError> {
        let request = self.admin(self.http.get(url))?;
        self.json(request, true).await
    }

    /// `POST url` with the admin token and `body` as JSON.
    pub async fn admin_post(&self, url: Url, body: &impl serde::Serialize) -> Result<Value, CliError> {
        let request = self.admin(self.http.post(url).json(body))?;
        self.json(request, true).await
    }

    /// `DELETE url` with the admin token.
    pub async fn admin_delete(&self, url: Url) -> Result<Value, CliError> {
        let request = self.admin(self.http.delete(url))?;
        self.json(request, true).await
    }

    /// `POST url` with `body` as JSON, returning the server-sent events of the response as they
    /// arrive.
    pub async fn post_stream(
        &self,
        url: Url,
        body: &Value,
    ) -> Result<impl Stream<Item = Result<eventsource_stream::Event, String>> + use<>, CliError> {
        use futures::StreamExt as _;
        let request = self.http.post(url).header(reqwest::header::ACCEPT, "text/event-stream").json(body);
        let response = self.send(request, false).await?;
        Ok(response.bytes_stream().eventsource().map(|event| event.map_err(|e| chain(&e))))
    }

    /// Adds the admin token, or says how to give one.
    fn admin(&self, request: RequestBuilder) -> Result<RequestBuilder, CliError> {
        match &self.admin_token {
            Some(token) => Ok(request.bearer_auth(token)),
            None => Err(CliError::msg(format!("no admin token: {ADMIN_TOKEN_HINT}"))),
        }
    }

    /// Sends `request` (to an `/admin` endpoint if `admin`) and reads its JSON body.
    async fn json(&self, request: RequestBuilder, admin: bool) -> Result<Value, CliError> {
        let response = self.send(request, admin).await?;
        let url = response.url().clone();
        let body = response.bytes().await.map_err(|e| self.transport_error(&e))?;
        serde_json::from_slice(&body).map_err(|e| {
            CliError::msg(format!("the server's answer to {url} is not JSON ({e}); is {} a flux server?", self.base))
        })
    }

    /// Sends `request`, turning transport failures and non-2xx answers into errors.
    async fn send(&self, request: RequestBuilder, admin: bool) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let reason = status.canonical_reason().unwrap_or("no reason given");
        let body = response.text().await.unwrap_or_default();
        let hint = (admin && status == reqwest::StatusCode::UNAUTHORIZED).then_some(ADMIN_TOKEN_HINT);
        Err(CliError::Http { status: status.as_u16(), detail: error_detail(&body, reason), hint })
    }

    /// A transport error: the server could not be reached, or the exchange broke.
    fn transport_error(&self, error: &reqwest::Error) -> CliError {
        // The outer message only repeats the URL; the innermost cause says what happened
        // ("Connection refused (os error 111)").
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        if error.is_connect() || error.is_timeout() {
            let mut url = self.base.to_string();
            if url.ends_with('/') && self.base.path() == "/" {
                url.pop();
            }
            CliError::Unreachable { url, reason }
        } else {
            CliError::msg(format!("the request to the flux server at {} failed: {}", self.base, chain(error)))
        }
    }
}

/// What to show of an error response: its `{"detail": ...}`, else its body, else `reason`.
pub fn error_detail(body: &str, reason: &str) -> String {
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
    use serde_json::json;

    #[test]
    fn inputs_are_json_or_else_strings() {
        assert_eq!(parse_input("World"), json!("World"));
        assert_eq!(parse_input("\"World\""), json!("World"));
        assert_eq!(parse_input("50"), json!(50));
        assert_eq!(parse_input("\"50\""), json!("50"));
        assert_eq!(parse_input("-1.5"), json!(-1.5));
        assert_eq!(parse_input("true"), json!(true));
        assert_eq!(parse_input("null"), json!(null));
        assert_eq!(parse_input(r#"{"n": 1, "tags": ["a"]}"#), json!({"n": 1, "tags": ["a"]}));
        assert_eq!(parse_input("[1, 2]"), json!([1, 2]));
        // Not JSON: sent as they are, as strings.
        assert_eq!(parse_input("Hello, World"), json!("Hello, World"));
        assert_eq!(parse_input("{not json"), json!("{not json"));
        assert_eq!(parse_input(""), json!(""));
        assert_eq!(parse_input(" 42 "), json!(42));
        assert_eq!(parse_input("x -> yes"), json!("x -> yes"));
    }

    #[test]
    fn error_details_come_from_the_body() {
        assert_eq!(error_detail(r#"{"detail": "execution nope not found"}"#, "Not Found"), "execution nope not found");
        assert_eq!(error_detail(r#"{"detail": [{"loc": "body"}]}"#, "Unprocessable"), r#"[{"loc":"body"}]"#);
        assert_eq!(error_detail("", "Not Found"), "Not Found");
        assert_eq!(error_detail("  plain text \n", "Bad Request"), "plain text");
        assert_eq!(error_detail(r#"{"other": 1}"#, "Bad Request"), r#"{"other": 1}"#);
        let long = "x".repeat(MAX_DETAIL_CHARS + 10);
        assert_eq!(error_detail(&long, "").chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn urls_are_built_segment_by_segment() {
        let client = Client::new("http://127.0.0.1:8000", None).expect("valid");
        let url = client.url(&["workflows", "hello world", "status", "a/b"]).expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/workflows/hello%20world/status/a%2Fb");
        let client = Client::new("http://localhost:8000/prefix/", None).expect("valid");
        assert_eq!(client.url(&["workflows"]).expect("url").as_str(), "http://localhost:8000/prefix/workflows");
        for bad in ["localhost:8000", "https://h:1", "ftp://h", "not a url", "http://"] {
            assert!(Client::new(bad, None).is_err(), "{bad} accepted");
        }
    }
}
