//! Runs the real `armadito-agent` binary in a private temporary directory, as a user would.
//!
//! The binary is located next to the test executable's `target/<profile>/` directory; it is
//! (re)built once per test process with `cargo build -p agent-core --bin armadito-agent` so a
//! `cargo test -p armadito-tests` never runs a stale agent. Set `ARMADITO_AGENT_BIN` to use
//! another binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// Path of the agent binary (built on first use).
pub fn agent_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ARMADITO_AGENT_BIN") {
            return PathBuf::from(p);
        }
        let profile_dir = target_profile_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "agent-core", "--bin", "armadito-agent"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo can be run to build armadito-agent");
        assert!(status.success(), "building armadito-agent failed");
        profile_dir.join(format!("armadito-agent{}", std::env::consts::EXE_SUFFIX))
    })
}

/// `target/<profile>` of the running test executable (`target/<profile>/deps/<test>`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().expect("profile dir") } else { deps };
    dir.to_path_buf()
}

/// A private agent installation: its own state dir and config file, nothing shared.
pub struct AgentSandbox {
    pub dir: tempfile::TempDir,
    pub server: String,
    /// Extra `agent.toml` lines (appended after the defaults written by [`AgentSandbox::new`]).
    pub extra_config: String,
}

impl AgentSandbox {
    /// `server` is the plugin base URL, e.g. `Double::base_url()`.
    pub fn new(server: &str) -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir"), server: server.to_string(), extra_config: String::new() }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// Writes agent.toml with the server, state dir, and a fixed machine UUID so the double sees
    /// one stable identity.
    pub fn write_config(&self, uuid: &str) {
        let text = format!(
            "server = \"{}\"\nstate_dir = \"{}\"\nplugins_dir = \"{}\"\nuuid = \"{uuid}\"\n[http]\ntimeout = 5\n[http.retry]\nbase_delay_ms = 10\nmax_delay_ms = 50\n{}\n",
            self.server,
            self.state_dir().display(),
            self.dir.path().join("plugins").display(),
            self.extra_config
        );
        std::fs::write(self.config_path(), text).expect("write agent.toml");
    }

    /// A command for the agent with `-c <config>` and a clean environment (no ARMADITO_* leaking
    /// in from the developer's shell, no proxy).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(agent_bin());
        cmd.arg("-c").arg(self.config_path()).args(args);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("ARMADITO_AGENT_") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(&k);
            }
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> RunResult {
        let out = self.command(args).output().expect("run armadito-agent");
        RunResult::from(out)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn armadito-agent")
    }
}

/// The outcome of one agent run, with readable assertion messages.
#[derive(Debug)]
pub struct RunResult {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for RunResult {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl RunResult {
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "the agent panicked:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }
}
