//! The Windows path (PowerShell + MpCmdRun) driven through fake executables that print
//! recorded outputs and record their argv: exact command lines, PowerShell's output shapes,
//! both date forms, MpCmdRun verdicts, a missing or hanging PowerShell, tamper protection.

#![cfg(unix)]

#[path = "../../../tests/src/defender_fakes.rs"]
mod fakes;

use std::time::{Duration, Instant};

use armadito_backend_defender::windows::powershell::{self, WriteOp, write_script};
use armadito_backend_defender::{DefenderBackend, scan::Detached};
use armadito_plugin_api::{
    AlertsQuery, ConfigEntry, DetectionAction, ErrorKind, OnOff, PluginError, ScanRequest,
    ServiceStatus, UpdateStatus,
};
use fakes::{FakeCall, FakeDefender};
use serde_json::json;

fn backend(f: &FakeDefender, timeout_secs: u64) -> DefenderBackend {
    DefenderBackend::from_json(&json!({
        "mode": "windows",
        "powershell": f.tool("powershell"),
        "mpcmdrun": f.tool("MpCmdRun"),
        "timeout_secs": timeout_secs,
    }))
    .unwrap()
}

fn ps(script: &str) -> FakeCall {
    FakeCall {
        tool: "powershell".into(),
        args: powershell::args(script),
        value: None,
    }
}

fn write(op: WriteOp, name: &'static str, value: &str) -> FakeCall {
    FakeCall {
        value: Some(value.into()),
        ..ps(&write_script(op, name))
    }
}

#[test]
fn state_from_ps51_with_the_exact_command_line_and_a_cleared_environment() {
    let f = FakeDefender::new();
    f.output("status", "windows/status-ps51.json");
    let s = backend(&f, 10).state().unwrap();
    assert_eq!(s.product_name, "Microsoft Defender Antivirus");
    assert_eq!(s.product_version, "4.18.24050.7");
    assert_eq!(s.service_status, ServiceStatus::Running);
    assert_eq!(s.realtime, OnOff::On);
    assert_eq!(s.last_update, Some(1_717_513_587));
    assert_eq!(s.modules.len(), 4, "{:?}", s.modules);
    assert!(
        s.details
            .iter()
            .any(|d| d.attr == "tamper_protection" && d.value == json!(true))
    );
    assert_eq!(f.calls(), vec![ps(powershell::COMPUTER_STATUS)]);
    assert_eq!(
        f.calls()[0].args[3],
        "$ErrorActionPreference='Stop'; [Console]::OutputEncoding=[Text.Encoding]::UTF8; \
         Get-MpComputerStatus | Select-Object * -ExcludeProperty Cim*,PSComputerName | ConvertTo-Json -Depth 4 -Compress"
    );
    let env = f.last_env();
    assert!(
        !env.contains("CARGO_"),
        "the agent's environment leaked:\n{env}"
    );
    assert!(env.contains("LANG=C"), "{env}");
}

#[test]
fn state_from_ps7_iso_dates_and_old_signatures() {
    let f = FakeDefender::new();
    f.output("status", "windows/status-ps7.json");
    let s = backend(&f, 10).state().unwrap();
    assert_eq!(
        s.last_update,
        Some(1_716_451_200),
        "2024-05-23T10:00:00+02:00"
    );
    assert_eq!(s.update_status, UpdateStatus::Critical, "12 days old");
    assert_eq!(s.realtime, OnOff::Off);
    assert!(
        s.details
            .iter()
            .any(|d| d.attr == "running_mode" && d.value == "Passive mode")
    );
}

