//! Transport: one stream socket to clamd (unix or TCP), NUL-framed replies, fd passing.
//!
//! Invariants:
//! * Every stream gets read and write timeouts right after connect.
//! * Commands are always sent in the `z` form (`z<COMMAND>[ <arg>]\0`); a path is raw bytes
//!   and cannot contain NUL, so framing is unambiguous.
//! * A reply is the bytes up to a NUL, or up to EOF for the last one; replies longer than
//!   [`MAX_REPLY`] are refused instead of buffered without bound.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::{ClamdError, Endpoint, Timeouts};

/// Longest reply accepted: a PATH_MAX path plus signature name and message, with room.
pub const MAX_REPLY: usize = 64 * 1024;

/// A connected stream socket.
#[derive(Debug)]
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub fn connect(endpoint: &Endpoint, timeouts: &Timeouts) -> Result<Stream, ClamdError> {
        let unreachable = |source: io::Error| ClamdError::Unreachable {
            endpoint: endpoint.clone(),
            source,
        };
        let stream = match endpoint {
            // A unix connect never waits on the network: it succeeds, or fails at once
            // (ENOENT, ECONNREFUSED, EAGAIN when clamd's backlog is full).
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).map_err(unreachable)?),
            Endpoint::Tcp(addr) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "address did not resolve");
                let mut connected = None;
                for sa in addr.to_socket_addrs().map_err(unreachable)? {
                    match TcpStream::connect_timeout(&sa, timeouts.connect) {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = connected.ok_or_else(|| unreachable(last))?;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        };
        stream
            .set_timeouts(timeouts.read, timeouts.write)
            .map_err(|source| ClamdError::Io {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(stream)
    }

    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
        }
    }

    /// A second handle on the same socket (reader half, or a handle to shut it down from
    /// another thread on cancel).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Shut both directions down: any thread blocked on this socket wakes up with EOF/EPIPE.
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Half-close: tells clamd no more commands follow (used after one-shot commands).
    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// Send `fd` with one NUL byte as `SCM_RIGHTS` ancillary data (what clamd's FILDES
    /// expects after the command). Unix sockets only.
    pub fn send_fd(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let Stream::Unix(sock) = self else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptor passing needs a unix socket",
            ));
        };
        send_fd(sock.as_fd(), fd)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tcp(s) => (&*s).read(buf),
        }
    }
}

impl Stream {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}

