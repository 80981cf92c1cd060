//! Configuration: `agent.toml`, merged once with the environment and the command line.
//! `[schedule]` is [`ScheduleConfig`] (its typed model, shared with `-t Scheduler`, is [`crate::schedule`]).
//!
//! Precedence: command line > environment (`ARMADITO_AGENT_*`, read by clap) > file > defaults.
//! Unknown keys in the file are errors (a typo must not silently keep a default, as the old
//! agent's parser did). Tables that belong to other parts (`[http]`, `[plugins]`,
//! `[backends.<name>]`) are kept as TOML and deserialised by their owners, so each owner
//! validates its own keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::GlobalOptions;

mod daemon;
mod duration;
mod schedule;

pub use daemon::DaemonConfig;
pub use duration::parse as parse_duration;
pub use schedule::{DEFAULT_SYSTEMCTL, ScheduleConfig, ScheduleMode, TaskSettings};

/// The file's shape. Every field is optional: defaults are applied in [`Config::resolve`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// GLPI plugin URL.
    pub server: Option<String>,
    /// Backend plugin name.
    pub backend: Option<String>,
    pub plugins_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// Machine UUID override (otherwise SMBIOS, otherwise generated once and stored).
    pub uuid: Option<String>,
    #[serde(default)]
    pub http: toml::Table,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub plugins: toml::Table,
    #[serde(default)]
    pub backends: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub jobs: JobsConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub scan: ScanConfig,
    #[serde(default)]
    pub avconfig: AvConfigConfig,
    /// `[schedule]`: how `-t Scheduler` installs the periodic tasks.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// `[daemon]`: pacing of `armadito-agent daemon` beyond `[schedule]`.
    #[serde(default)]
    pub daemon: DaemonConfig,
}

/// `[avconfig]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AvConfigConfig {
    /// Apply the configuration the server defines (through the backend's allow-list of tuning
    /// options). `false`: `-t AVConfig` only reads and reports the local configuration.
    pub apply: bool,
}

impl Default for AvConfigConfig {
    fn default() -> Self {
        Self { apply: true }
    }
}

/// `[scan]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// When not empty, Scan jobs may only scan under these folders.
    pub allowed_paths: Vec<PathBuf>,
    /// Seconds between two progress reports of a running scan job (fractions allowed).
    pub progress_interval: f64,
}

impl ScanConfig {
    /// Checks serde cannot express (TOML accepts `nan` and `inf` as floats).
    pub fn validate(&self) -> Result<(), String> {
        let p = self.progress_interval;
        if !(p.is_finite() && (0.1..=86_400.0).contains(&p)) {
            return Err(format!(
                "[scan] progress_interval = {p}: a number of seconds between 0.1 and 86400"
            ));
        }
        Ok(())
    }

    /// The interval as a duration; never panics, whatever the value.
    pub fn progress_interval(&self) -> std::time::Duration {
        let p = self.progress_interval;
        let p = if p.is_finite() {
            p.clamp(0.1, 86_400.0)
        } else {
            5.0
        };
        std::time::Duration::from_secs_f64(p)
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            allowed_paths: Vec::new(),
            progress_interval: 5.0,
        }
    }
}

/// `[jobs]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Starts after which a job that keeps stopping the agent is quarantined (reported failed).
    pub max_attempts: u32,
    /// Reported jobs are kept this many days for `armadito-agent queue`, then pruned.
    pub keep_reported_days: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            keep_reported_days: 7,
        }
    }
}

/// `[outbox]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Pending messages above which the agent stops fetching new jobs and collecting alerts
    /// (nothing pending is ever dropped; this is backpressure, not loss).
    pub max_messages: usize,
    /// First delay (seconds) before re-trying a message in a later run; doubles per failure
    /// (full jitter), capped at `retry_max`.
    pub retry_base: u64,
    pub retry_max: u64,
    /// Seconds one run may spend delivering, all flushes together; what is left stays queued.
    pub deadline: u64,
    /// Consecutive 5xx answers or timeouts after which a run stops delivering.
    pub max_consecutive_failures: u32,
    /// Alerts carried by one POST api/alerts: queued alert messages with the same envelope and
    /// job id are merged up to this many alerts. 1 = one POST per stored message.
    pub coalesce_alerts: usize,
}

