//! A [`Store`] on PostgreSQL (feature `postgres`), through tokio-postgres.
//!
//! The store runs its connections on a Tokio runtime of its own, on one thread: the [`Store`]
//! trait's reads are synchronous (the engine calls them on its blocking pool), and this way
//! they work from any thread without entering the caller's runtime. Writes go to one writer
//! connection, which commits every batch queued while it was busy in one transaction (group
//! commit; a refused batch is left out of it, the others committed); deferred writes (a task's
//! start) wait up to [`HOLD_WINDOW`](crate::store::HOLD_WINDOW) for the write that follows
//! them. The rules of [`Store`] are checked against rows read `FOR UPDATE` in that
//! transaction, so two flux servers writing to one execution are serialized by the database.
//! Each commit also
//! tells the other processes on the schema which executions it changed (`NOTIFY`, delivered
//! only if it commits), which they receive through [`Store::changes`].
//!
//! [`Durability`] maps to `synchronous_commit`: `default` and `batched` commit with it `off`
//! (the commit is in PostgreSQL's memory when acknowledged: it survives the flux process being
//! killed, and a crash of the database server loses at most its last few hundred milliseconds
//! of commits, never a part of one), `full` with it `on` (acknowledged once the database server
//! flushed its write-ahead log: it survives the server's power loss too).

mod admit;
mod notice;
mod pipeline;
mod read;
mod schema;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_postgres::{Client, Config, NoTls};

use super::{
    AdmissionLimit, Admit, Change, Commit, Durability, ExecutionFilter, ExecutionPage, ExecutionRow, Store,
    StoredExecution, StoredSchedule, Write,
};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ExecutionState;

/// The schema flux's tables live in unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "flux";

/// How many connections serve reads.
const READERS: usize = 4;

/// A [`Store`] on a PostgreSQL database, which several flux servers may share.
///
/// ```no_run
/// use flux::store::{Durability, PostgresStore};
/// let store = PostgresStore::open("postgres://flux@db.internal/flux", Durability::Default)?;
/// let engine = flux::Engine::with_store(store);
/// # Ok::<(), flux::Error>(())
/// ```
pub struct PostgresStore {
    shown: String,
    schema: String,
    durability: Durability,
    runtime: tokio::runtime::Handle,
    readers: Vec<Arc<read::Reader>>,
    next_reader: AtomicUsize,
    writer: mpsc::UnboundedSender<write::Job>,
    /// Where the changes of other stores are told, and this store's origin.
    channel: notice::Channel,
    config: Config,
    /// The changes other stores commit, once someone asked for them (see [`Store::changes`]).
    changes: std::sync::OnceLock<tokio::sync::broadcast::Sender<Change>>,
    /// The connection admissions run their transactions on ([`Store::admit`]).
    admissions: admit::Slot,
    /// Stops the store's runtime (and so its connections) when the store goes.
    _stop: StopOnDrop,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.shown).field("schema", &self.schema).finish()
    }
}

struct StopOnDrop(Option<std::sync::mpsc::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// `name` as a quoted SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The error of a failed database call: `context`, the database, and what PostgreSQL said.
pub(super) fn describe_error(shown: &str, context: &str, e: &tokio_postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    };
    Error::new(ErrorKind::Storage, format!("{context} {shown}: {detail}"))
}

