//! Fault matrix (issue 16 item 2): for each endpoint × each way a server or the network fails,
//! the agent neither crashes (it exits with the documented code) nor loses data (what was to
//! be delivered is still in the outbox, the job is still queued on the server), backs off
//! (a bounded number of requests, a next try in the future), and recovers by itself once the
//! server heals. The test prints the table.
//!
//! One cell = one fresh GLPI double + one agent sandbox, run in its own thread. Faults on one
//! endpoint are the double's outages (`Double::outage`): every other endpoint stays healthy.
//! A TLS handshake failure and an unknown host cannot hit one endpoint only: in those columns
//! the whole server is unreachable while the endpoint's task runs, and "healing" is the name
//! resolving / the TLS service answering again (simulated by pointing `server` back at the
//! double in agent.toml; the state dir is untouched).
//!
//! Two blocks, one per agent mode ([`Mode`]), with the same checks ("nothing lost",
//! "delivered once healed", no protocol violation); only the failing phase and the healing
//! differ:
//! * one-shot: the endpoint's `-t Task` fails with exit 1, sends a handful of requests, and
//!   the next run after the outbox backoff delivers;
//! * daemon: `armadito-agent daemon -d` (every task every 1 s, `[daemon] backoff_max` 8 s,
//!   `[outbox] retry_max` 8 s) is started while the endpoint fails and watched through a 15 s
//!   fault window: it stays up, keeps the data, and sends at most 2/3 of what a one-shot run
//!   every second would (see `backs_off`); once healed, with no command (TLS/unknown host:
//!   agent.toml pointed back + SIGHUP, which re-reads `server`), the double has the data and
//!   the outbox is empty within 20 s, and SIGTERM makes it exit 0. The agents row is n/a:
//!   the daemon never enrolls; an unenrolled daemon is checked to stay up silently instead.
//!
//! `FAULT_MATRIX_ONLY="daemon states"` runs only the cells whose name contains the text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_core::store::{MessageKind, Store};
use armadito_tests::agent::{AgentSandbox, RunResult, built_plugins};
use armadito_tests::daemon::Daemon;
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

/// How the agent is driven: the cells of both modes make the same checks ("nothing lost",
/// "delivered once healed", no protocol violation); only the failing phase and the healing
/// differ ([`Mode::fail`], [`Mode::heal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One `-t Task` run while the server fails, another once it healed.
    OneShot,
    /// `armadito-agent daemon -d` started while the server fails, watched through the fault
    /// window, left alone to recover, then stopped with SIGTERM.
    Daemon,
}

const MODES: [Mode; 2] = [Mode::OneShot, Mode::Daemon];

/// Daemon cells: how long the fault lasts. Long enough for a few backoff periods.
const WINDOW: Duration = Duration::from_secs(15);
/// Daemon cells: `[daemon] backoff_max` (seconds): the daemon's backoff, 30 s doubling, is
/// capped to this, so a failing task runs every 4–8 s (equal jitter) instead of every 1 s.
const DAEMON_BACKOFF_MAX: u64 = 8;
/// Daemon cells: `[outbox] retry_base` = `retry_max` (seconds): a failed message is retried
/// after 1–8 s (full jitter, whole seconds), about 4 s on average.
const DAEMON_OUTBOX_RETRY: u64 = 8;
/// Daemon cells: a healed server has the data within this time (the longest backoff, the
/// next flush, the delivery itself, on a busy machine).
const RECOVERY: Duration = Duration::from_secs(DAEMON_BACKOFF_MAX + DAEMON_OUTBOX_RETRY + 4);
/// Daemon cells: SIGTERM to exit, `[daemon] stop_timeout` plus a margin.
const DAEMON_STOP_TIMEOUT: u64 = 5;
const STOP_WAIT: Duration = Duration::from_secs(DAEMON_STOP_TIMEOUT + 5);

/// The most requests an agent may send to the faulty endpoint while it fails, in one cell.
///
/// One-shot: one run, 2 transport attempts per message, a handful of messages.
///
/// Daemon, over [`WINDOW`]: a sanity ceiling; the daemon before backing off on delivery
/// failures and before one-flush-at-a-time sent 42–68 requests here (each of its six tasks,
/// every second, re-sent every due message). The real bound is relative, checked once both
/// blocks are in: see [`backs_off`].
fn max_requests(mode: Mode) -> usize {
    match mode {
        Mode::OneShot => 12,
        Mode::Daemon => 40,
    }
}

