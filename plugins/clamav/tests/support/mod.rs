//! Test support: a throw-away clamd per test, started with the project's harness
//! (`tests/clamd/start-clamd.sh`), killed by PID when dropped.
//!
//! Invariants:
//! * One clamd per [`Clamd`] value, in its own /tmp directory (clamd's AppArmor profile on
//!   Ubuntu allows /tmp), with a unix socket and a loopback TCP port, EICAR-only signatures.
//! * As root, clamd runs as the `clamav` user (else `nobody`), so files only root can read
//!   are really unreadable to clamd; [`Clamd::unprivileged`] says whether that holds.
//! * Drop kills the process by the PID the harness printed (SIGKILL: tests do not need a
//!   graceful exit) and removes the directory; nothing is left running.
//! * When clamd is not installed, [`Clamd::start`] panics with how to install it, unless
//!   `ARMADITO_SKIP_CLAMD=1`, where [`Clamd::try_start`] returns `None` and tests skip.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn harness(script: &str) -> PathBuf {
    repo_root().join("tests/clamd").join(script)
}

/// The 68-byte EICAR test string, assembled so this source file is not itself flagged.
pub fn eicar() -> Vec<u8> {
    let mut v = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".to_vec();
    v.extend_from_slice(b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    v
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// How to start clamd.
#[derive(Debug, Clone, Default)]
pub struct ClamdOptions {
    /// No daily database (VERSION without db version/date).
    pub no_daily: bool,
    /// Extra clamd.conf lines (replace the harness defaults for the same options).
    pub extra_conf: Vec<String>,
}

/// A running throw-away clamd.
#[derive(Debug)]
pub struct Clamd {
    pub pid: i32,
    pub port: u16,
    pub socket: PathBuf,
    pub dir: PathBuf,
    killed: bool,
}

impl Clamd {
    pub fn start() -> Clamd {
        Clamd::start_with(ClamdOptions::default())
    }

    pub fn start_with(opts: ClamdOptions) -> Clamd {
        Clamd::try_start_with(opts).expect("clamd skipped (ARMADITO_SKIP_CLAMD=1)")
    }

    /// `None` only when clamd is missing and `ARMADITO_SKIP_CLAMD=1`.
    pub fn try_start() -> Option<Clamd> {
        Clamd::try_start_with(ClamdOptions::default())
    }

    pub fn try_start_with(opts: ClamdOptions) -> Option<Clamd> {
        let installed = Path::new("/usr/sbin/clamd").exists()
            || Command::new("sh")
                .args(["-c", "command -v clamd"])
                .output()
                .is_ok_and(|o| o.status.success());
        if !installed {
            if std::env::var("ARMADITO_SKIP_CLAMD").as_deref() == Ok("1") {
                eprintln!("clamd not installed: test skipped (ARMADITO_SKIP_CLAMD=1)");
                return None;
            }
            panic!(
                "clamd is not installed: run .ci/install-clamav.sh (apt-get install \
                 clamav-daemon clamav clamdscan), or set ARMADITO_SKIP_CLAMD=1 to skip"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("clamd-test.")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        let mut cmd = Command::new(harness("start-clamd.sh"));
        cmd.arg(&dir);
        if opts.no_daily {
            cmd.env("CLAMD_NO_DAILY", "1");
        }
        if !opts.extra_conf.is_empty() {
            cmd.env("CLAMD_EXTRA_CONF", opts.extra_conf.join("\n"));
        }
        let out = cmd.output().expect("run start-clamd.sh");
        assert!(
            out.status.success(),
            "start-clamd.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let mut f = line.split_whitespace();
        let pid = f.next().and_then(|p| p.parse().ok()).expect("pid");
        let port = f.next().and_then(|p| p.parse().ok()).expect("port");
        let socket = PathBuf::from(f.next().expect("socket"));
        Some(Clamd {
            pid,
            port,
            socket,
            dir,
            killed: false,
        })
    }

    /// A root-owned folder (0755) for the VirusEvent hook, removed on drop.
    pub fn hook_dir(&self) -> PathBuf {
        PathBuf::from(format!("{}-hook", self.dir.display()))
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("clamd.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log/clamd.log")
    }

    pub fn tcp(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Does clamd run as another user than us (so 0600 files are unreadable to it)?
    pub fn unprivileged(&self) -> bool {
        is_root()
    }

    /// argv restarting this clamd with its current clamd.conf.
    pub fn restart_command(&self) -> Vec<String> {
        vec![
            harness("restart-clamd.sh").to_string_lossy().into_owned(),
            self.dir.to_string_lossy().into_owned(),
        ]
    }

    /// The current clamd PID (changes after a restart).
    pub fn current_pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.join("clamd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Is `pid` a clamd running this instance's clamd.conf? (PIDs wrap quickly in small
    /// containers: never signal a PID without checking it is still ours.)
    pub fn owns(&self, pid: i32) -> bool {
        let conf = self.conf_path();
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|&b| b == 0)
                .any(|arg| arg == conf.as_os_str().as_encoded_bytes())
        })
    }

    /// Kill clamd now (SIGKILL), as a crash or an admin stopping it would.
    pub fn kill(&mut self) {
        let mut pids = vec![self.pid];
        pids.extend(self.current_pid());
        for pid in pids {
            if self.owns(pid) {
                // SAFETY: plain syscall on a PID verified to be our clamd.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        self.killed = true;
    }

    /// `settings` JSON for the backend, talking to this clamd over the unix socket.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "socket": self.socket,
            "clamd_conf": self.conf_path(),
            "connect_timeout_ms": 1000,
            "read_timeout_ms": 10000,
            "progress_interval_ms": 5,
            "restart_command": self.restart_command(),
            "ready_timeout_secs": 10,
            "virusevent_spool": self.dir.join("events/spool"),
            // Not under `dir` (clamd's user owns it and could replace the hook).
            "virusevent_hook": self.hook_dir().join("virusevent-hook.sh"),
        })
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        if !self.killed {
            self.kill();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(self.hook_dir());
    }
}

/// A directory clamd (running as another user) can traverse, removed on drop.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("clamav-scan.")
            .tempdir_in("/tmp")
            .expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        Tree { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a world-readable file (creating parent directories, 0755).
    pub fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
            let mut d = parent.to_path_buf();
            while d.starts_with(self.dir.path()) && d != self.dir.path() {
                let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o755));
                d.pop();
            }
        }
        fs::write(&p, content).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        p
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.dir.path().join(rel), fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}
