//! A scripted model provider: a loopback HTTP server that speaks the wire formats of four model
//! providers and answers from a script, so that the AI agents' tests and examples run with no key
//! and no network.
//!
//! One server speaks one [`Dialect`]:
//!
//! | dialect | endpoint | key header |
//! |---|---|---|
//! | OpenAI chat completions | `POST /v1/chat/completions` | `Authorization: Bearer KEY` |
//! | Anthropic messages | `POST /v1/messages` | `x-api-key: KEY` (and `anthropic-version`) |
//! | Gemini | `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` | `x-goog-api-key: KEY` (or `?key=`) |
//! | Ollama | `POST /api/chat` | none |
//!
//! and answers in that provider's documented format: a JSON body, or for a streamed request the
//! provider's stream (server-sent events for OpenAI, Anthropic and Gemini, newline-delimited JSON
//! for Ollama), text split into one chunk per word.
//!
//! **Which answer.** A [`Script`] lists, per model, the [`Turn`]s of a conversation. A request
//! gets the turn whose index is the number of assistant messages already in its conversation
//! (`assistant` messages for OpenAI, Anthropic and Ollama, `model` contents for Gemini), so the
//! answer follows from the request alone: asking the same thing twice gets the same answer,
//! except for [`Turn::Fail`], which fails the first time its position is asked and then gives
//! way to the turn it wraps.
//!
//! **Checking requests.** Every request is checked against the provider's documented request
//! shape (required fields, field types, unknown fields where the provider rejects them, tool calls
//! answered by tool results in the order the provider requires, structured-output fields). A
//! request that fails a check gets the 400 the provider would send, in its error format, and the
//! problems are kept in [`ScriptedProvider::violations`], which a test asserts is empty. A
//! request past the end of the script gets a 400 too (`the script of model X has no turn N`), and
//! a violation.
//!
//! **With genai.** Give genai a `ServiceTarget` whose `endpoint` is
//! [`ScriptedProvider::base_url`], whose `model` is a `ModelIden` with the dialect's `AdapterKind`
//! (`OpenAI`, `Anthropic`, `Gemini`, `Ollama`: set it explicitly, genai otherwise guesses the
//! adapter from the model name), and whose `auth` is a key (`AuthData::from_single`): genai
//! refuses to call OpenAI, Anthropic or Gemini without one, even when the provider requires none.
//!
//! ```text
//! let script = Script::new().model("gpt-4o", vec![
//!     Turn::ToolCalls(vec![("get_weather".into(), json!({"city": "Paris"}))]),
//!     Turn::Text("It is sunny in Paris.".into()),
//! ]);
//! let provider = ScriptedProvider::start(Dialect::OpenAi, script).await?;
//! // point genai's Endpoint at provider.base_url(), AdapterKind::OpenAI, any key
//! assert!(provider.violations().is_empty());
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

/// The wire format a [`ScriptedProvider`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI's chat completions API: `POST {base}chat/completions`, the key in
    /// `Authorization: Bearer`.
    OpenAi,
    /// Anthropic's messages API: `POST {base}messages`, the key in `x-api-key`, and an
    /// `anthropic-version` header.
    Anthropic,
    /// Gemini's API: `POST {base}models/{model}:generateContent` and
    /// `:streamGenerateContent` (server-sent events with `?alt=sse`, a JSON array without), the
    /// key in `x-goog-api-key` (or a `key` query parameter).
    Gemini,
    /// Ollama's native chat API: `POST {base}api/chat`, newline-delimited JSON when streaming
    /// (the default when the request does not say), no key.
    Ollama,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::OpenAi => "OpenAI",
            Dialect::Anthropic => "Anthropic",
            Dialect::Gemini => "Gemini",
            Dialect::Ollama => "Ollama",
        })
    }
}

/// One answer of a scripted conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// A plain text answer (streamed as several chunks split on word boundaries when the request
    /// asks for a stream).
    Text(String),
    /// Tool calls: (tool name, JSON arguments object). Their ids are `call_{turn}_{i}` (the turn's
    /// index, the call's index in the turn); every dialect has ids for them (Gemini's
    /// `functionCall.id`, Ollama's `tool_calls[].id`).
    ToolCalls(Vec<(String, Value)>),
    /// Fails this request once with `status`, optional `Retry-After` seconds header, and a body
    /// in the provider's error format; the next request at the same position gets `then`.
    Fail {
        /// The HTTP status of the failure (429, 500, 503, ...).
        status: u16,
        /// The `Retry-After` header of the failure, in seconds.
        retry_after: Option<u64>,
        /// The message of the provider's error body.
        message: String,
        /// What the next request at this position gets (another `Fail` fails that one too).
        then: Box<Turn>,
    },
}

/// The turns of each model: what a [`ScriptedProvider`] answers.
#[derive(Debug, Clone, Default)]
pub struct Script {
    models: HashMap<String, Vec<Turn>>,
}

impl Script {
    /// An empty script (every request is past its end).
    pub fn new() -> Self {
        Script::default()
    }

    /// Turns for requests naming `model` (the model name without provider prefix, e.g.
    /// "gpt-4o"): the request with `n` assistant messages in its conversation gets `turns[n]`.
    /// Replaces the turns given earlier for the same model.
    pub fn model(mut self, model: &str, turns: Vec<Turn>) -> Self {
        self.models.insert(model.to_string(), turns);
        self
    }
}

/// A request the provider received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The request's path, with its query string when it has one
    /// (`/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`).
    pub path: String,
    /// The request's headers, names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The request's body: its JSON, or its text as a JSON string when it is not JSON.
    pub body: Value,
    /// The model the request names (from the body, or for Gemini from the path); empty when it
    /// names none.
    pub model: String,
    /// Whether the request asked for a stream (for Ollama, also when it did not say).
    pub stream: bool,
    /// The turn that answers it: the number of assistant messages in its conversation.
    pub turn: usize,
}

impl Recorded {
    /// The value of header `name` (lowercase), if the request had it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A running scripted provider on a free loopback port. Clones share the server and its record;
/// the server stops when the last clone is dropped (or with the runtime it was started on).
#[derive(Clone)]
pub struct ScriptedProvider {
    shared: Arc<Shared>,
    _server: Arc<Server>,
    addr: SocketAddr,
}

impl fmt::Debug for ScriptedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedProvider").field("dialect", &self.shared.dialect).field("addr", &self.addr).finish()
    }
}

impl ScriptedProvider {
    /// Starts a provider speaking `dialect` on `127.0.0.1` (a free port), answering from `script`.
    /// It requires no key until [`require_key`](Self::require_key).
    pub async fn start(dialect: Dialect, script: Script) -> std::io::Result<ScriptedProvider> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { dialect, script, state: Mutex::new(Record::default()) });
        let router = axum::Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = futures::channel::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        });
        Ok(ScriptedProvider { shared, _server: Arc::new(Server { stop: Mutex::new(Some(stop)) }), addr })
    }

    /// Requires this API key in the provider's auth header (OpenAI: `Authorization: Bearer`,
    /// Anthropic: `x-api-key`, Gemini: `x-goog-api-key` or the `key` query parameter) from now on,
    /// for every clone; a wrong or missing key gets a 401 in the provider's error format (not a
    /// violation: the request's shape is not at fault). Default: no key required. Ollama never
    /// requires one, so this changes nothing there.
    pub fn require_key(self, key: &str) -> Self {
        self.shared.lock().key = Some(key.to_string());
        self
    }

    /// The base URL genai's `Endpoint` should be given for this dialect, the URL its adapter
    /// appends the service path to: `http://127.0.0.1:PORT/v1/` for OpenAI and Anthropic,
    /// `http://127.0.0.1:PORT/v1beta/` for Gemini, `http://127.0.0.1:PORT/` for Ollama.
    pub fn base_url(&self) -> String {
        let root = format!("http://{}/", self.addr);
        match self.shared.dialect {
            Dialect::OpenAi | Dialect::Anthropic => format!("{root}v1/"),
            Dialect::Gemini => format!("{root}v1beta/"),
            Dialect::Ollama => root,
        }
    }

    /// Every request received so far, in order (those refused included).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Shape problems found in requests (empty when every request matched the provider's
    /// documented shape and the script had a turn for it), each as `METHOD PATH: problem`.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// The dialect this provider speaks.
    pub fn dialect(&self) -> Dialect {
        self.shared.dialect
    }
}

