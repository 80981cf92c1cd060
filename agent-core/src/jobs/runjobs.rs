//! `-t Runjobs`: run queued jobs one at a time, highest priority first, and report each result.
//!
//! Between two jobs the queue is read again, so an urgent job fetched meanwhile (by a Getjobs
//! running beside us) goes next. Only one Runjobs runs per state directory (task lock).

use std::time::Duration;

use crate::jobs::execute::{Executor, Outcome};
use crate::session::{AgentError, Context};
use crate::session::{BackendSource, Enrolled, OneShot, Stop};
use crate::store::{MessageKind, NewMessage, RecoveryPolicy, StoredJob};
use crate::transport::Endpoint;
use crate::wire::{JobStatus, TaskName, UnixTime};

/// Per-type policy for a job the agent died running. A scan only reads files: running it
/// again is safe and gives the admin a real result. Anything else is reported failed.
pub fn recovery_policy(job_type: &str) -> RecoveryPolicy {
    match job_type {
        "Scan" => RecoveryPolicy::Retry,
        _ => RecoveryPolicy::Fail,
    }
}

pub async fn run(ctx: &Context) -> Result<(), AgentError> {
    // SIGTERM/SIGINT cancel the running scan (its partial results are reported).
    let stop = Stop::new();
    let listener = tokio::spawn(stop_on_signal(stop.clone()));
    let result = run_with(ctx, &OneShot::default(), stop).await;
    listener.abort();
    result
}

/// Requests `stop` on SIGTERM or Ctrl-C (SIGINT).
async fn stop_on_signal(stop: Stop) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    stop.request();
}

/// Runjobs with the backend of `backends`, until the queue is empty or `stop` is requested
/// (a running scan is then cancelled and reported, the other jobs stay queued).
pub async fn run_with(
    ctx: &Context,
    backends: &dyn BackendSource,
    stop: Stop,
) -> Result<(), AgentError> {
    let mut agent = Enrolled::open(ctx)?;
    let _lock = agent.store.lock_task("Runjobs", Duration::from_secs(2))?;
    agent.flush_outbox(ctx).await?;
    recover_interrupted(&mut agent, ctx)?;

    let mut executor = Executor::new(ctx, backends, stop.clone());
    let (mut ran, mut failed) = (0usize, 0usize);
    let mut last_flush = None;
    while let Some(job) = agent.store.next_queued_job()? {
        if !agent.store.start_job(job.job_id)? {
            continue; // taken by someone else meanwhile
        }
        tracing::info!(job_id = job.job_id, job_type = %job.job_type, priority = job.priority, attempt = job.attempts + 1, "running job");
        let start = UnixTime::now();
        let outcome = executor.execute(&job, &mut agent).await;
        let end = UnixTime::now();
        if outcome.error.is_some() {
            failed += 1;
        }
        finish(&mut agent, &job, outcome, start, end)?;
        ran += 1;
        last_flush = Some(agent.flush_outbox(ctx).await?);
        if executor.stop_requested || stop.is_requested() {
            tracing::warn!("stopping: the remaining jobs stay queued for the next run");
            break;
        }
    }
    let keep = i64::from(ctx.config.jobs.keep_reported_days) * 86_400;
    agent
        .store
        .prune_reported_jobs(UnixTime::now().secs() - keep)?;

    crate::session::summary(format_args!("Runjobs: {ran} job(s) run, {failed} failed"));
    match last_flush {
        Some(f) if f.pending > 0 => Err(f.kept_error(format!(
            "{} message(s) could not be delivered yet and are kept for the next run: {}",
            f.pending,
            f.last_error.as_deref().unwrap_or("not due yet")
        ))),
        _ => Ok(()),
    }
}

/// Stores the job's end and queues its messages: results first, then the job status, so the
/// server has the scan figures when the job turns `successful`.
fn finish(
    agent: &mut Enrolled,
    job: &StoredJob,
    outcome: Outcome,
    start: UnixTime,
    end: UnixTime,
) -> Result<(), AgentError> {
    let status = match &outcome.error {
        None => JobStatus::success(job.job_id, start, end),
        Some(e) => {
            tracing::warn!(job_id = job.job_id, "job failed: {e}");
            JobStatus::failure(job.job_id, e, start, end)
        }
    };
    let mut messages = outcome.messages;
    messages.push(status_message(agent, job.job_id, &status)?);
    agent
        .store
        .finish_job(job.job_id, status.code, outcome.error.as_deref(), &messages)?;
    Ok(())
}

fn status_message(
    agent: &Enrolled,
    job_id: i64,
    status: &JobStatus,
) -> Result<NewMessage, AgentError> {
    Ok(NewMessage {
        endpoint: Endpoint::Jobs.name(),
        kind: MessageKind::JobStatus,
        supersede_key: None,
        job_id: Some(job_id),
        body: agent.body(TaskName::Runjobs, status)?,
    })
}

/// Jobs left `running` by an agent that died: run again or report failed, per type, and
/// quarantine a job that has stopped the agent `max_attempts` times.
fn recover_interrupted(agent: &mut Enrolled, ctx: &Context) -> Result<(), AgentError> {
    let max = ctx.config.jobs.max_attempts.max(1);
    for job in agent.store.interrupted_jobs()? {
        let reason = if job.attempts >= max {
            Some(format!(
                "job quarantined: the agent stopped while running it {} times",
                job.attempts
            ))
        } else if recovery_policy(&job.job_type) == RecoveryPolicy::Fail {
            Some("agent stopped during execution".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => {
                tracing::warn!(job_id = job.job_id, attempts = job.attempts, "{reason}");
                let now = UnixTime::now();
                let start = job
                    .started_at
                    .and_then(|s| UnixTime::new(s).ok())
                    .unwrap_or(now);
                let outcome = Outcome::failed(reason);
                finish(agent, &job, outcome, start, now)?;
            }
            None => {
                tracing::warn!(
                    job_id = job.job_id,
                    attempts = job.attempts,
                    max,
                    "the agent stopped during this job: running it again"
                );
                agent
                    .store
                    .requeue_job(job.job_id, "agent stopped during execution; retried")?;
            }
        }
    }
    Ok(())
}
