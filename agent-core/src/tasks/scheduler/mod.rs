//! `-t Scheduler`: install the agent's periodic tasks in the local scheduler and tell the
//! server what was installed.
//!
//! 1. The local schedule: the built-in table (`ScheduledTask::default_entry`) with the
//!    `[schedule]` overrides of agent.toml.
//! 2. `GET api/schedulers/?agent_id=N`: a server-defined schedule, entry by entry on top of
//!    the local one. The shipped plugin answers 400 (no such feature, server-api.md §3.8):
//!    that means "nothing defined" and is logged at debug level only. Any other failure is a
//!    warning, the local schedule is installed and reported, and the run ends `Unavailable`
//!    (exit 1; the daemon backs off and keeps the server entries it had). Each server entry is validated (strict cron
//!    syntax, `--wait-rand N` only, plain user name, safe log path): a bad one is rejected,
//!    logged, reported back, and never written. The server's `name` is not used: how the
//!    schedule is installed is this machine's decision (`[schedule] mode`).
//! 3. Installed by the configured `mode`: a cron file ([`cron`]), systemd units
//!    ([`systemd`]) or Windows scheduled tasks ([`schtasks`]). Each entry runs this very binary
//!    (`current_exe`) with the same `-c` file, `-t <Task>` and `--wait-rand N`, as an argv: no
//!    shell command is ever assembled from data. Files we wrote for another mode are removed,
//!    so switching modes never leaves tasks running twice.
//! 4. `POST api/schedulers` with `{name, confdetails}` through the outbox. The report is sent
//!    on every run even when nothing changed: it is small, the server overwrites it, and the
//!    server's copy heals by itself if it was lost or reset by a re-enrollment. Undelivered,
//!    it stays in the outbox (superseded by the next one) and the task exits 1.

pub mod cron;
pub mod files;
pub mod schtasks;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ScheduleMode;
use crate::schedule::{CronExpr, ScheduledTask};
use crate::session::{AgentError, Context};
use crate::session::{Enrolled, ServerDefined};
use crate::store::{MessageKind, NewMessage};
use crate::transport::Endpoint;
use crate::wire::{AttrValue, SchedulerReport, TaskName, parse_server_schedule};

/// What can go wrong while installing a schedule.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A local setting is unusable (exit 3).
    #[error("{0}")]
    Setting(String),
    /// A frequency the active mode cannot express (exit 3).
    #[error(
        "[schedule.tasks.{task}] freq {freq:?} cannot be installed with mode = \"{mode}\": {reason}"
    )]
    Unsupported {
        task: ScheduledTask,
        freq: String,
        mode: &'static str,
        reason: String,
    },
    /// The scheduler's folder is missing on this machine (exit 3).
    #[error("{} does not exist: {hint}", path.display())]
    MissingDir { path: PathBuf, hint: &'static str },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `systemctl` or `schtasks` failed.
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
}

impl From<SchedulerError> for AgentError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Setting(_)
            | SchedulerError::Unsupported { .. }
            | SchedulerError::MissingDir { .. } => AgentError::Usage(e.to_string()),
            SchedulerError::Io { .. } | SchedulerError::Command { .. } => {
                AgentError::Task(e.to_string())
            }
        }
    }
}

/// The command every scheduled entry runs: this binary, with this run's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    pub exe: String,
    pub config: Option<String>,
}

impl AgentCommand {
    /// The running binary and the `-c`/`ARMADITO_AGENT_CONFIG` file, made absolute (cron and
    /// systemd start jobs in another folder). Without `-c` the scheduled runs use the default
    /// configuration file, as this run did. Other command-line settings (`--state-dir`, `-s`…)
    /// are not carried over: put them in the configuration file.
    pub fn current(config: Option<&Path>) -> Result<Self, SchedulerError> {
        let exe = std::env::current_exe().map_err(|e| {
            SchedulerError::Setting(format!("cannot find the agent's own executable: {e}"))
        })?;
        let config = config
            .map(std::path::absolute)
            .transpose()
            .map_err(|e| SchedulerError::Setting(format!("configuration file path: {e}")))?;
        Self::new(live_path(exe), config)
    }

