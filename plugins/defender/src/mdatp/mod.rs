//! Microsoft Defender for Endpoint on Linux, through the `mdatp` CLI with `--output json`.

pub mod features;
pub mod health;
pub mod threats;

use std::collections::HashSet;
use std::path::Path;

use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, Detail, FileResult,
    FileStatus, ScanKind, ScanProgress, ScanRequest, ScanResult, ServiceStatus,
};
use serde_json::Value;

use crate::config::{NOT_IN_EFFECT, not_changeable, rejected, values};
use crate::cursor::Timed;
use crate::error::DefenderError;
use crate::exec::{self, Cmd, ExecError, Output};
use crate::freshness::now_secs;
use crate::scan::{Observer, check_path, count_files};
use crate::settings::Settings;

pub struct MdatpDefender {
    settings: Settings,
}

/// `N file(s) scanned` / `N threat(s) detected` in `mdatp scan` output (format not
/// documented; both lines are optional).
pub fn scan_counters(text: &str) -> (Option<u64>, Option<u64>) {
    let number_before = |needle: &str| {
        text.lines().find_map(|l| {
            let l = l.trim();
            let i = l.find(needle)?;
            l[..i].split_whitespace().last()?.parse().ok()
        })
    };
    (
        number_before("file(s) scanned"),
        number_before("threat(s) detected"),
    )
}

impl MdatpDefender {
    pub fn new(settings: Settings) -> Self {
        MdatpDefender { settings }
    }

    fn call(&self, args: &[&str]) -> Cmd {
        exec::call(&self.settings.mdatp, args.iter().copied()).timeout(self.settings.timeout())
    }

    fn run(&self, args: &[&str]) -> Result<Output, DefenderError> {
        Ok(self.call(args).run()?)
    }

    /// `mdatp <args> --output json`, parsed; a non-zero exit is a failure of `what`.
    fn json(&self, args: &[&str], what: &str) -> Result<Value, DefenderError> {
        let mut argv = args.to_vec();
        argv.extend(["--output", "json"]);
        let out = self.run(&argv)?;
        if !out.status.success() {
            return Err(DefenderError::failed(what, out.summary()));
        }
        serde_json::from_str(out.stdout.trim()).map_err(|e| DefenderError::parse(what, e))
    }

    fn health(&self) -> Result<Value, DefenderError> {
        self.json(&["health"], "mdatp health")
    }

    fn threats(&self) -> Result<Vec<Timed>, DefenderError> {
        Ok(threats::parse(
            &self.json(&["threat", "list"], "mdatp threat list")?,
        ))
    }