/// Writes go through `send(MSG_NOSIGNAL)`: clamd closing early (INSTREAM size limit, a
/// stopped daemon) must give EPIPE, never a SIGPIPE that would kill a host process which
/// did not ignore it.
impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: the fd is open for the lifetime of `self`; `buf` is valid for reads
            // of `buf.len()` bytes.
            let n = unsafe {
                libc::send(
                    self.raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

/// Append the `z` form of a command to `out`: `z<command>[ <arg>]\0`.
pub fn encode_command(out: &mut Vec<u8>, command: &str, arg: Option<&[u8]>) {
    out.push(b'z');
    out.extend_from_slice(command.as_bytes());
    if let Some(arg) = arg {
        out.push(b' ');
        out.extend_from_slice(arg);
    }
    out.push(0);
}

/// Splits a byte stream into NUL-terminated replies.
#[derive(Debug)]
pub struct ReplyReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already returned.
    start: usize,
    eof: bool,
}

impl<R: Read> ReplyReader<R> {
    pub fn new(inner: R) -> Self {
        ReplyReader {
            inner,
            buf: Vec::with_capacity(4096),
            start: 0,
            eof: false,
        }
    }

    /// The next reply without its terminator; `Ok(None)` at a clean EOF. Bytes after the last
    /// NUL before EOF form a final reply (legacy `\n`-terminated answers end that way).
    pub fn next_reply(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf[self.start..].iter().position(|&b| b == 0) {
                let reply = self.buf[self.start..self.start + pos].to_vec();
                self.start += pos + 1;
                return Ok(Some(reply));
            }
            if self.eof {
                if self.start < self.buf.len() {
                    let reply = self.buf[self.start..].to_vec();
                    self.start = self.buf.len();
                    return Ok(Some(reply));
                }
                return Ok(None);
            }
            if self.buf.len() - self.start > MAX_REPLY {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("clamd reply longer than {MAX_REPLY} bytes"),
                ));
            }
            // Compact, then read more.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let len = self.buf.len();
            self.buf.resize(len + 8192, 0);
            match self.inner.read(&mut self.buf[len..]) {
                Ok(0) => {
                    self.buf.truncate(len);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(len + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(len),
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        }
    }

    /// Is a complete reply already buffered (so `next_reply` will not block)?
    pub fn has_buffered_reply(&self) -> bool {
        self.buf[self.start..].contains(&0)
    }

    /// Every remaining reply until EOF. clamd may reset the connection right after its
    /// last reply (it closes with our unread data pending, e.g. after an INSTREAM size
    /// error): an error after at least one complete reply ends the list instead of
    /// discarding what was said.
    pub fn read_all(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut replies = Vec::new();
        loop {
            match self.next_reply() {
                Ok(Some(r)) => {
                    // A trailing "\n" legacy terminator or an empty tail is not a reply.
                    let r = trim_terminators(r);
                    if !r.is_empty() {
                        replies.push(r);
                    }
                }
                Ok(None) => return Ok(replies),
                Err(_) if !replies.is_empty() => return Ok(replies),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

fn trim_terminators(mut r: Vec<u8>) -> Vec<u8> {
    while r.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        r.pop();
    }
    r
}

/// `sendmsg` one NUL byte carrying `fd` in an `SCM_RIGHTS` control message.
fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut byte = [0u8; 1];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // u64 storage keeps the control buffer aligned for `cmsghdr`.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: zeroed msghdr is valid (null pointers, zero lengths); we then point it at
    // buffers that outlive the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` bytes, enough for one cmsghdr with one c_int, so
    // CMSG_FIRSTHDR is non-null and CMSG_DATA has room for the descriptor.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::other("no room for the SCM_RIGHTS header"));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&raw const raw).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<libc::c_int>(),
        );
    }
    loop {
        // SAFETY: `sock` is a valid open socket for the duration of the call and `msg` is
        // fully initialised above. MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return if n == 1 {
                Ok(())
            } else {
                Err(io::Error::new(io::ErrorKind::WriteZero, "fd not sent"))
            };
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nul_replies_and_keeps_unterminated_tail() {
        let data: &[u8] = b"1: PONG\x002: ClamAV 1.4.6\x00legacy\n";
        let mut r = ReplyReader::new(data);
        assert_eq!(r.next_reply().unwrap().unwrap(), b"1: PONG");
        assert_eq!(r.next_reply().unwrap().unwrap(), b"2: ClamAV 1.4.6");
        assert_eq!(r.next_reply().unwrap().unwrap(), b"legacy\n");
        assert!(r.next_reply().unwrap().is_none());
    }

    #[test]
    fn read_all_drops_empty_tail() {
        let mut r = ReplyReader::new(&b"a: OK\x00"[..]);
        assert_eq!(r.read_all().unwrap(), vec![b"a: OK".to_vec()]);
    }

    /// A reader that yields its data, then fails like a reset connection.
    struct ThenReset(Vec<u8>);
    impl Read for ThenReset {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::from(io::ErrorKind::ConnectionReset));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_reset_after_a_reply_keeps_the_reply() {
        let mut r = ReplyReader::new(ThenReset(b"INSTREAM size limit exceeded. ERROR\0".to_vec()));
        assert_eq!(
            r.read_all().unwrap(),
            vec![b"INSTREAM size limit exceeded. ERROR".to_vec()]
        );
        let mut r = ReplyReader::new(ThenReset(Vec::new()));
        assert!(r.read_all().is_err(), "no reply at all is still an error");
    }

    #[test]
    fn writes_to_a_closed_peer_fail_without_sigpipe() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        // The Rust runtime ignores SIGPIPE; a C host may not. Restore the default action
        // for the write: without MSG_NOSIGNAL this would kill the test process.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let result = (&Stream::Unix(a)).write_all(b"zPING\0");
        unsafe { libc::signal(libc::SIGPIPE, previous) };
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn refuses_endless_reply() {
        let data = vec![b'x'; MAX_REPLY + 20_000];
        let mut r = ReplyReader::new(&data[..]);
        assert!(r.next_reply().is_err());
    }

    #[test]
    fn command_encoding() {
        let mut out = Vec::new();
        encode_command(&mut out, "SCAN", Some(b"/tmp/a b"));
        encode_command(&mut out, "PING", None);
        assert_eq!(out, b"zSCAN /tmp/a b\0zPING\0");
    }

    #[test]
    fn fd_passing_over_socketpair() {
        use std::io::Seek;
        use std::os::fd::FromRawFd;
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello").unwrap();
        file.rewind().unwrap();
        Stream::Unix(a).send_fd(file.as_fd()).unwrap();
        // Receive it with recvmsg and read through the received descriptor.
        let mut byte = [0u8; 1];
        let mut control = vec![0u64; 8];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = 64;
        let n = unsafe { libc::recvmsg(b.as_raw_fd(), &mut msg, 0) };
        assert_eq!(n, 1);
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        assert!(!cmsg.is_null());
        let mut fd: libc::c_int = -1;
        unsafe {
            std::ptr::copy_nonoverlapping(
                libc::CMSG_DATA(cmsg),
                (&raw mut fd).cast::<u8>(),
                std::mem::size_of::<libc::c_int>(),
            )
        };
        let mut received = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut text = String::new();
        received.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
    }
}
