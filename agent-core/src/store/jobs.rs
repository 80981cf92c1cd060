//! The durable job queue.
//!
//! Invariants:
//! - The server marks jobs `downloaded` before it answers GET jobs: a job in a reply exists
//!   nowhere else. [`Store::enqueue_jobs`] stores the whole reply in one transaction, before
//!   anything else happens with it. Known `job_id`s are ignored (never run twice).
//! - A job moves `queued → running → finished → reported`, each step one transaction. The step
//!   to `finished` inserts the job-status message (and any result message) into the outbox in the
//!   same transaction; the step to `reported` happens when that status is delivered.
//! - A job found `running` when Runjobs starts was interrupted by a crash. Its `attempts` counts
//!   the starts; per-type policy ([`RecoveryPolicy`]) decides whether it runs again or is
//!   reported failed, and after `max_attempts` starts it is quarantined (reported failed).
//! - Jobs we could not understand are kept (`invalid` holds why) and fail when their turn
//!   comes, so the server is told. Jobs without a usable `job_id` cannot be reported: they go to
//!   `unreportable_jobs` for the admin to see, and are logged.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::outbox::{NewMessage, insert_messages};
use super::{Store, StoreError};
use crate::wire::{ParsedJob, UnixTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Finished,
    Reported,
}

impl JobState {
    /// The text stored in the `jobs.state` column.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The state written by [`JobState::as_str`]; other text is an error (a row this version
    /// does not understand must not silently become `queued` and run again).
    pub fn parse(s: &str) -> Result<Self, UnknownText> {
        s.parse().map_err(|_| UnknownText::new("job state", s))
    }
}

/// A stored enum value this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {text:?} in the state store")]
pub struct UnknownText {
    what: &'static str,
    text: String,
}

impl UnknownText {
    pub(crate) fn new(what: &'static str, text: &str) -> Self {
        UnknownText {
            what,
            text: text.to_owned(),
        }
    }

    /// As a column conversion error of column `col`.
    pub(crate) fn at(self, col: usize) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(self))
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredJob {
    pub job_id: i64,
    pub job_type: String,
    pub priority: u8,
    pub obj: serde_json::Value,
    pub state: JobState,
    /// Why the job cannot run (malformed on arrival); it fails with this message.
    pub invalid: Option<String>,
    pub attempts: u32,
    pub received_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub result_code: Option<i32>,
    pub last_error: Option<String>,
}

/// A job that arrived without a usable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreportableJob {
    pub id: i64,
    pub reason: String,
    pub raw: String,
    pub received_at: i64,
}

/// What [`Store::enqueue_jobs`] did with a reply.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct EnqueueReport {
    pub added: Vec<i64>,
    pub duplicates: Vec<i64>,
    pub invalid: Vec<i64>,
    pub unreportable: usize,
}

/// What to do with a job that was `running` when the agent died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryPolicy {
    /// Run it again (the job is idempotent, e.g. a scan), until `max_attempts` starts.
    Retry,
    /// Report it failed with "agent stopped during execution".
    Fail,
}

/// Cursor set just before `GET jobs` and removed in the transaction that stores the reply.
/// Found set at the next Getjobs, it means a run died while the server's reply was in flight.
pub const GETJOBS_IN_FLIGHT: &str = "getjobs_in_flight";

const COLUMNS: &str = "job_id, job_type, priority, obj, state, invalid, attempts, received_at, started_at, finished_at, result_code, last_error";

fn row_to_job(r: &Row<'_>) -> rusqlite::Result<StoredJob> {
    let obj: String = r.get(3)?;
    let state: String = r.get(4)?;
    Ok(StoredJob {
        job_id: r.get(0)?,
        job_type: r.get(1)?,
        priority: r.get(2)?,
        obj: serde_json::from_str(&obj).unwrap_or(serde_json::Value::Null),
        state: JobState::parse(&state).map_err(|e| e.at(4))?,
        invalid: r.get(5)?,
        attempts: r.get(6)?,
        received_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        result_code: r.get(10)?,
        last_error: r.get(11)?,
    })
}

