//! `armadito-agent daemon`: one long-lived process that runs every task on its schedule.
//!
//! * One daemon per state folder: it holds `<state_dir>/daemon.lock` (an OS lock, released
//!   if it dies); a second one exits with code 7 and says which lock is held.
//! * Each scheduled task has its own loop: it sleeps until the time [`policy`] gives, takes
//!   the task's `run-<Task>` lock (the one a one-shot `-t Task` takes, so a cron-started run
//!   and the daemon never run the same task at once: the later one skips), runs the task and
//!   records the outcome. The loops are joined on one thread: a long scan (Runjobs) does not
//!   stop Getjobs from polling, and Getjobs wakes Runjobs as soon as it has stored new jobs
//!   (Runjobs re-reads the queue between jobs, urgent first, so a new urgent job runs next).
//! * Alerts runs every `[daemon] alerts_every` (5 s) unless `[schedule.tasks.Alerts] every` is
//!   set, so detections reach GLPI within seconds. The Scheduler task fetches the schedule
//!   defined on the server (validated and bounded as for `-t Scheduler`), applies it in
//!   memory and reports it; it never writes cron or systemd entries.
//! * The backend is started once and hot-loaded ([`hotload`]).
//! * SIGTERM/SIGINT ([`Stop`]): the running scan is cancelled and reported as by a one-shot
//!   Runjobs, other runs are abandoned (the store is transactional), the outbox is flushed,
//!   all within `[daemon] stop_timeout`; exit 0. SIGHUP: agent.toml is read again (a file that
//!   does not load, or whose schedule is invalid, is refused and logged; the old one stays),
//!   and the plugins folder is rescanned. Logging settings and the plugins folder itself are
//!   read at start only.
//! * `armadito-agent status` reads what [`status`] writes after every run.

mod hotload;
pub mod policy;
mod signals;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Notify, watch};

pub use crate::session::Stop;

use crate::config::Config;
use crate::schedule::{Schedule, ScheduledTask};
use crate::session::{AgentError, Context, Enrolled, ServerDefined};
use crate::store::{JobState, MessageKind, NewMessage, TaskLock};
use crate::transport::Endpoint;
use crate::wire::{AttrValue, SchedulerReport, TaskName, UnixTime};

use hotload::LiveBackend;
use policy::{Backoff, Cadence, Outcome, Plan};
use signals::SystemdState;
use status::DaemonStatus;

/// How long a second daemon waits for the lock (a `status` probing it holds it an instant).
const LOCK_WAIT: Duration = Duration::from_secs(1);
/// Longest single sleep: wall-clock schedules are re-read at least this often, so a clock
/// step (NTP, resume from suspend) delays a cron task by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// A burst of folder events (a copy in several writes) is handled in one rescan.
const WATCH_SETTLE: Duration = Duration::from_millis(300);

/// What the loops share. Locks are never held across an `.await`.
struct Shared {
    /// The configuration in force (replaced on SIGHUP).
    ctx: Mutex<Arc<Context>>,
    /// The local schedule with the server's entries applied.
    schedule: Mutex<Schedule>,
    /// The server's last schedule, applied again on top of a reloaded local one.
    server_entries: Mutex<Option<Vec<AttrValue>>>,
    /// Bumped when the schedule changes: the task loops recompute their next run.
    generation: watch::Sender<u64>,
    backend: Mutex<Arc<LiveBackend>>,
    status: Mutex<DaemonStatus>,
    runjobs_now: Notify,
    rescan_now: Notify,
    stop: Stop,
    rng: Mutex<StdRng>,
}

impl Shared {
    fn ctx(&self) -> Arc<Context> {
        self.ctx.lock().clone()
    }

    fn plan(&self, task: ScheduledTask) -> Option<Plan> {
        let schedule = self.schedule.lock();
        let entry = schedule.tasks.get(&task).filter(|e| e.enabled)?;
        let mut plan = Plan::from_entry(entry);
        if task == ScheduledTask::Alerts && entry.every.is_none() {
            // Live alerts: the daemon reads the backend's detections every few seconds.
            let every = self.ctx().config.daemon.alerts_every;
            plan.cadence = Cadence::Every(every);
        }
        Some(plan)
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            base: policy::BACKOFF_BASE,
            max: self.ctx().config.daemon.backoff_max,
        }
    }

    fn write_status(&self) {
        let ctx = self.ctx();
        let mut status = self.status.lock().clone();
        status.updated_at = UnixTime::now().secs();
        status.backend = self.backend.lock().in_use();
        if let Ok(store) = ctx.open_store() {
            status.queue = store
                .jobs()
                .map(|jobs| {
                    jobs.iter()
                        .filter(|j| matches!(j.state, JobState::Queued | JobState::Running))
                        .count()
                })
                .unwrap_or(0);
            status.outbox = store.outbox_len().unwrap_or(0);
        }
        if let Err(e) = status::write(&ctx.config.state_dir, &status) {
            tracing::warn!("cannot write the daemon status file: {e}");
        }
        *self.status.lock() = status;
    }
}

