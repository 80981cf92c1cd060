//! Test plugin: floods the plugin host's pipes from scan() (`paths[0]` = `stderr`, `stdout`
//! (an endless line; the host points fd 1 at stderr), `log`, or `big`: a result larger than
//! the agent accepts), and reports the names of the environment variables it sees in state().

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    BackendState, Capabilities, Detail, Host, Plugin, PluginError, Progress, ScanRequest,
    ScanResult, export_plugin,
};
use std::io::Write;

pub struct Floods {
    host: Host,
}

impl Plugin for Floods {
    const NAME: &'static str = "floods";
    const VERSION: &'static str = "0.1.0";

    fn capabilities() -> Capabilities {
        Capabilities {
            state: true,
            scan: true,
            ..Capabilities::default()
        }
    }

    fn new(host: Host, _settings: Value) -> Result<Self, PluginError> {
        Ok(Floods { host })
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        let names: Vec<Value> = std::env::vars_os()
            .map(|(k, _)| Value::String(k.to_string_lossy().into_owned()))
            .collect();
        Ok(BackendState {
            product_name: "Floods".into(),
            details: vec![Detail::new("env", Value::Array(names))],
            ..BackendState::default()
        })
    }

    fn scan(
        &self,
        request: ScanRequest,
        _progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        let chunk = "x".repeat(64 * 1024);
        loop {
            match request.paths.first().map(String::as_str) {
                Some("stderr") => eprintln!("flood {chunk}"),
                Some("stdout") => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(chunk.as_bytes());
                }
                Some("log") => self.host.warn("flood"),
                Some("big") => {
                    let mut r = ScanResult::default();
                    r.files.push(armadito_plugin_api::FileResult {
                        path: "x".repeat(65 << 20),
                        ..Default::default()
                    });
                    return Ok(r);
                }
                _ => return Ok(ScanResult::default()),
            }
        }
    }
}

export_plugin!(Floods);
