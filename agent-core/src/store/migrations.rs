//! Schema migrations, in order. `PRAGMA user_version` is the number of steps applied.
//! Append new steps; never edit a step that has shipped.

use rusqlite::Connection;

const STEPS: &[&str] = &[
    // 1: identity, enrollment and cursors.
    "CREATE TABLE identity (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        uuid        TEXT NOT NULL,
        source      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE enrollment (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        agent_id     INTEGER NOT NULL CHECK (agent_id > 0),
        scheduler_id INTEGER NOT NULL,
        server       TEXT NOT NULL,
        uuid         TEXT NOT NULL,
        enrolled_at  INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE TABLE cursors (
        name        TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    );",
    // 2: the job queue and the outbox (see store/jobs.rs and store/outbox.rs for the invariants).
    "CREATE TABLE jobs (
        job_id        INTEGER PRIMARY KEY,
        job_type      TEXT NOT NULL,
        priority      INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
        obj           TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'reported')),
        invalid       TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        received_at   INTEGER NOT NULL,
        started_at    INTEGER,
        finished_at   INTEGER,
        result_code   INTEGER,
        last_error    TEXT
    );
    CREATE INDEX jobs_next ON jobs (state, priority DESC, received_at, job_id);
    CREATE TABLE unreportable_jobs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        reason       TEXT NOT NULL,
        raw          TEXT NOT NULL,
        received_at  INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint      TEXT NOT NULL,
        kind          TEXT NOT NULL,
        supersede_key TEXT UNIQUE,
        job_id        INTEGER,
        body          BLOB NOT NULL,
        created_at    INTEGER NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_try_at   INTEGER NOT NULL,
        last_error    TEXT
    );",
];

pub const LATEST: i64 = STEPS.len() as i64;

#[derive(Debug)]
pub enum MigrationError {
    TooNew { found: i64, supported: i64 },
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrationError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

pub fn run(conn: &mut Connection) -> Result<(), MigrationError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(MigrationError::TooNew {
            found: current,
            supported: LATEST,
        });
    }
    for (i, sql) in STEPS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-read inside the write lock: another agent process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::debug!(version = i + 1, "state store schema migrated");
    }
    Ok(())
}
