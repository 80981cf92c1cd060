//! End to end: `armadito-agent daemon`, the real binary against the GLPI double, with a real
//! clamd (ClamAV backend) or the test plugins. Intervals are `every = "1s"` so each test takes
//! seconds. clamd is started by `tests/clamd/start-clamd.sh`: without it the ClamAV test fails
//! (never skips).

#![cfg(unix)]

use std::time::Duration;

use armadito_tests::agent::{AgentSandbox, built_plugins};
use armadito_tests::clamd::Clamd;
use armadito_tests::daemon::{Daemon, fast_schedule, wait_until};
use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{enrolled_agent, enrolled_agent_with, job_error, make_tree};

fn status_json(s: &AgentSandbox) -> serde_json::Value {
    let r = s.run(&["status", "--json"]);
    r.assert_code(0);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// Queued jobs are fetched, run on a real clamd and reported without any cron; a detection that
/// clamd logs meanwhile reaches the server as an alert within seconds; `status --json` shows
/// the daemon, its backend and its tasks; a second daemon refuses to start (exit 7).
#[test]
fn jobs_alerts_status_and_a_single_daemon_with_a_real_clamd() {
    let clamd = Clamd::start_or_panic();
    let d = Double::start();
    let extra = format!("{}{}", fast_schedule("1h"), clamd.settings());
    let (s, agent, av) = enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &extra);
    let daemon = Daemon::start(&s);

    let tree = make_tree(&s.dir.path().join("tree"), 20, 2);
    let job = d.create_job(
        agent,
        d.create_scanconfig("tree", tree.to_str().unwrap(), "-r", av),
        2,
    );
    wait_until(
        "the job's status on the server",
        || d.job(job).is_some_and(|j| j.job_status == "successful"),
        || format!("{:?}\n{}", d.job(job), daemon.log()),
    );
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(22), Some(2)),
        "{scan:?}"
    );

    // A detection clamd makes for someone else (here a local one-shot scan) is in its log:
    // the daemon's Alerts picks it up.
    let live = make_tree(&s.dir.path().join("live"), 0, 1);
    let live_file = live.join("eicar-0.com").display().to_string();
    let _ = s.run(&["-t", "Scan", "--path", live.to_str().unwrap()]);
    wait_until(
        "the live alert on the server",
        || d.alerts().iter().any(|a| a.filepath == live_file),
        || format!("{:?}\n{}", d.alerts(), daemon.log()),
    );

    // status --json: pid, backend with its hash, task runs, sizes.
    let st = status_json(&s);
    let dm = &st["daemon"];
    assert_eq!(dm["running"], true, "{st}");
    assert_eq!(dm["pid"], daemon.pid(), "{st}");
    assert_eq!(dm["backend"]["name"], "clamav", "{st}");
    assert_eq!(
        dm["backend"]["sha256"].as_str().map(str::len),
        Some(64),
        "{st}"
    );
    assert_eq!(dm["tasks"]["Getjobs"]["last_result"], "ok", "{st}");
    assert!(dm["tasks"]["Getjobs"]["next_run"].is_i64(), "{st}");
    assert_eq!(dm["queue"], 0, "{st}");
    assert!(dm["last_server_contact"].is_i64(), "{st}");
    let human = s.run(&["status"]);
    assert!(
        human
            .stdout
            .contains(&format!("daemon:        running, pid {}", daemon.pid())),
        "{}",
        human.stdout
    );

    let second = s.run(&["daemon"]);
    second.assert_code(7);
    assert!(
        second
            .stderr
            .contains("another armadito-agent daemon is running"),
        "{}",
        second.stderr
    );

    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    let st = status_json(&s);
    assert_eq!(st["daemon"]["running"], false, "{st}");
}