/// Stops the server when the last clone of its provider goes.
struct Server {
    stop: Mutex<Option<futures::channel::oneshot::Sender<()>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

/// What the request handler shares with the provider.
struct Shared {
    dialect: Dialect,
    script: Script,
    state: Mutex<Record>,
}

#[derive(Default)]
struct Record {
    key: Option<String>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    /// How many `Fail` layers of a (model, turn) were served already.
    failed: HashMap<(String, usize), usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Record> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.answer(&method, &uri, &headers, &body).into_response()
}

/// Which endpoint a request is for.
enum Route {
    OpenAiChat,
    AnthropicMessages,
    Gemini { model: String, stream: bool },
    OllamaChat,
}

fn route(dialect: Dialect, method: &Method, path: &str) -> Option<Route> {
    if method != Method::POST {
        return None;
    }
    match dialect {
        Dialect::OpenAi => (path == "/v1/chat/completions").then_some(Route::OpenAiChat),
        Dialect::Anthropic => (path == "/v1/messages").then_some(Route::AnthropicMessages),
        Dialect::Ollama => (path == "/api/chat").then_some(Route::OllamaChat),
        Dialect::Gemini => {
            let (model, action) = path.strip_prefix("/v1beta/models/")?.rsplit_once(':')?;
            let stream = match action {
                "generateContent" => false,
                "streamGenerateContent" => true,
                _ => return None,
            };
            (!model.is_empty() && !model.contains('/')).then(|| Route::Gemini { model: model.to_string(), stream })
        }
    }
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| match pair.split_once('=') {
        Some((n, v)) if n == name => Some(v),
        None if pair == name => Some(""),
        _ => None,
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request carries `key` where the dialect's provider expects it.
fn authorized(dialect: Dialect, headers: &HeaderMap, query: Option<&str>, key: &str) -> bool {
    match dialect {
        Dialect::OpenAi => header_str(headers, "authorization").and_then(|v| v.strip_prefix("Bearer ")) == Some(key),
        Dialect::Anthropic => header_str(headers, "x-api-key") == Some(key),
        Dialect::Gemini => header_str(headers, "x-goog-api-key") == Some(key) || query_param(query, "key") == Some(key),
        Dialect::Ollama => true,
    }
}

fn unauthorized_message(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi => {
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
        }
        Dialect::Anthropic => "invalid x-api-key",
        Dialect::Gemini => "API key not valid. Please pass a valid API key.",
        Dialect::Ollama => "unauthorized",
    }
}

/// What the checks of a request found out about it.
#[derive(Debug, Default)]
struct Inspected {
    model: String,
    stream: bool,
    turn: usize,
    /// OpenAI: `stream_options.include_usage`.
    include_usage: bool,
    /// Gemini: `alt=sse`.
    sse: bool,
}

impl Shared {
    fn answer(&self, method: &Method, uri: &Uri, headers: &HeaderMap, raw: &Bytes) -> Reply {
        let dialect = self.dialect;
        let path = uri.path();
        let query = uri.query();
        let parsed = serde_json::from_slice::<Value>(raw);
        let mut recorded = Recorded {
            path: query.map_or_else(|| path.to_string(), |q| format!("{path}?{q}")),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body: match &parsed {
                Ok(body) => body.clone(),
                Err(_) => Value::String(String::from_utf8_lossy(raw).into_owned()),
            },
            model: String::new(),
            stream: false,
            turn: 0,
        };
        let mut state = self.lock();
        let seq = state.requests.len();

        let Some(route) = route(dialect, method, path) else {
            let message = format!("{dialect} has no endpoint {method} {path}");
            state.violations.push(format!("{method} {path}: no such endpoint"));
            state.requests.push(recorded);
            return error_reply(dialect, 404, None, &message);
        };
        if dialect != Dialect::Ollama
            && let Some(key) = &state.key
            && !authorized(dialect, headers, query, key)
        {
            state.requests.push(recorded);
            return error_reply(dialect, 401, None, unauthorized_message(dialect));
        }

        let mut check = Check::default();
        if dialect != Dialect::Ollama && !header_str(headers, "content-type").is_some_and(is_json_type) {
            check.fail("content-type header", "must be application/json");
        }
        if dialect == Dialect::Anthropic {
            match header_str(headers, "anthropic-version") {
                None => check.fail("anthropic-version header", "is required"),
                Some("2023-06-01" | "2023-01-01") => {}
                Some(other) => check.fail("anthropic-version header", format!("`{other}` is not an API version")),
            }
        }
        let inspected = match &parsed {
            Err(e) => {
                check.fail("body", format!("is not JSON ({e})"));
                Inspected::default()
            }
            Ok(body) => match &route {
                Route::OpenAiChat => inspect_openai(body, &mut check),
                Route::AnthropicMessages => inspect_anthropic(body, &mut check),
                Route::OllamaChat => inspect_ollama(body, &mut check),
                Route::Gemini { model, stream } => Inspected {
                    model: model.clone(),
                    stream: *stream,
                    sse: query_param(query, "alt") == Some("sse"),
                    ..inspect_gemini(body, &mut check)
                },
            },
        };
        recorded.model = inspected.model.clone();
        recorded.stream = inspected.stream;
        recorded.turn = inspected.turn;
        state.requests.push(recorded);

        if !check.problems.is_empty() {
            let message = check.problems.join("; ");
            for problem in check.problems {
                state.violations.push(format!("{method} {path}: {problem}"));
            }
            return error_reply(dialect, 400, None, &message);
        }

        let model = inspected.model.as_str();
        let index = inspected.turn;
        let Some(mut turn) = self.script.models.get(model).and_then(|turns| turns.get(index)) else {
            let message = format!("the script of model {model} has no turn {index}");
            state.violations.push(format!("{method} {path}: {message}"));
            return error_reply(dialect, 400, None, &message);
        };
        let position = (model.to_string(), index);
        let served = state.failed.get(&position).copied().unwrap_or(0);
        let mut layer = 0;
        while layer < served
            && let Turn::Fail { then, .. } = turn
        {
            turn = then;
            layer += 1;
        }
        let content = match turn {
            Turn::Text(text) => Content::Text(text.clone()),
            Turn::ToolCalls(calls) => Content::Calls(
                calls
                    .iter()
                    .enumerate()
                    .map(|(i, (name, args))| Call {
                        id: format!("call_{index}_{i}"),
                        name: name.clone(),
                        args: args.clone(),
                    })
                    .collect(),
            ),
            Turn::Fail { status, retry_after, message, .. } => {
                state.failed.insert(position, served + 1);
                return error_reply(dialect, *status, *retry_after, message);
            }
        };
        drop(state);

        let output_tokens = match &content {
            Content::Text(text) => text.split_whitespace().count().max(1) as u64,
            Content::Calls(calls) => calls.iter().map(|c| 1 + c.args.to_string().len() as u64 / 4).sum::<u64>().max(1),
        };
        let answer = Answer {
            id: seq,
            model: inspected.model,
            content,
            input_tokens: (raw.len() as u64 / 4).max(1),
            output_tokens,
            stream: inspected.stream,
            include_usage: inspected.include_usage,
            sse: inspected.sse,
        };
        match dialect {
            Dialect::OpenAi => answer.openai(),
            Dialect::Anthropic => answer.anthropic(),
            Dialect::Gemini => answer.gemini(),
            Dialect::Ollama => answer.ollama(),
        }
    }
}

fn is_json_type(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

// ---------------------------------------------------------------------------------------------
// Replies

/// What the handler sends back.
enum Reply {
    Json { status: StatusCode, retry_after: Option<u64>, body: Value },
    Stream { content_type: &'static str, frames: Vec<String> },
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply::Json { status: StatusCode::OK, retry_after: None, body }
    }

    fn into_response(self) -> Response {
        match self {
            Reply::Json { status, retry_after, body } => {
                let mut response = Response::new(Body::from(body.to_string()));
                *response.status_mut() = status;
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let Some(seconds) = retry_after {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                response
            }
            Reply::Stream { content_type, frames } => {
                let chunks = futures::stream::iter(frames.into_iter().map(|f| Ok::<_, Infallible>(Bytes::from(f))));
                let mut response = Response::new(Body::from_stream(chunks));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                response
            }
        }
    }
}

/// A failure in the dialect's error format.
fn error_reply(dialect: Dialect, status: u16, retry_after: Option<u64>, message: &str) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = status.as_u16();
    let body = match dialect {
        Dialect::OpenAi => {
            let (kind, error_code) = match code {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                404 => ("invalid_request_error", json!("unknown_url")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500.. => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": error_code}})
        }
        Dialect::Anthropic => {
            let kind = match code {
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                504 => "timeout_error",
                529 => "overloaded_error",
                500.. => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_scripted"})
        }
        Dialect::Gemini => {
            let kind = match code {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                409 => "ABORTED",
                429 => "RESOURCE_EXHAUSTED",
                499 => "CANCELLED",
                501 => "UNIMPLEMENTED",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                500.. => "INTERNAL",
                _ => "FAILED_PRECONDITION",
            };
            json!({"error": {"code": code, "message": message, "status": kind}})
        }
        Dialect::Ollama => json!({"error": message}),
    };
    Reply::Json { status, retry_after, body }
}

enum Content {
    Text(String),
    Calls(Vec<Call>),
}

struct Call {
    id: String,
    name: String,
    args: Value,
}

/// A scripted answer to a checked request.
struct Answer {
    /// The request's number: its answer's id.
    id: usize,
    model: String,
    content: Content,
    input_tokens: u64,
    output_tokens: u64,
    stream: bool,
    include_usage: bool,
    sse: bool,
}

/// A fixed creation time (Unix seconds), so answers are the same from run to run.
const CREATED: u64 = 1_750_000_000;
/// The same instant, as Ollama writes it.
const CREATED_AT: &str = "2025-06-15T15:06:40Z";

/// `text` split after each run of whitespace: `"It is sunny"` → `"It "`, `"is "`, `"sunny"`.
fn words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, ch) in text.char_indices() {
        if ch.is_whitespace() {
            in_space = true;
        } else if in_space {
            pieces.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// `text` in two halves (on a character boundary), as a provider streams a tool call's
/// arguments in fragments.
fn halves(text: &str) -> Vec<&str> {
    match text.char_indices().map(|(i, _)| i).find(|&i| i > 0 && i >= text.len() / 2) {
        Some(mid) => vec![&text[..mid], &text[mid..]],
        None if text.is_empty() => vec![],
        None => vec![text],
    }
}

fn sse(data: &[Value]) -> Vec<String> {
    data.iter().map(|d| format!("data: {d}\n\n")).collect()
}

impl Answer {
    fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    fn openai(&self) -> Reply {
        let id = format!("chatcmpl-scripted{}", self.id);
        let usage = json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens(),
        });
        let tool_calls = |calls: &[Call]| -> Vec<Value> {
            calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.args.to_string()}}))
                .collect()
        };
        if !self.stream {
            let (message, finish) = match &self.content {
                Content::Text(text) => (json!({"role": "assistant", "content": text, "refusal": null}), "stop"),
                Content::Calls(calls) => (
                    json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": tool_calls(calls)}),
                    "tool_calls",
                ),
            };
            return Reply::ok(json!({
                "id": id,
                "object": "chat.completion",
                "created": CREATED,
                "model": self.model,
                "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": null,
            }));
        }
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut chunk = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "system_fingerprint": null,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if self.include_usage {
                chunk["usage"] = Value::Null;
            }
            chunk
        };
        let mut data = Vec::new();
        match &self.content {
            Content::Text(text) => {
                data.push(chunk(json!({"role": "assistant", "content": "", "refusal": null}), None));
                data.extend(words(text).into_iter().map(|w| chunk(json!({"content": w}), None)));
                data.push(chunk(json!({}), Some("stop")));
            }
            Content::Calls(calls) => {
                data.push(chunk(json!({"role": "assistant", "content": null}), None));
                for (i, call) in calls.iter().enumerate() {
                    let opening = json!({"index": i, "id": call.id, "type": "function",
                        "function": {"name": call.name, "arguments": ""}});
                    data.push(chunk(json!({"tool_calls": [opening]}), None));
                    for fragment in halves(&call.args.to_string()) {
                        data.push(chunk(
                            json!({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]}),
                            None,
                        ));
                    }
                }
                data.push(chunk(json!({}), Some("tool_calls")));
            }
        }
        if self.include_usage {
            data.push(json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "system_fingerprint": null,
                "choices": [],
                "usage": usage,
            }));
        }
        let mut frames = sse(&data);
        frames.push("data: [DONE]\n\n".to_string());
        Reply::Stream { content_type: "text/event-stream", frames }
    }

    fn anthropic(&self) -> Reply {
        let id = format!("msg_scripted{}", self.id);
        let (blocks, stop_reason) = match &self.content {
            Content::Text(text) => (vec![json!({"type": "text", "text": text})], "end_turn"),
            Content::Calls(calls) => (
                calls
                    .iter()
                    .map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.args}))
                    .collect(),
                "tool_use",
            ),
        };
        if !self.stream {
            return Reply::ok(json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": null,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            }));
        }
        let mut events: Vec<(&str, Value)> = vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                }}),
            ),
            ("ping", json!({"type": "ping"})),
        ];
        let mut block = |index: usize, start: Value, deltas: Vec<Value>| {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            ));
            for delta in deltas {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            events.push(("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        };
        match &self.content {
            Content::Text(text) => {
                let deltas = words(text).into_iter().map(|w| json!({"type": "text_delta", "text": w})).collect();
                block(0, json!({"type": "text", "text": ""}), deltas);
            }
            Content::Calls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    let json_text = call.args.to_string();
                    let deltas = halves(&json_text)
                        .into_iter()
                        .map(|f| json!({"type": "input_json_delta", "partial_json": f}))
                        .collect();
                    block(i, json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}), deltas);
                }
            }
        }
        events.push((
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": self.output_tokens}}),
        ));
        events.push(("message_stop", json!({"type": "message_stop"})));
        let frames = events.into_iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
        Reply::Stream { content_type: "text/event-stream", frames }
    }

    fn gemini(&self) -> Reply {
        let usage = json!({
            "promptTokenCount": self.input_tokens,
            "candidatesTokenCount": self.output_tokens,
            "totalTokenCount": self.total_tokens(),
        });
        let partial_usage = json!({"promptTokenCount": self.input_tokens, "totalTokenCount": self.input_tokens});
        let response = |parts: Vec<Value>, last: bool| {
            let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
            if last {
                candidate["finishReason"] = json!("STOP");
            }
            json!({
                "candidates": [candidate],
                "usageMetadata": if last { usage.clone() } else { partial_usage.clone() },
                "modelVersion": self.model,
                "responseId": format!("scripted{}", self.id),
            })
        };
        let call_parts = |calls: &[Call]| -> Vec<Value> {
            calls.iter().map(|c| json!({"functionCall": {"id": c.id, "name": c.name, "args": c.args}})).collect()
        };
        if !self.stream {
            let parts = match &self.content {
                Content::Text(text) => vec![json!({"text": text})],
                Content::Calls(calls) => call_parts(calls),
            };
            return Reply::ok(response(parts, true));
        }
        let chunks: Vec<Value> = match &self.content {
            Content::Text(text) => {
                let pieces = words(text);
                if pieces.is_empty() {
                    vec![response(vec![json!({"text": ""})], true)]
                } else {
                    let last = pieces.len() - 1;
                    pieces.into_iter().enumerate().map(|(i, w)| response(vec![json!({"text": w})], i == last)).collect()
                }
            }
            // Gemini sends function calls whole, in one chunk.
            Content::Calls(calls) => vec![response(call_parts(calls), true)],
        };
        if self.sse {
            let frames = chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect();
            Reply::Stream { content_type: "text/event-stream", frames }
        } else {
            // Without `alt=sse`, streamGenerateContent answers one JSON array of the chunks.
            Reply::ok(Value::Array(chunks))
        }
    }

    fn ollama(&self) -> Reply {
        let done = |message: Value| {
            json!({
                "model": self.model,
                "created_at": CREATED_AT,
                "message": message,
                "done_reason": "stop",
                "done": true,
                "total_duration": 1_000_000 * self.total_tokens(),
                "load_duration": 1_000_000,
                "prompt_eval_count": self.input_tokens,
                "prompt_eval_duration": 1_000_000 * self.input_tokens,
                "eval_count": self.output_tokens,
                "eval_duration": 1_000_000 * self.output_tokens,
            })
        };
        let partial =
            |message: Value| json!({"model": self.model, "created_at": CREATED_AT, "message": message, "done": false});
        let message = match &self.content {
            Content::Text(text) => json!({"role": "assistant", "content": text}),
            Content::Calls(calls) => {
                let calls: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| json!({"id": c.id, "function": {"index": i, "name": c.name, "arguments": c.args}}))
                    .collect();
                json!({"role": "assistant", "content": "", "tool_calls": calls})
            }
        };
        if !self.stream {
            return Reply::ok(done(message));
        }
        let mut lines: Vec<Value> = match &self.content {
            Content::Text(text) => {
                words(text).into_iter().map(|w| partial(json!({"role": "assistant", "content": w}))).collect()
            }
            // Ollama sends tool calls whole, in one line.
            Content::Calls(_) => vec![partial(message)],
        };
        lines.push(done(json!({"role": "assistant", "content": ""})));
        let frames = lines.iter().map(|l| format!("{l}\n")).collect();
        Reply::Stream { content_type: "application/x-ndjson", frames }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

