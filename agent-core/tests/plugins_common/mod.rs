//! Shared helpers of the plugin tests (`plugins_*.rs`).
//!
//! The test plugins are cdylib crates (`tests/plugins/*`), which cannot be dev-dependencies,
//! so the first test that needs them runs `cargo build -p <plugins> -p test-plugin-host` once
//! per test binary, with the same cargo (`$CARGO`), target dir and profile as the test
//! executable (derived from its path: `<target>/<profile>/deps/<test>`). Cargo's own lock
//! serializes concurrent builds. The plugin-host stand-in `test-plugin-host` runs the same
//! `plugin_host_main` as `armadito-agent plugin-host`.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use agent_core::plugins::{Isolation, PluginsConfig};

pub const PLUGINS: &[&str] = &[
    "example",
    "example2",
    "example-next",
    "panics",
    "segfaults",
    "hangs",
    "floods",
    "new-fails",
    "old-interface",
    "new-interface",
    "bad-layout",
    "no-root-module",
];

pub struct Artifacts {
    pub dir: PathBuf,
    pub host_exe: PathBuf,
}

/// Build (once) and locate the test plugins and the plugin host.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe path");
        // <target>/<profile>/deps/<test-exe>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("profile dir")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--quiet")
            .arg("--target-dir")
            .arg(&target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.arg("--profile").arg(other);
            }
        }
        for p in PLUGINS {
            cmd.arg("-p").arg(format!("test-plugin-{p}"));
        }
        cmd.arg("-p").arg("test-plugin-host");
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cmd.status().expect("run cargo build for the test plugins");
        assert!(
            status.success(),
            "building the test plugins failed: {cmd:?}"
        );
        Artifacts {
            host_exe: profile_dir.join(format!("test-plugin-host{}", std::env::consts::EXE_SUFFIX)),
            dir: profile_dir,
        }
    })
}

/// Path of the built test plugin `name` (e.g. `example` -> `libtest_plugin_example.so`).
pub fn lib(name: &str) -> PathBuf {
    artifacts().dir.join(format!(
        "{}test_plugin_{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}

/// A private folder with `plugins/` (0755) and `cache/` (created by the registry).
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(plugins: &[&str]) -> Sandbox {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("plugins");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let sandbox = Sandbox { root };
        for p in plugins {
            sandbox.install(p, &format!("{p}.{}", std::env::consts::DLL_EXTENSION));
        }
        sandbox
    }

    pub fn dir(&self) -> PathBuf {
        self.root.path().join("plugins")
    }

    /// Copy a built test plugin into the folder under `file_name`, atomically.
    pub fn install(&self, plugin: &str, file_name: &str) -> PathBuf {
        let bytes = fs::read(lib(plugin)).expect("built plugin");
        self.write(file_name, &bytes)
    }

    /// Write `bytes` as `file_name` the way an updater must: temp file + rename.
    pub fn write(&self, file_name: &str, bytes: &[u8]) -> PathBuf {
        let tmp = self.root.path().join(format!(".{file_name}.tmp"));
        fs::write(&tmp, bytes).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        let dest = self.dir().join(file_name);
        fs::rename(&tmp, &dest).unwrap();
        dest
    }

    pub fn config(&self, isolation: Isolation) -> PluginsConfig {
        let mut cfg = PluginsConfig::new(self.dir(), self.root.path().join("cache"));
        cfg.isolation = isolation;
        cfg.host_exe = artifacts().host_exe.clone();
        cfg.call_timeout = Duration::from_secs(10);
        cfg.scan_timeout = Duration::from_secs(20);
        cfg
    }
}

/// The bytes of `example2` with its build tag replaced (a "new build" of the same plugin).
pub fn example2_build(tag: &str) -> Vec<u8> {
    let old = b"build-AAAAAAAAAA";
    let new = format!("build-{tag:A<10}");
    assert_eq!(new.len(), old.len());
    let mut bytes = fs::read(lib("example2")).unwrap();
    let mut found = 0;
    let mut i = 0;
    while i + old.len() <= bytes.len() {
        if &bytes[i..i + old.len()] == old {
            bytes[i..i + old.len()].copy_from_slice(new.as_bytes());
            found += 1;
            i += old.len();
        } else {
            i += 1;
        }
    }
    assert!(found >= 1, "build tag not found in example2");
    bytes
}

/// Poll `cond` until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Is process `pid` still running (not a zombie)?
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
