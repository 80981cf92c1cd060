//! `-t Alerts`: detections the backend saw since the stored cursor, as POST api/alerts.
//!
//! The cursor moves in the same transaction that puts the alerts in the outbox, so a detection
//! is never sent twice by the agent (the server also de-duplicates by checksum) nor lost while
//! the server is down: it waits in the outbox.

use armadito_plugin_api::model::AlertsQuery;

use crate::session::{AgentError, Context};
use crate::session::{Enrolled, blocking};
use crate::wire::UnixTime;

/// Detections per message (and per backend page).
const PAGE: u32 = 100;

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
    let name = ctx.config.backend.clone().unwrap_or_default();
    let cursor_name = format!("alerts:{name}");
    let mut cursor = agent.store.cursor(&cursor_name)?;
    let mut total = 0usize;
    loop {
        if agent.store.outbox_len()? >= ctx.config.outbox.max_messages {
            tracing::warn!(
                "outbox is full: new detections stay in the backend until the server accepts the pending messages"
            );
            break;
        }
        let query = AlertsQuery {
            cursor: cursor.clone(),
            since: None,
            limit: Some(PAGE),
        };
        let b = backend.clone();
        let page = blocking(move || b.alerts(&query)).await??;
        let next = page
            .next_cursor
            .clone()
            .or_else(|| cursor.clone())
            .unwrap_or_default();
        total += page.detections.len();
        let messages: Vec<_> = agent
            .alerts_message(&page.detections, UnixTime::now(), &name, "real-time", None)?
            .into_iter()
            .collect();
        let advanced = Some(next.clone()) != cursor;
        // The daemon polls every few seconds: an empty page that leaves the cursor where it
        // was writes nothing (no write transaction, no WAL growth while idle).
        if !messages.is_empty() || advanced {
            agent
                .store
                .enqueue_with_cursor(&messages, &cursor_name, &next)?;
        }
        cursor = Some(next);
        if !page.more || !advanced {
            break;
        }
    }
    crate::session::summary(format_args!("Alerts: {total} new detection(s)"));
    agent.send(ctx, &[], None).await
}
