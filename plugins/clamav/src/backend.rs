//! [`ClamavBackend`]: the entry points the plugin adapter (and the tests, and the benchmark)
//! call. It turns settings + clamd.conf into endpoints, limits and paths, and delegates to
//! the concern modules.
//!
//! Invariants:
//! * clamd.conf is re-read on every call: a restart or an admin edit is picked up without
//!   reloading the plugin. A missing clamd.conf is not fatal except for `config_*`.
//! * Endpoints are tried in a fixed order: settings (`socket`, `tcp`), else clamd.conf
//!   (`LocalSocket`, `TCPSocket`/`TCPAddr`), then the Debian defaults.
//! * `config_set` and the hook installer are serialised (one writer of clamd.conf at a
//!   time inside this process).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use armadito_plugin_api::model::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, ErrorKind, PluginError,
    ScanRequest, ScanResult,
};

use crate::alerts::{self, AlertsError};
use crate::clamd::{ClamdError, Client, Endpoint, Timeouts, trust};
use crate::config::{self, ApplyOptions, ApplyOutcome, ClamdConf, ConfigError};
use crate::scan::{self, ScanError, ScanObserver, ScanOptions};
use crate::settings::{self, AlertSource, ScanMode, Settings, SettingsError};
use crate::state::{self, Probe, StateOptions};
use crate::timeutil;

