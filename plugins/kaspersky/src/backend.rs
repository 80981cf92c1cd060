//! [`KasperskyBackend`]: drives KESL (`kesl-control`) on Linux and KES for Windows
//! ([`crate::kes`]) on Windows.
//!
//! Invariants:
//! * Executables come from the settings or the products' default locations; a request adds
//!   only its scan paths (absolute, checked by the agent) to an argv.
//! * Every call runs through [`armadito_cli_exec`]: argv, cleared environment with `LANG=C`
//!   (KESL's CLI language follows it), a deadline.
//! * KESL queries (`-E --query`) are built from our own numbers and clock only.

use std::path::{Path, PathBuf};

use armadito_cli_exec::{Cmd, ExecError, Output, program_name};
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigApplyReport, ConfigEntry, ConfigRejection, Detail,
    Detection, DetectionAction, ErrorKind, ModuleInfo, OnOff, PluginError, ScanProgress,
    ScanRequest, ScanResult, ServiceStatus, UpdateStatus,
};
use serde::{Deserialize, Serialize};

use crate::dates;
use crate::parse::kesl;
use crate::settings::{Mode, Settings};
use crate::tuning;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    NotInstalled(String),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{program} {what} exited with {code} ({meaning}){detail}")]
    Kesl {
        program: String,
        what: &'static str,
        code: String,
        meaning: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Tool(String),
    #[error("invalid alerts cursor {0:?}")]
    Cursor(String),
}

