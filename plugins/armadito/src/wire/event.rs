//! Armadito AV events, from both generations, into one typed [`Event`].
//!
//! Gen 3 (JSON-RPC `notify_event` params, `armadito-scan --json` chunks):
//! `{"timestamp":N,"type":"EVENT_…","u":{"ev_…":{…}}}` with enums as C names.
//! Gen 1 (REST `/api/event`): `{"event_type":"DetectionEvent",…}` with pretty strings.
//!
//! Invariants: no I/O; unknown event types become [`Event::Other`] (skipped by callers, never
//! an error); missing numbers read as 0, missing strings as empty.

use serde_json::Value;

use super::info::{AvInfo, parse_info_gen1};

/// A file verdict (`scan_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Malware,
    Suspicious,
    Clean,
    /// Unknown type, white listed: skipped on purpose.
    Ignored,
    Error,
    Other,
}

impl Verdict {
    pub fn parse(s: &str) -> Verdict {
        match s {
            "A6O_FILE_MALWARE" | "malware" => Verdict::Malware,
            "A6O_FILE_SUSPICIOUS" | "suspicious" => Verdict::Suspicious,
            "A6O_FILE_CLEAN" | "clean" => Verdict::Clean,
            "A6O_FILE_UNKNOWN_TYPE" | "A6O_FILE_WHITE_LISTED" | "ignored" | "white listed" => {
                Verdict::Ignored
            }
            "A6O_FILE_EINVAL" | "A6O_FILE_IERROR" | "invalid argument" | "internal error" => {
                Verdict::Error
            }
            _ => Verdict::Other,
        }
    }
}

