//! The five backend plugins of the workspace load side by side: `armadito-agent plugins`
//! lists each by name, loaded.

use armadito_tests::agent::{AgentSandbox, built_plugins};

#[test]
fn plugins_lists_the_five_backends() {
    let s = AgentSandbox::new("http://127.0.0.1:9/glpi/plugins/armadito");
    s.write_config("4C4C4544-0033-4A10-8051-B4C04F4E4B32");
    s.install_plugins(&built_plugins(&[
        "armadito-backend-clamav",
        "armadito-backend-armadito",
        "armadito-backend-defender",
        "armadito-backend-eset",
        "armadito-backend-kaspersky",
    ]));
    let r = s.run(&["plugins", "--json"]);
    r.assert_code(0);
    let reports: serde_json::Value = serde_json::from_str(&r.stdout).expect("plugins --json");
    let mut loaded: Vec<&str> = reports
        .as_array()
        .expect("an array of plugin reports")
        .iter()
        .filter(|p| p["status"] == "loaded")
        .filter_map(|p| p["name"].as_str())
        .collect();
    loaded.sort();
    assert_eq!(
        loaded,
        ["armadito", "clamav", "defender", "eset", "kaspersky"],
        "{}",
        r.stdout
    );
    let table = s.run(&["plugins"]);
    table.assert_code(0);
    for name in ["eset", "kaspersky"] {
        assert!(
            table
                .stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains("loaded")),
            "{}",
            table.stdout
        );
    }
}
