//! End to end: Getjobs and Runjobs against the double, with the `testav` backend.

use std::time::{Duration, Instant};

use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{drain_faults, enrolled_agent, job_error, make_tree, status_order};

#[test]
fn jobs_run_by_priority_then_age_and_results_reach_the_server() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "");
    let tree = make_tree(&s.dir.path().join("tree"), 6, 2);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "-r", av);
    let jobs: Vec<i64> = [0u8, 3, 1, 2, 3]
        .iter()
        .map(|p| d.create_job(agent, cfg, *p))
        .collect();

    s.run(&["-t", "Getjobs"]).assert_code(0);
    assert!(
        jobs.iter()
            .all(|j| d.job(*j).unwrap().job_status == "downloaded")
    );
    s.run(&["-t", "Runjobs"]).assert_code(0);

    // urgent (3) first, oldest first among equals; low (0) last
    assert_eq!(
        status_order(&d),
        vec![jobs[1], jobs[4], jobs[3], jobs[2], jobs[0]]
    );
    for j in &jobs {
        let row = d.job(*j).unwrap();
        assert_eq!(row.job_status, "successful", "{row:?}");
        let scan = d
            .scans()
            .into_iter()
            .find(|sc| sc.plugin_armadito_jobs_id == *j)
            .unwrap();
        assert_eq!(
            (scan.scanned_count, scan.malware_count, scan.progress),
            (Some(8), Some(2), Some(100)),
            "{scan:?}"
        );
    }
    // detections of each scan are stored with the job id (dedup by checksum across jobs: 2 files)
    let alerts = d.alerts();
    assert!(!alerts.is_empty());
    assert!(
        alerts
            .iter()
            .all(|a| jobs.contains(&a.plugin_armadito_jobs_id)
                && a.threat_name == "Eicar-Test-Signature")
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());

    // nothing left behind
    let q = s.run(&["queue", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&q.stdout).unwrap();
    assert!(
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "reported"),
        "{v:#}"
    );
    assert_eq!(
        s.run(&["outbox"]).stdout.trim().lines().last(),
        Some("(nothing pending)")
    );
}

#[test]
fn an_urgent_job_fetched_during_a_long_job_runs_next() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "[backends.testav]\nfile_delay_ms = 150\n");
    let tree = make_tree(&s.dir.path().join("tree"), 6, 0);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "", av);
    let low_a = d.create_job(agent, cfg, 0);
    let low_b = d.create_job(agent, cfg, 0);
    s.run(&["-t", "Getjobs"]).assert_code(0);

    let runner = s.spawn(&["-t", "Runjobs"]);
    // wait until the first job runs, then queue an urgent one and fetch it beside Runjobs
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = s.run(&["queue", "--json"]);
        if q.stdout.contains("\"running\"") {
            break;
        }
        assert!(Instant::now() < deadline, "Runjobs never started a job");
        std::thread::sleep(Duration::from_millis(50));
    }
    let urgent = d.create_job(agent, cfg, 3);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    let out = runner.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status_order(&d), vec![low_a, urgent, low_b]);
}

#[test]
fn bad_jobs_fail_with_specific_messages_and_good_ones_still_run() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "");
    let tree = make_tree(&s.dir.path().join("tree"), 2, 0);
    let good = d.create_job(
        agent,
        d.create_scanconfig("good", tree.to_str().unwrap(), "", av),
        1,
    );
    let missing = d.create_job(
        agent,
        d.create_scanconfig("missing", "/nonexistent/dir", "", av),
        1,
    );
    let relative = d.create_job(
        agent,
        d.create_scanconfig("relative", "home/user", "", av),
        1,
    );
    let shell = d.create_job(
        agent,
        d.create_scanconfig("shell", tree.to_str().unwrap(), "; rm -rf /", av),
        1,
    );
    let wipe = d.create_raw_job(agent, "Wipe", "2 - high", r#"{"x": 1}"#);
    let bad64 = d.create_raw_job(
        agent,
        "Scan",
        "1 - medium",
        r#"{"scanconfig_id": 1, "scan_name": "x", "scan_path": "%%%", "scan_options": ""}"#,
    );
    let no_path = d.create_raw_job(agent, "Scan", "1 - medium", r#"{"scanconfig_id": 1}"#);

    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);

    assert_eq!(d.job(good).unwrap().job_status, "successful");
    for (job, expect) in [
        (missing, "scan path /nonexistent/dir does not exist"),
        (relative, "scan path \"home/user\" is not absolute"),
        (shell, "unsupported scan option \";\""),
        (wipe, "unknown job type \"Wipe\""),
        (bad64, "scan_path is not valid base64"),
        (no_path, "scan job has no scan_path"),
    ] {
        let row = d.job(job).unwrap();
        assert_eq!(row.job_status, "failed", "job {job}: {row:?}");
        let msg = job_error(&d, job).unwrap_or_default();
        assert!(msg.contains(expect), "job {job}: {msg:?} lacks {expect:?}");
    }
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn results_survive_a_failing_server_and_are_delivered_on_the_next_run() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "");
    let tree = make_tree(&s.dir.path().join("tree"), 3, 1);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "", av);
    let jobs: Vec<i64> = (0..3).map(|_| d.create_job(agent, cfg, 1)).collect();
    s.run(&["-t", "Getjobs"]).assert_code(0);

    // every delivery attempt of this run fails, in every way a server or network can fail
    for _ in 0..40 {
        for f in [
            Fault::Status500Json,
            Fault::Html500,
            Fault::DropConnection,
            Fault::Html200,
            Fault::Status500InvalidJson,
            Fault::Status503RetryAfter(0),
        ] {
            d.inject(f, 1);
        }
    }
    let r = s.run(&["-t", "Runjobs"]);
    r.assert_code(1)
        .assert_stderr_contains("kept for the next run");
    let pending = s.run(&["outbox", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&pending.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 3, "{v:#}");
    assert!(
        jobs.iter()
            .all(|j| d.job(*j).unwrap().job_status == "downloaded")
    );

    // the server recovers: any task run delivers what is pending first
    drain_faults(&d);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    for j in &jobs {
        assert_eq!(d.job(*j).unwrap().job_status, "successful", "job {j}");
    }
    assert_eq!(
        d.scans()
            .iter()
            .filter(|sc| jobs.contains(&sc.plugin_armadito_jobs_id) && sc.progress == Some(100))
            .count(),
        3
    );
    assert_eq!(
        s.run(&["outbox"]).stdout.trim().lines().last(),
        Some("(nothing pending)")
    );
}

