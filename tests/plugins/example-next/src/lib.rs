//! Test plugin: a newer build of `example` (same declared name, version 1.1.0), shipped
//! under another file name. The registry must pick it over `example` 1.0.0.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{BackendState, Capabilities, Host, Plugin, PluginError, export_plugin};

pub struct ExampleNext;

impl Plugin for ExampleNext {
    const NAME: &'static str = "example";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Capabilities {
        Capabilities {
            state: true,
            ..Capabilities::default()
        }
    }

    fn new(_host: Host, _settings: Value) -> Result<Self, PluginError> {
        Ok(ExampleNext)
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "Example AV (next)".into(),
            product_version: Self::VERSION.into(),
            ..BackendState::default()
        })
    }
}

export_plugin!(ExampleNext);
