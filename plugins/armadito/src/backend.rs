//! [`ArmaditoBackend`]: the façade the plugin adapter (and tests) call. It picks the
//! transport (`mode`), maps daemon data to the model, and owns the live `listen` thread.
//!
//! Invariants:
//! * Auto mode tries rpc, cli, rest in that order and moves on only when one is unavailable;
//!   a refused peer, a timeout or a daemon error is final (see [`crate::transport`]).
//! * The `listen` thread never blocks a call: it only fills a bounded queue, and it stops
//!   (within a read slice) when the backend is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Detail, Detection,
    ErrorKind, OnOff, PluginError, ScanRequest, ScanResult, ServiceStatus,
};

use crate::alerts::{self, AlertsError, LiveQueue};
use crate::config::{self, ApplyContext, ConfigError};
use crate::peer::{PeerError, Trusted};
use crate::settings::{Mode, Settings, SettingsError};
use crate::transport::cli::CliTransport;
use crate::transport::rest::RestTransport;
use crate::transport::rpc::{RpcTransport, listen_loop};
use crate::transport::{Kind, ScanJob, ScanSink, Transport, TransportError};
use crate::wire::event::{DetectionEv, Verdict, action};

pub const PRODUCT: &str = "Armadito";

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Alerts(#[from] AlertsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
}

impl From<BackendError> for PluginError {
    fn from(e: BackendError) -> Self {
        let kind = match &e {
            BackendError::Settings(_) | BackendError::Invalid(_) => ErrorKind::InvalidArgument,
            BackendError::Alerts(AlertsError::BadCursor(_)) => ErrorKind::InvalidArgument,
            BackendError::Peer(_) | BackendError::Transport(TransportError::Peer(_)) => {
                ErrorKind::Unavailable
            }
            BackendError::Transport(TransportError::Unavailable(_)) => ErrorKind::Unavailable,
            BackendError::Transport(TransportError::Timeout(_)) => ErrorKind::Timeout,
            _ => ErrorKind::Internal,
        };
        PluginError::new(kind, e.to_string())
    }
}

/// Where warnings go (the plugin's host log, or nowhere in unit tests).
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