impl Store {
    /// Stores a GET jobs reply in one transaction (see the module invariants).
    pub fn enqueue_jobs(&mut self, jobs: &[ParsedJob]) -> Result<EnqueueReport, StoreError> {
        let now = UnixTime::now().secs();
        self.write(|tx| {
            let mut report = EnqueueReport::default();
            for job in jobs {
                let (job_id, job_type, priority, obj, invalid) = match job {
                    Ok(j) => (
                        j.job_id,
                        j.job_type.clone(),
                        j.priority.value(),
                        j.obj.to_string(),
                        None,
                    ),
                    Err(bad) => match bad.job_id {
                        Some(id) => (
                            id,
                            String::new(),
                            0,
                            bad.raw.clone(),
                            Some(bad.reason.clone()),
                        ),
                        None => {
                            tx.execute(
                                "INSERT INTO unreportable_jobs (reason, raw, received_at) VALUES (?1, ?2, ?3)",
                                params![bad.reason, bad.raw, now],
                            )
                            ?;
                            tracing::error!(
                                reason = %bad.reason,
                                "the server sent a job without a usable job_id: it cannot be run or reported (kept in unreportable_jobs)"
                            );
                            report.unreportable += 1;
                            continue;
                        }
                    },
                };
                let inserted = tx
                    .execute(
                        "INSERT OR IGNORE INTO jobs (job_id, job_type, priority, obj, state, invalid, received_at)
                         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
                        params![job_id, job_type, priority, obj, invalid, now],
                    )
                    ?;
                match (inserted, &invalid) {
                    (0, _) => report.duplicates.push(job_id),
                    (_, Some(_)) => report.invalid.push(job_id),
                    (_, None) => report.added.push(job_id),
                }
            }
            // The reply is safe: the "GET jobs in flight" marker goes with it (see jobs::getjobs).
            super::identity_store::delete_cursor(tx, GETJOBS_IN_FLIGHT)?;
            Ok(report)
        })
    }

    /// The next job to run: highest priority, then oldest arrival, then lowest id.
    pub fn next_queued_job(&self) -> Result<Option<StoredJob>, StoreError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE state = 'queued'
                     ORDER BY priority DESC, received_at ASC, job_id ASC LIMIT 1"
                ),
                [],
                row_to_job,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn job(&self, job_id: i64) -> Result<Option<StoredJob>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE job_id = ?1"),
                [job_id],
                row_to_job,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn jobs(&self) -> Result<Vec<StoredJob>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS} FROM jobs ORDER BY CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 WHEN 'finished' THEN 2 ELSE 3 END,
                 priority DESC, received_at, job_id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_job).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn unreportable_jobs(&self) -> Result<Vec<UnreportableJob>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare("SELECT id, reason, raw, received_at FROM unreportable_jobs ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(UnreportableJob {
                    id: r.get(0)?,
                    reason: r.get(1)?,
                    raw: r.get(2)?,
                    received_at: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// `queued → running`, counting the attempt. Returns false if the job was not queued
    /// (another process took it).
    pub fn start_job(&mut self, job_id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?2
                 WHERE job_id = ?1 AND state = 'queued'",
                params![job_id, UnixTime::now().secs()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// `running|queued → finished`, with the status and result messages queued for delivery in
    /// the same transaction.
    pub fn finish_job(
        &mut self,
        job_id: i64,
        result_code: i32,
        error: Option<&str>,
        messages: &[NewMessage],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE jobs SET state = 'finished', finished_at = ?2, result_code = ?3, last_error = ?4 WHERE job_id = ?1",
                params![job_id, UnixTime::now().secs(), result_code, error],
            )?;
            insert_messages(tx, messages)
        })
    }

    /// Jobs left `running` by a dead agent.
    pub fn interrupted_jobs(&self) -> Result<Vec<StoredJob>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE state = 'running' ORDER BY job_id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_job).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Puts an interrupted job back in the queue (its attempt stays counted).
    pub fn requeue_job(&mut self, job_id: i64, note: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE jobs SET state = 'queued', last_error = ?2 WHERE job_id = ?1 AND state = 'running'",
                params![job_id, note],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Deletes reported jobs older than `before` (keeps the queue small; the server has them).
    pub fn prune_reported_jobs(&self, before: i64) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM jobs WHERE state = 'reported' AND finished_at < ?1",
                [before],
            )
            .map_err(|e| self.err(e))
    }
}
