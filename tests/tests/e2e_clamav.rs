//! End to end with a real clamd: the ClamAV backend plugin, the real agent binary and the GLPI
//! double. clamd is started by `tests/clamd/start-clamd.sh` (offline, EICAR-only database).
//! `.ci/run` installs clamav-daemon; without clamd these tests fail (they never skip silently).

use std::path::Path;

use armadito_tests::clamd::Clamd;
use armadito_tests::double::Double;
use armadito_tests::fleet::{enrolled_agent_with, make_tree};

#[test]
fn scan_job_state_and_avconfig_with_a_real_clamd() {
    let clamd = Clamd::start_or_panic();
    let d = Double::start();
    let extra = format!("[scan]\nprogress_interval = 0.2\n{}", clamd.settings());
    let (s, agent, av) = enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &extra);
    assert!(
        d.antiviruses()
            .iter()
            .any(|a| a.id == av && a.name.to_lowercase().contains("clam")),
        "{:?}",
        d.antiviruses()
    );

    let tree = make_tree(&s.dir.path().join("tree"), 4000, 3);
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
        (Some(4003), Some(3), Some(100)),
        "{scan:?}"
    );
    let alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .collect();
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    assert!(
        alerts
            .iter()
            .all(|a| a.threat_name.contains("EICAR") && a.filepath.contains("eicar-"))
    );
    let progress_posts = d
        .requests()
        .iter()
        .filter(|r| {
            r.path.contains("/api/scans/")
                && r.body.contains("\"progress\":")
                && !r.body.contains("\"progress\":100")
        })
        .count();
    eprintln!(
        "progress reports during the scan: {progress_posts}, job duration {:?}",
        d.job(job).unwrap().duration
    );
    assert!(
        progress_posts >= 1,
        "a scan of 4000 files reports progress before its end"
    );

    s.run(&["-t", "State"]).assert_code(0);
    assert!(
        d.states()
            .iter()
            .any(|st| st.plugin_armadito_agents_id == agent && st.service_status == "running"),
        "{:?}",
        d.states()
    );
    s.run(&["-t", "AVConfig"]).assert_code(0);
    assert!(!d.avconfig_effective(agent).is_empty());
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn a_job_fails_with_a_clear_message_when_clamd_is_down() {
    let clamd = Clamd::start_or_panic();
    let d = Double::start();
    let (s, agent, av) =
        enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &clamd.settings());
    let tree = make_tree(&s.dir.path().join("tree"), 3, 0);
    let job = d.create_job(
        agent,
        d.create_scanconfig("tree", tree.to_str().unwrap(), "", av),
        1,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    drop(clamd); // stop clamd
    s.run(&["-t", "Runjobs"]).assert_code(0);
    let row = d.job(job).unwrap();
    assert_eq!(row.job_status, "failed", "{row:?}");
    let msg = armadito_tests::fleet::job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("clamd"),
        "the admin is told clamd is the problem: {msg:?}"
    );
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

/// Issue 12 item 2: the server's AV configuration goes through ClamAV's allow-list (a hostile
/// server cannot block every open() on the host or blind clamd), and `[avconfig] apply = false`
/// turns applying off while reading and reporting go on.
#[test]
fn avconfig_applies_only_tuning_options_and_can_be_turned_off() {
    let clamd = Clamd::start_or_panic();
    let conf = clamd.dir.join("clamd.conf");
    let d = Double::start();
    let settings = format!("{}restart_command = []\n", clamd.settings());
    let (mut s, agent, _av) =
        enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &settings);
    let original = std::fs::read_to_string(&conf).unwrap();
    let hostile = [
        "OnAccessPrevention",
        "OnAccessDenyOnError",
        "OnAccessMountPath",
        "ExcludePath",
        "BytecodeUnsigned",
        "LeaveTemporaryFiles",
        "Debug",
    ];
    let mut wanted: Vec<(String, serde_json::Value)> = hostile
        .iter()
        .map(|k| {
            let v = match *k {
                "OnAccessMountPath" => "/",
                "ExcludePath" => "^/",
                _ => "yes",
            };
            (k.to_string(), v.into())
        })
        .collect();
    wanted.push(("MaxThreads".into(), "8".into()));
    d.set_server_avconfig(agent, wanted);
    let r = s.run(&["-t", "AVConfig"]);
    assert_ne!(r.code, Some(0), "rejections fail the run: {}", r.stderr);
    for k in hostile {
        assert!(
            r.stderr.contains(&format!("{k}: not changeable remotely")),
            "{k} not reported:\n{}",
            r.stderr
        );
    }
    let now = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(now, original.replace("MaxThreads 4", "MaxThreads 8"));

    // apply = false: nothing is applied, the configuration is still reported
    s.extra_config = format!("{}\n[avconfig]\napply = false\n", s.extra_config);
    s.write_config(armadito_tests::fleet::UUID);
    d.set_server_avconfig(agent, vec![("MaxThreads".into(), "2".into())]);
    s.run(&["-t", "AVConfig", "--force"]).assert_code(0);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), now);
    let effective = d.avconfig_effective(agent);
    assert!(!effective.is_empty());
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

