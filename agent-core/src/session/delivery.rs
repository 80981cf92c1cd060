//! Delivers the outbox to the server (see `store::outbox` for the invariants).
//!
//! Oldest first. A message is deleted only after a 2xx. On failure it stays, with its attempt
//! counted and a next try scheduled with capped full-jitter backoff, so a server that is down
//! for a day is retried gently across runs and receives everything once it is back.
//! A network-level failure stops the flush (the server is unreachable: the other messages
//! would fail the same way); a server error on one message (HTTP 4xx/5xx) does not hold back
//! the messages behind it, but `max_consecutive_failures` 5xx answers or timeouts in a row end
//! the run's delivery (a server answering slow 500s must not hold a cron run for hours).
//! A run delivers until its deadline ([`RunBudget`]); what is left stays in the outbox.

use std::time::{Duration, Instant};

use crate::config::OutboxConfig;
use crate::store::{Store, StoreError};
use crate::transport::{Endpoint, GlpiClient, RetryPolicy, TransportError, backoff_delay};
use crate::wire::UnixTime;

/// What one flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub delivered: usize,
    pub failed: usize,
    /// Messages still pending afterwards (failed or not yet due).
    pub pending: usize,
    /// The last failure, for the task's own exit status.
    pub last_error: Option<String>,
    /// Whether the flush stopped early because the server could not be reached.
    pub server_unreachable: bool,
    /// Why this run delivers no more (deadline, failures in a row), once it stopped.
    pub halted: Option<String>,
}

/// What one run may still spend on delivery, shared by all its flushes.
#[derive(Debug, Clone)]
pub struct RunBudget {
    deadline: Instant,
    max_failures: u32,
    /// 5xx answers and timeouts in a row.
    failures_in_a_row: u32,
    halted: Option<String>,
}

