//! Helpers shared by the endpoint scripts: property access with PHP's
//! notices, `setAgentFromJson`, `date()` argument coercion and the EAV entry
//! preparation.

use serde_json::Value;

use crate::double::db::eav::EavEntry;
use crate::double::db::{AgentRow, Db};
use crate::double::php::{
    Ctx, Failure, Notice, is_numeric_str, numeric_prefix, to_php_string, truncate_bytes,
    truncate_chars,
};
use crate::double::validate::{PhpInt, is_strict_uuid, php_type, validate_int, validate_uuid};

pub static NULL: Value = Value::Null;

/// `$a->b->c` without notices (used where the plugin tests with `isset`).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get(*p).unwrap_or(&NULL),
            _ => &NULL,
        };
    }
    cur
}

/// `$obj->name` read without `isset`: PHP 7.2 notices for a missing
/// property or a non-object.
pub fn read_prop<'a>(
    ctx: &mut Ctx,
    obj: &'a Value,
    name: &str,
    file: &'static str,
    line: u32,
) -> &'a Value {
    match obj {
        Value::Object(m) => match m.get(name) {
            Some(v) => v,
            None => {
                ctx.notice(Notice::e_notice(
                    format!("Undefined property: stdClass::${name}"),
                    file,
                    line,
                ));
                &NULL
            }
        },
        _ => {
            ctx.notice(Notice::e_notice(
                format!("Trying to get property '{name}' of non-object"),
                file,
                line,
            ));
            &NULL
        }
    }
}

/// Items visited by PHP's `foreach` over a decoded value: array elements,
/// object property values; anything else is a warning and no iteration.
pub fn foreach<'a>(ctx: &mut Ctx, v: &'a Value, file: &'static str, line: u32) -> Vec<&'a Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => {
            ctx.notice(Notice::e_warning(
                "Invalid argument supplied for foreach()",
                file,
                line,
            ));
            Vec::new()
        }
    }
}

/// `setAgentFromJson` (§1.6): the claimed `agent_id` is loaded; the UUID
/// only has to belong to *some* agent. Returns the claimed id and its row.
pub fn set_agent_from_json(
    ctx: &mut Ctx,
    db: &Db,
    j: &Value,
) -> Result<(PhpInt, AgentRow), Failure> {
    let agent_id = validate_int(ctx, at(j, &["agent_id"]))?;
    let uuid = validate_uuid(ctx, at(j, &["uuid"]))?.unwrap_or_default();
    let Some(owner) = db.agent_by_uuid(&uuid) else {
        return Err(Failure::exc(
            "UUID not found in database. This agent has to be re-enrolled.",
        ));
    };
    if owner.id != agent_id.sql() {
        ctx.violation(format!(
            "uuid {uuid:?} belongs to agent {} but agent_id {} was claimed (never cross-checked by the plugin)",
            owner.id,
            agent_id.sql()
        ));
    }
    let agent = db.agent(agent_id.sql()).cloned().ok_or_else(|| {
        Failure::exc(format!(
            "Unable to get Agent DB fields for agent {}",
            agent_id.sql()
        ))
    })?;
    Ok((agent_id, agent))
}

/// PHP 7 coercion of `date()`'s integer parameter. `None` = zpp failure
/// (warning, `date()` returns NULL).
pub fn php_date_ts(ctx: &mut Ctx, v: &Value, file: &'static str, line: u32) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) => Some(
            n.as_i64()
                .unwrap_or_else(|| n.as_f64().map(|f| f.trunc() as i64).unwrap_or(0)),
        ),
        Value::String(s) => {
            let p = numeric_prefix(s);
            if !p.found {
                ctx.notice(Notice::e_warning(
                    "date() expects parameter 2 to be integer, string given",
                    file,
                    line,
                ));
                return None;
            }
            if !is_numeric_str(s) {
                ctx.notice(Notice::e_notice(
                    "A non well formed numeric value encountered",
                    file,
                    line,
                ));
            }
            Some(p.int_value.unwrap_or(p.value.trunc() as i64))
        }
        other => {
            ctx.notice(Notice::e_warning(
                format!(
                    "date() expects parameter 2 to be integer, {} given",
                    php_type(other)
                ),
                file,
                line,
            ));
            None
        }
    }
}

/// Column limits of the EAV `value` column.
#[derive(Debug, Clone, Copy)]
pub enum ValueColumn {
    /// `varchar(255)` (stateavdetails).
    Varchar255,
    /// `text` (avconfigdetails, schedulerdetails).
    Text,
}

/// Turns a reported `[{attr, value}]` list into EAV entries, with PHP's
/// conversions at bind time.
pub fn eav_entries(
    ctx: &mut Ctx,
    list: &Value,
    col: ValueColumn,
    file: &'static str,
) -> Result<Vec<EavEntry>, Failure> {
    let mut out = Vec::new();
    for item in foreach(ctx, list, file, 40) {
        if !item.is_object() {
            ctx.violation(format!(
                "EAV entry is not an {{attr, value}} object: {item}"
            ));
        }
        let attr_v = read_prop(ctx, item, "attr", file, 42);
        let value_v = read_prop(ctx, item, "value", file, 43);
        if ctx.strict {
            if !attr_v.is_string() {
                ctx.violation(format!("EAV attr must be a string, got {attr_v}"));
            }
            if !(value_v.is_string() || value_v.is_number() || value_v.is_boolean()) {
                ctx.violation(format!(
                    "EAV value for {attr_v} must be a scalar, got {value_v}"
                ));
            }
        }
        let attr = to_php_string(ctx, attr_v, file, 42)?;
        if attr.chars().count() > 255 {
            ctx.violation(format!(
                "EAV attr longer than 255 characters is truncated: {attr:?}"
            ));
        }
        let attr = truncate_chars(&attr, 255);
        let stored = match value_v {
            Value::Null => None,
            v => {
                let s = to_php_string(ctx, v, file, 43)?;
                Some(match col {
                    ValueColumn::Varchar255 => {
                        if s.chars().count() > 255 {
                            ctx.violation(format!(
                                "value of {attr:?} longer than 255 characters is truncated"
                            ));
                        }
                        truncate_chars(&s, 255)
                    }
                    ValueColumn::Text => truncate_bytes(&s, 65_535),
                })
            }
        };
        out.push(EavEntry {
            attr,
            raw: value_v.clone(),
            stored,
        });
    }
    Ok(out)
}

/// Strict helper: the UUID sent is exactly what a well-behaved agent sends.
pub fn strict_uuid(v: &Value) -> bool {
    v.as_str().map(is_strict_uuid).unwrap_or(false)
}
