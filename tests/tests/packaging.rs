//! Packaging (issue 13, item 6): the systemd unit, the `.deb` metadata and the packaged
//! configuration, checked against the real tools and the real binary. `.ci/deb.sh` then builds,
//! installs and runs the package itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use armadito_tests::agent::agent_bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("packaging/systemd/armadito-agent.service"))
        .expect("packaging/systemd/armadito-agent.service")
}

/// `[Service]` settings, key → values (a key may repeat), comments skipped.
fn service_section(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if section == "[Service]"
            && let Some((k, v)) = line.split_once('=')
        {
            out.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}

/// `systemd-analyze verify` on a copy of the unit named `armadito-agent.service` (systemd
/// derives the unit name from the file name). Returns (success, stderr).
fn verify(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("armadito-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect(
            "systemd-analyze is needed for this test (.ci/install-tools.sh installs it: apt-get install systemd)",
        );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The unit with its ExecStart= program replaced by the binary under test: verify checks that
/// the program exists, and /usr/bin/armadito-agent is only there once the package is installed
/// (`.ci/deb.sh` verifies the installed unit as it is).
fn unit_for_this_build() -> String {
    let unit = unit_text();
    let exec = "ExecStart=/usr/bin/armadito-agent daemon";
    assert!(
        unit.lines().any(|l| l == exec),
        "the unit must run `{exec}`:\n{unit}"
    );
    let bin = std::fs::canonicalize(agent_bin()).unwrap();
    unit.replace(exec, &format!("ExecStart={} daemon", bin.display()))
}

#[test]
fn systemd_accepts_the_unit_and_would_name_a_broken_one() {
    let unit = unit_for_this_build();
    let (ok, stderr) = verify(&unit);
    assert!(ok && stderr.is_empty(), "systemd-analyze verify: {stderr}");

    // The same check on a unit with a typo and a missing program: the tool really reads the
    // file (an unknown key is only a warning on stderr, hence the empty-stderr rule above).
    let broken = unit.replace("ProtectClock=yes", "ProtectClok=yes").replace(
        &format!(
            "ExecStart={}",
            std::fs::canonicalize(agent_bin()).unwrap().display()
        ),
        "ExecStart=/nonexistent/armadito-agent",
    );
    let (ok, stderr) = verify(&broken);
    assert!(
        !ok,
        "a missing ExecStart program must fail verify: {stderr}"
    );
    assert!(stderr.contains("ProtectClok"), "{stderr}");
}

#[test]
fn the_unit_is_hardened_without_hiding_files_from_scans() {
    let s = service_section(&unit_text());
    let one = |k: &str| -> Option<&str> {
        let v = s.get(k)?;
        assert_eq!(v.len(), 1, "{k} set {} times", v.len());
        Some(v[0].as_str())
    };
    for (key, value) in [
        ("Type", "notify"),
        ("ExecStart", "/usr/bin/armadito-agent daemon"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        // SIGTERM to the agent alone: it cancels and reports a running scan itself.
        ("KillMode", "mixed"),
        ("StateDirectory", "armadito-agent"),
        ("StateDirectoryMode", "0700"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "full"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_eq!(one(key), Some(value), "[Service] {key}=");
    }
    // Talking to clamd (unix socket) and GLPI (inet) must stay possible.
    let families = one("RestrictAddressFamilies").expect("RestrictAddressFamilies=");
    for f in ["AF_UNIX", "AF_INET", "AF_INET6"] {
        assert!(families.split_whitespace().any(|x| x == f), "{families}");
    }
    // AVConfig apply writes ClamAV's clamd.conf under the read-only /etc.
    let rw = one("ReadWritePaths").expect("ReadWritePaths=");
    assert!(rw.split_whitespace().any(|p| p == "-/etc/clamav"), "{rw}");

    // Nothing that would make a scan of the whole disk see less than the disk: the agent walks
    // the tree itself, in the unit's mount namespace.
    for key in [
        "ProtectHome",
        "PrivateTmp",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "ProtectProc",
        "PrivateMounts",
        "RootDirectory",
        "RootImage",
        "DynamicUser",
        "User",
    ] {
        assert!(
            !s.contains_key(key),
            "{key}= would hide files from scans or drop root: {:?}",
            s[key]
        );
    }
}

#[test]
fn the_deb_ships_the_five_backends_the_unit_and_the_installed_paths() {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("agent-core/Cargo.toml")).unwrap())
            .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    assert_eq!(deb["name"].as_str(), Some("armadito-agent"));
    let assets: Vec<(String, String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let s = |i: usize| a[i].as_str().unwrap().to_string();
            (s(0), s(1), s(2))
        })
        .collect();
    let dest_of = |src: &str| {
        assets
            .iter()
            .find(|(s, _, _)| s == src)
            .map(|(_, d, m)| (d.as_str(), m.as_str()))
    };
    // Each backend crate's real artefact name, from its own manifest.
    for backend in ["clamav", "armadito", "defender", "eset", "kaspersky"] {
        let m: toml::Table = toml::from_str(
            &std::fs::read_to_string(repo().join(format!("plugins/{backend}/Cargo.toml"))).unwrap(),
        )
        .unwrap();
        let lib = m["lib"]["name"].as_str().unwrap();
        assert!(
            m["lib"]["crate-type"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_str() == Some("cdylib")),
            "{backend} builds no cdylib"
        );
        assert_eq!(
            dest_of(&format!("target/release/lib{lib}.so")),
            Some(("usr/lib/armadito-agent/plugins/", "644")),
            "{backend}: {assets:#?}"
        );
    }
    let plugin_files = assets
        .iter()
        .filter(|(_, d, _)| d.starts_with("usr/lib/armadito-agent/plugins"))
        .count();
    assert_eq!(plugin_files, 5, "{assets:#?}");
    // The host must sit next to the agent: that is where the agent looks for it.
    assert_eq!(
        dest_of("target/release/armadito-agent"),
        Some(("usr/bin/", "755"))
    );
    assert_eq!(
        dest_of("target/release/armadito-plugin-host"),
        Some(("usr/bin/", "755"))
    );
    assert_eq!(
        dest_of("../packaging/deb/agent.toml"),
        Some(("etc/armadito-agent/agent.toml", "600"))
    );
    for generated in [
        "armadito-agent.1.gz",
        "armadito-agent.bash",
        "_armadito-agent",
        "armadito-agent.fish",
    ] {
        assert!(
            dest_of(&format!("../target/deb-assets/{generated}")).is_some(),
            "{generated} not packaged"
        );
    }
    let units = &deb["systemd-units"];
    assert_eq!(
        units["unit-scripts"].as_str(),
        Some("../packaging/systemd/")
    );
    // Not started before enrollment.
    assert_eq!(units["enable"].as_bool(), Some(false));
    assert_eq!(units["start"].as_bool(), Some(false));
    // Every script the package build runs is there, executable.
    for script in [
        "packaging/deb/postinst",
        "packaging/deb/postrm",
        "packaging/build-deb.sh",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(repo().join(script))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
    // cargo-deb replaces EVERY `#DEBHELPER#`, comments included: one token per script.
    for script in ["postinst", "postrm"] {
        let text = std::fs::read_to_string(repo().join("packaging/deb").join(script)).unwrap();
        assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{script}");
    }
    let postinst = std::fs::read_to_string(repo().join("packaging/deb/postinst")).unwrap();
    assert!(postinst.contains("-m 0700 /var/lib/armadito-agent"));
}

#[test]
fn the_packaged_config_loads_and_names_the_installed_paths() {
    let path = repo().join("packaging/deb/agent.toml");
    let opts = agent_core::cli::GlobalOptions {
        config: Some(path.clone()),
        ..Default::default()
    };
    let config = agent_core::config::Config::load(&opts).unwrap();
    assert_eq!(
        config.plugins_dir,
        Path::new("/usr/lib/armadito-agent/plugins")
    );
    assert_eq!(config.state_dir, Path::new("/var/lib/armadito-agent"));
    // The administrator picks these: no GLPI URL or backend is guessed.
    assert_eq!(config.server, None);
    assert_eq!(config.backend, None);
}

#[test]
fn service_commands_exit_2_outside_windows() {
    for action in ["install", "uninstall", "start", "stop", "run"] {
        let out = Command::new(agent_bin())
            .args(["service", action])
            .env_remove("ARMADITO_AGENT_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "service {action}: {stderr}");
        assert!(
            stderr.contains("Windows service")
                && stderr.contains("systemctl enable --now armadito-agent"),
            "service {action}: {stderr}"
        );
    }
    // Documented with the other commands (help and man are the same on every platform).
    let help = Command::new(agent_bin()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("service"));
}
