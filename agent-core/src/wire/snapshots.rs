//! Snapshot tests: the exact bytes of every request body the agent sends, and their equivalence
//! with the bodies the real plugin's own integration tests post (server-api.md §13, with the
//! differences we chose on purpose spelled out next to each).

use serde_json::{Value, json};

use super::*;

const UUID: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";

fn uuid() -> MachineUuid {
    MachineUuid::parse(UUID).unwrap()
}

fn av() -> AntivirusInfo {
    AntivirusInfo {
        name: "Armadito".into(),
        version: "0.10.2".into(),
        os_info: OsInfo {
            name: "linux".into(),
            libpath: "Linux".into(),
        },
        program_path: String::new(),
    }
}

fn body<T: serde::Serialize>(agent_id: i64, name: TaskName, obj: T) -> String {
    String::from_utf8(
        Envelope::new(agent_id, uuid(), name, av(), obj)
            .to_body()
            .unwrap(),
    )
    .unwrap()
}

fn t(s: i64) -> UnixTime {
    UnixTime::new(s).unwrap()
}

/// Same JSON value, whatever the key order or whitespace.
fn same_json(ours: &str, theirs: &str) {
    let a: Value = serde_json::from_str(ours).unwrap();
    let b: Value = serde_json::from_str(theirs).unwrap();
    assert_eq!(a, b, "\nours:   {ours}\ntheirs: {theirs}");
}

fn envelope_prefix(agent_id: i64) -> String {
    format!(r#"{{"agent_id":{agent_id},"agent_version":"{AGENT_VERSION}","uuid":"{UUID}","task":"#)
}

const AV_JSON: &str = r#""antivirus":{"name":"Armadito","version":"0.10.2","os_info":{"name":"linux","libpath":"Linux"},"program_path":""}"#;

#[test]
fn enrollment_body() {
    let (key, _) = EnrollmentKey::parse("0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ").unwrap();
    let ours = body(0, TaskName::Enrollment, EnrollmentRequest { key });
    assert_eq!(
        ours,
        format!(
            r#"{}{{"name":"Enrollment",{AV_JSON},"obj":{{"key":"0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ"}}}}}}"#,
            envelope_prefix(0)
        )
    );
    // §13.2 posts the same fields (libpath "linux", agent_version of its era, agent_id 2).
    let mut v: Value = serde_json::from_str(&ours).unwrap();
    v["agent_version"] = json!("2.3.18");
    v["agent_id"] = json!(2);
    v["task"]["antivirus"]["os_info"]["libpath"] = json!("linux");
    v["task"]["antivirus"]
        .as_object_mut()
        .unwrap()
        .remove("program_path");
    same_json(
        &v.to_string(),
        r#"{"task": {"obj": { "key": "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ" }, "name":"Enrollment",
            "antivirus": {"name":"Armadito","version":"0.10.2","os_info": {"name":"linux","libpath":"linux"}}},
            "agent_version":"2.3.18","agent_id":2,"uuid":"4C4C4544-0033-4A10-8051-FFFFFFFFFFFF"}"#,
    );
}

