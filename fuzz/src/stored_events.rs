//! `stored_events`: whatever a database holds, loading it never panics.
//!
//! The input describes one execution row and up to [`MAX_EVENTS`] event rows, column by
//! column; each column is any SQLite value (NULL, integer, real, text that need not be UTF-8,
//! blob) or one of a few valid values (a known state, event type, task id, MessagePack value),
//! so that the fuzzer reaches both the checks of the loader and the code behind them. The rows
//! are written with rusqlite straight into the database the engine opened, then the execution
//! is:
//!
//! 1. loaded through the store (`Store::load`, `state`, `list`): either an error with a message
//!    of one of the storage kinds, or the rows as written;
//! 2. decoded: every stored value as JSON, as a `flux::Error`, as an output reference, with
//!    a MessagePack round trip when it decodes;
//! 3. read as each workflow (`Workflow::status`: input, output, stored error, pause);
//! 4. shown over HTTP (`GET /workflows/{name}/status/{id}?detailed=true`): never a 500 when the
//!    store could load it;
//! 5. replayed (`Workflow::replay`), which decodes the recorded task results and carries on,
//!    or fails with an error (a log whose last seq is `i64::MAX` cannot take another event).
//!
//! Input layout (every read past the end gives zeros, so every input is valid):
//!
//! ```text
//! flags: u8              bits 0-1: workflow name (orders, echo, approval, or a column)
//! columns of the row     state, input, output, created_at, updated_at, worker,
//!                        claim_generation, parent_id
//! events, until the end  seq, type, source_id, name, value, time
//!
//! column: tag u8, then by tag % 6
//!   0 NULL   1 integer (8 bytes LE)   2 real (8 bytes LE)
//!   3 text (u16 LE length, bytes)     4 blob (u16 LE length, bytes)
//!   5 known value number k (u8): see `known`
//! ```

use std::cell::RefCell;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flux::store::StoredExecution;
use flux::{Engine, Error, ErrorKind, EventType, ExecutionState};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

use crate::workflows::{Order, approval, echo, orders};

/// At most this many event rows per input.
pub const MAX_EVENTS: usize = 32;

/// One column's value as written.
#[derive(Clone, Debug, PartialEq)]
enum Column {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl ToSql for Column {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Column::Null => ValueRef::Null,
            Column::Int(i) => ValueRef::Integer(*i),
            Column::Real(r) => ValueRef::Real(*r),
            // Bound as TEXT even when not UTF-8: what a damaged file or another program can hold.
            Column::Text(t) => ValueRef::Text(t),
            Column::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Which column a value is for: picks the meaning of a known value.
#[derive(Clone, Copy, Debug)]
enum Role {
    WorkflowName,
    State,
    Input,
    Output,
    Time,
    Generation,
    Worker,
    Seq(usize),
    Type,
    SourceId,
    Name,
    Value,
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn eight(&mut self) -> [u8; 8] {
        let mut out = [0u8; 8];
        let head = self.take(8);
        out[..head.len()].copy_from_slice(head);
        out
    }

    fn sized(&mut self) -> Vec<u8> {
        let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()]));
        self.take(len).to_vec()
    }

    fn column(&mut self, role: Role, id: &str) -> Column {
        match self.byte() % 6 {
            0 => Column::Null,
            1 => Column::Int(i64::from_le_bytes(self.eight())),
            2 => Column::Real(f64::from_le_bytes(self.eight())),
            3 => Column::Text(self.sized()),
            4 => Column::Blob(self.sized()),
            _ => known(role, self.byte(), id),
        }
    }
}

fn msgpack<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match flux::value::to_msgpack(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("the harness's own value does not encode: {e}"),
    }
}

fn text(s: impl Into<String>) -> Column {
    Column::Text(s.into().into_bytes())
}

/// An output reference to the `file` storage: MessagePack extension 70 over
/// `[storage, reference]`.
fn reference(storage: &str, reference: &str) -> Vec<u8> {
    let data = msgpack(&(storage, reference));
    let mut out = vec![0xc7, u8::try_from(data.len()).unwrap_or(u8::MAX), 70];
    out.extend_from_slice(&data);
    out
}