    pub fn new(exe: PathBuf, config: Option<PathBuf>) -> Result<Self, SchedulerError> {
        Ok(Self {
            exe: checked_path("the agent's executable", &exe)?,
            config: config
                .map(|c| checked_path("the configuration file", &c))
                .transpose()?,
        })
    }

    /// `exe [-c config] -t Task [--wait-rand N]`.
    pub fn argv(&self, task: ScheduledTask, wait_rand: Option<u64>) -> Vec<String> {
        let mut v = vec![self.exe.clone()];
        if let Some(c) = &self.config {
            v.extend(["-c".to_string(), c.clone()]);
        }
        v.extend(["-t".to_string(), task.as_str().to_string()]);
        if let Some(n) = wait_rand {
            v.extend(["--wait-rand".to_string(), n.to_string()]);
        }
        v
    }
}

/// Linux names a replaced binary (package upgrade while running) `… (deleted)`: the path
/// itself, which now holds the new version, is what should be scheduled.
fn live_path(exe: PathBuf) -> PathBuf {
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) if !exe.exists() => PathBuf::from(s),
        _ => exe,
    }
}

/// Paths written into scheduler entries: UTF-8, absolute, and free of what cron (`%`, newline),
/// systemd (control characters) or `schtasks` (`"`) would interpret. Such a path is refused
/// with a message rather than escaped in three different ways.
fn checked_path(what: &str, p: &Path) -> Result<String, SchedulerError> {
    let s = p.to_str().ok_or_else(|| {
        SchedulerError::Setting(format!("{what} {} is not valid UTF-8", p.display()))
    })?;
    if !p.is_absolute() {
        return Err(SchedulerError::Setting(format!(
            "{what} {s:?} is not an absolute path"
        )));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || matches!(c, '%' | '"')) {
        return Err(SchedulerError::Setting(format!(
            "{what} {s:?} contains {c:?}, which cannot be used in a scheduler entry: move it"
        )));
    }
    Ok(s.to_string())
}

/// What an installation did, for the run's one-line summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Files or scheduled tasks written or (re)created.
    pub written: Vec<String>,
    /// Files or scheduled tasks already up to date.
    pub unchanged: Vec<String>,
    /// Entries removed (disabled tasks, another mode's files).
    pub removed: Vec<String>,
}

impl Installed {
    /// One line: short lists in full, longer ones as a count in their common folder.
    fn summary(&self) -> String {
        let list = |v: &[String]| {
            let parents: Vec<Option<&Path>> = v.iter().map(|p| Path::new(p).parent()).collect();
            let common = parents[..].first().copied().flatten().filter(|first| {
                !first.as_os_str().is_empty() && parents.iter().all(|p| *p == Some(*first))
            });
            match (v.len(), common) {
                (0, _) => "-".to_string(),
                (n, Some(dir)) if n > 2 => format!("{n} files in {}", dir.display()),
                _ => v.join(", "),
            }
        };
        format!(
            "written: {}; unchanged: {}; removed: {}",
            list(&self.written),
            list(&self.unchanged),
            list(&self.removed)
        )
    }
}

/// How this run installs the schedule, with what each way needs. A long-running daemon mode
/// plugs in here as one more variant (it would hand the schedule to the daemon, remove the
/// other modes' entries, and report the same way).
enum Installer {
    Cron(files::Target),
    Systemd(files::Target),
    Schtasks,
}

/// Whether `mode` can install `freq` exactly.
pub fn supported(mode: ScheduleMode, freq: &CronExpr) -> Result<(), String> {
    match mode {
        ScheduleMode::Cron | ScheduleMode::Systemd => Ok(()),
        ScheduleMode::Schtasks => schtasks::trigger(freq).map(|_| ()),
    }
}

