//! [`EsetBackend`]: finds the installed ESET product and drives its tools.
//!
//! Invariants:
//! * Which executables run is decided by the settings and the product's layout only; a
//!   request contributes nothing but the scan paths (absolute, checked by the agent, so never
//!   read as options).
//! * Every call goes through [`armadito_cli_exec`]: argv, cleared environment with `LANG=C`,
//!   a deadline.
//! * A missing product is an `unavailable` error naming the folders searched, never a panic
//!   or an empty success.

use std::path::{Path, PathBuf};

use armadito_cli_exec::{Cmd, ExecError, Output};
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, ConfigRejection, Detail,
    Detection, DetectionAction, ErrorKind, ModuleInfo, OnOff, PluginError, ScanProgress,
    ScanRequest, ScanResult, ServiceStatus, UpdateStatus,
};

use crate::alerts;
use crate::dates;
use crate::parse::{config, odscan, product};
use crate::settings::{Mode, Settings};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no ESET product found (searched {0})")]
    NotInstalled(String),
    #[error("ESET for Linux cannot run on this system: the eset backend supports Linux only")]
    WrongPlatform,
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{program} exited with {code} ({meaning}){summary}")]
    ToolFailed {
        program: String,
        code: String,
        meaning: &'static str,
        /// `: <what the tool printed>` or empty.
        summary: String,
    },
    #[error("invalid alerts cursor {0:?}")]
    Cursor(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Xml(#[from] config::XmlError),
}

impl From<BackendError> for PluginError {
    fn from(e: BackendError) -> Self {
        let kind = match &e {
            BackendError::NotInstalled(_) => ErrorKind::Unavailable,
            BackendError::WrongPlatform => ErrorKind::NotSupported,
            BackendError::Exec(ExecError::Timeout { .. }) => ErrorKind::Timeout,
            BackendError::Exec(ExecError::Cancelled { .. }) => ErrorKind::Cancelled,
            BackendError::Exec(ExecError::NotFound { .. }) => ErrorKind::Unavailable,
            BackendError::Cursor(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        PluginError::new(kind, e.to_string())
    }
}

/// The product found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Product {
    /// EEA / ESSL: tools in `bin` and `sbin` (`lslog` in either, by product).
    Current { bin: PathBuf, sbin: PathBuf },
    /// ESETS 4.x: `esets_scan` in `sbin`.
    Legacy { sbin: PathBuf },
}

/// Where a call's warnings go (the plugin forwards them to the agent's log).
pub type Warn<'a> = &'a dyn Fn(String);

pub struct EsetBackend {
    settings: Settings,
}

/// The exit codes odscan and esets_scan share (eset-kaspersky.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanExit {
    Clean,
    /// 1: threat found and cleaned.
    Cleaned,
    /// 10: some files could not be scanned.
    Partial,
    /// 50: threat found.
    Infected,
}

/// Map a scanner exit code; 100 and anything unknown are errors.
pub fn scan_exit(code: Option<i32>) -> Result<ScanExit, &'static str> {
    match code {
        Some(0) => Ok(ScanExit::Clean),
        Some(1) => Ok(ScanExit::Cleaned),
        Some(10) => Ok(ScanExit::Partial),
        Some(50) => Ok(ScanExit::Infected),
        Some(100) => Err("error"),
        Some(_) => Err("unexpected exit code"),
        None => Err("killed by a signal"),
    }
}

/// What ESET did, from its (English or German) action words.
pub fn action(text: &str) -> DetectionAction {
    let t = text.to_lowercase();
    if t.contains("delet") || t.contains("removed") || t.contains("gelöscht") {
        DetectionAction::Removed
    } else if t.contains("quarantin") {
        DetectionAction::Quarantined
    } else if t.contains("clean") || t.contains("gesäubert") {
        DetectionAction::Cleaned
    } else if t.contains("block") || t.contains("denied") {
        DetectionAction::Blocked
    } else if t.is_empty()
        || t.contains("retained")
        || t.contains("postponed")
        || t.contains("no action")
        || t.contains("beibehalten")
    {
        DetectionAction::None
    } else {
        DetectionAction::Unknown
    }
}

pub fn info_text(action: &str, info: &str) -> Option<String> {
    match (action.is_empty(), info.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("action: {action}")),
        (true, false) => Some(info.to_string()),
        (false, false) => Some(format!("action: {action}; {info}")),
    }
}

