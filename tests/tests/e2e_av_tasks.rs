//! End to end: State, Alerts and AVConfig through the `testav` backend, against the double.

use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{drain_faults, enrolled_agent};

#[test]
fn state_lands_in_the_servers_tables() {
    let d = Double::start();
    let (s, agent, _) = enrolled_agent(&d, "[backends.testav]\nproduct_version = \"9.8.7\"\n");
    s.run(&["-t", "State"]).assert_code(0);
    let states = d.states();
    let st = states
        .iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .expect("a state row");
    assert_eq!(st.service_status, "running");
    let details = d.stateavdetails_effective(agent);
    assert!(
        details.contains(&("product:version".to_string(), Some("9.8.7".to_string()))),
        "{details:?}"
    );
    assert!(
        details.contains(&("realtime:enabled".to_string(), Some("off".to_string()))),
        "{details:?}"
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

fn detection(n: u32) -> String {
    serde_json::json!({
        "id": format!("d{n}"), "threat_name": format!("Eicar-Test-Signature-{n}"), "file_path": format!("/home/u/f{n}"),
        "action": "quarantined", "detection_time": 1_700_000_000 + n, "module_name": "testav", "info": "real-time"
    })
    .to_string()
}

#[test]
fn alerts_are_sent_once_and_survive_a_server_outage() {
    let d = Double::start();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("alerts.jsonl");
    let (s, agent, _) = enrolled_agent(
        &d,
        &format!("[backends.testav]\nalerts_file = \"{}\"\n", log.display()),
    );
    std::fs::write(&log, (0..150).map(detection).collect::<Vec<_>>().join("\n")).unwrap();

    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(d.alerts().len(), 150, "two pages of detections");
    s.run(&["-t", "Alerts"]).assert_code(0);
    let alert_posts = || {
        d.requests()
            .iter()
            .filter(|r| r.path.contains("/api/alerts/"))
            .count()
    };
    assert_eq!(alert_posts(), 2, "nothing new: nothing sent");

    // the server is down while new detections arrive: they wait in the outbox
    std::fs::write(&log, (0..155).map(detection).collect::<Vec<_>>().join("\n")).unwrap();
    d.inject(Fault::DropConnection, 50);
    s.run(&["-t", "Alerts"])
        .assert_code(1)
        .assert_stderr_contains("kept for the next run");
    drain_faults(&d);
    s.run(&["-t", "Alerts"]).assert_code(0);
    let alerts = d.alerts();
    assert_eq!(alerts.len(), 155);
    assert!(
        alerts
            .iter()
            .all(|a| a.plugin_armadito_agents_id == agent && a.action == "quarantined")
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn avconfig_applies_the_servers_configuration_and_reports_changes_only() {
    let d = Double::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("av.json");
    std::fs::write(
        &cfg,
        r#"{"ScanPDF": "yes", "MaxThreads": 10, "readonly_engine": "1.0"}"#,
    )
    .unwrap();
    let (s, agent, _) = enrolled_agent(
        &d,
        &format!("[backends.testav]\nconfig_file = \"{}\"\n", cfg.display()),
    );

    // the shipped plugin has no configuration to give (400): report the local one
    s.run(&["-t", "AVConfig"]).assert_code(0);
    let effective = d.avconfig_effective(agent);
    assert!(
        effective.contains(&("ScanPDF".to_string(), Some("yes".to_string()))),
        "{effective:?}"
    );
    let posts = || {
        d.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/api/avconfigs/"))
            .count()
    };
    assert_eq!(posts(), 1);
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert_eq!(posts(), 1, "unchanged configuration is not re-sent");
    s.run(&["-t", "AVConfig", "--force"]).assert_code(0);
    assert_eq!(posts(), 2);

    // a server-defined configuration is applied, confirmed and reported; a read-only key is named
    d.set_server_avconfig(
        agent,
        vec![
            ("ScanPDF".into(), "no".into()),
            ("readonly_engine".into(), "2.0".into()),
        ],
    );
    let r = s.run(&["-t", "AVConfig"]);
    r.assert_code(1)
        .assert_one_error_line("readonly_engine: read-only key");
    let local: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    assert_eq!(local["ScanPDF"], "no");
    assert!(
        d.avconfig_effective(agent)
            .contains(&("ScanPDF".to_string(), Some("no".to_string())))
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn avconfig_reports_the_local_configuration_when_the_server_cannot_say_what_it_defines() {
    let d = Double::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("av.json");
    std::fs::write(&cfg, r#"{"ScanPDF": "yes"}"#).unwrap();
    let (s, agent, _) = enrolled_agent(
        &d,
        &format!("[backends.testav]\nconfig_file = \"{}\"\n", cfg.display()),
    );
    // Only the GET fails (a GLPI in trouble), the POST is answered.
    d.outage("avconfigs", Some("GET"), Fault::Html500, 0);
    let r = s.run(&["-t", "AVConfig"]);
    r.assert_code(1)
        .assert_one_error_line("the server-defined configuration could not be read (");
    r.assert_stderr_contains("the local configuration was reported");
    assert!(
        d.avconfig_effective(agent)
            .contains(&("ScanPDF".to_string(), Some("yes".to_string()))),
        "the local configuration reached the server"
    );
    assert_eq!(
        s.run(&["outbox"]).stdout.trim().lines().last(),
        Some("(nothing pending)"),
        "nothing is left behind"
    );
    d.heal();
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn local_scan_prints_results_and_reports_only_when_asked() {
    let d = Double::start();
    let (s, _, _) = enrolled_agent(&d, "");
    let tree = armadito_tests::fleet::make_tree(&s.dir.path().join("tree"), 4, 1);
    let before = d.requests().len();
    let r = s.run(&["-t", "Scan", "--path", tree.to_str().unwrap()]);
    r.assert_code(6)
        .assert_one_error_line("the scan found 1 malware");
    assert!(
        r.stdout.contains("FOUND Eicar-Test-Signature"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("5 files scanned, 1 malware"),
        "{}",
        r.stdout
    );
    assert_eq!(
        d.requests().len(),
        before,
        "a local scan sends nothing by default"
    );

    s.run(&["-t", "Scan", "--path", tree.to_str().unwrap(), "--report"])
        .assert_code(6);
    assert_eq!(d.alerts().len(), 1);
    assert_eq!(d.alerts()[0].plugin_armadito_jobs_id, 0);
    s.run(&["-t", "Scan"])
        .assert_code(2)
        .assert_one_error_line("needs --path");
    s.run(&["-t", "Scan", "--path", "/nonexistent/x"])
        .assert_code(2)
        .assert_one_error_line("does not exist");
}
