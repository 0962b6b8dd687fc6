//! The typed HTTP client of a flux server (feature `client`): [`Client`].
//!
//! ```no_run
//! use futures::StreamExt as _;
//! use flux::ExecutionFilter;
//! use flux::client::StreamEvent;
//!
//! # async fn demo() -> flux::Result<()> {
//! let client = flux::Client::new("http://127.0.0.1:8000")?;
//! let hello = client.workflow::<String, String>("hello_world");
//!
//! // Run and wait: the typed output, or the workflow's error.
//! let greeting = hello.run(&"World".to_string()).await?.into_result()?;
//!
//! // Start, then ask.
//! let started = hello.start(&"Ada".to_string()).await?;
//! let status = hello.status(started.execution_id()).await?;
//! println!("{} is {}", status.execution_id(), status.state());
//!
//! // Follow an execution as it runs.
//! let mut events = hello.stream(&"Grace".to_string()).await?;
//! while let Some(event) = events.next().await {
//!     if let StreamEvent::Progress(progress) = event? {
//!         println!("progress: {}", progress.value_json());
//!     }
//! }
//!
//! // The newest failed executions (the engine's filter, sent as a query).
//! let failed = client.list_executions(ExecutionFilter::new().state(flux::ExecutionState::Failed)).await?;
//! # Ok(()) }
//! ```
//!
//! Every answer is typed: an execution as an [`ExecutionStatus`] (its output decoded as the
//! workflow's output type, its error as the [`Error`] the execution recorded), a stream as
//! [`StreamEvent`]s, a listing as an [`ExecutionList`]. A request the server refuses is an [`Error`] whose kind fits the answer
//! ([`ErrorKind::NotFound`] for 404, [`ErrorKind::InvalidInput`] for 422,
//! [`ErrorKind::Unauthorized`] for 401, [`ErrorKind::InvalidState`] for 400,
//! [`ErrorKind::Conflict`] for 409), whose message is the server's `detail` and whose
//! [`Error::http_status`] is the status; a server that cannot be reached is
//! [`ErrorKind::Unreachable`]. This client has no server dependencies; it speaks plain HTTP,
//! and HTTPS with the `tls` feature.

mod executions;
// `pub(crate)` for the MCP server, which reads endpoints the typed client has no method for yet.
pub(crate) mod http;
mod schedules;
mod secrets;
mod status;
mod stream;
mod workflow;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use self::http::{Auth, Http};
use crate::error::{Error, ErrorKind, Result};
use crate::store::ExecutionFilter;

pub use self::executions::{ExecutionList, ListedExecution};
pub use self::status::{ExecutionStatus, WorkflowInfo};
pub use self::stream::{EventStream, Progress, StreamEvent};
pub use self::workflow::RemoteWorkflow;

/// How long connecting to a server may take before it counts as unreachable, unless set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one flux server's HTTP API, typed.
///
/// Cheap to clone (clones share their connections). Make one with [`Client::new`], or
/// [`Client::builder`] to set timeouts; a workflow's handle with [`Client::workflow`].
///
/// ```no_run
/// # async fn demo() -> flux::Result<()> {
/// let client = flux::Client::new("http://127.0.0.1:8000")?.admin_token("my-admin-token");
/// for workflow in client.workflows().await? {
///     println!("{} v{}", workflow.name(), workflow.version());
/// }
/// client.set_secret("API_KEY", "s3cret").await?;
/// let doubled = client.workflow::<u32, u32>("double").run(&21).await?.into_result()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    http: Arc<Http>,
}

impl Client {
    /// A client of the server at `url` (`http://host:port`, optionally with a path prefix),
    /// with the default connect timeout and no request timeout. A URL that is not plain
    /// `http://host[:port][/path]` is an error of kind [`ErrorKind::Config`] that names it.
    ///
    /// ```
    /// let client = flux::Client::new("http://127.0.0.1:8000")?;
    /// assert_eq!(client.url(), "http://127.0.0.1:8000");
    /// let err = flux::Client::new("localhost:8000").unwrap_err();
    /// assert!(err.to_string().contains("did you mean http://localhost:8000?"));
    /// # Ok::<(), flux::Error>(())
    /// ```
    pub fn new(url: impl AsRef<str>) -> Result<Client> {
        Client::builder(url).build()
    }

    /// A builder of a client of the server at `url`, to set timeouts and tokens.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = flux::Client::builder("http://127.0.0.1:8000")
    ///     .connect_timeout(Duration::from_secs(2))
    ///     .timeout(Duration::from_secs(60))
    ///     .admin_token("my-admin-token")
    ///     .build()?;
    /// # Ok::<(), flux::Error>(())
    /// ```
    pub fn builder(url: impl AsRef<str>) -> ClientBuilder {
        ClientBuilder {
            url: url.as_ref().to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: None,
            bearer: None,
            admin: None,
        }
    }

