//! One run per task at a time, and a bounded delivery per run, against a slow failing server
//! (the GLPI double answering late, with 500s).

use std::time::{Duration, Instant};

use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{enrolled_agent, make_tree};

fn get_jobs_requests(d: &Double) -> usize {
    d.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/api/jobs"))
        .count()
}

fn posts(d: &Double) -> Vec<u16> {
    d.requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect()
}

fn outbox_len(s: &armadito_tests::agent::AgentSandbox) -> usize {
    let out = s.run(&["outbox", "--json"]);
    out.assert_code(0);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_second_run_of_a_task_exits_at_once_while_the_first_waits_on_a_slow_server() {
    let d = Double::start();
    let (s, _, _) = enrolled_agent(&d, "");
    let before = get_jobs_requests(&d);
    d.set_delay(Duration::from_secs(3));
    let first = s.spawn(&["-t", "Getjobs"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_jobs_requests(&d) == before {
        assert!(Instant::now() < deadline, "the first Getjobs never asked");
        std::thread::sleep(Duration::from_millis(20));
    }

    let start = Instant::now();
    let second = s.run(&["-t", "Getjobs"]);
    second
        .assert_code(0)
        .assert_stderr_contains("another Getjobs run is in progress");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the second run waited {:?}",
        start.elapsed()
    );
    // Another task is not blocked by it.
    s.run(&["status"]).assert_code(0);

    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        get_jobs_requests(&d),
        before + 1,
        "only the first run asked the server"
    );
    d.set_delay(Duration::ZERO);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    assert_eq!(get_jobs_requests(&d), before + 2, "the lock is released");
}

/// Three jobs, a server answering slow 500s: the run stops delivering after three failed
/// messages in a row (each tried 4 times by the transport), and keeps every message.
#[test]
fn delivery_stops_after_server_errors_in_a_row_and_keeps_the_rest() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "max_consecutive_failures = 3\n");
    let tree = make_tree(&s.dir.path().join("tree"), 3, 0);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "", av);
    let jobs: Vec<i64> = (0..3).map(|_| d.create_job(agent, cfg, 1)).collect();
    s.run(&["-t", "Getjobs"]).assert_code(0);

    let posts_before = posts(&d).len();
    // 3 messages × 4 attempts: a run that kept going would reach the 13th POST, which succeeds.
    d.inject(Fault::Status500Json, 12);
    d.set_delay(Duration::from_millis(100));
    let r = s.run(&["-t", "Runjobs"]);
    r.assert_stderr_contains("delivery stops for this run")
        .assert_stderr_contains("3 server errors or timeouts in a row");
    let during: Vec<u16> = posts(&d)[posts_before..].to_vec();
    assert_eq!(during, vec![500; 12], "{during:?}");
    assert_eq!(d.pending_faults(), 0);
    let kept = outbox_len(&s);
    assert!(kept >= 3, "every result is kept: {kept}");
    assert!(
        jobs.iter()
            .all(|j| d.job(*j).unwrap().job_status == "downloaded")
    );

    // The server recovers: the next run delivers everything.
    d.set_delay(Duration::ZERO);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    assert_eq!(outbox_len(&s), 0);
    for j in &jobs {
        assert_eq!(d.job(*j).unwrap().job_status, "successful", "job {j}");
    }
}

/// A server that answers, but slowly: delivery ends at the run's deadline, the rest waits.
#[test]
fn delivery_has_a_deadline_per_run() {
    let d = Double::start();
    let (s, agent, av) = enrolled_agent(&d, "deadline = 1\n");
    let tree = make_tree(&s.dir.path().join("tree"), 3, 0);
    let cfg = d.create_scanconfig("tree", tree.to_str().unwrap(), "", av);
    let jobs: Vec<i64> = (0..4).map(|_| d.create_job(agent, cfg, 1)).collect();
    s.run(&["-t", "Getjobs"]).assert_code(0);

    d.set_delay(Duration::from_millis(700));
    let start = Instant::now();
    let r = s.run(&["-t", "Runjobs"]);
    r.assert_stderr_contains("the delivery deadline (1 s) passed");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(outbox_len(&s) > 0, "what is left stays in the outbox");
    assert!(
        jobs.iter()
            .any(|j| d.job(*j).unwrap().job_status != "successful")
    );

    d.set_delay(Duration::ZERO);
    s.run(&["-t", "Getjobs"]).assert_code(0);
    assert_eq!(outbox_len(&s), 0);
    for j in &jobs {
        assert_eq!(d.job(*j).unwrap().job_status, "successful", "job {j}");
    }
}
