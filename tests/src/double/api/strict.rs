//! Strict mode: things the real plugin accepts only by accident and that a
//! correct agent never sends (recorded as violations, never refused).

use serde_json::Value;

use super::Endpoint;
use super::common::{at, strict_uuid};
use crate::double::php::Ctx;

/// An integer sent as JSON number or canonical decimal string.
pub fn is_clean_int(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64(),
        Value::String(s) => {
            let t = s.strip_prefix('-').unwrap_or(s);
            t == "0"
                || (!t.is_empty()
                    && !t.starts_with('0')
                    && t.bytes().all(|c| c.is_ascii_digit())
                    && t.len() < 19)
        }
        _ => false,
    }
}

/// Checks of the common envelope (§1.4, Appendix A, Addendum 5).
pub fn envelope(ctx: &mut Ctx, label: &str, ep: Endpoint, j: &Value) {
    if !ctx.strict {
        return;
    }
    if !j.is_object() {
        ctx.violation(format!("{label}: top-level JSON is not an object"));
        return;
    }
    let agent_id = at(j, &["agent_id"]);
    if !is_clean_int(agent_id) {
        ctx.violation(format!(
            "{label}: agent_id must be an integer, got {agent_id}"
        ));
    } else if ep != Endpoint::Agents {
        let n = agent_id
            .as_i64()
            .or_else(|| agent_id.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        if n <= 0 {
            ctx.violation(format!("{label}: agent_id {n} means \"not enrolled\""));
        }
    }
    match at(j, &["agent_version"]) {
        Value::String(s) if !s.is_empty() => {}
        other => ctx.violation(format!(
            "{label}: agent_version missing or not a string ({other})"
        )),
    }
    let uuid = at(j, &["uuid"]);
    if !strict_uuid(uuid) {
        ctx.violation(format!(
            "{label}: uuid must match ^[A-Z0-9]{{8}}-…-[A-Z0-9]{{12}}$ exactly, got {uuid}"
        ));
    }
    if !at(j, &["task"]).is_object() {
        ctx.violation(format!("{label}: task object missing"));
    }
    if ep == Endpoint::Agents {
        for (path, what) in [
            (&["task", "antivirus", "name"][..], "task.antivirus.name"),
            (
                &["task", "antivirus", "version"][..],
                "task.antivirus.version",
            ),
            (
                &["task", "antivirus", "os_info", "name"][..],
                "task.antivirus.os_info.name",
            ),
        ] {
            match at(j, path) {
                Value::String(s) if !s.is_empty() => {}
                other => ctx.violation(format!("{label}: {what} missing or not a string ({other}); it is part of the antivirus identity")),
            }
        }
    }
}