/// The problems found in a request, each as `where: what`.
#[derive(Default)]
struct Check {
    problems: Vec<String>,
}

/// `parent.key` (or `key` at the top).
fn at(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// A field that is there and not `null` (providers read a `null` as an absent field).
fn present<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `name` is 1 to `max` characters of ASCII letters, digits and `extra`.
fn valid_name(name: &str, max: usize, extra: &str) -> bool {
    !name.is_empty() && name.len() <= max && name.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

impl Check {
    fn fail(&mut self, place: &str, what: impl fmt::Display) {
        self.problems.push(format!("{place}: {what}"));
    }

    fn object<'v>(&mut self, value: &'v Value, place: &str) -> Option<&'v Map<String, Value>> {
        let obj = value.as_object();
        if obj.is_none() {
            self.fail(place, "must be an object");
        }
        obj
    }

    /// Fails the fields of `obj` not in `fields` (providers that reject unknown fields).
    fn known(&mut self, obj: &Map<String, Value>, fields: &[&str], place: &str) {
        for key in obj.keys() {
            if !fields.contains(&key.as_str()) {
                self.fail(&at(place, key), "is not a field of this API");
            }
        }
    }

    fn required<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, place: &str) -> Option<&'v Value> {
        let value = present(obj, key);
        if value.is_none() {
            self.fail(&at(place, key), "is required");
        }
        value
    }

    fn string<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, place: &str) -> Option<&'v str> {
        let value = self.required(obj, key, place)?;
        let text = value.as_str();
        if text.is_none() {
            self.fail(&at(place, key), "must be a string");
        }
        text
    }

    fn opt_string<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, place: &str) -> Option<&'v str> {
        let value = present(obj, key)?;
        let text = value.as_str();
        if text.is_none() {
            self.fail(&at(place, key), "must be a string");
        }
        text
    }

    fn opt_bool(&mut self, obj: &Map<String, Value>, key: &str, place: &str) -> Option<bool> {
        let value = present(obj, key)?;
        let flag = value.as_bool();
        if flag.is_none() {
            self.fail(&at(place, key), "must be a boolean");
        }
        flag
    }

    fn opt_object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        place: &str,
    ) -> Option<&'v Map<String, Value>> {
        let value = present(obj, key)?;
        self.object(value, &at(place, key))
    }

    fn required_object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        place: &str,
    ) -> Option<&'v Map<String, Value>> {
        let value = self.required(obj, key, place)?;
        self.object(value, &at(place, key))
    }

    fn array<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, place: &str) -> Option<&'v [Value]> {
        let value = self.required(obj, key, place)?;
        self.as_array(value, &at(place, key))
    }

    fn opt_array<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, place: &str) -> Option<&'v [Value]> {
        let value = present(obj, key)?;
        self.as_array(value, &at(place, key))
    }

    fn as_array<'v>(&mut self, value: &'v Value, place: &str) -> Option<&'v [Value]> {
        let items = value.as_array().map(Vec::as_slice);
        if items.is_none() {
            self.fail(place, "must be an array");
        }
        items
    }

    /// An integer of at least `min`, when present.
    fn opt_count(&mut self, obj: &Map<String, Value>, key: &str, place: &str, min: u64) -> Option<u64> {
        let value = present(obj, key)?;
        match value.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                self.fail(&at(place, key), format!("must be an integer of at least {min}"));
                None
            }
        }
    }

    /// A number in `low..=high`, when present.
    fn opt_number(&mut self, obj: &Map<String, Value>, key: &str, place: &str, low: f64, high: f64) {
        if let Some(value) = present(obj, key) {
            match value.as_f64() {
                Some(x) if (low..=high).contains(&x) => {}
                _ => self.fail(&at(place, key), format!("must be a number from {low} to {high}")),
            }
        }
    }

    fn one_of(&mut self, value: &str, allowed: &[&str], place: &str) -> bool {
        let ok = allowed.contains(&value);
        if !ok {
            self.fail(place, format!("`{value}` is not one of {}", allowed.join(", ")));
        }
        ok
    }

    /// A string or an array of strings, when present.
    fn opt_strings(&mut self, obj: &Map<String, Value>, key: &str, place: &str) {
        match present(obj, key) {
            None | Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => self.fail(&at(place, key), "must be a string or an array of strings"),
        }
    }
}

// -- OpenAI chat completions: https://platform.openai.com/docs/api-reference/chat/create

const OPENAI_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "reasoning_effort",
    "verbosity",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "store",
    "metadata",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
];

fn inspect_openai(body: &Value, c: &mut Check) -> Inspected {
    let Some(obj) = c.object(body, "body") else { return Inspected::default() };
    c.known(obj, OPENAI_FIELDS, "");
    let model = c.string(obj, "model", "").unwrap_or_default().to_string();
    let stream = c.opt_bool(obj, "stream", "").unwrap_or(false);
    let mut include_usage = false;
    if present(obj, "stream_options").is_some() {
        if !stream {
            c.fail("stream_options", "is only allowed when stream is true");
        }
        if let Some(options) = c.opt_object(obj, "stream_options", "") {
            c.known(options, &["include_usage", "include_obfuscation"], "stream_options");
            include_usage = c.opt_bool(options, "include_usage", "stream_options").unwrap_or(false);
            c.opt_bool(options, "include_obfuscation", "stream_options");
        }
    }

    let mut turn = 0;
    if let Some(messages) = c.array(obj, "messages", "") {
        if messages.is_empty() {
            c.fail("messages", "must not be empty");
        }
        // The tool calls of the last assistant message that no tool message answered yet.
        let mut unanswered: Vec<String> = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let place = format!("messages[{i}]");
            let Some(m) = c.object(message, &place) else { continue };
            let Some(role) = c.string(m, "role", &place) else { continue };
            if role != "tool" && !unanswered.is_empty() {
                c.fail(&place, format!("comes before tool messages answer the tool calls {}", unanswered.join(", ")));
                unanswered.clear();
            }
            match role {
                "system" | "developer" => {
                    c.known(m, &["role", "content", "name"], &place);
                    openai_content(c, m, &place, &["text"], true);
                }
                "user" => {
                    c.known(m, &["role", "content", "name"], &place);
                    openai_content(c, m, &place, &["text", "image_url", "input_audio", "file"], true);
                }
                "assistant" => {
                    turn += 1;
                    c.known(m, &["role", "content", "name", "tool_calls", "refusal", "audio", "function_call"], &place);
                    let has_text = openai_content(c, m, &place, &["text", "refusal"], false);
                    let calls = c.opt_array(m, "tool_calls", &place).unwrap_or_default();
                    for (j, call) in calls.iter().enumerate() {
                        if let Some(id) = openai_tool_call(c, call, &format!("{place}.tool_calls[{j}]")) {
                            unanswered.push(id);
                        }
                    }
                    if !has_text && calls.is_empty() {
                        c.fail(&place, "needs content or tool_calls");
                    }
                }
                "tool" => {
                    c.known(m, &["role", "content", "tool_call_id"], &place);
                    openai_content(c, m, &place, &["text"], true);
                    if let Some(id) = c.string(m, "tool_call_id", &place) {
                        match unanswered.iter().position(|u| u == id) {
                            Some(k) => {
                                unanswered.remove(k);
                            }
                            None => c.fail(
                                &at(&place, "tool_call_id"),
                                format!("`{id}` answers no unanswered tool call of the preceding assistant message"),
                            ),
                        }
                    }
                }
                other => {
                    c.one_of(other, &["system", "developer", "user", "assistant", "tool"], &at(&place, "role"));
                }
            }
        }
        if !unanswered.is_empty() {
            c.fail("messages", format!("end before tool messages answer the tool calls {}", unanswered.join(", ")));
        }
    }

    for (i, tool) in c.opt_array(obj, "tools", "").unwrap_or_default().iter().enumerate() {
        let place = format!("tools[{i}]");
        let Some(t) = c.object(tool, &place) else { continue };
        c.known(t, &["type", "function"], &place);
        if let Some(kind) = c.string(t, "type", &place) {
            c.one_of(kind, &["function"], &at(&place, "type"));
        }
        if let Some(f) = c.required_object(t, "function", &place) {
            let place = at(&place, "function");
            c.known(f, &["name", "description", "parameters", "strict"], &place);
            if let Some(name) = c.string(f, "name", &place)
                && !valid_name(name, 64, "_-")
            {
                c.fail(&at(&place, "name"), "must be 1 to 64 letters, digits, underscores and dashes");
            }
            c.opt_string(f, "description", &place);
            c.opt_object(f, "parameters", &place);
            c.opt_bool(f, "strict", &place);
        }
    }
    match present(obj, "tool_choice") {
        None => {}
        Some(Value::String(choice)) => {
            c.one_of(choice, &["none", "auto", "required"], "tool_choice");
        }
        Some(Value::Object(choice)) => {
            if let Some(kind) = c.string(choice, "type", "tool_choice") {
                c.one_of(kind, &["function", "allowed_tools", "custom"], "tool_choice.type");
            }
        }
        Some(_) => c.fail("tool_choice", "must be a string or an object"),
    }
    if let Some(format) = c.opt_object(obj, "response_format", "") {
        match c.string(format, "type", "response_format") {
            Some("text" | "json_object") => c.known(format, &["type"], "response_format"),
            Some("json_schema") => {
                c.known(format, &["type", "json_schema"], "response_format");
                if let Some(spec) = c.required_object(format, "json_schema", "response_format") {
                    let place = "response_format.json_schema";
                    c.known(spec, &["name", "description", "schema", "strict"], place);
                    if let Some(name) = c.string(spec, "name", place)
                        && !valid_name(name, 64, "_-")
                    {
                        c.fail(&at(place, "name"), "must be 1 to 64 letters, digits, underscores and dashes");
                    }
                    c.opt_string(spec, "description", place);
                    c.opt_object(spec, "schema", place);
                    c.opt_bool(spec, "strict", place);
                }
            }
            Some(other) => {
                c.one_of(other, &["text", "json_object", "json_schema"], "response_format.type");
            }
            None => {}
        }
    }
    c.opt_count(obj, "max_tokens", "", 1);
    c.opt_count(obj, "max_completion_tokens", "", 1);
    let reasoning_model = ["o1", "o3", "o4", "gpt-5"].iter().any(|p| model.starts_with(p));
    if reasoning_model && present(obj, "max_tokens").is_some() {
        c.fail("max_tokens", format!("is not supported with {model}: use max_completion_tokens"));
    }
    c.opt_number(obj, "temperature", "", 0.0, 2.0);
    c.opt_number(obj, "top_p", "", 0.0, 1.0);
    c.opt_strings(obj, "stop", "");
    c.opt_bool(obj, "parallel_tool_calls", "");
    Inspected { model, stream, turn, include_usage, sse: false }
}

