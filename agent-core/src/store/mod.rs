//! The agent's durable local state: one SQLite database, `<state_dir>/state.db`.
//!
//! Invariants:
//! - The state directory is 0700 and the database files 0600 (Unix); the directory must not be
//!   a symlink and must belong to the agent's user.
//! - Every change that must survive a crash is one SQLite transaction (WAL mode,
//!   `synchronous=FULL`): after a crash the store holds the old state or the new one, never a mix.
//! - A store that cannot be read is never deleted: it is moved aside under a dated name, the error
//!   says where, and the run fails (exit 5). The next run starts a fresh store.
//! - The schema carries its version in `PRAGMA user_version`; [`migrations`] upgrade it in order,
//!   each step in its own transaction. A store newer than this binary is refused, not downgraded.
//! - Exclusive tasks (Runjobs, Enrollment) hold an OS file lock (see [`TaskLock`]); SQLite's own
//!   locking (with a busy timeout) lets other tasks such as Getjobs run beside them.

mod identity_store;
mod jobs;
mod lock;
mod migrations;
mod outbox;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use identity_store::{Enrollment, StoredUuid};
pub use jobs::{
    EnqueueReport, GETJOBS_IN_FLIGHT, JobState, RecoveryPolicy, StoredJob, UnreportableJob,
};
pub use lock::TaskLock;
pub use outbox::{MessageKind, NewMessage, OutboxMessage};

pub const DB_FILE: &str = "state.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state directory {path} is not safe: {reason}")]
    UnsafeDir { path: PathBuf, reason: String },
    #[error(
        "state store {path} is unreadable or corrupt ({detail}); it was moved aside to {moved_to}: nothing was deleted; the next run starts a new store (re-enrollment needed)"
    )]
    Corrupt {
        path: PathBuf,
        detail: String,
        moved_to: PathBuf,
    },
    #[error(
        "state store {path} is unreadable ({detail}) and could not be moved aside ({move_error}); fix or remove it by hand"
    )]
    CorruptStuck {
        path: PathBuf,
        detail: String,
        move_error: String,
    },
    #[error(
        "state store {path} has schema version {found}, newer than this agent supports ({supported}); upgrade the agent"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("another armadito-agent is running {task} on {dir} (lock {lock}); try again later")]
    Locked {
        task: String,
        dir: PathBuf,
        lock: PathBuf,
    },
    #[error("cannot write the state store in {dir}: {detail}")]
    Write { dir: PathBuf, detail: String },
    #[error("state store error in {dir}: {source}")]
    Sqlite {
        dir: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state store I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An open store. Cheap to keep for the whole run; not shared across threads.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        prepare_dir(dir)?;
        let path = dir.join(DB_FILE);
        precreate_private(&path)?;
        let conn = match open_checked(&path) {
            Ok(c) => c,
            Err(OpenError::Corrupt(detail)) => return Err(move_aside(&path, detail)),
            Err(OpenError::Other(e)) => return Err(classify(dir, e)),
        };
        let mut store = Store {
            conn,
            dir: dir.to_path_buf(),
        };
        if let Some(pages) = test_max_pages() {
            // Fault-injection seam for tests: a tiny page budget makes writes fail with SQLITE_FULL,
            // exactly as a full disk does.
            store
                .conn
                .pragma_update(None, "max_page_count", pages)
                .map_err(|e| store.err(e))?;
        }
        migrations::run(&mut store.conn).map_err(|e| match e {
            migrations::MigrationError::TooNew { found, supported } => StoreError::TooNew {
                path: path.clone(),
                found,
                supported,
            },
            migrations::MigrationError::Sqlite(e) => classify(dir, e),
            migrations::MigrationError::Runner(detail) => StoreError::Write {
                dir: dir.to_path_buf(),
                detail: format!("schema migration failed: {detail}"),
            },
        })?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fails, as a full disk does, when the state folder's filesystem has less than `needed`
    /// bytes free for us. For a step that cannot be undone once started (GET jobs: the server
    /// forgets the jobs it hands out), so that it waits instead of losing what it receives.
    pub fn ensure_free_space(&self, needed: u64, step: &str) -> Result<(), StoreError> {
        match space::available(&self.dir) {
            Some(free) if free < needed => Err(StoreError::Write {
                dir: self.dir.clone(),
                detail: format!(
                    "the disk is full: {} KiB free, {step} needs {} KiB",
                    free / 1024,
                    needed / 1024
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Takes the exclusive lock of `task` (e.g. "Runjobs"), waiting at most `wait`.
    pub fn lock_task(&self, task: &str, wait: Duration) -> Result<TaskLock, StoreError> {
        TaskLock::acquire(&self.dir, task, wait)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one transaction: all of its writes land, or none (on error or crash).
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let result = (|| {
            let tx = self.conn.transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|e| classify(&self.dir, e))
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.dir, e)
    }

    /// `PRAGMA integrity_check` == "ok" (used by tests and `status`).
    pub fn integrity_ok(&self) -> Result<bool, StoreError> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(r == "ok")
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

/// Free space as the OS reports it to an unprivileged writer.
mod space {
    use std::path::Path;

    #[cfg(unix)]
    pub fn available(dir: &Path) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: `c` is a valid NUL-terminated path; `st` is a writable statvfs we own.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }

    #[cfg(windows)]
    pub fn available(dir: &Path) -> Option<u64> {
        use std::os::windows::ffi::OsStrExt;
        use windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
        let wide: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
        let mut free: u64 = 0;
        // SAFETY: `wide` is NUL-terminated; the out pointers are valid or null as allowed.
        let ok = unsafe {
            GetDiskFreeSpaceExW(
                wide.as_ptr(),
                &mut free,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        (ok != 0).then_some(free)
    }
}

fn test_max_pages() -> Option<i64> {
    std::env::var("ARMADITO_AGENT_TEST_MAX_PAGES")
        .ok()?
        .parse()
        .ok()
}

/// Less free space than this makes an I/O error a full disk.
const NEARLY_FULL: u64 = 1024 * 1024;

/// Turns SQLite errors into messages a person can act on.
fn classify(dir: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull) => StoreError::Write {
            dir: dir.into(),
            detail: "the disk is full".into(),
        },
        Some(ReadOnly) | Some(CannotOpen) | Some(PermissionDenied) => StoreError::Write {
            dir: dir.into(),
            detail: format!("{e} (check permissions and free space)"),
        },
        // SQLite often reports ENOSPC as a plain I/O error (e.g. growing the WAL index):
        // the free space tells which one it is.
        Some(SystemIoFailure) if space::available(dir).is_some_and(|free| free < NEARLY_FULL) => {
            StoreError::Write {
                dir: dir.into(),
                detail: format!("the disk is full ({e})"),
            }
        }
        Some(SystemIoFailure) => StoreError::Write {
            dir: dir.into(),
            detail: format!("I/O error: {e}"),
        },
        _ => StoreError::Sqlite {
            dir: dir.into(),
            source: e,
        },
    }
}

enum OpenError {
    Corrupt(String),
    Other(rusqlite::Error),
}

fn open_checked(path: &Path) -> Result<Connection, OpenError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(OpenError::Other)?;
    let corrupt = |e: &rusqlite::Error| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    };
    let setup = || -> rusqlite::Result<String> {
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
    };
    match setup() {
        Ok(check) if check == "ok" => Ok(conn),
        // "unable to get the page. error code=N": the check could not read, which says
        // nothing about the file; moving a good store aside would lose it.
        Ok(check) if check.contains("error code=") => {
            Err(OpenError::Other(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some(format!("integrity check could not read the file: {check}")),
            )))
        }
        Ok(check) => Err(OpenError::Corrupt(format!("integrity check: {check}"))),
        Err(e) if corrupt(&e) => Err(OpenError::Corrupt(e.to_string())),
        Err(e) => Err(OpenError::Other(e)),
    }
}

fn move_aside(path: &Path, detail: String) -> StoreError {
    let stamp = crate::wire::UnixTime::now().secs();
    let moved_to = path.with_file_name(format!("{DB_FILE}.corrupt-{stamp}"));
    let result = std::fs::rename(path, &moved_to).and_then(|_| {
        for ext in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{ext}", path.display()));
            if side.exists() {
                std::fs::rename(&side, format!("{}{ext}", moved_to.display()))?;
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            tracing::error!(store = %path.display(), moved_to = %moved_to.display(), %detail, "state store is corrupt: moved aside");
            StoreError::Corrupt {
                path: path.into(),
                detail,
                moved_to,
            }
        }
        Err(e) => StoreError::CorruptStuck {
            path: path.into(),
            detail,
            move_error: e.to_string(),
        },
    }
}

#[cfg(unix)]
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.into(),
                source,
            })?,
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.into(),
                source,
            });
        }
        Ok(md) if md.file_type().is_symlink() => {
            return Err(StoreError::UnsafeDir {
                path: dir.into(),
                reason: "it is a symbolic link".into(),
            });
        }
        Ok(md) if !md.is_dir() => {
            return Err(StoreError::UnsafeDir {
                path: dir.into(),
                reason: "it is not a directory".into(),
            });
        }
        Ok(_) => {}
    }
    let md = std::fs::metadata(dir).map_err(|source| StoreError::Io {
        path: dir.into(),
        source,
    })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me {
        return Err(StoreError::UnsafeDir {
            path: dir.into(),
            reason: format!(
                "it belongs to uid {} but the agent runs as uid {me}",
                md.uid()
            ),
        });
    }
    if md.mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", md.mode() & 0o777), "state directory was accessible to others: setting it to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| StoreError::Io {
                path: dir.into(),
                source,
            },
        )?;
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
        path: dir.into(),
        source,
    })
}