impl OutboxConfig {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.coalesce_alerts) {
            return Err(format!(
                "[outbox] coalesce_alerts = {}: between 1 (one POST per message) and 1000",
                self.coalesce_alerts
            ));
        }
        Ok(())
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_messages: 10_000,
            retry_base: 30,
            retry_max: 3600,
            deadline: 300,
            max_consecutive_failures: 3,
            coalesce_alerts: crate::wire::DEFAULT_ALERTS_PER_POST,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter (`agent_core=debug`).
    pub level: String,
    pub format: LogFormat,
    /// Log to this file (with size-based rotation) instead of stderr.
    pub file: Option<PathBuf>,
    /// Rotate when the file exceeds this many bytes.
    pub max_size: u64,
    /// Rotated files kept (`agent.log.1` … `agent.log.N`).
    pub keep: u32,
    /// Also send to the systemd journal when it is available.
    pub journald: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            file: None,
            max_size: 10 << 20,
            keep: 5,
            journald: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The file sets commands run as root and passwords: someone else able to change it (or
    /// to swap its folder) would own the agent.
    #[error("refusing configuration file {path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("invalid [{table}] settings{origin}: {message}")]
    Table {
        table: String,
        origin: String,
        message: String,
    },
}

/// Platform defaults, the same on every machine of a kind so an admin knows where to look.
pub mod defaults {
    use std::path::PathBuf;

    pub fn config_file() -> PathBuf {
        if cfg!(windows) {
            program_data().join("agent.toml")
        } else {
            PathBuf::from("/etc/armadito-agent/agent.toml")
        }
    }

    pub fn state_dir() -> PathBuf {
        if cfg!(windows) {
            program_data().join("state")
        } else {
            PathBuf::from("/var/lib/armadito-agent")
        }
    }

    pub fn plugins_dir() -> PathBuf {
        if cfg!(windows) {
            program_data().join("plugins")
        } else {
            PathBuf::from("/usr/lib/armadito-agent/plugins")
        }
    }

    #[cfg(windows)]
    fn program_data() -> PathBuf {
        std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
            .join("Armadito-Agent")
    }

    #[cfg(not(windows))]
    fn program_data() -> PathBuf {
        PathBuf::from("/etc/armadito-agent")
    }
}

/// The merged configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Option<String>,
    pub backend: Option<String>,
    pub plugins_dir: PathBuf,
    pub state_dir: PathBuf,
    pub uuid: Option<String>,
    /// `[http]` with command-line/env overrides applied; deserialised by the transport.
    pub http: toml::Table,
    pub log: LogConfig,
    pub plugins: toml::Table,
    pub backends: BTreeMap<String, toml::Table>,
    pub jobs: JobsConfig,
    pub outbox: OutboxConfig,
    pub scan: ScanConfig,
    pub avconfig: AvConfigConfig,
    pub schedule: ScheduleConfig,
    pub daemon: DaemonConfig,
    /// The file this came from, if any (for messages).
    pub source: Option<PathBuf>,
}

