//! Kaspersky Endpoint Security for Linux: `kesl-control` output (F-K3, F-K4, F-K5; R-K1).

use chrono::NaiveDateTime;

use super::{get, pairs};
use crate::dates;

/// `--app-info` (F-K3): `Key:   value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppInfo {
    pub name: Option<String>,
    pub version: Option<String>,
    pub databases_date: Option<NaiveDateTime>,
    /// `Anti-virus databases loaded` (≤ 12.2) / `Application databases loaded` (12.3+).
    pub databases_loaded: Option<bool>,
    pub license_status: Option<String>,
    pub license_expiration: Option<String>,
    /// KESL 10: `File monitoring: Available and stopped`.
    pub file_monitoring: Option<String>,
    pub pairs: Vec<(String, String)>,
}

fn yes(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

pub fn app_info(text: &str) -> AppInfo {
    let p = pairs(text, ':');
    let s = |keys: &[&str]| get(&p, keys).map(str::to_string);
    AppInfo {
        name: s(&["Name"]),
        version: s(&["Version"]),
        databases_date: get(
            &p,
            &["Last release date of databases", "Databases release date"],
        )
        .and_then(dates::parse),
        databases_loaded: get(
            &p,
            &[
                "Anti-virus databases loaded",
                "Application databases loaded",
                "Databases loaded",
            ],
        )
        .and_then(yes),
        license_status: s(&["Key status", "License status", "Active key status"]),
        license_expiration: s(&["License expiration date", "Key expiration date"]),
        file_monitoring: s(&["File monitoring", "File Threat Protection"]),
        pairs: p,
    }
}

/// `--get-task-state <id>`: R-K1 (shape only): `Key: value` lines ending with the state;
/// the value after `:` on the last non-empty line (a public Go client's reading).
pub fn task_state(text: &str) -> Option<String> {
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let value = last.split_once(':').map_or(last, |(_, v)| v).trim();
    Some(value.to_string()).filter(|v| !v.is_empty())
}

/// `Started`/`Starting` are on; `Stopped`/`Stopping`/... off.
pub fn task_running(state: &str) -> Option<bool> {
    match state.to_ascii_lowercase().as_str() {
        "started" | "starting" | "running" | "resuming" => Some(true),
        "stopped" | "stopping" | "pausing" | "suspended" | "paused" => Some(false),
        _ => None,
    }
}

/// `--scan-file … --action Skip` summary (F-K4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub scanned: Option<u64>,
    pub detected: Option<u64>,
    pub disinfected: Option<u64>,
    pub moved: Option<u64>,
    pub removed: Option<u64>,
    pub errors: Option<u64>,
    pub password_protected: Option<u64>,
    pub skipped: Option<u64>,
}

pub fn scan_summary(text: &str) -> ScanSummary {
    let p = pairs(text, ':');
    let n = |keys: &[&str]| get(&p, keys).and_then(|v| v.parse::<u64>().ok());
    ScanSummary {
        scanned: n(&["Scanned objects", "Processed objects"]),
        detected: n(&["Total detected objects", "Detected objects"]),
        disinfected: n(&["Disinfected objects"]),
        moved: n(&["Moved to Storage", "Moved to Backup"]),
        removed: n(&["Removed objects", "Deleted objects"]),
        errors: n(&["Scan errors"]),
        password_protected: n(&["Password-protected objects"]),
        skipped: n(&["Skipped"]),
    }
}

/// One `ThreatDetected` event (F-K5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    pub time: NaiveDateTime,
    pub file: String,
    pub detect_name: String,
    pub task_type: String,
    pub task_name: String,
    pub danger: String,
    pub detect_type: String,
}

