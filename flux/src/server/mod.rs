//! Server mode (feature `server`): the HTTP/SSE API of docs/design.md §11 and the dispatcher that
//! hands executions to remote workers.
//!
//! ```no_run
//! use flux::prelude::*;
//!
//! #[flux::workflow]
//! async fn hello_world(ctx: ExecutionContext<String>) -> String {
//!     format!("Hello, {}", ctx.input())
//! }
//!
//! # async fn demo() -> flux::Result<()> {
//! flux::server::Server::new().register(hello_world).serve("127.0.0.1:8000").await
//! # }
//! ```

// Bottom up: each module uses only those above it.
mod auth;
mod http;
mod hub;
mod openapi;
mod state;
mod respond;
mod stream;
mod trace;
mod dispatch;
mod queues;
mod metrics;
mod cluster;
mod api;
mod roster;
mod schedules;
mod workers;
mod checkpoints;
mod console;
#[cfg(feature = "mcp")]
mod mount;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::engine::{Engine, States};
use crate::erased::{ErasedWorkflow, erase};
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::WorkflowDefinition;

use self::hub::Hub;
use self::state::{CatalogEntry, Claims, Pending, Shared};

/// A flux server, being configured: workflows it runs in process, tokens, limits.
///
/// Clients run workflows over HTTP (docs/design.md §11). Workflows registered here run in the
/// server's process; any other workflow in the catalog was advertised by a connected
/// [`Worker`](crate::worker::Worker), and its executions are handed to such a worker.
pub struct Server {
    config: Option<Config>,
    engine: Option<Engine>,
    local: Vec<Arc<dyn ErasedWorkflow>>,
    bootstrap_token: Option<String>,
    admin_token: Option<String>,
    lease_timeout: Option<Duration>,
    states: States,
    /// Whether to serve MCP at `/mcp` ([`Server::mcp`]).
    mcp: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("engine", &self.engine)
            .field("workflows", &self.local.iter().map(|w| w.name()).collect::<Vec<_>>())
            .field("lease_timeout", &self.lease_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// A server configured by `flux.toml` and `FLUX_*` variables ([`Config::load`]), read when it
    /// starts.
    pub fn new() -> Server {
        Server {
            config: None,
            engine: None,
            local: Vec::new(),
            bootstrap_token: None,
            admin_token: None,
            lease_timeout: None,
            states: States::default(),
            mcp: false,
        }
    }

    /// A server configured by `config`.
    pub fn from_config(config: Config) -> Server {
        Server { config: Some(config), ..Server::new() }
    }

    /// Stores executions in `engine` instead of the configured database.
    pub fn engine(mut self, engine: &Engine) -> Server {
        self.engine = Some(engine.clone());
        self
    }

    /// Runs `workflow` in this process: it is in the catalog and its executions never wait for a
    /// worker.
    pub fn register<W: WorkflowDefinition>(mut self, workflow: W) -> Server {
        self.local.retain(|w| w.name() != W::NAME);
        self.local.push(erase(workflow));
        self
    }

    /// The token workers register with (instead of the configured or a generated one).
    pub fn bootstrap_token(mut self, token: impl Into<String>) -> Server {
        self.bootstrap_token = Some(token.into());
        self
    }

    /// The token that guards `/admin` (instead of the configured or a generated one).
    pub fn admin_token(mut self, token: impl Into<String>) -> Server {
        self.admin_token = Some(token.into());
        self
    }

    /// How long a worker keeps its claims without being heard from.
    pub fn lease_timeout(mut self, timeout: Duration) -> Server {
        self.lease_timeout = Some(timeout);
        self
    }

    /// Gives the tasks this server runs in its own process `value`, received as a
    /// [`State<T>`](crate::State) parameter; it is added to the server's engine when it starts
    /// (see [`Engine::with_state`]). Workers are given their own with
    /// [`Worker::state`](crate::worker::Worker::state).
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Server {
        self.states.insert(value);
        self
    }

    /// Also serves MCP at `/mcp` (feature `mcp`): the tools of
    /// [`McpServer`](crate::mcp::server::McpServer) over this server's own API, for AI
    /// assistants, as streamable HTTP (stateless), behind the admin token (`Authorization:
    /// Bearer <admin token>`). The MCP server's name is `[flux.mcp] name` (default `Flux`).
    ///
    /// Its tools call this server back over HTTP at the address it listens on (the loopback
    /// address when it listens on every interface), so it is mounted by [`Server::bind`] and
    /// [`Server::serve`]; [`Server::into_router`], which listens nowhere, leaves it out: mount
    /// [`McpServer::router`](crate::mcp::server::McpServer::router) next to it yourself.
    ///
    /// ```no_run
    /// # async fn demo() -> flux::Result<()> {
    /// let server = flux::server::Server::new().admin_token("s3cret").mcp().bind("127.0.0.1:8000").await?;
    /// // Assistants connect to http://127.0.0.1:8000/mcp with `Authorization: Bearer s3cret`.
    /// # server.shutdown().await }
    /// ```
    #[cfg(feature = "mcp")]
    pub fn mcp(mut self) -> Server {
        self.mcp = true;
        self
    }

    /// Starts serving on `addr` (port 0 picks a free port) and returns at once.
    ///
    /// The listener keeps to the limits of [`Config`]: at most `max_connections` connections
    /// (one more is answered 503), request headers of at most `max_header_bytes` (larger get
    /// 431) sent within `request_timeout` (a slower or idle connection is closed), and bodies
    /// of at most `max_body_bytes` (413, before reading when `Content-Length` says so) that
    /// arrive within `request_timeout` (408).
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> Result<RunningServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot listen: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot read the listening address: {e}")))?;
        let mcp = self.mcp;
        let parts = self.start().await?;
        #[cfg_attr(not(feature = "mcp"), allow(unused_mut))]
        let mut router = router(parts.shared.clone());
        #[cfg(feature = "mcp")]
        if mcp {
            let name = parts.mcp_name.clone();
            let cancel = tokio_util::sync::CancellationToken::new();
            let mounted = mount::routes(&parts.shared, local_addr, &parts.admin_token, &name, cancel.clone())?;
            router = router.merge(mounted.with_state(parts.shared.clone()));
            let mut shutdown = parts.shared.shutdown.subscribe();
            tokio::spawn(async move {
                let _ = shutdown.wait_for(|stopped| *stopped).await;
                cancel.cancel();
            });
        }
        #[cfg(not(feature = "mcp"))]
        let _ = mcp;
        let serve = http::serve(listener, router, parts.shared.http_limits, parts.shared.shutdown.subscribe());
        let server = tokio::spawn(serve);
        tracing::info!(address = %local_addr, "flux server listening");
        let Parts { shared, bootstrap_token, admin_token, generated_bootstrap, generated_admin, dispatcher, .. } =
            parts;
        Ok(RunningServer {
            local_addr,
            shared,
            bootstrap_token,
            admin_token,
            generated_bootstrap,
            generated_admin,
            server,
            dispatcher,
        })
    }

