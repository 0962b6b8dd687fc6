//! What the writer remembers of each log it appended to: its execution's key and last seq, so
//! that an append to a log it knows needs no query.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

/// An execution's integer key (`executions.pk`, which its events carry) and its last event seq.
#[derive(Clone, Copy)]
pub(super) struct LogEnd {
    pub(super) key: i64,
    pub(super) seq: i64,
}

/// The key and last event seq of each execution this writer appended to, so that an append
/// needs no query in the common case. Changes made inside a transaction are kept apart until it
/// commits. Entries go when an execution finishes.
#[derive(Default)]
pub(super) struct LastSeqs {
    pub(super) known: crate::identity::IdMap<Arc<str>, LogEnd>,
    /// Changes of the open transaction: a new end, or `None` for a finished execution.
    pub(super) in_transaction: crate::identity::IdMap<Arc<str>, Option<LogEnd>>,
}

impl LastSeqs {
    /// The remembered end of the log, or the stored one; `None` if there is no such execution.
    pub(super) fn last(&mut self, conn: &Connection, execution_id: &Arc<str>) -> rusqlite::Result<Option<LogEnd>> {
        match self.in_transaction.get(execution_id) {
            Some(Some(end)) => return Ok(Some(*end)),
            Some(None) => {}
            None => {
                if let Some(end) = self.known.get(execution_id) {
                    return Ok(Some(*end));
                }
            }
        }
        self.stored_last(conn, execution_id)
    }

    /// The end of the stored log (one lookup of the key, one backward seek on the events' primary
    /// key); `None` if there is no such execution.
    pub(super) fn stored_last(&self, conn: &Connection, execution_id: &str) -> rusqlite::Result<Option<LogEnd>> {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT x.pk, (SELECT ",
            row_end!(),
            " FROM events WHERE execution = x.pk ORDER BY seq DESC LIMIT 1)
                 FROM executions x WHERE x.id = ?1"
        ))?;
        stmt.query_row([execution_id], |r| Ok(LogEnd { key: r.get(0)?, seq: r.get::<_, Option<i64>>(1)?.unwrap_or(0) }))
            .optional()
    }

    /// Notes a new end of the log in the open transaction.
    pub(super) fn wrote(&mut self, execution_id: &Arc<str>, end: LogEnd) {
        match self.in_transaction.get_mut(execution_id) {
            Some(last) => *last = Some(end),
            None => {
                self.in_transaction.insert(execution_id.clone(), Some(end));
            }
        }
    }

    /// Forgets a finished execution once the open transaction commits: nothing is appended to it
    /// any more.
    pub(super) fn finished(&mut self, execution_id: &Arc<str>) {
        self.in_transaction.insert(execution_id.clone(), None);
    }

    /// Keeps the changes of the transaction that just committed.
    pub(super) fn committed(&mut self) {
        for (id, seq) in self.in_transaction.drain() {
            match seq {
                Some(seq) => {
                    self.known.insert(id, seq);
                }
                None => {
                    self.known.remove(&id);
                }
            }
        }
    }

    /// Drops the changes of the transaction that was rolled back.
    pub(super) fn rolled_back(&mut self) {
        self.in_transaction.clear();
    }
}
