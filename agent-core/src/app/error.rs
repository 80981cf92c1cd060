//! The agent's top-level error: one variant per documented exit code (see `cli::EXIT_CODES`).

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
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Exit 3.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
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
}

impl AgentError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Task(_) | AgentError::Transport(_) => 1,
            AgentError::Config(_) | AgentError::Usage(_) | AgentError::Log(_) => 3,
            AgentError::NotEnrolled => 4,
            AgentError::Store(_) => 5,
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
