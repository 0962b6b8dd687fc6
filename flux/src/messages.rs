//! Messages and events between a running workflow and the world (docs/design.md §24).
//!
//! - **Messages** go in: `workflow.send(id, topic, value)` keeps `value` for execution `id`
//!   (before it waits for it, too), and inside the workflow [`recv`]`::<T>(topic)` takes the
//!   next message of the topic, waiting for one if none is there (with
//!   [`Recv::timeout`], `None` once the time is up). A receive is a recorded call (`recv_{topic}`):
//!   a replay gets the same message without waiting. [`Workflow::send_keyed`] sends with an
//!   idempotency key: the same key on the same execution and topic is delivered once.
//! - **Events** come out: [`set_event`]`(key, value)` inside the workflow records `value` under
//!   `key` (a recorded call, `set_event_{key}`), and `workflow.get_event::<T>(id, key)` reads the
//!   latest value set, from the execution's log, for status a caller polls.
//!
//! ```no_run
//! use std::time::Duration;
//! use flux::prelude::*;
//!
//! #[flux::workflow]
//! async fn checkout(ctx: ExecutionContext<u32>) -> flux::Result<String> {
//!     flux::set_event("status", "waiting for payment".to_string()).await?;
//!     let paid: Option<u32> = flux::recv("payment").timeout(Duration::from_secs(600)).await?;
//!     let outcome = match paid {
//!         Some(cents) if cents >= *ctx.input() => "paid",
//!         Some(_) => "underpaid",
//!         None => "expired",
//!     };
//!     flux::set_event("status", outcome.to_string()).await?;
//!     Ok(outcome.to_string())
//! }
//!
//! # async fn demo() -> flux::Result<()> {
//! let engine = flux::Engine::open(".flux/flux.db")?;
//! let order = checkout.on(&engine).start(2500).await?;
//! checkout.on(&engine).send(order.execution_id(), "payment", 2500).await?;
//! let status: Option<String> = checkout.on(&engine).get_event(order.execution_id(), "status").await?;
//! # let _ = status; Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::EventType;
use crate::run::{self, NIL, RunState};
use crate::task::{Args, Call, Handlers, NoHandler, TaskCall, TaskOptions, codec};
use crate::value::{self, Storable};
use crate::workflow::{Workflow, WorkflowDefinition};

/// The longest a waiting receive goes without looking at the store (messages sent through
/// another process are seen at the latest then; those sent through this engine at once).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The next message on `topic` for the running workflow, decoded as `T`: see the
/// [module](self). Outside a workflow it is an error.
pub fn recv<T: Storable + Send + 'static>(topic: &str) -> Recv<T> {
    Recv { topic: topic.to_string(), _type: PhantomData }
}

/// A receive of the next message on a topic, waiting as long as it takes: `.await` it, or
/// bound the wait with [`Recv::timeout`].
#[must_use = "a receive does nothing unless awaited"]
#[derive(Debug)]
pub struct Recv<T> {
    topic: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: Storable + Send + 'static> Recv<T> {
    /// Waits at most `limit`: `None` if no message came in time. The wait is not recorded, its
    /// outcome is: a replay gets the same message, or the same `None`. (A run that stops while
    /// waiting waits the whole `limit` again when replayed.)
    pub fn timeout(self, limit: Duration) -> RecvTimeout<T> {
        RecvTimeout { topic: self.topic, limit, _type: PhantomData }
    }
}

impl<T: Storable + Send + 'static> IntoFuture for Recv<T> {
    type Output = Result<T>;
    type IntoFuture = BoxFuture<'static, Result<T>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match receive::<T>(self.topic.clone(), None).await? {
                Some(value) => Ok(value),
                None => Err(Error::new(ErrorKind::InvalidState, format!("no message on `{}`", self.topic))),
            }
        })
    }
}

/// A receive bounded in time (see [`Recv::timeout`]).
#[must_use = "a receive does nothing unless awaited"]
#[derive(Debug)]
pub struct RecvTimeout<T> {
    topic: String,
    limit: Duration,
    _type: PhantomData<fn() -> T>,
}

