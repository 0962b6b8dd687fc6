//! An in-memory store: fast, isolated, nothing persisted. For tests and examples.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::{Commit, LeaseMode, Store, StoredExecution, Write};
use crate::error::{Error, ErrorKind, Result};

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
}

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

    fn apply(&self, map: &mut HashMap<String, StoredExecution>, writes: Vec<Write>) -> Result<()> {
        // Check the whole batch first so that it applies atomically, with the rules of the
        // SQLite store: new ids only, events in sequence, terminal states final.
        let mut created = Vec::new();
        let mut next_seq: HashMap<&str, u64> = HashMap::new();
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        for w in &writes {
            match w {
                Write::CreateExecution { id, .. } => {
                    if map.contains_key(&**id) || created.contains(id) {
                        return Err(Error::new(ErrorKind::InvalidState, format!("execution `{id}` already exists")));
                    }
                    created.push(id.clone());
                }
                Write::Append { execution_id: id, event } => {
                    let stored = map.get(&**id).map(|e| e.events.last().map_or(0, |l| l.seq));
                    if stored.is_none() && !created.contains(id) {
                        return Err(Error::new(ErrorKind::NotFound, format!("no execution `{id}`")));
                    }
                    let expected = next_seq.entry(id).or_insert(stored.unwrap_or(0) + 1);
                    if event.seq != *expected {
                        return Err(super::out_of_sequence(id, event.seq, *expected - 1));
                    }
                    *expected += 1;
                }
                Write::CachePut { .. } => {}
                Write::Claim { execution_id: id, generation, .. } => match map.get(&**id) {
                    Some(e) if e.claim_generation + 1 != *generation => {
                        return Err(super::stale_generation(id, *generation, e.claim_generation));
                    }
                    None => return Err(Error::new(ErrorKind::NotFound, format!("no execution `{id}`"))),
                    _ => {}
                },
                Write::Fence { execution_id: id, generation } => match map.get(&**id) {
                    Some(e) if e.claim_generation != *generation => {
                        return Err(super::stale_generation(id, *generation, e.claim_generation));
                    }
                    None => return Err(Error::new(ErrorKind::NotFound, format!("no execution `{id}`"))),
                    _ => {}
                },
                Write::Lease { execution_id: id, owner, mode, .. } => {
                    let Some(e) = map.get(&**id) else {
                        // Created by this batch: nobody holds it yet.
                        if created.contains(id) && *mode == LeaseMode::Own {
                            continue;
                        }
                        return Err(Error::new(ErrorKind::NotFound, format!("no execution `{id}`")));
                    };
                    let held = leases.get(&**id);
                    let allowed = match mode {
                        LeaseMode::Own => true,
                        LeaseMode::Renew => held.is_some_and(|(o, _)| o == &**owner),
                        LeaseMode::TakeOver => {
                            matches!(e.state, super::ExecutionState::Running | super::ExecutionState::Cancelling)
                                && e.worker.is_none()
                                && held.is_none_or(|(_, until)| *until < SystemTime::now())
                        }
                    };
                    if !allowed {
                        return Err(super::lease_refused(id, *mode));
                    }
                }
                Write::SetState { execution_id: id, state, .. } => match map.get(&**id) {
                    Some(e) if !super::transition_allowed(e.state, *state) => {
                        return Err(super::transition_refused(id, e.state, *state));
                    }
                    None if !created.contains(id) => {
                        return Err(Error::new(ErrorKind::NotFound, format!("no execution `{id}`")));
                    }
                    _ => {}
                },
            }
        }
        for w in writes {
            match w {
                Write::CreateExecution { id, workflow_name, state, input, parent_id, time } => {
                    map.insert(
                        id.to_string(),
                        StoredExecution {
                            id: id.to_string(),
                            workflow_name: workflow_name.to_string(),
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

impl Store for MemoryStore {
    fn write(&self, writes: Vec<Write>) -> Commit {
        Commit::ready(self.apply(&mut self.lock(), writes))
    }

    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        Ok(self.lock().get(execution_id).cloned())
    }

    fn list(&self, states: &[super::ExecutionState]) -> Result<Vec<super::ExecutionRow>> {
        let executions = self.lock();
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<super::ExecutionRow> = executions
            .values()
            .filter(|e| states.contains(&e.state))
            .map(|e| super::ExecutionRow {
                id: e.id.clone(),
                workflow_name: e.workflow_name.clone(),
                state: e.state,
                worker: e.worker.clone(),
                claim_generation: e.claim_generation,
                updated_at: e.updated_at,
                parent_id: e.parent_id.clone(),
                owner: leases.get(&e.id).map(|(owner, _)| owner.clone()),
                lease_until: leases.get(&e.id).map(|(_, until)| *until),
            })
            .collect();
        rows.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then_with(|| a.id.cmp(&b.id)));
        Ok(rows)
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
}
