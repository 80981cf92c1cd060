//! Routing and dispatch of the double (§1.1, §1.2, §1.5): trailing-slash
//! 301, `index.php`, method-agnostic branches, empty bodies, headers.

use armadito_tests::double::Double;
use armadito_tests::double::client::{enroll_body, envelope};
use serde_json::json;

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";
const API: &str = "/glpi/plugins/armadito/api";
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn enrolled() -> Double {
    let d = Double::start();
    d.create_key(KEY, 100, 3600);
    let r = d.post_json("agents", &enroll_body(KEY, UUID));
    assert_eq!(r.text(), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    d
}

#[test]
fn slashless_urls_answer_apache_301_and_do_nothing() {
    let d = Double::start();
    d.create_key(KEY, 5, 3600);
    for name in [
        "agents",
        "jobs",
        "scans",
        "states",
        "alerts",
        "avconfigs",
        "schedulers",
    ] {
        let r = d
            .raw(
                "POST",
                &format!("{API}/{name}"),
                &[JSON],
                enroll_body(KEY, UUID).as_bytes(),
            )
            .unwrap();
        assert_eq!(r.status, 301, "{name}");
        let loc = format!("http://{}{API}/{name}/", d.addr());
        assert_eq!(r.header("location"), Some(loc.as_str()));
        assert!(r.text().contains("<title>301 Moved Permanently</title>"));
        assert!(r.header("x-armaditoplugin-version").is_none());
    }
    // The query string survives the redirect (Perl's GET jobs relies on it).
    let r = d
        .raw(
            "GET",
            &format!("{API}/jobs?agent_id=1&antivirus=Armadito&agent_id=1"),
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(
        r.header("location").unwrap(),
        format!(
            "http://{}{API}/jobs/?agent_id=1&antivirus=Armadito&agent_id=1",
            d.addr()
        )
    );
    assert_eq!(
        d.key_use_counter(KEY),
        Some(5),
        "a redirected POST enrolls nothing"
    );
    assert!(d.agents().is_empty());
    assert_eq!(d.contact_counter(), 0);
    assert_eq!(d.violations().len(), 8);
}

#[test]
fn index_php_and_trailing_slash_are_the_same_script() {
    let d = Double::start();
    d.create_key(KEY, 5, 3600);
    let r = d
        .raw(
            "POST",
            &format!("{API}/agents/index.php"),
            &[JSON],
            enroll_body(KEY, UUID).as_bytes(),
        )
        .unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"agent_id": 1,"scheduler_id": 1}"#)
    );
    let r = d
        .raw("GET", &format!("{API}/jobs/index.php?agent_id=1"), &[], b"")
        .unwrap();
    assert_eq!(r.text(), "{ \"jobs\": []}");
    // Apache merges duplicate slashes (the Perl agent's `…/armadito//api/…`).
    let r = d
        .raw(
            "POST",
            "/glpi/plugins/armadito//api/agents/",
            &[JSON],
            enroll_body(KEY, UUID).as_bytes(),
        )
        .unwrap();
    assert_eq!(r.text(), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn unknown_paths_are_404() {
    let d = Double::start();
    for p in [
        "/glpi/plugins/armadito/api/foo/",
        "/glpi/plugins/armadito/api/agents/x.php",
        "/elsewhere",
    ] {
        let r = d.raw("GET", p, &[], b"").unwrap();
        assert_eq!(r.status, 404, "{p}");
        assert!(r.text().contains("Not Found"));
    }
}

#[test]
fn the_method_is_never_checked() {
    let d = Double::start();
    d.create_key(KEY, 5, 3600);
    // PUT with a body is the POST branch.
    let r = d
        .raw(
            "PUT",
            &format!("{API}/agents/"),
            &[JSON],
            enroll_body(KEY, UUID).as_bytes(),
        )
        .unwrap();
    assert_eq!(r.text(), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    // GET with a body posts a state.
    let st = envelope(
        1,
        UUID,
        "State",
        json!({"dbinfo": {"global_update_timestamp": 1479467793, "global_status": "up-to-date"}}),
    );
    let r = d
        .raw("GET", &format!("{API}/states/"), &[JSON], st.as_bytes())
        .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(d.states().len(), 1);
    // jobs: `agent_id` in the query selects the GET branch whatever the
    // method and body.
    let sc = d.create_scanconfig("home", "/home", "", 1);
    d.create_job(1, sc, 0);
    let r = d
        .raw(
            "POST",
            &format!("{API}/jobs/?agent_id=1"),
            &[JSON],
            b"{\"junk\": true}",
        )
        .unwrap();
    assert!(
        r.text().starts_with("{ \"jobs\": [{\"job_id\": 1,"),
        "{}",
        r.text()
    );
    assert_eq!(d.job(1).unwrap().job_status, "downloaded");
    // Without `agent_id` in the query, a body makes it the result branch.
    let res = envelope(
        1,
        UUID,
        "Runjobs",
        json!({"job_id": 1, "code": 0, "message": "ok", "start_time": 10, "end_time": 15}),
    );
    let r = d
        .raw("GET", &format!("{API}/jobs/"), &[JSON], res.as_bytes())
        .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(d.job(1).unwrap().job_status, "successful");
    assert_eq!(
        d.job(1).unwrap().duration.as_deref(),
        Some("0d 00h 00m 05s")
    );
}

#[test]
fn empty_bodies() {
    let d = enrolled();
    let before = d.contact_counter();
    for name in [
        "agents",
        "jobs",
        "scans",
        "states",
        "avconfigs",
        "schedulers",
    ] {
        for body in [&b""[..], b"0"] {
            let r = d
                .raw("POST", &format!("{API}/{name}/"), &[JSON], body)
                .unwrap();
            assert_eq!(r.status, 400, "{name}");
            assert_eq!(
                r.text(),
                r#"{"error" : "Invalid request sent to plugin index"}"#
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.header("x-armaditoplugin-version"), Some("0.10.1"));
            assert_eq!(
                r.header("server-type"),
                None,
                "no session on the empty-body branch"
            );
        }
    }
    // alerts: undefined writeErrorResponse() → 500, empty text/html body.
    for body in [&b""[..], b"0"] {
        let r = d
            .raw("POST", &format!("{API}/alerts/"), &[JSON], body)
            .unwrap();
        assert_eq!((r.status, r.body.len()), (500, 0));
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert_eq!(r.header("x-armaditoplugin-version"), None);
    }
    // A body of whitespace is not empty: it is a JSON syntax error.
    let r = d
        .raw("POST", &format!("{API}/agents/"), &[JSON], b" ")
        .unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"error" : "Json parsing error : Syntax error"}"#)
    );
    assert_eq!(r.header("server-type"), Some("glpi/armadito 0.10.1"));
    assert_eq!(d.contact_counter(), before + 1);
}

#[test]
fn success_headers_and_json_errors() {
    let d = enrolled();
    let r = d.get_jobs(1);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-armaditoplugin-version"), Some("0.10.1"));
    assert_eq!(r.header("server-type"), Some("glpi/armadito 0.10.1"));
    assert!(
        r.header("set-cookie").is_some(),
        "PHP session cookie, to be ignored"
    );

    let r = d
        .raw("POST", &format!("{API}/states/"), &[JSON], b"{\"a\":")
        .unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"error" : "Json parsing error : Syntax error"}"#)
    );
    let r = d
        .raw(
            "POST",
            &format!("{API}/states/"),
            &[JSON],
            b"{\"a\":\"\xff\"}",
        )
        .unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            400,
            r#"{"error" : "Json parsing error : Malformed UTF-8 characters, possibly incorrectly encoded"}"#
        )
    );
    // Everything else is a 500, e.g. an unknown UUID.
    let st = envelope(
        1,
        "4C4C4544-0033-4A10-8051-000000000000",
        "State",
        json!({}),
    );
    let r = d.post_json("states", &st);
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            500,
            r#"{"error" : "UUID not found in database. This agent has to be re-enrolled."}"#
        )
    );
}

