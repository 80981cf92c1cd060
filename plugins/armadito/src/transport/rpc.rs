//! JSON-RPC 2.0 over the daemon's unix socket (Gen 3, backends.md A.3): `status`, `scan` with
//! its `notify_event` stream, and `listen` for live detections.
//!
//! Invariants:
//! * Connect, then `SO_PEERCRED`, then (only if trusted) the first byte.
//! * Reads are sliced (short socket timeouts) so a cancel request and the idle deadline are
//!   noticed while the daemon is silent.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use armadito_plugin_api::ScanResult;
use serde_json::{Value, json};

use super::{Kind, ScanJob, ScanSink, Transport, TransportError, new_scan_id, now_f64};
use crate::peer::{Trusted, unix_peer_uid};
use crate::scan::{ScanState, Step};
use crate::wire::event::{Event, parse_gen3};
use crate::wire::framing::{Deframer, Frame, Incoming, classify, request};
use crate::wire::info::{AvInfo, parse_info};

const SLICE: Duration = Duration::from_millis(200);

pub struct RpcTransport {
    pub socket: String,
    pub trusted: Trusted,
    pub call_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A verified connection.
pub struct Conn {
    stream: UnixStream,
    deframer: Deframer,
    next_id: u64,
    what: String,
}

/// What a read produced.
pub enum Read1 {
    Frame(Frame),
    Eof,
    /// Nothing within one slice.
    Idle,
}

impl RpcTransport {
    pub fn connect(&self) -> Result<Conn, TransportError> {
        let what = format!("the daemon socket {}", self.socket);
        let addr = match self.socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())
            }
            None => SocketAddr::from_pathname(&self.socket),
        }
        .map_err(|e| TransportError::Failed(format!("invalid socket name {}: {e}", self.socket)))?;
        let stream = UnixStream::connect_addr(&addr).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => TransportError::Unavailable(
                format!("Armadito daemon not reachable at {}: {e}", self.socket),
            ),
            _ => TransportError::Failed(format!("cannot connect to {}: {e}", self.socket)),
        })?;
        let uid = unix_peer_uid(&stream).map_err(|e| crate::peer::PeerError::Unknown {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        self.trusted.check(uid, &what)?;
        stream
            .set_read_timeout(Some(SLICE))
            .and_then(|()| stream.set_write_timeout(Some(self.call_timeout)))
            .map_err(|e| TransportError::Failed(format!("socket setup: {e}")))?;
        Ok(Conn {
            stream,
            deframer: Deframer::default(),
            next_id: 1,
            what,
        })
    }
}

impl Conn {
    pub fn send(&mut self, method: &str, params: Option<Value>) -> Result<u64, TransportError> {
        let id = self.next_id;
        self.next_id += 1;
        self.stream
            .write_all(&request(method, params, Some(id)))
            .map_err(|e| TransportError::Failed(format!("writing to {}: {e}", self.what)))?;
        Ok(id)
    }

