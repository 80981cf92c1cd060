//! The REST API of armadito-scand 0.11–0.12 (backends.md A.1/A.2): `/api/register` gives a
//! token, `/api/status` and `/api/scan` queue events for it, `/api/event` long-polls them,
//! `/api/unregister` ends the session.
//!
//! Invariants:
//! * One TCP connection per request (the daemon answers `Connection: close`); each is
//!   verified (owner of the server socket, [`crate::peer`]) before the request is written.
//! * A session always unregisters, also on error (drop guard).
//! * Responses are parsed with `httparse`; bodies are bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use armadito_plugin_api::ScanResult;
use serde_json::{Value, json};

use super::{Kind, ScanJob, ScanSink, Transport, TransportError, now_f64};
use crate::peer::{PeerError, Trusted, tcp_peer_uid};
use crate::scan::{ScanState, Step};
use crate::wire::event::{Event, parse_gen1};
use crate::wire::info::AvInfo;

const MAX_BODY: usize = 8 * 1024 * 1024;
const SLICE: Duration = Duration::from_millis(200);
/// Events read while waiting for the StatusEvent (others are dropped).
const MAX_STATUS_EVENTS: usize = 100;

pub struct RestTransport {
    pub addr: SocketAddr,
    pub user_agent: String,
    pub trusted: Trusted,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Why a request got no answer.
enum Fail {
    /// The daemon went away (refused, reset, closed without a response).
    Gone(String),
    Other(TransportError),
}

impl From<TransportError> for Fail {
    fn from(e: TransportError) -> Self {
        Fail::Other(e)
    }
}

impl Fail {
    fn into_error(self) -> TransportError {
        match self {
            Fail::Gone(m) => TransportError::Unavailable(m),
            Fail::Other(e) => e,
        }
    }
}

/// Parses an HTTP/1.x response: status and JSON body (`null` or empty = `Value::Null`).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let start = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete HTTP response".into()),
        Err(e) => return Err(format!("invalid HTTP response: {e}")),
    };
    let code = resp.code.unwrap_or(0);
    let mut body = &raw[start..];
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or("invalid Content-Length")?;
            body = body
                .get(..n)
                .ok_or("body shorter than its Content-Length")?;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked responses are not expected from armadito-scand".into());
        }
    }
    let text = String::from_utf8_lossy(body);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text.trim())
            .map_err(|e| format!("HTTP {code}: body is not JSON ({e})"))?
    };
    Ok((code, value))
}

impl RestTransport {
    /// One request; `wait` bounds how long the answer may take (long polls), checked in
    /// slices so `cancelled` is noticed.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        wait: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Value>, Fail> {
        let mut stream =
            TcpStream::connect_timeout(&self.addr, self.connect_timeout).map_err(|e| {
                Fail::Gone(format!(
                    "Armadito REST API not reachable at {}: {e}",
                    self.addr
                ))
            })?;
        let what = format!("the REST API socket {}", self.addr);
        let local = stream
            .local_addr()
            .map_err(|e| TransportError::Failed(format!("socket: {e}")))?;
        let uid = tcp_peer_uid(self.addr, local).map_err(|reason| {
            TransportError::from(PeerError::Unknown {
                what: what.clone(),
                reason,
            })
        })?;
        self.trusted
            .check(uid, &what)
            .map_err(TransportError::from)?;

        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} /api{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.addr, self.user_agent
        );
        if let Some(t) = token {
            head.push_str(&format!("X-Armadito-Token: {t}\r\n"));
        }
        if body.is_some() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                payload.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(&payload);
        stream
            .set_write_timeout(Some(self.call_timeout))
            .and_then(|()| stream.set_read_timeout(Some(SLICE)))
            .and_then(|()| stream.write_all(head.as_bytes()))
            .map_err(|e| Fail::Gone(format!("sending {method} /api{path}: {e}")))?;

        let deadline = Instant::now() + wait;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_BODY {
                        return Err(TransportError::Failed(format!(
                            "{method} /api{path}: response too large"
                        ))
                        .into());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if cancelled() {
                        return Ok(None);
                    }
                    if Instant::now() >= deadline {
                        return Err(TransportError::Timeout(format!(
                            "the Armadito REST API did not answer {method} /api{path} within {} s",
                            wait.as_secs()
                        ))
                        .into());
                    }
                }
                Err(e) => return Err(Fail::Gone(format!("reading {method} /api{path}: {e}"))),
            }
        }
        if raw.is_empty() {
            return Err(Fail::Gone(format!(
                "the daemon closed the connection without answering {method} /api{path}"
            )));
        }
        let (code, v) = parse_response(&raw)
            .map_err(|e| TransportError::Failed(format!("{method} /api{path}: {e}")))?;
        if code != 200 {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return Err(
                TransportError::Failed(format!("{method} /api{path}: HTTP {code} {msg}")).into(),
            );
        }
        Ok(Some(v))
    }

    fn simple(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, Fail> {
        self.request(method, path, token, body, self.call_timeout, &|| false)
            .map(Option::unwrap_or_default)
    }

    fn register(&self) -> Result<Session<'_>, TransportError> {
        let v = self
            .simple("GET", "/register", None, None)
            .map_err(Fail::into_error)?;
        let token = v
            .get("token")
            .and_then(|t| {
                t.as_str()
                    .map(str::to_string)
                    .or_else(|| t.as_i64().map(|n| n.to_string()))
            })
            .ok_or_else(|| {
                TransportError::Failed(format!("/api/register answered without a token: {v}"))
            })?;
        Ok(Session { rest: self, token })
    }
}

