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
        return Err(MigrationError::TooNew { found: current, supported: LATEST });
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
