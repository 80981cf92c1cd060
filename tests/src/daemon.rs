//! `armadito-agent daemon` as the tests run it: spawned in a sandbox, its log in a file (a pipe
//! nobody reads would fill up and block it), stopped by SIGTERM or killed by SIGKILL.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::agent::AgentSandbox;

/// How long a test waits for something the daemon should do within seconds.
pub const WAIT: Duration = Duration::from_secs(30);

/// agent.toml lines: every task every second (State every `state`), no spreading, a short stop
/// deadline.
pub fn fast_schedule(state: &str) -> String {
    let mut s = String::from("[daemon]\nalerts_every = \"1s\"\nstop_timeout = \"5s\"\n");
    for (task, every) in [
        ("Getjobs", "1s"),
        ("Runjobs", "1s"),
        ("State", state),
        ("AVConfig", "1h"),
        ("Scheduler", "1h"),
    ] {
        s.push_str(&format!(
            "[schedule.tasks.{task}]\nevery = \"{every}\"\nwait_rand = 0\n"
        ));
    }
    s
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon and waits until it says it started.
    pub fn start(s: &AgentSandbox) -> Daemon {
        let d = Daemon::spawn(s);
        d.wait_log("daemon started");
        d
    }

    /// Starts the daemon without waiting (each start logs to its own file).
    pub fn spawn(s: &AgentSandbox) -> Daemon {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Daemon::try_spawn(s, &s.dir.path().join(format!("daemon-{n}.log")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the daemon, its output in `log`, and waits until it says it started (for
    /// callers that report problems instead of panicking).
    pub fn try_start(s: &AgentSandbox, log: &Path, within: Duration) -> Result<Daemon, String> {
        let d = Daemon::try_spawn(s, log)?;
        d.try_wait_log("daemon started", within)?;
        Ok(d)
    }

    fn try_spawn(s: &AgentSandbox, log: &Path) -> Result<Daemon, String> {
        let out = File::create(log).map_err(|e| format!("daemon log: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("daemon log: {e}"))?;
        let child = s
            .command(&["daemon", "-d"])
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn the daemon: {e}"))?;
        Ok(Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still running (not exited, not killed).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The exit code once it has exited (`Some(None)`: killed by a signal).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            _ => None,
        }
    }

    /// The last `n` lines of its log, on one line.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    /// Waits until its log holds `needle`, at most `within`.
    pub fn try_wait_log(&self, needle: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                return Err(format!(
                    "no {needle:?} in the daemon's log: {}",
                    self.log_tail(3)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGTERM; the exit code, which must come `within`.
    pub fn try_stop(mut self, within: Duration) -> Result<i32, String> {
        self.signal("TERM");
        let deadline = Instant::now() + within;
        loop {
            match self.exited() {
                Some(Some(code)) => return Ok(code),
                Some(None) => return Err(format!("killed by a signal: {}", self.log_tail(3))),
                None if Instant::now() > deadline => {
                    return Err(format!(
                        "still running {} s after SIGTERM: {}",
                        within.as_secs(),
                        self.log_tail(3)
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    #[track_caller]
    pub fn wait_log(&self, needle: &str) {
        wait_until(
            &format!("{needle:?} in the daemon's log"),
            || self.log().contains(needle),
            || self.log(),
        );
    }

    /// Sends `sig` (e.g. "HUP"); whether `kill` succeeded.
    pub fn signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGTERM, then the exit code (the daemon must exit by itself within [`WAIT`]).
    #[track_caller]
    pub fn stop(self) -> (Option<i32>, String) {
        assert!(self.signal("TERM"), "kill -TERM");
        self.wait_exit(WAIT)
    }

    /// SIGKILL (no chance to clean up), then its log.
    pub fn kill(mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.log()
    }

    /// Waits for the daemon to exit: its exit code and log; killed and a panic after `within`.
    #[track_caller]
    fn wait_exit(mut self, within: Duration) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("a running daemon");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the daemon") {
                return (status.code(), self.log());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not exit within {within:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `ok` every 100 ms for up to [`WAIT`]; panics with `what` and `context()` otherwise.
#[track_caller]
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
