//! The flux side of `benches/compare/run.sh`: runs one workload once and prints one line of JSON
//! (`{"workload", "n", "durability", "seconds", "per_step_us"}`) on stdout.
//!
//! ```text
//! flux_bench sequential 1000 [default|full|batched]   one workflow of N trivial tasks
//! flux_bench map 1000 [durability]                    task::map over N items
//! flux_bench parallel 100 [durability]                flux::parallel of N calls
//! flux_bench replay 1000 [durability]                 replay of a crashed execution with N tasks recorded
//! flux_bench replay-raw 1000                          rusqlite alone: reading that log's rows and
//!                                                     decoding their values (the limit of replay)
//! flux_bench server 100                               N tasks through a server and one worker process
//! flux_bench server-concurrent 50 100                 50 concurrent executions of 100 tasks (tasks/s)
//! flux_bench http-raw 100                             N loopback HTTP round trips of a step's
//!                                                     checkpoint and its answer (the limit of
//!                                                     `server`)
//! flux_bench raw 1000 normal|full|normal-batch100     rusqlite alone: single-row commits (the limit)
//! flux_bench raw 1000 normal-step|full-step           rusqlite alone: a step's two rows per commit
//! flux_bench raw 1000 normal-row|full-row             rusqlite alone: a step as one row per commit
//! flux_bench populate DB 1000000 100000              a file of N stored executions, that many paused
//! flux_bench startup DB                               a server on that file: time until it answers,
//!                                                     and its RSS then
//! flux_bench pg-raw 1000 default|full                  tokio-postgres alone: single-row commits
//! flux_bench pg-sequential 1000 default|full           `sequential` on the PostgreSQL store
//! flux_bench pg-servers 3 50 100                       50 concurrent executions of 100 tasks through
//!                                                      3 servers on one PostgreSQL database, one
//!                                                      worker process each (tasks/s)
//! ```
//!
//! The `pg-` workloads (feature `postgres`) make a database of their own on the PostgreSQL server
//! `FLUX_TEST_POSTGRES_URL` names, and drop it after.
//!
//! Every run uses a fresh database in a temporary directory. Only the workload itself is timed:
//! opening the engine, starting processes and checking the output are not.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flux::Durability;
use flux::prelude::*;
use flux_suite::{crashed_steps, mapped_steps, parallel_steps, steps, steps_sum};

/// The bootstrap token shared by the benchmark's server and worker (loopback only).
const TOKEN: &str = "compare-bootstrap-token";

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("flux_bench: {message}");
    std::process::exit(1)
}

fn report(workload: &str, n: u64, durability: &str, took: Duration) {
    let seconds = took.as_secs_f64();
    println!(
        "{{\"workload\": \"{workload}\", \"n\": {n}, \"durability\": \"{durability}\", \"seconds\": {seconds:.6}, \
         \"per_step_us\": {:.3}, \"peak_rss_mb\": {:.1}}}",
        seconds * 1e6 / n as f64,
        peak_rss_mb()
    );
}

