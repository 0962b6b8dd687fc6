//! Recording events: each one is appended to the in-memory log (and sent to listeners) and its
//! write is queued to the store in the same step, under the run's lock, so that the stored log is
//! always a prefix of the in-memory one. A batch of events (with the writes that go with them)
//! is stored in one transaction.
//!
//! Two ways to record, named for what the caller does next:
//! - [`RunState::record`] returns the batch's [`Commit`]: the caller waits for it (see
//!   [`RunState::durable`]) before it hands a result back;
//! - [`RunState::defer`] queues a batch nothing waits for yet (`TASK_STARTED`, retry steps): the
//!   store may hold it back to share a later commit, and its outcome is checked at the next wait.

use std::sync::Arc;

use super::{RunInner, RunState};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType};
use crate::store::{Commit, Write};

/// Who an event is about: a task call (its id and name), or the workflow itself
/// ([`RunState::workflow`]).
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    id: &'a Arc<str>,
    name: &'a Arc<str>,
}

impl<'a> Source<'a> {
    /// The source with id `id` (a task id, or `"{workflow}_{execution}"`) and name `name`.
    pub(crate) fn new(id: &'a Arc<str>, name: &'a Arc<str>) -> Self {
        Source { id, name }
    }

    /// An event of type `kind` with `value`, from this source.
    pub(crate) fn entry(self, kind: EventType, value: Arc<[u8]>) -> Entry<'a> {
        Entry { kind, source: self, value }
    }
}

/// One event to record.
pub(crate) struct Entry<'a> {
    kind: EventType,
    source: Source<'a>,
    value: Arc<[u8]>,
}

/// Whether a queued batch is waited for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The caller waits for its commit.
    Now,
    /// Nothing waits for it yet: it may share a later commit.
    Later,
}

impl RunState {
    /// Records `entries`, with `extra` writes stored before them (an execution row, a state
    /// change, a cache entry), in one transaction; the caller waits for the returned commit.
    pub(crate) fn record<'a>(
        &self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        extra: impl IntoIterator<Item = Write>,
    ) -> Result<Commit> {
        let mut inner = self.lock();
        // A write that was not waited for may have failed since: stop before queuing more.
        self.settle_pending(&mut inner, None)?;
        self.push(&mut inner, entries, extra, Wait::Now)
    }

    /// Records `entries` (after `extra`) in one transaction that nothing waits for yet (see
    /// [`Store::write_deferred`]); its outcome is checked at the next wait.
    ///
    /// [`Store::write_deferred`]: crate::store::Store::write_deferred
    pub(crate) fn defer<'a>(
        &self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        extra: impl IntoIterator<Item = Write>,
    ) -> Result<()> {
        let mut inner = self.lock();
        self.settle_pending(&mut inner, None)?;
        let commit = self.push(&mut inner, entries, extra, Wait::Later)?;
        inner.pending.push_back(commit);
        Ok(())
    }

    /// Records `entries` (after `extra`) in one transaction and waits until it is durable.
    pub(crate) async fn record_durable<'a>(
        &self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        extra: impl IntoIterator<Item = Write>,
    ) -> Result<()> {
        let commit = self.record(entries, extra)?;
        self.durable(commit).await
    }

    /// Records the run's last events (its end, or its pause) with `extra`: nothing is recorded
    /// after them. Called with the lock held by [`super::stop`].
    pub(super) fn record_last<'a>(
        &self,
        inner: &mut RunInner,
        entries: impl IntoIterator<Item = Entry<'a>>,
        extra: Write,
    ) -> Result<Commit> {
        let commit = self.push(inner, entries, Some(extra), Wait::Now)?;
        inner.finished = true;
        Ok(commit)
    }

    /// [`RunState::record`] for a caller that holds the lock and has settled pending commits.
    pub(super) fn record_locked<'a>(
        &self,
        inner: &mut RunInner,
        entries: impl IntoIterator<Item = Entry<'a>>,
        extra: impl IntoIterator<Item = Write>,
    ) -> Result<Commit> {
        self.push(inner, entries, extra, Wait::Now)
    }

    /// Appends events to the in-memory log (and to listeners) and queues their write after
    /// `extra`, all in one batch. The caller holds the lock and has settled pending commits.
    fn push<'a>(
        &self,
        inner: &mut RunInner,
        entries: impl IntoIterator<Item = Entry<'a>>,
        extra: impl IntoIterator<Item = Write>,
        wait: Wait,
    ) -> Result<Commit> {
        if inner.finished {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("execution `{}` has already recorded its end; nothing more is recorded", self.execution_id),
            ));
        }
        let entries = entries.into_iter();
        let extra = extra.into_iter();
        let mut writes = Vec::with_capacity(entries.size_hint().0 + extra.size_hint().0);
        writes.extend(extra);
        let time = crate::event::now();
        for Entry { kind, source, value } in entries {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let event =
                Event { seq, kind, source_id: source.id.clone(), name: source.name.clone(), value: value.into(), time };
            if !inner.listeners.is_empty() {
                inner.listeners.retain(|l| l.send(&event));
            }
            inner.events.push(event.clone());
            writes.push(Write::Append { execution_id: self.execution_id.clone(), event });
        }
        let store = self.engine.store();
        Ok(match wait {
            Wait::Now => store.write(writes),
            Wait::Later => store.write_deferred(writes),
        })
    }

    /// In the `batched` mode, waits for the oldest commits not waited for while more than
    /// [`BATCH_PENDING`] are outstanding, so that a crash loses at most that many.
    ///
    /// [`BATCH_PENDING`]: crate::store::BATCH_PENDING
    pub(crate) async fn bounded(&self) -> Result<()> {
        loop {
            let oldest = {
                let mut inner = self.lock();
                self.settle_pending(&mut inner, None)?;
                if inner.pending.len() <= crate::store::BATCH_PENDING {
                    return Ok(());
                }
                inner.pending.pop_front()
            };
            if let Some(commit) = oldest {
                let result = commit.await;
                self.settle_pending(&mut self.lock(), result.err())?;
            }
        }
    }

    /// Waits for `commit`, then checks every earlier commit that was not waited for.
    pub(crate) async fn durable(&self, commit: Commit) -> Result<()> {
        let result = commit.await;
        self.settle_pending(&mut self.lock(), result.err())
    }

    /// Checks the commits that were not waited for (and `failure`, the outcome of one that was).
    /// The first failure marks the run broken: its later writes are refused, so the stored log
    /// ends at its last durable event, without gaps, and the execution can be replayed from it.
    pub(super) fn settle_pending(&self, inner: &mut RunInner, failure: Option<Error>) -> Result<()> {
        if let Some(e) = &inner.broken {
            return Err(e.clone());
        }
        let mut failure = failure;
        // Commits resolve in the order they were queued: the first one still running ends the
        // check, so that it costs nothing per commit outstanding.
        while let Some(front) = inner.pending.front_mut() {
            match front.try_result() {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    failure.get_or_insert(e);
                }
                None => break,
            }
            inner.pending.pop_front();
        }
        match failure {
            None => Ok(()),
            Some(e) => {
                let e = Error::new(
                    ErrorKind::Storage,
                    format!(
                        "execution `{}` stopped: an event could not be stored; its stored log ends at the last \
                         event that was, and it can be replayed from there",
                        self.execution_id
                    ),
                )
                .with_cause(e.to_string());
                inner.broken = Some(e.clone());
                Err(e)
            }
        }
    }
}
