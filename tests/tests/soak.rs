//! Short soak (3 min; long mode: `cargo run --release -p armadito-tests --bin bench -- soak
//! --minutes 30`): the daemon with jobs, detections and State flowing against the double and a
//! real clamd keeps its memory, file descriptors, threads and store flat.
//!
//! Tolerances (the machine may be a loaded 2-core CI runner, so single samples are noisy):
//! * compared after a 40 s warm-up (backend started, first scans done, SQLite cache filled);
//! * RSS: the largest value in the last third of the samples against the largest in the
//!   first third. It may grow by 2 MB (SQLite's default page cache is 2 MB per connection and
//!   fills as the store grows; a leak of even 100 kB per job would exceed it over the ~25
//!   steady jobs);
//! * fds and threads: the floor (smallest value) of the last third against the floor of the
//!   first, +2 at most. A task caught mid-run holds 4 fds more (the store's database, WAL and
//!   shared memory, an HTTP connection) in that one sample; a leak raises every later sample,
//!   the floor included (one fd per job: ~25 over the steady jobs);
//! * store: below 8 MB, a WAL (checkpointed at 1,000 pages = 4 MB) plus the small database.

#![cfg(target_os = "linux")]

use std::time::Duration;

use armadito_tests::soak;

#[test]
fn the_daemon_stays_flat_with_jobs_alerts_and_state_flowing() {
    let r = soak::run(
        Duration::from_secs(180),
        Duration::from_secs(40),
        Duration::from_secs(3),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("soak: {e}"));
    let table = r.table();
    eprintln!("{table}");
    let ctx = || {
        format!(
            "{table}\n{:?}\ndaemon log tail:\n{}",
            r.samples,
            tail(&r.daemon_log)
        )
    };

    // Work flowed.
    assert!(r.jobs_queued >= 30, "{}", ctx());
    assert_eq!(r.jobs_done, r.jobs_queued, "{}", ctx());
    assert!(r.alerts > 0, "no alert reached the server\n{}", ctx());
    assert!(r.states >= 10, "{}", ctx());
    assert!(r.steady().len() >= 30, "{}", ctx());

    let (rss0, rss1) = r.thirds_max(|s| s.rss_kb);
    assert!(
        rss1 <= rss0 + 2048,
        "RSS grew {rss0} -> {rss1} kB\n{}",
        ctx()
    );
    let (fd0, fd1) = r.thirds_min(|s| s.fds);
    assert!(
        fd1 <= fd0 + 2,
        "the fds floor grew {fd0} -> {fd1}\n{}",
        ctx()
    );
    let (th0, th1) = r.thirds_min(|s| s.threads);
    assert!(
        th1 <= th0 + 2,
        "the threads floor grew {th0} -> {th1}\n{}",
        ctx()
    );
    let (_, _, store_max) = r.first_last_max(|s| s.store_bytes);
    assert!(store_max < 8 << 20, "store {store_max} bytes\n{}", ctx());
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
