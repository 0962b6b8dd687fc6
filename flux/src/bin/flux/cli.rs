//! The command line surface: clap definitions only, no behaviour.

use std::time::SystemTime;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flux::{ExecutionFilter, ExecutionState};

/// Shown after `flux --help`.
const EXAMPLES: &str = "\
Examples:
  flux start server --port 8000                 # the HTTP API, storing executions in .flux/flux.db
  flux start worker w1 --token <bootstrap token> # runs the demo workflows built into this binary
  flux workflow list
  flux workflow run hello_world World            # input `World` is sent as the JSON string \"World\"
  flux workflow run countdown 50 --mode stream
  flux workflow status hello_world <execution id> --detailed --format json
  flux execution list --workflow hello_world --state failed --state cancelled --limit 20
  flux secrets set API_KEY s3cr3t --admin-token <admin token>

The server URL defaults to FLUX_WORKERS__SERVER_URL (or [flux.workers] server_url in flux.toml,
else http://localhost:8000); the admin token to FLUX_SECURITY__ADMIN_TOKEN (or [flux.security]
admin_token). Logs go to standard error; RUST_LOG sets their filter.";

/// Shown after `flux start worker --help`: how a program of one's own becomes a worker.
const WORKER_HELP: &str = "\
Demo workflows in this binary:
  hello_world  (input: a string)   returns \"Hello, <input>\" through the task say_hello
  approval     (input: a string)   pauses at \"approval\"; `flux workflow resume approval ID <answer>`
                                   completes it with \"<input> -> <answer>\"
  countdown    (input: a number n) runs n steps of ~100 ms each, reporting progress; try
                                   `--mode stream`, or `--mode async` then `flux workflow cancel`

