//! IDSESSION: many requests pipelined on one connection (docs/backends.md §B.4).
//!
//! Invariants:
//! * Request ids are assigned here, in send order, starting at 1, exactly as clamd numbers
//!   them; callers map ids back to their own work.
//! * Replies come back out of order, and clamd may send *more than one* reply for an id
//!   (verified: a path-check failure is repeated, a special file gives `ERROR` then `OK`).
//!   The session reports every reply; the caller keeps the first one per id and ignores ids
//!   it no longer waits for.
//! * The caller must bound the number of requests in flight and keep reading replies, or
//!   clamd may consider the client dead-locked and close the session.

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::conn::{ReplyReader, Stream, encode_command};
use super::{ClamdError, Client, Endpoint, reply};

/// A reply inside a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionReply {
    /// `<id>: <text>`
    Tagged(u64, String),
    /// A reply without an id (clamd reports session-level errors that way).
    Untagged(String),
}

/// An open IDSESSION.
#[derive(Debug)]
pub struct Session {
    endpoint: Endpoint,
    writer: Stream,
    reader: ReplyReader<Stream>,
    /// Commands encoded but not yet written (batched into one write by `flush`).
    pending: Vec<u8>,
    last_id: u64,
}

impl Session {
    pub(super) fn open(client: &Client) -> Result<Session, ClamdError> {
        let endpoint = client.endpoint().clone();
        let writer = client.connect()?;
        let reader = writer
            .try_clone()
            .map_err(|e| ClamdError::io(&endpoint, e))?;
        let mut session = Session {
            endpoint,
            writer,
            reader: ReplyReader::new(reader),
            pending: Vec::with_capacity(8192),
            last_id: 0,
        };
        encode_command(&mut session.pending, "IDSESSION", None);
        session.flush()?;
        Ok(session)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle that can shut this session's socket down from another thread (cancel).
    pub fn shutdown_handle(&self) -> Result<Stream, ClamdError> {
        self.writer
            .try_clone()
            .map_err(|e| ClamdError::io(&self.endpoint, e))
    }

    /// Queue `SCAN <path>` (written on the next `flush`); returns its request id.
    pub fn queue_scan(&mut self, path: &Path) -> u64 {
        encode_command(&mut self.pending, "SCAN", Some(path.as_os_str().as_bytes()));
        self.next_id()
    }

    /// Queue `PING` (tests and liveness checks); returns its request id.
    pub fn queue_ping(&mut self) -> u64 {
        encode_command(&mut self.pending, "PING", None);
        self.next_id()
    }

    /// Send `FILDES` with `fd` now (queued commands are flushed first, to keep ids in order).
    pub fn send_fildes(&mut self, fd: BorrowedFd<'_>) -> Result<u64, ClamdError> {
        encode_command(&mut self.pending, "FILDES", None);
        self.flush()?;
        self.writer
            .send_fd(fd)
            .map_err(|e| ClamdError::io(&self.endpoint, e))?;
        Ok(self.next_id())
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Write every queued command.
    pub fn flush(&mut self) -> Result<(), ClamdError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = (&self.writer).write_all(&self.pending);
        self.pending.clear();
        result.map_err(|e| ClamdError::io(&self.endpoint, e))
    }

    /// The next reply; `Ok(None)` when clamd closed the session.
    pub fn recv(&mut self) -> Result<Option<SessionReply>, ClamdError> {
        let Some(raw) = self
            .reader
            .next_reply()
            .map_err(|e| ClamdError::io(&self.endpoint, e))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&raw);
        Ok(Some(match reply::split_session_id(&text) {
            Some((id, rest)) => SessionReply::Tagged(id, rest.to_owned()),
            None => SessionReply::Untagged(text.into_owned()),
        }))
    }

    /// True when a reply is already buffered: `recv` will answer without blocking.
    pub fn has_buffered_reply(&self) -> bool {
        self.reader.has_buffered_reply()
    }

    /// Send `END`. clamd answers the requests still running, then closes; the caller may
    /// keep calling `recv` until `None`, or drop the session.
    pub fn end(&mut self) -> Result<(), ClamdError> {
        encode_command(&mut self.pending, "END", None);
        self.flush()
    }
}
