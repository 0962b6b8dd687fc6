//! `flux`, the command-line tool of flux (feature `cli`).
//!
//! ```text
//! flux start server [--host H] [--port P]          the HTTP API (docs/design.md §11), until Ctrl-C
//! flux start worker NAME [--token BOOTSTRAP]       a worker running the demo workflows below
//! flux workflow list | show NAME
//! flux workflow run NAME INPUT [--mode sync|async|stream] [--detailed]
//! flux workflow resume NAME EXECUTION_ID INPUT [--mode sync|async|stream] [--detailed]
//! flux workflow status NAME EXECUTION_ID [--detailed]
//! flux workflow cancel NAME EXECUTION_ID [--mode async|sync]
//! flux execution list [--workflow NAME] [--state STATE]... [--created-after T] [--created-before T]
//!                     [--limit N] [--offset N]
//! flux secrets list | set NAME VALUE | get NAME | remove NAME
//! global: --server-url URL, --admin-token TOKEN, --format table|json
//! ```
//!
//! INPUT is JSON text; text that is not valid JSON is sent as a JSON string (`World` is
//! `"World"`). The server URL defaults to `FLUX_WORKERS__SERVER_URL` (or `flux.toml`), the admin
//! token to `FLUX_SECURITY__ADMIN_TOKEN`. A non-2xx answer prints `error: <detail> (HTTP <code>)`
//! on standard error and exits with code 1.
//!
//! # Workers of your own
//!
//! `flux start worker` runs the demo workflows compiled into this binary (`hello_world`,
//! `approval`, `countdown`, in `demo.rs`). A worker runs compiled Rust code, so your workflows
//! need a binary of your own, built with flux's `server` feature, whose `main` is the worker:
//!
//! ```no_run
//! use flux::prelude::*;
//!
//! #[flux::workflow]
//! async fn my_workflow(ctx: ExecutionContext<String>) -> String {
//!     format!("Hello, {}", ctx.input())
//! }
//!
//! #[tokio::main]
//! async fn main() -> flux::Result<()> {
//!     flux::worker::Worker::new("http://localhost:8000")
//!         .name("my-worker")
//!         .register(my_workflow)
//!         .run()
//!         .await
//! }
//! ```
//!
//! Start it next to `flux start server`, then drive it with `flux workflow run my_workflow ...`.
// Data from the network, files and the user gets an error message, never a panic.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod client;
mod demo;
mod error;
mod mcp;
mod output;
mod progress;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use flux::client::{EventStream, ExecutionStatus, StreamEvent};
use flux::protocol::{STREAM_ERROR, TASK_PROGRESS};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::cli::{
    CancelMode, Cli, Command, ExecutionCommand, Format, GlobalOptions, OverlapArg, RunMode, ScheduleCommand,
    SecretsCommand, StartCommand, WorkflowCommand,
};
use crate::client::parse_input;
use crate::error::CliError;

/// How long background work may take to stop once a command is done.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.command.default_log_filter());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) | Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (else `default_filter`).
fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: ignoring RUST_LOG `{spec}`: {e}");
            EnvFilter::new(default_filter)
        }),
        _ => EnvFilter::new(default_filter),
    };
    // Fails only if a subscriber is already set, which nothing else does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs one command.
async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli { global, command } = cli;
    match command {
        Command::Start(StartCommand::Server { host, port }) => start_server(host, port).await,
        Command::Start(StartCommand::Worker { name, token }) => start_worker(&global, name, token).await,
        Command::Start(StartCommand::Mcp(args)) => mcp::start_mcp(&global, args).await,
        Command::Workflow(command) => workflow(&global, command).await,
        Command::Execution(command) => execution(&global, command).await,
        Command::Secrets(command) => secrets(&global, command).await,
        Command::Schedule(command) => schedule(&global, command).await,
    }
}

