//! The unified backend model: the typed payloads that travel, as JSON strings, through the
//! frozen plugin vtable (and, in process isolation, through the plugin-host pipe).
//!
//! Invariants:
//! * Every type here is defined once and shared by the agent and every backend (ClamAV,
//!   Armadito AV, Windows Defender), so all of them speak one model.
//! * Forward compatibility is by JSON, not by vtable: new optional fields may be added at any
//!   time. Every struct therefore derives `Default` and carries `#[serde(default)]`, so an
//!   older peer that omits a field, or a newer peer that sends an unknown one, still parses.
//!   Unknown enum strings fall back to an `Unknown`/`Other` variant instead of failing.
//! * Renaming or removing a field, or changing its meaning, is a breaking change: it needs a
//!   new interface major version ([`crate::INTERFACE_VERSION`]).
//! * Times are unix seconds (`i64`, UTC). Paths are UTF-8 strings (lossy on exotic names), so
//!   they serialize the same way on every OS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Metadata and capabilities
// ---------------------------------------------------------------------------------------------

/// What a backend can do. Returned as JSON by the plugin metadata so the agent can decide what
/// to ask for (and what to report to GLPI) without calling into the plugin and getting
/// `NotSupported` errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// `state()` returns meaningful data.
    pub state: bool,
    /// `scan()` works.
    pub scan: bool,
    /// `scan()` reports progress events while it runs (otherwise only a final result).
    pub scan_progress: bool,
    /// `scan()` honours a cancel request (the progress sink returning `false`).
    pub scan_cancel: bool,
    /// `scan()` can return per-file results (`ScanResult::files`), not only detections.
    pub scan_per_file: bool,
    /// `alerts()` returns detection history.
    pub alerts: bool,
    /// `config_get()` works.
    pub config_get: bool,
    /// `config_set()` works.
    pub config_set: bool,
    /// Names of the extra methods accepted by `invoke()`.
    pub invoke_methods: Vec<String>,
    /// Operating systems the backend supports (`std::env::consts::OS` values); empty = any.
    pub platforms: Vec<String>,
}

/// Plugin identity, as shown by `armadito-agent plugins`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginMetadata {
    /// Backend name (`clamav`, `armadito`, `defender`): the identity of a plugin; file names
    /// differ by OS and are never used to identify it.
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    /// The interface version the plugin was built against (semver, see
    /// [`crate::INTERFACE_VERSION`]).
    pub interface_version: String,
    /// One line for humans.
    pub description: String,
    pub capabilities: Capabilities,
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// Signature database freshness; the strings are the ones GLPI's Armadito plugin stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateStatus {
    UpToDate,
    Late,
    Critical,
    /// Unknown, not applicable, or a value this build does not know.
    #[default]
    #[serde(other)]
    NonAvailable,
}

/// Whether the AV service/daemon is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceStatus {
    Running,
    Stopped,
    NotInstalled,
    #[default]
    #[serde(other)]
    Unknown,
}

/// A tri-state switch (real-time / on-access protection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnOff {
    On,
    Off,
    #[default]
    #[serde(other)]
    Unknown,
}

/// One engine module or signature base (GLPI `dbinfo.modules[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModuleInfo {
    pub name: String,
    pub status: UpdateStatus,
    /// Last update of this module, unix seconds.
    pub update_time: Option<i64>,
    pub version: Option<String>,
}

/// A free-form `attr = value` pair (GLPI `avdetails[]`); `value` should be a JSON scalar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Detail {
    pub attr: String,
    pub value: Value,
}

impl Detail {
    pub fn new(attr: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            attr: attr.into(),
            value: value.into(),
        }
    }
}

/// The answer of `state()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendState {
    /// Product name as the vendor spells it (`ClamAV`, `Armadito AV`, `Windows Defender`).
    pub product_name: String,
    pub product_version: String,
    pub service_status: ServiceStatus,
    /// Global signature status (GLPI `dbinfo.global_status`).
    pub update_status: UpdateStatus,
    /// Last global signature update, unix seconds (GLPI `dbinfo.global_update_timestamp`).
    pub last_update: Option<i64>,
    pub modules: Vec<ModuleInfo>,
    /// Real-time / on-access protection.
    pub realtime: OnOff,
    /// Anything else worth reporting (engine version, tamper protection, ...).
    pub details: Vec<Detail>,
}

// ---------------------------------------------------------------------------------------------
// Scan
// ---------------------------------------------------------------------------------------------

