//! An in-memory store: fast, isolated, nothing persisted. For tests and examples.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::rules::{self, Holder};
use super::{Commit, ExecutionFilter, ExecutionPage, ExecutionRow, Store, StoredExecution, StoredSchedule, Write};
use crate::error::Result;
use crate::event::ExecutionState;

/// A [`Store`] that keeps everything in memory, for tests.
///
/// ```
/// let engine = flux::Engine::in_memory();
/// # let _ = engine;
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    executions: Mutex<HashMap<String, StoredExecution>>,
    cache: Mutex<HashMap<String, CacheEntry>>,
    secrets: Mutex<std::collections::BTreeMap<String, Sealed>>,
    /// The owner and lease end of executions run by an engine ([`Write::Lease`]), changed only
    /// under the executions' lock.
    leases: Mutex<HashMap<String, (String, SystemTime)>>,
    /// The order executions were created in, which orders those created at the same instant in
    /// a listing; changed only under the executions' lock.
    creation: Mutex<Creation>,
    schedules: Mutex<std::collections::BTreeMap<String, StoredSchedule>>,
    /// Messages by execution and topic, in order, with their keys.
    messages: Mutex<HashMap<(String, String), Vec<Message>>>,
}

/// Each execution's place in the order of creation, and the next place.
#[derive(Debug, Default)]
struct Creation {
    next: u64,
    places: HashMap<String, u64>,
}

/// A message kept for an execution: its idempotency key and value.
type Message = (Option<String>, Vec<u8>);

/// A secret's nonce and ciphertext.
type Sealed = (Vec<u8>, Vec<u8>);

