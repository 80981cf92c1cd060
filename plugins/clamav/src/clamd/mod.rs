//! clamd protocol client (docs/backends.md §B): transport, commands, reply parsing.
//!
//! Invariants:
//! * No policy lives here: this module never decides what to scan, when to fall back, or
//!   what a verdict means to the user. It sends commands and returns typed replies.
//! * Only `z`-prefixed commands are used; outside IDSESSION each command gets its own
//!   connection and the reply is read until clamd closes it.
//! * Every socket has connect/read/write timeouts, so no call blocks forever, and every
//!   failure names the endpoint (`clamd not reachable at …`).

pub mod conn;
pub mod reply;
pub mod session;
pub mod trust;

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use conn::Stream;
pub use reply::{ScanReply, Stats, Verdict, VersionInfo};
pub use session::Session;

use conn::{ReplyReader, encode_command};

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Unix stream socket (`LocalSocket`); the only transport that supports FILDES.
    Unix(PathBuf),
    /// `host:port` (`TCPSocket`/`TCPAddr`).
    Tcp(String),
}

impl Endpoint {
    pub fn is_unix(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }

    /// True when clamd runs on this host, so it can open our paths itself (SCAN by path).
    pub fn is_local(&self) -> bool {
        match self {
            Endpoint::Unix(_) => true,
            Endpoint::Tcp(addr) => {
                let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Socket timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Per read; a reply must come within it (for a scan: one file's scan time).
    pub read: Duration,
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(180),
            write: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("clamd not reachable at {endpoint}: {source}")]
    Unreachable {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error("refusing the socket {endpoint}: {reason}")]
    Untrusted { endpoint: Endpoint, reason: String },
    #[error("clamd not reachable (tried {tried}): {last}")]
    NoneReachable { tried: String, last: String },
    #[error("clamd at {endpoint} did not answer in time ({source})")]
    Timeout {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error("connection to clamd at {endpoint} failed: {source}")]
    Io {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error("clamd at {endpoint} closed the connection without answering {command}")]
    NoReply {
        endpoint: Endpoint,
        command: &'static str,
    },
    #[error("unexpected reply from clamd at {endpoint} to {command}: {reply:?}")]
    UnexpectedReply {
        endpoint: Endpoint,
        command: &'static str,
        reply: String,
    },
}

impl ClamdError {
    /// Classify an I/O error on an established connection.
    pub fn io(endpoint: &Endpoint, source: io::Error) -> ClamdError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClamdError::Timeout {
                endpoint: endpoint.clone(),
                source,
            },
            _ => ClamdError::Io {
                endpoint: endpoint.clone(),
                source,
            },
        }
    }

    /// True when clamd is down or unreachable (as opposed to a protocol surprise).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClamdError::Unreachable { .. }
                | ClamdError::NoneReachable { .. }
                | ClamdError::Untrusted { .. }
        )
    }
}

/// A clamd endpoint plus timeouts. Cheap to clone; every call opens its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    timeouts: Timeouts,
}

impl Client {
    pub fn new(endpoint: Endpoint, timeouts: Timeouts) -> Client {
        Client { endpoint, timeouts }
    }

