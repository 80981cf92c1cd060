//! `POST api/avconfigs/` (§3.7), `POST api/schedulers/` (§3.8) and the
//! double's extension: `GET …/avconfigs/?agent_id=N` and
//! `GET …/schedulers/?agent_id=N` answer a server-defined configuration
//! when the admin set one (the real plugin never implemented these GETs
//! and answers 400, which the double keeps doing otherwise).

use serde_json::{Value, json};

use super::common::{ValueColumn, at, eav_entries, set_agent_from_json};
use super::{Endpoint, Settings, php_query_get};
use crate::double::db::{AvConfigRow, Db, SchedulerRow};
use crate::double::php::time::fmt_datetime;
use crate::double::php::{Ctx, Failure, to_php_string, truncate_chars};
use crate::double::validate::{Kind, filter_validate_int, set_value_or_default};

pub fn post_avconfigs(
    ctx: &mut Ctx,
    db: &mut Db,
    settings: &Settings,
    j: &Value,
) -> Result<String, Failure> {
    let (agent_id, agent) = set_agent_from_json(ctx, db, j)?;
    let agent_id = agent_id.sql();
    let av = agent.plugin_armadito_antiviruses_id;
    let obj = at(j, &["task", "obj"]);
    if !obj.is_array() {
        ctx.violation(format!(
            "task.obj of avconfigs must be an array of {{attr, value}}, got {obj}"
        ));
    }
    let entries = eav_entries(ctx, obj, ValueColumn::Text, "inc/avconfigdetail.class.php")?;
    let details_id = db
        .avconfigdetails
        .perform_optimized_insertion(agent_id, av, &entries);
    // The plugin reads `task.obj.realtime_status` from an array: never set.
    let realtime_status = if settings.quirks.realtime_status_always_na {
        "non-available".to_string()
    } else {
        entries
            .iter()
            .find(|e| e.attr == "realtime_status")
            .and_then(|e| e.stored.clone())
            .unwrap_or_else(|| "non-available".into())
    };
    let now = fmt_datetime(ctx.now);
    match db
        .avconfigs
        .iter_mut()
        .find(|c| c.plugin_armadito_agents_id == agent_id)
    {
        Some(c) => {
            c.realtime_status = realtime_status;
            c.last_avconfig = now;
            c.plugin_armadito_antiviruses_id = av;
            c.plugin_armadito_avconfigdetails_id = details_id;
        }
        None => {
            let id = db.alloc("avconfigs");
            db.avconfigs.push(AvConfigRow {
                id,
                realtime_status,
                last_avconfig: now,
                plugin_armadito_avconfigdetails_id: details_id,
                plugin_armadito_agents_id: agent_id,
                plugin_armadito_antiviruses_id: av,
            });
        }
    }
    Ok(String::new())
}

pub fn post_schedulers(ctx: &mut Ctx, db: &mut Db, j: &Value) -> Result<String, Failure> {
    let (agent_id, agent) = set_agent_from_json(ctx, db, j)?;
    let agent_id = agent_id.sql();
    let av = agent.plugin_armadito_antiviruses_id;
    let obj = at(j, &["task", "obj"]);
    if ctx.strict {
        if !at(obj, &["name"]).is_string() {
            ctx.violation(
                "scheduler task.obj.name missing or not a string (stored as non-available)",
            );
        }
        if !at(obj, &["confdetails"]).is_array() {
            ctx.violation("scheduler task.obj.confdetails must be an array of {attr, value}");
        }
    }
    let name_v = set_value_or_default(ctx, obj, "name", Kind::Str);
    let name = truncate_chars(
        &to_php_string(ctx, &name_v, "inc/scheduler.class.php", 77)?,
        255,
    );
    let conf = set_value_or_default(ctx, obj, "confdetails", Kind::Array);
    let entries = eav_entries(
        ctx,
        &conf,
        ValueColumn::Text,
        "inc/schedulerdetail.class.php",
    )?;
    let details_id = db
        .schedulerdetails
        .perform_optimized_insertion(agent_id, av, &entries);
    let apply = |s: &mut SchedulerRow| {
        s.name = Some(name.clone());
        s.plugin_armadito_agents_id = agent_id;
        s.plugin_armadito_antiviruses_id = av;
        s.plugin_armadito_schedulerdetails_id = details_id;
        s.is_used = true;
    };
    if let Some(s) = db
        .schedulers
        .iter_mut()
        .find(|s| s.plugin_armadito_agents_id == agent_id)
    {
        apply(s);
    } else if let Some(s) = db
        .schedulers
        .iter_mut()
        .filter(|s| !s.is_used)
        .min_by_key(|s| s.id)
    {
        apply(s);
    } else {
        let id = db.alloc("schedulers");
        let mut row = SchedulerRow {
            id,
            name: None,
            plugin_armadito_agents_id: agent_id,
            plugin_armadito_antiviruses_id: av,
            plugin_armadito_schedulerdetails_id: 0,
            is_used: true,
        };
        apply(&mut row);
        db.schedulers.push(row);
    }
    Ok(String::new())
}

/// Body of the GET extension, if the admin configured something for the
/// agent named in the query string.
pub fn server_defined(db: &Db, ep: Endpoint, query: Option<&str>) -> Option<String> {
    let agent = php_query_get(query, "agent_id")?;
    let id = filter_validate_int(&agent)?;
    match ep {
        Endpoint::AvConfigs => {
            let entries = db.server_avconfig.get(&id)?;
            let arr: Vec<Value> = entries
                .iter()
                .map(|(a, v)| json!({"attr": a, "value": v}))
                .collect();
            serde_json::to_string(&arr).ok()
        }
        Endpoint::Schedulers => {
            let (name, entries) = db.server_schedule.get(&id)?;
            let conf: Vec<Value> = entries
                .iter()
                .map(|(a, v)| json!({"attr": a, "value": v}))
                .collect();
            // Written by hand to keep `name` first, as documented.
            let name = serde_json::to_string(name).ok()?;
            let conf = serde_json::to_string(&conf).ok()?;
            Some(format!("{{\"name\":{name},\"confdetails\":{conf}}}"))
        }
        _ => None,
    }
}