impl Config {
    /// Loads the file named by `-c`/`ARMADITO_AGENT_CONFIG` (it must exist), or the default
    /// file when present, then applies the command line and environment.
    pub fn load(opts: &GlobalOptions) -> Result<Self, ConfigError> {
        let (file, source) = match &opts.config {
            Some(path) => (read_file(path)?, Some(path.clone())),
            None => {
                let path = defaults::config_file();
                if path.exists() {
                    (read_file(&path)?, Some(path))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        Ok(Self::resolve(file, source, opts))
    }

    pub fn resolve(file: FileConfig, source: Option<PathBuf>, opts: &GlobalOptions) -> Self {
        let mut http = file.http;
        if let Some(t) = opts.timeout {
            http.insert(
                "timeout".into(),
                toml::Value::Integer(i64::try_from(t).unwrap_or(i64::MAX)),
            );
        }
        if let Some(p) = &opts.proxy {
            http.insert("proxy".into(), toml::Value::String(p.clone()));
        }
        if opts.no_ssl_check {
            http.insert("no_ssl_check".into(), toml::Value::Boolean(true));
        }
        if let Some(f) = &opts.ca_cert_file {
            http.insert(
                "ca_cert_file".into(),
                toml::Value::String(f.display().to_string()),
            );
        }
        if let Some(d) = &opts.ca_cert_dir {
            http.insert(
                "ca_cert_dir".into(),
                toml::Value::String(d.display().to_string()),
            );
        }
        if let Some(u) = &opts.user {
            http.insert("user".into(), toml::Value::String(u.clone()));
        }
        if let Ok(p) = std::env::var("ARMADITO_AGENT_PASSWORD") {
            http.insert("password".into(), toml::Value::String(p));
        }
        let mut log = file.log;
        match opts.debug {
            Some(0) | None => {}
            Some(1) => log.level = "debug".into(),
            Some(_) => log.level = "trace".into(),
        }
        Self {
            server: opts.server.clone().or(file.server),
            backend: opts.backend.clone().or(file.backend),
            plugins_dir: opts
                .plugins_dir
                .clone()
                .or(file.plugins_dir)
                .unwrap_or_else(defaults::plugins_dir),
            state_dir: opts
                .state_dir
                .clone()
                .or(file.state_dir)
                .unwrap_or_else(defaults::state_dir),
            uuid: file.uuid,
            http,
            log,
            plugins: file.plugins,
            backends: file.backends,
            jobs: file.jobs,
            outbox: file.outbox,
            scan: file.scan,
            avconfig: file.avconfig,
            schedule: file.schedule,
            daemon: file.daemon,
            source,
        }
    }

    /// Deserialises one of the tables kept raw (`[http]`, `[plugins]`) into its owner's type.
    pub fn table<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        table: &toml::Table,
    ) -> Result<T, ConfigError> {
        table
            .clone()
            .try_into()
            .map_err(|e| self.table_error(name, &e))
    }

    /// The error for an invalid `[name]` table, naming the file it came from.
    pub fn table_error(&self, name: &str, e: &toml::de::Error) -> ConfigError {
        ConfigError::Table {
            table: name.into(),
            origin: self
                .source
                .as_ref()
                .map(|p| format!(" in {}", p.display()))
                .unwrap_or_default(),
            message: e.message().to_string(),
        }
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    check_trusted_file(path)?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string().trim().to_string(),
    })?;
    file.scan
        .validate()
        .and_then(|()| file.outbox.validate())
        .and_then(|()| file.daemon.validate())
        .map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })?;
    Ok(file)
}

