//! ClamAV backend for the Armadito agent, talking to clamd over its socket protocol.
//!
//! Layout (one folder per concern; only `plugin` knows about the plugin ABI):
//! * [`clamd`]: protocol client (transport, commands, reply parsing). No policy.
//! * [`scan`]: agent-side walk, pipelined scanner, progress, cancel.
//! * [`state`]: VERSION/PING/STATS/db headers/on-access → `BackendState`.
//! * [`alerts`]: detections from clamd's LogFile and the VirusEvent spool, cursor-based.
//! * [`config`]: clamd.conf parse, normalise, rewrite atomically, validate, restart.
//! * [`backend`]: [`ClamavBackend`], the façade the plugin adapter (and tests) call.
//! * `plugin`: the thin ABI adapter (trait impl + export), compiled into the cdylib.
//!
//! Invariants for the whole crate:
//! * Nothing that comes from outside the process (clamd replies, files, clamd.conf, the
//!   settings) is unwrapped: every failure is a typed error or a reported per-file result.
//! * External programs are run with an argv, never through a shell ([`exec`]).
//! * Only the endpoints named by the settings, clamd.conf or the Debian default sockets are
//!   contacted; TCP only when configured; a unix socket only when it belongs to root or to
//!   clamd.conf's `User` (`clamd::trust`).

// The implementation is unix-only (unix sockets, fd passing, inode-based cursors); on other
// hosts only the plugin shell is built, answering `not-supported`.
#[cfg(unix)]
pub mod alerts;
#[cfg(unix)]
pub mod backend;
#[cfg(unix)]
pub mod clamd;
#[cfg(unix)]
pub mod config;
#[cfg(unix)]
pub mod exec;
pub mod plugin;
#[cfg(unix)]
pub mod scan;
pub mod settings;
#[cfg(unix)]
pub mod state;
#[cfg(unix)]
pub mod timeutil;
// clamd over TCP/INSTREAM: the Windows transport (portable, tested on Linux)
pub mod windows_tcp;

#[cfg(unix)]
pub use backend::{BackendError, ClamavBackend};
pub use plugin::ClamavPlugin;
pub use settings::Settings;

#[cfg(unix)]
/// 64-bit FNV-1a over several byte slices (with a separator so ("ab","c") != ("a","bc")).
/// Used for stable ids and file fingerprints, not for security.
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

#[cfg(test)]
mod tests {
    #[test]
    fn fnv_separates_parts() {
        // Known answers: FNV-1a 64 over the parts, each followed by 0xff (values computed
        // independently from the published FNV-1a definition).
        assert_eq!(super::fnv64(&[b"a"]), 0x089b_c907_b544_c769);
        assert_eq!(super::fnv64(&[b""]), 0xaf64_724c_8602_eb6e);
        assert_eq!(super::fnv64(&[b"ab", b"c"]), 0x20ba_9b30_25a8_b421);
        assert_eq!(super::fnv64(&[b"a", b"bc"]), 0xa0a3_542c_19b9_00ab);
    }
}