/// This process's peak resident set (`VmHWM` in `/proc/self/status`), 0 where unknown.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let number = |i: usize, default: u32| match arg(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| fail(format!("`{s}` is not a count"))),
    };
    let workload = arg(0).unwrap_or_else(|| fail("usage: flux_bench WORKLOAD N [DURABILITY]; see the source"));
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(e));
    match workload {
        "worker" => {
            let url = arg(1).unwrap_or_else(|| fail("worker needs the server url"));
            rt.block_on(worker(url));
        }
        "raw" => {
            let n = number(1, 1000);
            let mode = arg(2).unwrap_or("normal");
            report("raw", u64::from(n), mode, raw(n, mode));
        }
        "http-raw" => {
            let n = number(1, 100);
            report("http-raw", u64::from(n), "default", rt.block_on(http_raw(n)));
        }
        "server" => {
            let n = number(1, 100);
            report("server", u64::from(n), "default", rt.block_on(server(1, n)));
        }
        "server-concurrent" => {
            let executions = number(1, 50);
            let n = number(2, 100);
            let took = rt.block_on(server(executions, n));
            report("server-concurrent", u64::from(executions) * u64::from(n), "default", took);
        }
        "replay-raw" => {
            let n = number(1, 1000);
            let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
            let path = dir.path().join("flux.db");
            let engine = Engine::open(&path).unwrap_or_else(|e| fail(e));
            report("replay-raw", u64::from(n), "default", rt.block_on(replay_raw(&engine, &path, n)));
        }
        "sequential" | "map" | "parallel" | "replay" => {
            let n = number(1, 1000);
            let label = arg(2).unwrap_or("default");
            let durability: Durability = label.parse().unwrap_or_else(|e| fail(e));
            let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
            let engine = Engine::open_with(dir.path().join("flux.db"), durability).unwrap_or_else(|e| fail(e));
            let took = rt.block_on(in_process(&engine, workload, n));
            report(workload, u64::from(n), label, took);
        }
        "populate" => {
            let path = arg(1).unwrap_or_else(|| fail("populate needs the database's path"));
            let (n, paused) = (number(2, 1_000_000), number(3, 100_000));
            report("populate", u64::from(n), "default", rt.block_on(scale::populate(path.as_ref(), n, paused)));
        }
        "startup" => {
            let path = arg(1).unwrap_or_else(|| fail("startup needs the database's path"));
            let took = rt.block_on(scale::startup(path.as_ref()));
            report("startup", 1, "default", took);
        }
        #[cfg(feature = "postgres")]
        "pg-raw" | "pg-sequential" | "pg-servers" => postgres::run(&rt, workload, &args[1..]),
        other => fail(format!("unknown workload `{other}`")),
    }
}

async fn in_process(engine: &Engine, workload: &str, n: u32) -> Duration {
    let check = |execution: flux::Result<Execution<u32, u64>>| {
        let execution = execution.unwrap_or_else(|e| fail(e));
        if execution.output() != Some(&steps_sum(n)) {
            fail(format!("{workload}: wrong output {:?}, expected {}", execution.output(), steps_sum(n)));
        }
    };
    if workload == "replay" {
        // The log a process killed just before `WORKFLOW_COMPLETED` leaves: every task recorded.
        // The replay runs the body again and answers each call from the log. `FLUX_BENCH_REPEAT`
        // replays that many such executions (for profiling) and reports the mean.
        let repeat: u32 = std::env::var("FLUX_BENCH_REPEAT").ok().and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
        let ids: Vec<String> = (0..repeat).map(|r| format!("crashed-{r}")).collect();
        for id in &ids {
            crashed_steps(id, n).commit(engine).await;
        }
        let _profiled = Profiled::start();
        let started = Instant::now();
        for id in &ids {
            check(steps.on(engine).replay(id).await);
        }
        return started.elapsed() / repeat;
    }
    let _profiled = Profiled::start();
    let started = Instant::now();
    match workload {
        "sequential" => check(steps.on(engine).run(n).await),
        "map" => check(mapped_steps.on(engine).run(n).await),
        _ => check(parallel_steps.on(engine).run(n).await),
    }
    started.elapsed()
}

