//! Running the Defender command-line tools (`mdatp`, `powershell.exe`, `MpCmdRun.exe`).
//!
//! Invariants:
//! * argv only: the program is started directly, never through a shell; the PowerShell script
//!   texts are fixed strings of this crate and data (values to write) travels in environment
//!   variables the script reads, so nothing from GLPI can become code.
//! * The program is named by an absolute path from the settings, never looked up in `PATH`.
//! * The child gets a cleared environment plus a small allow-list ([`base_env`]) and the data
//!   variables of the call.
//! * Every run has a deadline; a program that outlives it (or whose caller cancels) is killed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Output kept per stream; the rest is read and dropped.
const MAX_OUTPUT: usize = 8 * 1024 * 1024;
/// How long to wait for pipe EOF after the program exited (a grandchild may hold the pipe).
const PIPE_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{program} is not an absolute path (set it in [backends.defender])")]
    NotAbsolute { program: String },
    #[error("{program} not found (set its path in [backends.defender])")]
    NotFound { program: String },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("{program} was stopped on request")]
    Cancelled { program: String },
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
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// One line for error messages: exit status and the end of stderr (or stdout).
    pub fn summary(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        let mut start = text.len().saturating_sub(400);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        if text.is_empty() {
            self.status.to_string()
        } else {
            format!("{}: {}", self.status, &text[start..])
        }
    }
}

/// One call: program, arguments, data variables, deadline.
#[derive(Debug, Clone)]
pub struct Call {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment variables (data for a fixed script), added to [`base_env`].
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Call {
    pub fn new(program: &Path, args: impl IntoIterator<Item = impl Into<String>>) -> Call {
        Call {
            program: program.to_path_buf(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = timeout;
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Call {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// The whole command line, for logs and tests (data variables are not shown).
    pub fn display(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The environment every child gets. Unix: a C locale (English, parseable output) and the
/// system `PATH` the vendor tools need for their own helpers. Windows: the variables
/// PowerShell and the Defender module need to start, copied from the agent's own environment.
pub fn base_env() -> Vec<(String, String)> {
    if cfg!(windows) {
        const KEEP: &[&str] = &[
            "SystemRoot",
            "windir",
            "SystemDrive",
            "ProgramData",
            "ProgramFiles",
            "TEMP",
            "TMP",
        ];
        KEEP.iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect()
    } else {
        vec![
            ("LANG".into(), "C".into()),
            ("LC_ALL".into(), "C".into()),
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ]
    }
}

/// Runs `call` with stdin closed and captures its output. `cancelled` is polled while it runs;
/// when it answers true the program is killed.
pub fn run(call: &Call, cancelled: &dyn Fn() -> bool) -> Result<Output, ExecError> {
    let program = call.program.display().to_string();
    if !call.program.is_absolute() {
        return Err(ExecError::NotAbsolute { program });
    }
    let mut cmd = Command::new(&call.program);
    cmd.args(&call.args)
        .env_clear()
        .envs(base_env())
        .envs(call.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ExecError::NotFound {
                program: program.clone(),
            }
        } else {
            ExecError::Spawn {
                program: program.clone(),
                source,
            }
        }
    })?;
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);

    let deadline = Instant::now() + call.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let timed_out = Instant::now() >= deadline;
                if timed_out || cancelled() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(if timed_out {
                        ExecError::Timeout {
                            program,
                            timeout: call.timeout,
                        }
                    } else {
                        ExecError::Cancelled { program }
                    });
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(source) => return Err(ExecError::Wait { program, source }),
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn never() -> bool {
        false
    }

    #[test]
    fn environment_is_cleared_and_arguments_are_not_interpreted() {
        // cargo sets this for the test process: the child must not inherit it
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let call = Call::new(
            Path::new("/bin/sh"),
            ["-c", "env; echo \"$0\"", "$(id) ; *"],
        )
        .env("ARMADITO_VALUE", "x");
        let out = run(&call, &never).unwrap();
        assert!(!out.stdout.contains("CARGO_MANIFEST_DIR"), "{}", out.stdout);
        assert!(out.stdout.contains("ARMADITO_VALUE=x"));
        assert!(out.stdout.contains("LANG=C"));
        assert!(
            out.stdout.lines().any(|l| l == "$(id) ; *"),
            "{}",
            out.stdout
        );
    }

    #[test]
    fn relative_and_missing_programs_are_refused() {
        let err = run(&Call::new(Path::new("sh"), ["-c", "true"]), &never).unwrap_err();
        assert!(matches!(err, ExecError::NotAbsolute { .. }), "{err}");
        let err = run(
            &Call::new(Path::new("/nonexistent/mdatp"), ["health"]),
            &never,
        )
        .unwrap_err();
        assert!(matches!(err, ExecError::NotFound { .. }), "{err}");
    }

    #[test]
    fn timeout_and_cancel_kill_the_program() {
        let start = Instant::now();
        let call = Call::new(Path::new("/bin/sleep"), ["5"]).timeout(Duration::from_millis(200));
        let err = run(&call, &never).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        let call = call.timeout(Duration::from_secs(10));
        let err = run(&call, &|| true).unwrap_err();
        assert!(matches!(err, ExecError::Cancelled { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
