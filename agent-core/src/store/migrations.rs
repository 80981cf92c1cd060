//! Schema migrations, in order, applied by `rusqlite_migration`.
//!
//! Invariants:
//! - `PRAGMA user_version` is the number of steps applied (the scheme this module used before
//!   `rusqlite_migration`, which keeps its version the same way: old stores open unchanged).
//! - Append new steps; never edit a step that has shipped.
//! - Each run of steps is one transaction taken with the write lock (`BEGIN IMMEDIATE`); when
//!   another agent process migrated between our read of the version and our lock, the step fails
//!   (its tables exist), rolls back, and we start again from the version that process left.

use rusqlite::{Connection, TransactionBehavior};
use rusqlite_migration::{M, MigrationDefinitionError, Migrations};

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

/// How often a migration that lost the race to another process is retried.
const RACE_RETRIES: usize = 3;

#[derive(Debug)]
pub enum MigrationError {
    TooNew {
        found: i64,
        supported: i64,
    },
    Sqlite(rusqlite::Error),
    /// A failure of the migration runner itself (its own definition checks).
    Runner(String),
}

impl From<rusqlite::Error> for MigrationError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

fn migrations() -> Migrations<'static> {
    Migrations::new(STEPS.iter().map(|sql| M::up(sql)).collect())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

pub fn run(conn: &mut Connection) -> Result<(), MigrationError> {
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    let result = run_steps(conn);
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    result
}

fn run_steps(conn: &mut Connection) -> Result<(), MigrationError> {
    let migrations = migrations();
    let mut attempt = 0;
    loop {
        let before = user_version(conn)?;
        if before > LATEST {
            return Err(MigrationError::TooNew {
                found: before,
                supported: LATEST,
            });
        }
        let err = match migrations.to_latest(conn) {
            Ok(()) => {
                if before < LATEST {
                    tracing::debug!(from = before, to = LATEST, "state store schema migrated");
                }
                return Ok(());
            }
            Err(e) => e,
        };
        // Another agent process moved the version meanwhile: our transaction rolled back.
        attempt += 1;
        if attempt <= RACE_RETRIES && user_version(conn)? != before {
            continue;
        }
        return Err(match err {
            rusqlite_migration::Error::RusqliteError { err, .. } => MigrationError::Sqlite(err),
            rusqlite_migration::Error::MigrationDefinition(
                MigrationDefinitionError::DatabaseTooFarAhead,
            ) => MigrationError::TooNew {
                found: user_version(conn)?,
                supported: LATEST,
            },
            other => MigrationError::Runner(other.to_string()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_valid() {
        migrations().validate().unwrap();
    }

    /// A store written by the hand-rolled migrator (user_version = 1: identity tables only,
    /// with a row in them) upgrades to the latest schema and keeps its data.
    #[test]
    fn store_of_an_older_schema_is_upgraded_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(STEPS[0]).unwrap();
            c.execute(
                "INSERT INTO identity (id, uuid, source, created_at) VALUES (1, 'U', 'config', 7)",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut c = Connection::open(&path).unwrap();
        run(&mut c).unwrap();
        assert_eq!(user_version(&c).unwrap(), LATEST);
        let uuid: String = c
            .query_row("SELECT uuid FROM identity WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(uuid, "U");
        c.execute(
            "INSERT INTO jobs (job_id, job_type, priority, obj, state, received_at)
             VALUES (1, 'scan', 1, '{}', 'queued', 7)",
            [],
        )
        .unwrap();
        // A second run is a no-op.
        run(&mut c).unwrap();
        assert_eq!(user_version(&c).unwrap(), LATEST);
    }

    /// Two processes migrating one new store at once: the loser, which read version 0 before
    /// the winner committed, retries from the winner's version instead of failing on "table
    /// already exists".
    #[test]
    fn losing_the_race_to_another_migrator_is_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("race.db");
        let winner = Connection::open(&path).unwrap();
        winner.execute_batch("BEGIN IMMEDIATE").unwrap();
        let loser = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut c = Connection::open(&path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(20)).unwrap();
                run(&mut c).and_then(|()| Ok(user_version(&c)?))
            })
        };
        // The loser reads version 0 and then waits for the write lock the winner holds.
        std::thread::sleep(std::time::Duration::from_millis(500));
        for sql in STEPS {
            winner.execute_batch(sql).unwrap();
        }
        winner.pragma_update(None, "user_version", LATEST).unwrap();
        winner.execute_batch("COMMIT").unwrap();
        assert_eq!(loser.join().unwrap().unwrap(), LATEST);
    }
}
