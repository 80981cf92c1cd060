//! Loading and refusing plugins (both isolation modes), listing them.

#![cfg(unix)]

mod plugins_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use agent_core::plugins::{
    BackendError, CancelToken, Isolation, PluginReport, PluginStatus, Registry, discover,
    render_table,
};
use armadito_plugin_api::model::{AlertsQuery, ConfigEntry, ErrorKind, ScanRequest};
use plugins_common::*;
use serde_json::json;

fn report<'a>(reports: &'a [PluginReport], file: &str) -> &'a PluginReport {
    reports
        .iter()
        .find(|r| r.file.file_name().is_some_and(|f| f == file))
        .unwrap_or_else(|| panic!("no report for {file}: {reports:#?}"))
}

fn reason(reports: &[PluginReport], file: &str) -> String {
    let r = report(reports, file);
    assert_eq!(r.status, PluginStatus::Refused, "{r:#?}");
    r.reason.clone().unwrap_or_default()
}

fn two_plugins(isolation: Isolation) {
    let sandbox = Sandbox::new(&["example", "example2"]);
    let registry = Registry::open(sandbox.config(isolation)).unwrap();
    assert_eq!(registry.names(), vec!["example", "example2"]);

    let example = registry.get("example").unwrap();
    let example2 = registry.get("example2").unwrap();
    assert_eq!(example.metadata().version, "1.0.0");
    assert!(example.metadata().capabilities.scan);
    assert_eq!(
        example2.metadata().capabilities.invoke_methods,
        vec!["echo", "count"]
    );
    assert_eq!(example.state().unwrap().product_name, "Example AV");
    assert_eq!(
        example2.state().unwrap().product_version,
        "build-AAAAAAAAAA"
    );

    // scan with progress, through the unified model
    let files = sandbox.root.path();
    fs::write(files.join("clean.txt"), b"hello").unwrap();
    fs::write(
        files.join("eicar.com"),
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    )
    .unwrap();
    let request = ScanRequest {
        paths: vec![
            files.join("clean.txt").display().to_string(),
            files.join("eicar.com").display().to_string(),
            files.join("missing").display().to_string(),
        ],
        ..ScanRequest::default()
    };
    let mut events = Vec::new();
    let result = example
        .scan(&request, &mut |p| events.push(p), &CancelToken::new())
        .unwrap();
    assert_eq!((result.scanned, result.malware, result.errors), (3, 1, 1));
    assert_eq!(result.detections[0].threat_name, "Eicar-Test-Signature");
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].files_scanned, 3);

    // the other calls
    let page = example2
        .alerts(&AlertsQuery {
            cursor: Some("5".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.detections[0].id, "5");
    assert_eq!(page.next_cursor.as_deref(), Some("7"));
    assert_eq!(example2.config_get().unwrap()[0].attr, "MaxFileSize");
    let applied = example2
        .config_set(&[ConfigEntry::new("ScanPE", true)])
        .unwrap();
    assert_eq!(applied.applied, vec!["ScanPE"]);
    assert_eq!(
        example2.config_get().unwrap(),
        vec![ConfigEntry::new("ScanPE", true)]
    );
    let mut seen = Vec::new();
    let n = example2
        .invoke(
            "count",
            &json!(4),
            &mut |v| seen.push(v),
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(n, json!(4));
    assert_eq!(seen.len(), 4);
    assert_eq!(
        example2
            .invoke("echo", &json!({"a": [1]}), &mut |_| {}, &CancelToken::new())
            .unwrap(),
        json!({"a": [1]})
    );
    let err = example.alerts(&AlertsQuery::default()).unwrap_err();
    assert_eq!(err.plugin_kind(), Some(ErrorKind::NotSupported), "{err}");

    // cancel a running scan
    let cancel = CancelToken::new();
    let request = ScanRequest {
        options: [
            ("steps".to_string(), json!(10_000)),
            ("step_ms".to_string(), json!(2)),
        ]
        .into(),
        ..ScanRequest::default()
    };
    let mut count = 0;
    let result = example2
        .scan(
            &request,
            &mut |_| {
                count += 1;
                if count == 3 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap();
    assert!(result.cancelled);
    assert!(result.scanned < 10_000);
}

#[test]
fn two_plugins_from_one_folder_in_process() {
    two_plugins(Isolation::InProcess);
}

#[test]
fn two_plugins_from_one_folder_in_child_processes() {
    two_plugins(Isolation::Process);
}

fn bad_plugins(isolation: Isolation) {
    let sandbox = Sandbox::new(&[
        "example",
        "no-root-module",
        "old-interface",
        "new-interface",
        "bad-layout",
        "new-fails",
    ]);
    sandbox.write("empty.so", b"");
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    sandbox.write("random.so", &random);
    sandbox.write("notes.txt", b"ignored: not a library extension");

    let registry = Registry::open(sandbox.config(isolation)).unwrap();
    assert_eq!(
        registry.names(),
        vec!["example"],
        "only the good plugin is loaded"
    );
    assert!(registry.get("example").unwrap().state().is_ok());

    let reports = registry.reports();
    println!("{isolation:?}:\n{}", render_table(&reports));
    assert_eq!(reports.len(), 8, "{reports:#?}");
    let r = reason(&reports, "empty.so");
    assert!(
        r.starts_with("not a loadable library:") && r.contains("file too short"),
        "{r}"
    );
    let r = reason(&reports, "random.so");
    assert!(
        r.starts_with("not a loadable library:") && r.contains("invalid ELF header"),
        "{r}"
    );
    let r = reason(&reports, "no-root-module.so");
    assert!(
        r.starts_with("not an Armadito plugin: no plugin root module"),
        "{r}"
    );
    let r = reason(&reports, "old-interface.so");
    assert!(
        r.starts_with("built for plugin interface 0.9.0, this agent supports ^1"),
        "{r}"
    );
    let r = reason(&reports, "new-interface.so");
    assert!(
        r.starts_with("built for plugin interface 2.0.0, this agent supports ^1"),
        "{r}"
    );
    let r = reason(&reports, "bad-layout.so");
    assert!(
        r.starts_with("binary interface mismatch (abi_stable layout check):"),
        "{r}"
    );
    assert!(
        r.len() < 600,
        "the layout report is cut to its last lines: {r}"
    );
    let new_fails = report(&reports, "new-fails.so");
    assert_eq!(new_fails.name.as_deref(), Some("new-fails"));
    assert_eq!(
        new_fails.reason.as_deref(),
        Some("failed to start: unavailable: product not installed: /nonexistent/clamd.ctl")
    );
    let ok = report(&reports, "example.so");
    assert_eq!(ok.status, PluginStatus::Loaded);
    assert_eq!(
        ok.interface_version.as_deref(),
        Some(armadito_plugin_api::INTERFACE_VERSION)
    );
    assert_eq!(ok.hash.as_ref().map(String::len), Some(64));
    let cached = ok.cached.as_ref().unwrap();
    assert!(cached.starts_with(sandbox.root.path().join("cache").canonicalize().unwrap()));
    assert!(
        cached
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains(&ok.hash.as_ref().unwrap()[..16])
    );
}

#[test]
fn bad_plugins_are_refused_in_process() {
    bad_plugins(Isolation::InProcess);
}

#[test]
fn bad_plugins_are_refused_in_child_processes() {
    bad_plugins(Isolation::Process);
}

#[test]
fn panic_in_plugin_is_an_error_value() {
    for isolation in [Isolation::InProcess, Isolation::Process] {
        let sandbox = Sandbox::new(&["panics"]);
        let registry = Registry::open(sandbox.config(isolation)).unwrap();
        let backend = registry.get("panics").unwrap();
        let pid = backend.host_pid();
        let err = backend
            .scan(&ScanRequest::default(), &mut |_| {}, &CancelToken::new())
            .unwrap_err();
        assert_eq!(err.plugin_kind(), Some(ErrorKind::Panicked), "{err}");
        assert!(
            err.to_string()
                .contains("plugin panicked in scan: boom in scan"),
            "{err}"
        );
        assert_eq!(
            backend.state().unwrap().product_name,
            "Panics",
            "still serving ({isolation:?})"
        );
        assert_eq!(
            backend.host_pid(),
            pid,
            "no restart needed for a caught panic"
        );
    }
}

#[test]
fn hung_call_times_out_in_process() {
    let sandbox = Sandbox::new(&["hangs", "example"]);
    let mut cfg = sandbox.config(Isolation::InProcess);
    cfg.scan_timeout = Duration::from_millis(300);
    let registry = Registry::open(cfg).unwrap();
    let backend = registry.get("hangs").unwrap();
    let err = backend
        .scan(&ScanRequest::default(), &mut |_| {}, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, BackendError::Timeout { .. }), "{err}");
    assert_eq!(err.to_string(), "backend hangs: scan timed out after 300ms");
    // The agent goes on: other calls and other backends still answer.
    assert_eq!(backend.state().unwrap().product_name, "Hangs");
    assert!(registry.get("example").unwrap().state().is_ok());
}

#[test]
fn unsafe_permissions_are_refused() {
    let sandbox = Sandbox::new(&["example", "example2"]);
    let file = sandbox.dir().join("example2.so");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
    let registry = Registry::open(sandbox.config(Isolation::InProcess)).unwrap();
    assert_eq!(registry.names(), vec!["example"]);
    let r = reason(&registry.reports(), "example2.so");
    assert!(
        r.contains("example2.so: writable by group or others (mode 0664); run `chmod go-w "),
        "{r}"
    );
    drop(registry);

    fs::set_permissions(sandbox.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    let reports = discover(&sandbox.config(Isolation::InProcess), false);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].file, sandbox.dir());
    assert!(
        reports[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("writable by group or others (mode 0777)")
    );
}

/// Issue 12 item 7: a plugin file that is a symlink (here to a trusted, root-owned copy of a
/// real plugin) is not loaded, and a folder whose parent another user owns is refused whole.
#[test]
fn symlinked_plugins_and_foreign_parent_folders_are_refused() {
    let sandbox = Sandbox::new(&["example"]);
    let elsewhere = sandbox.root.path().join("example2-real.so");
    fs::copy(lib("example2"), &elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, sandbox.dir().join("example2.so")).unwrap();
    let registry = Registry::open(sandbox.config(Isolation::InProcess)).unwrap();
    assert_eq!(registry.names(), vec!["example"]);
    let r = reason(&registry.reports(), "example2.so");
    assert!(r.contains("a symbolic link"), "{r}");
    drop(registry);

    // the plugins folder is fine, its parent belongs to another user
    std::os::unix::fs::chown(sandbox.root.path(), Some(65534), Some(65534)).unwrap();
    let reports = discover(&sandbox.config(Isolation::InProcess), false);
    std::os::unix::fs::chown(sandbox.root.path(), Some(0), Some(0)).unwrap();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].file, sandbox.dir());
    let why = reports[0].reason.clone().unwrap_or_default();
    assert!(why.contains("owned by uid 65534"), "{why}");
}

#[test]
fn same_name_higher_version_wins() {
    let sandbox = Sandbox::new(&["example", "example-next"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    assert_eq!(registry.names(), vec!["example"]);
    let backend = registry.get("example").unwrap();
    assert_eq!(backend.metadata().version, "1.1.0");
    assert_eq!(backend.state().unwrap().product_name, "Example AV (next)");
    let reports = registry.reports();
    let loser = report(&reports, "example.so");
    assert_eq!(loser.status, PluginStatus::Duplicate);
    assert_eq!(
        loser.reason.as_deref(),
        Some("another file provides \"example\" with version 1.1.0 (example-next.so), which wins")
    );
    assert_eq!(
        report(&reports, "example-next.so").status,
        PluginStatus::Loaded
    );
}

#[test]
fn listing_as_table_and_json() {
    let sandbox = Sandbox::new(&["example", "old-interface"]);
    let reports = discover(&sandbox.config(Isolation::Process), true);
    let table = render_table(&reports);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SHA256"),
        "{table}"
    );
    let loaded = lines.iter().find(|l| l.contains("example.so")).unwrap();
    assert!(
        loaded.starts_with("example") && loaded.contains("1.0.0") && loaded.contains("loaded"),
        "{table}"
    );
    assert!(
        table.contains("    -> built for plugin interface 0.9.0"),
        "{table}"
    );

    let json = serde_json::to_value(&reports).unwrap();
    let example = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "example")
        .unwrap();
    assert_eq!(example["status"], "loaded");
    assert_eq!(example["isolation"], "process");
    assert_eq!(example["capabilities"]["scan"], true);
    let names: Vec<&str> = reports
        .iter()
        .filter(|r| r.is_loaded())
        .filter_map(|r| r.name.as_deref())
        .collect();
    assert_eq!(names, vec!["example"], "what --list-backends prints");
}

#[test]
fn listing_reads_files_without_running_plugins() {
    // new-fails refuses in new(): a listing that ran plugins would report it refused.
    let sandbox = Sandbox::new(&["example", "example2", "new-fails"]);
    let reports = discover(&sandbox.config(Isolation::Process), false);
    for file in ["example.so", "example2.so", "new-fails.so"] {
        let r = report(&reports, file);
        assert_eq!(r.status, PluginStatus::Available, "{r:#?}");
        assert!(r.hash.is_some() && r.name.is_some(), "{r:#?}");
    }
    // Capabilities come from the file when the plugin declares them as a constant.
    let caps = report(&reports, "example2.so")
        .capabilities
        .clone()
        .unwrap();
    assert_eq!(caps.invoke_methods, vec!["echo", "count"]);
    assert!(caps.alerts && caps.config_set);
    let caps = report(&reports, "example.so").capabilities.clone().unwrap();
    assert!(caps.scan && caps.scan_cancel && !caps.alerts);
    // new-fails declares none: nothing is made up, they stay unknown until --check.
    assert!(report(&reports, "new-fails.so").capabilities.is_none());

    let checked = discover(&sandbox.config(Isolation::Process), true);
    assert_eq!(report(&checked, "example.so").status, PluginStatus::Loaded);
    assert!(
        reason(&checked, "new-fails.so").starts_with("failed to start:"),
        "{checked:#?}"
    );
}

fn open_for_starts_only_the_selected(isolation: Isolation) {
    let sandbox = Sandbox::new(&["example", "example-next", "example2", "new-fails"]);
    let registry = Registry::open_for(sandbox.config(isolation), "example").unwrap();
    assert_eq!(
        registry.names(),
        vec!["example"],
        "only one backend started"
    );
    let backend = registry.get("example").unwrap();
    assert_eq!(backend.metadata().version, "1.1.0", "highest version wins");
    assert_eq!(backend.state().unwrap().product_name, "Example AV (next)");
    let reports = registry.reports();
    assert_eq!(
        report(&reports, "example-next.so").status,
        PluginStatus::Loaded
    );
    assert_eq!(
        report(&reports, "example.so").status,
        PluginStatus::Duplicate
    );
    for file in ["example2.so", "new-fails.so"] {
        assert_eq!(report(&reports, file).status, PluginStatus::Available);
        assert!(report(&reports, file).cached.is_none(), "not even copied");
    }
    assert_eq!(
        registry.usable_names(),
        vec!["example", "example2", "new-fails"]
    );
    assert!(
        Registry::open_for(sandbox.config(isolation), "absent")
            .unwrap()
            .names()
            .is_empty()
    );
    let failing = Registry::open_for(sandbox.config(isolation), "new-fails").unwrap();
    assert!(failing.names().is_empty());
    assert!(reason(&failing.reports(), "new-fails.so").starts_with("failed to start:"));
}

#[test]
fn open_for_starts_only_the_selected_in_process() {
    open_for_starts_only_the_selected(Isolation::InProcess);
}

#[test]
fn open_for_starts_only_the_selected_process() {
    open_for_starts_only_the_selected(Isolation::Process);
}
