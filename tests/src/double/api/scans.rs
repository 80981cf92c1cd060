//! `POST api/scans/` — scan progress/results (§3.4). Every post overwrites
//! all seven result columns of the job's scans row.

use serde_json::Value;

use super::common::at;
use crate::double::db::Db;
use crate::double::php::time::{fmt_datetime, mysql_datetime, strtotime};
use crate::double::php::{Ctx, Failure, intval, to_php_string};
use crate::double::validate::{
    Kind, format_duration, is_clean_duration, set_value_or_default, validate_int,
};

const FILE: &str = "inc/scan.class.php";

pub fn post(ctx: &mut Ctx, db: &mut Db, j: &Value) -> Result<String, Failure> {
    validate_int(ctx, at(j, &["agent_id"]))?;
    let obj = at(j, &["task", "obj"]);
    let job_id_v = at(obj, &["job_id"]).clone();

    if ctx.strict {
        strict_checks(ctx, obj);
    }

    let duration_v = set_value_or_default(ctx, obj, "duration", Kind::Duration);
    let progress = set_value_or_default(ctx, obj, "progress", Kind::Integer);
    let malware = set_value_or_default(ctx, obj, "malware_count", Kind::Integer);
    let suspicious = set_value_or_default(ctx, obj, "suspicious_count", Kind::Integer);
    let scanned = set_value_or_default(ctx, obj, "scanned_count", Kind::Integer);
    let _cleaned = set_value_or_default(ctx, obj, "cleaned_count", Kind::Integer);
    let start_v = set_value_or_default(ctx, obj, "start_time", Kind::Date);
    let end_v = set_value_or_default(ctx, obj, "end_time", Kind::Date);

    let duration = format_duration(&duration_v)?;
    // start_time: date('Y-m-d H:i:s', strtotime(x)); false ⇒ epoch.
    let start_s = to_php_string(ctx, &start_v, FILE, 131)?;
    let start = fmt_datetime(strtotime(&start_s, ctx.now).unwrap_or(0));
    // end_time: stored raw into a DATETIME column.
    let end_s = to_php_string(ctx, &end_v, FILE, 132)?;
    let end = mysql_datetime(&end_s);

    let job_id = intval(&job_id_v);
    let mut matched = 0;
    for s in db
        .scans
        .iter_mut()
        .filter(|s| Some(s.plugin_armadito_jobs_id) == job_id)
    {
        matched += 1;
        s.start_time = Some(start.clone());
        s.end_time = Some(end.clone());
        s.duration = Some(duration.clone());
        s.malware_count = intval(&malware);
        s.suspicious_count = intval(&suspicious);
        s.scanned_count = intval(&scanned);
        s.progress = intval(&progress);
    }
    if matched == 0 {
        ctx.violation(format!(
            "scan result for job_id {job_id_v} matched no scans row (answered 200 anyway)"
        ));
    }
    Ok(String::new())
}

fn strict_checks(ctx: &mut Ctx, obj: &Value) {
    if !obj.is_object() {
        ctx.violation("task.obj is not an object");
        return;
    }
    match at(obj, &["duration"]) {
        Value::String(d) if is_clean_duration(d) => {}
        Value::String(d) => ctx.violation(format!(
            "duration {d:?} is not an integer ISO-8601 duration without years/months (or HH:MM:SS)"
        )),
        other => ctx.violation(format!("duration must be a string, got {other}")),
    }
    for name in [
        "progress",
        "malware_count",
        "suspicious_count",
        "scanned_count",
    ] {
        match at(obj, &[name]) {
            Value::Number(n) if n.is_i64() => {}
            Value::Null => ctx.violation(format!(
                "{name} missing (stored as -1; every post overwrites all columns)"
            )),
            other => ctx.violation(format!("{name} must be a JSON integer, got {other}")),
        }
    }
    if let Some(p) = at(obj, &["progress"]).as_i64()
        && !(0..=100).contains(&p)
    {
        ctx.violation(format!("progress {p} outside 0..=100"));
    }
    match at(obj, &["start_time"]) {
        Value::Null => {}
        Value::String(s) if strtotime(s, 0).is_some() => {}
        other => ctx.violation(format!("start_time {other} is not strtotime()-parsable (stored as epoch); send \"@<unix seconds>\"")),
    }
    match at(obj, &["end_time"]) {
        Value::Null => {}
        Value::String(s) if is_mysql_literal(s) => {}
        other => ctx.violation(format!(
            "end_time {other} is stored raw; send \"YYYY-MM-DD HH:MM:SS\" (UTC)"
        )),
    }
}

/// Exactly `YYYY-MM-DD HH:MM:SS` and a valid date-time.
fn is_mysql_literal(s: &str) -> bool {
    s.len() == 19 && mysql_datetime(s) == s
}
