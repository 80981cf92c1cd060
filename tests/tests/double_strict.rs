//! Strict mode: accepted-by-accident requests are recorded as violations;
//! a well-formed agent conversation records none; `strict: false` records
//! nothing.

use armadito_tests::double::client::{enroll_body, envelope};
use armadito_tests::double::{Double, DoubleConfig};
use serde_json::{Value, json};

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";

fn start(strict: bool) -> Double {
    let d = Double::start_with(DoubleConfig {
        strict,
        ..DoubleConfig::default()
    });
    d.create_key(KEY, 100, 3600);
    d
}

/// A complete, correct session: enroll, state, avconfig, scheduler, get a
/// job, post scan, alerts and job result.
fn clean_session(d: &Double) {
    assert_eq!(
        d.post_json("agents", &enroll_body(KEY, UUID)).text(),
        r#"{"agent_id": 1,"scheduler_id": 1}"#
    );
    let ok = |ep: &str, task: &str, obj: Value| {
        let r = d.post_json(ep, &envelope(1, UUID, task, obj));
        assert_eq!((r.status, r.text()), (200, String::new()), "{ep}");
    };
    ok(
        "states",
        "State",
        json!({"dbinfo": {"global_status": "up-to-date", "global_update_timestamp": 1479467793, "service_status": "running",
            "modules": [{"name": "clamav", "mod_status": "up-to-date", "mod_update_timestamp": 1479467793}]},
            "avdetails": [{"attr": "onaccess:enabled", "value": 1}]}),
    );
    ok(
        "avconfigs",
        "AVConfig",
        json!([{"attr": "on-access", "value": "enabled"}]),
    );
    ok(
        "schedulers",
        "Scheduler",
        json!({"name": "Cron", "confdetails": [{"attr": "scheduler:user", "value": "root"}]}),
    );
    let sc = d.create_scanconfig("home", "/home", "", 1);
    let job = d.create_job(1, sc, 1);
    assert!(d.get_jobs(1).text().contains("\"job_id\": 1"));
    ok(
        "scans",
        "Scan",
        json!({"job_id": job, "duration": "PT0H0M3S", "progress": 100, "malware_count": 1, "suspicious_count": 0,
            "scanned_count": 42, "start_time": "@1483605760", "end_time": "2017-01-05 08:42:43"}),
    );
    ok(
        "alerts",
        "Alerts",
        json!({"job_id": job, "alerts": [{"name": "Eicar", "filepath": "/home/x", "action": "none", "module_name": "clamav",
            "info": "on-demand", "detection_time": 1483605762, "job_id": job}]}),
    );
    ok(
        "jobs",
        "Runjobs",
        json!({"job_id": job, "code": 1, "message": "c2NhbiBmYWlsZWQ=", "start_time": 1483605760, "end_time": 1483605763}),
    );
}

#[test]
fn a_correct_agent_records_no_violation() {
    let d = start(true);
    clean_session(&d);
    assert_eq!(d.violations(), Vec::<String>::new());
    assert_eq!(d.scans()[0].scanned_count, Some(42));
}

fn patched(obj_patch: impl FnOnce(&mut Value), ep_task: &str, obj: Value) -> String {
    let mut v: Value = serde_json::from_str(&envelope(1, UUID, ep_task, obj)).unwrap();
    obj_patch(&mut v);
    v.to_string()
}

