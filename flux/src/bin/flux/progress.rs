//! The live display of `flux workflow run --mode stream` on a terminal: one line redrawn in place
//! with the execution's state, its tasks done and running, the latest progress a task reported
//! and the time since it started; each change of state is also printed as a line of its own,
//! as in plain mode. Not on a terminal (or with `--format json`), the stream is plain lines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flux::client::{EventStream, ExecutionStatus, StreamEvent};
use flux::protocol::STREAM_ERROR;
use flux::{Event, EventType};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::cli::Format;
use crate::error::CliError;
use crate::output;

/// The frames of the spinner.
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Clears the terminal's current line and returns to its start.
pub const CLEAR_LINE: &str = "\r\x1b[2K";

/// How many task calls of an execution are done and running, read from its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tasks {
    /// Calls that completed or failed for good.
    pub done: usize,
    /// Calls started and not ended.
    pub running: usize,
    /// Attempts that failed (retried or not).
    pub failed_attempts: usize,
}

impl Tasks {
    /// The counts of the task calls in `events` (a log, in order).
    pub fn of(events: &[Event]) -> Tasks {
        let mut open: HashMap<&str, bool> = HashMap::new();
        let mut tasks = Tasks::default();
        for event in events {
            match event.kind() {
                EventType::TaskStarted => {
                    open.insert(event.source_id(), true);
                }
                EventType::TaskCompleted | EventType::TaskFailed | EventType::TaskCancelled => {
                    if open.insert(event.source_id(), false) == Some(true) {
                        tasks.done += 1;
                    }
                    tasks.failed_attempts += usize::from(event.kind() == EventType::TaskFailed);
                }
                EventType::TaskRetryFailed => tasks.failed_attempts += 1,
                _ => {}
            }
        }
        tasks.running = open.values().filter(|running| **running).count();
        tasks
    }
}

/// What the live line shows.
#[derive(Debug)]
pub struct Display {
    workflow: String,
    execution_id: Option<String>,
    state: String,
    tasks: Tasks,
    latest: Option<(String, String)>,
    started: Instant,
    frame: usize,
}

impl Display {
    /// A display of a run of `workflow` starting now.
    pub fn new(workflow: &str) -> Display {
        Display {
            workflow: workflow.to_string(),
            execution_id: None,
            state: "STARTING".to_string(),
            tasks: Tasks::default(),
            latest: None,
            started: Instant::now(),
            frame: 0,
        }
    }

    /// The execution moved to `state`.
    pub fn state(&mut self, execution_id: &str, state: &str) {
        self.execution_id = Some(execution_id.to_string());
        self.state = state.to_string();
    }

    /// A task reported `value` (shown as JSON, strings bare).
    pub fn progress(&mut self, task: &str, value: &serde_json::Value) {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.latest = Some((task.to_string(), text));
    }

    /// The tasks' counts, read from the log.
    pub fn tasks(&mut self, tasks: Tasks) {
        self.tasks = tasks;
    }

    /// The execution id, once known.
    pub fn execution_id(&self) -> Option<&str> {
        self.execution_id.as_deref()
    }

    /// The live line, at most `width` characters, advancing the spinner.
    pub fn line(&mut self, width: usize) -> String {
        self.frame = self.frame.wrapping_add(1);
        self.render(SPINNER[self.frame % SPINNER.len()], self.started.elapsed(), width)
    }

    fn render(&self, spinner: char, elapsed: Duration, width: usize) -> String {
        let mut line = format!(
            "{spinner} {} {}  tasks: {} done, {} running",
            self.workflow, self.state, self.tasks.done, self.tasks.running
        );
        if self.tasks.failed_attempts > 0 {
            line.push_str(&format!(", {} failed attempts", self.tasks.failed_attempts));
        }
        if let Some((task, value)) = &self.latest {
            line.push_str(&format!("  {task}: {value}"));
        }
        line.push_str(&format!("  {:.1}s", elapsed.as_secs_f64()));
        // Control characters of a progress value would break the line.
        let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        if line.chars().count() > width {
            let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
            cut.push('…');
            cut
        } else {
            line
        }
    }
}