/// Writes `text` to standard output and flushes it (a closed pipe ends the command quietly).
fn emit(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Prints `value` as pretty JSON or as `table(value)`.
fn show(format: Format, value: &Value, table: impl FnOnce(&Value) -> String) -> Result<(), CliError> {
    match format {
        Format::Json => emit(&format!("{}\n", output::pretty(value))),
        Format::Table => emit(&table(value)),
    }
}

/// The server URL: `--server-url`, else the configuration's `workers.server_url`.
fn server_url(global: &GlobalOptions) -> Result<String, CliError> {
    match &global.server_url {
        Some(url) => Ok(url.clone()),
        None => Ok(flux::Config::load()?.workers.server_url),
    }
}

/// Waits for Ctrl-C (or SIGTERM); if no signal handler can be installed, waits forever.
async fn shutdown_signal() -> &'static str {
    match signal().await {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C; stop the process another way");
            std::future::pending().await
        }
    }
}

/// The first of Ctrl-C and SIGTERM.
async fn signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map(|()| "Ctrl-C"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

/// `flux start server`.
async fn start_server(host: Option<String>, port: Option<u16>) -> Result<(), CliError> {
    let mut config = flux::Config::load()?;
    if let Some(host) = host {
        config.server_host = host;
    }
    if let Some(port) = port {
        config.server_port = port;
    }
    let host = config.server_host.clone();
    let port = config.server_port;
    let running = flux::server::Server::from_config(config)
        .bind((host.as_str(), port))
        .await
        .map_err(|e| CliError::msg(format!("cannot start the server on {host}:{port}: {e}")))?;
    let mut banner = format!("flux server listening on http://{}\n", running.local_addr());
    let (bootstrap, admin) = running.generated_tokens();
    if let Some(token) = bootstrap {
        banner.push_str(&format!("bootstrap token: {token}\n"));
    }
    if let Some(token) = admin {
        banner.push_str(&format!("admin token: {token}\n"));
    }
    emit(&banner)?;
    let signal = shutdown_signal().await;
    tracing::info!("{signal} received; shutting down");
    running.shutdown().await.map_err(|e| CliError::msg(format!("the server did not stop cleanly: {e}")))
}

/// `flux start worker`.
async fn start_worker(global: &GlobalOptions, name: String, token: Option<String>) -> Result<(), CliError> {
    let url = server_url(global)?;
    let mut worker = flux::worker::Worker::new(url.clone()).name(name.clone());
    if let Some(token) = token {
        worker = worker.bootstrap_token(token);
    }
    let worker = worker.register(demo::hello_world).register(demo::approval).register(demo::countdown);
    tracing::info!(%url, worker = %name, "worker starting with hello_world, approval and countdown");
    tokio::select! {
        result = worker.run() => {
            result.map_err(|e| CliError::msg(format!("worker `{name}` (server {url}) stopped: {e}")))
        }
        signal = shutdown_signal() => {
            tracing::info!("{signal} received; worker `{name}` stopping");
            Ok(())
        }
    }
}

/// `flux workflow ...`.
async fn workflow(global: &GlobalOptions, command: WorkflowCommand) -> Result<(), CliError> {
    let client = client::connect(&server_url(global)?, None)?;
    let failure = |e: flux::Error| client::failure(&client, e, false);
    let format = global.format;
    match command {
        WorkflowCommand::List => {
            let workflows = client.workflows().await.map_err(failure)?;
            let list = Value::Array(workflows.iter().map(|w| w.json().clone()).collect());
            show(format, &list, |list| match list.as_array() {
                Some(items) if items.is_empty() => {
                    "no workflows: start a worker (`flux start worker NAME`) to register some\n".to_string()
                }
                Some(items) => output::objects_table(items, &["name", "version"], &[]),
                None => format!("{}\n", output::pretty(list)),
            })
        }
        WorkflowCommand::Show { name } => {
            let workflow = client.workflow_info(&name).await.map_err(failure)?;
            show(format, workflow.json(), |workflow| match workflow.as_object() {
                Some(object) => output::object_view(object, &["name", "version"], &[]),
                None => format!("{}\n", output::pretty(workflow)),
            })
        }
        WorkflowCommand::Run { name, input, mode, detailed, queue } => {
            let mut workflow = client.workflow::<Value, Value>(name).detailed(detailed);
            if let Some(queue) = queue {
                workflow = workflow.queue(queue);
            }
            let input = parse_input(&input);
            let answer = match mode {
                RunMode::Sync => Answer::Summary(Box::new(workflow.run(&input).await)),
                RunMode::Async => Answer::Summary(Box::new(workflow.start(&input).await)),
                RunMode::Stream => Answer::Stream(workflow.stream(&input).await),
            };
            execute(&client, answer, format, workflow.name()).await
        }
        WorkflowCommand::Resume { name, execution_id, input, mode, detailed } => {
            let workflow = client.workflow::<Value, Value>(name).detailed(detailed);
            let input = parse_input(&input);
            let answer = match mode {
                RunMode::Sync => Answer::Summary(Box::new(workflow.resume(&execution_id, &input).await)),
                RunMode::Async => Answer::Summary(Box::new(workflow.resume_async(&execution_id, &input).await)),
                RunMode::Stream => Answer::Stream(workflow.resume_stream(&execution_id, &input).await),
            };
            execute(&client, answer, format, workflow.name()).await
        }
        WorkflowCommand::Status { name, execution_id, detailed } => {
            let workflow = client.workflow::<Value, Value>(name).detailed(detailed);
            let status = workflow.status(&execution_id).await.map_err(failure)?;
            show(format, status.summary(), output::summary)
        }
        WorkflowCommand::Cancel { name, execution_id, mode } => {
            let workflow = client.workflow::<Value, Value>(name);
            let status = match mode {
                CancelMode::Async => workflow.cancel(&execution_id).await,
                CancelMode::Sync => workflow.cancel_and_wait(&execution_id).await,
            };
            show(format, status.map_err(failure)?.summary(), output::summary)
        }
        WorkflowCommand::Send { name, execution_id, topic, message, key } => {
            let workflow = client.workflow::<Value, Value>(name);
            let message = parse_input(&message);
            let delivered = match &key {
                Some(key) => workflow.send_keyed(&execution_id, &topic, key, &message).await,
                None => workflow.send(&execution_id, &topic, &message).await.map(|()| true),
            }
            .map_err(failure)?;
            let answer = json!({ "execution_id": execution_id, "topic": topic, "delivered": delivered });
            show(format, &answer, |_| {
                if delivered {
                    format!(
                        "message on {} sent to {}\n",
                        output::cell(&json!(topic)),
                        output::cell(&json!(execution_id))
                    )
                } else {
                    format!("a message of key {} was delivered already; not sent again\n", output::cell(&json!(key)))
                }
            })
        }
        WorkflowCommand::Event { name, execution_id, key } => {
            let workflow = client.workflow::<Value, Value>(name);
            let value: Option<Value> = workflow.get_event(&execution_id, &key).await.map_err(failure)?;
            let answer = json!({ "execution_id": execution_id, "key": key, "set": value.is_some(), "value": value });
            show(format, &answer, |_| match &value {
                Some(value) => format!("{}\n", output::pretty(value)),
                None => format!(
                    "execution {} set no event {} yet\n",
                    output::cell(&json!(execution_id)),
                    output::cell(&json!(key))
                ),
            })
        }
    }
}

/// The answer of a run or resume: a summary (sync, async) or a stream of events.
enum Answer {
    Summary(Box<flux::Result<ExecutionStatus<Value>>>),
    Stream(flux::Result<EventStream<Value>>),
}

/// Prints the summary of a run or resume of `workflow`, or each event of its stream as it
/// arrives: on a terminal (in table format) with a live line of its progress below them.
async fn execute(client: &flux::Client, answer: Answer, format: Format, workflow: &str) -> Result<(), CliError> {
    let failure = |e: flux::Error| client::failure(client, e, false);
    let mut events = match answer {
        Answer::Summary(status) => return show(format, (*status).map_err(failure)?.summary(), output::summary),
        Answer::Stream(events) => events.map_err(failure)?,
    };
    if format == Format::Table && std::io::stdout().is_terminal() {
        return progress::show_live(client, workflow, events).await;
    }
    while let Some(event) = events.next().await {
        let (name, data) = match event {
            Ok(StreamEvent::State(status)) => {
                let state = status.state().as_str().to_ascii_lowercase();
                (format!("{}.execution.{state}", status.workflow_name()), status.summary().clone())
            }
            Ok(StreamEvent::Progress(progress)) => (TASK_PROGRESS.to_string(), progress.data().clone()),
            // The events of the log are in the states' summaries already.
            Ok(_) => continue,
            // The workflow refused a resume input: said, and the stream goes on to the pause.
            Err(e) if e.kind() == flux::ErrorKind::InvalidInput && e.http_status().is_none() => {
                (STREAM_ERROR.to_string(), json!({ "detail": e.message() }))
            }
            Err(e) => return Err(CliError::msg(format!("the event stream broke off: {e}"))),
        };
        emit(&format!("{}\n", output::stream_line(format, &name, &data)))?;
    }
    Ok(())
}

/// `flux execution ...`.
async fn execution(global: &GlobalOptions, command: ExecutionCommand) -> Result<(), CliError> {
    let client = client::connect(&server_url(global)?, None)?;
    let failure = |e: flux::Error| client::failure(&client, e, false);
    match command {
        ExecutionCommand::List(options) => {
            let list = client.list_executions(options.filter()).await.map_err(failure)?;
            show(global.format, list.json(), |_| output::execution_list(&list))
        }
    }
}

/// A duration given as whole seconds (`90`) or with units (`5m`, `1h 30m`).
fn seconds(what: &str, text: &str) -> Result<u64, CliError> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(secs);
    }
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.subsec_nanos() == 0 => Ok(d.as_secs()),
        Ok(_) => Err(CliError::msg(format!("{what} must be a whole number of seconds, not `{text}`"))),
        Err(e) => Err(CliError::msg(format!("invalid {what} `{text}`: {e} (write 30, 30s, 5m or 1h)"))),
    }
}