/// A registered token; unregisters on drop.
struct Session<'a> {
    rest: &'a RestTransport,
    token: String,
}

impl Session<'_> {
    fn event(&self, cancelled: &dyn Fn() -> bool) -> Result<Option<Value>, Fail> {
        self.rest.request(
            "GET",
            "/event",
            Some(&self.token),
            None,
            self.rest.idle_timeout,
            cancelled,
        )
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .rest
            .simple("GET", "/unregister", Some(&self.token), None);
    }
}

impl Transport for RestTransport {
    fn kind(&self) -> Kind {
        Kind::Rest
    }

    fn status(&self) -> Result<AvInfo, TransportError> {
        let session = self.register()?;
        let version = self
            .simple("GET", "/version", None, None)
            .ok()
            .and_then(|v| {
                v.get("antivirus-version")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        self.simple("GET", "/status", Some(&session.token), None)
            .map_err(Fail::into_error)?;
        for _ in 0..MAX_STATUS_EVENTS {
            let ev = session
                .event(&|| false)
                .map_err(Fail::into_error)?
                .unwrap_or_default();
            if let Event::Status(mut info) = parse_gen1(&ev) {
                info.version = version;
                return Ok(info);
            }
        }
        Err(TransportError::Failed(format!(
            "no StatusEvent among the first {MAX_STATUS_EVENTS} events"
        )))
    }

    fn scan(&self, job: &ScanJob<'_>, sink: &dyn ScanSink) -> Result<ScanResult, TransportError> {
        let session = self.register()?;
        if !job.recursive {
            sink.warn("the REST API always scans folders recursively");
        }
        self.simple(
            "POST",
            "/scan",
            Some(&session.token),
            Some(&json!({"path": job.path})),
        )
        .map_err(Fail::into_error)?;
        let mut state = ScanState::new(None, job.per_file, now_f64());
        loop {
            let cancelled = || sink.cancelled();
            let ev = match session.event(&cancelled) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    let mut r = state.finish(now_f64());
                    r.cancelled = true;
                    return Ok(r);
                }
                Err(Fail::Gone(why)) => {
                    let mut r = state.finish(now_f64());
                    r.interrupted = Some(format!(
                        "the Armadito daemon stopped answering before the end of the scan \
                         (after {} files): {why}",
                        r.scanned
                    ));
                    return Ok(r);
                }
                Err(Fail::Other(TransportError::Timeout(_))) => {
                    return Err(TransportError::Timeout(format!(
                        "the Armadito daemon sent no event for {} s and never reported the end \
                         of the scan of {}",
                        self.idle_timeout.as_secs(),
                        job.path
                    )));
                }
                Err(Fail::Other(e)) => return Err(e),
            };
            let parsed = parse_gen1(&ev);
            if let Event::Other(t) = &parsed {
                sink.warn(&format!("ignored event type {t:?} from the REST API"));
            }
            match state.on_event(parsed, now_f64() as i64) {
                Step::Done => return Ok(state.finish(now_f64())),
                Step::Progress(p) if !sink.progress(&p) => {
                    let mut r = state.finish(now_f64());
                    r.cancelled = true;
                    return Ok(r);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{\"token\":\"123456\"}\n";
        assert_eq!(
            parse_response(raw).unwrap(),
            (200, json!({"token": "123456"}))
        );
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull";
        assert_eq!(parse_response(raw).unwrap(), (200, Value::Null));
        let raw =
            b"HTTP/1.1 403 Forbidden\r\n\r\n{\"code\":403, \"message\": \"Request forbidden\"}";
        assert_eq!(parse_response(raw).unwrap().0, 403);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n{oops").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