#[derive(Debug)]
struct CacheEntry {
    task_name: String,
    value: Vec<u8>,
    expires_at: Option<SystemTime>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, StoredExecution>> {
        // A panic while holding the lock cannot leave a half-applied batch (see `apply`), so the
        // data stays consistent even if the mutex is poisoned.
        self.executions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the last event of execution `execution_id` the seq `seq`, as a damaged file could
    /// hold: no write makes such a log, and a conformance check needs one.
    #[cfg(test)]
    pub(super) fn set_last_seq(&self, execution_id: &str, seq: u64) {
        if let Some(event) = self.lock().get_mut(execution_id).and_then(|e| e.events.last_mut()) {
            event.seq = seq;
        }
    }

    fn apply(&self, map: &mut HashMap<String, StoredExecution>, writes: Vec<Write>) -> Result<()> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let mut creation = self.creation.lock().unwrap_or_else(|p| p.into_inner());
        // Check the whole batch first so that it applies atomically: each write against the
        // executions as the writes before it leave them, with the rules of every store.
        let mut batch = Batch { executions: map, leases: &leases, rows: HashMap::new() };
        for w in &writes {
            batch.check(w)?;
        }
        drop(batch);
        for w in writes {
            match w {
                Write::CreateExecution { id, workflow_name, state, input, parent_id, version, time } => {
                    creation.next += 1;
                    let place = creation.next;
                    creation.places.insert(id.to_string(), place);
                    map.insert(
                        id.to_string(),
                        StoredExecution {
                            id: id.to_string(),
                            workflow_name: workflow_name.to_string(),
                            version,
                            state,
                            input: input.to_vec(),
                            output: None,
                            parent_id: parent_id.map(|p| p.to_string()),
                            created_at: time,
                            updated_at: time,
                            worker: None,
                            claim_generation: 0,
                            events: Vec::new(),
                        },
                    );
                }
                Write::Append { execution_id, event } => {
                    if let Some(e) = map.get_mut(&*execution_id) {
                        e.events.push(event);
                    }
                }
                Write::DeleteExecution { execution_id } => {
                    map.remove(&*execution_id);
                    leases.remove(&*execution_id);
                    creation.places.remove(&*execution_id);
                }
                Write::CachePut { key, task_name, value, expires_at } => {
                    let entry = CacheEntry { task_name: task_name.to_string(), value: value.to_vec(), expires_at };
                    self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), entry);
                }
                Write::Claim { execution_id, worker, generation } => {
                    if let Some(e) = map.get_mut(&*execution_id) {
                        e.worker = worker.map(|w| w.to_string());
                        e.claim_generation = generation;
                    }
                }
                Write::Fence { .. } => {}
                Write::Lease { execution_id, owner, until, .. } => {
                    leases.insert(execution_id.to_string(), (owner.to_string(), until));
                }
                Write::SetState { execution_id, state, output, time } => {
                    if let Some(e) = map.get_mut(&*execution_id) {
                        e.state = state;
                        if let Some(o) = output {
                            e.output = Some(o.to_vec());
                        }
                        e.updated_at = time;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the rules look at in one execution.
#[derive(Clone, Copy)]
struct Row<'a> {
    state: ExecutionState,
    generation: u64,
    worker: bool,
    owner: Option<&'a str>,
    until: Option<SystemTime>,
    last_seq: u64,
}

impl<'a> Row<'a> {
    fn holder(&self) -> Holder<'a> {
        Holder { state: self.state, worker: self.worker, owner: self.owner, until: self.until }
    }

    /// The last seq as the rules take it: stored seqs fit an `i64`.
    fn last_seq(&self) -> i64 {
        i64::try_from(self.last_seq).unwrap_or(i64::MAX)
    }
}

/// A batch being checked: the executions it touches, as its writes checked so far leave them.
struct Batch<'a> {
    executions: &'a HashMap<String, StoredExecution>,
    leases: &'a HashMap<String, (String, SystemTime)>,
    /// `None`: no such execution (yet).
    rows: HashMap<&'a str, Option<Row<'a>>>,
}

impl<'a> Batch<'a> {
    /// Execution `id` as the batch leaves it so far.
    fn row(&mut self, id: &'a str) -> &mut Option<Row<'a>> {
        let (executions, leases) = (self.executions, self.leases);
        self.rows.entry(id).or_insert_with(|| {
            let lease = leases.get(id);
            executions.get(id).map(|e| Row {
                state: e.state,
                generation: e.claim_generation,
                worker: e.worker.is_some(),
                owner: lease.map(|(owner, _)| owner.as_str()),
                until: lease.map(|(_, until)| *until),
                last_seq: e.events.last().map_or(0, |l| l.seq),
            })
        })
    }

    /// Checks one write and notes what it changes for the writes after it.
    fn check(&mut self, write: &'a Write) -> Result<()> {
        match write {
            Write::CreateExecution { id, state, .. } => {
                let row = self.row(id);
                rules::check_create(id, row.is_some())?;
                *row = Some(Row { state: *state, generation: 0, worker: false, owner: None, until: None, last_seq: 0 });
            }
            Write::Append { execution_id: id, event } => {
                let row = self.row(id);
                rules::check_append(id, event.seq, row.map(|r| r.last_seq()))?;
                if let Some(r) = row {
                    r.last_seq = event.seq;
                }
            }
            Write::DeleteExecution { execution_id: id } => {
                let row = self.row(id);
                rules::check_delete(id, row.map(|r| r.state))?;
                *row = None;
            }
            Write::CachePut { .. } => {}
            Write::Claim { execution_id: id, worker, generation } => {
                let row = self.row(id);
                rules::check_claim(id, *generation, row.map(|r| r.generation))?;
                if let Some(r) = row {
                    (r.generation, r.worker) = (*generation, worker.is_some());
                }
            }
            Write::Fence { execution_id: id, generation } => {
                rules::check_fence(id, *generation, self.row(id).map(|r| r.generation))?;
            }
            Write::Lease { execution_id: id, owner, until, mode } => {
                let row = self.row(id);
                rules::check_lease(id, owner, *mode, SystemTime::now(), row.map(|r| r.holder()))?;
                if let Some(r) = row {
                    (r.owner, r.until) = (Some(&**owner), Some(*until));
                }
            }
            Write::SetState { execution_id: id, state, .. } => {
                let row = self.row(id);
                rules::check_set_state(id, *state, row.map(|r| r.state))?;
                if let Some(r) = row {
                    r.state = *state;
                }
            }
        }
        Ok(())
    }
}

/// The row of a stored execution, with its lease if it has one.
fn row_of(e: &StoredExecution, leases: &HashMap<String, (String, SystemTime)>) -> ExecutionRow {
    let lease = leases.get(&e.id);
    ExecutionRow {
        id: e.id.clone(),
        workflow_name: e.workflow_name.clone(),
        version: e.version,
        state: e.state,
        worker: e.worker.clone(),
        claim_generation: e.claim_generation,
        created_at: e.created_at,
        updated_at: e.updated_at,
        parent_id: e.parent_id.clone(),
        owner: lease.map(|(owner, _)| owner.clone()),
        lease_until: lease.map(|(_, until)| *until),
    }
}

impl Store for MemoryStore {
    fn write(&self, writes: Vec<Write>) -> Commit {
        Commit::ready(self.apply(&mut self.lock(), writes))
    }

    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        Ok(self.lock().get(execution_id).cloned())
    }

