//! `Get-MpThreatDetection` joined with `Get-MpThreat` on `ThreatID` (backends.md §D.3): one
//! detection per `DetectionID`, named by its threat, timed by `InitialDetectionTime`.

use std::collections::HashMap;

use armadito_plugin_api::{Detection, DetectionAction};
use serde_json::Value;

use super::powershell::{strings, text};
use crate::cursor::Timed;
use crate::dates;

/// `ThreatStatusID` (MpClient.h `MPTHREAT_STATUS`) → action.
pub fn action(status: Option<i64>) -> DetectionAction {
    match status {
        Some(1) => DetectionAction::Alert,
        Some(2) => DetectionAction::Cleaned,
        Some(3) => DetectionAction::Quarantined,
        Some(4) => DetectionAction::Removed,
        Some(5) => DetectionAction::Allowed,
        Some(6) => DetectionAction::Blocked,
        Some(102..=107) => DetectionAction::Failed,
        _ => DetectionAction::Unknown,
    }
}

/// `DetectionSourceTypeID` → words for the alert's `info`.
fn source(id: Option<i64>) -> &'static str {
    match id {
        Some(1) => "user",
        Some(2) => "system",
        Some(3) => "real-time",
        Some(4) => "IOAV",
        Some(5) => "NRI",
        Some(7) => "ELAM",
        Some(8) => "local attestation",
        Some(9) => "remote attestation",
        _ => "unknown source",
    }
}

/// `file:_C:\x\eicar.com` → `C:\x\eicar.com`; `webfile:_C:\f|http://…|pid:…` → `C:\f`.
pub fn resource_path(resource: &str) -> String {
    let rest = resource.split_once(":_").map_or(resource, |(_, rest)| rest);
    rest.split('|').next().unwrap_or(rest).to_string()
}

/// Joins detections and threats. A detection without a `DetectionID` or time is skipped
/// (it cannot be placed in the history); a missing threat keeps its numeric id as name.
pub fn join(detections: &[Value], threats: &[Value]) -> Vec<Timed> {
    let names: HashMap<String, String> = threats
        .iter()
        .filter_map(|t| Some((text(t, "ThreatID")?, text(t, "ThreatName")?)))
        .collect();
    detections
        .iter()
        .filter_map(|d| {
            let id = text(d, "DetectionID")?;
            let millis = d.get("InitialDetectionTime").and_then(dates::millis)?;
            let threat_id = text(d, "ThreatID").unwrap_or_default();
            let threat_name = names
                .get(&threat_id)
                .cloned()
                .unwrap_or_else(|| format!("ThreatID {threat_id}"));
            let file_path = strings(d, "Resources")
                .first()
                .map(|r| resource_path(r))
                .unwrap_or_default();
            let mut info = format!(
                "detected by Defender ({})",
                source(d.get("DetectionSourceTypeID").and_then(Value::as_i64))
            );
            if let Some(p) = text(d, "ProcessName").filter(|p| !p.is_empty() && p != "Unknown") {
                info.push_str(&format!(", process {p}"));
            }
            Some(Timed {
                millis,
                detection: Detection {
                    id,
                    threat_name,
                    file_path,
                    action: action(d.get("ThreatStatusID").and_then(Value::as_i64)),
                    detection_time: millis.div_euclid(1000),
                    module_name: None,
                    info: Some(info),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn joined_on_threat_id_with_both_date_forms() {
        let detections = vec![
            json!({"DetectionID": "{A}", "ThreatID": 2147519003_i64, "ThreatStatusID": 3,
                   "DetectionSourceTypeID": 3, "Resources": ["file:_C:\\t\\eicar.com"],
                   "InitialDetectionTime": "/Date(1717513587000)/", "ProcessName": "Unknown"}),
            json!({"DetectionID": "{B}", "ThreatID": "2147686744", "ThreatStatusID": 104,
                   "Resources": "webfile:_C:\\d\\a.zip|http://x/a.zip|pid:1",
                   "InitialDetectionTime": "2024-06-04T08:06:28-07:00"}),
            json!({"DetectionID": "{C}", "ThreatID": 1, "InitialDetectionTime": null}),
        ];
        let threats = vec![
            json!({"ThreatID": 2147519003_i64, "ThreatName": "Virus:DOS/EICAR_Test_File"}),
            json!({"ThreatID": 2147686744_i64, "ThreatName": "Trojan:Win32/X"}),
        ];
        let j = join(&detections, &threats);
        assert_eq!(j.len(), 2, "the detection without a time is skipped");
        assert_eq!(j[0].millis, 1_717_513_587_000);
        let d = &j[0].detection;
        assert_eq!(
            (d.id.as_str(), d.threat_name.as_str(), d.file_path.as_str()),
            ("{A}", "Virus:DOS/EICAR_Test_File", "C:\\t\\eicar.com")
        );
        assert_eq!(d.action, DetectionAction::Quarantined);
        assert_eq!(d.info.as_deref(), Some("detected by Defender (real-time)"));
        let d = &j[1].detection;
        assert_eq!(
            d.threat_name, "Trojan:Win32/X",
            "numeric and string ids join"
        );
        assert_eq!(d.file_path, "C:\\d\\a.zip");
        assert_eq!(d.action, DetectionAction::Failed);
        assert_eq!(d.detection_time, 1_717_513_588);
        let j = join(&detections[..1], &[]);
        assert_eq!(j[0].detection.threat_name, "ThreatID 2147519003");
    }
}