impl EsetBackend {
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Find the product: explicit folders first, then `install_dirs` in order.
    pub fn locate(&self) -> Result<Product, BackendError> {
        // The products are Linux-only. Elsewhere a path such as `/opt/eset/eea/bin/odscan`
        // is relative to the current drive, where any local user may create it: never look.
        if !cfg!(target_os = "linux") {
            return Err(BackendError::WrongPlatform);
        }
        let s = &self.settings;
        let current = |bin: PathBuf, sbin: PathBuf| Product::Current { bin, sbin };
        if s.mode != Mode::Legacy
            && let Some(bin) = &s.bin_dir
        {
            let sbin = s.sbin_dir.clone().unwrap_or_else(|| sibling(bin, "sbin"));
            return Ok(current(bin.clone(), sbin));
        }
        if s.mode != Mode::Current
            && let Some(sbin) = &s.legacy_sbin_dir
        {
            return Ok(Product::Legacy { sbin: sbin.clone() });
        }
        for dir in &s.install_dirs {
            if s.mode != Mode::Legacy && dir.join("bin/odscan").exists() {
                return Ok(current(dir.join("bin"), dir.join("sbin")));
            }
            if s.mode != Mode::Current && dir.join("sbin/esets_scan").exists() {
                return Ok(Product::Legacy {
                    sbin: dir.join("sbin"),
                });
            }
        }
        let searched: Vec<String> = s
            .install_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(BackendError::NotInstalled(searched.join(", ")))
    }

    fn cmd(&self, program: PathBuf) -> Cmd {
        Cmd::new(program, self.settings.timeout())
    }

    /// Run a tool that must exit 0.
    fn run_ok(&self, cmd: Cmd) -> Result<Output, BackendError> {
        let out = cmd.run()?;
        if out.code() == Some(0) {
            Ok(out)
        } else {
            Err(tool_failed(&cmd, &out, "error"))
        }
    }

    fn lslog(bin: &Path, sbin: &Path) -> PathBuf {
        // EEA ships lslog in sbin, ESSL/EFS in bin
        let in_sbin = sbin.join("lslog");
        if in_sbin.exists() {
            in_sbin
        } else {
            bin.join("lslog")
        }
    }

    fn service(&self, unit: &str, warn: Warn) -> ServiceStatus {
        let cmd = self
            .cmd(self.settings.systemctl.clone())
            .args(["is-active", unit]);
        match cmd.run() {
            // is-active exits 3 for inactive units: read the word, not the code
            Ok(out) => match product::service_active(&out.stdout) {
                Some(true) => ServiceStatus::Running,
                Some(false) => ServiceStatus::Stopped,
                None => ServiceStatus::Unknown,
            },
            Err(e) => {
                warn(format!("service state of {unit} unknown: {e}"));
                ServiceStatus::Unknown
            }
        }
    }

    fn update_status(&self, last: Option<i64>) -> UpdateStatus {
        let Some(last) = last else {
            return UpdateStatus::NonAvailable;
        };
        let age_days = (dates::now() - last).max(0) / 86_400;
        if age_days < i64::from(self.settings.update_late_days) {
            UpdateStatus::UpToDate
        } else if age_days < i64::from(self.settings.update_critical_days) {
            UpdateStatus::Late
        } else {
            UpdateStatus::Critical
        }
    }

    pub fn state(&self, warn: Warn) -> Result<BackendState, BackendError> {
        match self.locate()? {
            Product::Current { bin, sbin } => self.state_current(&bin, &sbin, warn),
            Product::Legacy { sbin } => self.state_legacy(&sbin, warn),
        }
    }