pub async fn run(ctx: &Context) -> Result<(), AgentError> {
    let mut agent = Enrolled::open(ctx)?;
    // Two runs at once would interleave systemctl calls; files alone would be fine (renames).
    let _lock = agent
        .store
        .lock_task("Scheduler", Duration::from_secs(30))?;
    let cfg = &ctx.config.schedule;
    let mode = cfg.mode;

    // Every local check before the first request.
    mode.available().map_err(AgentError::Usage)?;
    let installer = match mode {
        ScheduleMode::Cron => {
            Installer::Cron(files::Target::new(&cfg.root)?.with_systemctl(&cfg.systemctl)?)
        }
        ScheduleMode::Systemd => {
            Installer::Systemd(files::Target::new(&cfg.root)?.with_systemctl(&cfg.systemctl)?)
        }
        ScheduleMode::Schtasks => Installer::Schtasks,
    };
    let cmd = AgentCommand::current(ctx.cli.options.config.as_deref())?;
    let mut schedule = cfg.local_schedule().map_err(AgentError::Usage)?;
    for (task, entry) in schedule.enabled() {
        if let Some(every) = entry.every {
            return Err(SchedulerError::Setting(format!(
                "[schedule.tasks.{task}] every = {:?} is an interval for `armadito-agent daemon`; {} cannot install it: give a cron freq instead (or run the daemon)",
                humantime::format_duration(every).to_string(),
                mode.as_str()
            ))
            .into());
        }
        supported(mode, &entry.freq).map_err(|reason| SchedulerError::Unsupported {
            task,
            freq: entry.freq.to_string(),
            mode: mode.as_str(),
            reason,
        })?;
    }
    let read = server_schedule(&agent).await;
    let rejected = match &read {
        ServerDefined::Defined(entries) => {
            schedule.apply_server(entries, &|f| supported(mode, f), cfg.max_period)
        }
        _ => Vec::new(),
    };
    for r in &rejected {
        tracing::warn!("server schedule entry rejected, the local value stays in force: {r}");
    }

    let installed = match &installer {
        Installer::Cron(target) => cron::install(target, &schedule, &cmd)?,
        Installer::Systemd(target) => systemd::install(target, &schedule, &cmd)?,
        Installer::Schtasks => schtasks::install(&schedule, &cmd)?,
    };
    tracing::info!(
        mode = mode.as_str(),
        source = schedule.source.as_str(),
        rejected = rejected.len(),
        "schedule installed: {}",
        installed.summary()
    );

    // schtasks runs the agent without a shell, so there is no output redirection: the log
    // file is the agent's own `[log] file`, and that is what is reported.
    let logfile = match mode {
        ScheduleMode::Schtasks => ctx
            .config
            .log
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        _ => schedule.logfile.clone(),
    };
    let report = SchedulerReport {
        name: mode.report_name().to_string(),
        confdetails: schedule.confdetails(mode.as_str(), &logfile, &rejected),
    };
    let body = agent.body(TaskName::Scheduler, &report)?;
    agent.store.enqueue_messages(&[NewMessage {
        endpoint: Endpoint::Schedulers.name(),
        kind: MessageKind::Scheduler,
        supersede_key: Some("scheduler".into()),
        job_id: None,
        body,
    }])?;
    let flush = agent.flush_outbox(ctx).await?;
    let pending = agent
        .store
        .outbox()?
        .into_iter()
        .any(|m| m.kind == MessageKind::Scheduler);
    if pending {
        return Err(AgentError::Task(format!(
            "schedule installed ({}) but the report to the server was not delivered (kept for the next run): {}",
            installed.summary(),
            flush.last_error.as_deref().unwrap_or("not due yet")
        )));
    }
    if let Some(e) = read.unreadable_error(&format!(
        "the local schedule was installed ({}) and reported",
        installed.summary()
    )) {
        return Err(e);
    }
    crate::session::summary(format_args!(
        "Scheduler: {} schedule installed with {} ({} task(s), source {}{}); {}",
        mode.report_name(),
        mode.as_str(),
        schedule.enabled().count(),
        schedule.source.as_str(),
        if rejected.is_empty() {
            String::new()
        } else {
            match rejected.len() {
                1 => ", 1 server entry rejected".to_string(),
                n => format!(", {n} server entries rejected"),
            }
        },
        installed.summary()
    ));
    Ok(())
}

