//! The state machine of §3–§10: keys, agents, schedulers, jobs, scans,
//! states, alerts, EAV configurations, and the documented server bugs with
//! their switches.

use armadito_tests::double::client::{enroll_body, envelope};
use armadito_tests::double::{AdminError, Double, DoubleConfig, Quirks};
use base64::Engine;
use serde_json::{Value, json};

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const U1: &str = "4C4C4544-0033-4A10-8051-000000000001";
const U2: &str = "4C4C4544-0033-4A10-8051-000000000002";

fn double(quirks: Quirks, limit: u32) -> Double {
    let d = Double::start_with(DoubleConfig {
        getjobs_limit: limit,
        strict: true,
        quirks,
    });
    d.create_key(KEY, 100, 3600);
    d
}

fn enroll(d: &Double, uuid: &str) -> String {
    d.post_json("agents", &enroll_body(KEY, uuid)).text()
}

fn post(d: &Double, endpoint: &str, agent: i64, uuid: &str, obj: Value) -> (u16, String) {
    let r = d.post_json(endpoint, &envelope(agent, uuid, "T", obj));
    (r.status, r.text())
}

#[test]
fn enrollment_key_lifecycle() {
    let d = Double::start();
    d.set_now(Some(1_700_000_000));
    d.create_key(KEY, 2, 10);
    // Usable up to and including the expiration second.
    d.set_now(Some(1_700_000_010));
    assert_eq!(enroll(&d, U1), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    d.set_now(Some(1_700_000_011));
    assert_eq!(
        enroll(&d, U1),
        r#"{"error" : "Your enrollment key has expired."}"#
    );
    assert_eq!(
        d.key_use_counter(KEY),
        Some(1),
        "expired keys are not consumed"
    );
    d.set_now(Some(1_700_000_000));
    // Re-enrollment of a known UUID consumes a use too.
    assert_eq!(enroll(&d, U1), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    assert_eq!(
        enroll(&d, U1),
        r#"{"error" : "Your enrollment key reached its maximum usage count."}"#
    );
    assert_eq!(d.key_use_counter(KEY), Some(0));
    // Dustbin = revoked ("not found"), restore = usable again.
    let k2 = "ABCDE-12345-ABCDE-12345-ABCDE";
    d.create_key(k2, 5, 60);
    d.delete_key(k2);
    let r = d.post_json("agents", &enroll_body(k2, U2));
    assert_eq!(
        r.text(),
        r#"{"error" : "Enrollment key not found in database"}"#
    );
    d.restore_key(k2);
    assert_eq!(
        d.post_json("agents", &enroll_body(k2, U2)).text(),
        r#"{"agent_id": 2,"scheduler_id": 2}"#
    );
    // A negative lifetime is already expired.
    let k3 = "ZZZZZ-12345-ABCDE-12345-ABCDE";
    d.create_key(k3, 5, -1);
    assert_eq!(d.post_json("agents", &enroll_body(k3, U2)).status, 500);
}

#[test]
fn reenrollment_refreshes_the_agent_and_resets_its_scheduler() {
    let d = double(Quirks::default(), 10);
    assert_eq!(enroll(&d, U1), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    let (s, _) = post(
        &d,
        "schedulers",
        1,
        U1,
        json!({"name": "Cron", "confdetails": [{"attr": "scheduler:user", "value": "root"}]}),
    );
    assert_eq!(s, 200);
    let sch = &d.schedulers()[0];
    assert_eq!(
        (sch.name.as_deref(), sch.plugin_armadito_schedulerdetails_id),
        (Some("Cron"), 2)
    );
    assert_eq!(
        d.scheduler_details_effective(1),
        vec![("scheduler:user".to_string(), Some("root".to_string()))]
    );
    // AV upgrade + re-enroll: new antivirus row, same agent id, scheduler reset.
    let mut body: Value = serde_json::from_str(&enroll_body(KEY, U1)).unwrap();
    body["task"]["antivirus"]["version"] = json!("0.12.8");
    body["agent_version"] = json!("0.11.0");
    assert_eq!(
        d.post_json("agents", &body.to_string()).text(),
        r#"{"agent_id": 1,"scheduler_id": 1}"#
    );
    let a = d.agent(1).unwrap();
    assert_eq!(
        (a.plugin_armadito_antiviruses_id, a.agent_version.as_deref()),
        (2, Some("0.11.0"))
    );
    assert_eq!(d.antiviruses()[1].fullname, "Armadito+0.12.8+linux");
    let sch = &d.schedulers()[0];
    assert_eq!(
        (
            sch.name.as_deref(),
            sch.plugin_armadito_schedulerdetails_id,
            sch.plugin_armadito_antiviruses_id
        ),
        (Some("unknown"), 0, 2)
    );
    // Scan configs are per antivirus: the old one no longer applies.
    let sc = d.create_scanconfig("old av scan", "/", "", 1);
    assert_eq!(
        d.try_create_job(1, sc, 0),
        Err(AdminError::Invalid(
            "Cannot apply scan configuration (1) for agent (1) with antivirus (2).".into()
        ))
    );
    // A quote in the antivirus identity breaks the concatenated SQL.
    body["task"]["antivirus"]["name"] = json!("Arma'dito");
    let r = d.post_json("agents", &body.to_string());
    assert_eq!(r.status, 500);
    assert!(
        r.text().starts_with(
            r#"{"error" : "Error isAlreadyEnrolled : You have an error in your SQL syntax"#
        ),
        "{}",
        r.text()
    );
}

#[test]
fn get_jobs_drains_in_chunks_and_marks_before_replying() {
    let d = double(Quirks::default(), 2);
    enroll(&d, U1);
    let sc = d.create_scanconfig("home", "/home", "--x", 1);
    let j1 = d.create_job(1, sc, 3);
    let j2 = d.create_job(1, sc, 2);
    let j3 = d.create_job(1, sc, 1);
    let j4 = d.create_job(1, sc, 0);
    d.cancel_job(j4);
    assert_eq!(d.job(j4).unwrap().job_status, "cancelled");
    let ids = |r: &str| -> Vec<i64> {
        let v: Value = serde_json::from_str(r).unwrap();
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_i64().unwrap())
            .collect()
    };
    let first = d.get_jobs(1).text();
    assert_eq!(ids(&first), vec![j1, j2]);
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        v["jobs"][0]["job_priority"],
        json!("3"),
        "priority is a JSON string"
    );
    assert_eq!(
        v["jobs"][0]["obj"]["scan_options"],
        json!(base64::engine::general_purpose::STANDARD.encode("--x"))
    );
    assert_eq!(ids(&d.get_jobs(1).text()), vec![j3]);
    assert_eq!(d.get_jobs(1).text(), "{ \"jobs\": []}");
    for id in [j1, j2, j3] {
        let j = d.job(id).unwrap();
        assert_eq!(
            (
                j.job_status.as_str(),
                j.start_time.as_str(),
                j.duration.as_deref()
            ),
            ("downloaded", "1970-01-01 00:00:00", Some("0d 00h 00m 00s"))
        );
    }
    // Cancel only works from queued.
    assert_eq!(
        d.try_cancel_job(j1),
        Err(AdminError::Conflict(
            "You cannot cancel a job already downloaded.".into()
        ))
    );
}

#[test]
fn deleted_jobs_are_delivered_unless_fixed() {
    for (quirks, delivered) in [(Quirks::default(), true), (Quirks::fixed(), false)] {
        let d = double(quirks, 10);
        enroll(&d, U1);
        let sc = d.create_scanconfig("home", "/home", "", 1);
        let j = d.create_job(1, sc, 0);
        d.trash_job(j);
        assert_eq!(d.get_jobs(1).text() != "{ \"jobs\": []}", delivered);
    }
}

#[test]
fn get_jobs_failure_paths() {
    let d = double(Quirks::default(), 10);
    enroll(&d, U1);
    enroll(&d, U2);
    let sc = d.create_scanconfig("home", "/home", "", 1);
    // Purged scan configuration: 500 before anything is marked.
    let sc2 = d.create_scanconfig("tmp", "/tmp", "", 1);
    let j = d.create_job(1, sc2, 0);
    d.purge_scanconfig(sc2);
    assert_eq!(
        d.get_jobs(1).text(),
        r#"{"error" : "Scanconfig initFromDB failed."}"#
    );
    assert_eq!(d.job(j).unwrap().job_status, "queued");
    d.cancel_job(j);
    // Missing scans row: PHP fatal → 200 text/html, jobs already downloaded.
    let j = d.create_job(1, sc, 0);
    d.purge_scan_of_job(j);
    let r = d.get_jobs(1);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text()
            .starts_with("<br />\n<b>Fatal error</b>: Uncaught Error: "),
        "{}",
        r.text()
    );
    assert_eq!(d.job(j).unwrap().job_status, "downloaded");
    // Purged agent with queued jobs.
    d.create_job(2, sc, 0);
    d.purge_agent(2);
    assert_eq!(
        d.get_jobs(2).text(),
        r#"{"error" : "Unable to get Agent DB fields for agent 2"}"#
    );
}

