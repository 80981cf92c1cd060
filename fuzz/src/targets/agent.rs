//! The agent's own parsers: server replies (agent-core/src/wire), job `obj` and scan options
//! (jobs/execute.rs), the transport's body handling, `agent.toml`, the plugin-host protocol.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use agent_core::config::{Config, FileConfig, ScheduleConfig};
use agent_core::plugins::PluginsConfig;
use agent_core::plugins::fuzzing as proto;
use agent_core::schedule::{CronExpr, bound_for, max_gap_secs, parse_args};
use agent_core::transport::{
    HttpOptions, MESSAGE_MAX_CHARS, Reply, is_deterministic_plugin_error, json_object_start,
    parse_retry_after, server_message,
};
use agent_core::wire::{
    EnrollmentKey, Job, MachineUuid, ScanJobParams, parse_enrollment_reply, parse_jobs_reply,
    parse_server_config, parse_server_schedule,
};
use arbitrary::Unstructured;
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Target, seeds, text};
use crate::make;

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "enrollment_reply",
            about: "POST api/agents reply (wire::parse_enrollment_reply)",
            seeds: || {
                seeds(&[
                    r#"{"agent_id": 3,"scheduler_id": 1}"#,
                    "<br />\n<b>Notice</b>:  Undefined index: agent_version<br />\n{\"agent_id\": 12,\"scheduler_id\": 0}",
                    r#"{"agent_id":"7"}"#,
                    r#"{"error" : "Invalid Key format"}"#,
                ])
            },
            dict: &[
                "\"agent_id\"",
                "\"scheduler_id\"",
                "{",
                "}",
                ":",
                ",",
                "\"",
                "null",
            ],
            generate: Some(|u| make::json_doc(u, &["agent_id", "scheduler_id"], &["1", "0", "-5"])),
            run: |d| {
                if let Ok(r) = parse_enrollment_reply(&text(d)) {
                    assert!(r.agent_id > 0, "accepted agent_id {}", r.agent_id);
                }
            },
        },
        Target {
            name: "jobs_reply",
            about: "GET api/jobs reply, job obj decoding, scan options (wire::parse_jobs_reply, ScanJobParams, jobs::execute::scan_request)",
            seeds: || seeds(&[JOBS_FIXTURE, JOBS_MIXED]),
            dict: JOB_KEYS_DICT,
            generate: Some(gen_jobs),
            run: run_jobs,
        },
        Target {
            name: "scan_options",
            about: "a Scan job's obj: base64 path and options to a typed request (ScanJobParams::from_obj, scan_request)",
            seeds: || {
                seeds(&[
                    "/home\n",
                    "/tmp\n-r --no-archive",
                    "/srv/data\n--max-filesize 10M --follow-symlinks",
                    "/\n--max-filesize=1G --not-recursive",
                    "/etc/../root\n-r",
                ])
            },
            dict: &[
                "-r",
                "--recursive",
                "--no-recursive",
                "--not-recursive",
                "--follow-symlinks",
                "--no-archive",
                "--no-archives",
                "--max-filesize",
                "--max-file-size",
                "=",
                "10M",
                "1G",
                "99999999999G",
                "/",
                "..",
                "\n",
                "ROOT/",
                "ROOT/link",
                "ROOT/sub/..",
            ],
            generate: None,
            run: run_scan_options,
        },
        Target {
            name: "server_config",
            about: "GET api/avconfigs reply (wire::parse_server_config)",
            seeds: || {
                seeds(&[
                    r#"[{"attr":"MaxFileSize","value":"25M"},{"attr":"ScanArchive","value":true},{"attr":"MaxThreads","value":4}]"#,
                    "[]",
                    "<b>Warning</b> [{\"attr\":\"x\",\"value\":null}]",
                ])
            },
            dict: &["\"attr\"", "\"value\"", "[", "]", "{", "}", ",", ":"],
            generate: Some(|u| {
                let n = u.int_in_range(0..=6usize)?;
                let mut list = Vec::new();
                for _ in 0..n {
                    list.push(json!({
                        "attr": make::string(u, &["MaxFileSize", "scheduler:task:Getjobs:freq"])?,
                        "value": make::json(u, &[], &["yes", "25M"], 1)?,
                    }));
                }
                Ok(Value::Array(list).to_string().into_bytes())
            }),
            run: |d| {
                let body = text(d);
                if let Ok(list) = parse_server_config(&body) {
                    // Round trip: what we parsed, written and parsed again, is the same.
                    let again = serde_json::to_string(&list).expect("AttrValue serializes");
                    let back = parse_server_config(&again).expect("re-parse of our own output");
                    assert_eq!(list.len(), back.len());
                    for (a, b) in list.iter().zip(&back) {
                        assert_eq!(a.attr, b.attr);
                        assert!(same_json(&a.value, &b.value), "{a:?} != {b:?}");
                    }
                }
            },
        },
        Target {
            name: "server_schedule",
            about: "GET api/schedulers reply applied to the local schedule (parse_server_schedule, Schedule::apply_server, CronExpr)",
            seeds: || {
                seeds(&[
                    r#"{"name":"default","confdetails":[{"attr":"scheduler:task:Getjobs:freq","value":"*/5 * * * *"},{"attr":"scheduler:task:Runjobs:args","value":"--wait-rand 60"},{"attr":"scheduler:task:State:enabled","value":"false"},{"attr":"scheduler:user","value":"nobody"}]}"#,
                    r#"{"name":"x","confdetails":[{"attr":"scheduler:task:Scheduler:freq","value":"0 0 1 1 *"},{"attr":"scheduler:task:Alerts:freq","value":"0 */2 * * 1-5"}]}"#,
                    r#"{"name":"","confdetails":[]}"#,
                ])
            },
            dict: &[
                "scheduler:task:",
                "Getjobs",
                "Runjobs",
                "State",
                "Alerts",
                "AVConfig",
                "Scheduler",
                ":freq",
                ":args",
                "--wait-rand ",
                ":enabled",
                "*/",
                "* * * * *",
                "0 0 29 2 *",
                "0 0 31 4,6,9,11 *",
                "1-5",
                ",",
                "59",
                "true",
                "false",
            ],
            generate: Some(gen_schedule),
            run: run_schedule,
        },
        Target {
            name: "transport_body",
            about: "any reply body: error message extraction, HTML pages, invalid JSON, Retry-After (transport::body, retry), then the wire parsers on it",
            seeds: || {
                seeds(&[
                    r#"{"error" : "Invalid UUID "0000" "}"#,
                    "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The server is temporarily unable</p></body></html>",
                    r#"{"message":"legacy"}"#,
                    "{\"error\" : \"executeQuery failed \\\"",
                    "",
                    "Fri, 31 Dec 1999 23:59:59 GMT",
                    "120",
                    "Sunday, 06-Nov-94 08:49:37 GMT",
                    "Sun Nov  6 08:49:37 1994",
                ])
            },
            dict: &[
                "\"error\"",
                "\"message\"",
                " : ",
                "<html>",
                "</html>",
                "<br />",
                "<b>",
                "&amp;",
                "&#x27;",
                "\\\"",
                "GMT",
                "Sun, ",
                "Nov",
            ],
            generate: None,
            run: run_body,
        },
        Target {
            name: "wire_types",
            about: "enrollment key, machine UUID, cron expression, --wait-rand argument (wire::types, schedule)",
            seeds: || {
                seeds(&[
                    "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ",
                    " abcde-fghij-klmno-pqrst-uvwxy\n",
                    "4c4c4544-0042-3510-8052-b4c04f4e3232",
                    "00000000-0000-0000-0000-000000000000",
                    "*/15 2-4 1,15 * 1-5",
                    "--wait-rand 300",
                ])
            },
            dict: &["-", "*", "/", ",", " ", "--wait-rand", "0", "F"],
            generate: None,
            run: run_types,
        },
        Target {
            name: "agent_toml",
            about: "agent.toml, with the tables each owner deserialises ([http], [plugins], [schedule], [backends.*] into each plugin's settings)",
            seeds: || {
                let mut s = seeds(&[
                    include_str!("../../../agent.toml"),
                    "server = 'http://127.0.0.1:8089/glpi/plugins/armadito'\nbackend = 'clamav'\n[http]\ntimeout = 5\n[http.retry]\nattempts = 2\n[scan]\nallowed_paths = ['/home']\nprogress_interval = 0.5\n[backends.clamav]\nsocket = '/run/clamav/clamd.ctl'\ntcp = '127.0.0.1:3310'\n[backends.defender]\nmode = 'mdatp'\n[schedule.tasks.Getjobs]\nfreq = '*/5 * * * *'\nwait_rand = 30\n",
                ]);
                s.push(b"[log]\nlevel = 'debug'\nformat = 'json'\n[outbox]\nmax_messages = 10\n[jobs]\nmax_attempts = 0\n".to_vec());
                s
            },
            dict: &[
                "[http]",
                "[log]",
                "[plugins]",
                "[scan]",
                "[jobs]",
                "[outbox]",
                "[avconfig]",
                "[schedule]",
                "[backends.clamav]",
                "[backends.armadito]",
                "[backends.defender]",
                "[backends.eset]",
                "[backends.kaspersky]",
                "[http.retry]",
                " = ",
                "'",
                "\"\"\"",
                "[[",
                "]]",
                "inf",
                "nan",
                "1979-05-27T07:32:00Z",
                "0x7f",
                "1_000",
                "true",
                "{ a = 1 }",
            ],
            generate: None,
            run: run_toml,
        },
        Target {
            name: "plugin_protocol",
            about: "the plugin host's stdout lines as the agent reads them, request lines as the host reads them, a plugin's metadata section (plugins::protocol)",
            seeds: || seeds(&[PROTOCOL_FIXTURE]),
            dict: &[
                "{\"hello\":",
                "{\"refused\":",
                "{\"log\":",
                "{\"progress\":",
                "{\"result\":",
                "{\"error\":",
                "\"id\":",
                "\"value\":",
                "\"event\":",
                "\"metadata\":",
                "\"protocol\":",
                "\"kind\":",
                "\"message\":",
                "\"method\":",
                "\"params\":",
                "\n",
                "null",
                "18446744073709551615",
                "-1",
            ],
            generate: None,
            run: run_protocol,
        },
    ]
}

