//! End to end: the ESET backend plugin, the real agent and the GLPI double, with the fake ESET
//! tools of `tests/fakes/eset` (they print the documented samples and record their argv;
//! `tests/fakes/README.md` says which outputs are reconstructions).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use armadito_tests::agent::AgentSandbox;
use armadito_tests::double::{Double, ScanRow};
use armadito_tests::fakes::FakeTools;
use armadito_tests::fleet::{enrolled_agent_with, job_error, make_tree};

const EEA: &str = "eset/eea";
const ESETS: &str = "eset/esets";
const SYSTEM: &str = "eset/system";

fn line(args: &[&str]) -> String {
    FakeTools::line(args)
}

fn p(path: PathBuf) -> String {
    path.display().to_string()
}

/// `[backends.eset]` for the current product (EEA) in the fakes.
fn eea_settings(f: &FakeTools, extra: &str) -> String {
    format!(
        "[backends.eset]\nbin_dir = \"{}\"\nsbin_dir = \"{}\"\nsystemctl = \"{}\"\ninstall_dirs = []\n{extra}",
        p(f.root(EEA).join("bin")),
        p(f.root(EEA).join("sbin")),
        p(f.root(SYSTEM).join("bin/systemctl")),
    )
}

/// Runs a Scan job on `tree` and returns its job id.
fn scan_job(d: &Double, s: &AgentSandbox, agent: i64, av: i64, tree: &str) -> i64 {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "eset-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let job = d.create_job(agent, d.create_scanconfig(&name, tree, "-r", av), 2);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    job
}

fn scan_row(d: &Double, job: i64) -> ScanRow {
    d.scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .expect("a scan row for the job")
}

