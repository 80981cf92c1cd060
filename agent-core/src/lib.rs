//! Armadito agent core: everything except the antivirus itself.
//!
//! - [`wire`]: the GLPI plugin's protocol as typed values (no I/O);
//! - [`cli`] and [`config`]: command line, environment and `agent.toml`, merged once;
//! - [`plugins`]: backend plugins (loader, isolation, hot loading).

pub mod app;
pub mod cli;
pub mod config;
pub mod identity;
pub mod jobs;
pub mod logging;
pub mod plugins;
pub mod schedule;
pub mod session;
pub mod store;
pub mod tasks;
pub mod transport;
pub mod wire;
