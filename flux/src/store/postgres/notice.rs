//! Telling the other processes on the database what a commit changed: the writer sends
//! `pg_notify` inside each transaction, and a listening connection turns the notices of other
//! stores into [`Change`]s (see [`Store::changes`](crate::store::Store::changes)).
//!
//! A notice's payload is the sending store's origin on its first line, then one line per
//! execution: the state the commit left it in (`-` for none), a space, and its id with `%` and
//! line breaks percent-encoded. PostgreSQL refuses payloads of 8000 bytes or more, so a commit
//! that touched many executions sends several notices. A published message
//! ([`Store::publish`](crate::store::Store::publish)) is the origin, then `#` and the encoded
//! id, then the message in hexadecimal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::event::ExecutionState;
use crate::store::{Change, Write};

/// Payloads stay below PostgreSQL's limit of 8000 bytes.
const MAX_PAYLOAD: usize = 7900;

/// How many changes a receiver may fall behind before it gets [`Change::Missed`].
pub(super) const BACKLOG: usize = 4096;

/// The channel of one flux schema and the origin of this store's notices.
#[derive(Clone, Debug)]
pub(super) struct Channel {
    name: String,
    origin: String,
}

impl Channel {
    /// The channel of the flux tables in `schema`, for a store of origin `origin`.
    pub(super) fn new(schema: &str, origin: String) -> Channel {
        // Channel names are identifiers (at most 63 bytes): the schema is named by a hash.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in schema.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Channel { name: format!("flux_changes_{hash:016x}"), origin }
    }

    /// The channel's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The payloads telling what `batches` changed (none when they changed no execution).
    pub(super) fn payloads<'w>(&self, batches: impl Iterator<Item = &'w [Write]>) -> Vec<String> {
        let mut order: Vec<(&str, Option<ExecutionState>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut touch = |id: &'w str, state: Option<ExecutionState>| match index.get(id) {
            Some(&i) => order[i].1 = state.or(order[i].1),
            None => {
                index.insert(id, order.len());
                order.push((id, state));
            }
        };
        for write in batches.flatten() {
            match write {
                Write::CreateExecution { id, state, .. } => touch(id, Some(*state)),
                Write::SetState { execution_id, state, .. } => touch(execution_id, Some(*state)),
                Write::Append { execution_id, .. } | Write::DeleteExecution { execution_id } => {
                    touch(execution_id, None);
                }
                // Claims, fences and leases change nothing another process follows: a claim
                // comes with the state it sets.
                Write::Claim { .. } | Write::Fence { .. } | Write::Lease { .. } | Write::CachePut { .. } => {}
            }
        }
        let mut payloads = Vec::new();
        let mut payload = String::new();
        for (id, state) in order {
            let mut line = String::with_capacity(id.len() + 24);
            line.push_str(state.map_or("-", |s| s.as_str()));
            line.push(' ');
            line.push_str(&encode(id));
            if !payload.is_empty() && payload.len() + 1 + line.len() > MAX_PAYLOAD {
                payloads.push(std::mem::take(&mut payload));
            }
            if payload.is_empty() {
                payload.push_str(&self.origin);
            }
            let _ = write!(payload, "\n{line}");
        }
        if !payload.is_empty() {
            payloads.push(payload);
        }
        payloads
    }

    /// The payload publishing `message` about execution `id`; `None` if it is too large.
    pub(super) fn published(&self, id: &str, message: &[u8]) -> Option<String> {
        if message.len() > crate::store::MAX_PUBLISHED {
            return None;
        }
        let mut payload = String::with_capacity(self.origin.len() + id.len() + 2 * message.len() + 4);
        let _ = write!(payload, "{}\n#{}\n", self.origin, encode(id));
        for b in message {
            let _ = write!(payload, "{b:02x}");
        }
        (payload.len() <= MAX_PAYLOAD).then_some(payload)
    }

    /// The changes a notice tells of, unless this store sent it.
    fn parse(&self, payload: &str) -> Vec<Change> {
        let mut lines = payload.split('\n');
        if lines.next() == Some(self.origin.as_str()) {
            return Vec::new();
        }
        let mut changes = Vec::new();
        while let Some(line) = lines.next() {
            if let Some(id) = line.strip_prefix('#') {
                let hex = lines.next().unwrap_or_default().as_bytes();
                let message: Option<Vec<u8>> = hex
                    .chunks(2)
                    .map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
                    .collect();
                if let Some(message) = message.filter(|_| hex.len().is_multiple_of(2)) {
                    changes.push(Change::Published { id: Arc::from(decode(id)), message: message.into() });
                }
                continue;
            }
            let Some((state, id)) = line.split_once(' ') else { continue };
            let state = if state == "-" {
                None
            } else {
                match state.parse() {
                    Ok(state) => Some(state),
                    Err(_) => continue,
                }
            };
            changes.push(Change::Execution { id: Arc::from(decode(id)), state });
        }
        changes
    }
}