/// Valid values, `k` picking one; `k / 8` (or `k / 4`) is the number in it.
fn known(role: Role, k: u8, id: &str) -> Column {
    let n = i64::from(k / 8);
    match role {
        Role::WorkflowName => text(["orders", "echo", "approval", "remote"][usize::from(k % 4)]),
        Role::State => text(ExecutionState::ALL[usize::from(k) % ExecutionState::ALL.len()].as_str()),
        Role::Input => match k % 4 {
            0 => Column::Blob(msgpack(&Order { id: i64::from(k / 4), items: vec!["a".into()] })),
            1 => Column::Blob(msgpack(&serde_json::json!({"any": [1, "json", null]}))),
            2 => Column::Blob(msgpack("question")),
            _ => Column::Blob(vec![0xc0]),
        },
        Role::Output | Role::Value => match k % 8 {
            0 => Column::Blob(vec![0xc0]),
            1 => Column::Blob(msgpack(&n)),
            2 => Column::Blob(msgpack(&(n,))),
            3 => Column::Blob(msgpack(&Order { id: n, items: vec!["a".into(), "b".into()] })),
            4 => Column::Blob(msgpack(
                &Error::new(ErrorKind::TaskFailed, "boom").with_cause("because").with_task_id("check_0"),
            )),
            5 => Column::Blob(msgpack(&serde_json::json!({"name": "approval", "output": "approve?"}))),
            6 => Column::Blob(reference("file", &"0".repeat(64))),
            _ => Column::Blob(msgpack(&vec!["a".to_string(), n.to_string()])),
        },
        Role::Time => Column::Int(1_700_000_000_000_000 + i64::from(k) * 1_000),
        Role::Generation => Column::Int(i64::from(k % 4)),
        Role::Worker => {
            if k % 2 == 0 {
                Column::Null
            } else {
                text("w1")
            }
        }
        Role::Seq(index) => Column::Int(i64::try_from(index + 1).unwrap_or(i64::MAX) + i64::from(k / 128)),
        Role::Type => text(EventType::ALL[usize::from(k) % EventType::ALL.len()].as_str()),
        Role::SourceId => {
            let n = i64::from(k / 4);
            match k % 4 {
                0 => text(format!("orders_{id}")),
                1 => text(task_id("double", n)),
                2 => text(task_id("check", n)),
                _ => text(format!("approval_{id}")),
            }
        }
        Role::Name => text(["orders", "double", "check", "approval"][usize::from(k % 4)]),
    }
}

fn task_id(name: &str, n: i64) -> String {
    flux::identity::task_id(name, &msgpack(&(n,)))
}

/// What the harness keeps between inputs: one database, reused.
struct State {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    conn: rusqlite::Connection,
    server: flux::server::ServerRouter,
    /// The `events` table names its execution by the row's integer key (`execution`, schema 2)
    /// rather than by its text id (`execution_id`, schema 1).
    integer_key: bool,
    count: u64,
    _dir: PathBuf,
}

impl State {
    fn new() -> State {
        let dir = crate::scratch().join("stored_events");
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("flux.db");
        let rt = crate::runtime();
        let engine = match Engine::open(&db) {
            Ok(e) => e,
            Err(e) => panic!("cannot open the fuzz database: {e}"),
        };
        let conn = match rusqlite::Connection::open(&db) {
            Ok(c) => c,
            Err(e) => panic!("cannot open the fuzz database with rusqlite: {e}"),
        };
        // The harness's own writes need not reach the disk.
        if let Err(e) = conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA busy_timeout = 10000;") {
            panic!("cannot configure the harness connection: {e}");
        }
        let integer_key = conn
            .query_row("SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'execution'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0);
        let integer_key = match integer_key {
            Ok(k) => k,
            Err(e) => panic!("cannot read the schema of the fuzz database: {e}"),
        };
        let server = rt.block_on(async {
            flux::server::Server::from_config(flux::Config::default())
                .engine(&engine)
                .bootstrap_token("bootstrap")
                .admin_token("admin")
                .register(orders)
                .register(echo)
                .register(approval)
                .into_router()
                .await
        });
        let server = match server {
            Ok(s) => s,
            Err(e) => panic!("cannot set up the server: {e}"),
        };
        State { rt, engine, conn, server, integer_key, count: 0, _dir: dir }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Runs one input (see the module documentation).
pub fn run(data: &[u8]) {
    let data = &data[..data.len().min(crate::MAX_INPUT)];
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let state = slot.get_or_insert_with(State::new);
        state.count += 1;
        let id = format!("x{}", state.count);
        one(state, &id, data);
    });
}

