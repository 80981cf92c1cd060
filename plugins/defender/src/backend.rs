//! [`DefenderBackend`]: the façade the plugin adapter (and tests) call; it dispatches to the
//! front-end the settings select.

use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, ScanRequest, ScanResult,
};

use crate::error::DefenderError;
use crate::mdatp::MdatpDefender;
use crate::scan::Observer;
use crate::settings::{Mode, Settings};
use crate::windows::WindowsDefender;

pub enum DefenderBackend {
    Mdatp(MdatpDefender),
    Windows(WindowsDefender),
}

impl DefenderBackend {
    pub fn new(settings: Settings) -> Self {
        match settings.mode {
            Mode::Mdatp => DefenderBackend::Mdatp(MdatpDefender::new(settings)),
            Mode::Windows => DefenderBackend::Windows(WindowsDefender::new(settings)),
        }
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Self, DefenderError> {
        let settings = Settings::from_json(v).map_err(|e| DefenderError::Invalid(e.to_string()))?;
        Ok(Self::new(settings))
    }

    pub fn state(&self) -> Result<BackendState, DefenderError> {
        match self {
            DefenderBackend::Mdatp(b) => b.state(),
            DefenderBackend::Windows(b) => b.state(),
        }
    }

    pub fn scan(
        &self,
        req: &ScanRequest,
        observer: &dyn Observer,
    ) -> Result<ScanResult, DefenderError> {
        match self {
            DefenderBackend::Mdatp(b) => b.scan(req, observer),
            DefenderBackend::Windows(b) => b.scan(req, observer),
        }
    }

    pub fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, DefenderError> {
        match self {
            DefenderBackend::Mdatp(b) => b.alerts(query),
            DefenderBackend::Windows(b) => b.alerts(query),
        }
    }

    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, DefenderError> {
        match self {
            DefenderBackend::Mdatp(b) => b.config_get(),
            DefenderBackend::Windows(b) => b.config_get(),
        }
    }

    pub fn config_set(&self, wanted: &[ConfigEntry]) -> Result<ConfigApplyReport, DefenderError> {
        match self {
            DefenderBackend::Mdatp(b) => b.config_set(wanted),
            DefenderBackend::Windows(b) => b.config_set(wanted),
        }
    }
}
