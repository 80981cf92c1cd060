//! Kaspersky Endpoint Security for **Windows**: `avp.com SCAN/EXPORT` and `kescli --opswat`.
//!
//! Invariants:
//! * Everything that turns output into the model is plain functions over text, compiled and
//!   tested on every OS (that is how the Windows path is tested on Linux).
//! * Only the code that starts `avp.com`/`kescli` is `#[cfg(windows)]`, in small blocks.
//! * The scan verdict comes from the Statistics block, not from `avp.com`'s exit code (KES
//!   documents none, doc §2.1); without a Statistics block a non-zero exit is an error.

use armadito_cli_exec::cursor;
use armadito_plugin_api::{
    AlertsPage, AlertsQuery, BackendState, ConfigEntry, Detail, Detection, DetectionAction,
    ModuleInfo, OnOff, ScanResult, ServiceStatus, UpdateStatus,
};

use crate::dates;
use crate::parse::{avp, kescli};

/// A detection from a report line.
fn detection(time: i64, path: &str, verdict: &str, name: &str) -> Detection {
    Detection {
        id: format!(
            "{:016x}",
            cursor::fingerprint(&[path.as_bytes(), name.as_bytes(), &time.to_le_bytes()])
        ),
        threat_name: name.to_string(),
        file_path: path.to_string(),
        action: DetectionAction::None,
        detection_time: time,
        module_name: None,
        info: Some(verdict.to_string()),
    }
}

/// Percent of a `Scan_Objects$NNNN running NN%` line.
pub fn progress(line: &str) -> Option<u8> {
    match avp::line(line)? {
        avp::Line::Task { percent, .. } => percent,
        avp::Line::Object { .. } => None,
    }
}

/// A detection of one report line, if it is one.
pub fn line_detection(line: &str) -> Option<Detection> {
    match avp::line(line)? {
        avp::Line::Object {
            time,
            path,
            verdict,
            name,
        } if avp::is_detection(&verdict) => Some(detection(
            dates::local_unix(time).unwrap_or(0),
            &path,
            &verdict,
            &name,
        )),
        _ => None,
    }
}

/// The result of a scan from its report (`/RA:` file, or stdout when the file is missing).
pub fn scan_result(report: &str, exit_code: Option<i32>) -> Result<ScanResult, String> {
    let stats = avp::statistics(report);
    if !stats.found() && exit_code != Some(0) {
        return Err(format!(
            "avp.com SCAN exited with {} and wrote no Statistics block",
            exit_code.map_or("no code (killed)".into(), |c| c.to_string())
        ));
    }
    let detections: Vec<Detection> = report.lines().filter_map(line_detection).collect();
    let suspicious_lines = detections
        .iter()
        .filter(|d| d.info.as_deref() == Some("suspicion"))
        .count() as u64;
    let detected_lines = detections.len() as u64 - suspicious_lines;
    let time = |t: Option<chrono::NaiveDateTime>| t.and_then(dates::local_unix).unwrap_or(0);
    Ok(ScanResult {
        scanned: stats.processed.unwrap_or(0),
        malware: stats.detected.unwrap_or(detected_lines),
        suspicious: stats.suspicions.unwrap_or(suspicious_lines),
        cleaned: 0,
        errors: stats.errors.unwrap_or(0) + stats.corrupted.unwrap_or(0),
        start_time: time(stats.time_start),
        end_time: time(stats.time_finish),
        detections,
        ..ScanResult::default()
    })
}

/// State from the three `kescli --opswat` answers (`Version`, `GetDefinitionState`,
/// `GetRealTimeProtectionState`); `None` where the call failed.
pub fn state(
    version: Option<&str>,
    definitions: Option<&str>,
    realtime: Option<&str>,
    update_status: impl Fn(Option<i64>) -> UpdateStatus,
) -> BackendState {
    let last_update = definitions
        .and_then(kescli::definition_date)
        .and_then(dates::local_unix);
    let realtime = match realtime.and_then(kescli::realtime) {
        Some(true) => OnOff::On,
        Some(false) => OnOff::Off,
        None => OnOff::Unknown,
    };
    BackendState {
        product_name: "Kaspersky Endpoint Security for Windows".into(),
        product_version: version
            .and_then(kescli::version)
            .unwrap_or_else(|| "unknown".into()),
        // kescli answers only when the application runs
        service_status: if version.is_some() {
            ServiceStatus::Running
        } else {
            ServiceStatus::Unknown
        },
        update_status: update_status(last_update),
        last_update,
        modules: vec![ModuleInfo {
            name: "databases".into(),
            status: update_status(last_update),
            update_time: last_update,
            version: None,
        }],
        realtime,
        details: vec![Detail::new("product:mode", "kes-windows")],
    }
}