/// Issue 12 item 3: the plugin process is SIGKILLed in the middle of applying a configuration
/// (here by its own restart command): the next run of the agent puts the previous clamd.conf
/// back.
#[test]
fn an_apply_killed_midway_is_rolled_back_at_the_next_start() {
    let clamd = Clamd::start_or_panic();
    let conf = clamd.dir.join("clamd.conf");
    let d = Double::start();
    let settings = format!(
        "{}restart_command = [\"/bin/sh\", \"-c\", \"kill -9 $PPID; sleep 5\"]\n",
        clamd.settings()
    );
    let (s, agent, _av) = enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &settings);
    let original = std::fs::read_to_string(&conf).unwrap();
    d.set_server_avconfig(agent, vec![("MaxThreads".into(), "8".into())]);
    let r = s.run(&["-t", "AVConfig"]);
    assert_ne!(r.code, Some(0), "{}", r.stderr);
    // the kill landed between writing the new file and finishing
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("MaxThreads 8")
    );

    d.clear_server_config(agent);
    let r = s.run(&["-t", "State"]);
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("interrupted configuration change was rolled back"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), original);
    let leftovers: Vec<_> = std::fs::read_dir(&clamd.dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("armadito"))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Issue 12 item 13: the VirusEvent alert source can be installed by the agent
/// (`armadito-agent backend install-hook`) in a place clamd's user reaches and only root can
/// change, and detections then reach the server through it.
#[test]
fn the_virusevent_hook_is_installable_and_feeds_alerts() {
    use std::os::unix::fs::PermissionsExt;
    let clamd = Clamd::start_or_panic();
    let d = Double::start();
    let events = tempfile::Builder::new()
        .prefix("armadito-events.")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(events.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let restart = Path::new(env!("CARGO_MANIFEST_DIR")).join("clamd/restart-clamd.sh");
    let settings = format!(
        "{}virusevent_hook = \"{}/virusevent-hook.sh\"\nvirusevent_spool = \"{}/spool/events\"\nalert_sources = [\"virusevent\"]\nrestart_command = [\"{}\", \"{}\"]\n",
        clamd.settings(),
        events.path().display(),
        events.path().display(),
        restart.display(),
        clamd.dir.display()
    );
    let (s, agent, _av) = enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &settings);
    let r = s.run(&["backend", "install-hook", "--force"]);
    r.assert_code(0);
    let conf = std::fs::read_to_string(clamd.dir.join("clamd.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "VirusEvent {}/virusevent-hook.sh",
            events.path().display()
        )),
        "{conf}"
    );

    let tree = make_tree(&s.dir.path().join("tree"), 2, 1);
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.run(&["-t", "Scan", "--path", tree.to_str().unwrap()]);
    let spool = events.path().join("spool/events");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&spool).is_ok_and(|t| t.contains("eicar")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no VirusEvent record in {}",
            spool.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.run(&["-t", "Alerts"]).assert_code(0);
    let alerts = d.alerts();
    assert!(
        alerts
            .iter()
            .any(|a| a.plugin_armadito_agents_id == agent && a.filepath.contains("eicar")),
        "{alerts:?}"
    );
}
