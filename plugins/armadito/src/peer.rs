//! Who is on the other end: any local user can bind the daemon's abstract socket or port 8888
//! while the daemon is down, and would then receive our scan paths and answer with forged
//! results. Every connection is checked before a single byte is sent.
//!
//! Invariants:
//! * Unix socket: the peer's uid comes from the kernel (`SO_PEERCRED`), not from anything the
//!   peer says.
//! * TCP: the uid of the server side of *our* connection (the `/proc/net/tcp{,6}` entry whose
//!   local address is the server and whose remote address is our local address) — the
//!   kernel copies it from the listening socket's owner. The listener entry is the fallback.
//! * Allowed: root and the configured daemon user. Anything else, or a uid that cannot be
//!   determined, is refused.
//! * Parsing of `/proc/net/tcp` is a pure function, tested on fixtures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(
        "refused {what}: it belongs to uid {uid}, not to root or the configured daemon_user \
         (another local user may be impersonating the Armadito daemon); nothing was sent"
    )]
    Untrusted { what: String, uid: u32 },
    #[error("cannot verify the owner of {what}: {reason}; nothing was sent")]
    Unknown { what: String, reason: String },
    #[error("daemon_user {0:?} is not a known user")]
    NoSuchUser(String),
}

/// The uids allowed to serve us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub daemon_uid: Option<u32>,
}

impl Trusted {
    /// `daemon_user`: a user name or a numeric uid.
    pub fn new(daemon_user: Option<&str>) -> Result<Trusted, PeerError> {
        let daemon_uid = match daemon_user {
            None | Some("") => None,
            Some(u) => Some(match u.parse::<u32>() {
                Ok(n) => n,
                Err(_) => uid_of(u).ok_or_else(|| PeerError::NoSuchUser(u.to_string()))?,
            }),
        };
        Ok(Trusted { daemon_uid })
    }

    pub fn check(&self, uid: u32, what: &str) -> Result<(), PeerError> {
        if uid == 0 || Some(uid) == self.daemon_uid {
            Ok(())
        } else {
            Err(PeerError::Untrusted {
                what: what.to_string(),
                uid,
            })
        }
    }
}

fn uid_of(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, correctly sized storage owned by this frame.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(pwd.pw_uid)
}

/// The uid of the process on the other end of a connected unix socket.
pub fn unix_peer_uid(sock: &impl AsRawFd) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub uid: u32,
}

const TCP_LISTEN: u8 = 0x0A;

fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        // the kernel prints the in-memory (network order) word as a native integer
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (k, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(k * 8..k * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(TcpEntry {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                uid: f.get(7)?.parse().ok()?,
            })
        })
        .collect()
}

/// The uid serving `server` for our connection from `client`.
pub fn tcp_owner(entries: &[TcpEntry], server: SocketAddr, client: SocketAddr) -> Option<u32> {
    entries
        .iter()
        .find(|e| e.local == server && e.remote == client)
        .or_else(|| {
            entries.iter().find(|e| {
                e.state == TCP_LISTEN
                    && e.local.port() == server.port()
                    && (e.local.ip() == server.ip() || e.local.ip().is_unspecified())
            })
        })
        .map(|e| e.uid)
}

/// Reads the kernel's tables and finds the owner of `server` for the connection `client`.
pub fn tcp_peer_uid(server: SocketAddr, client: SocketAddr) -> Result<u32, String> {
    let mut entries = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(file) {
            Ok(t) => entries.extend(parse_proc_net_tcp(&t)),
            Err(e) if file.ends_with('6') => drop(e),
            Err(e) => return Err(format!("{file}: {e}")),
        }
    }
    tcp_owner(&entries, server, client)
        .ok_or_else(|| format!("no socket for {server} in /proc/net/tcp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000    65534        0 41181 1 0000000000000000 100 0 0 10 0
   1: 0100007F:22B8 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000   998        0 41300 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:A1B2 0100007F:22B8 01 00000000:00000000 00:00000000 00000000     0        0 41299 1 0000000000000000 20 4 30 10 -1
   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1
";

    #[test]
    fn parses_the_kernel_table() {
        let e = parse_proc_net_tcp(FIXTURE);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].local, "127.0.0.1:8888".parse().unwrap());
        assert_eq!(e[0].state, TCP_LISTEN);
        assert_eq!(e[0].uid, 65534);
        let server = "127.0.0.1:8888".parse().unwrap();
        // our connection's server side first (uid 998), then the listener
        assert_eq!(
            tcp_owner(&e, server, "127.0.0.1:41394".parse().unwrap()),
            Some(998)
        );
        assert_eq!(
            tcp_owner(&e, server, "127.0.0.1:1".parse().unwrap()),
            Some(65534)
        );
        assert_eq!(
            tcp_owner(
                &e,
                "127.0.0.1:22".parse().unwrap(),
                "127.0.0.1:1".parse().unwrap()
            ),
            Some(0),
            "a wildcard listener"
        );
        assert_eq!(
            tcp_owner(
                &e,
                "127.0.0.1:9".parse().unwrap(),
                "127.0.0.1:1".parse().unwrap()
            ),
            None
        );
        assert!(parse_proc_net_tcp("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn v6_mapped_addresses() {
        let a = parse_addr("0000000000000000FFFF00000100007F:22B8").unwrap();
        assert_eq!(a, "127.0.0.1:8888".parse().unwrap());
        let a = parse_addr("00000000000000000000000001000000:0050").unwrap();
        assert_eq!(a, "[::1]:80".parse().unwrap());
    }

    #[test]
    fn trust_rules() {
        let t = Trusted::new(Some("nobody")).unwrap();
        assert_eq!(t.daemon_uid, Some(65534));
        assert!(t.check(0, "x").is_ok());
        assert!(t.check(65534, "x").is_ok());
        let e = Trusted::new(None)
            .unwrap()
            .check(65534, "the socket")
            .unwrap_err();
        assert!(e.to_string().contains("uid 65534"), "{e}");
        assert!(Trusted::new(Some("no-such-user-here")).is_err());
        assert_eq!(Trusted::new(Some("123")).unwrap().daemon_uid, Some(123));
    }

    #[test]
    fn so_peercred_sees_our_own_uid() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        // SAFETY: getuid has no preconditions
        assert_eq!(unix_peer_uid(&a).unwrap(), unsafe { libc::getuid() });
    }
}