    fn state_current(
        &self,
        bin: &Path,
        sbin: &Path,
        warn: Warn,
    ) -> Result<BackendState, BackendError> {
        let upd = bin.join("upd");
        let version_out = self.run_ok(self.cmd(upd.clone()).arg("-version"))?;
        let (code, version) = product::version(&version_out.stdout)
            .or_else(|| {
                product::last_version_field(&version_out.stdout).map(|v| (String::new(), v))
            })
            .unwrap_or_else(|| (String::new(), "unknown".into()));
        let mut details = vec![Detail::new("product:mode", "current")];
        if !code.is_empty() {
            details.push(Detail::new("product:code", code.clone()));
        }

        let modules = match self.run_ok(self.cmd(upd).arg("--list-modules")) {
            Ok(out) => product::modules(&out.stdout),
            Err(e) => {
                warn(format!("module list unavailable: {e}"));
                Vec::new()
            }
        };
        let engine = modules.iter().find(|m| m.id == product::DETECTION_ENGINE);
        let day = |d: &chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
        let last_update = engine.and_then(|m| m.date.as_ref()).and_then(day);
        if let Some(e) = engine {
            details.push(Detail::new("engine:version", e.version.clone()));
        }

        let mut product_name = product::product_name(&code).to_string();
        match self.run_ok(self.cmd(sbin.join("lic")).arg("--status")) {
            Ok(out) => {
                let lic = product::license(&out.stdout);
                if let Some(name) = lic.product_name {
                    product_name = name;
                }
                details.push(Detail::new(
                    "license:status",
                    lic.status.unwrap_or_else(|| "unknown".into()),
                ));
                if let Some(v) = lic.validity {
                    details.push(Detail::new("license:validity", v));
                }
            }
            Err(e) => {
                warn(format!("license state unavailable: {e}"));
                details.push(Detail::new("license:status", "unknown"));
            }
        }
        let unit = self.settings.service_unit.clone().unwrap_or_else(|| {
            if code == "eea" || bin.starts_with("/opt/eset/eea") {
                "eea.service".into()
            } else {
                "efs.service".into()
            }
        });
        Ok(BackendState {
            product_name,
            product_version: version,
            service_status: self.service(&unit, warn),
            update_status: self.update_status(last_update),
            last_update,
            modules: modules
                .iter()
                .map(|m| ModuleInfo {
                    name: format!("{} {}", m.id, m.name),
                    status: self.update_status(m.date.as_ref().and_then(day)),
                    update_time: m.date.as_ref().and_then(day),
                    version: Some(m.version.clone()),
                })
                .collect(),
            // no CLI reports on-access state (doc §1.5): never claim "on"
            realtime: OnOff::Unknown,
            details,
        })
    }

    fn state_legacy(&self, sbin: &Path, warn: Warn) -> Result<BackendState, BackendError> {
        let out = self.run_ok(self.cmd(sbin.join("esets_scan")).arg("--version"))?;
        let version = product::version(&out.stdout)
            .map(|(_, v)| v)
            .or_else(|| product::last_version_field(&out.stdout))
            .unwrap_or_else(|| "unknown".into());
        let mut details = vec![Detail::new("product:mode", "legacy")];
        let data = match std::fs::read_to_string(&self.settings.legacy_data_file) {
            Ok(text) => product::legacy_data(&text),
            Err(e) => {
                warn(format!(
                    "{} unreadable: {e}",
                    self.settings.legacy_data_file.display()
                ));
                product::LegacyData::default()
            }
        };
        if let Some(v) = &data.signature_version {
            details.push(Detail::new("engine:version", v.clone()));
        }
        if let Some(t) = data.last_update_attempt {
            details.push(Detail::new("update:last_attempt", t));
        }
        if let Some(t) = data.install_time {
            details.push(Detail::new("product:install_time", t));
        }
        let unit = self
            .settings
            .service_unit
            .clone()
            .unwrap_or_else(|| "esets.service".into());
        Ok(BackendState {
            product_name: product::product_name("esets").into(),
            product_version: version,
            service_status: self.service(&unit, warn),
            update_status: self.update_status(data.last_update),
            last_update: data.last_update,
            modules: Vec::new(),
            realtime: OnOff::Unknown,
            details,
        })
    }

