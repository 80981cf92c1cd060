//! `-t AVConfig`: apply a server-defined configuration (when the server has one and
//! `[avconfig] apply` is not `false`), then report the backend's configuration as POST
//! api/avconfigs `[{attr, value}]`. The backend applies only its allow-list of tuning options
//! and rejects everything else as "not changeable remotely".
//!
//! The shipped plugin answers 400 to GET api/avconfigs: that means "nothing defined", silently.
//! Any other failure to read it (5xx, unreachable, a page instead of JSON) leaves the backend
//! as it is: the local configuration is still reported, and the run ends `Unavailable` (exit
//! 1; a daemon backs off instead of asking every period).
//! The report is sent only when the configuration changed since the last one queued (a hash in
//! the store, moved with the message), unless `--force`.

use armadito_plugin_api::model::ConfigEntry;
use sha2::{Digest, Sha256};

use crate::session::{AgentError, Context};
use crate::session::{Enrolled, ServerDefined, blocking};
use crate::store::{MessageKind, NewMessage};
use crate::tasks::state::scalar;
use crate::transport::Endpoint;
use crate::wire::{AttrValue, TaskName, parse_server_config};

const HASH_CURSOR: &str = "avconfig:hash";
const SUPERSEDE_KEY: &str = "avconfig";

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

    let read = if ctx.config.avconfig.apply {
        server_config(&agent).await
    } else {
        tracing::info!(
            "[avconfig] apply = false: the server's configuration is not applied, only reported"
        );
        ServerDefined::Nothing
    };
    let b = backend.clone();
    let mut current = blocking(move || b.config_get()).await??;
    let mut problems = Vec::new();
    if let ServerDefined::Defined(wanted) = &read {
        let changes = differences(wanted, &current);
        if changes.is_empty() {
            tracing::info!("the server's configuration is already applied");
        } else {
            tracing::info!(keys = changes.len(), "applying the server's configuration");
            let b = backend.clone();
            let to_set = changes.clone();
            let applied = blocking(move || b.config_set(&to_set)).await??;
            for c in &applied.changes {
                let old = c.old.as_ref().map_or("(unset)".into(), |v| v.to_string());
                tracing::info!("configuration changed: {}: {old} -> {}", c.attr, c.new);
                crate::session::summary(format_args!("AVConfig: {}: {old} -> {}", c.attr, c.new));
            }
            for r in &applied.rejected {
                problems.push(format!("{}: {}", r.attr, r.reason));
            }
            let b = backend.clone();
            current = blocking(move || b.config_get()).await??;
            // confirm by re-reading: a key the backend said it applied but still differs is reported
            for c in differences(&changes, &current) {
                if !applied.rejected.iter().any(|r| r.attr == c.attr) {
                    problems.push(format!("{}: not in effect after applying", c.attr));
                }
            }
        }
    }
    for p in &problems {
        tracing::warn!("configuration key not applied: {p}");
    }

    let entries: Vec<AttrValue> = current
        .iter()
        .map(|e| AttrValue {
            attr: e.attr.clone(),
            value: scalar(&e.value),
        })
        .collect();
    let hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&entries).unwrap_or_default(),
    ));
    let force = ctx.cli.force;
    if !force && agent.store.cursor(HASH_CURSOR)?.as_deref() == Some(hash.as_str()) {
        crate::session::summary(format_args!(
            "AVConfig: {} keys, unchanged since the last report (use --force to send anyway)",
            entries.len()
        ));
        agent.send(ctx, &[], None).await?;
        // "Unchanged since the last report" is only true once that report was delivered.
        agent.report_waiting(SUPERSEDE_KEY)?;
    } else {
        let msg = NewMessage {
            endpoint: Endpoint::AvConfigs.name(),
            kind: MessageKind::AvConfig,
            supersede_key: Some(SUPERSEDE_KEY.into()),
            job_id: None,
            body: agent.body(TaskName::AVConfig, &entries)?,
        };
        crate::session::summary(format_args!("AVConfig: {} keys reported", entries.len()));
        agent.send(ctx, &[msg], Some((HASH_CURSOR, &hash))).await?;
    }
    if let Some(e) = read.unreadable_error("the local configuration was reported") {
        return Err(e);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AgentError::Task(format!(
            "some configuration keys could not be applied: {}",
            problems.join("; ")
        )))
    }
}

/// What the server defines (the shipped plugin's 400: nothing).
async fn server_config(agent: &Enrolled) -> ServerDefined<Vec<ConfigEntry>> {
    let read = agent
        .server_defined(Endpoint::AvConfigs, |reply| {
            parse_server_config(&reply.body).map_err(|e| e.to_string())
        })
        .await;
    match read {
        ServerDefined::Defined(list) => ServerDefined::Defined(
            list.into_iter()
                .map(|a| ConfigEntry::new(a.attr, a.value))
                .collect(),
        ),
        ServerDefined::Nothing => {
            tracing::debug!("the server defines no configuration for this agent");
            ServerDefined::Nothing
        }
        ServerDefined::Unreadable(why) => {
            tracing::warn!(
                "cannot read the server's configuration, reporting the local one: {why}"
            );
            ServerDefined::Unreadable(why)
        }
    }
}

/// Entries of `wanted` whose value differs from (or is missing in) `current`. Values compare
/// as text, as the server stores them.
pub fn differences(wanted: &[ConfigEntry], current: &[ConfigEntry]) -> Vec<ConfigEntry> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(true) => "1".into(),
        serde_json::Value::Bool(false) => String::new(),
        other => other.to_string(),
    };
    wanted
        .iter()
        .filter(|w| {
            !current
                .iter()
                .any(|c| c.attr == w.attr && text(&c.value) == text(&w.value))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_differences_are_applied() {
        let current = vec![
            ConfigEntry::new("MaxThreads", 10),
            ConfigEntry::new("ScanPDF", "yes"),
            ConfigEntry::new("Flag", true),
        ];
        let wanted = vec![
            ConfigEntry::new("MaxThreads", "10"),
            ConfigEntry::new("ScanPDF", "no"),
            ConfigEntry::new("Flag", "1"),
            ConfigEntry::new("New", "x"),
        ];
        let d = differences(&wanted, &current);
        assert_eq!(
            d.iter().map(|e| e.attr.as_str()).collect::<Vec<_>>(),
            vec!["ScanPDF", "New"]
        );
    }
}
