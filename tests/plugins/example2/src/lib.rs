//! A second test plugin, different from `example`: it implements alerts, config and invoke,
//! and reports a build tag that tests patch in the binary to make a "new build" of it.

use std::sync::Mutex;

use armadito_plugin_api::serde_json::{Value, json};
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Detail, Detection, Host,
    Plugin, PluginError, Progress, ScanProgress, ScanRequest, ScanResult, StaticCapabilities,
    export_plugin,
};

/// Build tag. Tests rewrite these bytes in a copy of the library (same length) to simulate
/// an updated build; `black_box` keeps the compiler from folding the value into the code.
static BUILD_TAG: [u8; 16] = *b"build-AAAAAAAAAA";

fn build_tag() -> String {
    String::from_utf8_lossy(std::hint::black_box(&BUILD_TAG)).into_owned()
}

pub struct Example2 {
    config: Mutex<Vec<ConfigEntry>>,
    /// The settings given to `new`, echoed in `state().details` for tests.
    settings: Value,
}

impl Plugin for Example2 {
    const NAME: &'static str = "example2";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    // Declared as a constant: the agent lists them from the file without running this code.
    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        state: true,
        scan: true,
        scan_progress: true,
        scan_cancel: true,
        alerts: true,
        config_get: true,
        config_set: true,
        invoke_methods: &["echo", "count"],
        ..StaticCapabilities::NONE
    });

    fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
        host.info(format!("example2 {} starting with {settings}", build_tag()));
        Ok(Example2 {
            config: Mutex::new(vec![ConfigEntry::new("MaxFileSize", 1024)]),
            settings,
        })
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "Example2".into(),
            product_version: build_tag(),
            details: vec![Detail::new("settings", self.settings.clone())],
            ..BackendState::default()
        })
    }

    /// Emits `options.steps` (default 3) progress events, sleeping `options.step_ms` between
    /// them, and stops early on cancel.
    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        let steps = request
            .options
            .get("steps")
            .and_then(Value::as_u64)
            .unwrap_or(3);
        let step_ms = request
            .options
            .get("step_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut result = ScanResult::default();
        for i in 0..steps {
            if !progress.report(&ScanProgress {
                files_scanned: i,
                files_total_estimate: Some(steps),
                ..ScanProgress::default()
            }) {
                result.cancelled = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(step_ms));
            result.scanned = i + 1;
        }
        Ok(result)
    }

    fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
        let start: u64 = query
            .cursor
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let detections = (start..start + 2)
            .map(|i| Detection {
                id: i.to_string(),
                threat_name: format!("Threat.{i}"),
                ..Detection::default()
            })
            .collect();
        Ok(AlertsPage {
            detections,
            next_cursor: Some((start + 2).to_string()),
            more: false,
        })
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Ok(self
            .config
            .lock()
            .map_err(|_| PluginError::internal("poisoned"))?
            .clone())
    }

    fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        let mut config = self
            .config
            .lock()
            .map_err(|_| PluginError::internal("poisoned"))?;
        let applied = entries.iter().map(|e| e.attr.clone()).collect();
        *config = entries;
        Ok(ConfigApplyReport {
            applied,
            restart_required: true,
            ..ConfigApplyReport::default()
        })
    }

    fn invoke(
        &self,
        method: &str,
        args: Value,
        progress: &Progress<'_>,
    ) -> Result<Value, PluginError> {
        match method {
            "echo" => Ok(args),
            "count" => {
                let n = args.as_u64().unwrap_or(0);
                for i in 0..n {
                    progress.report_json(&json!({ "i": i }));
                }
                Ok(json!(n))
            }
            other => Err(PluginError::not_supported(format_args!("method {other:?}"))),
        }
    }
}

export_plugin!(Example2);
