//! `testav`: a deterministic backend for end-to-end tests of the agent's core (job engine,
//! outbox, tasks) where a real antivirus would add nothing but noise.
//!
//! Settings (`[backends.testav]`): `file_delay_ms` (sleep per scanned file, to make scans
//! long enough to interrupt or to overlap with other tasks), `product_version`,
//! `alerts_file` (JSON lines of `Detection`s a test appends to; the cursor is a line count),
//! `config_file` (a JSON object attr → value; keys starting with `readonly` are refused).
//! Detection: a file containing the EICAR test string. Walks folders itself, does not follow
//! symbolic links.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use armadito_plugin_api::serde_json::Value;
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, Capabilities, ConfigApplyReport, ConfigEntry,
    ConfigRejection, Detection, DetectionAction, Host, OnOff, Plugin, PluginError, Progress,
    ScanProgress, ScanRequest, ScanResult, ServiceStatus, export_plugin,
};

const EICAR_MARK: &[u8] = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE";

pub struct TestAv {
    delay: Duration,
    version: String,
    alerts_file: Option<String>,
    config_file: Option<String>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Plugin for TestAv {
    const NAME: &'static str = "testav";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "deterministic test backend (EICAR marker, optional delay)";

    fn capabilities() -> Capabilities {
        Capabilities {
            state: true,
            scan: true,
            scan_progress: true,
            scan_cancel: true,
            alerts: true,
            config_get: true,
            config_set: true,
            ..Capabilities::default()
        }
    }

    fn new(_host: Host, settings: Value) -> Result<Self, PluginError> {
        let delay = settings
            .get("file_delay_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let version = settings
            .get("product_version")
            .and_then(Value::as_str)
            .unwrap_or("1.0.0")
            .to_string();
        let path = |k: &str| settings.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(TestAv {
            delay: Duration::from_millis(delay),
            version,
            alerts_file: path("alerts_file"),
            config_file: path("config_file"),
        })
    }

    fn state(&self) -> Result<BackendState, PluginError> {
        Ok(BackendState {
            product_name: "TestAV".into(),
            product_version: self.version.clone(),
            service_status: ServiceStatus::Running,
            last_update: Some(now() - 3600),
            realtime: OnOff::Off,
            ..BackendState::default()
        })
    }

    fn alerts(&self, query: AlertsQuery) -> Result<AlertsPage, PluginError> {
        let Some(file) = &self.alerts_file else {
            return Ok(AlertsPage::default());
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let from: usize = query
            .cursor
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit = query.limit.unwrap_or(100) as usize;
        let to = lines.len().min(from + limit);
        let detections = lines[from.min(to)..to]
            .iter()
            .map(|l| {
                armadito_plugin_api::serde_json::from_str::<Detection>(l)
                    .map_err(|e| PluginError::internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertsPage {
            detections,
            next_cursor: Some(to.to_string()),
            more: to < lines.len(),
        })
    }

    fn config_get(&self) -> Result<Vec<ConfigEntry>, PluginError> {
        Ok(self
            .read_config()
            .into_iter()
            .map(|(k, v)| ConfigEntry::new(k, v))
            .collect())
    }

    fn config_set(&self, entries: Vec<ConfigEntry>) -> Result<ConfigApplyReport, PluginError> {
        let Some(file) = &self.config_file else {
            return Err(PluginError::not_supported("config_set without config_file"));
        };
        let mut cfg = self.read_config();
        let mut report = ConfigApplyReport::default();
        for e in entries {
            if e.attr.starts_with("readonly") {
                report.rejected.push(ConfigRejection {
                    attr: e.attr,
                    reason: "read-only key".into(),
                });
            } else {
                cfg.insert(e.attr.clone(), e.value);
                report.applied.push(e.attr);
            }
        }
        let text = armadito_plugin_api::serde_json::to_string(&cfg)
            .map_err(|e| PluginError::internal(e.to_string()))?;
        std::fs::write(file, text).map_err(|e| PluginError::internal(e.to_string()))?;
        Ok(report)
    }

    fn scan(
        &self,
        request: ScanRequest,
        progress: &Progress<'_>,
    ) -> Result<ScanResult, PluginError> {
        let mut result = ScanResult {
            start_time: now(),
            ..ScanResult::default()
        };
        let mut files = Vec::new();
        for p in &request.paths {
            collect(
                Path::new(p),
                request.recursive,
                &mut files,
                &mut result.errors,
            );
        }
        let total = files.len() as u64;
        for path in files {
            if progress.is_cancelled() {
                result.cancelled = true;
                break;
            }
            std::thread::sleep(self.delay);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.windows(EICAR_MARK.len()).any(|w| w == EICAR_MARK) => {
                    result.malware += 1;
                    result.detections.push(Detection {
                        id: format!("{}:{}", path.display(), now()),
                        threat_name: "Eicar-Test-Signature".into(),
                        file_path: path.display().to_string(),
                        action: DetectionAction::None,
                        detection_time: now(),
                        module_name: Some("testav".into()),
                        info: None,
                    });
                }
                Ok(_) => {}
                Err(_) => result.errors += 1,
            }
            result.scanned += 1;
            progress.report(&ScanProgress {
                files_scanned: result.scanned,
                files_total_estimate: Some(total),
                malware: result.malware,
                current_path: Some(path.display().to_string()),
                ..ScanProgress::default()
            });
        }
        result.end_time = now();
        result.duration_secs = (result.end_time - result.start_time) as f64;
        Ok(result)
    }
}

impl TestAv {
    fn read_config(&self) -> std::collections::BTreeMap<String, Value> {
        self.config_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| armadito_plugin_api::serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }
}

fn collect(path: &Path, recursive: bool, out: &mut Vec<std::path::PathBuf>, errors: &mut u64) {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        *errors += 1;
        return;
    };
    if md.is_file() {
        out.push(path.to_path_buf());
    } else if md.is_dir() {
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut children: Vec<_> =
                    entries.filter_map(Result::ok).map(|e| e.path()).collect();
                children.sort();
                for c in children {
                    let is_dir = std::fs::symlink_metadata(&c)
                        .map(|m| m.is_dir())
                        .unwrap_or(false);
                    if !is_dir || recursive {
                        collect(&c, recursive, out, errors);
                    }
                }
            }
            Err(_) => *errors += 1,
        }
    }
}

export_plugin!(TestAv);
