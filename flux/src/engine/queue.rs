//! Queues: how many executions an engine runs at once through a name, and how many it starts per
//! period ([`Queue`]); a workflow's `max_concurrency` is a queue of its own.
//!
//! Each queue hands out its room in the order executions asked for it: one dispatcher per queue
//! takes the waiting executions first come, first served, waits for a free place and for the
//! rate to allow a start, and hands the execution a [`Permit`] that frees its place when
//! dropped (when the run stops).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::Engine;
use crate::store::{AdmissionLimit, Admit};

/// The limiters of an engine: its named queues, and the `max_concurrency` of its workflows and
/// tasks (kept apart, so that no queue name reaches a workflow's or task's limit).
pub(crate) type Queues = HashMap<(Line, String), Arc<Limiter>>;

/// What a limiter limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Line {
    /// A named queue.
    Queue,
    /// A workflow's `max_concurrency`.
    Workflow,
    /// A task's `max_concurrency`.
    Task,
}

/// A named queue of an engine: at most [`Queue::concurrency`] of the executions started
/// through it run at once, and at most [`Queue::rate`] start per period; the others wait in
/// state `SCHEDULED` and start in the order they were submitted.
///
/// ```no_run
/// # #[flux::workflow]
/// # async fn send_email(ctx: flux::ExecutionContext<String>) -> flux::Result<()> { Ok(()) }
/// # async fn demo() -> flux::Result<()> {
/// use std::time::Duration;
///
/// let engine = flux::Engine::open(".flux/flux.db")?;
/// engine.queue("emails").concurrency(5).rate(100, Duration::from_secs(1));
/// let handle = send_email.on(&engine).enqueue("emails", "ada@example.com".to_string()).await?;
/// handle.await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    name: Arc<str>,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limits = self.limiter.lock().limits;
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("concurrency", &limits.concurrency)
            .field("rate", &limits.rate)
            .finish()
    }
}

impl Queue {
    /// At most `n` executions of this queue run at once (at least 1). Takes effect at once:
    /// a lower limit lets the running ones finish.
    pub fn concurrency(self, n: usize) -> Queue {
        self.limiter.set(|limits| limits.concurrency = Some(n.max(1)));
        self
    }

    /// At most `n` executions of this queue start per `per` (a sliding window; `n` at least 1).
    pub fn rate(self, n: u32, per: Duration) -> Queue {
        self.limiter.set(|limits| limits.rate = Some((n.max(1), per)));
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many of its executions wait for room now.
    pub fn waiting(&self) -> usize {
        self.limiter.lock().waiting
    }

    /// How many of its executions run now.
    pub fn running(&self) -> usize {
        self.limiter.lock().running
    }
}

/// A queue's limits.
#[derive(Clone, Copy, Debug, Default)]
struct Limits {
    concurrency: Option<usize>,
    rate: Option<(u32, Duration)>,
}

/// What a queue's dispatcher and permits share.
#[derive(Default)]
struct Counts {
    limits: Limits,
    running: usize,
    waiting: usize,
    /// When the last starts happened, oldest first (as many as the rate allows).
    starts: VecDeque<Instant>,
}

/// A queue's limits and its waiting line.
pub(crate) struct Limiter {
    /// Where the store counts its executions ([`Store::admit`](crate::store::Store::admit)):
    /// `queue:{name}` or `workflow:{name}`; `None` for a task's limit, which each engine keeps.
    scope: Option<String>,
    counts: Mutex<Counts>,
    /// Wakes the dispatcher: a place freed, or the limits changed.
    changed: Notify,
    line: mpsc::UnboundedSender<oneshot::Sender<Admission>>,
}

/// What the dispatcher hands the execution whose turn it is: its place, and the signal that it
/// has started (`started`, dropped with the admission, or when [`Admission::permit`] takes the
/// place out of it), which the dispatcher waits for before the next one's turn, so that
/// executions start in the order they asked.
pub(crate) struct Admission {
    permit: Permit,
    _started: oneshot::Sender<()>,
}

impl Admission {
    /// The place, held while the execution runs; the next in line may start now.
    pub(crate) fn permit(self) -> Permit {
        self.permit
    }
}

/// A place in a queue, held while an execution runs.
pub(crate) struct Permit(Weak<Limiter>);

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(limiter) = self.0.upgrade() {
            let mut counts = limiter.lock();
            counts.running = counts.running.saturating_sub(1);
            drop(counts);
            limiter.changed.notify_one();
        }
    }
}

