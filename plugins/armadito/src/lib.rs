//! Armadito AV backend for the Armadito agent.
//!
//! Layout (one folder per concern; only `plugin` knows about the plugin ABI):
//! * [`wire`]: the daemon's messages (framing, JSON-RPC, events of both generations, status).
//!   No I/O.
//! * [`transport`]: JSON-RPC over the unix socket, the CLI tools, the legacy REST API.
//! * [`peer`]: who serves the socket (root or the configured daemon user), checked first.
//! * [`scan`]: events → progress and `ScanResult` (no I/O).
//! * [`alerts`]: `armadito-journal` syslog/journald history with a cursor, live `listen` queue.
//! * [`config`]: armadito.conf + conf.d, allow-listed changes, atomic rewrite, restart.
//! * [`backend`]: [`ArmaditoBackend`], the façade; `plugin`: the ABI adapter.
//!
//! Invariants for the whole crate:
//! * Nothing from outside the process (daemon replies, tool output, files, settings) is
//!   unwrapped; failures are typed errors or reported partial results.
//! * Programs run by absolute path with an argv and a cleared environment, never a shell.
//! * No byte is sent to a socket whose owner is not root or the configured daemon user.

// Armadito AV exists for Linux only (abstract unix sockets, SO_PEERCRED, /proc/net/tcp,
// syslog): elsewhere only the plugin shell is built, answering `not-supported`.
#[cfg(target_os = "linux")]
pub mod alerts;
#[cfg(target_os = "linux")]
pub mod backend;
#[cfg(target_os = "linux")]
pub mod config;
#[cfg(target_os = "linux")]
pub mod peer;
pub mod plugin;
pub mod scan;
pub mod settings;
#[cfg(target_os = "linux")]
pub mod transport;
pub mod wire;

#[cfg(target_os = "linux")]
pub use backend::{ArmaditoBackend, BackendError};
pub use plugin::ArmaditoPlugin;
pub use settings::Settings;

/// 64-bit FNV-1a over several byte slices (separated, so ("ab","c") != ("a","bc")). Stable
/// ids and de-duplication keys, not security.
pub fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
