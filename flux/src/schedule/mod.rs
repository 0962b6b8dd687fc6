//! Schedules (feature `schedule`): workflows that start by themselves, at the instants of a cron
//! expression, every interval, or once.
//!
//! A schedule is stored with the engine's executions: its [`Schedule`], the workflow and the
//! input each fire starts it with, whether it is paused, and when it fires next. A scheduler
//! fires it: [`Engine::run_schedules`] in an embedded engine, and every server, always. Each
//! fire starts execution `{schedule}_{fire time}` (`nightly_2026-12-07T09:00:00Z`); since an
//! execution id is created once, two schedulers on one database (two processes on a SQLite
//! file, servers on PostgreSQL) never start one fire twice, and a scheduler that crashed between
//! starting a fire and recording it finds the fire started when it comes back.
//!
//! - **Overlap** ([`Overlap`]): while the execution a schedule started last is still going, a
//!   fire is skipped (the default), started alongside, or kept until it ends (`buffer_one`).
//! - **Catch-up**: a scheduler that was down fires once for everything it missed (the latest
//!   missed instant), or, with [`Schedule::catchup_window`], each missed instant of the window.
//! - **Pause and resume**: a paused schedule does not fire; resumed, it fires next at its next
//!   instant after now (what it missed while paused is not caught up).
//! - **History**: [`Engine::schedule_history`] lists the executions a schedule started, newest
//!   first, with their states.
//!
//! ```no_run
//! use flux::prelude::*;
//! use flux::schedule::Schedule;
//!
//! #[flux::workflow]
//! async fn report(ctx: ExecutionContext<String>) -> flux::Result<String> {
//!     Ok(format!("report for {}", ctx.input()))
//! }
//!
//! # async fn demo() -> flux::Result<()> {
//! let engine = flux::Engine::open(".flux/flux.db")?;
//! let schedule = Schedule::cron("0 9 * * MON-FRI")?.timezone("Europe/Paris")?;
//! engine.schedule(report, schedule, "sales".to_string()).await?;
//! let scheduler = engine.run_schedules();
//! # drop(scheduler);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;
use crate::store::{ExecutionFilter, ExecutionPage, Store, StoredSchedule};
use crate::workflow::WorkflowDefinition;

mod fire;
mod spec;

#[cfg(feature = "server")]
pub(crate) use fire::Starter;
pub(crate) use fire::fire_due;
pub use fire::{Fired, Scheduler};
pub use spec::{Overlap, Schedule, parse_cron};
use spec::{format_secs, from_secs, to_secs};

/// A schedule's definition and state, as stored (JSON).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Body {
    schedule: Schedule,
    /// The input of each fire, MessagePack.
    input: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    paused: bool,
    /// Whole seconds: when it was made (an interval without a start counts from here).
    created: i64,
    /// When it fires next; `None` once it has nothing left to fire.
    next_fire: Option<i64>,
    last_fire: Option<i64>,
    /// The execution the last fire started.
    last_execution: Option<String>,
    #[serde(default)]
    fires: u64,
    #[serde(default)]
    skips: u64,
    last_skipped: Option<i64>,
}

impl Body {
    fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::new(ErrorKind::Encode, format!("a schedule cannot be encoded: {e}")))
    }

    fn decode(stored: &StoredSchedule) -> Result<Body> {
        serde_json::from_slice(&stored.body).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("schedule `{}` is stored in a form this flux cannot read: {e}", stored.name),
            )
        })
    }
}

/// A schedule as it stands: what [`Engine::schedules`] and the other schedule calls return.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// Its name, unique in the store.
    pub name: String,
    /// The workflow each fire starts.
    pub workflow_name: String,
    /// When it fires.
    pub schedule: Schedule,
    /// The input each fire starts the workflow with, MessagePack.
    pub input: Vec<u8>,
    /// What it is for, if it was said.
    pub description: Option<String>,
    /// Whether it is paused.
    pub paused: bool,
    /// When it fires next; `None` once it has nothing left to fire (a `once` that fired, an
    /// interval past its end).
    pub next_fire: Option<SystemTime>,
    /// When it fired last.
    pub last_fire: Option<SystemTime>,
    /// The execution its last fire started.
    pub last_execution: Option<String>,
    /// How many executions it started.
    pub fires: u64,
    /// How many fires it dropped ([`Overlap::Skip`], [`Overlap::BufferOne`]).
    pub skips: u64,
    /// When it last dropped one.
    pub last_skipped: Option<SystemTime>,
    /// When it was made.
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
}