/// How often the live line reads the execution's log for its task counts.
const POLL: Duration = Duration::from_millis(500);

/// Shows `events`, the stream of a run or resume of `workflow`, with the live line: each change
/// of state printed as in plain mode, the line redrawn below it ten times a second.
pub async fn show_live(client: &flux::Client, workflow: &str, mut events: EventStream<Value>) -> Result<(), CliError> {
    let mut display = Display::new(workflow);
    let width = width();
    let log = client.workflow::<Value, Value>(workflow).detailed(true);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut reading: Option<futures::future::BoxFuture<'static, flux::Result<ExecutionStatus<Value>>>> = None;
    let mut last_read: Option<Instant> = None;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(StreamEvent::State(status)) => {
                        display.state(status.execution_id(), status.state().as_str());
                        if let Some(log) = status.events() {
                            display.tasks(Tasks::of(log));
                        }
                        let state = status.state().as_str().to_ascii_lowercase();
                        let name = format!("{}.execution.{state}", status.workflow_name());
                        let line = output::stream_line(Format::Table, &name, status.summary());
                        crate::emit(&format!("{CLEAR_LINE}{line}\n"))?;
                    }
                    Ok(StreamEvent::Progress(progress)) => {
                        display.progress(progress.name(), progress.data().get("value").unwrap_or(&Value::Null));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == flux::ErrorKind::InvalidInput && e.http_status().is_none() => {
                        crate::emit(&format!("{CLEAR_LINE}{}\n", output::stream_line(Format::Table, STREAM_ERROR, &json!({ "detail": e.message() }))))?;
                    }
                    Err(e) => {
                        crate::emit(CLEAR_LINE)?;
                        return Err(CliError::msg(format!("the event stream broke off: {e}")));
                    }
                }
            }
            read = async {
                match reading.as_mut() {
                    Some(read) => read.await,
                    None => std::future::pending().await,
                }
            }, if reading.is_some() => {
                reading = None;
                if let Some(log) = read.ok().as_ref().and_then(|status| status.events()) {
                    display.tasks(Tasks::of(log));
                }
            }
            _ = tick.tick() => {}
        }
        if reading.is_none()
            && let Some(id) = display.execution_id()
            && last_read.is_none_or(|at| at.elapsed() >= POLL)
        {
            let (log, id) = (log.clone(), id.to_string());
            reading = Some(Box::pin(async move { log.status(&id).await }));
            last_read = Some(Instant::now());
        }
        crate::emit(&format!("{CLEAR_LINE}{}", display.line(width)))?;
    }
    crate::emit(CLEAR_LINE)
}

/// The width of the terminal on standard output (`COLUMNS`, else 100).
pub fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()).filter(|w: &usize| *w >= 20).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn event(kind: EventType, id: &str) -> Event {
        Event::new(1, kind, id, id.trim_end_matches(char::is_numeric), Vec::new(), SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn tasks_are_counted_from_the_log() {
        let log = [
            event(EventType::WorkflowStarted, "wf"),
            event(EventType::TaskStarted, "step1"),
            event(EventType::TaskRetryFailed, "step1"),
            event(EventType::TaskRetryStarted, "step1"),
            event(EventType::TaskRetryCompleted, "step1"),
            event(EventType::TaskCompleted, "step1"),
            event(EventType::TaskStarted, "step2"),
            event(EventType::TaskFailed, "step2"),
            event(EventType::TaskStarted, "step3"),
        ];
        assert_eq!(Tasks::of(&log), Tasks { done: 2, running: 1, failed_attempts: 2 });
    }

    #[test]
    fn the_line_shows_state_tasks_progress_and_time_within_the_width() {
        let mut display = Display::new("countdown");
        display.state("e1", "RUNNING");
        display.tasks(Tasks { done: 3, running: 1, failed_attempts: 0 });
        display.progress("count_step", &serde_json::json!("4/10\n"));
        assert_eq!(
            display.render('*', Duration::from_millis(1300), 200),
            "* countdown RUNNING  tasks: 3 done, 1 running  count_step: 4/10   1.3s"
        );
        let cut = display.render('*', Duration::ZERO, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with('…'));
        assert_eq!(display.execution_id(), Some("e1"));
    }
}
