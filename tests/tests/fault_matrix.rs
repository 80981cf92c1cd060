//! Fault matrix (issue 16 item 2): for each endpoint × each way a server or the network fails,
//! the agent neither crashes (it exits with the documented code) nor loses data (what was to
//! be delivered is still in the outbox, the job is still queued on the server), backs off
//! (a bounded number of requests, a next try in the future), and recovers by itself once the
//! server heals (the next run delivers). The test prints the table.
//!
//! One cell = one fresh GLPI double + one agent sandbox, run in its own thread. Faults on one
//! endpoint are the double's outages (`Double::outage`): every other endpoint stays healthy.
//! A TLS handshake failure and an unknown host cannot hit one endpoint only: in those columns
//! the whole server is unreachable while the endpoint's task runs, and "healing" is the name
//! resolving / the TLS service answering again (simulated by pointing `server` back at the
//! double in agent.toml; the state dir is untouched).
//!
//! Columns are agent modes ([`Mode`]): the one-shot agent today; a daemon column is added by
//! a `Mode` variant whose `drive` lets the running daemon work through one period instead of
//! starting a task (every check of a cell is the same for both).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_core::store::{MessageKind, Store};
use armadito_tests::agent::{AgentSandbox, built_plugins};
use armadito_tests::double::{Double, Fault};
use armadito_tests::fleet::{KEY, UUID, make_tree};

/// Exit code of a task that failed on the server or the network, results kept (README table).
const TASK_FAILED: i32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ep {
    Agents,
    JobsGet,
    JobsPost,
    Scans,
    States,
    Alerts,
    AvConfigs,
    Schedulers,
}

const ENDPOINTS: [Ep; 8] = [
    Ep::Agents,
    Ep::JobsGet,
    Ep::JobsPost,
    Ep::Scans,
    Ep::States,
    Ep::Alerts,
    Ep::AvConfigs,
    Ep::Schedulers,
];

impl Ep {
    fn label(self) -> &'static str {
        match self {
            Ep::Agents => "agents",
            Ep::JobsGet => "jobs GET",
            Ep::JobsPost => "jobs POST",
            Ep::Scans => "scans",
            Ep::States => "states",
            Ep::Alerts => "alerts",
            Ep::AvConfigs => "avconfigs",
            Ep::Schedulers => "schedulers",
        }
    }

    /// The double's outage target.
    fn target(self) -> (&'static str, Option<&'static str>) {
        match self {
            Ep::Agents => ("agents", None),
            Ep::JobsGet => ("jobs", Some("GET")),
            Ep::JobsPost => ("jobs", Some("POST")),
            Ep::Scans => ("scans", None),
            Ep::States => ("states", None),
            Ep::Alerts => ("alerts", None),
            Ep::AvConfigs => ("avconfigs", None),
            Ep::Schedulers => ("schedulers", None),
        }
    }

    /// The one-shot task that talks to this endpoint.
    fn task(self) -> Vec<String> {
        let t = match self {
            Ep::Agents => "Enrollment",
            Ep::JobsGet => "Getjobs",
            Ep::JobsPost | Ep::Scans | Ep::Alerts => "Runjobs",
            Ep::States => "State",
            Ep::AvConfigs => "AVConfig",
            Ep::Schedulers => "Scheduler",
        };
        vec!["-t".into(), t.into()]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    E500,
    E503,
    Html200,
    BadJson,
    Truncated,
    Reset,
    Stall,
    Tls,
    UnknownHost,
}

const KINDS: [Kind; 9] = [
    Kind::E500,
    Kind::E503,
    Kind::Html200,
    Kind::BadJson,
    Kind::Truncated,
    Kind::Reset,
    Kind::Stall,
    Kind::Tls,
    Kind::UnknownHost,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::E500 => "500",
            Kind::E503 => "503+R-A",
            Kind::Html200 => "200 HTML",
            Kind::BadJson => "bad JSON",
            Kind::Truncated => "truncated",
            Kind::Reset => "reset",
            Kind::Stall => "stall",
            Kind::Tls => "TLS fail",
            Kind::UnknownHost => "no host",
        }
    }

    fn fault(self) -> Option<Fault> {
        Some(match self {
            Kind::E500 => Fault::Status500Json,
            Kind::E503 => Fault::Status503RetryAfter(1),
            Kind::Html200 => Fault::Html200,
            Kind::BadJson => Fault::InvalidJson200,
            Kind::Truncated => Fault::Truncated200,
            Kind::Reset => Fault::DropConnection,
            Kind::Stall => Fault::Stall,
            Kind::Tls | Kind::UnknownHost => return None,
        })
    }
}