/// Children of `pid`, from /proc.
#[cfg(target_os = "linux")]
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_killed_agent_leaves_no_plugin_host_scanning_behind() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "[backends.testav]\nfile_delay_ms = 400\n");
    let tree = make_tree(&s.dir.path().join("tree"), 20, 0);
    d.create_job(
        agent,
        d.create_scanconfig("tree", tree.to_str().unwrap(), "", av),
        1,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    let mut runner = s.spawn(&["-t", "Runjobs"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let hosts = loop {
        let kids = children(runner.id());
        if !kids.is_empty() && s.run(&["queue"]).stdout.contains("running") {
            break kids;
        }
        assert!(Instant::now() < deadline, "no plugin host appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    runner.kill().unwrap();
    runner.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    for h in hosts {
        assert!(
            !std::path::Path::new(&format!("/proc/{h}")).exists()
                || std::fs::read_to_string(format!("/proc/{h}/stat"))
                    .unwrap_or_default()
                    .contains(") Z"),
            "plugin host {h} still alive"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_cancels_the_scan_reports_partial_results_and_keeps_the_rest_queued() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "[backends.testav]\nfile_delay_ms = 150\n");
    let tree = make_tree(&s.dir.path().join("tree"), 40, 0);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "", av);
    let first = d.create_job(agent, cfg, 2);
    let second = d.create_job(agent, cfg, 1);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    let runner = s.spawn(&["-t", "Runjobs"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.run(&["queue"]).stdout.contains("running") {
        assert!(Instant::now() < deadline, "Runjobs never started a job");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.code().is_some(),
        "the agent must exit by itself, not die of the signal"
    );

    let row = d.job(first).unwrap();
    assert_eq!(row.job_status, "failed", "{row:?}");
    let msg = job_error(&d, first).unwrap();
    assert!(msg.contains("cancelled after"), "{msg}");
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == first)
        .unwrap();
    let scanned = scan.scanned_count.unwrap();
    assert!(
        scanned > 0 && scanned < 40,
        "partial count expected: {scan:?}"
    );
    assert!(scan.progress.unwrap() < 100, "{scan:?}");
    assert_eq!(
        d.job(second).unwrap().job_status,
        "downloaded",
        "the next job waits for the next run"
    );
    assert!(s.run(&["queue"]).stdout.contains("queued"));
}

#[test]
fn a_full_outbox_pauses_getjobs_instead_of_dropping_anything() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "");
    // the cap is in [outbox]: rewrite the sandbox's table
    let cfg_text = std::fs::read_to_string(s.config_path()).unwrap().replace(
        "[outbox]\nretry_base = 0\n",
        "[outbox]\nretry_base = 0\nmax_messages = 2\n",
    );
    std::fs::write(s.config_path(), cfg_text).unwrap();
    let tree = make_tree(&s.dir.path().join("tree"), 2, 0);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "", av);
    let first = d.create_job(agent, cfg, 1);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    d.inject(Fault::Status500Json, 100);
    s.run(&["-t", "Runjobs"]).assert_code(1);
    let later = d.create_job(agent, cfg, 1);
    drain_faults(&d);
    d.inject(Fault::DropConnection, 100);
    s.run(&["-t", "Getjobs"])
        .assert_code(1)
        .assert_one_error_line("outbox full");
    drain_faults(&d);
    assert_eq!(
        d.job(later).unwrap().job_status,
        "queued",
        "not fetched while the outbox is full"
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    assert_eq!(d.job(first).unwrap().job_status, "successful");
    assert_eq!(d.job(later).unwrap().job_status, "downloaded");
}

/// Issue 12 item 5: control characters the server puts in a job type or an error text reach
/// `queue` escaped, never raw (no ESC sequence rewrites the admin's terminal).
#[test]
fn queue_escapes_the_servers_control_characters() {
    let d = Double::start();
    let (s, agent, _av) = enrolled_agent(&d, "");
    // JSON escapes: the agent decodes them into ESC, BEL and a newline.
    let evil = r"Wipe\u001b]0;pwned\u0007\u001b[2J\nfake row";
    d.create_raw_job(agent, evil, "2 - high", r#"{"x": 1}"#);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    for (cmd, args) in [
        ("queue", vec!["queue"]),
        ("queue --json", vec!["queue", "--json"]),
    ] {
        let r = s.run(&args);
        r.assert_code(0);
        assert!(
            !r.stdout.contains('\u{1b}'),
            "{cmd}: raw ESC in {:?}",
            r.stdout
        );
        assert!(
            !r.stdout.contains('\u{7}'),
            "{cmd}: raw BEL in {:?}",
            r.stdout
        );
    }
    let r = s.run(&["queue"]);
    assert!(r.stdout.contains("Wipe\\u{1b}]0;pwned"), "{}", r.stdout);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("fake row")),
        "{}",
        r.stdout
    );
}