Your own workflows: a worker runs compiled Rust code, so a program of your own becomes a worker
by registering its workflows and calling run() from its main:

    use flux::prelude::*;

    #[flux::workflow]
    async fn my_workflow(ctx: ExecutionContext<String>) -> String {
        format!(\"Hello, {}\", ctx.input())
    }

    #[tokio::main]
    async fn main() -> flux::Result<()> {
        flux::worker::Worker::new(\"http://localhost:8000\")
            .name(\"my-worker\")
            .register(my_workflow)
            .run()
            .await
    }

(with flux's `server` feature). The bootstrap token comes from FLUX_WORKERS__BOOTSTRAP_TOKEN
unless given with .bootstrap_token(..).";

/// What an INPUT argument accepts, repeated in each command that takes one.
const INPUT_HELP: &str = "The input as JSON text: `42`, `'{\"n\": 1}'`, `'\"text\"'`. Text that is not valid JSON is \
                          sent as a JSON string, so `World` is the same as `'\"World\"'` (quote a number to send it \
                          as a string: `'\"50\"'`)";

/// `flux`: run a flux server or worker, and drive workflows and secrets over its HTTP API.
#[derive(Debug, Parser)]
#[command(name = "flux", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalOptions,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// The flux server to talk to [default: FLUX_WORKERS__SERVER_URL, flux.toml, or
    /// http://localhost:8000]
    #[arg(long, global = true, value_name = "URL")]
    pub server_url: Option<String>,
    /// The token of the /admin endpoints (secrets) [default: FLUX_SECURITY__ADMIN_TOKEN or
    /// flux.toml]
    #[arg(long, global = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// How to print results: an aligned table, or the server's JSON
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable, aligned tables and key-value views.
    Table,
    /// The server's JSON, pretty-printed (streams: one JSON object per line).
    Json,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a flux server or a worker (runs until Ctrl-C)
    #[command(subcommand)]
    Start(StartCommand),
    /// List, run, resume, inspect and cancel workflows on a server
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// List the executions the server keeps, of every workflow
    #[command(subcommand)]
    Execution(ExecutionCommand),
    /// Manage the server's secrets (needs the admin token)
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Create, list, pause, resume and delete the schedules that start workflows
    #[command(subcommand)]
    Schedule(ScheduleCommand),
}

/// `flux schedule ...`
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule: exactly one of --cron, --every and --at says when it fires
    ///
    /// Each fire starts execution NAME_TIME of the workflow (nightly_2026-12-07T09:00:00Z).
    Create {
        /// The workflow each fire starts
        workflow: String,
        /// The schedule's name [default: the workflow's]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6
        /// (seconds first), e.g. "0 9 * * MON-FRI"
        #[arg(long, value_name = "EXPR", conflicts_with_all = ["every", "at"], required_unless_present_any = ["every", "at"])]
        cron: Option<String>,
        /// The time zone of --cron (IANA name) [default: UTC]
        #[arg(long, value_name = "ZONE", requires = "cron")]
        timezone: Option<String>,
        /// An interval in whole seconds, or with a unit (30s, 5m, 1h)
        #[arg(long, value_name = "DURATION", conflicts_with = "at")]
        every: Option<String>,
        /// One instant (RFC 3339, e.g. 2026-12-24T18:00:00Z)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// While the previous execution is still going: skip the fire, allow it, or buffer one
        #[arg(long, value_enum, default_value_t = OverlapArg::Skip)]
        overlap: OverlapArg,
        /// After downtime, fire each missed instant of this window (e.g. 1h) instead of once
        #[arg(long, value_name = "DURATION")]
        catchup_window: Option<String>,
        /// The input each fire gets: JSON, or a bare word taken as a string
        #[arg(long, value_name = "INPUT", default_value = "null")]
        input: String,
        /// What the schedule is for
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List the schedules
    List {
        /// Only the schedules of this workflow
        #[arg(long, value_name = "NAME")]
        workflow: Option<String>,
    },
    /// Show one schedule
    Show {
        /// The schedule's name
        name: String,
    },
    /// Pause a schedule: it does not fire until resumed
    Pause {
        /// The schedule's name
        name: String,
    },
    /// Resume a schedule: it fires next at its first instant after now
    Resume {
        /// The schedule's name
        name: String,
    },
    /// Delete a schedule (the executions it started stay)
    Delete {
        /// The schedule's name
        name: String,
    },
    /// The executions a schedule started, newest first
    History {
        /// The schedule's name
        name: String,
        /// The most executions to show (1 to 1000)
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
        /// How many executions to skip
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: u64,
    },
}

/// `--overlap`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OverlapArg {
    /// Drop the fire.
    Skip,
    /// Start it alongside.
    Allow,
    /// Keep one and start it when the previous execution ends.
    BufferOne,
}

/// `flux start ...`
#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// Start the HTTP API server
    ///
    /// Prints `flux server listening on http://ADDR`, and the bootstrap and admin tokens it
    /// generated when none is configured (FLUX_WORKERS__BOOTSTRAP_TOKEN,
    /// FLUX_SECURITY__ADMIN_TOKEN), then serves until Ctrl-C. Executions are stored in
    /// FLUX_DATABASE_URL (default .flux/flux.db).
    Server {
        /// The host to listen on [default: FLUX_SERVER_HOST, flux.toml, or localhost]
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// The port to listen on; 0 picks a free one [default: FLUX_SERVER_PORT, flux.toml, or 8000]
        #[arg(long, value_name = "PORT")]
        port: Option<u16>,
    },
    /// Start a worker that runs the demo workflows built into this binary
    ///
    /// Connects to the server (--server-url), registers with the bootstrap token and runs the
    /// executions the server hands it until Ctrl-C.
    #[command(after_long_help = WORKER_HELP)]
    Worker {
        /// The worker's name, unique among the server's workers
        name: String,
        /// The server's bootstrap token [default: FLUX_WORKERS__BOOTSTRAP_TOKEN or flux.toml]
        #[arg(long, value_name = "BOOTSTRAP_TOKEN")]
        token: Option<String>,
    },
    /// Start an MCP server over a flux server's API, for AI assistants
    ///
    /// Offers the server's workflows and executions as MCP tools, over stdio (for an assistant
    /// that starts it) or streamable HTTP at http://HOST:PORT/mcp, until Ctrl-C.
    #[command(after_long_help = crate::mcp::MCP_HELP)]
    Mcp(crate::mcp::McpArgs),
}

/// `flux workflow ...`
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// List the workflows the server knows (those its workers registered)
    List,
    /// Show one workflow
    Show {
        /// The workflow's name
        name: String,
    },
    /// Run a workflow
    Run {
        /// The workflow's name
        name: String,
        #[arg(help = INPUT_HELP)]
        input: String,
        /// sync: wait until it finishes or pauses; async: return at once; stream: print its
        /// events as they happen
        #[arg(long, value_enum, default_value_t = RunMode::Sync)]
        mode: RunMode,
        /// Include the execution's events
        #[arg(long)]
        detailed: bool,
        /// Submit it to this queue of the server: stored SCHEDULED, started when the queue has
        /// room
        #[arg(long)]
        queue: Option<String>,
    },
    /// Resume a paused execution with an input (what its pause returns)
    Resume {
        /// The workflow's name
        name: String,
        /// The paused execution
        execution_id: String,
        #[arg(help = INPUT_HELP)]
        input: String,
        /// sync: wait until it finishes or pauses again; async: return at once; stream: print
        /// its events as they happen
        #[arg(long, value_enum, default_value_t = RunMode::Sync)]
        mode: RunMode,
        /// Include the execution's events
        #[arg(long)]
        detailed: bool,
    },
    /// Show an execution's state, input and output
    Status {
        /// The workflow's name
        name: String,
        /// The execution
        execution_id: String,
        /// Include the execution's events
        #[arg(long)]
        detailed: bool,
    },
    /// Cancel a running or paused execution
    Cancel {
        /// The workflow's name
        name: String,
        /// The execution
        execution_id: String,
        /// async: ask and return at once (state CANCELLING); sync: wait until it is CANCELLED
        #[arg(long, value_enum, default_value_t = CancelMode::Async)]
        mode: CancelMode,
    },
    /// Send a message to an execution (what its `flux::recv(TOPIC)` takes)
    Send {
        /// The workflow's name
        name: String,
        /// The execution
        execution_id: String,
        /// The topic
        topic: String,
        /// The message: JSON, or a bare word taken as a string
        message: String,
        /// An idempotency key: a message of the same key is delivered once
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Show the latest value an execution set under a key (`flux::set_event`)
    Event {
        /// The workflow's name
        name: String,
        /// The execution
        execution_id: String,
        /// The event's key
        key: String,
    },
}

/// How `run` and `resume` wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunMode {
    /// Wait for a terminal or paused state.
    Sync,
    /// Return as soon as the execution is scheduled.
    Async,
    /// Print the execution's events (and progress) as they happen.
    Stream,
}

