//! `Get-MpPreference` → configuration entries, and the allow-list of preferences GLPI may set
//! (backends.md §D.4).
//!
//! Invariants:
//! * Only the names in [`ALLOWED`] are ever written; the name in the script is the
//!   allow-list's `&'static str`, never the server's text.
//! * Values are checked to their type and range here; the script receives them as data.

use armadito_plugin_api::{ConfigEntry, ConfigRejection};
use serde_json::Value;

use super::powershell::{WriteOp, strings};
use crate::config::{not_changeable, rejected, values};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// Any of these integers (ThreatAction values).
    OneOf(&'static [i64]),
    /// A list changed with Add-/Remove-MpPreference.
    List,
}

/// ThreatAction: 0 undefined, 1 Clean, 2 Quarantine, 3 Remove, 6 Allow, 8 UserDefined,
/// 9 NoAction, 10 Block.
const THREAT_ACTIONS: &[i64] = &[0, 1, 2, 3, 6, 8, 9, 10];

pub const ALLOWED: &[(&str, Kind)] = &[
    ("DisableRealtimeMonitoring", Kind::Bool),
    ("DisableBehaviorMonitoring", Kind::Bool),
    ("DisableIOAVProtection", Kind::Bool),
    ("DisableScriptScanning", Kind::Bool),
    ("DisableArchiveScanning", Kind::Bool),
    ("DisableRemovableDriveScanning", Kind::Bool),
    ("DisableEmailScanning", Kind::Bool),
    ("DisableScanningNetworkFiles", Kind::Bool),
    ("DisableCatchupFullScan", Kind::Bool),
    ("DisableCatchupQuickScan", Kind::Bool),
    ("CheckForSignaturesBeforeRunningScan", Kind::Bool),
    ("MAPSReporting", Kind::Int { min: 0, max: 2 }),
    ("SubmitSamplesConsent", Kind::Int { min: 0, max: 3 }),
    ("PUAProtection", Kind::Int { min: 0, max: 2 }),
    ("EnableNetworkProtection", Kind::Int { min: 0, max: 2 }),
    ("EnableControlledFolderAccess", Kind::Int { min: 0, max: 6 }),
    ("ScanParameters", Kind::Int { min: 1, max: 2 }),
    ("ScanScheduleDay", Kind::Int { min: 0, max: 8 }),
    ("ScanAvgCPULoadFactor", Kind::Int { min: 5, max: 100 }),
    ("SignatureUpdateInterval", Kind::Int { min: 0, max: 24 }),
    ("LowThreatDefaultAction", Kind::OneOf(THREAT_ACTIONS)),
    ("ModerateThreatDefaultAction", Kind::OneOf(THREAT_ACTIONS)),
    ("HighThreatDefaultAction", Kind::OneOf(THREAT_ACTIONS)),
    ("SevereThreatDefaultAction", Kind::OneOf(THREAT_ACTIONS)),
    ("UnknownThreatDefaultAction", Kind::OneOf(THREAT_ACTIONS)),
    ("ExclusionPath", Kind::List),
    ("ExclusionExtension", Kind::List),
    ("ExclusionProcess", Kind::List),
];

/// Every property of the `Get-MpPreference` object, sorted, except nested objects.
pub fn entries(row: &Value) -> Vec<ConfigEntry> {
    let Some(obj) = row.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<ConfigEntry> = obj
        .iter()
        .filter(|(_, v)| !v.is_object())
        .map(|(k, v)| {
            let value = if lookup(k) == Some(Kind::List) {
                Value::from(strings(row, k))
            } else {
                v.clone()
            };
            ConfigEntry::new(k.clone(), value)
        })
        .collect();
    out.sort_by(|a, b| a.attr.cmp(&b.attr));
    out
}

fn lookup(attr: &str) -> Option<Kind> {
    ALLOWED.iter().find(|(n, _)| *n == attr).map(|(_, k)| *k)
}

fn allowed_name(attr: &str) -> Option<&'static str> {
    ALLOWED.iter().find(|(n, _)| *n == attr).map(|(n, _)| *n)
}

/// One PowerShell write: op, allow-listed name, the value as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub attr: &'static str,
    pub op: WriteOp,
    pub value: String,
}

/// What to write for `wanted`, given the current preferences.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// Requested values, normalised, to compare after re-reading.
    pub expect: Vec<(&'static str, Value)>,
    pub unchanged: Vec<String>,
    pub rejected: Vec<ConfigRejection>,
}

/// The normalised current value of an allow-listed key (for comparisons).
pub fn current(row: &Value, name: &str, kind: Kind) -> Value {
    match kind {
        Kind::Bool => Value::from(row.get(name).and_then(values::boolean)),
        Kind::Int { .. } | Kind::OneOf(_) => Value::from(
            row.get(name)
                .and_then(|v| values::integer(v, i64::MIN, i64::MAX)),
        ),
        Kind::List => Value::from(strings(row, name)),
    }
}

