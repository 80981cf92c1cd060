//! `task.obj` payloads of every POST, and the enrollment reply (server-api.md §3).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::types::{EnrollmentKey, ScanDuration, UnixTime, WireError};

/// `{attr, value}`: the EAV entries of avconfigs, states' avdetails and schedulers' confdetails.
/// `value` is a JSON scalar (string, number or bool); the server stores it as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrValue {
    pub attr: String,
    pub value: serde_json::Value,
}

impl AttrValue {
    pub fn new(attr: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Self {
            attr: attr.into(),
            value: value.into(),
        }
    }
}

/// POST api/agents `task.obj`.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollmentRequest {
    pub key: EnrollmentKey,
}

/// POST api/agents reply: `{"agent_id": N,"scheduler_id": M}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentReply {
    pub agent_id: i64,
    pub scheduler_id: i64,
}

/// Parses the enrollment reply. The server may echo PHP-notice HTML before the JSON in a 200
/// (server-api.md Addendum 5), so parsing starts at the first `{`. `agent_id` must be a positive
/// integer: 0 or a missing id would leave the agent believing it is enrolled when it is not.
pub fn parse_enrollment_reply(body: &str) -> Result<EnrollmentReply, WireError> {
    let v = json_object(body)?;
    let agent_id = match v.get("agent_id").and_then(int_like) {
        Some(id) if id > 0 => id,
        Some(id) => {
            return Err(WireError::Reply(format!(
                "agent_id is {id}, expected a positive id"
            )));
        }
        None => {
            return Err(WireError::Reply(
                "no agent_id in the enrollment reply".into(),
            ));
        }
    };
    let scheduler_id = v.get("scheduler_id").and_then(int_like).unwrap_or(0);
    Ok(EnrollmentReply {
        agent_id,
        scheduler_id,
    })
}

/// A JSON object from a reply body that may carry noise (HTML notices) before the first `{`.
pub(crate) fn json_object(body: &str) -> Result<serde_json::Value, WireError> {
    let start = body.find('{').ok_or_else(|| {
        WireError::Reply(format!("expected a JSON object, got {}", excerpt(body)))
    })?;
    let v: serde_json::Value = serde_json::from_str(&body[start..])
        .map_err(|e| WireError::Reply(format!("invalid JSON ({e}) in {}", excerpt(body))))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(WireError::Reply("the reply is not a JSON object".into()))
    }
}

/// A short, single-line view of a body for error messages.
pub(crate) fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "an empty body".into();
    }
    let mut s: String = one_line.chars().take(120).collect();
    if one_line.chars().count() > 120 {
        s.push('…');
    }
    format!("{s:?}")
}

/// PHP `validateInt`-like reading: a JSON integer or a decimal string ("2"), nothing else.
pub(crate) fn int_like(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || (t.len() > 1 && t.starts_with('0')) {
                None
            } else {
                t.parse().ok()
            }
        }
        _ => None,
    }
}

/// POST api/jobs `task.obj`: one job's final status (server-api.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub code: i32,
    pub message: String,
    pub job_id: i64,
    pub start_time: i64,
    pub end_time: i64,
}

impl JobStatus {
    /// The server stores `message` in a varchar(255) and the UI base64-decodes it: keep the base64
    /// within 252 characters (a multiple of 4) so a truncated value never corrupts the decoding.
    pub const MAX_ERROR_BYTES: usize = 189;
    pub const SUCCESS_MESSAGE: &'static str = "runJob successful";

    pub fn success(job_id: i64, start: UnixTime, end: UnixTime) -> Self {
        Self {
            code: 0,
            message: Self::SUCCESS_MESSAGE.into(),
            job_id,
            start_time: start.secs(),
            end_time: end.secs(),
        }
    }

    /// `error` is shown to the GLPI admin: one line, no backtrace, cut on a char boundary.
    pub fn failure(job_id: i64, error: &str, start: UnixTime, end: UnixTime) -> Self {
        let one_line = error.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = truncate_utf8(&one_line, Self::MAX_ERROR_BYTES);
        Self {
            code: 1,
            message: base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
            job_id,
            start_time: start.secs(),
            end_time: end.secs(),
        }
    }
}

