//! `mode = "schtasks"` (Windows): one scheduled task `ArmaditoAgentTask<Task>` per task,
//! created with `schtasks /Create /F /RU SYSTEM /TN … /TR … /SC …` run as an argv.
//!
//! The names are the old agent's, so `/F` replaces its tasks; tasks of the old agent or of
//! a previous run that are no longer wanted (its every-minute `Enrollment`, a disabled task)
//! are deleted. `/TR` is the agent's own command line (quoted executable and configuration
//! paths, then `-t <Task>` and `--wait-rand N`): no `cmd.exe`, hence no output redirection;
//! scheduled runs log through `[log] file`.
//!
//! ## Cron expression → `schtasks` trigger
//!
//! One scheduled task has one trigger here, so only frequencies with an exact single-trigger
//! equivalent are accepted (others are refused with this list, never approximated):
//!
//! | cron | schtasks |
//! |---|---|
//! | `S/N * * * *` with `N` dividing 60, `S < N` (incl. `* * * * *`, `*/20`, `0,20,40`) | `/SC MINUTE /MO N /ST 00:S` |
//! | `M * * * *` | `/SC HOURLY /MO 1 /ST 00:M` |
//! | `M S/N * * *` with `N` dividing 24, `S < N` | `/SC HOURLY /MO N /ST S:M` |
//! | `M H * * *` | `/SC DAILY /ST H:M` |
//! | `M H * * DOW` | `/SC WEEKLY /D MON,… /ST H:M` |
//!
//! Days of the month and months must be `*`.

use super::{AgentCommand, Installed, SchedulerError};
use crate::schedule::{CronExpr, Schedule, ScheduledTask, TaskEntry, is_full, progression, values};

/// The old agent's task name prefix.
pub const TASK_PREFIX: &str = "ArmaditoAgentTask";

/// Longest `/TR` value `schtasks` accepts.
pub const MAX_TR: usize = 261;

/// A `schtasks /SC …` trigger (hours and minutes of `/ST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Minute {
        every: u8,
        start: (u8, u8),
    },
    Hourly {
        every: u8,
        start: (u8, u8),
    },
    Daily {
        at: (u8, u8),
    },
    Weekly {
        days: Vec<&'static str>,
        at: (u8, u8),
    },
}

impl Trigger {
    /// The `/SC … /MO … /D … /ST …` arguments.
    pub fn args(&self) -> Vec<String> {
        let st = |(h, m): (u8, u8)| format!("{h:02}:{m:02}");
        let v: Vec<String> = match self {
            Trigger::Minute { every, start } => vec![
                "/SC".into(),
                "MINUTE".into(),
                "/MO".into(),
                every.to_string(),
                "/ST".into(),
                st(*start),
            ],
            Trigger::Hourly { every, start } => vec![
                "/SC".into(),
                "HOURLY".into(),
                "/MO".into(),
                every.to_string(),
                "/ST".into(),
                st(*start),
            ],
            Trigger::Daily { at } => vec!["/SC".into(), "DAILY".into(), "/ST".into(), st(*at)],
            Trigger::Weekly { days, at } => vec![
                "/SC".into(),
                "WEEKLY".into(),
                "/D".into(),
                days.join(","),
                "/ST".into(),
                st(*at),
            ],
        };
        v
    }
}

const UNSUPPORTED: &str = "one Windows scheduled task can only express \"S/N * * * *\" (N divides 60), \"M * * * *\", \"M S/N * * *\" (N divides 24), \"M H * * *\" or \"M H * * DOW\"";

