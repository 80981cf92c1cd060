//! Hot loading: a watcher adds, swaps and removes backends while the "daemon" runs.

#![cfg(unix)]

mod plugins_common;

use std::sync::Arc;
use std::time::Duration;

use agent_core::plugins::{CancelToken, Change, Isolation, Registry};
use armadito_plugin_api::model::ScanRequest;
use plugins_common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

fn product_version(registry: &Registry, name: &str) -> Option<String> {
    registry.get(name)?.state().ok().map(|s| s.product_version)
}

fn hot_load_swap_remove(isolation: Isolation) {
    let sandbox = Sandbox::new(&["example"]);
    let registry = Arc::new(Registry::open(sandbox.config(isolation)).unwrap());
    let _watcher = registry.watch_every(Duration::from_millis(50));
    assert_eq!(registry.names(), vec!["example"]);

    // 1. A plugin dropped into the folder is loaded without restart.
    sandbox.install("example2", "example2.so");
    assert!(
        wait_for(WAIT, || registry.names() == ["example", "example2"]),
        "{:?}",
        registry.names()
    );
    assert_eq!(
        product_version(&registry, "example2").as_deref(),
        Some("build-AAAAAAAAAA")
    );
    let old_pid = registry.get("example2").unwrap().host_pid();

    // 2. A new build replaces the file (temp + rename): the new build answers.
    sandbox.write("example2.so", &example2_build("BBBB"));
    assert!(
        wait_for(WAIT, || product_version(&registry, "example2").as_deref()
            == Some("build-BBBBAAAAAA")),
        "new build never answered"
    );
    if let Some(pid) = old_pid {
        // process isolation: a real reload, the old child is gone
        assert!(
            wait_for(WAIT, || !pid_alive(pid)),
            "old plugin host {pid} still running"
        );
        assert_ne!(registry.get("example2").unwrap().host_pid(), Some(pid));
    }
    assert_eq!(registry.names(), vec!["example", "example2"]);

    // 3. Removing the file unloads the backend; the others stay.
    std::fs::remove_file(sandbox.dir().join("example2.so")).unwrap();
    assert!(
        wait_for(WAIT, || registry.names() == ["example"]),
        "{:?}",
        registry.names()
    );
    assert!(registry.get("example").unwrap().state().is_ok());
}

#[test]
fn hot_load_swap_remove_in_child_processes() {
    hot_load_swap_remove(Isolation::Process);
}

#[test]
fn hot_load_swap_remove_in_process() {
    hot_load_swap_remove(Isolation::InProcess);
}

#[test]
fn swap_waits_for_calls_in_flight() {
    let sandbox = Sandbox::new(&["example2"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    let old = registry.get("example2").unwrap();
    let old_pid = old.host_pid().unwrap();

    // A long scan runs on the old build while the file is replaced.
    let scan = std::thread::spawn(move || {
        let request = ScanRequest {
            options: [
                ("steps".to_string(), json!(20)),
                ("step_ms".to_string(), json!(40)),
            ]
            .into(),
            ..ScanRequest::default()
        };
        let result = old.scan(&request, &mut |_| {}, &CancelToken::new());
        (result, old)
    });
    std::thread::sleep(Duration::from_millis(150));
    sandbox.write("example2.so", &example2_build("CCCC"));
    let changes = registry.rescan();
    assert!(
        matches!(&changes[..], [Change::Replaced { name, .. }] if name == "example2"),
        "{changes:?}"
    );
    // New calls go to the new build at once...
    assert_eq!(
        product_version(&registry, "example2").as_deref(),
        Some("build-CCCCAAAAAA")
    );
    // ...while the old child keeps serving the call in flight, which completes normally.
    assert!(pid_alive(old_pid));
    let (result, old) = scan.join().unwrap();
    assert_eq!(result.unwrap().scanned, 20);
    assert!(pid_alive(old_pid), "the caller still holds the old backend");
    drop(old);
    assert!(
        wait_for(WAIT, || !pid_alive(old_pid)),
        "old child stopped once released"
    );
}

#[test]
fn unchanged_files_are_left_alone() {
    let sandbox = Sandbox::new(&["example"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    let pid = registry.get("example").unwrap().host_pid();
    assert!(registry.rescan().is_empty());
    // Rewritten with identical bytes: same hash, nothing reloaded.
    sandbox.install("example", "example.so");
    assert!(registry.rescan().is_empty());
    assert_eq!(registry.get("example").unwrap().host_pid(), pid);
}
