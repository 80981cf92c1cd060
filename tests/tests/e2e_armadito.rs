//! End to end with the Armadito AV backend: the real agent binary and plugin, the GLPI double,
//! and — since Armadito AV cannot run here — fakes that speak its three local interfaces
//! exactly: `fake-armadito rpc` (JSON-RPC on an abstract unix socket), `fake-armadito rest`
//! (the 0.11–0.12 REST API with tokens and long polls), and `tests/fakes/armadito/fake-cli.sh`
//! as `armadito-info`/`armadito-scan`/the restart command (recorded output, recorded argv).
//! The fixtures are the reference agent's (reference-agent.md §7.1, §11).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use armadito_tests::agent::AgentSandbox;
use armadito_tests::double::Double;
use armadito_tests::fleet::{enrolled_agent_with, job_error, make_tree};
use serde_json::{Value, json};

const PLUGIN: &str = "armadito-backend-armadito";
const NOBODY: u32 = 65534;

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

/// `a6o_info` as `status` / `armadito-info --json` return it.
fn info() -> Value {
    json!({"antivirus_version": "0.12.8", "global_status": "A6O_UPDATE_OK", "global_update_ts": 1488207696,
        "module_infos": [
            {"name": "clamav", "mod_status": "A6O_UPDATE_OK", "mod_update_ts": 1488200000,
             "base_infos": [{"name": "daily.cld", "base_update_ts": 1488200000, "version": "23157",
                             "signature_count": 1707000, "full_path": "/var/lib/clamav/daily.cld"}]},
            {"name": "moduleH1", "mod_status": "A6O_UPDATE_LATE", "mod_update_ts": 1488100000}]})
}

/// The same state as a Gen 1 `StatusEvent`.
fn status_event() -> Value {
    json!({"event_type": "StatusEvent", "global_status": "up-to-date", "global_update_timestamp": 1488207696,
        "modules": [
            {"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1488200000,
             "bases": [{"name": "daily.cld", "base_update_ts": 1488200000, "version": "23157",
                        "signature_count": 1707000, "full_path": "/var/lib/clamav/daily.cld"}]},
            {"name": "moduleH1", "mod_status": "late", "mod_update_timestamp": 1488100000}]})
}

fn gen3_detection(path: &str, scan_id: Option<i64>) -> Value {
    let mut body = json!({"scan_action": "A6O_ACTION_NONE", "context": "CONTEXT_ON_DEMAND", "module_name": "clamav",
        "path": path, "scan_status": "A6O_FILE_MALWARE", "module_report": "Eicar-Test-Signature"});
    if let Some(id) = scan_id {
        body["scan_id"] = json!(id);
    }
    json!({"timestamp": 1488207696, "type": "EVENT_DETECTION", "u": {"ev_detection": body}})
}

fn gen3_progress(progress: i64, scanned: u64, malware: u64, scan_id: Option<i64>) -> Value {
    let mut body = json!({"progress": progress, "path": "/x", "malware_count": malware,
        "suspicious_count": 0, "scanned_count": scanned});
    if let Some(id) = scan_id {
        body["scan_id"] = json!(id);
    }
    json!({"timestamp": 1488207690, "type": "EVENT_ON_DEMAND_PROGRESS", "u": {"ev_on_demand_progress": body}})
}

fn gen3_completed() -> Value {
    json!({"timestamp": 1488207696, "type": "EVENT_ON_DEMAND_COMPLETED", "u": {"ev_on_demand_completed":
        {"cancelled": 0, "total_malware_count": 1, "total_suspicious_count": 0, "total_scanned_count": 5, "duration": 1000}}})
}

/// A scan as the daemon streams it: interleaved with another client's scan (other scan id),
/// an unknown event type and a frame that is not JSON, which must all be skipped.
fn rpc_scan(tree: &Path) -> Value {
    let eicar = tree.join("eicar-0.com").display().to_string();
    json!([
        {"event": gen3_progress(20, 1, 0, None)},
        {"event": gen3_detection("/elsewhere/other-scan.exe", Some(999_999))},
        {"event": gen3_progress(90, 999, 9, Some(999_999))},
        {"event": {"timestamp": 1, "type": "EVENT_FROM_A_NEWER_DAEMON", "u": {"ev_new": {"x": 1}}}},
        {"raw": "{\"jsonrpc\":\"2.0\",\"method\":\"notify_event\",\"params\":{not json"},
        {"event": gen3_detection(&eicar, None)},
        {"event": gen3_progress(100, 5, 1, None)},
        {"event": gen3_completed()},
    ])
}