/// Creates the database file 0600 before SQLite does, so it is never readable by others, not
/// even for an instant; SQLite gives its -wal and -shm files the same mode.
///
/// An existing file is never opened here: closing a descriptor of the database file opened
/// outside SQLite drops every POSIX lock this process holds on it, those of the other
/// connections too (a daemon has several), and a process that believes it is the last user
/// of a WAL database checkpoints and deletes the WAL under the others: reads fail ("unable to
/// get the page. error code=522"), the check at open calls that corruption and the store is
/// moved aside (sqlite.org/howtocorrupt.html, 2.2).
fn precreate_private(path: &Path) -> Result<(), StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    let created = |r: std::io::Result<std::fs::File>| match r {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(write_or_io(path, e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        created(o.open(path))?;
        let md = std::fs::metadata(path).map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })?;
        if md.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| StoreError::Io {
                    path: path.into(),
                    source,
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    created(o.open(path))?;
    Ok(())
}

fn write_or_io(path: &Path, e: std::io::Error) -> StoreError {
    let dir = path.parent().unwrap_or(path).to_path_buf();
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            StoreError::Write {
                dir,
                detail: format!("{e} (check permissions)"),
            }
        }
        std::io::ErrorKind::StorageFull => StoreError::Write {
            dir,
            detail: "the disk is full".into(),
        },
        _ => StoreError::Io {
            path: path.into(),
            source: e,
        },
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