    fn list(&self, states: &[super::ExecutionState]) -> Result<Vec<ExecutionRow>> {
        let executions = self.lock();
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<ExecutionRow> =
            executions.values().filter(|e| states.contains(&e.state)).map(|e| row_of(e, &leases)).collect();
        rows.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then_with(|| a.id.cmp(&b.id)));
        Ok(rows)
    }

    fn list_executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage> {
        filter.check()?;
        let executions = self.lock();
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let creation = self.creation.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<(u64, ExecutionRow)> = executions
            .values()
            .map(|e| (creation.places.get(&e.id).copied().unwrap_or(0), row_of(e, &leases)))
            .filter(|(_, row)| filter.matches(row))
            .collect();
        // Newest first; of those created at the same instant, the last created first.
        rows.sort_unstable_by(|(a_place, a), (b_place, b)| {
            b.created_at.cmp(&a.created_at).then_with(|| b_place.cmp(a_place))
        });
        let total = rows.len() as u64;
        let skip = usize::try_from(filter.offset).unwrap_or(usize::MAX);
        let page = rows.into_iter().skip(skip).take(filter.limit as usize).map(|(_, row)| row).collect();
        Ok(ExecutionPage::new(page, total))
    }

    fn state(&self, execution_id: &str) -> Result<Option<crate::event::ExecutionState>> {
        Ok(self.lock().get(execution_id).map(|e| e.state))
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        Ok(cache.get(key).filter(|e| e.expires_at.is_none_or(|t| t > now)).map(|e| e.value.clone()))
    }

    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
        self.secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), (nonce.to_vec(), ciphertext.to_vec()));
        Ok(())
    }

    fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.secrets.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned())
    }

    fn secret_list(&self) -> Result<Vec<String>> {
        Ok(self.secrets.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect())
    }

    fn secret_remove(&self, name: &str) -> Result<bool> {
        Ok(self.secrets.lock().unwrap_or_else(|p| p.into_inner()).remove(name).is_some())
    }

    fn cache_clear(&self, task_name: Option<&str>) -> Result<u64> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let before = cache.len();
        cache.retain(|_, e| task_name.is_some_and(|n| n != e.task_name));
        Ok((before - cache.len()) as u64)
    }

    fn schedule_put(&self, schedule: &StoredSchedule, expected: Option<u64>) -> Result<u64> {
        let mut schedules = self.schedules.lock().unwrap_or_else(|p| p.into_inner());
        let revision = match (schedules.get(&schedule.name), expected) {
            (None, None) => 1,
            (Some(_), None) => return Err(super::schedule_exists(&schedule.name)),
            (None, Some(_)) => return Err(super::schedule_not_found(&schedule.name)),
            (Some(stored), Some(expected)) if stored.revision == expected => expected + 1,
            (Some(stored), Some(expected)) => {
                return Err(super::schedule_moved(&schedule.name, expected, stored.revision));
            }
        };
        let stored = StoredSchedule { revision, updated_at: SystemTime::now(), ..schedule.clone() };
        schedules.insert(schedule.name.clone(), stored);
        Ok(revision)
    }

    fn schedule_get(&self, name: &str) -> Result<Option<StoredSchedule>> {
        Ok(self.schedules.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned())
    }

    fn schedule_list(&self) -> Result<Vec<StoredSchedule>> {
        Ok(self.schedules.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect())
    }

    fn schedule_delete(&self, name: &str) -> Result<bool> {
        Ok(self.schedules.lock().unwrap_or_else(|p| p.into_inner()).remove(name).is_some())
    }

    fn message_put(&self, execution_id: &str, topic: &str, key: Option<&str>, value: &[u8]) -> Result<bool> {
        let mut messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let kept = messages.entry((execution_id.to_string(), topic.to_string())).or_default();
        if key.is_some() && kept.iter().any(|(k, _)| k.as_deref() == key) {
            return Ok(false);
        }
        kept.push((key.map(String::from), value.to_vec()));
        Ok(true)
    }

    fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        let messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let kept = messages.get(&(execution_id.to_string(), topic.to_string()));
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        Ok(kept.and_then(|kept| kept.get(index)).map(|(_, value)| value.clone()))
    }
}
