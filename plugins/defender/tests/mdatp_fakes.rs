//! The Linux path (`mdatp --output json`) driven through a fake `mdatp` that prints recorded
//! outputs (the real `mdatp health` of backends.md §D.6) and records its argv.

#![cfg(unix)]

#[path = "../../../tests/src/defender_fakes.rs"]
mod fakes;

use armadito_backend_defender::{DefenderBackend, scan::Detached};
use armadito_plugin_api::{
    AlertsQuery, ConfigEntry, DetectionAction, ErrorKind, OnOff, PluginError, ScanRequest,
    ServiceStatus,
};
use fakes::{FakeCall, FakeDefender};
use serde_json::json;

fn backend(f: &FakeDefender) -> DefenderBackend {
    DefenderBackend::from_json(
        &json!({"mode": "mdatp", "mdatp": f.tool("mdatp"), "timeout_secs": 10}),
    )
    .unwrap()
}

fn mdatp(args: &[&str]) -> FakeCall {
    FakeCall {
        tool: "mdatp".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        value: None,
    }
}

#[test]
fn state_from_the_real_health_report() {
    let f = FakeDefender::new();
    f.output("health", "mdatp/health.json");
    let s = backend(&f).state().unwrap();
    assert_eq!(s.product_name, "Microsoft Defender for Endpoint");
    assert_eq!(s.product_version, "101.23062.0010");
    assert_eq!(s.service_status, ServiceStatus::Running);
    assert_eq!(s.realtime, OnOff::Off);
    assert_eq!(s.last_update, Some(1_691_587_153));
    assert_eq!(f.calls(), vec![mdatp(&["health", "--output", "json"])]);
    assert!(!f.last_env().contains("CARGO_"));
}

#[test]
fn missing_mdatp_or_stopped_daemon() {
    let b = DefenderBackend::from_json(&json!({"mode": "mdatp", "mdatp": "/nonexistent/mdatp"}))
        .unwrap();
    assert_eq!(
        b.state().unwrap().service_status,
        ServiceStatus::NotInstalled
    );
    let f = FakeDefender::new();
    f.output("health", "windows/mpcmdrun-failed.txt")
        .exit_code("health", 1);
    let s = backend(&f).state().unwrap();
    assert_eq!(s.service_status, ServiceStatus::Stopped);
    assert!(
        s.details[0]
            .value
            .as_str()
            .unwrap()
            .contains("mdatp health failed")
    );
    let err = PluginError::from(backend(&f).config_get().unwrap_err());
    assert_eq!(err.kind, ErrorKind::Unavailable);
}

#[test]
fn scan_reports_the_threats_that_appeared_under_the_scanned_path() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_str().unwrap();
    let f = FakeDefender::new();
    f.output("threat-list", "mdatp/threat-list-1.json")
        .output_after("threat-list", "scan-custom", "mdatp/threat-list-scan.json")
        .output("scan-custom", "mdatp/scan-custom.txt");
    let r = backend(&f)
        .scan(
            &ScanRequest {
                paths: vec![root.into()],
                ..Default::default()
            },
            &Detached,
        )
        .unwrap();
    assert_eq!((r.scanned, r.malware), (5, 1));
    assert_eq!(
        r.detections.len(),
        1,
        "the older detection is not this scan's"
    );
    assert_eq!(r.detections[0].file_path, format!("{root}/eicar-0.com"));
    assert_eq!(r.detections[0].action, DetectionAction::Quarantined);
    assert_eq!(
        f.calls(),
        vec![
            mdatp(&["threat", "list", "--output", "json"]),
            mdatp(&["scan", "custom", "--path", root]),
            mdatp(&["threat", "list", "--output", "json"]),
        ]
    );
}

#[test]
fn alerts_page_through_the_threat_list() {
    let f = FakeDefender::new();
    f.output("threat-list", "mdatp/threat-list-2.json");
    let b = backend(&f);
    let p = b
        .alerts(&AlertsQuery {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p.detections[0].file_path, "/home/user/Downloads/eicar.com");
    assert!(p.more);
    let p = b
        .alerts(&AlertsQuery {
            cursor: p.next_cursor,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p.detections.len(), 1);
    assert_eq!(p.detections[0].action, DetectionAction::Removed);
    let f = FakeDefender::new();
    f.output("threat-list", "mdatp/threat-list-0.json");
    assert!(
        backend(&f)
            .alerts(&AlertsQuery::default())
            .unwrap()
            .detections
            .is_empty()
    );
}

#[test]
fn avconfig_managed_settings_are_not_changeable_and_writes_are_confirmed() {
    let f = FakeDefender::new();
    f.output("health", "mdatp/health-managed.json")
        .output_after("health", "config", "mdatp/health-after-config.json")
        .output("exclusion-list", "mdatp/exclusion-list.json")
        .output_after(
            "exclusion-list",
            "exclusion-write",
            "mdatp/exclusion-list-after.json",
        )
        .output("config", "mdatp/threat-list-0.json")
        .output("exclusion-write", "mdatp/threat-list-0.json");
    let b = backend(&f);
    let entries = b.config_get().unwrap();
    let rtp = entries
        .iter()
        .find(|e| e.attr == "realTimeProtectionEnabled")
        .unwrap();
    assert!(rtp.read_only, "managed by policy");
    assert!(
        entries
            .iter()
            .any(|e| e.attr == "exclusions:folder" && e.value == json!(["/var/log/"]))
    );
    let report = b
        .config_set(&[
            ConfigEntry::new("realTimeProtectionEnabled", "0"),
            ConfigEntry::new("cloudDiagnosticEnabled", "1"),
            ConfigEntry::new("exclusions:folder", r#"["/srv/cache/"]"#),
            ConfigEntry::new("exclusions:extension", ".iso"),
            ConfigEntry::new("cloudAutomaticSampleSubmissionConsent", "--help"),
            ConfigEntry::new("appVersion", "1"),
        ])
        .unwrap();
    assert_eq!(
        report.applied,
        ["cloudDiagnosticEnabled", "exclusions:folder"]
    );
    assert_eq!(report.unchanged, ["exclusions:extension"]);
    let rejected: Vec<_> = report.rejected.iter().map(|r| r.attr.as_str()).collect();
    assert_eq!(
        rejected,
        [
            "realTimeProtectionEnabled",
            "cloudAutomaticSampleSubmissionConsent",
            "appVersion"
        ]
    );
    assert!(report.rejected[0].reason.contains("managed by policy"));
    assert!(
        report.rejected[2]
            .reason
            .contains("not changeable remotely")
    );
    let writes: Vec<_> = f
        .calls()
        .into_iter()
        .filter(|c| !c.args.contains(&"--output".to_string()))
        .collect();
    assert_eq!(
        writes,
        vec![
            mdatp(&["config", "cloud-diagnostic", "--value", "enabled"]),
            mdatp(&["exclusion", "folder", "add", "--path", "/srv/cache/"]),
            mdatp(&["exclusion", "folder", "remove", "--path", "/var/log/"]),
        ]
    );
}
