//! `armadito-agent status`: identity, enrollment and store health, for humans or `--json`.

use serde::Serialize;

use crate::session::{AgentError, Context};
use crate::store::{DB_FILE, Enrollment, StoredUuid};

#[derive(Serialize)]
struct Status {
    state_dir: String,
    server: Option<String>,
    backend: Option<String>,
    machine_uuid: Option<StoredUuid>,
    enrollment: Option<Enrollment>,
    schema_version: i64,
    integrity_ok: bool,
    /// The running daemon (`{"running": false}` without one), when the caller looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon: Option<serde_json::Value>,
}

pub fn run(ctx: &Context, json: bool) -> Result<(), AgentError> {
    run_with(ctx, json, None)
}

/// The store's status, with `daemon` added to the JSON form.
pub fn run_with(
    ctx: &Context,
    json: bool,
    daemon: Option<serde_json::Value>,
) -> Result<(), AgentError> {
    let exists = ctx.config.state_dir.join(DB_FILE).exists();
    let store = ctx.open_store()?;
    if !exists {
        tracing::info!(dir = %ctx.config.state_dir.display(), "created a new state store");
    }
    let uuid = ctx.uuid(&store)?;
    let s = Status {
        state_dir: ctx.config.state_dir.display().to_string(),
        server: ctx
            .config
            .server
            .as_deref()
            .map(crate::transport::redact_url),
        backend: ctx.config.backend.clone(),
        machine_uuid: store.stored_uuid()?,
        enrollment: store.enrollment()?,
        schema_version: store.schema_version()?,
        integrity_ok: store.integrity_ok()?,
        daemon,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| AgentError::Task(e.to_string()))?
        );
        return Ok(());
    }
    let source = s
        .machine_uuid
        .as_ref()
        .map_or("?".to_string(), |u| u.source.clone());
    println!("machine uuid:  {uuid} ({source})");
    match &s.enrollment {
        Some(e) => println!(
            "enrolled:      agent id {}, scheduler id {} (server {}, since {})",
            e.agent_id,
            e.scheduler_id,
            super::inspect::terminal_safe(&crate::transport::redact_url(&e.server)),
            crate::wire::UnixTime::new(e.enrolled_at)
                .map(|t| t.mysql_datetime_utc() + " UTC")
                .unwrap_or_default()
        ),
        None => println!("enrolled:      no (run -t Enrollment)"),
    }
    println!(
        "server:        {}",
        s.server.as_deref().unwrap_or("(not configured)")
    );
    println!(
        "backend:       {}",
        s.backend.as_deref().unwrap_or("(not configured)")
    );
    println!(
        "state store:   {} (schema v{}, integrity {})",
        s.state_dir,
        s.schema_version,
        if s.integrity_ok { "ok" } else { "FAILED" }
    );
    Ok(())
}
