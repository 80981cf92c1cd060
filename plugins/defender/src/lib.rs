//! defender backend plugin: placeholder until its issue is done.
//!
//! It loads like a real plugin (so the workspace builds all three backends as cdylib and the
//! agent lists it), declares its name, and answers every call with a clear
//! "not implemented yet" error (kind `not-supported`).

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, Capabilities, ConfigApplyReport, ConfigEntry, ErrorKind,
    Host, Plugin, PluginError, Progress, ScanRequest, ScanResult, export_plugin,
};

fn not_implemented(call: &str) -> PluginError {
    PluginError::new(
        ErrorKind::NotSupported,
        format!("the defender backend is not implemented yet ({call})"),
    )
}

pub struct DefenderBackend;

impl Plugin for DefenderBackend {
    const NAME: &'static str = "defender";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Microsoft Defender backend (not implemented yet)";

    fn capabilities() -> Capabilities {
        Capabilities::default()
    }

    fn new(host: Host, _settings: Value) -> Result<Self, PluginError> {
        host.warn("the defender backend is not implemented yet: every call will fail");
        Ok(DefenderBackend)
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Err(not_implemented("state"))
    }

    fn scan(&self, _: ScanRequest, _: &Progress<'_>) -> Result<ScanResult, PluginError> {
        Err(not_implemented("scan"))
    }

    fn alerts(&self, _: AlertsQuery) -> Result<AlertsPage, PluginError> {
        Err(not_implemented("alerts"))
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Err(not_implemented("config_get"))
    }

    fn config_set(&self, _: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        Err(not_implemented("config_set"))
    }

    fn invoke(&self, method: &str, _: Value, _: &Progress<'_>) -> Result<Value, PluginError> {
        Err(not_implemented(method))
    }
}

export_plugin!(DefenderBackend);
