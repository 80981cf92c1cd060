//! Kaspersky backend for the Armadito agent.
//!
//! * Kaspersky Endpoint Security for Linux (KESL 10–12): `kesl-control --app-info`,
//!   `--get-task-state 1`, `--scan-file … --action Skip`, `-E --query` (event log, `EventId`
//!   cursor), `--get-settings`.
//! * Kaspersky Endpoint Security for Windows (KES 11/12): `avp.com SCAN … /i0 /RA:<report>`,
//!   `avp.com EXPORT`, `kescli --opswat` ([`kes`]; its process code is Windows-only, its
//!   parsers are shared and tested everywhere).
//!
//! Layout: [`parse`] (pure parsers, tested on the documented samples), [`dates`], [`kes`],
//! [`backend`], [`settings`], [`tuning`] (the AVConfig allow-list), and the thin ABI
//! adapter `plugin`.

pub mod backend;
pub mod dates;
pub mod kes;
pub mod parse;
pub mod plugin;
pub mod settings;
pub mod tuning;

pub use backend::KasperskyBackend;
pub use plugin::KasperskyPlugin;
pub use settings::Settings;