    /// The same client, sending `token` to the `/admin` endpoints (the secrets).
    pub fn admin_token(self, token: impl Into<String>) -> Client {
        let mut http = Arc::unwrap_or_clone(self.http);
        http.admin = Some(token.into());
        Client { http: Arc::new(http) }
    }

    /// The same client, sending `Authorization: Bearer <token>` with every request (for a
    /// server behind a proxy that asks for one); `/admin` requests send the admin token
    /// instead when one is set.
    pub fn bearer_token(self, token: impl Into<String>) -> Client {
        let mut http = Arc::unwrap_or_clone(self.http);
        http.bearer = Some(token.into());
        Client { http: Arc::new(http) }
    }

    /// The server URL, as given (without a trailing `/` for a bare host).
    pub fn url(&self) -> &str {
        self.http.shown()
    }

    /// How requests go out.
    pub(crate) fn http(&self) -> &Http {
        &self.http
    }

    /// The handle of workflow `name`, typed by its input `I` and output `O` (no request is
    /// made until it is used).
    pub fn workflow<I, O>(&self, name: impl Into<String>) -> RemoteWorkflow<I, O> {
        RemoteWorkflow::new(self.clone(), name.into())
    }

    /// `GET /workflows`: the workflows the server knows, with their versions.
    pub async fn workflows(&self) -> Result<Vec<WorkflowInfo>> {
        let url = self.http.url(&["workflows"])?;
        let list: Vec<Value> = self.http.json(self.http.request(Method::GET, url, Auth::Plain)).await?;
        list.into_iter().map(|entry| WorkflowInfo::from_json(entry).map_err(|e| self.http.not_the_api(&e))).collect()
    }

    /// `GET /workflows/{name}`: one workflow, where it runs and which workers registered it;
    /// [`ErrorKind::NotFound`] when the server does not know it.
    pub async fn workflow_info(&self, name: &str) -> Result<WorkflowInfo> {
        let url = self.http.url(&["workflows", name])?;
        let entry = self.http.value(self.http.request(Method::GET, url, Auth::Plain)).await?;
        WorkflowInfo::from_json(entry).map_err(|e| self.http.not_the_api(&e))
    }

    /// `GET /executions`: a page of the executions `filter` selects, newest first, with how
    /// many match in all.
    ///
    /// The filter is the engine's [`ExecutionFilter`], and every criterion it holds is sent
    /// (states and parents as repeated parameters), so the server selects what
    /// [`Engine::list_executions`](crate::Engine::list_executions) would with it. A filter that
    /// [`ExecutionFilter::check`] refuses (a limit of 0 or above
    /// [`ExecutionFilter::MAX_LIMIT`]) is refused here the same way, of kind
    /// [`ErrorKind::Config`], before any request. [`ExecutionList::next`] gives the filter of
    /// the next page.
    ///
    /// ```no_run
    /// use flux::{ExecutionFilter, ExecutionState};
    ///
    /// # async fn demo() -> flux::Result<()> {
    /// let client = flux::Client::new("http://127.0.0.1:8000")?;
    /// let filter = ExecutionFilter::new().workflow("checkout").state(ExecutionState::Failed).limit(20);
    /// let list = client.list_executions(filter).await?;
    /// println!("{} of {} failed checkouts", list.executions.len(), list.total);
    /// # Ok(()) }
    /// ```
    pub async fn list_executions(&self, filter: ExecutionFilter) -> Result<ExecutionList> {
        filter.check()?;
        let mut url = self.http.url(&["executions"])?;
        url.query_pairs_mut().extend_pairs(&executions::query(&filter));
        let answer = self.http.value(self.http.request(Method::GET, url, Auth::Plain)).await?;
        ExecutionList::from_json(answer)
    }
}

/// Sets up a [`Client`]: [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    connect_timeout: Duration,
    timeout: Option<Duration>,
    bearer: Option<String>,
    admin: Option<String>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// How long connecting may take before the server counts as unreachable (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long a whole request may take (default: no limit). It bounds `sync` runs and
    /// resumes too, which wait for the execution; streams are not bounded by it.
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Sends `token` to the `/admin` endpoints (see [`Client::admin_token`]).
    pub fn admin_token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.admin = Some(token.into());
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (see [`Client::bearer_token`]).
    pub fn bearer_token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.bearer = Some(token.into());
        self
    }

    /// The client; an error of kind [`ErrorKind::Config`] naming the URL when it is not
    /// `http://host[:port][/path]`.
    pub fn build(self) -> Result<Client> {
        let base = http::parse_base(&self.url)?;
        if self.connect_timeout.is_zero() {
            return Err(Error::new(ErrorKind::Config, "the connect timeout of a flux client must be more than zero"));
        }
        let mut http = Http::new(base, self.connect_timeout, self.timeout)?;
        http.bearer = self.bearer;
        http.admin = self.admin;
        Ok(Client { http: Arc::new(http) })
    }
}