#[test]
fn get_avconfigs_and_schedulers_are_400_unless_the_admin_defined_a_config() {
    let d = enrolled();
    for name in ["avconfigs", "schedulers"] {
        let r = d
            .raw("GET", &format!("{API}/{name}/?agent_id=1"), &[], b"")
            .unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, r#"{"error" : "Invalid request sent to plugin index"}"#)
        );
    }
    d.set_server_avconfig(
        1,
        vec![
            ("on-access".into(), json!("enabled")),
            ("scan:archive".into(), json!(1)),
        ],
    );
    d.set_server_schedule(
        1,
        "Cron",
        vec![("scheduler:task:Getjobs:freq".into(), "*/5 * * * *".into())],
    );
    let r = d
        .raw("GET", &format!("{API}/avconfigs/?agent_id=1"), &[], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        r#"[{"attr":"on-access","value":"enabled"},{"attr":"scan:archive","value":1}]"#
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = d
        .raw("GET", &format!("{API}/schedulers/?agent_id=1"), &[], b"")
        .unwrap();
    assert_eq!(
        r.text(),
        r#"{"name":"Cron","confdetails":[{"attr":"scheduler:task:Getjobs:freq","value":"*/5 * * * *"}]}"#
    );
    // Other agents, and the slash-less form, behave like the real plugin.
    let r = d
        .raw("GET", &format!("{API}/avconfigs/?agent_id=2"), &[], b"")
        .unwrap();
    assert_eq!(r.status, 400);
    d.clear_server_config(1);
    let r = d
        .raw("GET", &format!("{API}/schedulers/?agent_id=1"), &[], b"")
        .unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn a_form_content_type_dies_in_glpi_csrf_check() {
    let d = Double::start();
    d.create_key(KEY, 5, 3600);
    let r = d
        .raw(
            "POST",
            &format!("{API}/agents/"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            enroll_body(KEY, UUID).as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text()
            .contains("The action you have requested is not allowed.")
    );
    assert_eq!(d.key_use_counter(KEY), Some(5));
    assert!(d.agents().is_empty());
    assert!(d.violations().iter().any(|v| v.contains("CSRF")));
    // No Content-Type at all still reaches the plugin (but is flagged).
    let r = d
        .raw(
            "POST",
            &format!("{API}/agents/"),
            &[],
            enroll_body(KEY, UUID).as_bytes(),
        )
        .unwrap();
    assert_eq!(r.text(), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    assert!(
        d.violations()
            .iter()
            .any(|v| v.contains("instead of application/json"))
    );
}

#[test]
fn traffic_is_logged_with_both_sides() {
    let d = enrolled();
    d.get_jobs(1);
    let log = d.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].seq, log[0].method.as_str(), log[0].path.as_str()),
        (1, "POST", "/glpi/plugins/armadito/api/agents/")
    );
    assert_eq!(log[0].header("content-type"), Some("application/json"));
    assert!(log[0].body.contains("\"Enrollment\""));
    assert_eq!(
        (log[0].status, log[0].response_body.as_str()),
        (200, r#"{"agent_id": 1,"scheduler_id": 1}"#)
    );
    assert_eq!(log[1].path, "/glpi/plugins/armadito/api/jobs/?agent_id=1");
    assert!(
        log[1]
            .response_headers
            .iter()
            .any(|(k, v)| k == "server-type" && v == "glpi/armadito 0.10.1")
    );
    d.clear_requests();
    assert!(d.requests().is_empty());
}
