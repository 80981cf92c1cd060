//! Test plugin: answers state() but never returns from scan(), ignoring cancellation.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    BackendState, Capabilities, Host, Plugin, PluginError, Progress, ScanRequest, ScanResult,
    export_plugin,
};

pub struct Hangs;

impl Plugin for Hangs {
    const NAME: &'static str = "hangs";
    const VERSION: &'static str = "0.1.0";

    fn capabilities() -> Capabilities {
        Capabilities {
            state: true,
            scan: true,
            ..Capabilities::default()
        }
    }

    fn new(_host: Host, _settings: Value) -> Result<Self, PluginError> {
        Ok(Hangs)
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "Hangs".into(),
            ..BackendState::default()
        })
    }

    fn scan(
        &self,
        _request: ScanRequest,
        _progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

export_plugin!(Hangs);