/// `flux schedule ...`.
async fn schedule(global: &GlobalOptions, command: ScheduleCommand) -> Result<(), CliError> {
    let client = client::connect(&server_url(global)?, None)?;
    let failure = |e: flux::Error| client::failure(&client, e, false);
    let format = global.format;
    let view = |schedule: &Value| match schedule.as_object() {
        Some(object) => output::object_view(object, &["name", "workflow_name", "status", "next_run_at"], &["id"]),
        None => format!("{}\n", output::pretty(schedule)),
    };
    let leading = ["name", "workflow_name", "schedule_type", "status", "next_run_at", "last_run_at", "run_count"];
    match command {
        ScheduleCommand::Create {
            workflow,
            name,
            cron,
            timezone,
            every,
            at,
            overlap,
            catchup_window,
            input,
            description,
        } => {
            let overlap = match overlap {
                OverlapArg::Skip => "skip",
                OverlapArg::Allow => "allow",
                OverlapArg::BufferOne => "buffer_one",
            };
            let mut config = match (cron, every, at) {
                (Some(cron), _, _) => {
                    json!({ "type": "cron", "cron_expression": cron, "timezone": timezone.unwrap_or_else(|| "UTC".into()) })
                }
                (None, Some(every), _) => {
                    json!({ "type": "interval", "interval_seconds": seconds("--every", &every)? })
                }
                (None, None, Some(at)) => json!({ "type": "once", "run_time": at }),
                (None, None, None) => return Err(CliError::msg("say when it fires: --cron, --every or --at")),
            };
            config["overlap"] = json!(overlap);
            if let Some(window) = catchup_window {
                config["catchup_window_seconds"] = json!(seconds("--catchup-window", &window)?);
            }
            let name = name.unwrap_or_else(|| workflow.clone());
            let created =
                client.create_schedule(&workflow, &name, config, parse_input(&input)).await.map_err(failure)?;
            let created = match description {
                Some(text) => client.update_schedule(&name, json!({ "description": text })).await.map_err(failure)?,
                None => created,
            };
            show(format, &created, view)
        }
        ScheduleCommand::List { workflow } => {
            let schedules = client.schedules().await.map_err(failure)?;
            let listed: Vec<Value> = schedules
                .into_iter()
                .filter(|s| workflow.as_ref().is_none_or(|w| s["workflow_name"] == json!(w)))
                .collect();
            show(format, &Value::Array(listed), |list| match list.as_array() {
                Some(items) if items.is_empty() => "no schedules\n".to_string(),
                Some(items) => {
                    let shown: Vec<Value> = items
                        .iter()
                        .map(|item| {
                            let mut row = serde_json::Map::new();
                            for key in leading {
                                row.insert(key.to_string(), item.get(key).cloned().unwrap_or(Value::Null));
                            }
                            Value::Object(row)
                        })
                        .collect();
                    output::objects_table(&shown, &leading, &[])
                }
                None => format!("{}\n", output::pretty(list)),
            })
        }
        ScheduleCommand::Show { name } => show(format, &client.schedule(&name).await.map_err(failure)?, view),
        ScheduleCommand::Pause { name } => show(format, &client.pause_schedule(&name).await.map_err(failure)?, view),
        ScheduleCommand::Resume { name } => show(format, &client.resume_schedule(&name).await.map_err(failure)?, view),
        ScheduleCommand::Delete { name } => {
            client.delete_schedule(&name).await.map_err(failure)?;
            let deleted = json!({ "deleted": name });
            show(format, &deleted, |_| format!("schedule {} deleted\n", output::cell(&json!(name))))
        }
        ScheduleCommand::History { name, limit, offset } => {
            let history = client.schedule_history(&name, limit, offset).await.map_err(failure)?;
            show(format, &history, |history| {
                let entries = history["entries"].as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    return format!("schedule {} started no executions\n", output::cell(&json!(name)));
                }
                let table = output::objects_table(
                    &entries,
                    &["execution_id", "state", "started_at", "completed_at"],
                    &["workflow_name"],
                );
                format!("{table}{} of {} shown\n", entries.len(), history["total"])
            })
        }
    }
}

