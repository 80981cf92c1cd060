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
//! One flush at a time per process ([`FLUSHING`]): the daemon's tasks all flush, often at
//! the same moment, and two flushes reading the same due messages would each POST them.
//!
//! Alert messages with the same envelope are coalesced into POSTs of up to
//! `[outbox] coalesce_alerts` alerts. Such a POST is acknowledged or failed as a whole: a 2xx
//! deletes all its messages in one transaction, a failure keeps every one of them. A coalesced
//! POST the server rejects is split in halves and retried at once, so one malformed alert ends
//! up alone (kept, with its error) and never holds back the others.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::OutboxConfig;
use crate::store::{MessageKind, OutboxMessage, Store, StoreError};
use crate::transport::{Endpoint, GlpiClient, RetryPolicy, TransportError, backoff_delay};
use crate::wire::{AlertsBody, MAX_COALESCED_BYTES, UnixTime, WireError, merge_alerts};

/// What one flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    /// Messages delivered / kept after a failed POST (a coalesced POST counts each message).
    pub delivered: usize,
    pub failed: usize,
    /// POSTs sent (transport retries not counted).
    pub posts: usize,
    /// Messages still pending afterwards (failed or not yet due).
    pub pending: usize,
    /// The last failure, for the task's own exit status.
    pub last_error: Option<String>,
    /// Whether the flush stopped early because the server could not be reached.
    pub server_unreachable: bool,
    /// Whether a POST failed because the server is down or not answering as the plugin does
    /// (unreachable, 5xx, timeout, a page instead of the plugin's reply), not because it
    /// rejected the message: a daemon backs off.
    pub server_unavailable: bool,
    /// Why this run delivers no more (deadline, failures in a row), once it stopped.
    pub halted: Option<String>,
}

impl FlushReport {
    /// The error of a run that leaves messages behind: [`AgentError::Unavailable`] when the
    /// server was the trouble.
    pub fn kept_error(&self, line: String) -> super::AgentError {
        if self.server_unavailable {
            super::AgentError::Unavailable(line)
        } else {
            super::AgentError::Task(line)
        }
    }
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

    /// Count one failure of a POST split `depth` times from a coalesced one; `true` when it is
    /// the one too many. Each split may add one failure in a row on the way to the one
    /// malformed alert, so the allowance grows with the depth (bounded: ⌈log2 alerts per POST⌉).
    fn failed(&mut self, server_trouble: bool, depth: u32) -> bool {
        if !server_trouble {
            return false;
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= self.max_failures.saturating_add(depth) {
            self.halt(format!(
                "{} server errors or timeouts in a row",
                self.failures_in_a_row
            ));
            return true;
        }
        false
    }
}

/// One POST to make: one stored message, or alert messages coalesced into one body.
#[derive(Debug)]
struct Post {
    msgs: Vec<OutboxMessage>,
    /// How many times a failed coalesced POST was split to reach this one (0: as planned).
    depth: u32,
}

impl Post {
    fn new(msg: OutboxMessage) -> Post {
        Post {
            msgs: vec![msg],
            depth: 0,
        }
    }