impl From<BackendError> for PluginError {
    fn from(e: BackendError) -> Self {
        let kind = match &e {
            BackendError::NotInstalled(_) => ErrorKind::Unavailable,
            BackendError::Exec(ExecError::Timeout { .. }) => ErrorKind::Timeout,
            BackendError::Exec(ExecError::Cancelled { .. }) => ErrorKind::Cancelled,
            BackendError::Exec(ExecError::NotFound { .. }) => ErrorKind::Unavailable,
            BackendError::Kesl { code, .. } if code == "64" => ErrorKind::Unavailable,
            BackendError::Cursor(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        PluginError::new(kind, e.to_string())
    }
}

/// Where a call's warnings go.
pub type Warn<'a> = &'a dyn Fn(String);

/// KESL exit codes (KESL 12.2 table, doc §2.2).
pub fn kesl_exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "error in command syntax or arguments",
        2 => "error in the application settings",
        64 => "Kaspersky Endpoint Security is not running",
        65 => "error",
        66 => "application databases not loaded",
        67 => "activation failed",
        68 => "managed by a policy",
        70 => "task already in that state or running",
        71 => "KSN Statement not accepted",
        72 => "threats detected",
        76 => "connection prohibited",
        128 => "unknown error",
        _ => "undocumented exit code",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Product {
    Kesl { control: PathBuf },
    KesWindows { avp: PathBuf },
}

pub struct KasperskyBackend {
    settings: Settings,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct EventCursor {
    event_id: u64,
}

const KESL_NAME: &str = "Kaspersky Endpoint Security for Linux";

impl KasperskyBackend {
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn locate(&self) -> Result<Product, BackendError> {
        match self.settings.effective_mode() {
            Mode::Kes => {
                #[cfg(windows)]
                let found = self
                    .settings
                    .avp_com
                    .clone()
                    .or_else(|| crate::kes::run::find_avp(&self.settings.kes_search_dirs));
                #[cfg(not(windows))]
                let found: Option<PathBuf> = None;
                match found {
                    Some(avp) if avp.exists() => Ok(Product::KesWindows { avp }),
                    Some(avp) => Err(BackendError::NotInstalled(format!(
                        "Kaspersky Endpoint Security for Windows not found: {} does not exist",
                        avp.display()
                    ))),
                    None if cfg!(windows) => Err(BackendError::NotInstalled(
                        "Kaspersky Endpoint Security for Windows not found (no KES*\\avp.com under kes_search_dirs)".into(),
                    )),
                    None => Err(BackendError::NotInstalled(
                        "Kaspersky Endpoint Security for Windows runs only on Windows".into(),
                    )),
                }
            }
            _ => {
                let control = self.settings.kesl_control.clone();
                if control.exists() {
                    Ok(Product::Kesl { control })
                } else {
                    Err(BackendError::NotInstalled(format!(
                        "Kaspersky Endpoint Security for Linux not found: {} does not exist",
                        control.display()
                    )))
                }
            }
        }
    }

    /// A private folder for reports and exports.
    pub fn work_dir(&self) -> Result<tempfile::TempDir, BackendError> {
        let made = match &self.settings.work_dir {
            Some(d) => tempfile::tempdir_in(d),
            None => tempfile::tempdir(),
        };
        made.map_err(|e| BackendError::Tool(format!("cannot create a work folder: {e}")))
    }

    pub fn update_status(&self, last: Option<i64>) -> UpdateStatus {
        let Some(last) = last else {
            return UpdateStatus::NonAvailable;
        };
        let age = (dates::now() - last).max(0) / 86_400;
        if age < i64::from(self.settings.update_late_days) {
            UpdateStatus::UpToDate
        } else if age < i64::from(self.settings.update_critical_days) {
            UpdateStatus::Late
        } else {
            UpdateStatus::Critical
        }
    }

    fn kesl(&self, control: &Path, args: &[&str]) -> Cmd {
        Cmd::new(control, self.settings.timeout()).args(args.iter().copied())
    }

    /// Run a kesl-control command whose accepted exit codes are `ok`.
    fn kesl_run(&self, cmd: Cmd, what: &'static str, ok: &[i32]) -> Result<Output, BackendError> {
        let out = cmd.run()?;
        match out.code() {
            Some(c) if ok.contains(&c) => Ok(out),
            code => Err(BackendError::Kesl {
                program: program_name(&cmd.program),
                what,
                code: code.map_or("no code".into(), |c| c.to_string()),
                meaning: code.map_or("killed by a signal", kesl_exit_meaning),
                detail: out.colon_tail(),
            }),
        }
    }

    pub fn state(&self, warn: Warn) -> Result<BackendState, BackendError> {
        match self.locate()? {
            Product::Kesl { control } => self.kesl_state(&control, warn),
            #[cfg(windows)]
            Product::KesWindows { avp } => crate::kes::run::state(self, &avp, warn),
            #[cfg(not(windows))]
            Product::KesWindows { .. } => unreachable_on_this_os(),
        }
    }

    fn kesl_state(&self, control: &Path, warn: Warn) -> Result<BackendState, BackendError> {
        let out = self.kesl(control, &["--app-info"]).run()?;
        match out.code() {
            Some(0) | Some(66) => {}
            Some(64) => {
                return Ok(BackendState {
                    product_name: KESL_NAME.into(),
                    product_version: "unknown".into(),
                    service_status: ServiceStatus::Stopped,
                    details: vec![Detail::new("product:mode", "kesl")],
                    ..BackendState::default()
                });
            }
            code => {
                return Err(BackendError::Kesl {
                    program: program_name(control),
                    what: "--app-info",
                    code: code.map_or("no code".into(), |c| c.to_string()),
                    meaning: code.map_or("killed by a signal", kesl_exit_meaning),
                    detail: out.colon_tail(),
                });
            }
        }
        let info = kesl::app_info(&out.stdout);
        let last_update = info.databases_date.and_then(dates::local_unix);
        let mut update_status = self.update_status(last_update);
        if info.databases_loaded == Some(false) || out.code() == Some(66) {
            update_status = UpdateStatus::Critical;
        }
        let realtime = match self
            .kesl_run(
                self.kesl(control, &["--get-task-state", "1"]),
                "--get-task-state 1",
                &[0],
            )
            .map(|o| kesl::task_state(&o.stdout))
        {
            Ok(Some(state)) => kesl::task_running(&state),
            Ok(None) => None,
            Err(e) => {
                warn(format!("real-time protection state unknown: {e}"));
                None
            }
        }
        .or_else(|| {
            // KESL 10: "File monitoring: Available and stopped"
            let fm = info.file_monitoring.as_deref()?.to_ascii_lowercase();
            Some(fm.contains("running") || fm.contains("started"))
        });
        let mut details = vec![Detail::new("product:mode", "kesl")];
        if let Some(v) = &info.license_status {
            details.push(Detail::new("license:status", v.clone()));
        }
        if let Some(v) = &info.license_expiration {
            details.push(Detail::new("license:expiration", v.clone()));
        }
        if let Some(v) = info.databases_loaded {
            // the server stores booleans as "1"/"": say it in words
            details.push(Detail::new(
                "databases:loaded",
                if v { "yes" } else { "no" },
            ));
        }
        Ok(BackendState {
            product_name: info.name.unwrap_or_else(|| KESL_NAME.into()),
            product_version: info.version.unwrap_or_else(|| "unknown".into()),
            service_status: ServiceStatus::Running,
            update_status,
            last_update,
            modules: vec![ModuleInfo {
                name: "databases".into(),
                status: update_status,
                update_time: last_update,
                version: None,
            }],
            realtime: match realtime {
                Some(true) => OnOff::On,
                Some(false) => OnOff::Off,
                None => OnOff::Unknown,
            },
            details,
        })
    }

    pub fn scan(
        &self,
        request: &ScanRequest,
        report: &dyn Fn(&ScanProgress) -> bool,
        cancelled: &dyn Fn() -> bool,
        warn: Warn,
    ) -> Result<ScanResult, BackendError> {
        match self.locate()? {
            Product::Kesl { control } => self.kesl_scan(&control, request, cancelled, warn),
            #[cfg(windows)]
            Product::KesWindows { avp } => {
                let _ = warn;
                crate::kes::run::scan(self, &avp, request, report, cancelled)
            }
            #[cfg(not(windows))]
            Product::KesWindows { .. } => {
                let _ = report;
                unreachable_on_this_os()
            }
        }
    }

    fn kesl_scan(
        &self,
        control: &Path,
        request: &ScanRequest,
        cancelled: &dyn Fn() -> bool,
        warn: Warn,
    ) -> Result<ScanResult, BackendError> {
        let start = dates::now();
        let started = std::time::Instant::now();
        // --scan-file prints only counters; names come from the event log afterwards
        let cmd = Cmd::new(control, self.settings.scan_timeout())
            .arg("--scan-file")
            .args(request.paths.iter())
            .args(["--action", "Skip"]);
        let out = match cmd.run_with(&mut |_| {}, cancelled) {
            Ok(out) => out,
            Err(ExecError::Cancelled { .. }) => {
                return Ok(ScanResult {
                    cancelled: true,
                    start_time: start,
                    end_time: dates::now(),
                    ..ScanResult::default()
                });
            }
            Err(e) => return Err(e.into()),
        };
        // 72 = threats detected (KESL ≥ 11.2); KESL 10 exits 0 with detections
        if !matches!(out.code(), Some(0) | Some(72)) {
            return Err(BackendError::Kesl {
                program: program_name(control),
                what: "--scan-file",
                code: out.code().map_or("no code".into(), |c| c.to_string()),
                meaning: out.code().map_or("killed by a signal", kesl_exit_meaning),
                detail: out.colon_tail(),
            });
        }
        let summary = kesl::scan_summary(&out.stdout);
        let detected = summary.detected.unwrap_or(0);
        let mut detections = Vec::new();
        if detected > 0 || out.code() == Some(72) {
            let query = format!(
                "EventType=='ThreatDetected' and Date>='{}'",
                dates::kesl_query_date(start - 1)
            );
            match self.kesl_run(
                self.kesl(control, &["-E", "--query", &query]),
                "-E --query",
                &[0],
            ) {
                Ok(events) => {
                    detections = kesl::events(&events.stdout)
                        .into_iter()
                        .filter(|e| e.task_type.is_empty() || e.task_type == "ODS")
                        .filter(|e| request.paths.iter().any(|p| under(&e.file, p)))
                        .map(event_detection)
                        .collect();
                }
                Err(e) => warn(format!("detection names unavailable: {e}")),
            }
        }
        Ok(ScanResult {
            scanned: summary.scanned.unwrap_or(0),
            malware: detected.max(detections.len() as u64),
            suspicious: 0,
            cleaned: summary.disinfected.unwrap_or(0)
                + summary.moved.unwrap_or(0)
                + summary.removed.unwrap_or(0),
            errors: summary.errors.unwrap_or(0),
            start_time: start,
            end_time: dates::now(),
            duration_secs: started.elapsed().as_secs_f64(),
            detections,
            ..ScanResult::default()
        })
    }

    pub fn alerts(&self, query: &AlertsQuery, warn: Warn) -> Result<AlertsPage, BackendError> {
        let limit = query
            .limit
            .unwrap_or(self.settings.alerts_limit)
            .clamp(1, 10_000) as usize;
        match self.locate()? {
            Product::Kesl { control } => {
                let _ = warn;
                self.kesl_alerts(&control, query, limit)
            }
            #[cfg(windows)]
            Product::KesWindows { avp } => crate::kes::run::alerts(self, &avp, query, limit),
            #[cfg(not(windows))]
            Product::KesWindows { .. } => unreachable_on_this_os(),
        }
    }

    fn kesl_alerts(
        &self,
        control: &Path,
        query: &AlertsQuery,
        limit: usize,
    ) -> Result<AlertsPage, BackendError> {
        let after = match &query.cursor {
            Some(c) => Some(
                serde_json::from_str::<EventCursor>(c)
                    .map_err(|_| BackendError::Cursor(c.clone()))?
                    .event_id,
            ),
            None => None,
        };
        let filter = match (after, query.since) {
            (Some(id), _) => format!("EventType=='ThreatDetected' and EventId>'{id}'"),
            (None, Some(since)) => format!(
                "EventType=='ThreatDetected' and Date>='{}'",
                dates::kesl_query_date(since)
            ),
            (None, None) => "EventType=='ThreatDetected'".to_string(),
        };
        let out = self.kesl_run(
            self.kesl(control, &["-E", "--query", &filter]),
            "-E --query",
            &[0],
        )?;
        // the filter may not be honoured by every version: apply the cursor here too
        let mut events: Vec<kesl::Event> = kesl::events(&out.stdout)
            .into_iter()
            .filter(|e| after.is_none_or(|a| e.id > a))
            .collect();
        events.sort_by_key(|e| e.id);
        events.dedup_by_key(|e| e.id);
        let more = events.len() > limit;
        events.truncate(limit);
        let next = events.last().map(|e| e.id).or(after);
        Ok(AlertsPage {
            next_cursor: next
                .and_then(|event_id| serde_json::to_string(&EventCursor { event_id }).ok()),
            detections: events.into_iter().map(event_detection).collect(),
            more,
        })
    }

    pub fn config_get(&self) -> Result<Vec<ConfigEntry>, BackendError> {
        match self.locate()? {
            Product::Kesl { control } => {
                let mut entries = Vec::new();
                for task in &self.settings.kesl_config_tasks {
                    let id = task.to_string();
                    let out = self.kesl_run(
                        self.kesl(&control, &["--get-settings", &id]),
                        "--get-settings",
                        &[0],
                    )?;
                    entries.extend(kesl::settings_ini(&out.stdout).into_iter().map(|(k, v)| {
                        let attr = format!("task:{id}:{k}");
                        ConfigEntry {
                            read_only: tuning::tunable(&attr).is_none(),
                            attr,
                            value: v.into(),
                        }
                    }));
                }
                Ok(entries)
            }
            #[cfg(windows)]
            Product::KesWindows { avp } => crate::kes::run::config(self, &avp),
            #[cfg(not(windows))]
            Product::KesWindows { .. } => unreachable_on_this_os(),
        }
    }

    /// Apply the allow-listed KESL scan tuning ([`crate::tuning`]) with one
    /// `--set-settings <task> Name=Value …` per task; everything else (and everything on KES
    /// for Windows, whose `IMPORT` format is unconfirmed) is refused with its reason.
    pub fn config_set(&self, entries: &[ConfigEntry]) -> ConfigApplyReport {
        let mut report = ConfigApplyReport::default();
        let reject = |report: &mut ConfigApplyReport, attr: &str, reason: String| {
            report.rejected.push(ConfigRejection {
                attr: attr.to_string(),
                reason,
            })
        };
        let control = match self.locate() {
            Ok(Product::Kesl { control }) => control,
            Ok(Product::KesWindows { .. }) => {
                for e in entries {
                    reject(&mut report, &e.attr, NOT_CHANGEABLE.into());
                }
                return report;
            }
            Err(err) => {
                for e in entries {
                    reject(&mut report, &e.attr, err.to_string());
                }
                return report;
            }
        };
        // task id → [(attr, "Name=Value")]
        let mut by_task: Vec<(u32, Vec<(String, String)>)> = Vec::new();
        for e in entries {
            let Some((task, name)) = tuning::tunable(&e.attr) else {
                reject(&mut report, &e.attr, NOT_CHANGEABLE.into());
                continue;
            };
            match tuning::normalise(name, &e.value) {
                Ok(value) => {
                    let pair = (e.attr.clone(), format!("{name}={value}"));
                    match by_task.iter_mut().find(|(t, _)| *t == task) {
                        Some((_, pairs)) => pairs.push(pair),
                        None => by_task.push((task, vec![pair])),
                    }
                }
                Err(why) => reject(&mut report, &e.attr, why),
            }
        }
        for (task, pairs) in by_task {
            let id = task.to_string();
            let mut args = vec!["--set-settings", id.as_str()];
            args.extend(pairs.iter().map(|(_, kv)| kv.as_str()));
            match self.kesl_run(self.kesl(&control, &args), "--set-settings", &[0]) {
                Ok(_) => report
                    .applied
                    .extend(pairs.into_iter().map(|(attr, _)| attr)),
                Err(err) => {
                    for (attr, _) in pairs {
                        reject(&mut report, &attr, err.to_string());
                    }
                }
            }
        }
        report
    }
}

const NOT_CHANGEABLE: &str = "not changeable remotely (only the scan tuning options of tasks 2-4 are: see plugins/kaspersky/README.md)";

#[cfg(not(windows))]
fn unreachable_on_this_os<T>() -> Result<T, BackendError> {
    // `locate` never returns KesWindows off Windows; answer instead of panicking anyway
    Err(BackendError::NotInstalled(
        "Kaspersky Endpoint Security for Windows runs only on Windows".into(),
    ))
}

/// `file` is `root` or inside it.
fn under(file: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    file == root || file.strip_prefix(root).is_some_and(|r| r.starts_with('/')) || root.is_empty()
}

fn event_detection(e: kesl::Event) -> Detection {
    Detection {
        id: e.id.to_string(),
        threat_name: e.detect_name,
        file_path: e.file,
        // scans run with --action Skip; for real-time events the event log does not say
        action: if e.task_type == "ODS" {
            DetectionAction::None
        } else {
            DetectionAction::Unknown
        },
        detection_time: dates::local_unix(e.time).unwrap_or(0),
        module_name: Some(e.task_name).filter(|t| !t.is_empty()),
        info: Some(format!(
            "{}{}",
            e.detect_type,
            if e.danger.is_empty() {
                String::new()
            } else {
                format!(", danger level {}", e.danger)
            }
        ))
        .filter(|i| !i.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_roots() {
        assert!(under("/srv/a/b", "/srv/a"));
        assert!(under("/srv/a", "/srv/a/"));
        assert!(!under("/srv/ab", "/srv/a"));
        assert!(under("/x", "/"));
    }

    #[test]
    fn missing_product_is_unavailable() {
        let b = KasperskyBackend::new(Settings {
            kesl_control: "/nonexistent/kesl-control".into(),
            mode: Mode::Kesl,
            ..Settings::default()
        });
        let e = PluginError::from(b.state(&|_| {}).unwrap_err());
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(
            e.message,
            "Kaspersky Endpoint Security for Linux not found: /nonexistent/kesl-control does not exist"
        );
    }

    #[test]
    fn config_set_without_the_product_refuses_each_key_with_the_reason() {
        let b = KasperskyBackend::new(Settings {
            kesl_control: "/nonexistent/kesl-control".into(),
            mode: Mode::Kesl,
            ..Settings::default()
        });
        let r = b.config_set(&[ConfigEntry::new("task:2:ScanArchived", "Yes")]);
        assert!(r.applied.is_empty());
        assert_eq!(r.rejected.len(), 1);
        assert!(
            r.rejected[0].reason.contains("not found"),
            "{:?}",
            r.rejected
        );
    }

    #[test]
    fn exit_meanings() {
        assert_eq!(kesl_exit_meaning(72), "threats detected");
        assert_eq!(
            kesl_exit_meaning(64),
            "Kaspersky Endpoint Security is not running"
        );
        assert_eq!(kesl_exit_meaning(99), "undocumented exit code");
    }
}