    pub fn read1(&mut self) -> Result<Read1, TransportError> {
        if let Some(f) = self.deframer.next_frame() {
            return Ok(Read1::Frame(f));
        }
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => Ok(Read1::Eof),
            Ok(n) => {
                self.deframer.push(&buf[..n]);
                Ok(self.deframer.next_frame().map_or(Read1::Idle, Read1::Frame))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(Read1::Idle)
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                Ok(Read1::Eof)
            }
            Err(e) => Err(TransportError::Failed(format!(
                "reading from {}: {e}",
                self.what
            ))),
        }
    }

    /// Sends a request and waits for its answer (notifications in between are dropped).
    pub fn call(
        &mut self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, TransportError> {
        let id = self.send(method, params)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.read1()? {
                Read1::Frame(Frame::Json(v)) => match classify(v) {
                    Incoming::Result {
                        id: Some(got),
                        result,
                    } if got == id => return Ok(result),
                    Incoming::Error { code, message, .. } => {
                        return Err(TransportError::Failed(format!(
                            "the daemon answered {method} with error {code}: {message}"
                        )));
                    }
                    _ => {}
                },
                Read1::Frame(Frame::Invalid(_)) | Read1::Idle => {}
                Read1::Eof => {
                    return Err(TransportError::Failed(format!(
                        "the daemon closed the connection before answering {method}"
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(TransportError::Timeout(format!(
                    "the daemon did not answer {method} within {timeout:?}"
                )));
            }
        }
    }
}

impl Transport for RpcTransport {
    fn kind(&self) -> Kind {
        Kind::Rpc
    }

    fn status(&self) -> Result<AvInfo, TransportError> {
        let mut conn = self.connect()?;
        let v = conn.call("status", None, self.call_timeout)?;
        parse_info(&v).map_err(TransportError::Failed)
    }

    fn scan(&self, job: &ScanJob<'_>, sink: &dyn ScanSink) -> Result<ScanResult, TransportError> {
        let mut conn = self.connect()?;
        let scan_id = new_scan_id();
        let req = conn.send(
            "scan",
            Some(json!({
                "root_path": job.path,
                "send_progress": 1,
                "recursive": i32::from(job.recursive),
                "threaded": 1,
                "scan_id": scan_id,
            })),
        )?;
        let mut state = ScanState::new(Some(scan_id), job.per_file, now_f64());
        let mut last_event = Instant::now();
        loop {
            if sink.cancelled() {
                let mut r = state.finish(now_f64());
                r.cancelled = true;
                return Ok(r);
            }
            match conn.read1()? {
                Read1::Frame(Frame::Json(v)) => {
                    last_event = Instant::now();
                    match classify(v) {
                        Incoming::Notification { method, params } if method == "notify_event" => {
                            match state.on_event(parse_gen3(&params), now_f64() as i64) {
                                Step::Done => return Ok(state.finish(now_f64())),
                                Step::Progress(p) => {
                                    if !sink.progress(&p) {
                                        let mut r = state.finish(now_f64());
                                        r.cancelled = true;
                                        return Ok(r);
                                    }
                                }
                                Step::Continue => {}
                            }
                        }
                        Incoming::Error { id, code, message } if id.is_none_or(|i| i == req) => {
                            return Err(TransportError::Failed(format!(
                                "the daemon refused the scan of {}: error {code}: {message}",
                                job.path
                            )));
                        }
                        Incoming::Notification { method, .. } => {
                            sink.warn(&format!("ignored notification {method:?} from the daemon"))
                        }
                        _ => {}
                    }
                }
                Read1::Frame(Frame::Invalid(why)) => {
                    last_event = Instant::now();
                    sink.warn(&format!(
                        "ignored a frame from the daemon that is not JSON: {why}"
                    ));
                }
                Read1::Idle => {
                    if last_event.elapsed() >= self.idle_timeout {
                        return Err(TransportError::Timeout(format!(
                            "the Armadito daemon sent nothing for {} s and never reported the end \
                             of the scan of {}",
                            self.idle_timeout.as_secs(),
                            job.path
                        )));
                    }
                }
                Read1::Eof => {
                    let mut r = state.finish(now_f64());
                    r.interrupted = Some(format!(
                        "the Armadito daemon closed the connection before the end of the scan \
                         (after {} files)",
                        r.scanned
                    ));
                    return Ok(r);
                }
            }
        }
    }
}

/// `listen` subscription: every detection the daemon sees (real-time included).
pub fn listen_params() -> Value {
    json!({"detection": 1, "on_demand": 1, "on_demand_progress": 0, "quarantine": 1,
           "real_time_prot": 1, "av_update": 1})
}

/// Reads one `listen` connection until `stop()` or the daemon goes away, handing each
/// detection to `on_detection`.
pub fn listen_loop(
    conn: &mut Conn,
    stop: &dyn Fn() -> bool,
    on_detection: &mut dyn FnMut(crate::wire::event::DetectionEv),
) -> Result<(), TransportError> {
    conn.send("listen", Some(listen_params()))?;
    while !stop() {
        match conn.read1()? {
            Read1::Frame(Frame::Json(v)) => {
                if let Incoming::Notification { method, params } = classify(v)
                    && method == "notify_event"
                    && let Event::Detection(d) = parse_gen3(&params)
                {
                    on_detection(d);
                }
            }
            Read1::Eof => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}
