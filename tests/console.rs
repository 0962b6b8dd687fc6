//! The console at `/ui`, in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against a server on loopback. It signs in, runs a workflow from the form and
//! sees it complete without reloading, reads its timeline (three task bars, one a retry),
//! resumes a paused execution with an input, cancels a running one, and shows the workers and
//! schedules; a screenshot of each page goes to `target/ui-screenshots/`. Without a session the
//! pages and their API answer nothing.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! browser test is skipped, unless `FLUX_TEST_BROWSER_REQUIRED=1` (as in CI) makes that a
//! failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flux::prelude::*;
use flux::server::{RunningServer, Server};
use flux::worker::Worker;
use serde_json::{Value, json};

const ADMIN: &str = "console-admin-token";
const BOOTSTRAP: &str = "console-bootstrap-token";

/// Fails its first attempt for each input.
#[flux::task(retry_max_attempts = 2, retry_delay = 0)]
async fn console_flaky(n: u32) -> flux::Result<u32> {
    if flux_suite::first_call(n) {
        return Err(flux::Error::new(flux::ErrorKind::TaskFailed, "the first attempt fails"));
    }
    Ok(n + 1)
}

#[flux::task]
async fn console_double(n: u32) -> u32 {
    n * 2
}

#[flux::workflow]
async fn console_steps(ctx: ExecutionContext<u32>) -> flux::Result<u32> {
    let n = console_flaky(*ctx.input()).await?;
    console_double(n).await
}

#[flux::workflow]
async fn console_approval(ctx: ExecutionContext<String>) -> flux::Result<String> {
    let answer: String = flux::pause("approve the order").await?;
    Ok(format!("{}: {answer}", ctx.input()))
}

#[flux::task]
async fn console_wait(seconds: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    seconds
}

#[flux::workflow]
async fn console_slow(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    console_wait(*ctx.input()).await
}

#[flux::workflow]
async fn console_remote(ctx: ExecutionContext<u32>) -> u32 {
    *ctx.input()
}

#[flux::workflow]
async fn console_remote_slow(ctx: ExecutionContext<u64>) -> flux::Result<u64> {
    console_wait(*ctx.input()).await
}