fn rest_scan(tree: &Path) -> Value {
    let eicar = tree.join("eicar-0.com").display().to_string();
    json!([
        {"event": {"event_type": "OnDemandProgressEvent", "progress": 20, "path": "/x", "malware_count": 0, "suspicious_count": 0, "scanned_count": 1}},
        {"event": {"event_type": "SomeFutureEvent", "x": 1}},
        {"event": {"event_type": "DetectionEvent", "detection_time": "1970-01-01T00:00:00Z", "context": "on-demand",
                   "path": eicar, "scan_status": "malware", "scan_action": "none", "module_name": "clamav",
                   "module_report": "Eicar-Test-Signature"}},
        {"event": {"event_type": "OnDemandProgressEvent", "progress": 100, "path": "/x", "malware_count": 1, "suspicious_count": 0, "scanned_count": 5}},
        {"event": {"event_type": "OnDemandCompletedEvent", "start_time": "1970-01-01T00:00:00Z", "duration": "P0Y0M0DT00H00M01S",
                   "total_malware_count": 1, "total_suspicious_count": 0, "total_scanned_count": 5}},
    ])
}

/// Pretty-printed with 4 spaces and separated by a blank line, as `armadito-scan --json`.
fn cli_chunks(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(e, &mut ser).unwrap();
            format!("{}\n\n", String::from_utf8(out).unwrap())
        })
        .collect()
}

const SYSLOG: &str = r#"2026-12-04T10:00:00+00:00 host CRON[812]: (root) CMD (command -v debian-sa1 > /dev/null)
2026-12-04T10:00:01+00:00 host armadito-journal[30027]: type="detection", context="real-time", scan_id=0, path="/home/uhuru/malwares/ELF_FC80", scan_status="malware", scan_action="none", module_name="clamav", module_report="Unix.Malware.Agent-1577465"
2026-12-04T10:00:02+00:00 host armadito-journal[30027]: type="on_demand_start", scan_id=12, root_path="/home"
2026-12-04T10:00:03+00:00 host armadito-journal[30027]: type="detection", context="on-demand", scan_id=12, path="/home/u/doc.pdf", scan_status="suspicious", scan_action="alert+quarantine", module_name="moduleH1", module_report="Heuristic.PDF"
2026-12-04T10:00:04+00:00 host armadito-journal[30027]: type="on_demand_completed", scan_id=12, cancelled=0, total_malware_count=0, total_suspicious_count=1, total_scanned_count=3, duration=1200
"#;

const CONF: &str = "# Armadito AV configuration\n[on-demand]\nwhite-list-dir = \"/boot\"; \"/dev\"\nmime-types = \"*\"\nmodules = \"clamav\"; \"moduleH1\"\nmax-size = 10485760\n\n[quarantine]\nenable = 0\nquarantine-dir = \"/var/lib/armadito/quarantine\"\n\n[on-access-linux]\nenable = 0\nmax-size = 10485760\n";

// ------------------------------------------------------------------------------------------
// Fakes
// ------------------------------------------------------------------------------------------

/// A fake daemon process, killed on drop.
struct FakeDaemon {
    child: Child,
    record: PathBuf,
    /// Abstract socket name (`@…`) or `127.0.0.1:port`.
    addr: String,
}

