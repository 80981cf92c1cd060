//! `-t State`: the antivirus state from the backend, as POST api/states (server-api.md §3.5).

use armadito_plugin_api::model::{BackendState, OnOff, ServiceStatus, UpdateStatus};

use crate::session::{AgentError, Context};
use crate::session::{Enrolled, blocking};
use crate::store::{MessageKind, NewMessage};
use crate::transport::Endpoint;
use crate::wire::{AntivirusInfo, AttrValue, DbInfo, ModuleState, StateReport, TaskName, UnixTime};

pub async fn run(ctx: &Context) -> Result<(), AgentError> {
    run_with(ctx, &crate::session::OneShot::default()).await
}

/// The task with the backend from `backends` (the daemon's long-lived one).
pub async fn run_with(
    ctx: &Context,
    backends: &dyn crate::session::BackendSource,
) -> Result<(), AgentError> {
    let mut agent = Enrolled::open(ctx)?;
    agent.flush_outbox(ctx).await?;
    let lease = backends.lease(ctx)?;
    let backend = lease.backend.clone();
    let state = blocking(move || backend.state()).await??;
    agent.antivirus = AntivirusInfo::new(state.product_name.clone(), state.product_version.clone());
    let report = state_report(&state, UnixTime::now());
    let msg = NewMessage {
        endpoint: Endpoint::States.name(),
        kind: MessageKind::State,
        supersede_key: Some("state".into()),
        job_id: None,
        body: agent.body(TaskName::State, &report)?,
    };
    crate::session::summary(format_args!(
        "State: {} {}: service {}, signatures {}, real-time {}",
        state.product_name,
        state.product_version,
        report.dbinfo.service_status,
        report.dbinfo.global_status,
        onoff(state.realtime)
    ));
    agent.send(ctx, &[msg], None).await
}

pub fn update_status(s: UpdateStatus) -> &'static str {
    match s {
        UpdateStatus::UpToDate => "up-to-date",
        UpdateStatus::Late => "late",
        UpdateStatus::Critical => "critical",
        _ => "non-available",
    }
}

fn service_status(s: ServiceStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "non-available".into())
}

fn onoff(o: OnOff) -> &'static str {
    match o {
        OnOff::On => "on",
        OnOff::Off => "off",
        _ => "unknown",
    }
}

/// The server requires a 10-digit `global_update_timestamp` (else 500). When the backend does
/// not know its last update, we send `now` and say so in `avdetails` rather than invent a date
/// silently or lose the whole report.
pub fn state_report(s: &BackendState, now: UnixTime) -> StateReport {
    let known = s.last_update.and_then(|t| UnixTime::new(t).ok());
    let mut avdetails = vec![
        AttrValue::new("product:name", s.product_name.clone()),
        AttrValue::new("product:version", s.product_version.clone()),
        AttrValue::new("realtime:enabled", onoff(s.realtime)),
        AttrValue::new("service:status", service_status(s.service_status)),
    ];
    if known.is_none() {
        avdetails.push(AttrValue::new("update:last_update", "unknown"));
    }
    for m in &s.modules {
        if let Some(v) = &m.version {
            avdetails.push(AttrValue::new(
                format!("module:{}:version", m.name),
                v.clone(),
            ));
        }
    }
    avdetails.extend(s.details.iter().map(|d| AttrValue {
        attr: d.attr.clone(),
        value: scalar(&d.value),
    }));
    StateReport {
        dbinfo: DbInfo {
            global_status: update_status(s.update_status).into(),
            global_update_timestamp: known.unwrap_or(now),
            service_status: service_status(s.service_status),
            modules: s
                .modules
                .iter()
                .map(|m| ModuleState {
                    name: m.name.clone(),
                    mod_status: update_status(m.status).into(),
                    mod_update_timestamp: m
                        .update_time
                        .and_then(|t| UnixTime::new(t).ok())
                        .unwrap_or(now)
                        .secs(),
                })
                .collect(),
        },
        avdetails,
    }
}

/// The server stores EAV values as strings and breaks on arrays/objects: flatten those to JSON text.
pub fn scalar(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            serde_json::Value::String(v.to_string())
        }
        serde_json::Value::Null => serde_json::Value::String(String::new()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use armadito_plugin_api::model::{Detail, ModuleInfo};

    use super::*;

    #[test]
    fn state_maps_to_what_the_server_validates() {
        let now = UnixTime::new(1_700_000_000).unwrap();
        let s = BackendState {
            product_name: "ClamAV".into(),
            product_version: "1.4.6".into(),
            service_status: ServiceStatus::Running,
            update_status: UpdateStatus::Late,
            last_update: Some(1_699_000_000),
            modules: vec![ModuleInfo {
                name: "daily".into(),
                status: UpdateStatus::Late,
                update_time: Some(0),
                version: Some("27000".into()),
            }],
            realtime: OnOff::On,
            details: vec![Detail::new("threads", serde_json::json!([1, 2]))],
        };
        let r = state_report(&s, now);
        assert_eq!(r.dbinfo.global_status, "late");
        assert_eq!(r.dbinfo.global_update_timestamp.secs(), 1_699_000_000);
        assert_eq!(r.dbinfo.service_status, "running");
        assert_eq!(
            r.dbinfo.modules[0].mod_update_timestamp, 1_700_000_000,
            "0 is not a date the server takes"
        );
        assert!(
            r.avdetails
                .contains(&AttrValue::new("realtime:enabled", "on"))
        );
        assert!(r.avdetails.contains(&AttrValue::new("threads", "[1,2]")));
        let unknown = state_report(
            &BackendState {
                last_update: None,
                ..s
            },
            now,
        );
        assert_eq!(unknown.dbinfo.global_update_timestamp, now);
        assert!(
            unknown
                .avdetails
                .contains(&AttrValue::new("update:last_update", "unknown"))
        );
    }
}