/// The server's entries (see the module doc); an unreadable answer is logged here.
pub async fn server_schedule(agent: &Enrolled) -> ServerDefined<Vec<AttrValue>> {
    let read = agent
        .server_defined(Endpoint::Schedulers, |reply| {
            if reply.json_object().is_none() {
                return Err(format!(
                    "HTTP {}: not JSON: {}",
                    reply.status,
                    reply.summary()
                ));
            }
            parse_server_schedule(&reply.body).map_err(|e| e.to_string())
        })
        .await;
    match read {
        ServerDefined::Defined((name, entries)) => {
            tracing::info!(name = %name, entries = entries.len(), "server-defined schedule received");
            ServerDefined::Defined(entries)
        }
        ServerDefined::Nothing => {
            tracing::debug!(
                "no server-defined schedule (the plugin answers 400 to GET schedulers: not implemented)"
            );
            ServerDefined::Nothing
        }
        ServerDefined::Unreadable(why) => {
            tracing::warn!("cannot read the server-defined schedule: {why}");
            ServerDefined::Unreadable(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_carries_config_task_and_spreading() {
        let c = AgentCommand::new(
            "/usr/bin/armadito-agent".into(),
            Some("/etc/armadito-agent/agent.toml".into()),
        )
        .unwrap();
        assert_eq!(
            c.argv(ScheduledTask::Runjobs, Some(60)),
            [
                "/usr/bin/armadito-agent",
                "-c",
                "/etc/armadito-agent/agent.toml",
                "-t",
                "Runjobs",
                "--wait-rand",
                "60"
            ]
        );
        let c = AgentCommand::new("/usr/bin/armadito-agent".into(), None).unwrap();
        assert_eq!(
            c.argv(ScheduledTask::AvConfig, None),
            ["/usr/bin/armadito-agent", "-t", "AVConfig"]
        );
    }

    #[test]
    fn unusable_paths_are_refused() {
        for bad in [
            "/opt/a%b/armadito-agent",
            "/opt/a\nb/armadito-agent",
            "/opt/a\"b/armadito-agent",
            "relative/armadito-agent",
        ] {
            let e = AgentCommand::new(bad.into(), None).unwrap_err();
            assert!(matches!(e, SchedulerError::Setting(_)), "{bad:?}: {e}");
        }
        let e = AgentCommand::new(
            "/usr/bin/armadito-agent".into(),
            Some("/etc/a%.toml".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("the configuration file"), "{e}");
        // quotes and spaces are fine: they are quoted, not refused
        AgentCommand::new("/opt/it's here/armadito-agent".into(), None).unwrap();
    }

    #[test]
    fn a_replaced_binary_is_scheduled_by_its_path() {
        assert_eq!(
            live_path("/nonexistent/armadito-agent (deleted)".into()),
            PathBuf::from("/nonexistent/armadito-agent")
        );
        assert_eq!(
            live_path("/usr/bin/armadito-agent".into()),
            PathBuf::from("/usr/bin/armadito-agent")
        );
    }

    #[test]
    fn summary_stays_short() {
        let i = Installed {
            written: (0..12)
                .map(|n| format!("/etc/systemd/system/u{n}.timer"))
                .collect(),
            unchanged: vec!["/etc/cron.d/armadito-agent".into()],
            removed: vec![
                "ArmaditoAgentTaskEnrollment".into(),
                "ArmaditoAgentTaskScan".into(),
                "ArmaditoAgentTaskAlerts".into(),
            ],
        };
        assert_eq!(
            i.summary(),
            "written: 12 files in /etc/systemd/system; unchanged: /etc/cron.d/armadito-agent; removed: ArmaditoAgentTaskEnrollment, ArmaditoAgentTaskScan, ArmaditoAgentTaskAlerts"
        );
    }

    #[test]
    fn errors_map_to_exit_codes() {
        let usage: AgentError = SchedulerError::Setting("x".into()).into();
        assert_eq!(usage.exit_code(), 3);
        let task: AgentError = SchedulerError::Command {
            command: "systemctl daemon-reload".into(),
            detail: "exit status 1".into(),
        }
        .into();
        assert_eq!(task.exit_code(), 1);
    }
}
