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
mod output;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use flux::protocol::NewSecret;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::cli::{Cli, Command, Format, GlobalOptions, RunMode, SecretsCommand, StartCommand, WorkflowCommand};
use crate::client::{Client, parse_input};
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
        Command::Workflow(command) => workflow(&global, command).await,
        Command::Secrets(command) => secrets(&global, command).await,
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
    let client = Client::new(&server_url(global)?, None)?;
    let format = global.format;
    match command {
        WorkflowCommand::List => {
            let list = client.get(client.url(&["workflows"])?).await?;
            show(format, &list, |list| match list.as_array() {
                Some(items) if items.is_empty() => {
                    "no workflows: start a worker (`flux start worker NAME`) to register some\n".to_string()
                }
                Some(items) => output::objects_table(items, &["name", "version"], &[]),
                None => format!("{}\n", output::pretty(list)),
            })
        }
        WorkflowCommand::Show { name } => {
            let workflow = client.get(client.url(&["workflows", &name])?).await?;
            show(format, &workflow, |workflow| match workflow.as_object() {
                Some(object) => output::object_view(object, &["name", "version"], &[]),
                None => format!("{}\n", output::pretty(workflow)),
            })
        }
        WorkflowCommand::Run { name, input, mode, detailed } => {
            let mut url = client.url(&["workflows", &name, "run", mode.as_str()])?;
            if detailed {
                url.query_pairs_mut().append_pair("detailed", "true");
            }
            execute(&client, url, &parse_input(&input), mode, format).await
        }
        WorkflowCommand::Resume { name, execution_id, input, mode, detailed } => {
            let mut url = client.url(&["workflows", &name, "resume", &execution_id, mode.as_str()])?;
            if detailed {
                url.query_pairs_mut().append_pair("detailed", "true");
            }
            execute(&client, url, &parse_input(&input), mode, format).await
        }
        WorkflowCommand::Status { name, execution_id, detailed } => {
            let mut url = client.url(&["workflows", &name, "status", &execution_id])?;
            url.query_pairs_mut().append_pair("detailed", if detailed { "true" } else { "false" });
            let summary = client.get(url).await?;
            show(format, &summary, output::summary)
        }
        WorkflowCommand::Cancel { name, execution_id, mode } => {
            let mut url = client.url(&["workflows", &name, "cancel", &execution_id])?;
            url.query_pairs_mut().append_pair("mode", mode.as_str());
            let summary = client.get(url).await?;
            show(format, &summary, output::summary)
        }
    }
}

/// Runs or resumes: prints the summary (sync, async) or each event as it arrives (stream).
async fn execute(
    client: &Client,
    url: reqwest::Url,
    input: &Value,
    mode: RunMode,
    format: Format,
) -> Result<(), CliError> {
    if mode != RunMode::Stream {
        let summary = client.post(url, input).await?;
        return show(format, &summary, output::summary);
    }
    let mut events = client.post_stream(url, input).await?;
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| CliError::msg(format!("the event stream broke off: {e}")))?;
        let data = output::event_data(&event.data);
        emit(&format!("{}\n", output::stream_line(format, &event.event, &data)))?;
    }
    Ok(())
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
    let client = Client::new(&url, admin_token)?;
    let format = global.format;
    match command {
        SecretsCommand::List => {
            let listed = client.admin_get(client.url(&["admin", "secrets"])?).await?;
            // Names only, whatever the server sends.
            let names: Vec<Value> = match &listed {
                Value::Array(items) => items
                    .iter()
                    .filter_map(|item| match item {
                        Value::String(_) => Some(item.clone()),
                        Value::Object(object) => object.get("name").cloned(),
                        _ => None,
                    })
                    .collect(),
                _ => return Err(CliError::msg("the server's list of secrets is not a JSON array")),
            };
            show(format, &Value::Array(names), |names| match names.as_array() {
                Some(names) if !names.is_empty() => {
                    output::table(&["NAME"], &names.iter().map(|n| vec![output::cell(n)]).collect::<Vec<_>>())
                }
                _ => "no secrets\n".to_string(),
            })
        }
        SecretsCommand::Set { name, value } => {
            let body = NewSecret { name: name.clone(), value };
            let stored = client.admin_post(client.url(&["admin", "secrets"])?, &body).await?;
            show(format, &stored, |_| format!("secret {} stored\n", output::cell(&json!(name))))
        }
        SecretsCommand::Get { name } => {
            let secret = client.admin_get(client.url(&["admin", "secrets", &name])?).await?;
            show(format, &secret, |secret| match secret.as_object() {
                // The value as it is (not as JSON): it is what the user stored.
                Some(object) => output::key_values(
                    &["name", "value"]
                        .iter()
                        .map(|key| (key.to_string(), object.get(*key).map(output::cell).unwrap_or_default()))
                        .collect::<Vec<_>>(),
                ),
                None => format!("{}\n", output::pretty(secret)),
            })
        }
        SecretsCommand::Remove { name } => {
            let removed = client.admin_delete(client.url(&["admin", "secrets", &name])?).await?;
            show(format, &removed, |_| format!("secret {} removed\n", output::cell(&json!(name))))
        }
    }
}