    pub fn state(&self) -> Result<BackendState, DefenderError> {
        let not_running = |status, why: String| BackendState {
            product_name: health::PRODUCT.into(),
            service_status: status,
            details: vec![Detail::new("service:error", why)],
            ..BackendState::default()
        };
        match self.health() {
            Ok(h) => {
                let s = &self.settings;
                Ok(health::parse(
                    &h,
                    now_secs(),
                    s.update_late_days,
                    s.update_critical_days,
                ))
            }
            Err(DefenderError::Exec(e @ ExecError::NotFound { .. })) => {
                Ok(not_running(ServiceStatus::NotInstalled, e.to_string()))
            }
            // mdatp answers but its daemon does not (not running, not licensed, ...)
            Err(e @ DefenderError::Failed { .. }) => {
                Ok(not_running(ServiceStatus::Stopped, e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    pub fn scan(
        &self,
        req: &ScanRequest,
        observer: &dyn Observer,
    ) -> Result<ScanResult, DefenderError> {
        if req.kind == ScanKind::Custom && !req.recursive {
            return Err(DefenderError::NotSupported(
                "mdatp always scans folders recursively: a non-recursive scan is not supported"
                    .into(),
            ));
        }
        if req.kind == ScanKind::Custom && req.paths.is_empty() {
            return Err(DefenderError::Invalid("no path to scan".into()));
        }
        let started = std::time::Instant::now();
        let mut result = ScanResult {
            start_time: now_secs(),
            ..ScanResult::default()
        };
        // mdatp scan prints no per-file verdicts: detections are the threats that appear in
        // `threat list` during the scan, under the scanned paths.
        let before: HashSet<String> = self
            .threats()?
            .into_iter()
            .map(|t| t.detection.id)
            .collect();
        let targets: Vec<Option<&str>> = match req.kind {
            ScanKind::Custom => req.paths.iter().map(|p| Some(p.as_str())).collect(),
            _ => vec![None],
        };
        let mut reported_threats = 0;
        for target in &targets {
            if observer.cancelled() {
                result.cancelled = true;
                break;
            }
            let args: Vec<&str> = match (req.kind, target) {
                (ScanKind::Custom, Some(p)) => {
                    check_path(p)?;
                    vec!["scan", "custom", "--path", p]
                }
                (ScanKind::Quick, _) => vec!["scan", "quick"],
                _ => vec!["scan", "full"],
            };
            let call = self.call(&args).timeout(self.settings.scan_timeout());
            let out = match call.run_with(&mut |_| {}, &|| observer.cancelled()) {
                Err(ExecError::Cancelled { .. }) => {
                    result.cancelled = true;
                    break;
                }
                other => other?,
            };
            let (files, found) = scan_counters(&out.stdout);
            if !out.status.success() && files.is_none() && found.is_none() {
                return Err(DefenderError::failed(
                    format!("mdatp scan of {}", target.unwrap_or("the system")),
                    out.summary(),
                ));
            }
            result.scanned +=
                files.unwrap_or_else(|| target.map_or(0, |p| count_files(Path::new(p))));
            reported_threats += found.unwrap_or(0);
            if !observer.report(&ScanProgress {
                files_scanned: result.scanned,
                current_path: target.map(str::to_string),
                ..ScanProgress::default()
            }) {
                result.cancelled = true;
                break;
            }
        }
        let under = |p: &str| {
            req.kind != ScanKind::Custom
                || p.is_empty()
                || req.paths.iter().any(|root| Path::new(p).starts_with(root))
        };
        let mut new: Vec<Timed> = self
            .threats()?
            .into_iter()
            .filter(|t| !before.contains(&t.detection.id) && under(&t.detection.file_path))
            .collect();
        new.sort_by_key(|t| t.millis);
        for t in new {
            if req.per_file_results {
                result.files.push(FileResult {
                    path: t.detection.file_path.clone(),
                    status: FileStatus::Malware,
                    threat_name: Some(t.detection.threat_name.clone()),
                    message: None,
                });
            }
            result.detections.push(t.detection);
        }
        result.malware = reported_threats.max(result.detections.len() as u64);
        result.end_time = now_secs();
        result.duration_secs = started.elapsed().as_secs_f64();
        Ok(result)
    }

    pub fn alerts(&self, query: &AlertsQuery) -> Result<AlertsPage, DefenderError> {
        Ok(crate::cursor::page(
            self.threats()?,
            query,
            self.settings.alerts_limit,
        )?)
    }

    fn exclusions(&self) -> Result<Vec<(&'static str, String)>, DefenderError> {
        Ok(features::parse_exclusions(
            &self.json(&["exclusion", "list"], "mdatp exclusion list")?,
        ))
    }

    fn entries(&self, h: &Value, excl: &[(&'static str, String)]) -> Vec<ConfigEntry> {
        let mut e = health::entries(h);
        for (attr, _, _) in features::EXCLUSIONS {
            let items: Vec<&str> = excl
                .iter()
                .filter(|(a, _)| a == attr)
                .map(|(_, v)| v.as_str())
                .collect();
            e.push(ConfigEntry::new(*attr, items));
        }
        e
    }

    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, DefenderError> {
        Ok(self.entries(&self.health()?, &self.exclusions()?))
    }

    pub fn config_set(&self, wanted: &[ConfigEntry]) -> Result<ConfigApplyReport, DefenderError> {
        let h = self.health()?;
        let excl = self.exclusions()?;
        let mut report = ConfigApplyReport::default();
        let mut expect: Vec<(String, Value)> = Vec::new();
        for e in wanted {
            if let Some((feature, kind)) = features::feature(&e.attr) {
                let (now, managed) = h
                    .get(&e.attr)
                    .map(health::setting)
                    .unwrap_or((Value::Null, false));
                if managed {
                    report.rejected.push(rejected(
                        &e.attr,
                        "managed by policy (mdatp_managed.json): not changeable locally",
                    ));
                    continue;
                }
                let Some((word, want)) = features::requested(kind, &e.value) else {
                    report
                        .rejected
                        .push(rejected(&e.attr, format!("invalid value {}", e.value)));
                    continue;
                };
                if now == want {
                    report.unchanged.push(e.attr.clone());
                    continue;
                }
                let out = self.run(&["config", feature, "--value", word])?;
                if out.status.success() {
                    expect.push((e.attr.clone(), want));
                } else {
                    report.rejected.push(rejected(
                        &e.attr,
                        format!("mdatp config failed: {}", out.summary()),
                    ));
                }
            } else if let Some((attr, kind, flag)) = features::exclusion(&e.attr) {
                let Some(items) = values::list(&e.value) else {
                    report.rejected.push(rejected(
                        &e.attr,
                        format!("invalid value {}: expected a list", e.value),
                    ));
                    continue;
                };
                let have: Vec<&String> = excl
                    .iter()
                    .filter(|(a, _)| *a == attr)
                    .map(|(_, v)| v)
                    .collect();
                let adds = items
                    .iter()
                    .filter(|i| !have.contains(i))
                    .map(|i| ("add", i.as_str()));
                let removes = have
                    .iter()
                    .filter(|h| !items.contains(h))
                    .map(|h| ("remove", h.as_str()));
                let ops: Vec<(&str, &str)> = adds.chain(removes).collect();
                if ops.is_empty() {
                    report.unchanged.push(e.attr.clone());
                    continue;
                }
                let mut ok = true;
                for (op, item) in ops {
                    let out = self.run(&["exclusion", kind, op, flag, item])?;
                    if !out.status.success() {
                        ok = false;
                        report.rejected.push(rejected(
                            &e.attr,
                            format!("mdatp exclusion {kind} {op} failed: {}", out.summary()),
                        ));
                        break;
                    }
                }
                if ok {
                    expect.push((e.attr.clone(), Value::from(items)));
                }
            } else {
                report.rejected.push(not_changeable(&e.attr));
            }
        }
        if expect.is_empty() {
            return Ok(report);
        }
        let now = self.entries(&self.health()?, &self.exclusions()?);
        for (attr, want) in expect {
            if now.iter().any(|c| c.attr == attr && same(&c.value, &want)) {
                report.applied.push(attr);
            } else {
                report.rejected.push(rejected(&attr, NOT_IN_EFFECT));
            }
        }
        Ok(report)
    }
}

/// Equal values; lists compare as sets (the CLI lists exclusions in its own order).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().all(|i| y.contains(i)),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let out = "Scanning file: /tmp/x\nScan has finished\n\t66 file(s) scanned\n\t1 threat(s) detected\n";
        assert_eq!(scan_counters(out), (Some(66), Some(1)));
        assert_eq!(scan_counters("Scan has finished"), (None, None));
    }
}