/// A newer build of the selected backend dropped into the folder is used for the next State
/// report; removing it unloads it (its plugin host stops) and the older file takes over again;
/// removing every file leaves no backend loaded.
#[test]
fn a_newer_plugin_is_hot_loaded_and_a_removed_one_unloaded() {
    let d = Double::start();
    let (s, agent, _) =
        enrolled_agent_with(&d, "example", "test-plugin-example", &fast_schedule("1s"));
    let daemon = Daemon::start(&s);
    let states_with = |needle: &str| {
        d.requests()
            .iter()
            .filter(|r| r.path.contains("/api/states") && r.body.contains(needle))
            .count()
    };
    wait_until(
        "a State from example 1.0.0",
        || states_with("\"Example AV\"") > 0,
        || daemon.log(),
    );
    let first_status = status_json(&s);
    assert_eq!(
        first_status["daemon"]["backend"]["version"], "1.0.0",
        "{first_status}"
    );

    let next = built_plugins(&["test-plugin-example-next"]);
    s.install_plugins(&next);
    wait_until(
        "a State from example 1.1.0",
        || states_with("Example AV (next)") > 0,
        || daemon.log(),
    );
    daemon.wait_log("backend replaced by a new build");
    let st = status_json(&s);
    assert_eq!(st["daemon"]["backend"]["version"], "1.1.0", "{st}");
    assert_ne!(
        st["daemon"]["backend"]["sha256"],
        first_status["daemon"]["backend"]["sha256"]
    );

    // Removed: 1.0.0 is used again.
    std::fs::remove_file(
        s.dir
            .path()
            .join("plugins")
            .join(next[0].file_name().unwrap()),
    )
    .unwrap();
    wait_until(
        "version 1.0.0 back in status",
        || status_json(&s)["daemon"]["backend"]["version"] == "1.0.0",
        || daemon.log(),
    );
    // Every file removed: unloaded, the State runs fail and say why.
    for f in std::fs::read_dir(s.dir.path().join("plugins")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    daemon.wait_log("backend unloaded");
    wait_until(
        "no backend in status",
        || status_json(&s)["daemon"]["backend"].is_null(),
        || daemon.log(),
    );
    daemon.wait_log("is not loaded");
    assert!(d.agents().iter().any(|a| a.id == agent));
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// SIGTERM while a scan runs: the scan is cancelled, the job is reported failed with its partial
/// results (as a one-shot Runjobs does), and the daemon exits 0.
#[test]
fn sigterm_mid_scan_reports_a_cancelled_job_and_exits_0() {
    let d = Double::start();
    let extra = format!(
        "{}[backends.testav]\nfile_delay_ms = 150\n",
        fast_schedule("1h")
    );
    let (s, agent, av) = enrolled_agent(&d, &extra);
    let tree = make_tree(&s.dir.path().join("tree"), 40, 0);
    let job = d.create_job(
        agent,
        d.create_scanconfig("tree", tree.to_str().unwrap(), "", av),
        2,
    );
    let daemon = Daemon::start(&s);
    daemon.wait_log("running job");
    std::thread::sleep(Duration::from_millis(800));
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    let row = d.job(job).unwrap();
    assert_eq!(row.job_status, "failed", "{row:?}\n{log}");
    let msg = job_error(&d, job).unwrap();
    assert!(msg.contains("cancelled after"), "{msg}");
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    let scanned = scan.scanned_count.unwrap();
    assert!(
        scanned > 0 && scanned < 40,
        "partial count expected: {scan:?}"
    );
    let outbox = s.run(&["outbox", "--json"]);
    assert_eq!(outbox.stdout.trim(), "[]", "outbox flushed before exit");
}

/// SIGHUP applies a new schedule (State switched on); a bad file on a later SIGHUP is refused,
/// logged, and the schedule in force stays.
#[test]
fn sighup_reloads_the_schedule_and_refuses_a_bad_file() {
    let d = Double::start();
    let state_off = fast_schedule("1s").replace(
        "[schedule.tasks.State]\nevery = \"1s\"\nwait_rand = 0\n",
        "[schedule.tasks.State]\nevery = \"1s\"\nwait_rand = 0\nenabled = false\n",
    );
    let (s, _, _) = enrolled_agent(&d, &state_off);
    let daemon = Daemon::start(&s);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(state_requests(&d), 0, "State is disabled");

    let text = std::fs::read_to_string(s.config_path()).unwrap();
    std::fs::write(s.config_path(), text.replace("enabled = false\n", "")).unwrap();
    assert!(daemon.signal("HUP"));
    daemon.wait_log("configuration reloaded");
    wait_until(
        "State reports after the reload",
        || state_requests(&d) >= 2,
        || daemon.log(),
    );

    std::fs::write(s.config_path(), "server = [not toml\n").unwrap();
    assert!(daemon.signal("HUP"));
    daemon.wait_log("configuration NOT reloaded");
    let before = state_requests(&d);
    wait_until(
        "State still reporting with the old configuration",
        || state_requests(&d) >= before + 2,
        || daemon.log(),
    );
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// A server-defined schedule stays in force while the server cannot be asked for it: a GLPI in
/// trouble does not switch a fleet back to its local schedule (here State every second).
#[test]
fn a_server_defined_schedule_survives_a_server_that_cannot_say_it() {
    let d = Double::start();
    let schedule = fast_schedule("1s").replace(
        "[schedule.tasks.Scheduler]\nevery = \"1h\"",
        "[schedule.tasks.Scheduler]\nevery = \"1s\"",
    );
    let (s, agent, _) = enrolled_agent(&d, &schedule);
    // Once a day, twelve hours from now: State does not run during the test.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let hour = (now / 3600 + 12) % 24;
    d.set_server_schedule(
        agent,
        "Cron",
        vec![(
            "scheduler:task:State:freq".into(),
            format!("0 {hour} * * *"),
        )],
    );
    let daemon = Daemon::start(&s);
    daemon.wait_log("server-defined schedule received");
    std::thread::sleep(Duration::from_secs(2));
    let before = state_requests(&d);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        state_requests(&d),
        before,
        "State follows the server's daily schedule"
    );

    d.outage("schedulers", Some("GET"), Fault::Html500, 0);
    daemon.wait_log("cannot read the server-defined schedule");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        state_requests(&d),
        before,
        "the server's schedule stays in force while it cannot be read:\n{}",
        daemon.log()
    );
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// State reports the double received.
fn state_requests(d: &Double) -> usize {
    d.requests()
        .iter()
        .filter(|r| r.path.contains("/api/states"))
        .count()
}