/// `kescli --opswat GetThreats` (30 days) after the cursor.
pub fn threats_page(
    text: &str,
    query: &AlertsQuery,
    limit: usize,
) -> Result<AlertsPage, cursor::CursorError> {
    let records = text
        .lines()
        .filter_map(|l| {
            let t = kescli::threat(l)?;
            let unix = dates::local_unix(t.time)?;
            Some((unix, cursor::fingerprint(&[l.trim().as_bytes()]), t))
        })
        .collect();
    let page = cursor::page(records, query.cursor.as_deref(), query.since, limit)?;
    Ok(AlertsPage {
        detections: page
            .records
            .into_iter()
            .map(|(time, t)| Detection {
                id: format!(
                    "{:016x}",
                    cursor::fingerprint(&[
                        t.path.as_bytes(),
                        t.name.as_bytes(),
                        &time.to_le_bytes()
                    ])
                ),
                threat_name: t.name,
                file_path: t.path,
                action: match t.action {
                    9 => DetectionAction::Cleaned,
                    11 => DetectionAction::Removed,
                    15 => DetectionAction::Quarantined,
                    38 => DetectionAction::Blocked,
                    1 | 2 | 36 => DetectionAction::None,
                    _ => DetectionAction::Unknown,
                },
                detection_time: time,
                module_name: Some(kescli::type_name(t.object_type).to_string()),
                info: Some(format!(
                    "action: {}; danger level {}",
                    kescli::action_name(t.action),
                    t.danger
                )),
            })
            .collect(),
        next_cursor: page.next_cursor,
        more: page.more,
    })
}

/// Why an `avp.com EXPORT` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Parse(#[from] roxmltree::Error),
    /// Refused before parsing: the parser would overflow the stack (found by fuzzing).
    #[error("nested deeper than {0} levels")]
    TooDeep(usize),
}

/// `avp.com EXPORT` XML, flattened: each attribute of each element becomes
/// `path:of:elements[:name]:attribute` (elements carrying a `name` attribute add it, as the
/// old agent did for `item`s). Read-only: KES settings are changed by policy.
pub fn export_entries(xml: &str) -> Result<Vec<ConfigEntry>, ExportError> {
    use armadito_cli_exec::xml::{MAX_DEPTH, nesting_depth};
    if nesting_depth(xml) > MAX_DEPTH {
        return Err(ExportError::TooDeep(MAX_DEPTH));
    }
    let doc = roxmltree::Document::parse(xml)?;
    let mut out = Vec::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        let mut path: Vec<String> = node
            .ancestors()
            .filter(|a| a.is_element())
            .map(|a| match a.attribute("name") {
                Some(name) => format!("{}:{name}", a.tag_name().name()),
                None => a.tag_name().name().to_string(),
            })
            .collect();
        path.reverse();
        let prefix = path.join(":");
        for attr in node.attributes().filter(|a| a.name() != "name") {
            out.push(ConfigEntry {
                attr: format!("{prefix}:{}", attr.name()),
                value: attr.value().into(),
                read_only: true,
            });
        }
        let text = node.text().map(str::trim).unwrap_or_default();
        if !text.is_empty() && node.children().all(|c| !c.is_element()) {
            out.push(ConfigEntry {
                attr: prefix,
                value: text.into(),
                read_only: true,
            });
        }
    }
    Ok(out)
}

/// The process code: only on Windows.
#[cfg(windows)]
pub mod run {
    use std::path::{Path, PathBuf};

    use armadito_cli_exec::{Cmd, ExecError};
    use armadito_plugin_api::{
        AlertsPage, AlertsQuery, BackendState, ConfigEntry, ScanProgress, ScanRequest, ScanResult,
    };

    use crate::backend::{BackendError, KasperskyBackend, Warn};
    use crate::parse::avp;

