//! End to end: `-t Scheduler` against the double, writing into a temp `[schedule] root`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_core::schedule::CronExpr;
use agent_core::tasks::scheduler::cron::shell_quote;
use armadito_tests::agent::{AgentSandbox, agent_bin};
use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{UUID, drain_faults, enrolled_agent};

const TASKS: [&str; 6] = [
    "Getjobs",
    "Runjobs",
    "State",
    "Alerts",
    "AVConfig",
    "Scheduler",
];

/// An enrolled agent whose schedule is written under a private root.
fn agent(d: &Double, extra: &str) -> (AgentSandbox, i64, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("root dir");
    let (s, agent, _) = enrolled_agent(
        d,
        &format!("[schedule]\nroot = \"{}\"\n{extra}", root.path().display()),
    );
    (s, agent, root)
}

fn cron_file(root: &Path) -> PathBuf {
    root.join("etc/cron.d/armadito-agent")
}

/// The cron entries (not comments, not variables), split into (freq, user, command).
fn entries(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| {
            !(l.starts_with('#')
                || l.trim().is_empty()
                || l.starts_with("SHELL=")
                || l.starts_with("PATH="))
        })
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, '\t').collect();
            assert_eq!(f.len(), 3, "cron entry {l:?}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// The shell-quoted command line the agent should schedule for `task`.
fn command(s: &AgentSandbox, task: &str, wait_rand: u64) -> String {
    let bin = std::fs::canonicalize(agent_bin()).expect("agent binary");
    let quote = |p: &std::path::Path| shell_quote(&p.display().to_string()).expect("quotable");
    format!(
        "{} -c {} -t {task} --wait-rand {wait_rand} >>/var/log/armadito-agent/agent.log 2>&1",
        quote(&bin),
        quote(s.config_path().as_ref())
    )
}

/// What the server stores for the agent's scheduler, as attr → value.
fn details(d: &Double, agent: i64) -> BTreeMap<String, String> {
    d.scheduler_details_effective(agent)
        .into_iter()
        .map(|(a, v)| (a, v.unwrap_or_default()))
        .collect()
}

fn scheduler_name(d: &Double, agent: i64) -> Option<String> {
    d.schedulers()
        .into_iter()
        .find(|s| s.plugin_armadito_agents_id == agent)
        .and_then(|s| s.name)
}

fn scheduler_requests(d: &Double) -> Vec<(String, u16)> {
    d.requests()
        .into_iter()
        .filter(|r| r.path.contains("/api/schedulers/"))
        .map(|r| (r.method, r.status))
        .collect()
}

#[test]
fn with_the_shipped_plugin_the_local_defaults_are_installed_and_reported() {
    let d = Double::start();
    let (s, agent, root) = agent(&d, "");
    d.clear_requests();

    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(0);
    // the plugin's 400 to GET schedulers means "nothing defined": no warning about it
    assert!(!r.stderr.contains("WARN"), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("Scheduler: Cron schedule installed"),
        "{}",
        r.stdout
    );
    assert_eq!(
        scheduler_requests(&d),
        [("GET".to_string(), 400), ("POST".to_string(), 200)]
    );

    let path = cron_file(root.path());
    let text = std::fs::read_to_string(&path).expect("cron file written under the root");
    let got = entries(&text);
    let expected: Vec<(String, String, String)> = [
        ("* * * * *", "Getjobs", 30),
        ("*/2 * * * *", "Runjobs", 60),
        ("*/20 * * * *", "State", 600),
        ("*/10 * * * *", "Alerts", 300),
        ("30 * * * *", "AVConfig", 1800),
        ("15 */6 * * *", "Scheduler", 3600),
    ]
    .iter()
    .map(|(f, t, w)| (f.to_string(), "root".to_string(), command(&s, t, *w)))
    .collect();
    assert_eq!(got, expected, "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o644);
    }
    assert!(root.path().join("var/log/armadito-agent").is_dir());

    assert_eq!(scheduler_name(&d, agent).as_deref(), Some("Cron"));
    let det = details(&d, agent);
    assert_eq!(det["scheduler:user"], "root");
    assert_eq!(
        det["scheduler:logfile"],
        "/var/log/armadito-agent/agent.log"
    );
    assert_eq!(det["scheduler:task:Getjobs:freq"], "* * * * *");
    assert_eq!(det["scheduler:task:Runjobs:args"], "--wait-rand 60");
    assert_eq!(det["scheduler:mode"], "cron");
    assert_eq!(det["scheduler:source"], "local");
    assert_eq!(det["scheduler:rejected"], "");
    for t in TASKS {
        assert!(
            det.contains_key(&format!("scheduler:task:{t}:freq")),
            "{t}: {det:?}"
        );
    }
    assert!(d.violations().is_empty(), "{:#?}", d.violations());

    // Again: the file is unchanged, the report is sent anyway (the server overwrites it).
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let again = s.run(&["-t", "Scheduler"]);
    again.assert_code(0);
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(scheduler_requests(&d).len(), 4);
    assert_eq!(
        s.run(&["outbox"]).stdout.trim().lines().last(),
        Some("(nothing pending)")
    );
}

#[test]
fn the_scheduled_command_line_really_runs_the_task() {
    let d = Double::start();
    let (s, agent, root) = agent(&d, "[schedule.tasks.Getjobs]\nwait_rand = 0\n");
    s.run(&["-t", "Scheduler"]).assert_code(0);
    let text = std::fs::read_to_string(cron_file(root.path())).unwrap();
    let (_, _, cmd) = entries(&text)
        .into_iter()
        .find(|(_, _, c)| c.contains(" -t Getjobs "))
        .expect("a Getjobs entry");
    assert!(!cmd.contains("--wait-rand"), "{cmd}");
    // What cron would do (`/bin/sh -c <command>`), with the output sent to a private file.
    let out = root.path().join("out.log");
    let cmd = cmd.replace(
        ">>/var/log/armadito-agent/agent.log",
        &format!(
            ">>{}",
            shell_quote(&out.display().to_string()).expect("quotable")
        ),
    );
    d.clear_requests();
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&cmd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .unwrap();
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.success(), "{cmd}\n{log}");
    assert!(log.contains("Getjobs:"), "{log}");
    assert!(
        d.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.contains(&format!("/api/jobs/?agent_id={agent}"))),
        "{:#?}",
        d.requests()
    );
}