/// The file (resolved) and every folder above it: owned by root or the agent's user, not
/// writable by group or others (as for plugins).
fn check_trusted_file(path: &Path) -> Result<(), ConfigError> {
    use crate::plugins::security;
    let untrusted = |e: security::TrustError| ConfigError::Untrusted {
        path: path.into(),
        reason: e.to_string(),
    };
    let real = std::fs::canonicalize(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    security::check_trusted(&real).map_err(untrusted)?;
    if let Some(folder) = real.parent() {
        security::check_trusted_dir(folder).map_err(untrusted)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 item 14: `progress_interval = nan` (valid TOML) is a clear error, not a panic.
    #[test]
    fn a_non_finite_progress_interval_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for v in ["nan", "inf", "-inf", "0.0", "1e30"] {
            let file = dir.path().join("agent.toml");
            std::fs::write(&file, format!("[scan]\nprogress_interval = {v}\n")).unwrap();
            let mut o = opts();
            o.config = Some(file);
            let e = Config::load(&o).unwrap_err().to_string();
            assert!(e.contains("progress_interval"), "{v}: {e}");
            let c = ScanConfig {
                progress_interval: v.parse().unwrap(),
                ..ScanConfig::default()
            };
            assert!(c.progress_interval() >= std::time::Duration::from_millis(100));
        }
    }

    /// `[outbox] coalesce_alerts`: 100 by default, 1 = one POST per message, 0 or absurd
    /// values are a clear error.
    #[test]
    fn coalesce_alerts_is_bounded() {
        assert_eq!(OutboxConfig::default().coalesce_alerts, 100);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        for (v, ok) in [
            ("1", true),
            ("100", true),
            ("1000", true),
            ("0", false),
            ("1001", false),
        ] {
            std::fs::write(&file, format!("[outbox]\ncoalesce_alerts = {v}\n")).unwrap();
            let mut o = opts();
            o.config = Some(file.clone());
            match Config::load(&o) {
                Ok(c) => {
                    assert!(ok, "{v} accepted");
                    assert_eq!(c.outbox.coalesce_alerts.to_string(), v);
                }
                Err(e) => {
                    assert!(!ok, "{v}: {e}");
                    assert!(e.to_string().contains("coalesce_alerts"), "{e}");
                }
            }
        }
    }

    /// Issue 12 item 8: agent.toml (it sets commands run as root) is refused when another
    /// user can change it or its folder.
    #[cfg(unix)]
    #[test]
    fn a_config_file_others_can_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("etc");
        std::fs::create_dir(&folder).unwrap();
        let file = folder.join("agent.toml");
        std::fs::write(&file, "backend = 'clamav'\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut o = opts();
        o.config = Some(file.clone());
        Config::load(&o).unwrap();

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(
            e.contains("refusing configuration file") && e.contains("0666"),
            "{e}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();

        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(e.contains("0777"), "{e}");
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();

        // a symlink to a file in a folder another user owns: what counts is the target
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::copy(&file, theirs.join("agent.toml")).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let link = folder.join("link.toml");
        std::os::unix::fs::symlink(theirs.join("agent.toml"), &link).unwrap();
        o.config = Some(link);
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }

    fn opts() -> GlobalOptions {
        GlobalOptions::default()
    }

    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../../../agent.toml");
        let file: FileConfig = toml::from_str(text).unwrap();
        let c = Config::resolve(file, None, &opts());
        assert!(c.server.is_some());
        assert!(c.backends.contains_key("clamav"));
    }

    #[test]
    fn command_line_beats_file_beats_defaults() {
        let file: FileConfig = toml::from_str(
            "server = 'http://file/glpi/plugins/armadito'\nbackend = 'clamav'\n[http]\ntimeout = 20\nproxy = 'http://p:3128'\n",
        )
        .unwrap();
        let mut o = opts();
        o.server = Some("http://cli/glpi/plugins/armadito".into());
        o.timeout = Some(5);
        o.debug = Some(2);
        let c = Config::resolve(file, None, &o);
        assert_eq!(
            c.server.as_deref(),
            Some("http://cli/glpi/plugins/armadito")
        );
        assert_eq!(c.backend.as_deref(), Some("clamav"));
        assert_eq!(c.http["timeout"].as_integer(), Some(5));
        assert_eq!(c.http["proxy"].as_str(), Some("http://p:3128"));
        assert_eq!(c.log.level, "trace");
        assert_eq!(c.state_dir, defaults::state_dir());
    }

    #[test]
    fn typos_are_errors_not_silent_defaults() {
        let err = toml::from_str::<FileConfig>("servre = 'x'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `servre`"), "{err}");
        let err = toml::from_str::<FileConfig>("[log]\nlevle = 'debug'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `levle`"), "{err}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let mut o = opts();
        o.config = Some(PathBuf::from("/nonexistent/agent.toml"));
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read configuration file /nonexistent/agent.toml"),
            "{e}"
        );
    }
}
