//! Fault injection: every kind answers as documented and, except `Delay`,
//! leaves the server state untouched.

use std::time::{Duration, Instant};

use armadito_tests::double::client::enroll_body;
use armadito_tests::double::{Double, Fault};

const KEY: &str = "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ";
const UUID: &str = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF";
const AGENTS: &str = "/glpi/plugins/armadito/api/agents/";

fn setup() -> Double {
    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    d
}

fn enroll(d: &Double) -> std::io::Result<armadito_tests::double::client::RawResponse> {
    d.raw(
        "POST",
        AGENTS,
        &[("Content-Type", "application/json")],
        enroll_body(KEY, UUID).as_bytes(),
    )
}

#[test]
fn answering_faults_do_not_process_the_request() {
    let d = setup();
    let cases: Vec<(Fault, u16, &str, &str)> = vec![
        (
            Fault::Status500Json,
            500,
            "application/json",
            r#"{"error" : "Error getTableId : MySQL server has gone away"}"#,
        ),
        (
            Fault::Status400Json,
            400,
            "application/json",
            r#"{"error" : "Json parsing error : Syntax error"}"#,
        ),
        (Fault::Status500InvalidJson, 500, "application/json", ""),
        (
            Fault::Status503RetryAfter(7),
            503,
            "text/html",
            "Service Unavailable",
        ),
        (
            Fault::Html200,
            200,
            "text/html",
            "Service is down for maintenance",
        ),
        (Fault::Html500, 500, "text/html", "Internal Server Error"),
    ];
    for (fault, status, ctype, text) in cases {
        d.inject(fault, 1);
        let r = enroll(&d).unwrap();
        assert_eq!(r.status, status, "{fault:?}");
        assert!(
            r.header("content-type").unwrap().starts_with(ctype),
            "{fault:?}"
        );
        assert!(r.text().contains(text), "{fault:?}: {}", r.text());
        match fault {
            Fault::Status503RetryAfter(_) => assert_eq!(r.header("retry-after"), Some("7")),
            Fault::Status500InvalidJson => {
                assert!(r.text().starts_with("{\"error\" : \""));
                assert!(r.json().is_none(), "must be invalid JSON: {}", r.text());
            }
            Fault::Status500Json | Fault::Status400Json => {
                assert!(r.json().is_some());
                assert_eq!(r.header("x-armaditoplugin-version"), Some("0.10.1"));
            }
            _ => {}
        }
        assert!(d.agents().is_empty(), "{fault:?} must not enroll");
        assert_eq!(
            d.key_use_counter(KEY),
            Some(10),
            "{fault:?} must not consume a key use"
        );
    }
    // Queue exhausted: the next request is processed.
    assert_eq!(
        enroll(&d).unwrap().text(),
        r#"{"agent_id": 1,"scheduler_id": 1}"#
    );
    let log = d.requests();
    assert_eq!(log.len(), 7);
    assert_eq!(log[3].fault.as_deref(), Some("Status503RetryAfter(7)"));
    assert_eq!(log[6].fault, None);
}

#[test]
fn drop_connection_closes_without_an_answer() {
    let d = setup();
    d.inject(Fault::DropConnection, 2);
    for _ in 0..2 {
        let e = enroll(&d).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    assert_eq!(d.key_use_counter(KEY), Some(10));
    assert!(d.agents().is_empty());
    assert_eq!(enroll(&d).unwrap().status, 200);
    let log = d.requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![0, 0, 200]
    );
    assert_eq!(log[0].fault.as_deref(), Some("DropConnection"));
}