/// A small WebDriver client (the W3C protocol chromedriver speaks), over reqwest.
struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` if they are not installed.
    async fn start() -> Option<Browser> {
        let driver_path = std::env::var("FLUX_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("FLUX_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if !Path::new(&driver_path).exists() || !Path::new(&chromium).exists() {
            assert!(
                std::env::var("FLUX_TEST_BROWSER_REQUIRED").as_deref() != Ok("1"),
                "FLUX_TEST_BROWSER_REQUIRED=1 but {driver_path} or {chromium} is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: no {driver_path} or {chromium} (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(answer) = ready
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == json!(true)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        Some(Browser { http, session: format!("{base}/session/{session}"), driver, _profile: profile })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// The element `css` selects, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        self.wait_for(&format!("document.querySelector({css:?}) !== null"), css).await;
        let found = self.call(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), json!({})).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    async fn select(&self, css: &str, value: &str) {
        let script = "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
                      s.dispatchEvent(new Event('change')); return s.value;";
        assert_eq!(self.script(script, json!([css, value])).await, json!(value));
    }

    /// Waits until the JavaScript expression `condition` is true in the page.
    async fn wait_for(&self, condition: &str, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let now = self
                .script(&format!("try {{ return !!({condition}); }} catch (e) {{ return false; }}"), json!([]))
                .await;
            if now == json!(true) {
                return;
            }
            if std::time::Instant::now() > deadline {
                let text = self.script("return document.body ? document.body.innerText : ''", json!([])).await;
                panic!("waited 30 s for {what} ({condition}); the page shows:\n{}", text.as_str().unwrap_or(""));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await;
        let text = self.script("return document.querySelector(arguments[0]).textContent", json!([css])).await;
        text.as_str().unwrap_or_default().to_string()
    }

    async fn count(&self, css: &str) -> u64 {
        self.script("return document.querySelectorAll(arguments[0]).length", json!([css])).await.as_u64().unwrap()
    }

    /// Saves a PNG of the page as `target/ui-screenshots/{name}.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let bytes = base64_decode(png.as_str().unwrap());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    async fn close(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the screenshots go: `target/ui-screenshots/` of the workspace (or `CARGO_TARGET_DIR`).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("ui-screenshots")
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, c)| n | (u32::from(value(*c)) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

async fn serve(engine: &flux::Engine) -> RunningServer {
    Server::new()
        .engine(engine)
        .admin_token(ADMIN)
        .bootstrap_token(BOOTSTRAP)
        .register(console_steps)
        .register(console_approval)
        .register(console_slow)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// A sign-in with `token` (from `origin`, when given).
fn login(http: &reqwest::Client, url: &str, token: &str, origin: Option<&str>) -> reqwest::RequestBuilder {
    let request = http
        .post(format!("{url}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"));
    match origin {
        Some(origin) => request.header("origin", origin),
        None => request,
    }
}

/// A run of `console_steps` through the console's API, as a page of `origin` sends it.
fn console_run(http: &reqwest::Client, url: &str, cookie: &str, origin: &str) -> reqwest::RequestBuilder {
    http.post(format!("{url}/ui/api/workflows/console_steps/run/sync"))
        .header("cookie", cookie)
        .header("x-flux-console", "1")
        .header("origin", origin)
        .body("1")
}

/// The session cookie the sign-in form sets.
async fn sign_in(http: &reqwest::Client, url: &str) -> String {
    let answer = login(http, url, ADMIN, None).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "../ui");
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_pages_and_their_api_answer_nothing() {
    let engine = flux::Engine::in_memory();
    let running = serve(&engine).await;
    let url = running.url();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let page = http.get(format!("{url}/ui")).send().await.unwrap();
    assert_eq!(page.status(), 303, "the console sends a stranger to the sign-in form");
    assert_eq!(page.headers()["location"], "ui/login");
    let form = http.get(format!("{url}/ui/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
    assert!(form.text().await.unwrap().contains("name=\"token\""));
    for path in ["/ui/api/executions", "/ui/api/workflows", "/ui/api/workers", "/ui/api/schedules", "/ui/api/metrics"] {
        let answer = http.get(format!("{url}{path}")).header("x-flux-console", "1").send().await.unwrap();
        assert_eq!(answer.status(), 401, "{path}");
    }
    let run = http.post(format!("{url}/ui/api/workflows/console_steps/run/sync")).body("1").send().await.unwrap();
    assert_eq!(run.status(), 401);
    assert_eq!(engine.list_executions(flux::ExecutionFilter::new()).await.unwrap().total, 0, "nothing ran");

    // A wrong token is refused; a forged or foreign session cookie too.
    let wrong = login(&http, &url, "guess", None).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let forged = format!("flux_console={}.{}", u64::MAX, "0".repeat(64));
    let answer = http
        .get(format!("{url}/ui/api/executions"))
        .header("cookie", forged)
        .header("x-flux-console", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);

    // Signed in: the API answers the console's own requests, and no request of another site.
    let cookie = sign_in(&http, &url).await;
    let console = |path: &str| http.get(format!("{url}{path}")).header("cookie", &cookie);
    assert_eq!(console("/ui").send().await.unwrap().status(), 200);
    assert_eq!(console("/ui/api/executions").header("x-flux-console", "1").send().await.unwrap().status(), 200);
    assert_eq!(console("/ui/api/workers").header("x-flux-console", "1").send().await.unwrap().status(), 200);
    assert_eq!(console("/ui/api/executions").send().await.unwrap().status(), 401, "no console header");
    let cross = console_run(&http, &url, &cookie, "http://attacker.example").send().await.unwrap();
    assert_eq!(cross.status(), 403);
    let cross_login = login(&http, &url, ADMIN, Some("http://attacker.example")).send().await.unwrap();
    assert_eq!(cross_login.status(), 403);
    assert_eq!(engine.list_executions(flux::ExecutionFilter::new()).await.unwrap().total, 0, "nothing ran");
    let run = console_run(&http, &url, &cookie, &url).send().await.unwrap();
    assert_eq!(run.status(), 200);
    let logout = http.post(format!("{url}/ui/logout")).header("cookie", &cookie).send().await.unwrap();
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_resumes_and_cancels_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let engine = flux::Engine::in_memory();
    let running = serve(&engine).await;
    let url = running.url();
    let worker = Worker::new(&url).name("console-worker").bootstrap_token(BOOTSTRAP).register(console_remote).run();
    let worker = tokio::spawn(worker);
    let schedule = flux::schedule::Schedule::interval(Duration::from_secs(3600)).unwrap();
    engine.schedule_as("hourly-report", console_steps, schedule, 7).await.unwrap();

    // Signing in.
    browser.goto(&format!("{url}/ui")).await;
    browser.wait_for("location.pathname.endsWith('/ui/login')", "the sign-in form").await;
    browser.screenshot("login").await;
    browser.type_into("#token", ADMIN).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("document.querySelector('#run-form') !== null", "the executions page").await;

    // Running a workflow from the form: it reaches COMPLETED on the same page, no reload.
    browser.script("window.fluxMarker = 'same page';", json!([])).await;
    browser.select("#run-workflow", "console_steps").await;
    browser.type_into("#run-input", "{}").await;
    browser.click("#run-button").await;
    let refused = browser.text("#run-error").await;
    // Refused by the page against the input's JSON Schema (with `mcp`, the catalog has it), or
    // else by the server: either way the reason is shown and nothing runs.
    assert!(refused.contains("must be integer") || refused.contains("does not fit `u32`"), "{refused}");
    assert_eq!(engine.list_executions(flux::ExecutionFilter::new()).await.unwrap().total, 0);
    browser.type_into("#run-input", "3").await;
    browser.click("#run-button").await;
    browser.wait_for("document.querySelector('#run-state[data-state=COMPLETED]') !== null", "COMPLETED").await;
    assert_eq!(browser.script("return window.fluxMarker", json!([])).await, json!("same page"), "not reloaded");
    browser
        .wait_for("document.querySelector('#executions .state[data-state=COMPLETED]') !== null", "the listed run")
        .await;
    browser.wait_for("document.querySelector('[data-count=COMPLETED]') !== null", "the live counts").await;
    browser.screenshot("executions").await;

    // The execution: its output, events and the timeline of three task bars, one a retry.
    let id = browser.text("#run-link").await;
    browser.click("#run-link").await;
    browser.wait_for("document.querySelector('#state[data-state=COMPLETED]') !== null", "the execution page").await;
    assert_eq!(browser.text("#output").await, "8");
    assert_eq!(browser.count(".timeline .bar").await, 3);
    assert_eq!(browser.count(".timeline .bar.retry").await, 1);
    assert_eq!(browser.count(".timeline .bar.failed").await, 1, "the first attempt failed");
    let stored = console_steps.on(&engine).status(&id).await.unwrap();
    assert_eq!(browser.count("#events tbody tr").await, stored.events().len() as u64);
    assert_eq!(browser.count("#events tr[data-type=TASK_RETRY_FAILED]").await, 1);
    browser.screenshot("execution").await;

    // A paused execution: its pause shown, resumed with an input from the page.
    let api = flux::Client::builder(&url).build().unwrap();
    let paused = api.workflow::<String, String>("console_approval").run(&"order 42".to_string()).await.unwrap();
    assert_eq!(paused.state(), flux::ExecutionState::Paused);
    browser.goto(&format!("{url}/ui#/executions/{}", paused.execution_id())).await;
    browser.wait_for("document.querySelector('#state[data-state=PAUSED]') !== null", "the paused execution").await;
    assert_eq!(browser.text("#pause-name").await, "approve the order");
    assert_eq!(browser.count(".timeline .bar.paused").await, 1, "the pause ends its bar");
    browser.screenshot("paused").await;
    browser.type_into("#resume-input", "\"approved\"").await;
    browser.click("#resume-button").await;
    browser.wait_for("document.querySelector('#state[data-state=COMPLETED]') !== null", "the resumed run").await;
    assert_eq!(browser.text("#output").await, "\"order 42: approved\"");

    // A running execution, cancelled from its page (two clicks), live until it is.
    let slow = api.workflow::<u64, u64>("console_slow").start(&600).await.unwrap();
    browser.goto(&format!("{url}/ui#/executions/{}", slow.execution_id())).await;
    browser.wait_for("document.querySelector('.timeline .bar.running') !== null", "the running task").await;
    // Its page follows it over the execution's stream (its status line says what came).
    browser.wait_for("document.getElementById('status').textContent === 'live: RUNNING'", "the stream").await;
    browser.click("#cancel-button").await;
    browser.click("#cancel-button").await;
    browser.wait_for("document.querySelector('#state[data-state=CANCELLED]') !== null", "CANCELLED").await;
    browser.screenshot("cancelled").await;
    let cancelled = console_slow.on(&engine).status(slow.execution_id()).await.unwrap();
    assert_eq!(cancelled.state(), flux::ExecutionState::Cancelled);

    // Workers and schedules.
    browser.goto(&format!("{url}/ui#/workers")).await;
    browser.wait_for("document.querySelector('[data-worker=console-worker]') !== null", "the worker").await;
    assert!(browser.text("[data-worker=console-worker]").await.contains("console_remote"));
    browser.screenshot("workers").await;
    browser.goto(&format!("{url}/ui#/schedules")).await;
    browser.click("[data-action='pause:hourly-report']").await;
    browser.wait_for("document.querySelector('[data-status=paused]') !== null", "the paused schedule").await;
    assert!(engine.schedule_info("hourly-report").await.unwrap().unwrap().paused);
    browser.screenshot("schedules").await;
    browser.click("[data-action='resume:hourly-report']").await;
    browser.wait_for("document.querySelector('[data-status=active]') !== null", "the resumed schedule").await;

    browser.close().await;
    worker.abort();
    running.shutdown().await.unwrap();
}

/// The events of an SSE answer: `(event, data)` pairs.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event:"))?.trim().to_string();
            let data = block.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
            Some((event, serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// `GET /executions/{id}/stream` (the console's live view) follows a running execution to its
/// end from its state now, answers a finished one with its state alone, and 404 for no such id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executions_stream_follows_it_from_now_to_its_end() {
    let engine = flux::Engine::in_memory();
    let running = serve(&engine).await;
    let url = running.url();
    let api = flux::Client::builder(&url).build().unwrap();
    let http = reqwest::Client::new();

    let started = api.workflow::<u64, u64>("console_slow").start(&1).await.unwrap();
    let id = started.execution_id().to_string();
    let answer = http.get(format!("{url}/executions/{id}/stream")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse_events(&answer.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["console_slow.execution.running", "console_slow.execution.completed"], "{events:?}");
    assert_eq!(events[1].1["output"], json!(1));
    assert_eq!(events[1].1["execution_id"], json!(id));

    let finished = http.get(format!("{url}/executions/{id}/stream")).send().await.unwrap().text().await.unwrap();
    let names: Vec<String> = sse_events(&finished).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["console_slow.execution.completed"]);
    let missing = http.get(format!("{url}/executions/nope/stream")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // One a worker runs: followed through the server's hub.
    let worker = Worker::new(&url).name("stream-worker").bootstrap_token(BOOTSTRAP).register(console_remote_slow).run();
    let worker = tokio::spawn(worker);
    let remote = api.workflow::<u64, u64>("console_remote_slow");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let started = loop {
        match remote.start(&1).await {
            Ok(started) => break started,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "the worker never registered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let id = started.execution_id();
    let text = http.get(format!("{url}/executions/{id}/stream")).send().await.unwrap().text().await.unwrap();
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"console_remote_slow.execution.running"), "{names:?}");
    let last = events.last().unwrap();
    assert_eq!(last.0, "console_remote_slow.execution.completed", "{events:?}");
    assert_eq!(last.1["output"], json!(1));
    worker.abort();
    running.shutdown().await.unwrap();
}
