//! `mdatp threat list --output json` → detections.
//!
//! The JSON shape is not documented by Microsoft; backends.md §D.6 records it (unverified) as
//! `.threats.scans[].threats[]`, each `{threat:{tracking_id,name,type,…}, history:[{key:<time>,
//! value:<status>}]}`. This parser also accepts a flat list of threats and camelCase names, and
//! skips entries without an id (they could not be sent exactly once).

use armadito_plugin_api::{Detection, DetectionAction};
use serde_json::Value;

use crate::cursor::Timed;
use crate::dates;

/// The threat entries, whatever the nesting.
fn entries(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().flat_map(entries).collect(),
        Value::Object(o) => {
            if let Some(inner) = o.get("threats").or_else(|| o.get("scans")) {
                entries(inner)
            } else {
                vec![v]
            }
        }
        _ => Vec::new(),
    }
}

fn first_str<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str))
}

pub fn action(status: &str) -> DetectionAction {
    let s = status.to_ascii_lowercase();
    if s.contains("fail") {
        DetectionAction::Failed
    } else if s.contains("quarantin") {
        DetectionAction::Quarantined
    } else if s.contains("remov") {
        DetectionAction::Removed
    } else if s.contains("clean") {
        DetectionAction::Cleaned
    } else if s.contains("allow") {
        DetectionAction::Allowed
    } else if s.contains("block") {
        DetectionAction::Blocked
    } else if s.contains("detect") || s.contains("active") {
        DetectionAction::Alert
    } else {
        DetectionAction::Unknown
    }
}

pub fn parse(v: &Value) -> Vec<Timed> {
    entries(v)
        .into_iter()
        .filter_map(|entry| {
            let t = entry.get("threat").unwrap_or(entry);
            let id = first_str(t, &["tracking_id", "trackingId", "id"])?.to_string();
            let name = first_str(t, &["name", "threatName"]).unwrap_or("unknown threat");
            let path = t
                .get("resources")
                .and_then(|r| r.get(0))
                .and_then(Value::as_str)
                .or_else(|| first_str(t, &["path", "filePath", "file_path"]))
                .unwrap_or_default();
            // history: earliest = detection time, latest = current status
            let mut history: Vec<(i64, &str)> = entry
                .get("history")
                .and_then(Value::as_array)
                .map(|h| {
                    h.iter()
                        .filter_map(|e| {
                            Some((dates::millis(e.get("key")?)?, e.get("value")?.as_str()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            history.sort();
            let millis = history.first().map(|(t, _)| *t).or_else(|| {
                ["detection_time", "detectionTime"]
                    .iter()
                    .find_map(|k| t.get(*k).and_then(dates::millis))
            })?;
            let status = history
                .last()
                .map(|(_, s)| *s)
                .or_else(|| first_str(t, &["status", "state"]))
                .unwrap_or("");
            Some(Timed {
                millis,
                detection: Detection {
                    id,
                    threat_name: name.to_string(),
                    file_path: path.to_string(),
                    action: action(status),
                    detection_time: millis.div_euclid(1000),
                    module_name: None,
                    info: Some(match first_str(t, &["type"]) {
                        Some(ty) => format!("detected by mdatp ({ty})"),
                        None => "detected by mdatp".into(),
                    }),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_flat_shapes() {
        let nested: Value = serde_json::from_str(include_str!(
            "../../../../tests/fakes/defender/fixtures/mdatp/threat-list-2.json"
        ))
        .unwrap();
        let t = parse(&nested);
        assert_eq!(t.len(), 2, "{t:?}");
        let d = &t[0].detection;
        assert_eq!(d.threat_name, "Virus:DOS/EICAR_Test_File");
        assert_eq!(
            d.action,
            DetectionAction::Quarantined,
            "latest history entry"
        );
        assert_eq!(t[0].millis, 1_691_587_000_000, "earliest history entry");
        let flat = serde_json::json!([{"id": "x", "name": "N", "path": "/p", "detectionTime": "1700000000000", "status": "quarantine_failed"}, {"name": "no id"}]);
        let t = parse(&flat);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].detection.action, DetectionAction::Failed);
        assert!(parse(&serde_json::json!({"threats": {"scans": []}})).is_empty());
    }
}