/// How `cancel` waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CancelMode {
    /// Wait until the execution is CANCELLED.
    Sync,
    /// Return at once.
    Async,
}

/// `flux execution ...`
#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// List executions, newest first, a page at a time
    ///
    /// Prints the id, workflow, version, state and times of each execution of the page, then how
    /// many of all that match are shown. Every option narrows the list; --state may be given
    /// several times for executions in any of those states.
    List(ListExecutions),
}

/// The options of `flux execution list`: a filter and a page.
#[derive(Debug, Args)]
pub struct ListExecutions {
    /// Only executions of this workflow
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only executions in this state (any case); repeat for any of several
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub states: Vec<ExecutionState>,
    /// Only executions created at this time or later (RFC 3339 UTC, e.g. 2026-12-07T03:00:00Z)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub created_after: Option<SystemTime>,
    /// Only executions created before this time (RFC 3339 UTC)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub created_before: Option<SystemTime>,
    /// The most executions to show (1 to 1000)
    #[arg(long, value_name = "N", default_value_t = ExecutionFilter::DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(ExecutionFilter::MAX_LIMIT)))]
    pub limit: u32,
    /// How many matching executions to skip, newest first (for the next pages)
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub offset: u64,
}

impl ListExecutions {
    /// The filter these options make.
    pub fn filter(&self) -> ExecutionFilter {
        let mut filter =
            ExecutionFilter::new().states(self.states.iter().copied()).limit(self.limit).offset(self.offset);
        if let Some(workflow) = &self.workflow {
            filter = filter.workflow(workflow);
        }
        if let Some(time) = self.created_after {
            filter = filter.created_after(time);
        }
        if let Some(time) = self.created_before {
            filter = filter.created_before(time);
        }
        filter
    }
}

