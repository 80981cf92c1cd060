//! The agent's top-level error: one variant per documented exit code (see `cli::EXIT_CODES`).

use crate::cli::exit;
use crate::config::ConfigError;
use crate::identity::IdentityError;
use crate::logging::LogError;
use crate::store::StoreError;
use crate::transport::TransportError;
use crate::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Exit 1: the task ran and failed.
    #[error("{0}")]
    Task(String),
    /// Exit 1: the task failed because the server is down or does not answer as the plugin
    /// does (messages kept in the outbox, a reply that is a page or invalid JSON); a
    /// [`TransportError`] says the same on its own. The daemon backs off on both.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Exit 3.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Exit 3: the configuration does not allow the run (no server, no backend, bad key…).
    #[error("{0}")]
    Usage(String),
    /// Exit 2: the command line asks for something impossible.
    #[error("{0}")]
    CommandLine(String),
    #[error(transparent)]
    Log(#[from] LogError),
    /// Exit 4.
    #[error(
        "not enrolled: run -t Enrollment first (with --key-file FILE, ARMADITO_AGENT_KEY or an enrollment.key file)"
    )]
    NotEnrolled,
    /// Exit 5.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Exit 7: another daemon holds the state folder.
    #[error("{0}")]
    DaemonRunning(String),
    /// Exit 6: a local scan completed and found malware (as clamscan's exit 1).
    #[error("the scan found {0} malware")]
    MalwareFound(u64),
}

impl AgentError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Task(_) | AgentError::Unavailable(_) | AgentError::Transport(_) => {
                exit::FAILED
            }
            AgentError::CommandLine(_) => exit::COMMAND_LINE,
            AgentError::Config(_) | AgentError::Usage(_) | AgentError::Log(_) => exit::CONFIG,
            AgentError::NotEnrolled => exit::NOT_ENROLLED,
            AgentError::Store(_) => exit::STATE,
            AgentError::MalwareFound(_) => exit::MALWARE_FOUND,
            AgentError::DaemonRunning(_) => exit::DAEMON_RUNNING,
        }
    }
}

impl From<IdentityError> for AgentError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Config(w) => {
                AgentError::Usage(format!("invalid `uuid` in the configuration: {w}"))
            }
            IdentityError::Store(s) => AgentError::Store(s),
        }
    }
}

impl From<crate::plugins::BackendError> for AgentError {
    fn from(e: crate::plugins::BackendError) -> Self {
        AgentError::Task(e.to_string())
    }
}

impl From<crate::plugins::RegistryError> for AgentError {
    fn from(e: crate::plugins::RegistryError) -> Self {
        AgentError::Usage(e.to_string())
    }
}

impl From<WireError> for AgentError {
    fn from(e: WireError) -> Self {
        AgentError::Task(e.to_string())
    }
}
