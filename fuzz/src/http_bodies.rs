//! `http_bodies`: no request makes the server answer 500 (docs/design.md §11: "never a 500 for bad
//! input"), and no request makes it panic.
//!
//! An input is one request, written like a small HTTP message:
//!
//! ```text
//! POST /workflows/orders/run/sync?detailed=true     <- method, path and query
//! admin                                             <- credentials: see below
//! {"id": 1, "items": ["a"]}                         <- the body: every byte after the 2nd newline
//! ```
//!
//! The credentials line is `admin`, `bootstrap` or `session` (the valid token of that kind, the
//! session being the one of worker `fixed`), `none`, or any other text, sent as the
//! `Authorization` header as it is. In the path, `{paused}` stands for a new paused execution
//! of `approval`, `{done}` for a completed execution of `echo`, `{scheduled}` for a new execution
//! of the remote workflow `remote` waiting for a worker, and `{claimed}` for one that worker
//! `fixed` has just claimed (its claim generation is 1, its log holds 2 events), so that
//! bodies reach the code that reads them.
//!
//! Two servers answer: paths under `/workers` go to one whose catalog has the remote workflow
//! `remote` (worker `fixed` registered it), every other path to one running `echo`, `orders`
//! and `approval` in process. Keeping remote workflows away from the client routes keeps every
//! request short: a `sync` run of a remote workflow would wait for a worker that never comes.
//!
//! Checked for every answer: the status is not 500, and an error status carries the JSON
//! `{"detail": "..."}` body of docs/design.md §11.

use std::cell::RefCell;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use flux::Engine;
use flux::server::{Server, ServerRouter};
use tower::ServiceExt as _;

use crate::workflows::{approval, echo, orders};

/// The state is rebuilt (new databases) after this many inputs, which bounds the size of the
/// databases and of the servers' catalogs over a long run.
pub const REBUILD_EVERY: u64 = 20_000;

/// The worker the harness registers, and the workflow it runs.
const WORKER: &str = "fixed";
const REMOTE: &str = "remote";

/// The largest body an answer may have for the harness to read it.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Sends `request` to `router` in process; returns the status and, for answers that are not
/// event streams, the body.
pub async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = match router.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let streaming =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, Bytes::new());
    }
    match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
        Ok(body) => (status, body),
        Err(e) => panic!("cannot read an answer of status {status}: {e}"),
    }
}

/// Percent-encodes every byte that is not unreserved in a URI path segment.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Servers {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    client: ServerRouter,
    workers: ServerRouter,
    session: String,
    done: String,
    inputs: u64,
}

fn expect<T>(what: &str, result: flux::Result<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("harness set-up: {what}: {e}"),
    }
}

impl Servers {
    fn new() -> Servers {
        let dir = crate::scratch().join("http_bodies");
        let _ = std::fs::remove_dir_all(&dir);
        let rt = crate::runtime();
        let (engine, client, workers, done) = rt.block_on(async {
            let key = "0f".repeat(32);
            let engine = expect("open", Engine::open(dir.join("client.db")));
            let engine = expect("key", engine.with_encryption_key(&key));
            let client = Server::from_config(flux::Config::default())
                .engine(&engine)
                .bootstrap_token("bootstrap")
                .admin_token("admin")
                .register(echo)
                .register(orders)
                .register(approval)
                .into_router()
                .await;
            let client = expect("client server", client);
            let remote_engine = expect("open", Engine::open(dir.join("workers.db")));
            let workers = Server::from_config(flux::Config::default())
                .engine(&remote_engine)
                .bootstrap_token("bootstrap")
                .admin_token("admin")
                .into_router()
                .await;
            let workers = expect("worker server", workers);
            let done = expect("echo run", echo.on(&engine).run(serde_json::json!({"done": true})).await);
            (engine, client, workers, done.execution_id().to_string())
        });
        let mut servers = Servers { rt, engine, client, workers, session: String::new(), done, inputs: 0 };
        servers.register();
        servers
    }