/// The URL `url` without its password, for messages.
fn shown(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("`postgres://{at}{host}:{port}/{db}`")
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`), brings
    /// the schema `flux` up to date (creating it if needed), and starts the writer.
    ///
    /// Fails with [`ErrorKind::Config`] for a URL that is not one, [`ErrorKind::Storage`] naming
    /// the database when it cannot be reached or refuses the login, and
    /// [`ErrorKind::SchemaTooNew`] when a newer flux wrote the schema (left untouched then).
    pub fn open(url: &str, durability: Durability) -> Result<PostgresStore> {
        PostgresStore::open_in_schema(url, DEFAULT_SCHEMA, durability)
    }

    /// [`open`](PostgresStore::open), with the tables in the PostgreSQL schema `schema`.
    pub fn open_in_schema(url: &str, schema: &str, durability: Durability) -> Result<PostgresStore> {
        let config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
            Error::new(
                ErrorKind::Config,
                format!("invalid PostgreSQL URL (expected postgres://user:password@host:port/database): {e}"),
            )
        })?;
        if schema.is_empty() {
            return Err(Error::new(ErrorKind::Config, "the PostgreSQL schema name is empty"));
        }
        let shown = shown(&config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Storage, format!("cannot start the PostgreSQL store's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(Vec<Arc<read::Reader>>, Client)>>();
        let (cfg, sch, sh) = (config.clone(), schema.to_string(), shown.clone());
        std::thread::Builder::new()
            .name("flux-postgres".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let opened = open_connections(&cfg, &sch, &sh, durability).await;
                    let _ = ready_tx.send(opened);
                    // Serve until the store goes: `stopped` is polled off the runtime's thread.
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    std::thread::spawn(move || {
                        let _ = stopped.recv();
                        let _ = tx.send(());
                    });
                    let _ = rx.await;
                });
            })
            .map_err(|e| Error::new(ErrorKind::Storage, format!("cannot start the PostgreSQL store's thread: {e}")))?;
        let (readers, writer_client) = ready_rx
            .recv()
            .map_err(|_| Error::new(ErrorKind::Storage, format!("the PostgreSQL store of {shown} stopped")))??;
        let (writer, jobs) = mpsc::unbounded_channel();
        let channel = notice::Channel::new(schema, uuid::Uuid::new_v4().simple().to_string());
        handle.spawn(write::run(writer_client, jobs, shown.clone(), channel.clone()));
        Ok(PostgresStore {
            shown,
            schema: schema.to_string(),
            durability,
            runtime: handle,
            readers,
            next_reader: AtomicUsize::new(0),
            writer,
            channel,
            config,
            changes: std::sync::OnceLock::new(),
            admissions: admit::Slot::default(),
            _stop: StopOnDrop(Some(stop)),
        })
    }

    /// The PostgreSQL schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs `f` on a reading connection, on the store's runtime, and waits for its answer.
    fn read<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<read::Reader>) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let fut = f(self.readers[i].clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Queues `writes` for the writer.
    fn queue(&self, writes: Vec<Write>, deferred: bool) -> Commit {
        let (sender, commit) = Commit::pending();
        if let Err(mpsc::error::SendError(job)) =
            self.writer.send(write::Job { writes, reply: sender, deferred, published: None })
        {
            job.reply.send(Err(self.stopped()));
        }
        commit
    }

    fn stopped(&self) -> Error {
        Error::new(ErrorKind::Storage, format!("the PostgreSQL store of {} stopped", self.shown))
    }
}

/// Connects the readers and the writer, after migrating the schema.
async fn open_connections(
    config: &Config,
    schema: &str,
    shown: &str,
    durability: Durability,
) -> Result<(Vec<Arc<read::Reader>>, Client)> {
    let mut first = connect(config, schema, shown).await?;
    schema::migrate(&mut first, schema, shown).await?;
    let mut readers = vec![Arc::new(read::Reader::new(first, shown).await?)];
    for _ in 1..READERS {
        readers.push(Arc::new(read::Reader::new(connect(config, schema, shown).await?, shown).await?));
    }
    let writer = connect(config, schema, shown).await?;
    let synchronous = if durability == Durability::Full { "on" } else { "off" };
    writer
        .batch_execute(&format!("SET synchronous_commit TO {synchronous}"))
        .await
        .map_err(|e| describe_error(shown, "cannot set up the writer of", &e))?;
    Ok((readers, writer))
}

/// One connection, its driver spawned on the current (the store's) runtime, with the schema
/// on its search path.
async fn connect(config: &Config, schema: &str, shown: &str) -> Result<Client> {
    let (client, connection) =
        config.connect(NoTls).await.map_err(|e| describe_error(shown, "cannot connect to PostgreSQL at", &e))?;
    tokio::spawn(async move {
        // Its end (an error included) shows as failures of the client's calls.
        let _ = connection.await;
    });
    client
        .batch_execute(&format!("SET search_path TO {}", quote(schema)))
        .await
        .map_err(|e| describe_error(shown, "cannot set up a connection to", &e))?;
    Ok(client)
}

impl Store for PostgresStore {
    fn write(&self, writes: Vec<Write>) -> Commit {
        self.queue(writes, false)
    }

    fn write_deferred(&self, writes: Vec<Write>) -> Commit {
        self.queue(writes, true)
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn load(&self, execution_id: &str) -> Result<Option<StoredExecution>> {
        let id = execution_id.to_string();
        self.read(move |r| async move { r.load(&id).await })
    }

    fn list(&self, states: &[ExecutionState]) -> Result<Vec<ExecutionRow>> {
        let states = states.to_vec();
        self.read(move |r| async move { r.list(&states).await })
    }

    fn list_executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage> {
        filter.check()?;
        let filter = filter.clone();
        self.read(move |r| async move { r.list_executions(&filter).await })
    }

    fn state(&self, execution_id: &str) -> Result<Option<ExecutionState>> {
        let id = execution_id.to_string();
        self.read(move |r| async move { r.state(&id).await })
    }

    fn describe(&self) -> String {
        format!("postgres:{}", self.shown.trim_matches('`'))
    }

    fn cache_get(&self, key: &str, now: SystemTime) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.read(move |r| async move { r.cache_get(&key, now).await })
    }

    fn cache_clear(&self, task_name: Option<&str>) -> Result<u64> {
        let name = task_name.map(String::from);
        self.read(move |r| async move { r.cache_clear(name.as_deref()).await })
    }

    fn secret_put(&self, name: &str, nonce: &[u8], ciphertext: &[u8]) -> Result<()> {
        let (name, nonce, ciphertext) = (name.to_string(), nonce.to_vec(), ciphertext.to_vec());
        self.read(move |r| async move { r.secret_put(&name, &nonce, &ciphertext).await })
    }

    fn secret_get(&self, name: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let name = name.to_string();
        self.read(move |r| async move { r.secret_get(&name).await })
    }

    fn secret_list(&self) -> Result<Vec<String>> {
        self.read(move |r| async move { r.secret_list().await })
    }

    fn secret_remove(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.read(move |r| async move { r.secret_remove(&name).await })
    }

    /// Sends the message with `pg_notify` in the writer's next commit, without waiting: other
    /// stores get it before they hear of the writes queued after it.
    fn publish(&self, execution_id: &str, message: &[u8]) {
        let Some(payload) = self.channel.published(execution_id, message) else { return };
        let (reply, _unwatched) = Commit::pending();
        let job = write::Job { writes: Vec::new(), reply, deferred: true, published: Some(payload) };
        let _ = self.writer.send(job);
    }

    fn catalog_put(&self, name: &str, version: u32) -> Result<()> {
        let name = name.to_string();
        self.read(move |r| async move { r.catalog_put(&name, version).await })
    }

    fn catalog_list(&self) -> Result<Vec<(String, u32)>> {
        self.read(move |r| async move { r.catalog_list().await })
    }

    fn schedule_put(&self, schedule: &StoredSchedule, expected: Option<u64>) -> Result<u64> {
        let schedule = schedule.clone();
        self.read(move |r| async move { r.schedule_put(&schedule, expected).await })
    }

    fn schedule_get(&self, name: &str) -> Result<Option<StoredSchedule>> {
        let name = name.to_string();
        self.read(move |r| async move { r.schedule_get(&name).await })
    }

    fn schedule_list(&self) -> Result<Vec<StoredSchedule>> {
        self.read(move |r| async move { r.schedule_list().await })
    }

    fn schedule_delete(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.read(move |r| async move { r.schedule_delete(&name).await })
    }

    fn message_put(&self, execution_id: &str, topic: &str, key: Option<&str>, value: &[u8]) -> Result<bool> {
        let (id, topic, key, value) =
            (execution_id.to_string(), topic.to_string(), key.map(String::from), value.to_vec());
        self.read(move |r| async move { r.message_put(&id, &topic, key.as_deref(), &value).await })
    }

    fn message_get(&self, execution_id: &str, topic: &str, index: u64) -> Result<Option<Vec<u8>>> {
        let (id, topic) = (execution_id.to_string(), topic.to_string());
        self.read(move |r| async move { r.message_get(&id, &topic, index).await })
    }

    fn admit(&self, execution_id: &str, limits: &[AdmissionLimit], now: SystemTime) -> Result<Admit> {
        let (slot, shown, id, limits) =
            (self.admissions.clone(), self.shown.clone(), execution_id.to_string(), limits.to_vec());
        let (config, schema) = (self.config.clone(), self.schema.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let connect = connect(&config, &schema, &shown);
            let _ = tx.send(admit::admit(&slot, connect, &shown, &id, &limits, now).await);
        });
        rx.recv().unwrap_or_else(|_| Err(self.stopped()))
    }

    /// The changes of the other stores on this schema, through `LISTEN` on a connection of its
    /// own, opened on the first call (and again whenever it drops).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        let tx = self.changes.get_or_init(|| {
            let (tx, _) = tokio::sync::broadcast::channel(notice::BACKLOG);
            let listening = notice::listen(self.config.clone(), self.channel.clone(), tx.clone(), self.shown.clone());
            self.runtime.spawn(listening);
            tx
        });
        Some(tx.subscribe())
    }
}
