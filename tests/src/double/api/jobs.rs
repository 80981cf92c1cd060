//! `GET api/jobs/?agent_id=N` (§3.2) and `POST api/jobs/` (§3.3).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use super::Settings;
use super::common::{at, php_date_ts, read_prop};
use super::strict::is_clean_int;
use crate::double::db::{Db, priority_wire};
use crate::double::php::time::{ZERO_DATETIME, diff_format, fmt_datetime};
use crate::double::php::{Ctx, Failure, Pv, intval, loose_eq, to_php_string, truncate_chars};
use crate::double::validate::validate_int;

const FILE: &str = "inc/job.class.php";

/// What `Job::initFromDB` loaded for one job (step 4).
enum Loaded {
    Scan {
        job_id: i64,
        priority: String,
        scanconfig: Option<(i64, String, String, String)>,
    },
    Raw {
        job_id: i64,
        job_type: String,
        priority: String,
        obj: String,
    },
}

/// `json_encode`-free string embedding, as `ScanConfig::toJson` does it.
fn embed(s: &str, unescaped: bool) -> String {
    if unescaped {
        s.to_string()
    } else {
        let q = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        q[1..q.len() - 1].to_string()
    }
}

fn job_json(job_id: i64, job_type: &str, priority: &str, obj: &str) -> String {
    format!(
        "{{\"job_id\": {job_id},\n                  \"job_type\": \"{job_type}\",\n                  \"job_priority\": \"{priority}\",\n                  \"obj\": {obj}\n                 }}"
    )
}

fn scanconfig_json(id: i64, name: &str, path: &str, options: &str, unescaped: bool) -> String {
    format!(
        "{{\n                  \"scanconfig_id\": {id},\n                  \"scan_name\": \"{}\",\n                  \"scan_path\": \"{}\",\n                  \"scan_options\": \"{}\"\n               }}",
        embed(name, unescaped),
        B64.encode(path.as_bytes()),
        B64.encode(options.as_bytes())
    )
}

/// The GET branch: load ≤ limit queued jobs, mark them downloaded, reply.
pub fn get_jobs(
    ctx: &mut Ctx,
    db: &mut Db,
    settings: &Settings,
    agent: &Value,
) -> Result<String, Failure> {
    if ctx.strict && !is_clean_int(agent) {
        ctx.violation(format!(
            "agent_id query parameter {agent} is not an integer (the plugin answers an empty list)"
        ));
    }
    let agent_id = validate_int(ctx, agent)?.sql();
    let limit = settings.getjobs_limit as usize;
    let deleted_ok = settings.quirks.deleted_jobs_delivered;
    let picked: Vec<i64> = db
        .jobs
        .iter()
        .filter(|j| {
            j.plugin_armadito_agents_id == agent_id
                && j.job_status == "queued"
                && (deleted_ok || !j.is_deleted)
        })
        .take(limit)
        .map(|j| j.id)
        .collect();

    // Step 4: load every job; any failure aborts before anything is marked.
    let mut loaded = Vec::with_capacity(picked.len());
    for id in &picked {
        let Some(job) = db.jobs.iter().find(|j| j.id == *id).cloned() else {
            continue;
        };
        if db.agent(job.plugin_armadito_agents_id).is_none() {
            return Err(Failure::exc(format!(
                "Unable to get Agent DB fields for agent {}",
                job.plugin_armadito_agents_id
            )));
        }
        let priority = priority_wire(&job.job_priority).to_string();
        if let Some(obj) = db.raw_job_objs.get(id) {
            loaded.push(Loaded::Raw {
                job_id: job.id,
                job_type: job.job_type.clone(),
                priority,
                obj: obj.clone(),
            });
            continue;
        }
        if job.job_type != "Scan" {
            return Err(Failure::exc("Unknown Job type."));
        }
        let scanconfig = match db
            .scans
            .iter()
            .find(|s| s.plugin_armadito_jobs_id == job.id)
        {
            Some(scan) => {
                let sc = db
                    .scanconfigs
                    .iter()
                    .find(|c| c.id == scan.plugin_armadito_scanconfigs_id)
                    .ok_or_else(|| Failure::exc("Scanconfig initFromDB failed."))?;
                Some((
                    sc.id,
                    sc.scan_name.clone(),
                    sc.scan_path.clone(),
                    sc.scan_options.clone(),
                ))
            }
            None => None,
        };
        loaded.push(Loaded::Scan {
            job_id: job.id,
            priority,
            scanconfig,
        });
    }

    // Step 5: at-most-once delivery — marked before the body exists.
    for id in &picked {
        if let Some(j) = db.job_mut(*id) {
            j.job_status = "downloaded".into();
            j.start_time = fmt_datetime(0);
            j.end_time = fmt_datetime(0);
            j.duration = Some("0d 00h 00m 00s".into());
        }
    }

    // Step 6: string concatenation, byte for byte.
    let unescaped = settings.quirks.unescaped_json;
    let mut parts = Vec::with_capacity(loaded.len());
    for l in loaded {
        match l {
            Loaded::Raw {
                job_id,
                job_type,
                priority,
                obj,
            } => parts.push(job_json(job_id, &job_type, &priority, &obj)),
            Loaded::Scan {
                job_id,
                priority,
                scanconfig: Some((id, name, path, options)),
            } => parts.push(job_json(
                job_id,
                "Scan",
                &priority,
                &scanconfig_json(id, &name, &path, &options, unescaped),
            )),
            Loaded::Scan {
                scanconfig: None, ..
            } => {
                return Err(Failure::fatal(
                    "Call to a member function toJson() on null",
                    FILE,
                    187,
                ));
            }
        }
    }
    Ok(format!("{{ \"jobs\": [{}]}}", parts.join(",")))
}