const JOBS_FIXTURE: &str = r#"{ "jobs": [{"job_id": 1,
                  "job_type": "Scan",
                  "job_priority": "0",
                  "obj": {
                  "scanconfig_id": 1,
                  "scan_name": "linux home scan",
                  "scan_path": "L2hvbWU=",
                  "scan_options": ""
               }
                 },{"job_id": 2,
                  "job_type": "Scan",
                  "job_priority": "1",
                  "obj": {
                  "scanconfig_id": 1,
                  "scan_name": "linux home scan",
                  "scan_path": "L2hvbWU=",
                  "scan_options": "LXIgLS1uby1hcmNoaXZl"
               }
                 }]}"#;

const JOBS_MIXED: &str = r#"<b>Notice</b>{"jobs":[{"job_id":"3","job_type":"Scan","job_priority":3,"obj":{"scan_path":"L3RtcA==","scan_options":"LS1tYXgtZmlsZXNpemUgMU0="}},{"job_id":0},"x",{"job_id":4,"job_type":"AVConfig","job_priority":"7"},{"job_id":5,"job_type":"Scan","obj":null}]}"#;

const JOB_KEYS_DICT: &[&str] = &[
    "\"jobs\"",
    "\"job_id\"",
    "\"job_type\"",
    "\"job_priority\"",
    "\"obj\"",
    "\"scan_path\"",
    "\"scan_options\"",
    "\"scan_name\"",
    "\"scanconfig_id\"",
    "\"Scan\"",
    "L2hvbWU=",
    "==",
    "[",
    "]",
    "{",
    "}",
];