/// The single trigger equivalent to `expr` (see the module doc), or why there is none.
pub fn trigger(expr: &CronExpr) -> Result<Trigger, String> {
    if !is_full(expr.months(), 1, 12) || !is_full(expr.days(), 1, 31) {
        return Err(format!(
            "months and days of the month must be '*': {UNSUPPORTED}"
        ));
    }
    let minutes = values(expr.minutes());
    let hours = values(expr.hours());
    let all_hours = is_full(expr.hours(), 0, 23);
    let every_day = is_full(expr.weekdays(), 0, 6);
    // "every N from S" that also lines up across the hour (day) boundary
    let regular = |mask: u64, period: u8| {
        progression(mask, period - 1)
            .filter(|(start, step)| start < step && period.is_multiple_of(*step))
    };
    if every_day {
        if all_hours {
            if let [m] = minutes.as_slice() {
                return Ok(Trigger::Hourly {
                    every: 1,
                    start: (0, *m),
                });
            }
            if let Some((start, step)) = regular(expr.minutes(), 60) {
                return Ok(Trigger::Minute {
                    every: step,
                    start: (0, start),
                });
            }
        }
        if let [m] = minutes.as_slice() {
            if let [h] = hours.as_slice() {
                return Ok(Trigger::Daily { at: (*h, *m) });
            }
            if let Some((start, step)) = regular(expr.hours(), 24) {
                return Ok(Trigger::Hourly {
                    every: step,
                    start: (start, *m),
                });
            }
        }
    } else if let ([m], [h]) = (minutes.as_slice(), hours.as_slice()) {
        const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let days = values(expr.weekdays())
            .into_iter()
            .map(|d| DAYS[d as usize % 7])
            .collect();
        return Ok(Trigger::Weekly { days, at: (*h, *m) });
    }
    Err(UNSUPPORTED.into())
}

/// `ArmaditoAgentTask<Task>`.
pub fn task_name(task: &str) -> String {
    format!("{TASK_PREFIX}{task}")
}

/// The `/TR` value: the executable and configuration paths in double quotes (they may hold
/// spaces; `"` itself is refused upstream), the fixed words as they are.
pub fn task_run(
    cmd: &AgentCommand,
    task: ScheduledTask,
    wait_rand: Option<u64>,
) -> Result<String, SchedulerError> {
    let argv = cmd.argv(task, wait_rand);
    let quoted: Vec<String> = argv
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let is_path = i == 0 || (cmd.config.is_some() && i == 2);
            if is_path {
                format!("\"{w}\"")
            } else {
                w.clone()
            }
        })
        .collect();
    let tr = quoted.join(" ");
    if tr.len() > MAX_TR {
        return Err(SchedulerError::Setting(format!(
            "the scheduled command for {task} is {} characters long, schtasks accepts {MAX_TR}: install the agent or its configuration file at a shorter path",
            tr.len()
        )));
    }
    Ok(tr)
}

/// `schtasks` arguments creating (or replacing) the scheduled task of `task`.
pub fn create_argv(
    task: ScheduledTask,
    entry: &TaskEntry,
    cmd: &AgentCommand,
) -> Result<Vec<String>, SchedulerError> {
    let trigger = trigger(&entry.freq).map_err(|reason| SchedulerError::Unsupported {
        task,
        freq: entry.freq.to_string(),
        mode: "schtasks",
        reason,
    })?;
    let mut v: Vec<String> = ["/Create", "/F", "/RU", "SYSTEM", "/TN"]
        .map(String::from)
        .into();
    v.push(task_name(task.as_str()));
    v.push("/TR".into());
    v.push(task_run(cmd, task, entry.wait_rand)?);
    v.extend(trigger.args());
    Ok(v)
}

/// `schtasks` arguments deleting a scheduled task.
pub fn delete_argv(name: &str) -> Vec<String> {
    vec!["/Delete".into(), "/F".into(), "/TN".into(), name.into()]
}

/// Every task the old agent or a previous run may have created that `schedule` does not
/// want: all `-t` names (`Enrollment` and `Scan` included) minus the enabled ones.
pub fn unwanted(schedule: &Schedule) -> Vec<String> {
    crate::wire::TaskName::ALL
        .iter()
        .map(|t| t.as_str())
        .filter(|name| !schedule.enabled().any(|(t, _)| t.as_str() == *name))
        .map(task_name)
        .collect()
}

