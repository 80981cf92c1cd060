//! Microsoft Defender Antivirus on Windows, through `powershell.exe` (Defender cmdlets, JSON)
//! and `MpCmdRun.exe` (scans). Portable code: on Linux, tests point `powershell`/`mpcmdrun` at
//! fake executables and drive exactly this path.

pub mod mpcmdrun;
pub mod powershell;
pub mod prefs;
pub mod status;
pub mod threats;

use std::path::Path;

use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Detection,
    DetectionAction, FileResult, FileStatus, ScanKind, ScanProgress, ScanRequest, ScanResult,
    ServiceStatus,
};
use serde_json::Value;

use crate::config::{NOT_IN_EFFECT, rejected};
use crate::error::DefenderError;
use crate::exec::{self, ExecError, Output};
use crate::freshness::now_secs;
use crate::scan::{Observer, check_path, count_files};
use crate::settings::Settings;
use powershell::{VALUE_VAR, rows};

pub struct WindowsDefender {
    settings: Settings,
}

impl WindowsDefender {
    pub fn new(settings: Settings) -> Self {
        WindowsDefender { settings }
    }

    fn powershell(&self, script: &str, value: Option<&str>) -> Result<Output, DefenderError> {
        let mut call = exec::call(&self.settings.powershell, powershell::args(script))
            .timeout(self.settings.timeout());
        if let Some(v) = value {
            call = call.env(VALUE_VAR, v);
        }
        Ok(call.run()?)
    }

    /// Runs a read script and returns its objects.
    fn read(&self, script: &str, what: &str) -> Result<Vec<Value>, DefenderError> {
        let out = self.powershell(script, None)?;
        if !out.status.success() {
            return Err(DefenderError::failed(what, out.summary()));
        }
        rows(&out.stdout).map_err(|e| DefenderError::parse(what, e))
    }

    pub fn state(&self) -> Result<BackendState, DefenderError> {
        let out = match self.powershell(powershell::COMPUTER_STATUS, None) {
            Err(DefenderError::Exec(e @ ExecError::NotFound { .. })) => {
                return Ok(status::not_running(
                    ServiceStatus::NotInstalled,
                    &e.to_string(),
                ));
            }
            other => other?,
        };
        if !out.status.success() {
            let text = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
            if text.contains(status::NOT_RUNNING_HR) {
                return Ok(status::not_running(
                    ServiceStatus::Stopped,
                    "Defender is not the active antivirus (0x800106ba)",
                ));
            }
            return Err(DefenderError::failed("Get-MpComputerStatus", out.summary()));
        }
        let rows =
            rows(&out.stdout).map_err(|e| DefenderError::parse("Get-MpComputerStatus", e))?;
        let row = rows
            .first()
            .ok_or_else(|| DefenderError::parse("Get-MpComputerStatus", "no object"))?;
        let s = &self.settings;
        Ok(status::parse(
            row,
            now_secs(),
            s.update_late_days,
            s.update_critical_days,
        ))
    }