pub fn plan(wanted: &[ConfigEntry], row: &Value) -> Plan {
    let mut plan = Plan::default();
    for e in wanted {
        let (Some(name), Some(kind)) = (allowed_name(&e.attr), lookup(&e.attr)) else {
            plan.rejected.push(not_changeable(&e.attr));
            continue;
        };
        let bad = |what: &str| {
            rejected(
                &e.attr,
                format!("invalid value {}: expected {what}", e.value),
            )
        };
        let now = current(row, name, kind);
        let (want, writes): (Value, Vec<Write>) = match kind {
            Kind::Bool => match values::boolean(&e.value) {
                Some(b) => (
                    Value::from(b),
                    vec![Write {
                        attr: name,
                        op: WriteOp::SetBool,
                        value: b.to_string(),
                    }],
                ),
                None => {
                    plan.rejected.push(bad("a boolean"));
                    continue;
                }
            },
            Kind::Int { min, max } => match values::integer(&e.value, min, max) {
                Some(n) => (
                    Value::from(n),
                    vec![Write {
                        attr: name,
                        op: WriteOp::SetInt,
                        value: n.to_string(),
                    }],
                ),
                None => {
                    plan.rejected
                        .push(bad(&format!("an integer in {min}..={max}")));
                    continue;
                }
            },
            Kind::OneOf(allowed) => match values::integer(&e.value, i64::MIN, i64::MAX)
                .filter(|n| allowed.contains(n))
            {
                Some(n) => (
                    Value::from(n),
                    vec![Write {
                        attr: name,
                        op: WriteOp::SetInt,
                        value: n.to_string(),
                    }],
                ),
                None => {
                    plan.rejected.push(bad(&format!("one of {allowed:?}")));
                    continue;
                }
            },
            Kind::List => match values::list(&e.value) {
                Some(items) => {
                    let have = strings(row, name);
                    let same = |a: &String, b: &String| a.eq_ignore_ascii_case(b);
                    let mut w: Vec<Write> = items
                        .iter()
                        .filter(|i| !have.iter().any(|h| same(h, i)))
                        .map(|i| Write {
                            attr: name,
                            op: WriteOp::Add,
                            value: i.clone(),
                        })
                        .collect();
                    w.extend(
                        have.iter()
                            .filter(|h| !items.iter().any(|i| same(h, i)))
                            .map(|h| Write {
                                attr: name,
                                op: WriteOp::Remove,
                                value: h.clone(),
                            }),
                    );
                    (Value::from(items), w)
                }
                None => {
                    plan.rejected
                        .push(bad("a list of paths, extensions or processes"));
                    continue;
                }
            },
        };
        let differs = match kind {
            Kind::List => !writes.is_empty(),
            _ => now != want,
        };
        if differs {
            plan.writes.extend(writes);
            plan.expect.push((name, want));
        } else {
            plan.unchanged.push(e.attr.clone());
        }
    }
    plan
}

/// Whether the re-read preferences hold `want` for `name`.
pub fn holds(row: &Value, name: &str, want: &Value) -> bool {
    let Some(kind) = lookup(name) else {
        return false;
    };
    let now = current(row, name, kind);
    match (kind, &now, want) {
        (Kind::List, Value::Array(a), Value::Array(b)) => {
            a.len() == b.len()
                && b.iter().all(|w| {
                    a.iter().any(|h| {
                        h.as_str()
                            .zip(w.as_str())
                            .is_some_and(|(h, w)| h.eq_ignore_ascii_case(w))
                    })
                })
        }
        _ => &now == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prefs() -> Value {
        json!({"DisableRealtimeMonitoring": false, "ScanAvgCPULoadFactor": 50,
               "ExclusionPath": ["C:\\old"], "ExclusionExtension": null,
               "SignatureDefinitionUpdateFileSharesSources": null, "ComputerID": "X",
               "HighThreatDefaultAction": 0})
    }

    #[test]
    fn entries_are_sorted_and_lists_are_arrays() {
        let e = entries(&prefs());
        assert_eq!(e[0].attr, "ComputerID");
        let ext = e.iter().find(|e| e.attr == "ExclusionExtension").unwrap();
        assert_eq!(ext.value, json!([]));
    }

    #[test]
    fn plan_checks_types_and_allow_list() {
        let wanted = vec![
            ConfigEntry::new("DisableRealtimeMonitoring", "1"),
            ConfigEntry::new("ScanAvgCPULoadFactor", "50"),
            ConfigEntry::new("ExclusionPath", r#"["C:\\new"]"#),
            ConfigEntry::new("ComputerID", "Y"),
            ConfigEntry::new(
                "SignatureDefinitionUpdateFileSharesSources",
                "\\\\evil\\share",
            ),
            ConfigEntry::new("HighThreatDefaultAction", "5"),
            ConfigEntry::new("MAPSReporting", "2; Remove-Item C:\\"),
        ];
        let p = plan(&wanted, &prefs());
        assert_eq!(
            p.writes,
            vec![
                Write {
                    attr: "DisableRealtimeMonitoring",
                    op: WriteOp::SetBool,
                    value: "true".into()
                },
                Write {
                    attr: "ExclusionPath",
                    op: WriteOp::Add,
                    value: "C:\\new".into()
                },
                Write {
                    attr: "ExclusionPath",
                    op: WriteOp::Remove,
                    value: "C:\\old".into()
                },
            ]
        );
        assert_eq!(p.unchanged, ["ScanAvgCPULoadFactor"]);
        let rej: Vec<_> = p.rejected.iter().map(|r| r.attr.as_str()).collect();
        assert_eq!(
            rej,
            [
                "ComputerID",
                "SignatureDefinitionUpdateFileSharesSources",
                "HighThreatDefaultAction",
                "MAPSReporting"
            ]
        );
        assert!(p.rejected[0].reason.contains("not changeable remotely"));
        assert!(
            p.rejected[3].reason.contains("0..=2"),
            "{:?}",
            p.rejected[3]
        );
    }

    #[test]
    fn holds_compares_normalised_values() {
        let row = json!({"DisableRealtimeMonitoring": true, "ExclusionPath": "C:\\New"});
        assert!(holds(&row, "DisableRealtimeMonitoring", &json!(true)));
        assert!(holds(&row, "ExclusionPath", &json!(["c:\\new"])));
        assert!(!holds(&row, "ExclusionPath", &json!([])));
    }
}
