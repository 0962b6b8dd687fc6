//! The server's fan-out of execution events: what it stores for remote executions (claims,
//! checkpoints, its own state changes) and the progress workers forward, delivered to SSE
//! streams and to requests waiting for an execution to stop. With several servers on one
//! database, each also passes on what the others stored (see [`super::cluster`]): every
//! execution's durable events reach a listener once each, in order of their seq.

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

/// The listeners of one execution, and the last durable event they were given.
struct Topic {
    listeners: Vec<Listener>,
    seq: u64,
}

/// Listeners by execution id.
#[derive(Default)]
pub(crate) struct Hub {
    listeners: Mutex<HashMap<String, Topic>>,
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
    /// Starts listening to the events of `execution_id` that follow event `after` (0 for all),
    /// which the listener knows already.
    pub(crate) fn subscribe(&self, execution_id: &str, after: u64) -> HubReceiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let topic = all.entry(execution_id.to_string()).or_insert(Topic { listeners: Vec::new(), seq: 0 });
        topic.seq = topic.seq.max(after);
        topic.listeners.push(Listener { tx, queued: queued.clone() });
        HubReceiver { rx, queued }
    }

    /// The executions listened to, each with the last durable event its listeners got.
    pub(crate) fn followed(&self) -> Vec<(String, u64)> {
        let all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().map(|(id, topic)| (id.clone(), topic.seq)).collect()
    }

    /// Whether anyone listens to `execution_id`.
    pub(crate) fn follows(&self, execution_id: &str) -> bool {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).contains_key(execution_id)
    }

    /// Delivers durable events (never dropped) and progress events (dropped for a listener with
    /// [`PROGRESS_QUEUE`] waiting already).
    pub(crate) fn publish(&self, execution_id: &str, events: &[Event]) {
        let items: Vec<HubItem> = events.iter().cloned().map(HubItem::Event).collect();
        self.publish_items(execution_id, &items);
    }

    /// Delivers items in order (progress dropped for a listener with [`PROGRESS_QUEUE`]
    /// waiting; a durable event its listeners were given already, dropped).
    pub(crate) fn publish_items(&self, execution_id: &str, events: &[HubItem]) {
        if events.is_empty() {
            return;
        }
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let Some(topic) = all.get_mut(execution_id) else {
            return;
        };
        let seen = topic.seq;
        let fresh = |item: &&HubItem| match item {
            HubItem::Event(event) => event.seq() == 0 || event.seq() > seen,
            HubItem::Refused(_) => true,
        };
        if let Some(last) =
            events.iter().filter_map(|i| if let HubItem::Event(e) = i { Some(e.seq()) } else { None }).max()
        {
            topic.seq = topic.seq.max(last);
        }
        topic.listeners.retain(|l| {
            for item in events.iter().filter(fresh) {
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
        if topic.listeners.is_empty() {
            all.remove(execution_id);
        }
    }

    /// Forgets listeners that went away (their requests ended).
    pub(crate) fn prune(&self) {
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, topic| {
            topic.listeners.retain(|l| !l.tx.is_closed());
            !topic.listeners.is_empty()
        });
    }
}