/// The daemon backs off: over [`WINDOW`] (W = 15 s) it sends at most 2/3 of what a loop
/// running the one-shot task every second would ((W + 1) × the one-shot cell's requests per
/// run: 16 runs). Why it stays under: the failing task itself runs every 4–8 s
/// ([`DAEMON_BACKOFF_MAX`], equal jitter) instead of every 1 s, so about 3 runs in W, and a
/// message the other tasks' flushes retry waits 1–8 s (whole seconds, mean ≈ 3.5 s,
/// [`DAEMON_OUTBOX_RETRY`]), so about 4 more tries: some 7 tries per message instead of 16.
/// (A run's new State, AVConfig or scheduler report replaces the pending one and inherits
/// its backoff: re-running the task does not make it try sooner.) 2/3 leaves room for the
/// jitter.
fn backs_off(daemon: usize, one_shot_per_run: usize) -> bool {
    daemon * 3 <= (WINDOW.as_secs() as usize + 1) * one_shot_per_run * 2
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::OneShot => "one-shot",
            Mode::Daemon => "daemon",
        }
    }

    /// agent.toml tables of the mode: the daemon runs every task every second, backs off
    /// within seconds, and its outbox retries within seconds (so recovery fits a test).
    fn config(self) -> String {
        match self {
            Mode::OneShot => "[outbox]\nretry_base = 1\nretry_max = 1\n".into(),
            Mode::Daemon => {
                let mut t = format!(
                    "[outbox]\nretry_base = {DAEMON_OUTBOX_RETRY}\nretry_max = {DAEMON_OUTBOX_RETRY}\n\
                     [daemon]\nalerts_every = \"1s\"\nstop_timeout = \"{DAEMON_STOP_TIMEOUT}s\"\nbackoff_max = \"{DAEMON_BACKOFF_MAX}s\"\n"
                );
                for task in ["Getjobs", "Runjobs", "State", "AVConfig", "Scheduler"] {
                    t.push_str(&format!(
                        "[schedule.tasks.{task}]\nevery = \"1s\"\nwait_rand = 0\n"
                    ));
                }
                t
            }
        }
    }

    /// The failing phase: returns the exit code it ended with (one-shot) and the times at
    /// which requests reached the faulty endpoint, with what went wrong.
    fn fail(self, cell: &Sandbox, ep: Ep, problems: &mut Vec<String>) -> Failing {
        let d = &cell.d;
        let before = d.requests().len();
        let endpoint = ep_requests(ep, before);
        match self {
            Mode::OneShot => {
                let r = one_shot(cell, ep);
                if r.code != Some(TASK_FAILED) {
                    problems.push(format!(
                        "exit code {:?}, expected {TASK_FAILED}: {}",
                        r.code,
                        r.stderr.lines().last().unwrap_or_default()
                    ));
                }
                Failing {
                    code: r.code,
                    arrivals: vec![Duration::ZERO; endpoint(d)],
                    daemon: None,
                }
            }
            Mode::Daemon => {
                let started = Instant::now();
                let mut daemon = match Daemon::try_start(
                    &cell.s,
                    &cell.s.dir.path().join("daemon.log"),
                    RECOVERY,
                ) {
                    Ok(daemon) => daemon,
                    Err(e) => {
                        problems.push(e);
                        return Failing {
                            code: None,
                            arrivals: Vec::new(),
                            daemon: None,
                        };
                    }
                };
                // Watch the window: the daemon stays up; note when each request arrives.
                let mut arrivals = Vec::new();
                while started.elapsed() < WINDOW {
                    std::thread::sleep(Duration::from_millis(100));
                    let n = endpoint(d);
                    arrivals.resize(n.max(arrivals.len()), started.elapsed());
                    if let Some(code) = daemon.exited() {
                        problems.push(format!(
                            "the daemon exited ({code:?}) during the fault: {}",
                            daemon.log_tail(3)
                        ));
                        break;
                    }
                }
                Failing {
                    code: None,
                    arrivals,
                    daemon: Some(daemon),
                }
            }
        }
    }

    /// The server healed: let the agent deliver. Returns how long it took.
    fn heal(
        self,
        cell: &Sandbox,
        ep: Ep,
        kind: Kind,
        failing: &mut Failing,
        problems: &mut Vec<String>,
    ) -> Duration {
        let started = Instant::now();
        match self {
            Mode::OneShot => {
                // Let the outbox backoff pass, run again.
                let due = outbox_kinds(&cell.state())
                    .iter()
                    .map(|(_, n, _)| *n)
                    .max()
                    .unwrap_or(0);
                while unix_now() <= due {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let r = one_shot(cell, ep);
                if r.code != Some(0) {
                    problems.push(format!(
                        "after healing: exit code {:?}: {}",
                        r.code,
                        r.stderr.lines().last().unwrap_or_default()
                    ));
                }
            }
            Mode::Daemon => {
                let Some(mut daemon) = failing.daemon.take() else {
                    return started.elapsed();
                };
                if matches!(kind, Kind::Tls | Kind::UnknownHost) {
                    // `server` is re-read on SIGHUP (the next run opens its client from the
                    // reloaded configuration): no restart.
                    if !daemon.signal("HUP") {
                        problems.push("kill -HUP failed".into());
                    }
                    if let Err(e) = daemon.try_wait_log("configuration reloaded", RECOVERY) {
                        problems.push(e);
                    }
                }
                // No command: the daemon delivers by itself. Watched: the double, and the
                // outbox size the daemon writes in its status file after each run (the store
                // itself is checked once the daemon stopped, see `run_cell`).
                while !(on_server(cell, ep) && settled(cell) && daemon_outbox(cell) == Some(0))
                    && started.elapsed() < RECOVERY
                {
                    if let Some(code) = daemon.exited() {
                        problems.push(format!(
                            "the daemon exited ({code:?}) after healing: {}",
                            daemon.log_tail(3)
                        ));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let took = started.elapsed();
                match daemon.try_stop(STOP_WAIT) {
                    Ok(0) => {}
                    Ok(code) => problems.push(format!("SIGTERM: exit code {code}")),
                    Err(e) => problems.push(e),
                }
                return took;
            }
        }
        started.elapsed()
    }
}

/// What the failing phase left.
struct Failing {
    /// Exit code of the one-shot run.
    code: Option<i32>,
    /// Arrival time (from the phase's start) of each request to the faulty endpoint.
    arrivals: Vec<Duration>,
    /// The running daemon, stopped once healed.
    daemon: Option<Daemon>,
}

/// A counter of the requests to `ep`'s endpoint after the first `before`.
fn ep_requests(ep: Ep, before: usize) -> impl Fn(&Double) -> usize {
    let (name, method) = ep.target();
    let path = format!("/api/{name}/");
    move |d: &Double| {
        d.requests()
            .get(before..)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.path.contains(&path) && method.is_none_or(|m| r.method == m))
            .count()
    }
}

/// Runs the endpoint's one-shot task.
fn one_shot(cell: &Sandbox, ep: Ep) -> RunResult {
    let mut args = ep.task();
    if ep == Ep::Agents {
        args.push("--key-file".into());
        args.push(cell.key_file.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cell.s.run(&args)
}

/// One cell's world: a fresh GLPI double, an agent sandbox, the job made for the cell.
struct Sandbox {
    mode: Mode,
    d: Double,
    s: AgentSandbox,
    root: PathBuf,
    alerts: PathBuf,
    key_file: PathBuf,
    job: Option<i64>,
}

impl Sandbox {
    fn state(&self) -> PathBuf {
        self.s.state_dir()
    }

    /// agent.toml for a cell: short timeouts (the stall column), 2 transport attempts, the
    /// mode's outbox backoff and schedule, the test backend in-process (one process less per
    /// run: the CI budget).
    fn write_config(&self, server: &str) {
        let text = format!(
            "server = \"{server}\"\nstate_dir = \"{}\"\nplugins_dir = \"{}\"\nuuid = \"{UUID}\"\nbackend = \"testav\"\n\
             [http]\ntimeout = 1\nconnect_timeout = 1\n[http.retry]\nmax_attempts = 2\nbase_delay_ms = 10\nmax_delay_ms = 100\n\
             [plugins]\nisolation = \"in-process\"\n\
             [backends.testav]\nalerts_file = \"{}\"\n\
             [schedule]\nroot = \"{}\"\n{}",
            self.state().display(),
            self.s.dir.path().join("plugins").display(),
            self.alerts.display(),
            self.root.display(),
            self.mode.config(),
        );
        std::fs::write(self.s.config_path(), text).expect("write agent.toml");
    }
}

/// The result of one cell, each check with its reason when it failed.
struct Cell {
    /// The daemon cell of an endpoint it cannot serve (enrollment).
    not_applicable: bool,
    code: Option<i32>,
    requests: usize,
    /// Smallest gap between two tries (requests more than 0.5 s apart), daemon cells.
    min_gap: Option<Duration>,
    /// Seconds from healing to delivered (daemon cells).
    recovered: Option<f64>,
    secs: f64,
    problems: Vec<String>,
}

impl Cell {
    fn failed(problem: String) -> Cell {
        Cell {
            not_applicable: false,
            code: None,
            requests: 0,
            min_gap: None,
            recovered: None,
            secs: 0.0,
            problems: vec![problem],
        }
    }

    fn mark(&self, mode: Mode) -> String {
        let code = self.code.map_or("sig".into(), |c| c.to_string());
        if !self.problems.is_empty() {
            return match mode {
                Mode::OneShot => format!("FAIL {code}"),
                Mode::Daemon => format!("FAIL {}", self.requests),
            };
        }
        if self.not_applicable {
            return format!("n/a {code}");
        }
        match mode {
            Mode::OneShot => format!("ok {code}/{}", self.requests),
            Mode::Daemon => format!("ok {}/{:.0}s", self.requests, self.recovered.unwrap_or(0.0)),
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

/// Whether the double has what the agent was to deliver to `ep` (for a GET, the agent has
/// what the double handed out).
fn delivered(cell: &Sandbox, ep: Ep) -> bool {
    on_server(cell, ep)
        && (ep != Ep::JobsGet
            || Store::open(&cell.state())
                .and_then(|st| st.jobs())
                .is_ok_and(|js| js.iter().any(|j| Some(j.job_id) == cell.job)))
}

/// The cell's job, if any, is not in the agent's hands any more (a daemon runs a job it
/// fetched at once: stopping it meanwhile would cancel the scan).
fn settled(cell: &Sandbox) -> bool {
    let status = cell.job.and_then(|j| cell.d.job(j)).map(|j| j.job_status);
    !matches!(status.as_deref(), Some("downloaded" | "running"))
}

/// The outbox size in the running daemon's status file.
fn daemon_outbox(cell: &Sandbox) -> Option<u64> {
    let text = std::fs::read_to_string(cell.state().join("daemon-status.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["outbox"].as_u64()
}

/// The double's side of [`delivered`].
fn on_server(cell: &Sandbox, ep: Ep) -> bool {
    let d = &cell.d;
    let job = cell.job;
    let job_status = job.and_then(|j| d.job(j)).map(|j| j.job_status);
    match ep {
        Ep::Agents => !d.agents().is_empty(),
        // Handed out (a daemon runs it at once: it may be further).
        Ep::JobsGet => matches!(
            job_status.as_deref(),
            Some("downloaded" | "running" | "successful")
        ),
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
    }
}

/// The daemon block's agents row: the daemon never enrolls (enrollment is the one-shot
/// `-t Enrollment` with a key), so there is no enrollment to fail. What is checked instead:
/// a daemon started before enrollment stays up, sends nothing, and stops cleanly.
fn daemon_without_enrollment(cell: &Sandbox) -> Cell {
    let mut problems = Vec::new();
    let mut code = None;
    match Daemon::try_start(&cell.s, &cell.s.dir.path().join("daemon.log"), RECOVERY) {
        Err(e) => problems.push(e),
        Ok(mut daemon) => {
            std::thread::sleep(Duration::from_secs(2));
            if let Some(c) = daemon.exited() {
                problems.push(format!("an unenrolled daemon exited ({c:?})"));
            }
            match daemon.try_stop(STOP_WAIT) {
                Ok(c) => code = Some(c),
                Err(e) => problems.push(e),
            }
        }
    }
    if code.is_some_and(|c| c != 0) {
        problems.push(format!("SIGTERM: exit code {code:?}"));
    }
    if !cell.d.requests().is_empty() {
        problems.push("an unenrolled daemon talked to the server".into());
    }
    Cell {
        not_applicable: true,
        code,
        requests: 0,
        min_gap: None,
        recovered: None,
        secs: 0.0,
        problems,
    }
}

fn run_cell(mode: Mode, ep: Ep, kind: Kind, plugins: &[PathBuf]) -> Cell {
    let started = Instant::now();
    let mut problems = Vec::new();
    let d = Double::start();
    d.create_key(KEY, 100, 3600);
    let s = AgentSandbox::new(&d.base_url());
    let mut cell = Sandbox {
        mode,
        root: s.dir.path().join("root"),
        alerts: s.dir.path().join("alerts.jsonl"),
        key_file: s.dir.path().join("enrollment-key.txt"),
        s,
        d,
        job: None,
    };
    std::fs::create_dir_all(&cell.root).expect("schedule root");
    std::fs::write(&cell.alerts, "").expect("alerts file");
    std::fs::write(&cell.key_file, KEY).expect("key file");
    cell.write_config(&cell.d.base_url());
    cell.s.install_plugins(plugins);
    let state = cell.state();
    if mode == Mode::Daemon && ep == Ep::Agents {
        return daemon_without_enrollment(&cell);
    }

    // Set-up on a healthy server, with one-shot runs.
    if ep != Ep::Agents {
        cell.s
            .run(&[
                "-t",
                "Enrollment",
                "--key-file",
                cell.key_file.to_str().unwrap_or_default(),
            ])
            .assert_code(0);
        let agent = cell
            .d
            .agents()
            .first()
            .map(|a| (a.id, a.plugin_armadito_antiviruses_id));
        let (agent, av) = agent.expect("enrolled on the double");
        if matches!(ep, Ep::JobsGet | Ep::JobsPost | Ep::Scans | Ep::Alerts) {
            let tree = make_tree(&cell.s.dir.path().join("tree"), 2, 1);
            let cfg = cell
                .d
                .create_scanconfig("tree", tree.to_str().unwrap_or_default(), "", av);
            cell.job = Some(cell.d.create_job(agent, cfg, 1));
            if ep != Ep::JobsGet {
                cell.s.run(&["-t", "Getjobs"]).assert_code(0);
            }
        }
    }

    // The fault.
    let (name, method) = ep.target();
    match kind.fault() {
        Some(f) => cell.d.outage(name, method, f, 0),
        None => {
            let port = cell.d.port();
            let broken = match kind {
                // The double speaks plain HTTP: the TLS handshake fails on its first record.
                Kind::Tls => format!("https://127.0.0.1:{port}/glpi/plugins/armadito"),
                _ => format!("http://glpi.fault-matrix.invalid:{port}/glpi/plugins/armadito"),
            };
            cell.write_config(&broken);
        }
    }
    let t0 = unix_now();
    let mut failing = mode.fail(&cell, ep, &mut problems);
    let requests = failing.arrivals.len();
    // Backs off: a bounded number of requests, see `max_requests`.
    if requests > max_requests(mode) {
        problems.push(format!(
            "{requests} requests to {name} (at {:?})",
            failing.arrivals
        ));
    }
    let tries: Vec<Duration> = failing
        .arrivals
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .filter(|g| *g > Duration::from_millis(500))
        .collect();
    let min_gap = tries.iter().min().copied();

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
            // at the first unreachable answer) is simply still there. A daemon's latest
            // State/AVConfig/scheduler report replaces the one tried before and keeps its
            // count and its next try.
            if !kept.iter().any(|(_, _, a)| *a > 0) && requests == 0 {
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
            if enrolled.is_some() || !cell.d.agents().is_empty() {
                problems.push("enrolled although the server failed".into());
            }
            if !cell.key_file.exists() {
                problems.push("the enrollment key file is gone".into());
            }
        }
        None => {
            let j = cell.job.and_then(|j| cell.d.job(j)).map(|j| j.job_status);
            if j.as_deref() != Some("queued") {
                problems.push(format!("job not queued on the server any more: {j:?}"));
            }
        }
    }

    // Heal; the agent recovers by itself (daemon) or by its next run (one-shot).
    cell.d.heal();
    cell.write_config(&cell.d.base_url());
    let recovered = mode.heal(&cell, ep, kind, &mut failing, &mut problems);
    let left = outbox_kinds(&state);
    if !left.is_empty() {
        problems.push(format!(
            "after healing: {} message(s) still queued",
            left.len()
        ));
    }
    if !delivered(&cell, ep) {
        problems.push("after healing: the server does not have the data".into());
    }
    let v = cell.d.violations();
    if !v.is_empty() {
        problems.push(format!("double violations: {v:?}"));
    }
    if mode == Mode::Daemon && !problems.is_empty() {
        let log = std::fs::read_to_string(cell.s.dir.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let lines: Vec<&str> = lines
            .into_iter()
            .filter(|l| !l.contains(" DEBUG "))
            .collect();
        problems.push(format!(
            "job {:?}; daemon log:\n{}",
            cell.job.and_then(|j| cell.d.job(j)).map(|j| j.job_status),
            lines[lines.len().saturating_sub(15)..].join("\n")
        ));
    }
    Cell {
        not_applicable: false,
        code: failing.code,
        requests,
        min_gap,
        recovered: (mode == Mode::Daemon).then_some(recovered.as_secs_f64()),
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
    let only = std::env::var("FAULT_MATRIX_ONLY").unwrap_or_default();
    for mode in MODES {
        for ep in ENDPOINTS {
            for kind in KINDS {
                let name = format!("{} {} × {}", mode.label(), ep.label(), kind.label());
                if name.contains(&only) {
                    cells.push((mode, ep, kind));
                }
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
                    .unwrap_or_else(|p| {
                        Cell::failed(format!(
                            "the cell panicked: {}",
                            p.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default()
                        ))
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
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    // Backs off, relative to the one-shot run of the same cell (see `backs_off`).
    let per_run: Vec<((Ep, Kind), usize)> = results
        .iter()
        .filter(|((m, _, _), _)| *m == Mode::OneShot)
        .map(|((_, e, k), c)| ((*e, *k), c.requests))
        .collect();
    for ((m, e, k), c) in results.iter_mut() {
        let one_shot = per_run
            .iter()
            .find(|(ek, _)| *ek == (*e, *k))
            .map(|(_, n)| *n);
        if let (Mode::Daemon, false, Some(n)) = (*m, c.not_applicable, one_shot)
            && !backs_off(c.requests, n)
        {
            c.problems.push(format!(
                "{} requests in {} s: not under half of a loop every 1 s ({n} per run)",
                c.requests,
                WINDOW.as_secs()
            ));
        }
    }
    let find = |m: Mode, e: Ep, k: Kind| {
        results
            .iter()
            .find(|((rm, re, rk), _)| *rm == m && *re == e && *rk == k)
            .map(|(_, c)| c)
    };

    let mut table = String::new();
    for mode in MODES {
        table.push_str(&format!("\nfault matrix, {} agent: {}\n", mode.label(), match mode {
            Mode::OneShot => "cell = exit code of the failing run / requests it sent to the endpoint",
            Mode::Daemon => "cell = requests to the endpoint during the 15 s fault / seconds to deliver once healed",
        }));
        table.push_str(&format!("{:<11}", "endpoint"));
        for k in KINDS {
            table.push_str(&format!(" {:>10}", k.label()));
        }
        table.push('\n');
        for ep in ENDPOINTS {
            table.push_str(&format!("{:<11}", ep.label()));
            for k in KINDS {
                let mark = find(mode, ep, k).map_or("missing".into(), |c| c.mark(mode));
                table.push_str(&format!(" {mark:>10}"));
            }
            table.push('\n');
        }
        match mode {
            Mode::OneShot => table.push_str(&format!(
                "ok = exit {TASK_FAILED}, data kept in the outbox (or the job still queued on the server) with a later next try, \
                 delivered by the next run once healed.\n"
            )),
            Mode::Daemon => {
                let gaps: Vec<Duration> = results
                    .iter()
                    .filter(|((m, _, _), _)| *m == Mode::Daemon)
                    .filter_map(|(_, c)| c.min_gap)
                    .collect();
                let most = results
                    .iter()
                    .filter(|((m, _, _), _)| *m == Mode::Daemon)
                    .map(|(_, c)| c.requests)
                    .max()
                    .unwrap_or(0);
                table.push_str(&format!(
                    "ok = alive through the fault, data kept in the outbox (or the job still queued), at most 2/3 of the \
                     requests of a one-shot run every 1 s (most seen {most}, ceiling {}, smallest gap between tries {:.1} s), \
                     the double has the data without any command once healed, SIGTERM exits 0, outbox empty. \
                     TLS/no host: healed by agent.toml + SIGHUP (server is re-read, no restart).\n\
                     agents: n/a, the daemon never enrolls (one-shot -t Enrollment does); checked: unenrolled, it stays up, \
                     sends nothing, and exits 0 (shown) on SIGTERM.\n",
                    max_requests(Mode::Daemon),
                    gaps.iter().min().map_or(0.0, Duration::as_secs_f64),
                ));
            }
        }
    }
    let slowest = results.iter().map(|(_, c)| c.secs).fold(0.0f64, f64::max);
    table.push_str(&format!(
        "{} cells in {:.1} s (slowest {slowest:.1} s)\n",
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
