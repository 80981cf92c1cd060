//! Backend settings: the `[backends.clamav]` table of the agent configuration, handed to the
//! plugin as JSON.
//!
//! Invariants:
//! * Every key is optional; [`Settings::default`] works on a stock Debian host (clamd.conf in
//!   `/etc/clamav`, socket `/run/clamav/clamd.ctl`, service `clamav-daemon`).
//! * Unknown keys are refused (`deny_unknown_fields`): a typo in a security tool's
//!   configuration must fail loudly at load time, not silently fall back to a default.
//! * Nothing here touches the system; resolving paths and endpoints happens in the backend.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Debian's clamd.conf; upstream builds use `/usr/local/etc/clamd.conf`.
pub const DEFAULT_CLAMD_CONF: &str = "/etc/clamav/clamd.conf";
/// Unix sockets tried, in order, when neither the settings nor clamd.conf name one.
pub const DEFAULT_SOCKETS: &[&str] = &["/run/clamav/clamd.ctl", "/var/run/clamav/clamd.ctl"];
/// clamd's documented default TCP endpoint. Never tried unless configured (settings `tcp` or
/// clamd.conf `TCPSocket`): any local user can listen there while clamd is down.
pub const DEFAULT_TCP: &str = "127.0.0.1:3310";
/// Helpers run by absolute path only (never looked up in `PATH`, which the agent's caller
/// controls): Debian's locations by default, configurable.
pub const DEFAULT_SYSTEMCTL: &str = "/usr/bin/systemctl";
pub const DEFAULT_CLAMCONF: &str = "/usr/bin/clamconf";

/// Where the VirusEvent hook and its spool live by default: outside the agent's private
/// (0700) state folder, which clamd's user cannot reach. The hook stays in this root-owned
/// folder; only `spool/` belongs to clamd's user.
pub const DEFAULT_EVENT_DIR: &str = "/var/lib/armadito-agent-clamav";

/// How files are handed to clamd during a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanMode {
    /// `SCAN <path>`: clamd opens the file itself (cheapest; needs a local clamd).
    #[default]
    Path,
    /// `FILDES`: the agent opens the file and passes the descriptor (unix socket only).
    Fildes,
    /// `INSTREAM`: the agent streams the bytes (works with a remote clamd; bounded by
    /// clamd's StreamMaxLength).
    Instream,
}

/// Which detection sources `alerts()` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertSource {
    /// clamd's `LogFile` (`FOUND` lines).
    Log,
    /// The spool written by the VirusEvent hook this plugin installs.
    Virusevent,
}

/// `[backends.clamav]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// clamd unix socket. Unset: clamd.conf `LocalSocket`, then the Debian defaults.
    pub socket: Option<PathBuf>,
    /// clamd TCP endpoint `host:port`. Unset: clamd.conf `TCPSocket`/`TCPAddr`, else no TCP
    /// at all. clamd's TCP socket has no authentication: keep it on loopback.
    pub tcp: Option<String>,
    /// clamd configuration file (read for AVConfig, limits, LogFile, on-access settings).
    pub clamd_conf: PathBuf,
    pub connect_timeout_ms: u64,
    /// Per read/write on a clamd socket. A single file's scan must finish within it, so keep
    /// it above clamd's `MaxScanTime` (120 s by default).
    pub read_timeout_ms: u64,
    /// Parallel clamd connections during a scan; 0 = automatic (see `scan::auto_connections`).
    pub scan_connections: usize,
    /// Requests in flight per connection (IDSESSION pipelining depth).
    pub scan_pipeline: usize,
    pub scan_mode: ScanMode,
    /// When clamd cannot open a file by path (it runs as another user), pass the descriptor
    /// (FILDES, unix socket) or stream it (INSTREAM, TCP) instead.
    pub scan_fallback: bool,
    /// Overrides clamd.conf `StreamMaxLength` (bytes) for the INSTREAM path.
    pub stream_max_length: Option<u64>,
    /// Minimum interval between two progress events.
    pub progress_interval_ms: u64,
    /// Overrides clamd.conf `LogFile` as the alerts source.
    pub log_file: Option<PathBuf>,
    pub alert_sources: Vec<AlertSource>,
    /// Spool file the VirusEvent hook appends to.
    pub virusevent_spool: PathBuf,
    /// Hook script installed by `install-virusevent-hook`.
    pub virusevent_hook: PathBuf,
    /// Spool size above which a fully-read spool is rotated to `<spool>.1`.
    pub virusevent_spool_max_bytes: u64,
    /// Maximum detections per `alerts()` page when the query sets no limit.
    pub alerts_limit: u32,
    /// Signature age (days) above which the update status is `late`.
    pub update_late_days: u32,
    /// Signature age (days) above which the update status is `critical`.
    pub update_critical_days: u32,
    /// argv run (never through a shell) to restart clamd after a configuration change.
    /// Empty = do not restart, report `restart_required`.
    pub restart_command: Vec<String>,
    pub restart_timeout_secs: u64,
    /// The whole configuration apply (validation, restart, wait, rollback) must fit in this:
    /// keep it below the agent's `[plugins] call_timeout` (120 s), so the plugin is never
    /// killed mid-rollback.
    pub apply_timeout_secs: u64,
    /// How long to wait for clamd to answer PING after a restart.
    pub ready_timeout_secs: u64,
    /// `clamconf` program used to validate a new clamd.conf before it is installed; empty =
    /// no external validation (the built-in option table still applies).
    pub clamconf: String,
    /// Executable of the on-access scanner: real-time protection is "on" only when a process
    /// running this file, as root, exists (a process name proves nothing: anyone can
    /// start a process called `clamonacc`).
    pub onaccess_executable: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            socket: None,
            tcp: None,
            clamd_conf: PathBuf::from(DEFAULT_CLAMD_CONF),
            connect_timeout_ms: 2_000,
            read_timeout_ms: 180_000,
            scan_connections: 0,
            scan_pipeline: 16,
            scan_mode: ScanMode::Path,
            scan_fallback: true,
            stream_max_length: None,
            progress_interval_ms: 250,
            log_file: None,
            alert_sources: vec![AlertSource::Log, AlertSource::Virusevent],
            virusevent_spool: PathBuf::from(DEFAULT_EVENT_DIR).join("spool/virusevent.spool"),
            virusevent_hook: PathBuf::from(DEFAULT_EVENT_DIR).join("virusevent-hook.sh"),
            virusevent_spool_max_bytes: 1024 * 1024,
            alerts_limit: 500,
            update_late_days: 3,
            update_critical_days: 7,
            restart_command: [DEFAULT_SYSTEMCTL, "restart", "clamav-daemon"]
                .map(String::from)
                .to_vec(),
            restart_timeout_secs: 60,
            apply_timeout_secs: 100,
            ready_timeout_secs: 30,
            clamconf: DEFAULT_CLAMCONF.into(),
            onaccess_executable: PathBuf::from("/usr/sbin/clamonacc"),
        }
    }
}

