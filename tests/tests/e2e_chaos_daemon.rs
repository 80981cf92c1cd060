//! Chaos over the daemon (issue 16 item 1): `armadito-agent daemon` on a real clamd, SIGKILLed
//! again and again at chosen moments — mid-scan, mid-delivery (the double has the data, the
//! answer is still on its way), mid-hot-reload (a new build of the plugin just dropped in the
//! folder) and anywhere — then left to run in peace. Afterwards:
//! - every job the double handed out has exactly one final status there, or was lost in the
//!   server's at-most-once window (server-api.md §3.2) and a later run flagged it, each job
//!   checked, not a count;
//! - no job ran more often than `[jobs] max_attempts` allows (the daemon logs each start);
//! - every detection reached the double: the two EICAR files of each successful scan job, and
//!   each live detection clamd logged (the Alerts task's cursor survives the kills);
//! - the store passes `PRAGMA integrity_check`, and the double saw no protocol violation.
//!
//! `ARMADITO_CHAOS_KILLS` sets the number of kills (default 40, about a minute and a half).
//! Also here: a full disk under the daemon (a tmpfs state folder).

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use armadito_tests::agent::{AgentSandbox, built_plugins};
use armadito_tests::chaos::{
    assert_store_intact, handed_out_at, posted_status_codes, stored_job_ids,
};
use armadito_tests::clamd::Clamd;
use armadito_tests::daemon::{Daemon, fast_schedule, wait_until};
use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{KEY, UUID, enrolled_agent_with, make_tree};
use armadito_tests::tmpfs::Tmpfs;
use rand::Rng;

const MAX_ATTEMPTS: usize = 3;
const LOST_IN_FLIGHT: &str = "stopped while the server's reply was in flight";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Scan,
    Delivery,
    HotReload,
    Anywhere,
}

/// One daemon life: where it started in the double's request log, and what it logged.
struct Life {
    requests_before: usize,
    log: String,
}

impl Life {
    fn flagged(&self) -> bool {
        self.log.contains(LOST_IN_FLIGHT)
    }
}

/// Every task every second (State every `state`), and a 1–2 s backoff.
fn schedule(state: &str) -> String {
    fast_schedule(state).replacen("[daemon]\n", "[daemon]\nbackoff_max = \"2s\"\n", 1)
}