/// Checks a message's `content` (a string, or an array of parts of `kinds`); returns whether it
/// has any (a string, or a non-empty array).
fn openai_content(c: &mut Check, m: &Map<String, Value>, place: &str, kinds: &[&str], required: bool) -> bool {
    let place = at(place, "content");
    match present(m, "content") {
        None => {
            if required {
                c.fail(&place, "is required");
            }
            false
        }
        Some(Value::String(_)) => true,
        Some(Value::Array(parts)) => {
            for (k, part) in parts.iter().enumerate() {
                let place = format!("{place}[{k}]");
                let Some(p) = c.object(part, &place) else { continue };
                let Some(kind) = c.string(p, "type", &place) else { continue };
                if !c.one_of(kind, kinds, &at(&place, "type")) {
                    continue;
                }
                match kind {
                    "text" => {
                        c.string(p, "text", &place);
                    }
                    "refusal" => {
                        c.string(p, "refusal", &place);
                    }
                    "image_url" => {
                        if let Some(image) = c.required_object(p, "image_url", &place) {
                            c.string(image, "url", &at(&place, "image_url"));
                        }
                    }
                    "input_audio" => {
                        if let Some(audio) = c.required_object(p, "input_audio", &place) {
                            c.string(audio, "data", &at(&place, "input_audio"));
                            c.string(audio, "format", &at(&place, "input_audio"));
                        }
                    }
                    _ => {
                        c.required_object(p, kind, &place);
                    }
                }
            }
            !parts.is_empty()
        }
        Some(_) => {
            c.fail(&place, "must be a string or an array of content parts");
            false
        }
    }
}

/// Checks an assistant message's tool call; returns its id.
fn openai_tool_call(c: &mut Check, call: &Value, place: &str) -> Option<String> {
    let call = c.object(call, place)?;
    c.known(call, &["id", "type", "function"], place);
    if let Some(kind) = c.string(call, "type", place) {
        c.one_of(kind, &["function"], &at(place, "type"));
    }
    if let Some(f) = c.required_object(call, "function", place) {
        let place = at(place, "function");
        c.known(f, &["name", "arguments"], &place);
        c.string(f, "name", &place);
        match present(f, "arguments") {
            None => c.fail(&at(&place, "arguments"), "is required"),
            Some(Value::String(text)) => {
                if serde_json::from_str::<Value>(text).is_err() {
                    c.fail(&at(&place, "arguments"), "is not JSON text");
                }
            }
            Some(_) => c.fail(&at(&place, "arguments"), "must be a string holding the arguments' JSON"),
        }
    }
    c.string(call, "id", place).map(str::to_string)
}

// -- Anthropic messages: https://docs.anthropic.com/en/api/messages

const ANTHROPIC_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "thinking",
    "output_config",
    "output_format",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
];

/// Server-side content blocks: checked by the provider, not here.
const ANTHROPIC_SERVER_BLOCKS: &[&str] = &[
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
    "search_result",
];

fn inspect_anthropic(body: &Value, c: &mut Check) -> Inspected {
    let Some(obj) = c.object(body, "body") else { return Inspected::default() };
    c.known(obj, ANTHROPIC_FIELDS, "");
    let model = c.string(obj, "model", "").unwrap_or_default().to_string();
    let stream = c.opt_bool(obj, "stream", "").unwrap_or(false);
    if present(obj, "max_tokens").is_none() {
        c.fail("max_tokens", "is required");
    }
    c.opt_count(obj, "max_tokens", "", 1);

    match present(obj, "system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, block) in blocks.iter().enumerate() {
                let place = format!("system[{i}]");
                if let Some(b) = c.object(block, &place) {
                    c.known(b, &["type", "text", "cache_control", "citations"], &place);
                    if let Some(kind) = c.string(b, "type", &place) {
                        c.one_of(kind, &["text"], &at(&place, "type"));
                    }
                    c.string(b, "text", &place);
                }
            }
        }
        Some(_) => c.fail("system", "must be a string or an array of text blocks"),
    }

    let mut turn = 0;
    if let Some(messages) = c.array(obj, "messages", "") {
        if messages.is_empty() {
            c.fail("messages", "must not be empty");
        }
        // Consecutive messages of one role make one turn; the tool_use ids of the last assistant
        // turn must all be answered by tool_result blocks, first in the user turn right after it.
        let mut asked: Vec<String> = Vec::new();
        let mut answering = false;
        let mut answered: Vec<String> = Vec::new();
        let mut other_blocks_seen = false;
        let mut answer_start = 0;
        let mut previous_role = "";
        for (i, message) in messages.iter().enumerate() {
            let place = format!("messages[{i}]");
            let Some(m) = c.object(message, &place) else { continue };
            c.known(m, &["role", "content"], &place);
            let Some(role) = c.string(m, "role", &place) else { continue };
            if !c.one_of(role, &["user", "assistant"], &at(&place, "role")) {
                continue;
            }
            if role != previous_role {
                if answering {
                    anthropic_unanswered(c, &asked, &answered, answer_start);
                    asked.clear();
                    answered.clear();
                    answering = false;
                }
                if role == "user" {
                    answering = !asked.is_empty();
                    answer_start = i;
                    other_blocks_seen = false;
                }
                previous_role = role;
            }
            if role == "assistant" {
                turn += 1;
            }
            let place = at(&place, "content");
            match present(m, "content") {
                None => c.fail(&place, "is required"),
                Some(Value::String(text)) => {
                    other_blocks_seen = true;
                    let final_assistant = role == "assistant" && i + 1 == messages.len();
                    if text.is_empty() && !final_assistant {
                        c.fail(&place, "must not be empty (only a final assistant message may be)");
                    }
                }
                Some(Value::Array(blocks)) => {
                    if blocks.is_empty() {
                        c.fail(&place, "must not be empty");
                    }
                    for (k, block) in blocks.iter().enumerate() {
                        let place = format!("{place}[{k}]");
                        match anthropic_block(c, block, role, &place) {
                            Some(AnthropicBlock::ToolUse(id)) => asked.push(id),
                            Some(AnthropicBlock::ToolResult(id)) => {
                                if other_blocks_seen {
                                    c.fail(&place, "tool_result blocks must come before any other content of the turn");
                                }
                                if !asked.contains(&id) {
                                    c.fail(
                                        &place,
                                        format!("`{id}` answers no tool_use of the previous assistant turn"),
                                    );
                                }
                                answered.push(id);
                            }
                            Some(AnthropicBlock::Other) => other_blocks_seen = true,
                            None => {}
                        }
                    }
                }
                Some(_) => c.fail(&place, "must be a string or an array of content blocks"),
            }
        }
        if answering {
            anthropic_unanswered(c, &asked, &answered, answer_start);
        } else if !asked.is_empty() {
            c.fail("messages", format!("end with tool_use blocks {} that no tool_result answers", asked.join(", ")));
        }
    }

    for (i, tool) in c.opt_array(obj, "tools", "").unwrap_or_default().iter().enumerate() {
        let place = format!("tools[{i}]");
        let Some(t) = c.object(tool, &place) else { continue };
        match c.opt_string(t, "type", &place) {
            Some(kind) if kind != "custom" => {
                // A server tool (web_search_20250305, ...): its own fields.
                c.string(t, "name", &place);
            }
            _ => {
                c.known(
                    t,
                    &[
                        "type",
                        "name",
                        "description",
                        "input_schema",
                        "cache_control",
                        "strict",
                        "eager_input_streaming",
                    ],
                    &place,
                );
                if let Some(name) = c.string(t, "name", &place)
                    && !valid_name(name, 128, "_-")
                {
                    c.fail(&at(&place, "name"), "must be 1 to 128 letters, digits, underscores and dashes");
                }
                c.opt_string(t, "description", &place);
                if let Some(schema) = c.required_object(t, "input_schema", &place)
                    && schema.get("type").and_then(Value::as_str) != Some("object")
                {
                    c.fail(&at(&place, "input_schema.type"), "must be \"object\"");
                }
                c.opt_bool(t, "strict", &place);
            }
        }
    }
    if let Some(choice) = c.opt_object(obj, "tool_choice", "") {
        c.known(choice, &["type", "name", "disable_parallel_tool_use"], "tool_choice");
        if let Some(kind) = c.string(choice, "type", "tool_choice")
            && c.one_of(kind, &["auto", "any", "tool", "none"], "tool_choice.type")
            && kind == "tool"
        {
            c.string(choice, "name", "tool_choice");
        }
        c.opt_bool(choice, "disable_parallel_tool_use", "tool_choice");
    }
    if let Some(config) = c.opt_object(obj, "output_config", "") {
        c.known(config, &["format", "effort"], "output_config");
        if let Some(format) = c.opt_object(config, "format", "output_config") {
            anthropic_format(c, format, "output_config.format");
        }
        if let Some(effort) = c.opt_string(config, "effort", "output_config") {
            c.one_of(effort, &["low", "medium", "high", "xhigh", "max"], "output_config.effort");
        }
    }
    if let Some(format) = c.opt_object(obj, "output_format", "") {
        anthropic_format(c, format, "output_format");
    }
    if let Some(thinking) = c.opt_object(obj, "thinking", "")
        && let Some(kind) = c.string(thinking, "type", "thinking")
        && c.one_of(kind, &["enabled", "disabled", "adaptive"], "thinking.type")
        && kind == "enabled"
        && present(thinking, "budget_tokens").is_none()
    {
        c.fail("thinking.budget_tokens", "is required when thinking is enabled");
    }
    c.opt_number(obj, "temperature", "", 0.0, 1.0);
    c.opt_number(obj, "top_p", "", 0.0, 1.0);
    c.opt_count(obj, "top_k", "", 0);
    if let Some(stops) = c.opt_array(obj, "stop_sequences", "")
        && !stops.iter().all(Value::is_string)
    {
        c.fail("stop_sequences", "must be an array of strings");
    }
    Inspected { model, stream, turn, include_usage: false, sse: false }
}