/// A `--state` value: a state's name in any case (`failed`, `FAILED`); anything else refused,
/// naming it and the states there are.
fn parse_state(text: &str) -> Result<ExecutionState, String> {
    text.trim().to_ascii_uppercase().parse().map_err(|_| {
        let known: Vec<&str> = ExecutionState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state `{text}` (expected one of {})", known.join(", "))
    })
}

/// A time option's value: RFC 3339 in UTC (`2026-12-07T03:00:00Z`, fractions of a second
/// allowed).
fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(text.trim())
        .map_err(|_| format!("`{text}` is not an RFC 3339 time in UTC such as 2026-12-07T03:00:00Z"))
}

/// `flux secrets ...`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List the secrets' names (never their values)
    List,
    /// Store a secret (replacing one of the same name)
    Set {
        /// The secret's name
        name: String,
        /// Its value
        value: String,
    },
    /// Print a secret's value
    Get {
        /// The secret's name
        name: String,
    },
    /// Remove a secret
    Remove {
        /// The secret's name
        name: String,
    },
}

impl Command {
    /// The log filter used when RUST_LOG is not set: long-running commands say what they do.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Start(_) => "info",
            _ => "warn",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere_and_modes_default() {
        let cli = Cli::try_parse_from(["flux", "workflow", "run", "hello_world", "World", "--format", "json"])
            .expect("parses");
        assert_eq!(cli.global.format, Format::Json);
        match cli.command {
            Command::Workflow(WorkflowCommand::Run { name, input, mode, detailed, queue }) => {
                assert_eq!(
                    (name.as_str(), input.as_str(), mode, detailed, queue),
                    ("hello_world", "World", RunMode::Sync, false, None)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from(["flux", "--server-url", "http://h:1", "workflow", "cancel", "c", "id"])
            .expect("parses");
        assert_eq!(cli.global.server_url.as_deref(), Some("http://h:1"));
        assert!(matches!(cli.command, Command::Workflow(WorkflowCommand::Cancel { mode: CancelMode::Async, .. })));
        assert!(Cli::try_parse_from(["flux", "workflow", "cancel", "c", "id", "--mode", "stream"]).is_err());
    }

    #[test]
    fn execution_list_options_make_the_filter() {
        let cli = Cli::try_parse_from(["flux", "execution", "list"]).expect("parses");
        let Command::Execution(ExecutionCommand::List(list)) = cli.command else { panic!("not a list") };
        assert_eq!(list.filter(), ExecutionFilter::new());

        let cli = Cli::try_parse_from([
            "flux",
            "execution",
            "list",
            "--workflow",
            "orders",
            "--state",
            "failed",
            "--state",
            "CANCELLED",
            "--created-after",
            "2026-12-07T03:00:00Z",
            "--created-before",
            "2026-12-08T03:00:00.5Z",
            "--limit",
            "20",
            "--offset",
            "40",
        ])
        .expect("parses");
        let Command::Execution(ExecutionCommand::List(list)) = cli.command else { panic!("not a list") };
        let day = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_612_400);
        let expected = ExecutionFilter::new()
            .workflow("orders")
            .state(ExecutionState::Failed)
            .state(ExecutionState::Cancelled)
            .created_after(day)
            .created_before(day + std::time::Duration::from_millis(86_400_500))
            .limit(20)
            .offset(40);
        assert_eq!(list.filter(), expected);
    }

    #[test]
    fn bad_execution_list_options_are_named() {
        let err = Cli::try_parse_from(["flux", "execution", "list", "--state", "done"]).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("unknown state `done`"), "{text}");
        assert!(text.contains("expected one of CREATED, SCHEDULED") && text.contains("CANCELLED"), "{text}");
        let err = Cli::try_parse_from(["flux", "execution", "list", "--created-after", "yesterday"]).expect_err("no");
        assert!(err.to_string().contains("`yesterday` is not an RFC 3339 time"), "{err}");
        for limit in ["0", "1001", "-1"] {
            assert!(Cli::try_parse_from(["flux", "execution", "list", "--limit", limit]).is_err(), "{limit}");
        }
        assert!(Cli::try_parse_from(["flux", "execution", "list", "--offset", "-1"]).is_err());
    }
}