    /// Sets the server up without listening anywhere and returns its routes as an
    /// [`axum::Router`] (axum 0.8), with the tokens they expect.
    ///
    /// This is for serving the API on a listener or inside an application of your own (nested
    /// under a prefix, behind your own middleware), and for sending it requests in process, with
    /// no socket: `tower::ServiceExt::oneshot` on [`ServerRouter::router`], as tests and the fuzz
    /// targets in `fuzz/` do. Everything else is as with [`Server::bind`]: the configuration is
    /// read, claims found in storage are restored, and the dispatcher that offers executions to
    /// workers runs on the current Tokio runtime until the [`ServerRouter`] is shut down or
    /// dropped.
    ///
    /// The routes read request bodies within `max_body_bytes` and `request_timeout` themselves;
    /// the limits on connections and headers (`max_connections`, `max_header_bytes`, the time
    /// to send headers) belong to the listener, so they are yours to set when you serve them.
    ///
    /// ```
    /// # async fn demo() -> flux::Result<()> {
    /// let engine = flux::Engine::in_memory();
    /// let server = flux::server::Server::from_config(flux::Config::default())
    ///     .engine(&engine)
    ///     .admin_token("admin")
    ///     .into_router()
    ///     .await?;
    /// let app: axum::Router = server.router();
    /// assert_eq!(server.admin_token(), "admin");
    /// # drop(app);
    /// server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_router(self) -> Result<ServerRouter> {
        let parts = self.start().await?;
        Ok(ServerRouter { router: router(parts.shared.clone()), parts })
    }

    /// Reads the configuration, opens the engine, restores claims and starts the dispatcher.
    async fn start(self) -> Result<Parts> {
        let config = match self.config {
            Some(c) => c,
            None => Config::load()?,
        };
        let engine = match self.engine {
            Some(e) => e,
            None => Engine::from_config(&config)?,
        };
        engine.add_states(&self.states);
        // `/metrics` reads what the engine counts of its task attempts from now on.
        engine.metrics().enable();
        let (bootstrap_token, generated_bootstrap) =
            token_or_generated(self.bootstrap_token.or(config.workers.bootstrap_token.clone()))?;
        let (admin_token, generated_admin) = token_or_generated(self.admin_token.or(config.admin_token.clone()))?;
        let (shutdown, _) = watch::channel(false);
        // Other servers may share the store: their changes are followed (see `cluster`).
        let changes = engine.store().changes();
        let shared = Arc::new(Shared {
            engine,
            local: self.local.iter().map(|w| (w.name(), w.clone())).collect(),
            catalog: Mutex::new(
                self.local.iter().map(|w| (w.name().to_string(), CatalogEntry::in_process(w.version()))).collect(),
            ),
            workers: Mutex::new(HashMap::new()),
            claims: Mutex::new(Claims::default()),
            claim_lock: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Pending::default()),
            hub: Hub::default(),
            bootstrap_token: auth::Token::new(&bootstrap_token),
            admin_token: auth::Token::new(&admin_token),
            console_key: auth::SessionKey::new(&admin_token),
            lease_timeout: self.lease_timeout.unwrap_or(config.workers.lease_timeout),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            http_limits: http::Limits {
                max_header_bytes: config.max_header_bytes,
                max_connections: config.max_connections,
                request_timeout: config.request_timeout,
            },
            wake: Notify::new(),
            traces: Mutex::default(),
            checkpoints: Default::default(),
            shared_store: changes.is_some(),
            shutdown,
        });
        if shared.shared_store {
            // Before anything runs: a server with another key than the others' would fail the
            // executions it continues that need their secrets.
            let vault = shared.engine.vault().clone();
            tokio::task::spawn_blocking(move || crate::secrets::check_shared_key(&vault))
                .await
                .map_err(|e| Error::new(ErrorKind::Storage, format!("checking the encryption key failed: {e}")))??;
        }
        dispatch::restore(&shared).await?;
        // What the server ran in its own process and left RUNNING when it died (or a peer on the
        // same database did) is continued once its lease has run out: now, and once per lease.
        for workflow in &self.local {
            shared.engine.register_recoverable(workflow.clone());
        }
        shared.engine.recover_in_background(shared.shutdown.subscribe());
        if let Some(changes) = changes {
            cluster::learn_catalog(&shared).await;
            tokio::spawn(cluster::follow(shared.clone(), changes));
        }
        let dispatcher = tokio::spawn(dispatch::dispatcher(shared.clone()));
        // Schedules fire in every server: their executions' ids keep each fire to one start.
        schedules::start(&shared);
        let mcp_name = config.mcp.name.clone();
        Ok(Parts { shared, bootstrap_token, admin_token, generated_bootstrap, generated_admin, dispatcher, mcp_name })
    }

    /// Serves on `addr` until Ctrl-C. A generated token is printed once, on standard output.
    pub async fn serve(self, addr: impl tokio::net::ToSocketAddrs) -> Result<()> {
        use std::io::Write as _;
        let running = self.bind(addr).await?;
        let (bootstrap, admin) = running.generated_tokens();
        let mut out = std::io::stdout().lock();
        // The operator needs the generated tokens once; they are never logged.
        let _ = writeln!(out, "flux server listening on {}", running.url());
        if let Some(token) = bootstrap {
            let _ = writeln!(out, "bootstrap token: {token}");
        }
        if let Some(token) = admin {
            let _ = writeln!(out, "admin token: {token}");
        }
        let _ = out.flush();
        drop(out);
        let _ = tokio::signal::ctrl_c().await;
        running.shutdown().await
    }
}

