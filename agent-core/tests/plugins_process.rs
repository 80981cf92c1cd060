//! Process isolation: a plugin that segfaults, hangs or keeps crashing takes down only its
//! child; the agent reports the call as failed, restarts the child and goes on.

#![cfg(unix)]

mod plugins_common;

use std::time::Duration;

use agent_core::plugins::{BackendError, CancelToken, Isolation, Registry};
use armadito_plugin_api::model::ScanRequest;
use plugins_common::*;

#[test]
fn segfaulting_plugin_only_kills_its_child() {
    let sandbox = Sandbox::new(&["segfaults", "example"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    let backend = registry.get("segfaults").unwrap();
    let example = registry.get("example").unwrap();
    let first_pid = backend.host_pid().unwrap();
    let example_pid = example.host_pid().unwrap();

    let err = backend
        .scan(&ScanRequest::default(), &mut |_| {}, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, BackendError::Crashed { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "backend segfaults: plugin process crashed during scan: killed by signal 11 (SIGSEGV)"
    );
    assert!(!pid_alive(first_pid));

    // The next call restarts the child (first restart is immediate) and works.
    assert_eq!(backend.state().unwrap().product_name, "Segfaults");
    let second_pid = backend.host_pid().unwrap();
    assert_ne!(second_pid, first_pid);

    // The other backend never noticed.
    assert!(example.state().is_ok());
    assert_eq!(example.host_pid(), Some(example_pid));
}

#[test]
fn repeated_crashes_back_off() {
    let sandbox = Sandbox::new(&["segfaults"]);
    let mut cfg = sandbox.config(Isolation::Process);
    cfg.restart_backoff_max = Duration::from_secs(30);
    let registry = Registry::open(cfg).unwrap();
    let backend = registry.get("segfaults").unwrap();
    let scan = || backend.scan(&ScanRequest::default(), &mut |_| {}, &CancelToken::new());

    assert!(matches!(scan(), Err(BackendError::Crashed { .. })));
    // first restart: immediate; it crashes again
    assert!(matches!(scan(), Err(BackendError::Crashed { .. })));
    // second restart waits 500 ms: calls fail fast meanwhile
    let err = backend.state().unwrap_err();
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("failed 2 time(s) in a row; next restart in"),
        "{err}"
    );
    assert!(wait_for(Duration::from_secs(5), || backend.state().is_ok()));
}

#[test]
fn hung_plugin_is_killed_after_the_timeout() {
    let sandbox = Sandbox::new(&["hangs", "example"]);
    let mut cfg = sandbox.config(Isolation::Process);
    cfg.scan_timeout = Duration::from_millis(500);
    let registry = Registry::open(cfg).unwrap();
    let backend = registry.get("hangs").unwrap();
    let pid = backend.host_pid().unwrap();

    let started = std::time::Instant::now();
    let err = backend
        .scan(&ScanRequest::default(), &mut |_| {}, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(err, BackendError::Timeout { .. }), "{err}");
    assert_eq!(err.to_string(), "backend hangs: scan timed out after 500ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        wait_for(Duration::from_secs(2), || !pid_alive(pid)),
        "the hung child was killed"
    );

    assert_eq!(backend.state().unwrap().product_name, "Hangs");
    assert_ne!(backend.host_pid(), Some(pid));
    assert!(registry.get("example").unwrap().state().is_ok());
}

#[test]
fn children_stop_with_the_registry() {
    let sandbox = Sandbox::new(&["example", "example2"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    let pids: Vec<u32> = registry
        .names()
        .iter()
        .map(|n| registry.get(n).unwrap().host_pid().unwrap())
        .collect();
    assert!(pids.iter().all(|p| pid_alive(*p)));
    drop(registry);
    assert!(wait_for(Duration::from_secs(3), || pids
        .iter()
        .all(|p| !pid_alive(*p))));
}

#[test]
fn plugin_settings_reach_new() {
    let sandbox = Sandbox::new(&["example2"]);
    let mut cfg = sandbox.config(Isolation::Process);
    cfg.settings.insert(
        "example2".into(),
        serde_json::json!({"socket": "/run/x.ctl"}),
    );
    let registry = Registry::open(cfg).unwrap();
    let state = registry.get("example2").unwrap().state().unwrap();
    assert_eq!(state.details[0].attr, "settings");
    assert_eq!(
        state.details[0].value,
        serde_json::json!({"socket": "/run/x.ctl"})
    );
}

/// Issue 12 item 12: a plugin that floods stderr, stdout or the log is stopped with a clear
/// error (the agent's memory and log stay bounded) and the backend restarts on the next call.
#[test]
fn a_flooding_plugin_is_stopped_with_a_clear_error() {
    let sandbox = Sandbox::new(&["floods"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    let backend = registry.get("floods").unwrap();
    for (what, needle) in [
        ("stderr", "it flooded stderr"),
        ("stdout", "it wrote a stderr line longer than"),
        ("log", "it flooded the log"),
        ("big", "it sent a message longer than"),
    ] {
        let started = std::time::Instant::now();
        let req = ScanRequest {
            paths: vec![what.into()],
            ..ScanRequest::default()
        };
        let err = backend
            .scan(&req, &mut |_| {}, &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("stopped by the agent"), "{what}: {err}");
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        // restarted on the next call (after the back-off)
        assert!(wait_for(Duration::from_secs(10), || backend
            .state()
            .is_ok()));
    }
}

/// Issue 12 item 12: the plugin host starts with a cleared environment: the enrollment key and
/// the HTTP password the agent may hold in its environment never reach plugin code.
#[test]
fn plugin_hosts_do_not_inherit_the_agents_secrets() {
    // SAFETY: set before any child of this test starts; other tests do not read these.
    unsafe {
        std::env::set_var("ARMADITO_AGENT_KEY", "SECRET-KEY");
        std::env::set_var("ARMADITO_AGENT_PASSWORD", "SECRET-PASSWORD");
        // the one variable passed through (the host converts local dates like the agent)
        std::env::set_var("TZ", "UTC");
    }
    let sandbox = Sandbox::new(&["floods"]);
    let registry = Registry::open(sandbox.config(Isolation::Process)).unwrap();
    let state = registry.get("floods").unwrap().state().unwrap();
    let names: Vec<String> = state.details[0]
        .value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("ARMADITO_AGENT")),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["LANG", "PATH", "TZ"]);
}
