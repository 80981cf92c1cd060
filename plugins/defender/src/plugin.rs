//! The ABI adapter: [`DefenderPlugin`] implements `armadito_plugin_api::Plugin` on top of
//! [`DefenderBackend`]. No logic here: convert, call, map errors, log through the host.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Host, Plugin,
    PluginError, Progress, ScanProgress, ScanRequest, ScanResult, StaticCapabilities,
    export_plugin,
};

use crate::backend::DefenderBackend;
use crate::scan::Observer;

pub struct DefenderPlugin {
    host: Host,
    backend: DefenderBackend,
}

struct HostProgress<'a, 'p>(&'a Progress<'p>);

impl Observer for HostProgress<'_, '_> {
    fn report(&self, progress: &ScanProgress) -> bool {
        self.0.report(progress)
    }
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl DefenderPlugin {
    pub fn backend(&self) -> &DefenderBackend {
        &self.backend
    }
}

impl Plugin for DefenderPlugin {
    const NAME: &'static str = "defender";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Microsoft Defender: PowerShell/MpCmdRun on Windows, mdatp on Linux";

    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        state: true,
        scan: true,
        scan_progress: true,
        scan_cancel: true,
        scan_per_file: false,
        alerts: true,
        config_get: true,
        config_set: true,
        invoke_methods: &[],
        platforms: &["windows", "linux"],
    });

    fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
        let backend = DefenderBackend::from_json(&settings)?;
        Ok(DefenderPlugin { host, backend })
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(self.backend.state()?)
    }

    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        let result = self.backend.scan(&request, &HostProgress(progress));
        if let Err(e) = &result {
            self.host.warn(format!("scan failed: {e}"));
        }
        Ok(result?)
    }

    fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
        Ok(self.backend.alerts(&query)?)
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Ok(self.backend.config_get()?)
    }

    fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        let report = self.backend.config_set(&entries)?;
        for a in &report.applied {
            self.host.info(format!("defender setting {a} applied"));
        }
        for r in &report.rejected {
            self.host
                .warn(format!("defender setting {} refused: {}", r.attr, r.reason));
        }
        Ok(report)
    }
}

export_plugin!(DefenderPlugin);
