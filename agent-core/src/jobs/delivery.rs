//! Delivers the outbox to the server (see `store::outbox` for the invariants).
//!
//! Oldest first. A message is deleted only after a 2xx. On failure it stays, with its attempt
//! counted and a next try scheduled with capped full-jitter backoff, so a server that is down
//! for a day is retried gently across runs and receives everything once it is back.
//! A network-level failure stops the flush (the server is unreachable: the other messages
//! would fail the same way); a server error on one message (HTTP 4xx/5xx) does not hold back
//! the messages behind it.

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
}

/// Sends every due message, oldest first.
pub async fn flush(
    store: &mut Store,
    client: &GlpiClient,
    cfg: &OutboxConfig,
) -> Result<FlushReport, StoreError> {
    let mut report = FlushReport::default();
    let now = UnixTime::now().secs();
    // One batch of due messages; messages added while we deliver wait for the next flush.
    let batch = store.due_messages(now, 10_000)?;
    for msg in batch {
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
        match client.post(endpoint, &msg.body).await {
            Ok(reply) => match processed(&reply.body) {
                Processed::Yes => {
                    store.message_delivered(&msg)?;
                    report.delivered += 1;
                    tracing::debug!(endpoint = %endpoint, kind = msg.kind.as_str(), job_id = ?msg.job_id, "delivered");
                }
                Processed::WithNotice => {
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
            }
        }
    }
    report.pending = store.outbox_len()?;
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
            max_messages: 10,
            retry_base: 10,
            retry_max: 60,
        };
        for attempts in 1..20 {
            let d = backoff_secs(&cfg, attempts);
            assert!((1..=60).contains(&d), "{attempts}: {d}");
        }
        let zero = OutboxConfig {
            retry_base: 0,
            ..cfg
        };
        assert_eq!(backoff_secs(&zero, 5), 0);
    }
}
