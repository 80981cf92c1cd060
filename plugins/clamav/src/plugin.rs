//! The ABI adapter: [`ClamavPlugin`] implements `armadito_plugin_api::Plugin` on top of
//! [`crate::ClamavBackend`] and is exported with `export_plugin!`.
//!
//! Invariants:
//! * No logic lives here: each method converts arguments, calls the backend, maps
//!   `BackendError` to `PluginError` (kind + message) and logs through the host.
//! * Nothing here may panic: the plugin-api guard would turn a panic into an error, but an
//!   adapter that relies on that is a bug.

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{Host, Plugin, PluginError, StaticCapabilities, export_plugin};

#[cfg(unix)]
use crate::{ClamavBackend, scan::ScanObserver};
#[cfg(unix)]
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Progress, ScanProgress,
    ScanRequest, ScanResult, serde_json::json,
};

/// `invoke` method: install the VirusEvent hook + spool and point clamd.conf at it.
pub const INSTALL_HOOK: &str = "install-virusevent-hook";
/// `invoke` method: `RELOAD` the signature databases.
pub const RELOAD: &str = "reload";

/// The ClamAV backend as a plugin. On non-unix hosts it loads but every call answers
/// `not-supported` (clamd's FILDES, unix sockets and clamd.conf handling are unix-only here).
pub struct ClamavPlugin {
    #[cfg_attr(not(unix), allow(dead_code))]
    host: Host,
    #[cfg(unix)]
    backend: ClamavBackend,
    /// Windows: clamd over TCP (INSTREAM only), when `tcp` is configured.
    #[cfg(not(unix))]
    tcp: crate::windows_tcp::TcpClamd,
}

/// Forwards scan progress to the host; the host's answer decides about cancel.
#[cfg(unix)]
struct HostProgress<'a, 'p>(&'a Progress<'p>);

#[cfg(unix)]
impl ScanObserver for HostProgress<'_, '_> {
    fn on_progress(&self, progress: &ScanProgress) -> bool {
        self.0.report(progress)
    }
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

#[cfg(unix)]
impl ClamavPlugin {
    /// The backend behind the plugin (for in-process users and tests).
    pub fn backend(&self) -> &ClamavBackend {
        &self.backend
    }

    fn log_changes(&self, outcome: &crate::config::ApplyOutcome) {
        for c in &outcome.changes {
            self.host
                .info(format!("clamd.conf: {} {} -> {}", c.attr, c.old, c.new));
        }
        for r in &outcome.report.rejected {
            self.host
                .warn(format!("clamd.conf: {} refused: {}", r.attr, r.reason));
        }
        for n in &outcome.notes {
            self.host.warn(n);
        }
    }
}

impl Plugin for ClamavPlugin {
    const NAME: &'static str = "clamav";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "ClamAV through clamd: state, pipelined scans with per-file results, alerts, clamd.conf";

    const CAPABILITIES: Option<StaticCapabilities> = Some(StaticCapabilities {
        state: true, // Windows: over TCP (windows_tcp)
        scan: true,
        scan_progress: true,
        scan_cancel: true,
        scan_per_file: true,
        alerts: cfg!(unix),
        config_get: cfg!(unix),
        config_set: cfg!(unix),
        invoke_methods: if cfg!(unix) {
            &[INSTALL_HOOK, RELOAD]
        } else {
            &[]
        },
        platforms: &["linux", "windows"],
    });

    #[cfg(unix)]
    fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
        let backend = ClamavBackend::from_json(&settings)?;
        // The previous run may have been killed in the middle of a configuration change.
        if let Some(note) = backend.recover_interrupted_apply() {
            host.warn(note);
        }
        host.debug(format!(
            "clamav backend ready (clamd.conf {})",
            backend.clamd_conf_path().display()
        ));
        Ok(ClamavPlugin { host, backend })
    }

    /// Windows: clamd has no unix socket and no FILDES there; only a configured loopback
    /// `tcp` endpoint is used (never a default), with INSTREAM.
    #[cfg(not(unix))]
    fn new(host: Host, settings: Value) -> Result<Self, PluginError> {
        let s = crate::Settings::from_json(&settings)
            .map_err(|e| PluginError::invalid(e.to_string()))?;
        let Some(addr) = s.tcp.as_deref() else {
            return Err(PluginError::invalid(
                "on Windows clamd is reached over TCP only: set [backends.clamav] tcp = \"127.0.0.1:3310\"",
            ));
        };
        let tcp = crate::windows_tcp::TcpClamd::new(
            addr,
            s.connect_timeout(),
            s.read_timeout(),
            s.stream_max_length,
        )
        .map_err(|e| PluginError::invalid(e.to_string()))?;
        Ok(ClamavPlugin { host, tcp })
    }

