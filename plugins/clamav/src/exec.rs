//! Running external programs (clamd restart command, clamconf).
//!
//! Invariants:
//! * argv only: the program is executed directly, never through a shell, so no value from a
//!   configuration or from GLPI can be interpreted as shell syntax.
//! * Every run has a deadline; a program that outlives it is killed.
//! * The program is an absolute path (never looked up in `PATH`) and starts with a cleared
//!   environment plus [`CHILD_ENV`].
//! * A program that leaves a daemon behind holding our stdout/stderr pipes (a restart script
//!   starting clamd) must not hang us: once the program exits, output readers get a short
//!   grace period and are then abandoned.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and dropped.
const MAX_OUTPUT: usize = 256 * 1024;
/// How long to wait for pipe EOF after the program exited.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// The whole environment of a child: restart scripts may call other programs.
pub const CHILD_ENV: &[(&str, &str)] = &[("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), ("LANG", "C")];

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("empty command line")]
    Empty,
    #[error("{0}: not an absolute path (programs are never looked up in PATH)")]
    NotAbsolute(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("waiting for {program} failed: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// One line for error messages: exit status and the end of stderr (or stdout).
    pub fn summary(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let text = text.trim();
        let tail: String = if text.len() > 400 {
            let mut start = text.len() - 400;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            format!("…{}", &text[start..])
        } else {
            text.to_owned()
        };
        if tail.is_empty() {
            format!("{}", self.status)
        } else {
            format!("{}: {}", self.status, tail)
        }
    }
}

/// Run `argv` with stdin closed, capture its output, kill it after `timeout`.
pub fn run(argv: &[String], timeout: Duration) -> Result<Output, ExecError> {
    let (program, args) = argv.split_first().ok_or(ExecError::Empty)?;
    if program.is_empty() {
        return Err(ExecError::Empty);
    }
    if !std::path::Path::new(program).is_absolute() {
        return Err(ExecError::NotAbsolute(program.clone()));
    }
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(CHILD_ENV.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Timeout {
                    program: program.clone(),
                    timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                return Err(ExecError::Wait {
                    program: program.clone(),
                    source,
                });
            }
        }
    };
    let grace = Instant::now() + PIPE_GRACE;
    let collect = |pipe: Option<Pipe>| {
        pipe.map(|p| p.collect(grace.saturating_duration_since(Instant::now())))
            .unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// A pipe drained by a thread. What was read so far stays available even if EOF never comes.
struct Pipe {
    kept: Arc<Mutex<Vec<u8>>>,
    eof: mpsc::Receiver<()>,
}

impl Pipe {
    fn collect(self, grace: Duration) -> String {
        let _ = self.eof.recv_timeout(grace);
        let kept = match self.kept.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        String::from_utf8_lossy(&kept).into_owned()
    }
}

/// Read a pipe to EOF on a thread, keeping at most MAX_OUTPUT bytes.
fn reader(mut pipe: impl Read + Send + 'static) -> Pipe {
    let (tx, eof) = mpsc::channel();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&kept);
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut kept) = sink.lock() {
                        let room = MAX_OUTPUT.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        }
        let _ = tx.send(());
    });
    Pipe { kept, eof }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn captures_output_and_status() {
        let out = run(
            &argv(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout.trim(), "out");
        assert_eq!(out.stderr.trim(), "err");
        assert!(out.summary().contains("err"));
    }

    #[test]
    fn arguments_are_not_shell_interpreted() {
        let out = run(
            &argv(&["/bin/echo", "$(id)", ";", "*"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout.trim(), "$(id) ; *");
    }

    #[test]
    fn timeout_kills() {
        let start = Instant::now();
        let err = run(&argv(&["/bin/sleep", "5"]), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn leftover_daemon_holding_pipes_does_not_hang() {
        let start = Instant::now();
        let out = run(
            &argv(&["/bin/sh", "-c", "sleep 3 & echo started"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.trim(), "started");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    /// Issue 12 item 10: a program name is never looked up in PATH, and the child does not
    /// inherit the agent's environment.
    #[test]
    fn programs_by_name_are_refused_and_the_environment_is_cleared() {
        let err = run(&argv(&["sh", "-c", "true"]), Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, ExecError::NotAbsolute(_)), "{err}");
        assert!(err.to_string().contains("never looked up in PATH"), "{err}");
        let out = run(&argv(&["/usr/bin/env"]), Duration::from_secs(5)).unwrap();
        let mut names: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        names.sort();
        assert_eq!(names, ["LANG", "PATH"], "{}", out.stdout);
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&argv(&["/nonexistent/prog"]), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }));
        assert!(matches!(
            run(&[], Duration::from_secs(1)),
            Err(ExecError::Empty)
        ));
    }
}
