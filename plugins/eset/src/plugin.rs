//! The ABI adapter: [`EsetPlugin`] implements `armadito_plugin_api::Plugin` on top of
//! [`crate::EsetBackend`]. No logic here: convert, call, map errors, log through the host.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Host, Plugin,
    PluginError, Progress, ScanRequest, ScanResult, StaticCapabilities, export_plugin,
};

use crate::{EsetBackend, Settings};

pub struct EsetPlugin {
    host: Host,
    backend: EsetBackend,
}

impl EsetPlugin {
    pub fn backend(&self) -> &EsetBackend {
        &self.backend
    }
}

impl Plugin for EsetPlugin {
    const NAME: &'static str = "eset";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "ESET for Linux (EEA/ESSL odscan, upd, lic, lslog; legacy ESETS 4.x esets_scan)";

    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        state: true,
        scan: true,
        // detections stream while odscan runs; there is no percentage
        scan_progress: true,
        scan_cancel: true,
        scan_per_file: false,
        alerts: true,
        config_get: true,
        config_set: true,
        invoke_methods: &[],
        platforms: &["linux"],
    });

    fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
        let settings =
            Settings::from_json(&settings).map_err(|e| PluginError::invalid(e.to_string()))?;
        let backend = EsetBackend::new(settings);
        match backend.locate() {
            Ok(p) => host.debug(format!("eset backend ready: {p:?}")),
            // still load: `plugins` lists it, and each call says what is missing
            Err(e) => host.warn(format!("eset backend: {e}")),
        }
        Ok(EsetPlugin { host, backend })
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
                .info("ESET scans run with --readonly: detections are reported, not cleaned");
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

export_plugin!(EsetPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use armadito_plugin_api::{ErrorKind, metadata_of, serde_json::json};

    #[test]
    fn metadata() {
        let m = metadata_of::<EsetPlugin>();
        assert_eq!(m.name, "eset");
        assert!(m.capabilities.scan && m.capabilities.alerts && m.capabilities.state);
    }

    #[test]
    fn bad_settings_refuse_the_plugin_and_a_missing_product_is_unavailable() {
        let err = EsetPlugin::new(Host::detached("eset"), json!({"bindir": "/x"}))
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        let p = EsetPlugin::new(
            Host::detached("eset"),
            json!({"install_dirs": ["/nonexistent/eset"]}),
        )
        .unwrap();
        let err = p.state().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("/nonexistent/eset"), "{}", err.message);
    }
}