impl Limiter {
    /// A new queue and its dispatcher.
    fn start(scope: Option<String>) -> Arc<Limiter> {
        let (line, mut waiting) = mpsc::unbounded_channel::<oneshot::Sender<Admission>>();
        let limiter = Arc::new(Limiter { scope, counts: Mutex::default(), changed: Notify::new(), line });
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            while let Some(asker) = waiting.recv().await {
                let Some(limiter) = weak.upgrade() else { return };
                limiter.admit().await;
                let permit = Permit(Arc::downgrade(&limiter));
                drop(limiter);
                // The permit is counted as running now; one whose asker went away frees its
                // place as it is dropped.
                let (started, has_started) = oneshot::channel();
                if asker.send(Admission { permit, _started: started }).is_ok() {
                    let _ = has_started.await;
                }
            }
        });
        limiter
    }

    /// Its limits as the store checks them for every engine on it, if it has a scope there and
    /// a limit to check.
    pub(crate) fn admission_limit(&self) -> Option<AdmissionLimit> {
        let limits = self.lock().limits;
        if limits.concurrency.is_none() && limits.rate.is_none() {
            return None;
        }
        let scope = self.scope.clone()?;
        Some(AdmissionLimit { scope, concurrency: limits.concurrency, rate: limits.rate })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, change: impl FnOnce(&mut Limits)) {
        change(&mut self.lock().limits);
        self.changed.notify_one();
    }

    /// Waits until the next execution may start, and counts it as running.
    async fn admit(&self) {
        loop {
            let wait = {
                let mut counts = self.lock();
                let now = Instant::now();
                let full = counts.limits.concurrency.is_some_and(|n| counts.running >= n);
                let until = counts.limits.rate.and_then(|(n, per)| {
                    while counts.starts.front().is_some_and(|t| now.duration_since(*t) >= per) {
                        counts.starts.pop_front();
                    }
                    (counts.starts.len() >= n as usize).then(|| counts.starts[0] + per)
                });
                match (full, until) {
                    (false, None) => {
                        counts.running += 1;
                        counts.waiting = counts.waiting.saturating_sub(1);
                        if counts.limits.rate.is_some() {
                            counts.starts.push_back(now);
                        }
                        return;
                    }
                    (_, until) => until,
                }
            };
            let notified = self.changed.notified();
            match wait {
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Takes a place in line now; the ticket resolves with the permit once it is this one's
    /// turn.
    pub(crate) fn enter(&self) -> Ticket {
        let (tx, rx) = oneshot::channel();
        self.lock().waiting += 1;
        let _ = self.line.send(tx);
        Ticket(rx)
    }
}

/// A place in a queue's line.
pub(crate) struct Ticket(oneshot::Receiver<Admission>);

impl Ticket {
    /// Waits for this one's turn; `None` if the queue's dispatcher stopped.
    pub(crate) async fn turn(self) -> Option<Admission> {
        self.0.await.ok()
    }
}

impl Engine {
    /// The queue `name` of this engine, made on first use (with the limits its configuration
    /// gives it, `[flux.queues.<name>]`, else none). Its limits, set with
    /// [`Queue::concurrency`] and [`Queue::rate`], hold for the executions this engine starts
    /// through it ([`Workflow::enqueue`](crate::Workflow::enqueue)); needs a Tokio runtime.
    pub fn queue(&self, name: &str) -> Queue {
        let limiter = self.limiter(name);
        Queue { name: Arc::from(name), limiter }
    }

    /// What waits and runs under each of this engine's limits now, ordered: `(kind, name,
    /// waiting, running)`, the kind being `queue`, `workflow` or `task`.
    #[cfg(feature = "server")]
    pub(crate) fn queue_depths(&self) -> Vec<(&'static str, String, usize, usize)> {
        let queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        let mut depths: Vec<_> = queues
            .iter()
            .map(|((line, name), limiter)| {
                let kind = match line {
                    Line::Queue => "queue",
                    Line::Workflow => "workflow",
                    Line::Task => "task",
                };
                let counts = limiter.lock();
                (kind, name.clone(), counts.waiting, counts.running)
            })
            .collect();
        depths.sort();
        depths
    }

    /// The limiter of queue `name`, made on first use.
    pub(crate) fn limiter(&self, name: &str) -> Arc<Limiter> {
        let mut queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        let preset = || self.inner.presets.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied();
        let limiter = queues.entry((Line::Queue, name.to_string())).or_insert_with(|| {
            let limiter = Limiter::start(Some(format!("queue:{name}")));
            if let Some(settings) = preset() {
                limiter.set(|limits| {
                    limits.concurrency = settings.concurrency.map(|n| n.max(1));
                    limits.rate = settings.rate.map(|(n, per)| (n.max(1), per));
                });
            }
            limiter
        });
        limiter.clone()
    }

    /// The limiter of workflow `name`'s `max_concurrency`, made with that limit on first use.
    pub(crate) fn workflow_limiter(&self, name: &str, max_concurrency: usize) -> Arc<Limiter> {
        self.limiter_with((Line::Workflow, name.to_string()), Some(format!("workflow:{name}")), max_concurrency)
    }

    /// The limiter of the attempts of task `name` (its `max_concurrency`), made with that limit
    /// on first use.
    pub(crate) fn task_limiter(&self, name: &str, max_concurrency: usize) -> Arc<Limiter> {
        self.limiter_with((Line::Task, name.to_string()), None, max_concurrency)
    }

    fn limiter_with(&self, key: (Line, String), scope: Option<String>, max_concurrency: usize) -> Arc<Limiter> {
        let mut queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .entry(key)
            .or_insert_with(|| {
                let limiter = Limiter::start(scope);
                limiter.set(|limits| limits.concurrency = Some(max_concurrency.max(1)));
                limiter
            })
            .clone()
    }
}

/// The longest wait between two asks of the store for an admission.
const ASK_AGAIN: Duration = Duration::from_millis(200);

impl Engine {
    /// Waits until the store admits execution `id` under the limits of `lines` that it counts
    /// for every engine on it (see [`Store::admit`](crate::store::Store::admit)); at once when
    /// none has a scope there, or the store leaves counting to each engine.
    pub(crate) async fn admitted(&self, id: &str, lines: &[Arc<Limiter>]) -> crate::Result<()> {
        let limits: Vec<AdmissionLimit> = lines.iter().filter_map(|line| line.admission_limit()).collect();
        if limits.is_empty() {
            return Ok(());
        }
        let mut pause = Duration::from_millis(5);
        loop {
            let (store, execution, asked) = (self.store().clone(), id.to_string(), limits.clone());
            let now = std::time::SystemTime::now();
            let outcome =
                tokio::task::spawn_blocking(move || store.admit(&execution, &asked, now)).await.map_err(|e| {
                    crate::Error::new(crate::ErrorKind::Storage, format!("an admission's storage call failed: {e}"))
                })??;
            let retry_at = match outcome {
                Admit::Yes => return Ok(()),
                Admit::No { retry_at } => retry_at,
            };
            // A place frees when a run stops, here or in another process: ask again soon.
            let until_rate = retry_at.and_then(|at| at.duration_since(now).ok());
            tokio::time::sleep(until_rate.unwrap_or(pause).min(ASK_AGAIN)).await;
            pause = (pause * 2).min(ASK_AGAIN);
        }
    }
}
