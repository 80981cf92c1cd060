//! Test plugin: answers state() but dereferences a null pointer in scan() (SIGSEGV).

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    BackendState, Capabilities, Host, Plugin, PluginError, Progress, ScanRequest, ScanResult,
    export_plugin,
};

pub struct Segfaults;

impl Plugin for Segfaults {
    const NAME: &'static str = "segfaults";
    const VERSION: &'static str = "0.1.0";

    fn capabilities() -> Capabilities {
        Capabilities {
            state: true,
            scan: true,
            ..Capabilities::default()
        }
    }

    fn new(_host: Host, _settings: Value) -> Result<Self, PluginError> {
        Ok(Segfaults)
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "Segfaults".into(),
            ..BackendState::default()
        })
    }

    fn scan(
        &self,
        _request: ScanRequest,
        _progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        // SAFETY: none; crashing the process is the point of this plugin.
        unsafe { std::ptr::null_mut::<u64>().write_volatile(0xdead) };
        Ok(ScanResult::default())
    }
}

export_plugin!(Segfaults);