#[test]
fn faults_queue_in_order_and_skip_admin_routes() {
    let d = setup();
    d.inject(Fault::Status500Json, 1);
    d.inject(Fault::Html200, 2);
    assert_eq!(d.pending_faults(), 3);
    // Admin routes neither consume nor suffer faults.
    let r = d.raw("GET", "/admin/agents", &[], b"").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(d.pending_faults(), 3);
    // The slash-less 301 is Apache's, not the plugin's: no fault consumed.
    let r = d
        .raw(
            "GET",
            "/glpi/plugins/armadito/api/jobs?agent_id=1",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(d.pending_faults(), 3);
    let statuses: Vec<u16> = (0..4).map(|_| d.get_jobs(1).status).collect();
    assert_eq!(statuses, vec![500, 200, 200, 200]);
    let bodies: Vec<bool> = d
        .requests()
        .iter()
        .skip(1)
        .map(|r| r.response_body.contains("maintenance"))
        .collect();
    assert_eq!(bodies, vec![false, true, true, false]);
}

#[test]
fn delay_fault_waits_then_processes() {
    let d = setup();
    d.inject(Fault::Delay(Duration::from_millis(300)), 1);
    let t = Instant::now();
    let r = enroll(&d).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.text(), r#"{"agent_id": 1,"scheduler_id": 1}"#);
    assert_eq!(d.key_use_counter(KEY), Some(9));
    // A client that gives up does not cancel the processing.
    d.inject(Fault::Delay(Duration::from_millis(300)), 1);
    let addr = d.addr();
    let body = enroll_body(KEY, "4C4C4544-0033-4A10-8051-AAAAAAAAAAAA");
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "POST {AGENTS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    } // closed here, before the answer
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(d.agents().len(), 2, "processed although the client left");
}

#[test]
fn global_delay_delays_every_answer_after_processing() {
    let d = setup();
    d.set_delay(Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(d.get_jobs(1).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    // Processing happens before the delay: state is visible while waiting.
    let addr = d.addr();
    let h = std::thread::spawn(move || {
        armadito_tests::double::client::request(
            addr,
            "POST",
            AGENTS,
            &[("Content-Type", "application/json")],
            enroll_body(KEY, UUID).as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        d.agents().len(),
        1,
        "already enrolled while the answer is held back"
    );
    assert_eq!(h.join().unwrap().unwrap().status, 200);
    d.set_delay(Duration::ZERO);
    let t = Instant::now();
    d.get_jobs(1);
    assert!(t.elapsed() < Duration::from_millis(150));
}

/// The raw bytes the double sends back for one enrollment request.
fn raw_exchange(d: &Double, read_timeout: Duration) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let body = enroll_body(KEY, UUID);
    let mut s = std::net::TcpStream::connect(d.addr())?;
    s.set_read_timeout(Some(read_timeout))?;
    write!(
        s,
        "POST {AGENTS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(raw)
}

#[test]
fn invalid_json_truncated_and_stalled_answers_do_not_process_the_request() {
    let d = setup();
    // 200 with the plugin's headers and JSON cut mid-way.
    d.inject(Fault::InvalidJson200, 1);
    let r = enroll(&d).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-armaditoplugin-version"), Some("0.10.1"));
    assert!(
        r.text().starts_with('{') && r.json().is_none(),
        "{}",
        r.text()
    );

    // Content-Length announces more than arrives before the close.
    d.inject(Fault::Truncated200, 1);
    let raw = raw_exchange(&d, Duration::from_secs(5)).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        body.len() < announced,
        "{} of {announced}: {body:?}",
        body.len()
    );

    // A stall: nothing comes back while the client waits.
    d.inject(Fault::Stall, 1);
    let t = Instant::now();
    let e = raw_exchange(&d, Duration::from_millis(400)).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    assert!(t.elapsed() >= Duration::from_millis(400));

    assert!(d.agents().is_empty(), "no faulted request enrolled");
    assert_eq!(d.key_use_counter(KEY), Some(10));
    let faults: Vec<Option<String>> = d.requests().iter().map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [Some("InvalidJson200"), Some("Truncated200"), Some("Stall")].map(|f| f.map(String::from))
    );
    assert_eq!(enroll(&d).unwrap().status, 200, "the queue is spent");
}

#[test]
fn an_outage_hits_one_endpoint_and_method_after_n_requests_until_healed() {
    let d = setup();
    assert_eq!(enroll(&d).unwrap().status, 200);
    d.outage("jobs", Some("GET"), Fault::Status500Json, 2);
    d.inject(Fault::Html200, 1);
    // Two GET jobs pass, then every GET jobs fails; enrollment is not affected by the outage
    // (it takes the queued fault instead).
    let statuses: Vec<u16> = (0..4).map(|_| d.get_jobs(1).status).collect();
    assert_eq!(statuses, [200, 200, 500, 500]);
    assert_eq!(enroll(&d).unwrap().status, 200);
    assert!(enroll(&d).unwrap().text().contains("agent_id"));
    // POST jobs (the other branch of the same script) is not hit.
    let post = d
        .raw(
            "POST",
            "/glpi/plugins/armadito/api/jobs/",
            &[("Content-Type", "application/json")],
            br#"{"agent_id":1,"uuid":"4C4C4544-0033-4A10-8051-FFFFFFFFFFFF","task":{"obj":{"job_id":99,"code":0,"message":"","start_time":1489500000,"end_time":1489500001}}}"#,
        )
        .unwrap();
    assert_eq!(
        post.text(),
        r#"{"error" : "Unable to get job from database."}"#,
        "processed"
    );
    assert_eq!(d.requests().last().unwrap().fault, None);
    d.heal();
    assert_eq!(d.get_jobs(1).status, 200);
}
