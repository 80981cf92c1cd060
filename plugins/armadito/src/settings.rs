//! Backend settings: the `[backends.armadito]` table of the agent configuration, as JSON.
//!
//! Invariants:
//! * Every key is optional; the defaults are Armadito AV's own (abstract socket
//!   `@/tmp/.armadito-daemon`, tools in `/usr/bin`, `/etc/armadito/armadito.conf`, REST port
//!   8888 on loopback).
//! * Unknown keys are refused (`deny_unknown_fields`): a typo must fail at load time.
//! * Programs are absolute paths (never looked up through `PATH`); the REST endpoint must be
//!   on loopback (the peer check reads the local socket table).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which local interface of Armadito AV to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// rpc, then cli, then rest: the first that answers.
    #[default]
    Auto,
    /// JSON-RPC 2.0 over the daemon's unix socket (Armadito AV ≥ 0.12.7 DEV).
    Rpc,
    /// `armadito-info --json` / `armadito-scan --json`.
    Cli,
    /// The REST API of armadito-scand 0.11–0.12 (`127.0.0.1:8888/api`).
    Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub mode: Mode,
    /// Daemon socket; a leading `@` names an abstract socket.
    pub socket: String,
    /// `host:port` of the REST API (loopback only).
    pub rest: String,
    /// User-Agent sent to the REST API (the daemon refuses requests without one).
    pub user_agent: String,
    pub armadito_info: PathBuf,
    pub armadito_scan: PathBuf,
    /// User the daemon runs as when not root (name or numeric uid). A socket owned by anyone
    /// else than root or this user is refused before anything is sent.
    pub daemon_user: Option<String>,
    pub conf_file: PathBuf,
    /// `*.conf` files here are loaded after `conf_file`, in name order.
    pub conf_dir: PathBuf,
    /// Syslog files searched for `armadito-journal` lines (the first that exists is read).
    pub syslog_files: Vec<PathBuf>,
    /// Used when none of `syslog_files` exists (journald-only hosts).
    pub journalctl: PathBuf,
    /// Keep a `listen` connection to the daemon (rpc) and report its detections as alerts.
    pub live_alerts: bool,
    pub connect_timeout_ms: u64,
    /// Deadline of a status call and of `armadito-info`.
    pub call_timeout_secs: u64,
    /// A scan that sends no event for this long (and no completion) fails with a timeout.
    pub scan_idle_timeout_secs: u64,
    /// Deadline of `armadito-scan` (it prints nothing until detections or the end).
    pub scan_timeout_secs: u64,
    pub alerts_limit: u32,
    /// argv (no shell) run after armadito.conf was rewritten; `[]` = report restart_required.
    pub restart_command: Vec<String>,
    pub restart_timeout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Auto,
            socket: "@/tmp/.armadito-daemon".into(),
            rest: "127.0.0.1:8888".into(),
            user_agent: "armadito-agent".into(),
            armadito_info: "/usr/bin/armadito-info".into(),
            armadito_scan: "/usr/bin/armadito-scan".into(),
            daemon_user: None,
            conf_file: "/etc/armadito/armadito.conf".into(),
            conf_dir: "/etc/armadito/conf.d".into(),
            syslog_files: vec!["/var/log/syslog".into(), "/var/log/messages".into()],
            journalctl: "/usr/bin/journalctl".into(),
            live_alerts: true,
            connect_timeout_ms: 2_000,
            call_timeout_secs: 30,
            scan_idle_timeout_secs: 600,
            scan_timeout_secs: 6 * 3600,
            alerts_limit: 500,
            restart_command: vec!["/etc/init.d/armadito-scand".into(), "restart".into()],
            restart_timeout_secs: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid [backends.armadito] settings: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("invalid [backends.armadito] settings: {0}")]
    Invalid(String),
}

impl Settings {
    pub fn from_json(value: &serde_json::Value) -> Result<Settings, SettingsError> {
        let s: Settings = if value.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(value.clone())?
        };
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError::Invalid(m));
        for (key, p) in [
            ("armadito_info", &self.armadito_info),
            ("armadito_scan", &self.armadito_scan),
            ("journalctl", &self.journalctl),
        ] {
            if !p.is_absolute() {
                return bad(format!(
                    "{key} = {p:?} must be an absolute path (programs are never looked up in PATH)"
                ));
            }
        }
        match self.rest_addr() {
            Ok(a) if a.ip().is_loopback() => {}
            Ok(a) => return bad(format!("rest = {a}: only a loopback address is accepted")),
            Err(e) => return bad(format!("rest = {:?}: {e}", self.rest)),
        }
        if self.socket.is_empty() || self.socket == "@" {
            return bad("socket is empty".into());
        }
        if let Some(p) = self.restart_command.first()
            && !std::path::Path::new(p).is_absolute()
        {
            return bad(format!(
                "restart_command[0] = {p:?} must be an absolute path"
            ));
        }
        if self.connect_timeout_ms == 0
            || self.call_timeout_secs == 0
            || self.scan_idle_timeout_secs == 0
            || self.scan_timeout_secs == 0
        {
            return bad("timeouts must be above 0".into());
        }
        const MAX_SECS: u64 = 30 * 86_400;
        if self.connect_timeout_ms / 1000 > MAX_SECS
            || [
                self.call_timeout_secs,
                self.scan_idle_timeout_secs,
                self.scan_timeout_secs,
                self.restart_timeout_secs,
            ]
            .iter()
            .any(|t| *t > MAX_SECS)
        {
            return bad("timeouts must be at most 30 days".into());
        }
        Ok(())
    }

    pub fn rest_addr(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.rest.parse()
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs)
    }
    pub fn scan_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.scan_idle_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_refusals() {
        let s = Settings::from_json(&json!({})).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.socket, "@/tmp/.armadito-daemon");
        let e = Settings::from_json(&json!({"armadito_scna": "/x"})).unwrap_err();
        assert!(e.to_string().contains("armadito_scna"), "{e}");
        let e = Settings::from_json(&json!({"armadito_scan": "armadito-scan"})).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = Settings::from_json(&json!({"rest": "10.0.0.1:8888"})).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        let e = Settings::from_json(&json!({"restart_command": ["service", "x"]})).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = Settings::from_json(&json!({"scan_timeout_secs": u64::MAX})).unwrap_err();
        assert!(e.to_string().contains("30 days"), "{e}");
        let s = Settings::from_json(&json!({"mode": "rest", "restart_command": []})).unwrap();
        assert_eq!(s.mode, Mode::Rest);
    }
}
