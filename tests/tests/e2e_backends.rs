//! The five backend plugins of the workspace side by side: `armadito-agent plugins` lists
//! each by name with its capabilities read from the file (no plugin code runs), and
//! `plugins --check` starts every one of them.

use armadito_tests::agent::{AgentSandbox, built_plugins};

const BACKENDS: [&str; 5] = ["armadito", "clamav", "defender", "eset", "kaspersky"];

fn sandbox() -> AgentSandbox {
    let s = AgentSandbox::new("http://127.0.0.1:9/glpi/plugins/armadito");
    s.write_config("4C4C4544-0033-4A10-8051-B4C04F4E4B32");
    s.install_plugins(&built_plugins(&BACKENDS.map(|b| match b {
        "armadito" => "armadito-backend-armadito",
        "clamav" => "armadito-backend-clamav",
        "defender" => "armadito-backend-defender",
        "eset" => "armadito-backend-eset",
        _ => "armadito-backend-kaspersky",
    })));
    s
}

/// `(name, status)` of every report, sorted by name.
fn statuses(json: &str) -> Vec<(String, String)> {
    let reports: serde_json::Value = serde_json::from_str(json).expect("plugins --json");
    let mut out: Vec<(String, String)> = reports
        .as_array()
        .expect("an array of plugin reports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("?").to_string(),
                p["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn plugins_lists_the_five_backends_with_their_capabilities_without_running_them() {
    let s = sandbox();
    let r = s.run(&["plugins", "--json"]);
    r.assert_code(0);
    let expected: Vec<(String, String)> = BACKENDS
        .iter()
        .map(|b| (b.to_string(), "available".to_string()))
        .collect();
    assert_eq!(statuses(&r.stdout), expected, "{}", r.stdout);
    // Every shipped backend declares its capabilities as a constant, so the listing shows
    // them straight from the file's metadata section.
    let reports: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for p in reports.as_array().unwrap() {
        let caps = &p["capabilities"];
        assert_eq!(caps["state"], true, "{}: {p}", p["name"]);
        assert_eq!(caps["scan"], true, "{}: {p}", p["name"]);
        assert!(
            caps["platforms"].as_array().is_some_and(|a| !a.is_empty()),
            "{}: {p}",
            p["name"]
        );
    }

    let table = s.run(&["plugins"]);
    table.assert_code(0);
    for name in BACKENDS {
        assert!(
            table.stdout.lines().any(|l| l.starts_with(name)),
            "{}",
            table.stdout
        );
    }
}

#[test]
fn plugins_check_starts_all_five_backends() {
    let s = sandbox();
    let r = s.run(&["plugins", "--check", "--json"]);
    r.assert_code(0);
    let expected: Vec<(String, String)> = BACKENDS
        .iter()
        .map(|b| (b.to_string(), "loaded".to_string()))
        .collect();
    assert_eq!(statuses(&r.stdout), expected, "{}", r.stdout);
}
