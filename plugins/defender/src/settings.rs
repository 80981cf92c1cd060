//! Backend settings: the `[backends.defender]` table of the agent configuration.
//!
//! Invariants:
//! * Every key is optional: the defaults fit a stock host (Linux: `/usr/bin/mdatp`; Windows:
//!   `%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe` and
//!   `%ProgramFiles%\Windows Defender\MpCmdRun.exe`, read from the agent's environment).
//! * Unknown keys are refused: a typo must fail at load time, not fall back to a default.
//! * The executables of the selected mode must be absolute paths: nothing is looked up in `PATH`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which Defender front-end the backend drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Microsoft Defender for Endpoint on Linux, through `mdatp`.
    Mdatp,
    /// Microsoft Defender Antivirus on Windows, through PowerShell and `MpCmdRun.exe`.
    Windows,
}

impl Mode {
    /// The mode of the host the plugin was built for.
    pub fn native() -> Mode {
        if cfg!(windows) {
            Mode::Windows
        } else {
            Mode::Mdatp
        }
    }
}

/// `[backends.defender]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `mdatp` or `windows`; default: the host's (tests drive the Windows path on Linux with
    /// `mode = "windows"` and fake executables).
    pub mode: Mode,
    /// The `mdatp` CLI (Linux).
    pub mdatp: PathBuf,
    /// Windows PowerShell (`powershell.exe`, or `pwsh.exe`).
    pub powershell: PathBuf,
    /// `MpCmdRun.exe` (Windows).
    pub mpcmdrun: PathBuf,
    /// Deadline of every call except scans.
    pub timeout_secs: u64,
    /// Deadline of one scan command (one path).
    pub scan_timeout_secs: u64,
    /// Maximum detections per `alerts()` page when the query sets no limit.
    pub alerts_limit: u32,
    /// Signature age (days) above which the update status is `late`.
    pub update_late_days: u32,
    /// Signature age (days) above which the update status is `critical`.
    pub update_critical_days: u32,
}

/// `%VAR%` from the agent's environment, or `fallback` (never from server data).
fn env_dir(var: &str, fallback: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

/// Joins Windows path parts with `\` (on any host, so defaults are the same everywhere).
fn win_path(base: &str, rest: &[&str]) -> PathBuf {
    let mut s = base.trim_end_matches('\\').to_string();
    for part in rest {
        s.push('\\');
        s.push_str(part);
    }
    PathBuf::from(s)
}

impl Default for Settings {
    fn default() -> Self {
        let system_root = env_dir("SystemRoot", r"C:\Windows");
        let program_files = env_dir("ProgramFiles", r"C:\Program Files");
        Settings {
            mode: Mode::native(),
            mdatp: PathBuf::from("/usr/bin/mdatp"),
            powershell: win_path(
                &system_root,
                &["System32", "WindowsPowerShell", "v1.0", "powershell.exe"],
            ),
            mpcmdrun: win_path(&program_files, &["Windows Defender", "MpCmdRun.exe"]),
            timeout_secs: 60,
            scan_timeout_secs: 4 * 3600,
            alerts_limit: 500,
            update_late_days: 3,
            update_critical_days: 7,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid [backends.defender] settings: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("invalid [backends.defender] settings: {0}")]
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

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.update_late_days > self.update_critical_days {
            return Err(SettingsError::Invalid(format!(
                "update_late_days ({}) is above update_critical_days ({})",
                self.update_late_days, self.update_critical_days
            )));
        }
        if self.timeout_secs == 0 || self.scan_timeout_secs == 0 {
            return Err(SettingsError::Invalid("timeouts must be above 0".into()));
        }
        let programs: &[(&str, &Path)] = match self.mode {
            Mode::Mdatp => &[("mdatp", &self.mdatp)],
            Mode::Windows => &[
                ("powershell", &self.powershell),
                ("mpcmdrun", &self.mpcmdrun),
            ],
        };
        for (key, path) in programs {
            if !path.is_absolute() {
                return Err(SettingsError::Invalid(format!(
                    "{key} = {:?} is not an absolute path (programs are never looked up in PATH)",
                    path.display().to_string()
                )));
            }
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn scan_timeout(&self) -> Duration {
        Duration::from_secs(self.scan_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_windows_paths() {
        let s = Settings::default();
        assert_eq!(s.mdatp, PathBuf::from("/usr/bin/mdatp"));
        let ps = s.powershell.display().to_string();
        assert!(
            ps.ends_with(r"\System32\WindowsPowerShell\v1.0\powershell.exe"),
            "{ps}"
        );
        let mp = s.mpcmdrun.display().to_string();
        assert!(mp.ends_with(r"\Windows Defender\MpCmdRun.exe"), "{mp}");
        #[cfg(unix)]
        assert_eq!(
            Settings::from_json(&json!({})).unwrap().mode,
            Mode::Mdatp,
            "Linux drives mdatp by default"
        );
    }

    #[test]
    fn typos_and_relative_programs_are_refused() {
        let err = Settings::from_json(&json!({"mdtap": "/x"})).unwrap_err();
        assert!(err.to_string().contains("mdtap"), "{err}");
        let err = Settings::from_json(&json!({"mode": "mdatp", "mdatp": "mdatp"})).unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");
        let err = Settings::from_json(&json!({"mode": "windows", "powershell": "powershell.exe",
            "mpcmdrun": "/x/MpCmdRun"}))
        .unwrap_err();
        assert!(err.to_string().contains("powershell"), "{err}");
        assert!(Settings::from_json(&json!({"update_late_days": 9})).is_err());
        assert!(Settings::from_json(&json!({"timeout_secs": 0})).is_err());
    }
}
