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
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "agent-core",
            "--bin",
            "armadito-agent",
            // its process-isolation child, used when it sits next to the agent
            "--bin",
            "armadito-plugin-host",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("cargo can be run to build armadito-agent");
        assert!(status.success(), "building armadito-agent failed");
        profile_dir.join(format!("armadito-agent{}", std::env::consts::EXE_SUFFIX))
    })
}

/// `target/<profile>` of the running test executable (`target/<profile>/deps/<test>`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// A private agent installation: its own state dir and config file, nothing shared.
pub struct AgentSandbox {
    pub dir: tempfile::TempDir,
    pub server: String,
    /// Extra top-level `agent.toml` keys (written before the first table).
    pub top_config: String,
    /// Extra `agent.toml` tables (appended after the defaults).
    pub extra_config: String,
}

impl AgentSandbox {
    /// `server` is the plugin base URL, e.g. `Double::base_url()`.
    pub fn new(server: &str) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            server: server.to_string(),
            top_config: String::new(),
            extra_config: String::new(),
        }
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
            "server = \"{}\"\nstate_dir = \"{}\"\nplugins_dir = \"{}\"\nuuid = \"{uuid}\"\n{}\n[http]\ntimeout = 5\n[http.retry]\nbase_delay_ms = 10\nmax_delay_ms = 50\n{}\n",
            self.server,
            self.state_dir().display(),
            self.dir.path().join("plugins").display(),
            self.top_config,
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
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn armadito-agent")
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
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the agent panicked:\n{}",
            self.stderr
        );
        self
    }

    /// The error lines the agent printed (`armadito-agent: ...`), log lines excluded.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("armadito-agent:"))
            .collect()
    }

    /// Exactly one error line, and it contains `needle`.
    #[track_caller]
    pub fn assert_one_error_line(&self, needle: &str) -> &Self {
        let lines = self.error_lines();
        assert_eq!(lines.len(), 1, "one error line expected:\n{}", self.stderr);
        assert!(
            lines[0].contains(needle),
            "error line lacks {needle:?}: {}",
            lines[0]
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// Builds the given cdylib packages once per test process and returns the path of each
/// library (`target/<profile>/lib<name>.so`), in order.
pub fn built_plugins(packages: &[&str]) -> Vec<PathBuf> {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !built.iter().any(|b| b == p))
        .collect();
    let profile_dir = target_profile_dir();
    if !missing.is_empty() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"]);
        for p in &missing {
            cmd.args(["-p", p]);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("cargo runs").success(),
            "building {missing:?} failed"
        );
        built.extend(missing.iter().map(|s| s.to_string()));
    }
    packages
        .iter()
        .map(|p| {
            let lib = p.replace('-', "_");
            profile_dir.join(format!(
                "{}{lib}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        })
        .collect()
}

impl AgentSandbox {
    /// Installs plugin libraries into this sandbox's plugins folder (0755, as a package would).
    pub fn install_plugins(&self, libs: &[PathBuf]) {
        let dir = self.dir.path().join("plugins");
        std::fs::create_dir_all(&dir).expect("plugins dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .expect("chmod plugins dir");
            // the sandbox root itself is a 0700 temp dir owned by us: trusted
        }
        for lib in libs {
            let name = lib.file_name().expect("library file name");
            std::fs::copy(lib, dir.join(name)).expect("copy plugin");
        }
    }
}
