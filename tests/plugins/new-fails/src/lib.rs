//! Test plugin: its constructor fails (e.g. the AV product is not installed).

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{Capabilities, Host, Plugin, PluginError, export_plugin};

pub struct NewFails;

impl Plugin for NewFails {
    const NAME: &'static str = "new-fails";
    const VERSION: &'static str = "0.1.0";

    fn capabilities() -> Capabilities {
        Capabilities::default()
    }

    fn new(_host: Host, _settings: Value) -> Result<Self, PluginError> {
        Err(PluginError::unavailable(
            "product not installed: /nonexistent/clamd.ctl",
        ))
    }
}

export_plugin!(NewFails);