/// A settings table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid [backends.clamav] settings: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("invalid [backends.clamav] settings: {0}")]
    Invalid(String),
}

impl Settings {
    /// Parse the settings table (`{}` or `null` = all defaults) and check its invariants.
    pub fn from_json(value: &serde_json::Value) -> Result<Settings, SettingsError> {
        let settings: Settings = if value.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(value.clone())?
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that serde cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.update_late_days > self.update_critical_days {
            return Err(SettingsError::Invalid(format!(
                "update_late_days ({}) is above update_critical_days ({})",
                self.update_late_days, self.update_critical_days
            )));
        }
        if self.scan_pipeline == 0 {
            return Err(SettingsError::Invalid(
                "scan_pipeline must be at least 1".into(),
            ));
        }
        if self.apply_timeout_secs < 2 {
            return Err(SettingsError::Invalid(
                "apply_timeout_secs must be at least 2".into(),
            ));
        }
        if self.connect_timeout_ms == 0 || self.read_timeout_ms == 0 {
            return Err(SettingsError::Invalid("timeouts must be above 0 ms".into()));
        }
        if let Some(tcp) = &self.tcp
            && !tcp.contains(':')
        {
            return Err(SettingsError::Invalid(format!(
                "tcp = {tcp:?}: expected host:port"
            )));
        }
        if self.restart_command.first().is_some_and(|p| p.is_empty()) {
            return Err(SettingsError::Invalid("restart_command[0] is empty".into()));
        }
        let absolute = |p: &str| std::path::Path::new(p).is_absolute();
        if let Some(p) = self.restart_command.first()
            && !absolute(p)
        {
            return Err(SettingsError::Invalid(format!(
                "restart_command[0] = {p:?}: an absolute path is required (programs are never looked up in PATH)"
            )));
        }
        if !self.clamconf.is_empty() && !absolute(&self.clamconf) {
            return Err(SettingsError::Invalid(format!(
                "clamconf = {:?}: an absolute path is required (programs are never looked up in PATH)",
                self.clamconf
            )));
        }
        Ok(())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_table_gives_debian_defaults() {
        let s = Settings::from_json(&json!({})).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.clamd_conf, PathBuf::from("/etc/clamav/clamd.conf"));
        assert_eq!(s.restart_command[0], "/usr/bin/systemctl");
        assert_eq!(s.clamconf, "/usr/bin/clamconf");
    }

    /// Issue 12 item 10: helpers are never looked up in PATH.
    #[test]
    fn helpers_need_absolute_paths() {
        for (bad, needle) in [
            (
                json!({"clamconf": "clamconf"}),
                "clamconf = \"clamconf\": an absolute path",
            ),
            (
                json!({"restart_command": ["systemctl", "restart", "clamav-daemon"]}),
                "restart_command[0] = \"systemctl\": an absolute path",
            ),
            (
                json!({"restart_command": ["./restart.sh"]}),
                "absolute path",
            ),
        ] {
            let e = Settings::from_json(&bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        Settings::from_json(&json!({"clamconf": "", "restart_command": []})).unwrap();
    }

    #[test]
    fn typos_are_refused() {
        let err = Settings::from_json(&json!({"sokcet": "/x"})).unwrap_err();
        assert!(err.to_string().contains("sokcet"), "{err}");
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let err = Settings::from_json(&json!({"update_late_days": 9})).unwrap_err();
        assert!(err.to_string().contains("update_late_days"), "{err}");
    }

    #[test]
    fn keys_parse() {
        let s = Settings::from_json(&json!({
            "socket": "/tmp/c.sock", "tcp": "127.0.0.1:1", "scan_mode": "instream",
            "alert_sources": ["virusevent"], "restart_command": ["/bin/true"]
        }))
        .unwrap();
        assert_eq!(s.scan_mode, ScanMode::Instream);
        assert_eq!(s.alert_sources, vec![AlertSource::Virusevent]);
        assert!(Settings::from_json(&json!({"tcp": "nohostport"})).is_err());
    }
}
