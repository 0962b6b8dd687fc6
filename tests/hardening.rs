//! The server under hostile or broken clients, over raw TCP where reqwest would be too polite:
//! bodies over the limit refused before they are read, headers over the limit, clients too slow
//! to send their headers or body, too many connections, one event stream per worker, and
//! session and admin tokens that have expired (replaced, forgotten by a restarted server, or let
//! lapse). The client API is asked through `flux::Client`; raw requests are the hostile ones and
//! the worker protocol.

use std::time::Duration;

use flux::prelude::*;
use flux::server::{RunningServer, Server};
use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const BOOTSTRAP: &str = "bootstrap-token-for-hardening";
const ADMIN: &str = "admin-token-for-hardening";

/// How long any wait for the server may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

#[flux::task]
async fn greet(name: String) -> String {
    format!("Hello, {name}")
}

#[flux::workflow]
async fn hello(ctx: ExecutionContext<String>) -> flux::Result<String> {
    greet(ctx.input().clone()).await
}

async fn bind(config: flux::Config, engine: &Engine) -> (RunningServer, String) {
    start(Server::from_config(config), engine).await
}

/// [`bind`] with the default config and a short worker lease.
async fn bind_with_lease(engine: &Engine, lease: Duration) -> (RunningServer, String) {
    start(Server::from_config(flux::Config::default()).lease_timeout(lease), engine).await
}

async fn start(server: Server, engine: &Engine) -> (RunningServer, String) {
    let running = server
        .engine(engine)
        .register(hello)
        .bootstrap_token(BOOTSTRAP)
        .admin_token(ADMIN)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = running.url();
    (running, url)
}

async fn shutdown(running: RunningServer) {
    tokio::time::timeout(PATIENCE, running.shutdown()).await.expect("shut down within 30 s").unwrap();
}

fn host(url: &str) -> &str {
    url.strip_prefix("http://").unwrap()
}

/// Everything the server sends until it closes the connection (or `PATIENCE` runs out, which
/// fails the test).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("the server closed in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code and the JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &str) -> (u16, Value) {
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A client sends a request line and headers, then (maybe) part of a body, and reads the
/// answer while holding the rest back.
async fn send_partial(url: &str, head: &str, body_part: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(host(url)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body_part).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer is complete once its body (of the length it declares) has arrived; the
    // connection stays open because the request never ended.
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the server answered in time")
            .unwrap_or(0);
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if n == 0 || complete(&text) {
            return parse_answer(&text);
        }
    }
}

