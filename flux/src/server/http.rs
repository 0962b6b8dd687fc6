//! The listener of [`Server::bind`](super::Server::bind): HTTP/1.1 connections served by hyper
//! with the limits of `[flux]`: how many connections at once, how large a request's headers may
//! be, and how long a client may take to send them.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What a listener allows its connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The largest request line and headers, in bytes: larger ones get 431.
    pub(crate) max_header_bytes: usize,
    /// Connections open at once; one more is answered 503 and closed.
    pub(crate) max_connections: usize,
    /// How long a client has to send a request's headers (and an idle connection is kept).
    pub(crate) request_timeout: Duration,
}

/// How long a refused connection is given to read its 503.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `stop` turns true, then lets the open connections finish
/// the requests they are answering (streams end on the same signal) and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (close, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection gone before it was accepted: the
                // listener itself is fine. A pause keeps a lasting error from spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "too many connections (flux.max_connections); refusing one");
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut closing = closing.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.request_timeout)
                .max_header_size(limits.max_header_bytes);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                    return;
                }
                _ = closing.wait_for(|closing| *closing) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = close.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Answers a connection over the limit with 503 and a JSON detail, then closes it once the
/// client has read the answer (or after [`REFUSAL_GRACE`]).
async fn refuse(mut stream: TcpStream, limit: usize) {
    let body = format!(
        "{{\"detail\":\"the server has {limit} connections open, its limit (flux.max_connections); try again later\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Reading what the client sent until it closes keeps the close from resetting the
        // connection before the client has read the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
