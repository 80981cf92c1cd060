//! Fake Defender tools (`powershell`, `MpCmdRun`, `mdatp`) for tests: copies of
//! `tests/fakes/defender/fake.sh` in a private directory, with the recorded outputs a test
//! chooses. They record every call (argv and data variable) so tests assert exact command
//! lines. Used by the e2e tests and, through `#[path]`, by the plugin's own tests.

// Included by several test crates (`#[path]`); each uses a part of it.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// `tests/fakes/defender` in the source tree.
pub fn fakes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("tests/fakes/defender"))
        .find(|p| p.join("fake.sh").is_file())
        .expect("tests/fakes/defender/fake.sh in an ancestor of the crate")
}

/// A recorded fixture, e.g. `fixture("windows/status-ps51.json")`.
pub fn fixture(rel: &str) -> PathBuf {
    fakes_dir().join("fixtures").join(rel)
}

/// One call a fake received: the tool's name, its arguments, the `ARMADITO_VALUE` it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    pub tool: String,
    pub args: Vec<String>,
    pub value: Option<String>,
}

pub struct FakeDefender {
    pub dir: tempfile::TempDir,
}

impl Default for FakeDefender {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeDefender {
    /// `powershell`, `MpCmdRun` and `mdatp` fakes in a new private directory.
    pub fn new() -> FakeDefender {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("out")).expect("out dir");
        let script = std::fs::read(fakes_dir().join("fake.sh")).expect("fake.sh");
        for name in ["powershell", "MpCmdRun", "mdatp"] {
            let p = dir.path().join(name);
            std::fs::write(&p, &script).expect("install fake");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod fake");
            }
        }
        FakeDefender { dir }
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The output of `key` (see fake.sh) is the fixture `rel`.
    pub fn output(&self, key: &str, rel: &str) -> &Self {
        std::fs::copy(fixture(rel), self.dir.path().join("out").join(key)).expect("fixture");
        self
    }

    /// The output of `key` once a changing call with key `change` (`scan`, `write`,
    /// `scan-custom`, `config`, `exclusion-write`) has run.
    pub fn output_after(&self, key: &str, change: &str, rel: &str) -> &Self {
        self.output(&format!("{key}.after.{change}"), rel)
    }

    pub fn exit_code(&self, key: &str, code: i32) -> &Self {
        std::fs::write(
            self.dir.path().join("out").join(format!("{key}.exit")),
            code.to_string(),
        )
        .expect("exit file");
        self
    }

    pub fn sleep(&self, key: &str, secs: u32) -> &Self {
        std::fs::write(
            self.dir.path().join("out").join(format!("{key}.sleep")),
            secs.to_string(),
        )
        .expect("sleep file");
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        let log = std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default();
        let mut calls: Vec<FakeCall> = Vec::new();
        for line in log.lines() {
            if let Some(tool) = line.strip_prefix("CALL ") {
                calls.push(FakeCall {
                    tool: tool.to_string(),
                    args: Vec::new(),
                    value: None,
                });
            } else if let (Some(call), Some(arg)) = (calls.last_mut(), line.strip_prefix("  ")) {
                match arg.strip_prefix("env ARMADITO_VALUE=") {
                    Some(v) => call.value = Some(v.to_string()),
                    None => call.args.push(arg.to_string()),
                }
            }
        }
        calls
    }

    /// The environment the last call saw.
    pub fn last_env(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("env.log")).unwrap_or_default()
    }

    /// `[backends.defender]` driving the Windows path through the fakes.
    pub fn windows_settings(&self) -> String {
        format!(
            "[backends.defender]\nmode = \"windows\"\npowershell = \"{}\"\nmpcmdrun = \"{}\"\ntimeout_secs = 10\n",
            self.tool("powershell").display(),
            self.tool("MpCmdRun").display()
        )
    }

    /// `[backends.defender]` driving the mdatp path through the fake.
    pub fn mdatp_settings(&self) -> String {
        format!(
            "[backends.defender]\nmode = \"mdatp\"\nmdatp = \"{}\"\ntimeout_secs = 10\n",
            self.tool("mdatp").display()
        )
    }
}
