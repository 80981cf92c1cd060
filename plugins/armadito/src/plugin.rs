//! The ABI adapter: [`ArmaditoPlugin`] implements `armadito_plugin_api::Plugin` on top of
//! `ArmaditoBackend`. No logic lives here: convert, call, map errors, log. Off Linux the
//! plugin loads and every call answers `not-supported`.

use armadito_plugin_api::export_plugin;
#[cfg(not(target_os = "linux"))]
use armadito_plugin_api::{Host, Plugin, PluginError, StaticCapabilities, serde_json::Value};

#[cfg(target_os = "linux")]
pub use linux::ArmaditoPlugin;

/// The plugin shell off Linux.
#[cfg(not(target_os = "linux"))]
pub struct ArmaditoPlugin;

#[cfg(not(target_os = "linux"))]
impl Plugin for ArmaditoPlugin {
    const NAME: &'static str = "armadito";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Armadito AV (Linux only)";

    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        platforms: &["linux"],
        ..StaticCapabilities::NONE
    });

    fn new(_host: Host, _settings: Value) -> Result<Self, PluginError> {
        Ok(ArmaditoPlugin)
    }
}

export_plugin!(ArmaditoPlugin);

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Arc;

    use armadito_plugin_api::serde_json::Value;
    use armadito_plugin_api::{
        AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Host, Plugin,
        PluginError, Progress, ScanProgress, ScanRequest, ScanResult, StaticCapabilities,
    };

    use crate::ArmaditoBackend;
    use crate::transport::ScanSink;

    pub struct ArmaditoPlugin {
        host: Host,
        backend: ArmaditoBackend,
    }

    struct HostSink<'a, 'p> {
        host: Host,
        progress: &'a Progress<'p>,
    }

    impl ScanSink for HostSink<'_, '_> {
        fn progress(&self, p: &ScanProgress) -> bool {
            self.progress.report(p)
        }
        fn cancelled(&self) -> bool {
            self.progress.is_cancelled()
        }
        fn warn(&self, message: &str) {
            self.host.warn(message);
        }
    }

    impl ArmaditoPlugin {
        pub fn backend(&self) -> &ArmaditoBackend {
            &self.backend
        }
    }

    impl Plugin for ArmaditoPlugin {
        const NAME: &'static str = "armadito";
        const VERSION: &'static str = env!("CARGO_PKG_VERSION");
        const DESCRIPTION: &'static str = "Armadito AV: JSON-RPC daemon, armadito-info/-scan tools or the 0.11-0.12 REST API; journal alerts; armadito.conf";

        const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
            state: true,
            scan: true,
            scan_progress: true,
            scan_cancel: true,
            scan_per_file: true,
            alerts: true,
            config_get: true,
            config_set: true,
            invoke_methods: &[],
            platforms: &["linux"],
        });

        fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
            let warn: crate::backend::Warn = Arc::new(move |m: &str| host.warn(m));
            let backend = ArmaditoBackend::from_json(&settings, warn)?;
            host.debug(format!(
                "armadito backend ready (mode {:?})",
                backend.settings().mode
            ));
            Ok(ArmaditoPlugin { host, backend })
        }

        fn state(&self) -> Result<BackendState, PluginError> {
            Ok(self.backend.state()?)
        }

        fn scan(
            &self,
            request: ScanRequest,
            progress: &Progress<'_>,
        ) -> Result<ScanResult, PluginError> {
            let sink = HostSink {
                host: self.host,
                progress,
            };
            let r = self.backend.scan(&request, &sink);
            match &r {
                Err(e) => self.host.warn(format!("scan failed: {e}")),
                Ok(r) if r.interrupted.is_some() => self.host.warn(format!(
                    "scan interrupted: {}",
                    r.interrupted.as_deref().unwrap_or("")
                )),
                Ok(_) => {}
            }
            Ok(r?)
        }

        fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
            Ok(self.backend.alerts(&query)?)
        }

        fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
            Ok(self.backend.config_get()?)
        }

        fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
            let report = self.backend.config_set(&entries)?;
            for c in &report.changes {
                let old = c.old.as_ref().map_or("(unset)".into(), Value::to_string);
                self.host
                    .info(format!("armadito.conf: {} {old} -> {}", c.attr, c.new));
            }
            for r in &report.rejected {
                self.host
                    .warn(format!("armadito.conf: {} refused: {}", r.attr, r.reason));
            }
            Ok(report)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use armadito_plugin_api::{ErrorKind, metadata_of, serde_json::json};

        #[test]
        fn metadata_settings_and_error_kinds() {
            let m = metadata_of::<ArmaditoPlugin>();
            assert_eq!(m.name, "armadito");
            assert!(m.capabilities.scan && m.capabilities.config_set && m.capabilities.alerts);
            let e = ArmaditoPlugin::new(Host::detached("armadito"), json!({"modee": "rpc"}))
                .err()
                .unwrap();
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            let p = ArmaditoPlugin::new(
            Host::detached("armadito"),
            json!({"mode": "rpc", "socket": "@/tmp/.armadito-agent-unit-test-nobody-here", "live_alerts": false}),
        )
        .unwrap();
            let e = p
                .scan(
                    ScanRequest {
                        paths: vec!["/tmp".into()],
                        ..Default::default()
                    },
                    &Progress::detached(),
                )
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unavailable);
            assert!(e.message.contains("not reachable"), "{}", e.message);
            let e = p
                .scan(
                    ScanRequest {
                        paths: vec!["tmp".into()],
                        ..Default::default()
                    },
                    &Progress::detached(),
                )
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            let e = p
                .alerts(AlertsQuery {
                    cursor: Some("{".into()),
                    ..Default::default()
                })
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
        }
    }
}