/// Fails the user turn starting at message `start` for the tool_use ids of the assistant turn
/// before it that it has no tool_result for.
fn anthropic_unanswered(c: &mut Check, asked: &[String], answered: &[String], start: usize) {
    let missing: Vec<&str> = asked.iter().filter(|id| !answered.contains(id)).map(String::as_str).collect();
    if !missing.is_empty() {
        c.fail(
            &format!("messages[{start}]"),
            format!("has no tool_result for {} (tool_use of the assistant turn before it)", missing.join(", ")),
        );
    }
}

enum AnthropicBlock {
    ToolUse(String),
    ToolResult(String),
    Other,
}

fn anthropic_block(c: &mut Check, block: &Value, role: &str, place: &str) -> Option<AnthropicBlock> {
    let b = c.object(block, place)?;
    let kind = c.string(b, "type", place)?;
    let assistant_only = ["tool_use", "thinking", "redacted_thinking"];
    if assistant_only.contains(&kind) && role != "assistant" {
        c.fail(place, format!("a {kind} block belongs in an assistant message"));
    }
    if kind == "tool_result" && role != "user" {
        c.fail(place, "a tool_result block belongs in a user message");
    }
    match kind {
        "text" => {
            c.known(b, &["type", "text", "cache_control", "citations"], place);
            if c.string(b, "text", place).is_some_and(str::is_empty) {
                c.fail(&at(place, "text"), "must not be empty");
            }
        }
        "image" | "document" => {
            c.known(b, &["type", "source", "cache_control", "title", "context", "citations"], place);
            if let Some(source) = c.required_object(b, "source", place) {
                c.string(source, "type", &at(place, "source"));
            }
        }
        "tool_use" => {
            c.known(b, &["type", "id", "name", "input", "cache_control"], place);
            let id = c.string(b, "id", place);
            if let Some(id) = id
                && !valid_name(id, 256, "_-")
            {
                c.fail(&at(place, "id"), "must be letters, digits, underscores and dashes");
            }
            c.string(b, "name", place);
            c.required_object(b, "input", place);
            return id.map(|id| AnthropicBlock::ToolUse(id.to_string()));
        }
        "tool_result" => {
            c.known(b, &["type", "tool_use_id", "content", "is_error", "cache_control"], place);
            match present(b, "content") {
                None | Some(Value::String(_)) => {}
                Some(Value::Array(items)) => {
                    for (k, item) in items.iter().enumerate() {
                        let place = format!("{place}.content[{k}]");
                        if let Some(item) = c.object(item, &place)
                            && let Some(kind) = c.string(item, "type", &place)
                        {
                            c.one_of(kind, &["text", "image", "document", "search_result"], &at(&place, "type"));
                        }
                    }
                }
                Some(_) => c.fail(&at(place, "content"), "must be a string or an array of content blocks"),
            }
            c.opt_bool(b, "is_error", place);
            return c.string(b, "tool_use_id", place).map(|id| AnthropicBlock::ToolResult(id.to_string()));
        }
        "thinking" => {
            c.known(b, &["type", "thinking", "signature"], place);
            c.string(b, "thinking", place);
            c.string(b, "signature", place);
        }
        "redacted_thinking" => {
            c.known(b, &["type", "data"], place);
            c.string(b, "data", place);
        }
        other if ANTHROPIC_SERVER_BLOCKS.contains(&other) => {}
        other => c.fail(&at(place, "type"), format!("`{other}` is not a content block type")),
    }
    Some(AnthropicBlock::Other)
}

/// `{"type": "json_schema", "schema": {..}}`: structured output.
fn anthropic_format(c: &mut Check, format: &Map<String, Value>, place: &str) {
    c.known(format, &["type", "schema"], place);
    if let Some(kind) = c.string(format, "type", place) {
        c.one_of(kind, &["json_schema"], &at(place, "type"));
    }
    c.required_object(format, "schema", place);
}

// -- Gemini generateContent: https://ai.google.dev/api/generate-content
//
// Gemini reads its JSON fields in camelCase or snake_case alike: the checks look a field up as
// written here (camelCase) or in its snake_case form.

const GEMINI_FIELDS: &[&str] =
    &["contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent"];

const GEMINI_GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];

/// The data fields of a part: a part has exactly one.
const GEMINI_PART_DATA: &[&str] =
    &["text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"];

/// The other fields a part may have.
const GEMINI_PART_META: &[&str] = &["thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"];

const GEMINI_TOOLS: &[&str] = &[
    "functionDeclarations",
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "urlContext",
    "computerUse",
    "fileSearch",
    "googleMaps",
];

/// `maxOutputTokens` → `max_output_tokens`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for ch in camel.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `max_output_tokens` → `maxOutputTokens`.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for ch in key.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.push(ch.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Field `camel_key` of a Gemini object, in either spelling.
fn gemini_get<'v>(obj: &'v Map<String, Value>, camel_key: &str) -> Option<&'v Value> {
    present(obj, camel_key).or_else(|| present(obj, &snake(camel_key)))
}

/// Fails the fields of `obj` that are not in `fields` in either spelling.
fn gemini_known(c: &mut Check, obj: &Map<String, Value>, fields: &[&str], place: &str) {
    for key in obj.keys() {
        if !fields.contains(&camel(key).as_str()) {
            c.fail(&at(place, key), "is not a field of this API");
        }
    }
}

fn gemini_object<'v>(
    c: &mut Check,
    obj: &'v Map<String, Value>,
    key: &str,
    place: &str,
) -> Option<&'v Map<String, Value>> {
    let value = gemini_get(obj, key)?;
    c.object(value, &at(place, key))
}

