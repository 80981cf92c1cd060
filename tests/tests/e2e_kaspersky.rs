//! End to end: the Kaspersky backend plugin driving KESL through the fake `kesl-control` of
//! `tests/fakes/kaspersky` (documented samples F-K3/F-K4/F-K5, argv recorded; see
//! `tests/fakes/README.md` for the reconstructions), the real agent and the GLPI double.
//! The Windows (KES) path is covered by the crate's parser tests on the same samples.

use std::time::{Duration, Instant};

use armadito_tests::agent::AgentSandbox;
use armadito_tests::double::Double;
use armadito_tests::fakes::FakeTools;
use armadito_tests::fleet::{enrolled_agent_with, job_error, make_tree};

const KESL: &str = "kaspersky/kesl";

fn control(f: &FakeTools) -> String {
    f.root(KESL).join("bin/kesl-control").display().to_string()
}

fn agent(d: &Double, f: &FakeTools, extra: &str) -> (AgentSandbox, i64, i64) {
    enrolled_agent_with(
        d,
        "kaspersky",
        "armadito-backend-kaspersky",
        &format!(
            "[backends.kaspersky]\nmode = \"kesl\"\nkesl_control = \"{}\"\n{extra}",
            control(f)
        ),
    )
}

fn scan_job(d: &Double, s: &AgentSandbox, agent: i64, av: i64, tree: &str) -> i64 {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "kesl-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let job = d.create_job(agent, d.create_scanconfig(&name, tree, "", av), 1);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    job
}

