//! Minimal Armadito backend plugin: the example of plugin-api/README.md.
//! It "detects" files containing the EICAR test marker.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    BackendState, Detection, DetectionAction, Host, OnOff, Plugin, PluginError, Progress,
    ScanProgress, ScanRequest, ScanResult, ServiceStatus, StaticCapabilities, export_plugin,
};

pub struct Example {
    host: Host,
}

impl Plugin for Example {
    const NAME: &'static str = "example";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "finds the EICAR marker in files";

    // A constant: the agent lists it from the file without running the plugin.
    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        state: true,
        scan: true,
        scan_progress: true,
        scan_cancel: true,
        ..StaticCapabilities::NONE
    });

    fn new(host: Host, _settings: Value) -> Result<Self, PluginError> {
        host.info("example backend ready");
        Ok(Example { host })
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "Example AV".into(),
            product_version: Self::VERSION.into(),
            service_status: ServiceStatus::Running,
            realtime: OnOff::Off,
            ..BackendState::default()
        })
    }

    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        let mut result = ScanResult::default();
        for path in &request.paths {
            if progress.is_cancelled() {
                result.cancelled = true;
                break;
            }
            match std::fs::read(path) {
                Ok(bytes) if bytes.windows(8).any(|w| w == b"EICAR-ST") => {
                    result.malware += 1;
                    result.detections.push(Detection {
                        threat_name: "Eicar-Test-Signature".into(),
                        file_path: path.clone(),
                        action: DetectionAction::None,
                        ..Detection::default()
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    result.errors += 1;
                    self.host.warn(format!("{path}: {e}"));
                }
            }
            result.scanned += 1;
            progress.report(&ScanProgress {
                files_scanned: result.scanned,
                malware: result.malware,
                current_path: Some(path.clone()),
                ..ScanProgress::default()
            });
        }
        Ok(result)
    }
}

export_plugin!(Example);