impl RunBudget {
    pub fn new(cfg: &OutboxConfig) -> RunBudget {
        RunBudget {
            deadline: Instant::now() + Duration::from_secs(cfg.deadline),
            max_failures: cfg.max_consecutive_failures.max(1),
            failures_in_a_row: 0,
            halted: None,
        }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn halt(&mut self, why: String) {
        tracing::warn!("delivery stops for this run, the rest stays in the outbox: {why}");
        self.halted = Some(why);
    }

    /// Count one failure; `true` when it is the one too many.
    fn failed(&mut self, server_trouble: bool) -> bool {
        if !server_trouble {
            return false;
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= self.max_failures {
            self.halt(format!(
                "{} server errors or timeouts in a row",
                self.failures_in_a_row
            ));
            return true;
        }
        false
    }
}

/// Sends every due message, oldest first.
pub async fn flush(
    store: &mut Store,
    client: &GlpiClient,
    cfg: &OutboxConfig,
    budget: &mut RunBudget,
) -> Result<FlushReport, StoreError> {
    let mut report = FlushReport::default();
    let now = UnixTime::now().secs();
    // One batch of due messages; messages added while we deliver wait for the next flush.
    let batch = if budget.halted.is_some() {
        Vec::new()
    } else {
        store.due_messages(now, 10_000)?
    };
    for msg in batch {
        if budget.remaining().is_zero() {
            budget.halt(format!("the delivery deadline ({} s) passed", cfg.deadline));
            break;
        }
        let Some(endpoint) = Endpoint::ALL
            .iter()
            .copied()
            .find(|e| e.name() == msg.endpoint)
        else {
            // Cannot happen with messages this agent wrote; keep it visible rather than drop it.
            store.message_failed(
                msg.id,
                &format!("unknown endpoint {:?}", msg.endpoint),
                i64::MAX,
            )?;
            report.failed += 1;
            continue;
        };
        let Ok(answer) =
            tokio::time::timeout(budget.remaining(), client.post(endpoint, &msg.body)).await
        else {
            // Cut mid-request: it may have been processed; it stays queued (at least once).
            let line = format!(
                "the delivery deadline ({} s) passed during the request",
                cfg.deadline
            );
            store.message_failed(msg.id, &line, now)?;
            report.failed += 1;
            report.last_error = Some(line);
            budget.halt(format!("the delivery deadline ({} s) passed", cfg.deadline));
            break;
        };
        match answer {
            Ok(reply) => match processed(&reply.body) {
                Processed::Yes => {
                    budget.failures_in_a_row = 0;
                    store.message_delivered(&msg)?;
                    report.delivered += 1;
                    tracing::debug!(endpoint = %endpoint, kind = msg.kind.as_str(), job_id = ?msg.job_id, "delivered");
                }
                Processed::WithNotice => {
                    budget.failures_in_a_row = 0;
                    tracing::warn!(endpoint = %endpoint, kind = msg.kind.as_str(), body = %reply.summary(),
                        "server accepted the message but printed PHP notices");
                    store.message_delivered(&msg)?;
                    report.delivered += 1;
                }
                Processed::No => {
                    let line = format!(
                        "POST {}: server answered HTTP {} with a page instead of the plugin's empty reply (maintenance, proxy or PHP fatal error): {}",
                        client.endpoint_url(endpoint),
                        reply.status,
                        reply.summary()
                    );
                    store.message_failed(
                        msg.id,
                        &line,
                        now + backoff_secs(cfg, msg.attempts + 1) as i64,
                    )?;
                    report.failed += 1;
                    tracing::warn!(endpoint = %endpoint, kind = msg.kind.as_str(), "delivery not confirmed, kept for a later try: {line}");
                    report.last_error = Some(line);
                }
            },
            Err(e) => {
                let attempts = msg.attempts + 1;
                let delay = backoff_secs(cfg, attempts);
                let line = e.to_string();
                store.message_failed(msg.id, &line, now + delay as i64)?;
                report.failed += 1;
                tracing::warn!(endpoint = %endpoint, kind = msg.kind.as_str(), job_id = ?msg.job_id, attempts,
                    retry_in_secs = delay, "delivery failed, kept for a later try: {line}");
                report.last_error = Some(line);
                if unreachable(&e) {
                    report.server_unreachable = true;
                    break;
                }
                if budget.failed(server_trouble(&e)) {
                    break;
                }
            }
        }
    }
    report.pending = store.outbox_len()?;
    report.halted = budget.halted.clone();
    Ok(report)
}

enum Processed {
    Yes,
    WithNotice,
    No,
}

/// Whether a 2xx answer to a POST means the plugin processed it. The plugin answers an empty
/// body on success; GLPI's debug handler may print PHP notices/warnings before that (the
/// request was processed). Anything else in a 2xx — a maintenance page, a captive proxy, a PHP
/// fatal error (which PHP sends as 200, server-api.md Addendum 1) — is not a confirmation.
fn processed(body: &str) -> Processed {
    let b = body.trim();
    if b.is_empty() {
        Processed::Yes
    } else if b.contains("Fatal error") {
        Processed::No
    } else if b.contains("PHP Notice") || b.contains("PHP Warning") || b.contains("PHP Deprecated")
    {
        Processed::WithNotice
    } else {
        Processed::No
    }
}

/// Failures that say nothing about this message, only that the server cannot be reached.
fn unreachable(e: &TransportError) -> bool {
    matches!(
        e,
        TransportError::Connect { .. }
            | TransportError::Timeout { .. }
            | TransportError::Tls { .. }
    ) || matches!(e.status(), Some(502..=504))
}

/// A 5xx answer or a timeout: the server is in trouble, not this message.
fn server_trouble(e: &TransportError) -> bool {
    matches!(e, TransportError::Timeout { .. }) || e.status().is_some_and(|s| s >= 500)
}

/// Seconds before the next try of a message that failed `attempts` times.
fn backoff_secs(cfg: &OutboxConfig, attempts: u32) -> u64 {
    if cfg.retry_base == 0 {
        return 0;
    }
    // The same capped full-jitter curve as the transport's in-run retries, in seconds.
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        base_delay_ms: cfg.retry_base.saturating_mul(1000),
        max_delay_ms: cfg.retry_max.max(cfg.retry_base).saturating_mul(1000),
    };
    backoff_delay(&policy, attempts.saturating_sub(1), &mut rand::rng())
        .as_secs()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_plugins_own_answers_confirm_delivery() {
        assert!(matches!(processed(""), Processed::Yes));
        assert!(matches!(processed("  \n"), Processed::Yes));
        let notice = r#"<div style="position:float-left; background-color:red; z-index:10000"><span class="b">PHP Notice: </span>Undefined variable: alert in /var/www/glpi/plugins/armadito/inc/alert.class.php at line 117</div>"#;
        assert!(matches!(processed(notice), Processed::WithNotice));
        assert!(matches!(
            processed("<br />\n<b>Fatal error</b>: Uncaught Error: Call to a member function"),
            Processed::No
        ));
        assert!(matches!(
            processed("<html><body>GLPI is in maintenance</body></html>"),
            Processed::No
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = OutboxConfig {
            retry_base: 10,
            retry_max: 600,
            ..OutboxConfig::default()
        };
        // Full jitter: attempt n waits rand(0, min(600, 10·2^(n-1))) s (at least 1). Over 300
        // draws the largest lands in the upper half of that bound (chance of not: 2^-300), so
        // the maxima double until the cap and then stay there.
        let mut maxima = Vec::new();
        for attempts in 1..=10 {
            let bound = (10u64 << (attempts - 1)).min(600);
            let draws: Vec<u64> = (0..300).map(|_| backoff_secs(&cfg, attempts)).collect();
            assert!(
                draws.iter().all(|d| (1..=bound).contains(d)),
                "attempt {attempts}: {draws:?} outside 1..={bound}"
            );
            let max = *draws.iter().max().unwrap();
            assert!(
                max * 2 >= bound,
                "attempt {attempts}: max {max}, bound {bound}"
            );
            maxima.push(max);
        }
        assert!(maxima[4] > 2 * maxima[0] + 10, "grows: {maxima:?}");
        assert!(maxima.iter().all(|m| *m <= 600), "capped: {maxima:?}");
        let zero = OutboxConfig {
            retry_base: 0,
            ..cfg
        };
        assert_eq!(backoff_secs(&zero, 5), 0);
    }
}
