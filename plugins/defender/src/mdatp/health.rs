//! `mdatp health --output json` → `BackendState` and configuration entries (backends.md §D.6).
//! Keys are camelCase; settings are wrapped as `{"displayValue", "isManaged", "value"}`;
//! times are epoch-ms strings.

use armadito_plugin_api::{
    BackendState, ConfigEntry, Detail, ModuleInfo, OnOff, ServiceStatus, UpdateStatus,
};
use serde_json::Value;

use crate::dates;
use crate::freshness::{update_status, worst};

pub const PRODUCT: &str = "Microsoft Defender for Endpoint";

/// A setting's value and whether a policy manages it; plain fields are not managed.
pub fn setting(v: &Value) -> (Value, bool) {
    match v {
        Value::Object(o) if o.contains_key("value") => (
            o.get("value").cloned().unwrap_or(Value::Null),
            o.get("isManaged").and_then(Value::as_bool).unwrap_or(false),
        ),
        other => (other.clone(), false),
    }
}

fn value(h: &Value, key: &str) -> Option<Value> {
    h.get(key).map(|v| setting(v).0)
}

fn str_of(h: &Value, key: &str) -> Option<String> {
    value(h, key).and_then(|v| v.as_str().map(str::to_string))
}

/// `true`/`"enabled"` → on; `false`/`"disabled"` → off.
fn on_off(v: Option<Value>) -> OnOff {
    match v {
        Some(Value::Bool(true)) => OnOff::On,
        Some(Value::Bool(false)) => OnOff::Off,
        Some(Value::String(s)) if s == "enabled" => OnOff::On,
        Some(Value::String(s)) if s == "disabled" => OnOff::Off,
        _ => OnOff::Unknown,
    }
}

pub fn parse(h: &Value, now: i64, late: u32, critical: u32) -> BackendState {
    let updated = h.get("definitionsUpdated").and_then(dates::secs);
    let age_days = h
        .get("definitionsUpdatedMinutesAgo")
        .and_then(Value::as_f64)
        .map(|m| m / 1440.0)
        .or_else(|| updated.map(|t| (now - t).max(0) as f64 / 86_400.0));
    let by_type = match h
        .get("definitionsStatus")
        .and_then(|s| s.get("$type"))
        .and_then(Value::as_str)
    {
        Some("upToDate" | "up_to_date") => UpdateStatus::UpToDate,
        Some("couldBeOlder" | "could_be_older" | "updating") => UpdateStatus::Late,
        Some("updateFailed" | "update_failed") => UpdateStatus::Critical,
        _ => UpdateStatus::NonAvailable,
    };
    let status = worst(update_status(age_days, late, critical), by_type);
    let modules = [
        str_of(h, "engineVersion").map(|v| ModuleInfo {
            name: "engine".into(),
            status,
            update_time: None,
            version: Some(v),
        }),
        str_of(h, "definitionsVersion").map(|v| ModuleInfo {
            name: "definitions".into(),
            status,
            update_time: updated,
            version: Some(v),
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut details = Vec::new();
    for (attr, key) in [
        ("engine:version", "engineVersion"),
        ("healthy", "healthy"),
        ("licensed", "licensed"),
        ("passive_mode", "passiveModeEnabled"),
        ("tamper_protection", "tamperProtection"),
        ("behavior_monitoring", "behaviorMonitoring"),
        ("cloud:enabled", "cloudEnabled"),
        ("realtime:subsystem", "realTimeProtectionSubsystem"),
        ("realtime:available", "realTimeProtectionAvailable"),
        ("release_ring", "releaseRing"),
        ("definitions:status", "definitionsStatus"),
    ] {
        let v = match h.get(key) {
            Some(Value::Object(o)) if o.contains_key("$type") => o.get("$type").cloned(),
            Some(_) => value(h, key),
            None => None,
        };
        if let Some(v) = v.filter(|v| v.is_string() || v.is_boolean() || v.is_number()) {
            details.push(Detail::new(attr, v));
        }
    }
    if let Some(Value::Array(issues)) = h.get("healthIssues")
        && !issues.is_empty()
    {
        let text: Vec<String> = issues
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect();
        details.push(Detail::new("health_issues", text.join("; ")));
    }
    BackendState {
        product_name: PRODUCT.into(),
        product_version: str_of(h, "appVersion").unwrap_or_default(),
        service_status: ServiceStatus::Running,
        update_status: status,
        last_update: updated,
        modules,
        realtime: on_off(value(h, "realTimeProtectionEnabled")),
        details,
    }
}

/// Every wrapped setting of the health report, sorted; managed ones are read-only.
pub fn entries(h: &Value) -> Vec<ConfigEntry> {
    let Some(obj) = h.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<ConfigEntry> = obj
        .iter()
        .filter(|(_, v)| v.get("isManaged").is_some() && v.get("value").is_some())
        .map(|(k, v)| {
            let (value, managed) = setting(v);
            ConfigEntry {
                attr: k.clone(),
                value,
                read_only: managed,
            }
        })
        .collect();
    out.sort_by(|a, b| a.attr.cmp(&b.attr));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../../../tests/fakes/defender/fixtures/mdatp/health.json");

    #[test]
    fn real_health_report() {
        let h: Value = serde_json::from_str(FIXTURE).unwrap();
        // definitionsUpdated 1691587153787 = 2023-08-09T13:19:13Z; 20 minutes ago
        let s = parse(&h, 1_691_588_353, 3, 7);
        assert_eq!(s.product_name, PRODUCT);
        assert_eq!(s.product_version, "101.23062.0010");
        assert_eq!(s.service_status, ServiceStatus::Running);
        assert_eq!(s.realtime, OnOff::Off);
        assert_eq!(s.update_status, UpdateStatus::UpToDate);
        assert_eq!(s.last_update, Some(1_691_587_153));
        assert_eq!(s.modules[1].version.as_deref(), Some("1.395.30.0"));
        assert!(s.details.contains(&Detail::new("passive_mode", true)));
        assert!(
            s.details
                .contains(&Detail::new("tamper_protection", "disabled"))
        );
        assert!(
            s.details
                .contains(&Detail::new("definitions:status", "upToDate"))
        );
        let e = entries(&h);
        let rtp = e
            .iter()
            .find(|e| e.attr == "realTimeProtectionEnabled")
            .unwrap();
        assert_eq!(
            (rtp.value.clone(), rtp.read_only),
            (Value::Bool(false), false)
        );
        assert!(
            !e.iter().any(|e| e.attr == "appVersion"),
            "plain fields are state, not config"
        );
    }

    #[test]
    fn managed_settings_are_read_only_and_old_definitions_late() {
        let h = serde_json::json!({
            "realTimeProtectionEnabled": {"displayValue": true, "isManaged": true, "value": true},
            "definitionsStatus": {"$type": "couldBeOlder"}
        });
        let e = entries(&h);
        assert!(e[0].read_only);
        let s = parse(&h, 0, 3, 7);
        assert_eq!(s.realtime, OnOff::On);
        assert_eq!(s.update_status, UpdateStatus::Late);
    }
}
