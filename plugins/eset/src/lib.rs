//! ESET for Linux backend for the Armadito agent.
//!
//! Two product generations, found automatically ([`backend::EsetBackend::locate`]):
//! * current ESET Endpoint Antivirus (`/opt/eset/eea`) and Server Security (ESSL, ex-EFS,
//!   `/opt/eset/efs`): `upd`, `lic`, `odscan`, `lslog`, `cfg`;
//! * legacy ESETS 4.x (`/opt/eset/esets`): `esets_scan`, `data.txt`, syslog — what the old
//!   Perl agent drove.
//!
//! Layout: [`parse`] (pure parsers of the tools' output, tested on the documented samples),
//! [`dates`], [`alerts`] (cursors), [`backend`] (runs the tools), [`settings`], and the thin
//! ABI adapter `plugin`.
//!
//! Invariants for the whole crate: programs run by absolute path with an argv, a cleared
//! environment and a deadline (`armadito-cli-exec`); nothing from outside the process is
//! unwrapped.

pub mod alerts;
pub mod backend;
pub mod dates;
pub mod parse;
pub mod plugin;
pub mod settings;

pub use backend::EsetBackend;
pub use plugin::EsetPlugin;
pub use settings::Settings;

pub use armadito_cli_exec::cursor::fingerprint as fnv64;
