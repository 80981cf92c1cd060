//! Running Armadito's tools and the restart command.
//!
//! Invariants:
//! * argv only, by absolute path (checked in the settings), never through a shell or `PATH`.
//! * The child gets a cleared environment plus `LANG=C` (stable, parseable output).
//! * Every run has a deadline and can be stopped early (cancel); the child is then killed.
//! * Output is bounded: at most [`MAX_OUTPUT`] bytes per stream are kept.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("empty command line")]
    Empty,
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("{program} was stopped (cancel requested)")]
    Cancelled { program: String },
}

#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit status and the end of stderr (or stdout), one line, for error messages.
    pub fn summary(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = one
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let code = self
            .status
            .code()
            .map_or_else(|| self.status.to_string(), |c| format!("exit code {c}"));
        if cut.is_empty() {
            code
        } else {
            format!("{code}: {cut}")
        }
    }
}

/// Runs `argv`; `on_stdout` receives stdout as it arrives and answers `false` to stop the
/// child (cancel).
pub fn run_streaming(
    argv: &[String],
    timeout: Duration,
    on_stdout: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<Output, ExecError> {
    let (program, args) = argv.split_first().ok_or(ExecError::Empty)?;
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    if let Some(mut out) = child.stdout.take() {
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(None);
        });
    }
    let (etx, erx) = mpsc::channel::<Vec<u8>>();
    if let Some(mut err) = child.stderr.take() {
        thread::spawn(move || {
            let mut kept = Vec::new();
            let _ = (&mut err).take(MAX_OUTPUT as u64).read_to_end(&mut kept);
            let _ = etx.send(kept);
        });
    }
    let deadline = Instant::now() + timeout;
    let mut stdout = Vec::new();
    let mut eof = false;
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            stop(&mut child);
            return Err(ExecError::Timeout {
                program: program.clone(),
                timeout,
            });
        }
        if eof {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) => thread::sleep(Duration::from_millis(10).min(left)),
                Err(_) => break,
            }
            continue;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(Some(chunk)) => {
                if stdout.len() < MAX_OUTPUT {
                    stdout.extend_from_slice(&chunk);
                }
                if !on_stdout(&chunk) {
                    stop(&mut child);
                    return Err(ExecError::Cancelled {
                        program: program.clone(),
                    });
                }
            }
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !on_stdout(&[]) {
                    stop(&mut child);
                    return Err(ExecError::Cancelled {
                        program: program.clone(),
                    });
                }
            }
        }
    }
    let status = child.wait().map_err(|source| ExecError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stderr = erx
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default();
    Ok(Output {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

pub fn run(argv: &[String], timeout: Duration) -> Result<Output, ExecError> {
    run_streaming(argv, timeout, &mut |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn environment_is_cleared_and_arguments_are_not_shell_words() {
        let out = run(&argv(&["/usr/bin/env"]), Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout.trim(), "LANG=C");
        let out = run(
            &argv(&["/bin/echo", "$(id)", ";", "*"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout.trim(), "$(id) ; *");
    }

    #[test]
    fn status_timeout_and_cancel() {
        let out = run(
            &argv(&["/bin/sh", "-c", "echo oops >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.summary(), "exit code 3: oops");
        let t = Instant::now();
        let e = run(&argv(&["/bin/sleep", "5"]), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        let e = run_streaming(
            &argv(&["/bin/sleep", "5"]),
            Duration::from_secs(5),
            &mut |_| false,
        )
        .unwrap_err();
        assert!(matches!(e, ExecError::Cancelled { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(matches!(
            run(
                &argv(&["/nonexistent/armadito-scan"]),
                Duration::from_secs(1)
            ),
            Err(ExecError::Spawn { .. })
        ));
    }
}
