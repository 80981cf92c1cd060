//! clamd over TCP with INSTREAM only: what the Windows build of this plugin uses (clamd on
//! Windows has no unix socket and no FILDES). Portable code, tested on Linux against a real
//! clamd over its loopback TCP port; only the plugin adapter selects it on Windows.
//!
//! Invariants:
//! * Used only when `[backends.clamav] tcp` is configured: there is no default endpoint.
//! * File contents are streamed only to a loopback endpoint (every resolved address must be
//!   loopback): clamd's TCP socket has no authentication and no encryption.
//! * Never more than the stream limit is sent per file; a larger file is reported as an
//!   error for that file, not truncated into a false "clean".
//! * Every socket has connect, read and write timeouts.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use armadito_plugin_api::{
    BackendState, Detail, Detection, DetectionAction, FileResult, FileStatus, ModuleInfo, OnOff,
    ScanProgress, ScanRequest, ScanResult, ServiceStatus,
};

/// INSTREAM chunk size (clamd accepts any size up to its StreamMaxLength).
const CHUNK: usize = 64 * 1024;
/// Longest reply accepted.
const MAX_REPLY: usize = 64 * 1024;
/// clamd's default StreamMaxLength (25 MB).
pub const DEFAULT_STREAM_MAX: u64 = 25 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error(
        "clamd tcp endpoint {0} is not a loopback address: file contents are only streamed to \
         a clamd on this machine"
    )]
    NotLoopback(String),
    #[error("clamd tcp endpoint {addr} does not resolve: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("clamd not reachable at {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("clamd at {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("clamd at {addr} answered {reply:?}")]
    Protocol { addr: String, reply: String },
}

/// A file's verdict from an INSTREAM reply (`stream: OK`, `stream: <sig> FOUND`, `… ERROR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Found(String),
    Error(String),
}

pub fn parse_reply(reply: &str) -> Verdict {
    let r = reply.trim_end_matches(['\0', '\n', '\r']);
    let r = r.strip_prefix("stream: ").unwrap_or(r);
    if r == "OK" {
        Verdict::Clean
    } else if let Some(sig) = r.strip_suffix(" FOUND") {
        Verdict::Found(sig.trim().to_string())
    } else {
        Verdict::Error(r.trim_end_matches("ERROR").trim().to_string())
    }
}

/// `ClamAV 1.4.6/27000/Tue Dec  3 08:00:00 2024` → (engine, db version).
pub fn parse_version(reply: &str) -> Option<(String, Option<u64>)> {
    let r = reply.trim_matches(['\0', '\n', '\r', ' ']);
    let mut parts = r.splitn(3, '/');
    let engine = parts.next()?.strip_prefix("ClamAV ")?.trim().to_string();
    let db = parts.next().and_then(|v| v.trim().parse().ok());
    (!engine.is_empty()).then_some((engine, db))
}

pub struct TcpClamd {
    addr: String,
    resolved: Vec<SocketAddr>,
    connect_timeout: Duration,
    io_timeout: Duration,
    stream_max: u64,
}