    /// The newest `KES*` folder holding `avp.com`.
    pub fn find_avp(dirs: &[PathBuf]) -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("KES"))
            .map(|e| e.path().join("avp.com"))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        found.pop()
    }

    fn kescli(b: &KasperskyBackend, avp: &Path, command: &str) -> Result<String, BackendError> {
        let program = b
            .settings()
            .kescli
            .clone()
            .unwrap_or_else(|| avp.with_file_name("kescli.exe"));
        let out = Cmd::new(program, b.settings().timeout())
            .args(["--opswat", command])
            .run()?;
        Ok(out.stdout)
    }

    pub fn state(
        b: &KasperskyBackend,
        avp: &Path,
        warn: Warn,
    ) -> Result<BackendState, BackendError> {
        let ask = |c: &str| match kescli(b, avp, c) {
            Ok(out) => Some(out),
            Err(e) => {
                warn(format!("kescli {c}: {e}"));
                None
            }
        };
        let version = ask("Version");
        let defs = ask("GetDefinitionState");
        let rtp = ask("GetRealTimeProtectionState");
        Ok(super::state(
            version.as_deref(),
            defs.as_deref(),
            rtp.as_deref(),
            |t| b.update_status(t),
        ))
    }

    pub fn scan(
        b: &KasperskyBackend,
        avp: &Path,
        request: &ScanRequest,
        report: &dyn Fn(&ScanProgress) -> bool,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ScanResult, BackendError> {
        let dir = b.work_dir()?;
        let report_file = dir.path().join("scan-report.txt");
        let stop = std::cell::Cell::new(false);
        let outcome = Cmd::new(avp.to_path_buf(), b.settings().scan_timeout())
            .arg("SCAN")
            .args(request.paths.iter())
            .arg("/i0")
            .arg(format!("/RA:{}", report_file.display()))
            .run_with(
                &mut |line| {
                    if let Some(p) = super::progress(line)
                        && !report(&ScanProgress {
                            percent: Some(p.min(99)),
                            ..ScanProgress::default()
                        })
                    {
                        stop.set(true);
                    }
                },
                &|| stop.get() || cancelled(),
            );
        let out = match outcome {
            Ok(out) => out,
            Err(ExecError::Cancelled { .. }) => {
                return Ok(ScanResult {
                    cancelled: true,
                    ..ScanResult::default()
                });
            }
            Err(e) => return Err(e.into()),
        };
        let text = std::fs::read(&report_file)
            .map(|b| avp::decode_report(&b))
            .unwrap_or_else(|_| out.stdout.clone());
        super::scan_result(&text, out.code()).map_err(BackendError::Tool)
    }

    pub fn alerts(
        b: &KasperskyBackend,
        avp: &Path,
        query: &AlertsQuery,
        limit: usize,
    ) -> Result<AlertsPage, BackendError> {
        let text = kescli(b, avp, "GetThreats")?;
        super::threats_page(&text, query, limit).map_err(|e| BackendError::Cursor(e.0))
    }

    pub fn config(b: &KasperskyBackend, avp: &Path) -> Result<Vec<ConfigEntry>, BackendError> {
        let dir = b.work_dir()?;
        let file = dir.path().join("exported_settings.xml");
        let out = Cmd::new(avp.to_path_buf(), b.settings().timeout())
            .arg("EXPORT")
            .arg(file.as_os_str())
            .run()?;
        if out.code() != Some(0) {
            return Err(BackendError::Tool(format!(
                "avp.com EXPORT failed: {}",
                out.summary()
            )));
        }
        let bytes = std::fs::read(&file)
            .map_err(|e| BackendError::Tool(format!("{}: {e}", file.display())))?;
        super::export_entries(&avp::decode_report(&bytes))
            .map_err(|e| BackendError::Tool(format!("avp.com EXPORT wrote unreadable XML: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F_K1: &str = "2019-06-28 09:50:17\tScan_Objects$0546         starting   1%         \n2019-06-28 09:50:18\tScan_Objects$0546         running    1%         \n2019-06-28 09:50:18 C:\\virus-checker\\eicar.com \tdetected\tEICAR-Test-File\n2019-06-28 09:50:18\tC:\\virus-checker\\eicar.com \tskipped\n2019-06-28 09:50:18\tScan_Objects$0546         completed             \n;  --- Statistics ---\n; Time Start:\t2019-06-28 09:50:17\n; Time Finish:\t2019-06-28 09:50:18\n; Processed objects:\t1\n; Total OK:\t0\n; Total detected:\t1\n; Suspicions:\t0\n; Total skipped:\t0\n; Password protected:\t0\n; Corrupted:\t0\n; Errors:\t0\n;  ------------------\n";

    #[test]
    fn scan_result_from_f_k1_with_progress_lines() {
        let r = scan_result(F_K1, Some(0)).unwrap();
        assert_eq!((r.scanned, r.malware, r.suspicious), (1, 1, 0));
        assert_eq!(r.detections.len(), 1);
        assert_eq!(r.detections[0].file_path, r"C:\virus-checker\eicar.com");
        assert_eq!(r.detections[0].threat_name, "EICAR-Test-File");
        assert_eq!(
            r.detections[0].detection_time,
            dates::local_unix(dates::parse("2019-06-28 09:50:18").unwrap()).unwrap()
        );
        assert!(r.end_time >= r.start_time && r.start_time > 0);
        let percents: Vec<u8> = F_K1.lines().filter_map(progress).collect();
        assert_eq!(percents, [1, 1]);
        assert_eq!(
            progress("2019-06-28 09:50:18\tScan_Objects$0546  running  42%"),
            Some(42)
        );
    }

    #[test]
    fn the_exit_code_alone_decides_nothing() {
        // a Statistics block: accepted whatever the code (101/102 seen on KAV)
        assert!(scan_result(F_K1, Some(102)).is_ok());
        let e = scan_result("Error: access denied\n", Some(2)).unwrap_err();
        assert!(e.contains("exited with 2"), "{e}");
        assert!(scan_result("", None).is_err());
    }

    #[test]
    fn kescli_state_r() {
        // [R]: kescli output shapes are reconstructions
        let s = state(
            Some("12.3.0.493\r\n"),
            Some("6/28/2019 9:50:17 AM"),
            Some("1"),
            |t| {
                if t.is_some() {
                    UpdateStatus::Late
                } else {
                    UpdateStatus::NonAvailable
                }
            },
        );
        assert_eq!(s.product_version, "12.3.0.493");
        assert_eq!(s.realtime, OnOff::On);
        assert_eq!(s.update_status, UpdateStatus::Late);
        assert_eq!(s.service_status, ServiceStatus::Running);
        let s = state(None, None, None, |_| UpdateStatus::NonAvailable);
        assert_eq!(
            (s.realtime, s.service_status),
            (OnOff::Unknown, ServiceStatus::Unknown)
        );
        assert_eq!(s.product_version, "unknown");
    }

    #[test]
    fn threats_cursor_r() {
        let text = "EICAR-Test-File 1 2019-06-28 09:50:18 C:\\a b\\eicar.com 15 2\nHEUR:Trojan.Win32.Generic 2 2019-06-29 10:00:00 C:\\x.exe 11 1\n";
        let q = |cursor: Option<String>| AlertsQuery {
            cursor,
            ..AlertsQuery::default()
        };
        let p = threats_page(text, &q(None), 10).unwrap();
        assert_eq!(p.detections.len(), 2);
        assert_eq!(p.detections[0].action, DetectionAction::Quarantined);
        assert_eq!(p.detections[0].file_path, r"C:\a b\eicar.com");
        assert_eq!(p.detections[1].action, DetectionAction::Removed);
        let again = threats_page(text, &q(p.next_cursor), 10).unwrap();
        assert!(again.detections.is_empty(), "nothing twice");
    }

    #[test]
    fn export_xml_flattens_like_the_old_agent() {
        // [R]: the old agent's KAV 17 shape (`/root/ekaSettings/on_demand_tasks/item`)
        let xml = r#"<root><ekaSettings><on_demand_tasks><item name="Scan_My_Computer"><settings ScanArchives="0" MaxFileSize="8"/></item></on_demand_tasks></ekaSettings></root>"#;
        let e = export_entries(xml).unwrap();
        assert_eq!(
            e[0].attr,
            "root:ekaSettings:on_demand_tasks:item:Scan_My_Computer:settings:ScanArchives"
        );
        assert_eq!(e[0].value, "0");
        assert!(e.iter().all(|e| e.read_only));
        assert!(export_entries("<root>").is_err());
    }

    /// Fuzzing (kes_windows) found a stack overflow in the XML parser on deep nesting: an
    /// error now, even on a small stack.
    #[test]
    fn deeply_nested_export_is_an_error_not_a_crash() {
        let deep = "<item name=\"x\">".repeat(5000);
        let r = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || export_entries(&deep).map(|e| e.len()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(matches!(r, Err(ExportError::TooDeep(_))), "{r:?}");
    }
}
