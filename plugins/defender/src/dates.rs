//! Time values as the Defender tools print them, to unix milliseconds.
//!
//! * Windows PowerShell 5.1 `ConvertTo-Json`: `"\/Date(1717488387000)\/"` (decoded by the JSON
//!   parser to `/Date(1717488387000)/`, sometimes with a `+0200` suffix that does not change the
//!   instant).
//! * PowerShell 7: ISO 8601 `2024-06-04T08:06:27.1234567-07:00` (or without offset = UTC).
//! * `mdatp`: epoch milliseconds as a JSON string (`"1691587153787"`) or number.

use chrono::DateTime;
use serde_json::Value;

/// Unix milliseconds of a JSON date in any of the forms above; `None` for null, empty,
/// unparseable or pre-1970 (`0001-01-01`, Defender's "never") values.
pub fn millis(v: &Value) -> Option<i64> {
    let ms = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => parse_str(s.trim())?,
        _ => return None,
    };
    (ms > 0).then_some(ms)
}

/// Unix seconds of a JSON date (see [`millis`]).
pub fn secs(v: &Value) -> Option<i64> {
    millis(v).map(|ms| ms.div_euclid(1000))
}

fn parse_str(s: &str) -> Option<i64> {
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        // the digits, with an optional leading '-', before an optional +hhmm/-hhmm offset
        let end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map_or(inner.len(), |(i, _)| i);
        return inner[..end].parse().ok();
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let parsed = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc3339(&format!("{s}Z")))
        .ok()?;
    Some(parsed.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_powershell_forms_and_epoch_strings() {
        // the same instant, 2024-06-04T15:06:27Z, in every form
        let want = Some(1_717_513_587_000);
        let ps51: Value = serde_json::from_str(r#""\/Date(1717513587000)\/""#).unwrap();
        assert_eq!(millis(&ps51), want);
        assert_eq!(millis(&json!("/Date(1717513587000+0200)/")), want);
        assert_eq!(millis(&json!("2024-06-04T08:06:27-07:00")), want);
        assert_eq!(millis(&json!("2024-06-04T15:06:27Z")), want);
        assert_eq!(
            millis(&json!("2024-06-04T15:06:27")),
            want,
            "no offset = UTC"
        );
        assert_eq!(
            millis(&json!("2024-06-04T08:06:27.1234567-07:00")),
            Some(1_717_513_587_123),
            "7 fractional digits (.NET)"
        );
        assert_eq!(millis(&json!("1717513587000")), want);
        assert_eq!(millis(&json!(1_717_513_587_000_i64)), want);
        assert_eq!(secs(&json!("1717513587999")), Some(1_717_513_587));
    }

    #[test]
    fn never_and_garbage_are_none() {
        for v in [
            json!(null),
            json!(""),
            json!("0001-01-01T00:00:00"),
            json!("/Date(-62135596800000)/"),
            json!("yesterday"),
            json!("/Date(abc)/"),
            json!({"value": 1}),
        ] {
            assert_eq!(millis(&v), None, "{v}");
        }
    }
}
