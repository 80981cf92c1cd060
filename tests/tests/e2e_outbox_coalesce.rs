//! Coalesced alert delivery (issue 13 item 3), the real agent against the GLPI double: queued
//! one-alert messages leave in POSTs of 100 alerts; a server failing mid-way loses and
//! duplicates nothing; one alert the server rejects never holds back the others.

use armadito_tests::double::{Double, Fault, RecordedRequest};
use armadito_tests::fleet::{UUID, enrolled_agent};
use armadito_tests::outbox::{one_alert_body, outbox_len, queue_alert_bodies};

fn alert_posts(d: &Double) -> Vec<RecordedRequest> {
    d.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/api/alerts/"))
        .collect()
}

/// The alert names a POST carried.
fn names(r: &RecordedRequest) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("alerts POSTs are JSON");
    v["task"]["obj"]["alerts"]
        .as_array()
        .expect("an alerts array")
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Names acknowledged by a 2xx, each with how many times.
fn acknowledged(d: &Double) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for r in alert_posts(d).iter().filter(|r| r.status == 200) {
        for n in names(r) {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn five_thousand_queued_alerts_leave_in_fifty_posts() {
    let d = Double::start();
    let (s, agent, _) = enrolled_agent(&d, "");
    queue_alert_bodies(
        &s.state_dir(),
        (0..5000).map(|i| one_alert_body(agent, UUID, i)).collect(),
    );
    assert_eq!(outbox_len(&s.state_dir()), 5000);

    let t = std::time::Instant::now();
    s.run(&["-t", "Alerts"]).assert_code(0);
    eprintln!("5000 alerts delivered in {:?}", t.elapsed());

    let posts = alert_posts(&d);
    assert_eq!(posts.len(), 50, "one POST per 100 alerts");
    assert!(
        posts
            .iter()
            .all(|r| r.status == 200 && r.response_body.is_empty())
    );
    assert!(posts.iter().all(|r| names(r).len() == 100));
    let seen = acknowledged(&d);
    assert_eq!(seen.len(), 5000);
    assert!(seen.values().all(|n| *n == 1), "no alert sent twice");
    // The server stored every one, in order of detection within each POST.
    assert_eq!(d.alerts().len(), 5000);
    assert_eq!(names(&posts[0])[0], "Eicar-Test-Signature-0");
    assert_eq!(names(&posts[49])[99], "Eicar-Test-Signature-4999");
    assert_eq!(outbox_len(&s.state_dir()), 0);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}

#[test]
fn one_post_per_message_when_coalescing_is_off() {
    let d = Double::start();
    let (s, agent, _) = enrolled_agent(&d, "coalesce_alerts = 1\n");
    queue_alert_bodies(
        &s.state_dir(),
        (0..30).map(|i| one_alert_body(agent, UUID, i)).collect(),
    );
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(alert_posts(&d).len(), 30);
    assert_eq!(d.alerts().len(), 30);
}

#[test]
fn a_server_failing_mid_way_loses_and_duplicates_nothing() {
    let d = Double::start();
    let (s, agent, _) = enrolled_agent(&d, "");
    queue_alert_bodies(
        &s.state_dir(),
        (0..5000).map(|i| one_alert_body(agent, UUID, i)).collect(),
    );
    // 20 POSTs go through, then the alerts script answers 500 until healed.
    d.outage("alerts", None, Fault::Status500Json, 20);
    let r = s.run(&["-t", "Alerts"]);
    r.assert_code(1)
        .assert_stderr_contains("server errors or timeouts in a row");
    assert_eq!(d.alerts().len(), 2000);
    assert_eq!(acknowledged(&d).len(), 2000);
    assert_eq!(
        outbox_len(&s.state_dir()),
        3000,
        "every unacknowledged message is kept"
    );
    let failed = alert_posts(&d).iter().filter(|r| r.status != 200).count();
    assert!(
        failed <= 4 * 12,
        "bounded work against a failing server: {failed} POSTs"
    );

    d.heal();
    s.run(&["-t", "Alerts"]).assert_code(0);
    assert_eq!(outbox_len(&s.state_dir()), 0);
    assert_eq!(d.alerts().len(), 5000);
    let seen = acknowledged(&d);
    assert_eq!(seen.len(), 5000);
    // A faulted request is not processed by the double: nothing was acknowledged twice.
    assert!(seen.values().all(|n| *n == 1));
    let ok = alert_posts(&d).iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 50, "still 100 alerts per POST after the outage");
}

#[test]
fn one_alert_the_server_rejects_does_not_hold_back_the_others() {
    let d = Double::start();
    let (s, agent, _) = enrolled_agent(&d, "");
    let bodies: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            let b = one_alert_body(agent, UUID, i);
            if i == 42 {
                // Not a 10-digit time: PHP's formatDate throws, the whole POST answers 500.
                String::from_utf8(b)
                    .unwrap()
                    .replace("1700000000", "12")
                    .into_bytes()
            } else {
                b
            }
        })
        .collect();
    queue_alert_bodies(&s.state_dir(), bodies);
    s.run(&["-t", "Alerts"]).assert_code(1);
    let stored = d.alerts();
    assert_eq!(stored.len(), 299, "every other alert reached the server");
    assert!(
        !stored
            .iter()
            .any(|a| a.threat_name == "Eicar-Test-Signature-42")
    );
    let out = s.run(&["outbox", "--json"]);
    out.assert_code(0);
    let kept: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let kept = kept.as_array().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a valid unix timestamp"),
        "{kept:?}"
    );
}
