//! Per-task exclusive locks between agent processes sharing a state directory.
//!
//! An OS advisory lock on `<state_dir>/<task>.lock`: released by the kernel when the process
//! dies, so a killed agent never leaves a stale lock behind (unlike a pid file).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct TaskLock {
    _file: File,
    path: PathBuf,
}

impl TaskLock {
    pub fn acquire(dir: &Path, task: &str, wait: Duration) -> Result<Self, StoreError> {
        let path = dir.join(format!("{task}.lock"));
        let mut o = OpenOptions::new();
        o.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let file = o.open(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file, path }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Locked {
                        task: task.into(),
                        dir: dir.into(),
                        lock: path,
                    });
                }
                Err(TryLockError::Error(source)) => return Err(StoreError::Io { path, source }),
            }
        }
    }

    /// Take the lock if it is free; `Ok(None)` when another process holds it. Creates the
    /// state directory (0700) if needed.
    pub fn try_acquire(dir: &Path, task: &str) -> Result<Option<Self>, StoreError> {
        super::prepare_dir(dir)?;
        match Self::acquire(dir, task, Duration::ZERO) {
            Ok(lock) => Ok(Some(lock)),
            Err(StoreError::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
