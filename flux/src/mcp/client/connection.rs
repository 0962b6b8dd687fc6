//! The connection to an MCP server: opened by the first attempt that needs it, shared by the
//! attempts after it, dropped when its transport breaks (the next attempt opens a new one); and
//! the client handler that brings an elicitation request of the server to the tool call it
//! interrupts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    ErrorCode, FormElicitationCapability, Implementation, UrlElicitationCapability,
};
use rmcp::service::{RequestContext, RoleClient, RunningService, ServiceError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess, streamable_http_client};
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};

/// How to reach the server.
#[derive(Clone, Debug)]
pub(super) enum Transport {
    /// Streamable HTTP at this URL, with an optional bearer token.
    Http { url: String, bearer: Option<String> },
    /// A child process speaking MCP on its stdin and stdout.
    Stdio { program: String, args: Vec<String> },
}

/// An elicitation request on its way to the tool call it interrupts, with where to answer.
pub(super) type Pending = (ElicitRequestParams, oneshot::Sender<ElicitResult>);

/// The tool calls in flight on one connection, each with where its elicitations go.
#[derive(Default)]
struct Waiting {
    next: u64,
    calls: Vec<(u64, mpsc::UnboundedSender<Pending>)>,
}

/// flux's side of the MCP session: it declares elicitation support and hands each elicitation
/// request to the tool call in flight, which pauses the workflow for the answer.
#[derive(Clone, Default)]
pub(super) struct Handler {
    waiting: Arc<Mutex<Waiting>>,
}

fn answer(action: ElicitationAction) -> ElicitResult {
    ElicitResult::new(action)
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut elicitation = ElicitationCapability::new();
        elicitation.form = Some(FormElicitationCapability::new());
        elicitation.url = Some(UrlElicitationCapability::new());
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation = Some(elicitation);
        ClientConfig::new(capabilities, Implementation::new("flux", env!("CARGO_PKG_VERSION")))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> std::result::Result<ElicitResult, ErrorData> {
        // The request does not say which call it belongs to: with one call in flight it is that
        // one's; with several, nobody can tell, and the request is declined (docs/design.md §17).
        let target = {
            let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            match waiting.calls.as_slice() {
                [(_, sender)] => Some(sender.clone()),
                _ => None,
            }
        };
        let Some(target) = target else {
            tracing::warn!(
                "an MCP server asked for an elicitation while not exactly one tool call was in flight: declined"
            );
            return Ok(answer(ElicitationAction::Decline));
        };
        let (reply, answered) = oneshot::channel();
        if target.send((request, reply)).is_err() {
            return Ok(answer(ElicitationAction::Cancel));
        }
        // A call that is dropped (its workflow paused, its attempt timed out) cancels.
        Ok(answered.await.unwrap_or_else(|_| answer(ElicitationAction::Cancel)))
    }
}

/// One open session with the server.
pub(super) struct Connection {
    pub(super) service: RunningService<RoleClient, Handler>,
    waiting: Arc<Mutex<Waiting>>,
}

/// A tool call's place in its connection's list of calls in flight; taken out when dropped.
pub(super) struct Registered {
    waiting: Arc<Mutex<Waiting>>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.calls.retain(|(id, _)| *id != self.id);
    }
}

impl Connection {
    /// Enters a tool call in the list of calls in flight: elicitation requests come through
    /// `sender` while it is the only one.
    pub(super) fn register(&self, sender: mpsc::UnboundedSender<Pending>) -> Registered {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.next += 1;
        let id = waiting.next;
        waiting.calls.push((id, sender));
        Registered { waiting: self.waiting.clone(), id }
    }
}

/// Opens the connection on first use and keeps it.
#[derive(Default)]
pub(super) struct Connector {
    slot: tokio::sync::Mutex<Option<Arc<Connection>>>,
    opened: AtomicU64,
}

impl Connector {
    /// How many sessions this connector has opened.
    pub(super) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The open session, opened now if there is none.
    pub(super) async fn get(&self, server: &str, transport: &Transport, limit: Duration) -> Result<Arc<Connection>> {
        let mut slot = self.slot.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| !c.service.is_closed()) {
            return Ok(connection.clone());
        }
        let handler = Handler::default();
        let waiting = handler.waiting.clone();
        // Boxed: the handshake's future (rmcp's transport over reqwest, TLS included) is large,
        // and would otherwise sit inside every workflow future that calls a tool.
        let opening = Box::pin(async {
            match transport {
                Transport::Http { url, bearer } => {
                    let mut config =
                        streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.as_str());
                    if let Some(token) = bearer {
                        config = config.auth_header(token.as_str());
                    }
                    handler.serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
                }
                Transport::Stdio { program, args } => {
                    let mut command = tokio::process::Command::new(program);
                    command.args(args);
                    let child =
                        TokioChildProcess::new(command).map_err(|e| format!("`{program}` did not start: {e}"))?;
                    handler.serve(child).await.map_err(|e| e.to_string())
                }
            }
        });
        let service = match tokio::time::timeout(limit, opening).await {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => return Err(unreachable(server, transport, &e)),
            Err(_) => return Err(unreachable(server, transport, &format!("no session within {limit:?}"))),
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection { service, waiting });
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Drops `broken` if it is still the open session, so that the next attempt opens another.
    pub(super) async fn discard(&self, broken: &Arc<Connection>) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|open| Arc::ptr_eq(open, broken)) {
            *slot = None;
        }
    }

    /// Closes the open session, if any.
    pub(super) async fn close(&self) {
        let taken = self.slot.lock().await.take();
        if let Some(connection) = taken {
            connection.service.cancellation_token().cancel();
        }
    }
}

fn unreachable(server: &str, transport: &Transport, why: &str) -> Error {
    let at = match transport {
        Transport::Http { url, .. } => url.clone(),
        Transport::Stdio { program, .. } => format!("the command `{program}`"),
    };
    // Retryable: a server that is down now may be up for the next attempt.
    Error::new(ErrorKind::Unreachable, format!("MCP server `{server}` ({at}) could not be reached: {why}"))
}

/// A failed request, made a flux error, and whether the session is broken (to be dropped).
///
/// An error the server answered with because the request itself is wrong (an unknown tool,
/// arguments that do not fit) is terminal: asking again gets the same answer. A broken or
/// closed transport, a timeout, or any other error of the server is retryable.
pub(super) fn request_error(server: &str, what: &str, error: ServiceError) -> (Error, bool) {
    match error {
        ServiceError::McpError(data) => {
            let error = Error::new(
                ErrorKind::TaskFailed,
                format!("MCP server `{server}` refused {what}: {} (code {})", data.message, data.code.0),
            );
            let wrong_request = [ErrorCode::INVALID_REQUEST, ErrorCode::METHOD_NOT_FOUND, ErrorCode::INVALID_PARAMS];
            (if wrong_request.contains(&data.code) { error.into_terminal() } else { error }, false)
        }
        error @ (ServiceError::TransportSend(_) | ServiceError::TransportClosed) => {
            let error = Error::new(ErrorKind::TaskFailed, format!("MCP server `{server}`: {what} broke off: {error}"));
            (error, true)
        }
        error => (Error::new(ErrorKind::TaskFailed, format!("MCP server `{server}`: {what} failed: {error}")), false),
    }
}
