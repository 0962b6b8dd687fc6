//! The server's fan-out of execution events: what it stores for remote executions (claims,
//! checkpoints, its own state changes) and the progress workers forward, delivered to SSE
//! streams and to requests waiting for an execution to stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::event::{Event, EventType};
use crate::limits::PROGRESS_QUEUE;

/// What a listener receives.
#[derive(Clone, Debug)]
pub(crate) enum HubItem {
    /// A durable event, or an ephemeral progress event.
    Event(Event),
    /// A worker refused a resume input; the execution is `PAUSED` again.
    Refused(String),
}

/// One stream or waiting request listening to an execution.
struct Listener {
    tx: mpsc::UnboundedSender<HubItem>,
    /// Progress events queued and not taken yet; beyond [`PROGRESS_QUEUE`] they are dropped.
    queued: Arc<AtomicUsize>,
}

/// Listeners by execution id.
#[derive(Default)]
pub(crate) struct Hub {
    listeners: Mutex<HashMap<String, Vec<Listener>>>,
}

/// The receiving end of [`Hub::subscribe`].
pub(crate) struct HubReceiver {
    rx: mpsc::UnboundedReceiver<HubItem>,
    queued: Arc<AtomicUsize>,
}

impl HubReceiver {
    /// The next item; `None` only if the hub is gone.
    pub(crate) async fn recv(&mut self) -> Option<HubItem> {
        let item = self.rx.recv().await?;
        if let HubItem::Event(event) = &item
            && event.kind() == EventType::TaskProgress
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        Some(item)
    }
}

impl Hub {
    /// Starts listening to the events of `execution_id`.
    pub(crate) fn subscribe(&self, execution_id: &str) -> HubReceiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.entry(execution_id.to_string()).or_default().push(Listener { tx, queued: queued.clone() });
        HubReceiver { rx, queued }
    }

    /// Delivers durable events (never dropped) and progress events (dropped for a listener with
    /// [`PROGRESS_QUEUE`] waiting already).
    pub(crate) fn publish(&self, execution_id: &str, events: &[Event]) {
        let items: Vec<HubItem> = events.iter().cloned().map(HubItem::Event).collect();
        self.publish_items(execution_id, &items);
    }

    /// Delivers items in order (progress dropped for a listener with [`PROGRESS_QUEUE`]
    /// waiting).
    pub(crate) fn publish_items(&self, execution_id: &str, events: &[HubItem]) {
        if events.is_empty() {
            return;
        }
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let Some(listeners) = all.get_mut(execution_id) else {
            return;
        };
        listeners.retain(|l| {
            for item in events {
                if let HubItem::Event(event) = item
                    && event.kind() == EventType::TaskProgress
                {
                    if l.queued.load(Ordering::Relaxed) >= PROGRESS_QUEUE {
                        continue;
                    }
                    l.queued.fetch_add(1, Ordering::Relaxed);
                }
                if l.tx.send(item.clone()).is_err() {
                    return false;
                }
            }
            true
        });
        if listeners.is_empty() {
            all.remove(execution_id);
        }
    }

    /// Forgets listeners that went away (their requests ended).
    pub(crate) fn prune(&self) {
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, listeners| {
            listeners.retain(|l| !l.tx.is_closed());
            !listeners.is_empty()
        });
    }
}