    /// Scan `request.paths` with odscan (report only) or esets_scan.
    pub fn scan(
        &self,
        request: &ScanRequest,
        report: &dyn Fn(&ScanProgress) -> bool,
        cancelled: &dyn Fn() -> bool,
        warn: Warn,
    ) -> Result<ScanResult, BackendError> {
        let product = self.locate()?;
        let start = dates::now();
        let started = std::time::Instant::now();
        let cmd = match &product {
            Product::Current { bin, .. } => {
                Cmd::new(bin.join("odscan"), self.settings.scan_timeout()).args([
                    "--scan".to_string(),
                    format!("--profile={}", self.settings.profile),
                    "--readonly".into(),
                    "--show-scan-info".into(),
                ])
            }
            Product::Legacy { sbin } => {
                Cmd::new(sbin.join("esets_scan"), self.settings.scan_timeout())
            }
        }
        .args(request.paths.iter());

        let mut result = ScanResult {
            start_time: start,
            ..ScanResult::default()
        };
        let stop = std::cell::Cell::new(false);
        let outcome = cmd.run_with(
            &mut |line| {
                if let Some(hit) = odscan::hit(line) {
                    let d = Detection {
                        id: format!(
                            "{:016x}",
                            crate::fnv64(&[hit.path.as_bytes(), hit.threat.as_bytes()])
                        ),
                        threat_name: hit.threat.clone(),
                        file_path: hit.path.clone(),
                        action: action(&hit.action),
                        detection_time: dates::now(),
                        module_name: None,
                        info: info_text(&hit.action, &hit.info),
                    };
                    result.malware += 1;
                    result.detections.push(d.clone());
                    if !report(&ScanProgress {
                        malware: result.malware,
                        current_path: Some(hit.path),
                        new_detections: vec![d],
                        ..ScanProgress::default()
                    }) {
                        stop.set(true);
                    }
                }
            },
            &|| stop.get() || cancelled(),
        );
        result.end_time = dates::now();
        result.duration_secs = started.elapsed().as_secs_f64();
        let out = match outcome {
            Ok(out) => out,
            Err(ExecError::Cancelled { .. }) => {
                result.cancelled = true;
                return Ok(result);
            }
            Err(e) => return Err(e.into()),
        };
        let exit = scan_exit(out.code()).map_err(|meaning| tool_failed(&cmd, &out, meaning))?;

        // totals: the scan's own log when odscan named it, else the summary block
        let mut totals = odscan::summary(&out.stdout);
        if let (Product::Current { bin, sbin }, Some(log)) =
            (&product, odscan::scan_log_name(&out.stdout))
        {
            let lslog = Self::lslog(bin, sbin);
            match self.run_ok(self.cmd(lslog).arg(format!("--ods-details={log}"))) {
                Ok(details) => {
                    let d = odscan::ods_details(&details.stdout);
                    totals = odscan::Totals {
                        scanned: d.totals.scanned.or(totals.scanned),
                        detected: d.totals.detected.or(totals.detected),
                        cleaned: d.totals.cleaned.or(totals.cleaned),
                        not_scanned: d.totals.not_scanned.or(totals.not_scanned),
                    };
                }
                Err(e) => warn(format!("scan totals of log {log} unavailable: {e}")),
            }
        }
        let hits = result.detections.len() as u64;
        result.malware = totals.detected.unwrap_or(hits).max(hits);
        result.cleaned = totals.cleaned.unwrap_or(0);
        result.scanned = totals.scanned.unwrap_or(0).max(result.malware);
        result.errors = totals.not_scanned.unwrap_or(0);
        match exit {
            ScanExit::Partial => {
                result.errors = result.errors.max(1);
                warn(format!(
                    "{} could not scan some files (exit code 10)",
                    cmd.program.display()
                ));
            }
            ScanExit::Cleaned | ScanExit::Infected if result.malware == 0 => {
                warn(format!(
                    "{} reported threats (exit code {:?}) but printed no detection line",
                    cmd.program.display(),
                    out.code()
                ));
                result.malware = 1;
            }
            _ => {}
        }
        Ok(result)
    }

    pub fn alerts(&self, query: &AlertsQuery, warn: Warn) -> Result<AlertsPage, BackendError> {
        let limit = query
            .limit
            .unwrap_or(self.settings.alerts_limit)
            .clamp(1, 10_000) as usize;
        match self.locate()? {
            Product::Current { bin, sbin } => {
                let out = self.run_ok(self.cmd(Self::lslog(&bin, &sbin)).args(["-d", "-c"]))?;
                alerts::from_lslog(&out.stdout, query, limit, warn)
            }
            Product::Legacy { .. } => {
                alerts::from_syslog(&self.settings.syslog_file, query, limit, warn)
            }
        }
    }

