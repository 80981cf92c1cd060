//! `Get-MpComputerStatus` → `BackendState` (backends.md §D.2). Every field is optional.

use armadito_plugin_api::{BackendState, Detail, ModuleInfo, OnOff, ServiceStatus, UpdateStatus};
use serde_json::Value;

use super::powershell::text;
use crate::dates;
use crate::freshness::{update_status, worst};

pub const PRODUCT: &str = "Microsoft Defender Antivirus";

/// HRESULT printed when Defender is not the active antivirus (service not running).
pub const NOT_RUNNING_HR: &str = "0x800106ba";

/// Ages of 65535 days and more are Defender's "never" (`4294967295`).
fn age_days(row: &Value, key: &str) -> Option<f64> {
    row.get(key)?.as_f64().filter(|d| *d >= 0.0 && *d < 65535.0)
}

fn flag(row: &Value, key: &str) -> Option<bool> {
    row.get(key)?.as_bool()
}

/// The state from one `Get-MpComputerStatus` object; `now` (unix seconds) dates signatures
/// whose age field is missing.
pub fn parse(row: &Value, now: i64, late: u32, critical: u32) -> BackendState {
    let sig_updated = row
        .get("AntivirusSignatureLastUpdated")
        .and_then(dates::secs);
    let age = age_days(row, "AntivirusSignatureAge")
        .or_else(|| sig_updated.map(|t| (now - t).max(0) as f64 / 86_400.0));
    let mut status = update_status(age, late, critical);
    if flag(row, "DefenderSignaturesOutOfDate") == Some(true) {
        status = worst(status, UpdateStatus::Late);
    }
    let service_status = match flag(row, "AMServiceEnabled") {
        Some(true) => ServiceStatus::Running,
        Some(false) => ServiceStatus::Stopped,
        None => ServiceStatus::Unknown,
    };
    let realtime = match flag(row, "RealTimeProtectionEnabled") {
        Some(true) => OnOff::On,
        Some(false) => OnOff::Off,
        None => OnOff::Unknown,
    };
    let module =
        |name: &str, version_key: &str, updated_key: Option<&str>, age_key: Option<&str>| {
            let update_time = updated_key.and_then(|k| row.get(k)).and_then(dates::secs);
            let status = match age_key {
                Some(k) => update_status(age_days(row, k), late, critical),
                None => status,
            };
            text(row, version_key).map(|version| ModuleInfo {
                name: name.into(),
                status,
                update_time,
                version: Some(version),
            })
        };
    let modules = [
        module("engine", "AMEngineVersion", None, None),
        module(
            "antivirus-signatures",
            "AntivirusSignatureVersion",
            Some("AntivirusSignatureLastUpdated"),
            Some("AntivirusSignatureAge"),
        ),
        module(
            "antispyware-signatures",
            "AntispywareSignatureVersion",
            Some("AntispywareSignatureLastUpdated"),
            Some("AntispywareSignatureAge"),
        ),
        module(
            "nis-signatures",
            "NISSignatureVersion",
            Some("NISSignatureLastUpdated"),
            Some("NISSignatureAge"),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();

    let mut details = Vec::new();
    for (attr, key) in [
        ("engine:version", "AMEngineVersion"),
        ("service:version", "AMServiceVersion"),
        ("running_mode", "AMRunningMode"),
        ("antivirus:enabled", "AntivirusEnabled"),
        ("antispyware:enabled", "AntispywareEnabled"),
        ("behavior_monitor:enabled", "BehaviorMonitorEnabled"),
        ("ioav_protection:enabled", "IoavProtectionEnabled"),
        ("on_access_protection:enabled", "OnAccessProtectionEnabled"),
        ("nis:enabled", "NISEnabled"),
        ("tamper_protection", "IsTamperProtected"),
        ("signatures:version", "AntivirusSignatureVersion"),
        ("signatures:age_days", "AntivirusSignatureAge"),
        ("signatures:out_of_date", "DefenderSignaturesOutOfDate"),
        ("full_scan:required", "FullScanRequired"),
        ("reboot_required", "RebootRequired"),
        ("computer_state", "ComputerState"),
    ] {
        if let Some(v) = row
            .get(key)
            .filter(|v| v.is_string() || v.is_number() || v.is_boolean())
        {
            details.push(Detail::new(attr, v.clone()));
        }
    }
    for (attr, key) in [
        ("quick_scan:last", "QuickScanEndTime"),
        ("full_scan:last", "FullScanEndTime"),
    ] {
        if let Some(t) = row.get(key).and_then(dates::secs) {
            details.push(Detail::new(attr, t));
        }
    }

    BackendState {
        product_name: PRODUCT.into(),
        product_version: text(row, "AMProductVersion").unwrap_or_default(),
        service_status,
        update_status: status,
        last_update: sig_updated,
        modules,
        realtime,
        details,
    }
}

/// The state reported when Defender is not the active antivirus (or PowerShell is missing).
pub fn not_running(status: ServiceStatus, why: &str) -> BackendState {
    BackendState {
        product_name: PRODUCT.into(),
        service_status: status,
        details: vec![Detail::new("service:error", why)],
        ..BackendState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_717_600_000;

    #[test]
    fn ps51_status() {
        let row = json!({
            "AMProductVersion": "4.18.24050.7", "AMEngineVersion": "1.1.24050.5",
            "AMServiceEnabled": true, "RealTimeProtectionEnabled": true, "AMRunningMode": "Normal",
            "AntivirusSignatureVersion": "1.413.102.0",
            "AntivirusSignatureLastUpdated": "/Date(1717513587000)/", "AntivirusSignatureAge": 1,
            "IsTamperProtected": true, "FullScanAge": 4294967295_u64, "FullScanEndTime": null
        });
        let s = parse(&row, NOW, 3, 7);
        assert_eq!(s.product_name, PRODUCT);
        assert_eq!(s.product_version, "4.18.24050.7");
        assert_eq!(s.service_status, ServiceStatus::Running);
        assert_eq!(s.realtime, OnOff::On);
        assert_eq!(s.update_status, UpdateStatus::UpToDate);
        assert_eq!(s.last_update, Some(1_717_513_587));
        let names: Vec<_> = s.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["engine", "antivirus-signatures"]);
        assert_eq!(s.modules[1].update_time, Some(1_717_513_587));
        assert!(s.details.contains(&Detail::new("tamper_protection", true)));
        assert!(s.details.contains(&Detail::new("running_mode", "Normal")));
        assert!(!s.details.iter().any(|d| d.attr == "full_scan:last"));
    }

    #[test]
    fn ps7_dates_old_signatures_and_stopped_service() {
        let row = json!({
            "AMServiceEnabled": false, "RealTimeProtectionEnabled": false,
            "AntivirusSignatureLastUpdated": "2024-05-01T00:00:00+00:00",
            "DefenderSignaturesOutOfDate": true
        });
        let s = parse(&row, NOW, 3, 7);
        assert_eq!(s.service_status, ServiceStatus::Stopped);
        assert_eq!(s.realtime, OnOff::Off);
        assert_eq!(s.last_update, Some(1_714_521_600));
        assert_eq!(s.update_status, UpdateStatus::Critical, "36 days old");
        let s = parse(&json!({"DefenderSignaturesOutOfDate": true}), NOW, 3, 7);
        assert_eq!(s.update_status, UpdateStatus::Late);
    }
}
