//! `[schedule]` of agent.toml: how `-t Scheduler` installs the periodic tasks.
//!
//! ```toml
//! [schedule]
//! mode = "cron"                  # cron (Linux default) | systemd | schtasks (Windows default)
//! root = "/"                     # prefix of every file written (tests: a temp dir)
//! logfile = "/var/log/armadito-agent/agent.log"
//! user = "root"
//! [schedule.tasks.Getjobs]
//! freq = "*/2 * * * *"           # m h dom mon dow
//! # every = "30s"                # or an interval (daemon only; not with freq)
//! wait_rand = 30                 # --wait-rand N
//! enabled = true
//! ```
//!
//! Frequencies are validated when the file is loaded (like every other key: a typo is an
//! error, not a silent default); the user and log file when the task runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::schedule::{
    CronExpr, DEFAULT_MAX_PERIOD, MAX_WAIT_RAND, Schedule, ScheduledTask, Source, TaskEntry,
    validate_logfile, validate_user,
};

/// How the schedule is installed. A long-running daemon mode (the agent's own timer loop)
/// will be one more variant, dispatched in `scheduler::run` like the others.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleMode {
    /// One `/etc/cron.d/armadito-agent` file.
    Cron,
    /// One `armadito-agent-<task>.service` + `.timer` pair per task in `/etc/systemd/system`.
    Systemd,
    /// Windows scheduled tasks `ArmaditoAgentTask<Task>`, created with `schtasks /Create`.
    Schtasks,
}

impl ScheduleMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleMode::Cron => "cron",
            ScheduleMode::Systemd => "systemd",
            ScheduleMode::Schtasks => "schtasks",
        }
    }

    /// The scheduler name reported to the server (`task.obj.name`): the old agent's `Cron` and
    /// `Win32Native`, and `Systemd`.
    pub fn report_name(self) -> &'static str {
        match self {
            ScheduleMode::Cron => "Cron",
            ScheduleMode::Systemd => "Systemd",
            ScheduleMode::Schtasks => "Win32Native",
        }
    }
}

impl ScheduleMode {
    /// Whether this mode can work on this platform (checked before any request is sent).
    pub fn available(self) -> Result<(), String> {
        let ok = match self {
            ScheduleMode::Cron | ScheduleMode::Systemd => cfg!(unix),
            ScheduleMode::Schtasks => cfg!(windows),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "[schedule] mode = \"{}\" is not available on this platform (cron and systemd: Unix; schtasks: Windows)",
                self.as_str()
            ))
        }
    }
}

impl Default for ScheduleMode {
    fn default() -> Self {
        if cfg!(windows) {
            ScheduleMode::Schtasks
        } else {
            ScheduleMode::Cron
        }
    }
}

/// `[schedule]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub mode: ScheduleMode,
    /// Prefix of every path the task writes (`<root>/etc/cron.d/armadito-agent`, …). Only with
    /// `/` does the task also run `systemctl`/`schtasks`, so a test (or a package build
    /// staging a file tree) can write into a folder without touching the machine.
    pub root: PathBuf,
    /// Where scheduled runs append their output (cron redirection, systemd `append:`).
    /// Not used by `schtasks` (no shell to redirect with): there, set `[log] file`.
    pub logfile: String,
    /// The user the tasks run as (cron's user column, systemd `User=`; Windows: SYSTEM).
    pub user: String,
    /// Per-task overrides of the built-in table.
    pub tasks: BTreeMap<ScheduledTask, TaskSettings>,
    /// Seconds: a frequency or spread defined on the server is accepted only if the task still
    /// runs at least once per this period (Scheduler: at most 6 h whatever this says).
    pub max_period: u64,
    /// `systemctl` (systemd mode), by absolute path: never looked up in `PATH`.
    pub systemctl: PathBuf,
}

/// Where Debian (merged /usr) and most distributions install systemctl.
pub const DEFAULT_SYSTEMCTL: &str = "/usr/bin/systemctl";

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            mode: ScheduleMode::default(),
            root: PathBuf::from("/"),
            logfile: if cfg!(windows) {
                r"C:\ProgramData\Armadito-Agent\logs\agent.log".into()
            } else {
                "/var/log/armadito-agent/agent.log".into()
            },
            user: "root".into(),
            tasks: BTreeMap::new(),
            max_period: DEFAULT_MAX_PERIOD,
            systemctl: PathBuf::from(DEFAULT_SYSTEMCTL),
        }
    }
}

/// Bounds of `every`: faster than once a second is a loop, slower than weekly a mistake.
const MIN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_EVERY: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// `[schedule.tasks.<Task>]`: each key overrides the built-in value.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TaskSettings {
    pub freq: Option<CronExpr>,
    /// `every = "30s"` (humantime): an interval for the daemon, instead of `freq`.
    #[serde(default, deserialize_with = "super::duration::optional")]
    pub every: Option<std::time::Duration>,
    /// Seconds; 0 = no spreading.
    pub wait_rand: Option<u64>,
    pub enabled: Option<bool>,
}