/// The limit of `replay`: the same log (a crashed execution of `n` steps, stored by the engine
/// in its file), read by rusqlite alone with one prepared query, every row's values decoded into
/// what the workflow gets (the input `u32`, each call's arguments `(u32,)` and output `u32`).
/// Nothing else a replay does (the workflow's body, task ids, the index of the log) is done.
async fn replay_raw(engine: &Engine, path: &std::path::Path, n: u32) -> Duration {
    crashed_steps("crashed-0", n).commit(engine).await;
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| fail(e));
    let mut query = conn
        .prepare(
            "SELECT type, value, next_type, next_value FROM events
             WHERE execution = (SELECT pk FROM executions WHERE id = ?1) ORDER BY seq",
        )
        .unwrap_or_else(|e| fail(e));
    let decode = |kind: &str, value: &[u8], sum: &mut u64| match kind {
        "TASK_STARTED" => {
            let (arg,): (u32,) = flux::value::from_msgpack(value).unwrap_or_else(|e| fail(e));
            *sum += u64::from(arg);
        }
        "TASK_COMPLETED" | "WORKFLOW_STARTED" => {
            let output: u32 = flux::value::from_msgpack(value).unwrap_or_else(|e| fail(e));
            *sum += u64::from(output);
        }
        other => fail(format!("unexpected event {other}")),
    };
    let _profiled = Profiled::start();
    let started = Instant::now();
    let mut sum = 0u64;
    let mut rows = query.query(["crashed-0"]).unwrap_or_else(|e| fail(e));
    while let Some(row) = rows.next().unwrap_or_else(|e| fail(e)) {
        let text = |i| row.get_ref(i).ok().and_then(|v| v.as_str().ok()).unwrap_or("");
        let blob = |i| row.get_ref(i).ok().and_then(|v| v.as_blob().ok()).unwrap_or(&[]);
        decode(text(0), blob(1), &mut sum);
        if let Some(kind) = row.get_ref(2).ok().and_then(|v| v.as_str().ok()) {
            decode(kind, blob(3), &mut sum);
        }
    }
    let took = started.elapsed();
    // Each argument and each output once, and the input.
    if sum != 2 * steps_sum(n) + u64::from(n) {
        fail(format!("replay-raw read a sum of {sum}"));
    }
    took
}

/// Limits a profile to the timed part: with `FLUX_BENCH_PERF_CTL` naming the control FIFO of
/// `perf record --control=fifo:CTL -D -1`, recording is enabled while this value lives.
struct Profiled(Option<std::fs::File>);

impl Profiled {
    fn start() -> Profiled {
        use std::io::Write as _;
        let fifo =
            std::env::var_os("FLUX_BENCH_PERF_CTL").and_then(|p| std::fs::OpenOptions::new().write(true).open(p).ok());
        Profiled(fifo.and_then(|mut f| f.write_all(b"enable\n").ok().map(|()| f)))
    }
}

impl Drop for Profiled {
    fn drop(&mut self) {
        use std::io::Write as _;
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(b"disable\n");
        }
    }
}

/// rusqlite alone, the way flux stores an event: one row of the events table per transaction
/// (or 100 per transaction for `normal-batch100`), in WAL mode. With `normal-step` and
/// `full-step`, each commit is instead what flux commits for a sequential step: the task's
/// `TASK_STARTED` and `TASK_COMPLETED` rows, with ids, values and times of flux's sizes, in one
/// `INSERT` outside an explicit transaction; `n` counts steps.
fn raw(n: u32, mode: &str) -> Duration {
    let (sync, per_transaction) = match mode {
        "normal" => ("NORMAL", 1),
        "full" => ("FULL", 1),
        "normal-batch100" => ("NORMAL", 100),
        "normal-step" | "normal-row" => ("NORMAL", 0),
        "full-step" | "full-row" => ("FULL", 0),
        other => fail(format!(
            "unknown raw mode `{other}` (normal, full, normal-batch100, normal-step, full-step, normal-row or \
             full-row)"
        )),
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap_or_else(|e| fail(e));
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};
         CREATE TABLE events (execution INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
             source_id TEXT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, time INTEGER NOT NULL,
             next_type TEXT, next_value BLOB, next_time INTEGER,
             PRIMARY KEY (execution, seq)) WITHOUT ROWID;"
    ))
    .unwrap_or_else(|e| fail(e));
    if per_transaction == 0 {
        return raw_steps(&conn, n, mode.split_once('-').map_or("", |(_, shape)| shape));
    }
    let mut insert = conn
        .prepare("INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES (1, ?1, 'TASK_COMPLETED', 'step_4f2c9d1e', 'step', ?2, ?3)")
        .unwrap_or_else(|e| fail(e));
    // Prepared once, like the insert, so that the loop pays for the commit and nothing else.
    let mut begin = conn.prepare("BEGIN IMMEDIATE").unwrap_or_else(|e| fail(e));
    let mut commit = conn.prepare("COMMIT").unwrap_or_else(|e| fail(e));
    let started = Instant::now();
    let mut seq = 0i64;
    while seq < i64::from(n) {
        begin.execute([]).unwrap_or_else(|e| fail(e));
        for _ in 0..per_transaction {
            seq += 1;
            insert.execute(rusqlite::params![seq, &[0x01u8][..], seq]).unwrap_or_else(|e| fail(e));
        }
        commit.execute([]).unwrap_or_else(|e| fail(e));
    }
    started.elapsed()
}