impl<T: Storable + Send + 'static> IntoFuture for RecvTimeout<T> {
    type Output = Result<Option<T>>;
    type IntoFuture = BoxFuture<'static, Result<Option<T>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(receive::<T>(self.topic, Some(self.limit)))
    }
}

/// The name of the recorded call of a receive on `topic`.
fn recv_name(topic: &str) -> String {
    format!("recv_{topic}")
}

/// A receive: a recorded call whose output is the message (or `None` when the time ran out).
async fn receive<T: Storable + Send + 'static>(topic: String, limit: Option<Duration>) -> Result<Option<T>> {
    let Some(run) = run::current() else {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("flux::recv(\"{topic}\") is called outside a workflow"),
        ));
    };
    let name = recv_name(&topic);
    let limit_ms = limit.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let args = Args::new(2).arg(&topic).arg(&limit_ms);
    let call = TaskCall::begin(name.clone(), || (name, args));
    let mut pending = Some((run, topic));
    let attempt = move |call: &Call<'_>| {
        let taken = pending.take();
        let engine = call.engine.cloned();
        Ok(async move {
            let (Some((run, topic)), Some(engine)) = (taken, engine) else {
                return Err(Error::new(ErrorKind::InvalidState, "a receive ran twice"));
            };
            wait_for::<T>(&engine, &run, &topic, limit).await
        })
    };
    let handlers = Handlers { fallback: None::<NoHandler<Option<T>>>, rollback: None::<NoHandler<()>> };
    call.run(codec::<Option<T>>(), &TaskOptions::new(), attempt, handlers).await
}

/// How many messages of `topic` the run has received: its receives recorded with a message.
fn received(run: &RunState, topic: &str) -> u64 {
    let name = recv_name(topic);
    let delivered = run
        .events()
        .iter()
        .filter(|e| e.kind() == EventType::TaskCompleted && e.name() == name && e.value_bytes() != NIL)
        .count();
    delivered as u64
}

/// Waits for the next message of `topic` for the run's execution, at most `limit`.
async fn wait_for<T: Storable>(
    engine: &Engine,
    run: &RunState,
    topic: &str,
    limit: Option<Duration>,
) -> Result<Option<T>> {
    let index = received(run, topic);
    let id: Arc<str> = run.execution_id.clone();
    let deadline = limit.map(|limit| tokio::time::Instant::now() + limit);
    let mut pause = Duration::from_millis(10);
    loop {
        // Listening before looking: a message sent in between is not missed.
        let sent = engine.messages_sent().notified();
        let mut sent = std::pin::pin!(sent);
        sent.as_mut().enable();
        let (store, execution, wanted) = (engine.store().clone(), id.clone(), topic.to_string());
        let found = off_thread(move || store.message_get(&execution, &wanted, index)).await?;
        if let Some(bytes) = found {
            let value = value::from_msgpack::<T>(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!(
                        "the message on `{topic}` for execution `{id}` does not fit `{}`",
                        std::any::type_name::<T>()
                    ),
                )
                .with_cause(e.message().to_string())
            })?;
            return Ok(Some(value));
        }
        let wait = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                pause.min(left)
            }
            None => pause,
        };
        tokio::select! {
            () = sent => {}
            () = tokio::time::sleep(wait) => {}
        }
        pause = (pause * 2).min(LOOK_AGAIN);
    }
}

async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(Error::new(ErrorKind::Storage, format!("a message's storage call failed: {e}"))),
    }
}

/// Records `value` under `key` for the running workflow: callers read the latest value with
/// `workflow.get_event(id, key)`. A recorded call (`set_event_{key}`): a replay sets nothing
/// again. Outside a workflow it is an error.
pub fn set_event<T: Storable + Send + Clone + 'static>(key: &str, value: T) -> impl Future<Output = Result<()>> + Send {
    let name = format!("set_event_{key}");
    let key = key.to_string();
    async move {
        if run::current().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("flux::set_event(\"{key}\", ..) is called outside a workflow"),
            ));
        }
        let args = Args::new(1).arg(&key);
        let call = TaskCall::begin(name.clone(), || (name, args));
        let mut value = Some(value);
        let attempt = move |_: &Call<'_>| {
            let value = value.take().ok_or_else(|| Error::new(ErrorKind::InvalidState, "an event was set twice"));
            Ok(std::future::ready(value))
        };
        let handlers = Handlers { fallback: None::<NoHandler<T>>, rollback: None::<NoHandler<()>> };
        call.run(codec::<T>(), &TaskOptions::new(), attempt, handlers).await.map(drop)
    }
}