/// Creates the scheduled tasks and deletes the unwanted ones (Windows only).
pub fn install(schedule: &Schedule, cmd: &AgentCommand) -> Result<Installed, SchedulerError> {
    // Build everything first: a bad entry fails before anything is changed.
    let creates = schedule
        .enabled()
        .map(|(task, entry)| Ok((task_name(task.as_str()), create_argv(task, entry, cmd)?)))
        .collect::<Result<Vec<_>, SchedulerError>>()?;
    run_all(creates, unwanted(schedule))
}

#[cfg(windows)]
fn run_all(
    creates: Vec<(String, Vec<String>)>,
    deletes: Vec<String>,
) -> Result<Installed, SchedulerError> {
    let mut installed = Installed {
        written: Vec::new(),
        unchanged: Vec::new(),
        removed: Vec::new(),
    };
    for (name, argv) in creates {
        schtasks(&argv)?;
        installed.written.push(name);
    }
    for name in deletes {
        // Absent tasks make schtasks fail: that is the expected case, not an error.
        match schtasks(&delete_argv(&name)) {
            Ok(()) => installed.removed.push(name),
            Err(e) => tracing::debug!("{e}"),
        }
    }
    Ok(installed)
}

#[cfg(not(windows))]
fn run_all(
    _creates: Vec<(String, Vec<String>)>,
    _deletes: Vec<String>,
) -> Result<Installed, SchedulerError> {
    Err(SchedulerError::Setting(
        "[schedule] mode = \"schtasks\" is only available on Windows: use \"cron\" or \"systemd\""
            .into(),
    ))
}

