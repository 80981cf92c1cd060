//! The backend's typed error, and its mapping to the plugin ABI's error kinds.

use armadito_plugin_api::{ErrorKind, PluginError};

use crate::cursor::BadCursor;
use crate::exec::ExecError;

#[derive(Debug, thiserror::Error)]
pub enum DefenderError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The tool ran and reported a failure.
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
    /// The tool's output is not what this backend understands.
    #[error("unexpected output from {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotSupported(String),
    #[error(transparent)]
    Cursor(#[from] BadCursor),
}

impl DefenderError {
    pub fn parse(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        DefenderError::Parse {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
    pub fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        DefenderError::Failed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

impl From<DefenderError> for PluginError {
    fn from(e: DefenderError) -> Self {
        let kind = match &e {
            DefenderError::Exec(ExecError::Timeout { .. }) => ErrorKind::Timeout,
            DefenderError::Exec(ExecError::Cancelled { .. }) => ErrorKind::Cancelled,
            DefenderError::Exec(_) | DefenderError::Failed { .. } => ErrorKind::Unavailable,
            DefenderError::Parse { .. } => ErrorKind::Internal,
            DefenderError::Invalid(_) | DefenderError::Cursor(_) => ErrorKind::InvalidArgument,
            DefenderError::NotSupported(_) => ErrorKind::NotSupported,
        };
        PluginError::new(kind, e.to_string())
    }
}
