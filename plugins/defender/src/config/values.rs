//! Typed reading of the values GLPI sends for AVConfig keys. The server stores every value as
//! text (`"1"`, `"true"`, `"[\"C:\\\\x\"]"`), the agent may hand JSON scalars or arrays.

use serde_json::Value;

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `enabled`/`disabled` (any case).
pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "enabled" => Some(true),
            "false" | "0" | "no" | "off" | "disabled" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer in `min..=max`.
pub fn integer(v: &Value, min: i64, max: i64) -> Option<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (min..=max).contains(&n).then_some(n)
}

/// A list: a JSON array, a JSON array as text, or text split on `;` and newlines. Items are
/// trimmed; empty items are dropped; an item with a control character refuses the whole list.
pub fn list(v: &Value) -> Option<Vec<String>> {
    let items: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()?,
        Value::String(s) if s.trim_start().starts_with('[') => {
            return list(&serde_json::from_str::<Value>(s).ok()?);
        }
        Value::String(s) => s.split([';', '\n']).map(str::to_string).collect(),
        _ => return None,
    };
    let items: Vec<String> = items
        .iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .collect();
    if items.iter().any(|i| i.chars().any(char::is_control)) {
        return None;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms() {
        assert_eq!(boolean(&json!("True")), Some(true));
        assert_eq!(boolean(&json!("")), Some(false));
        assert_eq!(boolean(&json!("maybe")), None);
        assert_eq!(integer(&json!("50"), 5, 100), Some(50));
        assert_eq!(integer(&json!(101), 5, 100), None);
        assert_eq!(integer(&json!("5; x"), 5, 100), None);
        assert_eq!(
            list(&json!(r#"["C:\\a","C:\\b"]"#)),
            Some(vec!["C:\\a".into(), "C:\\b".into()])
        );
        assert_eq!(list(&json!("a; b\n")), Some(vec!["a".into(), "b".into()]));
        assert_eq!(list(&json!(null)), Some(vec![]));
        assert_eq!(list(&json!(["a\u{0}b"])), None);
        assert_eq!(list(&json!([1])), None);
    }
}