/// Runs `%SystemRoot%\System32\schtasks.exe` (full path: not whatever `schtasks` PATH finds).
#[cfg(windows)]
fn schtasks(args: &[String]) -> Result<(), SchedulerError> {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    let program = std::path::PathBuf::from(root).join(r"System32\schtasks.exe");
    let command = format!("schtasks {}", args.join(" "));
    tracing::debug!(%command, "running");
    let out = std::process::Command::new(&program)
        .args(args)
        .output()
        .map_err(|e| SchedulerError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(SchedulerError::Command {
        command,
        detail: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Source;

    fn trig(s: &str) -> Result<Vec<String>, String> {
        trigger(&CronExpr::parse(s).unwrap()).map(|t| t.args())
    }

    #[test]
    fn trigger_mapping() {
        assert_eq!(
            trig("* * * * *").unwrap(),
            ["/SC", "MINUTE", "/MO", "1", "/ST", "00:00"]
        );
        assert_eq!(
            trig("*/2 * * * *").unwrap(),
            ["/SC", "MINUTE", "/MO", "2", "/ST", "00:00"]
        );
        assert_eq!(
            trig("0,20,40 * * * *").unwrap(),
            ["/SC", "MINUTE", "/MO", "20", "/ST", "00:00"]
        );
        assert_eq!(
            trig("5-59/15 * * * *").unwrap(),
            ["/SC", "MINUTE", "/MO", "15", "/ST", "00:05"]
        );
        assert_eq!(
            trig("30 * * * *").unwrap(),
            ["/SC", "HOURLY", "/MO", "1", "/ST", "00:30"]
        );
        assert_eq!(
            trig("15 */6 * * *").unwrap(),
            ["/SC", "HOURLY", "/MO", "6", "/ST", "00:15"]
        );
        assert_eq!(
            trig("15 3-23/6 * * *").unwrap(),
            ["/SC", "HOURLY", "/MO", "6", "/ST", "03:15"]
        );
        assert_eq!(trig("5 3 * * *").unwrap(), ["/SC", "DAILY", "/ST", "03:05"]);
        assert_eq!(
            trig("0 12 * * 1-5").unwrap(),
            ["/SC", "WEEKLY", "/D", "MON,TUE,WED,THU,FRI", "/ST", "12:00"]
        );
        assert_eq!(
            trig("0 12 * * 0,7").unwrap(),
            ["/SC", "WEEKLY", "/D", "SUN", "/ST", "12:00"]
        );
        for bad in [
            "01,12,22,31,41,51 * * * *", // irregular minutes
            "*/7 * * * *",               // 7 does not divide 60: would drift across hours
            "7-59/5 * * * *",            // 7, 12, …: start ≥ step
            "*/5 1-5 * * *",             // minutes within some hours only
            "0 3 1 * *",                 // day of month
            "0 3 * 6 *",                 // month
            "0 3,4 * * 1",               // two times a week-day
            "0 */7 * * *",
        ] {
            let e = trig(bad).unwrap_err();
            assert!(e.contains("one Windows scheduled task"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_default_frequency_maps_to_one_trigger() {
        for t in ScheduledTask::ALL {
            trigger(&t.default_entry().freq).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
    }

    fn cmd() -> AgentCommand {
        // Windows-style paths are not absolute on Unix: build it directly.
        AgentCommand {
            exe: r"C:\Program Files\Armadito-Agent\armadito-agent.exe".into(),
            config: Some(r"C:\ProgramData\Armadito-Agent\agent.toml".into()),
        }
    }

    #[test]
    fn create_and_delete_argv() {
        let e = ScheduledTask::Runjobs.default_entry();
        assert_eq!(
            create_argv(ScheduledTask::Runjobs, &e, &cmd()).unwrap(),
            [
                "/Create",
                "/F",
                "/RU",
                "SYSTEM",
                "/TN",
                "ArmaditoAgentTaskRunjobs",
                "/TR",
                r#""C:\Program Files\Armadito-Agent\armadito-agent.exe" -c "C:\ProgramData\Armadito-Agent\agent.toml" -t Runjobs --wait-rand 60"#,
                "/SC",
                "MINUTE",
                "/MO",
                "2",
                "/ST",
                "00:00"
            ]
        );
        let no_cfg = AgentCommand {
            exe: r"C:\a\armadito-agent.exe".into(),
            config: None,
        };
        let tr = task_run(&no_cfg, ScheduledTask::State, None).unwrap();
        assert_eq!(tr, r#""C:\a\armadito-agent.exe" -t State"#);
        assert_eq!(
            delete_argv("ArmaditoAgentTaskEnrollment"),
            ["/Delete", "/F", "/TN", "ArmaditoAgentTaskEnrollment"]
        );
        let long = AgentCommand {
            exe: format!(r"C:\{}\armadito-agent.exe", "x".repeat(250)),
            config: None,
        };
        assert!(task_run(&long, ScheduledTask::State, None).is_err());
        let mut odd = ScheduledTask::Alerts.default_entry();
        odd.freq = CronExpr::parse("1,12 * * * *").unwrap();
        let e = create_argv(ScheduledTask::Alerts, &odd, &cmd()).unwrap_err();
        assert!(matches!(e, SchedulerError::Unsupported { .. }), "{e}");
    }

    #[test]
    fn old_and_disabled_tasks_are_deleted() {
        let mut s = Schedule {
            user: "root".into(),
            logfile: r"C:\ProgramData\Armadito-Agent\logs\agent.log".into(),
            tasks: ScheduledTask::ALL
                .into_iter()
                .map(|t| (t, t.default_entry()))
                .collect(),
            source: Source::Local,
        };
        s.tasks.get_mut(&ScheduledTask::Alerts).unwrap().enabled = false;
        assert_eq!(
            unwanted(&s),
            [
                "ArmaditoAgentTaskEnrollment",
                "ArmaditoAgentTaskScan",
                "ArmaditoAgentTaskAlerts"
            ]
        );
        #[cfg(not(windows))]
        assert!(
            install(&s, &cmd())
                .unwrap_err()
                .to_string()
                .contains("only available on Windows")
        );
    }
}