#[test]
fn raw_jobs_and_json_escaping() {
    for quirks in [Quirks::default(), Quirks::fixed()] {
        let d = double(quirks, 10);
        enroll(&d, U1);
        d.create_raw_job(
            1,
            "Scan",
            "2 - high",
            r#"{"scanconfig_id": 9, "scan_path": "!!not base64"}"#,
        );
        d.create_raw_job(1, "Bogus", "7 - weird", "[]");
        let sc = d.create_scanconfig("say \"hi\"", "/", "", 1);
        d.create_job(1, sc, 0);
        let body = d.get_jobs(1).text();
        assert!(body.contains("\"job_priority\": \"2\",\n                  \"obj\": {\"scanconfig_id\": 9, \"scan_path\": \"!!not base64\"}"), "{body}");
        assert!(
            body.contains("\"job_type\": \"Bogus\",\n                  \"job_priority\": \"0\""),
            "{body}"
        );
        let parsed = serde_json::from_str::<Value>(&body);
        if quirks.unescaped_json {
            assert!(parsed.is_err(), "the real plugin does not escape scan_name");
            assert!(body.contains("\"scan_name\": \"say \"hi\"\""));
        } else {
            assert_eq!(
                parsed.unwrap()["jobs"][2]["obj"]["scan_name"],
                json!("say \"hi\"")
            );
        }
    }
}