/// An execution id with `%` and line breaks percent-encoded.
fn encode(id: &str) -> std::borrow::Cow<'_, str> {
    if !id.contains(['%', '\n', '\r']) {
        return std::borrow::Cow::Borrowed(id);
    }
    std::borrow::Cow::Owned(id.replace('%', "%25").replace('\n', "%0A").replace('\r', "%0D"))
}

/// The id [`encode`] encoded.
fn decode(id: &str) -> String {
    id.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
}

/// Listens on `channel` until the store goes, passing the changes other stores commit to
/// `tx`; after every (re)connection it sends [`Change::Missed`], since notices sent while no
/// connection listened are lost.
pub(super) async fn listen(config: Config, channel: Channel, tx: broadcast::Sender<Change>, shown: String) {
    let mut delay = Duration::from_millis(100);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (notices_tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message
                            && notices_tx.send(n).is_err()
                        {
                            return;
                        }
                    }
                });
                let listening = client.batch_execute(&format!("LISTEN {}", super::quote(channel.name()))).await;
                match listening {
                    Ok(()) => {
                        delay = Duration::from_millis(100);
                        let _ = tx.send(Change::Missed);
                        while let Some(notice) = notices.recv().await {
                            for change in channel.parse(notice.payload()) {
                                let _ = tx.send(change);
                            }
                        }
                        tracing::warn!(database = %shown, "lost the connection listening for changes; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(database = %shown, error = %e, "cannot listen for changes; trying again");
                    }
                }
                driver.abort();
                drop(client);
            }
            Err(e) => tracing::warn!(database = %shown, error = %e, "cannot connect to listen for changes"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_each_execution_once_with_the_last_state_set() {
        let channel = Channel::new("flux", "a".into());
        let writes = [
            Write::set_state("x", ExecutionState::Running, None),
            Write::set_state("odd%\nid", ExecutionState::Paused, None),
            Write::set_state("x", ExecutionState::Completed, None),
            Write::delete_execution("y"),
        ];
        let payloads = channel.payloads(std::iter::once(&writes[..]));
        assert_eq!(payloads, vec!["a\nCOMPLETED x\nPAUSED odd%25%0Aid\n- y".to_string()]);
        let other = Channel::new("flux", "b".into());
        assert_eq!(
            other.parse(&payloads[0]),
            vec![
                Change::Execution { id: "x".into(), state: Some(ExecutionState::Completed) },
                Change::Execution { id: "odd%\nid".into(), state: Some(ExecutionState::Paused) },
                Change::Execution { id: "y".into(), state: None },
            ]
        );
        assert!(channel.parse(&payloads[0]).is_empty(), "a store ignores its own notices");
    }

    #[test]
    fn many_executions_are_told_in_several_notices_below_the_limit() {
        let channel = Channel::new("flux", "origin".into());
        let writes: Vec<Write> =
            (0..2000).map(|i| Write::set_state(format!("execution-{i:06}"), ExecutionState::Running, None)).collect();
        let payloads = channel.payloads(std::iter::once(&writes[..]));
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8000 && p.starts_with("origin\n")));
        let told: usize = payloads.iter().map(|p| Channel::new("flux", "me".into()).parse(p).len()).sum();
        assert_eq!(told, 2000);
    }

    #[test]
    fn a_published_message_reaches_the_other_stores_whole() {
        let channel = Channel::new("flux", "a".into());
        let payload = channel.published("odd%\nid", &[0, 1, 0xfe, 0xff]).expect("small enough");
        assert_eq!(payload, "a\n#odd%25%0Aid\n0001feff");
        assert_eq!(
            Channel::new("flux", "b".into()).parse(&payload),
            vec![Change::Published { id: "odd%\nid".into(), message: vec![0, 1, 0xfe, 0xff].into() }]
        );
        assert!(channel.parse(&payload).is_empty());
        assert!(channel.published("x", &vec![7; crate::store::MAX_PUBLISHED + 1]).is_none());
        assert!(channel.published("x", &vec![7; crate::store::MAX_PUBLISHED]).is_some());
    }

    #[test]
    fn each_schema_has_its_own_channel() {
        assert_ne!(Channel::new("flux", String::new()).name(), Channel::new("flux_test_1", String::new()).name());
        assert!(Channel::new(&"s".repeat(63), String::new()).name().len() <= 63);
    }
}
