//! End to end with the Defender backend: the real agent binary, the plugin, the GLPI double,
//! and fake `powershell`/`MpCmdRun`/`mdatp` executables that print recorded outputs. The
//! Windows path is driven on Linux by pointing the settings at the fakes (`mode = "windows"`).

#![cfg(unix)]

use armadito_tests::defender_fakes::FakeDefender;
use armadito_tests::double::Double;
use armadito_tests::fleet::{enrolled_agent_with, make_tree};

const PACKAGE: &str = "armadito-backend-defender";

fn has(effective: &[(String, Option<String>)], attr: &str, value: &str) -> bool {
    effective
        .iter()
        .any(|(a, v)| a == attr && v.as_deref() == Some(value))
}

#[test]
fn windows_path_scan_state_alerts_and_avconfig_land_on_the_server() {
    let f = FakeDefender::new();
    f.output("status", "windows/status-ps51.json")
        .output("scan", "windows/mpcmdrun-infected.txt")
        .exit_code("scan", 2)
        .output("detections", "windows/detections-n.json")
        .output("threats", "windows/threats-n.json")
        .output("prefs", "windows/prefs.json")
        .output_after("prefs", "write", "windows/prefs-after.json")
        .output("write", "windows/detections-0.json");
    let d = Double::start();
    let (s, agent, av) = enrolled_agent_with(&d, "defender", PACKAGE, &f.windows_settings());
    assert!(
        d.antiviruses()
            .iter()
            .any(|a| a.id == av && a.name == "Microsoft Defender Antivirus"),
        "{:?}",
        d.antiviruses()
    );

    // Scan job: MpCmdRun's exit code 2 with "found 2 threats" is a successful scan
    let tree = make_tree(&s.dir.path().join("tree"), 4, 2);
    let job = d.create_job(
        agent,
        d.create_scanconfig("tree", tree.to_str().unwrap(), "-r", av),
        2,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    assert_eq!(
        d.job(job).unwrap().job_status,
        "successful",
        "{:?}",
        d.job(job)
    );
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (scan.scanned_count, scan.malware_count, scan.progress),
        (Some(6), Some(2), Some(100)),
        "{scan:?}"
    );
    let mut alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .map(|a| (a.threat_name, a.filepath))
        .collect();
    alerts.sort();
    let root = tree.to_str().unwrap();
    assert_eq!(
        alerts,
        [
            (
                "Virus:DOS/EICAR_Test_File".to_string(),
                format!("{root}/eicar-0.com")
            ),
            (
                "Virus:DOS/EICAR_Test_File".to_string(),
                format!("{root}/eicar-1.com")
            ),
        ]
    );
    // MpCmdRun failing (also exit code 2): the job fails with the tool's words
    f.output("scan", "windows/mpcmdrun-failed.txt");
    let failing = d.create_job(
        agent,
        d.create_scanconfig("tree2", tree.to_str().unwrap(), "", av),
        1,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    assert_eq!(d.job(failing).unwrap().job_status, "failed");
    let msg = armadito_tests::fleet::job_error(&d, failing).unwrap_or_default();
    assert!(
        msg.contains("0x80508023"),
        "the admin sees MpCmdRun's error: {msg:?}"
    );

    let mpcmdrun: Vec<_> = f
        .calls()
        .into_iter()
        .filter(|c| c.tool == "MpCmdRun")
        .collect();
    assert_eq!(
        mpcmdrun[0].args,
        [
            "-Scan",
            "-ScanType",
            "3",
            "-File",
            root,
            "-DisableRemediation"
        ]
    );

    // State
    s.run(&["-t", "State"]).assert_code(0);
    let st = d
        .states()
        .into_iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .expect("a state row");
    assert_eq!(st.service_status, "running");
    let details = d.stateavdetails_effective(agent);
    assert!(
        has(&details, "product:version", "4.18.24050.7"),
        "{details:?}"
    );
    assert!(has(&details, "realtime:enabled", "on"), "{details:?}");
    assert!(
        has(
            &details,
            "module:antivirus-signatures:version",
            "1.413.102.0"
        ),
        "{details:?}"
    );

    // Alerts: the history joined with the threat names, sent once
    s.run(&["-t", "Alerts"]).assert_code(0);
    let history: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == 0)
        .collect();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(
        history
            .iter()
            .any(|a| a.threat_name == "Trojan:Win32/Wacatac.B!ml"
                && a.filepath == r"C:\Users\alice\Downloads\setup.zip"
                && a.action == "failed")
    );
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(d.alerts().len(), 5, "nothing sent twice");

    // AVConfig: reported, then the server's values applied and confirmed by re-reading;
    // MAPSReporting stays at 2 (tamper protection) and is named
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(has(
        &d.avconfig_effective(agent),
        "ScanAvgCPULoadFactor",
        "50"
    ));
    d.set_server_avconfig(
        agent,
        vec![
            ("ScanAvgCPULoadFactor".into(), "30".into()),
            ("MAPSReporting".into(), "0".into()),
        ],
    );
    s.run(&["-t", "AVConfig"])
        .assert_code(1)
        .assert_one_error_line("MAPSReporting");
    assert!(has(
        &d.avconfig_effective(agent),
        "ScanAvgCPULoadFactor",
        "30"
    ));
    let writes: Vec<_> = f
        .calls()
        .into_iter()
        .filter(|c| c.value.is_some())
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(
        writes[0].args[3]
            .ends_with("Set-MpPreference -ScanAvgCPULoadFactor ([int64]$env:ARMADITO_VALUE)")
    );
    assert_eq!(writes[0].value.as_deref(), Some("30"));
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn mdatp_path_scan_state_alerts_and_avconfig_land_on_the_server() {
    let f = FakeDefender::new();
    f.output("health", "mdatp/health.json")
        .output_after("health", "config", "mdatp/health-after-config.json")
        .output("threat-list", "mdatp/threat-list-1.json")
        .output_after("threat-list", "scan-custom", "mdatp/threat-list-scan.json")
        .output("scan-custom", "mdatp/scan-custom.txt")
        .output("exclusion-list", "mdatp/exclusion-list.json")
        .output("config", "mdatp/threat-list-0.json");
    let d = Double::start();
    let (s, agent, av) = enrolled_agent_with(&d, "defender", PACKAGE, &f.mdatp_settings());

    let tree = make_tree(&s.dir.path().join("tree"), 4, 1);
    let job = d.create_job(
        agent,
        d.create_scanconfig("tree", tree.to_str().unwrap(), "", av),
        1,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    assert_eq!(
        d.job(job).unwrap().job_status,
        "successful",
        "{:?}",
        d.job(job)
    );
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(5), Some(1)),
        "{scan:?}"
    );
    let job_alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .collect();
    assert_eq!(job_alerts.len(), 1, "{job_alerts:?}");
    assert_eq!(
        job_alerts[0].filepath,
        format!("{}/eicar-0.com", tree.display())
    );
    assert_eq!(job_alerts[0].action, "quarantined");

    s.run(&["-t", "State"]).assert_code(0);
    let details = d.stateavdetails_effective(agent);
    assert!(
        has(&details, "product:version", "101.23062.0010"),
        "{details:?}"
    );
    assert!(has(&details, "realtime:enabled", "off"), "{details:?}");
    assert!(
        d.states()
            .iter()
            .any(|st| st.plugin_armadito_agents_id == agent && st.service_status == "running")
    );

    s.run(&["-t", "Alerts"]).assert_code(0);
    // the history holds the older detection and the scan's (which the server already has:
    // it de-duplicates by checksum)
    let alerts = d.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts.iter().any(|a| a.plugin_armadito_jobs_id == 0
        && a.filepath == "/home/user/Downloads/eicar.com"
        && a.action == "quarantined"));

    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(has(
        &d.avconfig_effective(agent),
        "cloudDiagnosticEnabled",
        ""
    ));
    d.set_server_avconfig(agent, vec![("cloudDiagnosticEnabled".into(), "1".into())]);
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(
        has(&d.avconfig_effective(agent), "cloudDiagnosticEnabled", "1"),
        "{:?}",
        d.avconfig_effective(agent)
    );
    assert!(
        f.calls()
            .iter()
            .any(|c| c.args == ["config", "cloud-diagnostic", "--value", "enabled"])
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}
