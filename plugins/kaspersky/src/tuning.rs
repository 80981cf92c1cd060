//! The AVConfig allow-list: which KESL settings the server may change, and how values are
//! checked before they reach `kesl-control --set-settings <task> <Name>=<Value>`.
//!
//! Invariants:
//! * Only on-demand scan tasks (2 Scan_My_Computer, 3 Scan_File — used by `--scan-file` —,
//!   4 Critical_Areas_Scan) and only the tuning options below; real-time protection, actions
//!   on detection, scopes and exclusions stay local decisions.
//! * Values are normalised to the product's spelling (`Yes`/`No`, decimal integers in a
//!   range): nothing else can reach the argv.
//! * The setting names are those of KESL's task settings files; they are not confirmed by a
//!   capture in our sources (doc §5), so a refusal by the product is reported per key.

use serde_json::Value;

/// Scan tasks whose tuning may be changed.
pub const TASKS: &[u32] = &[2, 3, 4];

#[derive(Debug, Clone, Copy)]
enum Kind {
    YesNo,
    /// Integer in `0..=max`.
    Number(u64),
}

const OPTIONS: &[(&str, Kind)] = &[
    ("ScanArchived", Kind::YesNo),
    ("ScanSfxArchived", Kind::YesNo),
    ("ScanMailBases", Kind::YesNo),
    ("ScanPlainMail", Kind::YesNo),
    ("TimeLimitEnabled", Kind::YesNo),
    // seconds per object
    ("TimeLimit", Kind::Number(86_400)),
    ("SizeLimitEnabled", Kind::YesNo),
    // megabytes per object
    ("SizeLimit", Kind::Number(1_000_000)),
];

/// `task:<id>:<Name>` → `(id, Name)` when the pair is on the allow-list.
pub fn tunable(attr: &str) -> Option<(u32, &'static str)> {
    let rest = attr.strip_prefix("task:")?;
    let (id, name) = rest.split_once(':')?;
    let id: u32 = id.parse().ok()?;
    if !TASKS.contains(&id) {
        return None;
    }
    OPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, _)| (id, *n))
}

/// The product's spelling of `value` for option `name`, or why it is refused.
pub fn normalise(name: &str, value: &Value) -> Result<String, String> {
    let kind = OPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
        .ok_or_else(|| format!("{name} is not a tuning option"))?;
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Bool(b) => (if *b { "yes" } else { "no" }).to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("{other} is not a value for {name}")),
    };
    match kind {
        Kind::YesNo => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "on" => Ok("Yes".into()),
            "no" | "false" | "0" | "off" | "" => Ok("No".into()),
            _ => Err(format!("{text:?} is not Yes or No")),
        },
        Kind::Number(max) => match text.parse::<u64>() {
            Ok(n) if n <= max => Ok(n.to_string()),
            _ => Err(format!("{text:?} is not a number from 0 to {max}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_scan_tuning_on_scan_tasks() {
        assert_eq!(tunable("task:2:ScanArchived"), Some((2, "ScanArchived")));
        assert_eq!(tunable("task:3:SizeLimit"), Some((3, "SizeLimit")));
        assert_eq!(
            tunable("task:1:ScanArchived"),
            None,
            "real-time protection stays local"
        );
        assert_eq!(tunable("task:2:FirstAction"), None);
        assert_eq!(tunable("task:2:ScanScope.item_0000:Path"), None);
        assert_eq!(tunable("ScanArchived"), None);
    }

    #[test]
    fn values_are_normalised_or_refused() {
        assert_eq!(normalise("ScanArchived", &json!("yes")).unwrap(), "Yes");
        assert_eq!(normalise("ScanArchived", &json!(false)).unwrap(), "No");
        assert_eq!(normalise("TimeLimit", &json!(120)).unwrap(), "120");
        assert_eq!(normalise("TimeLimit", &json!("60")).unwrap(), "60");
        assert!(normalise("TimeLimit", &json!("60 --foo")).is_err());
        assert!(normalise("TimeLimit", &json!(999_999)).is_err());
        assert!(normalise("ScanArchived", &json!("Yes SizeLimit=1")).is_err());
        assert!(normalise("ScanArchived", &json!([1])).is_err());
    }
}