/// At most `max` bytes of `s`, ending with `…` when cut, never splitting a character.
fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = "…";
    let mut end = max - ellipsis.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

/// POST api/scans `task.obj` (§3.4). Every field is always sent: each POST overwrites all
/// seven columns of the scan row, so a progress update that omitted a count would erase it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub job_id: i64,
    pub progress: u8,
    pub scanned_count: u64,
    pub malware_count: u64,
    pub suspicious_count: u64,
    pub cleaned_count: u64,
    pub duration: String,
    /// `@<unix>`: run through `strtotime()` by the server.
    pub start_time: String,
    /// `YYYY-MM-DD HH:MM:SS` UTC: stored raw by the server.
    pub end_time: String,
}

impl ScanReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        job_id: i64,
        progress: u8,
        scanned: u64,
        malware: u64,
        suspicious: u64,
        cleaned: u64,
        start: UnixTime,
        end: UnixTime,
    ) -> Self {
        let secs = u64::try_from(end.secs() - start.secs()).unwrap_or(0);
        Self {
            job_id,
            progress: progress.min(100),
            scanned_count: scanned,
            malware_count: malware,
            suspicious_count: suspicious,
            cleaned_count: cleaned,
            duration: ScanDuration(secs).to_string(),
            start_time: start.strtotime_form(),
            end_time: end.mysql_datetime_utc(),
        }
    }
}

/// One antivirus module's update state (`dbinfo.modules[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleState {
    pub name: String,
    pub mod_status: String,
    pub mod_update_timestamp: i64,
}

/// `dbinfo` of a state report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbInfo {
    pub global_status: String,
    /// Must be a 10-digit unix time (missing or 0 makes the server answer 500).
    pub global_update_timestamp: UnixTime,
    pub service_status: String,
    pub modules: Vec<ModuleState>,
}

/// POST api/states `task.obj` (§3.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateReport {
    pub dbinfo: DbInfo,
    pub avdetails: Vec<AttrValue>,
}

/// One detection in POST api/alerts (§3.6). Every field is sent: a missing one makes PHP echo a
/// notice into the reply, and `detection_time` must be a 10-digit unix time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireAlert {
    pub name: String,
    pub filepath: String,
    pub action: String,
    pub detection_time: UnixTime,
    pub module_name: String,
    pub info: String,
}

/// POST api/alerts `task.obj`. `job_id` links the alerts to a scan job; the server uses the
/// top-level one for every alert. Never send an empty `alerts` array (PHP notice in the reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertsReport {
    pub alerts: Vec<WireAlert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
}

/// POST api/schedulers `task.obj` (§3.8).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulerReport {
    pub name: String,
    pub confdetails: Vec<AttrValue>,
}

/// A server-defined configuration from `GET api/avconfigs/?agent_id=N`: `[{attr, value}]`.
/// (The shipped plugin answers 400 there; the caller maps that to "nothing defined".)
pub fn parse_server_config(body: &str) -> Result<Vec<AttrValue>, WireError> {
    let start = body
        .find('[')
        .ok_or_else(|| WireError::Reply(format!("expected a JSON array, got {}", excerpt(body))))?;
    serde_json::from_str(&body[start..]).map_err(|e| {
        WireError::Reply(format!(
            "invalid configuration list ({e}) in {}",
            excerpt(body)
        ))
    })
}

/// A server-defined schedule from `GET api/schedulers/?agent_id=N`: `{name, confdetails}`.
pub fn parse_server_schedule(body: &str) -> Result<(String, Vec<AttrValue>), WireError> {
    let v = json_object(body)?;
    let name = v
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    let details = match v.get("confdetails") {
        Some(d) => serde_json::from_value(d.clone())
            .map_err(|e| WireError::Reply(format!("invalid confdetails ({e})")))?,
        None => Vec::new(),
    };
    Ok((name, details))
}