impl TcpClamd {
    /// Resolves `addr` (`host:port`) and refuses any non-loopback address.
    pub fn new(
        addr: &str,
        connect_timeout: Duration,
        io_timeout: Duration,
        stream_max: Option<u64>,
    ) -> Result<TcpClamd, TcpError> {
        let resolved: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|source| TcpError::Resolve {
                addr: addr.into(),
                source,
            })?
            .collect();
        if resolved.is_empty() || resolved.iter().any(|a| !a.ip().is_loopback()) {
            return Err(TcpError::NotLoopback(addr.into()));
        }
        Ok(TcpClamd {
            addr: addr.into(),
            resolved,
            connect_timeout,
            io_timeout,
            stream_max: stream_max.unwrap_or(DEFAULT_STREAM_MAX),
        })
    }

    fn io(&self, source: io::Error) -> TcpError {
        TcpError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn connect(&self) -> Result<TcpStream, TcpError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for sa in &self.resolved {
            match TcpStream::connect_timeout(sa, self.connect_timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.io_timeout))
                        .map_err(|e| self.io(e))?;
                    s.set_write_timeout(Some(self.io_timeout))
                        .map_err(|e| self.io(e))?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(TcpError::Unreachable {
            addr: self.addr.clone(),
            source: last,
        })
    }

    fn read_reply(&self, s: &mut TcpStream) -> Result<String, TcpError> {
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if let Some(end) = reply.iter().position(|b| *b == 0) {
                reply.truncate(end);
                break;
            }
            if reply.len() > MAX_REPLY {
                return Err(TcpError::Protocol {
                    addr: self.addr.clone(),
                    reply: "(reply too long)".into(),
                });
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// A one-word command (`PING`, `VERSION`) in the `z` form.
    pub fn command(&self, cmd: &str) -> Result<String, TcpError> {
        let mut s = self.connect()?;
        s.write_all(format!("z{cmd}\0").as_bytes())
            .map_err(|e| self.io(e))?;
        self.read_reply(&mut s)
    }

    /// Streams one file; `Ok(Err(why))` is a per-file problem (unreadable, too big).
    pub fn instream(&self, path: &Path) -> Result<Result<Verdict, String>, TcpError> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("cannot open: {e}"))),
        };
        match file.metadata() {
            Ok(m) if m.len() > self.stream_max => {
                return Ok(Err(format!(
                    "{} bytes, above the INSTREAM limit of {} bytes",
                    m.len(),
                    self.stream_max
                )));
            }
            Ok(_) => {}
            Err(e) => return Ok(Err(format!("cannot stat: {e}"))),
        }
        let mut s = self.connect()?;
        s.write_all(b"zINSTREAM\0").map_err(|e| self.io(e))?;
        let mut buf = vec![0u8; CHUNK];
        let mut sent: u64 = 0;
        loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) => return Ok(Err(format!("read failed: {e}"))),
            };
            if n == 0 {
                break;
            }
            sent += n as u64;
            if sent > self.stream_max {
                return Ok(Err(format!(
                    "grew above the INSTREAM limit of {} bytes",
                    self.stream_max
                )));
            }
            let len = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
            s.write_all(&len).map_err(|e| self.io(e))?;
            s.write_all(&buf[..n]).map_err(|e| self.io(e))?;
        }
        s.write_all(&0u32.to_be_bytes()).map_err(|e| self.io(e))?;
        let reply = self.read_reply(&mut s)?;
        Ok(Ok(parse_reply(&reply)))
    }

    pub fn state(&self) -> BackendState {
        let mut state = BackendState {
            product_name: "ClamAV".into(),
            ..BackendState::default()
        };
        match self.command("PING") {
            Ok(r) if r.trim() == "PONG" => state.service_status = ServiceStatus::Running,
            Ok(r) => {
                state.service_status = ServiceStatus::Unknown;
                state
                    .details
                    .push(Detail::new("service:error", format!("PING answered {r:?}")));
            }
            Err(e) => {
                state.service_status = ServiceStatus::Stopped;
                state
                    .details
                    .push(Detail::new("service:error", e.to_string()));
                return state;
            }
        }
        if let Some((engine, db)) = self
            .command("VERSION")
            .ok()
            .as_deref()
            .and_then(parse_version)
        {
            state.product_version = engine;
            if let Some(db) = db {
                state.modules.push(ModuleInfo {
                    name: "daily".into(),
                    version: Some(db.to_string()),
                    ..ModuleInfo::default()
                });
            }
        }
        state.realtime = OnOff::Unknown;
        state.details.push(Detail::new(
            "transport",
            format!("tcp {} (INSTREAM)", self.addr),
        ));
        state
    }

    /// Walks the request's paths and streams each regular file; `report` returns false to
    /// cancel.
    pub fn scan(
        &self,
        req: &ScanRequest,
        report: &dyn Fn(&ScanProgress) -> bool,
    ) -> Result<ScanResult, TcpError> {
        let now = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        };
        let started = Instant::now();
        let mut r = ScanResult {
            start_time: now(),
            ..ScanResult::default()
        };
        let mut stack: Vec<(std::path::PathBuf, bool)> =
            req.paths.iter().map(|p| (p.into(), true)).collect();
        'walk: while let Some((path, top)) = stack.pop() {
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    r.errors += 1;
                    r.files.push(file_result(
                        &path,
                        FileStatus::Error,
                        None,
                        Some(e.to_string()),
                    ));
                    continue;
                }
            };
            if meta.is_dir() {
                if top || req.recursive {
                    match std::fs::read_dir(&path) {
                        Ok(entries) => stack.extend(entries.flatten().map(|e| (e.path(), false))),
                        Err(e) => {
                            r.errors += 1;
                            r.files.push(file_result(
                                &path,
                                FileStatus::Error,
                                None,
                                Some(e.to_string()),
                            ));
                        }
                    }
                }
                continue;
            }
            if !meta.is_file() || req.max_file_size.is_some_and(|m| meta.len() > m) {
                continue;
            }
            r.scanned += 1;
            match self.instream(&path)? {
                Ok(Verdict::Clean) => {
                    r.files
                        .push(file_result(&path, FileStatus::Clean, None, None));
                }
                Ok(Verdict::Found(sig)) => {
                    r.malware += 1;
                    r.detections.push(Detection {
                        threat_name: sig.clone(),
                        file_path: path.to_string_lossy().into_owned(),
                        action: DetectionAction::None,
                        detection_time: now(),
                        ..Detection::default()
                    });
                    r.files
                        .push(file_result(&path, FileStatus::Malware, Some(sig), None));
                }
                Ok(Verdict::Error(why)) | Err(why) => {
                    r.errors += 1;
                    r.files
                        .push(file_result(&path, FileStatus::Error, None, Some(why)));
                }
            }
            if !report(&ScanProgress {
                files_scanned: r.scanned,
                malware: r.malware,
                errors: r.errors,
                current_path: Some(path.to_string_lossy().into_owned()),
                ..ScanProgress::default()
            }) {
                r.cancelled = true;
                break 'walk;
            }
        }
        if !req.per_file_results {
            r.files.clear();
        }
        r.end_time = now();
        r.duration_secs = started.elapsed().as_secs_f64();
        Ok(r)
    }
}

fn file_result(
    path: &Path,
    status: FileStatus,
    threat: Option<String>,
    msg: Option<String>,
) -> FileResult {
    FileResult {
        path: path.to_string_lossy().into_owned(),
        status,
        threat_name: threat,
        message: msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply("stream: OK\0"), Verdict::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Test-Signature FOUND"),
            Verdict::Found("Eicar-Test-Signature".into())
        );
        assert_eq!(
            parse_reply("INSTREAM size limit exceeded. ERROR"),
            Verdict::Error("INSTREAM size limit exceeded.".into())
        );
        assert_eq!(
            parse_version("ClamAV 1.4.6/27000/Tue Dec  3 08:00:00 2024\n"),
            Some(("1.4.6".into(), Some(27000)))
        );
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn only_loopback_endpoints() {
        let t = Duration::from_secs(1);
        assert!(TcpClamd::new("127.0.0.1:3310", t, t, None).is_ok());
        assert!(TcpClamd::new("[::1]:3310", t, t, None).is_ok());
        let err = TcpClamd::new("192.0.2.1:3310", t, t, None).err().unwrap();
        assert!(matches!(err, TcpError::NotLoopback(_)), "{err}");
        assert!(TcpClamd::new("no-port", t, t, None).is_err());
    }
}
