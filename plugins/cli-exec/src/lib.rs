//! Running an antivirus product's command-line tools from a backend plugin (every backend that
//! runs a program: ClamAV, Defender, Armadito, ESET, Kaspersky), plus the alerts [`cursor`]
//! the ESET and Kaspersky backends share.
//!
//! Invariants:
//! * argv only: the program is executed directly, never through a shell, so no value from the
//!   settings or from GLPI can be read as shell syntax.
//! * Programs are named by absolute path (from the settings or the product's default
//!   location), never looked up in `PATH`.
//! * Children get a cleared environment plus an explicit allow-list ([`default_env`]: `LANG=C`,
//!   `LC_ALL=C` on unix so the products print their untranslated labels and C dates; the
//!   system locations on Windows), plus what the caller adds by name ([`Cmd::env`],
//!   [`Cmd::system_path`]).
//! * Every run has a deadline; a program that outlives it (or a cancelled run) is killed —
//!   on unix with its whole process group, so helpers it started die too — and the call
//!   fails with a message naming the program and the timeout.
//! * Output is read while the program runs, so a caller can follow progress lines; what is
//!   kept is bounded ([`Cmd::max_output`], also per line), and a grandchild holding our pipes
//!   (a restart script starting a daemon) cannot hang us.

pub mod cursor;
pub mod xml;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Output kept per stream unless [`Cmd::max_output`] says otherwise; the rest is read and
/// dropped.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// The `PATH` of [`Cmd::system_path`]: system folders only, never the agent's own `PATH`.
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How long to wait for pipe EOF after the program exited.
const PIPE_GRACE: Duration = Duration::from_millis(500);
/// How often the deadline and the cancel flag are checked.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("empty command line")]
    Empty,
    #[error(
        "{program} is not an absolute path: programs are never looked up in PATH{}",
        set_in(settings, "it")
    )]
    NotAbsolute {
        program: String,
        settings: Option<&'static str>,
    },
    #[error("{program} not found{}", set_in(settings, "its path"))]
    NotFound {
        program: String,
        settings: Option<&'static str>,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {} s and was killed", timeout.as_secs_f64())]
    Timeout { program: String, timeout: Duration },
    #[error("{program} was stopped: cancelled")]
    Cancelled { program: String },
    #[error("waiting for {program} failed: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// `" (set it in [backends.x])"`: where the user names the program, for errors about it.
fn set_in(settings: &Option<&'static str>, what: &str) -> String {
    settings.map_or_else(String::new, |s| format!(" (set {what} in [{s}])"))
}

/// A program run: absolute path, arguments, deadline, environment allow-list.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub timeout: Duration,
    /// The child's whole environment (set by name only: values never go into argv or logs).
    pub env: Vec<(String, String)>,
    /// Bytes kept per stream (and the longest line handed to `on_line` in one piece).
    pub max_output: usize,
    /// The settings section naming the program (`backends.defender`), for error messages.
    pub settings: Option<&'static str>,
}