struct Listener {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

pub struct ArmaditoBackend {
    settings: Settings,
    trusted: Trusted,
    live: LiveQueue,
    warn: Warn,
    listener: Option<Listener>,
}

impl Drop for ArmaditoBackend {
    fn drop(&mut self) {
        if let Some(l) = &mut self.listener {
            l.stop.store(true, Ordering::Relaxed);
            if let Some(h) = l.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// A live detection from `listen`, as a model detection (clean verdicts are not alerts).
pub fn live_detection(d: DetectionEv, now: i64) -> Option<Detection> {
    if !matches!(d.verdict, Verdict::Malware | Verdict::Suspicious) {
        return None;
    }
    let j = alerts::line::JournalDetection {
        time: if d.timestamp > 0 { d.timestamp } else { now },
        context: d.context,
        path: d.path,
        action: d.action,
        module_name: d.module_name.unwrap_or_default(),
        module_report: d.module_report.unwrap_or_default(),
    };
    let mut det = alerts::to_detection(&j);
    det.action = action(&j.action);
    Some(det)
}

impl ArmaditoBackend {
    pub fn new(settings: Settings, warn: Warn) -> Result<Self, BackendError> {
        settings.validate()?;
        let trusted = Trusted::new(settings.daemon_user.as_deref())?;
        let mut b = ArmaditoBackend {
            settings,
            trusted,
            live: LiveQueue::default(),
            warn,
            listener: None,
        };
        if b.settings.live_alerts && matches!(b.settings.mode, Mode::Auto | Mode::Rpc) {
            b.listener = Some(b.start_listener());
        }
        Ok(b)
    }

    pub fn from_json(v: &serde_json::Value, warn: Warn) -> Result<Self, BackendError> {
        Self::new(Settings::from_json(v)?, warn)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn rpc(&self) -> RpcTransport {
        RpcTransport {
            socket: self.settings.socket.clone(),
            trusted: self.trusted.clone(),
            call_timeout: self.settings.call_timeout(),
            idle_timeout: self.settings.scan_idle_timeout(),
        }
    }

    fn transports(&self) -> Vec<Box<dyn Transport>> {
        let s = &self.settings;
        let rpc = || Box::new(self.rpc()) as Box<dyn Transport>;
        let cli = || {
            Box::new(CliTransport {
                info: s.armadito_info.clone(),
                scan: s.armadito_scan.clone(),
                call_timeout: s.call_timeout(),
                scan_timeout: Duration::from_secs(s.scan_timeout_secs),
                daemon: self.rpc(),
            }) as Box<dyn Transport>
        };
        let rest = || -> Option<Box<dyn Transport>> {
            Some(Box::new(RestTransport {
                addr: s.rest_addr().ok()?,
                user_agent: s.user_agent.clone(),
                trusted: self.trusted.clone(),
                connect_timeout: s.connect_timeout(),
                call_timeout: s.call_timeout(),
                idle_timeout: s.scan_idle_timeout(),
            }))
        };
        match s.mode {
            Mode::Rpc => vec![rpc()],
            Mode::Cli => vec![cli()],
            Mode::Rest => rest().into_iter().collect(),
            Mode::Auto => [Some(rpc()), Some(cli()), rest()]
                .into_iter()
                .flatten()
                .collect(),
        }
    }

    /// The first transport that is available, and what it answered.
    fn first<T>(
        &self,
        f: impl Fn(&dyn Transport) -> Result<T, TransportError>,
    ) -> Result<(T, Kind), TransportError> {
        let mut why = Vec::new();
        for t in self.transports() {
            match f(t.as_ref()) {
                Ok(v) => return Ok((v, t.kind())),
                Err(TransportError::Unavailable(m)) => {
                    why.push(format!("{}: {m}", t.kind().name()))
                }
                Err(e) => return Err(e),
            }
        }
        Err(TransportError::Unavailable(format!(
            "Armadito AV is not reachable ({})",
            why.join("; ")
        )))
    }

    fn conf_entries(&self) -> Result<Vec<ConfigEntry>, ConfigError> {
        Ok(config::entries(&config::load(
            &self.settings.conf_file,
            &self.settings.conf_dir,
        )?))
    }

    pub fn state(&self) -> Result<BackendState, BackendError> {
        let realtime = self
            .conf_entries()
            .map(|e| config::realtime(&e))
            .unwrap_or(OnOff::Unknown);
        match self.first(|t| t.status()) {
            Ok((info, kind)) => {
                let mut details = vec![Detail::new("armadito:transport", kind.name())];
                details.extend(info.base_details());
                Ok(BackendState {
                    product_name: PRODUCT.into(),
                    product_version: info.version.clone().unwrap_or_else(|| "unknown".into()),
                    service_status: ServiceStatus::Running,
                    update_status: info.status,
                    last_update: info.update_ts,
                    modules: info.modules(),
                    realtime,
                    details,
                })
            }
            Err(TransportError::Unavailable(why)) => {
                let installed = self.settings.conf_file.exists()
                    || self.settings.armadito_info.exists()
                    || self.settings.armadito_scan.exists();
                Ok(BackendState {
                    product_name: PRODUCT.into(),
                    product_version: "unknown".into(),
                    service_status: if installed {
                        ServiceStatus::Stopped
                    } else {
                        ServiceStatus::NotInstalled
                    },
                    realtime,
                    details: vec![Detail::new("armadito:error", why)],
                    ..BackendState::default()
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn scan(&self, req: &ScanRequest, sink: &dyn ScanSink) -> Result<ScanResult, BackendError> {
        if req.paths.is_empty() {
            return Err(BackendError::Invalid(
                "nothing to scan: no path given".into(),
            ));
        }
        if let Some(p) = req.paths.iter().find(|p| !p.starts_with('/')) {
            return Err(BackendError::Invalid(format!(
                "scan path {p:?} is not absolute"
            )));
        }
        let mut total: Option<ScanResult> = None;
        for path in &req.paths {
            let job = ScanJob {
                path,
                recursive: req.recursive,
                per_file: req.per_file_results,
            };
            let (r, _) = self.first(|t| t.scan(&job, sink))?;
            let stop = r.cancelled || r.interrupted.is_some();
            total = Some(match total {
                None => r,
                Some(t) => merge(t, r),
            });
            if stop {
                break;
            }
        }
        Ok(total.unwrap_or_default())
    }

    pub fn alerts(&self, q: &AlertsQuery) -> Result<AlertsPage, BackendError> {
        let limit = q
            .limit
            .unwrap_or(self.settings.alerts_limit)
            .clamp(1, 10_000) as usize;
        let sources = alerts::Sources {
            syslog_files: &self.settings.syslog_files,
            journalctl: &self.settings.journalctl,
            live: Some(&self.live),
            timeout: self.settings.call_timeout(),
        };
        Ok(alerts::fetch(
            &sources,
            q.cursor.as_deref(),
            q.since,
            limit,
        )?)
    }

    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError> {
        Ok(self.conf_entries()?)
    }

    pub fn config_set(&self, entries: &[ConfigEntry]) -> Result<ConfigApplyReport, BackendError> {
        let ctx = ApplyContext {
            main: &self.settings.conf_file,
            dir: &self.settings.conf_dir,
            restart: &self.settings.restart_command,
            restart_timeout: Duration::from_secs(self.settings.restart_timeout_secs),
        };
        Ok(config::apply(&ctx, entries)?)
    }

    fn start_listener(&self) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let rpc = self.rpc();
        let live = Arc::clone(&self.live);
        let warn = Arc::clone(&self.warn);
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("armadito-listen".into())
            .spawn(move || {
                let stopped = || flag.load(Ordering::Relaxed);
                let mut warned = false;
                while !stopped() {
                    match rpc.connect() {
                        Ok(mut conn) => {
                            warned = false;
                            let _ = listen_loop(&mut conn, &stopped, &mut |d| {
                                let now = crate::transport::now_f64() as i64;
                                if let Some(det) = live_detection(d, now) {
                                    alerts::push_live(&live, det);
                                }
                            });
                        }
                        Err(TransportError::Peer(e)) if !warned => {
                            warn(&format!("live alerts: {e}"));
                            warned = true;
                        }
                        Err(_) => {}
                    }
                    // reconnect later, checking the stop flag often
                    for _ in 0..25 {
                        if stopped() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
            .ok();
        Listener { stop, handle }
    }
}

fn merge(mut a: ScanResult, b: ScanResult) -> ScanResult {
    a.scanned += b.scanned;
    a.malware += b.malware;
    a.suspicious += b.suspicious;
    a.cleaned += b.cleaned;
    a.errors += b.errors;
    a.skipped += b.skipped;
    a.end_time = b.end_time;
    a.duration_secs += b.duration_secs;
    a.cancelled |= b.cancelled;
    a.interrupted = a.interrupted.or(b.interrupted);
    a.detections.extend(b.detections);
    a.files.extend(b.files);
    a
}