const JOB_KEYS: &[&str] = &[
    "job_id",
    "job_type",
    "job_priority",
    "obj",
    "scan_path",
    "scan_options",
    "scan_name",
    "scanconfig_id",
];

fn gen_jobs(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let n = u.int_in_range(0..=5usize)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut jobs = Vec::new();
    for _ in 0..n {
        if u.ratio(1u8, 5u8)? {
            jobs.push(make::json(u, JOB_KEYS, &["Scan", "0"], 3)?);
            continue;
        }
        let path = make::string(u, &["/tmp", "/home", "/", "relative", "/a/../b"])?;
        let opts = make::string(u, &["-r", "--no-archive", "--max-filesize 5M", "--bad"])?;
        jobs.push(json!({
            "job_id": if u.ratio(1u8, 2u8)? { json!(make::int(u)?) } else { json!(make::int(u)?.to_string()) },
            "job_type": *u.choose(&["Scan", "AVConfig", "", "scan"])?,
            "job_priority": make::json(u, &[], &["0", "1", "2", "3", "4", "-1"], 0)?,
            "obj": {
                "scanconfig_id": make::int(u)?,
                "scan_name": make::string(u, &[])?,
                "scan_path": b64(&path),
                "scan_options": b64(&opts),
            }
        }));
    }
    Ok(json!({ "jobs": jobs }).to_string().into_bytes())
}