impl Cmd {
    /// `program` with the default environment (`LANG=C`, `LC_ALL=C` on unix).
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            timeout,
            env: default_env(),
            max_output: MAX_OUTPUT,
            settings: None,
        }
    }

    /// A command line from the settings: `argv[0]` is the program (absolute), the rest its
    /// arguments.
    pub fn from_argv<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<Self, ExecError> {
        match argv.split_first() {
            Some((program, args)) if !program.as_ref().is_empty() => {
                Ok(Self::new(program.as_ref(), timeout).args(args.iter().map(|a| a.as_ref())))
            }
            _ => Err(ExecError::Empty),
        }
    }

    /// Adds (or replaces) one environment variable: data a fixed script reads, so it never
    /// becomes code or argv.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// On unix, `PATH=`[`SYSTEM_PATH`] for tools (and restart scripts) that run system helpers
    /// by name; nothing on Windows.
    pub fn system_path(self) -> Self {
        if cfg!(unix) {
            self.env("PATH", SYSTEM_PATH)
        } else {
            self
        }
    }

    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Error messages about the program say it is set in `[section]`.
    pub fn settings(mut self, section: &'static str) -> Self {
        self.settings = Some(section);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line for logs and error messages (arguments quoted when they need it).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|a| {
                let s = a.to_string_lossy();
                if s.is_empty() || s.contains([' ', '"', '\'', '\t']) {
                    format!("{s:?}")
                } else {
                    s.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Run to completion, capturing the output.
    pub fn run(&self) -> Result<Output, ExecError> {
        self.run_with(&mut |_| {}, &|| false)
    }

    /// Run, calling `on_line` with each stdout line as it arrives, and killing the program
    /// when `cancelled()` turns true.
    pub fn run_with(
        &self,
        on_line: &mut dyn FnMut(&str),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Output, ExecError> {
        let program = self.program.display().to_string();
        let settings = self.settings;
        let max_output = self.max_output;
        if !self.program.is_absolute() {
            return Err(ExecError::NotAbsolute { program, settings });
        }
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // its own process group, so a kill reaches what it started (wrapper scripts)
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // run from the tool's own folder: KES's help says to start kescli from there
        if let Some(dir) = self.program.parent().filter(|d| d.is_dir()) {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ExecError::NotFound {
                program: program.clone(),
                settings,
            },
            _ => ExecError::Spawn {
                program: program.clone(),
                source,
            },
        })?;

        let (line_tx, lines) = mpsc::channel::<Vec<u8>>();
        if let Some(out) = child.stdout.take() {
            thread::spawn(move || {
                let mut reader = BufReader::new(out);
                loop {
                    // a line without end is handed over in pieces: memory stays bounded
                    let mut line = Vec::new();
                    let limit = u64::try_from(max_output.max(1)).unwrap_or(u64::MAX);
                    match (&mut reader).take(limit).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if line_tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        // what stderr said so far stays readable even if a grandchild keeps the pipe open
        let stderr_kept = Arc::new(Mutex::new(Vec::new()));
        let (err_tx, stderr_eof) = mpsc::channel::<()>();
        if let Some(mut err) = child.stderr.take() {
            let sink = Arc::clone(&stderr_kept);
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match err.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if let Ok(mut kept) = sink.lock() {
                                let room = max_output.saturating_sub(kept.len());
                                kept.extend_from_slice(&buf[..n.min(room)]);
                            }
                        }
                    }
                }
                let _ = err_tx.send(());
            });
        }

        let mut stdout = Vec::new();
        let mut take = |line: Vec<u8>, stdout: &mut Vec<u8>| {
            on_line(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
            let room = max_output.saturating_sub(stdout.len());
            stdout.extend_from_slice(&line[..line.len().min(room)]);
        };
        let kill = |child: &mut std::process::Child| {
            #[cfg(unix)]
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: plain syscall on the group we created for this child (pgid = pid)
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        };
        let deadline = Instant::now() + self.timeout;
        let status: ExitStatus = loop {
            while let Ok(line) = lines.try_recv() {
                take(line, &mut stdout);
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(source) => {
                    kill(&mut child);
                    return Err(ExecError::Wait { program, source });
                }
            }
            if cancelled() {
                kill(&mut child);
                return Err(ExecError::Cancelled { program });
            }
            if Instant::now() >= deadline {
                kill(&mut child);
                return Err(ExecError::Timeout {
                    program,
                    timeout: self.timeout,
                });
            }
            if let Ok(line) = lines.recv_timeout(POLL) {
                take(line, &mut stdout);
            }
        };
        // the program is gone: drain what it wrote, but never wait on a grandchild for long
        let grace = Instant::now() + PIPE_GRACE;
        while let Ok(line) = lines.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            take(line, &mut stdout);
        }
        let _ = stderr_eof.recv_timeout(grace.saturating_duration_since(Instant::now()));
        let stderr = match stderr_kept.lock() {
            Ok(kept) => kept.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// The environment every child gets: nothing inherited.
pub fn default_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    #[cfg(unix)]
    {
        env.push(("LANG".into(), "C".into()));
        env.push(("LC_ALL".into(), "C".into()));
    }
    #[cfg(windows)]
    {
        // Windows programs fail to start without these; they are system locations, not
        // user data.
        for key in [
            "SystemRoot",
            "windir",
            "SystemDrive",
            "ProgramData",
            "ProgramFiles",
            "TEMP",
            "TMP",
        ] {
            if let Ok(value) = std::env::var(key) {
                env.push((key.into(), value));
            }
        }
    }
    env
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The end of stderr (or of stdout when stderr is empty), on one line.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let text = text.trim();
        let tail = if text.len() > 300 {
            let mut start = text.len() - 300;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            format!("…{}", &text[start..])
        } else {
            text.to_owned()
        };
        tail.replace('\n', " | ")
    }

    /// `": <tail>"`, or nothing when the program printed nothing: the end of an error message.
    pub fn colon_tail(&self) -> String {
        let tail = self.tail();
        if tail.is_empty() {
            tail
        } else {
            format!(": {tail}")
        }
    }

    /// One line for error messages: `exit code N` (or the signal) and [`Output::tail`].
    pub fn summary(&self) -> String {
        let status = self
            .code()
            .map_or_else(|| self.status.to_string(), |c| format!("exit code {c}"));
        let tail = self.tail();
        if tail.is_empty() {
            status
        } else {
            format!("{status}: {tail}")
        }
    }
}

/// The file name of a program, for messages that must stay short (GLPI shows 255 characters).
pub fn program_name(program: &std::path::Path) -> String {
    program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("/bin/sh", Duration::from_secs(5)).args(["-c", script])
    }

    #[test]
    fn captures_output_status_and_streams_lines() {
        let mut seen = Vec::new();
        let out = sh("echo one; echo two; echo err >&2; exit 3")
            .run_with(&mut |l| seen.push(l.to_string()), &|| false)
            .unwrap();
        assert_eq!(out.code(), Some(3));
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(out.stdout, "one\ntwo\n");
        assert_eq!(out.stderr.trim(), "err");
        assert!(out.summary().contains("err"), "{}", out.summary());
    }

    #[test]
    fn environment_is_cleared_to_the_allow_list() {
        // the test process has HOME, PATH, ...: none of it reaches the child
        let out = Cmd::new("/usr/bin/env", Duration::from_secs(5))
            .run()
            .unwrap();
        let mut vars: Vec<&str> = out.stdout.lines().collect();
        vars.sort();
        assert_eq!(vars, ["LANG=C", "LC_ALL=C"]);
    }

    #[test]
    fn arguments_are_not_shell_interpreted() {
        let out = Cmd::new("/bin/echo", Duration::from_secs(5))
            .args(["$(id)", ";", "*", "a b"])
            .run()
            .unwrap();
        assert_eq!(out.stdout.trim(), "$(id) ; * a b");
    }

    #[test]
    fn relative_programs_are_refused() {
        let err = Cmd::new("sh", Duration::from_secs(1)).run().unwrap_err();
        assert!(matches!(err, ExecError::NotAbsolute { .. }), "{err}");
        let err = Cmd::new("/nonexistent/odscan", Duration::from_secs(1))
            .run()
            .unwrap_err();
        assert_eq!(err.to_string(), "/nonexistent/odscan not found");
    }

    #[test]
    fn timeout_kills_with_a_clear_error() {
        let start = Instant::now();
        let err = Cmd::new("/bin/sleep", Duration::from_millis(300))
            .arg("30")
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/bin/sleep did not finish within 0.3 s and was killed"
        );
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn timeout_kills_what_the_program_started() {
        let tmp = std::env::temp_dir().join(format!("cli-exec-{}", std::process::id()));
        let pid_file = tmp.with_extension("pid");
        let script = format!("/bin/sleep 30 & echo $! > {}; wait", pid_file.display());
        let mut cmd = sh(&script);
        cmd.timeout = Duration::from_millis(300);
        assert!(matches!(cmd.run(), Err(ExecError::Timeout { .. })));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let _ = std::fs::remove_file(&pid_file);
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            // gone, or a zombie waiting for its new parent to reap it
            match std::fs::read_to_string(&stat) {
                Err(_) => break,
                Ok(s) if s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')) => break,
                Ok(_) if Instant::now() > deadline => panic!("the sleep it started survived"),
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    #[test]
    fn cancel_kills() {
        let start = Instant::now();
        let err = Cmd::new("/bin/sleep", Duration::from_secs(30))
            .arg("30")
            .run_with(&mut |_| {}, &|| {
                start.elapsed() > Duration::from_millis(100)
            })
            .unwrap_err();
        assert!(matches!(err, ExecError::Cancelled { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn leftover_grandchild_holding_pipes_does_not_hang() {
        let start = Instant::now();
        let out = sh("/bin/sleep 3 & echo started").run().unwrap();
        assert_eq!(out.stdout.trim(), "started");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let c = Cmd::new("/opt/eset/eea/bin/odscan", Duration::from_secs(1))
            .args(["--scan", "--profile=@Smart scan"]);
        assert_eq!(
            c.display(),
            r#"/opt/eset/eea/bin/odscan --scan "--profile=@Smart scan""#
        );
    }

    #[test]
    fn argv_form_splits_program_and_refuses_an_empty_line() {
        let argv = ["/bin/echo".to_string(), "a b".into(), "$(id)".into()];
        let out = Cmd::from_argv(&argv, Duration::from_secs(5))
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(out.stdout, "a b $(id)\n");
        for empty in [&[][..], &["".to_string()][..]] {
            let err = Cmd::from_argv(empty, Duration::from_secs(1)).unwrap_err();
            assert_eq!(err.to_string(), "empty command line");
        }
        let err = Cmd::from_argv(&["sh", "-c", "true"], Duration::from_secs(1))
            .unwrap()
            .run()
            .unwrap_err();
        assert!(matches!(err, ExecError::NotAbsolute { .. }), "{err}");
    }

    #[test]
    fn extra_variables_and_system_path_join_the_allow_list_only() {
        // cargo sets this for the test process: the child must not inherit it
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let out = Cmd::new("/usr/bin/env", Duration::from_secs(5))
            .env("ARMADITO_VALUE", "x; $(id)")
            .env("LANG", "C.UTF-8")
            .system_path()
            .run()
            .unwrap();
        let mut vars: Vec<&str> = out.stdout.lines().collect();
        vars.sort();
        assert_eq!(
            vars,
            [
                "ARMADITO_VALUE=x; $(id)",
                "LANG=C.UTF-8",
                "LC_ALL=C",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
            ]
        );
    }

    #[test]
    fn output_is_bounded_per_stream_and_per_line() {
        // 64 KiB without a newline on each stream; 1000 bytes kept
        let mut pieces = 0;
        let out = sh("/usr/bin/head -c 65536 /dev/zero | /usr/bin/tr '\\0' a; /usr/bin/head -c 65536 /dev/zero >&2")
            .max_output(1000)
            .run_with(
                &mut |l| {
                    assert!(l.len() <= 1000, "{}", l.len());
                    pieces += 1;
                },
                &|| false,
            )
            .unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert_eq!(out.stderr.len(), 1000);
        assert!(pieces >= 65, "{pieces}");
    }

    #[test]
    fn errors_name_the_settings_section_when_given() {
        let err = Cmd::new("mdatp", Duration::from_secs(1))
            .settings("backends.defender")
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mdatp is not an absolute path: programs are never looked up in PATH \
             (set it in [backends.defender])"
        );
        let err = Cmd::new("/nonexistent/mdatp", Duration::from_secs(1))
            .settings("backends.defender")
            .run()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/mdatp not found (set its path in [backends.defender])"
        );
    }

    #[test]
    fn summary_says_exit_code_and_the_end_of_stderr() {
        let out = sh("echo out; echo oops >&2; exit 3").run().unwrap();
        assert_eq!(out.summary(), "exit code 3: oops");
        let out = sh("echo only stdout; exit 1").run().unwrap();
        assert_eq!(out.summary(), "exit code 1: only stdout");
        let out = sh("kill -9 $$").run().unwrap();
        assert_eq!(out.code(), None);
        assert!(out.summary().contains("signal"), "{}", out.summary());
    }

    #[test]
    fn stderr_is_kept_when_a_grandchild_holds_the_pipe() {
        let out = sh("echo failing >&2; /bin/sleep 3 & exit 4").run().unwrap();
        assert_eq!(out.code(), Some(4));
        assert_eq!(out.stderr.trim(), "failing");
    }
}
