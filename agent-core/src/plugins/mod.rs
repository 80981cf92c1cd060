//! Backend plugins, host side: find, check, load, isolate, hot-load and list the antivirus
//! backends (`.so`/`.dll` built with `armadito-plugin-api`).
//!
//! Pipeline for one file of `plugins_dir` ([`Registry::rescan`]):
//! 1. [`security`]: the folder and the file are owned by root or the agent's user and are not
//!    writable by group/others (Unix) — checked before any byte of the file runs;
//! 2. the file is read once, hashed (SHA-256) and copied to the private cache
//!    (`cache_dir`, 0700) as `<stem>-<hash16>.<ext>`; only that copy is ever loaded, so an
//!    updater overwriting the original cannot crash us and a new build gets a new path;
//! 3. [`loader`]: abi_stable header, then a semver check of the interface version *before*
//!    calling into the plugin, then abi_stable's layout check, then the plugin's metadata;
//! 4. plugins are identified by their declared name; with two files of the same name the
//!    higher version wins (warning);
//! 5. the winner is started: by default in a child process (`armadito-agent plugin-host
//!    --plugin <cached file>`, [`process`] + [`host`]), or in-process ([`inprocess`]).
//!
//! Invariants:
//! * Nothing coming from a plugin (payload, crash, hang, panic) can take the agent down in
//!   process isolation; in-process, panics are contained but segfaults are not.
//! * Libraries are never unloaded in-process (abi_stable cannot); a changed file is loaded
//!   from its new cache path and the old code stays mapped. In process isolation, a reload
//!   stops the old child: a real reload.
//! * The [`Backend`] API is blocking. From tokio, call it inside `spawn_blocking`.
//!
//! Wiring (CLI / daemon):
//!
//! ```ignore
//! let cfg = PluginsConfig::from_agent_config(&config.plugins, &config.plugins_dir,
//!                                            &config.state_dir, &config.backends)?;
//! let registry = Arc::new(Registry::open(cfg)?);     // one-shot runs: load once
//! let _watcher = registry.watch();                    // daemon: hot loading
//! let backend = registry.get("clamav").ok_or(...)?;  // Arc<dyn Backend>
//! let state = tokio::task::spawn_blocking(move || backend.state()).await??;
//! ```
//! `armadito-agent plugin-host --plugin <file>` must call [`plugin_host_main`]: process
//! isolation spawns `cfg.host_exe` (`armadito-plugin-host` next to the agent, else the agent
//! itself) with exactly these arguments.

mod config;
#[doc(hidden)]
pub mod fuzzing;
mod host;
mod inprocess;
mod loader;
mod metadata;
mod pool;
mod process;
mod protocol;
mod registry;
mod report;
pub mod security;
pub mod security_windows;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use armadito_plugin_api::model::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, ErrorKind, PluginError,
    PluginMetadata, ScanProgress, ScanRequest, ScanResult,
};
use serde_json::Value;

pub use config::{Isolation, PluginsConfig};
pub use host::plugin_host_main;
pub use loader::LoadError;
pub use registry::{Change, Registry, RegistryError, Watcher};
pub use report::{PluginReport, PluginStatus, discover, render_table};

/// Cooperative cancellation of a running call (scan, invoke). Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a backend call failed. Every variant names the backend, so messages stand alone.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The plugin answered with an error (including a caught panic: kind `panicked`).
    #[error("backend {backend}: {call} failed: {error}")]
    Plugin {
        backend: String,
        call: &'static str,
        error: PluginError,
    },
    /// No answer within the configured timeout. In process isolation the child was killed
    /// (and will be restarted); in-process the call's thread is abandoned.
    #[error("backend {backend}: {call} timed out after {after:?}")]
    Timeout {
        backend: String,
        call: &'static str,
        after: Duration,
    },
    /// The plugin process died during the call (segfault, abort, exit).
    #[error("backend {backend}: plugin process crashed during {call}: {detail}")]
    Crashed {
        backend: String,
        call: &'static str,
        detail: String,
    },
    /// The backend cannot take calls right now (restart back-off, failed restart, unloaded).
    #[error("backend {backend}: unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    /// The plugin or its host process sent something that does not fit the model.
    #[error("backend {backend}: bad answer to {call}: {detail}")]
    Protocol {
        backend: String,
        call: &'static str,
        detail: String,
    },
}

impl BackendError {
    /// The model error kind when the plugin itself answered (`None` for host-side failures).
    pub fn plugin_kind(&self) -> Option<ErrorKind> {
        match self {
            BackendError::Plugin { error, .. } => Some(error.kind),
            _ => None,
        }
    }
}

/// A loaded backend. Blocking and object-safe: the agent holds `Arc<dyn Backend>` and runs
/// calls inside `tokio::task::spawn_blocking`. Calls may run concurrently.
///
/// Progress callbacks run on the caller's thread (never on a plugin thread), so they need not
/// be `Send`; they must not block for long.
pub trait Backend: Send + Sync {
    /// Name, versions, capabilities (read once at load time; no call into the plugin).
    fn metadata(&self) -> &PluginMetadata;

    fn state(&self) -> Result<BackendState, BackendError>;

    fn scan(
        &self,
        request: &ScanRequest,
        on_progress: &mut dyn FnMut(ScanProgress),
        cancel: &CancelToken,
    ) -> Result<ScanResult, BackendError>;

    fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, BackendError>;

    fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError>;

    fn config_set(&self, entries: &[ConfigEntry]) -> Result<ConfigApplyReport, BackendError>;

    /// Extension methods (`Capabilities::invoke_methods`); progress events are free JSON.
    fn invoke(
        &self,
        method: &str,
        args: &Value,
        on_progress: &mut dyn FnMut(Value),
        cancel: &CancelToken,
    ) -> Result<Value, BackendError>;

    /// PID of the `plugin-host` child currently serving this backend (process isolation;
    /// `None` in-process or while the child is down). For diagnostics and tests.
    fn host_pid(&self) -> Option<u32> {
        None
    }
}

/// Call names, for errors and logs.
pub(crate) mod call {
    pub const STATE: &str = "state";
    pub const SCAN: &str = "scan";
    pub const ALERTS: &str = "alerts";
    pub const CONFIG_GET: &str = "config_get";
    pub const CONFIG_SET: &str = "config_set";
    pub const INVOKE: &str = "invoke";
}

/// Decode a plugin's JSON answer into a model type.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    backend: &str,
    call: &'static str,
    json: &str,
) -> Result<T, BackendError> {
    serde_json::from_str(json).map_err(|e| BackendError::Protocol {
        backend: backend.to_owned(),
        call,
        detail: format!("cannot decode the answer: {e}"),
    })
}

/// Decode a plugin's JSON answer, already parsed as a `Value`, into a model type.
pub(crate) fn decode_value<T: serde::de::DeserializeOwned>(
    backend: &str,
    call: &'static str,
    value: Value,
) -> Result<T, BackendError> {
    serde_json::from_value(value).map_err(|e| BackendError::Protocol {
        backend: backend.to_owned(),
        call,
        detail: format!("cannot decode the answer: {e}"),
    })
}

/// The timeout that applies to `call`: long calls (scan, invoke) get `scan_timeout`.
pub(crate) fn timeout_for(cfg: &PluginsConfig, call: &str) -> Duration {
    if call == call::SCAN || call == call::INVOKE {
        cfg.scan_timeout
    } else {
        cfg.call_timeout
    }
}
