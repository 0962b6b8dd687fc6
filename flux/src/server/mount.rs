//! The MCP endpoint of a flux server (features `server` and `mcp`): `/mcp`, behind the admin
//! token, serving the tools of [`McpServer`] over a client of this very server
//! (docs/design.md §17).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::auth;
use super::respond::ApiError;
use super::state::Shared;
use crate::client::Client;
use crate::error::Result;
use crate::mcp::server::McpServer;

/// The URL a server listening on `addr` calls itself at: the loopback address when it listens
/// on every interface.
fn own_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// `/mcp` for a server listening on `addr` whose admin token is `admin_token`: its tools call
/// the server back over HTTP with that token. The route asks for the same token itself.
pub(crate) fn routes(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    admin_token: &str,
    name: &str,
    cancel: CancellationToken,
) -> Result<Router<Arc<Shared>>> {
    let client = Client::new(own_url(addr))?.admin_token(admin_token);
    // The admin token guards the endpoint, so any `Host` may reach it (the server may be known
    // by names it cannot list); a browser page rebinding a name still has no token.
    let service = McpServer::new(client).name(name).http_service(Vec::new(), cancel);
    Ok(Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), require_admin)))
}

/// 401 unless the request carries the admin token (`Authorization: Bearer <token>`), compared
/// in constant time.
async fn require_admin(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match auth::bearer(request.headers()) {
        Some(token) if s.admin_token.matches(token) => next.run(request).await,
        _ => ApiError::unauthorized("admin token").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::own_url;

    #[test]
    fn a_server_on_every_interface_calls_itself_on_loopback() {
        assert_eq!(own_url("0.0.0.0:8000".parse().unwrap()), "http://127.0.0.1:8000");
        assert_eq!(own_url("[::]:8000".parse().unwrap()), "http://[::1]:8000");
        assert_eq!(own_url("10.1.2.3:9".parse().unwrap()), "http://10.1.2.3:9");
    }
}
