//! PowerShell command lines and the shapes of `ConvertTo-Json` output.
//!
//! Invariants:
//! * Every script is a fixed text of this crate (`&'static str`, or built only from
//!   allow-listed `&'static str` names): values from GLPI are passed in the `ARMADITO_VALUE`
//!   environment variable and read by the script as data (`$env:ARMADITO_VALUE`), never
//!   spliced into the text.
//! * `ConvertTo-Json` prints nothing for no object, an object for one, an array for many:
//!   [`rows`] turns all three into a list.

use serde_json::Value;

/// The environment variable carrying the one data value of a write script.
pub const VALUE_VAR: &str = "ARMADITO_VALUE";

/// Stop on the first error (non-zero exit, message on stderr) and print UTF-8.
macro_rules! script {
    ($body:expr) => {
        concat!(
            "$ErrorActionPreference='Stop'; [Console]::OutputEncoding=[Text.Encoding]::UTF8; ",
            $body
        )
    };
}

/// Reads a cmdlet's objects as JSON, without the CIM bookkeeping properties.
macro_rules! read_script {
    ($cmdlet:literal) => {
        script!(concat!(
            $cmdlet,
            " | Select-Object * -ExcludeProperty Cim*,PSComputerName | ConvertTo-Json -Depth 4 -Compress"
        ))
    };
}

pub const COMPUTER_STATUS: &str = read_script!("Get-MpComputerStatus");
pub const THREAT_DETECTIONS: &str = read_script!("Get-MpThreatDetection");
pub const THREATS: &str = read_script!("Get-MpThreat");
pub const PREFERENCES: &str = read_script!("Get-MpPreference");

/// How a write passes its value (always from `$env:ARMADITO_VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// `Set-MpPreference -Name ([bool]::Parse($env:ARMADITO_VALUE))`
    SetBool,
    /// `Set-MpPreference -Name ([int64]$env:ARMADITO_VALUE)`
    SetInt,
    /// `Add-MpPreference -Name $env:ARMADITO_VALUE` (one list item)
    Add,
    /// `Remove-MpPreference -Name $env:ARMADITO_VALUE` (one list item)
    Remove,
}

/// The script for one write. `name` must come from the allow-list (a `&'static str`).
pub fn write_script(op: WriteOp, name: &'static str) -> String {
    let (cmdlet, value) = match op {
        WriteOp::SetBool => ("Set-MpPreference", "([bool]::Parse($env:ARMADITO_VALUE))"),
        WriteOp::SetInt => ("Set-MpPreference", "([int64]$env:ARMADITO_VALUE)"),
        WriteOp::Add => ("Add-MpPreference", "$env:ARMADITO_VALUE"),
        WriteOp::Remove => ("Remove-MpPreference", "$env:ARMADITO_VALUE"),
    };
    format!("{}{cmdlet} -{name} {value}", script!(""))
}

/// The argv after `powershell.exe` for a script.
pub fn args(script: &str) -> Vec<String> {
    ["-NoProfile", "-NonInteractive", "-Command", script]
        .map(String::from)
        .to_vec()
}

/// The objects of a `ConvertTo-Json` output: empty → none, an object → one, an array → many.
pub fn rows(stdout: &str) -> Result<Vec<Value>, String> {
    let text = stdout.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items.into_iter().filter(|v| !v.is_null()).collect()),
        Ok(obj @ Value::Object(_)) => Ok(vec![obj]),
        Ok(Value::Null) => Ok(Vec::new()),
        Ok(other) => Err(format!("expected JSON objects, got {other}")),
        Err(e) => Err(format!("not JSON ({e}): {}", excerpt(text))),
    }
}

/// The first 200 characters of a text, for error messages.
pub fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// A property as text (strings, numbers and booleans; `None` for null/absent).
pub fn text(row: &Value, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string-array property that PowerShell may print as one string, an array or null.
pub fn strings(row: &Value, key: &str) -> Vec<String> {
    match row.get(key) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_shapes() {
        assert!(rows("").unwrap().is_empty());
        assert!(rows("  \r\n").unwrap().is_empty());
        assert_eq!(rows("\u{feff}{\"a\":1}").unwrap(), vec![json!({"a":1})]);
        assert_eq!(rows("[{\"a\":1},{\"a\":2}]").unwrap().len(), 2);
        assert!(rows("42").is_err());
        let err = rows("Get-MpThreat : Access denied").unwrap_err();
        assert!(err.contains("Access denied"), "{err}");
    }

    #[test]
    fn scripts_are_fixed_and_values_travel_outside_the_text() {
        assert_eq!(
            COMPUTER_STATUS,
            "$ErrorActionPreference='Stop'; [Console]::OutputEncoding=[Text.Encoding]::UTF8; \
             Get-MpComputerStatus | Select-Object * -ExcludeProperty Cim*,PSComputerName | \
             ConvertTo-Json -Depth 4 -Compress"
        );
        let s = write_script(WriteOp::Add, "ExclusionPath");
        assert!(
            s.ends_with("Add-MpPreference -ExclusionPath $env:ARMADITO_VALUE"),
            "{s}"
        );
        assert_eq!(
            args("x"),
            ["-NoProfile", "-NonInteractive", "-Command", "x"]
        );
    }

    #[test]
    fn properties() {
        let r = json!({"S":"x","N":5,"B":true,"A":["p","q"],"Z":null});
        assert_eq!(text(&r, "N").as_deref(), Some("5"));
        assert_eq!(text(&r, "Z"), None);
        assert_eq!(strings(&r, "A"), ["p", "q"]);
        assert_eq!(strings(&r, "S"), ["x"]);
        assert!(strings(&r, "Z").is_empty());
    }
}
