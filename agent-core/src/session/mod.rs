//! One run's context and session: the merged configuration ([`Context`]), the error every task
//! returns ([`AgentError`]) and, for tasks that talk to the server, the enrolled session
//! ([`Enrolled`]) with its outbox [`delivery`].
//!
//! Layering (checked by `tests/layers.rs`): this module builds on wire, store, transport,
//! plugins, config and cli; the job engine (`jobs`) and the tasks (`tasks`) build on it; `app`
//! only dispatches. Nothing here knows a task.

mod backends;
pub mod delivery;
mod enrolled;
mod error;
mod stop;

use std::sync::Arc;

pub use backends::{BackendLease, BackendSource, OneShot};
pub use enrolled::{Enrolled, ServerDefined, blocking};
pub use error::AgentError;
pub use stop::Stop;

use crate::cli::Cli;
use crate::config::Config;
use crate::plugins::{Backend, PluginsConfig, Registry};
use crate::store::Store;
use crate::transport::{GlpiClient, HttpOptions};
use crate::wire::{AntivirusInfo, MachineUuid};

/// Task summaries ("Alerts: 3 new detection(s)"): printed on stdout by a one-shot run, logged by
/// the daemon (set once at its start), where stdout is the journal and a line every 5 s is noise.
static SUMMARIES_TO_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends the task summaries to the log instead of stdout (the daemon).
pub fn summaries_to_log() {
    SUMMARIES_TO_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// One task's summary line: stdout in a one-shot run, the log (info) in the daemon.
pub fn summary(line: std::fmt::Arguments<'_>) {
    if SUMMARIES_TO_LOG.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::info!("{line}");
    } else {
        println!("{line}");
    }
}

/// Everything a task needs, built once per run.
#[derive(Clone)]
pub struct Context {
    pub config: Config,
    pub cli: Cli,
}

impl Context {
    pub fn open_store(&self) -> Result<Store, AgentError> {
        Ok(Store::open(&self.config.state_dir)?)
    }

    pub fn uuid(&self, store: &Store) -> Result<MachineUuid, AgentError> {
        Ok(crate::identity::machine_uuid(
            self.config.uuid.as_deref(),
            store,
        )?)
    }

    pub fn server(&self) -> Result<&str, AgentError> {
        self.config.server.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            AgentError::Usage("no server configured: set `server` in agent.toml, ARMADITO_AGENT_SERVER or -s URL".into())
        })
    }

    /// The `[plugins]` settings with the folders and `[backends.*]` tables filled in.
    pub fn plugins_config(&self) -> Result<PluginsConfig, AgentError> {
        let c = &self.config;
        PluginsConfig::from_agent_config(&c.plugins, &c.plugins_dir, &c.state_dir, &c.backends)
            .map_err(|e| c.table_error("plugins", &e).into())
    }

    /// The configured backend, started (only that one: one plugin host in process mode).
    /// The registry is returned too: it owns the plugin's process (or library) and must live
    /// as long as the backend is used.
    pub fn backend(&self) -> Result<(Arc<Registry>, Arc<dyn Backend>), AgentError> {
        let name = self.config.backend.as_deref().ok_or_else(|| {
            AgentError::Usage("no backend configured: set `backend` in agent.toml or --backend NAME (see --list-backends)".into())
        })?;
        let registry = Arc::new(Registry::open_for(self.plugins_config()?, name)?);
        if let Some(b) = registry.get(name) {
            return Ok((registry, b));
        }
        let refused: Vec<String> = registry
            .reports()
            .into_iter()
            .filter(|r| r.name.as_deref() == Some(name))
            .filter_map(|r| r.reason)
            .collect();
        if !refused.is_empty() {
            return Err(AgentError::Task(format!(
                "backend {name:?} cannot start: {}",
                refused.join("; ")
            )));
        }
        let names = registry.usable_names();
        Err(AgentError::Usage(format!(
            "backend {name:?} is not available in {} (available: {}); see `armadito-agent plugins`",
            self.config.plugins_dir.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )))
    }

    /// `task.antivirus` of our messages: the backend's name until a backend reports its product.
    pub fn antivirus(&self) -> AntivirusInfo {
        AntivirusInfo::new(
            self.config
                .backend
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            "unknown",
        )
    }

    pub fn client(&self) -> Result<GlpiClient, AgentError> {
        let opts: HttpOptions = self.config.table("http", &self.config.http)?;
        GlpiClient::new(self.server()?, &opts).map_err(|e| match e.is_config_error() {
            true => AgentError::Usage(e.to_string()),
            false => AgentError::Transport(e),
        })
    }
}