/// A folder with a file, a sub-folder and a link out of it: the allowed root of the scan
/// targets (made once per process).
fn scan_root() -> &'static (tempfile::TempDir, PathBuf) {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir for the scan_options target");
        let root = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
        std::fs::create_dir(root.join("sub")).expect("sub folder");
        std::fs::write(root.join("sub/file"), b"x").expect("a file");
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc", root.join("link")).expect("a link out of the root");
        (dir, root)
    })
}

/// JSON equality where floats may differ in the last bit: serde_json parses floats fast, not
/// exactly (no `float_roundtrip`), so `1.2e150` printed and read back may move by one ulp.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || ((x - y).abs() <= 1e-12 * x.abs().max(y.abs()))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn run_jobs(d: &[u8]) {
    let body = text(d);
    let Ok(reply) = parse_jobs_reply(&body) else {
        return;
    };
    // Nothing dropped: one parsed entry (a job or a malformed one) per element of `jobs`.
    let sent = json_object_start(&body)
        .and_then(|o| serde_json::from_str::<Value>(o).ok())
        .and_then(|v| v.get("jobs").and_then(Value::as_array).map(Vec::len));
    assert_eq!(Some(reply.jobs.len()), sent, "jobs lost or invented");
    for job in &reply.jobs {
        match job {
            Ok(j) => {
                assert!(j.job_id > 0);
                assert!(j.priority.value() <= 3);
                let v = serde_json::to_value(j).expect("Job serializes");
                let back: Job = serde_json::from_value(v).expect("Job round trip");
                assert_eq!(&back, j);
                if j.job_type == "Scan"
                    && let Ok(params) = ScanJobParams::from_obj(&j.obj)
                {
                    check_scan_request(&params);
                }
            }
            Err(m) => {
                assert!(m.raw.len() <= 64 * 1024, "malformed job kept whole");
                assert!(!m.reason.is_empty());
            }
        }
    }
}

/// Input: `path\noptions` (the root of [`scan_root`] substituted for `ROOT`).
fn run_scan_options(d: &[u8]) {
    let (root_dir, root) = scan_root();
    let _ = root_dir;
    let s = text(d).replace("ROOT", &root.to_string_lossy());
    let (path, options) = s.split_once('\n').unwrap_or((&s, ""));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let obj = json!({"scanconfig_id": 1, "scan_name": "fuzz", "scan_path": b64(path), "scan_options": b64(options)});
    // Round trip through the wire encoding.
    let params = ScanJobParams::from_obj(&obj).expect("our own base64 decodes");
    assert_eq!(
        (params.scan_path.as_str(), params.scan_options.as_str()),
        (path, options)
    );
    check_scan_request(&params);
}

/// A request is only ever for an absolute path without `..` that resolves inside the
/// allowed root, with options the agent knows.
fn check_scan_request(params: &ScanJobParams) {
    let (_, root) = scan_root();
    let allowed = [root.clone()];
    match agent_core::jobs::execute::scan_request(params, &allowed) {
        Ok(req) => {
            assert_eq!(req.paths.len(), 1);
            let p = std::path::Path::new(&req.paths[0]);
            assert!(p.is_absolute(), "relative path accepted: {p:?}");
            let real = std::fs::canonicalize(p).expect("an accepted path exists");
            assert!(real.starts_with(root), "{p:?} resolves outside the root");
        }
        Err(e) => assert!(!e.is_empty()),
    }
    // With no allowed paths, any absolute path may pass but nothing may panic.
    let _ = agent_core::jobs::execute::scan_request(params, &[]);
}

