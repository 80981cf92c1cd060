//! Parsers for what the ESET tools print. No I/O: every function takes text and returns typed
//! values, so each is unit-tested on the verbatim samples of `eset-kaspersky.md` (§1.8).
//!
//! Invariants:
//! * Parsers never panic and never unwrap: unknown lines are skipped, a missing value is
//!   `None`.
//! * Both spellings of a renamed label are accepted (`threat=` → `result=`, `Infected:` →
//!   `Detected:`), so one agent drives ESETS 4.x and EEA/ESSL 7–13.
//! * Dates are returned as civil (naive) times; turning them into unix time (local zone)
//!   is the caller's job ([`crate::dates`]).

pub mod config;
pub mod lslog;
pub mod odscan;
pub mod product;
pub mod syslog;