fn inspect_gemini(body: &Value, c: &mut Check) -> Inspected {
    let Some(obj) = c.object(body, "body") else { return Inspected::default() };
    gemini_known(c, obj, GEMINI_FIELDS, "");

    let mut turn = 0;
    match gemini_get(obj, "contents") {
        None => c.fail("contents", "is required"),
        Some(contents) => {
            let contents = c.as_array(contents, "contents").unwrap_or_default();
            if contents.is_empty() {
                c.fail("contents", "must not be empty");
            }
            // The function calls (name, id) of the previous model turn, which the next turn must
            // answer with as many function responses.
            let mut calls: Vec<(String, Option<String>)> = Vec::new();
            for (i, content) in contents.iter().enumerate() {
                let place = format!("contents[{i}]");
                let Some(content) = c.object(content, &place) else { continue };
                gemini_known(c, content, &["role", "parts"], &place);
                let role = match gemini_get(content, "role") {
                    None => "user",
                    Some(Value::String(role)) => role.as_str(),
                    Some(_) => {
                        c.fail(&at(&place, "role"), "must be a string");
                        "user"
                    }
                };
                if !c.one_of(role, &["user", "model"], &at(&place, "role")) {
                    continue;
                }
                let mut parts_calls: Vec<(String, Option<String>)> = Vec::new();
                let mut responses: Vec<(String, Option<String>)> = Vec::new();
                match gemini_get(content, "parts") {
                    None => c.fail(&at(&place, "parts"), "is required"),
                    Some(parts) => {
                        let parts = c.as_array(parts, &at(&place, "parts")).unwrap_or_default();
                        if parts.is_empty() {
                            c.fail(&at(&place, "parts"), "must not be empty");
                        }
                        for (k, part) in parts.iter().enumerate() {
                            let place = format!("{place}.parts[{k}]");
                            match gemini_part(c, part, role, &place) {
                                Some(GeminiPart::Call(name, id)) => parts_calls.push((name, id)),
                                Some(GeminiPart::Response(name, id)) => responses.push((name, id)),
                                _ => {}
                            }
                        }
                    }
                }
                if role == "model" {
                    turn += 1;
                    if !calls.is_empty() {
                        c.fail(&place, "follows a turn of function calls that no function response turn answers");
                    }
                    calls = parts_calls;
                } else {
                    if !calls.is_empty() && responses.len() != calls.len() {
                        c.fail(
                            &place,
                            format!(
                                "has {} function responses for the {} function calls of the previous turn",
                                responses.len(),
                                calls.len()
                            ),
                        );
                    }
                    if calls.is_empty() && !responses.is_empty() {
                        c.fail(&place, "has function responses but the previous turn made no function calls");
                    }
                    for (name, id) in &responses {
                        let matched = calls.iter().any(|(call_name, call_id)| {
                            call_name == name && (id.is_none() || call_id.is_none() || id == call_id)
                        });
                        if !calls.is_empty() && !matched {
                            c.fail(
                                &place,
                                format!("the function response `{name}` answers no call of the previous turn"),
                            );
                        }
                    }
                    calls.clear();
                }
            }
            if !calls.is_empty() {
                c.fail("contents", "end with function calls that no function response answers");
            }
        }
    }

    if let Some(system) = gemini_object(c, obj, "systemInstruction", "") {
        gemini_known(c, system, &["role", "parts"], "systemInstruction");
        match gemini_get(system, "parts") {
            None => c.fail("systemInstruction.parts", "is required"),
            Some(parts) => {
                for (k, part) in c.as_array(parts, "systemInstruction.parts").unwrap_or_default().iter().enumerate() {
                    let place = format!("systemInstruction.parts[{k}]");
                    if let Some(part) = c.object(part, &place) {
                        c.string(part, "text", &place);
                    }
                }
            }
        }
    }

    if let Some(tools) = gemini_get(obj, "tools") {
        for (i, tool) in c.as_array(tools, "tools").unwrap_or_default().iter().enumerate() {
            let place = format!("tools[{i}]");
            let Some(tool) = c.object(tool, &place) else { continue };
            gemini_known(c, tool, GEMINI_TOOLS, &place);
            let Some(declarations) = gemini_get(tool, "functionDeclarations") else { continue };
            let place = at(&place, "functionDeclarations");
            for (k, declaration) in c.as_array(declarations, &place).unwrap_or_default().iter().enumerate() {
                let place = format!("{place}[{k}]");
                let Some(d) = c.object(declaration, &place) else { continue };
                gemini_known(
                    c,
                    d,
                    &[
                        "name",
                        "description",
                        "parameters",
                        "parametersJsonSchema",
                        "response",
                        "responseJsonSchema",
                        "behavior",
                    ],
                    &place,
                );
                if let Some(name) = c.string(d, "name", &place)
                    && !(valid_name(name, 64, "_.:-")
                        && name.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_'))
                {
                    c.fail(
                        &at(&place, "name"),
                        "must start with a letter or an underscore and be at most 64 letters, digits, underscores, dots, colons and dashes",
                    );
                }
                c.opt_string(d, "description", &place);
                let parameters = gemini_object(c, d, "parameters", &place).is_some();
                let json_parameters = gemini_object(c, d, "parametersJsonSchema", &place).is_some();
                if parameters && json_parameters {
                    c.fail(&place, "has both parameters and parametersJsonSchema");
                }
            }
        }
    }
    gemini_object(c, obj, "toolConfig", "");

    if let Some(config) = gemini_object(c, obj, "generationConfig", "") {
        let place = "generationConfig";
        gemini_known(c, config, GEMINI_GENERATION_FIELDS, place);
        let schema = gemini_object(c, config, "responseSchema", place).is_some();
        let json_schema = gemini_object(c, config, "responseJsonSchema", place).is_some();
        if schema && json_schema {
            c.fail(place, "has both responseSchema and responseJsonSchema");
        }
        let mime = gemini_get(config, "responseMimeType");
        if let Some(mime) = mime
            && !mime.is_string()
        {
            c.fail("generationConfig.responseMimeType", "must be a string");
        }
        if (schema || json_schema) && mime.and_then(Value::as_str) != Some("application/json") {
            c.fail("generationConfig.responseMimeType", "must be application/json when a response schema is given");
        }
        for (key, min) in [("maxOutputTokens", 1), ("candidateCount", 1), ("topK", 0)] {
            if let Some(value) = gemini_get(config, key)
                && value.as_u64().is_none_or(|n| n < min)
            {
                c.fail(&at(place, key), format!("must be an integer of at least {min}"));
            }
        }
        for (key, high) in [("temperature", 2.0), ("topP", 1.0)] {
            if let Some(value) = gemini_get(config, key)
                && value.as_f64().is_none_or(|x| !(0.0..=high).contains(&x))
            {
                c.fail(&at(place, key), format!("must be a number from 0 to {high}"));
            }
        }
    }
    Inspected { turn, ..Inspected::default() }
}

enum GeminiPart {
    Call(String, Option<String>),
    Response(String, Option<String>),
    Other,
}

fn gemini_part(c: &mut Check, part: &Value, role: &str, place: &str) -> Option<GeminiPart> {
    let p = c.object(part, place)?;
    let mut fields = GEMINI_PART_DATA.to_vec();
    fields.extend_from_slice(GEMINI_PART_META);
    gemini_known(c, p, &fields, place);
    let data: Vec<&str> = GEMINI_PART_DATA.iter().copied().filter(|key| gemini_get(p, key).is_some()).collect();
    if data.len() != 1 {
        c.fail(place, format!("needs exactly one of {} (has {})", GEMINI_PART_DATA.join(", "), data.len()));
        return None;
    }
    let key = data[0];
    let value = gemini_get(p, key)?;
    let place = at(place, key);
    let id = |c: &mut Check, obj: &Map<String, Value>| c.opt_string(obj, "id", &place).map(str::to_string);
    match key {
        "text" => {
            if !value.is_string() {
                c.fail(&place, "must be a string");
            }
        }
        "inlineData" | "fileData" => {
            let obj = c.object(value, &place)?;
            let (first, second) = if key == "inlineData" { ("mimeType", "data") } else { ("mimeType", "fileUri") };
            gemini_known(c, obj, &[first, second], &place);
            for field in [first, second] {
                if !gemini_get(obj, field).is_some_and(Value::is_string) {
                    c.fail(&at(&place, field), "is required (a string)");
                }
            }
        }
        "functionCall" => {
            if role != "model" {
                c.fail(&place, "a function call belongs in a model turn");
            }
            let obj = c.object(value, &place)?;
            gemini_known(c, obj, &["id", "name", "args"], &place);
            let name = c.string(obj, "name", &place)?.to_string();
            c.opt_object(obj, "args", &place);
            return Some(GeminiPart::Call(name, id(c, obj)));
        }
        "functionResponse" => {
            if role != "user" {
                c.fail(&place, "a function response belongs in a user turn");
            }
            let obj = c.object(value, &place)?;
            gemini_known(c, obj, &["id", "name", "response", "parts", "willContinue", "scheduling"], &place);
            let name = c.string(obj, "name", &place);
            c.required_object(obj, "response", &place);
            let name = name?.to_string();
            return Some(GeminiPart::Response(name, id(c, obj)));
        }
        _ => {
            c.object(value, &place);
        }
    }
    Some(GeminiPart::Other)
}

// -- Ollama chat: https://docs.ollama.com/api/chat (Ollama ignores fields it does not know)

fn inspect_ollama(body: &Value, c: &mut Check) -> Inspected {
    let Some(obj) = c.object(body, "body") else { return Inspected::default() };
    let model = c.string(obj, "model", "").unwrap_or_default().to_string();
    // Ollama streams unless told not to.
    let stream = c.opt_bool(obj, "stream", "").unwrap_or(true);
    let mut turn = 0;
    for (i, message) in c.opt_array(obj, "messages", "").unwrap_or_default().iter().enumerate() {
        let place = format!("messages[{i}]");
        let Some(m) = c.object(message, &place) else { continue };
        if let Some(role) = c.string(m, "role", &place)
            && c.one_of(role, &["system", "user", "assistant", "tool"], &at(&place, "role"))
            && role == "assistant"
        {
            turn += 1;
        }
        c.opt_string(m, "content", &place);
        c.opt_string(m, "thinking", &place);
        c.opt_string(m, "tool_name", &place);
        if let Some(images) = c.opt_array(m, "images", &place)
            && !images.iter().all(Value::is_string)
        {
            c.fail(&at(&place, "images"), "must be an array of base64 strings");
        }
        for (j, call) in c.opt_array(m, "tool_calls", &place).unwrap_or_default().iter().enumerate() {
            let place = format!("{place}.tool_calls[{j}]");
            let Some(call) = c.object(call, &place) else { continue };
            c.opt_string(call, "id", &place);
            if let Some(f) = c.required_object(call, "function", &place) {
                let place = at(&place, "function");
                c.string(f, "name", &place);
                match present(f, "arguments") {
                    None => c.fail(&at(&place, "arguments"), "is required"),
                    Some(Value::Object(_)) => {}
                    Some(_) => c.fail(&at(&place, "arguments"), "must be an object (not JSON text)"),
                }
            }
        }
    }
    for (i, tool) in c.opt_array(obj, "tools", "").unwrap_or_default().iter().enumerate() {
        let place = format!("tools[{i}]");
        let Some(t) = c.object(tool, &place) else { continue };
        if let Some(kind) = c.string(t, "type", &place) {
            c.one_of(kind, &["function"], &at(&place, "type"));
        }
        if let Some(f) = c.required_object(t, "function", &place) {
            let place = at(&place, "function");
            c.string(f, "name", &place);
            c.opt_string(f, "description", &place);
            c.opt_object(f, "parameters", &place);
        }
    }
    match present(obj, "format") {
        None | Some(Value::Object(_)) => {}
        Some(Value::String(format)) => {
            c.one_of(format, &["json"], "format");
        }
        Some(_) => c.fail("format", "must be \"json\" or a JSON schema object"),
    }
    c.opt_object(obj, "options", "");
    match present(obj, "think") {
        None | Some(Value::Bool(_)) => {}
        Some(Value::String(level)) => {
            c.one_of(level, &["low", "medium", "high", "max"], "think");
        }
        Some(_) => c.fail("think", "must be a boolean or a level"),
    }
    match present(obj, "keep_alive") {
        None | Some(Value::String(_) | Value::Number(_)) => {}
        Some(_) => c.fail("keep_alive", "must be a duration string or a number of seconds"),
    }
    Inspected { model, stream, turn, include_usage: false, sse: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use genai::adapter::AdapterKind;
    use genai::chat::{
        ChatMessage, ChatOptions, ChatRequest, ChatResponseFormat, ChatStreamEvent, JsonSpec, StreamEnd, Tool,
        ToolCall, ToolResponse,
    };
    use genai::resolver::{AuthData, Endpoint, ServiceTargetResolver};
    use genai::{Client, ModelIden, ServiceTarget};

    const ANSWER: &str = "It is sunny in Paris, and it is noon.";

    fn adapter(dialect: Dialect) -> AdapterKind {
        match dialect {
            Dialect::OpenAi => AdapterKind::OpenAI,
            Dialect::Anthropic => AdapterKind::Anthropic,
            Dialect::Gemini => AdapterKind::Gemini,
            Dialect::Ollama => AdapterKind::Ollama,
        }
    }

    fn model(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::OpenAi => "gpt-4o",
            Dialect::Anthropic => "claude-sonnet-4-5",
            Dialect::Gemini => "gemini-2.5-flash",
            Dialect::Ollama => "llama3.2",
        }
    }

    /// A genai client that sends every request to `provider` with `key`, on a plain reqwest
    /// client: the endpoint, the key and the adapter all come from the service target resolver.
    fn client(provider: &ScriptedProvider, key: &str) -> Client {
        let kind = adapter(provider.dialect());
        let base = provider.base_url();
        let key = key.to_string();
        let resolver = ServiceTargetResolver::from_resolver_fn(
            move |target: ServiceTarget| -> Result<ServiceTarget, genai::resolver::Error> {
                Ok(ServiceTarget {
                    endpoint: Endpoint::from_owned(base.clone()),
                    auth: AuthData::from_single(key.clone()),
                    model: ModelIden::new(kind, target.model.model_name),
                })
            },
        );
        Client::builder()
            .with_reqwest(reqwest::Client::new())
            .with_service_target_resolver(resolver)
            .build()
            .expect("the client builds")
    }

    async fn start(dialect: Dialect, turns: Vec<Turn>) -> ScriptedProvider {
        ScriptedProvider::start(dialect, Script::new().model(model(dialect), turns)).await.expect("the provider starts")
    }

    fn question() -> ChatRequest {
        let weather = Tool::new("get_weather")
            .with_description("The weather in a city")
            .with_schema(json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}));
        let time = Tool::new("get_time")
            .with_description("The time in a zone")
            .with_schema(json!({"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}));
        ChatRequest::new(vec![ChatMessage::user("What are the weather and the time in Paris?")])
            .with_system("Answer briefly.")
            .with_tools(vec![weather, time])
    }

    fn two_calls() -> Turn {
        Turn::ToolCalls(vec![
            ("get_weather".to_string(), json!({"city": "Paris"})),
            ("get_time".to_string(), json!({"zone": "CET"})),
        ])
    }

    /// The question, the assistant's tool calls, and a tool response to each (one message each).
    fn follow_up(calls: Vec<ToolCall>) -> ChatRequest {
        let responses: Vec<ChatMessage> = calls
            .iter()
            .map(|call| ToolResponse::new(call.call_id.clone(), json!({"answer": call.fn_name}).to_string()).into())
            .collect();
        question().append_message(ChatMessage::from(calls)).append_messages(responses)
    }

    fn summary(calls: &[ToolCall]) -> Vec<(String, String, Value)> {
        calls.iter().map(|c| (c.call_id.clone(), c.fn_name.clone(), c.fn_arguments.clone())).collect()
    }

    fn assert_two_calls(calls: &[ToolCall]) {
        assert_eq!(
            summary(calls),
            vec![
                ("call_0_0".to_string(), "get_weather".to_string(), json!({"city": "Paris"})),
                ("call_0_1".to_string(), "get_time".to_string(), json!({"zone": "CET"})),
            ]
        );
    }

    fn assert_no_violations(provider: &ScriptedProvider) {
        assert_eq!(provider.violations(), Vec::<String>::new(), "requests: {:#?}", provider.requests());
    }

    #[derive(Default)]
    struct Streamed {
        texts: Vec<String>,
        tool_chunks: usize,
        end: Option<StreamEnd>,
    }

    async fn stream(client: &Client, model: &str, request: ChatRequest) -> Result<Streamed, genai::Error> {
        let options =
            ChatOptions::default().with_capture_content(true).with_capture_tool_calls(true).with_capture_usage(true);
        let mut events = client.exec_chat_stream(model, request, Some(&options)).await?.stream;
        let mut streamed = Streamed::default();
        while let Some(event) = events.next().await {
            match event? {
                ChatStreamEvent::Chunk(chunk) => streamed.texts.push(chunk.content),
                ChatStreamEvent::ToolCallChunk(_) => streamed.tool_chunks += 1,
                ChatStreamEvent::End(end) => streamed.end = Some(end),
                _ => {}
            }
        }
        Ok(streamed)
    }

    /// The HTTP error of a failed call: streams wrap it in `Error::WebStream`.
    fn http_error(error: &genai::Error) -> &genai::Error {
        match error {
            genai::Error::WebStream { error: inner, .. } => {
                inner.downcast_ref::<genai::Error>().expect("the stream failed on an HTTP error")
            }
            other => other,
        }
    }

    fn retry_after(error: &genai::Error) -> Option<&str> {
        error.headers()?.get("retry-after")?.to_str().ok()
    }

    /// `http://127.0.0.1:PORT`.
    fn origin(provider: &ScriptedProvider) -> String {
        let base = provider.base_url();
        let end = base["http://".len()..].find('/').map_or(base.len(), |i| i + "http://".len());
        base[..end].to_string()
    }

    async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(url).body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the provider answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("the body arrives");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        (status, body)
    }

    /// Two tool calls, then (with their results in the conversation) a text answer.
    async fn tool_calls_then_text(dialect: Dialect) {
        let model = model(dialect);
        let provider = start(dialect, vec![two_calls(), Turn::Text(ANSWER.to_string())]).await;
        let client = client(&provider, "some-key");

        let first = client.exec_chat(model, question(), None).await.expect("the first turn is answered");
        let calls = first.into_tool_calls();
        assert_two_calls(&calls);
        let again = client.exec_chat(model, question(), None).await.expect("the same question is answered again");
        assert_eq!(summary(&again.into_tool_calls()), summary(&calls), "the same request gets the same answer");

        let second = client.exec_chat(model, follow_up(calls), None).await.expect("the second turn is answered");
        assert_eq!(second.first_text(), Some(ANSWER));
        assert!(second.usage.prompt_tokens.unwrap_or(0) > 0, "{:?}", second.usage);
        assert!(second.usage.completion_tokens.unwrap_or(0) > 0, "{:?}", second.usage);

        assert_no_violations(&provider);
        let requests = provider.requests();
        let seen: Vec<(&str, usize, bool)> = requests.iter().map(|r| (r.model.as_str(), r.turn, r.stream)).collect();
        assert_eq!(seen, [(model, 0, false), (model, 0, false), (model, 1, false)]);
    }

    /// The same, streamed: text in several chunks, tool calls captured.
    async fn streamed(dialect: Dialect) {
        let model = model(dialect);
        let provider = start(dialect, vec![two_calls(), Turn::Text(ANSWER.to_string())]).await;
        let client = client(&provider, "some-key");

        let first = stream(&client, model, question()).await.expect("the first turn streams");
        assert!(first.tool_chunks >= 2, "tool call chunks: {}", first.tool_chunks);
        let calls =
            first.end.expect("the stream ends").captured_into_tool_calls().expect("the tool calls are captured");
        assert_two_calls(&calls);

        let second = stream(&client, model, follow_up(calls)).await.expect("the second turn streams");
        assert!(second.texts.len() > 1, "the text arrives in several chunks: {:?}", second.texts);
        assert_eq!(second.texts.concat(), ANSWER);
        let end = second.end.expect("the stream ends");
        assert_eq!(end.captured_first_text(), Some(ANSWER));
        let usage = end.captured_usage.expect("the usage is captured");
        assert!(usage.prompt_tokens.unwrap_or(0) > 0 && usage.completion_tokens.unwrap_or(0) > 0, "{usage:?}");

        assert_no_violations(&provider);
        let requests = provider.requests();
        assert_eq!(requests.iter().map(|r| (r.turn, r.stream)).collect::<Vec<_>>(), [(0, true), (1, true)]);
        match dialect {
            Dialect::OpenAi => assert_eq!(requests[0].body["stream_options"]["include_usage"], true),
            Dialect::Gemini => {
                assert!(requests[0].path.ends_with(":streamGenerateContent?alt=sse"), "{}", requests[0].path)
            }
            Dialect::Anthropic | Dialect::Ollama => assert_eq!(requests[0].body["stream"], true),
        }
    }

    /// A JSON-schema structured output request: the provider saw its schema mode field.
    async fn structured_output(dialect: Dialect) {
        let model = model(dialect);
        let answer = r#"{"city":"Paris","celsius":21.5}"#;
        let provider = start(dialect, vec![Turn::Text(answer.to_string())]).await;
        let client = client(&provider, "some-key");
        let schema = json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
            "required": ["city", "celsius"],
            "additionalProperties": false,
        });
        let options = ChatOptions::default().with_response_format(JsonSpec::new("weather", schema.clone()));
        let request = ChatRequest::from_user("The weather in Paris, as JSON.");

        let response = client.exec_chat(model, request.clone(), Some(&options)).await.expect("the request is answered");
        let value: Value = serde_json::from_str(response.first_text().expect("a text answer")).expect("JSON");
        assert_eq!(value, json!({"city": "Paris", "celsius": 21.5}));

        let body = provider.requests()[0].body.clone();
        match dialect {
            Dialect::OpenAi => {
                let format = &body["response_format"];
                assert_eq!(format["type"], "json_schema", "{body:#}");
                assert_eq!(format["json_schema"]["name"], "weather");
                assert_eq!(format["json_schema"]["strict"], true);
                assert!(format["json_schema"]["schema"].is_object());
            }
            Dialect::Anthropic => {
                assert_eq!(body["output_config"]["format"]["type"], "json_schema", "{body:#}");
                assert!(body["output_config"]["format"]["schema"].is_object());
            }
            Dialect::Gemini => {
                assert_eq!(body["generationConfig"]["responseMimeType"], "application/json", "{body:#}");
                assert_eq!(body["generationConfig"]["responseJsonSchema"], schema);
            }
            Dialect::Ollama => {
                // genai 0.7.2 drops a JSON schema on Ollama's native API: no `format` at all.
                assert!(body.get("format").is_none(), "{body:#}");
                // JSON mode is sent, as `format: "json"`.
                let json_mode = ChatOptions::default().with_response_format(ChatResponseFormat::JsonMode);
                client.exec_chat(model, request, Some(&json_mode)).await.expect("JSON mode is answered");
                assert_eq!(provider.requests()[1].body["format"], "json");
                // The schema form, as Ollama documents it, sent by hand.
                let raw = json!({
                    "model": model,
                    "messages": [{"role": "user", "content": "The weather in Paris, as JSON."}],
                    "stream": false,
                    "format": schema,
                });
                let (status, reply) = post(&format!("{}/api/chat", origin(&provider)), &[], &raw.to_string()).await;
                assert_eq!(status, 200, "{reply:#}");
                assert_eq!(reply["message"]["content"], answer);
                assert_eq!(reply["done"], true);
            }
        }
        assert_no_violations(&provider);
    }

    /// A 429 with Retry-After, then the answer, for a plain call and for a stream.
    async fn rate_limited(dialect: Dialect) {
        let model = model(dialect);
        let turns = vec![Turn::Fail {
            status: 429,
            retry_after: Some(1),
            message: "Slow down: too many requests.".to_string(),
            then: Box::new(Turn::Text(ANSWER.to_string())),
        }];
        let request = ChatRequest::from_user("Hello?");

        let provider = start(dialect, turns.clone()).await;
        let client = client(&provider, "some-key");
        let error = client.exec_chat(model, request.clone(), None).await.expect_err("the first call is refused");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(429), "{error}");
        assert_eq!(retry_after(&error), Some("1"), "{error:?}");
        assert!(error.to_string().contains("Slow down"), "{error}");
        let answer = client.exec_chat(model, request.clone(), None).await.expect("the retry is answered");
        assert_eq!(answer.first_text(), Some(ANSWER));
        assert_no_violations(&provider);

        let provider = start(dialect, turns).await;
        let client = self::client(&provider, "some-key");
        let failed = stream(&client, model, request.clone()).await.err().expect("the first stream is refused");
        let error = http_error(&failed);
        assert_eq!(error.status().map(|s| s.as_u16()), Some(429), "{failed}");
        assert_eq!(retry_after(error), Some("1"), "{failed:?}");
        assert!(error.to_string().contains("Slow down"), "{error}");
        let streamed = stream(&client, model, request).await.expect("the retry streams");
        assert_eq!(streamed.texts.concat(), ANSWER);
        assert_no_violations(&provider);
    }

    /// A wrong key gets a 401 in the provider's error format (Ollama needs none).
    async fn wrong_key(dialect: Dialect) {
        let model = model(dialect);
        let provider = start(dialect, vec![Turn::Text(ANSWER.to_string())]).await.require_key("right-key");
        let request = ChatRequest::from_user("Hello?");

        let refused = client(&provider, "wrong-key").exec_chat(model, request.clone(), None).await;
        if dialect == Dialect::Ollama {
            assert_eq!(refused.expect("Ollama needs no key").first_text(), Some(ANSWER));
        } else {
            let error = refused.expect_err("a wrong key is refused");
            assert_eq!(error.status().map(|s| s.as_u16()), Some(401), "{error}");
        }
        let answer =
            client(&provider, "right-key").exec_chat(model, request, None).await.expect("the right key passes");
        assert_eq!(answer.first_text(), Some(ANSWER));

        let accepted = provider.requests()[1].clone();
        let key_header = match dialect {
            Dialect::OpenAi => Some(("authorization", "Bearer right-key")),
            Dialect::Anthropic => Some(("x-api-key", "right-key")),
            Dialect::Gemini => Some(("x-goog-api-key", "right-key")),
            Dialect::Ollama => None,
        };
        if let Some((name, value)) = key_header {
            assert_eq!(accepted.header(name), Some(value));
            // The same request with no key at all.
            let url = format!("{}{}", origin(&provider), accepted.path);
            let mut headers = vec![("content-type", "application/json")];
            if dialect == Dialect::Anthropic {
                headers.push(("anthropic-version", "2023-06-01"));
            }
            let (status, body) = post(&url, &headers, &accepted.body.to_string()).await;
            assert_eq!(status, 401, "{body:#}");
            match dialect {
                Dialect::OpenAi => assert_eq!(body["error"]["code"], "invalid_api_key"),
                Dialect::Anthropic => assert_eq!(body["error"]["type"], "authentication_error"),
                _ => assert_eq!(body["error"]["status"], "UNAUTHENTICATED"),
            }
        }
        assert_no_violations(&provider);
    }

    /// A request the provider would refuse gets its 400 and a violation; so does a request past
    /// the end of the script, and one that is not JSON.
    async fn malformed(dialect: Dialect) {
        let model = model(dialect);
        let provider = start(dialect, vec![Turn::Text(ANSWER.to_string())]).await;
        let root = origin(&provider);
        let json_type = ("content-type", "application/json");
        let (url, headers, body, problem) = match dialect {
            Dialect::OpenAi => (
                format!("{root}/v1/chat/completions"),
                vec![json_type],
                json!({"model": model, "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "tool", "tool_call_id": "call_x", "content": "42"},
                ]}),
                "messages[1].tool_call_id",
            ),
            Dialect::Anthropic => (
                format!("{root}/v1/messages"),
                vec![json_type, ("anthropic-version", "2023-06-01"), ("x-api-key", "k")],
                json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}),
                "max_tokens: is required",
            ),
            Dialect::Gemini => (
                format!("{root}/v1beta/models/{model}:generateContent"),
                vec![json_type],
                json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
                "the previous turn made no function calls",
            ),
            Dialect::Ollama => (
                format!("{root}/api/chat"),
                vec![],
                json!({"model": model, "stream": false, "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "content": "1"},
                ]}),
                "must be an object",
            ),
        };
        let (status, reply) = post(&url, &headers, &body.to_string()).await;
        assert_eq!(status, 400, "{reply:#}");
        match dialect {
            Dialect::OpenAi => assert_eq!(reply["error"]["type"], "invalid_request_error", "{reply:#}"),
            Dialect::Anthropic => {
                assert_eq!(reply["type"], "error", "{reply:#}");
                assert_eq!(reply["error"]["type"], "invalid_request_error", "{reply:#}");
            }
            Dialect::Gemini => assert_eq!(reply["error"]["status"], "INVALID_ARGUMENT", "{reply:#}"),
            Dialect::Ollama => assert!(reply["error"].is_string(), "{reply:#}"),
        }
        let violations = provider.violations();
        assert!(violations.iter().any(|v| v.contains(problem)), "{violations:#?}");

        // Past the end of the script: a conversation with an assistant message asks for turn 1.
        let client = client(&provider, "some-key");
        let request = ChatRequest::new(vec![
            ChatMessage::user("Hi"),
            ChatMessage::assistant("Hello."),
            ChatMessage::user("And then?"),
        ]);
        let error = client.exec_chat(model, request, None).await.expect_err("there is no turn 1");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(400), "{error}");
        let expected = format!("the script of model {model} has no turn 1");
        assert!(error.to_string().contains(&expected), "{error}");
        assert!(provider.violations().iter().any(|v| v.ends_with(&expected)), "{:#?}", provider.violations());

        // Not JSON.
        let before = provider.violations().len();
        let (status, _) = post(&url, &headers, "not json").await;
        assert_eq!(status, 400);
        assert!(provider.violations().len() > before);
        assert_eq!(provider.requests().last().map(|r| r.body.clone()), Some(json!("not json")));
    }

    macro_rules! per_dialect {
        ($($scenario:ident),* $(,)?) => {$(
            mod $scenario {
                use super::*;

                #[tokio::test]
                async fn openai() {
                    $scenario(Dialect::OpenAi).await
                }

                #[tokio::test]
                async fn anthropic() {
                    $scenario(Dialect::Anthropic).await
                }

                #[tokio::test]
                async fn gemini() {
                    $scenario(Dialect::Gemini).await
                }

                #[tokio::test]
                async fn ollama() {
                    $scenario(Dialect::Ollama).await
                }
            }
        )*};
    }

    per_dialect!(tool_calls_then_text, streamed, structured_output, rate_limited, wrong_key, malformed);

    #[tokio::test]
    async fn a_fail_fails_once_per_layer_and_position() {
        let fail = |then: Turn| Turn::Fail {
            status: 503,
            retry_after: None,
            message: "busy".to_string(),
            then: Box::new(then),
        };
        let provider = start(Dialect::OpenAi, vec![fail(fail(Turn::Text(ANSWER.to_string())))]).await;
        let client = client(&provider, "some-key");
        let request = ChatRequest::from_user("Hello?");
        for _ in 0..2 {
            let error = client.exec_chat("gpt-4o", request.clone(), None).await.expect_err("busy");
            assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
            assert_eq!(retry_after(&error), None);
        }
        for _ in 0..2 {
            let answer = client.exec_chat("gpt-4o", request.clone(), None).await.expect("answered");
            assert_eq!(answer.first_text(), Some(ANSWER));
        }
        assert_no_violations(&provider);
    }

    #[tokio::test]
    async fn gemini_streams_a_json_array_without_sse() {
        let provider = start(Dialect::Gemini, vec![Turn::Text(ANSWER.to_string())]).await;
        let url = format!("{}/v1beta/models/gemini-2.5-flash:streamGenerateContent", origin(&provider));
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]});
        let (status, chunks) = post(&url, &[("content-type", "application/json")], &body.to_string()).await;
        assert_eq!(status, 200);
        let chunks = chunks.as_array().expect("an array of chunks").clone();
        assert!(chunks.len() > 1);
        let text: String =
            chunks.iter().filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str()).collect();
        assert_eq!(text, ANSWER);
        assert_eq!(chunks.last().map(|c| c["candidates"][0]["finishReason"].clone()), Some(json!("STOP")));
        assert_no_violations(&provider);
    }

    #[tokio::test]
    async fn unknown_endpoints_are_reported() {
        let provider = start(Dialect::Anthropic, vec![Turn::Text(ANSWER.to_string())]).await;
        let (status, body) = post(&format!("{}/v1/complete", origin(&provider)), &[], "{}").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(provider.violations(), ["POST /v1/complete: no such endpoint"]);
    }

    /// One of the dialects' checks.
    type Inspect = fn(&Value, &mut Check) -> Inspected;

    fn problems(inspect: Inspect, body: Value) -> Vec<String> {
        let mut check = Check::default();
        inspect(&body, &mut check);
        check.problems
    }

    #[test]
    fn documented_shapes_pass() {
        let cases: Vec<(Inspect, Value)> = vec![
            (
                inspect_openai,
                json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "messages": [
                    {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"x\":1}"}},
                    ]},
                    {"role": "tool", "tool_call_id": "b", "content": "2"},
                    {"role": "tool", "tool_call_id": "a", "content": "1"},
                    {"role": "assistant", "content": ""},
                    {"role": "user", "content": "Thanks"},
                ], "max_completion_tokens": 10, "tool_choice": "auto",
                   "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {}}}}),
            ),
            (
                inspect_anthropic,
                json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
                    "messages": [
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": [
                            {"type": "text", "text": "Let me look."},
                            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
                        ]},
                        {"role": "user", "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "1"}]},
                            {"type": "text", "text": "Go on."},
                        ]},
                        {"role": "assistant", "content": ""},
                    ],
                    "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}],
                    "tool_choice": {"type": "auto"}, "output_config": {"format": {"type": "json_schema", "schema": {}}}}),
            ),
            (
                inspect_gemini,
                json!({"system_instruction": {"parts": [{"text": "Be brief."}]}, "contents": [
                    {"parts": [{"text": "Hi"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"function_call": {"name": "g"}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "g", "response": {}}},
                        {"function_response": {"name": "f", "response": {"x": 1}}},
                    ]},
                ], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}, {"googleSearch": {}}],
                   "generationConfig": {"response_mime_type": "application/json", "responseSchema": {"type": "OBJECT"}, "maxOutputTokens": 5}}),
            ),
            (
                inspect_ollama,
                json!({"model": "llama3.2", "messages": [
                    {"role": "user", "content": "Hi", "images": ["aGk="]},
                    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
                    {"role": "tool", "content": "1", "tool_name": "f"},
                ], "format": {"type": "object"}, "options": {"temperature": 0}, "think": "low", "keep_alive": "5m", "unknown": 1}),
            ),
        ];
        for (inspect, body) in cases {
            assert_eq!(problems(inspect, body.clone()), Vec::<String>::new(), "{body:#}");
        }
    }

    #[test]
    fn checks_find_what_providers_refuse() {
        let user = json!({"role": "user", "content": "Hi"});
        let cases: Vec<(Inspect, Value, &str)> = vec![
            (
                inspect_openai,
                json!({"model": "gpt-4o", "messages": [user], "temprature": 1}),
                "temprature: is not a field",
            ),
            (inspect_openai, json!({"model": "gpt-4o", "messages": []}), "messages: must not be empty"),
            (
                inspect_openai,
                json!({"model": "gpt-4o", "messages": [user], "stream_options": {}}),
                "only allowed when stream",
            ),
            (inspect_openai, json!({"model": "o3", "messages": [user], "max_tokens": 5}), "use max_completion_tokens"),
            (
                inspect_openai,
                json!({"model": "gpt-4o", "messages": [user, {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": {}}}]}]}),
                "must be a string holding",
            ),
            (
                inspect_openai,
                json!({"model": "gpt-4o", "messages": [user, {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, user]}),
                "comes before tool messages answer the tool calls a",
            ),
            (
                inspect_openai,
                json!({"model": "gpt-4o", "messages": [user], "response_format": {"type": "json_schema"}}),
                "response_format.json_schema: is required",
            ),
            (
                inspect_openai,
                json!({"model": "gpt-4o", "messages": [user], "tools": [{"type": "function", "function": {"name": "a b"}}]}),
                "tools[0].function.name",
            ),
            (inspect_anthropic, json!({"model": "m", "max_tokens": 0, "messages": [user]}), "at least 1"),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [user, {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}, user]}),
                "no tool_result for t1",
            ),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [user, {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}, {"role": "user", "content": [
                    {"type": "text", "text": "first"}, {"type": "tool_result", "tool_use_id": "t1"}]}]}),
                "must come before any other content",
            ),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [user, {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}]}),
                "end with tool_use blocks t1",
            ),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": ""}, user]}),
                "must not be empty",
            ),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [user], "tools": [{"name": "f", "input_schema": null}]}),
                "tools[0].input_schema: is required",
            ),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [user], "output_config": {"format": {"type": "json_schema"}}}),
                "output_config.format.schema: is required",
            ),
            (
                inspect_anthropic,
                json!({"model": "m", "max_tokens": 9, "messages": [{"role": "system", "content": "x"}]}),
                "role",
            ),
            (inspect_gemini, json!({"contents": [{"parts": []}]}), "parts: must not be empty"),
            (
                inspect_gemini,
                json!({"contents": [{"parts": [{"text": "a", "inlineData": {}}]}]}),
                "needs exactly one of",
            ),
            (
                inspect_gemini,
                json!({"contents": [{"parts": [{"text": "a"}]}, {"role": "model", "parts": [
                    {"functionCall": {"name": "f"}}, {"functionCall": {"name": "g"}}]}, {"parts": [
                    {"functionResponse": {"name": "f", "response": {}}}]}]}),
                "has 1 function responses for the 2 function calls",
            ),
            (
                inspect_gemini,
                json!({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"responseJsonSchema": {}}}),
                "must be application/json",
            ),
            (
                inspect_gemini,
                json!({"contents": [{"parts": [{"text": "a"}]}], "tool_config": 3}),
                "toolConfig: must be an object",
            ),
            (inspect_gemini, json!({"contents": [{"parts": [{"text": "a"}]}], "model": "x"}), "model: is not a field"),
            (inspect_ollama, json!({"messages": [user]}), "model: is required"),
            (inspect_ollama, json!({"model": "m", "format": "yaml"}), "format"),
            (inspect_ollama, json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}), "role"),
        ];
        for (inspect, body, expected) in cases {
            let found = problems(inspect, body.clone());
            assert!(found.iter().any(|p| p.contains(expected)), "{expected:?} not in {found:#?} for {body:#}");
        }
    }

    #[test]
    fn text_streams_word_by_word() {
        assert_eq!(words("It is  sunny."), ["It ", "is  ", "sunny."]);
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(words("one"), ["one"]);
        assert_eq!(halves(r#"{"a":1}"#), [r#"{"a"#, r#"":1}"#]);
        assert_eq!(halves("é"), ["é"]);
        assert_eq!(halves(""), Vec::<&str>::new());
        assert_eq!(snake("maxOutputTokens"), "max_output_tokens");
        assert_eq!(camel("max_output_tokens"), "maxOutputTokens");
    }
}