fn unique_socket() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@/tmp/.armadito-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl FakeDaemon {
    /// `as_uid`: run the fake as that user (an impostor) through setpriv.
    fn start(dir: &Path, kind: &str, scenario: Value, as_uid: Option<u32>) -> FakeDaemon {
        let fake_dir = dir.join(format!("fake-{kind}"));
        std::fs::create_dir_all(&fake_dir).unwrap();
        std::fs::set_permissions(&fake_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let scen = fake_dir.join("scenario.json");
        std::fs::write(&scen, scenario.to_string()).unwrap();
        std::fs::set_permissions(&scen, std::fs::Permissions::from_mode(0o644)).unwrap();
        let record = fake_dir.join("record.jsonl");
        let listen = if kind == "rpc" {
            unique_socket()
        } else {
            "127.0.0.1:0".into()
        };
        let bin = env!("CARGO_BIN_EXE_fake-armadito");
        let mut cmd = match as_uid {
            Some(uid) => {
                let setpriv = "/usr/bin/setpriv";
                assert!(
                    Path::new(setpriv).exists(),
                    "setpriv (util-linux) is required to run the impostor daemon"
                );
                let mut c = Command::new(setpriv);
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".into(),
                ])
                .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .arg(kind)
            .arg(&listen)
            .arg(&scen)
            .arg(&record)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fake-armadito");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("fake-armadito did not start: {line:?}"))
            .to_string();
        FakeDaemon {
            child,
            record,
            addr,
        }
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn requests(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter_map(|r| r.get("request").cloned())
            .collect()
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs the fake CLI script as `name` in `bin`, with its recorded output.
fn fake_tool(bin: &Path, name: &str, stdout: &str, code: i32, stderr: &str) {
    std::fs::create_dir_all(bin).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fakes/armadito/fake-cli.sh");
    let target = bin.join(name);
    std::fs::copy(&script, &target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(bin.join(format!("{name}.out")), stdout).unwrap();
    std::fs::write(bin.join(format!("{name}.err")), stderr).unwrap();
    std::fs::write(bin.join(format!("{name}.code")), code.to_string()).unwrap();
}

fn argv_of(bin: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(bin.join(format!("{name}.argv")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Everything on the machine but the daemon: conf files, a syslog, tools, a tree to scan.
struct Host {
    tmp: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(etc.join("conf.d")).unwrap();
        std::fs::write(etc.join("armadito.conf"), CONF).unwrap();
        std::fs::write(
            etc.join("conf.d/50-site.conf"),
            "# site override\n[on-access-linux]\nenable = 1\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("syslog"), SYSLOG).unwrap();
        fake_tool(&tmp.path().join("bin"), "restart-armadito", "", 0, "");
        make_tree(&tmp.path().join("tree"), 4, 1);
        Host { tmp }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn tree(&self) -> PathBuf {
        self.p("tree")
    }
    /// `[backends.armadito]` for `mode`; `extra` lines are appended.
    fn settings(&self, mode: &str, socket: &str, rest: &str, extra: &str) -> String {
        format!(
            "[backends.armadito]\nmode = \"{mode}\"\nsocket = \"{socket}\"\nrest = \"{rest}\"\n\
             conf_file = \"{}\"\nconf_dir = \"{}\"\nsyslog_files = [\"{}\"]\njournalctl = \"/nonexistent/journalctl\"\n\
             armadito_info = \"{}\"\narmadito_scan = \"{}\"\nrestart_command = [\"{}\", \"restart\"]\n\
             scan_idle_timeout_secs = 20\n{extra}\n",
            self.p("etc/armadito.conf").display(),
            self.p("etc/conf.d").display(),
            self.p("syslog").display(),
            self.p("bin/armadito-info").display(),
            self.p("bin/armadito-scan").display(),
            self.p("bin/restart-armadito").display(),
        )
    }
}

// ------------------------------------------------------------------------------------------
// The full round, per transport
// ------------------------------------------------------------------------------------------

/// Scan job, State, Alerts and AVConfig through one transport; asserts what lands on the
/// double is what the old agent sent (minus its bugs).
fn full_round(host: &Host, d: &Double, s: &AgentSandbox, agent: i64, av: i64, version: &str) {
    // enrollment filed the agent under the product the backend reported
    let avrow = d.antiviruses().into_iter().find(|a| a.id == av).unwrap();
    assert_eq!(
        (avrow.name.as_str(), avrow.version.as_str()),
        ("Armadito", version)
    );

    // --- Scan job (scan_options "-r", as the old agent's fixture job)
    let tree = host.tree();
    let job = d.create_job(
        agent,
        d.create_scanconfig("scan_2", tree.to_str().unwrap(), "-r", av),
        2,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    let row = d.job(job).unwrap();
    assert_eq!(
        row.job_status,
        "successful",
        "{row:?} {:?}",
        job_error(d, job)
    );
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (
            scan.scanned_count,
            scan.malware_count,
            scan.suspicious_count,
            scan.progress
        ),
        (Some(5), Some(1), Some(0), Some(100)),
        "{scan:?}"
    );
    let alerts: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == job)
        .collect();
    assert_eq!(alerts.len(), 1, "only this scan's detection: {alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.threat_name, "Eicar-Test-Signature");
    assert_eq!(a.filepath, tree.join("eicar-0.com").display().to_string());
    assert_eq!(
        (a.module_name.as_str(), a.action.as_str()),
        ("clamav", "none")
    );
    let alert_post = d
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/api/alerts/") && r.body.contains(&format!("\"job_id\":{job}")))
        .unwrap();
    let body: Value = serde_json::from_str(&alert_post.body).unwrap();
    let t = &body["task"]["obj"]["alerts"][0]["detection_time"];
    assert!(
        t.is_u64() && t.to_string().len() == 10,
        "a 10-digit number: {body}"
    );
    let scan_post = d
        .requests()
        .into_iter()
        .rfind(|r| r.path.contains("/api/scans/"))
        .unwrap();
    let body: Value = serde_json::from_str(&scan_post.body).unwrap();
    let obj = &body["task"]["obj"];
    assert!(
        obj["scanned_count"].is_u64(),
        "numbers, not strings: {body}"
    );
    let duration = obj["duration"].as_str().unwrap_or_default();
    assert!(
        regex::Regex::new(r"^PT\d+H\d+M\d+S$")
            .unwrap()
            .is_match(duration),
        "an integer ISO-8601 duration: {duration:?}"
    );

    // --- State
    s.run(&["-t", "State"]).assert_code(0);
    let st = d
        .states()
        .into_iter()
        .find(|st| st.plugin_armadito_agents_id == agent)
        .expect("a state row");
    assert_eq!(
        (st.update_status.as_str(), st.service_status.as_str()),
        ("up-to-date", "running")
    );
    let state_post = d
        .requests()
        .into_iter()
        .rfind(|r| r.path.contains("/api/states/"))
        .unwrap();
    let body: Value = serde_json::from_str(&state_post.body).unwrap();
    let dbinfo = &body["task"]["obj"]["dbinfo"];
    assert_eq!(dbinfo["global_update_timestamp"], 1488207696, "{dbinfo}");
    assert_eq!(
        dbinfo["modules"],
        json!([
            {"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1488200000},
            {"name": "moduleH1", "mod_status": "late", "mod_update_timestamp": 1488100000}
        ])
    );
    let details = d.stateavdetails_effective(agent);
    for (k, v) in [
        ("realtime:enabled", "on"),
        ("product:version", version),
        (
            "base:clamav:daily.cld",
            "version 23157, 1707000 signatures, updated 1488200000",
        ),
    ] {
        assert!(
            details.contains(&(k.to_string(), Some(v.to_string()))),
            "{k}={v} in {details:?}"
        );
    }

    // --- Alerts: the journal's two detections, once
    s.run(&["-t", "Alerts"]).assert_code(0);
    let mut journal: Vec<_> = d
        .alerts()
        .into_iter()
        .filter(|a| a.plugin_armadito_jobs_id == 0)
        .collect();
    journal.sort_by(|a, b| a.detection_time.cmp(&b.detection_time));
    let got: Vec<_> = journal
        .iter()
        .map(|a| {
            (
                a.detection_time.as_str(),
                a.info.as_str(),
                a.filepath.as_str(),
                a.action.as_str(),
                a.module_name.as_str(),
                a.threat_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "2026-12-04 10:00:01",
                "real-time",
                "/home/uhuru/malwares/ELF_FC80",
                "none",
                "clamav",
                "Unix.Malware.Agent-1577465"
            ),
            (
                "2026-12-04 10:00:03",
                "on-demand",
                "/home/u/doc.pdf",
                "quarantined",
                "moduleH1",
                "Heuristic.PDF"
            ),
        ]
    );
    let alert_posts = || {
        d.requests()
            .iter()
            .filter(|r| r.path.contains("/api/alerts/"))
            .count()
    };
    let before = alert_posts();
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(alert_posts(), before, "nothing new: nothing sent");

    // --- AVConfig: report, then apply the server's configuration through the allow-list
    s.run(&["-t", "AVConfig"]).assert_code(0);
    let effective = d.avconfig_effective(agent);
    for (k, v) in [
        ("on-demand:white-list-dir", "\"/boot\"; \"/dev\""),
        ("on-demand:max-size", "10485760"),
        ("on-access-linux:enable", "1"),
    ] {
        assert!(
            effective.contains(&(k.to_string(), Some(v.to_string()))),
            "{k}={v} in {effective:?}"
        );
    }
    d.set_server_avconfig(
        agent,
        vec![
            ("on-demand:max-size".into(), json!("20971520")),
            ("on-demand:white-list-dir".into(), json!("\"/\"")),
        ],
    );
    let r = s.run(&["-t", "AVConfig"]);
    r.assert_code(1)
        .assert_one_error_line("on-demand:white-list-dir: not changeable remotely");
    assert!(
        r.stdout
            .contains("AVConfig: on-demand:max-size: \"10485760\" -> \"20971520\""),
        "old -> new reported: {}",
        r.stdout
    );
    let conf = std::fs::read_to_string(host.p("etc/armadito.conf")).unwrap();
    assert_eq!(
        conf,
        CONF.replace(
            "max-size = 10485760\n\n[quarantine]",
            "max-size = 20971520\n\n[quarantine]"
        )
    );
    assert_eq!(argv_of(&host.p("bin"), "restart-armadito"), ["[restart]"]);
    assert!(d.avconfig_effective(agent).contains(&(
        "on-demand:max-size".to_string(),
        Some("20971520".to_string())
    )));
    assert!(d.violations().is_empty(), "{:#?}", d.violations());
}

#[test]
fn rpc_transport_full_round() {
    let host = Host::new();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rpc",
        json!({"info": info(), "scan": rpc_scan(&host.tree()), "listen": []}),
        None,
    );
    let d = Double::start();
    let settings = host.settings("rpc", &fake.addr, "127.0.0.1:1", "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    full_round(&host, &d, &s, agent, av, "0.12.8");
    let scans: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "scan")
        .collect();
    assert_eq!(scans.len(), 1);
    let p = &scans[0]["params"];
    assert_eq!(p["root_path"], host.tree().display().to_string());
    assert_eq!(
        (&p["send_progress"], &p["recursive"], &p["threaded"]),
        (&json!(1), &json!(1), &json!(1))
    );
    assert!(p["scan_id"].as_i64().unwrap() > 0);
    assert!(fake.requests().iter().any(|r| r["method"] == "status"));
}

#[test]
fn cli_transport_full_round() {
    let host = Host::new();
    let bin = host.p("bin");
    let pretty = |v: &Value| cli_chunks(std::slice::from_ref(v));
    fake_tool(&bin, "armadito-info", &pretty(&info()), 0, "");
    let eicar = host.tree().join("eicar-0.com").display().to_string();
    fake_tool(
        &bin,
        "armadito-scan",
        &cli_chunks(&[
            gen3_detection(&eicar, None),
            json!({"type": "EVENT_UNKNOWN", "u": {}}),
            gen3_completed(),
        ]),
        0,
        "",
    );
    let d = Double::start();
    let settings = host.settings("cli", &unique_socket(), "127.0.0.1:1", "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    full_round(&host, &d, &s, agent, av, "0.12.8");
    // argv only, tool by absolute path, server path last
    assert_eq!(
        argv_of(&bin, "armadito-scan"),
        [format!("[--json][-r][{}]", host.tree().display())]
    );
    assert!(
        argv_of(&bin, "armadito-info")
            .iter()
            .all(|a| a == "[--json]")
    );
}

#[test]
fn rest_transport_full_round() {
    let host = Host::new();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rest",
        json!({"info": status_event(), "version": "0.12.0-exp", "scan": rest_scan(&host.tree())}),
        None,
    );
    let d = Double::start();
    let settings = host.settings("rest", &unique_socket(), &fake.addr, "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    full_round(&host, &d, &s, agent, av, "0.12.0-exp");
    let recs = fake.records();
    let reqs: Vec<_> = recs.iter().filter(|r| r.get("method").is_some()).collect();
    assert!(reqs.iter().all(|r| r["user_agent"] == "armadito-agent"));
    let scan = reqs.iter().find(|r| r["path"] == "/api/scan").unwrap();
    assert_eq!(scan["method"], "POST");
    assert_eq!(scan["content_type"], "application/json");
    let body: Value = serde_json::from_str(scan["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"path": host.tree().display().to_string()}));
    // every registered token was unregistered
    let registered = reqs.iter().filter(|r| r["path"] == "/api/register").count();
    let unregistered = reqs
        .iter()
        .filter(|r| r["path"] == "/api/unregister")
        .count();
    assert!(registered >= 2);
    assert_eq!(registered, unregistered);
}

// ------------------------------------------------------------------------------------------
// Failures
// ------------------------------------------------------------------------------------------

fn scan_job(d: &Double, s: &AgentSandbox, host: &Host, agent: i64, av: i64) -> i64 {
    let job = d.create_job(
        agent,
        d.create_scanconfig("t", host.tree().to_str().unwrap(), "-r", av),
        1,
    );
    s.run(&["-t", "Getjobs"]).assert_code(0);
    s.run(&["-t", "Runjobs"]).assert_code(0);
    job
}

#[test]
fn a_daemon_that_dies_mid_scan_gives_partial_results_and_a_failed_job() {
    let host = Host::new();
    let eicar = host.tree().join("eicar-0.com").display().to_string();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rpc",
        json!({"info": info(), "scan": [
            {"event": gen3_progress(40, 2, 0, None)},
            {"event": gen3_detection(&eicar, None)},
            {"event": gen3_progress(60, 3, 1, None)},
            {"close": true}]}),
        None,
    );
    let d = Double::start();
    let settings = host.settings("rpc", &fake.addr, "127.0.0.1:1", "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    let job = scan_job(&d, &s, &host, agent, av);
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(msg.contains("closed the connection"), "{msg}");
    let scan = d
        .scans()
        .into_iter()
        .find(|sc| sc.plugin_armadito_jobs_id == job)
        .unwrap();
    assert_eq!(
        (scan.scanned_count, scan.malware_count),
        (Some(3), Some(1)),
        "{scan:?}"
    );
    assert!(
        scan.progress.unwrap_or(0) < 100,
        "not reported as finished: {scan:?}"
    );
    assert_eq!(
        d.alerts()
            .iter()
            .filter(|a| a.plugin_armadito_jobs_id == job)
            .count(),
        1,
        "the detection seen before the crash is kept"
    );
}

#[test]
fn a_rest_daemon_that_dies_mid_scan_gives_partial_results_and_a_failed_job() {
    let host = Host::new();
    let mut events = rest_scan(&host.tree()).as_array().unwrap()[..3].to_vec();
    events.push(json!({"sleep_ms": 200}));
    events.push(json!({"close": true}));
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rest",
        json!({"info": status_event(), "version": "0.12.0-exp", "scan": events}),
        None,
    );
    let d = Double::start();
    let settings = host.settings("rest", &unique_socket(), &fake.addr, "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    let job = scan_job(&d, &s, &host, agent, av);
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(msg.contains("stopped answering"), "{msg}");
    assert_eq!(
        d.alerts()
            .iter()
            .filter(|a| a.plugin_armadito_jobs_id == job)
            .count(),
        1,
        "the detection seen before the daemon died is kept"
    );
}

#[test]
fn a_silent_daemon_ends_the_scan_with_a_timeout_not_a_hang() {
    let host = Host::new();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rpc",
        json!({"info": info(), "scan": [{"event": gen3_progress(10, 1, 0, None)}, {"stall": true}]}),
        None,
    );
    let d = Double::start();
    let settings = host.settings(
        "rpc",
        &fake.addr,
        "127.0.0.1:1",
        "scan_idle_timeout_secs = 1",
    );
    // the later key wins in TOML? no: duplicate keys are an error, so replace it
    let settings = settings.replace("scan_idle_timeout_secs = 20\n", "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    let started = std::time::Instant::now();
    let job = scan_job(&d, &s, &host, agent, av);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(msg.contains("sent nothing for 1 s"), "{msg}");
}

/// A Scan job through the cli transport whose `armadito-scan` prints one detection, then a
/// chunk that is not JSON and no summary, and exits with `exit_code` and `stderr`.
fn cli_scan_with_a_broken_tool(exit_code: i32, stderr: &str) -> (Double, i64) {
    let host = Host::new();
    let bin = host.p("bin");
    fake_tool(&bin, "armadito-info", &cli_chunks(&[info()]), 0, "");
    let eicar = host.tree().join("eicar-0.com").display().to_string();
    fake_tool(
        &bin,
        "armadito-scan",
        &format!(
            "{}{{ not json\n\n",
            cli_chunks(&[gen3_detection(&eicar, None)])
        ),
        exit_code,
        stderr,
    );
    let d = Double::start();
    let settings = host.settings("cli", &unique_socket(), "127.0.0.1:1", "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    let job = scan_job(&d, &s, &host, agent, av);
    (d, job)
}

#[test]
fn a_cli_that_exits_non_zero_fails_the_job_with_its_message() {
    let (d, job) = cli_scan_with_a_broken_tool(
        2,
        "armadito-scan: cannot connect to daemon socket @/tmp/.armadito-daemon: Connection refused",
    );
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("armadito-scan returned error (exit code 2: armadito-scan: cannot connect"),
        "{msg}"
    );
}

#[test]
fn cli_output_with_invalid_chunks_and_no_summary_is_an_interrupted_scan() {
    let (d, job) = cli_scan_with_a_broken_tool(0, "");
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("exited without its completion summary"),
        "{msg}"
    );
    assert_eq!(
        d.alerts()
            .iter()
            .filter(|a| a.plugin_armadito_jobs_id == job)
            .count(),
        1
    );
}

// ------------------------------------------------------------------------------------------
// Peer verification: an impostor daemon run by another local user gets nothing
// ------------------------------------------------------------------------------------------

fn assert_no_bytes_received(fake: &FakeDaemon) {
    let recs = fake.records();
    assert!(
        recs.iter().any(|r| r["connected"] == true),
        "the agent did try the impostor: {recs:?}"
    );
    assert!(
        recs.iter()
            .all(|r| r.get("bytes").is_none() && r.get("method").is_none()),
        "the impostor received data: {recs:?}"
    );
}

#[test]
fn an_impostor_on_the_daemon_socket_is_refused_before_any_byte_is_sent() {
    let host = Host::new();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rpc",
        json!({"info": info(), "scan": rpc_scan(&host.tree())}),
        Some(NOBODY),
    );
    let d = Double::start();
    let settings = host.settings("rpc", &fake.addr, "127.0.0.1:1", "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    let job = scan_job(&d, &s, &host, agent, av);
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("refused") && msg.contains("uid 65534"),
        "{msg}"
    );
    s.run(&["-t", "State"])
        .assert_code(1)
        .assert_stderr_contains("not to root or the configured daemon_user");
    assert_no_bytes_received(&fake);
    assert!(
        d.scans()
            .iter()
            .all(|sc| sc.scanned_count.is_none() || sc.plugin_armadito_jobs_id != job)
    );

    // the same daemon, declared as the daemon user, is accepted: the refusal was the uid's
    let mut s2 = s;
    s2.extra_config = format!(
        "[outbox]\nretry_base = 0\n{}",
        host.settings("rpc", &fake.addr, "127.0.0.1:1", "daemon_user = \"nobody\"")
    );
    s2.write_config(armadito_tests::fleet::UUID);
    s2.run(&["-t", "State"]).assert_code(0);
    assert!(fake.requests().iter().any(|r| r["method"] == "status"));
}

#[test]
fn an_impostor_on_the_rest_port_is_refused_before_any_byte_is_sent() {
    let host = Host::new();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rest",
        json!({"info": status_event(), "version": "0.12.0-exp", "scan": rest_scan(&host.tree())}),
        Some(NOBODY),
    );
    let d = Double::start();
    let settings = host.settings("rest", &unique_socket(), &fake.addr, "");
    let (s, agent, av) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    let job = scan_job(&d, &s, &host, agent, av);
    assert_eq!(d.job(job).unwrap().job_status, "failed");
    let msg = job_error(&d, job).unwrap_or_default();
    assert!(
        msg.contains("refused") && msg.contains("uid 65534"),
        "{msg}"
    );
    s.run(&["-t", "State"])
        .assert_code(1)
        .assert_stderr_contains("REST API socket");
    assert_no_bytes_received(&fake);
    assert!(fake.port() > 0);
}

#[test]
fn auto_mode_falls_back_to_the_rest_api_when_nothing_else_is_installed() {
    let host = Host::new();
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rest",
        json!({"info": status_event(), "version": "0.12.0-exp", "scan": rest_scan(&host.tree())}),
        None,
    );
    let d = Double::start();
    // no socket listening, no armadito-info/-scan installed
    let settings = host.settings("auto", &unique_socket(), &fake.addr, "");
    let (s, agent, _) = enrolled_agent_with(&d, "armadito", PLUGIN, &settings);
    s.run(&["-t", "State"]).assert_code(0);
    assert!(
        d.stateavdetails_effective(agent)
            .contains(&("armadito:transport".to_string(), Some("rest".to_string())))
    );
}

// ------------------------------------------------------------------------------------------
// Live detections through `listen` (backend level: the plugin must live while they arrive)
// ------------------------------------------------------------------------------------------

#[test]
fn live_detections_from_listen_become_alerts_once() {
    use armadito_backend_armadito::{ArmaditoBackend, Settings};
    use armadito_plugin_api::AlertsQuery;
    let host = Host::new();
    let live = json!({"timestamp": 1796378500, "type": "EVENT_DETECTION", "u": {"ev_detection": {
        "scan_id": 0, "context": "CONTEXT_REAL_TIME", "path": "/home/u/dropper.elf", "scan_status": "A6O_FILE_MALWARE",
        "scan_action": "A6O_ACTION_QUARANTINE", "module_name": "clamav", "module_report": "Unix.Trojan.Mirai"}}});
    let fake = FakeDaemon::start(
        host.tmp.path(),
        "rpc",
        json!({"info": info(), "listen": [{"event": {"type": "EVENT_REAL_TIME_PROT", "u": {"ev_real_time_prot": {"rt_prot_new_state": 1}}}}, {"event": live}]}),
        None,
    );
    std::fs::write(host.p("syslog"), "").unwrap();
    let mut settings = Settings::default();
    settings.mode = armadito_backend_armadito::settings::Mode::Rpc;
    settings.socket = fake.addr.clone();
    settings.syslog_files = vec![host.p("syslog")];
    let backend = ArmaditoBackend::new(settings, std::sync::Arc::new(|_: &str| {})).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let page = backend.alerts(&AlertsQuery::default()).unwrap();
        if !page.detections.is_empty() || std::time::Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(page.detections.len(), 1, "{page:?}");
    let det = &page.detections[0];
    assert_eq!(det.threat_name, "Unix.Trojan.Mirai");
    assert_eq!(det.detection_time, 1796378500);
    assert_eq!(det.info.as_deref(), Some("real-time"));
    assert_eq!(
        det.action,
        armadito_plugin_api::DetectionAction::Quarantined
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r["method"] == "listen" && r["params"]["detection"] == 1)
    );
    // the journal line of the same detection, written later, is not sent again
    std::fs::write(
        host.p("syslog"),
        "2026-12-04T10:01:41+00:00 host armadito-journal[1]: type=\"detection\", context=\"real-time\", scan_id=0, path=\"/home/u/dropper.elf\", scan_status=\"malware\", scan_action=\"alert+quarantine\", module_name=\"clamav\", module_report=\"Unix.Trojan.Mirai\"\n",
    )
    .unwrap();
    let next = backend
        .alerts(&AlertsQuery {
            cursor: page.next_cursor.clone(),
            ..Default::default()
        })
        .unwrap();
    assert!(next.detections.is_empty(), "{next:?}");
}
