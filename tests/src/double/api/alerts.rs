//! `POST api/alerts/` — detections (§3.6), with the plugin's checksum-based
//! deduplication.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Settings;
use super::common::{at, foreach, set_agent_from_json};
use crate::double::db::{AlertRow, Db};
use crate::double::php::{
    Ctx, Failure, Notice, Pv, intval, loose_eq, to_php_string, truncate_chars,
};
use crate::double::validate::{Kind, format_date, set_value_or_default};

const FILE: &str = "inc/alert.class.php";

/// `computeChecksum()`: sha256 of `name;filepath;local time;agent_id;av_id;`.
pub fn checksum(
    threat_name: &str,
    filepath: &str,
    detection_time_local: &str,
    agent_id: &str,
    antivirus_id: i64,
) -> String {
    let input =
        format!("{threat_name};{filepath};{detection_time_local};{agent_id};{antivirus_id};");
    let digest = Sha256::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn post(ctx: &mut Ctx, db: &mut Db, settings: &Settings, j: &Value) -> Result<String, Failure> {
    let quirks = settings.quirks;
    let obj = at(j, &["task", "obj"]);
    // 1. top-level job_id (raw), 0 when absent.
    let top_job = match obj.get("job_id") {
        Some(v) if !v.is_null() => Some(v.clone()),
        _ => None,
    };
    let alerts_v = at(obj, &["alerts"]);
    if ctx.strict {
        match alerts_v {
            Value::Array(a) if a.is_empty() => {
                ctx.violation("empty alerts array (PHP notice in a 200 body); send nothing instead")
            }
            Value::Array(_) => {}
            other => ctx.violation(format!("task.obj.alerts must be an array, got {other}")),
        }
        if let Some(v) = &top_job
            && !v.is_i64()
        {
            ctx.violation(format!("task.obj.job_id must be a JSON integer, got {v}"));
        }
    }
    let items: Vec<Value> = if alerts_v.is_null() {
        ctx.notice(Notice::e_notice(
            "Undefined property: stdClass::$alerts",
            FILE,
            96,
        ));
        foreach(ctx, &Value::Null, FILE, 98)
            .into_iter()
            .cloned()
            .collect()
    } else {
        foreach(ctx, alerts_v, FILE, 98)
            .into_iter()
            .cloned()
            .collect()
    };

    let mut last_detection: Option<(i64, String)> = None;
    for alert in &items {
        // 2. per alert: identity check, fields, checksum, scan id.
        let (agent_id, agent) = set_agent_from_json(ctx, db, j)?;
        let av = agent.plugin_armadito_antiviruses_id;
        if ctx.strict {
            strict_alert(ctx, alert, top_job.as_ref());
        }
        let field = |ctx: &mut Ctx, label: &str, line: u32| -> Result<String, Failure> {
            let v = set_value_or_default(ctx, alert, label, Kind::Str);
            to_php_string(ctx, &v, FILE, line)
        };
        let name = field(ctx, "name", 120)?;
        let filepath = field(ctx, "filepath", 121)?;
        let action = field(ctx, "action", 122)?;
        let info = field(ctx, "info", 123)?;
        let module_name = field(ctx, "module_name", 124)?;
        let dt = set_value_or_default(ctx, alert, "detection_time", Kind::Timestamp);
        let detection_time = format_date(ctx, &dt)?;
        let sum = checksum(&name, &filepath, &detection_time, &agent_id.concat(), av);

        let job_v = match (&top_job, quirks.alert_job_id_override) {
            (Some(v), _) => v.clone(),
            (None, true) => Value::from(0),
            (None, false) => match alert.get("job_id") {
                Some(v) if !v.is_null() => v.clone(),
                _ => Value::from(0),
            },
        };
        let job_positive =
            !loose_eq(&Pv::of(&job_v), &Pv::Int(0)) && intval(&job_v).unwrap_or(0) > 0;
        let scan_id: Option<i64> = if job_positive {
            let jid = intval(&job_v).unwrap_or(0);
            db.scans
                .iter()
                .find(|s| s.plugin_armadito_jobs_id == jid)
                .map(|s| s.id)
        } else {
            Some(0)
        };

        last_detection = Some((agent_id.sql(), detection_time.clone()));
        // 3. global dedup by checksum (case-insensitive collation).
        if db
            .alerts
            .iter()
            .any(|a| a.checksum.eq_ignore_ascii_case(&sum))
        {
            continue;
        }
        let scan_id = match scan_id {
            Some(id) => id,
            None if quirks.null_scan_id_alert_fails => {
                return Err(Failure::exc(
                    "executeQuery NewAlert failed. Column 'plugin_armadito_scans_id' cannot be null",
                ));
            }
            None => 0,
        };
        let id = db.alloc("alerts");
        db.alerts.push(AlertRow {
            id,
            plugin_armadito_agents_id: agent_id.sql(),
            plugin_armadito_antiviruses_id: av,
            plugin_armadito_jobs_id: intval(&job_v).unwrap_or(0),
            plugin_armadito_scans_id: scan_id,
            threat_name: truncate_chars(&name, 255),
            filepath: truncate_chars(&filepath, 255),
            module_name: truncate_chars(&module_name, 255),
            info,
            action: truncate_chars(&action, 255),
            detection_time,
            checksum: sum,
            is_deleted: false,
        });
    }

    // 4. last_alert = detection time of the LAST alert of the array.
    match last_detection {
        Some((agent_id, when)) => {
            if let Some(a) = db.agent_mut(agent_id) {
                a.last_alert = Some(when);
            }
        }
        None => {
            if quirks.empty_alerts_notice {
                ctx.notice(Notice::e_notice("Undefined variable: alert", FILE, 142));
            }
        }
    }
    Ok(String::new())
}

fn strict_alert(ctx: &mut Ctx, alert: &Value, top_job: Option<&Value>) {
    if !alert.is_object() {
        ctx.violation(format!("alert is not an object: {alert}"));
        return;
    }
    match at(alert, &["detection_time"]) {
        Value::Number(n) if n.is_i64() => {}
        other => ctx.violation(format!(
            "detection_time must be a JSON integer (unix seconds), got {other}"
        )),
    }
    // name and filepath feed the dedup checksum; action/module_name/info
    // are optional and default to non-available on purpose.
    for f in ["name", "filepath", "action", "module_name", "info"] {
        match at(alert, &[f]) {
            Value::String(_) => {}
            Value::Null if f == "name" || f == "filepath" => ctx.violation(format!(
                "alert field {f} missing (stored as non-available, and part of the dedup checksum)"
            )),
            Value::Null => {}
            other => ctx.violation(format!("alert field {f} must be a string, got {other}")),
        }
    }
    if let Value::String(p) = at(alert, &["filepath"])
        && p.chars().count() > 255
    {
        ctx.violation("alert filepath longer than 255 characters is truncated");
    }
    if let Some(per) = alert.get("job_id").filter(|v| !v.is_null()) {
        let top = top_job.cloned().unwrap_or(Value::from(0));
        if intval(per) != intval(&top) {
            ctx.violation(format!(
                "per-alert job_id {per} is overwritten by task.obj.job_id ({top}); set task.obj.job_id"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;

    /// The four checksums of §3.6 (server TZ = UTC, antivirus id 1).
    #[test]
    fn reproduces_the_documented_checksums() {
        let p = "Pdf.Dropper.Agent-1507034";
        let f = "/home/malware/X";
        assert_eq!(
            checksum(p, f, "2017-01-05 08:42:42", "2", 1),
            "b4052dad745ab0a2b23c5af479eedb2fd9e165a33e50fa2cccbf44992bc2b298"
        );
        assert_eq!(
            checksum(p, f, "2017-01-05 08:42:50", "2", 1),
            "46f4db406a7d8e8f59fdc0c18a82593a2851df839560e08d9060b3722764e0b8"
        );
        assert_eq!(
            checksum("Win.Trojan.Elpapok-1", f, "2017-01-05 08:42:57", "2", 1),
            "027e64580128007e3f5e2d2a8d932bf4ab886768cceb6b184f5008fecb4e1d56"
        );
        assert_eq!(
            checksum(p, f, "2017-01-05 08:42:42", "3", 1),
            "64ed32e509c40782d0f879cba4396eb59dfb5a2ce1fee861788bc7b1b3cc1c31"
        );
    }
}