#[test]
fn inactive_defender_missing_or_hanging_powershell() {
    let f = FakeDefender::new();
    f.output("status", "windows/status-inactive.txt")
        .exit_code("status", 1);
    let s = backend(&f, 10).state().unwrap();
    assert_eq!(
        s.service_status,
        ServiceStatus::Stopped,
        "0x800106ba = not the active AV"
    );

    let b = DefenderBackend::from_json(&json!({"mode": "windows",
        "powershell": "/nonexistent/powershell.exe", "mpcmdrun": "/nonexistent/MpCmdRun.exe"}))
    .unwrap();
    assert_eq!(
        b.state().unwrap().service_status,
        ServiceStatus::NotInstalled
    );
    let err = PluginError::from(b.alerts(&AlertsQuery::default()).unwrap_err());
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message
            .contains("/nonexistent/powershell.exe not found"),
        "{err}"
    );

    let f = FakeDefender::new();
    f.output("status", "windows/status-ps51.json")
        .sleep("status", 30);
    let start = Instant::now();
    let err = PluginError::from(backend(&f, 1).state().unwrap_err());
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(
        err.message
            .contains("did not finish within 1 s and was killed"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn alerts_for_zero_one_and_many_detections() {
    let f = FakeDefender::new();
    f.output("detections", "windows/detections-0.json");
    let p = backend(&f, 10).alerts(&AlertsQuery::default()).unwrap();
    assert!(p.detections.is_empty() && !p.more);
    assert_eq!(
        f.calls(),
        vec![ps(powershell::THREAT_DETECTIONS)],
        "no join needed"
    );

    let f = FakeDefender::new();
    f.output("detections", "windows/detections-1.json")
        .output("threats", "windows/threats-1.json");
    let p = backend(&f, 10).alerts(&AlertsQuery::default()).unwrap();
    assert_eq!(p.detections.len(), 1, "one object, not an array");
    let d = &p.detections[0];
    assert_eq!(d.threat_name, "Virus:DOS/EICAR_Test_File");
    assert_eq!(d.file_path, r"C:\Users\alice\Downloads\eicar.com");
    assert_eq!(d.action, DetectionAction::Quarantined);
    assert_eq!(d.detection_time, 1_717_513_587);
    assert_eq!(
        f.calls(),
        vec![ps(powershell::THREAT_DETECTIONS), ps(powershell::THREATS)]
    );

    let f = FakeDefender::new();
    f.output("detections", "windows/detections-n.json")
        .output("threats", "windows/threats-n.json");
    let b = backend(&f, 10);
    let q = AlertsQuery {
        limit: Some(2),
        ..Default::default()
    };
    let p1 = b.alerts(&q).unwrap();
    assert_eq!(p1.detections.len(), 2);
    assert!(p1.more);
    assert_eq!(p1.detections[1].threat_name, "Trojan:Win32/Wacatac.B!ml");
    assert_eq!(
        p1.detections[1].file_path,
        r"C:\Users\alice\Downloads\setup.zip"
    );
    assert_eq!(p1.detections[1].action, DetectionAction::Failed);
    assert_eq!(
        p1.detections[1].detection_time, 1_717_578_000,
        "ISO date with fraction"
    );
    let p2 = b
        .alerts(&AlertsQuery {
            cursor: p1.next_cursor.clone(),
            ..q.clone()
        })
        .unwrap();
    assert_eq!(p2.detections.len(), 1);
    assert!(!p2.more);
    assert_eq!(p2.detections[0].file_path, r"D:\share\tool.exe");
    assert_eq!(p2.detections[0].action, DetectionAction::Removed);
    let p3 = b
        .alerts(&AlertsQuery {
            cursor: p2.next_cursor.clone(),
            ..q
        })
        .unwrap();
    assert!(p3.detections.is_empty(), "nothing is sent twice");
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for n in ["a.txt", "b.txt", "eicar-0.com", "eicar-1.com"] {
        std::fs::write(d.path().join(n), n).unwrap();
    }
    d
}

fn scan_req(path: &str) -> ScanRequest {
    ScanRequest {
        paths: vec![path.into()],
        ..Default::default()
    }
}

#[test]
fn scans_clean_infected_and_failed_decided_from_the_text() {
    let t = tree();
    let root = t.path().to_str().unwrap();
    let f = FakeDefender::new();
    f.output("scan", "windows/mpcmdrun-clean.txt");
    let r = backend(&f, 10).scan(&scan_req(root), &Detached).unwrap();
    assert_eq!((r.scanned, r.malware, r.errors), (4, 0, 0));
    assert_eq!(
        f.calls(),
        vec![FakeCall {
            tool: "MpCmdRun".into(),
            args: [
                "-Scan",
                "-ScanType",
                "3",
                "-File",
                root,
                "-DisableRemediation"
            ]
            .map(String::from)
            .to_vec(),
            value: None,
        }]
    );

    // exit code 2 with "found 2 threats": infected, not failed
    let f = FakeDefender::new();
    f.output("scan", "windows/mpcmdrun-infected.txt")
        .exit_code("scan", 2);
    let r = backend(&f, 10).scan(&scan_req(root), &Detached).unwrap();
    assert_eq!((r.scanned, r.malware), (4, 2));
    let files: Vec<_> = r.detections.iter().map(|d| d.file_path.clone()).collect();
    assert_eq!(
        files,
        [format!("{root}/eicar-0.com"), format!("{root}/eicar-1.com")]
    );
    assert!(
        r.detections
            .iter()
            .all(|d| d.threat_name == "Virus:DOS/EICAR_Test_File"
                && d.action == DetectionAction::None)
    );

    // exit code 2 with "Failed with hr": a failure with the tool's words
    let f = FakeDefender::new();
    f.output("scan", "windows/mpcmdrun-failed.txt")
        .exit_code("scan", 2);
    let err = PluginError::from(
        backend(&f, 10)
            .scan(&scan_req(root), &Detached)
            .unwrap_err(),
    );
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("0x80508023"), "{err}");

    // exit code 0 and no verdict: never reported as clean
    let f = FakeDefender::new();
    f.output("scan", "windows/status-ps7.json");
    assert!(backend(&f, 10).scan(&scan_req(root), &Detached).is_err());
}

/// Cancels once `after` has elapsed.
struct CancelAfter(Instant, Duration);

impl armadito_backend_defender::scan::Observer for CancelAfter {
    fn report(&self, _: &armadito_plugin_api::ScanProgress) -> bool {
        true
    }
    fn cancelled(&self) -> bool {
        self.0.elapsed() >= self.1
    }
}

#[test]
fn a_cancelled_scan_kills_mpcmdrun() {
    let t = tree();
    let f = FakeDefender::new();
    f.output("scan", "windows/mpcmdrun-clean.txt")
        .sleep("scan", 30);
    let start = Instant::now();
    let r = backend(&f, 10)
        .scan(
            &scan_req(t.path().to_str().unwrap()),
            &CancelAfter(start, Duration::from_millis(300)),
        )
        .unwrap();
    assert!(r.cancelled);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_hostile_scan_path_is_one_argument() {
    let t = tempfile::tempdir().unwrap();
    let hostile = t.path().join("x'; Remove-Item C: -Recurse; $(id) & echo");
    std::fs::create_dir(&hostile).unwrap();
    let f = FakeDefender::new();
    f.output("scan", "windows/mpcmdrun-clean.txt");
    let p = hostile.to_str().unwrap();
    backend(&f, 10).scan(&scan_req(p), &Detached).unwrap();
    assert_eq!(f.calls()[0].args[4], p);
    let err = backend(&f, 10)
        .scan(&scan_req("C:\\x\" -Restore"), &Detached)
        .unwrap_err();
    assert!(err.to_string().contains("cannot carry"), "{err}");
}

#[test]
fn avconfig_writes_through_the_allow_list_and_confirms_by_reading_back() {
    let f = FakeDefender::new();
    f.output("prefs", "windows/prefs.json")
        .output_after("prefs", "write", "windows/prefs-after.json")
        .output("write", "windows/detections-0.json");
    let b = backend(&f, 10);
    let current = b.config_get().unwrap();
    assert!(
        current
            .iter()
            .any(|e| e.attr == "ExclusionPath" && e.value == json!(["C:\\old"]))
    );
    let report = b
        .config_set(&[
            ConfigEntry::new("DisableRealtimeMonitoring", "1"),
            ConfigEntry::new("ExclusionPath", r#"["C:\\new"]"#),
            ConfigEntry::new("ScanAvgCPULoadFactor", "30"),
            // tamper protection: accepted without error, not in effect
            ConfigEntry::new("MAPSReporting", "0"),
            ConfigEntry::new("ComputerID", "spoofed"),
            ConfigEntry::new("SubmitSamplesConsent", "1"),
        ])
        .unwrap();
    assert_eq!(
        report.applied,
        [
            "DisableRealtimeMonitoring",
            "ExclusionPath",
            "ScanAvgCPULoadFactor"
        ]
    );
    assert_eq!(report.unchanged, ["SubmitSamplesConsent"]);
    let rejected: Vec<_> = report
        .rejected
        .iter()
        .map(|r| (r.attr.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].0 == "ComputerID" && rejected[0].1.contains("not changeable remotely"));
    assert!(rejected[1].0 == "MAPSReporting" && rejected[1].1.contains("not in effect"));
    assert_eq!(
        f.calls(),
        vec![
            ps(powershell::PREFERENCES),
            ps(powershell::PREFERENCES),
            write(WriteOp::SetBool, "DisableRealtimeMonitoring", "true"),
            write(WriteOp::Add, "ExclusionPath", "C:\\new"),
            write(WriteOp::Remove, "ExclusionPath", "C:\\old"),
            write(WriteOp::SetInt, "ScanAvgCPULoadFactor", "30"),
            write(WriteOp::SetInt, "MAPSReporting", "0"),
            ps(powershell::PREFERENCES),
        ]
    );
}

#[test]
fn server_values_never_become_script_text() {
    let f = FakeDefender::new();
    f.output("prefs", "windows/prefs.json")
        .output("write", "windows/detections-0.json");
    let evil = "C:\\x'; Start-Process calc; '";
    backend(&f, 10)
        .config_set(&[ConfigEntry::new("ExclusionProcess", json!([evil]))])
        .unwrap();
    let writes: Vec<_> = f
        .calls()
        .into_iter()
        .filter(|c| c.value.is_some())
        .collect();
    assert_eq!(writes, vec![write(WriteOp::Add, "ExclusionProcess", evil)]);
    assert!(!writes[0].args[3].contains("calc"));
}
