//! Test plugin: answers state() but panics in scan() (the guard must turn it into an error).

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    BackendState, Capabilities, Host, Plugin, PluginError, Progress, ScanRequest, ScanResult,
    export_plugin,
};

pub struct Panics;

impl Plugin for Panics {
    const NAME: &'static str = "panics";
    const VERSION: &'static str = "0.1.0";

    fn capabilities() -> Capabilities {
        Capabilities {
            state: true,
            scan: true,
            ..Capabilities::default()
        }
    }

    fn new(_host: Host, _settings: Value) -> Result<Self, PluginError> {
        Ok(Panics)
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "Panics".into(),
            ..BackendState::default()
        })
    }

    fn scan(
        &self,
        _request: ScanRequest,
        _progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        panic!("boom in scan");
    }
}

export_plugin!(Panics);