#[test]
fn enrollment_reply() {
    assert_eq!(
        parse_enrollment_reply(r#"{"agent_id": 2,"scheduler_id": 2}"#).unwrap(),
        EnrollmentReply {
            agent_id: 2,
            scheduler_id: 2
        }
    );
    let notice = r#"<div style="position:float-left"><span class="b">PHP Notice: </span>Undefined property</div>{"agent_id": 1,"scheduler_id": 1}"#;
    assert_eq!(parse_enrollment_reply(notice).unwrap().agent_id, 1);
    for bad in [
        "",
        "<html></html>",
        r#"{"agent_id": 0,"scheduler_id": 1}"#,
        r#"{"scheduler_id": 1}"#,
        "{\"agent_id\": 2,",
    ] {
        assert!(parse_enrollment_reply(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn job_status_bodies() {
    let ok = body(
        2,
        TaskName::Runjobs,
        JobStatus::success(50, t(1_489_500_000), t(1_489_500_003)),
    );
    assert_eq!(
        ok,
        format!(
            r#"{}{{"name":"Runjobs",{AV_JSON},"obj":{{"code":0,"message":"runJob successful","job_id":50,"start_time":1489500000,"end_time":1489500003}}}}}}"#,
            envelope_prefix(2)
        )
    );
    // The old agent's success body (reference-agent.md §6.3), field for field.
    let v: Value = serde_json::from_str(&ok).unwrap();
    same_json(
        &v["task"]["obj"].to_string(),
        r#"{"code":0,"message":"runJob successful","job_id":50,"start_time":1489500000,"end_time":1489500003}"#,
    );

    let failed = JobStatus::failure(
        51,
        "scan path /nonexistent does not exist\n  (os error 2)",
        t(1_489_500_000),
        t(1_489_500_001),
    );
    assert_eq!(failed.code, 1);
    assert_eq!(
        failed.message,
        "c2NhbiBwYXRoIC9ub25leGlzdGVudCBkb2VzIG5vdCBleGlzdCAob3MgZXJyb3IgMik="
    );
    let long = JobStatus::failure(1, &"é".repeat(400), t(1_489_500_000), t(1_489_500_000));
    assert!(
        long.message.len() <= 252 && long.message.len().is_multiple_of(4),
        "{}",
        long.message.len()
    );
}

#[test]
fn scan_body() {
    let r = ScanReport::new(1, 100, 752, 177, 0, 0, t(1_483_605_762), t(1_483_605_763));
    assert_eq!(
        body(2, TaskName::Scan, r),
        format!(
            r#"{}{{"name":"Scan",{AV_JSON},"obj":{{"job_id":1,"progress":100,"scanned_count":752,"malware_count":177,"suspicious_count":0,"cleaned_count":0,"duration":"PT0H0M1S","start_time":"@1483605762","end_time":"2017-01-05 08:42:43"}}}}}}"#,
            envelope_prefix(2)
        )
    );
    // §13.7 sends the same counters; its start/end are placeholders and its duration the long ISO form.
    let long_scan = ScanReport::new(
        1,
        42,
        1,
        0,
        0,
        0,
        t(1_483_605_762),
        t(1_483_605_762 + 3 * 3600 + 61),
    );
    assert_eq!(long_scan.duration, "PT3H1M1S");
}

#[test]
fn state_body() {
    let state = StateReport {
        dbinfo: DbInfo {
            global_status: "up-to-date".into(),
            global_update_timestamp: t(1_479_467_793),
            service_status: "running".into(),
            modules: vec![
                ModuleState {
                    name: "clamav".into(),
                    mod_status: "up-to-date".into(),
                    mod_update_timestamp: 1_479_467_793,
                },
                ModuleState {
                    name: "moduleH1".into(),
                    mod_status: "up-to-date".into(),
                    mod_update_timestamp: 1_409_556_600,
                },
            ],
        },
        avdetails: vec![
            AttrValue::new("onaccess:enabled", 0),
            AttrValue::new("onaccess:scan_archive", 1),
            AttrValue::new("modules:moduleX:param1", "C"),
            AttrValue::new("modules:moduleY:param1", "OK"),
        ],
    };
    let ours = body(2, TaskName::State, state);
    assert_eq!(
        ours,
        format!(
            r#"{}{{"name":"State",{AV_JSON},"obj":{{"dbinfo":{{"global_status":"up-to-date","global_update_timestamp":1479467793,"service_status":"running","modules":[{{"name":"clamav","mod_status":"up-to-date","mod_update_timestamp":1479467793}},{{"name":"moduleH1","mod_status":"up-to-date","mod_update_timestamp":1409556600}}]}},"avdetails":[{{"attr":"onaccess:enabled","value":0}},{{"attr":"onaccess:scan_archive","value":1}},{{"attr":"modules:moduleX:param1","value":"C"}},{{"attr":"modules:moduleY:param1","value":"OK"}}]}}}}}}"#,
            envelope_prefix(2)
        )
    );
    // §13.9 minus what the server ignores (event_type, bases) plus service_status, which we send.
    let v: Value = serde_json::from_str(&ours).unwrap();
    same_json(
        &v["task"]["obj"].to_string(),
        r#"{ "dbinfo": {"global_update_timestamp":1479467793,"service_status":"running",
             "modules": [{"name":"clamav","mod_update_timestamp":1479467793,"mod_status":"up-to-date"},
                         {"mod_status":"up-to-date","mod_update_timestamp":1409556600,"name":"moduleH1"}],
             "global_status":"up-to-date"},
           "avdetails": [{ "attr": "onaccess:enabled", "value": 0 }, { "attr": "onaccess:scan_archive", "value": 1 },
                         { "attr": "modules:moduleX:param1", "value": "C" }, { "attr": "modules:moduleY:param1", "value": "OK" }]}"#,
    );
}

#[test]
fn alerts_body() {
    let alert = |time| WireAlert {
        name: "Pdf.Dropper.Agent-1507034".into(),
        filepath: "/home/malware/X".into(),
        action: "cleaned".into(),
        detection_time: t(time),
        module_name: "clamav".into(),
        info: "on-demand".into(),
    };
    let with_job = AlertsReport {
        alerts: vec![alert(1_483_605_762)],
        job_id: Some(1),
    };
    assert_eq!(
        body(2, TaskName::Alerts, with_job),
        format!(
            r#"{}{{"name":"Alerts",{AV_JSON},"obj":{{"alerts":[{{"name":"Pdf.Dropper.Agent-1507034","filepath":"/home/malware/X","action":"cleaned","detection_time":1483605762,"module_name":"clamav","info":"on-demand"}}],"job_id":1}}}}}}"#,
            envelope_prefix(2)
        )
    );
    // §13.6 without a top-level job_id: we omit it too (the server then links no scan).
    let free = AlertsReport {
        alerts: vec![alert(1_483_605_762), alert(1_483_605_770)],
        job_id: None,
    };
    let v: Value = serde_json::from_str(&body(2, TaskName::Alerts, free)).unwrap();
    assert!(v["task"]["obj"].get("job_id").is_none());
    assert_eq!(
        v["task"]["obj"]["alerts"][1]["detection_time"],
        json!(1_483_605_770)
    );
}

fn alert_at(name: &str, time: i64) -> WireAlert {
    WireAlert {
        name: name.into(),
        filepath: "/home/malware/X".into(),
        action: "cleaned".into(),
        detection_time: t(time),
        module_name: "clamav".into(),
        info: "on-demand".into(),
    }
}

/// Coalesced alerts (issue 13): stored one-alert bodies merged into one POST are byte for byte
/// the body the agent builds for all those alerts at once, in message order.
#[test]
fn coalesced_alerts_body() {
    let one = |name: &str, time, job_id| {
        body(
            2,
            TaskName::Alerts,
            AlertsReport {
                alerts: vec![alert_at(name, time)],
                job_id,
            },
        )
    };
    let a = one("Pdf.Dropper.Agent-1507034", 1_483_605_762, Some(1));
    let b = one("Win.Trojan.Elpapok-1", 1_483_605_777, Some(1));
    let parts: Vec<AlertsBody<'_>> = [&a, &b]
        .iter()
        .map(|s| AlertsBody::parse(s.as_bytes()).unwrap())
        .collect();
    let merged = String::from_utf8(merge_alerts(&parts).unwrap()).unwrap();
    assert_eq!(
        merged,
        format!(
            r#"{}{{"name":"Alerts",{AV_JSON},"obj":{{"alerts":[{{"name":"Pdf.Dropper.Agent-1507034","filepath":"/home/malware/X","action":"cleaned","detection_time":1483605762,"module_name":"clamav","info":"on-demand"}},{{"name":"Win.Trojan.Elpapok-1","filepath":"/home/malware/X","action":"cleaned","detection_time":1483605777,"module_name":"clamav","info":"on-demand"}}],"job_id":1}}}}}}"#,
            envelope_prefix(2)
        )
    );
    assert_eq!(
        merged,
        body(
            2,
            TaskName::Alerts,
            AlertsReport {
                alerts: vec![
                    alert_at("Pdf.Dropper.Agent-1507034", 1_483_605_762),
                    alert_at("Win.Trojan.Elpapok-1", 1_483_605_777)
                ],
                job_id: Some(1),
            }
        )
    );
    // Without a job id there is still none once merged (the server would link no scan).
    let c = one("X", 1_483_605_762, None);
    let d = one("Y", 1_483_605_770, None);
    let free = merge_alerts(&[
        AlertsBody::parse(c.as_bytes()).unwrap(),
        AlertsBody::parse(d.as_bytes()).unwrap(),
    ])
    .unwrap();
    let v: Value = serde_json::from_slice(&free).unwrap();
    assert!(v["task"]["obj"].get("job_id").is_none(), "{v}");
    assert_eq!(v["task"]["obj"]["alerts"].as_array().unwrap().len(), 2);
}

/// Only bodies sharing everything but `alerts` share a POST; anything not exactly the agent's
/// alerts shape is never merged (it is sent alone, as stored).
#[test]
fn coalescing_refuses_what_the_server_would_read_differently() {
    let with = |agent_id, job_id| {
        body(
            agent_id,
            TaskName::Alerts,
            AlertsReport {
                alerts: vec![alert_at("X", 1_483_605_762)],
                job_id,
            },
        )
    };
    let base = with(2, Some(1));
    let key = |s: &str| AlertsBody::parse(s.as_bytes()).unwrap().envelope_key();
    assert_eq!(key(&base), key(&with(2, Some(1))));
    for other in [with(2, Some(2)), with(2, None), with(3, Some(1))] {
        assert_ne!(key(&base), key(&other), "{other}");
        let err = merge_alerts(&[
            AlertsBody::parse(base.as_bytes()).unwrap(),
            AlertsBody::parse(other.as_bytes()).unwrap(),
        ]);
        assert!(err.is_err(), "{other}");
    }
    assert!(
        merge_alerts(&[]).is_err(),
        "an empty alerts array is never sent"
    );
    // PHP's isset() reads `"job_id": null` as absent: the same envelope.
    assert_eq!(
        key(&with(2, None)),
        key(&base.replace(r#""job_id":1"#, r#""job_id":null"#))
    );
    let state = body(2, TaskName::State, json!({"dbinfo": {}, "avdetails": []}));
    for not_mergeable in [
        state.as_str(),
        &base.replace(r#""alerts":["#, r#""alerts":[],"x":["#),
        &base.replace(r#","job_id":1"#, r#","job_id":1,"extra":true"#),
        r#"{"agent_id":2,"task":{"obj":{"alerts":[{}]}}}"#,
        "not json",
        "",
    ] {
        assert!(
            AlertsBody::parse(not_mergeable.as_bytes()).is_none(),
            "{not_mergeable}"
        );
    }
}

#[test]
fn avconfig_body_is_an_array() {
    let cfg = vec![
        AttrValue::new("on-access", "enabled"),
        AttrValue::new("scan:archive", "1"),
        AttrValue::new("scan:jar", "0"),
        AttrValue::new("module:h1", "disabled"),
        AttrValue::new("module:clamav", "enabled"),
        AttrValue::new("module:pdf", "disabled"),
    ];
    let ours = body(2, TaskName::AVConfig, cfg);
    let v: Value = serde_json::from_str(&ours).unwrap();
    same_json(
        &v["task"]["obj"].to_string(),
        r#"[{ "attr": "on-access", "value": "enabled" }, { "attr": "scan:archive", "value": "1" },
            { "attr": "scan:jar", "value": "0" }, { "attr": "module:h1", "value": "disabled" },
            { "attr": "module:clamav", "value": "enabled" }, { "attr": "module:pdf", "value": "disabled" }]"#,
    );
    assert!(ours.ends_with(r#""obj":[{"attr":"on-access","value":"enabled"},{"attr":"scan:archive","value":"1"},{"attr":"scan:jar","value":"0"},{"attr":"module:h1","value":"disabled"},{"attr":"module:clamav","value":"enabled"},{"attr":"module:pdf","value":"disabled"}]}}"#));
}

#[test]
fn scheduler_body() {
    let s = SchedulerReport {
        name: "Cron".into(),
        confdetails: vec![
            AttrValue::new("scheduler:user", "root"),
            AttrValue::new("scheduler:task:Getjobs:freq", "* * * * *"),
        ],
    };
    assert!(body(2, TaskName::Scheduler, s).ends_with(
        r#""obj":{"name":"Cron","confdetails":[{"attr":"scheduler:user","value":"root"},{"attr":"scheduler:task:Getjobs:freq","value":"* * * * *"}]}}}"#
    ));
}

#[test]
fn server_defined_config_and_schedule() {
    let cfg = parse_server_config(
        r#"[{"attr":"ScanArchive","value":"yes"},{"attr":"MaxThreads","value":4}]"#,
    )
    .unwrap();
    assert_eq!(
        cfg,
        vec![
            AttrValue::new("ScanArchive", "yes"),
            AttrValue::new("MaxThreads", 4)
        ]
    );
    assert!(parse_server_config(r#"{"error" : "Invalid request sent to plugin index"}"#).is_err());
    let (name, details) =
        parse_server_schedule(r#"{"name":"Cron","confdetails":[{"attr":"scheduler:task:State:freq","value":"0 * * * *"}]}"#).unwrap();
    assert_eq!(name, "Cron");
    assert_eq!(
        details,
        vec![AttrValue::new("scheduler:task:State:freq", "0 * * * *")]
    );
}
