//! `-t Getjobs`: fetch the jobs queued for this agent into the durable queue.

use crate::session::Enrolled;
use crate::session::{AgentError, Context};
use crate::store::GETJOBS_IN_FLIGHT;
use crate::transport::{MAX_BODY_BYTES, TransportError};
use crate::wire::{UnixTime, parse_jobs_reply};

/// Free space Getjobs wants before it asks: the largest reply we accept, twice (the rows and
/// SQLite's write-ahead log).
pub const GETJOBS_MIN_FREE: u64 = 2 * MAX_BODY_BYTES as u64;

pub async fn run(ctx: &Context) -> Result<(), AgentError> {
    let mut agent = Enrolled::open(ctx)?;
    agent.flush_outbox(ctx).await?;

    let pending = agent.store.outbox_len()?;
    if pending >= ctx.config.outbox.max_messages {
        // Backpressure, not loss: new jobs would only add results we cannot deliver yet.
        tracing::warn!(
            pending,
            cap = ctx.config.outbox.max_messages,
            "outbox is full: not fetching new jobs until the server accepts the pending messages"
        );
        return Err(AgentError::Task(format!(
            "outbox full ({pending} messages pending, cap {}): jobs not fetched",
            ctx.config.outbox.max_messages
        )));
    }

    // The server forgets the jobs it hands out: fetch only when the reply surely fits.
    agent
        .store
        .ensure_free_space(GETJOBS_MIN_FREE, "storing a GET jobs reply")?;

    if let Some(since) = agent.store.cursor(GETJOBS_IN_FLIGHT)? {
        // The plugin marks jobs `downloaded` before it answers and never hands them out again:
        // jobs in a reply that never reached the store are gone on the server side.
        tracing::error!(since = %since,
            "a previous Getjobs stopped while the server's reply was in flight: jobs it held may be stuck as 'downloaded' in GLPI; re-create them there");
    }
    agent
        .store
        .set_cursor(GETJOBS_IN_FLIGHT, &UnixTime::now().secs().to_string())?;
    let reply = match agent.client.get_jobs(agent.agent_id).await {
        Ok(r) => r,
        Err(e) => {
            // Only a lost answer (timeout, cut connection) can have carried jobs away; an error
            // answer or an unsent request did not.
            if !matches!(
                e,
                TransportError::Timeout { .. } | TransportError::Io { .. }
            ) {
                agent.store.clear_cursor(GETJOBS_IN_FLIGHT)?;
            }
            return Err(e.into());
        }
    };
    // From here on, the server has marked these jobs downloaded: our copy is the only one.
    let parsed = parse_jobs_reply(&reply.body).map_err(|e| {
        let why = match reply.json_object() {
            None => format!("HTTP {} without JSON: {}", reply.status, reply.summary()),
            Some(_) => e.to_string(),
        };
        tracing::error!("the GET jobs reply cannot be understood; jobs it held may be marked downloaded on the server and lost: {why}");
        // A page or broken JSON instead of the plugin's reply: the server is in trouble.
        AgentError::Unavailable(format!("jobs reply not understood: {why}"))
    })?;
    let report = agent.store.enqueue_jobs(&parsed.jobs)?;
    for id in &report.invalid {
        tracing::warn!(
            job_id = id,
            "malformed job stored: it will be reported failed by Runjobs"
        );
    }
    tracing::info!(
        added = report.added.len(),
        duplicates = report.duplicates.len(),
        invalid = report.invalid.len(),
        unreportable = report.unreportable,
        "jobs fetched"
    );
    crate::session::summary(format_args!(
        "Getjobs: {} new job(s), {} already known, {} malformed{}",
        report.added.len() + report.invalid.len(),
        report.duplicates.len(),
        report.invalid.len(),
        if report.unreportable > 0 {
            format!(
                ", {} without a job id (see `armadito-agent queue`)",
                report.unreportable
            )
        } else {
            String::new()
        }
    ));
    Ok(())
}