/// Whether `text` holds a whole answer with a `content-length`.
fn complete(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .and_then(Result::ok);
    length.is_some_and(|n| body.len() >= n)
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_else(|| panic!("no detail in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_before_it_is_read_whole() {
    let engine = Engine::in_memory();
    let mut config = flux::Config::default();
    config.max_body_bytes = 1024;
    let (running, url) = bind(config, &engine).await;
    let host = host(&url).to_string();

    // A declared length over the limit: 413 with none of the body sent.
    let head = format!(
        "POST /workflows/hello/run/sync HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: 1073741824\r\n\r\n"
    );
    let (status, body) = send_partial(&url, &head, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(detail(&body), "the request body is larger than the server accepts (flux.max_body_bytes = 1024)");
    // The same on a worker endpoint, before its token is even looked at.
    let head = format!("POST /workers/register HTTP/1.1\r\nhost: {host}\r\ncontent-length: 5000000\r\n\r\n");
    assert_eq!(send_partial(&url, &head, b"{\"name\"").await.0, 413);

    // A chunked body (no length declared): 413 as soon as more than the limit has arrived, while
    // the client still holds most of it back.
    let head = format!(
        "POST /admin/secrets HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {ADMIN}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let mut part = Vec::new();
    for _ in 0..3 {
        part.extend_from_slice(format!("{:x}\r\n{}\r\n", 600, "x".repeat(600)).as_bytes());
    }
    let (status, body) = send_partial(&url, &head, &part).await;
    assert_eq!(status, 413, "{body}");
    assert!(detail(&body).contains("flux.max_body_bytes"), "{body}");

    // Nothing was stored, and the server answers the next client normally.
    let client = flux::Client::new(&url).unwrap().admin_token(ADMIN);
    assert!(client.list_secrets().await.unwrap().is_empty());
    let run = client.workflow::<String, String>("hello").run(&"World".to_string()).await.unwrap();
    assert_eq!(run.into_result().unwrap(), "Hello, World");
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_over_the_limit_get_431() {
    let engine = Engine::in_memory();
    let mut config = flux::Config::default();
    config.max_header_bytes = 2048;
    let (running, url) = bind(config, &engine).await;
    let host = host(&url).to_string();

    let long = format!("GET /workflows HTTP/1.1\r\nhost: {host}\r\nx-filler: {}\r\n\r\n", "a".repeat(4096));
    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream.write_all(long.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");

    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream.write_all(format!("GET /workflows HTTP/1.1\r\nhost: {host}\r\n{many}\r\n").as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");

    // Within the limit, the same request is answered.
    let ok = format!(
        "GET /workflows HTTP/1.1\r\nhost: {host}\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(1000)
    );
    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream.write_all(ok.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    let (status, body) = parse_answer(&answer);
    assert_eq!(status, 200, "{answer:?}");
    let mut body = body;
    // A server built with the `mcp` feature adds the input's JSON Schema (tests/mcp_server.rs).
    if let Some(entry) = body.get_mut(0).and_then(Value::as_object_mut) {
        entry.remove("input_schema");
    }
    assert_eq!(body, json!([{ "name": "hello", "version": 1, "versions": [1] }]));
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_too_slow_to_send_headers_or_a_body_are_cut_off() {
    let engine = Engine::in_memory();
    let mut config = flux::Config::default();
    config.request_timeout = Duration::from_millis(300);
    let (running, url) = bind(config, &engine).await;
    let host = host(&url).to_string();

    // Headers that never end: the connection is closed.
    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream.write_all(format!("POST /workflows/hello/run/sync HTTP/1.1\r\nhost: {host}\r\n").as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let answer = read_to_close(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer:?}");
    assert!(started.elapsed() >= Duration::from_millis(250), "closed after {:?}", started.elapsed());

    // An idle connection is closed too.
    let mut idle = TcpStream::connect(&host).await.unwrap();
    assert_eq!(read_to_close(&mut idle).await, "");

    // A body that stops short: 408 with a detail.
    let head = format!(
        "POST /workflows/hello/run/sync HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n"
    );
    let (status, body) = send_partial(&url, &head, b"\"Wor").await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(detail(&body), "the request body did not arrive within 300ms (flux.request_timeout)");
    // Nothing ran.
    assert!(engine.store().list(flux::ExecutionState::ALL).unwrap().is_empty());
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_until_one_closes() {
    let engine = Engine::in_memory();
    let mut config = flux::Config::default();
    config.max_connections = 2;
    let (running, url) = bind(config, &engine).await;
    let host = host(&url).to_string();
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();

    // Two connections are open: one has sent a request and waits for its next, one is silent.
    let mut first = TcpStream::connect(&host).await.unwrap();
    first.write_all(format!("GET /workflows HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, first.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "), "{:?}", String::from_utf8_lossy(&buf[..n]));
    let _held = TcpStream::connect(&host).await.unwrap();

    // A third is answered 503 with a detail, and closed.
    let mut third = TcpStream::connect(&host).await.unwrap();
    let answer = read_to_close(&mut third).await;
    let (status, body) = parse_answer(&answer);
    assert_eq!(status, 503, "{answer:?}");
    assert_eq!(detail(&body), "the server has 2 connections open, its limit (flux.max_connections); try again later");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer:?}");

    // Once one closes, a new connection is served.
    drop(first);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match http.get(format!("{url}/workflows")).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            other => assert!(std::time::Instant::now() < deadline, "never served again: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown(running).await;
}

async fn register(http: &reqwest::Client, url: &str, name: &str) -> String {
    let registration = json!({ "name": name, "workflows": [{ "name": "remote", "version": 1 }] });
    let response = http.post(format!("{url}/workers/register")).bearer_auth(BOOTSTRAP).json(&registration).send().await;
    let body: Value = response.unwrap().json().await.unwrap();
    body["session_token"].as_str().unwrap_or_else(|| panic!("no session token in {body}")).to_string()
}

/// Each session endpoint of worker `name`, with a body it would accept.
fn session_endpoints(url: &str, name: &str) -> Vec<(Method, String, Value)> {
    let id = "0123456789abcdef";
    vec![
        (Method::GET, format!("{url}/workers/{name}/connect"), Value::Null),
        (Method::POST, format!("{url}/workers/{name}/claim/{id}"), Value::Null),
        (Method::POST, format!("{url}/workers/{name}/checkpoint/{id}"), Value::Null),
        (
            Method::POST,
            format!("{url}/workers/{name}/progress/{id}"),
            json!({ "task_id": "t", "name": "t", "value": 1 }),
        ),
    ]
}

async fn status_with(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let response = http.request(method, url).bearer_auth(token).json(body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_event_stream_of_a_worker_ends_the_first() {
    let engine = Engine::in_memory();
    let (running, url) = bind(flux::Config::default(), &engine).await;
    let http = reqwest::Client::new();
    let token = register(&http, &url, "w1").await;
    let connect = || http.get(format!("{url}/workers/w1/connect")).bearer_auth(&token).send();
    let first = connect().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = connect().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    // The first stream ends (keep-alives aside) once the second is open.
    let mut first = first.bytes_stream();
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(chunk) = first.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the first stream is still open");
    // The second one lives on: it gets keep-alives.
    let mut second = second.bytes_stream();
    let chunk = tokio::time::timeout(PATIENCE, second.next()).await.expect("a keep-alive in time");
    assert!(chunk.is_some_and(|c| c.is_ok()));
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_expire_when_replaced_or_left_unused_for_a_lease() {
    let engine = Engine::in_memory();
    let (running, url) = bind_with_lease(&engine, Duration::from_millis(300)).await;
    let http = reqwest::Client::new();

    // Replaced: registering again ends the earlier session.
    let old = register(&http, &url, "w1").await;
    let new = register(&http, &url, "w1").await;
    for (method, endpoint, body) in session_endpoints(&url, "w1") {
        let (status, answer) = status_with(&http, method.clone(), &endpoint, &old, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {endpoint}: {answer}");
        assert!(detail(&answer).contains("session token"), "{answer}");
    }

    // Left unused: a worker with no event stream open and no claim, not heard from for two
    // leases, is forgotten with its token.
    let (status, _) =
        status_with(&http, Method::POST, &format!("{url}/workers/w1/claim/0123456789abcdef"), &new, &Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the new token works at first");
    // Watched from outside (a request with the token would keep it alive): the catalog stops
    // naming the worker as serving `remote`.
    let client = flux::Client::new(&url).unwrap();
    let shown = || async { client.workflow_info("remote").await.unwrap().workers().to_vec() };
    assert_eq!(shown().await, ["w1"]);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !shown().await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (method, endpoint, body) in session_endpoints(&url, "w1") {
        let (status, answer) = status_with(&http, method.clone(), &endpoint, &new, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {endpoint}: {answer}");
    }
    // Registering again works.
    let again = register(&http, &url, "w1").await;
    let (status, _) =
        status_with(&http, Method::POST, &format!("{url}/workers/w1/claim/0123456789abcdef"), &again, &Value::Null)
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    shutdown(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_refuses_the_tokens_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let url_of_db = format!("sqlite://{}", dir.path().join("flux.db").display());
    let mut config = flux::Config::default();
    config.database_url = url_of_db;
    config.home = dir.path().to_path_buf();
    let http = reqwest::Client::new();

    let engine = Engine::from_config(&config).unwrap();
    let (running, url) = bind(config.clone(), &engine).await;
    let session = register(&http, &url, "w1").await;
    shutdown(running).await;
    drop(engine);

    // The same database, a new process's server with a new admin token.
    let engine = Engine::from_config(&config).unwrap();
    let running = Server::from_config(config)
        .engine(&engine)
        .register(hello)
        .bootstrap_token(BOOTSTRAP)
        .admin_token("a-new-admin-token")
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = running.url();
    for (method, endpoint, body) in session_endpoints(&url, "w1") {
        let (status, answer) = status_with(&http, method.clone(), &endpoint, &session, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {endpoint}: {answer}");
    }
    // The admin endpoints, through the client: the old admin token is refused, the new one not.
    for (token, refused) in [(ADMIN, true), ("a-new-admin-token", false)] {
        let admin = flux::Client::new(&url).unwrap().admin_token(token);
        for (what, answer) in [
            ("list", admin.list_secrets().await.map(|_| ())),
            ("set", admin.set_secret("X", "y").await),
            ("get", admin.get_secret("X").await.map(|_| ())),
            ("remove", admin.remove_secret("X").await),
        ] {
            let unauthorized = answer.as_ref().is_err_and(|e| e.kind() == flux::ErrorKind::Unauthorized);
            assert_eq!(unauthorized, refused, "{what} with {token}: {answer:?}");
        }
    }
    shutdown(running).await;
}

/// What the store of [`a_claim_whose_worker_vanishes_mid_request_is_still_taken_back`] holds
/// back: the commit of a claim and the outcome it will report.
#[derive(Default)]
struct Held {
    claim: std::sync::Mutex<Option<(flux::store::CommitSender, flux::Result<()>)>>,
    seen: tokio::sync::Notify,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_worker_vanishes_mid_request_is_still_taken_back() {
    // A worker killed while its claim is being committed: the claim is stored all the same, so
    // the server must remember it too, and take it back when its lease runs out. Forgotten, it
    // stayed CLAIMED for good (found by the chaos test).
    // An in-memory store that applies a claim at once but confirms its commit only when the
    // test says so, as a slow disk would: the request waiting for it can be dropped meanwhile.
    let held = std::sync::Arc::new(Held::default());
    let holder = held.clone();
    let engine = Engine::with_store(flux_suite::HookedStore::new(move |inner: &flux::store::MemoryStore, writes| {
        let claim = writes.iter().any(|w| matches!(w, flux::store::Write::Claim { worker: Some(_), .. }));
        let mut commit = flux::store::Store::write(inner, writes);
        if !claim {
            return commit;
        }
        let outcome = commit.try_result().expect("the memory store commits at once");
        let (sender, held_back) = flux::store::Commit::pending();
        *holder.claim.lock().unwrap() = Some((sender, outcome));
        holder.seen.notify_one();
        held_back
    }));
    let (running, url) = bind_with_lease(&engine, Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let token = register(&http, &url, "w1").await;
    let remote = flux::Client::new(&url).unwrap().workflow::<String, String>("remote").detailed(true);
    let id = remote.start(&"x".to_string()).await.unwrap().execution_id().to_string();

    let mut claim = TcpStream::connect(host(&url)).await.unwrap();
    let request = format!(
        "POST /workers/w1/claim/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n",
        host(&url)
    );
    claim.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(PATIENCE, held.seen.notified()).await.expect("the claim reaches the store");
    // The worker is gone: its connection closes while the claim's commit is pending. The
    // server notices a closed connection at once; half a second leaves it ample time to drop
    // the request before the commit is confirmed.
    drop(claim);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sender, outcome) = held.claim.lock().unwrap().take().expect("a held claim");
    sender.send(outcome);

    // Nobody checkpoints for the claim: within a lease or two it is taken back and offered again.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let status = remote.status(&id).await.unwrap();
        let kinds: Vec<EventType> = status.events().unwrap_or_default().iter().map(|e| e.kind()).collect();
        if status.state() == ExecutionState::Scheduled && kinds.len() == 3 {
            assert_eq!(kinds, [EventType::WorkflowScheduled, EventType::WorkflowClaimed, EventType::WorkflowScheduled]);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the claim was never taken back: {:?}", status.summary());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown(running).await;
}