#[test]
fn eea_state_scan_and_alerts_land_on_the_double() {
    let f = FakeTools::install();
    let d = Double::start();
    let (s, agent, av) =
        enrolled_agent_with(&d, "eset", "armadito-backend-eset", &eea_settings(&f, ""));
    let (bin, sbin) = (p(f.root(EEA).join("bin")), p(f.root(EEA).join("sbin")));

    // State: upd -version, upd --list-modules, lic --status, systemctl is-active
    // (enrollment already asked for the state once: look at the calls of this run)
    let (eea_before, sys_before) = (f.argv(EEA).len(), f.argv(SYSTEM).len());
    s.run(&["-t", "State"]).assert_code(0);
    let st = d
        .states()
        .into_iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .expect("a state row");
    assert_eq!(st.service_status, "running");
    let details = d.stateavdetails_effective(agent);
    for (k, v) in [
        ("product:version", "12.0.13.0"),
        ("product:name", "ESET Endpoint Antivirus for Linux"),
        ("license:status", "Activated"),
        ("license:validity", "2026-06-21"),
        ("engine:version", "31832"),
        ("realtime:enabled", "unknown"),
    ] {
        assert!(
            details.contains(&(k.to_string(), Some(v.to_string()))),
            "{k} = {v} missing: {details:?}"
        );
    }
    assert!(
        d.state_modules()
            .iter()
            .any(|m| m.module_name == "EM002 Detection engine"
                && m.module_last_update == "2025-09-09 00:00:00"),
        "{:?}",
        d.state_modules()
    );
    assert_eq!(
        f.argv(EEA)[eea_before..],
        [
            line(&[&format!("{bin}/upd"), "-version"]),
            line(&[&format!("{bin}/upd"), "--list-modules"]),
            line(&[&format!("{sbin}/lic"), "--status"]),
        ]
    );
    assert_eq!(
        f.argv(SYSTEM)[sys_before..],
        [line(&[
            &p(f.root(SYSTEM).join("bin/systemctl")),
            "is-active",
            "eea.service"
        ])]
    );
    assert!(details.contains(&(
        "module:EM002 Detection engine:version".into(),
        Some("31832".into())
    )));

    // Scan job: odscan exits 50 with F-E4's detection line; totals from lslog --ods-details
    f.scenario(EEA, "odscan", "infected");
    f.scenario(EEA, "lslog-details", "infected");
    let tree = make_tree(&s.dir.path().join("tree with space"), 6, 1);
    let tree = tree.to_str().unwrap();
    let job = scan_job(&d, &s, agent, av, tree);
    assert_eq!(
        d.job(job).unwrap().job_status,
        "successful",
        "{:?}",
        job_error(&d, job)
    );
    let scan = scan_row(&d, job);
    assert_eq!(
        (scan.scanned_count, scan.malware_count, scan.progress),
        (Some(7), Some(1), Some(100)),
        "{scan:?}"
    );
    let alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].threat_name, "Eicar test file");
    assert_eq!(alerts[0].filepath, "/tmp/eicar.txt");
    assert_eq!(alerts[0].action, "none");
    assert!(
        alerts[0].detection_time.starts_with("20"),
        "{:?}",
        alerts[0]
    );
    let calls = f.argv(EEA);
    assert_eq!(
        calls[eea_before + 3..],
        [
            // the profile name with its space and the path with its space are one argv element each
            line(&[
                &format!("{bin}/odscan"),
                "--scan",
                "--profile=@Smart scan",
                "--readonly",
                "--show-scan-info",
                tree
            ]),
            line(&[&format!("{sbin}/lslog"), "--ods-details=ndlnJ78oi"]),
        ]
    );

    // Alerts: lslog -d -c with our own cursor; dates are local (US order) → run in Paris time
    let alerts_run = |s: &AgentSandbox| {
        let out = s
            .command(&["-t", "Alerts"])
            .env("TZ", "Europe/Paris")
            .output()
            .expect("run the agent");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let realtime = |d: &Double| -> Vec<_> {
        d.alerts()
            .into_iter()
            .filter(|a| a.plugin_armadito_jobs_id == 0)
            .collect()
    };
    alerts_run(&s);
    let got = realtime(&d);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .all(|a| a.detection_time == "2025-09-13 08:11:12"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|a| a.filepath == "/home/u/eicar.com" && a.action == "removed")
    );
    assert_eq!(
        f.argv(EEA).last().unwrap(),
        &line(&[&format!("{sbin}/lslog"), "-d", "-c"])
    );
    let alert_posts = || {
        d.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/api/alerts/"))
            .count()
    };
    let before = alert_posts();
    alerts_run(&s);
    assert_eq!(alert_posts(), before, "nothing new: nothing sent");
    f.scenario(EEA, "lslog-detections", "grown");
    alerts_run(&s);
    let got = realtime(&d);
    assert_eq!(got.len(), 3, "only the new row: {got:?}");
    assert!(
        got.iter()
            .any(|a| a.filepath == "/srv/a, b.zip » ZIP » x.exe"
                && a.threat_name == "Win32/Agent.XYZ trojan"
                && a.detection_time == "2025-09-14 06:00:00")
    );
    assert_eq!(alert_posts(), before + 1);

    // AVConfig: EEA has no local configuration tool: one read-only line says so
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(
        d.avconfig_effective(agent).iter().any(|(k, v)| k == "policy"
            && v.as_deref().is_some_and(|v| v.contains("ESET PROTECT"))),
        "{:?}",
        d.avconfig_effective(agent)
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn odscan_exit_codes_become_job_results() {
    let f = FakeTools::install();
    let d = Double::start();
    let (s, agent, av) =
        enrolled_agent_with(&d, "eset", "armadito-backend-eset", &eea_settings(&f, ""));
    // a scan path full of shell syntax reaches odscan as one argv element, inert
    let tree = make_tree(
        &s.dir.path().join("t;touch PWNED $(touch PWNED2)`id`'\""),
        2,
        0,
    );
    let tree = tree.to_str().unwrap();

    // 0: clean; totals from F-E6
    let job = scan_job(&d, &s, agent, av, tree);
    let odscan = p(f.root(EEA).join("bin/odscan"));
    assert!(
        f.argv(EEA).contains(&line(&[
            &odscan,
            "--scan",
            "--profile=@Smart scan",
            "--readonly",
            "--show-scan-info",
            tree
        ])),
        "{:?}",
        f.argv(EEA)
    );
    for dir in [
        s.dir.path().to_path_buf(),
        f.root(EEA).join("bin"),
        f.root(EEA),
    ] {
        assert!(!dir.join("PWNED").exists() && !dir.join("PWNED2").exists());
    }
    let scan = scan_row(&d, job);
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(1), Some(0)),
        "{scan:?}"
    );
    assert_eq!(d.job(job).unwrap().job_status, "successful");

    // 10: some files not scanned — still a result, with the not-scanned count as errors
    f.scenario(EEA, "odscan", "partial");
    f.scenario(EEA, "lslog-details", "partial");
    let job = scan_job(&d, &s, agent, av, tree);
    assert_eq!(d.job(job).unwrap().job_status, "successful");
    assert_eq!(scan_row(&d, job).scanned_count, Some(5));

    // 50 without --show-scan-info JSON: totals from the summary block, renamed `Detected:` (R-E1)
    f.scenario(EEA, "odscan", "summary");
    let job = scan_job(&d, &s, agent, av, tree);
    let scan = scan_row(&d, job);
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(1), Some(1)),
        "{scan:?}"
    );
    assert!(
        d.alerts()
            .iter()
            .any(|a| a.plugin_armadito_jobs_id == job && a.filepath == "/tmp/eicar.com")
    );

    // 100: error — the job fails with the exit code and odscan's own words
    f.scenario(EEA, "odscan", "error");
    let job = scan_job(&d, &s, agent, av, tree);
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("odscan exited with 100 (error): Cannot process data into canonical form")
            && msg.contains("Cannot process data into canonical form"),
        "{msg}"
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn a_hanging_tool_is_killed_at_its_timeout_and_a_missing_product_is_named() {
    let f = FakeTools::install();
    let d = Double::start();
    let (s, agent, av) = enrolled_agent_with(
        &d,
        "eset",
        "armadito-backend-eset",
        &eea_settings(&f, "timeout_secs = 1\nscan_timeout_secs = 2\n"),
    );
    let bin = p(f.root(EEA).join("bin"));
    f.scenario(EEA, "odscan", "sleep");
    let tree = make_tree(&s.dir.path().join("tree"), 1, 0);
    let started = Instant::now();
    let job = scan_job(&d, &s, agent, av, tree.to_str().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains(&format!(
            "{bin}/odscan did not finish within 2 s and was killed"
        )),
        "{msg}"
    );

    f.scenario(EEA, "upd-version", "sleep");
    s.run(&["-t", "State"])
        .assert_code(1)
        .assert_one_error_line(&format!(
            "{bin}/upd did not finish within 1 s and was killed"
        ));

    // no product at all
    let d2 = Double::start();
    let (s2, _, _) = enrolled_agent_with(
        &d2,
        "eset",
        "armadito-backend-eset",
        "[backends.eset]\ninstall_dirs = [\"/nonexistent/eset/eea\", \"/nonexistent/eset/esets\"]\n",
    );
    s2.run(&["-t", "State"])
        .assert_code(1)
        .assert_one_error_line(
            "no ESET product found (searched /nonexistent/eset/eea, /nonexistent/eset/esets)",
        );
}