/// Polls `ok` for up to `limit`; whether it became true.
fn within(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A new build of the plugin, as an admin drops it: written next to the folder, then renamed
/// over the old file (never overwritten in place). One byte appended after the ELF image makes
/// another file (another sha256) that loads the same.
fn drop_new_build(plugin: &Path, n: usize) {
    let mut bytes = std::fs::read(plugin).expect("read the installed plugin");
    bytes.push(n as u8);
    let tmp = plugin.with_extension(format!("new-{n}"));
    let staging = std::env::temp_dir().join(format!(
        "armadito-chaos-{}-{}",
        std::process::id(),
        tmp.file_name().and_then(|f| f.to_str()).unwrap_or("plugin")
    ));
    std::fs::write(&staging, &bytes).expect("write the new build");
    // Same filesystem as the plugins folder is not guaranteed for /tmp: copy, then rename in
    // the folder's parent (same filesystem), then into place.
    let beside = plugin
        .parent()
        .and_then(Path::parent)
        .expect("plugins folder has a parent")
        .join(".plugin-staging");
    std::fs::copy(&staging, &beside).expect("stage the new build");
    let _ = std::fs::remove_file(&staging);
    std::fs::rename(&beside, plugin).expect("rename the new build into place");
}

/// Job ids of the daemon's "running job" lines.
fn job_starts(log: &str) -> Vec<i64> {
    let re = regex::Regex::new(r"running job.*?job_id[=:]\s*(\d+)|job_id[=:]\s*(\d+).*running job")
        .expect("regex");
    log.lines()
        .filter(|l| l.contains("running job"))
        .filter_map(|l| {
            let c = re.captures(l)?;
            c.get(1).or(c.get(2))?.as_str().parse().ok()
        })
        .collect()
}

fn tree_of(s: &AgentSandbox, n: usize) -> PathBuf {
    s.dir.path().join(format!("tree-{n}"))
}

/// The alert POSTs that name `job` (for a failure message).
fn alert_posts(d: &Double, job: i64) -> String {
    let needle = format!("\"job_id\":{job}");
    d.requests()
        .iter()
        .filter(|r| r.path.contains("/api/alerts") && r.body.contains(&needle))
        .map(|r| format!("{} {}\n  -> {}", r.status, r.body, r.response_body))
        .collect::<Vec<_>>()
        .join("\n")
}

fn outbox_empty(s: &AgentSandbox) -> bool {
    s.run(&["outbox", "--json"]).stdout.trim() == "[]"
}

#[test]
fn daemon_killed_mid_scan_delivery_and_hot_reload_loses_nothing() {
    let kills_wanted: usize = std::env::var("ARMADITO_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let clamd = Clamd::start_or_panic();
    let d = Double::start();
    let extra = format!(
        "{}[jobs]\nmax_attempts = {MAX_ATTEMPTS}\n[scan]\nprogress_interval = 0.2\n{}",
        schedule("3s"),
        clamd.settings()
    );
    let (s, agent, av) = enrolled_agent_with(&d, "clamav", "armadito-backend-clamav", &extra);
    let plugin: PathBuf = std::fs::read_dir(s.dir.path().join("plugins"))
        .expect("plugins folder")
        .map(|e| e.expect("plugin entry").path())
        .next()
        .expect("the ClamAV plugin is installed");
    // Each job scans its own tree (the plugin drops an alert whose name, path and second it
    // already has): two EICAR files among 200, so a scan on clamd lasts long enough to be
    // killed in the middle.
    let new_job = |n: usize, priority: u8| {
        let tree = make_tree(&tree_of(&s, n), 200, 2);
        let cfg = d.create_scanconfig(
            &format!("tree-{n}"),
            tree.to_str().expect("utf-8"),
            "-r",
            av,
        );
        d.create_job(agent, cfg, priority)
    };

    let mut rng = rand::rng();
    let mut lives: Vec<Life> = Vec::new();
    let mut hits: BTreeMap<Phase, usize> = BTreeMap::new();
    let mut live_files: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut builds = 0;
    let mut trees: BTreeMap<i64, usize> = BTreeMap::new();
    while lives.len() < kills_wanted {
        let n = lives.len();
        if rng.random_bool(0.6) {
            trees.insert(new_job(n, rng.random_range(0..=3)), n);
        }
        if n % 6 == 5 {
            // A detection clamd logs for someone else: the daemon's Alerts task must report it.
            let live = make_tree(&s.dir.path().join(format!("live-{n}")), 0, 1);
            let _ = s.run(&["-t", "Scan", "--path", live.to_str().expect("utf-8")]);
            live_files.push(live.join("eicar-0.com").display().to_string());
        }
        let phase = match n % 4 {
            0 => Phase::Scan,
            1 => Phase::Delivery,
            2 => Phase::HotReload,
            _ => Phase::Anywhere,
        };
        // The previous life was killed: its last request may still be on its way in.
        let requests_before = d.settled_request_count();
        if phase == Phase::Delivery {
            d.set_delay(Duration::from_millis(400));
        }
        let daemon = Daemon::spawn(&s);
        let hit = match phase {
            Phase::Scan => {
                let hit = within(Duration::from_secs(6), || {
                    daemon.log().contains("running job")
                });
                std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
                hit
            }
            Phase::Delivery => within(Duration::from_secs(6), || {
                d.requests()[requests_before..].iter().any(|r| {
                    r.method == "POST"
                        && ["/api/jobs/", "/api/scans/", "/api/alerts/"]
                            .iter()
                            .any(|p| r.path.contains(p))
                })
            }),
            Phase::HotReload => {
                let up = within(Duration::from_secs(6), || {
                    daemon.log().contains("daemon started")
                });
                builds += 1;
                drop_new_build(&plugin, builds);
                // Half of these kills land while the watcher reacts, half just after the swap
                // (the old plugin host is stopping, the new one starting).
                let swapped = builds % 2 == 0
                    && within(Duration::from_secs(8), || {
                        daemon.log().contains("backend replaced by a new build")
                    });
                std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
                up && (builds % 2 == 1 || swapped)
            }
            Phase::Anywhere => {
                std::thread::sleep(Duration::from_millis(rng.random_range(0..2000)));
                true
            }
        };
        let log = daemon.kill();
        d.set_delay(Duration::ZERO);
        assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
        if hit {
            *hits.entry(phase).or_default() += 1;
        }
        lives.push(Life {
            requests_before,
            log,
        });
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "chaos loop too slow: {} kills",
            lives.len()
        );
    }

    // Peace: the daemon runs until everything is settled.
    let requests_before = d.settled_request_count();
    let daemon = Daemon::start(&s);
    let known = || stored_job_ids(&s.state_dir());
    wait_until(
        "every job settled, the outbox empty, every live detection on the server",
        || {
            let known = known();
            let settled = d.jobs().iter().all(|j| match j.job_status.as_str() {
                "successful" | "failed" => true,
                "downloaded" => !known.contains(&j.id),
                _ => false,
            });
            let alerts = d.alerts();
            settled
                && outbox_empty(&s)
                && live_files
                    .iter()
                    .all(|f| alerts.iter().any(|a| &a.filepath == f))
        },
        || {
            format!(
                "jobs {:?}\nlive {live_files:?}\noutbox {}\n{}",
                d.jobs()
                    .iter()
                    .map(|j| (j.id, j.job_status.clone()))
                    .collect::<Vec<_>>(),
                s.run(&["outbox"]).stdout,
                daemon.log()
            )
        },
    );
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    lives.push(Life {
        requests_before,
        log,
    });

    // The store.
    assert_store_intact(&s.state_dir());
    let known = known();

    // Runs per job, from the daemon's own log lines.
    let mut starts: BTreeMap<i64, usize> = BTreeMap::new();
    for l in &lives {
        for id in job_starts(&l.log) {
            *starts.entry(id).or_default() += 1;
        }
    }
    assert!(!starts.is_empty(), "no \"running job\" line was recognised");
    for (id, n) in &starts {
        assert!(
            *n <= MAX_ATTEMPTS,
            "job {id} started {n} times, max_attempts = {MAX_ATTEMPTS}"
        );
    }

    // Statuses the agent posted, per job.
    let codes = posted_status_codes(&d);
    // Which GET jobs reply (its position in the double's log) handed out each job.
    let handed_in = handed_out_at(&d);
    let (mut handed_out, mut successful, mut failed, mut lost) = (0, 0, 0, 0);
    let mut attributed_elsewhere = 0;
    for j in d.jobs() {
        if j.job_status == "queued" {
            continue;
        }
        handed_out += 1;
        if !known.contains(&j.id) {
            assert_eq!(j.job_status, "downloaded", "job {}", j.id);
            lost += 1;
            let at = *handed_in
                .get(&j.id)
                .unwrap_or_else(|| panic!("job {} lost but never in a GET reply", j.id));
            assert!(
                lives.iter().any(|l| l.requests_before > at && l.flagged()),
                "job {} was lost in flight (GET reply #{at}) but no later daemon run flagged it",
                j.id
            );
            continue;
        }
        assert_eq!(
            codes.get(&j.id).map(BTreeSet::len),
            Some(1),
            "job {} got conflicting or no statuses: {:?}",
            j.id,
            codes.get(&j.id)
        );
        match j.job_status.as_str() {
            "successful" => {
                successful += 1;
                let scan = d
                    .scans()
                    .into_iter()
                    .find(|sc| sc.plugin_armadito_jobs_id == j.id)
                    .unwrap_or_else(|| panic!("job {} successful without a scan", j.id));
                assert_eq!(
                    (scan.scanned_count, scan.malware_count, scan.progress),
                    (Some(202), Some(2), Some(100)),
                    "job {}",
                    j.id
                );
                // Both detections are on the server. Not always under this job: when the
                // daemon's Alerts task reads clamd's log line of the same detection first, the
                // plugin keeps that one (same name, path and second) and drops the job's.
                let tree = tree_of(&s, trees[&j.id]);
                let alerts = d.alerts();
                for k in 0..2 {
                    let f = tree.join(format!("eicar-{k}.com")).display().to_string();
                    let found = alerts.iter().find(|a| a.filepath == f);
                    assert!(
                        found.is_some(),
                        "job {}: detection {f} missing\n{}",
                        j.id,
                        alert_posts(&d, j.id)
                    );
                    if found.is_some_and(|a| a.plugin_armadito_jobs_id != j.id) {
                        attributed_elsewhere += 1;
                    }
                }
            }
            "failed" => failed += 1,
            other => panic!("job {} left {other}", j.id),
        }
    }
    let v = d.violations();
    assert!(v.is_empty(), "double violations: {v:?}");
    eprintln!(
        "daemon chaos: {} SIGKILLs in {:.0} s (in phase: {hits:?}), {handed_out} jobs handed out: \
         {successful} successful with both detections, {failed} failed, {lost} lost in the server's \
         at-most-once window and flagged; {} live detections delivered; {attributed_elsewhere} job \
         detections filed as live ones (clamd's log line came first); most starts of one job {}",
        lives.len() - 1,
        started.elapsed().as_secs_f64(),
        live_files.len(),
        starts.values().max().unwrap_or(&0)
    );
    // A kill can land before the watcher reacts; some must land after it did.
    let reloads = lives
        .iter()
        .filter(|l| l.log.contains("backend replaced by a new build"))
        .count();
    eprintln!("lives in which the daemon had swapped in a new plugin build: {reloads}");
    assert!(
        reloads >= 1,
        "no kill happened after a hot reload; plugin lines of the last life:\n{}",
        lives
            .iter()
            .rev()
            .flat_map(|l| l.log.lines())
            .filter(|l| l.contains("plugin") || l.contains("backend"))
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for p in [Phase::Scan, Phase::Delivery, Phase::HotReload] {
        assert!(
            hits.get(&p).copied().unwrap_or(0) * 4 >= kills_wanted / 4,
            "too few kills landed in {p:?}: {hits:?}"
        );
    }
    assert!(successful >= 5, "too few jobs completed to mean anything");
}

/// A full disk under the daemon: the state folder on a 32 MiB tmpfs, filled up while a job
/// waits on the server and a result waits in the outbox (the server refused it until then).
/// The daemon does not fetch jobs it might not be able to store (they stay queued in GLPI),
/// says why, backs off, stays up and loses nothing stored; a one-shot Getjobs beside it exits
/// 5 with the same message. Once space returns the same daemon fetches, runs and delivers by
/// itself.
#[test]
fn a_full_disk_under_the_daemon_loses_nothing_and_recovers() {
    let Some(mnt) = Tmpfs::mount_or_skip("32m", "the daemon full-disk case") else {
        return;
    };

    let d = Double::start();
    d.create_key(KEY, 10, 3600);
    let state = mnt.path().join("state");
    let mut s = AgentSandbox::new(&d.base_url());
    s.top_config = "backend = \"testav\"".into();
    // A longer backoff than the chaos test's, so that backing off is visible in seconds.
    s.extra_config = format!(
        "[outbox]\nretry_base = 0\n{}",
        fast_schedule("1h").replacen("[daemon]\n", "[daemon]\nbackoff_max = \"8s\"\n", 1)
    );
    s.write_config(UUID);
    let config = std::fs::read_to_string(s.config_path()).expect("agent.toml");
    std::fs::write(
        s.config_path(),
        config.replace(
            &format!("state_dir = \"{}\"", s.state_dir().display()),
            &format!("state_dir = \"{}\"", state.display()),
        ),
    )
    .expect("agent.toml");
    s.install_plugins(&built_plugins(&["test-plugin-testav"]));
    s.run(&["-t", "Enrollment", "-k", KEY]).assert_code(0);
    let a = d.agents().into_iter().next().expect("enrolled");
    let tree = make_tree(&s.dir.path().join("tree"), 3, 1);
    let cfg = d.create_scanconfig(
        "tree",
        tree.to_str().expect("utf-8"),
        "",
        a.plugin_armadito_antiviruses_id,
    );
    let mut daemon = Daemon::start(&s);

    // A result the server refuses: it waits in the outbox (on the tmpfs).
    d.outage("jobs", Some("POST"), Fault::Status500Json, 0);
    let kept = d.create_job(a.id, cfg, 2);
    wait_until(
        "the job's status kept in the outbox",
        || s.run(&["outbox"]).stdout.contains("job_status"),
        || format!("{}\n{}", s.run(&["outbox"]).stdout, daemon.log()),
    );

    // The disk fills up.
    let filler = mnt.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let waiting = d.create_job(a.id, cfg, 3);
    // The server takes results again (Getjobs delivers pending results before it asks for
    // jobs: with the refusal still on it would stop there).
    d.heal();
    let gets_before = d
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/api/jobs"))
        .count();
    let log_before = daemon.log().len();
    let watch = Instant::now();
    wait_until(
        "the daemon saying the disk is full",
        || daemon.log()[log_before..].contains("the disk is full"),
        || daemon.log(),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(daemon.alive(), "the daemon died:\n{}", daemon.log());
    let gets = d
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/api/jobs"))
        .count()
        - gets_before;
    assert_eq!(
        d.job(waiting).map(|j| j.job_status),
        Some("queued".into()),
        "a job was fetched with no room to store it"
    );
    assert!(gets <= 1, "{gets} GET jobs with a full disk");
    let window = watch.elapsed().as_secs_f64();
    let failed_runs = daemon.log()[log_before..]
        .lines()
        .filter(|l| l.contains("run failed") && l.contains("the disk is full"))
        .count();
    // Three tasks on a 1 s period (Getjobs, Runjobs, Alerts) would fail `window` times each;
    // backed off (4-8 s after a failure, backoff_max 8s) at most window/4 + 1 times each.
    let bound = 3.0 * (window / 4.0 + 1.0);
    assert!(
        failed_runs >= 1 && failed_runs as f64 <= bound,
        "{failed_runs} failed runs in {window:.1} s (bound {bound:.1}): no backoff\n{}",
        daemon.log()
    );
    let one_shot = loop {
        let r = s.run(&["-t", "Getjobs"]);
        if !r.stderr.contains("lock") {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    one_shot.assert_code(5);
    one_shot.assert_stderr_contains("the disk is full");
    // The kept result cannot be read now (even a read-only SQLite connection must grow its
    // WAL index): that it survived shows below, when it reaches the server.

    // Space returns: the same daemon catches up by itself.
    std::fs::remove_file(&filler).expect("remove the filler");
    wait_until(
        "both jobs successful on the server",
        || {
            [kept, waiting]
                .iter()
                .all(|j| d.job(*j).is_some_and(|r| r.job_status == "successful"))
        },
        || format!("{:?} {:?}\n{}", d.job(kept), d.job(waiting), daemon.log()),
    );
    wait_until("an empty outbox", || outbox_empty(&s), || daemon.log());
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_store_intact(&state);
    assert!(d.violations().is_empty(), "{:?}", d.violations());
}
