//! Working memory: an agent's conversation kept across its calls within one execution.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::message::Message;
use crate::error::Result;
use crate::task::{Args, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};

/// The conversation of an agent (or of several) across calls within one execution:
/// `agent(..).working_memory(WorkingMemory::new().window(20))`.
///
/// - After each call, the instruction and the answer are remembered, each as a task
///   `wm_memorize_{n}` whose output is the message. A replay answers those tasks from the log,
///   so the memory after a crash is the memory before it.
/// - Each call starts from what is remembered (the last `window` messages, when set).
/// - Memory belongs to the execution: one value shared by many executions keeps each one's
///   conversation apart, and forgets it when the execution's run ends. Outside a workflow it
///   lives as long as the value.
///
/// Agents sharing one memory should not be called concurrently: the order of what they
/// remember would depend on timing.
#[derive(Clone, Debug)]
pub struct WorkingMemory {
    id: u64,
    window: Option<usize>,
    outside: Arc<Mutex<Remembered>>,
}

#[derive(Debug, Default)]
struct Remembered {
    messages: Vec<Message>,
    next: u64,
}

impl Default for WorkingMemory {
    fn default() -> Self {
        WorkingMemory::new()
    }
}

impl WorkingMemory {
    /// An empty memory with no window.
    pub fn new() -> WorkingMemory {
        static IDS: AtomicU64 = AtomicU64::new(1);
        WorkingMemory { id: IDS.fetch_add(1, Ordering::Relaxed), window: None, outside: Arc::default() }
    }

    /// Gives each call only the last `n` messages.
    pub fn window(mut self, n: usize) -> Self {
        self.window = Some(n);
        self
    }

    fn remembered(&self) -> Arc<Mutex<Remembered>> {
        match crate::run::current() {
            Some(run) => run.kept::<Mutex<Remembered>>(self.id),
            None => self.outside.clone(),
        }
    }

    /// What a call starts from: the remembered messages (the last `window` of them).
    pub fn recall(&self) -> Vec<Message> {
        let remembered = self.remembered();
        let remembered = remembered.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = self.window.map_or(0, |n| remembered.messages.len().saturating_sub(n));
        remembered.messages[skip..].to_vec()
    }

    /// Remembers `message`: the task `wm_memorize_{n}`.
    pub async fn memorize(&self, message: Message) -> Result<()> {
        let remembered = self.remembered();
        let n = {
            let mut r = remembered.lock().unwrap_or_else(PoisonError::into_inner);
            r.next += 1;
            r.next - 1
        };
        let name = format!("wm_memorize_{n}");
        let call = TaskCall::begin(Cow::Borrowed("wm_memorize"), || {
            (name.as_str(), Args::new(2).arg(&message.role).arg(&message.content))
        });
        let attempt = move |_: &Call<'_>| Ok(std::future::ready(Ok(message.clone())));
        let handlers = Handlers { fallback: None::<NoHandler<Message>>, rollback: None::<NoHandler<()>> };
        let stored = call.run(codec::<Message>(), &TaskOptions::new(), attempt, handlers).await?;
        remembered.lock().unwrap_or_else(PoisonError::into_inner).messages.push(stored);
        Ok(())
    }
}
