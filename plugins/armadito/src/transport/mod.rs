//! The three ways to talk to Armadito AV: JSON-RPC over the daemon's unix socket ([`rpc`]),
//! the `armadito-info`/`armadito-scan` tools ([`cli`]), the 0.11–0.12 REST API ([`rest`]).
//!
//! Invariants:
//! * Every transport verifies its peer before sending anything ([`crate::peer`]). A refused
//!   peer is final: auto mode never falls back to the CLI (whose tools would talk to the same
//!   impostor without checking) or to another transport.
//! * Auto mode moves to the next transport only when one is [`TransportError::Unavailable`]
//!   (nothing listening, tool not installed).
//! * A scan never hangs: a silent daemon ends it with [`TransportError::Timeout`]; a daemon
//!   that goes away mid-scan ends it with a partial result (`ScanResult::interrupted`).

pub mod cli;
pub mod exec;
pub mod rest;
pub mod rpc;

use armadito_plugin_api::{ScanProgress, ScanResult};

use crate::peer::PeerError;
use crate::wire::info::AvInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rpc,
    Cli,
    Rest,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rpc => "rpc",
            Kind::Cli => "cli",
            Kind::Rest => "rest",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Nothing to talk to (no daemon listening, tool not installed).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("{0}")]
    Timeout(String),
    /// The daemon or tool answered something we cannot use, or failed.
    #[error("{0}")]
    Failed(String),
}

/// What a scan reports to, and asks of, the agent while it runs.
pub trait ScanSink {
    /// Report progress; `false` = the agent asks to cancel.
    fn progress(&self, p: &ScanProgress) -> bool;
    fn cancelled(&self) -> bool;
    /// A recoverable oddity (invalid frame, unknown event): logged, not fatal.
    fn warn(&self, message: &str);
}

/// One scan of one root path.
pub struct ScanJob<'a> {
    pub path: &'a str,
    pub recursive: bool,
    pub per_file: bool,
}

/// What every transport can do.
pub trait Transport {
    fn kind(&self) -> Kind;
    fn status(&self) -> Result<AvInfo, TransportError>;
    fn scan(&self, job: &ScanJob<'_>, sink: &dyn ScanSink) -> Result<ScanResult, TransportError>;
}

/// Wall-clock unix time, sub-second.
pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A scan id that will not collide with another client's (the daemon filters on it).
pub fn new_scan_id() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = crate::fnv64(&[&nanos.to_le_bytes(), &std::process::id().to_le_bytes()]);
    (mixed >> 34) as i64 + 1
}
