//! A run starts exactly the plugin host it needs: one for a task that uses the backend, none
//! for the others, with three plugins in the folder. Counted from the agent's debug log, one
//! `plugin host ready` line per child that said hello (the child's pid).

use std::collections::BTreeSet;

use armadito_tests::agent::{AgentSandbox, built_plugins};
use armadito_tests::double::Double;
use armadito_tests::fleet::enrolled_agent;

/// The distinct pids of the plugin hosts a run started.
fn hosts(s: &AgentSandbox, args: &[&str]) -> BTreeSet<String> {
    let mut all = vec!["-d", "1"];
    all.extend_from_slice(args);
    let r = s.run(&all);
    assert!(
        r.code.is_some_and(|c| c == 0 || c == 4),
        "{args:?}: {:?}\n{}",
        r.code,
        r.stderr
    );
    r.stderr
        .lines()
        .filter(|l| l.contains("plugin host ready"))
        .filter_map(|l| l.split("pid=").nth(1))
        .map(|p| p.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_run_starts_one_plugin_host_when_it_needs_a_backend_and_none_otherwise() {
    let d = Double::start();
    let (s, _, _) = enrolled_agent(&d, "");
    s.install_plugins(&built_plugins(&[
        "test-plugin-example",
        "test-plugin-example2",
    ]));

    for task in ["State", "Alerts", "AVConfig"] {
        assert_eq!(hosts(&s, &["-t", task]).len(), 1, "-t {task}");
    }
    for args in [
        &["-t", "Getjobs"][..],
        &["status"],
        &["queue"],
        &["outbox"],
        &["--get-agentid"],
        &["plugins"],
        &["plugins", "--json"],
        &["--list-backends"],
    ] {
        assert!(hosts(&s, args).is_empty(), "{args:?} started a plugin host");
    }
    // Asked to try them, the listing starts each plugin once.
    assert_eq!(hosts(&s, &["plugins", "--check"]).len(), 3);

    let listed = s.run(&["--list-backends"]);
    listed.assert_code(0);
    assert_eq!(
        listed.stdout.lines().collect::<Vec<_>>(),
        vec!["example", "example2", "testav"]
    );
}
