//! `POST api/agents/` — enrollment and re-enrollment (§3.1), in the exact
//! order of the plugin so that key uses are consumed where it consumes them.

use serde_json::Value;

use super::common::{at, read_prop};
use crate::double::db::{AgentRow, Db};
use crate::double::php::time::fmt_datetime;
use crate::double::php::{Ctx, Failure, ci_eq, to_php_string};
use crate::double::validate::{validate_int, validate_key, validate_uuid};

const FILE: &str = "inc/agent.class.php";

/// MySQL's complaint when a `'` breaks the concatenated antivirus query.
fn sql_syntax_error(fullname: &str) -> String {
    let near: String = fullname
        .split_once('\'')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .chars()
        .take(80)
        .collect();
    format!(
        "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '{near}'' at line 1"
    )
}

pub fn post(ctx: &mut Ctx, db: &mut Db, j: &Value) -> Result<String, Failure> {
    // 2. key format (falsy keys slip through as '').
    let key = validate_key(ctx, at(j, &["task", "obj", "key"]))?.unwrap_or_default();
    // 3. key exists and is not in the dustbin.
    let Some(kidx) = db
        .keys
        .iter()
        .position(|k| !k.is_deleted && ci_eq(&k.value, &key))
    else {
        return Err(Failure::exc("Enrollment key not found in database"));
    };
    // 4. expiry (usable up to and including the expiration second).
    if ctx.now > db.keys[kidx].expiration_ts {
        return Err(Failure::exc("Your enrollment key has expired."));
    }
    // 5. remaining uses.
    if db.keys[kidx].use_counter <= 0 {
        return Err(Failure::exc(
            "Your enrollment key reached its maximum usage count.",
        ));
    }
    // 6. consumed here, before anything else can fail.
    db.keys[kidx].use_counter -= 1;
    // 7. agent_id is validated and then ignored.
    validate_int(ctx, at(j, &["agent_id"]))?;
    // 8. antivirus identity.
    let av = at(j, &["task", "antivirus"]);
    let name = to_php_string(ctx, at(av, &["name"]), FILE, 212)?;
    let version = to_php_string(ctx, at(av, &["version"]), FILE, 213)?;
    let osname = to_php_string(ctx, at(av, &["os_info", "name"]), FILE, 214)?;
    let fullname = format!("{name}+{version}+{osname}");
    // 9. identity.
    let uuid = validate_uuid(ctx, at(j, &["uuid"]))?.unwrap_or_default();
    if uuid.is_empty() {
        ctx.violation("enrollment without uuid creates an agent with uuid ''");
    }
    let computers_id = db
        .computers
        .iter()
        .find(|c| ci_eq(&c.uuid, &uuid))
        .map(|c| c.id)
        .unwrap_or(-1);
    // 10. antivirus upsert through a concatenated query.
    if fullname.contains('\'') {
        return Err(Failure::exc(format!(
            "Error isAlreadyEnrolled : {}",
            sql_syntax_error(&fullname)
        )));
    }
    let av_id = db.upsert_antivirus(&name, &osname, &version, &fullname);
    // 11. agent upsert by UUID.
    let agent_version = match read_prop(ctx, j, "agent_version", FILE, 87) {
        Value::Null => None,
        v => Some(to_php_string(ctx, v, FILE, 87)?),
    };
    let now = fmt_datetime(ctx.now);
    let agent_id = match db.agents.iter_mut().find(|a| ci_eq(&a.uuid, &uuid)) {
        Some(a) => {
            a.entities_id = 0;
            a.computers_id = computers_id;
            a.agent_version = agent_version;
            a.plugin_armadito_antiviruses_id = av_id;
            a.last_contact = Some(now);
            a.id
        }
        None => {
            let id = db.alloc("agents");
            db.agents.push(AgentRow {
                id,
                entities_id: 0,
                computers_id,
                agent_version,
                plugin_armadito_antiviruses_id: av_id,
                plugin_armadito_schedulers_id: 0,
                last_contact: Some(now),
                last_alert: Some("1970-01-01 00:00:00".into()),
                uuid: uuid.clone(),
                is_deleted: false,
            });
            id
        }
    };
    // 12. scheduler (dense, recycled ids).
    let scheduler_id = db.scheduler_for_enrollment(agent_id, av_id);
    // 13.
    if let Some(a) = db.agent_mut(agent_id) {
        a.plugin_armadito_schedulers_id = scheduler_id;
    }
    db.materialize_pending_jobs(agent_id);
    // 14. exact bytes.
    Ok(format!(
        "{{\"agent_id\": {agent_id},\"scheduler_id\": {scheduler_id}}}"
    ))
}
