//! The mdatp settings GLPI may change: health key → `mdatp config <feature> --value <v>`,
//! and exclusions (`mdatp exclusion <kind> add|remove`).
//!
//! Invariants: only these features and exclusion kinds are ever written; the feature name and
//! flag come from this table, the value is checked against its allowed words.

use serde_json::Value;

use crate::config::values;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Health shows a bool; the CLI takes `enabled`/`disabled`.
    Bool,
    /// Health shows one of these words; the CLI takes the same words.
    Words(&'static [&'static str]),
}

/// (health key, `mdatp config` feature, kind).
pub const FEATURES: &[(&str, &str, Kind)] = &[
    (
        "realTimeProtectionEnabled",
        "real-time-protection",
        Kind::Bool,
    ),
    (
        "behaviorMonitoring",
        "behavior-monitoring",
        Kind::Words(&["enabled", "disabled"]),
    ),
    ("cloudEnabled", "cloud", Kind::Bool),
    ("cloudDiagnosticEnabled", "cloud-diagnostic", Kind::Bool),
    (
        "cloudAutomaticSampleSubmissionConsent",
        "cloud-automatic-sample-submission",
        Kind::Words(&["none", "safe", "all"]),
    ),
    ("passiveModeEnabled", "passive-mode", Kind::Bool),
];

pub fn feature(attr: &str) -> Option<(&'static str, Kind)> {
    FEATURES
        .iter()
        .find(|(k, _, _)| *k == attr)
        .map(|(_, f, kind)| (*f, *kind))
}

/// The CLI word for a requested value, and the value health will show once it is in effect.
pub fn requested(kind: Kind, v: &Value) -> Option<(&'static str, Value)> {
    match kind {
        Kind::Bool => {
            values::boolean(v).map(|b| (if b { "enabled" } else { "disabled" }, Value::Bool(b)))
        }
        Kind::Words(words) => {
            let s = v.as_str()?.trim().to_ascii_lowercase();
            words
                .iter()
                .find(|w| **w == s)
                .map(|w| (*w, Value::from(*w)))
        }
    }
}

/// Exclusion kinds: (attr, CLI kind, CLI flag, `$type` words in `exclusion list`).
pub const EXCLUSIONS: &[(&str, &str, &str)] = &[
    ("exclusions:folder", "folder", "--path"),
    ("exclusions:file", "file", "--path"),
    ("exclusions:extension", "extension", "--name"),
    ("exclusions:process", "process", "--name"),
];

pub fn exclusion(attr: &str) -> Option<(&'static str, &'static str, &'static str)> {
    EXCLUSIONS.iter().find(|(a, _, _)| *a == attr).copied()
}

/// `mdatp exclusion list --output json` (shape unverified: a list of objects with a `$type`
/// such as `folder`, `filePath`, `fileExtension`, `process` and a `path`/`extension`/`name`)
/// → (attr, value) pairs.
pub fn parse_exclusions(v: &Value) -> Vec<(&'static str, String)> {
    let items: &[Value] = match v {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("exclusions")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
        _ => &[],
    };
    items
        .iter()
        .filter_map(|i| {
            let ty = i
                .get("$type")
                .or_else(|| i.get("type"))
                .and_then(Value::as_str)?
                .to_ascii_lowercase();
            let attr = if ty.contains("extension") {
                "exclusions:extension"
            } else if ty.contains("folder") || ty.contains("directory") {
                "exclusions:folder"
            } else if ty.contains("process") {
                "exclusions:process"
            } else if ty.contains("file") || ty.contains("path") {
                "exclusions:file"
            } else {
                return None;
            };
            let value = ["path", "extension", "name"]
                .iter()
                .find_map(|k| i.get(*k).and_then(Value::as_str))?;
            Some((attr, value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_exclusions() {
        assert_eq!(
            requested(Kind::Bool, &json!("1")),
            Some(("enabled", json!(true)))
        );
        assert_eq!(
            requested(Kind::Words(&["none", "safe", "all"]), &json!("All")),
            Some(("all", json!("all")))
        );
        assert_eq!(requested(Kind::Words(&["none"]), &json!("--help")), None);
        let list = json!([{"$type":"folder","path":"/var/log/"},{"$type":"fileExtension","extension":".pdf"},
                          {"$type":"filePath","path":"/tmp/f"},{"$type":"process","name":"cat"},{"$type":"odd"}]);
        assert_eq!(
            parse_exclusions(&list),
            vec![
                ("exclusions:folder", "/var/log/".to_string()),
                ("exclusions:extension", ".pdf".to_string()),
                ("exclusions:file", "/tmp/f".to_string()),
                ("exclusions:process", "cat".to_string()),
            ]
        );
    }
}
