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
    /// The last durable event it was given (or knew of when it subscribed).
    seq: u64,
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
    /// Starts listening to the events of `execution_id` that follow event `after` (0 for all),
    /// which the listener knows already.
    pub(crate) fn subscribe(&self, execution_id: &str, after: u64) -> HubReceiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(execution_id.to_string()).or_default().push(Listener { tx, queued: queued.clone(), seq: after });
        HubReceiver { rx, queued }
    }

    /// The executions listened to.
    pub(crate) fn followed(&self) -> Vec<String> {
        let all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        all.keys().cloned().collect()
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
        let Some(listeners) = all.get_mut(execution_id) else {
            return;
        };
        listeners.retain_mut(|l| {
            for item in events {
                if let HubItem::Event(event) = item {
                    if event.kind() == EventType::TaskProgress {
                        if l.queued.load(Ordering::Relaxed) >= PROGRESS_QUEUE {
                            continue;
                        }
                        l.queued.fetch_add(1, Ordering::Relaxed);
                    } else if event.seq() != 0 {
                        // Durable: each once, in the order of the log.
                        if event.seq() <= l.seq {
                            continue;
                        }
                        l.seq = event.seq();
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Event {
        Event::new(seq, EventType::TaskCompleted, "t", "t", crate::run::NIL, crate::event::now())
    }

    fn seqs(rx: &mut HubReceiver) -> Vec<u64> {
        let mut got = Vec::new();
        while let Ok(HubItem::Event(e)) = rx.rx.try_recv() {
            got.push(e.seq());
        }
        got
    }

    #[test]
    fn each_listener_gets_each_durable_event_once_from_where_it_joined() {
        let hub = Hub::default();
        let mut first = hub.subscribe("x", 0);
        hub.publish("x", &[event(1), event(2)]);
        // A request that loaded the log up to 3 joins before event 3's own publish arrives.
        let mut second = hub.subscribe("x", 3);
        hub.publish("x", &[event(3)]);
        // What another server stored, passed on again: nothing twice.
        hub.publish("x", &[event(2), event(3), event(4)]);
        assert_eq!(seqs(&mut first), [1, 2, 3, 4]);
        assert_eq!(seqs(&mut second), [4]);
    }
}