/// `-E --query` prints `Key=Value` records separated by blank lines; a new `EventType=` also
/// starts a record. Records that are not `ThreatDetected` or lack an id, date, file or
/// name are skipped.
pub fn events(text: &str) -> Vec<Event> {
    let mut records: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim();
        let Some((k, v)) = line.split_once('=') else {
            if line.is_empty() && records.last().is_some_and(|r| !r.is_empty()) {
                records.push(Vec::new());
            }
            continue;
        };
        if k.trim() == "EventType" && records.last().is_some_and(|r| !r.is_empty()) {
            records.push(Vec::new());
        }
        if let Some(r) = records.last_mut() {
            r.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    records
        .iter()
        .filter(|r| get(r, &["EventType"]) == Some("ThreatDetected"))
        .filter_map(|r| {
            let s = |k: &str| get(r, &[k]).unwrap_or_default().to_string();
            Some(Event {
                id: get(r, &["EventId"])?.parse().ok()?,
                time: dates::parse(get(r, &["Date"])?)?,
                file: Some(s("FileName"))
                    .filter(|f| !f.is_empty())
                    .or_else(|| get(r, &["ObjectName"]).map(str::to_string))?,
                detect_name: Some(s("DetectName")).filter(|n| !n.is_empty())?,
                task_type: s("TaskType"),
                task_name: s("TaskName"),
                danger: s("DangerLevel"),
                detect_type: s("DetectType"),
            })
        })
        .collect()
}

/// `--get-settings <task>` (INI by default): `[Section]` then `Key=Value`.
pub fn settings_ini(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            let key = if section.is_empty() {
                k.trim().to_string()
            } else {
                format!("{section}:{}", k.trim())
            };
            out.push((key, v.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F-K3 verbatim (subset of the source, order preserved).
    const F_K3: &str = "Name:                                       Kaspersky Endpoint Security 10 SP1 for Linux\nVersion:                                    10.1.0.5960\nKey status:                                 Valid\nLicense expiration date:                    2019-07-09\nStorage state:                              No time limit for objects in Storage\nLast run date of the Scan_My_Computer task: Never run\nLast release date of databases:             2018-08-23 04:11:00\nAnti-virus databases loaded:                Yes\nAnti-virus database records:                11969941\nFile monitoring:                            Available and stopped\n";

    /// F-K4 verbatim.
    pub const F_K4: &str = "Scanned objects                     : 1\nTotal detected objects              : 1\nInfected objects and other objects  : 1\nDisinfected objects                 : 0\nMoved to Storage                    : 0\nRemoved objects                     : 0\nNot disinfected objects             : 1\nScan errors                         : 0\nPassword-protected objects          : 0\nSkipped                             : 0\n";

    /// F-K5 verbatim (subset of the source's fields).
    pub const F_K5: &str = "EventType=ThreatDetected\nEventId=2544\nDate=2019-06-11 22:12:16\nDangerLevel=Critical\nFileName=/eicar\nObjectName=File\nTaskName=Scan_File_ca3f0bc2-ce71-4d4a-bdc1-c8ae502566d0\nRuntimeTaskId=4\nTaskId=100\nDetectName=EICAR-Test-File\nTaskType=ODS\nDetectCertainty=Sure\nDetectType=Virware\nDetectSource=Local\n";

    #[test]
    fn app_info_f_k3_and_the_12_3_rename() {
        let a = app_info(F_K3);
        assert_eq!(a.version.as_deref(), Some("10.1.0.5960"));
        assert_eq!(
            a.name.as_deref(),
            Some("Kaspersky Endpoint Security 10 SP1 for Linux")
        );
        assert_eq!(a.databases_loaded, Some(true));
        assert_eq!(a.databases_date.unwrap().to_string(), "2018-08-23 04:11:00");
        assert_eq!(a.license_status.as_deref(), Some("Valid"));
        assert_eq!(a.file_monitoring.as_deref(), Some("Available and stopped"));
        let renamed = F_K3.replace(
            "Anti-virus databases loaded:",
            "Application databases loaded:",
        );
        assert_eq!(app_info(&renamed).databases_loaded, Some(true));
        let no = F_K3.replace(
            "Anti-virus databases loaded:                Yes",
            "Application databases loaded: No",
        );
        assert_eq!(app_info(&no).databases_loaded, Some(false));
    }

    #[test]
    fn task_state_r_k1() {
        // R-K1 is a reconstruction (shape only)
        let s = task_state("Name: File_Threat_Protection\nId: 1\nState: Started\n\n").unwrap();
        assert_eq!(s, "Started");
        assert_eq!(task_running(&s), Some(true));
        assert_eq!(task_running("Stopped"), Some(false));
        assert_eq!(task_running("Weird"), None);
        assert_eq!(task_state("\n"), None);
    }

    #[test]
    fn scan_summary_f_k4() {
        let s = scan_summary(F_K4);
        assert_eq!(
            (s.scanned, s.detected, s.errors),
            (Some(1), Some(1), Some(0))
        );
        assert_eq!(scan_summary("garbage"), ScanSummary::default());
    }

    #[test]
    fn events_f_k5_several_records() {
        let e = events(F_K5);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].id, 2544);
        assert_eq!(e[0].file, "/eicar");
        assert_eq!(e[0].detect_name, "EICAR-Test-File");
        assert_eq!(e[0].task_type, "ODS");
        assert_eq!(e[0].time.to_string(), "2019-06-11 22:12:16");
        let two = format!(
            "{F_K5}\n{}",
            F_K5.replace("EventId=2544", "EventId=2545")
                .replace("/eicar", "/home/u/x")
        );
        let e = events(&two);
        assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), [2544, 2545]);
        // back to back, no blank line
        let e = events(&format!("{F_K5}{F_K5}"));
        assert_eq!(e.len(), 2);
        assert!(events("EventType=TaskStateChanged\nEventId=1\n").is_empty());
    }

    #[test]
    fn settings_ini_sections() {
        let s = settings_ini("[ScanSettings]\nScanArchived=No\n[ScanScope.item_0000]\nPath=/\n");
        assert_eq!(s[0], ("ScanSettings:ScanArchived".into(), "No".into()));
        assert_eq!(s[1].0, "ScanScope.item_0000:Path");
    }
}