fn gen_schedule(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let tasks = [
        "Getjobs",
        "Runjobs",
        "State",
        "Alerts",
        "AVConfig",
        "Scheduler",
        "Scan",
    ];
    let keys = ["freq", "args", "enabled", "other"];
    let n = u.int_in_range(0..=8usize)?;
    let mut details = Vec::new();
    for _ in 0..n {
        let attr = format!("scheduler:task:{}:{}", u.choose(&tasks)?, u.choose(&keys)?);
        let value = match u.int_in_range(0..=3u8)? {
            0 => {
                let mut f = Vec::new();
                for (lo, hi) in [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)] {
                    f.push(cron_field(u, lo, hi)?);
                }
                Value::String(f.join(" "))
            }
            1 => Value::String(format!("--wait-rand {}", make::int(u)?)),
            2 => Value::String((*u.choose(&["true", "false", "yes", "0"])?).into()),
            _ => make::json(u, &[], &[], 1)?,
        };
        details.push(json!({"attr": attr, "value": value}));
    }
    Ok(json!({"name": "fuzz", "confdetails": details})
        .to_string()
        .into_bytes())
}

fn cron_field(u: &mut Unstructured, lo: i64, hi: i64) -> arbitrary::Result<String> {
    let num = |u: &mut Unstructured| -> arbitrary::Result<i64> {
        Ok(if u.ratio(7u8, 8u8)? {
            u.int_in_range(lo..=hi)?
        } else {
            make::int(u)?
        })
    };
    Ok(match u.int_in_range(0..=5u8)? {
        0 => "*".into(),
        1 => format!("*/{}", num(u)?),
        2 => num(u)?.to_string(),
        3 => format!("{}-{}", num(u)?, num(u)?),
        4 => format!("{},{}", num(u)?, num(u)?),
        _ => format!("{}-{}/{}", num(u)?, num(u)?, num(u)?),
    })
}

fn run_schedule(d: &[u8]) {
    let Ok((_name, entries)) = parse_server_schedule(&text(d)) else {
        return;
    };
    let cfg = ScheduleConfig::default();
    let mut schedule = cfg.local_schedule().expect("the default schedule is valid");
    let before = schedule.clone();
    let rejected = schedule.apply_server(&entries, &|_| Ok(()), cfg.max_period);
    // The server can never switch a fleet off: every task it changed still runs at least once
    // per bound and starts within it; it cannot enable or disable a task.
    for (task, entry) in &schedule.tasks {
        let bound = bound_for(*task, cfg.max_period);
        let old = before.tasks.get(task);
        assert_eq!(
            entry.enabled,
            old.is_none_or(|o| o.enabled),
            "{task:?} switched by the server"
        );
        if old != Some(entry) {
            let gap = max_gap_secs(&entry.freq);
            assert!(
                gap.is_some_and(|g| g <= bound),
                "{task:?} runs every {gap:?} s after the server's schedule (bound {bound} s)"
            );
            assert!(
                entry.wait_rand.is_none_or(|w| w < bound),
                "{task:?} spread too long"
            );
        }
    }
    // What only agent.toml may set is untouched.
    assert_eq!(
        (&schedule.user, &schedule.logfile),
        (&before.user, &before.logfile)
    );
    for r in &rejected {
        assert!(r.value.chars().count() <= 81 && r.attr.chars().count() <= 80);
        assert!(!r.reason.is_empty());
    }
    // Every server value parses as the cron it claims to be, and prints back the same.
    for e in &entries {
        if let Value::String(s) = &e.value
            && let Ok(c) = CronExpr::parse(s)
        {
            let again = CronExpr::parse(c.as_str()).expect("a valid cron re-parses");
            assert_eq!(again.minutes(), c.minutes());
            assert_eq!(again.weekdays(), c.weekdays());
        }
    }
}

fn run_body(d: &[u8]) {
    let body = text(d);
    let msg = server_message(&body);
    assert!(!msg.is_empty());
    assert!(msg.chars().count() <= MESSAGE_MAX_CHARS, "message too long");
    assert!(
        !msg.contains(['\n', '\r']),
        "message on several lines: {msg:?}"
    );
    if let Some(obj) = json_object_start(&body) {
        assert!(obj.starts_with('{') && body.ends_with(obj));
    }
    for ct in [Some("text/html; charset=UTF-8".to_owned()), None] {
        let reply = Reply {
            status: 200,
            content_type: ct,
            body: body.clone(),
        };
        let _ = (reply.json_object(), reply.is_html(), reply.summary());
    }
    let _ = is_deterministic_plugin_error(&msg);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _ = parse_retry_after(&body, now);
    // What the tasks do with a 200 body.
    let _ = parse_enrollment_reply(&body);
    let _ = parse_jobs_reply(&body);
    let _ = parse_server_config(&body);
    let _ = parse_server_schedule(&body);
}