    pub fn scan(
        &self,
        req: &ScanRequest,
        observer: &dyn Observer,
    ) -> Result<ScanResult, DefenderError> {
        if req.kind == ScanKind::Custom && !req.recursive {
            return Err(DefenderError::NotSupported(
                "MpCmdRun always scans folders recursively: a non-recursive scan is not supported"
                    .into(),
            ));
        }
        let start = now_secs();
        let started = std::time::Instant::now();
        let mut result = ScanResult {
            start_time: start,
            ..ScanResult::default()
        };
        let targets: Vec<Option<&str>> = match req.kind {
            ScanKind::Custom => req.paths.iter().map(|p| Some(p.as_str())).collect(),
            _ => vec![None],
        };
        if targets.is_empty() {
            return Err(DefenderError::Invalid("no path to scan".into()));
        }
        let mut failures = Vec::new();
        for target in targets {
            if observer.cancelled() {
                result.cancelled = true;
                break;
            }
            if let Some(p) = target {
                check_path(p)?;
            }
            let call = exec::call(
                &self.settings.mpcmdrun,
                mpcmdrun::args(req.kind, target, req.remediate),
            )
            .timeout(self.settings.scan_timeout());
            let out = match call.run_with(&mut |_| {}, &|| observer.cancelled()) {
                Err(ExecError::Cancelled { .. }) => {
                    result.cancelled = true;
                    break;
                }
                other => other?,
            };
            let label = target.unwrap_or("(system)");
            let files = target.map_or(0, |p| count_files(Path::new(p)));
            match mpcmdrun::parse(&format!("{}\n{}", out.stdout, out.stderr)) {
                Ok(mpcmdrun::Verdict::Clean) => {
                    result.scanned += files;
                    if req.per_file_results {
                        result.files.push(FileResult {
                            path: label.into(),
                            status: FileStatus::Clean,
                            ..FileResult::default()
                        });
                    }
                }
                Ok(mpcmdrun::Verdict::Infected { count, threats }) => {
                    result.scanned += files.max(count);
                    result.malware += count;
                    for t in threats {
                        let files = if t.files.is_empty() {
                            vec![label.to_string()]
                        } else {
                            t.files
                        };
                        for f in files {
                            result.detections.push(Detection {
                                threat_name: t.name.clone(),
                                file_path: f.clone(),
                                action: if req.remediate {
                                    DetectionAction::Unknown
                                } else {
                                    DetectionAction::None
                                },
                                detection_time: now_secs(),
                                info: Some("on-demand scan (MpCmdRun)".into()),
                                ..Detection::default()
                            });
                            if req.per_file_results {
                                result.files.push(FileResult {
                                    path: f,
                                    status: FileStatus::Malware,
                                    threat_name: Some(t.name.clone()),
                                    message: None,
                                });
                            }
                        }
                    }
                }
                Err(why) => {
                    result.errors += 1;
                    failures.push(format!("{label}: {why} ({})", out.status));
                }
            }
            let go_on = observer.report(&ScanProgress {
                files_scanned: result.scanned,
                malware: result.malware,
                errors: result.errors,
                current_path: target.map(str::to_string),
                ..ScanProgress::default()
            });
            if !go_on {
                result.cancelled = true;
                break;
            }
        }
        if !failures.is_empty() && result.scanned == 0 && result.malware == 0 {
            return Err(DefenderError::failed("MpCmdRun scan", failures.join("; ")));
        }
        result.end_time = now_secs();
        result.duration_secs = started.elapsed().as_secs_f64();
        Ok(result)
    }

    pub fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, DefenderError> {
        let detections = self.read(powershell::THREAT_DETECTIONS, "Get-MpThreatDetection")?;
        let threats = if detections.is_empty() {
            Vec::new()
        } else {
            self.read(powershell::THREATS, "Get-MpThreat")?
        };
        let all = threats::join(&detections, &threats);
        Ok(crate::cursor::page(all, query, self.settings.alerts_limit)?)
    }

    fn preferences(&self) -> Result<Value, DefenderError> {
        self.read(powershell::PREFERENCES, "Get-MpPreference")?
            .into_iter()
            .next()
            .ok_or_else(|| DefenderError::parse("Get-MpPreference", "no object"))
    }

    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, DefenderError> {
        Ok(prefs::entries(&self.preferences()?))
    }

    pub fn config_set(&self, wanted: &[ConfigEntry]) -> Result<ConfigApplyReport, DefenderError> {
        let before = self.preferences()?;
        let plan = prefs::plan(wanted, &before);
        let mut report = ConfigApplyReport {
            unchanged: plan.unchanged,
            rejected: plan.rejected,
            ..ConfigApplyReport::default()
        };
        let mut failed: Vec<&str> = Vec::new();
        for w in &plan.writes {
            if failed.contains(&w.attr) {
                continue;
            }
            let out = self.powershell(&powershell::write_script(w.op, w.attr), Some(&w.value))?;
            if !out.status.success() {
                failed.push(w.attr);
                report.rejected.push(rejected(
                    w.attr,
                    format!("{:?} failed: {}", w.op, out.summary()),
                ));
            }
        }
        if plan.expect.is_empty() {
            return Ok(report);
        }
        // Tamper protection ignores writes without an error: only a re-read tells.
        let after = self.preferences()?;
        for (name, want) in &plan.expect {
            if failed.contains(name) {
                continue;
            }
            if prefs::holds(&after, name, want) {
                report.applied.push(name.to_string());
            } else {
                report.rejected.push(rejected(name, NOT_IN_EFFECT));
            }
        }
        Ok(report)
    }
}
