//! The validation primitives of §1.6, observed over HTTP through the
//! endpoints that use them.

use armadito_tests::double::client::{enroll_body, envelope};
use armadito_tests::double::{Double, DoubleConfig};
use serde_json::{Value, json};

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";
const API: &str = "/glpi/plugins/armadito/api";

fn enrolled() -> Double {
    let d = Double::start_with(DoubleConfig {
        strict: false,
        ..DoubleConfig::default()
    });
    d.create_key(KEY, 100, 3600);
    assert_eq!(d.post_json("agents", &enroll_body(KEY, UUID)).status, 200);
    d
}

fn get_jobs_raw(d: &Double, q: &str) -> (u16, String) {
    let r = d.raw("GET", &format!("{API}/jobs/?{q}"), &[], b"").unwrap();
    (r.status, r.text())
}

#[test]
fn validate_int_on_the_get_jobs_query() {
    let d = enrolled();
    let sc = d.create_scanconfig("home", "/home", "", 1);
    // Accepted forms of agent 2 (which has no jobs).
    for q in ["agent_id=%202", "agent_id=+2", "agent_id=2"] {
        assert_eq!(get_jobs_raw(&d, q), (200, "{ \"jobs\": []}".into()), "{q}");
    }
    // Falsy: empty value ⇒ false ⇒ no rows.
    d.create_job(1, sc, 0);
    assert_eq!(
        get_jobs_raw(&d, "agent_id="),
        (200, "{ \"jobs\": []}".into())
    );
    assert_eq!(
        get_jobs_raw(&d, "agent_id"),
        (200, "{ \"jobs\": []}".into())
    );
    // Rejected forms: 500 with the raw (here invalid-JSON) message.
    for (q, shown) in [
        ("agent_id=02", "02"),
        ("agent_id=2.5", "2.5"),
        ("agent_id=abc", "abc"),
        ("agent_id=0x1A", "0x1A"),
    ] {
        assert_eq!(
            get_jobs_raw(&d, q),
            (
                500,
                format!("{{\"error\" : \"Invalid int : \"{shown}\"\"}}")
            ),
            "{q}"
        );
    }
    // An array: "Array" plus PHP's conversion notice echoed first.
    let (status, body) = get_jobs_raw(&d, "agent_id[]=1");
    assert_eq!(status, 500);
    assert!(body.starts_with("<div style=\"position:float-left; background-color:red; z-index:10000\"><span class=\"b\">PHP Notice: </span>Array to string conversion"), "{body}");
    assert!(
        body.ends_with(r#"{"error" : "Invalid int : "Array""}"#),
        "{body}"
    );
    // None of the failures consumed the job.
    assert_eq!(d.job(1).unwrap().job_status, "queued");
    assert_eq!(get_jobs_raw(&d, "agent_id=1").0, 200);
    assert_eq!(d.job(1).unwrap().job_status, "downloaded");
}

fn enroll_with(d: &Double, patch: impl FnOnce(&mut Value)) -> (u16, String) {
    let mut v: Value = serde_json::from_str(&enroll_body(KEY, UUID)).unwrap();
    patch(&mut v);
    let r = d.post_json("agents", &v.to_string());
    (r.status, r.text())
}

#[test]
fn validate_int_on_enrollment_agent_id_runs_after_the_key_is_consumed() {
    let d = Double::start_with(DoubleConfig {
        strict: false,
        ..DoubleConfig::default()
    });
    d.create_key(KEY, 10, 3600);
    for (v, ok) in [
        (json!(true), true),
        (json!(2.0), true),
        (json!("7"), true),
        (json!(null), true),
        (json!(2.5), false),
        (json!("02"), false),
    ] {
        let (status, body) = enroll_with(&d, |b| b["agent_id"] = v.clone());
        if ok {
            assert_eq!(
                (status, body.as_str()),
                (200, r#"{"agent_id": 1,"scheduler_id": 1}"#),
                "{v}"
            );
        } else {
            let shown = if v.is_string() {
                v.as_str().unwrap().to_string()
            } else {
                v.to_string()
            };
            assert_eq!(
                (status, body),
                (
                    500,
                    format!("{{\"error\" : \"Invalid int : \"{shown}\"\"}}")
                ),
                "{v}"
            );
        }
    }
    assert_eq!(
        d.key_use_counter(KEY),
        Some(4),
        "every request past step 5 consumed a use"
    );
}

#[test]
fn validate_uuid_and_key() {
    let d = Double::start_with(DoubleConfig {
        strict: false,
        ..DoubleConfig::default()
    });
    d.create_key(KEY, 10, 3600);
    // Lowercase UUID: 500, after the key use was consumed.
    let (s, b) = enroll_with(&d, |v| v["uuid"] = json!(UUID.to_lowercase()));
    assert_eq!(
        (s, b),
        (
            500,
            format!(
                "{{\"error\" : \"Invalid UUID : \"{}\"\"}}",
                UUID.to_lowercase()
            )
        )
    );
    assert_eq!(d.key_use_counter(KEY), Some(9));
    // Trailing newline passes the PCRE `$` and creates another agent.
    let (s, b) = enroll_with(&d, |v| v["uuid"] = json!(format!("{UUID}\n")));
    assert_eq!(
        (s, b.as_str()),
        (200, r#"{"agent_id": 1,"scheduler_id": 1}"#)
    );
    let (s, b) = enroll_with(&d, |_| {});
    assert_eq!(
        (s, b.as_str()),
        (200, r#"{"agent_id": 2,"scheduler_id": 2}"#)
    );
    // Missing UUID: falsy, accepted, agent with uuid ''.
    let (s, b) = enroll_with(&d, |v| {
        v.as_object_mut().unwrap().remove("uuid");
    });
    assert_eq!(
        (s, b.as_str()),
        (200, r#"{"agent_id": 3,"scheduler_id": 3}"#)
    );
    assert_eq!(d.agent(3).unwrap().uuid, "");
    // Keys: lowercase is a format error and consumes nothing.
    let before = d.key_use_counter(KEY);
    let (s, b) = enroll_with(&d, |v| v["task"]["obj"]["key"] = json!(KEY.to_lowercase()));
    assert_eq!(
        (s, b),
        (
            500,
            format!(
                "{{\"error\" : \"Invalid Key format : \"{}\"\"}}",
                KEY.to_lowercase()
            )
        )
    );
    let (s, b) = enroll_with(&d, |v| v["task"]["obj"] = json!({}));
    assert_eq!(
        (s, b.as_str()),
        (500, r#"{"error" : "Enrollment key not found in database"}"#)
    );
    let (s, b) = enroll_with(&d, |v| {
        v["task"]["obj"]["key"] = json!("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    });
    assert_eq!(
        (s, b.as_str()),
        (500, r#"{"error" : "Enrollment key not found in database"}"#)
    );
    assert_eq!(d.key_use_counter(KEY), before);
}

fn alert_with(d: &Double, detection_time: Value) -> (u16, String) {
    let body = envelope(
        1,
        UUID,
        "Alerts",
        json!({"alerts": [{"name": "X", "filepath": "/x", "detection_time": detection_time}], "job_id": 0}),
    );
    let r = d.post_json("alerts", &body);
    (r.status, r.text())
}

#[test]
fn format_date_accepts_only_ten_digits() {
    let d = enrolled();
    assert_eq!(alert_with(&d, json!(1483605762)), (200, String::new()));
    assert_eq!(alert_with(&d, json!("1483605763")), (200, String::new()));
    assert_eq!(alert_with(&d, json!(["1483605764"])), (200, String::new()));
    let times: Vec<_> = d.alerts().into_iter().map(|a| a.detection_time).collect();
    assert_eq!(
        times,
        vec![
            "2017-01-05 08:42:42",
            "2017-01-05 08:42:43",
            "2017-01-05 08:42:44"
        ]
    );
    for (v, shown) in [
        (json!(0), "0"),
        (json!(999999999), "999999999"),
        (json!(14836057620_i64), "14836057620"),
        (json!("2017-01-05T08:42:42Z"), "2017-01-05T08:42:42Z"),
        (json!(1483605762.5), "1483605762.5"),
    ] {
        assert_eq!(
            alert_with(&d, v.clone()),
            (
                500,
                format!("{{\"error\" : \"Date is not a valid unix timestamp : {shown}\"\"}}")
            ),
            "{v}"
        );
    }
    // Missing: the default 0 is itself rejected.
    let body = envelope(
        1,
        UUID,
        "Alerts",
        json!({"alerts": [{"name": "X", "filepath": "/y"}]}),
    );
    assert_eq!(
        d.post_json("alerts", &body).text(),
        r#"{"error" : "Date is not a valid unix timestamp : 0""}"#
    );
}

fn scan_with(d: &Double, obj: Value) -> (u16, String) {
    let r = d.post_json("scans", &envelope(1, UUID, "Scan", obj));
    (r.status, r.text())
}

#[test]
fn format_duration_and_set_value_or_default_on_scans() {
    let d = enrolled();
    let sc = d.create_scanconfig("home", "/home", "", 1);
    let job = d.create_job(1, sc, 0);
    let dur = |d: &Double| d.scans()[0].duration.clone().unwrap();
    for (input, stored) in [
        ("00:00:05", "0d 00h 00m 05s"),
        ("PT5S", "0d 00h 00m 05s"),
        ("PT1H2M3S", "0d 01h 02m 03s"),
        ("PT90S", "0d 00h 00m 90s"),
        ("P0Y0M0DT00H00M01S", "0d 00h 00m 01s"),
        ("P1Y2M3D", "3d 00h 00m 00s"),
    ] {
        assert_eq!(
            scan_with(
                &d,
                json!({"job_id": job, "duration": input, "progress": 100})
            ),
            (200, String::new())
        );
        assert_eq!(dur(&d), stored, "{input}");
    }
    for bad in ["PT0H1.5M30S", "0:00:00", "5", "pt5s", "P"] {
        assert_eq!(
            scan_with(&d, json!({"job_id": job, "duration": bad})),
            (
                500,
                format!(
                    "{{\"error\" : \"DateInterval::__construct(): Unknown or bad format ({bad})\"}}"
                )
            ),
            "{bad}"
        );
    }
    // Absent duration: the default "0:00:00" is invalid too.
    assert_eq!(
        scan_with(&d, json!({"job_id": job, "progress": 50})),
        (
            500,
            r#"{"error" : "DateInterval::__construct(): Unknown or bad format (0:00:00)"}"#.into()
        )
    );
    // [0] unwrapping of single-element arrays; absent counts become -1.
    assert_eq!(
        scan_with(
            &d,
            json!({"job_id": job, "duration": ["PT3S"], "scanned_count": ["131"], "malware_count": [2]})
        ),
        (200, String::new())
    );
    let s = &d.scans()[0];
    assert_eq!(
        (
            s.scanned_count,
            s.malware_count,
            s.suspicious_count,
            s.progress
        ),
        (Some(131), Some(2), Some(-1), Some(-1))
    );
    assert_eq!(s.duration.as_deref(), Some("0d 00h 00m 03s"));
    assert_eq!(
        (s.start_time.as_deref(), s.end_time.as_deref()),
        (Some("1970-01-01 00:00:00"), Some("1970-01-01 00:00:00"))
    );
    // start_time via strtotime (server TZ UTC), end_time stored raw.
    assert_eq!(
        scan_with(
            &d,
            json!({"job_id": job, "duration": "PT3S", "start_time": "@1483605762", "end_time": "2017-01-05 08:42:45"})
        ),
        (200, String::new())
    );
    let s = &d.scans()[0];
    assert_eq!(
        (s.start_time.as_deref(), s.end_time.as_deref()),
        (Some("2017-01-05 08:42:42"), Some("2017-01-05 08:42:45"))
    );
    assert_eq!(
        scan_with(
            &d,
            json!({"job_id": job, "duration": "PT3S", "start_time": 1483605762, "end_time": "2017-01-05T08:42:45Z"})
        ),
        (200, String::new())
    );
    let s = &d.scans()[0];
    assert_eq!(
        (s.start_time.as_deref(), s.end_time.as_deref()),
        (Some("1970-01-01 00:00:00"), Some("2017-01-05 08:42:45")),
        "a bare number is not strtotime()-able; …T…Z is truncated by MySQL"
    );
}