#[test]
fn accidental_acceptances_are_recorded() {
    let d = start(true);
    clean_session(&d);
    let sc = d.create_scanconfig("tmp", "/tmp", "", 1);
    let job = d.create_job(1, sc, 0);
    d.get_jobs(1);
    let mut expect = Vec::new();

    // Missing agent_version (accepted; the notice lands in the 200 body).
    let body = patched(
        |v| drop(v.as_object_mut().unwrap().remove("agent_version")),
        "State",
        json!({"dbinfo": {"global_update_timestamp": 1479467793, "global_status": "x"}}),
    );
    assert_eq!(d.post_json("states", &body).status, 200);
    expect.push("agent_version missing");

    // Lowercase UUID: refused by the plugin, still flagged.
    let body = envelope(1, &UUID.to_lowercase(), "State", json!({}));
    assert_eq!(d.post_json("states", &body).status, 500);
    expect.push("uuid must match");

    // Non-integer ISO-8601 duration (the Perl agent's bug): 500 + flag.
    let r = d.post_json("scans", &envelope(1, UUID, "Scan", json!({"job_id": job, "duration": "PT0H1.5M30S", "progress": 100, "malware_count": 0, "suspicious_count": 0, "scanned_count": 1})));
    assert_eq!(r.status, 500);
    expect.push("duration \"PT0H1.5M30S\" is not an integer ISO-8601");

    // Counts as single-element string arrays (Kaspersky/ESET style): accepted.
    let r = d.post_json(
        "scans",
        &envelope(1, UUID, "Scan", json!({"job_id": job, "duration": "PT1S", "progress": 100, "malware_count": ["0"], "suspicious_count": 0, "scanned_count": ["131"]})),
    );
    assert_eq!(r.status, 200);
    expect.push("malware_count must be a JSON integer");
    expect.push("scanned_count must be a JSON integer");

    // Job result without start/end times: accepted with notices.
    let r = d.post_json(
        "jobs",
        &envelope(
            1,
            UUID,
            "Runjobs",
            json!({"job_id": job, "code": 0, "message": "ok"}),
        ),
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("PHP Notice"));
    expect.push("task.obj.start_time must be unix seconds");
    expect.push("task.obj.end_time must be unix seconds");

    // Failure message that is not base64.
    let r = d.post_json("jobs", &envelope(1, UUID, "Runjobs", json!({"job_id": job, "code": 3, "message": "plain text!", "start_time": 1, "end_time": 2})));
    assert_eq!(r.status, 200);
    expect.push("failure message is not base64");

    // Another agent's id with this agent's UUID (never cross-checked).
    assert_eq!(
        d.post_json(
            "agents",
            &enroll_body(KEY, "4C4C4544-0033-4A10-8051-AAAAAAAAAAAA")
        )
        .status,
        200
    );
    let r = d.post_json(
        "avconfigs",
        &envelope(2, UUID, "AVConfig", json!([{"attr": "a", "value": "b"}])),
    );
    assert_eq!(r.status, 200);
    expect.push("belongs to agent 1 but agent_id 2 was claimed");

    // Empty alerts array and per-alert job_id without top-level one.
    assert_eq!(
        d.post_json(
            "alerts",
            &envelope(1, UUID, "Alerts", json!({"alerts": []}))
        )
        .status,
        200
    );
    expect.push("empty alerts array");
    let a = json!({"name": "n", "filepath": "/f", "detection_time": 1483605762, "job_id": job});
    assert_eq!(
        d.post_json(
            "alerts",
            &envelope(1, UUID, "Alerts", json!({"alerts": [a]}))
        )
        .status,
        200
    );
    expect.push("per-alert job_id 2 is overwritten");

    // Slash-less URL.
    let r = d
        .raw(
            "GET",
            "/glpi/plugins/armadito/api/jobs?agent_id=1",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 301);
    expect.push("slash-less URL");

    let v = d.violations();
    for e in &expect {
        assert!(
            v.iter().any(|l| l.contains(e)),
            "missing violation {e:?} in {v:#?}"
        );
    }
    assert_eq!(v.len(), expect.len(), "{v:#?}");
    assert!(
        v.iter().all(|l| l.starts_with('#')),
        "prefixed with the request number"
    );
    d.clear_violations();
    assert!(d.violations().is_empty());
}

#[test]
fn lenient_mode_records_nothing() {
    let d = start(false);
    let mut b: Value = serde_json::from_str(&enroll_body(KEY, UUID)).unwrap();
    b.as_object_mut().unwrap().remove("agent_version");
    assert_eq!(d.post_json("agents", &b.to_string()).status, 200);
    d.raw("POST", "/glpi/plugins/armadito/api/agents", &[], b"{}")
        .unwrap();
    assert_eq!(
        d.post_json(
            "alerts",
            &envelope(1, UUID, "Alerts", json!({"alerts": []}))
        )
        .status,
        200
    );
    assert!(d.violations().is_empty());
    assert_eq!(d.requests().len(), 3);
}