#[test]
fn legacy_esets_is_found_automatically_and_drives_state_scan_alerts_and_config() {
    let f = FakeTools::install();
    let d = Double::start();
    let root = f.root(ESETS);
    let data = root.join("data");
    let settings = format!(
        "[backends.eset]\ninstall_dirs = [\"{}\", \"{}\"]\nlegacy_data_file = \"{}\"\nlegacy_config_file = \"{}\"\nsyslog_file = \"{}\"\nsystemctl = \"{}\"\n",
        p(f.root("eset/not-installed")),
        p(root.clone()),
        p(data.join("data.txt")),
        p(data.join("esets.cfg")),
        p(data.join("syslog")),
        p(f.root(SYSTEM).join("bin/systemctl")),
    );
    let (s, agent, av) = enrolled_agent_with(&d, "eset", "armadito-backend-eset", &settings);
    let esets_scan = p(root.join("sbin/esets_scan"));

    s.run(&["-t", "State"]).assert_code(0);
    let details = d.stateavdetails_effective(agent);
    assert!(
        details.contains(&("product:version".into(), Some("4.5.12".into()))),
        "{details:?}"
    );
    assert!(
        details.contains(&("product:mode".into(), Some("legacy".into()))),
        "{details:?}"
    );
    let st = d
        .states()
        .into_iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .unwrap();
    assert_eq!(
        st.last_update, "2016-11-23 13:22:33",
        "LastUpdate= of data.txt"
    );
    assert_eq!(
        f.argv(SYSTEM).last(),
        Some(&line(&[
            &p(f.root(SYSTEM).join("bin/systemctl")),
            "is-active",
            "esets.service"
        ]))
    );

    // the old agent's sample: threat= key, French completion date, Infected: label
    let tree = make_tree(&s.dir.path().join("tree"), 1, 0);
    let tree = tree.to_str().unwrap();
    let calls_before = f.argv(ESETS).len();
    let job = scan_job(&d, &s, agent, av, tree);
    assert_eq!(
        d.job(job).unwrap().job_status,
        "successful",
        "{:?}",
        job_error(&d, job)
    );
    let scan = scan_row(&d, job);
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(232), Some(188)),
        "{scan:?}"
    );
    let alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .collect();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].filepath.ends_with(".jar » ZIP » a/kors.class"),
        "{:?}",
        alerts[0]
    );
    assert_eq!(
        alerts[0].threat_name,
        "a variant of Java/Exploit.Agent.OKJ trojan"
    );
    assert_eq!(f.argv(ESETS)[0], line(&[&esets_scan, "--version"]));
    assert_eq!(f.argv(ESETS)[calls_before..], [line(&[&esets_scan, tree])]);

    // Alerts from syslog, cursor = file offset: the sample once, then only what is appended
    let realtime = || {
        d.alerts()
            .into_iter()
            .filter(|a| a.plugin_armadito_jobs_id == 0)
            .count()
    };
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(realtime(), 1);
    assert!(
        d.alerts()
            .iter()
            .any(|a| a.threat_name == "Win32/Exploit.CVE-2012-0158.AJ trojan"
                && a.action == "removed")
    );
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(realtime(), 1, "nothing twice");
    let log = data.join("syslog");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("Nov 23 15:00:00 n5trusty32a esets_daemon[6974]: summ[1b3e0301]: vdb=31502, agent=pac, name=\"/home/u/new.exe\", virus=\"Win32/Agent trojan\", action=\"cleaned by deleting\", info=\"\", avstatus=\"clean (deleted)\", hop=\"discarded\"\n");
    std::fs::write(&log, text).unwrap();
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(realtime(), 2);

    // systemctl is-active says "inactive" (exit 3): the service is reported stopped
    f.scenario(SYSTEM, "systemctl", "stopped");
    s.run(&["-t", "State"]).assert_code(0);
    let st = d
        .states()
        .into_iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .unwrap();
    assert_eq!(st.service_status, "stopped", "{st:?}");

    // AVConfig: esets.cfg, read-only
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(
        d.avconfig_effective(agent)
            .contains(&("global:av_update_period".into(), Some("60".into())))
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}
