//! `[backends.eset]`: where the ESET tools are and how long each call may take.
//!
//! Invariants:
//! * Every key is optional; the defaults are the products' install locations
//!   (`/opt/eset/eea`, `/opt/eset/efs`, legacy `/opt/eset/esets`).
//! * Every program path that can be given is absolute (checked here), so nothing is looked up
//!   in `PATH`; the server can choose none of them.
//! * Unknown keys are refused: a typo must fail at load time, not fall back silently.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which product generation to drive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Current EEA/ESSL if found, else legacy ESETS.
    #[default]
    Auto,
    /// EEA / ESSL (EFS) 7+: `odscan`, `upd`, `lic`, `lslog`.
    Current,
    /// ESETS 4.x: `esets_scan`, `data.txt`, syslog.
    Legacy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub mode: Mode,
    /// Product folders searched in order: `<dir>/bin/odscan` means EEA/ESSL,
    /// `<dir>/sbin/esets_scan` legacy ESETS.
    pub install_dirs: Vec<PathBuf>,
    /// EEA/ESSL `bin` folder (`odscan`, `upd`, ESSL `lslog`); overrides `install_dirs`.
    pub bin_dir: Option<PathBuf>,
    /// EEA/ESSL `sbin` folder (`lic`, EEA `lslog`, ESSL `cfg`).
    pub sbin_dir: Option<PathBuf>,
    /// Legacy ESETS `sbin` folder (`esets_scan`).
    pub legacy_sbin_dir: Option<PathBuf>,
    /// Legacy `data.txt`.
    pub legacy_data_file: PathBuf,
    /// Legacy `esets.cfg` (AVConfig read).
    pub legacy_config_file: PathBuf,
    /// Syslog file the legacy daemon writes its detections to.
    pub syslog_file: PathBuf,
    /// `systemctl`, for the service state (absolute).
    pub systemctl: PathBuf,
    /// systemd unit; unset = `eea.service` or `efs.service` by product.
    pub service_unit: Option<String>,
    /// odscan profile (`@Smart scan`, `@In-depth scan`, or one made in the product's GUI).
    pub profile: String,
    /// Deadline of every tool call but the scan.
    pub timeout_secs: u64,
    /// Deadline of a scan.
    pub scan_timeout_secs: u64,
    /// Detection engine age (days) above which the state is `late` (GLPI uses 2 days).
    pub update_late_days: u32,
    /// ... and `critical`.
    pub update_critical_days: u32,
    /// Detections per alerts page when the agent sets no limit.
    pub alerts_limit: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Auto,
            install_dirs: ["/opt/eset/eea", "/opt/eset/efs", "/opt/eset/esets"]
                .map(PathBuf::from)
                .to_vec(),
            bin_dir: None,
            sbin_dir: None,
            legacy_sbin_dir: None,
            legacy_data_file: PathBuf::from("/var/opt/eset/esets/lib/data/data.txt"),
            legacy_config_file: PathBuf::from("/etc/opt/eset/esets/esets.cfg"),
            syslog_file: PathBuf::from("/var/log/syslog"),
            systemctl: PathBuf::from("/usr/bin/systemctl"),
            service_unit: None,
            profile: "@Smart scan".into(),
            timeout_secs: 60,
            scan_timeout_secs: 6 * 3600,
            update_late_days: 2,
            update_critical_days: 7,
            alerts_limit: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid [backends.eset] settings: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("invalid [backends.eset] settings: {0}")]
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
        let paths = self
            .install_dirs
            .iter()
            .chain(&self.bin_dir)
            .chain(&self.sbin_dir)
            .chain(&self.legacy_sbin_dir)
            .chain([
                &self.legacy_data_file,
                &self.legacy_config_file,
                &self.syslog_file,
                &self.systemctl,
            ]);
        for p in paths {
            // `has_root`: these are Linux paths; on another system (where `locate` refuses to
            // run anything) `/opt/eset/eea` is still the default, not a configuration error.
            if !(p.is_absolute() || (cfg!(not(target_os = "linux")) && p.has_root())) {
                return Err(SettingsError::Invalid(format!(
                    "{} is not an absolute path",
                    p.display()
                )));
            }
        }
        if self.profile.trim().is_empty() || self.profile.starts_with('-') {
            return Err(SettingsError::Invalid(format!(
                "profile {:?} is not a profile name",
                self.profile
            )));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_product_locations() {
        let s = Settings::from_json(&json!({})).unwrap();
        assert_eq!(s.install_dirs[0], PathBuf::from("/opt/eset/eea"));
        assert_eq!(s.profile, "@Smart scan");
    }

    #[test]
    fn typos_relative_paths_and_option_like_profiles_are_refused() {
        assert!(
            Settings::from_json(&json!({"bindir": "/x"}))
                .unwrap_err()
                .to_string()
                .contains("bindir")
        );
        assert!(
            Settings::from_json(&json!({"bin_dir": "opt/eset/eea/bin"}))
                .unwrap_err()
                .to_string()
                .contains("not an absolute path")
        );
        assert!(Settings::from_json(&json!({"profile": "--clean"})).is_err());
        assert!(Settings::from_json(&json!({"timeout_secs": 0})).is_err());
    }
}