fn run_types(d: &[u8]) {
    let s = text(d);
    if let Ok((k, _)) = EnrollmentKey::parse(&s) {
        let (again, changed) = EnrollmentKey::parse(k.expose()).expect("a parsed key re-parses");
        assert!(again == k && !changed);
        assert!(
            !format!("{k:?}").contains(k.expose()),
            "the key leaks in Debug"
        );
    }
    if let Ok(u) = MachineUuid::parse(&s) {
        assert_eq!(MachineUuid::parse(u.as_str()).expect("re-parse"), u);
    }
    if let Ok(c) = CronExpr::parse(&s) {
        assert!(!c.as_str().contains(['\n', '\r', ';', '$', '`']));
        let _ = max_gap_secs(&c);
        let _ = c.matches(0, 0, 1, 1, 0);
    }
    let _ = parse_args(&s);
}

fn run_toml(d: &[u8]) {
    let Ok(file) = toml::from_str::<FileConfig>(&text(d)) else {
        return;
    };
    if file.scan.validate().is_ok() {
        let _ = file.scan.progress_interval();
    }
    let cfg = Config::resolve(file, None, &Default::default());
    let _ = cfg.table::<HttpOptions>("http", &cfg.http);
    if let Ok(plugins) = PluginsConfig::from_agent_config(
        &cfg.plugins,
        &cfg.plugins_dir,
        &cfg.state_dir,
        &cfg.backends,
    ) {
        let _ = plugins;
    }
    let _ = cfg.schedule.local_schedule();
    // Each backend reads its own table.
    for table in cfg.backends.values() {
        let Ok(v) = serde_json::to_value(table) else {
            continue;
        };
        let _ = armadito_backend_clamav::Settings::from_json(&v);
        let _ = armadito_backend_armadito::Settings::from_json(&v);
        let _ = armadito_backend_defender::Settings::from_json(&v);
        let _ = armadito_backend_eset::Settings::from_json(&v);
        let _ = armadito_backend_kaspersky::Settings::from_json(&v);
    }
}

const PROTOCOL_FIXTURE: &str = concat!(
    r#"{"hello":{"protocol":{"name":"armadito-plugin-host","version":"1.0.0"},"metadata":{"name":"clamav","version":"0.1.0","interface":"1"},"pid":123}}"#,
    "\n",
    r#"{"log":{"level":3,"target":"clamav","message":"clamd 1.0.7"}}"#,
    "\n",
    r#"{"progress":{"id":2,"event":{"files_scanned":10,"files_total":100,"current":"/home/a"}}}"#,
    "\n",
    r#"{"result":{"id":1,"value":null}}"#,
    "\n",
    r#"{"result":{"id":2,"value":{"status":"completed","files_scanned":3,"detections":[{"path":"/tmp/eicar","name":"Eicar-Signature","action":"none","time":1700000000}]}}}"#,
    "\n",
    r#"{"error":{"id":3,"error":{"kind":"unavailable","message":"clamd is not running"}}}"#,
    "\n",
    r#"{"refused":{"error":"plugin folder writable by others"}}"#,
    "\n",
    r#"{"id":1,"method":"init","params":{"socket":"/run/clamav/clamd.ctl"}}"#,
    "\n",
    r#"{"id":3,"method":"cancel","params":{"id":2}}"#,
    "\n",
);

fn run_protocol(d: &[u8]) {
    // The reader's bound, smaller than the agent's so over-long lines are exercised too.
    const MAX_LINE: usize = 16 * 1024;
    for line in proto::host_output(d, MAX_LINE).into_iter().flatten() {
        // Round trip: a decoded message, re-encoded, decodes to the same encoding.
        let again = proto::host_output(line.as_bytes(), usize::MAX >> 1);
        assert_eq!(again, vec![Ok(line.clone())], "message does not round-trip");
    }
    for line in text(d).lines() {
        if let Ok(r) = proto::host_request(line) {
            assert_eq!(proto::host_request(&r), Ok(r.clone()), "request round trip");
        }
    }
    let _ = proto::metadata_section(d);
}