/// Every route of the server: the client and admin endpoints, the worker endpoints and the
/// console, with request bodies read within the limits of `[flux]` before any handler sees them.
fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.max_body_bytes;
    // The console's pages call the same API under `/ui/api`, where only a signed-in console is
    // answered.
    let api = || api::routes().merge(roster::routes()).merge(schedules::routes()).merge(metrics::routes());
    api()
        .merge(workers::routes())
        .merge(checkpoints::routes())
        .merge(console::routes(&shared, api()))
        .fallback(respond::no_route)
        .method_not_allowed_fallback(respond::wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(trace::continue_request))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), respond::read_body))
        .with_state(shared)
}

/// The configured token, or a new random one (and whether it was generated).
fn token_or_generated(token: Option<String>) -> Result<(String, bool)> {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => Ok((t, false)),
        None => Ok((auth::random_token()?, true)),
    }
}

/// A server set up and dispatching: what [`Server::bind`] and [`Server::into_router`] share.
struct Parts {
    shared: Arc<Shared>,
    bootstrap_token: String,
    admin_token: String,
    generated_bootstrap: bool,
    generated_admin: bool,
    dispatcher: tokio::task::JoinHandle<()>,
    /// The name of the MCP endpoint (`[flux.mcp] name`).
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    mcp_name: String,
}

