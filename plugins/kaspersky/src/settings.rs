//! `[backends.kaspersky]`: which product, where its tools are, how long each call may take.
//!
//! Invariants:
//! * Every key is optional; defaults are the products' install locations
//!   (`/opt/kaspersky/kesl/bin/kesl-control`; `avp.com` in `…\Kaspersky Lab\KES.<version>\`).
//! * Every program path that can be given must be absolute; nothing is looked up in `PATH`
//!   and the server chooses none of them.
//! * Unknown keys are refused.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// KES for Windows on Windows, KESL elsewhere.
    #[default]
    Auto,
    /// Kaspersky Endpoint Security for Linux (`kesl-control`).
    Kesl,
    /// Kaspersky Endpoint Security for Windows (`avp.com`, `kescli`).
    Kes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub mode: Mode,
    /// KESL control tool.
    pub kesl_control: PathBuf,
    /// KESL task ids whose settings AVConfig reports (`--get-settings <id>`): 1 File Threat
    /// Protection, 2 Scan_My_Computer.
    pub kesl_config_tasks: Vec<u32>,
    /// KES `avp.com`; unset = the newest `KES*` folder under `kes_search_dirs`.
    pub avp_com: Option<PathBuf>,
    /// KES `kescli`; unset = next to `avp.com`.
    pub kescli: Option<PathBuf>,
    /// Folders holding `KES.<version>` installs.
    pub kes_search_dirs: Vec<PathBuf>,
    /// Where scan reports (`/RA:`) and exports are written; unset = a private temp folder.
    pub work_dir: Option<PathBuf>,
    pub timeout_secs: u64,
    pub scan_timeout_secs: u64,
    pub update_late_days: u32,
    pub update_critical_days: u32,
    pub alerts_limit: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Auto,
            kesl_control: PathBuf::from("/opt/kaspersky/kesl/bin/kesl-control"),
            kesl_config_tasks: vec![1, 2],
            avp_com: None,
            kescli: None,
            kes_search_dirs: vec![
                PathBuf::from(r"C:\Program Files (x86)\Kaspersky Lab"),
                PathBuf::from(r"C:\Program Files\Kaspersky Lab"),
            ],
            work_dir: None,
            timeout_secs: 60,
            scan_timeout_secs: 6 * 3600,
            update_late_days: 3,
            update_critical_days: 7,
            alerts_limit: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid [backends.kaspersky] settings: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("invalid [backends.kaspersky] settings: {0}")]
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

    fn validate(&self) -> Result<(), SettingsError> {
        let kesl = self.effective_mode() == Mode::Kesl;
        if kesl && !cfg!(target_os = "linux") {
            // `/opt/kaspersky/...` would be relative to the current drive here, where any
            // local user may create it.
            return Err(SettingsError::Invalid(
                "mode \"kesl\" (Kaspersky Endpoint Security for Linux) runs on Linux only".into(),
            ));
        }
        let programs = [
            kesl.then_some(&self.kesl_control),
            self.avp_com.as_ref(),
            self.kescli.as_ref(),
        ];
        for p in programs.into_iter().flatten().chain(self.work_dir.as_ref()) {
            // Windows paths in a Linux test config are still "absolute" for our purpose
            let s = p.to_string_lossy();
            let windows_abs = s.len() > 2 && s.as_bytes()[1] == b':';
            if !(p.is_absolute() || windows_abs) {
                return Err(SettingsError::Invalid(format!(
                    "{} is not an absolute path",
                    p.display()
                )));
            }
        }
        if self.timeout_secs == 0 || self.scan_timeout_secs == 0 {
            return Err(SettingsError::Invalid("timeouts must be above 0".into()));
        }
        if self.update_late_days > self.update_critical_days {
            return Err(SettingsError::Invalid(
                "update_late_days is above update_critical_days".into(),
            ));
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn scan_timeout(&self) -> Duration {
        Duration::from_secs(self.scan_timeout_secs)
    }

    /// The product this host runs, for `Mode::Auto`.
    pub fn effective_mode(&self) -> Mode {
        match self.mode {
            Mode::Auto if cfg!(windows) => Mode::Kes,
            Mode::Auto => Mode::Kesl,
            m => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_refusals() {
        let s = Settings::from_json(&json!({})).unwrap();
        assert_eq!(
            s.kesl_control,
            PathBuf::from("/opt/kaspersky/kesl/bin/kesl-control")
        );
        assert!(Settings::from_json(&json!({"kesl-control": "/x"})).is_err());
        assert!(
            Settings::from_json(&json!({"kesl_control": "kesl-control"}))
                .unwrap_err()
                .to_string()
                .contains("not an absolute path")
        );
        assert!(Settings::from_json(&json!({"avp_com": r"C:\KES\avp.com"})).is_ok());
        assert!(Settings::from_json(&json!({"scan_timeout_secs": 0})).is_err());
    }
}
