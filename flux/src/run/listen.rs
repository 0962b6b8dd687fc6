//! Listeners of a run: each durable event as it is recorded, and the ephemeral progress of
//! `flux::progress`, which a slow listener misses beyond [`PROGRESS_QUEUE`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::event::{Event, EventType};

/// How many progress events may wait for a slow stream reader before newer ones are dropped.
pub const PROGRESS_QUEUE: usize = 1000;

/// Someone streaming the execution's events.
pub(super) struct Listener {
    tx: mpsc::UnboundedSender<Event>,
    /// Progress events queued and not taken yet; beyond [`PROGRESS_QUEUE`] they are dropped.
    queued: Arc<AtomicUsize>,
}

impl Listener {
    /// A listener and the subscription that receives what it is sent.
    pub(super) fn new() -> (Listener, Subscription) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (Listener { tx, queued: queued.clone() }, Subscription { rx, queued })
    }

    /// Sends a durable event; `false` once the subscription is gone.
    pub(super) fn send(&self, event: &Event) -> bool {
        self.tx.send(event.clone()).is_ok()
    }

    /// Sends a progress event unless [`PROGRESS_QUEUE`] of them wait already; `false` once the
    /// subscription is gone.
    pub(super) fn send_progress(&self, event: &Event) -> bool {
        if self.queued.load(Ordering::Relaxed) >= PROGRESS_QUEUE {
            return !self.tx.is_closed();
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(event.clone()).is_ok()
    }
}

/// The receiving side of a run's listener.
pub(crate) struct Subscription {
    rx: mpsc::UnboundedReceiver<Event>,
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next event, `None` once the run has ended and every event was taken.
    pub(crate) fn poll_next(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Event>> {
        let polled = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(e)) = &polled
            && e.kind == EventType::TaskProgress
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        polled
    }
}