    /// The first endpoint of `candidates` that answers PING.
    pub fn first_reachable(
        candidates: &[Endpoint],
        timeouts: Timeouts,
    ) -> Result<Client, ClamdError> {
        let mut last = None;
        for endpoint in candidates {
            let client = Client::new(endpoint.clone(), timeouts);
            match client.ping() {
                Ok(()) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        match (candidates.len(), last) {
            (1, Some(e)) => Err(e),
            (_, last) => Err(ClamdError::NoneReachable {
                tried: candidates
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                last: last.map_or_else(|| "no endpoint configured".into(), |e| e.to_string()),
            }),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn connect(&self) -> Result<Stream, ClamdError> {
        Stream::connect(&self.endpoint, &self.timeouts)
    }

    /// Send one command on a fresh connection and return every reply until EOF.
    fn one_shot(
        &self,
        command: &'static str,
        arg: Option<&[u8]>,
    ) -> Result<Vec<String>, ClamdError> {
        let stream = self.connect()?;
        let mut buf = Vec::new();
        encode_command(&mut buf, command, arg);
        (&stream)
            .write_all(&buf)
            .map_err(|e| ClamdError::io(&self.endpoint, e))?;
        stream.shutdown_write();
        self.read_replies(&stream, command)
    }

    fn read_replies(
        &self,
        stream: &Stream,
        command: &'static str,
    ) -> Result<Vec<String>, ClamdError> {
        let replies = ReplyReader::new(stream)
            .read_all()
            .map_err(|e| ClamdError::io(&self.endpoint, e))?;
        if replies.is_empty() {
            return Err(ClamdError::NoReply {
                endpoint: self.endpoint.clone(),
                command,
            });
        }
        Ok(replies
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .collect())
    }

    fn unexpected(&self, command: &'static str, reply: &str) -> ClamdError {
        ClamdError::UnexpectedReply {
            endpoint: self.endpoint.clone(),
            command,
            reply: reply.chars().take(200).collect(),
        }
    }

    /// `PING` → `PONG`.
    pub fn ping(&self) -> Result<(), ClamdError> {
        let replies = self.one_shot("PING", None)?;
        match replies.first().map(|r| r.trim()) {
            Some("PONG") => Ok(()),
            other => Err(self.unexpected("PING", other.unwrap_or_default())),
        }
    }

    /// `VERSION` → engine, daily version and date.
    pub fn version(&self) -> Result<VersionInfo, ClamdError> {
        let replies = self.one_shot("VERSION", None)?;
        let first = replies.first().map(String::as_str).unwrap_or_default();
        reply::parse_version(first).ok_or_else(|| self.unexpected("VERSION", first))
    }

    /// `STATS` → thread and queue figures.
    pub fn stats(&self) -> Result<Stats, ClamdError> {
        let replies = self.one_shot("STATS", None)?;
        let text = replies.join("\n");
        if !text.contains("POOLS:") {
            return Err(self.unexpected("STATS", &text));
        }
        Ok(reply::parse_stats(&text))
    }

    /// `RELOAD` (signatures only, not clamd.conf).
    pub fn reload(&self) -> Result<(), ClamdError> {
        let replies = self.one_shot("RELOAD", None)?;
        match replies.first().map(|r| r.trim()) {
            Some("RELOADING") => Ok(()),
            other => Err(self.unexpected("RELOAD", other.unwrap_or_default())),
        }
    }

    /// `SCAN <path>` on its own connection; clamd may send several replies for one path
    /// (an error, then `OK`), so all are returned. `path` must be absolute.
    pub fn scan_path(&self, path: &Path) -> Result<Vec<ScanReply>, ClamdError> {
        let sent = path.to_string_lossy();
        let replies = self.one_shot("SCAN", Some(path.as_os_str().as_bytes()))?;
        Ok(replies
            .iter()
            .map(|r| reply::parse_scan_reply(r, Some(&sent)))
            .collect())
    }

    /// `INSTREAM`: stream `reader` in chunks. The caller keeps the total under clamd's
    /// StreamMaxLength; if clamd closes early anyway (size limit), its reply is still read
    /// and returned.
    pub fn instream(&self, reader: &mut dyn Read) -> Result<ScanReply, ClamdError> {
        let stream = self.connect()?;
        let mut cmd = Vec::new();
        encode_command(&mut cmd, "INSTREAM", None);
        let io = |e| ClamdError::io(&self.endpoint, e);
        (&stream).write_all(&cmd).map_err(io)?;
        let mut chunk = vec![0u8; 64 * 1024 + 4];
        let mut send_failed = None;
        loop {
            let n = match reader.read(&mut chunk[4..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            chunk[..4].copy_from_slice(&(n as u32).to_be_bytes());
            if let Err(e) = (&stream).write_all(&chunk[..4 + n]) {
                // clamd closes on a size error: stop sending, its reply explains why.
                send_failed = Some(e);
                break;
            }
            if n == 0 {
                break;
            }
        }
        match self.read_replies(&stream, "INSTREAM") {
            Ok(replies) => Ok(reply::parse_scan_reply(&replies[0], Some("stream"))),
            Err(e) => Err(send_failed.map_or(e, io)),
        }
    }

    /// `FILDES`: pass an open descriptor (unix socket only).
    pub fn fildes(&self, fd: BorrowedFd<'_>) -> Result<ScanReply, ClamdError> {
        let stream = self.connect()?;
        let mut cmd = Vec::new();
        encode_command(&mut cmd, "FILDES", None);
        let io = |e| ClamdError::io(&self.endpoint, e);
        (&stream).write_all(&cmd).map_err(io)?;
        stream.send_fd(fd).map_err(io)?;
        stream.shutdown_write();
        let replies = self.read_replies(&stream, "FILDES")?;
        Ok(reply::parse_scan_reply(&replies[0], None))
    }

    /// Start an IDSESSION for pipelined requests.
    pub fn session(&self) -> Result<Session, ClamdError> {
        Session::open(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_locality() {
        assert!(Endpoint::Unix("/x".into()).is_local());
        assert!(Endpoint::Tcp("127.0.0.1:3310".into()).is_local());
        assert!(Endpoint::Tcp("[::1]:3310".into()).is_local());
        assert!(Endpoint::Tcp("localhost:3310".into()).is_local());
        assert!(!Endpoint::Tcp("10.0.0.5:3310".into()).is_local());
    }

    #[test]
    fn unreachable_names_the_endpoint() {
        let c = Client::new(
            Endpoint::Unix("/nonexistent/clamd.ctl".into()),
            Timeouts::default(),
        );
        let e = c.ping().unwrap_err();
        assert!(e.is_unreachable());
        assert!(
            e.to_string()
                .starts_with("clamd not reachable at /nonexistent/clamd.ctl"),
            "{e}"
        );
        let e = Client::first_reachable(
            &[
                Endpoint::Unix("/nonexistent/a".into()),
                Endpoint::Unix("/nonexistent/b".into()),
            ],
            Timeouts::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/a, /nonexistent/b"),
            "{e}"
        );
    }

    #[test]
    fn tcp_connect_refused_is_unreachable() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::new(
            Endpoint::Tcp(format!("127.0.0.1:{port}")),
            Timeouts::default(),
        );
        let e = c.version().unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert!(e.to_string().contains(&format!("tcp:127.0.0.1:{port}")));
    }

    #[test]
    fn silent_server_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (_conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(800));
        });
        let c = Client::new(
            Endpoint::Unix(path),
            Timeouts {
                read: Duration::from_millis(200),
                ..Timeouts::default()
            },
        );
        let e = c.ping().unwrap_err();
        assert!(matches!(e, ClamdError::Timeout { .. }), "{e}");
        t.join().unwrap();
    }
}