#[test]
fn a_server_defined_schedule_is_applied() {
    let d = Double::start();
    let (s, agent, root) = agent(&d, "");
    d.set_server_schedule(
        agent,
        "Cron",
        vec![
            ("scheduler:task:Getjobs:freq".into(), "*/5 * * * *".into()),
            ("scheduler:task:Getjobs:args".into(), "-wr 10".into()),
        ],
    );
    s.run(&["-t", "Scheduler"]).assert_code(0);

    let text = std::fs::read_to_string(cron_file(root.path())).unwrap();
    let got = entries(&text);
    assert_eq!(
        got[0],
        (
            "*/5 * * * *".to_string(),
            "root".to_string(),
            command(&s, "Getjobs", 10)
        )
    );
    // the other tasks keep the local values
    assert_eq!(got[1].0, "*/2 * * * *");
    let det = details(&d, agent);
    assert_eq!(det["scheduler:task:Getjobs:freq"], "*/5 * * * *");
    assert_eq!(det["scheduler:task:Getjobs:args"], "--wait-rand 10");
    assert_eq!(det["scheduler:source"], "server");
    assert_eq!(det["scheduler:rejected"], "");
    assert_eq!(
        scheduler_requests(&d)
            .into_iter()
            .filter(|(m, _)| m == "GET")
            .collect::<Vec<_>>(),
        [("GET".to_string(), 200)]
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn malicious_server_entries_are_rejected_reported_and_never_written() {
    let d = Double::start();
    let (s, agent, root) = agent(&d, "");
    let evil = [
        ("scheduler:task:Getjobs:freq", "* * * * * root rm -rf /"),
        ("scheduler:task:Runjobs:freq", "*/5 * * * *; reboot"),
        ("scheduler:task:Alerts:freq", "* * * * *\n* * * * * root id"),
        (
            "scheduler:task:Runjobs:args",
            "-wr 5 -s http://evil.example",
        ),
        ("scheduler:logfile", "/tmp/armadito-agent.log"),
        ("scheduler:user", "root\n* * * * * root id"),
        ("scheduler:task:Enrollment:freq", "* * * * *"),
    ];
    let mut entries_sent: Vec<(String, String)> = evil
        .iter()
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect();
    // one good entry among them is still applied
    entries_sent.push(("scheduler:task:State:freq".into(), "*/30 * * * *".into()));
    d.set_server_schedule(agent, "Cron", entries_sent);

    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(0);
    assert!(r.stdout.contains("7 server entr"), "{}", r.stdout);
    for (attr, _) in evil {
        assert!(
            r.stderr
                .contains(&format!("rejected, the local value stays in force: {attr}")),
            "no warning for {attr}:\n{}",
            r.stderr
        );
    }

    let text = std::fs::read_to_string(cron_file(root.path())).unwrap();
    for needle in [
        "rm -rf",
        "reboot",
        "evil",
        "/tmp/armadito-agent.log",
        "root id",
    ] {
        assert!(!text.contains(needle), "{needle:?} written:\n{text}");
    }
    let got = entries(&text);
    assert_eq!(got.len(), 6, "{text}");
    for (freq, user, cmd) in &got {
        CronExpr::parse(freq).expect("only valid frequencies are written");
        assert_eq!(user, "root");
        assert!(
            cmd.ends_with(">>/var/log/armadito-agent/agent.log 2>&1"),
            "{cmd}"
        );
    }
    assert_eq!(
        got[0],
        (
            "* * * * *".into(),
            "root".into(),
            command(&s, "Getjobs", 30)
        )
    );
    assert_eq!(
        got[1],
        (
            "*/2 * * * *".into(),
            "root".into(),
            command(&s, "Runjobs", 60)
        )
    );
    assert_eq!(got[2].0, "*/30 * * * *");

    let det = details(&d, agent);
    assert_eq!(det["scheduler:source"], "server");
    assert_eq!(
        det["scheduler:logfile"],
        "/var/log/armadito-agent/agent.log"
    );
    assert_eq!(det["scheduler:task:Getjobs:freq"], "* * * * *");
    let rejected = &det["scheduler:rejected"];
    for (attr, _) in evil {
        assert!(rejected.contains(attr), "{attr} not reported: {rejected}");
    }
    assert!(!rejected.contains('\n'), "one line: {rejected:?}");
    assert!(d.violations().is_empty(), "{:#?}", d.violations());

    // Once the server's schedule is fixed, the report no longer lists rejections.
    d.set_server_schedule(agent, "Cron", Vec::new());
    s.run(&["-t", "Scheduler"]).assert_code(0);
    let det = details(&d, agent);
    assert_eq!(det["scheduler:rejected"], "");
    assert_eq!(det["scheduler:source"], "local");
}

/// Issue 12 item 1: a hostile server may not choose where root appends output, as whom the
/// tasks run, or a frequency that switches the fleet off.
#[test]
fn server_cannot_redirect_output_change_the_user_or_switch_the_fleet_off() {
    let d = Double::start();
    let (s, agent, root) = agent(&d, "");
    let evil = [
        ("scheduler:logfile", "/root/.bashrc"),
        ("scheduler:user", "nobody"),
        ("scheduler:task:Getjobs:freq", "0 0 31 2 *"),
        ("scheduler:task:Scheduler:freq", "0 0 31 2 *"),
        ("scheduler:task:Runjobs:freq", "0 0 1 * *"),
        ("scheduler:task:State:args", "-wr 86400"),
    ];
    d.set_server_schedule(
        agent,
        "Cron",
        evil.iter()
            .map(|(a, v)| (a.to_string(), v.to_string()))
            .collect(),
    );
    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(0);
    let text = std::fs::read_to_string(cron_file(root.path())).unwrap();
    assert!(!text.contains(".bashrc"), "{text}");
    assert!(!text.contains("31 2"), "{text}");
    let got = entries(&text);
    assert_eq!(got.len(), 6, "{text}");
    assert!(got.iter().all(|(_, user, _)| user == "root"), "{text}");
    assert_eq!(got[0].0, "* * * * *");
    assert_eq!(got[5].0, "15 */6 * * *", "Scheduler keeps running");
    let det = details(&d, agent);
    let rejected = &det["scheduler:rejected"];
    for (attr, _) in evil {
        assert!(rejected.contains(attr), "{attr} not reported: {rejected}");
    }
    assert_eq!(det["scheduler:source"], "local");
}

#[test]
fn systemd_mode_writes_units_under_the_root_and_replaces_the_cron_file() {
    let d = Double::start();
    let (mut s, agent, root) = agent(&d, "");
    s.run(&["-t", "Scheduler"]).assert_code(0);
    assert!(cron_file(root.path()).exists());

    s.extra_config = format!(
        "[outbox]\nretry_base = 0\n[schedule]\nmode = \"systemd\"\nroot = \"{}\"\n[schedule.tasks.AVConfig]\nenabled = false\n",
        root.path().display()
    );
    s.write_config(UUID);
    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(0);
    assert!(
        r.stdout
            .starts_with("Scheduler: Systemd schedule installed with systemd (5 task(s)"),
        "{}",
        r.stdout
    );

    assert!(
        !cron_file(root.path()).exists(),
        "the cron file would run every task twice"
    );
    let dir = root.path().join("etc/systemd/system");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = TASKS
        .iter()
        .filter(|t| **t != "AVConfig")
        .flat_map(|t| {
            let base = format!("armadito-agent-{}", t.to_lowercase());
            [format!("{base}.service"), format!("{base}.timer")]
        })
        .collect();
    expected.sort();
    assert_eq!(names, expected);

    let service = std::fs::read_to_string(dir.join("armadito-agent-runjobs.service")).unwrap();
    let bin = std::fs::canonicalize(agent_bin()).unwrap();
    let exec = format!(
        "ExecStart=\"{}\" \"-c\" \"{}\" \"-t\" \"Runjobs\" \"--wait-rand\" \"60\"",
        bin.display(),
        s.config_path().display()
    );
    assert!(service.lines().any(|l| l == exec), "{exec}\n{service}");
    assert!(service.contains("\nType=oneshot\n"));
    assert!(service.contains("\nStandardOutput=append:/var/log/armadito-agent/agent.log\n"));
    let timer = std::fs::read_to_string(dir.join("armadito-agent-runjobs.timer")).unwrap();
    assert!(timer.contains("\nOnCalendar=*-*-* *:00/2:00\n"), "{timer}");
    assert!(timer.contains("\nUnit=armadito-agent-runjobs.service\n"));

    // systemd's own parser accepts the units. .ci/run installs systemd-analyze: a machine
    // without it fails here rather than skipping the check.
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(expected.iter().map(|n| dir.join(n)))
        .output()
        .expect("systemd-analyze is needed for this test (apt-get install systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(scheduler_name(&d, agent).as_deref(), Some("Systemd"));
    let det = details(&d, agent);
    assert_eq!(det["scheduler:mode"], "systemd");
    assert_eq!(det["scheduler:task:AVConfig:freq"], "disabled");
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn an_undelivered_report_fails_the_run_and_waits_in_the_outbox() {
    let d = Double::start();
    let (s, agent, root) = agent(&d, "");
    d.inject(Fault::Html500, 12);
    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(1);
    r.assert_one_error_line("report to the server was not delivered");
    // the GET failure was only a warning: the local schedule is installed all the same
    assert!(
        r.stderr.contains("cannot read the server-defined schedule"),
        "{}",
        r.stderr
    );
    assert!(cron_file(root.path()).exists());
    let outbox = s.run(&["outbox", "--json"]);
    assert!(outbox.stdout.contains("\"scheduler\""), "{}", outbox.stdout);

    drain_faults(&d);
    s.run(&["-t", "Scheduler"]).assert_code(0);
    assert_eq!(scheduler_name(&d, agent).as_deref(), Some("Cron"));
    assert_eq!(
        s.run(&["outbox"]).stdout.trim().lines().last(),
        Some("(nothing pending)")
    );
}

#[test]
fn bad_local_settings_fail_before_any_request() {
    let d = Double::start();
    let (s, _agent, root) = agent(&d, "logfile = \"/tmp/armadito-agent.log\"\n");
    d.clear_requests();
    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(3);
    r.assert_one_error_line("[schedule] logfile \"/tmp/armadito-agent.log\"");
    assert!(d.requests().is_empty());
    assert!(!cron_file(root.path()).exists());

    // a mode this platform does not have
    #[cfg(unix)]
    {
        let (s, _agent, _root) = agent(&d, "mode = \"schtasks\"\n");
        d.clear_requests();
        let r = s.run(&["-t", "Scheduler"]);
        r.assert_code(3);
        r.assert_one_error_line("mode = \"schtasks\" is not available on this platform");
        assert!(d.requests().is_empty());
    }

    // an interval is for the daemon: cron cannot install it
    let (s, _agent, root) = agent(&d, "[schedule.tasks.Getjobs]\nevery = \"30s\"\n");
    d.clear_requests();
    let r = s.run(&["-t", "Scheduler"]);
    r.assert_code(3);
    r.assert_one_error_line(
        "[schedule.tasks.Getjobs] every = \"30s\" is an interval for `armadito-agent daemon`",
    );
    assert!(d.requests().is_empty());
    assert!(!cron_file(root.path()).exists());

    // and an agent that is not enrolled is told so, without any request
    let lone = AgentSandbox::new(&d.base_url());
    lone.write_config(UUID);
    lone.run(&["-t", "Scheduler"]).assert_code(4);
    assert!(d.requests().is_empty());
}