/// How the agent is driven. Add `Daemon` here (and a column appears) once it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    OneShot,
}

const MODES: [Mode; 1] = [Mode::OneShot];

/// What one drive of the agent left.
struct Drive {
    code: Option<i32>,
    stderr: String,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::OneShot => "one-shot",
        }
    }

    /// Lets the agent do the endpoint's work once.
    fn drive(self, s: &AgentSandbox, ep: Ep, key_file: &Path) -> Drive {
        match self {
            Mode::OneShot => {
                let mut args = ep.task();
                if ep == Ep::Agents {
                    args.push("--key-file".into());
                    args.push(key_file.display().to_string());
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = s.run(&args);
                Drive {
                    code: r.code,
                    stderr: r.stderr,
                }
            }
        }
    }
}

/// agent.toml for a cell: short timeouts (the stall column), 2 transport attempts, a 1 s
/// outbox backoff (so "backs off" is visible and the healing run comes 1–2 s later), the
/// test backend in-process (one process less per run: the CI budget).
fn write_config(s: &AgentSandbox, server: &str, root: &Path, alerts: &Path) {
    let text = format!(
        "server = \"{server}\"\nstate_dir = \"{}\"\nplugins_dir = \"{}\"\nuuid = \"{UUID}\"\nbackend = \"testav\"\n\
         [http]\ntimeout = 1\nconnect_timeout = 1\n[http.retry]\nmax_attempts = 2\nbase_delay_ms = 10\nmax_delay_ms = 100\n\
         [outbox]\nretry_base = 1\nretry_max = 1\n\
         [plugins]\nisolation = \"in-process\"\n\
         [backends.testav]\nalerts_file = \"{}\"\n\
         [schedule]\nroot = \"{}\"\n",
        s.state_dir().display(),
        s.dir.path().join("plugins").display(),
        alerts.display(),
        root.display(),
    );
    std::fs::write(s.config_path(), text).expect("write agent.toml");
}

/// The result of one cell, each check with its reason when it failed.
struct Cell {
    code: Option<i32>,
    requests: usize,
    secs: f64,
    problems: Vec<String>,
}

