//! The admin JSON side under `/admin/` and the `glpi-double` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use armadito_tests::double::Double;
use armadito_tests::double::client::{enroll_body, request};
use serde_json::{Value, json};

const UUID: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";

fn admin(d: &Double, method: &str, path: &str, body: Value) -> (u16, Value) {
    let b = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let r = d
        .raw(method, path, &[("Content-Type", "application/json")], &b)
        .unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

#[test]
fn admin_http_side() {
    let d = Double::start();
    let (s, k) = admin(&d, "POST", "/admin/keys", json!({"uses": 2}));
    assert_eq!(s, 200);
    let key = k["value"].as_str().unwrap().to_string();
    assert!(
        regex::Regex::new(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")
            .unwrap()
            .is_match(&key),
        "{key}"
    );
    assert_eq!(
        d.post_json("agents", &enroll_body(&key, UUID)).text(),
        r#"{"agent_id": 1,"scheduler_id": 1}"#
    );

    let (s, v) = admin(
        &d,
        "POST",
        "/admin/scanconfigs",
        json!({"name": "home", "path": "/home", "antivirus_id": 1}),
    );
    assert_eq!((s, v["id"].as_i64()), (200, Some(1)));
    let (s, _) = admin(
        &d,
        "POST",
        "/admin/scanconfigs",
        json!({"name": "home", "path": "/x", "antivirus_id": 1}),
    );
    assert_eq!(s, 409);
    let (s, v) = admin(
        &d,
        "POST",
        "/admin/jobs",
        json!({"agent_id": 1, "scanconfig_id": 1, "priority": 3}),
    );
    assert_eq!((s, v["id"].as_i64()), (200, Some(1)));
    let (s, v) = admin(
        &d,
        "POST",
        "/admin/jobs",
        json!({"agent_id": 1, "path": "/tmp", "options": "-r", "priority": 1}),
    );
    assert_eq!((s, v["id"].as_i64()), (200, Some(2)));
    let (s, v) = admin(
        &d,
        "POST",
        "/admin/jobs",
        json!({"agent_id": 5, "path": "/tmp"}),
    );
    assert_eq!((s, v["pending"].as_bool()), (200, Some(true)));
    let (s, _) = admin(
        &d,
        "POST",
        "/admin/jobs",
        json!({"agent_id": 9, "scanconfig_id": 1}),
    );
    assert_eq!(s, 404);
    let (s, _) = admin(&d, "POST", "/admin/jobs/2/cancel", Value::Null);
    assert_eq!(s, 200);
    let (_, jobs) = admin(&d, "GET", "/admin/jobs", Value::Null);
    let st: Vec<_> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_priority"].clone(), j["job_status"].clone()))
        .collect();
    assert_eq!(
        st,
        vec![
            (json!("3 - urgent"), json!("queued")),
            (json!("1 - medium"), json!("cancelled"))
        ]
    );

    let (s, _) = admin(
        &d,
        "POST",
        "/admin/faults",
        json!({"kind": "html500", "count": 1}),
    );
    assert_eq!(s, 200);
    let (s, _) = admin(&d, "POST", "/admin/faults", json!({"kind": "nope"}));
    assert_eq!(s, 400);
    assert_eq!(d.get_jobs(1).status, 500);
    assert_eq!(d.get_jobs(1).status, 200);

    let (_, reqs) = admin(&d, "GET", "/admin/requests", Value::Null);
    assert_eq!(reqs.as_array().unwrap().len(), 3);
    admin(&d, "DELETE", "/admin/requests", Value::Null);
    assert!(d.requests().is_empty());

    let (_, agents) = admin(&d, "GET", "/admin/agents", Value::Null);
    assert_eq!(agents[0]["uuid"], json!(UUID));
    for p in [
        "/admin/antiviruses",
        "/admin/schedulers",
        "/admin/scans",
        "/admin/alerts",
        "/admin/states",
        "/admin/avconfigs",
        "/admin/violations",
        "/admin/keys",
        "/admin/",
    ] {
        assert_eq!(admin(&d, "GET", p, Value::Null).0, 200, "{p}");
    }
    let (s, _) = admin(&d, "POST", "/admin/agents/1/purge", Value::Null);
    assert_eq!(s, 200);
    assert!(d.agents().is_empty());
    assert!(d.requests().is_empty(), "admin traffic is not logged");
}

#[test]
fn binary_serves_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_glpi-double"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--key",
            "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ",
            "--uses",
            "3",
            "--job",
            "1:/home:--no-archive:2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("glpi-double listening on ")
        .expect(&line)
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/glpi/plugins/armadito"),
        "{url}"
    );
    let addr: SocketAddr = url["http://".len()..url.len() - "/glpi/plugins/armadito".len()]
        .parse()
        .unwrap();

    let path = "/glpi/plugins/armadito/api/agents/";
    let body = enroll_body("0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ", UUID);
    let r = request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.text(), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    let r = request(
        addr,
        "GET",
        "/glpi/plugins/armadito/api/jobs/?agent_id=1",
        &[],
        b"",
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["jobs"][0]["job_priority"], json!("2"));
    assert_eq!(v["jobs"][0]["obj"]["scan_path"], json!("L2hvbWU="));
    assert_eq!(
        v["jobs"][0]["obj"]["scan_options"],
        json!("LS1uby1hcmNoaXZl")
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 requests served, 0 violations"), "{err}");
    assert!(
        request(addr, "GET", "/admin/", &[], b"").is_err(),
        "stopped listening"
    );
}

#[test]
fn dropping_the_double_stops_the_server() {
    let d = Double::start();
    let addr = d.addr();
    assert_eq!(d.get_jobs(1).status, 200);
    drop(d);
    assert!(
        request(
            addr,
            "GET",
            "/glpi/plugins/armadito/api/jobs/?agent_id=1",
            &[],
            b""
        )
        .is_err()
    );
}
