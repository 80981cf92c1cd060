//! Microsoft Defender backend for the Armadito agent.
//!
//! Layout (one folder per concern; only `plugin` knows about the plugin ABI):
//! * [`windows`]: Defender Antivirus through `powershell.exe` (Defender cmdlets as JSON) and
//!   `MpCmdRun.exe` (scans): fixed scripts, JSON shapes, status, detections, preferences.
//! * [`mdatp`]: Defender for Endpoint on Linux through `mdatp --output json`.
//! * [`exec`]: running the tools (argv only, absolute path, cleared environment, deadline).
//! * [`dates`], [`cursor`], [`freshness`], [`config`], [`scan`]: shared parsing and policy.
//! * [`backend`]: [`DefenderBackend`], the façade; `plugin`: the thin ABI adapter.
//!
//! Invariants for the whole crate:
//! * Parsers and command builders do no I/O and are the same code on every OS: Linux tests
//!   drive the Windows path by pointing `powershell`/`mpcmdrun` at fake executables.
//! * Nothing from outside the process (tool output, settings, GLPI values) is unwrapped.
//! * GLPI never chooses a program, a script text or an argument other than a scan path and
//!   the allow-listed configuration values; those travel as argv elements or environment data.

pub mod backend;
pub mod config;
pub mod cursor;
pub mod dates;
pub mod error;
pub mod exec;
pub mod freshness;
pub mod mdatp;
pub mod plugin;
pub mod scan;
pub mod settings;
pub mod windows;

pub use backend::DefenderBackend;
pub use error::DefenderError;
pub use plugin::DefenderPlugin;
pub use settings::Settings;