/// clamd's StreamMaxLength when clamd.conf does not set it (clamd 1.x default).
pub const CLAMD_DEFAULT_STREAM_MAX: u64 = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Clamd(#[from] ClamdError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Alerts(#[from] AlertsError),
    #[error(transparent)]
    Hook(#[from] alerts::spool::HookError),
}

impl BackendError {
    /// The category the agent reacts to.
    pub fn kind(&self) -> ErrorKind {
        let clamd_kind = |e: &ClamdError| match e {
            ClamdError::Timeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Unavailable,
        };
        match self {
            BackendError::Settings(_) => ErrorKind::InvalidArgument,
            BackendError::Clamd(e) => clamd_kind(e),
            BackendError::Scan(ScanError::InvalidRequest(_)) => ErrorKind::InvalidArgument,
            BackendError::Scan(ScanError::Clamd(e) | ScanError::ClamdLost { source: e, .. }) => {
                clamd_kind(e)
            }
            BackendError::Scan(ScanError::Thread(_)) => ErrorKind::Internal,
            BackendError::Config(ConfigError::Invalid(_)) => ErrorKind::InvalidArgument,
            BackendError::Config(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ErrorKind::Unavailable
            }
            BackendError::Config(ConfigError::Restart { .. }) => ErrorKind::Unavailable,
            BackendError::Config(_) => ErrorKind::Internal,
            BackendError::Alerts(AlertsError::BadCursor(_)) => ErrorKind::InvalidArgument,
            BackendError::Alerts(_) => ErrorKind::Internal,
            BackendError::Hook(
                alerts::spool::HookError::UnsafePath(_) | alerts::spool::HookError::Taken(_),
            ) => ErrorKind::InvalidArgument,
            BackendError::Hook(_) => ErrorKind::Internal,
        }
    }
}

impl From<BackendError> for PluginError {
    fn from(e: BackendError) -> PluginError {
        PluginError::new(e.kind(), e.to_string())
    }
}

/// The ClamAV backend.
#[derive(Debug)]
pub struct ClamavBackend {
    settings: Settings,
    /// Serialises writers of clamd.conf.
    config_lock: Mutex<()>,
}

/// `host:port` for a TCPSocket/TCPAddr pair; wildcard addresses mean "this host".
fn tcp_endpoint(addr: Option<&str>, port: u64) -> String {
    match addr.map(str::trim) {
        None | Some("") | Some("0.0.0.0") => format!("127.0.0.1:{port}"),
        Some("::") => format!("[::1]:{port}"),
        Some(a) if a.contains(':') && !a.starts_with('[') => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
    }
}

impl ClamavBackend {
    pub fn new(settings: Settings) -> Result<ClamavBackend, BackendError> {
        settings.validate()?;
        Ok(ClamavBackend {
            settings,
            config_lock: Mutex::new(()),
        })
    }

    /// Build from the `[backends.clamav]` table (JSON).
    pub fn from_json(value: &serde_json::Value) -> Result<ClamavBackend, BackendError> {
        ClamavBackend::new(Settings::from_json(value)?)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.settings.connect_timeout(),
            read: self.settings.read_timeout(),
            write: self.settings.read_timeout(),
        }
    }

    /// clamd.conf, if readable.
    pub fn clamd_conf(&self) -> Option<ClamdConf> {
        config::load(&self.settings.clamd_conf).ok()
    }

    /// Endpoints to try, in order.
    pub fn endpoint_candidates(&self, conf: Option<&ClamdConf>) -> Vec<Endpoint> {
        let s = &self.settings;
        if s.socket.is_some() || s.tcp.is_some() {
            return s
                .socket
                .iter()
                .map(|p| Endpoint::Unix(p.clone()))
                .chain(s.tcp.iter().map(|t| Endpoint::Tcp(t.clone())))
                .collect();
        }
        let mut out = Vec::new();
        if let Some(conf) = conf {
            if let Some(sock) = conf.get("LocalSocket") {
                out.push(Endpoint::Unix(PathBuf::from(sock)));
            }
            if let Some(port) = conf.get_number("TCPSocket") {
                out.push(Endpoint::Tcp(tcp_endpoint(conf.get("TCPAddr"), port)));
            }
        }
        // No TCP default: any local user can listen on 127.0.0.1:3310 while clamd is down.
        let defaults = settings::DEFAULT_SOCKETS
            .iter()
            .map(|s| Endpoint::Unix(PathBuf::from(s)));
        for d in defaults {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// A client for the first endpoint that answers PING.
    pub fn client(&self) -> Result<Client, ClamdError> {
        let conf = self.clamd_conf();
        self.reachable(conf.as_ref())
    }

    /// The first trusted endpoint that answers PING: unix sockets must belong to root or to
    /// clamd.conf's `User` ([`trust`]); a refused one is skipped and named in the error.
    pub fn reachable(&self, conf: Option<&ClamdConf>) -> Result<Client, ClamdError> {
        let user = conf.and_then(|c| c.get("User"));
        let mut refused = None;
        let trusted: Vec<Endpoint> = self
            .endpoint_candidates(conf)
            .into_iter()
            .filter(|e| match e {
                Endpoint::Unix(path) if path.exists() => match trust::check_socket(path, user) {
                    Ok(()) => true,
                    Err(reason) => {
                        refused = Some(ClamdError::Untrusted {
                            endpoint: e.clone(),
                            reason,
                        });
                        false
                    }
                },
                _ => true,
            })
            .collect();
        match Client::first_reachable(&trusted, self.timeouts()) {
            Ok(c) => Ok(c),
            Err(e) => Err(refused.unwrap_or(e)),
        }
    }

    fn state_options(&self) -> StateOptions {
        StateOptions {
            late_days: self.settings.update_late_days,
            critical_days: self.settings.update_critical_days,
            onaccess_executable: self.settings.onaccess_executable.clone(),
            ..StateOptions::default()
        }
    }

    /// Service, versions, freshness, load and on-access status. Never fails: an
    /// unreachable clamd is reported as a stopped service.
    pub fn state(&self) -> BackendState {
        let conf = self.clamd_conf();
        let client = self.reachable(conf.as_ref());
        let probe = Probe::run(client);
        state::collect(probe, conf.as_ref(), &self.state_options(), timeutil::now())
    }

    /// Scan options for `client` given settings and clamd.conf.
    pub fn scan_options(&self, client: &Client, conf: Option<&ClamdConf>) -> ScanOptions {
        let s = &self.settings;
        let connections = if s.scan_connections > 0 {
            s.scan_connections
        } else {
            scan::auto_connections(conf.and_then(|c| c.get_number("MaxThreads")))
        };
        // A clamd on another host cannot open our paths: stream instead.
        let mode = match s.scan_mode {
            ScanMode::Path if !client.endpoint().is_local() => ScanMode::Instream,
            m => m,
        };
        ScanOptions {
            connections,
            pipeline: s.scan_pipeline,
            mode,
            fallback: s.scan_fallback,
            stream_max_length: s
                .stream_max_length
                .or_else(|| conf.and_then(|c| c.get_size("StreamMaxLength")))
                .unwrap_or(CLAMD_DEFAULT_STREAM_MAX),
            progress_interval: Duration::from_millis(s.progress_interval_ms),
        }
    }

    /// Scan `request.paths` with per-file results, progress and cancel via `observer`.
    pub fn scan(
        &self,
        request: &ScanRequest,
        observer: &dyn ScanObserver,
    ) -> Result<ScanResult, BackendError> {
        let conf = self.clamd_conf();
        let client = self.reachable(conf.as_ref())?;
        let mut opts = self.scan_options(&client, conf.as_ref());
        apply_request_options(&mut opts, request)?;
        Ok(scan::scan(&client, &opts, request, observer)?)
    }

    /// Detection sources per settings and clamd.conf.
    pub fn alert_sources(&self, conf: Option<&ClamdConf>) -> alerts::Sources {
        let s = &self.settings;
        alerts::Sources {
            log_file: s
                .alert_sources
                .contains(&AlertSource::Log)
                .then(|| {
                    s.log_file
                        .clone()
                        .or_else(|| conf.and_then(|c| c.get("LogFile")).map(PathBuf::from))
                })
                .flatten(),
            spool: s
                .alert_sources
                .contains(&AlertSource::Virusevent)
                .then(|| s.virusevent_spool.clone()),
            spool_max_bytes: s.virusevent_spool_max_bytes,
        }
    }

    pub fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, BackendError> {
        Ok(self.alerts_with_gaps(query)?.page)
    }

    /// [`Self::alerts`], also naming sources rotated away unread since the cursor.
    pub fn alerts_with_gaps(&self, query: &AlertsQuery) -> Result<alerts::Fetched, BackendError> {
        let conf = self.clamd_conf();
        let sources = self.alert_sources(conf.as_ref());
        Ok(alerts::fetch_with_gaps(
            &sources,
            query,
            self.settings.alerts_limit,
        )?)
    }

    /// clamd.conf as normalised `{attr, value}` entries.
    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError> {
        let conf = config::load(&self.settings.clamd_conf)?;
        Ok(config::entries(&conf))
    }

    fn apply_options(&self, allow_protected: bool) -> ApplyOptions {
        let s = &self.settings;
        let conf = self.clamd_conf();
        ApplyOptions {
            clamconf: (!s.clamconf.is_empty()).then(|| s.clamconf.clone()),
            restart_command: s.restart_command.clone(),
            restart_timeout: Duration::from_secs(s.restart_timeout_secs),
            ready_check: (!s.restart_command.is_empty()).then(|| {
                // After a restart clamd may listen where the *new* file says; the settings
                // or the current candidates are what the agent will use anyway.
                let client = Client::new(
                    self.endpoint_candidates(conf.as_ref())
                        .into_iter()
                        .next()
                        .unwrap_or(Endpoint::Unix(settings::DEFAULT_SOCKETS[0].into())),
                    self.timeouts(),
                );
                (client, Duration::from_secs(s.ready_timeout_secs))
            }),
            allow_protected,
            budget: Some(Duration::from_secs(s.apply_timeout_secs)),
        }
    }

    /// Roll back a configuration change that a killed process left half done (see
    /// [`config::apply::recover`]); `Some(note)` when there was one.
    pub fn recover_interrupted_apply(&self) -> Option<String> {
        let _guard = self
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        config::apply::recover(&self.settings.clamd_conf, &self.apply_options(false))
    }

    /// Apply entries to clamd.conf and restart clamd (see [`config::apply`]).
    pub fn config_apply(&self, entries: &[ConfigEntry]) -> Result<ApplyOutcome, BackendError> {
        let _guard = self
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(config::apply::apply(
            &self.settings.clamd_conf,
            entries,
            &self.apply_options(false),
        )?)
    }

    pub fn config_set(&self, entries: &[ConfigEntry]) -> Result<ConfigApplyReport, BackendError> {
        Ok(self.config_apply(entries)?.report)
    }

    /// Install the VirusEvent hook and spool, point clamd.conf's `VirusEvent` at it and
    /// restart clamd. Idempotent. An admin's own VirusEvent command is not replaced unless
    /// `force` is set.
    pub fn install_virusevent_hook(&self, force: bool) -> Result<ApplyOutcome, BackendError> {
        let _guard = self
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let conf = config::load(&self.settings.clamd_conf)?;
        let ours = self.settings.virusevent_hook.to_string_lossy();
        if let Some(current) = conf.get("VirusEvent")
            && current.trim() != ours
            && !force
        {
            return Err(BackendError::Hook(alerts::spool::HookError::Taken(
                current.to_owned(),
            )));
        }
        // The hook runs as clamd's User: it must own the spool directory.
        // SAFETY: geteuid has no preconditions.
        let is_root = unsafe { libc::geteuid() } == 0;
        let owner = match (conf.get("User"), is_root) {
            (Some(user), true) => std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|p| alerts::spool::lookup_user(&p, user)),
            _ => None,
        };
        let s = &self.settings;
        alerts::spool::install(&s.virusevent_hook, &s.virusevent_spool, owner)?;
        let entry = ConfigEntry::new("VirusEvent", s.virusevent_hook.to_string_lossy().as_ref());
        Ok(config::apply::apply(
            &s.clamd_conf,
            &[entry],
            &self.apply_options(true),
        )?)
    }

    /// Path of clamd.conf in use.
    pub fn clamd_conf_path(&self) -> &Path {
        &self.settings.clamd_conf
    }
}

/// Per-scan overrides from `ScanRequest::options`: `connections`, `pipeline` (positive
/// integers) and `mode` (`path`, `fildes`, `instream`). Unknown keys are ignored (they may
/// be meant for another backend); bad values are refused.
fn apply_request_options(opts: &mut ScanOptions, request: &ScanRequest) -> Result<(), ScanError> {
    let count = |key: &str| -> Result<Option<usize>, ScanError> {
        match request.options.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=64).contains(n))
                .map(|n| Some(n as usize))
                .ok_or_else(|| {
                    ScanError::InvalidRequest(format!("option {key} must be 1..=64, got {v}"))
                }),
        }
    };
    if let Some(n) = count("connections")? {
        opts.connections = n;
    }
    if let Some(n) = count("pipeline")? {
        opts.pipeline = n;
    }
    if let Some(v) = request.options.get("mode") {
        opts.mode = serde_json::from_value(v.clone()).map_err(|_| {
            ScanError::InvalidRequest(format!(
                "option mode must be path, fildes or instream, got {v}"
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoint_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf_path = dir.path().join("clamd.conf");
        std::fs::write(
            &conf_path,
            "LocalSocket /tmp/custom.sock\nTCPSocket 3399\nTCPAddr 0.0.0.0\n",
        )
        .unwrap();
        let b = ClamavBackend::from_json(&json!({"clamd_conf": conf_path})).unwrap();
        let conf = b.clamd_conf();
        let c = b.endpoint_candidates(conf.as_ref());
        assert_eq!(c[0], Endpoint::Unix("/tmp/custom.sock".into()));
        assert_eq!(c[1], Endpoint::Tcp("127.0.0.1:3399".into()));
        assert_eq!(c[2], Endpoint::Unix("/run/clamav/clamd.ctl".into()));
        assert_eq!(
            c.last(),
            Some(&Endpoint::Unix("/var/run/clamav/clamd.ctl".into()))
        );
        // without TCP in the settings or clamd.conf, TCP is never tried
        let b = ClamavBackend::from_json(&json!({"clamd_conf": "/nonexistent"})).unwrap();
        assert!(
            b.endpoint_candidates(None)
                .iter()
                .all(|e| matches!(e, Endpoint::Unix(_))),
            "{:?}",
            b.endpoint_candidates(None)
        );
        let b = ClamavBackend::from_json(&json!({"tcp": "127.0.0.1:1"})).unwrap();
        assert_eq!(
            b.endpoint_candidates(None),
            vec![Endpoint::Tcp("127.0.0.1:1".into())]
        );
        assert_eq!(tcp_endpoint(Some("::1"), 5), "[::1]:5");
    }

    #[test]
    fn clamd_down_is_a_state_and_a_clear_error() {
        let b = ClamavBackend::from_json(&json!({
            "socket": "/nonexistent/clamd.ctl",
            "clamd_conf": "/nonexistent/clamd.conf"
        }))
        .unwrap();
        let st = b.state();
        assert_ne!(
            st.service_status,
            armadito_plugin_api::model::ServiceStatus::Running
        );
        let err = b
            .scan(
                &ScanRequest {
                    paths: vec!["/tmp".into()],
                    ..Default::default()
                },
                &scan::NoObserver,
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.to_string()
                .contains("clamd not reachable at /nonexistent/clamd.ctl"),
            "{err}"
        );
        let perr: PluginError = b.config_get().unwrap_err().into();
        assert_eq!(perr.kind, ErrorKind::Unavailable);
    }

    #[test]
    fn request_options_override_tuning() {
        let mut opts = ScanOptions::default();
        let mut req = ScanRequest::default();
        req.options.insert("connections".into(), json!(3));
        req.options.insert("mode".into(), json!("fildes"));
        req.options.insert("other-backend-key".into(), json!(true));
        apply_request_options(&mut opts, &req).unwrap();
        assert_eq!((opts.connections, opts.mode), (3, ScanMode::Fildes));
        req.options.insert("pipeline".into(), json!(0));
        assert!(apply_request_options(&mut opts, &req).is_err());
        req.options.insert("pipeline".into(), json!(4));
        req.options.insert("mode".into(), json!("telepathy"));
        assert!(apply_request_options(&mut opts, &req).is_err());
    }

    #[test]
    fn remote_tcp_switches_to_instream() {
        let b = ClamavBackend::from_json(&json!({"tcp": "10.1.2.3:3310"})).unwrap();
        let client = Client::new(Endpoint::Tcp("10.1.2.3:3310".into()), Timeouts::default());
        let conf = ClamdConf::parse("StreamMaxLength 2M\nMaxThreads 1\n");
        let o = b.scan_options(&client, Some(&conf));
        assert_eq!(o.mode, ScanMode::Instream);
        assert_eq!(o.stream_max_length, 2 * 1024 * 1024);
        assert_eq!(o.connections, 1);
    }
}
