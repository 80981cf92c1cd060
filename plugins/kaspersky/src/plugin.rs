//! The ABI adapter: [`KasperskyPlugin`] implements `armadito_plugin_api::Plugin` on top of
//! [`crate::KasperskyBackend`]. No logic here: convert, call, map errors, log.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Host, Plugin,
    PluginError, Progress, ScanRequest, ScanResult, StaticCapabilities, export_plugin,
};

use crate::{KasperskyBackend, Settings};

pub struct KasperskyPlugin {
    host: Host,
    backend: KasperskyBackend,
}

impl KasperskyPlugin {
    pub fn backend(&self) -> &KasperskyBackend {
        &self.backend
    }
}

impl Plugin for KasperskyPlugin {
    const NAME: &'static str = "kaspersky";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Kaspersky Endpoint Security for Linux (kesl-control) and for Windows (avp.com, kescli)";

    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        state: true,
        scan: true,
        // `running NN%` lines of avp.com; KESL's --scan-file prints no progress
        scan_progress: cfg!(windows),
        scan_cancel: true,
        scan_per_file: false,
        alerts: true,
        config_get: true,
        config_set: true,
        invoke_methods: &[],
        platforms: &["linux", "windows"],
    });

    fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
        let settings =
            Settings::from_json(&settings).map_err(|e| PluginError::invalid(e.to_string()))?;
        let backend = KasperskyBackend::new(settings);
        match backend.locate() {
            Ok(p) => host.debug(format!("kaspersky backend ready: {p:?}")),
            Err(e) => host.warn(format!("kaspersky backend: {e}")),
        }
        Ok(KasperskyPlugin { host, backend })
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(self.backend.state(&|w| self.host.warn(w))?)
    }

    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        if request.remediate {
            self.host
                .info("Kaspersky scans run report-only (/i0, --action Skip): nothing is cleaned");
        }
        let result = self.backend.scan(
            &request,
            &|p| progress.report(p),
            &|| progress.is_cancelled(),
            &|w| self.host.warn(w),
        );
        if let Err(e) = &result {
            self.host.warn(format!("scan failed: {e}"));
        }
        Ok(result?)
    }

    fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
        Ok(self.backend.alerts(&query, &|w| self.host.warn(w))?)
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Ok(self.backend.config_get()?)
    }

    fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        let report = self.backend.config_set(&entries);
        for r in &report.rejected {
            self.host.warn(format!("{}: {}", r.attr, r.reason));
        }
        Ok(report)
    }
}

export_plugin!(KasperskyPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use armadito_plugin_api::{ErrorKind, metadata_of, serde_json::json};

    #[test]
    fn metadata_and_settings() {
        let m = metadata_of::<KasperskyPlugin>();
        assert_eq!(m.name, "kaspersky");
        let err = KasperskyPlugin::new(Host::detached("kaspersky"), json!({"avp": "/x"}))
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
    }

    #[cfg(not(windows))]
    #[test]
    fn kes_mode_off_windows_says_so() {
        let p = KasperskyPlugin::new(Host::detached("kaspersky"), json!({"mode": "kes"})).unwrap();
        let e = p.state().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("runs only on Windows"), "{}", e.message);
    }
}