#[test]
fn job_results() {
    let d = double(Quirks::default(), 10);
    enroll(&d, U1);
    let sc = d.create_scanconfig("home", "/home", "", 1);
    let j = d.create_job(1, sc, 0);
    d.get_jobs(1);
    let long = "QUJD".repeat(100); // 400 chars of base64
    let (s, b) = post(
        &d,
        "jobs",
        1,
        U1,
        json!({"job_id": j, "code": 2, "message": long, "start_time": 1483605762, "end_time": 1483609425}),
    );
    assert_eq!((s, b.as_str()), (200, ""));
    let row = d.job(j).unwrap();
    assert_eq!(row.job_status, "failed");
    assert_eq!(row.job_error_code, Some(2));
    assert_eq!(row.job_error_msg.as_deref().map(str::len), Some(255));
    assert_eq!(
        (row.start_time.as_str(), row.end_time.as_str()),
        ("2017-01-05 08:42:42", "2017-01-05 09:43:45")
    );
    assert_eq!(row.duration.as_deref(), Some("0d 01h 01m 03s"));
    // A later success keeps the old error columns (idempotent overwrite).
    let (s, _) = post(
        &d,
        "jobs",
        1,
        U1,
        json!({"job_id": j, "code": 0, "message": "ok", "start_time": 5, "end_time": 5}),
    );
    assert_eq!(s, 200);
    let row = d.job(j).unwrap();
    assert_eq!(
        (row.job_status.as_str(), row.job_error_code),
        ("successful", Some(2))
    );
    // Unknown job.
    let (s, b) = post(
        &d,
        "jobs",
        1,
        U1,
        json!({"job_id": 99, "code": 0, "message": "ok", "start_time": 5, "end_time": 5}),
    );
    assert_eq!(
        (s, b.as_str()),
        (500, r#"{"error" : "Unable to get job from database."}"#)
    );
    // Missing message/times: PHP notices before the (empty) success body.
    let (s, b) = post(&d, "jobs", 1, U1, json!({"job_id": j, "code": 0}));
    assert_eq!(s, 200);
    assert_eq!(
        b.matches("PHP Notice: </span>Undefined property: stdClass::$")
            .count(),
        3,
        "{b}"
    );
    assert!(
        b.contains("stdClass::$message")
            && b.contains("stdClass::$start_time")
            && b.contains("stdClass::$end_time")
    );
    assert!(b.ends_with("</div>"));
}

#[test]
fn scans_overwrite_every_column() {
    let d = double(Quirks::default(), 10);
    enroll(&d, U1);
    let sc = d.create_scanconfig("home", "/home", "", 1);
    let j = d.create_job(1, sc, 0);
    let full = json!({"job_id": j, "duration": "PT10S", "progress": 40, "malware_count": 1, "suspicious_count": 2, "scanned_count": 300});
    assert_eq!(post(&d, "scans", 1, U1, full).0, 200);
    assert_eq!(
        post(
            &d,
            "scans",
            1,
            U1,
            json!({"job_id": j, "duration": "PT20S", "progress": 100})
        )
        .0,
        200
    );
    let s = &d.scans()[0];
    assert_eq!(
        (
            s.progress,
            s.malware_count,
            s.suspicious_count,
            s.scanned_count
        ),
        (Some(100), Some(-1), Some(-1), Some(-1))
    );
    assert_eq!(
        d.job(j).unwrap().job_status,
        "queued",
        "scans never change the job status"
    );
    // Unknown job: 200 anyway.
    assert_eq!(
        post(
            &d,
            "scans",
            1,
            U1,
            json!({"job_id": 77, "duration": "PT1S"})
        ),
        (200, String::new())
    );
}

fn state_obj(ts: i64, status: &str, details: Value) -> Value {
    json!({"dbinfo": {"global_update_timestamp": ts, "global_status": status,
        "modules": [{"name": "clamav", "mod_status": status, "mod_update_timestamp": ts}]},
        "avdetails": details})
}

#[test]
fn states_modules_are_insert_only_unless_fixed() {
    for (quirks, updated) in [(Quirks::default(), false), (Quirks::fixed(), true)] {
        let d = double(quirks, 10);
        enroll(&d, U1);
        assert_eq!(
            post(
                &d,
                "states",
                1,
                U1,
                state_obj(1479467793, "up-to-date", json!([]))
            )
            .0,
            200
        );
        assert_eq!(
            post(
                &d,
                "states",
                1,
                U1,
                state_obj(1483605762, "late", json!([]))
            )
            .0,
            200
        );
        let st = &d.states()[0];
        assert_eq!(
            (st.update_status.as_str(), st.last_update.as_str()),
            ("late", "2017-01-05 08:42:42")
        );
        let m = &d.state_modules()[0];
        let expect = if updated {
            ("late", "2017-01-05 08:42:42")
        } else {
            ("up-to-date", "2016-11-18 11:16:33")
        };
        assert_eq!(
            (
                m.module_update_status.as_str(),
                m.module_last_update.as_str()
            ),
            expect
        );
        assert_eq!(d.state_modules().len(), 1);
    }
    let d = double(Quirks::default(), 10);
    enroll(&d, U1);
    let (s, b) = post(
        &d,
        "states",
        1,
        U1,
        json!({"dbinfo": {"global_status": "up-to-date"}}),
    );
    assert_eq!(
        (s, b.as_str()),
        (
            500,
            r#"{"error" : "Date is not a valid unix timestamp : 0""}"#
        )
    );
    assert!(d.states().is_empty());
}

#[test]
fn eav_stores_only_differences_across_agents() {
    let d = double(Quirks::default(), 10);
    enroll(&d, U1);
    enroll(&d, U2);
    let details = |a: i64, b: i64| json!([{"attr": "onaccess:enabled", "value": a}, {"attr": "scan:archive", "value": b}]);
    post(
        &d,
        "states",
        1,
        U1,
        state_obj(1479467793, "up-to-date", details(1, 1)),
    );
    post(
        &d,
        "states",
        2,
        U2,
        state_obj(1479467793, "up-to-date", details(1, 0)),
    );
    let rows = d.stateav_details();
    // 2 base rows + marker(1) + override(2, scan:archive) + marker(2)
    assert_eq!(rows.len(), 5);
    assert_eq!(
        d.stateavdetails_effective(2),
        vec![
            ("onaccess:enabled".into(), Some("1".into())),
            ("scan:archive".into(), Some("0".into()))
        ]
    );
    assert_eq!(
        d.stateavdetails_effective(1),
        vec![
            ("onaccess:enabled".into(), Some("1".into())),
            ("scan:archive".into(), Some("1".into()))
        ]
    );
    // Agent 2 goes back to the base value: its override row is deleted.
    post(
        &d,
        "states",
        2,
        U2,
        state_obj(1479467793, "up-to-date", details(1, 1)),
    );
    assert_eq!(d.stateav_details().len(), 4);
    assert_eq!(
        d.states()
            .iter()
            .map(|s| s.plugin_armadito_stateavdetails_id)
            .collect::<Vec<_>>(),
        vec![3, 5]
    );
}

#[test]
fn avconfigs_realtime_status() {
    for (quirks, expected) in [
        (Quirks::default(), "non-available"),
        (Quirks::fixed(), "on"),
    ] {
        let d = double(quirks, 10);
        enroll(&d, U1);
        let (s, _) = post(
            &d,
            "avconfigs",
            1,
            U1,
            json!([{"attr": "realtime_status", "value": "on"}, {"attr": "x", "value": true}]),
        );
        assert_eq!(s, 200);
        assert_eq!(d.avconfigs()[0].realtime_status, expected);
        assert_eq!(
            d.avconfig_effective(1),
            vec![
                ("realtime_status".into(), Some("on".into())),
                ("x".into(), Some("1".into()))
            ]
        );
    }
}

fn alert(name: &str, t: i64) -> Value {
    json!({"name": name, "filepath": "/home/malware/X", "action": "cleaned", "module_name": "clamav", "detection_time": t})
}

#[test]
fn alerts_dedup_link_to_scans_and_update_last_alert() {
    let d = double(Quirks::default(), 10);
    enroll(&d, U1);
    let sc = d.create_scanconfig("home", "/home", "", 1);
    let j = d.create_job(1, sc, 0);
    let (s, _) = post(
        &d,
        "alerts",
        1,
        U1,
        json!({"alerts": [alert("A", 1483605770), alert("B", 1483605762)], "job_id": j}),
    );
    assert_eq!(s, 200);
    let a = d.alerts();
    assert_eq!(
        a.iter()
            .map(|a| (a.plugin_armadito_jobs_id, a.plugin_armadito_scans_id))
            .collect::<Vec<_>>(),
        vec![(1, 1), (1, 1)]
    );
    // last_alert = the LAST alert of the array, not the newest.
    assert_eq!(
        d.agent(1).unwrap().last_alert.as_deref(),
        Some("2017-01-05 08:42:42")
    );
    // Re-post: deduplicated, but last_alert still follows the array.
    post(
        &d,
        "alerts",
        1,
        U1,
        json!({"alerts": [alert("B", 1483605762), alert("A", 1483605770)], "job_id": j}),
    );
    assert_eq!(d.alerts().len(), 2);
    assert_eq!(
        d.agent(1).unwrap().last_alert.as_deref(),
        Some("2017-01-05 08:42:50")
    );
    // job_id > 0 without scans row: NULL scan id, 500; earlier alerts stay.
    let (s, b) = post(
        &d,
        "alerts",
        1,
        U1,
        json!({"alerts": [alert("C", 1483605800), alert("D", 1483605801)], "job_id": 999}),
    );
    assert_eq!(
        (s, b.as_str()),
        (
            500,
            r#"{"error" : "executeQuery NewAlert failed. Column 'plugin_armadito_scans_id' cannot be null"}"#
        )
    );
    assert_eq!(d.alerts().len(), 2);
    // Identity checks.
    let (s, b) = post(
        &d,
        "alerts",
        1,
        "4C4C4544-0033-4A10-8051-00000000DEAD",
        json!({"alerts": [alert("E", 1483605800)]}),
    );
    assert_eq!(
        (s, b.as_str()),
        (
            500,
            r#"{"error" : "UUID not found in database. This agent has to be re-enrolled."}"#
        )
    );
    let (s, b) = post(
        &d,
        "alerts",
        42,
        U1,
        json!({"alerts": [alert("E", 1483605800)]}),
    );
    assert_eq!(
        (s, b.as_str()),
        (
            500,
            r#"{"error" : "Unable to get Agent DB fields for agent 42"}"#
        )
    );
    // Empty array: 200 with the PHP notice, nothing else.
    let (s, b) = post(&d, "alerts", 1, U1, json!({"alerts": [], "job_id": 0}));
    assert_eq!(s, 200);
    assert!(
        b.contains("PHP Notice: </span>Undefined variable: alert"),
        "{b}"
    );
}

#[test]
fn alert_quirks_switched_off() {
    let d = double(Quirks::fixed(), 10);
    enroll(&d, U1);
    let sc = d.create_scanconfig("home", "/home", "", 1);
    let j = d.create_job(1, sc, 0);
    let mut a = alert("A", 1483605770);
    a["job_id"] = json!(j);
    assert_eq!(post(&d, "alerts", 1, U1, json!({"alerts": [a]})).0, 200);
    assert_eq!(
        (
            d.alerts()[0].plugin_armadito_jobs_id,
            d.alerts()[0].plugin_armadito_scans_id
        ),
        (1, 1)
    );
    assert_eq!(
        post(
            &d,
            "alerts",
            1,
            U1,
            json!({"alerts": [alert("B", 1)], "job_id": 999})
        )
        .0,
        500,
        "formatDate still applies"
    );
    assert_eq!(
        post(
            &d,
            "alerts",
            1,
            U1,
            json!({"alerts": [alert("B", 1483605771)], "job_id": 999})
        ),
        (200, String::new())
    );
    assert_eq!(d.alerts()[1].plugin_armadito_scans_id, 0);
    assert_eq!(
        post(&d, "alerts", 1, U1, json!({"alerts": [], "job_id": 0})),
        (200, String::new())
    );
}

#[test]
fn enrollment_without_agent_version_echoes_a_notice_first() {
    let d = Double::start_with(DoubleConfig {
        strict: false,
        ..DoubleConfig::default()
    });
    d.create_key(KEY, 5, 60);
    let mut b: Value = serde_json::from_str(&enroll_body(KEY, U1)).unwrap();
    b.as_object_mut().unwrap().remove("agent_version");
    let r = d.post_json("agents", &b.to_string());
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(t.starts_with("<div style=\"position:float-left; background-color:red; z-index:10000\"><span class=\"b\">PHP Notice: </span>Undefined property: stdClass::$agent_version in "), "{t}");
    assert!(
        t.ends_with(r#"</div>{"agent_id": 1,"scheduler_id": 1}"#),
        "{t}"
    );
    assert_eq!(d.agent(1).unwrap().agent_version, None);
}

#[test]
fn jobs_queued_before_enrollment() {
    let d = double(Quirks::default(), 10);
    d.queue_job_on_enroll(1, "/home", "--no-archive", 2);
    assert!(d.jobs().is_empty());
    enroll(&d, U1);
    let jobs = d.jobs();
    assert_eq!(
        (
            jobs.len(),
            jobs[0].job_priority.as_str(),
            jobs[0].plugin_armadito_agents_id
        ),
        (1, "2 - high", 1)
    );
    assert_eq!(d.scanconfigs()[0].scan_options, "--no-archive");
}