impl ScheduleConfig {
    /// The schedule from the built-in table and this configuration.
    pub fn local_schedule(&self) -> Result<Schedule, String> {
        validate_user(&self.user).map_err(|e| format!("[schedule] user {:?}: {e}", self.user))?;
        validate_logfile(&self.logfile)
            .map_err(|e| format!("[schedule] logfile {:?}: {e}", self.logfile))?;
        if self.max_period < 60 {
            return Err(format!(
                "[schedule] max_period = {}: at least 60 seconds",
                self.max_period
            ));
        }
        let mut tasks = BTreeMap::new();
        for task in ScheduledTask::ALL {
            let mut entry: TaskEntry = task.default_entry();
            if let Some(o) = self.tasks.get(&task) {
                if o.freq.is_some() && o.every.is_some() {
                    return Err(format!(
                        "[schedule.tasks.{task}]: give either freq (cron) or every (interval), not both"
                    ));
                }
                if let Some(f) = &o.freq {
                    entry.freq = f.clone();
                }
                if let Some(d) = o.every {
                    if d < MIN_EVERY || d > MAX_EVERY {
                        return Err(format!(
                            "[schedule.tasks.{task}] every = {:?}: between 1s and 7days",
                            humantime::format_duration(d).to_string()
                        ));
                    }
                    entry.every = Some(d);
                }
                if let Some(n) = o.wait_rand {
                    if n > MAX_WAIT_RAND {
                        return Err(format!(
                            "[schedule.tasks.{task}] wait_rand = {n}: at most {MAX_WAIT_RAND} s"
                        ));
                    }
                    entry.wait_rand = (n > 0).then_some(n);
                }
                if let Some(e) = o.enabled {
                    entry.enabled = e;
                }
            }
            tasks.insert(task, entry);
        }
        Ok(Schedule {
            user: self.user.clone(),
            logfile: self.logfile.clone(),
            tasks,
            source: Source::Local,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ScheduleConfig, String> {
        toml::from_str(s).map_err(|e: toml::de::Error| e.to_string())
    }

    #[test]
    fn defaults_are_the_built_in_table() {
        let c = parse("").unwrap();
        assert_eq!(c, ScheduleConfig::default());
        assert_eq!(c.root, PathBuf::from("/"));
        let s = c.local_schedule().unwrap();
        assert_eq!(s.tasks.len(), 6);
        assert!(s.tasks.values().all(|e| e.enabled));
        assert_eq!(s.source, Source::Local);
    }

    #[test]
    fn overrides_apply_per_task() {
        let c = parse(
            "mode = 'systemd'\nroot = '/srv/img'\n[tasks.Getjobs]\nfreq = '*/5 * * * *'\nwait_rand = 0\n[tasks.AVConfig]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.mode, ScheduleMode::Systemd);
        let s = c.local_schedule().unwrap();
        let g = &s.tasks[&ScheduledTask::Getjobs];
        assert_eq!((g.freq.as_str(), g.wait_rand), ("*/5 * * * *", None));
        assert!(!s.tasks[&ScheduledTask::AvConfig].enabled);
        assert_eq!(
            s.tasks[&ScheduledTask::Runjobs],
            ScheduledTask::Runjobs.default_entry()
        );
    }

    #[test]
    fn every_is_an_interval() {
        let c =
            parse("[tasks.Getjobs]\nevery = '5s'\n[tasks.State]\nevery = '1h 30min'\n").unwrap();
        let s = c.local_schedule().unwrap();
        let g = &s.tasks[&ScheduledTask::Getjobs];
        assert_eq!(g.every, Some(std::time::Duration::from_secs(5)));
        // freq keeps the built-in value (what -t Scheduler would refuse to install).
        assert_eq!(g.freq, ScheduledTask::Getjobs.default_entry().freq);
        assert_eq!(
            s.tasks[&ScheduledTask::State].every,
            Some(std::time::Duration::from_secs(5400))
        );
    }

    #[test]
    fn the_commented_example_in_agent_toml_is_valid() {
        let text = include_str!("../../../agent.toml");
        let block = text
            .split_once("\n[schedule]\n")
            .expect("agent.toml documents [schedule]")
            .1;
        let uncommented: String = block
            .lines()
            .map(|l| l.trim_start_matches("# "))
            .filter(|l| {
                l.starts_with("[schedule.")
                    || l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '))
            })
            .map(|l| format!("{}\n", l.split("  #").next().unwrap_or(l).trim_end()))
            .collect();
        let uncommented = uncommented.replace("[schedule.", "[");
        let c = parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(c.mode, ScheduleMode::Cron);
        assert!(
            c.tasks.contains_key(&ScheduledTask::Getjobs),
            "{uncommented}"
        );
        c.local_schedule().unwrap();
    }

    #[test]
    fn the_default_mode_is_available_here() {
        ScheduleMode::default().available().unwrap();
        #[cfg(unix)]
        assert!(
            ScheduleMode::Schtasks
                .available()
                .unwrap_err()
                .contains("not available on this platform")
        );
    }

    #[test]
    fn mistakes_are_errors() {
        for (text, needle) in [
            ("mode = 'anacron'", "unknown variant `anacron`"),
            ("[tasks.Getjobs]\nfreq = '* * * * * root id'", "frequency"),
            (
                "[tasks.Getjob]\nfreq = '* * * * *'",
                "unknown variant `Getjob`",
            ),
            (
                "[tasks.Enrollment]\nfreq = '* * * * *'",
                "unknown variant `Enrollment`",
            ),
            ("[tasks.Getjobs]\nfrq = '* * * * *'", "unknown field `frq`"),
            ("[tasks.Getjobs]\nevery = '30 parsecs'", "every"),
            ("[tasks.Getjobs]\nevery = 30", "every"),
            ("logfle = '/var/log/x.log'", "unknown field `logfle`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        for (text, needle) in [
            (
                "logfile = '/tmp/a.log'",
                "[schedule] logfile \"/tmp/a.log\": is in a temporary folder",
            ),
            ("user = 'Root'", "[schedule] user"),
            (
                "[tasks.Runjobs]\nwait_rand = 100000",
                "[schedule.tasks.Runjobs] wait_rand",
            ),
            (
                "[tasks.Runjobs]\nfreq = '* * * * *'\nevery = '30s'",
                "either freq (cron) or every (interval), not both",
            ),
            ("[tasks.Runjobs]\nevery = '10ms'", "between 1s and 7days"),
        ] {
            let e = parse(text).unwrap().local_schedule().unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