/// Kind of scan. Most backends only know `Custom` (scan `paths`); Defender also has quick/full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanKind {
    /// Unknown kinds are rejected (not mapped to `Custom`): guessing the scope of a scan is
    /// worse than failing it.
    #[default]
    Custom,
    Quick,
    Full,
}

/// The argument of `scan()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanRequest {
    pub kind: ScanKind,
    /// Files or folders to scan (absolute paths).
    pub paths: Vec<String>,
    /// Descend into folders (default true).
    pub recursive: bool,
    /// Follow symbolic links while walking (default false).
    pub follow_symlinks: bool,
    /// Skip (and count as skipped, not as error) files bigger than this many bytes.
    pub max_file_size: Option<u64>,
    /// Ask for `ScanResult::files` (one entry per file, clean ones included). Detections are
    /// always returned.
    pub per_file_results: bool,
    /// Let the backend act on detections (quarantine/remove) when it can; default false =
    /// report only.
    pub remediate: bool,
    /// GLPI job id, for logs and correlation only.
    pub job_id: Option<String>,
    /// Backend-specific options (e.g. `{"threads": 4}`), passed through untouched.
    pub options: BTreeMap<String, Value>,
}

impl Default for ScanRequest {
    fn default() -> Self {
        Self {
            kind: ScanKind::Custom,
            paths: Vec::new(),
            recursive: true,
            follow_symlinks: false,
            max_file_size: None,
            per_file_results: false,
            remediate: false,
            job_id: None,
            options: BTreeMap::new(),
        }
    }
}

/// A progress event, sent through the progress sink while `scan()` runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanProgress {
    pub files_scanned: u64,
    pub files_total_estimate: Option<u64>,
    pub malware: u64,
    pub suspicious: u64,
    pub errors: u64,
    pub current_path: Option<String>,
    /// 0–100 when known.
    pub percent: Option<u8>,
    /// Detections found since the previous progress event (lets the agent stream alerts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_detections: Vec<Detection>,
}

/// Verdict for one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileStatus {
    Clean,
    Malware,
    Suspicious,
    /// Skipped on purpose (too big, excluded, unknown type, white-listed).
    Ignored,
    Error,
    #[default]
    #[serde(other)]
    Unknown,
}

/// One file's result (`ScanResult::files`, only when `ScanRequest::per_file_results`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileResult {
    pub path: String,
    pub status: FileStatus,
    /// Threat name for malware/suspicious files.
    pub threat_name: Option<String>,
    /// Error text for `Error`, reason for `Ignored`.
    pub message: Option<String>,
}

/// The answer of `scan()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanResult {
    pub scanned: u64,
    pub malware: u64,
    pub suspicious: u64,
    /// Files the backend cleaned/quarantined/removed.
    pub cleaned: u64,
    pub errors: u64,
    /// Unix seconds.
    pub start_time: i64,
    /// Unix seconds.
    pub end_time: i64,
    /// Wall-clock duration in seconds (sub-second precision).
    pub duration_secs: f64,
    /// True when the scan stopped early because of a cancel request; counts are partial.
    pub cancelled: bool,
    pub detections: Vec<Detection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileResult>,
    /// Files skipped on purpose (too big, excluded, unknown type, white-listed): neither
    /// scanned nor errors. Optional (added within interface 1): 0 from plugins that do not
    /// count them, and omitted from the JSON when 0 so older agents see the same payload.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// Set when the scan ended early for a reason other than a cancel request (the AV daemon
    /// died, the connection dropped mid-scan): the counts and detections are what was seen
    /// before, and the text says what happened. The agent reports them as partial results
    /// and fails the job with this text. Optional (added within interface 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

// ---------------------------------------------------------------------------------------------
// Detections / alerts
// ---------------------------------------------------------------------------------------------

/// What the backend did about a detection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectionAction {
    /// Reported only.
    None,
    /// Reported and alerted (Armadito `alert`).
    Alert,
    Quarantined,
    Removed,
    Cleaned,
    Blocked,
    Allowed,
    /// The backend tried to act and failed.
    Failed,
    #[default]
    #[serde(other)]
    Unknown,
}

/// One detection (GLPI alert).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Detection {
    /// Stable, backend-unique id of this detection; also usable as an alerts cursor position.
    pub id: String,
    pub threat_name: String,
    pub file_path: String,
    pub action: DetectionAction,
    /// Unix seconds.
    pub detection_time: i64,
    /// Engine module that detected it (Armadito `module_name`), if any.
    pub module_name: Option<String>,
    /// Context for humans (`real-time`, `on-demand`, Defender source, ...).
    pub info: Option<String>,
}