impl ScheduleInfo {
    fn new(stored: &StoredSchedule, body: Body) -> ScheduleInfo {
        ScheduleInfo {
            name: stored.name.clone(),
            workflow_name: stored.workflow_name.clone(),
            schedule: body.schedule,
            input: body.input,
            description: body.description,
            paused: body.paused,
            next_fire: body.next_fire.map(from_secs),
            last_fire: body.last_fire.map(from_secs),
            last_execution: body.last_execution,
            fires: body.fires,
            skips: body.skips,
            last_skipped: body.last_skipped.map(from_secs),
            created_at: from_secs(body.created),
            updated_at: stored.updated_at,
        }
    }

    /// `active`, `paused`, or `ended` (nothing left to fire).
    pub fn status(&self) -> &'static str {
        if self.paused {
            "paused"
        } else if self.next_fire.is_none() {
            "ended"
        } else {
            "active"
        }
    }
}

/// The id of the execution that schedule `name` starts for its fire at `fire` (whole seconds).
pub fn execution_id(name: &str, fire: SystemTime) -> String {
    fire_id(name, to_secs(fire))
}

fn fire_id(name: &str, fire: i64) -> String {
    format!("{name}_{}", format_secs(fire))
}

/// Checks a schedule's name: 1 to 100 letters, digits, `_`, `-` or `.`.
pub fn check_name(name: &str) -> Result<()> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 100 || !name.chars().all(fine) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid schedule name `{name}`: use 1 to 100 letters, digits, `_`, `-` or `.`"),
        ));
    }
    Ok(())
}

/// A change to a schedule's definition: what [`Engine::create_schedule`] and
/// [`Engine::update_schedule`] take.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ScheduleChange {
    /// The new definition.
    pub schedule: Option<Schedule>,
    /// The new input, MessagePack.
    pub input: Option<Vec<u8>>,
    /// The new description.
    pub description: Option<String>,
}

impl ScheduleChange {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the definition.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Changes the input (MessagePack).
    pub fn input(mut self, input: Vec<u8>) -> Self {
        self.input = Some(input);
        self
    }

    /// Changes the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Runs blocking store work off the async threads.
async fn off_thread<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(result) => result,
        Err(e) => Err(Error::new(ErrorKind::Storage, format!("a schedule's storage call failed: {e}"))),
    }
}

/// The error of a change that lost every race with other processes' changes.
fn kept_changing(name: &str) -> Error {
    Error::new(ErrorKind::Conflict, format!("schedule `{name}` kept changing under this change; try again"))
}

/// How many times a change of a schedule is tried again when another process changed it at the
/// same moment.
const RETRIES: usize = 20;

/// Reads schedule `name`, changes its body with `change`, and stores it at the revision read,
/// again from a new read when another process changed it in between.
async fn modify(
    store: &Arc<dyn Store>,
    name: &str,
    change: impl Fn(&mut Body, i64) -> Result<()> + Send + Sync + 'static,
) -> Result<ScheduleInfo> {
    let change = Arc::new(change);
    for _ in 0..RETRIES {
        let (name, change) = (name.to_string(), change.clone());
        let outcome = off_thread(store, move |store| {
            let mut stored = store.schedule_get(&name)?.ok_or_else(|| crate::store::schedule_not_found(&name))?;
            let mut body = Body::decode(&stored)?;
            change(&mut body, to_secs(SystemTime::now()))?;
            stored.body = body.encode()?;
            let revision = store.schedule_put(&stored, Some(stored.revision))?;
            stored.revision = revision;
            stored.updated_at = SystemTime::now();
            Ok(ScheduleInfo::new(&stored, body))
        })
        .await;
        match outcome {
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            other => return other,
        }
    }
    Err(kept_changing(name))
}

impl Engine {
    /// Schedules `workflow` with `input` under the workflow's name (see
    /// [`Engine::schedule_as`]), and registers it with this engine so that fires can start it.
    pub async fn schedule<W: WorkflowDefinition>(
        &self,
        workflow: W,
        schedule: Schedule,
        input: W::Input,
    ) -> Result<ScheduleInfo> {
        self.schedule_as(W::NAME, workflow, schedule, input).await
    }

