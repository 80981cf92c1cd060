//! Armadito agent core: everything except the antivirus itself.
//!
//! - [`wire`]: the GLPI plugin's protocol as typed values (no I/O);
//! - [`transport`]: HTTP to the plugin (TLS, proxy, retries);
//! - [`config`] and [`cli`]: `agent.toml`, environment and command line, merged once;
//! - [`plugins`]: backend plugins (loader, isolation, hot loading).

pub mod plugins;
pub mod wire;