/// The argument of `alerts()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertsQuery {
    /// Opaque cursor from a previous [`AlertsPage::next_cursor`]; `None` = from the start of
    /// the history the backend keeps (or `since`, if set).
    pub cursor: Option<String>,
    /// Only detections at or after this unix time (used when there is no cursor yet).
    pub since: Option<i64>,
    /// Maximum number of detections to return; `None` = backend default.
    pub limit: Option<u32>,
}

/// The answer of `alerts()`: detections after the cursor, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertsPage {
    pub detections: Vec<Detection>,
    /// Cursor to pass next time. Opaque to the agent, stored as is.
    pub next_cursor: Option<String>,
    /// True when more detections are immediately available (call again with `next_cursor`).
    pub more: bool,
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// One configuration entry (GLPI `avconfigs` `{attr, value}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigEntry {
    /// Backend-defined key, e.g. `MaxFileSize` (ClamAV), `on-demand:max-size` (Armadito),
    /// `DisableRealtimeMonitoring` (Defender).
    pub attr: String,
    /// A JSON scalar (string, number, bool) or null; repeated keys are arrays.
    pub value: Value,
    /// Set by `config_get` when the entry cannot be changed locally (policy-managed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl ConfigEntry {
    pub fn new(attr: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            attr: attr.into(),
            value: value.into(),
            read_only: false,
        }
    }
}

/// One entry `config_set` refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigRejection {
    pub attr: String,
    pub reason: String,
}

/// The answer of `config_set()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigApplyReport {
    /// Attributes written.
    pub applied: Vec<String>,
    /// Attributes already at the requested value.
    pub unchanged: Vec<String>,
    pub rejected: Vec<ConfigRejection>,
    /// The AV must be restarted for `applied` to take effect and the backend did not do it.
    pub restart_required: bool,
    /// The backend restarted the AV service itself.
    pub restarted: bool,
    /// Old → new value of every attribute in `applied`. Optional (added within interface 1):
    /// empty from plugins that do not report it, and omitted from the JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ConfigChange>,
}

/// One applied change of `config_set` (`ConfigApplyReport::changes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigChange {
    pub attr: String,
    /// The value before; `None` when the attribute was not set.
    pub old: Option<Value>,
    pub new: Value,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Category of a backend error, so the agent can react (retry later, report unsupported...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The backend does not implement this call (see `Capabilities`).
    NotSupported,
    /// Bad request payload or argument.
    InvalidArgument,
    /// The AV product is missing, stopped or unreachable.
    Unavailable,
    /// The call was cancelled on request.
    Cancelled,
    /// The plugin panicked; it was caught at the boundary.
    Panicked,
    /// A timeout inside the backend.
    Timeout,
    #[default]
    #[serde(other)]
    Internal,
}

/// The error payload a plugin returns: carried as JSON in the `RErr` of every entry point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn not_supported(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::NotSupported, format!("{what} is not supported"))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "internal".into());
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<serde_json::Error> for PluginError {
    fn from(e: serde_json::Error) -> Self {
        Self::invalid(format!("bad JSON payload: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_strings_fall_back() {
        let s: UpdateStatus = serde_json::from_str("\"weird\"").unwrap();
        assert_eq!(s, UpdateStatus::NonAvailable);
        let s: UpdateStatus = serde_json::from_str("\"up-to-date\"").unwrap();
        assert_eq!(s, UpdateStatus::UpToDate);
        let k: ErrorKind = serde_json::from_str("\"from-the-future\"").unwrap();
        assert_eq!(k, ErrorKind::Internal);
    }

    #[test]
    fn missing_and_unknown_fields_are_tolerated() {
        let r: ScanRequest = serde_json::from_str(r#"{"paths":["/tmp"],"new_field":1}"#).unwrap();
        assert!(r.recursive, "default must be recursive");
        assert_eq!(r.paths, vec!["/tmp".to_string()]);
        let s: BackendState = serde_json::from_str("{}").unwrap();
        assert_eq!(s.realtime, OnOff::Unknown);
    }

    #[test]
    fn error_display() {
        assert_eq!(
            PluginError::not_supported("scan").to_string(),
            "not-supported: scan is not supported"
        );
    }
}