/// `n` commits of a sequential step (see [`raw`]): its two rows (`step`), or one row holding
/// both events (`row`, the way flux stores a step).
fn raw_steps(conn: &rusqlite::Connection, n: u32, shape: &str) -> Duration {
    // A task id of flux's length (name, `_`, 16 hex digits), its arguments `[i]` and its output
    // `i` as MessagePack, and times in microseconds since 1970.
    let sql = match shape {
        "row" => {
            "INSERT INTO events VALUES
                 (1, ?1, 'TASK_STARTED', 'step_4f2c9d1e0a1b2c3d', 'step', ?2, ?3, 'TASK_COMPLETED', ?4, ?5)"
        }
        _ => {
            "INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES
                 (1, ?1, 'TASK_STARTED', 'step_4f2c9d1e0a1b2c3d', 'step', ?2, ?3),
                 (1, ?1 + 1, 'TASK_COMPLETED', 'step_4f2c9d1e0a1b2c3d', 'step', ?4, ?5)"
        }
    };
    let mut insert = conn.prepare(sql).unwrap_or_else(|e| fail(e));
    let epoch = 1_765_000_000_000_000i64;
    let started = Instant::now();
    for step in 0..i64::from(n) {
        let (seq, arg) = (2 * step + 1, u8::try_from(step % 100).unwrap_or(0));
        insert
            .execute(rusqlite::params![seq, &[0x91, arg][..], epoch + seq, &[arg][..], epoch + seq + 1])
            .unwrap_or_else(|e| fail(e));
    }
    started.elapsed()
}

/// Kills the worker process when the benchmark ends, however it ends.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server on `engine`, on an ephemeral loopback port, with the harness's tokens.
async fn bind_server(engine: &Engine) -> flux::server::RunningServer {
    flux::server::Server::new()
        .engine(engine)
        .bootstrap_token(TOKEN)
        .admin_token("compare-admin-token")
        .bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(e))
}

/// `executions` concurrent executions of `steps(n)` through a server and one worker process,
/// each submitted with `run/sync`. Timed from the first submission to the last answer.
async fn server(executions: u32, n: u32) -> Duration {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e));
    let engine = Engine::open(dir.path().join("flux.db")).unwrap_or_else(|e| fail(e));
    let server = bind_server(&engine).await;
    let url = server.url();
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(e));
    let _worker = WorkerProcess(
        Command::new(exe)
            .args(["worker", &url])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail(format!("cannot start the worker: {e}"))),
    );
    let client = flux::Client::new(&url).unwrap_or_else(|e| fail(e));
    flux_suite::http::wait_for_catalog(&client, Duration::from_secs(30)).await.unwrap_or_else(|e| fail(e));
    let started = Instant::now();
    let runs = (0..executions).map(|_| async {
        flux_suite::http::run_steps(&client, n).await.unwrap_or_else(|e| fail(e));
    });
    futures::future::join_all(runs).await;
    let took = started.elapsed();
    server.shutdown().await.unwrap_or_else(|e| fail(e));
    took
}