/// `scan_action`, normalised to the model's action.
pub fn action(s: &str) -> armadito_plugin_api::DetectionAction {
    use armadito_plugin_api::DetectionAction as A;
    match s {
        "A6O_ACTION_NONE" | "none" => A::None,
        "A6O_ACTION_ALERT" | "alert" => A::Alert,
        "A6O_ACTION_QUARANTINE" | "alert+quarantine" => A::Quarantined,
        "A6O_ACTION_REMOVE" | "alert+removed" => A::Removed,
        _ => A::Unknown,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectionEv {
    /// Unix seconds (Gen 3 `timestamp`; Gen 1 has only a placeholder, so 0).
    pub timestamp: i64,
    pub scan_id: Option<i64>,
    /// `real-time` or `on-demand`.
    pub context: String,
    pub path: String,
    pub verdict: Verdict,
    pub action: String,
    pub module_name: Option<String>,
    pub module_report: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgressEv {
    pub scan_id: Option<i64>,
    /// 0–100, or -1 when unknown.
    pub progress: i64,
    pub path: String,
    pub malware: u64,
    pub suspicious: u64,
    pub scanned: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompletedEv {
    pub scan_id: Option<i64>,
    pub cancelled: bool,
    /// `None` when the daemon did not send it (`-n/--no-summary`, old versions).
    pub malware: Option<u64>,
    pub suspicious: Option<u64>,
    pub scanned: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Detection(DetectionEv),
    Progress(ProgressEv),
    Completed(CompletedEv),
    /// Gen 1 `StatusEvent`.
    Status(AvInfo),
    /// Any other or unknown type (start, quarantine, real-time protection, update, …).
    Other(String),
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
fn opt_s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}
fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}
fn opt_n(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}
fn i(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn context(c: &str) -> String {
    match c {
        "CONTEXT_REAL_TIME" | "real-time" => "real-time".into(),
        "CONTEXT_ON_DEMAND" | "on-demand" => "on-demand".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// A Gen 3 `a6o_event` object.
pub fn parse_gen3(ev: &Value) -> Event {
    let ty = s(ev, "type");
    let u = ev.get("u").cloned().unwrap_or(Value::Null);
    let timestamp = i(ev, "timestamp").unwrap_or(0);
    match ty.as_str() {
        "EVENT_DETECTION" => {
            let d = &u["ev_detection"];
            Event::Detection(DetectionEv {
                timestamp,
                scan_id: i(d, "scan_id"),
                context: context(&s(d, "context")),
                path: s(d, "path"),
                verdict: Verdict::parse(&s(d, "scan_status")),
                action: s(d, "scan_action"),
                module_name: opt_s(d, "module_name"),
                module_report: opt_s(d, "module_report"),
            })
        }
        "EVENT_ON_DEMAND_PROGRESS" => {
            let p = &u["ev_on_demand_progress"];
            Event::Progress(ProgressEv {
                scan_id: i(p, "scan_id"),
                progress: i(p, "progress").unwrap_or(-1),
                path: s(p, "path"),
                malware: n(p, "malware_count"),
                suspicious: n(p, "suspicious_count"),
                scanned: n(p, "scanned_count"),
            })
        }
        "EVENT_ON_DEMAND_COMPLETED" => {
            let c = &u["ev_on_demand_completed"];
            Event::Completed(CompletedEv {
                scan_id: i(c, "scan_id"),
                cancelled: i(c, "cancelled").unwrap_or(0) != 0,
                malware: opt_n(c, "total_malware_count"),
                suspicious: opt_n(c, "total_suspicious_count"),
                scanned: opt_n(c, "total_scanned_count"),
            })
        }
        other => Event::Other(other.to_string()),
    }
}

/// A Gen 1 REST event object.
pub fn parse_gen1(ev: &Value) -> Event {
    match s(ev, "event_type").as_str() {
        "DetectionEvent" => Event::Detection(DetectionEv {
            // `detection_time` is a hard-coded placeholder in the daemon: the caller stamps it
            timestamp: 0,
            scan_id: None,
            context: context(&s(ev, "context")),
            path: s(ev, "path"),
            verdict: Verdict::parse(&s(ev, "scan_status")),
            action: s(ev, "scan_action"),
            module_name: opt_s(ev, "module_name"),
            module_report: opt_s(ev, "module_report"),
        }),
        "OnDemandProgressEvent" => Event::Progress(ProgressEv {
            scan_id: None,
            progress: i(ev, "progress").unwrap_or(-1),
            path: s(ev, "path"),
            malware: n(ev, "malware_count"),
            suspicious: n(ev, "suspicious_count"),
            scanned: n(ev, "scanned_count"),
        }),
        "OnDemandCompletedEvent" => Event::Completed(CompletedEv {
            scan_id: None,
            cancelled: false,
            malware: opt_n(ev, "total_malware_count"),
            suspicious: opt_n(ev, "total_suspicious_count"),
            scanned: opt_n(ev, "total_scanned_count"),
        }),
        "StatusEvent" => Event::Status(parse_info_gen1(ev)),
        other => Event::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_agent_scan_fixture() {
        // reference-agent.md §7.1 (t/tests/Agent/Antivirus/Armadito/Task/Scan.t)
        let d = parse_gen3(
            &json!({"timestamp":1488207696,"type":"EVENT_DETECTION","u":{"ev_detection":{"scan_action":"A6O_ACTION_NONE",
            "context":"CONTEXT_ON_DEMAND","module_name":"clamav","path":"/home/x/35d2","scan_status":"A6O_FILE_MALWARE",
            "module_report":"Pdf.Exploit.Dropped-94"}}}),
        );
        let Event::Detection(d) = d else {
            panic!("{d:?}")
        };
        assert_eq!(d.timestamp, 1488207696);
        assert_eq!(d.verdict, Verdict::Malware);
        assert_eq!(d.context, "on-demand");
        assert_eq!(d.module_report.as_deref(), Some("Pdf.Exploit.Dropped-94"));
        assert_eq!(
            action(&d.action),
            armadito_plugin_api::DetectionAction::None
        );
        let c = parse_gen3(
            &json!({"timestamp":1488207696,"type":"EVENT_ON_DEMAND_COMPLETED","u":{"ev_on_demand_completed":
            {"total_malware_count":24,"total_suspicious_count":0,"total_scanned_count":50}}}),
        );
        assert_eq!(
            c,
            Event::Completed(CompletedEv {
                scan_id: None,
                cancelled: false,
                malware: Some(24),
                suspicious: Some(0),
                scanned: Some(50)
            })
        );
    }

    #[test]
    fn unknown_and_malformed_events_are_other() {
        assert_eq!(
            parse_gen3(&json!({"type":"EVENT_FROM_THE_FUTURE","u":{}})),
            Event::Other("EVENT_FROM_THE_FUTURE".into())
        );
        assert_eq!(parse_gen3(&json!([1, 2])), Event::Other(String::new()));
        assert_eq!(
            parse_gen1(&json!({"event_type":"PingEvent"})),
            Event::Other("PingEvent".into())
        );
        // a detection without its body still parses, with empty fields
        let Event::Detection(d) = parse_gen3(&json!({"type":"EVENT_DETECTION"})) else {
            panic!()
        };
        assert_eq!(d.verdict, Verdict::Other);
    }

    #[test]
    fn gen1_events() {
        let Event::Progress(p) =
            parse_gen1(&json!({"event_type":"OnDemandProgressEvent","progress":42,
            "path":"/home/u/x","malware_count":1,"suspicious_count":0,"scanned_count":10}))
        else {
            panic!()
        };
        assert_eq!((p.progress, p.scanned, p.malware), (42, 10, 1));
        let Event::Detection(d) = parse_gen1(
            &json!({"event_type":"DetectionEvent","detection_time":"1970-01-01T00:00:00Z",
            "context":"on-demand","path":"/home/u/eicar.com","scan_status":"malware","scan_action":"alert+quarantine",
            "module_name":"clamav","module_report":"Eicar-Test-Signature"}),
        ) else {
            panic!()
        };
        assert_eq!(d.timestamp, 0, "the placeholder time is not used");
        assert_eq!(
            action(&d.action),
            armadito_plugin_api::DetectionAction::Quarantined
        );
    }
}