/// A server that is set up but does not listen: its routes, for a listener of your own or for
/// requests sent in process. Made by [`Server::into_router`].
///
/// Dropping it (or [`ServerRouter::shutdown`]) stops the dispatcher and ends open streams;
/// routers obtained from it still answer requests, but runs in `sync` mode no longer wait
/// (503) and remote workers are no longer offered executions.
pub struct ServerRouter {
    router: axum::Router,
    parts: Parts,
}

impl std::fmt::Debug for ServerRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRouter").finish_non_exhaustive()
    }
}

impl ServerRouter {
    /// The routes of the API (docs/design.md §11), sharing this server's state: clone it freely.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The bootstrap token workers register with.
    pub fn bootstrap_token(&self) -> &str {
        &self.parts.bootstrap_token
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.parts.admin_token
    }

    /// The tokens this server generated because none was configured: `(bootstrap, admin)`, each
    /// `Some` only if generated.
    pub fn generated_tokens(&self) -> (Option<&str>, Option<&str>) {
        let parts = &self.parts;
        (
            parts.generated_bootstrap.then_some(parts.bootstrap_token.as_str()),
            parts.generated_admin.then_some(parts.admin_token.as_str()),
        )
    }

    /// The engine it stores executions in.
    pub fn engine(&self) -> &Engine {
        &self.parts.shared.engine
    }

    /// Stops the dispatcher and ends open streams, and waits for the dispatcher to stop.
    pub async fn shutdown(mut self) {
        self.parts.shared.shutdown.send_replace(true);
        let _ = (&mut self.parts.dispatcher).await;
    }
}

