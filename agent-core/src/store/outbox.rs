//! The outbox: every message for the server waits here until the server answered 2xx.
//!
//! Invariants:
//! - A message is inserted in the same transaction as the state change it reports
//!   (e.g. a job becoming `finished`), and deleted only after a 2xx answer for it.
//! - Messages are delivered oldest first. A message whose `supersede_key` is set (the latest
//!   State, the latest AVConfig, a scan's progress) replaces the pending one with the same key:
//!   only the newest of those is worth sending. Job statuses, scan results and alerts have no
//!   such key and are never dropped.
//! - A superseding message of the same kind inherits the retry schedule of the one it
//!   replaces (`attempts`, `next_try_at`, `last_error`): the backoff belongs to the server's
//!   trouble, not to the body. Otherwise every State/AVConfig/Scheduler run (or scan progress
//!   report) would reset the backoff and send at once, and a fleet re-running those tasks
//!   would keep hammering a failing server. A scan's final result replacing its progress
//!   report is another message: it is due at once, so that, being older, it still leaves
//!   before the job's status.
//! - Delivering a job's status marks the job `reported` in the same transaction as the delete.
//! - Messages sent together in one POST (coalesced alerts) are deleted together, in one
//!   transaction, once that POST is acknowledged; a failed POST keeps every one of them.
//! - Re-sending is safe: the server overwrites job statuses and scan rows, and de-duplicates
//!   alerts by checksum, so a crash between "server answered" and "row deleted" only causes a
//!   harmless replay.

use rusqlite::{Row, Transaction, params};
use serde::Serialize;

use super::jobs::UnknownText;
use super::{Store, StoreError};
use crate::wire::UnixTime;

/// What a message is, for supersession, `outbox` listings and the job state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MessageKind {
    JobStatus,
    ScanProgress,
    ScanResult,
    Alerts,
    State,
    /// Stored as `avconfig` (the column predates the enum); `av_config` in JSON listings.
    #[strum(serialize = "avconfig")]
    AvConfig,
    Scheduler,
}

impl MessageKind {
    /// The text stored in the `outbox.kind` column.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The kind written by [`MessageKind::as_str`]; other text is an error.
    pub fn parse(s: &str) -> Result<Self, UnknownText> {
        s.parse().map_err(|_| UnknownText::new("message kind", s))
    }
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// `Endpoint::name()` of the transport (`jobs`, `scans`, …).
    pub endpoint: &'static str,
    pub kind: MessageKind,
    pub supersede_key: Option<String>,
    pub job_id: Option<i64>,
    /// The exact request body.
    pub body: Vec<u8>,
}

/// A pending message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub endpoint: String,
    pub kind: MessageKind,
    pub job_id: Option<i64>,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub size: usize,
    pub created_at: i64,
    pub attempts: u32,
    pub next_try_at: i64,
    pub last_error: Option<String>,
}

const COLUMNS: &str =
    "id, endpoint, kind, job_id, body, created_at, attempts, next_try_at, last_error";

fn row_to_msg(r: &Row<'_>) -> rusqlite::Result<OutboxMessage> {
    let kind: String = r.get(2)?;
    let body: Vec<u8> = r.get(4)?;
    Ok(OutboxMessage {
        id: r.get(0)?,
        endpoint: r.get(1)?,
        kind: MessageKind::parse(&kind).map_err(|e| e.at(2))?,
        job_id: r.get(3)?,
        size: body.len(),
        body,
        created_at: r.get(5)?,
        attempts: r.get(6)?,
        next_try_at: r.get(7)?,
        last_error: r.get(8)?,
    })
}

pub(crate) fn insert_messages(
    tx: &Transaction<'_>,
    messages: &[NewMessage],
) -> rusqlite::Result<()> {
    let now = UnixTime::now().secs();
    for m in messages {
        // A superseding message takes the place (the FIFO position and the retry schedule)
        // of the pending one; see the module's invariants.
        tx.execute(
            "INSERT INTO outbox (endpoint, kind, supersede_key, job_id, body, created_at, next_try_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT(supersede_key) DO UPDATE SET
                endpoint = excluded.endpoint, kind = excluded.kind, job_id = excluded.job_id,
                body = excluded.body, created_at = excluded.created_at,
                attempts = CASE WHEN kind = excluded.kind THEN attempts ELSE 0 END,
                next_try_at = CASE WHEN kind = excluded.kind THEN next_try_at ELSE excluded.next_try_at END,
                last_error = CASE WHEN kind = excluded.kind THEN last_error ELSE NULL END",
            params![m.endpoint, m.kind.as_str(), m.supersede_key, m.job_id, m.body, now],
        )?;
    }
    Ok(())
}

impl Store {
    /// Queues messages in one transaction (for changes that have no other state to update).
    pub fn enqueue_messages(&mut self, messages: &[NewMessage]) -> Result<(), StoreError> {
        self.write(|tx| insert_messages(tx, messages))
    }

    /// Queues messages and moves a cursor in one transaction: a source (alerts log, config
    /// hash) advances only once what it produced is safely in the outbox.
    pub fn enqueue_with_cursor(
        &mut self,
        messages: &[NewMessage],
        cursor: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            insert_messages(tx, messages)?;
            super::identity_store::upsert_cursor(tx, cursor, value)
        })
    }

    /// Messages whose next try is due, oldest first.
    pub fn due_messages(&self, now: i64, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE next_try_at <= ?1 ORDER BY id LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![now, limit as i64], row_to_msg)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The pending message of `supersede_key` when it waits for the backoff of an earlier
    /// failure: its next try (after `now`) and that failure.
    pub fn backing_off(
        &self,
        supersede_key: &str,
        now: i64,
    ) -> Result<Option<(i64, Option<String>)>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn()
            .query_row(
                "SELECT next_try_at, last_error FROM outbox WHERE supersede_key = ?1 AND next_try_at > ?2",
                params![supersede_key, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn outbox(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        self.due_messages(i64::MAX, usize::MAX >> 1)
    }

    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        self.conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// The server answered 2xx: delete the message; a job status marks its job `reported`.
    pub fn message_delivered(&mut self, msg: &OutboxMessage) -> Result<(), StoreError> {
        self.messages_delivered(std::slice::from_ref(msg))
    }

    /// One POST carried all of `msgs` and the server answered 2xx: delete them together (with
    /// what [`Store::message_delivered`] does for each), or none of them.
    pub fn messages_delivered(&mut self, msgs: &[OutboxMessage]) -> Result<(), StoreError> {
        self.write(|tx| {
            for msg in msgs {
                tx.execute("DELETE FROM outbox WHERE id = ?1", [msg.id])?;
                if let (MessageKind::JobStatus, Some(job_id)) = (msg.kind, msg.job_id) {
                    tx.execute(
                        "UPDATE jobs SET state = 'reported' WHERE job_id = ?1 AND state = 'finished'",
                        [job_id],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// The POST carrying all of `ids` failed: keep every one, count the attempt, one next try.
    pub fn messages_failed(
        &mut self,
        ids: &[i64],
        error: &str,
        next_try_at: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            for id in ids {
                tx.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_try_at = ?2, last_error = ?3 WHERE id = ?1",
                    params![id, next_try_at, error],
                )?;
            }
            Ok(())
        })
    }

    /// Delivery failed: keep the message, count the attempt, schedule the next try.
    pub fn message_failed(&self, id: i64, error: &str, next_try_at: i64) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, next_try_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, next_try_at, error],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