    /// Schedules `workflow` with `input` as schedule `name`: creates it, or, if it exists for
    /// the same workflow, brings its definition and input up to these (keeping whether it is
    /// paused and its history; when it fires next is worked out again if the definition
    /// changed). What code declares at each start of a program is so kept in place. A schedule
    /// of this name for another workflow is refused ([`ErrorKind::Conflict`]). Registers the
    /// workflow with this engine ([`Engine::register`]) so that fires can start it.
    pub async fn schedule_as<W: WorkflowDefinition>(
        &self,
        name: &str,
        workflow: W,
        schedule: Schedule,
        input: W::Input,
    ) -> Result<ScheduleInfo> {
        self.register(workflow);
        let input = crate::value::to_msgpack(&input).map_err(|e| {
            Error::new(ErrorKind::Encode, format!("the input of schedule `{name}` cannot be encoded"))
                .with_cause(e.message().to_string())
        })?;
        self.put_schedule(name, W::NAME, ScheduleChange::new().schedule(schedule).input(input)).await
    }

    /// Creates schedule `name` of workflow `workflow_name` or brings it up to `change` (see
    /// [`Engine::schedule_as`]), without checking the workflow or its input.
    pub(crate) async fn put_schedule(
        &self,
        name: &str,
        workflow_name: &str,
        change: ScheduleChange,
    ) -> Result<ScheduleInfo> {
        check_name(name)?;
        for _ in 0..RETRIES {
            match self.schedule_info(name).await? {
                None => match self.create_schedule(name, workflow_name, change.clone()).await {
                    Err(e) if e.kind() == ErrorKind::Conflict => continue,
                    other => return other,
                },
                Some(info) if info.workflow_name != workflow_name => {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "schedule `{name}` exists for workflow `{}`, not `{workflow_name}`",
                            info.workflow_name
                        ),
                    ));
                }
                Some(info) => {
                    let same = change.schedule.as_ref().is_none_or(|s| *s == info.schedule)
                        && change.input.as_ref().is_none_or(|i| *i == info.input)
                        && change.description.as_ref().is_none_or(|d| Some(d) == info.description.as_ref());
                    if same {
                        return Ok(info);
                    }
                    return self.update_schedule(name, change).await;
                }
            }
        }
        Err(kept_changing(name))
    }

    /// Creates schedule `name` of workflow `workflow_name` from `change` (which must hold the
    /// definition; the input defaults to nil). A schedule of this name is refused
    /// ([`ErrorKind::Conflict`]). The workflow is not checked here: a fire of a workflow no
    /// scheduler knows waits until one does.
    pub async fn create_schedule(
        &self,
        name: &str,
        workflow_name: &str,
        change: ScheduleChange,
    ) -> Result<ScheduleInfo> {
        check_name(name)?;
        let schedule = change.schedule.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("schedule `{name}` needs a definition (cron, interval or once)"),
            )
        })?;
        let created = to_secs(SystemTime::now());
        let body = Body {
            next_fire: schedule.first(created),
            schedule,
            input: change.input.unwrap_or_else(|| vec![0xc0]),
            description: change.description,
            paused: false,
            created,
            last_fire: None,
            last_execution: None,
            fires: 0,
            skips: 0,
            last_skipped: None,
        };
        let mut stored = StoredSchedule {
            name: name.to_string(),
            workflow_name: workflow_name.to_string(),
            body: body.encode()?,
            revision: 0,
            updated_at: SystemTime::now(),
        };
        let put = stored.clone();
        stored.revision = off_thread(self.store(), move |store| store.schedule_put(&put, None)).await?;
        tracing::info!(schedule = %name, workflow = %workflow_name, "schedule created");
        Ok(ScheduleInfo::new(&stored, body))
    }

    /// Changes schedule `name`'s definition, input or description. A new definition fires
    /// next at its first instant after now.
    pub async fn update_schedule(&self, name: &str, change: ScheduleChange) -> Result<ScheduleInfo> {
        modify(self.store(), name, move |body, now| {
            if let Some(schedule) = change.schedule.as_ref().filter(|s| **s != body.schedule) {
                body.schedule = schedule.clone();
                body.created = now;
                body.next_fire = body.schedule.first(now);
            }
            if let Some(input) = &change.input {
                body.input = input.clone();
            }
            if let Some(description) = &change.description {
                body.description = Some(description.clone());
            }
            Ok(())
        })
        .await
    }

    /// Schedule `name` as it stands, or `None`.
    pub async fn schedule_info(&self, name: &str) -> Result<Option<ScheduleInfo>> {
        let name = name.to_string();
        off_thread(self.store(), move |store| {
            store.schedule_get(&name)?.map(|stored| Ok(ScheduleInfo::new(&stored, Body::decode(&stored)?))).transpose()
        })
        .await
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        off_thread(self.store(), |store| {
            store.schedule_list()?.iter().map(|stored| Ok(ScheduleInfo::new(stored, Body::decode(stored)?))).collect()
        })
        .await
    }

    /// Pauses schedule `name`: it does not fire until resumed. Pausing a paused schedule
    /// changes nothing.
    pub async fn pause_schedule(&self, name: &str) -> Result<ScheduleInfo> {
        modify(self.store(), name, |body, _| {
            body.paused = true;
            Ok(())
        })
        .await
    }

    /// Resumes schedule `name`: it fires next at its first instant after now (a `once` whose
    /// instant passed while paused fires at once).
    pub async fn resume_schedule(&self, name: &str) -> Result<ScheduleInfo> {
        modify(self.store(), name, |body, now| {
            if body.paused {
                body.paused = false;
                if body.next_fire.is_some_and(|next| next < now) && body.schedule.kind() != "once" {
                    body.next_fire = body.schedule.after(now, body.created);
                }
            }
            Ok(())
        })
        .await
    }

    /// Removes schedule `name` (the executions it started stay); whether there was one.
    pub async fn delete_schedule(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        off_thread(self.store(), move |store| store.schedule_delete(&name)).await
    }

    /// The executions schedule `name` started, newest first, a page of `limit` after `offset`
    /// (with how many there are in all); the schedule need not exist any more.
    pub async fn schedule_history(&self, name: &str, limit: u32, offset: u64) -> Result<ExecutionPage> {
        self.list_executions(ExecutionFilter::new().schedule(name).limit(limit).offset(offset)).await
    }

    /// Fires the schedules due at `now`, as [`Engine::run_schedules`] does at each turn, with
    /// the workflows registered with this engine: what a program with its own loop (or a test
    /// with its own clock) calls.
    pub async fn fire_schedules(&self, now: SystemTime) -> Result<Vec<Fired>> {
        let starter = fire::Local(self.clone());
        fire_due(self.store(), &starter, now).await.map(|turn| turn.fired)
    }

    /// Starts firing the schedules of this engine's store in the background, with the
    /// workflows registered with it (and those whose `#[flux::workflow(schedule = "..")]`
    /// declares one, created or brought up to date first), until the returned [`Scheduler`] is
    /// stopped or dropped.
    pub fn run_schedules(&self) -> Scheduler {
        self.run_schedules_with(SystemTime::now)
    }

    /// [`Engine::run_schedules`] on a clock of the caller's: for tests, a clock that follows
    /// Tokio's (paused) time.
    pub fn run_schedules_with(&self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Scheduler {
        let starter = Arc::new(fire::Local(self.clone()));
        Scheduler::start(self.clone(), starter, Arc::new(clock), true)
    }

    /// Creates (or brings up to date) the schedules that the workflows registered with this
    /// engine declare (`#[flux::workflow(schedule = "..")]`), each named after its workflow:
    /// what [`Engine::run_schedules`] and a server do when they start.
    pub async fn declare_schedules(&self) -> Result<()> {
        for workflow in self.recoverables() {
            let Some((expression, timezone, input)) = workflow.declared_schedule() else { continue };
            let schedule = Schedule::cron(expression)?.timezone(timezone)?;
            let change = ScheduleChange::new().schedule(schedule).input(input?);
            self.put_schedule(workflow.name(), workflow.name(), change).await?;
        }
        Ok(())
    }
}

/// What a fire starts with: the encoded input of the schedule `name`, for
/// [`Starter::start`].
pub(crate) struct FireRequest<'a> {
    pub(crate) schedule: &'a str,
    pub(crate) workflow: &'a str,
    pub(crate) execution_id: String,
    pub(crate) input: Vec<u8>,
}

/// A fire started or dropped, for [`fire`].
pub(crate) type StartFuture<'a> = BoxFuture<'a, Result<Option<tokio::task::JoinHandle<Result<ExecutionState>>>>>;

/// How long a scheduler sleeps at most between two looks at the store.
pub(crate) const POLL: Duration = Duration::from_secs(1);