    /// (Re-)registers worker `fixed` for the remote workflow: a fuzzed registration under the
    /// same name replaces its session.
    fn register(&mut self) {
        let router = self.workers.router();
        let body = serde_json::json!({"name": WORKER, "workflows": [{"name": REMOTE, "version": 1}]});
        let request = Request::post("/workers/register")
            .header(header::AUTHORIZATION, "Bearer bootstrap")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()));
        let request = match request {
            Ok(r) => r,
            Err(e) => panic!("harness set-up: registration request: {e}"),
        };
        let (status, answer) = self.rt.block_on(send(&router, request));
        assert_eq!(status, StatusCode::OK, "harness set-up: registration: {answer:?}");
        let answer: serde_json::Value = match serde_json::from_slice(&answer) {
            Ok(v) => v,
            Err(e) => panic!("harness set-up: registration answer: {e}"),
        };
        self.session = answer["session_token"].as_str().unwrap_or_default().to_string();
    }

    /// A new execution of the remote workflow, waiting for a worker.
    fn scheduled(&mut self) -> String {
        let router = self.workers.router();
        let request = Request::post(format!("/workflows/{REMOTE}/run/async")).body(Body::from("{\"n\": 1}"));
        let request = match request {
            Ok(r) => r,
            Err(e) => panic!("harness set-up: run request: {e}"),
        };
        let (status, answer) = self.rt.block_on(send(&router, request));
        assert_eq!(status, StatusCode::OK, "harness set-up: remote run: {answer:?}");
        let answer: serde_json::Value = match serde_json::from_slice(&answer) {
            Ok(v) => v,
            Err(e) => panic!("harness set-up: run answer: {e}"),
        };
        answer["execution_id"].as_str().unwrap_or_default().to_string()
    }

    /// A new execution of the remote workflow, claimed by worker `fixed` (generation 1).
    fn claimed(&mut self) -> String {
        let id = self.scheduled();
        for _ in 0..2 {
            let router = self.workers.router();
            let request = Request::post(format!("/workers/{WORKER}/claim/{id}"))
                .header(header::AUTHORIZATION, format!("Bearer {}", self.session))
                .body(Body::empty());
            let request = match request {
                Ok(r) => r,
                Err(e) => panic!("harness set-up: claim request: {e}"),
            };
            let (status, answer) = self.rt.block_on(send(&router, request));
            match status {
                StatusCode::OK => return id,
                // A fuzzed registration took the name: register again.
                StatusCode::UNAUTHORIZED | StatusCode::CONFLICT => self.register(),
                other => panic!("harness set-up: claim answered {other}: {answer:?}"),
            }
        }
        panic!("harness set-up: worker `{WORKER}` cannot claim execution `{id}`");
    }

    /// A new execution of `approval`, paused.
    fn paused(&mut self) -> String {
        let engine = self.engine.clone();
        let execution = self.rt.block_on(async move { approval.on(&engine).run("x".to_string()).await });
        expect("approval run", execution).execution_id().to_string()
    }
}

thread_local! {
    static SERVERS: RefCell<Option<Servers>> = const { RefCell::new(None) };
}

/// The request an input describes.
struct Parsed<'a> {
    method: &'a [u8],
    target: String,
    credentials: &'a [u8],
    body: &'a [u8],
}

fn parse(data: &[u8]) -> Option<Parsed<'_>> {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let first = lines.next()?;
    let credentials = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let credentials = credentials.strip_suffix(b"\r").unwrap_or(credentials);
    let space = first.iter().position(|&b| b == b' ')?;
    let (method, target) = (&first[..space], &first[space + 1..]);
    Some(Parsed { method, target: String::from_utf8_lossy(target).into_owned(), credentials, body })
}

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let data = &data[..data.len().min(crate::MAX_INPUT)];
    let Some(parsed) = parse(data) else { return };
    SERVERS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_some_and(|s| s.inputs >= REBUILD_EVERY) {
            // Drop the old servers (and their runtime) before their files go.
            *slot = None;
        }
        let servers = slot.get_or_insert_with(Servers::new);
        servers.inputs += 1;
        one(servers, parsed);
    });
}

fn one(servers: &mut Servers, parsed: Parsed<'_>) {
    let Ok(method) = Method::from_bytes(parsed.method) else { return };
    let mut target = parsed.target;
    if target.contains("{done}") {
        target = target.replace("{done}", &servers.done);
    }
    for (placeholder, make) in [
        ("{paused}", Servers::paused as fn(&mut Servers) -> String),
        ("{scheduled}", Servers::scheduled),
        ("{claimed}", Servers::claimed),
    ] {
        if target.contains(placeholder) {
            let id = make(servers);
            target = target.replace(placeholder, &id);
        }
    }
    let authorization = match parsed.credentials {
        b"admin" => Some("Bearer admin".to_string()),
        b"bootstrap" => Some("Bearer bootstrap".to_string()),
        b"session" => Some(format!("Bearer {}", servers.session)),
        b"none" | b"" => None,
        other => Some(String::from_utf8_lossy(other).into_owned()),
    };
    let to_workers = target.starts_with("/workers");
    let mut builder = Request::builder().method(method).uri(target.as_str());
    if let Some(value) = authorization.and_then(|a| HeaderValue::from_str(&a).ok()) {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    // Bodies that are not valid HTTP targets are not requests a server can receive.
    let Ok(request) = builder.body(Body::from(parsed.body.to_vec())) else { return };
    let router = if to_workers { servers.workers.router() } else { servers.client.router() };
    let (status, body) = servers.rt.block_on(send(&router, request));
    if crate::tracing() {
        eprintln!("{target} -> {status} {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "500 for {target}: {}", String::from_utf8_lossy(&body));
    if status.is_client_error() || status.is_server_error() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned));
        assert!(
            detail.is_some_and(|d| !d.is_empty()),
            "{status} for {target} without a JSON detail: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