/// The limit of [`server`]: `n` round trips, one after the other, over one loopback HTTP/1.1
/// connection to an axum server (the HTTP stack of flux's), each sending what a worker sends for
/// one step of `steps` (its checkpoint: `TASK_STARTED` and `TASK_COMPLETED`, MessagePack, the
/// same size) and getting a checkpoint's answer back. Nothing is decoded or stored.
async fn http_raw(n: u32) -> Duration {
    use axum::routing::post;

    #[derive(serde::Serialize)]
    struct Event {
        seq: u64,
        #[serde(rename = "type")]
        kind: &'static str,
        source_id: &'static str,
        name: &'static str,
        #[serde(with = "bytes")]
        value: Vec<u8>,
        time: i64,
    }
    #[derive(serde::Serialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Write {
        Append { event: Event },
    }
    #[derive(serde::Serialize)]
    struct Checkpoint {
        generation: u64,
        writes: Vec<Write>,
    }
    mod bytes {
        pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }
    let event = |seq, kind, value: Vec<u8>| Event {
        seq,
        kind,
        source_id: "step_4f2c9d1e0a1b2c3d",
        name: "step",
        value,
        time: 1_765_000_000_000_000,
    };
    let body = flux::value::to_msgpack(&Checkpoint {
        generation: 1,
        writes: vec![
            Write::Append { event: event(7, "TASK_STARTED", vec![0x91, 0x05]) },
            Write::Append { event: event(8, "TASK_COMPLETED", vec![0x05]) },
        ],
    })
    .unwrap_or_else(|e| fail(e));
    let app = axum::Router::new().route(
        "/workers/w/checkpoint/e",
        post(|body: axum::body::Bytes| async move {
            std::hint::black_box(body);
            axum::Json(serde_json::json!({"seq": 8, "cancelling": false}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| fail(e));
    let url = format!("http://{}/workers/w/checkpoint/e", listener.local_addr().unwrap_or_else(|e| fail(e)));
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let round_trip = || async {
        let answer = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/msgpack")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| fail(e));
        let answer: serde_json::Value = answer.json().await.unwrap_or_else(|e| fail(e));
        std::hint::black_box(answer);
    };
    round_trip().await;
    let started = Instant::now();
    for _ in 0..n {
        round_trip().await;
    }
    let took = started.elapsed();
    served.abort();
    took
}

/// The worker process of [`server`]: runs `steps` for the server at `url` with an in-memory
/// engine of its own, until it is killed.
async fn worker(url: &str) {
    let name = std::env::var("FLUX_BENCH_WORKER_NAME").unwrap_or_else(|_| "compare-worker".to_string());
    let worker = flux::worker::Worker::new(url).name(name).bootstrap_token(TOKEN).max_concurrency(256).register(steps);
    if let Err(e) = worker.run().await {
        fail(e);
    }
}

/// Many stored executions: a file of them, and a server starting on it.
mod scale {
    use super::*;

    /// A paused execution: one task, then a pause for approval.
    #[flux::workflow]
    async fn approval(ctx: ExecutionContext<u32>) -> flux::Result<u64> {
        let first = flux_suite::step(*ctx.input()).await?;
        let approved: bool = flux::pause("approval").await?;
        Ok(u64::from(first) + u64::from(approved))
    }

    /// Makes `path` hold `n` executions, `paused` of them paused and the others completed: one
    /// of each is run by an engine, and the rest are copies of their rows under new ids (made
    /// by SQL, which takes seconds where running them would take minutes). Timed: the copies.
    pub(super) async fn populate(path: &std::path::Path, n: u32, paused: u32) -> Duration {
        let engine = Engine::open(path).unwrap_or_else(|e| fail(e));
        check(steps.on(&engine).run_with_id("completed-0", 10).await.map(drop));
        let pause = approval.on(&engine).run_with_id("paused-0", 3).await.unwrap_or_else(|e| fail(e));
        if !pause.is_paused() {
            fail("the approval workflow did not pause");
        }
        drop(engine);
        let mut conn = rusqlite::Connection::open(path).unwrap_or_else(|e| fail(e));
        let started = Instant::now();
        let tx = conn.transaction().unwrap_or_else(|e| fail(e));
        for (model, count) in [("completed-0", n.saturating_sub(paused)), ("paused-0", paused.min(n))] {
            let prefix = model.trim_end_matches("-0");
            let columns = "workflow_name, workflow_version, state, input, output, parent_id, worker, \
                           claim_generation, created_at, updated_at, owner, lease_until";
            let mut execution = tx
                .prepare(&format!(
                    "INSERT INTO executions (id, {columns}) SELECT ?1, {columns} FROM executions WHERE id = ?2"
                ))
                .unwrap_or_else(|e| fail(e));
            let mut events = tx
                .prepare(
                    "INSERT INTO events (execution, seq, type, source_id, name, value, time, next_type, next_value,
                                         next_time)
                     SELECT ?1, seq, type, source_id, name, value, time, next_type, next_value, next_time
                     FROM events WHERE execution = (SELECT pk FROM executions WHERE id = ?2)",
                )
                .unwrap_or_else(|e| fail(e));
            for i in 1..count {
                execution.execute(rusqlite::params![format!("{prefix}-{i}"), model]).unwrap_or_else(|e| fail(e));
                events.execute(rusqlite::params![tx.last_insert_rowid(), model]).unwrap_or_else(|e| fail(e));
            }
        }
        tx.commit().unwrap_or_else(|e| fail(e));
        started.elapsed()
    }

    fn check(result: flux::Result<()>) {
        result.unwrap_or_else(|e| fail(e));
    }

    /// Opens the engine on `path` and starts a server on it, timed until its first answer (to
    /// `GET /openapi.json`). The reported peak RSS is the process's over its first seconds.
    pub(super) async fn startup(path: &std::path::Path) -> Duration {
        let started = Instant::now();
        let engine = Engine::open(path).unwrap_or_else(|e| fail(e));
        let server = bind_server(&engine).await;
        let answer = reqwest::get(format!("{}/openapi.json", server.url())).await.unwrap_or_else(|e| fail(e));
        if !answer.status().is_success() {
            fail(format!("the server answered {}", answer.status()));
        }
        let took = started.elapsed();
        // Then what a running server does on its own for a while (recovery, schedules, queues),
        // and a scrape of `/metrics`, which counts the executions by state: the peak RSS
        // reported covers them.
        let scrape = Instant::now();
        let metrics = reqwest::get(format!("{}/metrics", server.url())).await.unwrap_or_else(|e| fail(e));
        let text = metrics.text().await.unwrap_or_else(|e| fail(e));
        let paused = text.lines().find(|l| l.starts_with("flux_executions{state=\"PAUSED\"}")).unwrap_or("none");
        eprintln!("GET /metrics answered in {:.1} ms ({paused})", scrape.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.shutdown().await.unwrap_or_else(|e| fail(e));
        took
    }
}

/// The PostgreSQL workloads.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use flux_suite::postgres::Database;

    pub(super) fn run(rt: &tokio::runtime::Runtime, workload: &str, args: &[String]) {
        let number = |i: usize, default: u32| {
            args.get(i).map_or(default, |s| s.parse().unwrap_or_else(|_| fail(format!("`{s}` is not a count"))))
        };
        let server = flux_suite::postgres::server().unwrap_or_else(|| fail("set FLUX_TEST_POSTGRES_URL"));
        let db = Database::new(&server);
        let url = db.url();
        match workload {
            "pg-raw" => {
                let n = number(0, 1000);
                let mode = args.get(1).map_or("default", String::as_str);
                report("pg-raw", u64::from(n), mode, rt.block_on(raw(&url, n, mode)));
            }
            "pg-sequential" => {
                let n = number(0, 1000);
                let label = args.get(1).map_or("default", String::as_str);
                let durability: Durability = label.parse().unwrap_or_else(|e| fail(e));
                let engine = Engine::open_with(&url, durability).unwrap_or_else(|e| fail(e));
                // One short run first: the store's connections and statements are ready.
                rt.block_on(in_process(&engine, "sequential", 10));
                let took = rt.block_on(in_process(&engine, "sequential", n));
                report("pg-sequential", u64::from(n), label, took);
            }
            _ => {
                let servers = number(0, 1).max(1);
                let executions = number(1, 50);
                let n = number(2, 100);
                let busy = busy_seconds();
                let took = rt.block_on(through_servers(&url, servers, executions, n));
                let busy = busy_seconds() - busy;
                let tasks = u64::from(executions) * u64::from(n);
                // What the whole machine (servers, workers, PostgreSQL) spent per task, next to
                // the throughput: on a machine whose cores are all busy, more servers cannot add
                // throughput, only spread it.
                let seconds = took.as_secs_f64();
                println!(
                    "{{\"workload\": \"pg-servers-{servers}\", \"n\": {tasks}, \"durability\": \"default\", \
                     \"seconds\": {seconds:.6}, \"per_step_us\": {:.3}, \"peak_rss_mb\": {:.1}, \
                     \"cpu_us_per_task\": {:.1}, \"cpu_busy\": {:.3}}}",
                    seconds * 1e6 / tasks as f64,
                    peak_rss_mb(),
                    busy * 1e6 / tasks as f64,
                    busy / seconds
                        / f64::from(
                            u32::try_from(std::thread::available_parallelism().map_or(1, |n| n.get())).unwrap_or(1)
                        ),
                );
            }
        }
        drop(db);
    }

    /// The CPU time the whole machine spent so far (all cores, user and system), from
    /// `/proc/stat`; 0 where unknown.
    fn busy_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
        let fields: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
        let busy: f64 = fields.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).take(6).map(|(_, v)| v).sum();
        busy / 100.0
    }

    /// `n` commits of one row the size of an event, each its own transaction, on one connection
    /// (`synchronous_commit` off for `default`, on for `full`).
    async fn raw(url: &str, n: u32, mode: &str) -> Duration {
        let (client, connection) =
            tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| fail(e));
        tokio::spawn(connection);
        let synchronous = if mode == "full" { "on" } else { "off" };
        client
            .batch_execute(&format!(
                "SET synchronous_commit TO {synchronous};
                 CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, execution BIGINT NOT NULL, seq BIGINT NOT NULL,
                     type TEXT NOT NULL, name TEXT NOT NULL, value BYTEA NOT NULL, time BIGINT NOT NULL)"
            ))
            .await
            .unwrap_or_else(|e| fail(e));
        let insert = client
            .prepare("INSERT INTO raw_events (execution, seq, type, name, value, time) VALUES ($1, $2, $3, $4, $5, $6)")
            .await
            .unwrap_or_else(|e| fail(e));
        let value = vec![0x92u8; 24];
        let started = Instant::now();
        for seq in 0..i64::from(n) {
            client.batch_execute("BEGIN").await.unwrap_or_else(|e| fail(e));
            client
                .execute(&insert, &[&1i64, &seq, &"TASK_COMPLETED", &"step", &value, &seq])
                .await
                .unwrap_or_else(|e| fail(e));
            client.batch_execute("COMMIT").await.unwrap_or_else(|e| fail(e));
        }
        started.elapsed()
    }

    /// `executions` concurrent executions of `steps(n)` submitted round-robin (`run/sync`) to
    /// `servers` servers of this process on the database at `url`, each with one worker process.
    async fn through_servers(url: &str, servers: u32, executions: u32, n: u32) -> Duration {
        let home = tempfile::tempdir().unwrap_or_else(|e| fail(e));
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(e));
        let mut running = Vec::new();
        let mut workers = Vec::new();
        let mut clients = Vec::new();
        for i in 0..servers {
            let engine = Engine::builder()
                .postgres(url)
                .home(home.path().join(format!("server-{i}")))
                .encryption_key("5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f")
                .build()
                .unwrap_or_else(|e| fail(e));
            let server = bind_server(&engine).await;
            let url = server.url();
            workers.push(WorkerProcess(
                Command::new(&exe)
                    .args(["worker", &url])
                    .env("FLUX_BENCH_WORKER_NAME", format!("compare-worker-{i}"))
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| fail(format!("cannot start the worker: {e}"))),
            ));
            let client = flux::Client::new(&url).unwrap_or_else(|e| fail(e));
            flux_suite::http::wait_for_catalog(&client, Duration::from_secs(30)).await.unwrap_or_else(|e| fail(e));
            clients.push(client);
            running.push(server);
        }
        let started = Instant::now();
        let runs = (0..executions).map(|i| {
            let client = &clients[i as usize % clients.len()];
            async move { flux_suite::http::run_steps(client, n).await.unwrap_or_else(|e| fail(e)) }
        });
        futures::future::join_all(runs).await;
        let took = started.elapsed();
        for server in running {
            server.shutdown().await.unwrap_or_else(|e| fail(e));
        }
        drop(workers);
        took
    }
}