impl Cell {
    fn mark(&self) -> String {
        let code = self.code.map_or("sig".into(), |c| c.to_string());
        if self.problems.is_empty() {
            format!("ok {code}/{}", self.requests)
        } else {
            format!("FAIL {code}")
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (kind, next try, attempts) of every pending message.
fn outbox_kinds(state: &Path) -> Vec<(MessageKind, i64, u32)> {
    Store::open(state)
        .and_then(|s| s.outbox())
        .map(|o| {
            o.into_iter()
                .map(|m| (m.kind, m.next_try_at, m.attempts))
                .collect()
        })
        .unwrap_or_default()
}

fn run_cell(mode: Mode, ep: Ep, kind: Kind, plugins: &[std::path::PathBuf]) -> Cell {
    let started = Instant::now();
    let mut problems = Vec::new();
    let d = Double::start();
    d.create_key(KEY, 100, 3600);
    let s = AgentSandbox::new(&d.base_url());
    let root = s.dir.path().join("root");
    let alerts = s.dir.path().join("alerts.jsonl");
    let key_file = s.dir.path().join("enrollment-key.txt");
    std::fs::create_dir_all(&root).expect("schedule root");
    std::fs::write(&alerts, "").expect("alerts file");
    std::fs::write(&key_file, KEY).expect("key file");
    write_config(&s, &d.base_url(), &root, &alerts);
    s.install_plugins(plugins);
    let state = s.state_dir();

    // Set-up on a healthy server.
    let mut job = None;
    if ep != Ep::Agents {
        s.run(&[
            "-t",
            "Enrollment",
            "--key-file",
            key_file.to_str().unwrap_or_default(),
        ])
        .assert_code(0);
        let agent = d
            .agents()
            .first()
            .map(|a| (a.id, a.plugin_armadito_antiviruses_id));
        let (agent, av) = agent.expect("enrolled on the double");
        if matches!(ep, Ep::JobsGet | Ep::JobsPost | Ep::Scans | Ep::Alerts) {
            let tree = make_tree(&s.dir.path().join("tree"), 2, 1);
            let cfg = d.create_scanconfig("tree", tree.to_str().unwrap_or_default(), "", av);
            job = Some(d.create_job(agent, cfg, 1));
            if ep != Ep::JobsGet {
                s.run(&["-t", "Getjobs"]).assert_code(0);
            }
        }
    }

    // The fault.
    let (name, method) = ep.target();
    match kind.fault() {
        Some(f) => d.outage(name, method, f, 0),
        None => {
            let port = d.port();
            let broken = match kind {
                // The double speaks plain HTTP: the TLS handshake fails on its first record.
                Kind::Tls => format!("https://127.0.0.1:{port}/glpi/plugins/armadito"),
                _ => format!("http://glpi.fault-matrix.invalid:{port}/glpi/plugins/armadito"),
            };
            write_config(&s, &broken, &root, &alerts);
        }
    }
    let before = d.requests().len();
    let t0 = unix_now();
    let failing = mode.drive(&s, ep, &key_file);
    let requests = d.requests()[before..]
        .iter()
        .filter(|r| r.path.contains(&format!("/api/{name}/")))
        .count();
    if failing.code != Some(TASK_FAILED) {
        problems.push(format!(
            "exit code {:?}, expected {TASK_FAILED}: {}",
            failing.code,
            failing.stderr.lines().last().unwrap_or_default()
        ));
    }
    // Backs off: a handful of requests (2 transport attempts per message), not a loop.
    if requests > 12 {
        problems.push(format!("{requests} requests to {name} in one run"));
    }

    // Nothing lost.
    let kept = outbox_kinds(&state);
    let wanted = match ep {
        Ep::Agents => None,
        Ep::JobsGet => None,
        Ep::JobsPost => Some(MessageKind::JobStatus),
        Ep::Scans => Some(MessageKind::ScanResult),
        Ep::States => Some(MessageKind::State),
        Ep::Alerts => Some(MessageKind::Alerts),
        Ep::AvConfigs => Some(MessageKind::AvConfig),
        Ep::Schedulers => Some(MessageKind::Scheduler),
    };
    match wanted {
        Some(k) => {
            if !kept.iter().any(|(m, _, _)| *m == k) {
                problems.push(format!("no {} message kept in the outbox", k.as_str()));
            }
            // What was tried waits for its backoff; what was not tried (the run stopped
            // at the first unreachable answer) is simply still there.
            if !kept.iter().any(|(_, _, a)| *a > 0) {
                problems.push("no message was tried".into());
            }
            if let Some((m, _, _)) = kept.iter().find(|(_, n, a)| *a > 0 && *n <= t0) {
                problems.push(format!("{} retried at once (no backoff)", m.as_str()));
            }
        }
        None if ep == Ep::Agents => {
            let enrolled = Store::open(&state)
                .ok()
                .and_then(|st| st.enrollment().ok().flatten());
            if enrolled.is_some() || !d.agents().is_empty() {
                problems.push("enrolled although the server failed".into());
            }
            if !key_file.exists() {
                problems.push("the enrollment key file is gone".into());
            }
        }
        None => {
            let j = job.and_then(|j| d.job(j)).map(|j| j.job_status);
            if j.as_deref() != Some("queued") {
                problems.push(format!("job not queued on the server any more: {j:?}"));
            }
        }
    }

    // Heal, let the backoff pass, run again.
    d.heal();
    write_config(&s, &d.base_url(), &root, &alerts);
    let due = kept.iter().map(|(_, n, _)| *n).max().unwrap_or(0);
    while unix_now() <= due {
        std::thread::sleep(Duration::from_millis(100));
    }
    let healed = mode.drive(&s, ep, &key_file);
    if healed.code != Some(0) {
        problems.push(format!(
            "after healing: exit code {:?}: {}",
            healed.code,
            healed.stderr.lines().last().unwrap_or_default()
        ));
    }
    let left = outbox_kinds(&state);
    if !left.is_empty() {
        problems.push(format!(
            "after healing: {} message(s) still queued",
            left.len()
        ));
    }
    let job_status = job.and_then(|j| d.job(j)).map(|j| j.job_status);
    let delivered = match ep {
        Ep::Agents => !d.agents().is_empty(),
        Ep::JobsGet => {
            job_status.as_deref() == Some("downloaded")
                && Store::open(&state)
                    .and_then(|st| st.jobs())
                    .is_ok_and(|js| js.iter().any(|j| Some(j.job_id) == job))
        }
        Ep::JobsPost => job_status.as_deref() == Some("successful"),
        Ep::Scans => {
            let j = job.unwrap_or_default();
            d.scans()
                .iter()
                .any(|sc| sc.plugin_armadito_jobs_id == j && sc.progress == Some(100))
        }
        Ep::States => !d.states().is_empty(),
        Ep::Alerts => d.alerts().len() == 1,
        Ep::AvConfigs => !d.avconfigs().is_empty(),
        Ep::Schedulers => d
            .schedulers()
            .iter()
            .any(|r| r.name.as_deref().is_some_and(|n| n != "unknown")),
    };
    if !delivered {
        problems.push("after healing: the server does not have the data".into());
    }
    let v = d.violations();
    if !v.is_empty() {
        problems.push(format!("double violations: {v:?}"));
    }
    Cell {
        code: failing.code,
        requests,
        secs: started.elapsed().as_secs_f64(),
        problems,
    }
}

#[test]
fn every_endpoint_survives_every_fault_and_recovers() {
    let started = Instant::now();
    let plugins = built_plugins(&["test-plugin-testav"]);
    // Build the agent once before the threads start.
    let _ = armadito_tests::agent::agent_bin();
    let mut cells = Vec::new();
    for mode in MODES {
        for ep in ENDPOINTS {
            for kind in KINDS {
                cells.push((mode, ep, kind));
            }
        }
    }
    let queue = Arc::new(Mutex::new(cells.clone()));
    let results = Arc::new(Mutex::new(Vec::new()));
    // Cells mostly wait (timeouts, backoff): more threads than cores.
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let queue = queue.clone();
            let results = results.clone();
            let plugins = plugins.clone();
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((mode, ep, kind)) = next else { break };
                    let cell = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_cell(mode, ep, kind, &plugins)
                    }))
                    .unwrap_or_else(|p| Cell {
                        code: None,
                        requests: 0,
                        secs: 0.0,
                        problems: vec![format!(
                            "the cell panicked: {}",
                            p.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default()
                        )],
                    });
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(((mode, ep, kind), cell));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker thread");
    }
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    let find = |m: Mode, e: Ep, k: Kind| {
        results
            .iter()
            .find(|((rm, re, rk), _)| *rm == m && *re == e && *rk == k)
            .map(|(_, c)| c)
    };

    let mut table = String::new();
    for mode in MODES {
        table.push_str(&format!(
            "\nfault matrix, {} agent: cell = exit code of the failing run / requests it sent to the endpoint\n",
            mode.label()
        ));
        table.push_str(&format!("{:<11}", "endpoint"));
        for k in KINDS {
            table.push_str(&format!(" {:>10}", k.label()));
        }
        table.push('\n');
        for ep in ENDPOINTS {
            table.push_str(&format!("{:<11}", ep.label()));
            for k in KINDS {
                let mark = find(mode, ep, k).map_or("missing".into(), Cell::mark);
                table.push_str(&format!(" {mark:>10}"));
            }
            table.push('\n');
        }
    }
    let slowest = results.iter().map(|(_, c)| c.secs).fold(0.0f64, f64::max);
    table.push_str(&format!(
        "ok = exit {TASK_FAILED}, data kept in the outbox (or the job still queued on the server) with a later next try, \
         delivered by the next run once healed. {} cells in {:.1} s (slowest {slowest:.1} s)\n",
        results.len(),
        started.elapsed().as_secs_f64()
    ));
    println!("{table}");
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, c)| !c.problems.is_empty())
        .map(|((m, e, k), c)| {
            format!(
                "{} {} × {}: {}",
                m.label(),
                e.label(),
                k.label(),
                c.problems.join("; ")
            )
        })
        .collect();
    assert_eq!(results.len(), cells.len());
    assert!(failures.is_empty(), "{table}\n{}", failures.join("\n"));
}