    #[cfg(not(unix))]
    fn state(&self) -> Result<armadito_plugin_api::BackendState, PluginError> {
        Ok(self.tcp.state())
    }

    #[cfg(not(unix))]
    fn scan(
        &self,
        request: armadito_plugin_api::ScanRequest,
        progress: &armadito_plugin_api::Progress<'_>,
    ) -> Result<armadito_plugin_api::ScanResult, PluginError> {
        self.tcp
            .scan(&request, &|p| progress.report(p))
            .map_err(|e| PluginError::unavailable(e.to_string()))
    }

    #[cfg(unix)]
    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(self.backend.state())
    }

    #[cfg(unix)]
    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        if request.remediate {
            self.host
                .info("clamd only reports detections: remediation is not done by this backend");
        }
        let result = self.backend.scan(&request, &HostProgress(progress));
        if let Err(e) = &result {
            self.host.warn(format!("scan failed: {e}"));
        }
        Ok(result?)
    }

    #[cfg(unix)]
    fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
        let fetched = self.backend.alerts_with_gaps(&query)?;
        for path in &fetched.gaps {
            self.host.warn(format!(
                "{} was rotated away (compressed or deleted) before it was read to the end: \
                 detections logged there in between were missed",
                path.display()
            ));
        }
        Ok(fetched.page)
    }

    #[cfg(unix)]
    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Ok(self.backend.config_get()?)
    }

    #[cfg(unix)]
    fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        let outcome = self.backend.config_apply(&entries)?;
        self.log_changes(&outcome);
        Ok(outcome.report)
    }

    #[cfg(unix)]
    fn invoke(
        &self,
        method: &str,
        args: Value,
        _progress: &Progress<'_>,
    ) -> Result<Value, PluginError> {
        match method {
            INSTALL_HOOK => {
                let force = args.get("force").and_then(Value::as_bool).unwrap_or(false);
                let outcome = self.backend.install_virusevent_hook(force)?;
                self.log_changes(&outcome);
                Ok(json!({
                    "hook": self.backend.settings().virusevent_hook,
                    "spool": self.backend.settings().virusevent_spool,
                    "report": outcome.report,
                }))
            }
            RELOAD => {
                let client = self.backend.client().map_err(crate::BackendError::from)?;
                client.reload().map_err(crate::BackendError::from)?;
                Ok(json!({"reloading": true}))
            }
            other => Err(PluginError::not_supported(format_args!("method {other:?}"))),
        }
    }
}

export_plugin!(ClamavPlugin);

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use armadito_plugin_api::{ErrorKind, metadata_of};

    #[test]
    fn metadata_and_capabilities() {
        let m = metadata_of::<ClamavPlugin>();
        assert_eq!(m.name, "clamav");
        assert!(m.capabilities.scan_per_file && m.capabilities.config_set);
        assert_eq!(m.capabilities.invoke_methods, [INSTALL_HOOK, RELOAD]);
    }

    #[test]
    fn bad_settings_refuse_the_plugin_and_errors_keep_their_kind() {
        let err = ClamavPlugin::new(Host::detached("clamav"), json!({"sokcet": "/x"}))
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(err.message.contains("sokcet"));

        let p = ClamavPlugin::new(
            Host::detached("clamav"),
            json!({"socket": "/nonexistent/clamd.ctl", "clamd_conf": "/nonexistent/c.conf"}),
        )
        .unwrap();
        let err = p
            .scan(
                ScanRequest {
                    paths: vec!["/tmp".into()],
                    ..Default::default()
                },
                &Progress::detached(),
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(
            err.message
                .contains("clamd not reachable at /nonexistent/clamd.ctl")
        );
        let err = p
            .invoke("nope", Value::Null, &Progress::detached())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotSupported);
        let err = p
            .alerts(AlertsQuery {
                cursor: Some("{bad".into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
    }
}
