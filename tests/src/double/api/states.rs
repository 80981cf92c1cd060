//! `POST api/states/` — antivirus state (§3.5).

use serde_json::Value;

use super::Settings;
use super::common::{ValueColumn, at, eav_entries, foreach, php_date_ts, set_agent_from_json};
use crate::double::db::{Db, StateModuleRow, StateRow};
use crate::double::php::time::{ZERO_DATETIME, fmt_datetime};
use crate::double::php::{Ctx, Failure, ci_eq, to_php_string, truncate_chars};
use crate::double::validate::{Kind, format_date, set_value_or_default};

const FILE: &str = "inc/state.class.php";
const MODULE_FILE: &str = "inc/statemodule.class.php";

struct Module {
    name: String,
    status: String,
    last_update: String,
}

pub fn post(ctx: &mut Ctx, db: &mut Db, settings: &Settings, j: &Value) -> Result<String, Failure> {
    let (agent_id, agent) = set_agent_from_json(ctx, db, j)?;
    let agent_id = agent_id.sql();
    let av = agent.plugin_armadito_antiviruses_id;
    let obj = at(j, &["task", "obj"]);
    let dbinfo = at(obj, &["dbinfo"]);

    if ctx.strict {
        strict_checks(ctx, obj, dbinfo);
    }

    let ts = set_value_or_default(ctx, dbinfo, "global_update_timestamp", Kind::Timestamp);
    let last_update = format_date(ctx, &ts)?;
    let gs = set_value_or_default(ctx, dbinfo, "global_status", Kind::Str);
    let update_status = to_php_string(ctx, &gs, FILE, 71)?;
    let ss = set_value_or_default(ctx, dbinfo, "service_status", Kind::Str);
    let service_status = to_php_string(ctx, &ss, FILE, 72)?;
    let modules_v = set_value_or_default(ctx, dbinfo, "modules", Kind::Array);
    let avdetails = set_value_or_default(ctx, obj, "avdetails", Kind::Array);

    let mut modules = Vec::new();
    for m in foreach(ctx, &modules_v, MODULE_FILE, 58) {
        let name_v = set_value_or_default(ctx, m, "name", Kind::Str);
        let status_v = set_value_or_default(ctx, m, "mod_status", Kind::Str);
        let ts_v = set_value_or_default(ctx, m, "mod_update_timestamp", Kind::Timestamp);
        let name = truncate_chars(&to_php_string(ctx, &name_v, MODULE_FILE, 61)?, 255);
        let status = truncate_chars(&to_php_string(ctx, &status_v, MODULE_FILE, 62)?, 255);
        let last_update = php_date_ts(ctx, &ts_v, MODULE_FILE, 63)
            .map(fmt_datetime)
            .unwrap_or_else(|| ZERO_DATETIME.into());
        modules.push(Module {
            name,
            status,
            last_update,
        });
    }

    // EAV of avdetails (varchar(255) values).
    let entries = eav_entries(
        ctx,
        &avdetails,
        ValueColumn::Varchar255,
        "inc/stateavdetail.class.php",
    )?;
    let stateavdetails_id = db
        .stateavdetails
        .perform_optimized_insertion(agent_id, av, &entries);

    // Module rows: insert once; the UPDATE binds parameters in the wrong
    // order and never matches (quirk `module_update_noop`).
    for m in modules {
        match db
            .state_modules
            .iter_mut()
            .find(|r| r.plugin_armadito_agents_id == agent_id && ci_eq(&r.module_name, &m.name))
        {
            Some(row) => {
                if !settings.quirks.module_update_noop {
                    row.module_update_status = m.status;
                    row.module_last_update = m.last_update;
                }
            }
            None => {
                let id = db.alloc("stateupdatedetails");
                db.state_modules.push(StateModuleRow {
                    id,
                    plugin_armadito_agents_id: agent_id,
                    module_name: m.name,
                    module_version: "unknown".into(),
                    module_update_status: m.status,
                    module_last_update: m.last_update,
                });
            }
        }
    }
    let stateupdatedetails_id = db
        .state_modules
        .iter()
        .find(|r| r.plugin_armadito_agents_id == agent_id)
        .map(|r| r.id)
        .unwrap_or(0);

    let update_status = truncate_chars(&update_status, 255);
    let service_status = truncate_chars(&service_status, 255);
    match db
        .states
        .iter_mut()
        .find(|s| s.plugin_armadito_agents_id == agent_id)
    {
        Some(s) => {
            s.plugin_armadito_stateavdetails_id = stateavdetails_id;
            s.plugin_armadito_stateupdatedetails_id = stateupdatedetails_id;
            s.plugin_armadito_antiviruses_id = av;
            s.update_status = update_status;
            s.last_update = last_update;
            s.service_status = service_status;
        }
        None => {
            let id = db.alloc("states");
            db.states.push(StateRow {
                id,
                plugin_armadito_agents_id: agent_id,
                update_status,
                last_update,
                plugin_armadito_antiviruses_id: av,
                service_status,
                plugin_armadito_stateupdatedetails_id: stateupdatedetails_id,
                plugin_armadito_stateavdetails_id: stateavdetails_id,
                is_deleted: false,
            });
        }
    }
    Ok(String::new())
}

fn strict_checks(ctx: &mut Ctx, obj: &Value, dbinfo: &Value) {
    if !dbinfo.is_object() {
        ctx.violation("task.obj.dbinfo missing or not an object");
        return;
    }
    match at(dbinfo, &["global_update_timestamp"]) {
        Value::Number(n) if n.is_i64() => {}
        other => ctx.violation(format!(
            "dbinfo.global_update_timestamp must be a JSON integer (unix seconds), got {other}"
        )),
    }
    match at(dbinfo, &["global_status"]) {
        Value::String(_) => {}
        other => ctx.violation(format!(
            "dbinfo.global_status must be a string, got {other}"
        )),
    }
    if let Value::Array(mods) = at(dbinfo, &["modules"]) {
        for m in mods {
            for f in ["name", "mod_status"] {
                if !at(m, &[f]).is_string() {
                    ctx.violation(format!("module {m} lacks string field {f}"));
                }
            }
            if !at(m, &["mod_update_timestamp"]).is_i64() {
                ctx.violation(format!("module {m} lacks integer mod_update_timestamp"));
            }
        }
    } else if !at(dbinfo, &["modules"]).is_null() {
        ctx.violation("dbinfo.modules must be an array");
    }
    match at(obj, &["avdetails"]) {
        Value::Array(_) | Value::Null => {}
        _ => ctx.violation("task.obj.avdetails must be an array of {attr, value}"),
    }
}