/// `flux secrets ...`.
async fn secrets(global: &GlobalOptions, command: SecretsCommand) -> Result<(), CliError> {
    let (url, admin_token) = match (&global.server_url, &global.admin_token) {
        (Some(url), Some(token)) => (url.clone(), Some(token.clone())),
        (url, token) => {
            let config = flux::Config::load()?;
            (url.clone().unwrap_or(config.workers.server_url), token.clone().or(config.admin_token))
        }
    };
    if admin_token.is_none() {
        return Err(CliError::msg(format!("no admin token: {}", client::ADMIN_TOKEN_HINT)));
    }
    let client = client::connect(&url, admin_token)?;
    let failure = |e: flux::Error| client::failure(&client, e, true);
    let format = global.format;
    match command {
        SecretsCommand::List => {
            let names = client.list_secrets().await.map_err(failure)?;
            let names = Value::Array(names.into_iter().map(Value::String).collect());
            show(format, &names, |names| match names.as_array() {
                Some(names) if !names.is_empty() => {
                    output::table(&["NAME"], &names.iter().map(|n| vec![output::cell(n)]).collect::<Vec<_>>())
                }
                _ => "no secrets\n".to_string(),
            })
        }
        SecretsCommand::Set { name, value } => {
            client.set_secret(&name, &value).await.map_err(failure)?;
            show(format, &json!({ "name": name }), |_| format!("secret {} stored\n", output::cell(&json!(name))))
        }
        SecretsCommand::Get { name } => {
            let value = client.get_secret(&name).await.map_err(failure)?;
            // The value as it is (not as JSON): it is what the user stored.
            let secret = json!({ "name": name, "value": value });
            show(format, &secret, |_| {
                output::key_values(&[
                    ("name".to_string(), output::cell(&json!(name))),
                    ("value".to_string(), output::cell(&json!(value))),
                ])
            })
        }
        SecretsCommand::Remove { name } => {
            client.remove_secret(&name).await.map_err(failure)?;
            let removed = json!({ "name": name, "removed": true });
            show(format, &removed, |_| format!("secret {} removed\n", output::cell(&json!(name))))
        }
    }
}