    /// The exact body: a single message as stored; several alert messages merged.
    fn body(&self) -> Result<std::borrow::Cow<'_, [u8]>, WireError> {
        match self.msgs.as_slice() {
            [one] => Ok(std::borrow::Cow::Borrowed(&one.body)),
            many => {
                let parts: Vec<AlertsBody<'_>> = many
                    .iter()
                    .map(|m| {
                        AlertsBody::parse(&m.body).ok_or_else(|| {
                            WireError::Encode(format!("outbox message {} is not mergeable", m.id))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                merge_alerts(&parts).map(std::borrow::Cow::Owned)
            }
        }
    }

    /// Halves of a failed coalesced POST: the one malformed alert a server rejects (PHP fails
    /// the whole POST on it) ends up alone, and the others are delivered.
    fn split(mut self) -> (Post, Post) {
        let back = self.msgs.split_off(self.msgs.len() / 2);
        let depth = self.depth + 1;
        (
            Post {
                msgs: self.msgs,
                depth,
            },
            Post { msgs: back, depth },
        )
    }

    fn ids(&self) -> Vec<i64> {
        self.msgs.iter().map(|m| m.id).collect()
    }

    fn max_attempts(&self) -> u32 {
        self.msgs.iter().map(|m| m.attempts).max().unwrap_or(0)
    }
}

/// The POSTs for `batch`, in the order of their oldest message. Alert messages with the same
/// envelope and job id (see `wire::coalesce`) join the first open POST of that envelope, up
/// to `per_post` alerts and [`MAX_COALESCED_BYTES`]; every other message is a POST of its own.
/// Only alerts move ahead of other messages, and alerts are independent rows on the server.
fn plan(batch: Vec<OutboxMessage>, per_post: usize) -> Vec<Post> {
    struct Open {
        post: usize,
        alerts: usize,
        bytes: usize,
    }
    let mut posts: Vec<Post> = Vec::new();
    let mut open: HashMap<String, Open> = HashMap::new();
    for msg in batch {
        let coalescable = (per_post > 1
            && msg.kind == MessageKind::Alerts
            && msg.endpoint == Endpoint::Alerts.name())
        .then(|| AlertsBody::parse(&msg.body))
        .flatten()
        .map(|b| (b.envelope_key(), b.alerts()));
        let Some((key, alerts)) = coalescable else {
            posts.push(Post::new(msg));
            continue;
        };
        let bytes = msg.body.len();
        if let Some(o) = open.get_mut(&key)
            && o.alerts + alerts <= per_post
            && o.bytes + bytes <= MAX_COALESCED_BYTES
        {
            o.alerts += alerts;
            o.bytes += bytes;
            posts[o.post].msgs.push(msg);
            continue;
        }
        open.insert(
            key,
            Open {
                post: posts.len(),
                alerts,
                bytes,
            },
        );
        posts.push(Post::new(msg));
    }
    posts
}

/// The POST failed: every message it carried stays, with the error and one next try.
fn keep(
    store: &mut Store,
    report: &mut FlushReport,
    post: &Post,
    line: &str,
    attempts: u32,
    next_try_at: i64,
) -> Result<(), StoreError> {
    store.messages_failed(&post.ids(), line, next_try_at)?;
    report.failed += post.msgs.len();
    let first = &post.msgs[0];
    tracing::warn!(endpoint = %first.endpoint, kind = first.kind.as_str(), job_id = ?first.job_id,
        messages = post.msgs.len(), attempts, retry_at = next_try_at,
        "delivery failed, kept for a later try: {line}");
    Ok(())
}

/// Why a POST was not acknowledged.
struct Failure {
    line: String,
    /// The server cannot be reached: the other POSTs would fail the same way.
    unreachable: bool,
    /// A 5xx or a timeout: counts towards the run's failures in a row.
    trouble: bool,
    /// Not a rejection of this message (see [`FlushReport::server_unavailable`]).
    unavailable: bool,
}

/// Held by the flush in progress (see the module's invariants).
static FLUSHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends every due message, oldest first, alert messages coalesced (see [`plan`]).
pub async fn flush(
    store: &mut Store,
    client: &GlpiClient,
    cfg: &OutboxConfig,
    budget: &mut RunBudget,
) -> Result<FlushReport, StoreError> {
    let _flushing = FLUSHING.lock().await;
    let mut report = FlushReport::default();
    let now = UnixTime::now().secs();
    // One batch of due messages; messages added while we deliver wait for the next flush.
    let batch = if budget.halted.is_some() {
        Vec::new()
    } else {
        store.due_messages(now, 10_000)?
    };
    let mut posts: VecDeque<Post> = plan(batch, cfg.coalesce_alerts.max(1)).into();
    while let Some(post) = posts.pop_front() {
        if budget.remaining().is_zero() {
            budget.halt(format!("the delivery deadline ({} s) passed", cfg.deadline));
            break;
        }
        let n = post.msgs.len();
        let kind = post.msgs[0].kind;
        let endpoint_name = post.msgs[0].endpoint.clone();
        let Some(endpoint) = Endpoint::ALL
            .iter()
            .copied()
            .find(|e| e.name() == endpoint_name)
        else {
            // Cannot happen with messages this agent wrote; keep it visible rather than drop it.
            store.messages_failed(
                &post.ids(),
                &format!("unknown endpoint {endpoint_name:?}"),
                i64::MAX,
            )?;
            report.failed += n;
            continue;
        };
        let body = match post.body() {
            Ok(b) => b.into_owned(),
            Err(e) => {
                // Planned from the same bytes, so unexpected: send them one by one instead.
                tracing::warn!("alerts not coalesced: {e}");
                for msg in post.msgs.into_iter().rev() {
                    posts.push_front(Post::new(msg));
                }
                continue;
            }
        };
        report.posts += 1;
        let Ok(answer) =
            tokio::time::timeout(budget.remaining(), client.post(endpoint, &body)).await
        else {
            // Cut mid-request: it may have been processed; it stays queued (at least once).
            let line = format!(
                "the delivery deadline ({} s) passed during the request",
                cfg.deadline
            );
            store.messages_failed(&post.ids(), &line, now)?;
            report.failed += n;
            report.last_error = Some(line);
            budget.halt(format!("the delivery deadline ({} s) passed", cfg.deadline));
            break;
        };
        let outcome = match answer {
            Ok(reply) => match processed(&reply.body) {
                Processed::Yes => Ok(()),
                Processed::WithNotice => {
                    tracing::warn!(endpoint = %endpoint, kind = kind.as_str(), body = %reply.summary(),
                        "server accepted the message but printed PHP notices");
                    Ok(())
                }
                Processed::No => Err(Failure {
                    line: format!(
                        "POST {}: server answered HTTP {} with a page instead of the plugin's empty reply (maintenance, proxy or PHP fatal error): {}",
                        client.endpoint_url(endpoint),
                        reply.status,
                        reply.summary()
                    ),
                    unreachable: false,
                    trouble: false,
                    // A maintenance page, a proxy, a PHP fatal error: the server is in trouble.
                    unavailable: true,
                }),
            },
            Err(e) => Err(Failure {
                line: e.to_string(),
                unreachable: unreachable(&e),
                trouble: server_trouble(&e),
                unavailable: e.status().is_none_or(|s| s >= 500),
            }),
        };
        let f = match outcome {
            Ok(()) => {
                budget.failures_in_a_row = 0;
                store.messages_delivered(&post.msgs)?;
                report.delivered += n;
                tracing::debug!(endpoint = %endpoint, kind = kind.as_str(), job_id = ?post.msgs[0].job_id, messages = n, "delivered");
                continue;
            }
            Err(f) => f,
        };
        report.last_error = Some(f.line.clone());
        report.server_unavailable |= f.unavailable;
        let attempts = post.max_attempts() + 1;
        let next_try = now + backoff_secs(cfg, attempts) as i64;
        if f.unreachable {
            keep(store, &mut report, &post, &f.line, attempts, next_try)?;
            report.server_unreachable = true;
            break;
        }
        // A coalesced POST that failed counts as trouble even on a 4xx or a page: bisecting it
        // must stay bounded when the server rejects everything.
        if budget.failed(f.trouble || n > 1, post.depth) {
            keep(store, &mut report, &post, &f.line, attempts, next_try)?;
            break;
        }
        if n > 1 {
            tracing::info!(endpoint = %endpoint, messages = n, "a coalesced POST failed, sending it in halves: {}", f.line);
            let (a, b) = post.split();
            posts.push_front(b);
            posts.push_front(a);
            continue;
        }
        keep(store, &mut report, &post, &f.line, attempts, next_try)?;
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
    fn a_run_that_kept_messages_because_of_the_server_is_unavailable() {
        // The daemon backs off on `Unavailable` (daemon::policy), keeps its pace on `Task`.
        let mut report = FlushReport {
            pending: 1,
            ..Default::default()
        };
        assert!(matches!(
            report.kept_error("kept".into()),
            crate::session::AgentError::Task(_)
        ));
        report.server_unavailable = true;
        assert!(matches!(
            report.kept_error("kept".into()),
            crate::session::AgentError::Unavailable(m) if m == "kept"
        ));
    }

    #[tokio::test]
    async fn flushes_take_turns() {
        let first = FLUSHING.lock().await;
        assert!(FLUSHING.try_lock().is_err(), "a second flush waits");
        drop(first);
        assert!(FLUSHING.try_lock().is_ok());
    }

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

    fn alert_msg(id: i64, job_id: Option<i64>, alerts: usize) -> OutboxMessage {
        use crate::wire::{
            AlertsReport, AntivirusInfo, Envelope, MachineUuid, TaskName, WireAlert,
        };
        let uuid = MachineUuid::parse("4C4C4544-0033-4A10-8051-B4C04F4E4B32").unwrap();
        let alerts = (0..alerts)
            .map(|i| WireAlert {
                name: format!("Eicar-{id}-{i}"),
                filepath: format!("/tmp/{id}/{i}"),
                action: "none".into(),
                detection_time: UnixTime::new(1_700_000_000).unwrap(),
                module_name: "clamav".into(),
                info: String::new(),
            })
            .collect();
        let body = Envelope::new(
            2,
            uuid,
            TaskName::Alerts,
            AntivirusInfo::new("ClamAV", "1.0"),
            AlertsReport { alerts, job_id },
        )
        .to_body()
        .unwrap();
        msg(id, MessageKind::Alerts, "alerts", job_id, body)
    }

    fn msg(
        id: i64,
        kind: MessageKind,
        endpoint: &str,
        job_id: Option<i64>,
        body: Vec<u8>,
    ) -> OutboxMessage {
        OutboxMessage {
            id,
            endpoint: endpoint.into(),
            kind,
            job_id,
            size: body.len(),
            body,
            created_at: 0,
            attempts: 0,
            next_try_at: 0,
            last_error: None,
        }
    }

    fn shape(posts: &[Post]) -> Vec<Vec<i64>> {
        posts.iter().map(Post::ids).collect()
    }

    #[test]
    fn plan_coalesces_alerts_of_one_envelope_up_to_the_limit() {
        let batch: Vec<_> = (1..=250).map(|id| alert_msg(id, None, 1)).collect();
        let posts = plan(batch.clone(), 100);
        assert_eq!(
            posts.iter().map(|p| p.msgs.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let ids: Vec<i64> = posts.iter().flat_map(Post::ids).collect();
        assert_eq!(
            ids,
            (1..=250).collect::<Vec<_>>(),
            "every message once, in order"
        );
        // The merged body carries the 100 alerts of its messages, in order.
        let body = posts[1].body().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let alerts = v["task"]["obj"]["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 100);
        assert_eq!(alerts[0]["name"], "Eicar-101-0");
        assert_eq!(alerts[99]["name"], "Eicar-200-0");
        // 1 = the old behaviour: one POST per message, bodies as stored.
        let one = plan(batch.clone(), 1);
        assert_eq!(one.len(), 250);
        assert_eq!(&*one[7].body().unwrap(), batch[7].body.as_slice());
    }

    #[test]
    fn plan_counts_alerts_not_messages_and_keeps_other_messages_in_place() {
        let state = msg(3, MessageKind::State, "states", None, b"{}".to_vec());
        let status = msg(6, MessageKind::JobStatus, "jobs", Some(7), b"{}".to_vec());
        let bad = msg(
            5,
            MessageKind::Alerts,
            "alerts",
            None,
            b"{\"x\":1}".to_vec(),
        );
        let batch = vec![
            alert_msg(1, None, 60),
            alert_msg(2, Some(7), 1),
            state,
            alert_msg(4, None, 30),
            bad,
            status,
            alert_msg(8, None, 20), // 60 + 30 + 20 > 100: a new POST
            alert_msg(9, Some(7), 1),
            alert_msg(10, None, 150), // larger than a POST on its own: alone, as stored
        ];
        let posts = plan(batch, 100);
        assert_eq!(
            shape(&posts),
            [
                vec![1, 4],
                vec![2, 9],
                vec![3],
                vec![5],
                vec![6],
                vec![8],
                vec![10]
            ]
        );
        let v: serde_json::Value = serde_json::from_slice(&posts[1].body().unwrap()).unwrap();
        assert_eq!(v["task"]["obj"]["job_id"], 7);
        assert_eq!(v["task"]["obj"]["alerts"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn plan_keeps_coalesced_bodies_under_the_size_cap() {
        // ~40 KiB per message: a POST stops before MAX_COALESCED_BYTES.
        let big = |id| {
            let mut m = alert_msg(id, None, 1);
            let s = String::from_utf8(m.body).unwrap();
            m.body = s
                .replace(
                    "\"info\":\"\"",
                    &format!("\"info\":\"{}\"", "i".repeat(40_000)),
                )
                .into_bytes();
            m.size = m.body.len();
            m
        };
        let posts = plan((1..=30).map(big).collect(), 100);
        assert!(posts.len() >= 3, "{}", posts.len());
        for p in &posts {
            assert!(p.body().unwrap().len() <= MAX_COALESCED_BYTES + 1024);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Whatever the mix: every message in exactly one POST; a POST of several messages
        /// holds alerts of one envelope, at most `per_post` of them, in id order; every other
        /// message is alone; non-alert messages keep their relative order.
        #[test]
        fn plan_never_loses_reorders_or_mixes(
            spec in proptest::collection::vec((0u8..5, 1usize..4), 0..120),
            per_post in 1usize..12,
        ) {
            let batch: Vec<OutboxMessage> = spec
                .iter()
                .enumerate()
                .map(|(i, (what, n))| {
                    let id = i as i64 + 1;
                    match what {
                        0 => alert_msg(id, None, *n),
                        1 => alert_msg(id, Some(7), *n),
                        2 => alert_msg(id, Some(8), 1),
                        3 => msg(id, MessageKind::Alerts, "alerts", None, b"[".to_vec()),
                        _ => msg(id, MessageKind::State, "states", None, b"{}".to_vec()),
                    }
                })
                .collect();
            let posts = plan(batch.clone(), per_post);
            let mut ids: Vec<i64> = posts.iter().flat_map(Post::ids).collect();
            ids.sort();
            proptest::prop_assert_eq!(ids, (1..=batch.len() as i64).collect::<Vec<_>>());
            let mut others = Vec::new();
            for p in &posts {
                let ids = p.ids();
                proptest::prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
                if p.msgs.len() > 1 {
                    let bodies: Vec<AlertsBody<'_>> =
                        p.msgs.iter().filter_map(|m| AlertsBody::parse(&m.body)).collect();
                    proptest::prop_assert_eq!(bodies.len(), p.msgs.len());
                    let alerts: usize = bodies.iter().map(AlertsBody::alerts).sum();
                    proptest::prop_assert!(alerts <= per_post);
                    proptest::prop_assert!(merge_alerts(&bodies).is_ok());
                }
                if p.msgs[0].kind != MessageKind::Alerts {
                    others.push(p.msgs[0].id);
                }
            }
            proptest::prop_assert!(others.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn a_split_post_keeps_every_message_once() {
        let posts = plan((1..=7).map(|id| alert_msg(id, None, 1)).collect(), 100);
        let (a, b) = posts.into_iter().next().unwrap().split();
        assert_eq!((a.ids(), b.ids()), (vec![1, 2, 3], vec![4, 5, 6, 7]));
        assert_eq!((a.depth, b.depth), (1, 1));
    }

    #[test]
    fn bisecting_is_bounded_by_depth() {
        let cfg = OutboxConfig::default();
        let mut b = RunBudget::new(&cfg);
        // On the way to one malformed alert among 100: 8 failures in a row at depths 0..=7.
        for depth in 0..=7 {
            assert!(!b.failed(true, depth), "depth {depth}");
        }
        // A top-level POST failing afterwards is the one too many.
        assert!(b.failed(true, 0));
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
