//! Shared state: handles (a database pool, an HTTP client, a configuration) given to an engine
//! once, and received by every task that asks for one with a [`State<T>`] parameter.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A value of type `T` an engine holds for its tasks: a task receives it by taking a parameter
/// of type `State<T>`, which flux fills in (it is not an argument of the call and not part of
/// the task's id). Give it with [`Engine::with_state`](crate::Engine::with_state),
/// [`EngineBuilder::state`](crate::EngineBuilder::state), or the server's or worker's `state`;
/// a task called outside a workflow gets the default engine's. A task whose engine holds no
/// value of its type fails, naming the type, and is not retried.
///
/// Cloning is cheap: every clone shares the one value.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use flux::State;
///
/// /// A stand-in for a connection pool.
/// #[derive(Default)]
/// struct Pool {
///     queries: AtomicU64,
/// }
///
/// #[flux::task]
/// async fn count_orders(customer: String, pool: State<Pool>) -> u64 {
///     pool.queries.fetch_add(1, Ordering::SeqCst);
///     customer.len() as u64
/// }
///
/// # async fn demo() -> flux::Result<()> {
/// let engine = flux::Engine::in_memory().with_state(Pool::default());
/// assert_eq!(engine.state::<Pool>().map(|p| p.queries.load(Ordering::SeqCst)), Some(0));
/// # Ok(()) }
/// ```
pub struct State<T: ?Sized>(Arc<T>);

impl<T: ?Sized> State<T> {
    /// The shared value, as the `Arc` the engine holds.
    pub fn arc(&self) -> &Arc<T> {
        &self.0
    }
}

impl<T> State<T> {
    /// A state holding `value` (for calling a task directly in a test, say).
    pub fn new(value: T) -> Self {
        State(Arc::new(value))
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&&*self.0).finish()
    }
}

/// The states of an engine, one per type.
#[derive(Clone, Default)]
pub(crate) struct States(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl States {
    /// Holds `value` as the state of its type (replacing one of that type).
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// Takes every state of `other` (replacing those of the same types).
    pub(crate) fn extend(&mut self, other: &States) {
        self.0.extend(other.0.iter().map(|(k, v)| (*k, v.clone())));
    }

    /// The state of type `T`, if there is one.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        let value = self.0.get(&TypeId::of::<T>())?.clone();
        value.downcast::<T>().ok().map(State)
    }
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} states", self.0.len())
    }
}