    /// The product's configuration; every entry is read-only (see `config_set`).
    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError> {
        let settings = match self.locate()? {
            Product::Current { sbin, .. } => {
                let cfg = sbin.join("cfg");
                if !cfg.exists() {
                    // EEA has no local configuration tool: it is set by ESET PROTECT policies
                    return Ok(vec![read_only(
                        "policy",
                        "managed by ESET PROTECT (no local configuration tool)",
                    )]);
                }
                let dir = tempfile::tempdir()
                    .map_err(|e| BackendError::Io(format!("temporary folder: {e}")))?;
                let file = dir.path().join("settings.xml");
                self.run_ok(
                    self.cmd(cfg)
                        .arg(format!("--export-xml={}", file.display())),
                )?;
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| BackendError::Io(format!("{} unreadable: {e}", file.display())))?;
                config::xml(&text)?
            }
            Product::Legacy { .. } => {
                let path = &self.settings.legacy_config_file;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| BackendError::Io(format!("{} unreadable: {e}", path.display())))?;
                config::ini(&text)
            }
        };
        Ok(settings
            .into_iter()
            .map(|s| read_only(&s.attr, &s.value))
            .collect())
    }

    /// No ESET setting is on this backend's allow-list: ESET documents no safe per-key
    /// tuning interface (EEA is policy-managed; ESSL's `cfg --import-xml` replaces whole
    /// sections), so every key is refused with its reason.
    pub fn config_set(&self, entries: &[ConfigEntry]) -> ConfigApplyReport {
        ConfigApplyReport {
            rejected: entries
                .iter()
                .map(|e| ConfigRejection {
                    attr: e.attr.clone(),
                    reason: "not changeable remotely (ESET settings are managed by ESET PROTECT policies or locally)".into(),
                })
                .collect(),
            ..ConfigApplyReport::default()
        }
    }
}

fn tool_failed(cmd: &Cmd, out: &Output, meaning: &'static str) -> BackendError {
    BackendError::ToolFailed {
        program: armadito_cli_exec::program_name(&cmd.program),
        code: out.code().map_or("no code".into(), |c| c.to_string()),
        meaning,
        summary: out.colon_tail(),
    }
}

fn read_only(attr: &str, value: &str) -> ConfigEntry {
    ConfigEntry {
        attr: attr.to_string(),
        value: value.into(),
        read_only: true,
    }
}

fn sibling(dir: &Path, name: &str) -> PathBuf {
    dir.parent()
        .map_or_else(|| dir.join(name), |p| p.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_as_documented() {
        assert_eq!(scan_exit(Some(0)), Ok(ScanExit::Clean));
        assert_eq!(scan_exit(Some(1)), Ok(ScanExit::Cleaned));
        assert_eq!(scan_exit(Some(10)), Ok(ScanExit::Partial));
        assert_eq!(scan_exit(Some(50)), Ok(ScanExit::Infected));
        assert_eq!(scan_exit(Some(100)), Err("error"));
        assert_eq!(scan_exit(Some(3)), Err("unexpected exit code"));
        assert_eq!(scan_exit(None), Err("killed by a signal"));
    }

    #[test]
    fn action_words() {
        assert_eq!(action("retained"), DetectionAction::None);
        assert_eq!(
            action("action selection postponed until scan completion"),
            DetectionAction::None
        );
        assert_eq!(action("cleaned by deleting"), DetectionAction::Removed);
        assert_eq!(action("cleaned"), DetectionAction::Cleaned);
        assert_eq!(action("gesäubert"), DetectionAction::Cleaned);
        assert_eq!(action("beibehalten"), DetectionAction::None);
        assert_eq!(action("something new"), DetectionAction::Unknown);
    }

    #[test]
    fn missing_product_names_the_folders_searched() {
        let b = EsetBackend::new(Settings {
            install_dirs: vec!["/nonexistent/eea".into(), "/nonexistent/esets".into()],
            ..Settings::default()
        });
        let e = b.locate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "no ESET product found (searched /nonexistent/eea, /nonexistent/esets)"
        );
        assert_eq!(PluginError::from(e).kind, ErrorKind::Unavailable);
    }

    #[test]
    fn config_set_refuses_everything_with_a_reason() {
        let b = EsetBackend::new(Settings::default());
        let r = b.config_set(&[ConfigEntry::new("Settings:Scan:Profile", "x")]);
        assert_eq!(r.rejected.len(), 1);
        assert!(r.rejected[0].reason.starts_with("not changeable remotely"));
        assert!(r.applied.is_empty());
    }
}