/// Runs the daemon until `stop` is requested (or SIGTERM/SIGINT, Ctrl-C on Windows).
pub async fn run(ctx: &Context, stop: Stop) -> Result<(), AgentError> {
    let state_dir = ctx.config.state_dir.clone();
    let lock = match TaskLock::try_acquire(&state_dir, status::LOCK_NAME)? {
        Some(lock) => Ok(lock),
        None => TaskLock::acquire(&state_dir, status::LOCK_NAME, LOCK_WAIT),
    };
    let _lock = match lock {
        Ok(lock) => lock,
        Err(crate::store::StoreError::Locked { lock, .. }) => {
            return Err(AgentError::DaemonRunning(format!(
                "another armadito-agent daemon is running on {} (it holds {}): stop it first (systemctl stop armadito-agent)",
                state_dir.display(),
                lock.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let schedule = ctx
        .config
        .schedule
        .local_schedule()
        .map_err(AgentError::Usage)?;
    crate::session::summaries_to_log();
    signals::lean_allocator(true);
    // The backend starts before anything else: a daemon that cannot scan says so at once.
    let backend = tokio::task::spawn_blocking({
        let ctx = ctx.clone();
        move || LiveBackend::start(&ctx)
    })
    .await
    .map_err(|e| AgentError::Task(format!("backend start: {e}")))??;
    let backend = Arc::new(backend);
    if let Some(b) = backend.in_use() {
        tracing::info!(
            backend = b.name,
            version = b.version,
            file = b.file,
            sha256 = b.sha256,
            "backend in use"
        );
    }
    let now = UnixTime::now().secs();
    let shared = Shared {
        ctx: Mutex::new(Arc::new(ctx.clone())),
        schedule: Mutex::new(schedule),
        server_entries: Mutex::new(None),
        generation: watch::Sender::new(0),
        backend: Mutex::new(backend),
        status: Mutex::new(DaemonStatus {
            pid: std::process::id(),
            started_at: now,
            updated_at: now,
            ..Default::default()
        }),
        runjobs_now: Notify::new(),
        rescan_now: Notify::new(),
        stop: stop.clone(),
        rng: Mutex::new(StdRng::from_os_rng()),
    };
    shared.write_status();
    let reload = Arc::new(Notify::new());
    let listener = signals::listen(stop.clone(), reload.clone());
    signals::notify_systemd(SystemdState::Ready("running"));
    tracing::info!(pid = std::process::id(), state_dir = %state_dir.display(), "daemon started");

    let sh = &shared;
    let task_loops = async {
        tokio::join!(
            task_loop(sh, ScheduledTask::Getjobs),
            task_loop(sh, ScheduledTask::Runjobs),
            task_loop(sh, ScheduledTask::State),
            task_loop(sh, ScheduledTask::Alerts),
            task_loop(sh, ScheduledTask::AvConfig),
            task_loop(sh, ScheduledTask::Scheduler),
        )
    };
    tokio::join!(task_loops, plugins_loop(sh), reload_loop(sh, &reload));

    // Stopping: the loops have returned (a cancelled scan was reported within the deadline).
    signals::notify_systemd(SystemdState::Stopping);
    let ctx = shared.ctx();
    let deadline = ctx.config.daemon.stop_timeout;
    let flushed = tokio::time::timeout(deadline, async {
        let mut agent = Enrolled::open(&ctx)?;
        agent.flush_outbox(&ctx).await
    })
    .await;
    match flushed {
        Ok(Ok(r)) if r.pending > 0 => {
            tracing::warn!(
                pending = r.pending,
                "stopping with messages still in the outbox (kept for the next start)"
            )
        }
        Ok(Ok(_)) | Ok(Err(AgentError::NotEnrolled)) => {}
        Ok(Err(e)) => tracing::warn!("final outbox flush failed (messages kept): {e}"),
        Err(_) => tracing::warn!(
            "final outbox flush did not finish within [daemon] stop_timeout = {}s (messages kept)",
            deadline.as_secs()
        ),
    }
    listener.abort();
    let _ = std::fs::remove_file(state_dir.join(status::STATUS_FILE));
    tracing::info!("daemon stopped");
    Ok(())
}

fn local_now() -> DateTime<Local> {
    Local::now()
}

/// One task: wait for its time, run it, pace the next run.
async fn task_loop(sh: &Shared, task: ScheduledTask) {
    let mut generation = sh.generation.subscribe();
    let mut plan = sh.plan(task);
    let mut failures = 0u32;
    let mut due = plan
        .as_ref()
        .map(|p| policy::first_due(p, &local_now(), &mut *sh.rng.lock()));
    loop {
        sh.status
            .lock()
            .tasks
            .entry(task.as_str().to_string())
            .or_default()
            .next_run = due.as_ref().map(|d| d.timestamp());
        let wait = due.as_ref().map(|d| {
            (*d - local_now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP)
        });
        tokio::select! {
            _ = sh.stop.requested() => return,
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                let new_plan = sh.plan(task);
                if new_plan != plan {
                    tracing::info!(task = task.as_str(), "new schedule: {}", describe(new_plan.as_ref()));
                    plan = new_plan;
                    due = plan.as_ref().map(|p| {
                        policy::next_due(p, sh.backoff(), failures, &local_now(), &mut *sh.rng.lock())
                            .unwrap_or_else(far_future)
                    });
                }
                continue;
            }
            _ = sh.runjobs_now.notified(), if task == ScheduledTask::Runjobs => {}
            _ = tokio::time::sleep(wait.unwrap_or(MAX_SLEEP)), if wait.is_some() => {
                if due.as_ref().is_some_and(|d| *d > local_now()) {
                    continue; // a capped sleep: not due yet
                }
            }
        }
        let outcome = run_once(sh, task).await;
        if sh.stop.is_requested() {
            return;
        }
        failures = policy::failures_after(failures, outcome);
        if failures > 0 {
            tracing::info!(
                task = task.as_str(),
                failures,
                "server unavailable or disk full: backing off"
            );
        }
        due = plan.as_ref().map(|p| {
            policy::next_due(p, sh.backoff(), failures, &local_now(), &mut *sh.rng.lock())
                .unwrap_or_else(far_future)
        });
        if let Some(t) = sh.status.lock().tasks.get_mut(task.as_str()) {
            t.failures = failures;
        }
        sh.write_status();
        signals::lean_allocator(false);
    }
}

/// For a cron expression that never fires again: park the task.
fn far_future() -> DateTime<Local> {
    local_now() + chrono::TimeDelta::days(3650)
}

fn describe(plan: Option<&Plan>) -> String {
    match plan {
        None => "disabled".into(),
        Some(p) => match &p.cadence {
            Cadence::Cron(c) => format!("cron {c:?}, spread {} s", p.wait_rand.as_secs()),
            Cadence::Every(d) => format!("every {}", humantime::format_duration(*d)),
        },
    }
}

/// Runs one task under its `run-<Task>` lock and records the result.
async fn run_once(sh: &Shared, task: ScheduledTask) -> Outcome {
    let ctx = sh.ctx();
    let lock_name = format!("run-{}", task.as_str());
    let lock = match TaskLock::try_acquire(&ctx.config.state_dir, &lock_name) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            tracing::info!(
                task = task.as_str(),
                "a one-shot run of this task is in progress: skipped"
            );
            return Outcome::Failed;
        }
        Err(e) => return record(sh, task, Err(e.into())),
    };
    let started = UnixTime::now().secs();
    let backend = sh.backend.lock().clone();
    let stop = sh.stop.clone();
    // On stop, a run in progress gets `[daemon] stop_timeout` to end by itself (a scan notices
    // `stop`, cancels and reports; Getjobs must store a reply the server already marked
    // downloaded), then it is abandoned: what it stored is committed, the rest is redone.
    let deadline = ctx.config.daemon.stop_timeout;
    let run = async {
        match task {
            ScheduledTask::Getjobs => crate::jobs::getjobs::run(&ctx).await,
            ScheduledTask::Runjobs => {
                crate::jobs::runjobs::run_with(&ctx, &*backend, stop.clone()).await
            }
            ScheduledTask::State => crate::tasks::state::run_with(&ctx, &*backend).await,
            ScheduledTask::Alerts => crate::tasks::alerts::run_with(&ctx, &*backend).await,
            ScheduledTask::AvConfig => crate::tasks::avconfig::run_with(&ctx, &*backend).await,
            ScheduledTask::Scheduler => scheduler(sh, &ctx).await,
        }
    };
    let result = tokio::select! {
        r = run => r,
        _ = async { stop.requested().await; tokio::time::sleep(deadline).await } => {
            Err(AgentError::Task(format!(
                "abandoned {} s after the stop request (its messages stay in the outbox)",
                deadline.as_secs()
            )))
        }
    };
    drop(lock);
    let ok = result.is_ok();
    let outcome = record(sh, task, result);
    if let Some(t) = sh.status.lock().tasks.get_mut(task.as_str()) {
        t.last_run = Some(started);
    }
    // New jobs stored: run them now rather than at Runjobs' next time.
    if task == ScheduledTask::Getjobs && ok && has_queued_jobs(&ctx) {
        sh.runjobs_now.notify_one();
    }
    outcome
}

fn has_queued_jobs(ctx: &Context) -> bool {
    ctx.open_store()
        .and_then(|s| Ok(s.next_queued_job()?.is_some()))
        .unwrap_or(false)
}

/// Stores a run's result in the status and classifies it for the backoff.
fn record(sh: &Shared, task: ScheduledTask, result: Result<(), AgentError>) -> Outcome {
    let now = UnixTime::now().secs();
    let outcome = match &result {
        Ok(()) => Outcome::Success,
        Err(AgentError::Transport(e)) if e.status().is_none_or(|s| s >= 500) => {
            Outcome::Unavailable
        }
        Err(AgentError::Unavailable(_)) => Outcome::Unavailable,
        // A full disk frees up in minutes or hours, not seconds: retrying each period only
        // fills the log.
        Err(AgentError::Store(_)) => Outcome::Unavailable,
        Err(_) => Outcome::Failed,
    };
    let mut status = sh.status.lock();
    match &result {
        // Every task talks to the server (at least to flush the outbox).
        Ok(()) => status.last_server_contact = Some(now),
        Err(e) => {
            tracing::warn!(task = task.as_str(), "run failed: {e}");
            status.last_error = Some(format!("{}: {e}", task.as_str()));
        }
    }
    let t = status.tasks.entry(task.as_str().to_string()).or_default();
    t.last_result = Some(if result.is_ok() { "ok" } else { "failed" }.into());
    t.last_error = result.err().map(|e| e.to_string());
    outcome
}

/// The daemon's Scheduler task: the server's schedule, applied in memory and reported.
async fn scheduler(sh: &Shared, ctx: &Context) -> Result<(), AgentError> {
    let mut agent = Enrolled::open(ctx)?;
    let read = crate::tasks::scheduler::server_schedule(&agent).await;
    // A server in trouble does not take back what it defined: the last entries stay.
    match &read {
        ServerDefined::Defined(entries) => *sh.server_entries.lock() = Some(entries.clone()),
        ServerDefined::Nothing => *sh.server_entries.lock() = None,
        ServerDefined::Unreadable(_) => {}
    }
    let rejected = apply_schedule(sh, &ctx.config)?;
    for r in &rejected {
        tracing::warn!("server schedule entry rejected, the local value stays in force: {r}");
    }
    let logfile = ctx
        .config
        .log
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let report = SchedulerReport {
        name: "Daemon".into(),
        confdetails: sh
            .schedule
            .lock()
            .confdetails("daemon", &logfile, &rejected),
    };
    let body = agent.body(TaskName::Scheduler, &report)?;
    let msg = NewMessage {
        endpoint: Endpoint::Schedulers.name(),
        kind: MessageKind::Scheduler,
        supersede_key: Some("scheduler".into()),
        job_id: None,
        body,
    };
    agent.send(ctx, &[msg], None).await?;
    match read.unreadable_error("the schedule in force was kept and reported") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Rebuilds the schedule (local from `config`, then the server's last entries) and tells the
/// task loops when it changed.
fn apply_schedule(
    sh: &Shared,
    config: &Config,
) -> Result<Vec<crate::schedule::Rejected>, AgentError> {
    let mut schedule = config
        .schedule
        .local_schedule()
        .map_err(AgentError::Usage)?;
    let rejected = match &*sh.server_entries.lock() {
        Some(entries) => schedule.apply_server(entries, &|_| Ok(()), config.schedule.max_period),
        None => Vec::new(),
    };
    let changed = {
        let mut current = sh.schedule.lock();
        let changed = *current != schedule;
        *current = schedule;
        changed
    };
    if changed {
        sh.generation.send_modify(|g| *g += 1);
    }
    Ok(rejected)
}

/// SIGHUP: reload agent.toml (refused as a whole when anything in it is invalid) and rescan.
async fn reload_loop(sh: &Shared, reload: &Notify) {
    loop {
        tokio::select! {
            _ = sh.stop.requested() => return,
            _ = reload.notified() => {}
        }
        signals::notify_systemd(SystemdState::Reloading);
        let old = sh.ctx();
        match load_checked(&old) {
            Ok(config) => {
                let backend_changed = config.backend != old.config.backend
                    || config.plugins != old.config.plugins
                    || config.backends != old.config.backends;
                let mut ctx = (*old).clone();
                ctx.config = config;
                let ctx = Arc::new(ctx);
                *sh.ctx.lock() = ctx.clone();
                if backend_changed {
                    restart_backend(sh, &ctx).await;
                }
                if let Err(e) = apply_schedule(sh, &ctx.config) {
                    tracing::error!("reloaded schedule not applied: {e}");
                }
                // Pacing that does not live in the schedule ([daemon] alerts_every).
                sh.generation.send_modify(|g| *g += 1);
                tracing::info!(file = ?ctx.config.source, "configuration reloaded");
            }
            Err(e) => {
                tracing::error!("configuration NOT reloaded, the previous one stays in force: {e}")
            }
        }
        sh.rescan_now.notify_one();
        signals::notify_systemd(SystemdState::Ready("running"));
    }
}

/// The configuration file again, with every check a start would make.
fn load_checked(old: &Context) -> Result<Config, String> {
    let config = Config::load(&old.cli.options).map_err(|e| e.to_string())?;
    config.schedule.local_schedule()?;
    config.daemon.validate()?;
    if config.state_dir != old.config.state_dir || config.plugins_dir != old.config.plugins_dir {
        return Err(
            "state_dir and plugins_dir cannot change while the daemon runs: restart it".into(),
        );
    }
    Ok(config)
}

/// Another backend or other backend settings: start it; keep the old one if it cannot start.
async fn restart_backend(sh: &Shared, ctx: &Arc<Context>) {
    let started = tokio::task::spawn_blocking({
        let ctx = ctx.clone();
        move || LiveBackend::start(&ctx)
    })
    .await;
    match started {
        Ok(Ok(b)) => {
            *sh.backend.lock() = Arc::new(b);
            tracing::info!("backend restarted with the new settings");
        }
        Ok(Err(e)) => tracing::error!(
            "the new backend settings cannot start, keeping the running backend: {e}"
        ),
        Err(e) => tracing::error!("backend restart: {e}"),
    }
}

/// Hot loading: rescan on folder events, periodically and on SIGHUP, only between calls.
async fn plugins_loop(sh: &Shared) {
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<()>();
    let dir = sh.backend.lock().plugins_dir().to_path_buf();
    let _watcher = hotload::watch(&dir, tx);
    loop {
        let every = sh.backend.lock().watch_interval();
        tokio::select! {
            _ = sh.stop.requested() => return,
            Some(()) = events.recv() => {
                tokio::time::sleep(WATCH_SETTLE).await;
                while events.try_recv().is_ok() {}
            }
            _ = sh.rescan_now.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
        // Never under a running call: wait until every lease is back.
        let backend = loop {
            let backend = sh.backend.lock().clone();
            if backend.idle() {
                break backend;
            }
            tokio::select! {
                _ = sh.stop.requested() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        };
        let changes = tokio::task::spawn_blocking(move || backend.rescan())
            .await
            .unwrap_or_default();
        if !changes.is_empty() {
            if let Some(b) = sh.backend.lock().in_use() {
                tracing::info!(
                    backend = b.name,
                    version = b.version,
                    file = b.file,
                    sha256 = b.sha256,
                    "backend in use"
                );
                signals::notify_systemd(SystemdState::Status(&format!(
                    "running, backend {} {}",
                    b.name, b.version
                )));
            } else {
                tracing::warn!(
                    "no backend loaded: tasks that need it fail until a plugin is installed"
                );
            }
            sh.write_status();
        }
    }
}