#[test]
fn kesl_state_scan_alerts_and_settings_land_on_the_double() {
    let f = FakeTools::install();
    let d = Double::start();
    let (s, agent, av) = agent(&d, &f, "");
    let kc = control(&f);
    let line = |args: &[&str]| {
        let mut all = vec![kc.as_str()];
        all.extend_from_slice(args);
        FakeTools::line(&all)
    };

    // State: --app-info (F-K3) and the File Threat Protection task (R-K1: Started)
    let before = f.argv(KESL).len();
    s.run(&["-t", "State"]).assert_code(0);
    let details = d.stateavdetails_effective(agent);
    for (k, v) in [
        ("product:version", "10.1.0.5960"),
        (
            "product:name",
            "Kaspersky Endpoint Security 10 SP1 for Linux",
        ),
        ("realtime:enabled", "on"),
        ("license:status", "Valid"),
        ("databases:loaded", "yes"),
    ] {
        assert!(
            details.contains(&(k.to_string(), Some(v.to_string()))),
            "{k} = {v} missing: {details:?}"
        );
    }
    assert_eq!(
        f.argv(KESL)[before..],
        [line(&["--app-info"]), line(&["--get-task-state", "1"])]
    );

    // Scan job: --scan-file … --action Skip prints F-K4 (exit 72); the names come from the
    // event log (F-K5 with the file moved into the scanned tree)
    let tree = make_tree(&s.dir.path().join("tree"), 0, 1);
    let tree = tree.to_str().unwrap();
    let infected = format!("{tree}/eicar-0.com");
    let events = std::fs::read_to_string(f.root(KESL).join("out/events.default")).unwrap();
    let first_record = events.split("\n\n").next().unwrap();
    f.output(
        KESL,
        "events",
        "scan",
        &first_record.replace("FileName=/eicar", &format!("FileName={infected}")),
        0,
    );
    f.scenario(KESL, "events", "scan");
    let before = f.argv(KESL).len();
    let job = scan_job(&d, &s, agent, av, tree);
    assert_eq!(
        d.job(job).unwrap().job_status,
        "successful",
        "{:?}",
        job_error(&d, job)
    );
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (scan.scanned_count, scan.malware_count, scan.progress),
        (Some(1), Some(1), Some(100)),
        "{scan:?}"
    );
    let alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].threat_name, "EICAR-Test-File");
    assert_eq!(alerts[0].filepath, infected);
    let calls = f.argv(KESL)[before..].to_vec();
    assert_eq!(calls[0], line(&["--scan-file", tree, "--action", "Skip"]));
    assert!(
        calls[1].starts_with(&line(&["-E", "--query"]))
            && calls[1].contains("[EventType=='ThreatDetected' and Date>='20"),
        "{calls:?}"
    );

    // Alerts: F-K5 + a second record; the EventId cursor sends nothing twice even though
    // this fake ignores the query filter
    f.scenario(KESL, "events", "default");
    let realtime = || {
        d.alerts()
            .into_iter()
            .filter(|a| a.plugin_armadito_jobs_id == 0)
            .collect::<Vec<_>>()
    };
    s.run(&["-t", "Alerts"]).assert_code(0);
    let got = realtime();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .any(|a| a.filepath == "/eicar" && a.threat_name == "EICAR-Test-File")
    );
    assert!(
        got.iter()
            .any(|a| a.filepath == "/home/u/Downloads/invoice.pdf.exe"
                && a.threat_name == "HEUR:Trojan.Win32.Generic")
    );
    assert_eq!(
        f.argv(KESL).last().unwrap(),
        &line(&["-E", "--query", "EventType=='ThreatDetected'"])
    );
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(realtime().len(), 2, "nothing twice");
    assert_eq!(
        f.argv(KESL).last().unwrap(),
        &line(&[
            "-E",
            "--query",
            "EventType=='ThreatDetected' and EventId>'2545'"
        ])
    );

    // AVConfig: --get-settings of tasks 1 and 2
    s.run(&["-t", "AVConfig"]).assert_code(0);
    let cfg = d.avconfig_effective(agent);
    assert!(
        cfg.contains(&("task:2:ScanArchived".into(), Some("No".into()))),
        "{cfg:?}"
    );
    assert!(
        cfg.contains(&("task:1:FirstAction".into(), Some("Recommended".into()))),
        "{cfg:?}"
    );

    // the server's configuration: allow-listed scan tuning is applied with one
    // --set-settings per task; the rest is refused by name
    use serde_json::json;
    d.set_server_avconfig(
        agent,
        vec![
            ("task:2:ScanArchived".into(), json!("Yes")),
            ("task:2:TimeLimit".into(), json!(120)),
            ("task:2:FirstAction".into(), json!("Remove")),
            ("task:1:ScanArchived".into(), json!("Yes")),
        ],
    );
    let r = s.run(&["-t", "AVConfig"]);
    r.assert_code(1);
    let err = r.error_lines().join("\n");
    assert!(
        err.contains("task:2:FirstAction: not changeable remotely"),
        "{err}"
    );
    assert!(
        err.contains("task:1:ScanArchived: not changeable remotely"),
        "{err}"
    );
    assert!(
        !err.contains("task:2:ScanArchived") && !err.contains("TimeLimit"),
        "{err}"
    );
    assert!(
        f.argv(KESL).contains(&line(&[
            "--set-settings",
            "2",
            "ScanArchived=Yes",
            "TimeLimit=120"
        ])),
        "{:?}",
        f.argv(KESL)
    );
    let cfg = d.avconfig_effective(agent);
    assert!(
        cfg.contains(&("task:2:ScanArchived".into(), Some("Yes".into()))),
        "{cfg:?}"
    );
    assert!(
        cfg.contains(&("task:2:TimeLimit".into(), Some("120".into()))),
        "{cfg:?}"
    );

    // a policy-managed host refuses (exit 68): the admin is told why, per key
    f.scenario(KESL, "set-settings", "policy");
    d.set_server_avconfig(agent, vec![("task:2:ScanMailBases".into(), json!("Yes"))]);
    s.run(&["-t", "AVConfig"]).assert_code(1).assert_one_error_line(
        "task:2:ScanMailBases: kesl-control --set-settings exited with 68 (managed by a policy)",
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn kesl_exit_codes_renamed_field_timeout_and_missing_product() {
    let f = FakeTools::install();
    let d = Double::start();
    let (s, agent, av) = agent(&d, &f, "scan_timeout_secs = 2\n");
    let tree = make_tree(&s.dir.path().join("tree"), 3, 0);
    let tree = tree.to_str().unwrap();

    // 0: clean
    f.scenario(KESL, "scan-file", "clean");
    let job = scan_job(&d, &s, agent, av, tree);
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(3), Some(0)),
        "{scan:?}"
    );
    assert!(
        !f.argv(KESL).iter().any(|l| l.contains("[-E]")),
        "no event query for a clean scan"
    );

    // 64: KESL not running → the job fails and says so
    f.scenario(KESL, "scan-file", "stopped");
    let job = scan_job(&d, &s, agent, av, tree);
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains(
            "kesl-control --scan-file exited with 64 (Kaspersky Endpoint Security is not running)"
        ),
        "{msg}"
    );

    // a hanging scan is killed at scan_timeout_secs
    f.scenario(KESL, "scan-file", "sleep");
    let started = Instant::now();
    let job = scan_job(&d, &s, agent, av, tree);
    assert!(started.elapsed() < Duration::from_secs(30));
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("kesl-control did not finish within 2 s and was killed"),
        "{msg}"
    );

    // KESL 12.3 renamed the databases line: "No" is still read → critical
    f.scenario(KESL, "app-info", "renamed");
    s.run(&["-t", "State"]).assert_code(0);
    let st = d
        .states()
        .into_iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .unwrap();
    assert_eq!(st.update_status, "critical", "{st:?}");
    assert!(
        d.stateavdetails_effective(agent)
            .contains(&("databases:loaded".into(), Some("no".into())))
    );

    // no KESL installed
    let d2 = Double::start();
    let (s2, _, _) = enrolled_agent_with(
        &d2,
        "kaspersky",
        "armadito-backend-kaspersky",
        "[backends.kaspersky]\nkesl_control = \"/nonexistent/kesl/bin/kesl-control\"\n",
    );
    s2.run(&["-t", "State"]).assert_code(1).assert_one_error_line(
        "Kaspersky Endpoint Security for Linux not found: /nonexistent/kesl/bin/kesl-control does not exist",
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}