impl<W: WorkflowDefinition> Workflow<W> {
    /// Sends `value` on `topic` to execution `id` of this workflow: kept until the execution
    /// receives it ([`recv`]), also if it is not waiting yet. Refused for an execution that
    /// is not stored ([`ErrorKind::NotFound`]), of another workflow, or finished
    /// ([`ErrorKind::InvalidState`]).
    pub async fn send<V: serde::Serialize>(&self, id: &str, topic: &str, value: V) -> Result<()> {
        self.send_message(id, topic, None, &value).await.map(drop)
    }

    /// [`Workflow::send`] with an idempotency key: a message of the same key sent to the same
    /// execution and topic before is not kept again (it is delivered once); `false` then.
    pub async fn send_keyed<V: serde::Serialize>(&self, id: &str, topic: &str, key: &str, value: V) -> Result<bool> {
        self.send_message(id, topic, Some(key), &value).await
    }

    async fn send_message<V: serde::Serialize>(
        &self,
        id: &str,
        topic: &str,
        key: Option<&str>,
        value: &V,
    ) -> Result<bool> {
        let engine = self.engine()?;
        let bytes = value::to_msgpack(value).map_err(|e| {
            Error::new(ErrorKind::Encode, format!("the message on `{topic}` cannot be encoded"))
                .with_cause(e.message().to_string())
        })?;
        send_encoded(&engine, W::NAME, id, topic, key, bytes).await
    }

    /// The latest value execution `id` set under `key` ([`set_event`]), or `None` if it set none.
    pub async fn get_event<T: Storable>(&self, id: &str, key: &str) -> Result<Option<T>> {
        let engine = self.engine()?;
        let Some(bytes) = event_value(&engine, W::NAME, id, key).await? else { return Ok(None) };
        value::from_msgpack(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!("event `{key}` of execution `{id}` does not fit `{}`", std::any::type_name::<T>()),
            )
            .with_cause(e.message().to_string())
        })
    }
}

/// Sends an encoded message to execution `id` of workflow `workflow` (see [`Workflow::send`]);
/// `false` for a duplicate of its key.
pub(crate) async fn send_encoded(
    engine: &Engine,
    workflow: &str,
    id: &str,
    topic: &str,
    key: Option<&str>,
    bytes: Vec<u8>,
) -> Result<bool> {
    if topic.is_empty() {
        return Err(Error::new(ErrorKind::InvalidInput, "a message's topic cannot be empty"));
    }
    let stored = engine.load(id).await?.ok_or_else(|| engine.not_found(id))?;
    crate::driver::check_workflow(&stored, workflow)?;
    if stored.state.is_terminal() {
        return Err(Error::new(
            ErrorKind::InvalidState,
            format!("execution `{id}` has finished ({}): no one will receive a message", stored.state),
        ));
    }
    let (store, execution, topic_owned, key_owned) =
        (engine.store().clone(), id.to_string(), topic.to_string(), key.map(String::from));
    let kept = off_thread(move || store.message_put(&execution, &topic_owned, key_owned.as_deref(), &bytes)).await?;
    engine.messages_sent().notify_waiters();
    tracing::debug!(execution_id = %id, topic, kept, "message sent");
    Ok(kept)
}

/// The encoded latest value execution `id` (of workflow `workflow`) set under `key`.
pub(crate) async fn event_value(engine: &Engine, workflow: &str, id: &str, key: &str) -> Result<Option<Vec<u8>>> {
    let stored = engine.load(id).await?.ok_or_else(|| engine.not_found(id))?;
    crate::driver::check_workflow(&stored, workflow)?;
    let name = format!("set_event_{key}");
    let found = stored.events.iter().rev().find(|e| e.kind() == EventType::TaskCompleted && e.name() == name);
    Ok(found.map(|e| e.value_bytes().to_vec()))
}
