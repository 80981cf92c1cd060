//! The running daemon's status, for `armadito-agent status`: a JSON file in the state folder,
//! rewritten atomically (temporary file + rename, 0600) after each task run and each plugin
//! change. A daemon runs when `daemon.lock` is held: the file alone may be left by a killed
//! daemon, so `status` trusts it only while the lock is taken.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::session::{AgentError, Context};
use crate::store::TaskLock;

/// The status file, in the state folder.
pub const STATUS_FILE: &str = "daemon-status.json";
/// The lock a running daemon holds (`<state_dir>/daemon.lock`).
pub const LOCK_NAME: &str = "daemon";

/// The backend in use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackendInUse {
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
}

/// One task's last and next run. Times are Unix seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskStatus {
    pub last_run: Option<i64>,
    /// `ok` or `failed`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub next_run: Option<i64>,
    /// Consecutive runs that found the server unavailable (backoff in force when > 0).
    pub failures: u32,
}

/// What `status` shows of a running daemon.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started_at: i64,
    pub updated_at: i64,
    pub backend: Option<BackendInUse>,
    pub tasks: BTreeMap<String, TaskStatus>,
    /// Jobs queued or running.
    pub queue: usize,
    /// Messages waiting for the server.
    pub outbox: usize,
    /// Last run that reached the server.
    pub last_server_contact: Option<i64>,
    pub last_error: Option<String>,
}

/// Writes `status` to `<dir>/daemon-status.json` atomically, 0600.
pub fn write(dir: &Path, status: &DaemonStatus) -> Result<(), String> {
    let body = serde_json::to_vec_pretty(status).map_err(|e| e.to_string())?;
    // tempfile creates 0600 on Unix; the rename replaces the old file in one step.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
    // No fsync: rewritten every few seconds, and after a crash an old or new copy is as good.
    tmp.write_all(&body).map_err(|e| e.to_string())?;
    tmp.persist(dir.join(STATUS_FILE))
        .map_err(|e| e.error.to_string())?;
    Ok(())
}

/// Whether a daemon holds the lock of `dir`, and its status file when it does.
pub enum Running {
    No,
    /// Running; `None` when its status file cannot be read (just starting, or damaged).
    Yes(Option<Box<DaemonStatus>>, PathBuf),
}

/// Looks for a daemon on `dir` without creating anything there.
pub fn probe(dir: &Path) -> Result<Running, AgentError> {
    if !dir.join(format!("{LOCK_NAME}.lock")).exists() {
        return Ok(Running::No);
    }
    match TaskLock::try_acquire(dir, LOCK_NAME)? {
        // Free: no daemon (dropping the lock releases it at once).
        Some(_lock) => Ok(Running::No),
        None => {
            let path = dir.join(STATUS_FILE);
            let status = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<DaemonStatus>(&b).ok())
                .map(Box::new);
            Ok(Running::Yes(status, path))
        }
    }
}

/// `armadito-agent status [--json]`: the running daemon (if any), then the store as before.
pub fn show(ctx: &Context, json: bool) -> Result<(), AgentError> {
    let running = probe(&ctx.config.state_dir)?;
    let now = crate::wire::UnixTime::now().secs();
    if json {
        let daemon = match &running {
            Running::No => serde_json::json!({ "running": false }),
            Running::Yes(status, _) => {
                let mut v = serde_json::to_value(status).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("running".into(), true.into());
                    if let Some(s) = status {
                        o.insert("uptime_secs".into(), (now - s.started_at).max(0).into());
                    }
                } else {
                    v = serde_json::json!({ "running": true, "status": null });
                }
                v
            }
        };
        return crate::tasks::status::run_with(ctx, true, Some(daemon));
    }
    match &running {
        Running::No => println!("daemon:        not running"),
        Running::Yes(None, path) => println!(
            "daemon:        running (its status file {} is not readable yet)",
            path.display()
        ),
        Running::Yes(Some(s), _) => print!("{}", render(s, now)),
    }
    crate::tasks::status::run_with(ctx, false, None)
}

fn when(t: Option<i64>, now: i64) -> String {
    match t {
        None => "-".into(),
        Some(t) if t <= now => format!("{} s ago", now - t),
        Some(t) => format!("in {} s", t - now),
    }
}

/// The human view of a running daemon (server text escaped for the terminal).
pub fn render(s: &DaemonStatus, now: i64) -> String {
    let safe = crate::tasks::inspect::terminal_safe;
    let mut out = format!(
        "daemon:        running, pid {}, up {} s\n",
        s.pid,
        (now - s.started_at).max(0)
    );
    match &s.backend {
        Some(b) => out.push_str(&format!(
            "backend used:  {} {} ({}, sha256 {})\n",
            safe(&b.name),
            safe(&b.version),
            safe(&b.file),
            b.sha256
        )),
        None => out.push_str("backend used:  none loaded\n"),
    }
    out.push_str(&format!(
        "queue:         {} job(s); outbox: {} message(s); last server contact: {}\n",
        s.queue,
        s.outbox,
        when(s.last_server_contact, now)
    ));
    if let Some(e) = &s.last_error {
        out.push_str(&format!("last error:    {}\n", safe(e)));
    }
    for (task, t) in &s.tasks {
        out.push_str(&format!(
            "  {task:<10} last {:<12} {:<7} next {:<12}{}\n",
            when(t.last_run, now),
            t.last_result.as_deref().unwrap_or("-"),
            when(t.next_run, now),
            t.last_error
                .as_deref()
                .map(|e| format!(" error: {}", safe(e)))
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_atomically_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DaemonStatus {
            pid: 42,
            started_at: 100,
            updated_at: 160,
            queue: 2,
            ..Default::default()
        };
        s.tasks.insert(
            "Getjobs".into(),
            TaskStatus {
                last_run: Some(150),
                last_result: Some("failed".into()),
                last_error: Some("server down\x1b[2J".into()),
                next_run: Some(190),
                failures: 1,
            },
        );
        write(dir.path(), &s).unwrap();
        write(dir.path(), &s).unwrap();
        let path = dir.path().join(STATUS_FILE);
        let back: DaemonStatus = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, s);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let text = render(&s, 160);
        assert!(text.contains("pid 42, up 60 s"), "{text}");
        assert!(
            text.contains("Getjobs") && text.contains("in 30 s"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "{text:?}");
    }

    #[test]
    fn a_status_file_without_the_lock_held_is_not_a_running_daemon() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(probe(dir.path()).unwrap(), Running::No));
        write(dir.path(), &DaemonStatus::default()).unwrap();
        let lock = TaskLock::try_acquire(dir.path(), LOCK_NAME)
            .unwrap()
            .unwrap();
        // Held by "another process": flock locks are per open file description, so a second
        // open in this process sees it taken.
        assert!(matches!(
            probe(dir.path()).unwrap(),
            Running::Yes(Some(_), _)
        ));
        drop(lock);
        assert!(matches!(probe(dir.path()).unwrap(), Running::No));
    }
}