impl Drop for ServerRouter {
    fn drop(&mut self) {
        self.parts.shared.shutdown.send_replace(true);
    }
}

/// A server that is listening.
pub struct RunningServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    bootstrap_token: String,
    admin_token: String,
    generated_bootstrap: bool,
    generated_admin: bool,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its base URL, `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// The bootstrap token workers register with.
    pub fn bootstrap_token(&self) -> &str {
        &self.bootstrap_token
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The tokens this server generated because none was configured: `(bootstrap, admin)`, each
    /// `Some` only if generated. Show them to the operator once.
    pub fn generated_tokens(&self) -> (Option<&str>, Option<&str>) {
        (
            self.generated_bootstrap.then_some(self.bootstrap_token.as_str()),
            self.generated_admin.then_some(self.admin_token.as_str()),
        )
    }

    /// The engine it stores executions in.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Stops accepting requests, ends open streams and waits for the server to stop.
    pub async fn shutdown(self) -> Result<()> {
        self.shared.shutdown.send_replace(true);
        self.wait().await
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] from elsewhere, or an
    /// error).
    pub async fn wait(self) -> Result<()> {
        let served = self.server.await;
        self.shared.shutdown.send_replace(true);
        let _ = self.dispatcher.await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::new(ErrorKind::Storage, format!("the server stopped: {e}"))),
            Err(e) => Err(Error::new(ErrorKind::Panic, format!("the server task failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::prelude::*;

    #[flux::workflow]
    async fn shout(ctx: ExecutionContext<String>) -> String {
        ctx.input().to_uppercase()
    }

    /// The router of `into_router`, nested under a prefix and served on a listener of the test's
    /// own, answers like a bound server: runs, 4xx for bad bodies, admin behind its token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn into_router_serves_on_a_listener_of_ones_own() {
        let engine = Engine::in_memory();
        let server = Server::from_config(Config::default())
            .engine(&engine)
            .admin_token("admin-secret")
            .register(shout)
            .into_router()
            .await
            .unwrap();
        assert_eq!(server.admin_token(), "admin-secret");
        let (generated_bootstrap, generated_admin) = server.generated_tokens();
        assert_eq!(generated_bootstrap, Some(server.bootstrap_token()));
        assert_eq!(generated_admin, None);

        let app = axum::Router::new().nest("/flux", server.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/flux", listener.local_addr().unwrap());
        let serving = tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();

        let mut catalog: Value = http.get(format!("{base}/workflows")).send().await.unwrap().json().await.unwrap();
        // With `mcp`, the catalog also carries the input's JSON Schema (a `String` here).
        let schema = catalog[0].as_object_mut().unwrap().remove("input_schema");
        assert_eq!(schema.map(|s| s["type"].clone()), cfg!(feature = "mcp").then(|| json!("string")));
        assert_eq!(catalog, json!([{"name": "shout", "version": 1, "versions": [1]}]));
        let run = http.post(format!("{base}/workflows/shout/run/sync")).body("\"hey\"").send().await.unwrap();
        assert_eq!(run.status(), reqwest::StatusCode::OK);
        let run: Value = run.json().await.unwrap();
        assert_eq!((run["state"].as_str(), run["output"].as_str()), (Some("COMPLETED"), Some("HEY")));
        let bad = http.post(format!("{base}/workflows/shout/run/sync")).body("[1, 2]").send().await.unwrap();
        assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
        let secrets = http.get(format!("{base}/admin/secrets")).send().await.unwrap();
        assert_eq!(secrets.status(), reqwest::StatusCode::UNAUTHORIZED);
        let secrets = http.get(format!("{base}/admin/secrets")).bearer_auth("admin-secret").send().await.unwrap();
        assert_eq!(secrets.status(), reqwest::StatusCode::OK);

        server.shutdown().await;
        serving.abort();
    }
}