/// `updateJobStatus` from an agent's report.
pub fn post(ctx: &mut Ctx, db: &mut Db, j: &Value) -> Result<String, Failure> {
    let obj = at(j, &["task", "obj"]);
    let claimed = validate_int(ctx, at(j, &["agent_id"]))?;
    let job_id_v = at(obj, &["job_id"]);
    let job_id = validate_int(ctx, job_id_v)?;
    if ctx.strict && job_id_v.is_null() {
        ctx.violation("task.obj.job_id missing");
    }
    let code = at(obj, &["code"]);
    let successful = code.is_null() || loose_eq(&Pv::of(code), &Pv::Int(0));
    if ctx.strict && code.as_i64().is_none() {
        ctx.violation(format!("task.obj.code must be an integer, got {code}"));
    }
    let message = read_prop(ctx, obj, "message", FILE, 241).clone();
    let start_v = read_prop(ctx, obj, "start_time", FILE, 243).clone();
    let end_v = read_prop(ctx, obj, "end_time", FILE, 244).clone();
    if ctx.strict {
        for (name, v) in [("start_time", &start_v), ("end_time", &end_v)] {
            if v.as_i64().is_none() {
                ctx.violation(format!(
                    "task.obj.{name} must be unix seconds (integer), got {v}"
                ));
            }
        }
        match &message {
            Value::String(m) => {
                if !successful {
                    let compact: String = m.chars().filter(|c| !c.is_whitespace()).collect();
                    if base64::engine::general_purpose::STANDARD
                        .decode(compact.as_bytes())
                        .is_err()
                    {
                        ctx.violation(format!(
                            "failure message is not base64 (the GLPI UI base64-decodes it): {m:?}"
                        ));
                    }
                }
                if m.chars().count() > 255 {
                    ctx.violation(format!(
                        "message longer than 255 characters is truncated ({} chars)",
                        m.chars().count()
                    ));
                }
            }
            other => ctx.violation(format!("task.obj.message must be a string, got {other}")),
        }
    }
    let start = php_date_ts(ctx, &start_v, FILE, 250);
    let end = php_date_ts(ctx, &end_v, FILE, 251);
    let message_col = match &message {
        Value::Null => None,
        m => Some(truncate_chars(&to_php_string(ctx, m, FILE, 262)?, 255)),
    };

    let Some(job) = db.job_mut(job_id.sql()) else {
        return Err(Failure::exc("Unable to get job from database."));
    };
    if ctx.strict && job.plugin_armadito_agents_id != claimed.sql() {
        ctx.violation(format!(
            "job {} belongs to agent {} but was reported by agent {}",
            job.id,
            job.plugin_armadito_agents_id,
            claimed.sql()
        ));
    }
    job.job_status = if successful { "successful" } else { "failed" }.into();
    job.start_time = start
        .map(fmt_datetime)
        .unwrap_or_else(|| ZERO_DATETIME.into());
    job.end_time = end
        .map(fmt_datetime)
        .unwrap_or_else(|| ZERO_DATETIME.into());
    job.duration = Some(diff_format(start.unwrap_or(0), end.unwrap_or(0)));
    if !successful {
        job.job_error_code = intval(code);
        job.job_error_msg = message_col;
    }
    Ok(String::new())
}
