//! The HTTP server: a hand-written accept loop around hyper + an axum
//! router, so that a request handler can kill its own TCP connection
//! (`Fault::DropConnection`) — something `axum::serve` cannot do.

mod faults;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tower::ServiceExt;

use super::Shared;

/// Lets a handler close the connection it runs on.
#[derive(Clone, Debug)]
pub(crate) struct ConnKiller(pub Arc<Notify>);

/// The server thread and how to stop it.
pub(crate) struct ServerHandle {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting, drops every connection and joins the thread.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds synchronously (so the port is known and errors are reported) and
/// serves from a dedicated thread with a current-thread runtime.
pub(crate) fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<ServerHandle> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("glpi-double-{}", local.port()))
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(listener) => serve(listener, shared, rx).await,
                    Err(e) => tracing::error!("glpi double: cannot register listener: {e}"),
                }
            });
            // Dropping the runtime drops every connection task (and socket).
            drop(rt);
        })?;
    Ok(ServerHandle {
        addr: local,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let router = routes::router(shared);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let killer = Arc::new(Notify::new());
            let k = killer.clone();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnKiller(k.clone()));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                // Dropping `conn` closes the socket without an HTTP answer.
                _ = killer.notified() => {}
            }
        });
    }
}