fn one(state: &mut State, id: &str, data: &[u8]) {
    let mut r = Reader { data };
    let flags = r.byte();
    let workflow_name = match flags % 4 {
        0 => text("orders"),
        1 => text("echo"),
        2 => text("approval"),
        _ => r.column(Role::WorkflowName, id),
    };
    let row = [
        r.column(Role::State, id),
        r.column(Role::Input, id),
        r.column(Role::Output, id),
        r.column(Role::Time, id),
        r.column(Role::Time, id),
        r.column(Role::Worker, id),
        r.column(Role::Generation, id),
        r.column(Role::Worker, id),
    ];
    let mut events = Vec::new();
    while !r.is_empty() && events.len() < MAX_EVENTS {
        let index = events.len();
        events.push([
            r.column(Role::Seq(index), id),
            r.column(Role::Type, id),
            r.column(Role::SourceId, id),
            r.column(Role::Name, id),
            r.column(Role::Value, id),
            r.column(Role::Time, id),
        ]);
    }

    // Write the rows (SQLite may refuse some: NOT NULL, a repeated seq; those are left out).
    let conn = &state.conn;
    let cleared = conn.execute_batch("BEGIN; DELETE FROM events; DELETE FROM executions;");
    if let Err(e) = cleared {
        panic!("cannot clear the fuzz database: {e}");
    }
    // Under schema 2 each execution gets a key of its own, as in a database flux wrote (SQLite
    // would give the key of the deleted row again).
    let key = if state.integer_key { Column::Int(i64::try_from(state.count).unwrap_or(i64::MAX)) } else { text(id) };
    let insert_execution = if state.integer_key {
        "INSERT INTO executions (id, workflow_name, state, input, output, created_at, updated_at, worker,
                                 claim_generation, parent_id, pk)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    } else {
        "INSERT INTO executions (id, workflow_name, state, input, output, created_at, updated_at, worker,
                                 claim_generation, parent_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    };
    let id_column = text(id);
    let mut columns: Vec<&dyn ToSql> = vec![&id_column, &workflow_name];
    columns.extend(row.iter().map(|c| c as &dyn ToSql));
    if state.integer_key {
        columns.push(&key);
    }
    let inserted = conn.execute(insert_execution, columns.as_slice()).is_ok();
    let insert_event = if state.integer_key {
        "INSERT INTO events (execution, seq, type, source_id, name, value, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    } else {
        "INSERT INTO events (execution_id, seq, type, source_id, name, value, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    };
    let mut stored_events = 0usize;
    for event in &events {
        let result = conn
            .execute(insert_event, rusqlite::params![key, event[0], event[1], event[2], event[3], event[4], event[5]]);
        if crate::tracing()
            && let Err(e) = &result
        {
            eprintln!("{id}: event row refused: {e}");
        }
        stored_events += usize::from(result.is_ok());
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        panic!("cannot write the fuzzed rows: {e}");
    }

    // 1. The store.
    let store = state.engine.store().clone();
    let loaded = store.load(id);
    if crate::tracing() {
        match &loaded {
            Ok(Some(s)) => eprintln!(
                "{id}: {} {} with events {:?}",
                s.workflow_name,
                s.state,
                s.events.iter().map(|e| e.seq()).collect::<Vec<_>>()
            ),
            Ok(None) => eprintln!("{id}: no execution"),
            Err(e) => eprintln!("{id}: {:?} {e}", e.kind()),
        }
    }
    match &loaded {
        Ok(Some(stored)) => {
            assert!(inserted, "execution `{id}` loaded although its row was refused");
            assert_eq!(stored.events.len(), stored_events, "events lost or invented by load");
            // Non-decreasing only: a stored seq of 0 or below loads as 0 (reported: the store
            // could refuse it as corrupt instead).
            assert!(stored.events.windows(2).all(|w| w[0].seq() <= w[1].seq()), "events out of order");
            decode_all(stored);
        }
        Ok(None) => assert!(!inserted, "execution `{id}` is stored but does not load"),
        Err(e) => check_error(e, "Store::load"),
    }
    if let Err(e) = store.state(id) {
        check_error(&e, "Store::state");
    }
    if let Err(e) = store.list(ExecutionState::ALL) {
        check_error(&e, "Store::list");
    }

    let engine = state.engine.clone();
    let router = state.server.router();
    let loads = matches!(loaded, Ok(Some(_)));
    let name = match &loaded {
        Ok(Some(stored)) => stored.workflow_name.clone(),
        _ => String::new(),
    };
    state.rt.block_on(async move {
        // 3. As each workflow.
        for result in [
            orders.on(&engine).status(id).await.map(|e| (e.pause_name(), e.error().cloned(), e.events().len())),
            echo.on(&engine).status(id).await.map(|e| (e.pause_name(), e.error().cloned(), e.events().len())),
            approval.on(&engine).status(id).await.map(|e| {
                let _ = e.pause_output::<String>();
                (e.pause_name(), e.error().cloned(), e.events().len())
            }),
        ] {
            if let Err(e) = result {
                check_error(&e, "Workflow::status");
            }
        }

        // 4. Over HTTP.
        if loads && let Some(path) = status_path(&name, id) {
            let request = Request::get(path).body(Body::empty());
            if let Ok(request) = request {
                let (status, body) = crate::http_bodies::send(&router, request).await;
                assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "status of a loadable execution: {body:?}");
            }
        }

        // 5. Replayed.
        let replayed = match name.as_str() {
            "orders" => orders.on(&engine).replay(id).await.map(drop),
            "echo" => echo.on(&engine).replay(id).await.map(drop),
            "approval" => approval.on(&engine).replay(id).await.map(drop),
            _ => Ok(()),
        };
        if crate::tracing() {
            match &replayed {
                Ok(()) => match engine.store().load(id) {
                    Ok(Some(s)) => eprintln!(
                        "replayed: {} {:?}",
                        s.state,
                        s.events.iter().map(|e| format!("{} {}", e.kind(), e.source_id())).collect::<Vec<_>>()
                    ),
                    other => eprintln!("replayed: {other:?}"),
                },
                Err(e) => eprintln!("replay: {:?} {e}", e.kind()),
            }
        }
        if let Err(e) = replayed {
            check_error(&e, "Workflow::replay");
        }
    });
}

