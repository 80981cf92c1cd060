//! The daemon's status (`a6o_info` of Gen 3 `status` / `armadito-info --json`, Gen 1
//! `StatusEvent`) into [`AvInfo`], and that into the model's `BackendState` pieces.
//!
//! Invariants: no I/O; an update timestamp of 0 (the daemon's "unknown") becomes `None`, so
//! the agent never sends a date the server rejects.

use armadito_plugin_api::{Detail, ModuleInfo, UpdateStatus};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct BaseInfo {
    pub name: String,
    pub update_ts: Option<i64>,
    pub version: Option<String>,
    pub signature_count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AvModule {
    pub name: String,
    pub status: UpdateStatus,
    pub update_ts: Option<i64>,
    pub bases: Vec<BaseInfo>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AvInfo {
    pub version: Option<String>,
    pub status: UpdateStatus,
    pub update_ts: Option<i64>,
    pub modules: Vec<AvModule>,
}

/// `A6O_UPDATE_*` (Gen 3) and the pretty strings (Gen 1).
pub fn update_status(s: &str) -> UpdateStatus {
    match s {
        "A6O_UPDATE_OK" | "up-to-date" => UpdateStatus::UpToDate,
        "A6O_UPDATE_LATE" | "late" => UpdateStatus::Late,
        "A6O_UPDATE_CRITICAL" | "critical" => UpdateStatus::Critical,
        _ => UpdateStatus::NonAvailable,
    }
}

fn ts(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64).filter(|t| *t > 0)
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn bases(list: Option<&Value>) -> Vec<BaseInfo> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|b| BaseInfo {
                    name: str_of(b, "name").unwrap_or_default(),
                    update_ts: ts(b, "base_update_ts"),
                    version: str_of(b, "version"),
                    signature_count: b.get("signature_count").and_then(Value::as_u64),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Gen 3 `a6o_info`.
pub fn parse_info(v: &Value) -> Result<AvInfo, String> {
    if !v.is_object() {
        return Err(format!("status is not a JSON object: {v}"));
    }
    let modules = v
        .get("module_infos")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|m| AvModule {
                    name: str_of(m, "name").unwrap_or_default(),
                    status: update_status(
                        m.get("mod_status").and_then(Value::as_str).unwrap_or(""),
                    ),
                    update_ts: ts(m, "mod_update_ts"),
                    bases: bases(m.get("base_infos")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(AvInfo {
        // 0.12.x's feature-jrpc probe read "antivirus-version"
        version: str_of(v, "antivirus_version").or_else(|| str_of(v, "antivirus-version")),
        status: update_status(v.get("global_status").and_then(Value::as_str).unwrap_or("")),
        update_ts: ts(v, "global_update_ts"),
        modules,
    })
}

/// Gen 1 `StatusEvent` (`global_update_timestamp`, `mod_update_timestamp`, `bases`).
pub fn parse_info_gen1(v: &Value) -> AvInfo {
    let modules = v
        .get("modules")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|m| AvModule {
                    name: str_of(m, "name").unwrap_or_default(),
                    status: update_status(
                        m.get("mod_status").and_then(Value::as_str).unwrap_or(""),
                    ),
                    update_ts: ts(m, "mod_update_timestamp"),
                    bases: bases(m.get("bases")),
                })
                .collect()
        })
        .unwrap_or_default();
    AvInfo {
        version: None,
        status: update_status(v.get("global_status").and_then(Value::as_str).unwrap_or("")),
        update_ts: ts(v, "global_update_timestamp"),
        modules,
    }
}

impl AvInfo {
    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.modules
            .iter()
            .map(|m| ModuleInfo {
                name: m.name.clone(),
                status: m.status,
                update_time: m.update_ts,
                version: None,
            })
            .collect()
    }

    /// One detail per signature base: `base:<module>:<base>` = "version V, N signatures, updated T".
    pub fn base_details(&self) -> Vec<Detail> {
        let mut out = Vec::new();
        for m in &self.modules {
            for b in &m.bases {
                let mut parts = Vec::new();
                if let Some(v) = &b.version {
                    parts.push(format!("version {v}"));
                }
                if let Some(n) = b.signature_count {
                    parts.push(format!("{n} signatures"));
                }
                if let Some(t) = b.update_ts {
                    parts.push(format!("updated {t}"));
                }
                out.push(Detail::new(
                    format!("base:{}:{}", m.name, b.name),
                    parts.join(", "),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gen3_status_fixture() {
        let v = json!({"antivirus_version":"0.12.8","global_status":"A6O_UPDATE_OK","global_update_ts":1488207696,
            "module_infos":[{"name":"clamav","mod_status":"A6O_UPDATE_LATE","mod_update_ts":1488200000,
              "base_infos":[{"name":"daily.cld","base_update_ts":0,"version":"22000","signature_count":1234,"full_path":"/var/lib/clamav/daily.cld"}]},
              {"name":"moduleH1","mod_status":"A6O_UPDATE_NON_AVAILABLE","mod_update_ts":0}]});
        let i = parse_info(&v).unwrap();
        assert_eq!(i.version.as_deref(), Some("0.12.8"));
        assert_eq!(i.status, UpdateStatus::UpToDate);
        assert_eq!(i.update_ts, Some(1488207696));
        assert_eq!(i.modules[0].status, UpdateStatus::Late);
        assert_eq!(i.modules[1].update_ts, None, "0 is unknown, not 1970");
        assert_eq!(
            i.base_details()[0],
            Detail::new("base:clamav:daily.cld", "version 22000, 1234 signatures")
        );
        assert!(parse_info(&json!("x")).is_err());
    }

    #[test]
    fn gen1_status_event() {
        let v = json!({"event_type":"StatusEvent","global_status":"critical","global_update_timestamp":1475000000,
            "modules":[{"name":"clamav","mod_status":"up-to-date","mod_update_timestamp":1475000000,
              "bases":[{"name":"daily.cld","base_update_ts":1475000000,"version":"22000","signature_count":1234,"full_path":"/x"}]}]});
        let i = parse_info_gen1(&v);
        assert_eq!(i.status, UpdateStatus::Critical);
        assert_eq!(i.modules[0].status, UpdateStatus::UpToDate);
        assert_eq!(i.modules[0].bases[0].update_ts, Some(1475000000));
    }
}
