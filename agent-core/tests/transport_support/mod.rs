//! Loopback servers for the transport tests: a scripted HTTP/1.1 server (plain or TLS) that
//! records every request and answers from a script, one action per request, in order.
//!
//! Deliberately hand-written on `tokio::net::TcpListener`: the tests need answers no framework
//! produces on purpose (hanging, dropping the connection after reading the request, invalid
//! JSON, HTML), and the recorded request line shows exactly what reached the wire (also the
//! absolute-form target a client sends to a proxy).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_core::transport::{HttpOptions, RetryPolicy, SleepFuture};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer, then close the connection.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request and never answer (until the client gives up).
    Hang,
    /// Read the request and close the connection without a byte of answer.
    Drop,
}

/// `status` with a JSON content type (the plugin's headers) and `body`.
pub fn json(status: u16, body: &str) -> Action {
    Action::Respond {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// `status` with a `text/html` body.
pub fn html(status: u16, body: &str) -> Action {
    Action::Respond {
        status,
        headers: vec![("Content-Type".into(), "text/html; charset=UTF-8".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// `status` with extra headers and an empty body.
pub fn with_headers(status: u16, headers: &[(&str, &str)]) -> Action {
    Action::Respond {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: Vec::new(),
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request-target: `/path?query`, or `http://host/path` when sent to a proxy.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Action>>,
    requests: Mutex<Vec<Recorded>>,
    connections: AtomicUsize,
    tls_failures: AtomicUsize,
}

/// A running scripted server; stops when dropped with the runtime.
pub struct Server {
    pub addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
}

pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

impl Server {
    /// Plain HTTP on 127.0.0.1 with an OS-chosen port.
    pub async fn start(script: Vec<Action>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve(listener, script, None)
    }

    /// Plain HTTP on a given listener (to take over a port chosen earlier).
    pub fn on(listener: TcpListener, script: Vec<Action>) -> Server {
        Self::serve(listener, script, None)
    }

    /// HTTPS with the given rustls acceptor.
    pub async fn start_tls(script: Vec<Action>, acceptor: TlsAcceptor) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve(listener, script, Some(acceptor))
    }

    fn serve(listener: TcpListener, script: Vec<Action>, tls: Option<TlsAcceptor>) -> Server {
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            ..State::default()
        });
        let is_tls = tls.is_some();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_conn(tcp, st).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => serve_conn(stream, st).await,
                            Err(_) => {
                                st.tls_failures.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        Server {
            addr,
            tls: is_tls,
            state,
        }
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The plugin directory URL on this server, as an admin would configure it.
    pub fn base(&self) -> String {
        format!("{}/glpi/plugins/armadito", self.origin())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn tls_failures(&self) -> usize {
        self.state.tls_failures.load(Ordering::SeqCst)
    }
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<State>) {
    let Some(req) = read_request(&mut stream).await else {
        return;
    };
    state.requests.lock().expect("lock").push(req);
    let action = state
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| json(599, r#"{"error" : "test script exhausted"}"#));
    match action {
        Action::Respond {
            status,
            headers,
            body,
        } => {
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Whatever");
            let mut head = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        }
        Action::Hang => {
            // Hold the connection until the client closes it.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Action::Drop => drop(stream),
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// Options for loopback tests: short timeouts, tiny retry delays.
pub fn fast_opts() -> HttpOptions {
    HttpOptions {
        timeout: 10,
        connect_timeout: 5,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 1,
            max_delay_ms: 20,
        },
        ..HttpOptions::default()
    }
}

/// A sleeper that records the requested delays and returns at once.
pub fn recording_sleeper() -> (
    Arc<Mutex<Vec<Duration>>>,
    impl Fn(Duration) -> SleepFuture + Send + Sync + 'static,
) {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let d = delays.clone();
    (delays, move |delay| {
        d.lock().expect("lock").push(delay);
        Box::pin(async {}) as SleepFuture
    })
}

/// A loopback port on which nothing listens (bound, then released).
pub async fn refused_port() -> (SocketAddr, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    (addr, format!("http://{addr}/glpi/plugins/armadito"))
}