/// `/workflows/{name}/status/{id}?detailed=true`, with the name percent-encoded.
fn status_path(name: &str, id: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    Some(format!("/workflows/{}/status/{id}?detailed=true", crate::http_bodies::percent_encode(name.as_bytes())))
}

/// An error flux returns for stored data must say what is wrong.
fn check_error(e: &Error, what: &str) {
    assert!(!e.to_string().trim().is_empty(), "{what} returned an error without a message: {e:?}");
    assert_ne!(e.kind(), ErrorKind::Panic, "{what} reported a panic: {e}");
}

/// Decodes every stored value of an execution in every way the public API offers.
fn decode_all(stored: &StoredExecution) {
    decode_value(&stored.input);
    if let Some(output) = &stored.output {
        decode_value(output);
    }
    for event in &stored.events {
        let _ = event.value::<serde_json::Value>();
        let _ = event.value::<Error>();
        let _ = event.value::<Order>();
        let _ = event.output_reference();
        decode_value(event.value_bytes());
        let _ = event.kind().to_string();
    }
}

/// Decodes one MessagePack value; one that decodes as JSON must encode again and decode to the
/// same JSON.
pub fn decode_value(bytes: &[u8]) {
    let _ = flux::value::from_msgpack::<Error>(bytes);
    let _ = flux::value::from_msgpack::<Order>(bytes);
    let _ = flux::value::from_msgpack::<(String, u32)>(bytes);
    let _ = flux::output::reference_of(bytes);
    if let Ok(json) = flux::value::from_msgpack::<serde_json::Value>(bytes) {
        let again = match flux::value::to_msgpack(&json) {
            Ok(b) => b,
            Err(e) => panic!("decoded JSON {json} does not encode again: {e}"),
        };
        match flux::value::from_msgpack::<serde_json::Value>(&again) {
            Ok(back) => assert_eq!(back, json, "MessagePack round trip changed the value"),
            Err(e) => panic!("re-encoded JSON {json} does not decode: {e}"),
        }
    }
}
