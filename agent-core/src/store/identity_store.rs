//! Identity and enrollment records.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::wire::UnixTime;

/// The agent's enrollment as the server gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Enrollment {
    pub agent_id: i64,
    pub scheduler_id: i64,
    /// The server URL it was obtained from.
    pub server: String,
    /// The machine UUID sent at enrollment.
    pub uuid: String,
    pub enrolled_at: i64,
    pub updated_at: i64,
}

/// The machine UUID recorded at first use, and where it came from (`smbios`, `dmidecode`,
/// `wmi`, `config`, `generated`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredUuid {
    pub uuid: String,
    pub source: String,
    pub created_at: i64,
}

/// Sets cursor `name`, inside whatever transaction `conn` is in (a `Transaction` derefs to it).
pub(crate) fn upsert_cursor(
    conn: &rusqlite::Connection,
    name: &str,
    value: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO cursors (name, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET value = ?2, updated_at = ?3",
        params![name, value, UnixTime::now().secs()],
    )
    .map(|_| ())
}

/// Removes cursor `name`, inside whatever transaction `conn` is in.
pub(crate) fn delete_cursor(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM cursors WHERE name = ?1", [name])
        .map(|_| ())
}

impl Store {
    pub fn enrollment(&self) -> Result<Option<Enrollment>, StoreError> {
        self.conn()
            .query_row(
                "SELECT agent_id, scheduler_id, server, uuid, enrolled_at, updated_at FROM enrollment WHERE id = 1",
                [],
                |r| {
                    Ok(Enrollment {
                        agent_id: r.get(0)?,
                        scheduler_id: r.get(1)?,
                        server: r.get(2)?,
                        uuid: r.get(3)?,
                        enrolled_at: r.get(4)?,
                        updated_at: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores both ids in one transaction. Returns the previous enrollment, if any.
    pub fn save_enrollment(
        &mut self,
        agent_id: i64,
        scheduler_id: i64,
        server: &str,
        uuid: &str,
    ) -> Result<Option<Enrollment>, StoreError> {
        let now = UnixTime::now().secs();
        let previous = self.enrollment()?;
        let enrolled_at = previous
            .as_ref()
            .filter(|p| p.agent_id == agent_id)
            .map_or(now, |p| p.enrolled_at);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO enrollment (id, agent_id, scheduler_id, server, uuid, enrolled_at, updated_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET agent_id = ?1, scheduler_id = ?2, server = ?3, uuid = ?4,
                                               enrolled_at = ?5, updated_at = ?6",
                params![agent_id, scheduler_id, server, uuid, enrolled_at, now],
            )
        })?;
        Ok(previous)
    }

    pub fn stored_uuid(&self) -> Result<Option<StoredUuid>, StoreError> {
        self.conn()
            .query_row(
                "SELECT uuid, source, created_at FROM identity WHERE id = 1",
                [],
                |r| {
                    Ok(StoredUuid {
                        uuid: r.get(0)?,
                        source: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn save_uuid(&self, uuid: &str, source: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO identity (id, uuid, source, created_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET uuid = ?1, source = ?2, created_at = ?3",
                params![uuid, source, UnixTime::now().secs()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        upsert_cursor(self.conn(), name, value).map_err(|e| self.err(e))
    }

    pub fn clear_cursor(&self, name: &str) -> Result<(), StoreError> {
        delete_cursor(self.conn(), name).map_err(|e| self.err(e))
    }

    pub fn cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT value FROM cursors WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }
}
